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
//! - [`api`]: the storage node's HTTP wire types.
//!
//! and what dApp builders use:
//!
//! - [`Client`] ([`client`]): plans, minting (allowance, permit, native coin, node key
//!   assignment), token state, the upload gate with a typed reason, sync requests and waiting
//!   for their answer; and, with a storage node, sign-in (SIWE), streaming encrypted upload,
//!   download, listing and delete.
//! - [`crypto`]: client-side encryption (AES-256-GCM segments, per-file keys wrapped by an owner
//!   key derived from a wallet signature or kept in a key file).
//! - [`prepare`]: the streaming upload pipeline (encryption plus Kubo-identical CID).
//! - [`Error`]: one error type for all of it.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> px_sdk::Result<()> {
//! use px_sdk::{Client, ClientConfig, UploadOptions};
//! let config = ClientConfig::new(
//!     "http://127.0.0.1:8545",
//!     "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d".parse().unwrap(),
//!     px_sdk::Deployment::load("deployments/31337.json").unwrap(),
//! )
//! .with_node("http://127.0.0.1:8080");
//! let client = Client::new(config).await?;
//! let token = client.mint(1, Default::default()).await?;
//! client.ensure_can_upload(token, 5, true).await?;
//! let file = client
//!     .upload(token, &b"hello"[..], "hello.txt", UploadOptions::default())
//!     .await?;
//! let mut out = Vec::new();
//! client.download(token, &file.file.cid, &mut out).await?;
//! assert_eq!(out, b"hello");
//! # Ok(()) }
//! ```

pub mod api;
pub mod client;
pub mod contracts;
pub mod crypto;
pub mod deployment;
pub mod devnet;
mod error;
pub mod node;
pub mod prepare;
pub mod record;
pub mod siwe;

pub use client::{Client, ClientConfig, Payment};
pub use deployment::Deployment;
pub use error::{Error, Result};
pub use node::{
    DownloadOptions, DownloadResult, ListedFile, Progress, UploadOptions, UploadResult,
};
pub use record::UsageRecord;
