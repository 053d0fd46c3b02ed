//! The relayer: answers `OracleRequest`s of the configured Operator itself.
//!
//! # Flow
//! 1. **Scan** ([`Relayer::tick`]): every poll, read `OracleRequest` logs of the Operator for
//!    the served spec ids from the cursor up to the newest block with enough confirmations,
//!    keep the ones from allowed requesters whose callback is `StorageNFT.fulfillSync`, and
//!    store them together with the new cursor in one transaction ([`db`]). Logs are read by a
//!    consistent, hash-checked range: a short range block by block (`getLogs` by block hash,
//!    each header linked to the next and to the cursor), a long one by number with every log's
//!    block hash and the range's last hash checked before and after. If the cursor's block hash
//!    changed (a reorg), rewind: requests above the new cursor not yet signed become `Reorged`
//!    and the rescan reopens those whose log is on the canonical chain (again), with its new
//!    block; the others are never answered.
//! 2. **Answer** (one worker per open request, bounded): skip it if it expired; wait if its
//!    block is not canonical (the scanner sorts it out); resolve the token
//!    ([`crate::resolver`]) at a block no older than the request's, retrying transient failures
//!    with backoff until shortly before expiry (then answer `IPFS_UNAVAILABLE`); simulate
//!    `fulfillOracleRequest2` with `eth_call` (a reverting callback does not revert the fulfill,
//!    so only the simulation shows it; a closed request reverts the call); sign with the next
//!    nonce, **store the signed transaction, then broadcast it**.
//! 3. **Confirm**: once the sender's mined nonce passes the fulfill's (one shared lookup per
//!    poll for all requests), read its receipt and wait for `confirmations` blocks on top, with
//!    the receipt's block still canonical, before the request counts as done; rebroadcast it if
//!    the node lost it (after a restart or a reorg); replace it with a higher fee when it is
//!    stuck (past the request's expiry only if the request is still open, else the nonce is
//!    filled with a zero-value transfer to self); if the nonce was consumed by something else
//!    for several polls, go back to 2 (the simulation then tells whether the request is still
//!    open).
//!
//! Only a revert is a verdict of the chain ([`crate::error::is_revert`]): a timeout, a
//! JSON-RPC error without revert data, a missing block or receipt from a lagging backend are
//! retried, never taken as "token not found", "request closed" or "reorged out".
//!
//! Because every step is recorded before its effect, a relayer killed at any point resumes
//! without missing a request, and never signs a second fulfill for a request while an earlier
//! one may still be mined (the Operator would reject it anyway: a request can be fulfilled once).
//! Database work runs on the blocking pool, never on the async workers.

pub mod db;
pub mod request;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::{BlockId, BlockNumberOrTag, Decodable2718, Encodable2718};
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, B256, Bytes, TxKind, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, Log, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolEvent};
use px_core::contracts::Operator;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use self::db::{Cursor, Db, Entry, SentTx, Stage};
use self::request::Request;
use crate::error::is_revert;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::resolver::{Answer, Resolver};

/// How far back to rescan after a reorg deeper than the confirmations.
const REORG_REWIND: u64 = 64;
/// Longest wait between two retries of a transient failure.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A range of at most this many blocks is read block by block, by hash.
const BY_HASH_RANGE: u64 = 8;
/// Polls a consumed nonce must stay without a receipt of ours before the request is answered
/// again (a lagging backend may serve the nonce before the receipt).
const CONSUMED_POLLS: u32 = 3;
/// A pending fulfill is looked up (and rebroadcast if unknown) every this many polls.
const REBROADCAST_EVERY: u64 = 4;
/// Polls between two balance readings.
const BALANCE_EVERY: u64 = 10;

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
    /// Confirmations before acting on a request, and on a fulfill's receipt before the
    /// request is done (>= 1).
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

/// The chain as seen at one poll, shared by every worker (one lookup per poll, not per
/// request).
#[derive(Debug, Clone, Copy)]
struct View {
    /// When it was read.
    at: Instant,
    /// Latest block number.
    head: u64,
    /// Its timestamp (chain time, which can run ahead of the wall clock on devnets).
    now: u64,
    /// The sender's transaction count at that block: nonces below it are mined.
    mined_nonce: u64,
}

