//! The relayer: answers `OracleRequest`s of the configured Operator itself.
//!
//! # Flow
//! 1. **Scan** ([`Relayer::tick`]): every poll, read `OracleRequest` logs of the Operator for
//!    the served spec ids from the cursor up to the newest block with enough confirmations,
//!    keep the ones from allowed requesters whose callback is `StorageNFT.fulfillSync`, and
//!    store them together with the new cursor in one transaction ([`db`]). If the cursor's
//!    block hash changed (a reorg deeper than the confirmations), rewind and forget open
//!    requests whose block is gone.
//! 2. **Answer** (one worker per open request, bounded): skip it if it expired or its block
//!    is no longer canonical; resolve the token ([`crate::resolver`]), retrying transient
//!    failures with backoff until shortly before expiry (then answer `IPFS_UNAVAILABLE`);
//!    simulate `fulfillOracleRequest2` with `eth_call` (a reverting callback does not revert
//!    the fulfill, so only the simulation shows it; a closed request reverts the call); sign
//!    with the next nonce, **store the signed transaction, then broadcast it**.
//! 3. **Confirm**: wait for a receipt of any version of the transaction; rebroadcast it if the
//!    node lost it (e.g. after a restart); replace it with a higher fee when it is stuck; if the
//!    nonce was consumed by something else, go back to 2 (the simulation then tells whether the
//!    request is still open).
//!
//! Because every step is recorded before its effect, a relayer killed at any point resumes
//! without missing a request, and never signs a second fulfill for a request while an earlier
//! one may still be mined (the Operator would reject it anyway: a request can be fulfilled once).

pub mod db;
pub mod request;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::{BlockId, BlockNumberOrTag, Decodable2718, Encodable2718};
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, B256, Bytes, TxKind, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolEvent};
use px_core::contracts::Operator;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use self::db::{Cursor, Db, Entry, SentTx, Stage};
use self::request::Request;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::resolver::{Answer, Resolver, is_error_resp};

/// How far back to rescan after a reorg deeper than the confirmations.
const REORG_REWIND: u64 = 64;
/// Longest wait between two retries of a transient failure.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Settings of the relayer.
#[derive(Debug, Clone)]
pub struct RelayerSettings {
    /// Chain id (signed into every transaction).
    pub chain_id: u64,
    /// The Operator contract.
    pub operator: Address,
    /// First block to scan when the database is new.
    pub start_block: u64,
    /// Spec ids answered.
    pub spec_ids: Vec<B256>,
    /// Requesters answered.
    pub requesters: Vec<Address>,
    /// Confirmations before acting on a request (>= 1).
    pub confirmations: u64,
    /// Poll interval for blocks and receipts.
    pub poll_interval: Duration,
    /// Gas limit of a fulfill (>= 500000).
    pub gas_limit: u64,
    /// Age of an unconfirmed fulfill after which it is replaced.
    pub stuck_after: Duration,
    /// Fee increase of a replacement, percent.
    pub fee_bump_percent: u64,
    /// Cap on `maxFeePerGas`.
    pub max_fee_per_gas: u128,
    /// Requests worked on at once.
    pub concurrency: usize,
    /// Give up retrying this long before a request expires.
    pub expiry_margin: Duration,
    /// Largest block range of one `eth_getLogs`.
    pub max_log_range: u64,
}

/// What a worker does next.
enum Next {
    /// The request is finished.
    Finished,
    /// Run the next step now.
    Again,
    /// Run the next step after a pause.
    Wait(Duration),
}

/// Outcome of simulating a fulfill.
enum Simulation {
    /// The fulfill and its callback succeed.
    Ok,
    /// The fulfill succeeds but the callback reverts (returns false).
    CallbackReverts,
    /// The fulfill itself reverts: the request is closed or unknown.
    Reverts(String),
}

