//! Content-addressed blocks in append-only pack files, indexed in the repo database.
//!
//! Layout: `<repo>/packs/<16 hex digits>.pack`. A pack starts with the magic `PXPACK1\n`,
//! then holds records `[32-byte SHA-256 key][u32 LE length][block bytes]`. The redb tables
//! [`BLOCKS`] (key -> pack, offset, length) and [`PACKS`] (pack -> file size, live bytes) say
//! which records are live; a block is stored if and only if the index says so. Blocks are keyed
//! by multihash digest, so CIDv0 and CIDv1 of the same bytes share one block.
//!
//! Why packs and not one file per block (Kubo's flatfs): creating a file costs an inode, a
//! directory entry and their metadata updates, per 256 KiB block. On the ext4 volumes of these
//! machines that capped a 256 MiB add near 400 MB/s (and slower still right after deletes, when
//! ext4 skips recently freed inodes), while appending the same bytes to one file runs at about
//! 5.8 GB/s (`store/benches/throughput.rs` measures both).
//!
//! Writes: an import appends its new blocks to its own fresh pack ([`Staging`]), on a
//! dedicated writer thread so hashing the next block overlaps with writing the previous one.
//! An import whose new blocks stay under 512 KiB (a small upload, a page of the node's file
//! index) is kept in memory instead and appended, when it finishes, to a pack shared by small
//! imports (up to 64 MiB, then a new one): a hundred thousand small uploads do not cost a
//! hundred thousand files. Records appended for an import that then fails to commit are dead
//! bytes, reclaimed when compaction rewrites the pack.
//! Nothing is visible until [`StagedPack::record`] inserts the index rows inside the caller's
//! write transaction, the same transaction that commits the import's pins: blocks and pins
//! become visible together or not at all. A pack of its own is written with direct I/O where
//! the file system allows it ([`write_pack_direct`]); with `sync` on, it is flushed
//! (`fdatasync`) and its directory entry synced before that transaction commits. A failed or
//! abandoned import deletes its pack; a killed process leaves a pack the index does not name,
//! which the next [`BlockStore::open`] deletes.
//!
//! Reads re-hash every block and fail on a mismatch, so disk corruption is reported, never
//! served. Garbage collection drops index rows, deletes packs with nothing live and rewrites
//! packs that are mostly dead ([`BlockStore::remove`]).
//!
//! Only SHA2-256 blocks are stored; identity-hash CIDs (content inlined in the CID) are
//! answered from the CID itself.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{ErrorKind, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cid::Cid;
use multihash::Multihash;
use redb::{
    Database, ReadOnlyTable, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::importer::Block;

const SHA2_256: u64 = 0x12;
const IDENTITY: u64 = 0x00;

/// A block key: the SHA-256 digest.
pub type Key = [u8; 32];

/// Block key -> (pack id, offset of the block bytes, block length).
const BLOCKS: TableDefinition<'_, Key, (u64, u64, u32)> = TableDefinition::new("blocks");
/// Pack id -> (file size, bytes of live records, headers included).
const PACKS: TableDefinition<'_, u64, (u64, u64)> = TableDefinition::new("packs");

const MAGIC: &[u8; 8] = b"PXPACK1\n";
/// Key and length before every block in a pack.
const RECORD_HEADER: u64 = 36;
/// With `sync`, writeback of a pack is started every this many bytes, so the final flush only
/// waits for the tail.
const WRITEBACK_EVERY: u64 = 8 << 20;
/// Blocks queued to a staging writer thread (bounds memory to this many blocks).
const WRITE_QUEUE: usize = 8;
/// Open pack files kept for reading.
const OPEN_PACKS: usize = 64;
/// An import whose new blocks (headers included) fit in this many bytes is kept in memory and
/// appended to the shared small-import pack when it finishes, instead of getting a pack file of
/// its own: uploads of small files and index pages do not cost a file each.
const SMALL_IMPORT: u64 = 512 << 10;
/// A shared small-import pack is closed for appends once it reaches this size.
const SMALL_PACK_MAX: u64 = 64 << 20;

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

fn pack_name(id: u64) -> String {
    format!("{id:016x}.pack")
}

fn pack_id(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".pack")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

/// The blocks of a repo.
#[derive(Debug)]
pub struct BlockStore {
    dir: PathBuf,
    db: Arc<Database>,
    sync: bool,
    next_pack: AtomicU64,
    open: Mutex<HashMap<u64, Arc<File>>>,
    /// The pack small imports are appended to, while it is below [`SMALL_PACK_MAX`].
    small: Mutex<Option<SmallPack>>,
}

/// The shared pack of small imports: its id, an append handle and the end of its records.
#[derive(Debug)]
struct SmallPack {
    id: u64,
    file: File,
    end: u64,
}

impl BlockStore {
    /// Opens (creating if needed) the packs under `repo`, indexed in `db`. Deletes packs the
    /// index does not name (an import that never committed) and converts a one-file-per-block
    /// repo of an earlier version.
    pub fn open(repo: &Path, db: Arc<Database>, sync: bool) -> Result<Self> {
        let dir = repo.join("packs");
        fs::create_dir_all(&dir)?;
        let tx = db.begin_write()?;
        tx.open_table(BLOCKS)?;
        tx.open_table(PACKS)?;
        tx.commit()?;

        let known: HashSet<u64> = {
            let tx = db.begin_read()?;
            let packs = tx.open_table(PACKS)?;
            packs
                .iter()?
                .map(|row| row.map(|(k, _)| k.value()))
                .collect::<std::result::Result<_, _>>()?
        };
        let mut max_id = known.iter().copied().max().unwrap_or(0);
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(pack_id) else {
                continue;
            };
            max_id = max_id.max(id);
            if !known.contains(&id) {
                tracing::info!(target: "store::blocks", pack = %name.to_string_lossy(), "removing a pack no commit refers to");
                fs::remove_file(entry.path())?;
            }
        }
        let store = Self {
            dir,
            db,
            sync,
            next_pack: AtomicU64::new(max_id + 1),
            open: Mutex::new(HashMap::new()),
            small: Mutex::new(None),
        };
        store.migrate_flatfs(repo)?;
        Ok(store)
    }

    /// Moves the blocks of the earlier one-file-per-block layout (`blocks/xx/<hex>`) into a
    /// pack, skipping files whose content does not match their name, then removes that layout.
    fn migrate_flatfs(&self, repo: &Path) -> Result<()> {
        let old = repo.join("blocks");
        if !old.is_dir() {
            return Ok(());
        }
        let mut staging = self.staging()?;
        let mut moved = 0usize;
        for shard in fs::read_dir(&old)? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for file in fs::read_dir(shard.path())? {
                let file = file?;
                let Some(key) = file.file_name().to_str().and_then(unhex) else {
                    continue;
                };
                let data = fs::read(file.path())?;
                if Sha256::digest(&data).as_slice() != key {
                    tracing::warn!(target: "store::blocks", file = %file.path().display(), "skipping a corrupt block file");
                    continue;
                }
                staging.put_key(key, vec![Bytes::from(data)])?;
                moved += 1;
            }
        }
        let staged = staging.finish()?;
        let tx = self.db.begin_write()?;
        let pending = staged.record(&tx)?;
        tx.commit()?;
        pending.committed();
        fs::remove_dir_all(&old)?;
        match fs::remove_dir_all(repo.join("staging")) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        tracing::info!(target: "store::blocks", blocks = moved, "moved block files into a pack");
        Ok(())
    }

    fn locate(&self, key: &Key) -> Result<Option<(u64, u64, u32)>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(BLOCKS)?;
        Ok(table.get(key)?.map(|v| v.value()))
    }

    fn pack_file(&self, id: u64) -> std::io::Result<Arc<File>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = open.get(&id) {
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(self.dir.join(pack_name(id)))?);
        if open.len() >= OPEN_PACKS {
            open.clear();
        }
        open.insert(id, f.clone());
        Ok(f)
    }

    fn forget_pack(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Whether the block is present (identity CIDs always are).
    pub fn has(&self, cid: &Cid) -> Result<bool> {
        if cid.hash().code() == IDENTITY {
            return Ok(true);
        }
        match key_of(cid) {
            Some(k) => Ok(self.locate(&k)?.is_some()),
            None => Ok(false),
        }
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
        let corrupt = || Error::CorruptBlock(raw_cid_of_key(key).to_string());
        // A second try covers a pack rewritten by gc between the lookup and the open.
        for attempt in 0..2 {
            let Some((pack, offset, len)) = self.locate(key)? else {
                return Ok(None);
            };
            let file = match self.pack_file(pack) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::NotFound && attempt == 0 => continue,
                Err(e) if e.kind() == ErrorKind::NotFound => return Err(corrupt()),
                Err(e) => return Err(e.into()),
            };
            let mut data = vec![0u8; len as usize];
            match file.read_exact_at(&mut data, offset) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Err(corrupt()),
                Err(e) => return Err(e.into()),
            }
            if Sha256::digest(&data).as_slice() != key {
                return Err(corrupt());
            }
            return Ok(Some(Bytes::from(data)));
        }
        Err(corrupt())
    }

    /// Every stored block key.
    pub fn keys(&self) -> Result<Vec<Key>> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(BLOCKS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            out.push(row?.0.value());
        }
        Ok(out)
    }

    /// Number of stored blocks.
    pub fn len(&self) -> Result<u64> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(BLOCKS)?.len()?)
    }

    /// Whether no block is stored.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Removes blocks (missing keys are ignored), deletes packs left with nothing live and
    /// rewrites packs less than half live. The caller excludes concurrent imports (gc lock).
    pub fn remove(&self, keys: &[Key]) -> Result<()> {
        let tx = self.db.begin_write()?;
        let mut emptied = Vec::new();
        {
            let mut blocks = tx.open_table(BLOCKS)?;
            let mut packs = tx.open_table(PACKS)?;
            let mut freed: HashMap<u64, u64> = HashMap::new();
            for key in keys {
                if let Some(v) = blocks.remove(key)? {
                    let (pack, _, len) = v.value();
                    *freed.entry(pack).or_default() += RECORD_HEADER + u64::from(len);
                }
            }
            for (pack, bytes) in freed {
                let Some((size, live)) = packs.get(pack)?.map(|v| v.value()) else {
                    continue;
                };
                let live = live.saturating_sub(bytes);
                if live == 0 {
                    packs.remove(pack)?;
                    emptied.push(pack);
                } else {
                    packs.insert(pack, (size, live))?;
                }
            }
        }
        tx.commit()?;
        for pack in emptied {
            self.delete_pack(pack)?;
        }
        self.compact()
    }

    fn delete_pack(&self, id: u64) -> Result<()> {
        self.forget_pack(id);
        let mut small = self.small.lock().unwrap_or_else(|p| p.into_inner());
        if small.as_ref().is_some_and(|s| s.id == id) {
            *small = None;
        }
        drop(small);
        match fs::remove_file(self.dir.join(pack_name(id))) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Rewrites every pack whose live records fill less than half of it into one new pack.
    fn compact(&self) -> Result<()> {
        let sparse: Vec<u64> = {
            let tx = self.db.begin_read()?;
            let packs = tx.open_table(PACKS)?;
            let mut out = Vec::new();
            for row in packs.iter()? {
                let (id, v) = row?;
                let (size, live) = v.value();
                if live * 2 < size {
                    out.push(id.value());
                }
            }
            out
        };
        if sparse.is_empty() {
            return Ok(());
        }
        let moving: Vec<Key> = {
            let tx = self.db.begin_read()?;
            let blocks = tx.open_table(BLOCKS)?;
            let mut out = Vec::new();
            for row in blocks.iter()? {
                let (k, v) = row?;
                if sparse.contains(&v.value().0) {
                    out.push(k.value());
                }
            }
            out
        };
        let mut staging = self.staging_unchecked();
        for key in &moving {
            // A block that no longer verifies is dropped from the index with its pack.
            if let Ok(Some(data)) = self.get_key(key) {
                staging.put_key(*key, vec![data])?;
            }
        }
        let staged = staging.finish()?;
        let tx = self.db.begin_write()?;
        {
            let mut blocks = tx.open_table(BLOCKS)?;
            let mut packs = tx.open_table(PACKS)?;
            for key in &moving {
                blocks.remove(key)?;
            }
            for pack in &sparse {
                packs.remove(*pack)?;
            }
        }
        let pending = staged.record(&tx)?;
        tx.commit()?;
        pending.committed();
        for pack in sparse {
            self.delete_pack(pack)?;
        }
        tracing::info!(target: "store::blocks", blocks = moving.len(), "compacted sparse packs");
        Ok(())
    }

    /// A fresh staging area for one import; blocks already stored are skipped. A small import
    /// ends up in the shared small-import pack, a larger one in a pack of its own.
    pub fn staging(&self) -> Result<Staging<'_>> {
        let tx = self.db.begin_read()?;
        let index = tx.open_table(BLOCKS)?;
        let mut st = self.staging_unchecked();
        st.index = Some(index);
        st.small = Some(Vec::new());
        Ok(st)
    }

    /// A staging area that always writes a pack of its own (compaction: the shared pack may
    /// be among the packs it rewrites).
    fn staging_unchecked(&self) -> Staging<'_> {
        Staging {
            store: self,
            id: 0,
            file: PackFile { path: None },
            index: None,
            seen: HashSet::new(),
            entries: Vec::new(),
            size: MAGIC.len() as u64,
            writer: None,
            small: None,
        }
    }

    /// Creates the pack file of a staging area and starts its writer thread.
    fn open_pack(&self) -> Result<(u64, PackFile, Writer)> {
        let id = self.next_pack.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(pack_name(id));
        let file = File::options().write(true).create_new(true).open(&path)?;
        let cleanup = PackFile { path: Some(path) };
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Key, Vec<Bytes>)>(WRITE_QUEUE);
        let sync = self.sync;
        let direct = set_direct_flag(&file, true).is_ok();
        let writer = std::thread::Builder::new()
            .name("px-store-writer".into())
            .spawn(move || {
                if direct {
                    write_pack_direct(file, rx)
                } else {
                    write_pack(file, rx, sync)
                }
            })?;
        Ok((id, cleanup, (tx, writer)))
    }

    /// Appends a small import's records to the shared small-import pack (creating one when
    /// there is none or it is full), synced when the store syncs. Records of an import that
    /// then fails to commit stay as dead bytes, reclaimed by compaction like deleted ones.
    fn append_small(&self, records: Vec<(Key, Vec<Bytes>)>) -> Result<StagedPack> {
        let mut small = self.small.lock().unwrap_or_else(|p| p.into_inner());
        if small.as_ref().is_none_or(|p| p.end >= SMALL_PACK_MAX) {
            let id = self.next_pack.fetch_add(1, Ordering::Relaxed);
            let mut file = File::options()
                .write(true)
                .create_new(true)
                .open(self.dir.join(pack_name(id)))?;
            file.write_all(MAGIC)?;
            if self.sync {
                file.sync_data()?;
                File::open(&self.dir)?.sync_all()?;
            }
            *small = Some(SmallPack {
                id,
                file,
                end: MAGIC.len() as u64,
            });
        }
        let pack = small.as_mut().expect("set above");
        let mut buf = Vec::new();
        let mut entries = Vec::with_capacity(records.len());
        for (key, parts) in &records {
            let len: usize = parts.iter().map(Bytes::len).sum();
            buf.extend_from_slice(&record_header(key, len));
            entries.push((*key, pack.end + buf.len() as u64, len as u32));
            for part in parts {
                buf.extend_from_slice(part);
            }
        }
        pack.file.write_all_at(&buf, pack.end)?;
        if self.sync {
            pack.file.sync_data()?;
        }
        pack.end += buf.len() as u64;
        Ok(StagedPack {
            id: pack.id,
            size: pack.end,
            entries,
            file: PackFile { path: None },
        })
    }
}

