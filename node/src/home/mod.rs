//! The home-node role of the provider network (issue 17, "Provider network" in the design):
//! the node a token's holder names with `StorageMarket.setHomeNode` places the token's
//! erasure-coded pieces with providers, records their manifests in the token's file index,
//! keeps the token's deals in step with what the providers hold, and repairs files whose
//! providers fail.
//!
//! # Flow
//! 1. **Placement** ([`Home::placement`], `POST /v1/tokens/{id}/placements`): after the same
//!    checks as an upload (session, holder, key bound here, gate and quota for the ciphertext
//!    size), and after checking that this node is the token's home node on chain, the node
//!    picks providers from the registry — active, certified (unless `require_certified` is
//!    off), under the price cap, live (answering `/health`), with room for the deal — and
//!    signs an upload order (EIP-712, [`px_core::network::UploadOrder`]) per piece: for each
//!    segment, `n` distinct providers (rotated over the segments), then `spares` more with an
//!    order for every piece index, for the client's long-tail cancellation. "Distinct
//!    operators" means distinct provider accounts: the registry knows no other identity. The
//!    token's escrow must hold what the deals to open commit (`price * periods` each).
//! 2. **Commit** ([`Home::commit`], `POST /v1/tokens/{id}/manifests`): the manifest must be
//!    well-formed ([`Manifest::validate`]), name this token, carry orders signed by this node
//!    and receipts signed by the providers ([`Manifest::verify_signatures`]) and an upload id
//!    never committed before. A manifest is only ever recorded with a receipt for every
//!    piece, so a crash mid-placement leaves none pointing at pieces that were not stored (the
//!    providers release pieces no deal lists after their grace period). The manifest (JSON)
//!    is added to the IPFS backend and becomes the file's index entry (its `redundancy` set);
//!    the ciphertext size counts against the quota; the usage record is published as for an
//!    upload. Then the manifest is recorded here ([`store`]).
//! 3. **Deals** ([`deals`]): a loop keeps each (token, provider) deal's root equal to the
//!    pieces the token's manifests place there: it opens a deal (provider's acceptance, then
//!    `openDeal`) where none is active, and otherwise sends one root update per period at
//!    most (both signatures, `updateDealRoot`). It also marks missed periods of its tokens'
//!    deals (`markMissed`: the caller's bounty goes to this node).
//! 4. **Repair** ([`repair`]): a piece is healthy while its provider answers `/health`, is
//!    active in the registry, and its deal with the token is not breached and has missed no
//!    period. When a segment has fewer healthy pieces than `repair_below` (default `n`) but
//!    at least `k`, the loop fetches `k` healthy pieces (each checked against its CID and
//!    root), decodes the segment (ciphertext: no key is needed), re-encodes the missing
//!    pieces (checked to be byte-identical to the originals: same CID), stores each with a
//!    new provider under a new order and records the new manifest (index entry replaced,
//!    same file id; a new record published). The deals loop then moves the pieces between
//!    the deals.
//!
//! Memory: placement and commit hold one manifest; a repair holds one segment, `k` fetched
//! pieces and the re-encoded pieces (about 2.5 segments: 160 MiB at 64 MiB segments).

pub mod deals;
pub mod repair;
mod routes;
pub mod store;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use px_core::api::{self, NetworkInfo, Placement, PlacementRequest, PlacementTarget};
use px_core::contracts::{IProviderRegistry, IStorageMarket, ProviderRegistry, StorageMarket};
use px_core::erasure::{self, Redundancy};
use px_core::network::{self, Manifest, UploadOrder};
use serde::Deserialize;

pub use self::routes::routes;
use self::store::{Store, StoredManifest};
use crate::error::{Error, Result};
use crate::node::{Node, unix_now};

