//! The repo: blocks, pins, IPNS records and keys under one directory.
//!
//! ```text
//! <repo>/packs/<id>.pack           append-only block packs (see blockstore)
//! <repo>/keystore/<name>           ed25519 keys, 0600
//! <repo>/meta.redb                 block index, pins and IPNS records (ACID, fsynced commits)
//! ```
//!
//! Pins are recursive: a pinned root keeps its whole DAG. Garbage collection takes the write
//! side of `gc_lock`; imports (from their first staged block to their pin commit) and
//! `pin/add` take the read side, so gc never removes a block an import relies on before the
//! import's pin is committed. An import's blocks and its pins are committed in one
//! transaction. The redb database holds an
//! exclusive file lock, so two daemons cannot share a repo.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use cid::Cid;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::blockstore::{BlockStore, Key, Staging, key_of, raw_cid_of_key};
use crate::dagpb;
use crate::error::{Error, Result};
use crate::ipns::IpnsName;
use crate::keystore::KeyStore;

/// Pinned root CID bytes -> pin kind.
const PINS: TableDefinition<'_, &[u8], u8> = TableDefinition::new("pins");
/// IPNS name bytes -> signed record.
const RECORDS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("ipns_records");

const RECURSIVE: u8 = 1;

/// An opened repo.
#[derive(Debug)]
pub struct Repo {
    /// Block files.
    pub blocks: BlockStore,
    /// IPNS keys.
    pub keys: KeyStore,
    db: Arc<Database>,
    gc_lock: RwLock<()>,
    /// Serializes IPNS publishes so sequence numbers strictly increase.
    pub publish_lock: Mutex<()>,
}

fn lock_poisoned<T>(_: T) -> Error {
    Error::Internal("lock poisoned".into())
}

impl Repo {
    /// Opens or initializes the repo at `path`.
    pub fn open(path: &Path, sync: bool) -> Result<Self> {
        std::fs::create_dir_all(path)?;
        let db = Arc::new(Database::create(path.join("meta.redb"))?);
        let blocks = BlockStore::open(path, db.clone(), sync)?;
        let keys = KeyStore::open(path)?;
        let tx = db.begin_write()?;
        tx.open_table(PINS)?;
        tx.open_table(RECORDS)?;
        tx.commit()?;
        Ok(Self {
            blocks,
            keys,
            db,
            gc_lock: RwLock::new(()),
            publish_lock: Mutex::new(()),
        })
    }

