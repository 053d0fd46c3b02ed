//! # px-cli
//!
//! The `px` command line (`src/main.rs`) and the local devnet it runs.
//!
//! The library part is [`devnet`]: anvil with the project's contracts deployed by
//! `script/Deploy.s.sol`, and [`daemon`]: real IPFS daemons (Kubo, js-ipfs) started on
//! loopback. `px devnet` builds on them, and the integration tests of the other crates use them
//! as a dev-dependency, so every test runs against exactly what the deploy script deploys, on
//! the IPFS backend `PX_TEST_IPFS` selects.
//!
//! ```text
//!   px-cli ──> px-sdk ──> px-core
//! ```

pub mod daemon;
pub mod devnet;
