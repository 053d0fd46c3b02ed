//! UnixFS file import with Kubo-identical CIDs, usable without the server.
//!
//! Kubo's `ipfs add` defaults: fixed-size chunks of 262144 bytes, a balanced DAG with at most
//! 174 links per node, CIDv0 with dag-pb (UnixFS `File`) leaves; `cid-version=1` switches to
//! CIDv1 with raw leaves. The fixtures of `../shared/fixtures/README.md` are checked in the
//! tests, and `tests/it/layout.rs` checks every tree shape against an independent rendition of
//! go-unixfs's balanced layout.
//!
//! Why not `rust-unixfs`'s `FileAdder` (used by earlier versions of this module): it needs each
//! chunk contiguous in its own buffer and renders every leaf into a fresh `Vec`, so each byte is
//! copied twice on its way from the socket to disk. On the two-core machines this runs on that
//! was a sixth of the CPU an add spends. Here a leaf is never materialized: its content stays in
//! the [`Bytes`] the caller handed in (HTTP frames, zero-copy), the few bytes of dag-pb framing
//! around it are hashed and written beside it ([`Block::parts`]), and the branch nodes, a few
//! KiB each, are encoded directly. (`rust-unixfs` still walks files for `cat`.)
//!
//! Blocks are streamed out as they are produced (children before their parent, the root last),
//! so memory stays flat however large the input is. The cumulative DAG size Kubo reports as
//! `Size` is the sum of all produced block lengths (duplicate blocks count once per link, as in
//! the DAG's `Tsize`).
//!
//! ```
//! use px_core::importer::{ImportOptions, cid_of};
//! let out = cid_of(b"hello world\n", &ImportOptions::default()).unwrap();
//! assert_eq!(out.cid.to_string(), "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o");
//! assert_eq!(out.dag_size, 20);
//! ```

use std::io::Read;

use bytes::{Bytes, BytesMut};
use cid::Cid;
use multihash::Multihash;
use sha2::{Digest, Sha256};

use crate::dagpb::{DAG_PB, RAW};
/// Why an import could not start or read its input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// An option is out of range (CID version, chunk size).
    #[error("{0}")]
    InvalidOption(String),
    /// An option Kubo accepts but this importer does not implement (e.g. a rabin chunker).
    #[error("unsupported option: {0}")]
    Unsupported(String),
    /// Reading the input failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

type Error = ImportError;
/// Result alias of the importer.
pub type Result<T, E = ImportError> = std::result::Result<T, E>;

/// Kubo's default chunk size.
pub const DEFAULT_CHUNK_SIZE: usize = 262_144;
/// The largest chunk size Kubo accepts (1 MiB).
pub const MAX_CHUNK_SIZE: usize = 1 << 20;
/// Links per branch node in Kubo's balanced layout.
pub const MAX_LINKS: usize = 174;

const SHA2_256: u64 = 0x12;
/// UnixFS `Data.DataType.File`.
const UNIXFS_FILE: u64 = 2;

/// Import settings; `Default` gives Kubo's defaults (CIDv0, size-262144).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportOptions {
    /// CID version of the produced nodes (0 or 1).
    pub cid_version: u8,
    /// Raw leaves; `None` means the Kubo default for the version (v0: no, v1: yes).
    pub raw_leaves: Option<bool>,
    /// Fixed chunk size in bytes (1 ..= 1 MiB).
    pub chunk_size: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            cid_version: 0,
            raw_leaves: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

impl ImportOptions {
    /// Kubo's options for `cid-version=1`.
    pub fn v1() -> Self {
        Self {
            cid_version: 1,
            ..Self::default()
        }
    }

    /// Parses a Kubo chunker spec; only `size-<n>` is supported.
    pub fn parse_chunker(spec: &str) -> Result<usize> {
        let n = spec
            .strip_prefix("size-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| Error::Unsupported(format!("chunker {spec:?} (only size-<n>)")))?;
        if n == 0 || n > MAX_CHUNK_SIZE {
            return Err(Error::InvalidOption(format!(
                "chunker size must be between 1 and {MAX_CHUNK_SIZE}"
            )));
        }
        Ok(n)
    }
}

/// One block produced by the importer: its bytes are the concatenation of `parts`.
#[derive(Clone, Debug)]
pub struct Block {
    /// Its CID.
    pub cid: Cid,
    /// Its bytes, in pieces (a leaf's content stays in the buffers it arrived in).
    pub parts: Vec<Bytes>,
}

impl Block {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    /// Whether the block has no bytes (only a raw leaf of an empty file).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes in one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for p in &self.parts {
            out.extend_from_slice(p);
        }
        out
    }
}

