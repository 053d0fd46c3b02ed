//! The prover loop: answers each period's challenges of the provider's deals.
//!
//! Every poll, for each deal the provider co-signed (its `deal_roots` rows), it reads the
//! deal (`dealOf`). Period `p = nextPeriod` is challenged at block
//! `startBlock + (p + 1) * periodBlocks` and due within `proofWindow` blocks after it. Once the
//! challenge block is past, the prover takes the root in force before it (the current one,
//! or the previous one if the root changed at or after that block, as `proveStorage` does),
//! the seed (`challengeSeed`), and for each of the `challengeCount` challenges the piece and
//! leaf ([`px_core::piece::challenge`]); it rereads the leaf's 256 KiB block from the IPFS
//! backend (`cat` with offset and length) and builds the piece path from the cached levels
//! ([`px_core::piece::TopLevels::prove`], which also checks the block against them), and the
//! deal path ([`px_core::piece::deal_path`]).
//!
//! **Once per period.** The signed transaction (fixed nonce, so a fixed hash) is stored as
//! [`ProofState::Sent`] before it is broadcast. Later polls, and a restart, find that row and
//! never build another proof for the period: while the window is open they rebroadcast the
//! same bytes if the chain does not know them; when the deal has moved past the period the
//! row becomes `Proven` (with the gas used) or `Settled`.
//!
//! **Stuck proofs.** A sent proof not mined after `resend_after_polls` polls (fees below the
//! base fee after a spike, a transaction dropped by the pool) is signed again with the same
//! nonce, call and gas limit and fees raised by at least 12.5% (the EIP-1559 replacement
//! rule), or to the current estimate if higher; it is stored (`Sent`, its earlier hashes in
//! `replaced`) before it is broadcast. One nonce means at most one of them is ever mined, so
//! the period is still proven once; settling looks for the receipt of any of them.
//!
//! **Generations.** A deal id is reused when an ended deal (completed or breached) is opened
//! again: `dealOf` then has a higher `generation` and periods start over at 0. Proof rows are
//! kept per (deal, generation, period), so the previous generation's row for a period never
//! stands in for the new one's. Rows written before the generation was part of the key
//! (deal, period) are still read: a `Sent` or `Proven` row is this generation's if its
//! transaction was mined after the generation's `startBlock` (no proof of it can be mined
//! sooner), or, for a `Sent` row not mined, if its nonce is not used yet; a `Settled` row
//! is only written once the deal moved past its period, so it is this generation's only
//! below `nextPeriod`. Any other old row is an earlier generation's and is ignored. A
//! previous generation's proof still `Sent` (its last period's, when the deal was opened
//! again before a poll settled it) is settled by the next poll.
//!
//! **Alerts.** A proof that cannot be built (a piece missing or damaged in the store, a root
//! the provider never signed) is logged at error level and counted once per period in
//! `px_node_provider_proofs_total{outcome="unbuildable"}`; a window that closes without a
//! proof in `{outcome="missed"}`. Both mean the provider is about to be slashed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::{Decodable2718, Encodable2718};
use alloy::network::TxSignerSync;
use alloy::primitives::{B256, Bytes, TxKind, U256};
use alloy::providers::Provider as _;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use px_core::contracts::{IStorageMarket, StorageMarket};
use px_core::piece;

use super::store::ProofState;
use super::{DEAL_ACTIVE, Provider};
use crate::error::{Error, Result};
use crate::metrics::ProofOutcome;
use crate::node::failpoint;

/// The market's fixed parameters and what the loop remembers between polls.
#[derive(Debug)]
pub(crate) struct ProverState {
    pub(super) period_blocks: u64,
    proof_window: u64,
    challenge_count: u64,
    /// (deal, generation, period) already alerted about (unbuildable or missed), so each
    /// counts once.
    alerted: Mutex<HashSet<(Period, ProofOutcome)>>,
    /// Polls each sent proof has stayed unmined since it was (re)sent.
    unmined: Mutex<HashMap<Period, u32>>,
}

