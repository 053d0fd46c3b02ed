//! The repair loop: finds segments whose healthy pieces fell below `repair_below` and moves
//! the missing pieces to new providers (see the module docs of [`super`]).
//!
//! A piece is healthy while its provider answered its recent `/health` probes (fewer than
//! `offline_after` failures in a row), is active in the registry, and its deal with the token
//! (if opened) is not breached and has missed no period.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use px_core::contracts::{IProviderRegistry, IStorageMarket};
use px_core::erasure::{Decoder, Encoder};
use px_core::network::{Manifest, PiecePlacement, PieceReceipt};
use px_core::piece;
use serde::Deserialize;

use super::{Home, status};
use crate::error::{Error, Result};

/// Longest piece transfer (fetch or store) of a repair.
const PIECE_TIMEOUT: Duration = Duration::from_secs(120);

/// Listings by provider.
pub(crate) type Listings = HashMap<Address, IProviderRegistry::Listing>;

/// A provider's `POST /v1/pieces` answer (the fields the repair checks).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Accepted {
    cid: String,
    root: alloy::primitives::B256,
    depth: u8,
    size: u64,
    receipt: alloy::primitives::Bytes,
}

impl Home {
    /// Every registered provider's listing.
    pub(crate) async fn listings_by_address(&self) -> Result<Listings> {
        let filter = IProviderRegistry::Filter {
            onlyActive: false,
            onlyCertified: false,
            region: 0,
            maxPrice: 0,
            minFreeCapacity: 0,
        };
        let count = self.registry.providerCount().call().await?;
        let mut out = HashMap::new();
        let mut cursor = U256::ZERO;
        while cursor < count {
            let page = self
                .registry
                .listProviders(cursor, U256::from(200), filter.clone())
                .call()
                .await?;
            for l in page.page {
                out.insert(l.provider, l);
            }
            if page.next <= cursor {
                break;
            }
            cursor = page.next;
        }
        Ok(out)
    }

    /// Whether a piece with `provider` is healthy (see the module docs).
    pub(crate) fn healthy(
        &self,
        provider: &Address,
        deal: Option<&IStorageMarket::Deal>,
        listings: &Listings,
    ) -> bool {
        self.is_live(provider)
            && listings.get(provider).is_some_and(|l| l.active)
            && deal.is_none_or(|d| d.status != status::BREACHED && d.misses == 0)
    }

