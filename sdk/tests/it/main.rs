//! Integration tests against the real components: anvil with the project's contracts, the
//! `px-node` binary with its embedded store, and the `px` binary.

mod chain;
mod common;
mod home;
mod network;
mod node;
mod signer;