    /// Holds off garbage collection for the duration of an import: blocks the import found
    /// already stored (and did not stage again) must not be collected before its pins commit.
    pub fn import_guard(&self) -> Result<RwLockReadGuard<'_, ()>> {
        self.gc_lock.read().map_err(lock_poisoned)
    }

    /// Commits an import's blocks and pins `roots`, in one transaction. The caller holds the
    /// [`Repo::import_guard`] it took before staging.
    pub fn commit_import(
        &self,
        _guard: &RwLockReadGuard<'_, ()>,
        staging: Staging<'_>,
        roots: &[Cid],
    ) -> Result<()> {
        let staged = staging.finish()?;
        let tx = self.db.begin_write()?;
        let pending = staged.record(&tx)?;
        {
            let mut pins = tx.open_table(PINS)?;
            for root in roots {
                pins.insert(root.to_bytes().as_slice(), RECURSIVE)?;
            }
        }
        tx.commit()?;
        pending.committed();
        Ok(())
    }

    /// Visits every CID of the DAG under `root` once (by multihash), reading and verifying each
    /// block that may have links. Fails if a block is missing.
    pub fn walk(&self, root: &Cid, mut visit: impl FnMut(&Cid)) -> Result<()> {
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut stack = vec![*root];
        while let Some(cid) = stack.pop() {
            if !seen.insert(cid.hash().to_bytes()) {
                continue;
            }
            visit(&cid);
            if cid.codec() == dagpb::DAG_PB {
                let block = self
                    .blocks
                    .get(&cid)?
                    .ok_or_else(|| Error::BlockNotFound(cid.to_string()))?;
                let links = dagpb::links(&block)
                    .ok_or_else(|| Error::Internal(format!("block {cid} is not valid dag-pb")))?;
                stack.extend(links.into_iter().rev());
            } else if !self.blocks.has(&cid)? {
                return Err(Error::BlockNotFound(cid.to_string()));
            }
        }
        Ok(())
    }

    /// Pins `roots` recursively, all or none; every block of their DAGs must be present.
    pub fn pin_add(&self, roots: &[Cid]) -> Result<()> {
        let _guard = self.gc_lock.read().map_err(lock_poisoned)?;
        for root in roots {
            self.walk(root, |_| {})?;
        }
        let tx = self.db.begin_write()?;
        {
            let mut pins = tx.open_table(PINS)?;
            for root in roots {
                pins.insert(root.to_bytes().as_slice(), RECURSIVE)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Removes recursive pins, all or none: fails if any of `roots` is not a pin root.
    pub fn pin_rm(&self, roots: &[Cid]) -> Result<()> {
        let tx = self.db.begin_write()?;
        let mut missing = None;
        {
            let mut pins = tx.open_table(PINS)?;
            for root in roots {
                if pins.remove(root.to_bytes().as_slice())?.is_none() {
                    missing = Some(*root);
                    break;
                }
            }
        }
        if let Some(root) = missing {
            tx.abort()?;
            tracing::debug!(target: "store::pins", %root, "pin/rm of a CID not pinned");
            return Err(Error::NotPinned("not pinned or pinned indirectly".into()));
        }
        tx.commit()?;
        Ok(())
    }

    /// The recursively pinned roots.
    pub fn pinned_roots(&self) -> Result<Vec<Cid>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(PINS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, _) = row?;
            let cid = Cid::try_from(k.value())
                .map_err(|e| Error::Internal(format!("bad pin key: {e}")))?;
            out.push(cid);
        }
        Ok(out)
    }

    /// Whether `cid` is a recursive pin root.
    pub fn is_pinned_root(&self, cid: &Cid) -> Result<bool> {
        let tx = self.db.begin_read()?;
        Ok(tx
            .open_table(PINS)?
            .get(cid.to_bytes().as_slice())?
            .is_some())
    }

    /// Removes every block not reachable from a pin; returns the removed blocks as raw CIDv1.
    pub fn gc(&self) -> Result<Vec<Cid>> {
        let _guard = self.gc_lock.write().map_err(lock_poisoned)?;
        let mut live: HashSet<Key> = HashSet::new();
        for root in self.pinned_roots()? {
            self.walk(&root, |cid| {
                if let Some(k) = key_of(cid) {
                    live.insert(k);
                }
            })?;
        }
        let dead: Vec<Key> = self
            .blocks
            .keys()?
            .into_iter()
            .filter(|k| !live.contains(k))
            .collect();
        self.blocks.remove(&dead)?;
        Ok(dead.iter().map(raw_cid_of_key).collect())
    }

    /// The stored record for a name.
    pub fn record(&self, name: &IpnsName) -> Result<Option<Vec<u8>>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(RECORDS)?;
        Ok(table
            .get(name.to_bytes().as_slice())?
            .map(|v| v.value().to_vec()))
    }

    /// Stores a record for a name (callers verify it and its ordering first).
    pub fn put_record(&self, name: &IpnsName, record: &[u8]) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(RECORDS)?
            .insert(name.to_bytes().as_slice(), record)?;
        tx.commit()?;
        Ok(())
    }

    /// All stored records by name (for diagnostics and tests).
    pub fn records(&self) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(RECORDS)?;
        let mut out = BTreeMap::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.insert(k.value().to_vec(), v.value().to_vec());
        }
        Ok(out)
    }
}