impl ProverState {
    pub(crate) fn new(c: &IStorageMarket::Config) -> Self {
        Self {
            period_blocks: u64::from(c.periodBlocks),
            proof_window: u64::from(c.proofWindow),
            challenge_count: u64::from(c.challengeCount),
            alerted: Mutex::new(HashSet::new()),
            unmined: Mutex::new(HashMap::new()),
        }
    }
}

/// One period of one generation of a deal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Period {
    deal: B256,
    generation: u16,
    period: u64,
}

/// Runs the loop until the task is aborted.
pub(crate) async fn run(p: Arc<Provider>) {
    let mut tick = tokio::time::interval(p.poll_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = p.prove_due().await {
            tracing::warn!(target: "node::prover", error = %e, "prover poll failed; retrying");
        }
    }
}

fn deal_u256(deal: &B256) -> U256 {
    U256::from_be_bytes(deal.0)
}

impl Provider {
    /// One poll: every co-signed deal whose challenge is due gets its proof (or its sent
    /// proof confirmed or rebroadcast).
    pub async fn prove_due(&self) -> Result<()> {
        let deals = self.db(|s| s.deals()).await?;
        if deals.is_empty() {
            return Ok(());
        }
        let block = self.chain.get_block_number().await?;
        for deal in deals {
            if let Err(e) = self.prove_deal(deal, block).await {
                tracing::warn!(target: "node::prover", %deal, error = %e, "deal poll failed");
            }
        }
        Ok(())
    }

    fn alert(&self, at: Period, outcome: ProofOutcome) -> bool {
        let first = self
            .prover
            .alerted
            .lock()
            .expect("lock")
            .insert((at, outcome));
        if first {
            self.node.metrics.proof(outcome);
        }
        first
    }

    async fn prove_deal(&self, deal: B256, block: u64) -> Result<()> {
        let d = self.market.dealOf(deal_u256(&deal)).call().await?;
        if d.provider != self.address() {
            return Ok(());
        }
        let period = u64::from(d.nextPeriod);
        let generation = d.generation;
        let at = Period {
            deal,
            generation,
            period,
        };
        // Proofs of the previous generation still `Sent` (its last period's, when the deal
        // was opened again before a poll settled it) are settled now: that generation ended.
        if generation > 1 {
            let sent = self
                .db(move |s| s.sent_proofs(&deal, generation - 1))
                .await?;
            for (period, state) in sent {
                let at = Period {
                    deal,
                    generation: generation - 1,
                    period,
                };
                self.settle_sent(at, state).await?;
            }
        }
        // The previous period's proof, if this provider sent one, is settled now.
        if period > 0 {
            self.settle(
                Period {
                    period: period - 1,
                    ..at
                },
                &d,
            )
            .await?;
        }
        if d.status != DEAL_ACTIVE {
            return Ok(());
        }
        let start: u64 = d.startBlock.to();
        let challenge_block = start + (period + 1) * self.prover.period_blocks;
        if block <= challenge_block {
            return Ok(());
        }
        let deadline = challenge_block + self.prover.proof_window;
        if let Some(state) = self.proof_state(at, &d).await? {
            if let ProofState::Sent {
                hash,
                ref raw,
                ref replaced,
                ..
            } = state
            {
                if block > deadline {
                    self.missed(at, deadline);
                } else if self.mined(hash, replaced).await?.is_none() {
                    let polls = {
                        let mut u = self.prover.unmined.lock().expect("lock");
                        let n = u.entry(at).or_default();
                        *n += 1;
                        *n
                    };
                    if polls >= self.config.resend_after_polls.max(1) {
                        self.prover.unmined.lock().expect("lock").remove(&at);
                        self.replace(at, &state).await?;
                    } else if self.chain.get_transaction_by_hash(hash).await?.is_none() {
                        tracing::info!(target: "node::prover", %deal, period, %hash, "rebroadcasting the stored proof");
                        if let Err(e) = self.chain.send_raw_transaction(raw).await {
                            tracing::warn!(target: "node::prover", %deal, period, error = %e, "rebroadcast failed");
                        }
                    }
                }
            }
            return Ok(());
        }
        if block > deadline {
            self.missed(at, deadline);
            return Ok(());
        }
        let started = Instant::now();
        let proofs = match self.build(deal, period, &d, challenge_block).await {
            Ok(p) => p,
            Err(e) => {
                if self.alert(at, ProofOutcome::Unbuildable) {
                    tracing::error!(target: "node::prover", %deal, generation, period, deadline, error = %e, "cannot build the storage proof: the provider will be slashed unless the store is repaired before the window closes");
                }
                return Ok(());
            }
        };
        let build = started.elapsed();
        self.send(at, proofs, build).await
    }

