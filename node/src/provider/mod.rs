//! The provider role: a node that stores other nodes' erasure-coded pieces, proves it keeps
//! them and is paid for it (issue 17, "Provider network" in the design).
//!
//! # Flow
//! 1. **Start** ([`Provider::start`]): the provider's key must be registered and active in
//!    the `ProviderRegistry` (staked, not paused, not exiting); otherwise the node refuses to
//!    start and says what to do. Pieces journaled but never committed are unpinned.
//! 2. **Accept** ([`Provider::accept`], `POST /v1/pieces`): the piece comes with an upload
//!    order ([`px_core::network::SignedOrder`], JSON in the `X-PX-Order` header) that must
//!    name this provider, not have expired, cover the body's length (and this node's
//!    `max_piece_bytes`), never have been used, and be signed by the token's home node
//!    (`StorageMarket.homeNodeOf`, which the market only lets a `REGISTRAR_ROLE` holder be;
//!    the role is checked too, in case it was revoked since). The body streams into the IPFS
//!    backend as CIDv1 with raw leaves ([`px_core::piece::CID_OPTIONS`]), its CID and Merkle
//!    root computed on the way (memory: one node per tree level plus one per 256 KiB block);
//!    the CID is journaled before the backend can pin. The body has the node's upload
//!    deadline (`idle_timeout`, and `idle_timeout + len / min_upload_rate` in all): a
//!    trickled body is answered 408 and its pin, if any, given back. One transaction then
//!    stores the piece, its cached block levels ([`px_core::piece::TopLevels`]) and the
//!    order's hash. The answer is the provider's signed [`px_core::network::PieceReceipt`].
//! 3. **Serve** (`GET /v1/pieces/{cid}`): any piece it holds, to anyone (content-addressed:
//!    readers check what they get), rate-limited per client IP.
//! 4. **Co-sign** (`POST /v1/deals/acceptance`, `POST /v1/deals/root-update`): the
//!    provider signs the market's `acceptanceDigest` / `rootUpdateDigest` only when the
//!    token's home node signed the same digest (`homeSignature`, checked against
//!    `StorageMarket.homeNodeOf`) and the listed pieces are pieces it holds whose deal tree
//!    gives the root, count and size signed; it keeps the piece list of every root it signs
//!    (and what it signed), to answer challenges.
//! 5. **Prove** ([`prover`]): a loop that watches its deals and answers each period's
//!    challenges within the window.
//! 6. **Release** ([`sweep`]): a loop that unpins and forgets pieces no live deal root
//!    lists once `orphan_grace_secs` have passed since their acceptance (the pieces of an
//!    upload that never got a manifest, pieces a root update ended once no period can
//!    challenge them).
//!
//! State lives in `<data_dir>/provider.redb` ([`store`]).

pub mod prover;
mod routes;
pub mod store;
pub mod sweep;

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::{DynProvider, Provider as _, ProviderBuilder};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolValue};
use bytes::Bytes as Chunk;
use futures::{Stream, StreamExt};
use px_core::contracts::{IStorageMarket, ProviderRegistry, StorageMarket, StorageNFT};
use px_core::network::{self, NetworkError, PieceReceipt, SignedOrder};
use px_core::piece::{self, PieceHasher, TopLevels};
use serde::{Deserialize, Serialize};

pub use self::routes::routes;
use self::store::{PieceRow, Store};
use crate::config::Secret;
use crate::error::Error;
use crate::ipfs::Ipfs;
use crate::limit::Rate;
use crate::node::{Node, unix_now};

/// The HTTP header carrying a piece's upload order (its JSON).
pub const ORDER_HEADER: &str = "x-px-order";

/// The provider role's settings (`[provider]` in the config file, or `--role provider`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Private key (hex) of the registered provider account: signs receipts, deal
    /// acceptances, root updates and the proof transactions (it pays their gas).
    pub key: Option<Secret>,
    /// Largest piece accepted, in bytes (default 256 MiB).
    #[serde(default = "default_max_piece")]
    pub max_piece_bytes: u64,
    /// How often the prover looks at the chain, in milliseconds (default 2,000).
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Piece reads per minute from one IP address, after a burst of `read_burst` (default
    /// 600 per minute, burst 60; a burst of 0 disables the limit).
    #[serde(default = "default_read_rate")]
    pub read_rate_per_min: u32,
    /// See `read_rate_per_min`.
    #[serde(default = "default_read_burst")]
    pub read_burst: u32,
    /// Seconds a stored piece is kept without a live deal root listing it, from its
    /// acceptance (default 3,600): then it is released ([`sweep`]).
    #[serde(default = "default_orphan_grace")]
    pub orphan_grace_secs: u64,
    /// Polls a sent proof may stay unmined before it is sent again with the same nonce and
    /// fees raised by at least 12.5% (default 15, 30 s at the default poll interval).
    #[serde(default = "default_resend_after_polls")]
    pub resend_after_polls: u32,
}

