//! The relayer's durable state in redb (ACID, one file).
//!
//! - `meta`: the scan cursor (last block whose logs are recorded) and its hash, and the
//!   chain/operator the database belongs to.
//! - `requests`: request id -> [`Entry`] (the request and its [`Stage`]), JSON encoded.
//! - `ipns_seq`: IPNS name -> highest record sequence verified (the resolver's
//!   [`SequenceFloor`], so a replayed older record is refused after a restart too).
//!
//! Every transition is one write transaction, and a transaction is written *before* the
//! effect it announces (a signed transaction is stored before it is broadcast), so a process
//! killed at any point restarts into a state from which it neither misses nor repeats work.

use std::path::Path;
use std::sync::Arc;

use alloy::primitives::{Address, B256, Bytes};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::request::Request;
use crate::error::{Error, Result};
use crate::resolver::SequenceFloor;
use px_core::ipns::IpnsName;

const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const REQUESTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("requests");
const IPNS_SEQ: TableDefinition<'_, &[u8], u64> = TableDefinition::new("ipns_seq");

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
}

impl Stage {
    /// Whether nothing more will happen to the request.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Done { .. } | Self::Skipped { .. })
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
            tx.open_table(REQUESTS)?;
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

    /// Records newly seen requests (keeping existing entries untouched) and moves the cursor,
    /// atomically. Returns the entries that were new.
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
            for request in requests {
                let key = request.request_id;
                if table.get(key.as_slice())?.is_some() {
                    continue;
                }
                let entry = Entry {
                    request,
                    seen_at_ms: now_ms,
                    stage: Stage::Open,
                };
                table.insert(key.as_slice(), to_json(&entry)?.as_slice())?;
                fresh.push(entry);
            }
            let mut meta = tx.open_table(META)?;
            meta.insert("cursor", to_json(&cursor)?.as_slice())?;
        }
        tx.commit()?;
        Ok(fresh)
    }

    /// Moves the cursor back to `cursor` (after a reorg deeper than the confirmations) and
    /// forgets the open requests above it whose block is not canonical any more (`gone`).
    pub fn rewind(&self, cursor: Cursor, gone: &[B256]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(REQUESTS)?;
            for id in gone {
                let stage = table
                    .get(id.as_slice())?
                    .map(|v| from_json::<Entry>(v.value()))
                    .transpose()?
                    .map(|e| e.stage);
                if matches!(stage, Some(Stage::Open)) {
                    table.remove(id.as_slice())?;
                }
            }
            let mut meta = tx.open_table(META)?;
            meta.insert("cursor", to_json(&cursor)?.as_slice())?;
        }
        tx.commit()?;
        Ok(())
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

    /// Every entry that is not final.
    pub fn unfinished(&self) -> Result<Vec<Entry>> {
        self.filter(|s| !s.is_final())
    }

    /// Every entry.
    pub fn all(&self) -> Result<Vec<Entry>> {
        self.filter(|_| true)
    }

    fn filter(&self, keep: impl Fn(&Stage) -> bool) -> Result<Vec<Entry>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(REQUESTS)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (_, v) = item?;
            let entry: Entry = from_json(v.value())?;
            if keep(&entry.stage) {
                out.push(entry);
            }
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
                entry.stage = stage;
                table.insert(id.as_slice(), to_json(&entry)?.as_slice())?;
            }
        }
        tx.commit()?;
        Ok(changed)
    }

    /// Deletes a request (its log was reorged out).
    pub fn remove(&self, id: &B256) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(REQUESTS)?;
            table.remove(id.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The highest nonce of any signed fulfill, if any.
    pub fn max_nonce(&self) -> Result<Option<u64>> {
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
