//! The deals loop: keeps each (token, provider) deal's root equal to the pieces the token's
//! manifests place with that provider, and marks its tokens' missed periods.
//!
//! For each token with network files and each provider that holds (or held) its pieces:
//! - the wanted list: the provider's pieces in the token's current manifests, in (file id,
//!   segment, piece) order, each once; manifests of deleted files are dropped first;
//! - no deal, or a completed one, and pieces wanted: the provider co-signs an acceptance
//!   (`POST /v1/deals/acceptance`, with this node's signature of the same digest) for
//!   `deal_periods` periods reserving `max(deal_max_bytes, size)` bytes at its listing price,
//!   and the node sends `openDeal`;
//! - an active deal whose root holds another list: once the deal is in a later period than
//!   its last root update (the market allows one per period), the provider co-signs the root
//!   update (`POST /v1/deals/root-update`) and the node sends `updateDealRoot` with both
//!   signatures; pieces no longer wanted are ended (`sizeEnded`). A deal cannot be emptied:
//!   when nothing is wanted it keeps its last root until its term ends;
//! - a breached deal is left alone: the repair loop moves its pieces;
//! - an active deal whose proof window for its next period has closed is marked missed
//!   (`markMissed`, the bounty is this node's).
//!
//! The list under every root is recorded ([`super::store`]) before the transaction that
//! commits it, so after a crash the node knows what the chain's root holds whichever way the
//! transaction went.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider as _;
use alloy::signers::SignerSync;
use px_core::api::{DealInfo, FileHealth, TokenNetwork};
use px_core::contracts::IStorageMarket;
use px_core::piece;
use serde::Deserialize;

use super::store::DealPiece;
use super::{Home, status};
use crate::error::{Error, Result};
use crate::node::unix_now;

/// How long a deal acceptance the node asks for stays valid.
const ACCEPTANCE_TTL: u64 = 600;
/// Longest wait for a transaction's receipt.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest co-signature request.
const COSIGN_TIMEOUT: Duration = Duration::from_secs(20);
/// First wait before a deal that failed is tried again (doubling up to [`RETRY_MAX`]).
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait before a failed deal is tried again.
const RETRY_MAX: Duration = Duration::from_secs(60);

/// `StorageMarket.dealIdOf(tokenId, provider)` as a number.
pub(crate) fn deal_u256(token_id: u64, provider: Address) -> U256 {
    U256::from_be_bytes(crate::provider::deal_id_of(token_id, provider).0)
}

/// A provider's co-signature answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CoSignature {
    digest: B256,
    signature: Bytes,
}

/// Bytes of the token's pieces each provider holds in the current manifests.
pub(crate) async fn placed_bytes(home: &Home, token_id: u64) -> Result<HashMap<Address, u64>> {
    let mut out: HashMap<Address, u64> = HashMap::new();
    for (_, m) in home.db(move |s| s.manifests(token_id)).await? {
        for p in m.manifest.segments.iter().flat_map(|s| &s.pieces) {
            *out.entry(p.provider).or_default() += p.size;
        }
    }
    Ok(out)
}

/// The pieces each provider should hold for a token, in deal order; drops the manifests of
/// files deleted from the index.
async fn wanted(home: &Home, token_id: u64) -> Result<BTreeMap<Address, Vec<DealPiece>>> {
    let mut out: BTreeMap<Address, Vec<DealPiece>> = BTreeMap::new();
    for (file_id, m) in home.db(move |s| s.manifests(token_id)).await? {
        let exists = home
            .node
            .read(move |db| db.file(token_id, file_id))
            .await?
            .is_some();
        if !exists {
            home.db(move |s| s.remove_manifest(token_id, file_id))
                .await?;
            tracing::info!(target: "node::home", token_id, file = file_id, "deleted network file: its pieces leave the deals");
            continue;
        }
        for p in m.manifest.segments.iter().flat_map(|s| &s.pieces) {
            let list = out.entry(p.provider).or_default();
            let cid = p.cid.to_string();
            if !list.iter().any(|x| x.cid == cid) {
                list.push(DealPiece {
                    cid,
                    root: p.root,
                    depth: p.depth,
                    size: p.size,
                });
            }
        }
    }
    Ok(out)
}