fn default_max_piece() -> u64 {
    256 << 20
}
fn default_poll_ms() -> u64 {
    2000
}
fn default_read_rate() -> u32 {
    600
}
fn default_read_burst() -> u32 {
    60
}
fn default_orphan_grace() -> u64 {
    3600
}
fn default_resend_after_polls() -> u32 {
    15
}

impl ProviderConfig {
    /// Every default, with `key`.
    pub fn new(key: Secret) -> Self {
        Self {
            key: Some(key),
            max_piece_bytes: default_max_piece(),
            poll_ms: default_poll_ms(),
            read_rate_per_min: default_read_rate(),
            read_burst: default_read_burst(),
            orphan_grace_secs: default_orphan_grace(),
            resend_after_polls: default_resend_after_polls(),
        }
    }

    /// The role from the command line and the file: enabled by a `[provider]` section or
    /// `--role provider`; the key from `--provider-key` or the section; the poll interval
    /// from `--provider-poll-ms` or the section.
    pub fn merge(
        role: Option<&str>,
        key: Option<String>,
        poll_ms: Option<u64>,
        file: Option<Self>,
    ) -> crate::Result<Option<Self>> {
        let wanted = match role {
            None | Some("home") => false,
            Some("provider") => true,
            Some(r) => {
                return Err(Error::Config(format!(
                    "unknown role {r:?}: expected `provider` or `home`"
                )));
            }
        };
        if !wanted && file.is_none() {
            return Ok(None);
        }
        let mut c = file.unwrap_or_else(|| Self::new(Secret::new("")));
        if let Some(k) = key {
            c.key = Some(Secret::new(k));
        }
        if let Some(ms) = poll_ms {
            c.poll_ms = ms;
        }
        if c.key.as_ref().is_none_or(|k| k.expose().trim().is_empty()) {
            return Err(Error::Config(
                "the provider role needs the provider account's key (--provider-key, \
                 PX_NODE_PROVIDER_KEY or `key` in [provider])"
                    .into(),
            ));
        }
        if c.poll_ms == 0 {
            return Err(Error::Config("provider poll_ms must be positive".into()));
        }
        Ok(Some(c))
    }
}

/// Why the provider refused a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The order or request body is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The order names another provider.
    #[error("the order is for provider {order}, this is {this}")]
    WrongProvider {
        /// The order's provider.
        order: Address,
        /// This provider.
        this: Address,
    },
    /// The order has expired.
    #[error("the order expired at {expiry} (now {now})")]
    Expired {
        /// Its expiry.
        expiry: u64,
        /// Now.
        now: u64,
    },
    /// The order was used before.
    #[error("the order {0} was used already")]
    Replayed(B256),
    /// The order's signer is not the token's home node (or lost its registrar role).
    #[error("the order is signed by {signer}, not by token {token_id}'s home node")]
    NotHomeNode {
        /// Who signed it.
        signer: Address,
        /// The token.
        token_id: u64,
    },
    /// The piece is larger than the order or this provider allows.
    #[error("a piece of {size} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The piece is not held here.
    #[error("piece {0} is not stored here")]
    UnknownPiece(String),
    /// What a co-signature was asked for does not match the pieces held.
    #[error("will not sign: {0}")]
    Mismatch(String),
    /// A node failure (chain, IPFS, database).
    #[error(transparent)]
    Node(#[from] Error),
}

/// Result alias of the provider role.
pub type Result<T, E = ProviderError> = std::result::Result<T, E>;

impl From<NetworkError> for ProviderError {
    fn from(e: NetworkError) -> Self {
        match e {
            NetworkError::WrongProvider { order, this } => Self::WrongProvider { order, this },
            NetworkError::Expired { expiry, now } => Self::Expired { expiry, now },
            NetworkError::TooLarge { size, max } => Self::TooLarge { size, limit: max },
            e => Self::BadRequest(e.to_string()),
        }
    }
}

