//! Releases pieces no deal needs: unpinned from the backend and forgotten (piece row with its
//! cached tree levels), counted in `px_node_provider_pieces_released_total`. This is what
//! frees the pieces of an upload that never got a manifest (a home node that crashed
//! mid-placement, a client that gave up) and the pieces a root update ended.
//!
//! # What keeps a piece
//! A piece is kept while it is younger than `orphan_grace_secs` (counted from its
//! acceptance), or while it is listed under a *live* co-signed deal root. With `d` the deal on
//! chain (`dealOf`), a co-signed root `r` is live when:
//! 1. `d` is active and `r` is its current root: every later period challenges it;
//! 2. `d` is active, `r` is its previous root and a period that challenges it is unsettled:
//!    `proveStorage` takes the root in force before the period's challenge block
//!    (`startBlock + (p + 1) * periodBlocks`), so the root a update replaced at block
//!    `rootSince` answers the periods `p < (rootSince - startBlock) / periodBlocks`; it is
//!    kept until `nextPeriod` reaches that bound (each of them proven or marked missed);
//! 3. what was signed can still reach the chain: an acceptance while the deal's generation
//!    is the one signed (not opened since) and its deadline has not passed; a root update
//!    while the deal is active and its nonce is the one signed (not superseded).
//!
//! Anything else is dead: a deal that ended (completed or breached), an acceptance past its
//! deadline or opened with another root, a root replaced whose periods are all settled.
//! Dead rows are deleted, except an ended deal's last root, which the prover still reads to
//! settle the deal's last proof. A chain read that fails skips the pass (nothing is released
//! on a guess), and a CID the node's own state references (a node playing both roles) keeps
//! its pin.
//!
//! # Races
//! Releasing holds the role's release lock from the moment it re-reads the rows to the unpin:
//! co-signing checks the pieces and writes its row under the same lock, and an upload
//! journals its CID (`pending`) under it, so neither can see a piece the pass is unpinning,
//! nor can the pass unpin content an upload is pinning again. A released piece is journaled in
//! `pending` in the transaction that drops its row, so a crash before the unpin leaves it to
//! start-up recovery.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{B256, U256};
use px_core::contracts::IStorageMarket;

use super::store::{DealRootRow, Signed};
use super::{DEAL_ACTIVE, Provider};
use crate::error::{Error, Result};
use crate::node::unix_now;

/// Runs the sweep every `interval` until the task is aborted.
pub(crate) async fn run(p: Arc<Provider>) {
    let mut tick = tokio::time::interval(p.sweep_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = p.release_orphans().await {
            tracing::warn!(target: "node::provider", error = %e, "piece sweep failed; retrying");
        }
    }
}

/// Whether the co-signed root `root` (row `row`) of deal `d` is live (see the module docs).
fn live(
    root: &B256,
    row: &DealRootRow,
    d: &IStorageMarket::Deal,
    now: u64,
    period_blocks: u64,
) -> bool {
    let active = d.status == DEAL_ACTIVE;
    if active && *root == d.root {
        return true;
    }
    if active && *root == d.prevRoot {
        let (start, since): (u64, u64) = (d.startBlock.to(), d.rootSince.to());
        let bound = since.saturating_sub(start) / period_blocks.max(1);
        if u64::from(d.nextPeriod) < bound {
            return true;
        }
    }
    match row.signed {
        None => true,
        Some(Signed::Acceptance {
            generation,
            deadline,
        }) => d.generation == generation && now <= deadline,
        Some(Signed::RootUpdate { nonce }) => active && d.nonce == nonce,
    }
}

impl Provider {
    /// How often the sweep runs: a quarter of the grace, between 1 s and 5 min.
    fn sweep_interval(&self) -> Duration {
        Duration::from_secs((self.config.orphan_grace_secs / 4).clamp(1, 300))
    }