fn deal_root_of(pieces: &[DealPiece]) -> Result<B256> {
    let leaves: Vec<(B256, u8)> = pieces.iter().map(|p| (p.root, p.depth)).collect();
    piece::deal_root(&leaves).map_err(|e| Error::Internal(format!("deal root: {e}")))
}

impl Home {
    fn sign_digest(&self, digest: &B256) -> Result<Bytes> {
        let sig = self
            .signer
            .sign_hash_sync(digest)
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(sig.as_bytes().to_vec().into())
    }

    /// Asks a provider to co-sign; checks it signed `digest`.
    async fn cosign(
        &self,
        url: &str,
        route: &str,
        body: serde_json::Value,
        digest: B256,
    ) -> Result<Bytes> {
        let r = self
            .http
            .post(format!("{}{route}", url.trim_end_matches('/')))
            .timeout(COSIGN_TIMEOUT)
            .json(&body)
            .send()
            .await
            .map_err(|e| Error::Chain(format!("provider {url}: {e}")))?;
        let code = r.status();
        if !code.is_success() {
            let text = r.text().await.unwrap_or_default();
            return Err(Error::Chain(format!(
                "provider {url} refused to co-sign ({code}): {text}"
            )));
        }
        let c: CoSignature = r
            .json()
            .await
            .map_err(|e| Error::Chain(format!("provider {url}: {e}")))?;
        if c.digest != digest {
            return Err(Error::Chain(format!(
                "provider {url} signed digest {}, expected {digest}",
                c.digest
            )));
        }
        Ok(c.signature)
    }

    /// Sends a transaction of this role and waits for its receipt.
    async fn send<P, D>(&self, what: &str, call: alloy::contract::CallBuilder<P, D>) -> Result<()>
    where
        P: alloy::providers::Provider,
        D: alloy::contract::CallDecoder,
    {
        let _one = self.tx_lock.lock().await;
        let pending = call.send().await?;
        let receipt = tokio::time::timeout(RECEIPT_TIMEOUT, pending.get_receipt())
            .await
            .map_err(|_| Error::Chain(format!("{what}: no receipt in time")))?
            .map_err(|e| Error::Chain(format!("{what}: {e}")))?;
        if !receipt.status() {
            return Err(Error::Chain(format!("{what} reverted")));
        }
        tracing::info!(target: "node::home", tx = %receipt.transaction_hash, gas = receipt.gas_used, "{what}");
        Ok(())
    }

    async fn open_deal(&self, token_id: u64, provider: Address, want: &[DealPiece]) -> Result<()> {
        let listing = self.registry.providerOf(provider).call().await?;
        if !listing.active {
            return Ok(());
        }
        let root = deal_root_of(want)?;
        let size: u64 = want.iter().map(|p| p.size).sum();
        let count = u16::try_from(want.len())
            .map_err(|_| Error::Internal("over 65,535 pieces in one deal".into()))?;
        let deadline = unix_now() + ACCEPTANCE_TTL;
        let a = IStorageMarket::Acceptance {
            tokenId: U256::from(token_id),
            provider,
            root,
            pieceCount: count,
            size,
            maxBytes: self.config.deal_max_bytes.max(size),
            periods: self.config.deal_periods,
            pricePerGiBMonth: listing.pricePerGiBMonth,
            deadline: U256::from(deadline),
        };
        let digest = self.market.acceptanceDigest(a.clone()).call().await?;
        let deal = crate::provider::deal_id_of(token_id, provider);
        let list = want.to_vec();
        self.db(move |s| s.put_root(token_id, &provider, &deal, &root, &list))
            .await?;
        let body = serde_json::json!({
            "tokenId": token_id,
            "provider": provider,
            "root": root,
            "pieceCount": count,
            "size": size,
            "maxBytes": a.maxBytes,
            "periods": a.periods,
            "pricePerGibMonth": listing.pricePerGiBMonth.to_string(),
            "deadline": deadline,
            "pieces": want.iter().map(|p| p.cid.clone()).collect::<Vec<_>>(),
            "homeSignature": self.sign_digest(&digest)?,
        });
        let sig = self
            .cosign(&listing.endpoint, "/v1/deals/acceptance", body, digest)
            .await?;
        self.send(
            &format!("openDeal token {token_id} provider {provider} ({count} pieces)"),
            self.market.openDeal(a, sig),
        )
        .await
    }