    /// The proof state of a period of the deal's current generation `d`: its row, or a row
    /// written before rows named the generation if that one is this generation's (see the
    /// module docs).
    async fn proof_state(
        &self,
        at: Period,
        d: &IStorageMarket::Deal,
    ) -> Result<Option<ProofState>> {
        let Period {
            deal,
            generation,
            period,
        } = at;
        if let Some(state) = self.db(move |s| s.proof(&deal, generation, period)).await? {
            return Ok(Some(state));
        }
        let Some(old) = self.db(move |s| s.legacy_proof(&deal, period)).await? else {
            return Ok(None);
        };
        let start: u64 = d.startBlock.to();
        let current = match &old {
            ProofState::Sent {
                hash,
                nonce,
                replaced,
                ..
            } => match self.mined(*hash, replaced).await? {
                Some(r) => r.block_number.is_some_and(|b| b > start),
                None => *nonce >= self.chain.get_transaction_count(self.address()).await?,
            },
            ProofState::Proven { hash, .. } => self
                .chain
                .get_transaction_receipt(*hash)
                .await?
                .and_then(|r| r.block_number)
                .is_some_and(|b| b > start),
            ProofState::Settled => period < u64::from(d.nextPeriod),
        };
        Ok(current.then_some(old))
    }

    fn missed(&self, at: Period, deadline: u64) {
        if self.alert(at, ProofOutcome::Missed) {
            let Period {
                deal,
                generation,
                period,
            } = at;
            tracing::error!(target: "node::prover", %deal, generation, period, deadline, "proof window closed without a proof: the period can be marked missed and the stake slashed");
        }
    }