/// The result of importing one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Imported {
    /// Root CID.
    pub cid: Cid,
    /// Cumulative DAG size (what Kubo's `add` reports as `Size`).
    pub dag_size: u64,
    /// File content size.
    pub file_size: u64,
}

/// A finished node, as its parent links to it.
#[derive(Clone, Copy, Debug)]
struct Link {
    cid: Cid,
    /// Cumulative DAG size (the dag-pb link's `Tsize`).
    tsize: u64,
    /// File bytes under it (the parent's UnixFS `blocksizes` entry).
    filesize: u64,
}

/// Streaming UnixFS file importer.
#[derive(Debug)]
pub struct Importer {
    v1: bool,
    raw_leaves: bool,
    chunk_size: usize,
    /// Pieces of the chunk being filled.
    pending: Vec<Bytes>,
    pending_len: usize,
    /// Bytes copied in by [`Importer::push`], not yet moved to `pending`.
    copied: BytesMut,
    /// `levels[0]` holds leaf links, `levels[i]` links to nodes of depth `i`; a level is
    /// turned into a node one level up when a 175th link arrives, or at the end.
    levels: Vec<Vec<Link>>,
    dag_size: u64,
    file_size: u64,
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Importer {
    /// A new importer.
    pub fn new(opts: &ImportOptions) -> Result<Self> {
        if opts.cid_version > 1 {
            return Err(Error::InvalidOption(format!(
                "unknown CID version {}",
                opts.cid_version
            )));
        }
        if opts.chunk_size == 0 || opts.chunk_size > MAX_CHUNK_SIZE {
            return Err(Error::InvalidOption(format!(
                "chunk size must be between 1 and {MAX_CHUNK_SIZE}"
            )));
        }
        // Kubo upgrades to CIDv1 when raw leaves are asked for with v0.
        let raw_leaves = opts.raw_leaves.unwrap_or(opts.cid_version == 1);
        Ok(Self {
            v1: opts.cid_version == 1 || raw_leaves,
            raw_leaves,
            chunk_size: opts.chunk_size,
            pending: Vec::new(),
            pending_len: 0,
            copied: BytesMut::new(),
            levels: Vec::new(),
            dag_size: 0,
            file_size: 0,
        })
    }

    fn cid(&self, codec: u64, digest: &[u8]) -> Cid {
        let mh = Multihash::<64>::wrap(SHA2_256, digest).expect("32-byte digest fits");
        if self.v1 {
            Cid::new_v1(codec, mh)
        } else {
            Cid::new_v0(mh).expect("sha2-256 multihash")
        }
    }

    /// Feeds file bytes without copying them; completed blocks go to `sink` in DAG order
    /// (children first).
    pub fn push_bytes<E>(
        &mut self,
        mut data: Bytes,
        mut sink: impl FnMut(Block) -> Result<(), E>,
    ) -> Result<(), E> {
        self.file_size += data.len() as u64;
        self.move_copied();
        while !data.is_empty() {
            let take = (self.chunk_size - self.pending_len).min(data.len());
            self.pending.push(data.split_to(take));
            self.pending_len += take;
            if self.pending_len == self.chunk_size {
                self.flush_leaf(&mut sink)?;
            }
        }
        Ok(())
    }

    /// Feeds file bytes, copying them once; completed blocks go to `sink` in DAG order.
    pub fn push<E>(
        &mut self,
        mut data: &[u8],
        mut sink: impl FnMut(Block) -> Result<(), E>,
    ) -> Result<(), E> {
        self.file_size += data.len() as u64;
        while !data.is_empty() {
            let take = (self.chunk_size - self.pending_len).min(data.len());
            if self.copied.capacity() - self.copied.len() < take {
                self.copied.reserve(self.chunk_size);
            }
            self.copied.extend_from_slice(&data[..take]);
            self.pending_len += take;
            data = &data[take..];
            if self.pending_len == self.chunk_size {
                self.move_copied();
                self.flush_leaf(&mut sink)?;
            }
        }
        Ok(())
    }

    fn move_copied(&mut self) {
        if !self.copied.is_empty() {
            self.pending.push(self.copied.split().freeze());
        }
    }

    /// Turns the pending pieces into a leaf.
    fn flush_leaf<E>(&mut self, sink: &mut impl FnMut(Block) -> Result<(), E>) -> Result<(), E> {
        let mut parts = std::mem::take(&mut self.pending);
        let len = std::mem::take(&mut self.pending_len) as u64;
        let link = if self.raw_leaves {
            let mut h = Sha256::new();
            for p in &parts {
                h.update(p);
            }
            Link {
                cid: self.cid(RAW, &h.finalize()),
                tsize: len,
                filesize: len,
            }
        } else {
            // PBNode { Data: UnixFS { Type: File, Data: content, filesize } } with the content
            // left where it is: only the framing before and after it is encoded.
            let data_field = if len > 0 {
                1 + varint_len(len) + len as usize
            } else {
                0
            };
            let unixfs_len = 2 + data_field + 1 + varint_len(len);
            let mut head = Vec::with_capacity(16);
            head.push(0x0a);
            put_varint(&mut head, unixfs_len as u64);
            head.extend_from_slice(&[0x08, UNIXFS_FILE as u8]);
            if len > 0 {
                head.push(0x12);
                put_varint(&mut head, len);
            }
            let mut tail = Vec::with_capacity(11);
            tail.push(0x18);
            put_varint(&mut tail, len);
            let mut h = Sha256::new();
            h.update(&head);
            for p in &parts {
                h.update(p);
            }
            h.update(&tail);
            let tsize = (head.len() + tail.len()) as u64 + len;
            parts.insert(0, Bytes::from(head));
            parts.push(Bytes::from(tail));
            Link {
                cid: self.cid(DAG_PB, &h.finalize()),
                tsize,
                filesize: len,
            }
        };
        self.dag_size += link.tsize;
        sink(Block {
            cid: link.cid,
            parts,
        })?;
        self.add_link(0, link, sink)
    }

    fn add_link<E>(
        &mut self,
        level: usize,
        link: Link,
        sink: &mut impl FnMut(Block) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.levels.len() <= level {
            self.levels.push(Vec::with_capacity(MAX_LINKS));
        }
        if self.levels[level].len() == MAX_LINKS {
            let full = std::mem::replace(&mut self.levels[level], Vec::with_capacity(MAX_LINKS));
            let node = self.branch(&full, sink)?;
            self.add_link(level + 1, node, sink)?;
        }
        self.levels[level].push(link);
        Ok(())
    }

    /// Encodes a branch node over `children`: links first, then the UnixFS data, as dag-pb
    /// requires.
    fn branch<E>(
        &mut self,
        children: &[Link],
        sink: &mut impl FnMut(Block) -> Result<(), E>,
    ) -> Result<Link, E> {
        let filesize: u64 = children.iter().map(|c| c.filesize).sum();
        let mut block = Vec::with_capacity(children.len() * 48 + 16);
        for c in children {
            let hash = c.cid.to_bytes();
            let link_len =
                1 + varint_len(hash.len() as u64) + hash.len() + 2 + 1 + varint_len(c.tsize);
            block.push(0x12);
            put_varint(&mut block, link_len as u64);
            block.push(0x0a);
            put_varint(&mut block, hash.len() as u64);
            block.extend_from_slice(&hash);
            block.extend_from_slice(&[0x12, 0x00]); // Name: ""
            block.push(0x18);
            put_varint(&mut block, c.tsize);
        }
        let unixfs_len = 2
            + 1
            + varint_len(filesize)
            + children
                .iter()
                .map(|c| 1 + varint_len(c.filesize))
                .sum::<usize>();
        block.push(0x0a);
        put_varint(&mut block, unixfs_len as u64);
        block.extend_from_slice(&[0x08, UNIXFS_FILE as u8, 0x18]);
        put_varint(&mut block, filesize);
        for c in children {
            block.push(0x20);
            put_varint(&mut block, c.filesize);
        }
        let link = Link {
            cid: self.cid(DAG_PB, &Sha256::digest(&block)),
            tsize: block.len() as u64 + children.iter().map(|c| c.tsize).sum::<u64>(),
            filesize,
        };
        self.dag_size += block.len() as u64;
        sink(Block {
            cid: link.cid,
            parts: vec![Bytes::from(block)],
        })?;
        Ok(link)
    }

    /// Flushes the last blocks (the root last) and returns the root.
    pub fn finish<E>(
        mut self,
        mut sink: impl FnMut(Block) -> Result<(), E>,
    ) -> Result<Imported, E> {
        self.move_copied();
        if self.pending_len > 0 || self.levels.is_empty() {
            // The last partial chunk, or the single empty leaf of an empty file.
            self.flush_leaf(&mut sink)?;
        }
        // Close every level bottom up; the top level's lone link is the root. Like go-unixfs,
        // a lone trailing subtree below the top gets its own branch node.
        let mut level = 0;
        let root = loop {
            let top = level + 1 == self.levels.len();
            let links = std::mem::take(&mut self.levels[level]);
            if top && links.len() == 1 {
                break links[0];
            }
            let node = self.branch(&links, &mut sink)?;
            self.add_link(level + 1, node, &mut sink)?;
            level += 1;
        };
        Ok(Imported {
            cid: root.cid,
            dag_size: self.dag_size,
            file_size: self.file_size,
        })
    }
}

/// The CID of `data` as `ipfs add` would compute it, without storing anything.
pub fn cid_of(data: &[u8], opts: &ImportOptions) -> Result<Imported> {
    let mut importer = Importer::new(opts)?;
    importer.push(data, |_| Ok::<_, Error>(()))?;
    importer.finish(|_| Ok::<_, Error>(()))
}

/// The CID of everything `reader` yields, streaming (memory stays bounded).
pub fn cid_of_reader(mut reader: impl Read, opts: &ImportOptions) -> Result<Imported> {
    let mut importer = Importer::new(opts)?;
    let mut buf = vec![0u8; opts.chunk_size.max(64 * 1024)];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        importer.push(&buf[..n], |_| Ok::<_, Error>(()))?;
    }
    importer.finish(|_| Ok::<_, Error>(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 256) as u8).collect()
    }

    #[test]
    fn fixture_cids() {
        let v0 = ImportOptions::default();
        let v1 = ImportOptions::v1();
        let cases: [(&[u8], ImportOptions, &str, u64); 6] = [
            (b"", v0, "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH", 6),
            (
                b"hello world\n",
                v0,
                "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
                20,
            ),
            (
                b"hello world",
                v0,
                "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD",
                19,
            ),
            (
                b"hello world",
                v1,
                "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
                11,
            ),
            (
                &pattern(1 << 20),
                v0,
                "QmNVwWg6N5yixbSukgRFyXez5HdRY52RhEbg823ejW3cHn",
                1_048_832,
            ),
            (
                &pattern(1 << 20),
                v1,
                "bafybeiclphklsx6bfzfb5aezogjldbkeicyyvma6wrfnielfg7haplwahy",
                1_048_784,
            ),
        ];
        for (data, opts, cid, size) in cases {
            let out = cid_of(data, &opts).unwrap();
            assert_eq!(out.cid.to_string(), cid, "len {}", data.len());
            assert_eq!(out.dag_size, size, "len {}", data.len());
            assert_eq!(out.file_size, data.len() as u64);
        }
    }

    #[test]
    fn push_granularity_does_not_change_the_cid_or_the_blocks() {
        let data = pattern(3 * DEFAULT_CHUNK_SIZE + 17);
        let mut whole_blocks = Vec::new();
        let mut imp = Importer::new(&ImportOptions::default()).unwrap();
        imp.push(&data, |b| {
            whole_blocks.push(b);
            Ok::<_, Error>(())
        })
        .unwrap();
        let whole = imp
            .finish(|b| {
                whole_blocks.push(b);
                Ok::<_, Error>(())
            })
            .unwrap();
        // Every block's bytes hash to its CID.
        for b in &whole_blocks {
            assert_eq!(b.cid.hash().digest(), Sha256::digest(b.to_vec()).as_slice());
        }
        for step in [1000, 65_536, DEFAULT_CHUNK_SIZE + 1] {
            // Copying pushes, zero-copy pushes and a mix of both.
            for mode in 0..3 {
                let mut imp = Importer::new(&ImportOptions::default()).unwrap();
                let mut blocks = Vec::new();
                for (i, part) in data.chunks(step).enumerate() {
                    let sink = |b: Block| {
                        blocks.push(b.to_vec());
                        Ok::<_, Error>(())
                    };
                    if mode == 0 || (mode == 2 && i % 2 == 0) {
                        imp.push(part, sink).unwrap();
                    } else {
                        imp.push_bytes(Bytes::copy_from_slice(part), sink).unwrap();
                    }
                }
                let out = imp
                    .finish(|b| {
                        blocks.push(b.to_vec());
                        Ok::<_, Error>(())
                    })
                    .unwrap();
                assert_eq!(out, whole, "step {step} mode {mode}");
                let expected: Vec<Vec<u8>> = whole_blocks.iter().map(Block::to_vec).collect();
                assert_eq!(blocks, expected, "step {step} mode {mode}");
            }
        }
        let reader = cid_of_reader(&data[..], &ImportOptions::default()).unwrap();
        assert_eq!(reader, whole);
    }

    #[test]
    fn varint_lengths() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, 262_144, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
        }
    }

    #[test]
    fn rejects_bad_options() {
        assert!(
            Importer::new(&ImportOptions {
                cid_version: 2,
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            Importer::new(&ImportOptions {
                chunk_size: 0,
                ..Default::default()
            })
            .is_err()
        );
        assert!(ImportOptions::parse_chunker("rabin-1-2-3").is_err());
        assert!(ImportOptions::parse_chunker("size-0").is_err());
        assert_eq!(ImportOptions::parse_chunker("size-1024").unwrap(), 1024);
    }
}