/// The relayer; share it as `Arc<Relayer>`.
#[derive(Debug)]
pub struct Relayer {
    provider: DynProvider,
    signer: PrivateKeySigner,
    db: Db,
    resolver: Resolver,
    metrics: Metrics,
    settings: RelayerSettings,
    next_nonce: tokio::sync::Mutex<Option<u64>>,
    in_flight: Mutex<HashSet<B256>>,
    permits: Arc<Semaphore>,
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn rpc(e: impl std::fmt::Display) -> Error {
    Error::Rpc(e.to_string())
}

impl Relayer {
    /// A relayer fulfilling from `signer` (an authorized sender of the Operator).
    pub fn new(
        provider: DynProvider,
        signer: PrivateKeySigner,
        db: Db,
        resolver: Resolver,
        metrics: Metrics,
        settings: RelayerSettings,
    ) -> Self {
        let permits = Arc::new(Semaphore::new(settings.concurrency));
        Self {
            provider,
            signer,
            db,
            resolver,
            metrics,
            settings,
            next_nonce: tokio::sync::Mutex::new(None),
            in_flight: Mutex::new(HashSet::new()),
            permits,
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Runs until `stop` turns true. Workers are aborted on stop; their progress is durable.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut workers = JoinSet::new();
        tracing::info!(target: "oracle::relayer", sender = %self.signer.address(), operator = %self.settings.operator, "relayer started");
        loop {
            // Catch up in bounded ranges, at most a few per poll so workers get dispatched.
            for _ in 0..16 {
                match self.tick().await {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        self.metrics.failure("scan");
                        tracing::warn!(target: "oracle::relayer", error = %e, "scan failed; retrying");
                        break;
                    }
                }
            }
            if let Err(e) = self.dispatch(&mut workers) {
                tracing::warn!(target: "oracle::relayer", error = %e, "dispatch failed");
            }
            while let Some(done) = workers.try_join_next() {
                if let Err(e) = done
                    && e.is_panic()
                {
                    tracing::error!(target: "oracle::relayer", error = %e, "worker panicked");
                }
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
        workers.abort_all();
        while workers.join_next().await.is_some() {}
        tracing::info!(target: "oracle::relayer", "relayer stopped");
    }

    /// One scan step: detect reorgs, record new requests, move the cursor. Returns whether
    /// confirmed blocks remain to be scanned.
    pub async fn tick(&self) -> Result<bool> {
        let s = &self.settings;
        let head = self.provider.get_block_number().await.map_err(rpc)?;
        let cursor = self.db.cursor()?;
        if let Some(c) = cursor {
            let canonical = self.block_hash(c.block).await?;
            if canonical != Some(c.hash) {
                self.rewind(c.block).await?;
                return Ok(true);
            }
        }
        let from = cursor.map_or(s.start_block, |c| c.block + 1);
        let Some(safe) = (head + 1).checked_sub(s.confirmations) else {
            return Ok(false);
        };
        if from > safe {
            return Ok(false);
        }
        let to = safe.min(from + s.max_log_range.max(1) - 1);
        let filter = Filter::new()
            .address(s.operator)
            .event_signature(Operator::OracleRequest::SIGNATURE_HASH)
            .topic1(s.spec_ids.clone())
            .from_block(from)
            .to_block(to);
        let logs = self.provider.get_logs(&filter).await.map_err(rpc)?;
        let Some(to_hash) = self.block_hash(to).await? else {
            return Ok(false);
        };
        let mut requests = Vec::new();
        for log in logs.iter().filter(|l| !l.removed) {
            match Request::from_log(log, &s.spec_ids, &s.requesters) {
                Ok(r) => requests.push(r),
                Err(why) => {
                    self.metrics.fulfill("ignored");
                    tracing::info!(target: "oracle::relayer", tx = ?log.transaction_hash, %why, "log ignored");
                }
            }
        }
        let fresh = self.db.record_scan(
            requests,
            Cursor {
                block: to,
                hash: to_hash,
            },
            u64::try_from(unix_now().as_millis()).unwrap_or(u64::MAX),
        )?;
        for e in &fresh {
            tracing::info!(target: "oracle::relayer", request_id = %e.request.request_id, token_id = %e.request.token_id, block = e.request.block_number, "request recorded");
        }
        self.metrics.set_cursor(to);
        Ok(to < safe)
    }

    async fn block_hash(&self, number: u64) -> Result<Option<B256>> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await
            .map_err(rpc)?;
        Ok(block.map(|b| b.header.hash))
    }

    async fn rewind(&self, at: u64) -> Result<()> {
        let back = at.saturating_sub(self.settings.confirmations + REORG_REWIND);
        let back = back.max(self.settings.start_block);
        let Some(hash) = self.block_hash(back).await? else {
            return Ok(());
        };
        let mut gone = Vec::new();
        for e in self.db.unfinished()? {
            if e.request.block_number > back
                && matches!(e.stage, Stage::Open)
                && self.block_hash(e.request.block_number).await? != Some(e.request.block_hash)
            {
                gone.push(e.request.request_id);
            }
        }
        tracing::warn!(target: "oracle::relayer", from = at, to = back, dropped = gone.len(), "reorg detected; rescanning");
        self.metrics.failure("reorg");
        self.db.rewind(Cursor { block: back, hash }, &gone)
    }

    fn dispatch(self: &Arc<Self>, workers: &mut JoinSet<()>) -> Result<()> {
        let open = self.db.unfinished()?;
        self.metrics.set_open_requests(open.len());
        for entry in open {
            let id = entry.request.request_id;
            if !self.in_flight.lock().expect("in-flight lock").insert(id) {
                continue;
            }
            let me = Arc::clone(self);
            workers.spawn(async move {
                me.work(id).await;
                me.in_flight.lock().expect("in-flight lock").remove(&id);
            });
        }
        Ok(())
    }

    async fn work(&self, id: B256) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let entry = match self.db.get(&id) {
                Ok(Some(e)) if !e.stage.is_final() => e,
                Ok(_) => return,
                Err(e) => {
                    tracing::error!(target: "oracle::relayer", request_id = %id, error = %e, "database read failed");
                    tokio::time::sleep(MAX_BACKOFF).await;
                    continue;
                }
            };
            let step = match &entry.stage {
                Stage::Open => {
                    // Answering (IPFS, simulation, signing) is bounded; waiting for receipts
                    // is not, so a slow block never holds back other requests.
                    let Ok(_permit) = self.permits.acquire().await else {
                        return;
                    };
                    self.answer(&entry).await
                }
                Stage::Sending { .. } => self.confirm(&entry).await,
                _ => return,
            };
            match step {
                Ok(Next::Finished) => return,
                Ok(Next::Again) => backoff = Duration::from_millis(200),
                Ok(Next::Wait(d)) => tokio::time::sleep(d).await,
                Err(e) => {
                    let reason = match &e {
                        Error::IpfsUnavailable(_) => "ipfs_unavailable",
                        Error::Rpc(_) => "rpc",
                        _ => "internal",
                    };
                    self.metrics.failure(reason);
                    tracing::warn!(target: "oracle::relayer", request_id = %id, error = %e, retry_in = ?backoff, "transient failure");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn finish(&self, id: &B256, stage: Stage, metric: &str) -> Result<Next> {
        if let Stage::Skipped { reason } = &stage {
            tracing::info!(target: "oracle::relayer", request_id = %id, %reason, "request skipped");
        }
        self.db.set_stage(id, stage)?;
        self.metrics.fulfill(metric);
        Ok(Next::Finished)
    }

    /// Latest block timestamp (chain time, which can run ahead of the wall clock on devnets).
    async fn chain_now(&self) -> Result<u64> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(rpc)?
            .ok_or_else(|| Error::Rpc("no latest block".into()))?;
        Ok(block.header.timestamp)
    }

    async fn answer(&self, entry: &Entry) -> Result<Next> {
        let req = &entry.request;
        let id = req.request_id;
        let now = self.chain_now().await?;
        if req.expiration() <= now {
            return self.finish(
                &id,
                Stage::Skipped {
                    reason: "expired".into(),
                },
                "skipped_expired",
            );
        }
        if self.block_hash(req.block_number).await? != Some(req.block_hash) {
            tracing::warn!(target: "oracle::relayer", request_id = %id, "request's block was reorged out");
            self.db.remove(&id)?;
            self.metrics.fulfill("skipped_reorged");
            return Ok(Next::Finished);
        }
        let started = Instant::now();
        let answer = match self.resolver.resolve(req.token_id).await {
            Ok(a) => a,
            Err(Error::IpfsUnavailable(why))
                if now + self.settings.expiry_margin.as_secs() >= req.expiration() =>
            {
                Answer::unavailable(req.token_id, &why)
            }
            Err(Error::TokenNotFound(_)) => {
                return self.finish(
                    &id,
                    Stage::Skipped {
                        reason: "token does not exist".into(),
                    },
                    "skipped_closed",
                );
            }
            Err(e) => return Err(e),
        };
        self.metrics
            .answer(&crate::status_label(answer.status), started.elapsed());
        let calldata = req.fulfill_calldata(&answer);
        match self.simulate(&calldata).await? {
            Simulation::Ok => {}
            Simulation::CallbackReverts => {
                return self.finish(
                    &id,
                    Stage::Skipped {
                        reason: "fulfillSync would revert".into(),
                    },
                    "skipped_closed",
                );
            }
            Simulation::Reverts(why) => {
                return self.finish(
                    &id,
                    Stage::Skipped {
                        reason: format!("request closed: {why}"),
                    },
                    "skipped_closed",
                );
            }
        }
        let (max_fee, tip) = self.fees().await?;
        let sent = {
            let mut next = self.next_nonce.lock().await;
            let nonce = match *next {
                Some(n) => n,
                None => self.initial_nonce().await?,
            };
            let sent = self.sign(nonce, &calldata, max_fee, tip)?;
            self.db.set_stage(
                &id,
                Stage::Sending {
                    status: answer.status,
                    nonce,
                    txs: vec![sent.clone()],
                },
            )?;
            *next = Some(nonce + 1);
            sent
        };
        tracing::info!(target: "oracle::relayer", request_id = %id, token_id = %req.token_id, status = answer.status, tx = %sent.hash, "fulfill signed");
        self.broadcast(&sent.raw).await;
        Ok(Next::Wait(self.settings.poll_interval / 2))
    }

    async fn initial_nonce(&self) -> Result<u64> {
        let pending = self
            .provider
            .get_transaction_count(self.signer.address())
            .block_id(BlockId::pending())
            .await
            .map_err(rpc)?;
        let stored = self.db.max_nonce()?.map_or(0, |n| n + 1);
        Ok(pending.max(stored))
    }

    async fn simulate(&self, calldata: &Bytes) -> Result<Simulation> {
        let tx = TransactionRequest::default()
            .from(self.signer.address())
            .to(self.settings.operator)
            .input(calldata.clone().into())
            .gas_limit(self.settings.gas_limit);
        match self.provider.call(tx).await {
            Ok(out) => {
                let ok = Operator::fulfillOracleRequest2Call::abi_decode_returns(&out)
                    .map_err(|e| Error::Rpc(format!("undecodable fulfill result: {e}")))?;
                Ok(if ok {
                    Simulation::Ok
                } else {
                    Simulation::CallbackReverts
                })
            }
            Err(e) if is_error_resp(&e) => Ok(Simulation::Reverts(e.to_string())),
            Err(e) => Err(rpc(e)),
        }
    }

    async fn fees(&self) -> Result<(u128, u128)> {
        let est = self.provider.estimate_eip1559_fees().await.map_err(rpc)?;
        let cap = self.settings.max_fee_per_gas;
        let max_fee = est.max_fee_per_gas.min(cap);
        Ok((max_fee, est.max_priority_fee_per_gas.min(max_fee)))
    }

    fn sign(&self, nonce: u64, calldata: &Bytes, max_fee: u128, tip: u128) -> Result<SentTx> {
        let mut tx = TxEip1559 {
            chain_id: self.settings.chain_id,
            nonce,
            gas_limit: self.settings.gas_limit,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
            to: TxKind::Call(self.settings.operator),
            value: U256::ZERO,
            access_list: Default::default(),
            input: calldata.clone(),
        };
        let sig = self
            .signer
            .sign_transaction_sync(&mut tx)
            .map_err(|e| Error::Config(format!("signing failed: {e}")))?;
        let signed = tx.into_signed(sig);
        let hash = *signed.hash();
        let raw = TxEnvelope::from(signed).encoded_2718();
        Ok(SentTx {
            hash,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
            raw: raw.into(),
            signed_at: unix_now().as_secs(),
        })
    }

    async fn broadcast(&self, raw: &Bytes) {
        if let Err(e) = self.provider.send_raw_transaction(raw).await {
            // Already known, nonce used, or node down: `confirm` sorts each case out.
            tracing::debug!(target: "oracle::relayer", error = %e, "broadcast failed");
        }
    }

    async fn confirm(&self, entry: &Entry) -> Result<Next> {
        let id = entry.request.request_id;
        let Stage::Sending { status, nonce, txs } = &entry.stage else {
            return Ok(Next::Again);
        };
        for tx in txs.iter().rev() {
            let Some(receipt) = self
                .provider
                .get_transaction_receipt(tx.hash)
                .await
                .map_err(rpc)?
            else {
                continue;
            };
            if receipt.status() {
                let waited = unix_now().saturating_sub(Duration::from_millis(entry.seen_at_ms));
                self.metrics.fulfill_latency(waited);
                tracing::info!(target: "oracle::relayer", request_id = %id, tx = %tx.hash, block = ?receipt.block_number, status, "fulfilled");
                return self.finish(
                    &id,
                    Stage::Done {
                        tx: tx.hash,
                        status: *status,
                    },
                    "confirmed",
                );
            }
            return self.finish(
                &id,
                Stage::Skipped {
                    reason: format!("fulfill {} reverted", tx.hash),
                },
                "skipped_closed",
            );
        }
        let mined = self
            .provider
            .get_transaction_count(self.signer.address())
            .block_id(BlockId::latest())
            .await
            .map_err(rpc)?;
        if mined > *nonce {
            // Receipts may lag the nonce by a moment: look once more before concluding.
            for tx in txs {
                if self
                    .provider
                    .get_transaction_receipt(tx.hash)
                    .await
                    .map_err(rpc)?
                    .is_some()
                {
                    return Ok(Next::Again);
                }
            }
            tracing::warn!(target: "oracle::relayer", request_id = %id, nonce, "nonce consumed by another transaction; answering again");
            self.db.set_stage(&id, Stage::Open)?;
            // Someone else uses this key: take the next nonce from the node again.
            *self.next_nonce.lock().await = None;
            return Ok(Next::Again);
        }
        let last = txs.last().expect("a Sending stage has a transaction");
        let age = unix_now().as_secs().saturating_sub(last.signed_at);
        if age >= self.settings.stuck_after.as_secs() {
            return self.replace(&id, *status, *nonce, txs).await;
        }
        let known = self
            .provider
            .get_transaction_by_hash(last.hash)
            .await
            .map_err(rpc)?
            .is_some();
        if !known {
            tracing::info!(target: "oracle::relayer", request_id = %id, tx = %last.hash, "rebroadcasting");
            self.broadcast(&last.raw).await;
        }
        Ok(Next::Wait(self.settings.poll_interval))
    }

    async fn replace(&self, id: &B256, status: u8, nonce: u64, txs: &[SentTx]) -> Result<Next> {
        let last = txs.last().expect("a Sending stage has a transaction");
        let (est_fee, est_tip) = self.fees().await?;
        let pct = self.settings.fee_bump_percent;
        let cap = self.settings.max_fee_per_gas;
        let max_fee = bumped(last.max_fee_per_gas, pct).max(est_fee).min(cap);
        let tip = bumped(last.max_priority_fee_per_gas, pct)
            .max(est_tip)
            .min(max_fee);
        if max_fee <= last.max_fee_per_gas {
            // At the fee cap: keep waiting on the current version.
            self.broadcast(&last.raw).await;
            return Ok(Next::Wait(self.settings.poll_interval));
        }
        let calldata = TxEnvelope::decode_2718(&mut last.raw.as_ref())
            .map_err(|e| Error::Db(format!("stored transaction undecodable: {e}")))?;
        let input = match &calldata {
            TxEnvelope::Eip1559(t) => t.tx().input.clone(),
            _ => return Err(Error::Db("stored transaction is not EIP-1559".into())),
        };
        let sent = self.sign(nonce, &input, max_fee, tip)?;
        let mut all = txs.to_vec();
        all.push(sent.clone());
        self.db.set_stage(
            id,
            Stage::Sending {
                status,
                nonce,
                txs: all,
            },
        )?;
        self.metrics.fulfill("replaced");
        tracing::warn!(target: "oracle::relayer", request_id = %id, nonce, old = %last.hash, new = %sent.hash, max_fee, "replacing stuck fulfill");
        self.broadcast(&sent.raw).await;
        Ok(Next::Wait(self.settings.poll_interval))
    }
}

/// Fee arithmetic of a replacement, exposed for tests: `v * (100 + pct) / 100 + 1`.
pub fn bumped(v: u128, pct: u64) -> u128 {
    v.saturating_mul(100 + u128::from(pct)) / 100 + 1
}