/// The `[key][u32 LE length]` header before a record's bytes in a pack.
fn record_header(key: &Key, len: usize) -> [u8; RECORD_HEADER as usize] {
    let mut header = [0u8; RECORD_HEADER as usize];
    header[..32].copy_from_slice(key);
    header[32..].copy_from_slice(&(len as u32).to_le_bytes());
    header
}

/// The staging writer thread for buffered packs: appends records, starting writeback as it goes
/// when syncing (only on file systems without direct I/O, see [`write_pack_direct`]).
fn write_pack(
    mut file: File,
    rx: std::sync::mpsc::Receiver<(Key, Vec<Bytes>)>,
    sync: bool,
) -> std::io::Result<File> {
    file.write_all(MAGIC)?;
    let mut written = MAGIC.len() as u64;
    let mut flushed = 0u64;
    for (key, parts) in rx {
        let len: usize = parts.iter().map(Bytes::len).sum();
        let header = record_header(&key, len);
        let mut slices = Vec::with_capacity(parts.len() + 1);
        slices.push(IoSlice::new(&header));
        slices.extend(parts.iter().map(|p| IoSlice::new(p)));
        write_all_vectored(&mut file, &mut slices)?;
        written += RECORD_HEADER + len as u64;
        if sync && written - flushed >= WRITEBACK_EVERY {
            start_writeback(&file, flushed, written - flushed);
            flushed = written;
        }
    }
    Ok(file)
}

