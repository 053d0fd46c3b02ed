//! The relayer's durable state in redb (ACID, one file).
//!
//! - `meta`: the scan cursor (last block whose logs are recorded) and its hash, and the
//!   chain/operator the database belongs to.
//! - `requests`: request id -> [`Entry`] (the request and its [`Stage`]), JSON encoded.
//! - `active`: the ids of the requests still worked on (`Open` or `Sending`), so a poll reads
//!   only those and finished entries cost nothing however many accumulate.
//! - `ipns_seq`: IPNS name -> highest record sequence verified (the resolver's
//!   [`SequenceFloor`], so a replayed older record is refused after a restart too).
//!
//! Every transition is one write transaction, and a transaction is written *before* the
//! effect it announces (a signed transaction is stored before it is broadcast), so a process
//! killed at any point restarts into a state from which it neither misses nor repeats work.

use std::path::Path;
use std::sync::Arc;

use alloy::primitives::{Address, B256, Bytes};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::request::Request;
use crate::error::{Error, Result};
use crate::resolver::SequenceFloor;
use px_core::ipns::IpnsName;

const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const REQUESTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("requests");
const IPNS_SEQ: TableDefinition<'_, &[u8], u64> = TableDefinition::new("ipns_seq");
const ACTIVE: TableDefinition<'_, &[u8], ()> = TableDefinition::new("active");

/// One broadcast (or about to be broadcast) fulfill transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SentTx {
    /// Transaction hash.
    pub hash: B256,
    /// EIP-1559 max fee.
    pub max_fee_per_gas: u128,
    /// EIP-1559 priority fee.
    pub max_priority_fee_per_gas: u128,
    /// The signed transaction (EIP-2718 encoding), to rebroadcast after a restart.
    pub raw: Bytes,
    /// Unix time it was signed.
    pub signed_at: u64,
    /// A zero-value transfer to self that only fills the nonce (the request expired and was
    /// closed while its fulfill was stuck), not a fulfill.
    #[serde(default)]
    pub cancel: bool,
}

/// Where a request is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    /// Seen, not yet answered.
    Open,
    /// A fulfill with `nonce` was signed; `txs` are its versions (replacements last).
    Sending {
        /// The answer's status code.
        status: u8,
        /// Nonce of every version.
        nonce: u64,
        /// Versions, oldest first.
        txs: Vec<SentTx>,
    },
    /// Fulfilled by `tx`.
    Done {
        /// The mined fulfill.
        tx: B256,
        /// The status answered.
        status: u8,
    },
    /// Not answered by this relayer (expired, already closed, callback would revert, ...).
    Skipped {
        /// Why.
        reason: String,
    },
    /// Its log's block left the canonical chain before a fulfill was signed. Not worked on;
    /// reopened if a rescan finds the log again (the request was re-included).
    Reorged,
}

impl Stage {
    /// Whether nothing more will happen to the request.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Done { .. } | Self::Skipped { .. })
    }

    /// Whether the relayer works on the request (`Open` or `Sending`).
    pub fn is_active(&self) -> bool {
        matches!(self, Self::Open | Self::Sending { .. })
    }
}

/// A request and its stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The request.
    pub request: Request,
    /// Unix time (ms) the relayer first recorded it.
    pub seen_at_ms: u64,
    /// Its stage.
    pub stage: Stage,
}

/// The scan cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Last block whose logs are recorded.
    pub block: u64,
    /// Its hash.
    pub hash: B256,
}

/// Handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    db: Arc<Database>,
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::Db(e.to_string()))
}

fn from_json<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| Error::Db(e.to_string()))
}