impl From<alloy::contract::Error> for ProviderError {
    fn from(e: alloy::contract::Error) -> Self {
        Self::Node(e.into())
    }
}

/// What `POST /v1/pieces` answers: the stored piece and the provider's signed receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PieceAccepted {
    /// Its CID (CIDv1, raw leaves).
    pub cid: String,
    /// Its Merkle root.
    pub root: B256,
    /// Its tree's depth.
    pub depth: u8,
    /// Bytes.
    pub size: u64,
    /// The order's EIP-712 hash.
    pub order_hash: B256,
    /// This provider.
    pub provider: Address,
    /// The provider's signature of the [`PieceReceipt`] (65 bytes).
    pub receipt: Bytes,
}

/// A deal acceptance to co-sign (`IStorageMarket.Acceptance`) and its pieces in deal order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptanceRequest {
    /// The token.
    pub token_id: u64,
    /// The provider (this one).
    pub provider: Address,
    /// The deal root.
    pub root: B256,
    /// Pieces under it.
    pub piece_count: u16,
    /// Bytes under it.
    pub size: u64,
    /// Bytes reserved.
    pub max_bytes: u64,
    /// Periods in the term.
    pub periods: u16,
    /// The listing price accepted (decimal string, wei per GiB-month).
    pub price_per_gib_month: String,
    /// Last timestamp the acceptance is valid.
    pub deadline: u64,
    /// The pieces' CIDs in deal order.
    pub pieces: Vec<String>,
    /// The token's home node's signature (65 bytes, `r ‖ s ‖ v`, hex in JSON) of the same
    /// 32-byte digest the provider co-signs: `StorageMarket.acceptanceDigest(acceptance)`
    /// with the fields above (the EIP-712 hash itself, signed as it is, without the EIP-191
    /// prefix). The provider co-signs only when it recovers to
    /// `StorageMarket.homeNodeOf(tokenId)`; missing or wrong, the answer is 403.
    #[serde(default)]
    pub home_signature: Bytes,
}

/// A root update to co-sign (`IStorageMarket.RootUpdate`) and its pieces in deal order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RootUpdateRequest {
    /// The deal.
    pub deal_id: B256,
    /// The new root.
    pub root: B256,
    /// Pieces under it.
    pub piece_count: u16,
    /// Bytes under it.
    pub size: u64,
    /// Bytes of pieces it ends.
    pub size_ended: u64,
    /// The pieces' CIDs in deal order.
    pub pieces: Vec<String>,
    /// The token's home node's signature (65 bytes, `r ‖ s ‖ v`, hex in JSON) of
    /// `StorageMarket.rootUpdateDigest(update)` with the fields above (the EIP-712 hash as
    /// it is, no EIP-191 prefix): the very `homeSig` `updateDealRoot` takes. The provider
    /// co-signs only when it recovers to `StorageMarket.homeNodeOf` of the deal's token;
    /// missing or wrong, the answer is 403.
    #[serde(default)]
    pub home_signature: Bytes,
}

/// A co-signature: the digest the market checks and the provider's signature of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CoSignature {
    /// The deal.
    pub deal_id: B256,
    /// The EIP-712 digest signed.
    pub digest: B256,
    /// 65 bytes.
    pub signature: Bytes,
}

/// The provider role of a node.
#[derive(Debug)]
pub struct Provider {
    node: Arc<Node>,
    ipfs: Ipfs,
    signer: PrivateKeySigner,
    chain: DynProvider,
    chain_id: u64,
    market: StorageMarket::StorageMarketInstance<DynProvider>,
    nft: StorageNFT::StorageNFTInstance<DynProvider>,
    domain: Eip712Domain,
    store: Arc<Store>,
    config: ProviderConfig,
    /// Orders whose piece is being stored now (a second use waits for none: it is refused).
    in_flight: Mutex<HashSet<B256>>,
    /// Held while pieces are released, while a co-signature checks and records its pieces,
    /// and while an upload journals its CID ([`sweep`]).
    release: Arc<tokio::sync::Mutex<()>>,
    prover: prover::ProverState,
}

/// `IStorageMarket.DealStatus.Active`.
const DEAL_ACTIVE: u8 = 1;

