//! Integration tests of px-node against a real anvil with the project's contracts, the
//! embedded store and the real router on loopback. One shared fixture: [`fixture`].

mod fixture;

mod api;
mod auth;
mod crash;
mod files;
mod keys;
mod rebind;