impl Db {
    /// Opens (or creates) the database and checks it belongs to `chain_id` and `operator`.
    pub fn open(path: &Path, chain_id: u64, operator: Address) -> Result<Self> {
        let db = Database::create(path)?;
        let owner = format!("{chain_id}:{operator}");
        let tx = db.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            let stored = meta.get("owner")?.map(|v| v.value().to_vec());
            match stored {
                Some(s) if s != owner.as_bytes() => {
                    return Err(Error::Config(format!(
                        "relayer database {} belongs to {}, not {owner}",
                        path.display(),
                        String::from_utf8_lossy(&s)
                    )));
                }
                Some(_) => {}
                None => {
                    meta.insert("owner", owner.as_bytes())?;
                }
            }
            let indexed = meta.get("active_index")?.is_some();
            let requests = tx.open_table(REQUESTS)?;
            let mut active = tx.open_table(ACTIVE)?;
            if !indexed {
                // A database from before the index: build it once.
                for item in requests.iter()? {
                    let (k, v) = item?;
                    if from_json::<Entry>(v.value())?.stage.is_active() {
                        active.insert(k.value(), ())?;
                    }
                }
                meta.insert("active_index", &[1u8][..])?;
            }
            tx.open_table(IPNS_SEQ)?;
        }
        tx.commit()?;
        Ok(Self { db: Arc::new(db) })
    }

    /// The scan cursor, if any block was scanned.
    pub fn cursor(&self) -> Result<Option<Cursor>> {
        let tx = self.db.begin_read()?;
        let meta = tx.open_table(META)?;
        meta.get("cursor")?
            .map(|v| from_json(v.value()))
            .transpose()
    }

    /// Records the requests of a scanned range and moves the cursor, atomically. A request not
    /// seen before is stored `Open`. A request seen again in another block (its log re-emitted
    /// after a reorg) gets its new block, and is reopened if it was `Reorged` or still `Open`;
    /// a `Reorged` request seen again in the same block is reopened too. Returns the entries
    /// that are new or reopened.
    pub fn record_scan(
        &self,
        requests: Vec<Request>,
        cursor: Cursor,
        now_ms: u64,
    ) -> Result<Vec<Entry>> {
        let tx = self.db.begin_write()?;
        let mut fresh = Vec::new();
        {
            let mut table = tx.open_table(REQUESTS)?;
            let mut active = tx.open_table(ACTIVE)?;
            for request in requests {
                let key = request.request_id;
                let stored = table
                    .get(key.as_slice())?
                    .map(|v| from_json::<Entry>(v.value()))
                    .transpose()?;
                let entry = match stored {
                    None => Entry {
                        request,
                        seen_at_ms: now_ms,
                        stage: Stage::Open,
                    },
                    Some(mut e) => {
                        let moved = e.request.block_hash != request.block_hash;
                        let reopen = matches!(e.stage, Stage::Reorged);
                        if !moved && !reopen {
                            continue;
                        }
                        e.request = request;
                        if reopen {
                            e.stage = Stage::Open;
                        }
                        e
                    }
                };
                table.insert(key.as_slice(), to_json(&entry)?.as_slice())?;
                if entry.stage.is_active() {
                    active.insert(key.as_slice(), ())?;
                }
                if matches!(entry.stage, Stage::Open) {
                    fresh.push(entry);
                }
            }
            let mut meta = tx.open_table(META)?;
            meta.insert("cursor", to_json(&cursor)?.as_slice())?;
        }
        tx.commit()?;
        Ok(fresh)
    }

    /// Moves the cursor back to `cursor` (after a reorg) and marks every `Open` request above
    /// it `Reorged`: the rescan from the cursor reopens those whose log is still (or again) on
    /// the canonical chain. Returns how many were marked.
    pub fn rewind(&self, cursor: Cursor) -> Result<usize> {
        let tx = self.db.begin_write()?;
        let mut marked = 0;
        {
            let mut table = tx.open_table(REQUESTS)?;
            let mut active = tx.open_table(ACTIVE)?;
            let ids: Vec<Vec<u8>> = active
                .iter()?
                .map(|item| item.map(|(k, _)| k.value().to_vec()))
                .collect::<std::result::Result<_, _>>()?;
            for id in ids {
                let Some(mut entry) = table
                    .get(id.as_slice())?
                    .map(|v| from_json::<Entry>(v.value()))
                    .transpose()?
                else {
                    continue;
                };
                if entry.request.block_number > cursor.block && matches!(entry.stage, Stage::Open) {
                    entry.stage = Stage::Reorged;
                    table.insert(id.as_slice(), to_json(&entry)?.as_slice())?;
                    active.remove(id.as_slice())?;
                    marked += 1;
                }
            }
            let mut meta = tx.open_table(META)?;
            meta.insert("cursor", to_json(&cursor)?.as_slice())?;
        }
        tx.commit()?;
        Ok(marked)
    }

    /// One entry.
    pub fn get(&self, id: &B256) -> Result<Option<Entry>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(REQUESTS)?;
        table
            .get(id.as_slice())?
            .map(|v| from_json(v.value()))
            .transpose()
    }

    /// Every entry still worked on (`Open` or `Sending`), read through the index: the cost
    /// does not grow with finished entries.
    pub fn unfinished(&self) -> Result<Vec<Entry>> {
        let tx = self.db.begin_read()?;
        let active = tx.open_table(ACTIVE)?;
        let table = tx.open_table(REQUESTS)?;
        let mut out = Vec::new();
        for item in active.iter()? {
            let (k, _) = item?;
            if let Some(v) = table.get(k.value())? {
                out.push(from_json(v.value())?);
            }
        }
        Ok(out)
    }

    /// How many entries are still worked on.
    pub fn active_count(&self) -> Result<u64> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(ACTIVE)?.len()?)
    }

    /// Every entry (a full scan: for tests and tools, not for the poll loop).
    pub fn all(&self) -> Result<Vec<Entry>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(REQUESTS)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (_, v) = item?;
            out.push(from_json(v.value())?);
        }
        Ok(out)
    }

    /// Sets a request's stage. A final stage is never left (returns false and changes
    /// nothing), so a late writer cannot reopen a finished request.
    pub fn set_stage(&self, id: &B256, stage: Stage) -> Result<bool> {
        let tx = self.db.begin_write()?;
        let changed;
        {
            let mut table = tx.open_table(REQUESTS)?;
            let current = table
                .get(id.as_slice())?
                .map(|v| from_json::<Entry>(v.value()));
            let Some(mut entry) = current.transpose()? else {
                return Ok(false);
            };
            changed = !entry.stage.is_final();
            if changed {
                if let Stage::Sending { nonce, .. } = &stage {
                    let mut meta = tx.open_table(META)?;
                    let max = meta
                        .get("max_nonce")?
                        .map(|v| from_json::<u64>(v.value()))
                        .transpose()?;
                    if max.is_none_or(|m| *nonce > m) {
                        meta.insert("max_nonce", to_json(nonce)?.as_slice())?;
                    }
                }
                let mut active = tx.open_table(ACTIVE)?;
                if stage.is_active() {
                    active.insert(id.as_slice(), ())?;
                } else {
                    active.remove(id.as_slice())?;
                }
                entry.stage = stage;
                table.insert(id.as_slice(), to_json(&entry)?.as_slice())?;
            }
        }
        tx.commit()?;
        Ok(changed)
    }

    /// The highest nonce of any signed fulfill, if any (kept in `meta`, no scan).
    pub fn max_nonce(&self) -> Result<Option<u64>> {
        let tx = self.db.begin_read()?;
        let meta = tx.open_table(META)?;
        if let Some(v) = meta.get("max_nonce")? {
            return Ok(Some(from_json(v.value())?));
        }
        drop(meta);
        drop(tx);
        // A database from before `max_nonce` was kept.
        Ok(self
            .all()?
            .into_iter()
            .filter_map(|e| match e.stage {
                Stage::Sending { nonce, .. } => Some(nonce),
                _ => None,
            })
            .max())
    }
}