    /// One pass: releases every piece past its grace that no live deal root lists and
    /// deletes dead rows. Answers how many pieces it released.
    pub async fn release_orphans(&self) -> Result<usize> {
        let now = unix_now();
        let grace = self.config.orphan_grace_secs;
        let (ages, rows) = self.db(|s| Ok((s.piece_ages()?, s.deal_roots()?))).await?;
        // The deals on chain, each read once; a failed read ends the pass.
        let mut deals: HashMap<B256, IStorageMarket::Deal> = HashMap::new();
        for (deal, _, _) in &rows {
            if !deals.contains_key(deal) {
                let d = self
                    .market
                    .dealOf(U256::from_be_bytes(deal.0))
                    .call()
                    .await
                    .map_err(Error::from)?;
                deals.insert(*deal, d);
            }
        }
        let period_blocks = self.prover.period_blocks;
        let mut judged: HashSet<(B256, B256)> = HashSet::new();
        let mut keep: HashSet<String> = HashSet::new();
        for (deal, root, row) in &rows {
            let d = &deals[deal];
            judged.insert((*deal, *root));
            if live(root, row, d, now, period_blocks) {
                keep.extend(row.pieces.iter().cloned());
            } else if !(d.status != DEAL_ACTIVE && *root == d.root) {
                let (deal, root) = (*deal, *root);
                self.db(move |s| s.remove_deal_root(&deal, &root)).await?;
                tracing::info!(target: "node::provider", %deal, %root, "dead deal root forgotten");
            }
        }
        let candidates: Vec<String> = ages
            .into_iter()
            .filter(|(cid, stored_at)| {
                stored_at.saturating_add(grace) <= now && !keep.contains(cid)
            })
            .map(|(cid, _)| cid)
            .collect();
        if candidates.is_empty() {
            return Ok(0);
        }
        let node = self.node.clone();
        let node_refs = tokio::task::spawn_blocking(move || node.db.referenced_cids())
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;

        let _lock = self.release.lock().await;
        // Rows written since the read above (a co-signature meanwhile) keep their pieces, and
        // so does an upload of the same content in flight (journaled in `pending`).
        let (rows, pending, ages) = self
            .db(|s| Ok((s.deal_roots()?, s.pending()?, s.piece_ages()?)))
            .await?;
        for (deal, root, row) in rows {
            if !judged.contains(&(deal, root)) {
                keep.extend(row.pieces);
            }
        }
        let pending: HashSet<String> = pending.into_iter().collect();
        let stored: HashMap<String, u64> = ages.into_iter().collect();
        let release: Vec<String> = candidates
            .into_iter()
            .filter(|c| {
                !keep.contains(c)
                    && !pending.contains(c)
                    && stored
                        .get(c)
                        .is_some_and(|at| at.saturating_add(grace) <= now)
            })
            .collect();
        if release.is_empty() {
            return Ok(0);
        }
        let list = release.clone();
        self.db(move |s| s.release_pieces(&list, now)).await?;
        for cid in &release {
            if !node_refs.contains(cid)
                && let Err(e) = self.ipfs.unpin(cid).await
            {
                // Its `pending` row stays: start-up recovery unpins it.
                tracing::warn!(target: "node::provider", %cid, error = %e, "unpinning a released piece failed; recovery will retry");
                continue;
            }
            let c = cid.clone();
            self.db(move |s| s.remove_pending(&c)).await?;
            self.node.metrics.piece_released();
            tracing::info!(target: "node::provider", %cid, "piece no deal lists released");
        }
        Ok(release.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::aliases::U40;

    const P: u64 = 100;

    fn deal(status: u8, start: u64, since: u64, next: u16) -> IStorageMarket::Deal {
        IStorageMarket::Deal {
            status,
            generation: 1,
            nonce: 3,
            root: B256::repeat_byte(2),
            prevRoot: B256::repeat_byte(1),
            startBlock: U40::from(start),
            rootSince: U40::from(since),
            nextPeriod: next,
            tokenId: U256::from(1),
            provider: alloy::primitives::Address::ZERO,
            misses: 0,
            periods: 5,
            pieceCount: 1,
            prevPieceCount: 1,
            size: 1,
            maxBytes: 1,
            pricePerPeriod: 1,
            remaining: U256::ZERO,
        }
    }

    fn row(signed: Signed) -> DealRootRow {
        DealRootRow {
            pieces: vec!["bafk".into()],
            signed: Some(signed),
        }
    }

    #[test]
    fn a_replaced_root_lives_until_the_periods_it_answers_are_settled() {
        let (prev, current) = (B256::repeat_byte(1), B256::repeat_byte(2));
        let old = row(Signed::Acceptance {
            generation: 0,
            deadline: 0,
        });
        // Updated at block 1250 of a deal started at 1000: periods 0 and 1 (challenged at
        // 1100 and 1200) take the previous root.
        assert!(live(&prev, &old, &deal(DEAL_ACTIVE, 1000, 1250, 1), 9, P));
        assert!(!live(&prev, &old, &deal(DEAL_ACTIVE, 1000, 1250, 2), 9, P));
        // Updated exactly at period 0's challenge block: period 0 takes the previous root.
        assert!(live(&prev, &old, &deal(DEAL_ACTIVE, 1000, 1100, 0), 9, P));
        assert!(!live(&prev, &old, &deal(DEAL_ACTIVE, 1000, 1100, 1), 9, P));
        // The current root lives while the deal is active, and no root after it ends.
        assert!(live(
            &current,
            &old,
            &deal(DEAL_ACTIVE, 1000, 1250, 2),
            9,
            P
        ));
        assert!(!live(&current, &old, &deal(3, 1000, 1250, 5), 9, P));
        assert!(!live(&prev, &old, &deal(3, 1000, 1250, 0), 9, P));
    }

    #[test]
    fn a_signature_not_yet_on_chain_lives_while_the_market_could_take_it() {
        let other = B256::repeat_byte(9);
        let d = deal(DEAL_ACTIVE, 1000, 1000, 0);
        let acceptance = |generation, deadline| {
            row(Signed::Acceptance {
                generation,
                deadline,
            })
        };
        // The deal's generation is 1: an acceptance of generation 1 can open it (once this
        // one ends), one of generation 0 never can.
        assert!(live(&other, &acceptance(1, 50), &d, 50, P));
        assert!(
            !live(&other, &acceptance(1, 50), &d, 51, P),
            "past its deadline"
        );
        assert!(!live(&other, &acceptance(0, 50), &d, 10, P), "opened since");
        let update = |nonce| row(Signed::RootUpdate { nonce });
        assert!(live(&other, &update(3), &d, 10, P));
        assert!(!live(&other, &update(2), &d, 10, P), "superseded");
        assert!(!live(&other, &update(3), &deal(2, 1000, 1000, 0), 10, P));
        let legacy = DealRootRow {
            pieces: vec![],
            signed: None,
        };
        assert!(
            live(&other, &legacy, &deal(2, 1000, 1000, 0), 10, P),
            "kept"
        );
    }
}