/// `keccak256("REGISTRAR_ROLE")`, StorageNFT's role of home nodes.
fn registrar_role() -> B256 {
    keccak256("REGISTRAR_ROLE")
}

/// `StorageMarket.dealIdOf(tokenId, provider)`.
pub fn deal_id_of(token_id: u64, provider: Address) -> B256 {
    keccak256((U256::from(token_id), provider).abi_encode())
}

impl Provider {
    /// Checks the registration and opens the role's state; `data_dir` holds its database.
    pub async fn start(
        node: Arc<Node>,
        ipfs: Ipfs,
        config: &ProviderConfig,
        rpc_url: &str,
        deployment: &px_core::Deployment,
        data_dir: &Path,
    ) -> crate::Result<Arc<Self>> {
        let key = config.key.as_ref().map(Secret::expose).unwrap_or_default();
        let signer = PrivateKeySigner::from_str(key.trim())
            .map_err(|_| Error::Config("the provider key is not a valid private key".into()))?;
        let (Some(registry), Some(market)) =
            (deployment.provider_registry, deployment.storage_market)
        else {
            return Err(Error::Config(
                "the deployment has no provider registry and storage market: the provider role \
                 needs them"
                    .into(),
            ));
        };
        let url = rpc_url
            .parse()
            .map_err(|e| Error::Config(format!("invalid RPC URL {rpc_url}: {e}")))?;
        let chain = ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer.clone()))
            .connect_http(url)
            .erased();
        let me = signer.address();
        let listing = ProviderRegistry::new(registry, chain.clone())
            .providerOf(me)
            .call()
            .await?;
        // Registration needs a positive capacity: zero means never registered (or withdrawn).
        if listing.capacity == 0 {
            return Err(Error::Config(format!(
                "provider {me} is not registered in the ProviderRegistry at {registry}: register \
                 it first (registerProvider with endpoint, region, capacity, price and a stake of \
                 at least the registry's minStake), then start the provider role"
            )));
        }
        if !listing.active {
            return Err(Error::Config(format!(
                "provider {me} is registered but not active in the ProviderRegistry at \
                 {registry} (paused: {}, exiting: {}, stake {} wei): unpause it or top up its \
                 stake before starting the provider role",
                listing.paused,
                listing.unbondsAt != alloy::primitives::aliases::U40::ZERO,
                listing.stake
            )));
        }
        let market_config = StorageMarket::new(market, chain.clone())
            .config()
            .call()
            .await?;
        let path = data_dir.join(store::FILE);
        let store = tokio::task::spawn_blocking(move || Store::open(&path))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        let chain_id = node.chain().chain_id();
        let p = Arc::new(Self {
            ipfs,
            market: StorageMarket::new(market, chain.clone()),
            nft: StorageNFT::new(deployment.storage_nft, chain.clone()),
            domain: network::domain(chain_id, market),
            chain,
            chain_id,
            signer,
            store: Arc::new(store),
            config: config.clone(),
            in_flight: Mutex::new(HashSet::new()),
            release: Arc::new(tokio::sync::Mutex::new(())),
            prover: prover::ProverState::new(&market_config),
            node,
        });
        p.recover().await?;
        tracing::info!(target: "node::provider", provider = %me, endpoint = %listing.endpoint, "provider role started");
        Ok(p)
    }

    /// This provider's address.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The role's database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The EIP-712 domain of orders and receipts.
    pub fn domain(&self) -> &Eip712Domain {
        &self.domain
    }

    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> crate::Result<T> + Send + 'static,
    ) -> crate::Result<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Error::Internal(format!("provider db task: {e}")))?
    }

    /// Unpins pieces journaled but never committed (a crash or failure mid-store).
    async fn recover(&self) -> crate::Result<()> {
        for cid in self.db(|s| s.pending()).await? {
            let c = cid.clone();
            if self.db(move |s| s.piece(&c)).await?.is_none() {
                self.ipfs.unpin(&cid).await?;
                tracing::info!(target: "node::provider", %cid, "uncommitted piece unpinned");
            }
            let c = cid.clone();
            self.db(move |s| s.remove_pending(&c)).await?;
        }
        Ok(())
    }

    /// The checks of an order before its body is read: shape, provider, expiry, size, replay
    /// and signer (the token's home node, holding the registrar role).
    async fn check_order(&self, header: &str, len: u64) -> Result<SignedOrder> {
        let order: SignedOrder = serde_json::from_str(header)
            .map_err(|e| ProviderError::BadRequest(format!("invalid order: {e}")))?;
        if len > self.config.max_piece_bytes {
            return Err(ProviderError::TooLarge {
                size: len,
                limit: self.config.max_piece_bytes,
            });
        }
        let signer = order.check(&self.domain, self.address(), len, unix_now())?;
        let hash = order.order.hash(&self.domain);
        if self.db(move |s| s.order(&hash)).await?.is_some() {
            return Err(ProviderError::Replayed(hash));
        }
        let token_id = order.order.token_id;
        let (home, role) = tokio::try_join!(
            async {
                self.market
                    .homeNodeOf(U256::from(token_id))
                    .call()
                    .await
                    .map_err(ProviderError::from)
            },
            async {
                self.nft
                    .hasRole(registrar_role(), signer)
                    .call()
                    .await
                    .map_err(ProviderError::from)
            },
        )?;
        if home != signer || !role {
            return Err(ProviderError::NotHomeNode { signer, token_id });
        }
        Ok(order)
    }

    /// Stores a piece of `len` bytes under the order in `header` and answers the signed
    /// receipt (see the module docs).
    pub async fn accept<S, E>(
        self: &Arc<Self>,
        header: &str,
        len: u64,
        body: S,
    ) -> Result<PieceAccepted>
    where
        S: Stream<Item = std::result::Result<Chunk, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let r = self.accept_inner(header, len, body).await;
        self.node.metrics.piece(r.is_ok());
        if let Err(e) = &r {
            tracing::info!(target: "node::provider", error = %e, "piece refused");
        }
        r
    }

    async fn accept_inner<S, E>(
        self: &Arc<Self>,
        header: &str,
        len: u64,
        body: S,
    ) -> Result<PieceAccepted>
    where
        S: Stream<Item = std::result::Result<Chunk, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let order = self.check_order(header, len).await?;
        let hash = order.order.hash(&self.domain);
        if !self.in_flight.lock().expect("lock").insert(hash) {
            return Err(ProviderError::Replayed(hash));
        }
        let _guard = InFlight {
            provider: self,
            hash,
        };
        // A trickled body ends in an error (the idle timeout and minimum rate of uploads).
        let timed_out = Arc::new(AtomicBool::new(false));
        let body = self.node.body_deadline(body, len, timed_out.clone());
        // The Merkle root as the bytes pass (one node per level, one per 256 KiB block).
        let hasher = Arc::new(Mutex::new(Some(PieceHasher::new(
            piece::DEFAULT_BLOCK_LEVEL,
        ))));
        let h = hasher.clone();
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let body = body.map(move |chunk| {
            if let Ok(c) = &chunk {
                counter.fetch_add(c.len() as u64, Ordering::Relaxed);
                if let Some(h) = h.lock().expect("lock").as_mut() {
                    h.update(c);
                }
            }
            chunk
        });
        let store = self.store.clone();
        let release = self.release.clone();
        let journaled = Arc::new(Mutex::new(None::<String>));
        let j = journaled.clone();
        let added = self
            .ipfs
            .add_stream_journaled_as(body, len, &piece::CID_OPTIONS, move |cid| async move {
                let c = cid.clone();
                // Not while a sweep releases pieces: it may be unpinning this content.
                let _lock = release.lock().await;
                tokio::task::spawn_blocking(move || store.put_pending(&c, unix_now()))
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))??;
                *j.lock().expect("lock") = Some(cid);
                Ok(())
            })
            .await;
        let journaled = journaled.lock().expect("lock").take();
        let result = async {
            if timed_out.load(Ordering::Relaxed) {
                self.node.metrics.timeout();
                return Err(Error::BodyTimeout {
                    received: received.load(Ordering::Relaxed),
                    len,
                }
                .into());
            }
            let cid = added?;
            if journaled.as_deref() != Some(cid.as_str()) {
                return Err(Error::Ipfs(format!(
                    "backend stored the piece as {cid}, computed {journaled:?}"
                ))
                .into());
            }
            let hasher = hasher
                .lock()
                .expect("lock")
                .take()
                .ok_or_else(|| Error::Internal("piece hasher taken".into()))?;
            let (info, top) = hasher
                .finish_with_top()
                .map_err(|e| ProviderError::BadRequest(e.to_string()))?;
            let row = PieceRow {
                token_id: order.order.token_id,
                root: info.root,
                depth: info.depth,
                size: info.size,
                order_hash: hash,
                stored_at: unix_now(),
                top: top.to_bytes().into(),
            };
            let (c, r) = (cid.clone(), row.clone());
            if !self.db(move |s| s.commit_piece(&c, &r)).await? {
                return Err(ProviderError::Replayed(hash));
            }
            Ok((cid, row))
        }
        .await;
        let (cid, row) = match result {
            Ok(v) => v,
            Err(e) => {
                if let Some(cid) = journaled {
                    self.give_back(&cid).await;
                }
                return Err(e);
            }
        };
        let receipt = PieceReceipt {
            order_hash: hash,
            cid: cid
                .parse()
                .map_err(|e| Error::Internal(format!("backend CID {cid}: {e}")))?,
            root: row.root,
            depth: row.depth,
            size: row.size,
        };
        let sig = receipt
            .sign(&self.signer, &self.domain)
            .map_err(|e| Error::Internal(e.to_string()))?;
        tracing::info!(target: "node::provider", %cid, token_id = row.token_id, size = row.size, root = %row.root, "piece stored");
        Ok(PieceAccepted {
            cid,
            root: row.root,
            depth: row.depth,
            size: row.size,
            order_hash: hash,
            provider: self.address(),
            receipt: sig.as_bytes().to_vec().into(),
        })
    }

    /// Unpins a piece that was not committed (unless a committed row holds the same CID) and
    /// drops its journal row; recovery retries if this fails.
    async fn give_back(&self, cid: &str) {
        let c = cid.to_string();
        let r = async {
            if self.db(move |s| s.piece(&c)).await?.is_none() {
                self.ipfs.unpin(cid).await?;
            }
            let c = cid.to_string();
            self.db(move |s| s.remove_pending(&c)).await
        }
        .await;
        if let Err(e) = r {
            tracing::warn!(target: "node::provider", %cid, error = %e, "giving a piece back failed; recovery will retry");
        }
    }

    /// The bytes of a piece held here (its size and stream).
    pub async fn read(
        &self,
        cid: &str,
    ) -> Result<(u64, impl Stream<Item = crate::Result<Chunk>> + Send + use<>)> {
        let c = cid.to_string();
        let row = self
            .db(move |s| s.piece(&c))
            .await?
            .ok_or_else(|| ProviderError::UnknownPiece(cid.to_string()))?;
        self.node.metrics.piece_served();
        Ok((row.size, self.ipfs.cat(cid)))
    }

    /// The (root, depth) of each piece in `cids`, all held here, and their total size.
    async fn held(&self, cids: &[String]) -> Result<(Vec<(B256, u8)>, u64)> {
        let list = cids.to_vec();
        let rows = self
            .db(move |s| {
                list.iter()
                    .map(|c| s.piece(c))
                    .collect::<crate::Result<Vec<_>>>()
            })
            .await?;
        let mut leaves = Vec::with_capacity(rows.len());
        let mut size = 0u64;
        for (cid, row) in cids.iter().zip(rows) {
            let row = row.ok_or_else(|| ProviderError::UnknownPiece(cid.clone()))?;
            leaves.push((row.root, row.depth));
            size += row.size;
        }
        Ok((leaves, size))
    }

    /// Checks a piece list against the root, count and size to be signed.
    async fn check_pieces(&self, cids: &[String], root: B256, count: u16, size: u64) -> Result<()> {
        if cids.len() != usize::from(count) || cids.is_empty() {
            return Err(ProviderError::Mismatch(format!(
                "{} pieces listed, {count} signed",
                cids.len()
            )));
        }
        let (leaves, total) = self.held(cids).await?;
        if total != size {
            return Err(ProviderError::Mismatch(format!(
                "the pieces hold {total} bytes, {size} signed"
            )));
        }
        let computed =
            piece::deal_root(&leaves).map_err(|e| ProviderError::Mismatch(e.to_string()))?;
        if computed != root {
            return Err(ProviderError::Mismatch(format!(
                "the pieces' deal root is {computed}, {root} signed"
            )));
        }
        Ok(())
    }

    fn sign(&self, digest: &B256) -> crate::Result<Bytes> {
        let sig = self
            .signer
            .sign_hash_sync(digest)
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(sig.as_bytes().to_vec().into())
    }

    /// Checks that `signature` of `digest` is the home node's of `token_id`.
    async fn check_home_signature(
        &self,
        token_id: u64,
        digest: &B256,
        signature: &[u8],
    ) -> Result<()> {
        let signer = alloy::primitives::Signature::try_from(signature)
            .ok()
            .and_then(|sig| sig.recover_address_from_prehash(digest).ok())
            .unwrap_or(Address::ZERO);
        let home = self.market.homeNodeOf(U256::from(token_id)).call().await?;
        if signer == Address::ZERO || signer != home {
            return Err(ProviderError::NotHomeNode { signer, token_id });
        }
        Ok(())
    }

    /// Checks the pieces against what is signed and records them under the deal root, under
    /// the release lock (so no sweep releases them in between).
    async fn record_deal_root(
        &self,
        deal_id: B256,
        root: B256,
        count: u16,
        size: u64,
        pieces: Vec<String>,
        signed: store::Signed,
    ) -> Result<()> {
        let _lock = self.release.lock().await;
        self.check_pieces(&pieces, root, count, size).await?;
        let row = store::DealRootRow {
            pieces,
            signed: Some(signed),
        };
        self.db(move |s| s.put_deal_root(&deal_id, &root, &row))
            .await?;
        Ok(())
    }

    /// Co-signs a deal acceptance over pieces held here, asked by the token's home node.
    pub async fn cosign_acceptance(&self, req: AcceptanceRequest) -> Result<CoSignature> {
        if req.provider != self.address() {
            return Err(ProviderError::WrongProvider {
                order: req.provider,
                this: self.address(),
            });
        }
        let price: u128 = req
            .price_per_gib_month
            .parse()
            .map_err(|_| ProviderError::BadRequest("pricePerGiBMonth is not a number".into()))?;
        if req.size > req.max_bytes {
            return Err(ProviderError::Mismatch("size over maxBytes".into()));
        }
        let a = IStorageMarket::Acceptance {
            tokenId: U256::from(req.token_id),
            provider: req.provider,
            root: req.root,
            pieceCount: req.piece_count,
            size: req.size,
            maxBytes: req.max_bytes,
            periods: req.periods,
            pricePerGiBMonth: price,
            deadline: U256::from(req.deadline),
        };
        let deal_id = deal_id_of(req.token_id, self.address());
        let (digest, deal) = tokio::try_join!(
            async {
                self.market
                    .acceptanceDigest(a)
                    .call()
                    .await
                    .map_err(ProviderError::from)
            },
            async {
                self.market
                    .dealOf(U256::from_be_bytes(deal_id.0))
                    .call()
                    .await
                    .map_err(ProviderError::from)
            },
        )?;
        self.check_home_signature(req.token_id, &digest, &req.home_signature)
            .await?;
        let signed = store::Signed::Acceptance {
            generation: deal.generation,
            deadline: req.deadline,
        };
        self.record_deal_root(
            deal_id,
            req.root,
            req.piece_count,
            req.size,
            req.pieces,
            signed,
        )
        .await?;
        tracing::info!(target: "node::provider", %deal_id, token_id = req.token_id, root = %req.root, "deal acceptance co-signed");
        Ok(CoSignature {
            deal_id,
            digest,
            signature: self.sign(&digest)?,
        })
    }

    /// Co-signs a root update of one of this provider's active deals over pieces held here,
    /// asked by the deal token's home node.
    pub async fn cosign_root_update(&self, req: RootUpdateRequest) -> Result<CoSignature> {
        let deal = self
            .market
            .dealOf(U256::from_be_bytes(req.deal_id.0))
            .call()
            .await?;
        if deal.provider != self.address() || deal.status != DEAL_ACTIVE {
            return Err(ProviderError::Mismatch(format!(
                "deal {} is not an active deal of this provider",
                req.deal_id
            )));
        }
        let u = IStorageMarket::RootUpdate {
            dealId: U256::from_be_bytes(req.deal_id.0),
            root: req.root,
            pieceCount: req.piece_count,
            size: req.size,
            sizeEnded: req.size_ended,
        };
        let digest = self.market.rootUpdateDigest(u).call().await?;
        let token_id: u64 = deal
            .tokenId
            .try_into()
            .map_err(|_| ProviderError::BadRequest("deal token id over 64 bits".into()))?;
        self.check_home_signature(token_id, &digest, &req.home_signature)
            .await?;
        let deal_id = req.deal_id;
        let signed = store::Signed::RootUpdate { nonce: deal.nonce };
        self.record_deal_root(
            deal_id,
            req.root,
            req.piece_count,
            req.size,
            req.pieces,
            signed,
        )
        .await?;
        tracing::info!(target: "node::provider", %deal_id, root = %req.root, "root update co-signed");
        Ok(CoSignature {
            deal_id,
            digest,
            signature: self.sign(&digest)?,
        })
    }

    /// The per-IP limit of piece reads and co-signature requests.
    pub fn read_rate(&self) -> Rate {
        Rate::per_minute(self.config.read_burst, self.config.read_rate_per_min)
    }

    /// The prover's poll interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.config.poll_ms)
    }

    /// The cached tree levels of a piece held here.
    fn top_levels(row: &PieceRow) -> crate::Result<TopLevels> {
        TopLevels::from_bytes(&row.top).map_err(|e| Error::Db(format!("piece tree cache: {e}")))
    }
}