impl SequenceFloor for Db {
    fn check_and_raise(&self, name: &IpnsName, seq: u64) -> Result<Option<u64>> {
        let key = name.to_bytes();
        {
            let tx = self.db.begin_read()?;
            let table = tx.open_table(IPNS_SEQ)?;
            let floor = table.get(key.as_slice())?.map(|v| v.value()).unwrap_or(0);
            if seq < floor {
                return Ok(Some(floor));
            }
            if seq == floor {
                return Ok(None);
            }
        }
        let tx = self.db.begin_write()?;
        let regressed = {
            let mut table = tx.open_table(IPNS_SEQ)?;
            let floor = table.get(key.as_slice())?.map(|v| v.value()).unwrap_or(0);
            if seq < floor {
                Some(floor)
            } else {
                table.insert(key.as_slice(), seq)?;
                None
            }
        };
        tx.commit()?;
        Ok(regressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{FixedBytes, U256};

    fn request(n: u8) -> Request {
        Request {
            request_id: B256::repeat_byte(n),
            spec_id: B256::ZERO,
            requester: Address::ZERO,
            payment: U256::ZERO,
            callback_addr: Address::ZERO,
            callback_function_id: FixedBytes::ZERO,
            cancel_expiration: U256::from(100),
            token_id: U256::from(n),
            block_number: u64::from(n),
            block_hash: B256::ZERO,
            tx_hash: B256::ZERO,
        }
    }

    #[test]
    fn rewind_marks_open_requests_reorged_and_a_rescan_reopens_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("r.redb"), 1, Address::ZERO).unwrap();
        let c = |block| Cursor {
            block,
            hash: B256::ZERO,
        };
        db.record_scan(vec![request(3), request(7), request(8)], c(10), 0)
            .unwrap();
        let sending = Stage::Sending {
            status: 0,
            nonce: 4,
            txs: Vec::new(),
        };
        db.set_stage(&B256::repeat_byte(8), sending.clone())
            .unwrap();
        assert_eq!(db.max_nonce().unwrap(), Some(4));
        // A reorg below block 7: the open request above it is unconfirmed, the signed one
        // stays, the one below is untouched.
        assert_eq!(db.rewind(c(5)).unwrap(), 1);
        let stage = |n| db.get(&B256::repeat_byte(n)).unwrap().unwrap().stage;
        assert_eq!(stage(7), Stage::Reorged);
        assert_eq!(stage(8), sending);
        assert_eq!(stage(3), Stage::Open);
        assert_eq!(db.unfinished().unwrap().len(), 2);
        assert_eq!(db.active_count().unwrap(), 2);
        // The rescan finds request 7 again, in another block: reopened there.
        let mut moved = request(7);
        moved.block_number = 9;
        moved.block_hash = B256::repeat_byte(0x99);
        let fresh = db.record_scan(vec![moved.clone()], c(10), 0).unwrap();
        assert_eq!(fresh.len(), 1);
        let e = db.get(&B256::repeat_byte(7)).unwrap().unwrap();
        assert_eq!((e.stage, e.request), (Stage::Open, moved));
        // A finished request stays finished and leaves the index.
        db.set_stage(&B256::repeat_byte(3), Stage::Skipped { reason: "x".into() })
            .unwrap();
        assert_eq!(db.active_count().unwrap(), 2);
        assert_eq!(db.all().unwrap().len(), 3);
        assert_eq!(db.record_scan(vec![request(3)], c(10), 0).unwrap().len(), 0);
    }