/// What a worker remembers between two steps of one request (lost on restart, rebuilt from
/// the chain).
#[derive(Debug, Default)]
struct Progress {
    /// Block of a receipt seen for the fulfill, waiting for confirmations.
    receipt_block: Option<u64>,
    /// Polls the nonce was seen consumed without a receipt of ours.
    consumed_polls: u32,
    /// Confirm steps so far.
    polls: u64,
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
    view: tokio::sync::Mutex<Option<View>>,
    fees: tokio::sync::Mutex<Option<(Instant, u128, u128)>>,
    in_flight: Mutex<HashSet<B256>>,
    permits: Arc<Semaphore>,
}

/// Crash-test hook: if `PX_ORACLE_CRASH_AT` names this point, the process aborts here (like
/// `kill -9`: no destructor, no flush). The points: `after_record` (requests stored, none
/// answered), `after_sign` (fulfill signed and stored, not broadcast), `after_broadcast`,
/// `before_done` (receipt confirmed, `Done` not stored).
fn failpoint(name: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| std::env::var("PX_ORACLE_CRASH_AT").ok());
    if at.as_deref() == Some(name) {
        eprintln!("px-oracle: crash point {name} reached; aborting");
        std::process::abort();
    }
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn rpc(e: impl std::fmt::Display) -> Error {
    Error::Rpc(e.to_string())
}