    /// The receipt of whichever of a proof's transactions (the last one sent, `hash`, or one
    /// it replaced) was mined.
    async fn mined(
        &self,
        hash: B256,
        replaced: &[B256],
    ) -> Result<Option<alloy::rpc::types::TransactionReceipt>> {
        for h in std::iter::once(&hash).chain(replaced.iter().rev()) {
            if let Some(r) = self.chain.get_transaction_receipt(*h).await? {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Sends a stuck proof again: the same call, gas limit and nonce (so at most one of them
    /// is ever mined), fees raised by at least 12.5% (an EIP-1559 replacement) or to the
    /// current estimate if that is higher. Stored before it is broadcast, as a first send.
    async fn replace(&self, at: Period, state: &ProofState) -> Result<()> {
        let Period {
            deal,
            generation,
            period,
        } = at;
        let ProofState::Sent {
            hash,
            nonce,
            raw,
            build_us,
            replaced,
        } = state
        else {
            return Ok(());
        };
        let old = match TxEnvelope::decode_2718(&mut raw.as_ref()) {
            Ok(TxEnvelope::Eip1559(t)) => t.strip_signature(),
            _ => {
                return Err(Error::Internal(format!(
                    "stored proof {hash} is not an EIP-1559 transaction"
                )));
            }
        };
        let fees = self.chain.estimate_eip1559_fees().await?;
        let bump = |f: u128| f + f.div_ceil(8);
        let priority = bump(old.max_priority_fee_per_gas).max(fees.max_priority_fee_per_gas);
        let max_fee = bump(old.max_fee_per_gas)
            .max(fees.max_fee_per_gas)
            .max(priority);
        let mut tx = TxEip1559 {
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: priority,
            ..old
        };
        debug_assert_eq!(tx.nonce, *nonce);
        let sig = self
            .signer
            .sign_transaction_sync(&mut tx)
            .map_err(|e| Error::Internal(format!("signing failed: {e}")))?;
        let signed = tx.into_signed(sig);
        let new_hash = *signed.hash();
        let new_raw: Bytes = TxEnvelope::from(signed).encoded_2718().into();
        let mut earlier = replaced.clone();
        earlier.push(*hash);
        let next = ProofState::Sent {
            hash: new_hash,
            nonce: *nonce,
            raw: new_raw.clone(),
            build_us: *build_us,
            replaced: earlier,
        };
        self.db(move |s| s.put_proof(&deal, generation, period, &next))
            .await?;
        tracing::warn!(target: "node::prover", %deal, generation, period, old = %hash, new = %new_hash, nonce, max_fee, priority, "proof not mined in time: resent with higher fees");
        if let Err(e) = self.chain.send_raw_transaction(&new_raw).await {
            tracing::warn!(target: "node::prover", %deal, period, error = %e, "resend failed; the next polls retry");
        }
        Ok(())
    }

    /// Marks a sent proof of a past period of the deal's generation `d` `Proven` (with its
    /// gas) or `Settled`.
    async fn settle(&self, at: Period, d: &IStorageMarket::Deal) -> Result<()> {
        match self.proof_state(at, d).await? {
            Some(state) => self.settle_sent(at, state).await,
            None => Ok(()),
        }
    }

    /// Settles a `Sent` proof of a past period (nothing to do for any other state).
    async fn settle_sent(&self, at: Period, state: ProofState) -> Result<()> {
        let ProofState::Sent {
            hash,
            build_us,
            replaced,
            ..
        } = state
        else {
            return Ok(());
        };
        let Period {
            deal,
            generation,
            period,
        } = at;
        self.prover.unmined.lock().expect("lock").remove(&at);
        let state = match self.mined(hash, &replaced).await? {
            Some(r) if r.status() => {
                let hash = r.transaction_hash;
                self.node.metrics.proof(ProofOutcome::Proven);
                tracing::info!(target: "node::prover", %deal, generation, period, %hash, gas_used = r.gas_used, build_us, "period proven");
                ProofState::Proven {
                    hash,
                    gas_used: r.gas_used,
                    build_us,
                }
            }
            Some(_) => {
                tracing::error!(target: "node::prover", %deal, period, %hash, "proof transaction reverted");
                ProofState::Settled
            }
            None => ProofState::Settled,
        };
        self.db(move |s| s.put_proof(&deal, generation, period, &state))
            .await
    }

    /// Builds the period's proofs from the store.
    async fn build(
        &self,
        deal: B256,
        period: u64,
        d: &IStorageMarket::Deal,
        challenge_block: u64,
    ) -> Result<Vec<IStorageMarket::Proof>> {
        let root_since: u64 = d.rootSince.to();
        let (root, count) = if root_since < challenge_block {
            (d.root, d.pieceCount)
        } else {
            (d.prevRoot, d.prevPieceCount)
        };
        let cids = self
            .db(move |s| s.deal_root(&deal, &root))
            .await?
            .ok_or_else(|| Error::Internal(format!("deal root {root} was never co-signed here")))?;
        if cids.len() != usize::from(count) {
            return Err(Error::Internal(format!(
                "deal root {root} has {count} pieces on chain, {} here",
                cids.len()
            )));
        }
        let seed = self
            .market
            .challengeSeed(deal_u256(&deal), U256::from(period))
            .call()
            .await?;
        if seed.is_zero() {
            return Err(Error::Internal(
                "the challenge block's hash is out of reach".into(),
            ));
        }
        let list = cids.clone();
        let rows = self
            .db(move |s| list.iter().map(|c| s.piece(c)).collect::<Result<Vec<_>>>())
            .await?;
        let mut pieces = Vec::with_capacity(rows.len());
        for (cid, row) in cids.iter().zip(&rows) {
            let row = row
                .as_ref()
                .ok_or_else(|| Error::Internal(format!("piece {cid} is not in the database")))?;
            pieces.push((row.root, row.depth));
        }
        let mut out = Vec::new();
        for i in 0..self.prover.challenge_count {
            let (index, _) = piece::challenge(seed, i, u64::from(count), 0);
            let index = index as usize;
            let row = rows[index].as_ref().expect("checked above");
            let (_, leaf) = piece::challenge(seed, i, u64::from(count), row.depth);
            let top = Self::top_levels(row)?;
            let block = match top.block_range(leaf) {
                Some(r) => self
                    .ipfs
                    .cat_range(&cids[index], r.start, r.end - r.start)
                    .await
                    .map_err(|e| {
                        Error::Ipfs(format!("piece {} block {}: {e}", cids[index], r.start))
                    })?,
                None => Vec::new(),
            };
            let proof = top
                .prove(leaf, &block)
                .map_err(|e| Error::Internal(format!("piece {}: {e}", cids[index])))?;
            let deal_path =
                piece::deal_path(&pieces, index).map_err(|e| Error::Internal(e.to_string()))?;
            out.push(IStorageMarket::Proof {
                pieceRoot: row.root,
                pieceDepth: row.depth,
                leaf: proof.leaf,
                piecePath: proof.path,
                dealPath: deal_path,
            });
        }
        Ok(out)
    }

    /// Signs `proveStorage`, stores it, then broadcasts it.
    async fn send(
        &self,
        at: Period,
        proofs: Vec<IStorageMarket::Proof>,
        build: Duration,
    ) -> Result<()> {
        let Period {
            deal,
            generation,
            period,
        } = at;
        let input: Bytes = StorageMarket::proveStorageCall {
            dealId: deal_u256(&deal),
            period: U256::from(period),
            proofs,
        }
        .abi_encode()
        .into();
        let me = self.address();
        let to = *self.market.address();
        let req = TransactionRequest::default()
            .from(me)
            .to(to)
            .input(input.clone().into());
        // The estimate runs the proof: a proof the contract refuses is never sent.
        let gas = match self.chain.estimate_gas(req).await {
            Ok(g) => g,
            Err(e) => {
                if self.alert(at, ProofOutcome::Unbuildable) {
                    tracing::error!(target: "node::prover", %deal, generation, period, error = %e, "the market refuses the proof built");
                }
                return Ok(());
            }
        };
        let nonce = self.chain.get_transaction_count(me).pending().await?;
        let fees = self.chain.estimate_eip1559_fees().await?;
        let mut tx = TxEip1559 {
            chain_id: self.chain_id,
            nonce,
            gas_limit: gas + gas / 5,
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            to: TxKind::Call(to),
            value: U256::ZERO,
            access_list: Default::default(),
            input,
        };
        let sig = self
            .signer
            .sign_transaction_sync(&mut tx)
            .map_err(|e| Error::Internal(format!("signing failed: {e}")))?;
        let signed = tx.into_signed(sig);
        let hash = *signed.hash();
        let raw: Bytes = TxEnvelope::from(signed).encoded_2718().into();
        let state = ProofState::Sent {
            hash,
            nonce,
            raw: raw.clone(),
            build_us: build.as_micros() as u64,
            replaced: Vec::new(),
        };
        self.db(move |s| s.put_proof(&deal, generation, period, &state))
            .await?;
        failpoint("prover_before_broadcast");
        if let Err(e) = self.chain.send_raw_transaction(&raw).await {
            tracing::warn!(target: "node::prover", %deal, period, error = %e, "broadcast failed; the next poll retries");
        }
        failpoint("prover_after_broadcast");
        self.node.metrics.proof(ProofOutcome::Submitted);
        tracing::info!(target: "node::prover", %deal, period, %hash, gas_estimate = gas, build_ms = build.as_millis() as u64, "storage proof sent");
        Ok(())
    }
}