    /// Fetches a piece and checks it against the manifest (size, CID, root).
    async fn fetch_piece(&self, url: &str, p: &PiecePlacement) -> Result<Vec<u8>> {
        let r = self
            .http
            .get(format!("{}/v1/pieces/{}", url.trim_end_matches('/'), p.cid))
            .timeout(PIECE_TIMEOUT)
            .send()
            .await
            .map_err(|e| Error::Chain(format!("piece {} from {url}: {e}", p.cid)))?;
        if !r.status().is_success() {
            return Err(Error::Chain(format!(
                "piece {} from {url}: {}",
                p.cid,
                r.status()
            )));
        }
        let bytes = r
            .bytes()
            .await
            .map_err(|e| Error::Chain(format!("piece {} from {url}: {e}", p.cid)))?
            .to_vec();
        let expected = p.clone();
        let (bytes, ok) = tokio::task::spawn_blocking(move || {
            let ok = bytes.len() as u64 == expected.size
                && piece::summarize(&bytes)
                    .is_ok_and(|s| s.cid == expected.cid && s.root.root == expected.root);
            (bytes, ok)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
        if !ok {
            return Err(Error::Chain(format!(
                "piece {} from {url} does not match its CID and root",
                p.cid
            )));
        }
        Ok(bytes)
    }

    /// Stores a rebuilt piece with a provider under a new order; checks the receipt.
    async fn store_piece(
        &self,
        m: &Manifest,
        segment: u32,
        index: u16,
        bytes: &[u8],
        to: &super::Candidate,
    ) -> Result<PiecePlacement> {
        let size = bytes.len() as u64;
        let order = self.order(m.token_id, m.file, segment, index, to.address, size)?;
        let r = self
            .http
            .post(format!("{}/v1/pieces", to.url.trim_end_matches('/')))
            .timeout(PIECE_TIMEOUT)
            .header(
                crate::provider::ORDER_HEADER,
                serde_json::to_string(&order)?,
            )
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(bytes.to_vec())
            .send()
            .await
            .map_err(|e| Error::Chain(format!("storing a piece with {}: {e}", to.url)))?;
        let code = r.status();
        if !code.is_success() {
            let text = r.text().await.unwrap_or_default();
            return Err(Error::Chain(format!(
                "provider {} refused the piece ({code}): {text}",
                to.address
            )));
        }
        let a: Accepted = r
            .json()
            .await
            .map_err(|e| Error::Chain(format!("provider {}: {e}", to.address)))?;
        let cid: cid::Cid = a
            .cid
            .parse()
            .map_err(|e| Error::Chain(format!("provider {}: bad CID: {e}", to.address)))?;
        let signature = alloy::primitives::Signature::try_from(a.receipt.as_ref())
            .map_err(|e| Error::Chain(format!("provider {}: bad receipt: {e}", to.address)))?;
        let receipt = PieceReceipt {
            order_hash: order.order.hash(&self.domain),
            cid,
            root: a.root,
            depth: a.depth,
            size: a.size,
        };
        let signer = receipt
            .signer(&signature, &self.domain)
            .map_err(|e| Error::Chain(format!("provider {}: {e}", to.address)))?;
        if signer != to.address || a.size != size {
            return Err(Error::Chain(format!(
                "provider {}: receipt signed by {signer} for {} bytes",
                to.address, a.size
            )));
        }
        Ok(PiecePlacement {
            index,
            provider: to.address,
            cid,
            root: a.root,
            depth: a.depth,
            size: a.size,
            order,
            receipt: signature,
        })
    }

    /// Rebuilds the pieces of segment `s` not in `healthy` and stores them with new
    /// providers; answers the new placements (possibly fewer than missing, if providers ran
    /// out).
    async fn repair_segment(
        &self,
        m: &Manifest,
        s: usize,
        healthy: &[usize],
        listings: &Listings,
        mut candidates: Vec<super::Candidate>,
    ) -> Result<Vec<PiecePlacement>> {
        let seg = &m.segments[s];
        let r = m.redundancy;
        let k = usize::from(r.k());
        // The first k good pieces, fetched at once.
        let mut fetches = FuturesUnordered::new();
        for &i in healthy {
            let p = &seg.pieces[i];
            let Some(l) = listings.get(&p.provider) else {
                continue;
            };
            let url = l.endpoint.clone();
            fetches.push(async move { (p.index, self.fetch_piece(&url, p).await) });
        }
        let mut got: Vec<(usize, Vec<u8>)> = Vec::with_capacity(k);
        while got.len() < k {
            let Some((index, r)) = fetches.next().await else {
                break;
            };
            match r {
                Ok(b) => got.push((usize::from(index), b)),
                Err(e) => {
                    tracing::warn!(target: "node::home", piece = index, error = %e, "repair read failed")
                }
            }
        }
        drop(fetches);
        if got.len() < k {
            return Err(Error::Chain(format!(
                "segment {s}: {} good pieces of {k} needed",
                got.len()
            )));
        }
        let missing: Vec<usize> = (0..seg.pieces.len())
            .filter(|i| !healthy.contains(i))
            .collect();
        let len = usize::try_from(seg.length).map_err(|_| Error::Internal("segment".into()))?;
        let expected: Vec<PiecePlacement> =
            missing.iter().map(|&i| seg.pieces[i].clone()).collect();
        // Decode and re-encode on the blocking pool; each rebuilt piece must be the original.
        let rebuilt = tokio::task::spawn_blocking(move || -> Result<Vec<(u16, Vec<u8>)>> {
            let refs: Vec<(usize, &[u8])> = got.iter().map(|(i, b)| (*i, b.as_slice())).collect();
            let mut segment = Vec::new();
            Decoder::new(r)
                .decode(len, &refs, &mut segment)
                .map_err(|e| Error::Internal(format!("decoding: {e}")))?;
            let pieces = Encoder::new(r)
                .encode(&segment)
                .map_err(|e| Error::Internal(format!("encoding: {e}")))?;
            let mut out = Vec::new();
            for p in expected {
                let bytes = pieces.piece(usize::from(p.index)).to_vec();
                let ok =
                    piece::summarize(&bytes).is_ok_and(|s| s.cid == p.cid && s.root.root == p.root);
                if !ok {
                    return Err(Error::Internal(format!(
                        "rebuilt piece {} does not match its CID {}",
                        p.index, p.cid
                    )));
                }
                out.push((p.index, bytes));
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        let segment = u32::try_from(s).map_err(|_| Error::Internal("segment".into()))?;
        let mut placed = Vec::new();
        for (index, bytes) in rebuilt {
            while !candidates.is_empty() {
                let to = candidates.remove(0);
                match self.store_piece(m, segment, index, &bytes, &to).await {
                    Ok(p) => {
                        placed.push(p);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(target: "node::home", provider = %to.address, error = %e, "repair placement failed")
                    }
                }
            }
        }
        Ok(placed)
    }

    /// One repair pass over a token's files.
    async fn repair_token(&self, token_id: u64, listings: &Listings) -> Result<()> {
        let manifests = self.db(move |s| s.manifests(token_id)).await?;
        let mut views: HashMap<Address, IStorageMarket::Deal> = HashMap::new();
        for (_, m) in &manifests {
            for p in m.manifest.segments.iter().flat_map(|s| &s.pieces) {
                if let std::collections::hash_map::Entry::Vacant(e) = views.entry(p.provider) {
                    let d = self
                        .market
                        .dealOf(super::deals::deal_u256(token_id, p.provider))
                        .call()
                        .await?;
                    e.insert(d);
                }
            }
        }
        for (file_id, mut stored) in manifests {
            let m = &stored.manifest;
            let n = usize::from(m.redundancy.n());
            let k = usize::from(m.redundancy.k());
            let below = usize::from(self.config.repair_below.unwrap_or(m.redundancy.n())).min(n);
            let mut next = m.clone();
            let mut moved = 0u64;
            for (s, seg) in m.segments.iter().enumerate() {
                let healthy: Vec<usize> = seg
                    .pieces
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| {
                        let d = views.get(&p.provider).filter(|d| d.status != status::NONE);
                        self.healthy(&p.provider, d, listings)
                    })
                    .map(|(i, _)| i)
                    .collect();
                if healthy.len() >= below {
                    continue;
                }
                if healthy.len() < k {
                    tracing::error!(target: "node::home", token_id, file = file_id, segment = s, healthy = healthy.len(), k, "segment unrecoverable from the healthy pieces");
                    continue;
                }
                let key = (token_id, file_id, s);
                let waiting = self
                    .repair_backoff
                    .lock()
                    .expect("lock")
                    .get(&key)
                    .is_some_and(|(until, _)| Instant::now() < *until);
                if waiting {
                    continue;
                }
                // New providers: none already holding a piece of this segment.
                let exclude: HashSet<Address> = seg.pieces.iter().map(|p| p.provider).collect();
                let size = seg.pieces.first().map_or(0, |p| p.size);
                let candidates = self.candidates(token_id, size, &exclude).await?;
                if candidates.is_empty() {
                    tracing::debug!(target: "node::home", token_id, file = file_id, segment = s, "no provider to repair to");
                    continue;
                }
                let started = Instant::now();
                let r = self
                    .repair_segment(m, s, &healthy, listings, candidates)
                    .await;
                let complete = r
                    .as_ref()
                    .is_ok_and(|placed| healthy.len() + placed.len() >= below);
                {
                    let mut b = self.repair_backoff.lock().expect("lock");
                    if complete {
                        b.remove(&key);
                    } else {
                        let e = b.entry(key).or_insert((Instant::now(), Duration::ZERO));
                        e.1 = (e.1 * 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
                        e.0 = Instant::now() + e.1;
                    }
                }
                match r {
                    Ok(placed) if placed.is_empty() => {}
                    Ok(placed) => {
                        for p in placed {
                            let i = usize::from(p.index);
                            tracing::info!(target: "node::home", token_id, file = file_id, segment = s, piece = i, from = %next.segments[s].pieces[i].provider, to = %p.provider, "piece repaired");
                            next.segments[s].pieces[i] = p;
                            moved += 1;
                        }
                        tracing::info!(target: "node::home", token_id, file = file_id, segment = s, ms = started.elapsed().as_millis() as u64, "segment repaired");
                    }
                    Err(e) => {
                        tracing::warn!(target: "node::home", token_id, file = file_id, segment = s, error = %e, "segment repair failed; will retry")
                    }
                }
            }
            if moved == 0 {
                continue;
            }
            next.validate()
                .map_err(|e| Error::Internal(format!("repaired manifest: {e}")))?;
            self.node
                .replace_network_file(token_id, file_id, next.to_json())
                .await?;
            stored.manifest = next;
            stored.repaired += moved;
            self.db(move |s| s.put_manifest(token_id, file_id, &stored))
                .await?;
            self.wake.notify_one();
        }
        Ok(())
    }
}

/// Probes every provider holding pieces of any token (and those never probed).
pub async fn probe_all(home: &Home) -> Result<()> {
    let tokens = home.db(|s| s.tokens()).await?;
    if tokens.is_empty() {
        return Ok(());
    }
    let listings = home.listings_by_address().await?;
    let mut providers: HashSet<Address> = HashSet::new();
    for t in tokens {
        for (_, m) in home.db(move |s| s.manifests(t)).await? {
            providers.extend(
                m.manifest
                    .segments
                    .iter()
                    .flat_map(|s| s.pieces.iter().map(|p| p.provider)),
            );
        }
    }
    let probes: FuturesUnordered<_> = providers
        .into_iter()
        .filter_map(|p| listings.get(&p).map(|l| (p, l.endpoint.clone())))
        .map(|(p, url)| async move { home.probe(p, &url).await })
        .collect();
    probes.collect::<Vec<_>>().await;
    Ok(())
}

/// One repair pass over every token with network files.
pub async fn run(home: &Home) -> Result<()> {
    let tokens = home.db(|s| s.tokens()).await?;
    if tokens.is_empty() {
        return Ok(());
    }
    let listings = home.listings_by_address().await?;
    for token_id in tokens {
        if let Err(e) = home.repair_token(token_id, &listings).await {
            tracing::warn!(target: "node::home", token_id, error = %e, "repair pass failed for a token");
        }
    }
    Ok(())
}