/// The home role's settings (`[home]` in the config file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HomeConfig {
    /// Serve the role when the node has a registrar key and the deployment a market
    /// (default true).
    pub enabled: bool,
    /// Redundancy of placements that ask for none (default 4/6).
    pub redundancy: Redundancy,
    /// Segment size of placements that ask for none (default 64 MiB).
    pub segment_size: u64,
    /// Spare providers offered per segment (default 2).
    pub spares: u16,
    /// Validity of upload orders, in seconds (default 3,600).
    pub order_ttl_secs: u64,
    /// Periods in the term of a deal this node opens (default 12).
    pub deal_periods: u16,
    /// Bytes a deal reserves at its provider (default 4 GiB; at least what it holds).
    pub deal_max_bytes: u64,
    /// Highest listing price accepted, wei of PXToken per GiB-month (decimal; default: any).
    pub max_price: Option<String>,
    /// Place only with certified providers (default true).
    pub require_certified: bool,
    /// How often the deals and repair loops run, in milliseconds (default 2,000).
    pub poll_ms: u64,
    /// Repair a segment with fewer healthy pieces than this (default: `n`, any loss).
    pub repair_below: Option<u16>,
    /// Failed `/health` probes in a row after which a provider counts as offline (default 2).
    pub offline_after: u32,
}

impl Default for HomeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            redundancy: Redundancy::new(4, 6).expect("valid default redundancy"),
            segment_size: 64 << 20,
            spares: 2,
            order_ttl_secs: 3600,
            deal_periods: 12,
            deal_max_bytes: 4 << 30,
            max_price: None,
            require_certified: true,
            poll_ms: 2000,
            repair_below: None,
            offline_after: 2,
        }
    }
}

/// `IStorageMarket.DealStatus`.
pub(crate) mod status {
    /// No deal.
    pub(crate) const NONE: u8 = 0;
    /// Active.
    pub(crate) const ACTIVE: u8 = 1;
    /// Completed.
    pub(crate) const COMPLETED: u8 = 2;
    /// Breached.
    pub(crate) const BREACHED: u8 = 3;
}

/// A provider eligible for placement.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) address: Address,
    pub(crate) url: String,
    /// Its listing price.
    pub(crate) price: u128,
    /// Whether the token has an active deal with it.
    pub(crate) has_deal: bool,
}

/// Work that failed, by key: when to try again, and the last wait.
pub(crate) type Backoff<K> = Mutex<HashMap<K, (std::time::Instant, Duration)>>;

/// The home role of a node.
#[derive(Debug)]
pub struct Home {
    pub(crate) node: Arc<Node>,
    pub(crate) signer: PrivateKeySigner,
    pub(crate) market: StorageMarket::StorageMarketInstance<DynProvider>,
    pub(crate) registry: ProviderRegistry::ProviderRegistryInstance<DynProvider>,
    pub(crate) domain: Eip712Domain,
    pub(crate) market_config: IStorageMarket::Config,
    pub(crate) config: HomeConfig,
    pub(crate) max_price: u128,
    pub(crate) store: Arc<Store>,
    pub(crate) http: reqwest::Client,
    /// Failed `/health` probes in a row, per provider.
    pub(crate) probes: Mutex<HashMap<Address, u32>>,
    /// One chain transaction of this role at a time (they share the registrar's nonces).
    pub(crate) tx_lock: tokio::sync::Mutex<()>,
    /// Wakes the deals loop (after a commit or a repair).
    pub(crate) wake: tokio::sync::Notify,
    /// Deals whose last update failed: when to try again, and the last wait.
    pub(crate) backoff: Backoff<B256>,
    /// Segments `(token, file id, segment)` whose last repair failed or fell short: when to
    /// try again, and the last wait.
    pub(crate) repair_backoff: Backoff<(u64, u64, usize)>,
}