    async fn update_root(
        &self,
        d: &IStorageMarket::Deal,
        deal: B256,
        current: &[DealPiece],
        want: &[DealPiece],
    ) -> Result<()> {
        let root = deal_root_of(want)?;
        let size: u64 = want.iter().map(|p| p.size).sum();
        if size > d.maxBytes {
            tracing::warn!(target: "node::home", %deal, size, max = d.maxBytes, "pieces over the deal's reserved bytes: not updated");
            return Ok(());
        }
        let ended: u64 = current
            .iter()
            .filter(|c| !want.iter().any(|w| w.cid == c.cid))
            .map(|c| c.size)
            .sum();
        let count = u16::try_from(want.len())
            .map_err(|_| Error::Internal("over 65,535 pieces in one deal".into()))?;
        let u = IStorageMarket::RootUpdate {
            dealId: U256::from_be_bytes(deal.0),
            root,
            pieceCount: count,
            size,
            sizeEnded: ended,
        };
        let digest = self.market.rootUpdateDigest(u.clone()).call().await?;
        let home_sig = self.sign_digest(&digest)?;
        let list = want.to_vec();
        let (token_id, provider) = (d.tokenId.to::<u64>(), d.provider);
        self.db(move |s| s.put_root(token_id, &provider, &deal, &root, &list))
            .await?;
        let listing = self.registry.providerOf(d.provider).call().await?;
        let body = serde_json::json!({
            "dealId": deal,
            "root": root,
            "pieceCount": count,
            "size": size,
            "sizeEnded": ended,
            "pieces": want.iter().map(|p| p.cid.clone()).collect::<Vec<_>>(),
            "homeSignature": home_sig,
        });
        let sig = self
            .cosign(&listing.endpoint, "/v1/deals/root-update", body, digest)
            .await?;
        self.send(
            &format!("updateDealRoot {deal} ({count} pieces, {ended} bytes ended)"),
            self.market.updateDealRoot(u, home_sig, sig),
        )
        .await
    }

    /// One pass over a token's deals.
    async fn reconcile(&self, token_id: u64, block: u64) -> Result<()> {
        let mut wanted = wanted(self, token_id).await?;
        for p in self.db(move |s| s.deal_providers(token_id)).await? {
            wanted.entry(p).or_default();
        }
        let c = &self.market_config;
        let (period_blocks, window) = (u64::from(c.periodBlocks), u64::from(c.proofWindow));
        for (provider, want) in &wanted {
            let deal = crate::provider::deal_id_of(token_id, *provider);
            let waiting = self
                .backoff
                .lock()
                .expect("lock")
                .get(&deal)
                .is_some_and(|(until, _)| Instant::now() < *until);
            if waiting {
                continue;
            }
            let d = self
                .market
                .dealOf(U256::from_be_bytes(deal.0))
                .call()
                .await?;
            let r = match d.status {
                status::NONE | status::COMPLETED if !want.is_empty() => {
                    self.open_deal(token_id, *provider, want).await
                }
                status::ACTIVE => {
                    let start = d.startBlock.to::<u64>();
                    let deadline = start + (u64::from(d.nextPeriod) + 1) * period_blocks + window;
                    if block > deadline {
                        self.send(
                            &format!("markMissed {deal} period {}", d.nextPeriod),
                            self.market.markMissed(U256::from_be_bytes(deal.0)),
                        )
                        .await
                    } else {
                        let root = d.root;
                        match self.db(move |s| s.root(&deal, &root)).await? {
                            None => {
                                tracing::warn!(target: "node::home", %deal, %root, "deal root not proposed by this node: left alone");
                                Ok(())
                            }
                            Some(current) if current == *want || want.is_empty() => Ok(()),
                            Some(current) => {
                                let since = d.rootSince.to::<u64>();
                                let period = (block - start) / period_blocks;
                                if period > (since - start) / period_blocks {
                                    self.update_root(&d, deal, &current, want).await
                                } else {
                                    Ok(())
                                }
                            }
                        }
                    }
                }
                _ => Ok(()),
            };
            match r {
                Ok(()) => {
                    self.backoff.lock().expect("lock").remove(&deal);
                }
                Err(e) => {
                    let wait = {
                        let mut b = self.backoff.lock().expect("lock");
                        let entry = b.entry(deal).or_insert((Instant::now(), Duration::ZERO));
                        entry.1 = (entry.1 * 2).clamp(RETRY_FIRST, RETRY_MAX);
                        entry.0 = Instant::now() + entry.1;
                        entry.1
                    };
                    tracing::warn!(target: "node::home", token_id, %provider, error = %e, retry_in_s = wait.as_secs(), "deal not brought up to date; will retry");
                }
            }
        }
        Ok(())
    }