    #[test]
    fn scan_is_idempotent_and_final_stages_stick() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.redb");
        let db = Db::open(&path, 1, Address::ZERO).unwrap();
        assert_eq!(db.cursor().unwrap(), None);
        let c = Cursor {
            block: 5,
            hash: B256::ZERO,
        };
        assert_eq!(
            db.record_scan(vec![request(1), request(2)], c, 0)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(db.record_scan(vec![request(1)], c, 0).unwrap().len(), 0);
        let id = B256::repeat_byte(1);
        assert!(
            db.set_stage(
                &id,
                Stage::Done {
                    tx: B256::ZERO,
                    status: 0
                }
            )
            .unwrap()
        );
        assert!(!db.set_stage(&id, Stage::Open).unwrap());
        drop(db);
        let db = Db::open(&path, 1, Address::ZERO).unwrap();
        assert_eq!(db.cursor().unwrap(), Some(c));
        assert_eq!(db.unfinished().unwrap().len(), 1);
        let name = IpnsName::from_bytes(&px_core::contracts::ipns_name_bytes(&[7; 32])).unwrap();
        assert_eq!(db.check_and_raise(&name, 3).unwrap(), None);
        assert_eq!(db.check_and_raise(&name, 3).unwrap(), None);
        drop(db);
        let db = Db::open(&path, 1, Address::ZERO).unwrap();
        assert_eq!(db.check_and_raise(&name, 2).unwrap(), Some(3));
        assert_eq!(db.check_and_raise(&name, 4).unwrap(), None);
        assert_eq!(db.check_and_raise(&name, 3).unwrap(), Some(4));
        drop(db);
        assert!(matches!(
            Db::open(&path, 2, Address::ZERO),
            Err(Error::Config(_))
        ));
    }
}