/// Buffer size of a direct-I/O pack write; a writer holds at most [`DIRECT_BUFFERS`] of them.
const DIRECT_BUF: usize = 4 << 20;
const DIRECT_BUFFERS: usize = 3;
/// Alignment of direct-I/O buffers, file offsets and lengths: a multiple of the logical block
/// size of any common device.
const DIRECT_ALIGN: usize = 4096;

/// A heap buffer with a [`DIRECT_ALIGN`]-aligned window of [`DIRECT_BUF`] bytes.
struct AlignedBuf {
    vec: Vec<u8>,
    start: usize,
}

impl AlignedBuf {
    fn new() -> Self {
        let vec = vec![0u8; DIRECT_BUF + DIRECT_ALIGN];
        let start = vec.as_ptr().align_offset(DIRECT_ALIGN);
        Self { vec, start }
    }

    fn window(&mut self) -> &mut [u8] {
        &mut self.vec[self.start..self.start + DIRECT_BUF]
    }
}

/// Switches `file` to direct I/O (`O_DIRECT`, `on`) or back: writes go from user memory to
/// the device, bypassing the page cache. Fails on file systems that do not support it.
#[cfg(target_os = "linux")]
fn set_direct_flag(file: &File, on: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL and F_SETFL only read and set the status flags of a descriptor `file`
    // owns for the duration of the calls.
    let rc = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            flags
        } else if on {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_DIRECT)
        } else {
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT)
        }
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn set_direct_flag(_file: &File, _on: bool) -> std::io::Result<()> {
    Err(ErrorKind::Unsupported.into())
}

