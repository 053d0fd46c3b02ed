//! # px-sdk
//!
//! The Rust client of PX storage, for dApp builders. It is generic over alloy's
//! [`Provider`](alloy::providers::Provider) and [`Signer`](alloy::signers::Signer): bring your own
//! (a Ledger, AWS or GCP KMS signer, a browser-wallet bridge; a provider with retries, fallback
//! or a WebSocket transport), or use the convenience constructor from an RPC URL and a private
//! key ([`ClientConfig`]).
//!
//! - [`Client`] ([`client`]): plans, minting (allowance, permit, native coin, node key
//!   assignment), token state, the upload gate with a typed reason, sync requests and waiting
//!   for their answer; and, with a storage node, sign-in (SIWE, scoped to the configured node
//!   URL), streaming encrypted upload, download, listing, delete and logout.
//! - [`prepare`]: the streaming upload pipeline (encryption plus Kubo-identical CID).
//! - [`network`]: the provider network: files erasure-coded into pieces on several providers
//!   through the token's home node ([`Client::upload_to_network`],
//!   [`Client::download_from_network`]), the provider registry ([`Client::providers`]) and
//!   escrow funding ([`Client::fund_escrow`]); errors are [`NetworkError`].
//! - [`Error`]: typed errors that keep their sources; a revert decodes to the contract's custom
//!   error ([`Revert`]).
//!
//! The protocol itself (bindings, deployment file, usage record, node API types, SIWE, the
//! encryption format) lives in [`px_core`], re-exported here as [`contracts`], [`deployment`],
//! [`record`], [`api`], [`siwe`] and [`crypto`].
//!
//! ```text
//!   px-cli ──> px-sdk ──> px-core      (px-node, px-oracle, px-store: px-core only)
//! ```
//!
//! # Example: your own provider and signer
//! Any type implementing alloy's `Signer` works: here a wrapper that stands for a hardware
//! wallet or a KMS client (it delegates to a local key to stay short).
//! ```no_run
//! # async fn demo() -> px_sdk::Result<()> {
//! use alloy::{
//!     network::EthereumWallet,
//!     primitives::{Address, B256, ChainId, Signature},
//!     providers::ProviderBuilder,
//!     signers::{Signer, local::PrivateKeySigner},
//! };
//! use px_sdk::{Client, Deployment, UploadOptions};
//!
//! #[derive(Debug)]
//! struct MyWallet(PrivateKeySigner);
//!
//! #[async_trait::async_trait]
//! impl Signer for MyWallet {
//!     async fn sign_hash(&self, hash: &B256) -> alloy::signers::Result<Signature> {
//!         // Ask the device here.
//!         self.0.sign_hash(hash).await
//!     }
//!     fn address(&self) -> Address {
//!         self.0.address()
//!     }
//!     fn chain_id(&self) -> Option<ChainId> {
//!         None
//!     }
//!     fn set_chain_id(&mut self, _: Option<ChainId>) {}
//! }
//!
//! let key: PrivateKeySigner =
//!     "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d".parse().unwrap();
//! // The provider sends transactions; build it as you like (layers, fallback, WS).
//! let provider = ProviderBuilder::new()
//!     .wallet(EthereumWallet::from(key.clone()))
//!     .connect("http://127.0.0.1:8545")
//!     .await?;
//! let client = Client::builder(
//!     provider,
//!     MyWallet(key),
//!     Deployment::load("deployments/31337.json").unwrap(),
//! )
//! .node("http://127.0.0.1:8080")
//! .build()
//! .await?;
//! let token = client.mint(1, Default::default()).await?;
//! client.ensure_can_upload(token, 5, true).await?;
//! let file = client
//!     .upload(token, &b"hello"[..], "hello.txt", UploadOptions::default())
//!     .await?;
//! let mut out = Vec::new();
//! client.download(token, &file.file.cid, &mut out).await?;
//! assert_eq!(out, b"hello");
//! client.logout().await?;
//! # Ok(()) }
//! ```
//!
//! # Example: from a URL and a private key
//! ```no_run
//! # async fn demo() -> px_sdk::Result<()> {
//! use px_sdk::{Client, ClientConfig, Deployment};
//! let config = ClientConfig::new(
//!     "http://127.0.0.1:8545",
//!     "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d".parse().unwrap(),
//!     Deployment::load("deployments/31337.json").unwrap(),
//! )
//! .with_node("http://127.0.0.1:8080");
//! let client = Client::new(config).await?;
//! println!("{:?}", client.plans().await?);
//! # Ok(()) }
//! ```

pub mod client;
mod error;
pub mod network;
pub mod node;
pub mod prepare;
pub mod rebind;

pub use px_core::{api, contracts, crypto, deployment, record, siwe};

pub use client::{Client, ClientBuilder, ClientConfig, Payment, owner_key_from_signer};
pub use deployment::Deployment;
pub use error::{Error, Result, Revert};
pub use network::{
    NetworkDownload, NetworkDownloadOptions, NetworkError, NetworkUpload, NetworkUploadOptions,
    ProviderInfo,
};
pub use node::{
    DownloadOptions, DownloadResult, ListedFile, Progress, UploadOptions, UploadResult,
};
pub use record::UsageRecord;
