//! # px-sdk
//!
//! The Rust SDK of PX storage. This crate is the single home of what every other crate shares
//! about the chain and the usage record:
//!
//! - [`contracts`]: alloy bindings generated from the committed ABI JSON in `sdk/abi/` (checked
//!   against a fresh `forge build` by `make test`), so the Solidity sources are the only source of
//!   truth for ABIs, events and error types.
//! - [`deployment`]: the `deployments/<chainId>.json` file the forge deploy script writes.
//! - [`devnet`]: anvil plus the project's forge deployment, for `px devnet` and tests.
//! - [`record`]: the versioned usage record a storage node publishes under a token's IPNS name
//!   and the oracle verifies before writing usage on chain.

pub mod api;
pub mod contracts;
pub mod deployment;
pub mod devnet;
pub mod record;

pub use deployment::Deployment;
pub use record::UsageRecord;