/// The staging writer thread of a pack, with direct I/O: copies records into aligned
/// buffers and hands each full buffer to a flusher thread, which writes it straight to the
/// device while the next one fills. The device is kept busy from the first MiB, and the
/// page cache (a copy, per-page bookkeeping and writeback of every byte) is skipped: on this
/// project's ext4 VMs that halves the writer's CPU. The last buffer is written padded to the
/// alignment and the file then truncated to its real size; with `sync`, [`Staging::finish`]
/// then syncs data and size together. Without `sync` this is still faster than the page cache
/// here (it skips the same work), and a killed process loses nothing the index names.
fn write_pack_direct(
    file: File,
    rx: std::sync::mpsc::Receiver<(Key, Vec<Bytes>)>,
) -> std::io::Result<File> {
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<(AlignedBuf, usize, u64)>(1);
    let (free_tx, free_rx) = std::sync::mpsc::channel::<AlignedBuf>();
    let out = file.try_clone()?;
    let flusher = std::thread::Builder::new()
        .name("px-store-flush".into())
        .spawn(move || -> std::io::Result<()> {
            let mut direct = true;
            for (mut buf, len, offset) in full_rx {
                let data = &buf.window()[..len];
                match out.write_all_at(data, offset) {
                    // Direct I/O refused after all (an unusual alignment, a partial write):
                    // the rest of the pack goes through the page cache, still synced at the end.
                    Err(e) if direct && e.raw_os_error() == Some(libc::EINVAL) => {
                        direct = false;
                        set_direct_flag(&out, false)?;
                        out.write_all_at(data, offset)?;
                    }
                    r => r?,
                }
                let _ = free_tx.send(buf);
            }
            Ok(())
        })?;
    let mut pack = DirectPack {
        buf: AlignedBuf::new(),
        fill: 0,
        offset: 0,
        allocated: 1,
        full_tx,
        free_rx,
    };
    let mut ok = pack.append(MAGIC);
    for (key, parts) in &rx {
        ok = ok && pack.append(&record_header(&key, parts.iter().map(Bytes::len).sum()));
        for part in &parts {
            ok = ok && pack.append(part);
        }
        if !ok {
            break;
        }
    }
    let size = pack.offset + pack.fill as u64;
    ok = ok && pack.send_tail();
    // Closing the channel lets the flusher finish; its error, if any, is the cause.
    drop(pack);
    flusher
        .join()
        .map_err(|_| std::io::Error::other("pack flusher panicked"))??;
    if !ok {
        return Err(std::io::Error::other("pack flusher stopped"));
    }
    file.set_len(size)?;
    Ok(file)
}