impl Home {
    /// The role, if this node can play it: a registrar key, a deployment with a market and
    /// the role enabled. Opens `<data_dir>/home.redb` and records any manifest a crash left
    /// out of it.
    pub async fn start(
        node: Arc<Node>,
        config: &HomeConfig,
        deployment: &px_core::Deployment,
        data_dir: &std::path::Path,
    ) -> Result<Option<Arc<Self>>> {
        let (Some(registry), Some(market)) =
            (deployment.provider_registry, deployment.storage_market)
        else {
            return Ok(None);
        };
        let Some(signer) = node.chain().registrar_signer().cloned() else {
            tracing::info!(target: "node::home", "no registrar key: the home role is off");
            return Ok(None);
        };
        if !config.enabled {
            return Ok(None);
        }
        let max_price = match &config.max_price {
            None => 0,
            Some(p) => p.trim().parse::<u128>().map_err(|_| {
                Error::Config(format!("home.max_price {p:?} is not a number of wei"))
            })?,
        };
        if config.deal_periods == 0 || config.deal_max_bytes == 0 {
            return Err(Error::Config(
                "home.deal_periods and home.deal_max_bytes must be positive".into(),
            ));
        }
        erasure::check_segment_size(usize::try_from(config.segment_size).unwrap_or(usize::MAX))
            .map_err(|e| Error::Config(format!("home.segment_size: {e}")))?;
        let rpc = node.chain().rpc().clone();
        let market = StorageMarket::new(market, rpc.clone());
        let market_config = market.config().call().await?;
        let path = data_dir.join("home.redb");
        let store = tokio::task::spawn_blocking(move || Store::open(&path))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let home = Arc::new(Self {
            domain: network::domain(node.chain().chain_id(), *market.address()),
            registry: ProviderRegistry::new(registry, rpc),
            market,
            market_config,
            signer,
            config: config.clone(),
            max_price,
            store: Arc::new(store),
            http,
            probes: Mutex::new(HashMap::new()),
            tx_lock: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
            backoff: Mutex::new(HashMap::new()),
            repair_backoff: Mutex::new(HashMap::new()),
            node,
        });
        home.recover().await?;
        tracing::info!(target: "node::home", home = %home.address(), "home role started");
        Ok(Some(home))
    }

