//! # px-core
//!
//! The PX storage protocol, in one place and without runtime I/O: what the client (`px-sdk`),
//! the storage node (`px-node`), the oracle (`px-oracle`) and the embedded store (`px-store`)
//! must agree on byte for byte. No async runtime, HTTP stack or database is in its dependency
//! tree; each module is plain data, codecs and checks.
//!
//! - [`contracts`]: alloy bindings generated at compile time from the committed ABI JSON in
//!   `core/abi/` (checked against a fresh `forge build` by `make test`), the sync status codes
//!   and the upload gate's reasons. With the `rpc` feature the bindings also get alloy's
//!   contract instances (`StorageNFT::new(address, provider)`).
//! - [`deployment`]: the `deployments/<chainId>.json` file the forge deploy script writes.
//! - [`record`]: the versioned usage record a storage node publishes under a token's IPNS name
//!   and the oracle verifies before writing usage on chain.
//! - [`api`]: the storage node's HTTP wire types.
//! - [`siwe`]: Sign-In with Ethereum (EIP-4361) messages: build, parse, verify.
//! - [`ipns`]: IPNS names and records per the IPNS Record specification: create, verify.
//! - [`importer`] and [`dagpb`]: the UnixFS importer that reproduces Kubo's CIDs.
//! - [`crypto`]: the client-side encryption format (segments, key wrapping, names), with test
//!   vectors, so a second implementation (the web dApp) can be held to it.
//!
//! ```text
//!            px-cli ──> px-sdk ──┐
//!                                ├──> px-core
//!   px-node ──> px-store ────────┤
//!   px-oracle ───────────────────┘
//! ```

pub mod api;
pub mod contracts;
pub mod crypto;
pub mod dagpb;
pub mod deployment;
pub mod importer;
pub mod ipns;
pub mod record;
pub mod siwe;

pub use deployment::Deployment;
pub use record::UsageRecord;