/// The filling side of [`write_pack_direct`]: the buffer being filled and where it goes.
struct DirectPack {
    buf: AlignedBuf,
    fill: usize,
    /// File offset of `buf`.
    offset: u64,
    /// Buffers made so far (at most [`DIRECT_BUFFERS`]; then the flusher's are reused).
    allocated: usize,
    full_tx: std::sync::mpsc::SyncSender<(AlignedBuf, usize, u64)>,
    free_rx: std::sync::mpsc::Receiver<AlignedBuf>,
}

impl DirectPack {
    /// Copies `bytes` in, handing each full buffer to the flusher; false once it has stopped.
    fn append(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            let n = bytes.len().min(DIRECT_BUF - self.fill);
            self.buf.window()[self.fill..self.fill + n].copy_from_slice(&bytes[..n]);
            self.fill += n;
            bytes = &bytes[n..];
            if self.fill == DIRECT_BUF {
                let next = if self.allocated < DIRECT_BUFFERS {
                    self.allocated += 1;
                    AlignedBuf::new()
                } else {
                    match self.free_rx.recv() {
                        Ok(b) => b,
                        Err(_) => return false,
                    }
                };
                let full = std::mem::replace(&mut self.buf, next);
                if self.full_tx.send((full, DIRECT_BUF, self.offset)).is_err() {
                    return false;
                }
                self.offset += DIRECT_BUF as u64;
                self.fill = 0;
            }
        }
        true
    }

    /// Hands the last, partly filled buffer to the flusher, padded to the alignment.
    fn send_tail(&mut self) -> bool {
        if self.fill == 0 {
            return true;
        }
        let padded = self.fill.next_multiple_of(DIRECT_ALIGN);
        self.buf.window()[self.fill..padded].fill(0);
        let tail = std::mem::replace(
            &mut self.buf,
            AlignedBuf {
                vec: Vec::new(),
                start: 0,
            },
        );
        self.full_tx.send((tail, padded, self.offset)).is_ok()
    }
}

/// `write_all` over several buffers, one `writev` for the usual case of a complete write.
fn write_all_vectored(file: &mut File, mut slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Asks the kernel to start writing `len` bytes at `offset` back to disk without waiting, so
/// the flush before commit finds most of the pack already written.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range only reads its integer arguments; the descriptor is owned by
    // `file`, which outlives the call. A failure only means the final fdatasync does all the
    // work, so the result is ignored.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

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

/// Deletes the pack file on drop unless it was handed over to the index.
#[derive(Debug)]
struct PackFile {
    path: Option<PathBuf>,
}

impl PackFile {
    fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for PackFile {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = fs::remove_file(p);
        }
    }
}

type Writer = (
    std::sync::mpsc::SyncSender<(Key, Vec<Bytes>)>,
    std::thread::JoinHandle<std::io::Result<File>>,
);

/// The new blocks of one import, appended to a pack no index row names yet; dropped before
/// [`StagedPack::record`], the pack is deleted.
pub struct Staging<'a> {
    store: &'a BlockStore,
    id: u64,
    file: PackFile,
    /// Snapshot of the index when the import started, to skip blocks already stored.
    index: Option<ReadOnlyTable<Key, (u64, u64, u32)>>,
    seen: HashSet<Key>,
    entries: Vec<(Key, u64, u32)>,
    size: u64,
    writer: Option<Writer>,
    /// The records of an import small so far, kept in memory (`None`: the import has, or
    /// always gets, a pack of its own).
    small: Option<Vec<(Key, Vec<Bytes>)>>,
}

