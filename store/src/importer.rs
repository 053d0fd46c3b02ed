//! UnixFS file import with Kubo-identical CIDs, usable without the server.
//!
//! Kubo's `ipfs add` defaults: fixed-size chunks of 262144 bytes, a balanced DAG with at most
//! 174 links per node, CIDv0 with dag-pb (UnixFS `File`) leaves; `cid-version=1` switches to
//! CIDv1 with raw leaves. [`Importer`] reproduces that on top of `rust-unixfs`'s `FileAdder`,
//! which fits: it supports CIDv0 with dag-pb leaves and CIDv1 with raw leaves, the size chunker
//! and a balanced collector that, like go-unixfs, wraps a lone trailing subtree in its own
//! branch node instead of hoisting it. Its cost per 256 KiB chunk is one copy into the block plus
//! one SHA-256, so it is not the bottleneck (see `benches/`). The fixtures of
//! `../shared/fixtures/README.md` are checked in the tests.
//!
//! Blocks are streamed out as they are produced (at most a handful are in memory at any time),
//! so memory stays flat however large the input is. The root is the last block produced, and
//! the cumulative DAG size Kubo reports as `Size` is the sum of all produced block lengths
//! (duplicate blocks count once per link, as in the DAG's `Tsize`).
//!
//! ```
//! use px_store::importer::{ImportOptions, cid_of};
//! let out = cid_of(b"hello world\n", &ImportOptions::default()).unwrap();
//! assert_eq!(out.cid.to_string(), "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o");
//! assert_eq!(out.dag_size, 20);
//! ```

use std::io::Read;

use cid::{Cid, Version};
use rust_unixfs::file::adder::{Chunker, FileAdder};

use crate::error::{Error, Result};

/// Kubo's default chunk size.
pub const DEFAULT_CHUNK_SIZE: usize = 262_144;
/// The largest chunk size Kubo accepts (1 MiB).
pub const MAX_CHUNK_SIZE: usize = 1 << 20;

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
            return Err(Error::BadRequest(format!(
                "chunker size must be between 1 and {MAX_CHUNK_SIZE}"
            )));
        }
        Ok(n)
    }
}

/// One block produced by the importer.
#[derive(Debug)]
pub struct Block {
    /// Its CID.
    pub cid: Cid,
    /// Its bytes.
    pub data: Vec<u8>,
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

/// Streaming UnixFS file importer.
pub struct Importer {
    adder: FileAdder,
    dag_size: u64,
    file_size: u64,
    last: Option<Cid>,
}

impl std::fmt::Debug for Importer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer")
            .field("dag_size", &self.dag_size)
            .field("file_size", &self.file_size)
            .finish_non_exhaustive()
    }
}

impl Importer {
    /// A new importer.
    pub fn new(opts: &ImportOptions) -> Result<Self> {
        let version = match opts.cid_version {
            0 => Version::V0,
            1 => Version::V1,
            v => return Err(Error::BadRequest(format!("unknown CID version {v}"))),
        };
        if opts.chunk_size == 0 || opts.chunk_size > MAX_CHUNK_SIZE {
            return Err(Error::BadRequest(format!(
                "chunk size must be between 1 and {MAX_CHUNK_SIZE}"
            )));
        }
        if version == Version::V0 && opts.raw_leaves == Some(true) {
            // Kubo upgrades to CIDv1 when raw leaves are asked for with v0.
            return Self::new(&ImportOptions {
                cid_version: 1,
                ..*opts
            });
        }
        let mut builder = FileAdder::builder()
            .with_cid_version(version)
            .with_chunker(Chunker::Size(opts.chunk_size));
        if let Some(raw) = opts.raw_leaves {
            builder = builder.with_raw_leaves(raw);
        }
        Ok(Self {
            adder: builder.build(),
            dag_size: 0,
            file_size: 0,
            last: None,
        })
    }

    fn emit<E>(
        &mut self,
        blocks: impl Iterator<Item = (Cid, Vec<u8>)>,
        sink: &mut impl FnMut(Block) -> Result<(), E>,
    ) -> Result<(), E> {
        for (cid, data) in blocks {
            self.dag_size += data.len() as u64;
            self.last = Some(cid);
            sink(Block { cid, data })?;
        }
        Ok(())
    }

    /// Feeds file bytes; completed blocks are passed to `sink` in DAG order (children first).
    pub fn push<E>(
        &mut self,
        mut data: &[u8],
        mut sink: impl FnMut(Block) -> Result<(), E>,
    ) -> Result<(), E> {
        self.file_size += data.len() as u64;
        while !data.is_empty() {
            let (blocks, consumed) = self.adder.push(data);
            let blocks: Vec<_> = blocks.collect();
            self.emit(blocks.into_iter(), &mut sink)?;
            data = &data[consumed..];
        }
        Ok(())
    }

    /// Flushes the last blocks (the root last) and returns the root.
    pub fn finish<E>(
        mut self,
        mut sink: impl FnMut(Block) -> Result<(), E>,
    ) -> Result<Imported, E> {
        let adder = std::mem::take(&mut self.adder);
        self.emit(adder.finish(), &mut sink)?;
        let cid = self
            .last
            .expect("FileAdder always produces at least one block, even for empty input");
        Ok(Imported {
            cid,
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
    fn push_granularity_does_not_change_the_cid() {
        let data = pattern(3 * DEFAULT_CHUNK_SIZE + 17);
        let whole = cid_of(&data, &ImportOptions::default()).unwrap();
        for step in [1000, 65_536, DEFAULT_CHUNK_SIZE + 1] {
            let mut imp = Importer::new(&ImportOptions::default()).unwrap();
            for part in data.chunks(step) {
                imp.push(part, |_| Ok::<_, Error>(())).unwrap();
            }
            assert_eq!(imp.finish(|_| Ok::<_, Error>(())).unwrap(), whole);
        }
        let reader = cid_of_reader(&data[..], &ImportOptions::default()).unwrap();
        assert_eq!(reader, whole);
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
