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
//! Feature `eth` (default) builds the Ethereum side (every module but [`ipns`], [`importer`] and
//! [`dagpb`]); `px-store` turns it off and builds only the IPFS side.
//!
//! ```text
//!            px-cli ──> px-sdk ──┐
//!                                ├──> px-core
//!   px-node ──> px-store ────────┤
//!   px-oracle ───────────────────┘
//! ```

#[cfg(feature = "eth")]
pub mod api;
#[cfg(feature = "eth")]
pub mod contracts;
#[cfg(feature = "eth")]
pub mod crypto;
pub mod dagpb;
#[cfg(feature = "eth")]
pub mod deployment;
#[cfg(feature = "eth")]
pub mod erasure;
pub mod importer;
pub mod ipns;
#[cfg(feature = "eth")]
pub mod network;
#[cfg(feature = "eth")]
pub mod piece;
#[cfg(feature = "eth")]
pub mod record;
#[cfg(feature = "eth")]
pub mod siwe;

#[cfg(feature = "eth")]
pub use deployment::Deployment;
#[cfg(feature = "eth")]
pub use record::UsageRecord;