impl std::fmt::Debug for Staging<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staging")
            .field("pack", &self.id)
            .field("blocks", &self.entries.len())
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Staging<'_> {
    /// Stages a block produced by the importer (whose CID was computed from its bytes).
    pub fn put(&mut self, block: Block) -> Result<()> {
        let Some(key) = key_of(&block.cid) else {
            return Err(Error::Internal(format!(
                "cannot store non-sha256 block {}",
                block.cid
            )));
        };
        self.put_key(key, block.parts)
    }

    fn put_key(&mut self, key: Key, data: Vec<Bytes>) -> Result<()> {
        if self.seen.contains(&key) {
            return Ok(());
        }
        if let Some(index) = &self.index
            && index.get(&key)?.is_some()
        {
            return Ok(());
        }
        self.seen.insert(key);
        let len: usize = data.iter().map(Bytes::len).sum();
        let len =
            u32::try_from(len).map_err(|_| Error::Internal(format!("block of {len} bytes")))?;
        self.entries.push((key, self.size + RECORD_HEADER, len));
        self.size += RECORD_HEADER + u64::from(len);
        if let Some(small) = &mut self.small {
            if self.size <= SMALL_IMPORT {
                small.push((key, data));
                return Ok(());
            }
            // Too big for the shared pack after all: the records so far go first.
            let earlier = self.small.take().unwrap_or_default();
            for (key, data) in earlier {
                self.send(key, data)?;
            }
        }
        self.send(key, data)
    }

    /// Hands a record to the writer thread, creating the pack on first use.
    fn send(&mut self, key: Key, data: Vec<Bytes>) -> Result<()> {
        if self.writer.is_none() && self.file.path.is_none() {
            let (id, file, writer) = self.store.open_pack()?;
            self.id = id;
            self.file = file;
            self.writer = Some(writer);
        }
        let sent = match &self.writer {
            Some((tx, _)) => tx.send((key, data)).is_ok(),
            None => false,
        };
        if !sent {
            // The writer stopped on an error; join it to report that error.
            self.join_writer()?;
            return Err(Error::Internal("staging writer stopped".into()));
        }
        Ok(())
    }

    fn join_writer(&mut self) -> Result<Option<File>> {
        match self.writer.take() {
            Some((tx, handle)) => {
                drop(tx);
                let file = handle
                    .join()
                    .map_err(|_| Error::Internal("staging writer panicked".into()))??;
                Ok(Some(file))
            }
            None => Ok(None),
        }
    }

    /// Number of new blocks staged.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing new was staged.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Waits for the writes and, when the store syncs, makes the pack durable.
    pub fn finish(mut self) -> Result<StagedPack> {
        let nothing = || StagedPack {
            id: 0,
            size: 0,
            entries: Vec::new(),
            file: PackFile { path: None },
        };
        if let Some(records) = self.small.take() {
            if records.is_empty() {
                return Ok(nothing());
            }
            return self.store.append_small(records);
        }
        if self.file.path.is_none() {
            return Ok(nothing());
        }
        let file = self
            .join_writer()?
            .ok_or_else(|| Error::Internal("staging writer stopped".into()))?;
        if self.store.sync && !self.entries.is_empty() {
            file.sync_data()?;
            File::open(&self.store.dir)?.sync_all()?;
        }
        Ok(StagedPack {
            id: self.id,
            size: self.size,
            entries: std::mem::take(&mut self.entries),
            file: PackFile {
                path: self.file.path.take(),
            },
        })
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        let _ = self.join_writer();
        // `self.file` deletes the pack unless `finish` took it.
    }
}

/// A complete, durable pack waiting for its index rows.
#[derive(Debug)]
pub struct StagedPack {
    id: u64,
    size: u64,
    entries: Vec<(Key, u64, u32)>,
    file: PackFile,
}

impl StagedPack {
    /// Inserts the index rows of the blocks not stored meanwhile by another import, inside
    /// `tx`. Call [`PendingPack::committed`] once `tx` has committed; if it fails, dropping
    /// the result deletes the pack.
    pub fn record(self, tx: &redb::WriteTransaction) -> Result<PendingPack> {
        let mut live = 0u64;
        {
            let mut blocks = tx.open_table(BLOCKS)?;
            for (key, offset, len) in &self.entries {
                if blocks.get(key)?.is_none() {
                    blocks.insert(key, (self.id, *offset, *len))?;
                    live += RECORD_HEADER + u64::from(*len);
                }
            }
            if live > 0 {
                // The shared small-import pack already has a row: add to it.
                let mut packs = tx.open_table(PACKS)?;
                let (size, before) = packs.get(self.id)?.map_or((0, 0), |v| v.value());
                packs.insert(self.id, (size.max(self.size), before + live))?;
            }
        }
        Ok(PendingPack {
            file: self.file,
            live: live > 0,
        })
    }
}

/// A pack whose index rows are in an uncommitted transaction.
#[derive(Debug)]
pub struct PendingPack {
    file: PackFile,
    live: bool,
}