    /// This node's address (the orders' signer).
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The role's database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Error::Internal(format!("home db task: {e}")))?
    }

    /// Records the manifests of network files committed to the index but not here (a crash
    /// between the two).
    async fn recover(&self) -> Result<()> {
        let tokens = self.node.read(|db| db.tokens()).await?;
        for (token_id, _) in tokens {
            let mut after = 0;
            loop {
                let (files, more) = self
                    .node
                    .read(move |db| db.files_after(token_id, after, 1000))
                    .await?;
                for f in &files {
                    after = f.id;
                    if f.redundancy.is_none() {
                        continue;
                    }
                    let id = f.id;
                    if self.db(move |s| s.manifest(token_id, id)).await?.is_some() {
                        continue;
                    }
                    let bytes = self
                        .node
                        .ipfs
                        .cat_all(&f.cid, network::MAX_MANIFEST_BYTES)
                        .await?;
                    let manifest = Manifest::parse(&bytes, network::MAX_MANIFEST_BYTES)
                        .map_err(|e| Error::Internal(format!("stored manifest: {e}")))?;
                    let m = StoredManifest {
                        manifest,
                        repaired: 0,
                    };
                    self.db(move |s| s.put_manifest(token_id, id, &m)).await?;
                    tracing::info!(target: "node::recover", token_id, file = id, "network file manifest recorded");
                }
                if !more {
                    break;
                }
            }
        }
        Ok(())
    }

    /// `GET /v1/network`.
    pub fn info(&self) -> NetworkInfo {
        NetworkInfo {
            home: self.address(),
            chain_id: self.node.chain().chain_id(),
            market: *self.market.address(),
            registry: *self.registry.address(),
            redundancy: self.config.redundancy,
            segment_size: self.config.segment_size,
            spares: self.config.spares,
        }
    }

    /// Refuses when the token's home node on chain is not this node.
    pub(crate) async fn check_home(&self, token_id: u64) -> Result<()> {
        let home = self.market.homeNodeOf(U256::from(token_id)).call().await?;
        if home != self.address() {
            return Err(Error::NotHomeNode {
                token_id,
                node: self.address(),
                home,
            });
        }
        Ok(())
    }

    /// Registry listings that pass the placement filter (active, certified if required,
    /// under the price cap), whatever their liveness or room.
    pub(crate) async fn listings(&self) -> Result<Vec<IProviderRegistry::Listing>> {
        let filter = IProviderRegistry::Filter {
            onlyActive: true,
            onlyCertified: self.config.require_certified,
            region: 0,
            maxPrice: self.max_price,
            minFreeCapacity: 0,
        };
        let mut out = Vec::new();
        let mut cursor = U256::ZERO;
        loop {
            let page = self
                .registry
                .listProviders(cursor, U256::from(200), filter.clone())
                .call()
                .await?;
            let done = page.page.is_empty() || page.next == cursor;
            out.extend(page.page);
            cursor = page.next;
            let count = self.registry.providerCount().call().await?;
            if done || cursor >= count {
                return Ok(out);
            }
        }
    }

    /// Whether a provider answered its last `offline_after` probes (unknown ones count as
    /// live).
    pub(crate) fn is_live(&self, provider: &Address) -> bool {
        self.probes
            .lock()
            .expect("lock")
            .get(provider)
            .is_none_or(|f| *f < self.config.offline_after)
    }

    /// Probes a provider's `/health` once and records the outcome; answers whether it
    /// answered.
    pub(crate) async fn probe(&self, provider: Address, url: &str) -> bool {
        let ok = self
            .http
            .get(format!("{}/health", url.trim_end_matches('/')))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        let mut p = self.probes.lock().expect("lock");
        if ok {
            p.remove(&provider);
        } else {
            *p.entry(provider).or_default() += 1;
        }
        ok
    }

    /// The price per period of a deal of `max_bytes` at `price` per GiB-month (as
    /// `StorageMarket` computes it).
    pub(crate) fn price_per_period(&self, price: u128, max_bytes: u64) -> U256 {
        let c = &self.market_config;
        U256::from(price)
            * U256::from(max_bytes)
            * U256::from(c.periodBlocks)
            * U256::from(c.blockTime)
            / (U256::from(1u64 << 30) * U256::from(30u64 * 24 * 3600))
    }

    /// Eligible providers for a token: the listings that pass the filter, are live, and have
    /// room (an active deal of the token with room for `room` more bytes, or free capacity
    /// for a new deal of `deal_max_bytes`), probing those never probed.
    pub(crate) async fn candidates(
        &self,
        token_id: u64,
        room: u64,
        exclude: &HashSet<Address>,
    ) -> Result<Vec<Candidate>> {
        let listings = self.listings().await?;
        let placed = deals::placed_bytes(self, token_id).await?;
        let mut out = Vec::new();
        for l in listings {
            if exclude.contains(&l.provider) || !self.is_live(&l.provider) {
                continue;
            }
            let known = self.probes.lock().expect("lock").contains_key(&l.provider);
            if !known && !self.probe(l.provider, &l.endpoint).await {
                continue;
            }
            let deal = self
                .market
                .dealOf(deals::deal_u256(token_id, l.provider))
                .call()
                .await?;
            let has_deal = deal.status == status::ACTIVE;
            let fits = if deal.misses > 0 {
                // It missed a proof of this token's: place nothing more there.
                false
            } else if has_deal {
                let held = placed.get(&l.provider).copied().unwrap_or(0);
                deal.maxBytes.saturating_sub(held) >= room
            } else if deal.status == status::BREACHED {
                false
            } else {
                l.capacity.saturating_sub(l.reserved) >= self.config.deal_max_bytes.max(room)
            };
            if fits {
                out.push(Candidate {
                    address: l.provider,
                    url: l.endpoint.clone(),
                    price: l.pricePerGiBMonth,
                    has_deal,
                });
            }
        }
        Ok(out)
    }

    /// Signs an upload order.
    pub(crate) fn order(
        &self,
        token_id: u64,
        file: B256,
        segment: u32,
        piece: u16,
        provider: Address,
        max_size: u64,
    ) -> Result<network::SignedOrder> {
        UploadOrder {
            token_id,
            file,
            segment,
            piece,
            provider,
            max_size,
            expiry: unix_now() + self.config.order_ttl_secs,
        }
        .sign(&self.signer, &self.domain)
        .map_err(|e| Error::Internal(format!("signing an order: {e}")))
    }

    /// `POST /v1/tokens/{id}/placements`.
    pub async fn placement(
        &self,
        token_id: u64,
        caller: Address,
        req: &PlacementRequest,
    ) -> Result<Placement> {
        let node = &self.node;
        node.authorize(token_id, caller).await?;
        let state = node.ensure_token(token_id).await?;
        node.check_bound(token_id, &state).await?;
        self.check_home(token_id).await?;
        let r = req.redundancy.unwrap_or(self.config.redundancy);
        let segment_size = req.segment_size.unwrap_or(self.config.segment_size);
        let seg = usize::try_from(segment_size)
            .map_err(|_| Error::BadRequest("segment size too large".into()))?;
        let lengths = erasure::segment_lengths(req.size, seg)
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        if req.size > node.settings.max_upload_bytes {
            return Err(Error::TooLarge {
                size: req.size,
                limit: node.settings.max_upload_bytes,
            });
        }
        // The gate and quota as for an upload of the ciphertext (checked again at commit).
        node.check_admission(token_id, req.size).await?;
        let n = usize::from(r.n());
        let piece_max = lengths
            .iter()
            .map(|&l| r.piece_size(l as usize) as u64)
            .max()
            .unwrap_or(0);
        // A provider gets at most one piece per segment.
        let per_provider = piece_max.saturating_mul(lengths.len() as u64);
        let candidates = self
            .candidates(token_id, per_provider, &HashSet::new())
            .await?;
        if candidates.len() < n {
            return Err(Error::NotEnoughProviders {
                have: candidates.len(),
                need: n,
            });
        }
        // Every deal the primaries need opened commits its term from the escrow.
        let m = candidates.len();
        let used = m.min(n * lengths.len().max(1));
        let needed = candidates[..used]
            .iter()
            .filter(|c| !c.has_deal)
            .map(|c| {
                self.price_per_period(c.price, self.config.deal_max_bytes.max(per_provider))
                    * U256::from(self.config.deal_periods)
            })
            .fold(U256::ZERO, |a, b| a + b);
        let escrow = self.market.escrowOf(U256::from(token_id)).call().await?;
        if escrow < needed {
            return Err(Error::EscrowTooLow {
                token_id,
                escrow,
                needed,
            });
        }
        let mut file = [0u8; 32];
        getrandom::fill(&mut file).map_err(|e| Error::Internal(e.to_string()))?;
        let file = B256::from(file);
        let spares = usize::from(self.config.spares).min(m - n);
        let mut segments = Vec::with_capacity(lengths.len());
        for (s, &len) in lengths.iter().enumerate() {
            let segment =
                u32::try_from(s).map_err(|_| Error::BadRequest("too many segments".into()))?;
            let size = r.piece_size(len as usize) as u64;
            let pick = |j: usize| &candidates[(s * n + j) % m];
            let mut targets = Vec::with_capacity(n * (1 + spares));
            for i in 0..n {
                let c = pick(i);
                targets.push(PlacementTarget {
                    provider: c.address,
                    url: c.url.clone(),
                    order: self.order(token_id, file, segment, i as u16, c.address, size)?,
                });
            }
            for j in 0..spares {
                let c = pick(n + j);
                for i in 0..n {
                    targets.push(PlacementTarget {
                        provider: c.address,
                        url: c.url.clone(),
                        order: self.order(token_id, file, segment, i as u16, c.address, size)?,
                    });
                }
            }
            segments.push(targets);
        }
        tracing::info!(target: "node::home", token_id, %file, segments = segments.len(), redundancy = %r, "placement signed");
        Ok(Placement {
            file,
            redundancy: r,
            segment_size,
            expires_at: unix_now() + self.config.order_ttl_secs,
            segments,
        })
    }

    /// `POST /v1/tokens/{id}/manifests`.
    pub async fn commit(
        &self,
        token_id: u64,
        caller: Address,
        req: api::ManifestCommit,
    ) -> Result<api::UploadResult> {
        self.node.authorize(token_id, caller).await?;
        let m = req.manifest;
        m.validate()
            .map_err(|e| Error::BadRequest(format!("manifest: {e}")))?;
        if m.token_id != token_id {
            return Err(Error::BadRequest(format!(
                "the manifest is for token {}, not {token_id}",
                m.token_id
            )));
        }
        let signers = m
            .verify_signatures(&self.domain)
            .map_err(|e| Error::BadRequest(format!("manifest: {e}")))?;
        if signers != [self.address()] {
            return Err(Error::BadRequest(format!(
                "the manifest's orders are signed by {signers:?}, not by this home node {}",
                self.address()
            )));
        }
        let upload = m.file;
        if let Some((t, f)) = self.db(move |s| s.file_of(&upload)).await? {
            return Err(Error::BadRequest(format!(
                "upload {upload} is committed already (token {t}, file {f})"
            )));
        }
        self.check_home(token_id).await?;
        let result = self
            .node
            .commit_network_file(
                token_id,
                caller,
                req.name,
                m.to_json(),
                m.size,
                m.redundancy,
            )
            .await?;
        let id = result.file.id;
        // A crash here leaves the file in the index but not in home.redb: start-up recovery
        // ([`Home::recover`]) records it from the index.
        crate::node::failpoint("home_after_index");
        let stored = StoredManifest {
            manifest: m,
            repaired: 0,
        };
        self.db(move |s| s.put_manifest(token_id, id, &stored))
            .await?;
        self.wake.notify_one();
        tracing::info!(target: "node::home", token_id, file = id, %upload, "network file committed");
        Ok(result)
    }

    /// `GET /v1/tokens/{id}/files/{fileId}/manifest`.
    pub async fn manifest(&self, token_id: u64, caller: Address, file_id: u64) -> Result<Manifest> {
        self.node.authorize(token_id, caller).await?;
        self.db(move |s| s.manifest(token_id, file_id))
            .await?
            .map(|m| m.manifest)
            .ok_or_else(|| Error::NotFound(format!("network file {file_id} of token {token_id}")))
    }
}

/// The role's background loops (deals, then repair, every `poll_ms`), stopped when dropped.
#[derive(Debug)]
pub struct Running {
    /// The role.
    pub home: Arc<Home>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts the loops.
    pub fn spawn(home: Arc<Home>) -> Self {
        let h = home.clone();
        let task = tokio::spawn(async move {
            let every = Duration::from_millis(h.config.poll_ms.max(50));
            loop {
                if let Err(e) = repair::probe_all(&h).await {
                    tracing::warn!(target: "node::home", error = %e, "liveness probes failed");
                }
                if let Err(e) = repair::run(&h).await {
                    tracing::warn!(target: "node::home", error = %e, "repair pass failed");
                }
                if let Err(e) = deals::run(&h).await {
                    tracing::warn!(target: "node::home", error = %e, "deals pass failed");
                }
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = h.wake.notified() => {}
                }
            }
        });
        Self { home, task }
    }

    /// Stops the loops and waits until they, and any database write they had handed to a
    /// blocking thread, are gone: the home role's database is closed when this returns (a
    /// restart in the same process opens it again).
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
        let store = Arc::downgrade(&self.home.store);
        drop(self);
        crate::released("the home role's database", || store.strong_count() > 0).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}