/// Gas price units in one ether, for the balance gauge.
const WEI_PER_ETHER: f64 = 1e18;

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
            view: tokio::sync::Mutex::new(None),
            fees: tokio::sync::Mutex::new(None),
            in_flight: Mutex::new(HashSet::new()),
            permits,
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The sending address.
    pub fn sender(&self) -> Address {
        self.signer.address()
    }

    /// Runs `f` on the database on the blocking pool (redb commits fsync).
    async fn with_db<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| Error::Db(format!("database task: {e}")))?
    }

    /// Checks, before the relayer starts, that the key is an authorized sender of the Operator
    /// and holds enough native coin for at least one fulfill at the current fee. Refuses to
    /// start otherwise, saying what to do.
    pub async fn preflight(&self) -> Result<()> {
        let sender = self.signer.address();
        let operator = Operator::new(self.settings.operator, self.provider.clone());
        let authorized = operator
            .isAuthorizedSender(sender)
            .call()
            .await
            .map_err(|e| Error::Rpc(format!("Operator.isAuthorizedSender: {e}")))?;
        if !authorized {
            return Err(Error::Config(format!(
                "the relayer key {sender} is not an authorized sender of the Operator {}: every \
                 fulfill would revert. Have the Operator's owner call \
                 setAuthorizedSenders([{sender}]), or configure the key that is authorized",
                self.settings.operator
            )));
        }
        let balance = self.balance().await?;
        let (max_fee, _) = self.fees().await?;
        let one = U256::from(self.settings.gas_limit) * U256::from(max_fee);
        if balance < one {
            return Err(Error::Config(format!(
                "the relayer account {sender} holds {balance} wei, less than one fulfill costs at \
                 the current fee ({} gas x {max_fee} wei = {one} wei): fund it before starting",
                self.settings.gas_limit
            )));
        }
        Ok(())
    }

    async fn balance(&self) -> Result<U256> {
        let balance = self
            .provider
            .get_balance(self.signer.address())
            .await
            .map_err(rpc)?;
        let wei = u128::try_from(balance).unwrap_or(u128::MAX);
        #[allow(clippy::cast_precision_loss)] // a gauge: 15 significant digits are plenty
        self.metrics.set_balance(wei as f64 / WEI_PER_ETHER);
        Ok(balance)
    }

    /// Runs until `stop` turns true. Workers are aborted on stop; their progress is durable.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut workers = JoinSet::new();
        tracing::info!(target: "oracle::relayer", sender = %self.signer.address(), operator = %self.settings.operator, "relayer started");
        let mut polls: u64 = 0;
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
            if let Err(e) = self.dispatch(&mut workers).await {
                tracing::warn!(target: "oracle::relayer", error = %e, "dispatch failed");
            }
            while let Some(done) = workers.try_join_next() {
                if let Err(e) = done
                    && e.is_panic()
                {
                    tracing::error!(target: "oracle::relayer", error = %e, "worker panicked");
                }
            }
            if polls.is_multiple_of(BALANCE_EVERY) {
                match self.balance().await {
                    Ok(b) => {
                        let (fee, _) = self.fees().await.unwrap_or((0, 0));
                        if b < U256::from(self.settings.gas_limit) * U256::from(fee) {
                            tracing::error!(target: "oracle::relayer", sender = %self.signer.address(), balance = %b, "relayer balance below one fulfill: fund it");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(target: "oracle::relayer", error = %e, "balance lookup failed")
                    }
                }
            }
            polls += 1;
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
        let cursor = self.with_db(|db| db.cursor()).await?;
        if let Some(c) = cursor {
            match self.block_hash(c.block).await? {
                // A lagging backend, or a chain shorter than the cursor for now: wait.
                None => {
                    return Err(Error::Rpc(format!(
                        "block {} (the scan cursor) not served",
                        c.block
                    )));
                }
                Some(h) if h != c.hash => {
                    self.rewind(c.block).await?;
                    return Ok(true);
                }
                Some(_) => {}
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
        let (logs, to_hash) = if to - from < BY_HASH_RANGE {
            self.logs_by_hash(from, to, cursor).await?
        } else {
            self.logs_by_range(from, to).await?
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
        let cursor = Cursor {
            block: to,
            hash: to_hash,
        };
        let now_ms = u64::try_from(unix_now().as_millis()).unwrap_or(u64::MAX);
        let fresh = self
            .with_db(move |db| db.record_scan(requests, cursor, now_ms))
            .await?;
        for e in &fresh {
            tracing::info!(target: "oracle::relayer", request_id = %e.request.request_id, token_id = %e.request.token_id, block = e.request.block_number, "request recorded");
        }
        if !fresh.is_empty() {
            failpoint("after_record");
        }
        self.metrics.set_cursor(to);
        Ok(to < safe)
    }

    fn log_filter(&self) -> Filter {
        Filter::new()
            .address(self.settings.operator)
            .event_signature(Operator::OracleRequest::SIGNATURE_HASH)
            .topic1(self.settings.spec_ids.clone())
    }

    /// Logs of a short range, block by block: every header linked to the next one and the
    /// first to the cursor, logs asked by block hash (a backend without that block answers an
    /// error, never an empty list). Returns the logs and the hash of `to`.
    async fn logs_by_hash(
        &self,
        from: u64,
        to: u64,
        cursor: Option<Cursor>,
    ) -> Result<(Vec<Log>, B256)> {
        let mut hashes = Vec::new();
        let mut child_parent: Option<B256> = None;
        for n in (from..=to).rev() {
            let block = self
                .provider
                .get_block_by_number(BlockNumberOrTag::Number(n))
                .await
                .map_err(rpc)?
                .ok_or_else(|| Error::Rpc(format!("block {n} not served")))?;
            if child_parent.is_some_and(|p| p != block.header.hash) {
                return Err(Error::Rpc(format!(
                    "chain changed at block {n} while reading"
                )));
            }
            child_parent = Some(block.header.parent_hash);
            hashes.push(block.header.hash);
        }
        if let (Some(c), Some(parent)) = (cursor, child_parent)
            && c.block + 1 == from
            && parent != c.hash
        {
            // The cursor's block was replaced after the check: the next tick rewinds.
            return Err(Error::Rpc(format!("block {} was reorged", c.block)));
        }
        let mut logs = Vec::new();
        for hash in hashes.iter().rev() {
            let filter = self.log_filter().at_block_hash(*hash);
            let mut got = self.provider.get_logs(&filter).await.map_err(rpc)?;
            if got.iter().any(|l| l.block_hash != Some(*hash)) {
                return Err(Error::Rpc(format!(
                    "logs of block {hash} from another block"
                )));
            }
            logs.append(&mut got);
        }
        Ok((logs, hashes[0]))
    }

    /// Logs of a long range (catching up), by number: the hash of `to` read before and after,
    /// and every log's block hash checked against the canonical one.
    async fn logs_by_range(&self, from: u64, to: u64) -> Result<(Vec<Log>, B256)> {
        let to_hash = self
            .block_hash(to)
            .await?
            .ok_or_else(|| Error::Rpc(format!("block {to} not served")))?;
        let filter = self.log_filter().from_block(from).to_block(to);
        let logs = self.provider.get_logs(&filter).await.map_err(rpc)?;
        let mut canonical = BTreeMap::from([(to, to_hash)]);
        for log in &logs {
            let Some(n) = log.block_number else {
                continue;
            };
            let hash = match canonical.get(&n) {
                Some(h) => *h,
                None => {
                    let h = self
                        .block_hash(n)
                        .await?
                        .ok_or_else(|| Error::Rpc(format!("block {n} not served")))?;
                    canonical.insert(n, h);
                    h
                }
            };
            if log.block_hash != Some(hash) {
                return Err(Error::Rpc(format!("a log of block {n} is not canonical")));
            }
        }
        if self.block_hash(to).await? != Some(to_hash) {
            return Err(Error::Rpc(format!("block {to} changed while reading")));
        }
        Ok((logs, to_hash))
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
        let hash = self
            .block_hash(back)
            .await?
            .ok_or_else(|| Error::Rpc(format!("block {back} not served")))?;
        let marked = self
            .with_db(move |db| db.rewind(Cursor { block: back, hash }))
            .await?;
        tracing::warn!(target: "oracle::relayer", from = at, to = back, unconfirmed = marked, "reorg detected; rescanning");
        self.metrics.failure("reorg");
        Ok(())
    }

    async fn dispatch(self: &Arc<Self>, workers: &mut JoinSet<()>) -> Result<()> {
        let open = self.with_db(|db| db.unfinished()).await?;
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
        let mut progress = Progress::default();
        loop {
            let entry = match self.with_db(move |db| db.get(&id)).await {
                Ok(Some(e)) if e.stage.is_active() => e,
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
                Stage::Sending { .. } => self.confirm(&entry, &mut progress).await,
                _ => return,
            };
            match step {
                Ok(Next::Finished) => return,
                Ok(Next::Again) => backoff = Duration::from_millis(200),
                Ok(Next::Wait(d)) => {
                    backoff = Duration::from_millis(200);
                    tokio::time::sleep(d).await;
                }
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

    async fn finish(&self, id: &B256, stage: Stage, metric: &str) -> Result<Next> {
        if let Stage::Skipped { reason } = &stage {
            tracing::info!(target: "oracle::relayer", request_id = %id, %reason, "request skipped");
        }
        let id = *id;
        self.with_db(move |db| db.set_stage(&id, stage)).await?;
        self.metrics.fulfill(metric);
        Ok(Next::Finished)
    }

    /// The chain at this poll: head, its time and the sender's mined nonce, read at most once
    /// per half poll interval for all workers together.
    async fn view(&self) -> Result<View> {
        let mut cached = self.view.lock().await;
        if let Some(v) = *cached
            && v.at.elapsed() < self.settings.poll_interval / 2
        {
            return Ok(v);
        }
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(rpc)?
            .ok_or_else(|| Error::Rpc("no latest block".into()))?;
        let head = block.header.number;
        let mined_nonce = self
            .provider
            .get_transaction_count(self.signer.address())
            .block_id(BlockId::number(head))
            .await
            .map_err(rpc)?;
        let v = View {
            at: Instant::now(),
            head,
            now: block.header.timestamp,
            mined_nonce,
        };
        *cached = Some(v);
        Ok(v)
    }

    async fn answer(&self, entry: &Entry) -> Result<Next> {
        let req = &entry.request;
        let id = req.request_id;
        let view = self.view().await?;
        let now = view.now;
        if req.expiration() <= now {
            return self
                .finish(
                    &id,
                    Stage::Skipped {
                        reason: "expired".into(),
                    },
                    "skipped_expired",
                )
                .await;
        }
        match self.block_hash(req.block_number).await? {
            None => {
                return Err(Error::Rpc(format!(
                    "block {} (the request's) not served",
                    req.block_number
                )));
            }
            Some(h) if h != req.block_hash => {
                // The scanner notices the reorg at its cursor, rewinds and either reopens the
                // request with its new block or leaves it `Reorged`.
                tracing::warn!(target: "oracle::relayer", request_id = %id, block = req.block_number, "request's block is not canonical; waiting for the rescan");
                return Ok(Next::Wait(self.settings.poll_interval));
            }
            Some(_) => {}
        }
        // Read state no older than the request (a lagging backend must not make the token or
        // the request look absent).
        let at = view.head.max(req.block_number);
        let started = Instant::now();
        let answer = match self.resolver.resolve_at(req.token_id, Some(at)).await {
            Ok(a) => a,
            Err(Error::IpfsUnavailable(why))
                if now + self.settings.expiry_margin.as_secs() >= req.expiration() =>
            {
                Answer::unavailable(req.token_id, &why)
            }
            Err(Error::TokenNotFound(_)) => {
                return self
                    .finish(
                        &id,
                        Stage::Skipped {
                            reason: "token does not exist".into(),
                        },
                        "skipped_closed",
                    )
                    .await;
            }
            Err(e) => return Err(e),
        };
        self.metrics
            .answer(&crate::status_label(answer.status), started.elapsed());
        let calldata = req.fulfill_calldata(&answer);
        match self.simulate(&calldata, at).await? {
            Simulation::Ok => {}
            Simulation::CallbackReverts => {
                return self
                    .finish(
                        &id,
                        Stage::Skipped {
                            reason: "fulfillSync would revert".into(),
                        },
                        "skipped_closed",
                    )
                    .await;
            }
            Simulation::Reverts(why) => {
                return self
                    .finish(
                        &id,
                        Stage::Skipped {
                            reason: format!("request closed: {why}"),
                        },
                        "skipped_closed",
                    )
                    .await;
            }
        }
        let (max_fee, tip) = self.fees().await?;
        let sent = {
            let mut next = self.next_nonce.lock().await;
            let nonce = match *next {
                Some(n) => n,
                None => self.initial_nonce().await?,
            };
            let sent = self.sign(nonce, &calldata, max_fee, tip, false)?;
            let stage = Stage::Sending {
                status: answer.status,
                nonce,
                txs: vec![sent.clone()],
            };
            self.with_db(move |db| db.set_stage(&id, stage)).await?;
            *next = Some(nonce + 1);
            sent
        };
        tracing::info!(target: "oracle::relayer", request_id = %id, token_id = %req.token_id, status = answer.status, tx = %sent.hash, "fulfill signed");
        failpoint("after_sign");
        self.broadcast(&sent.raw).await;
        failpoint("after_broadcast");
        Ok(Next::Wait(self.settings.poll_interval / 2))
    }

    async fn initial_nonce(&self) -> Result<u64> {
        let pending = self
            .provider
            .get_transaction_count(self.signer.address())
            .block_id(BlockId::pending())
            .await
            .map_err(rpc)?;
        let stored = self
            .with_db(|db| db.max_nonce())
            .await?
            .map_or(0, |n| n + 1);
        Ok(pending.max(stored))
    }

    /// Simulates the fulfill at block `at`. Only a revert is "closed"; any other error is
    /// retried.
    async fn simulate(&self, calldata: &Bytes, at: u64) -> Result<Simulation> {
        let tx = TransactionRequest::default()
            .from(self.signer.address())
            .to(self.settings.operator)
            .input(calldata.clone().into())
            .gas_limit(self.settings.gas_limit);
        match self.provider.call(tx).block(BlockId::number(at)).await {
            Ok(out) => {
                let ok = Operator::fulfillOracleRequest2Call::abi_decode_returns(&out)
                    .map_err(|e| Error::Rpc(format!("undecodable fulfill result: {e}")))?;
                Ok(if ok {
                    Simulation::Ok
                } else {
                    Simulation::CallbackReverts
                })
            }
            Err(e) if is_revert(&e) => Ok(Simulation::Reverts(e.to_string())),
            Err(e) => Err(rpc(e)),
        }
    }

    /// The fee estimate, read at most once per poll interval for all workers.
    async fn fees(&self) -> Result<(u128, u128)> {
        let mut cached = self.fees.lock().await;
        if let Some((at, fee, tip)) = *cached
            && at.elapsed() < self.settings.poll_interval
        {
            return Ok((fee, tip));
        }
        let est = self.provider.estimate_eip1559_fees().await.map_err(rpc)?;
        let cap = self.settings.max_fee_per_gas;
        let max_fee = est.max_fee_per_gas.min(cap);
        let tip = est.max_priority_fee_per_gas.min(max_fee);
        *cached = Some((Instant::now(), max_fee, tip));
        Ok((max_fee, tip))
    }

    /// Signs a fulfill with `calldata`, or with `cancel` a zero-value transfer to self that
    /// only fills the nonce.
    fn sign(
        &self,
        nonce: u64,
        calldata: &Bytes,
        max_fee: u128,
        tip: u128,
        cancel: bool,
    ) -> Result<SentTx> {
        let (to, gas_limit, input) = if cancel {
            (self.signer.address(), 21_000, Bytes::new())
        } else {
            (
                self.settings.operator,
                self.settings.gas_limit,
                calldata.clone(),
            )
        };
        let mut tx = TxEip1559 {
            chain_id: self.settings.chain_id,
            nonce,
            gas_limit,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
            to: TxKind::Call(to),
            value: U256::ZERO,
            access_list: Default::default(),
            input,
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
            cancel,
        })
    }

    async fn broadcast(&self, raw: &Bytes) {
        if let Err(e) = self.provider.send_raw_transaction(raw).await {
            // Already known, nonce used, or node down: `confirm` sorts each case out, but an
            // operator must see it (an underfunded key or a refusing node looks like this).
            self.metrics.failure("broadcast");
            tracing::warn!(target: "oracle::relayer", error = %e, "broadcast failed");
        }
    }

    async fn confirm(&self, entry: &Entry, progress: &mut Progress) -> Result<Next> {
        let id = entry.request.request_id;
        let Stage::Sending { status, nonce, txs } = &entry.stage else {
            return Ok(Next::Again);
        };
        let poll = self.settings.poll_interval;
        let confirmations = self.settings.confirmations.max(1);
        let view = self.view().await?;
        if *nonce < view.mined_nonce {
            // Mined, by one of our versions or by something else.
            if let Some(block) = progress.receipt_block
                && view.head + 1 < block + confirmations
            {
                return Ok(Next::Wait(poll));
            }
            for tx in txs.iter().rev() {
                let Some(receipt) = self
                    .provider
                    .get_transaction_receipt(tx.hash)
                    .await
                    .map_err(rpc)?
                else {
                    continue;
                };
                progress.consumed_polls = 0;
                let block = receipt.block_number.unwrap_or(view.head);
                progress.receipt_block = Some(block);
                if view.head + 1 < block + confirmations {
                    return Ok(Next::Wait(poll));
                }
                // Enough blocks on top; is the receipt's block still the canonical one?
                if receipt.block_hash.is_none()
                    || self.block_hash(block).await? != receipt.block_hash
                {
                    progress.receipt_block = None;
                    return Ok(Next::Wait(poll));
                }
                if tx.cancel {
                    return self
                        .finish(
                            &id,
                            Stage::Skipped {
                                reason: format!(
                                    "expired and closed; nonce {nonce} filled by {}",
                                    tx.hash
                                ),
                            },
                            "skipped_expired",
                        )
                        .await;
                }
                if receipt.status() {
                    let waited = unix_now().saturating_sub(Duration::from_millis(entry.seen_at_ms));
                    self.metrics.fulfill_latency(waited);
                    tracing::info!(target: "oracle::relayer", request_id = %id, tx = %tx.hash, block, status, "fulfilled");
                    failpoint("before_done");
                    return self
                        .finish(
                            &id,
                            Stage::Done {
                                tx: tx.hash,
                                status: *status,
                            },
                            "confirmed",
                        )
                        .await;
                }
                return self
                    .finish(
                        &id,
                        Stage::Skipped {
                            reason: format!("fulfill {} reverted", tx.hash),
                        },
                        "skipped_closed",
                    )
                    .await;
            }
            progress.receipt_block = None;
            // A lagging backend may serve the nonce before the receipt: only a consumed nonce
            // without any receipt of ours for several polls means someone else used it.
            progress.consumed_polls += 1;
            if progress.consumed_polls < CONSUMED_POLLS {
                return Ok(Next::Wait(poll));
            }
            tracing::warn!(target: "oracle::relayer", request_id = %id, nonce, "nonce consumed by another transaction; answering again");
            self.with_db(move |db| db.set_stage(&id, Stage::Open))
                .await?;
            // Someone else uses this key: take the next nonce from the node again.
            *self.next_nonce.lock().await = None;
            return Ok(Next::Again);
        }
        progress.receipt_block = None;
        progress.consumed_polls = 0;
        progress.polls += 1;
        let last = txs.last().expect("a Sending stage has a transaction");
        let age = unix_now().as_secs().saturating_sub(last.signed_at);
        if age >= self.settings.stuck_after.as_secs() {
            return self.replace(entry, &view, *status, *nonce, txs).await;
        }
        if progress.polls % REBROADCAST_EVERY == 1 {
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
        }
        Ok(Next::Wait(poll))
    }

    /// Replaces a stuck version with a higher fee. Past the request's expiry the holder may
    /// cancel it: if the simulation says the request is closed, the nonce is filled with a
    /// zero-value transfer to self instead of a fulfill that would revert.
    async fn replace(
        &self,
        entry: &Entry,
        view: &View,
        status: u8,
        nonce: u64,
        txs: &[SentTx],
    ) -> Result<Next> {
        let id = entry.request.request_id;
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
        let input = if last.cancel {
            Bytes::new()
        } else {
            let envelope = TxEnvelope::decode_2718(&mut last.raw.as_ref())
                .map_err(|e| Error::Db(format!("stored transaction undecodable: {e}")))?;
            match &envelope {
                TxEnvelope::Eip1559(t) => t.tx().input.clone(),
                _ => return Err(Error::Db("stored transaction is not EIP-1559".into())),
            }
        };
        let cancel = last.cancel
            || (entry.request.expiration() <= view.now
                && matches!(
                    self.simulate(&input, view.head).await?,
                    Simulation::Reverts(_)
                ));
        let sent = self.sign(nonce, &input, max_fee, tip, cancel)?;
        let mut all = txs.to_vec();
        all.push(sent.clone());
        let stage = Stage::Sending {
            status,
            nonce,
            txs: all,
        };
        self.with_db(move |db| db.set_stage(&id, stage)).await?;
        self.metrics
            .fulfill(if cancel { "cancelled" } else { "replaced" });
        tracing::warn!(target: "oracle::relayer", request_id = %id, nonce, old = %last.hash, new = %sent.hash, max_fee, cancel, "replacing stuck fulfill");
        self.broadcast(&sent.raw).await;
        Ok(Next::Wait(self.settings.poll_interval))
    }
}

/// Fee arithmetic of a replacement, exposed for tests: `v * (100 + pct) / 100 + 1`.
pub fn bumped(v: u128, pct: u64) -> u128 {
    v.saturating_mul(100 + u128::from(pct)) / 100 + 1
}