impl PendingPack {
    /// The transaction committed: the pack stays if it holds any indexed block.
    pub fn committed(self) {
        if self.live {
            self.file.keep();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::importer::{ImportOptions, cid_of};

    fn block(data: &[u8]) -> Block {
        Block {
            cid: cid_of(data, &ImportOptions::v1()).unwrap().cid,
            parts: vec![Bytes::copy_from_slice(data)],
        }
    }

    fn open(dir: &Path) -> BlockStore {
        let db = Arc::new(Database::create(dir.join("meta.redb")).unwrap());
        BlockStore::open(dir, db, false).unwrap()
    }

    fn commit(store: &BlockStore, st: Staging<'_>) {
        let staged = st.finish().unwrap();
        let tx = store.db.begin_write().unwrap();
        let pending = staged.record(&tx).unwrap();
        tx.commit().unwrap();
        pending.committed();
    }

    /// The pack files of the repo at `dir`.
    fn packs(dir: &Path) -> Vec<PathBuf> {
        fs::read_dir(dir.join("packs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    #[test]
    fn staged_blocks_appear_only_on_commit_and_corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let data = b"hello world";
        let cid = cid_of(data, &ImportOptions::v1()).unwrap().cid;

        let mut st = store.staging().unwrap();
        st.put(block(data)).unwrap();
        assert!(!store.has(&cid).unwrap());
        drop(st);
        assert!(!store.has(&cid).unwrap());
        assert!(packs(dir.path()).is_empty(), "an abandoned pack is deleted");

        let mut st = store.staging().unwrap();
        st.put(block(data)).unwrap();
        commit(&store, st);
        assert_eq!(store.get(&cid).unwrap().unwrap(), &data[..]);
        assert_eq!(store.keys().unwrap(), vec![key_of(&cid).unwrap()]);

        // Staging the same block again writes nothing and leaves no pack behind.
        let mut st = store.staging().unwrap();
        st.put(block(data)).unwrap();
        assert!(st.is_empty());
        commit(&store, st);
        assert_eq!(packs(dir.path()).len(), 1);

        let pack = packs(dir.path()).remove(0);
        let mut bytes = fs::read(&pack).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(&pack, bytes).unwrap();
        assert!(matches!(store.get(&cid), Err(Error::CorruptBlock(_))));
        store.remove(&[key_of(&cid).unwrap()]).unwrap();
        assert!(store.get(&cid).unwrap().is_none());
        assert!(
            packs(dir.path()).is_empty(),
            "a pack with nothing live is deleted"
        );
    }

    #[test]
    fn synced_packs_hold_exactly_their_records() {
        // Packs go through direct I/O where the file system allows it: records cross
        // buffer boundaries, the tail is padded to the alignment and truncated back.
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::create(dir.path().join("meta.redb")).unwrap());
        let store = BlockStore::open(dir.path(), db, true).unwrap();
        let blocks: Vec<Vec<u8>> = (0..50u32)
            .map(|i| {
                let len = 200_000 + (i as usize * 4_099) % 62_001;
                (0..len)
                    .map(|j| (j as u32 ^ i.wrapping_mul(2_654_435_761)) as u8)
                    .collect()
            })
            .collect();
        let mut st = store.staging().unwrap();
        for b in &blocks {
            st.put(block(b)).unwrap();
        }
        commit(&store, st);
        let expected: u64 = MAGIC.len() as u64
            + blocks
                .iter()
                .map(|b| RECORD_HEADER + b.len() as u64)
                .sum::<u64>();
        assert!(expected > 2 * DIRECT_BUF as u64 && !expected.is_multiple_of(DIRECT_ALIGN as u64));
        let pack = packs(dir.path()).remove(0);
        assert_eq!(fs::metadata(&pack).unwrap().len(), expected);
        assert_eq!(&fs::read(&pack).unwrap()[..MAGIC.len()], MAGIC);
        for b in &blocks {
            let cid = cid_of(b, &ImportOptions::v1()).unwrap().cid;
            assert_eq!(store.get(&cid).unwrap().unwrap(), &b[..]);
        }
    }

    #[test]
    fn small_imports_share_a_pack_and_gc_reclaims_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::create(dir.path().join("meta.redb")).unwrap());
        let store = BlockStore::open(dir.path(), db, true).unwrap();
        let data: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 1000 + i as usize]).collect();
        let cids: Vec<Cid> = data
            .iter()
            .map(|d| cid_of(d, &ImportOptions::v1()).unwrap().cid)
            .collect();
        for d in &data {
            let mut st = store.staging().unwrap();
            st.put(block(d)).unwrap();
            commit(&store, st);
        }
        // A small import abandoned before finishing writes nothing; one whose commit never
        // happens leaves dead bytes only.
        let mut st = store.staging().unwrap();
        st.put(block(b"abandoned")).unwrap();
        drop(st);
        let mut st = store.staging().unwrap();
        st.put(block(b"never committed")).unwrap();
        drop(st.finish().unwrap());
        assert_eq!(packs(dir.path()).len(), 1, "one pack for all small imports");
        for (cid, d) in cids.iter().zip(&data) {
            assert_eq!(store.get(cid).unwrap().unwrap(), &d[..]);
        }
        let never = cid_of(b"never committed", &ImportOptions::v1())
            .unwrap()
            .cid;
        assert!(!store.has(&never).unwrap());

