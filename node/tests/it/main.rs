//! Integration tests of px-node against a real anvil with the project's contracts, the IPFS
//! backend `PX_TEST_IPFS` selects (the embedded store by default, or a Kubo or js-ipfs daemon)
//! and the real router on loopback. One shared fixture: [`fixture`].

mod fixture;

mod abuse;
mod api;
mod auth;
mod crash;
mod faults;
mod files;
mod home;
mod keys;
mod provider;
mod rebind;
