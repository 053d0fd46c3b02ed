//! Content-addressed block files under `<repo>/blocks`.
//!
//! Layout: one file per block, `blocks/<first two hex digits>/<hex SHA-256 digest>`, keyed by
//! multihash like Kubo's flatfs, so CIDv0 and CIDv1 of the same bytes share a block.
//!
//! Crash safety: a block file only ever appears under its final name by `rename(2)` of a
//! complete file, so a killed process leaves at most stray files in `staging/`, which are
//! removed on the next open. New blocks of an import are written into a per-import
//! [`Staging`] directory and moved into place only when the import succeeded, so a failed or
//! aborted import stores nothing. With `sync` on, staged files are fsynced before the rename
//! and the shard directories after it, so the blocks are durable before the pin that
//! references them is committed. Every read re-hashes the block and fails on a mismatch, so
//! disk corruption is reported, never served.
//!
//! Only SHA2-256 blocks are stored; identity-hash CIDs (content inlined in the CID) are
//! answered from the CID itself.

use std::collections::HashSet;
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use cid::Cid;
use multihash::Multihash;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const SHA2_256: u64 = 0x12;
const IDENTITY: u64 = 0x00;

/// A block key: the SHA-256 digest.
pub type Key = [u8; 32];

/// The key of a CID, if it is a SHA2-256 CID.
pub fn key_of(cid: &Cid) -> Option<Key> {
    let mh = cid.hash();
    if mh.code() == SHA2_256 && mh.size() == 32 {
        mh.digest().try_into().ok()
    } else {
        None
    }
}

/// The CIDv1 (raw codec) for a key, as Kubo reports multihash-keyed blocks.
pub fn raw_cid_of_key(key: &Key) -> Cid {
    let mh = Multihash::<64>::wrap(SHA2_256, key).expect("32-byte digest fits");
    Cid::new_v1(crate::dagpb::RAW, mh)
}

fn hex(key: &Key) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in key {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Key> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let d = |c: u8| (c as char).to_digit(16);
        out[i] = (d(chunk[0])? * 16 + d(chunk[1])?) as u8;
    }
    Some(out)
}

/// The block files of a repo.
#[derive(Debug)]
pub struct BlockStore {
    blocks: PathBuf,
    staging: PathBuf,
    sync: bool,
    counter: AtomicU64,
}

impl BlockStore {
    /// Opens (creating if needed) the block directories under `repo`, discarding any staging
    /// leftovers of a previous process.
    pub fn open(repo: &Path, sync: bool) -> Result<Self> {
        let blocks = repo.join("blocks");
        let staging = repo.join("staging");
        match fs::remove_dir_all(&staging) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        fs::create_dir_all(&staging)?;
        for i in 0..256u32 {
            fs::create_dir_all(blocks.join(format!("{i:02x}")))?;
        }
        Ok(Self {
            blocks,
            staging,
            sync,
            counter: AtomicU64::new(0),
        })
    }

    fn path(&self, key: &Key) -> PathBuf {
        let name = hex(key);
        self.blocks.join(&name[..2]).join(name)
    }

    /// Whether the block is present (identity CIDs always are).
    pub fn has(&self, cid: &Cid) -> bool {
        if cid.hash().code() == IDENTITY {
            return true;
        }
        key_of(cid).is_some_and(|k| self.path(&k).exists())
    }

    /// Reads a block and checks it against its hash. `Ok(None)` if absent.
    pub fn get(&self, cid: &Cid) -> Result<Option<Bytes>> {
        let mh = cid.hash();
        if mh.code() == IDENTITY {
            return Ok(Some(Bytes::copy_from_slice(mh.digest())));
        }
        let Some(key) = key_of(cid) else {
            return Err(Error::BadRequest(format!(
                "unsupported multihash 0x{:x} in {cid}",
                mh.code()
            )));
        };
        self.get_key(&key).map_err(|e| match e {
            Error::CorruptBlock(_) => Error::CorruptBlock(cid.to_string()),
            e => e,
        })
    }

    /// Reads a block by key and checks it. `Ok(None)` if absent.
    pub fn get_key(&self, key: &Key) -> Result<Option<Bytes>> {
        let data = match fs::read(self.path(key)) {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if Sha256::digest(&data).as_slice() != key {
            return Err(Error::CorruptBlock(raw_cid_of_key(key).to_string()));
        }
        Ok(Some(Bytes::from(data)))
    }

    /// Removes a block (gc). Missing is not an error.
    pub fn remove(&self, key: &Key) -> Result<()> {
        match fs::remove_file(self.path(key)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every stored block key.
    pub fn keys(&self) -> Result<Vec<Key>> {
        let mut out = Vec::new();
        for shard in fs::read_dir(&self.blocks)? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for f in fs::read_dir(shard.path())? {
                let f = f?;
                if let Some(key) = f.file_name().to_str().and_then(unhex) {
                    out.push(key);
                }
            }
        }
        Ok(out)
    }

    /// A fresh staging area for one import.
    pub fn staging(&self) -> Result<Staging<'_>> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let dir = self.staging.join(format!("{}-{n}", std::process::id()));
        fs::create_dir(&dir)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Key, Vec<u8>)>(WRITE_QUEUE);
        let write_dir = dir.clone();
        let writer = std::thread::Builder::new()
            .name("px-store-writer".into())
            .spawn(move || -> std::io::Result<()> {
                for (key, data) in rx {
                    fs::File::create(write_dir.join(hex(&key)))?.write_all(&data)?;
                }
                Ok(())
            })?;
        Ok(Staging {
            store: self,
            dir,
            staged: Vec::new(),
            seen: HashSet::new(),
            writer: Some((tx, writer)),
        })
    }
}