        // An import that outgrows the small limit spills, earlier blocks included, into a
        // pack of its own.
        let big: Vec<Vec<u8>> = (0..3u8).map(|i| vec![100 + i; 200_000]).collect();
        let mut st = store.staging().unwrap();
        for b in &big {
            st.put(block(b)).unwrap();
        }
        commit(&store, st);
        assert_eq!(packs(dir.path()).len(), 2);
        for b in &big {
            let cid = cid_of(b, &ImportOptions::v1()).unwrap().cid;
            assert_eq!(store.get(&cid).unwrap().unwrap(), &b[..]);
        }

        // Removing most small blocks compacts the shared pack away; the survivors move and the
        // next small import starts a new shared pack.
        let shared = packs(dir.path())
            .into_iter()
            .min_by_key(|p| fs::metadata(p).unwrap().len())
            .unwrap();
        let keys: Vec<Key> = cids[..8].iter().map(|c| key_of(c).unwrap()).collect();
        store.remove(&keys).unwrap();
        assert!(
            !shared.exists(),
            "the mostly dead shared pack was rewritten"
        );
        for (cid, d) in cids.iter().zip(&data).skip(8) {
            assert_eq!(store.get(cid).unwrap().unwrap(), &d[..]);
        }
        let mut st = store.staging().unwrap();
        st.put(block(b"after compaction")).unwrap();
        commit(&store, st);
        let after = cid_of(b"after compaction", &ImportOptions::v1())
            .unwrap()
            .cid;
        assert_eq!(
            store.get(&after).unwrap().unwrap(),
            &b"after compaction"[..]
        );
        let all: Vec<Key> = store.keys().unwrap();
        store.remove(&all).unwrap();
        assert!(packs(dir.path()).is_empty(), "nothing live, no pack");
        let mut st = store.staging().unwrap();
        st.put(block(b"fresh")).unwrap();
        commit(&store, st);
        let fresh = cid_of(b"fresh", &ImportOptions::v1()).unwrap().cid;
        assert_eq!(store.get(&fresh).unwrap().unwrap(), &b"fresh"[..]);
    }

    #[test]
    fn uncommitted_packs_are_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut st = store.staging().unwrap();
        let cid = cid_of(b"x", &ImportOptions::v1()).unwrap().cid;
        st.put(block(b"x")).unwrap();
        let staged = st.finish().unwrap();
        // Simulate a killed process: the pack is complete but no index row names it.
        std::mem::forget(staged);
        assert_eq!(packs(dir.path()).len(), 1);
        drop(store);
        let store = open(dir.path());
        assert!(packs(dir.path()).is_empty());
        assert!(!store.has(&cid).unwrap());
        // New packs do not reuse the removed pack's name.
        let mut st = store.staging().unwrap();
        st.put(block(b"x")).unwrap();
        commit(&store, st);
        assert!(store.has(&cid).unwrap());
    }

    #[test]
    fn gc_compacts_mostly_dead_packs() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let blocks: Vec<(Cid, Vec<u8>)> = (0..10u8)
            .map(|i| {
                let data = vec![i; 1000];
                (cid_of(&data, &ImportOptions::v1()).unwrap().cid, data)
            })
            .collect();
        let mut st = store.staging().unwrap();
        for (_, data) in &blocks {
            st.put(block(data)).unwrap();
        }
        commit(&store, st);
        let dead: Vec<Key> = blocks[..7]
            .iter()
            .map(|(c, _)| key_of(c).unwrap())
            .collect();
        store.remove(&dead).unwrap();
        assert_eq!(store.len().unwrap(), 3);
        assert_eq!(packs(dir.path()).len(), 1);
        let size = fs::metadata(&packs(dir.path())[0]).unwrap().len();
        assert_eq!(size, MAGIC.len() as u64 + 3 * (RECORD_HEADER + 1000));
        for (cid, data) in &blocks[7..] {
            assert_eq!(store.get(cid).unwrap().unwrap(), &data[..]);
        }
        for (cid, _) in &blocks[..7] {
            assert!(store.get(cid).unwrap().is_none());
        }
    }

    #[test]
    fn flatfs_repos_are_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let cid = cid_of(b"old block", &ImportOptions::v1()).unwrap().cid;
        let hex: String = key_of(&cid)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let shard = dir.path().join("blocks").join(&hex[..2]);
        fs::create_dir_all(&shard).unwrap();
        fs::write(shard.join(&hex), b"old block").unwrap();
        fs::write(shard.join("ff".repeat(32)), b"not matching its name").unwrap();
        let store = open(dir.path());
        assert!(!dir.path().join("blocks").exists());
        assert_eq!(store.keys().unwrap(), vec![key_of(&cid).unwrap()]);
        assert_eq!(store.get(&cid).unwrap().unwrap(), &b"old block"[..]);
    }
}