    /// `GET /v1/tokens/{id}/network`.
    pub async fn token_network(&self, token_id: u64, caller: Address) -> Result<TokenNetwork> {
        self.node.authorize(token_id, caller).await?;
        let escrow = self.market.escrowOf(U256::from(token_id)).call().await?;
        let home = self.market.homeNodeOf(U256::from(token_id)).call().await? == self.address();
        let mut wanted = wanted(self, token_id).await?;
        for p in self.db(move |s| s.deal_providers(token_id)).await? {
            wanted.entry(p).or_default();
        }
        let mut deals = Vec::new();
        let mut views = HashMap::new();
        for (provider, want) in &wanted {
            let deal = crate::provider::deal_id_of(token_id, *provider);
            let d = self
                .market
                .dealOf(U256::from_be_bytes(deal.0))
                .call()
                .await?;
            let root = d.root;
            let current = self
                .db(move |s| s.root(&deal, &root))
                .await?
                .unwrap_or_default();
            let pending = want.iter().filter(|w| !current.contains(w)).count();
            deals.push(DealInfo {
                deal_id: deal,
                provider: *provider,
                status: match d.status {
                    status::ACTIVE => "active",
                    status::COMPLETED => "completed",
                    status::BREACHED => "breached",
                    _ => "pending",
                }
                .into(),
                misses: d.misses,
                next_period: d.nextPeriod,
                periods: d.periods,
                piece_count: d.pieceCount,
                size: d.size,
                pending_pieces: u32::try_from(pending).unwrap_or(u32::MAX),
                remaining: d.remaining.to_string(),
            });
            views.insert(*provider, d);
        }
        let mut files = Vec::new();
        let listings = self.listings_by_address().await?;
        for (id, m) in self.db(move |s| s.manifests(token_id)).await? {
            let healthy = m
                .manifest
                .segments
                .iter()
                .map(|s| {
                    s.pieces
                        .iter()
                        .filter(|p| self.healthy(&p.provider, views.get(&p.provider), &listings))
                        .count() as u16
                })
                .collect();
            files.push(FileHealth {
                id,
                redundancy: m.manifest.redundancy,
                healthy,
                repaired: m.repaired,
            });
        }
        Ok(TokenNetwork {
            escrow: escrow.to_string(),
            home,
            deals,
            files,
        })
    }
}

/// One pass over every token with network files.
pub async fn run(home: &Home) -> Result<()> {
    let tokens = home.db(|s| s.tokens()).await?;
    if tokens.is_empty() {
        return Ok(());
    }
    let block = home.node.chain().rpc().get_block_number().await?;
    for token_id in tokens {
        if let Err(e) = home.reconcile(token_id, block).await {
            tracing::warn!(target: "node::home", token_id, error = %e, "deals pass failed for a token");
        }
    }
    Ok(())
}