/// Forgets an in-flight order when its upload ends, however it ends.
struct InFlight<'a> {
    provider: &'a Provider,
    hash: B256,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.provider
            .in_flight
            .lock()
            .expect("lock")
            .remove(&self.hash);
    }
}

/// The running provider role: the prover's and the sweep's tasks, stopped when this is
/// dropped.
#[derive(Debug)]
pub struct Running {
    /// The role.
    pub provider: Arc<Provider>,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl Running {
    /// Starts the prover loop and the piece sweep of `provider`.
    pub fn spawn(provider: Arc<Provider>) -> Self {
        let tasks = [
            tokio::spawn(prover::run(provider.clone())),
            tokio::spawn(sweep::run(provider.clone())),
        ];
        Self { provider, tasks }
    }

    /// Stops the prover loop and the sweep and waits until they, and any database write
    /// they had handed to a blocking thread, are gone: the provider's database is closed
    /// when this returns (a restart in the same process opens it again). A proof stored but
    /// not sent goes out after a restart.
    pub async fn stop(mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in &mut self.tasks {
            let _ = t.await;
        }
        let store = Arc::downgrade(&self.provider.store);
        drop(self);
        crate::released("the provider's database", || store.strong_count() > 0).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cli, NodeConfig};

    #[test]
    fn provider_section_or_role_flag_turns_the_role_on() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            "deployment = \"d.json\"\n[provider]\nkey = \"0xabc\"\nmax_piece_bytes = 1024\n",
        )
        .unwrap();
        let cli = |config: Option<std::path::PathBuf>| Cli {
            config,
            deployment: Some("d.json".into()),
            ..Cli::default()
        };
        let c = NodeConfig::from_cli(cli(Some(file.clone()))).unwrap();
        let p = c.provider.expect("a [provider] section turns the role on");
        assert_eq!((p.max_piece_bytes, p.poll_ms), (1024, 2000));
        assert_eq!(format!("{:?}", p.key), "Some(Secret(<redacted>))");
        assert!(NodeConfig::from_cli(cli(None)).unwrap().provider.is_none());
        // The flag needs a key.
        let mut flag = cli(None);
        flag.role = Some("provider".into());
        assert!(matches!(NodeConfig::from_cli(flag), Err(Error::Config(_))));
        let mut flag = cli(None);
        flag.role = Some("provider".into());
        flag.provider_key = Some("0xdef".into());
        flag.provider_poll_ms = Some(100);
        let p = NodeConfig::from_cli(flag).unwrap().provider.unwrap();
        assert_eq!((p.key.unwrap().expose(), p.poll_ms), ("0xdef", 100));
        let mut bad = cli(None);
        bad.role = Some("miner".into());
        assert!(matches!(NodeConfig::from_cli(bad), Err(Error::Config(_))));
        std::fs::write(
            &file,
            "deployment = \"d.json\"\n[provider]\nkee = \"0xabc\"\n",
        )
        .unwrap();
        assert!(
            NodeConfig::from_cli(cli(Some(file))).is_err(),
            "unknown keys refused"
        );
    }

    #[test]
    fn deal_id_is_the_markets() {
        // keccak256(abi.encode(uint256(1), address(0x..01)))
        let id = deal_id_of(1, Address::with_last_byte(1));
        let mut enc = [0u8; 64];
        enc[31] = 1;
        enc[63] = 1;
        assert_eq!(id, keccak256(enc));
    }
}
