//! # px-cli
//!
//! The `px` command line (`src/main.rs`) and the local devnet it runs.
//!
//! The library part is [`devnet`]: anvil with the project's contracts deployed by
//! `script/Deploy.s.sol`. `px devnet` builds on it, and the integration tests of the other crates
//! use it as a dev-dependency, so every test runs against exactly what the deploy script deploys.
//!
//! ```text
//!   px-cli ──> px-sdk ──> px-core
//! ```

pub mod devnet;