/// Blocks queued to the staging writer thread (bounds memory to this many blocks).
const WRITE_QUEUE: usize = 8;

type Writer = (
    std::sync::mpsc::SyncSender<(Key, Vec<u8>)>,
    std::thread::JoinHandle<std::io::Result<()>>,
);

/// Blocks of one import, invisible until [`Staging::commit`]; dropped uncommitted, they are
/// deleted. Files are written by a dedicated thread so that hashing the next block overlaps
/// with writing the previous one.
#[derive(Debug)]
pub struct Staging<'a> {
    store: &'a BlockStore,
    dir: PathBuf,
    staged: Vec<Key>,
    seen: HashSet<Key>,
    writer: Option<Writer>,
}

impl Staging<'_> {
    /// Stages a block produced by the importer (whose CID was computed from `data`).
    pub fn put(&mut self, cid: &Cid, data: Vec<u8>) -> Result<()> {
        let Some(key) = key_of(cid) else {
            return Err(Error::Internal(format!(
                "cannot store non-sha256 block {cid}"
            )));
        };
        if !self.seen.insert(key) || self.store.path(&key).exists() {
            return Ok(());
        }
        let sent = match &self.writer {
            Some((tx, _)) => tx.send((key, data)).is_ok(),
            None => false,
        };
        if !sent {
            // The writer stopped on an error; join it to report that error.
            self.finish_writes()?;
            return Err(Error::Internal("staging writer stopped".into()));
        }
        self.staged.push(key);
        Ok(())
    }

    /// Waits for the writer thread and reports its first error.
    fn finish_writes(&mut self) -> Result<()> {
        if let Some((tx, handle)) = self.writer.take() {
            drop(tx);
            handle
                .join()
                .map_err(|_| Error::Internal("staging writer panicked".into()))??;
        }
        Ok(())
    }

    /// Number of new blocks staged.
    pub fn len(&self) -> usize {
        self.staged.len()
    }

    /// Whether nothing new was staged.
    pub fn is_empty(&self) -> bool {
        self.staged.is_empty()
    }

    /// Moves the staged blocks into the store. When the store syncs, the staged data is flushed
    /// (`syncfs`) before the renames and the renames are flushed after them, so the blocks are
    /// durable before the caller commits pins that reference them.
    pub fn commit(mut self) -> Result<()> {
        self.finish_writes()?;
        let sync = self.store.sync;
        if sync && !self.staged.is_empty() {
            syncfs(&self.dir)?;
        }
        for key in &self.staged {
            fs::rename(self.dir.join(hex(key)), self.store.path(key))?;
        }
        if sync && !self.staged.is_empty() {
            syncfs(&self.store.blocks)?;
        }
        Ok(())
    }
}

/// Flushes the filesystem holding `path`: one call instead of one journal commit per block
/// file, which on ext4 costs a few milliseconds each.
fn syncfs(path: &Path) -> Result<()> {
    let dir = fs::File::open(path)?;
    rustix::fs::syncfs(&dir).map_err(std::io::Error::from)?;
    Ok(())
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        let _ = self.finish_writes();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::importer::{ImportOptions, cid_of};

    #[test]
    fn staged_blocks_appear_only_on_commit_and_corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::open(dir.path(), false).unwrap();
        let data = b"hello world";
        let cid = cid_of(data, &ImportOptions::v1()).unwrap().cid;

        let mut st = store.staging().unwrap();
        st.put(&cid, data.to_vec()).unwrap();
        assert!(!store.has(&cid));
        drop(st);
        assert!(!store.has(&cid));

        let mut st = store.staging().unwrap();
        st.put(&cid, data.to_vec()).unwrap();
        st.commit().unwrap();
        assert_eq!(store.get(&cid).unwrap().unwrap(), &data[..]);
        assert_eq!(store.keys().unwrap(), vec![key_of(&cid).unwrap()]);

        fs::write(store.path(&key_of(&cid).unwrap()), b"hello worle").unwrap();
        assert!(matches!(store.get(&cid), Err(Error::CorruptBlock(_))));
        store.remove(&key_of(&cid).unwrap()).unwrap();
        assert!(store.get(&cid).unwrap().is_none());
    }

    #[test]
    fn staging_leftovers_are_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::open(dir.path(), true).unwrap();
        let st = store.staging().unwrap();
        let leftover = st.dir.join("junk");
        fs::write(&leftover, b"x").unwrap();
        // Simulate a killed process: the staging area is never cleaned up by Drop.
        std::mem::forget(st);
        drop(store);
        let _store = BlockStore::open(dir.path(), true).unwrap();
        assert!(!leftover.exists());
    }
}
