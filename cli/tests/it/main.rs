//! Integration tests of the `px` binary and the devnet, against the real components: anvil with
//! the project's contracts, the `px-node` binary with its embedded store, px-store and
//! px-oracle.

// The SDK's test fixture (devnet, `px-node` processes), shared rather than copied; the CLI tests
// use part of it.
#[allow(dead_code)]
#[path = "../../../sdk/tests/it/common.rs"]
mod common;

mod cli;
mod devnet;
mod network;
mod provider_cli;
mod providers;
mod signals;
mod story;
mod uploads;
