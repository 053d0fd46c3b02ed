//! Pieces as the storage market proves them: the piece Merkle tree, its paths, the deal tree
//! over piece roots, the challenge derivation and the piece CID.
//!
//! Everything here is what `StorageMarket.proveStorage` checks (`contracts/libraries/
//! StorageProof.sol`, `IStorageMarket`); `test/PieceVectors.t.sol` holds the Rust output to the
//! contract itself.
//!
//! # Piece tree
//! - **Leaves** are the piece's 32-byte chunks **as they are** (not hashed); a last chunk
//!   shorter than 32 bytes is padded with zero bytes. Erasure pieces are multiples of 64 bytes
//!   ([`crate::erasure`]), so theirs never needs padding.
//! - **Depth** `d` is the smallest with `2**d >= chunks` ([`depth_of`], 0 for a single chunk,
//!   at most [`MAX_DEPTH`] = 32, so a piece holds at most 128 GiB).
//! - **Padding**: the leaves are padded with zero chunks to `2**d`; parents are computed as
//!   usual, so the root is that of the piece padded with zero bytes to `32 * 2**d` bytes. (The
//!   root of an all-zero subtree of height `h` is `Z[h]`, `Z[0] = 0`,
//!   `Z[h+1] = keccak256(Z[h] || Z[h])`.)
//! - **Parent** = `keccak256(left || right)`; the root of a one-chunk piece is the chunk.
//! - **Path** of leaf `i`: the `d` siblings from level 0 up; the contract requires exactly `d`
//!   of them (the depth is committed in the deal leaf), which is the domain separation between
//!   a chunk and an inner node. A challenge may pick a padding leaf (`i >= chunks`): its leaf
//!   is the zero chunk and its path is as valid as any other.
//!
//! # Deal tree
//! Level-0 nodes are `keccak256(pieceRoot || uint8(pieceDepth))` (33 bytes, so never an inner
//! node), padded with zero nodes to a power of two, parents as above ([`deal_root`],
//! [`deal_path`]). Challenge `i` of a period with seed `s` picks piece
//! `h % pieceCount` and leaf `(h >> 128) % 2**pieceDepth` with `h = keccak256(s || uint256(i))`
//! ([`challenge`]).
//!
//! # Proving with bounded memory
//! A prover keeps, per piece, only the tree's nodes at and above a **block level** `b`
//! ([`TopLevels`], [`DEFAULT_BLOCK_LEVEL`] = 13: a block is `2**13` chunks = 256 KiB, which is
//! exactly one raw leaf block of the piece's UnixFS DAG, so a challenge rereads one IPFS
//! block). That is 64 bytes per 256 KiB stored (256 KiB per GiB). To answer a challenge it
//! rereads the challenged leaf's block ([`TopLevels::block_range`]) and builds the path
//! ([`TopLevels::prove`]), which also checks the block against the cached node, so a damaged
//! store is reported instead of proven wrong.
//!
//! # Hashing speed
//! The tree costs one Keccak-f[1600] permutation per 32 bytes of piece (one per pair), so a
//! scalar keccak256 per pair runs at about 70 MiB/s here, a twentieth of SHA-256. The hasher
//! therefore takes whole subtrees of `2**10` chunks (32 KiB), buffering what does not fill
//! one (so the split of the input does not matter), and hashes each level 8 pairs per call on
//! CPUs with AVX-512 (4 with AVX2), the states kept lane-major so that each step of a round is
//! one vector instruction; the upper levels, the last partial subtree and other CPUs hash pair
//! by pair. The output is the same bit for bit
//! (the tests hold both to alloy's `keccak256`); `core/benches/erasure.rs` (`piece-root/*`)
//! measures it against the scalar implementations.
//!
//! # Piece CID
//! The CID of a piece is what `ipfs add --cid-version=1` gives ([`CID_OPTIONS`]: CIDv1, raw
//! leaves, 256 KiB chunks), computed by the crate's own importer ([`crate::importer`]).
//! [`PieceDigest`] computes CID and Merkle root in one pass.
//!
//! ```
//! use px_core::piece::{PieceHasher, verify_path, TopLevels, DEFAULT_BLOCK_LEVEL};
//! let piece = vec![7u8; 1000]; // 32 chunks (the last padded), depth 5
//! let mut h = PieceHasher::new(DEFAULT_BLOCK_LEVEL);
//! h.update(&piece);
//! let (info, top) = h.finish_with_top().unwrap();
//! assert_eq!((info.depth, info.size), (5, 1000));
//! let range = top.block_range(9).unwrap();
//! let proof = top.prove(9, &piece[range.start as usize..range.end as usize]).unwrap();
//! assert!(verify_path(info.root, info.depth, 9, proof.leaf, &proof.path));
//! ```

use std::{ops::Range, sync::OnceLock};

use alloy::primitives::{B256, U256, keccak256};
use cid::Cid;

use crate::importer::{ImportError, ImportOptions, Importer};

/// Bytes per leaf.
pub const CHUNK_SIZE: usize = 32;
/// The deepest piece tree (`StorageProof.challenge` takes depths up to 32).
pub const MAX_DEPTH: u8 = 32;
/// The largest piece: `32 * 2**32` bytes.
pub const MAX_PIECE_SIZE: u64 = (CHUNK_SIZE as u64) << MAX_DEPTH;
/// The default block level of [`TopLevels`]: blocks of `2**13` chunks, 256 KiB.
pub const DEFAULT_BLOCK_LEVEL: u8 = 13;
/// How a piece's CID is computed: CIDv1, raw leaves, 256 KiB chunks (`ipfs add
/// --cid-version=1`).
pub const CID_OPTIONS: ImportOptions = ImportOptions {
    cid_version: 1,
    raw_leaves: Some(true),
    chunk_size: crate::importer::DEFAULT_CHUNK_SIZE,
};

/// Why a tree, path or digest could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PieceError {
    /// More than [`MAX_PIECE_SIZE`] bytes.
    #[error("piece is over the {MAX_PIECE_SIZE}-byte limit")]
    TooLarge,
    /// A proof of an empty piece was asked for.
    #[error("piece is empty")]
    Empty,
    /// A leaf index is not below `2**depth`.
    #[error("leaf {leaf} is out of range for depth {depth}")]
    LeafOutOfRange {
        /// The index.
        leaf: u64,
        /// The tree's depth.
        depth: u8,
    },
    /// The bytes given for a block do not have the block's length.
    #[error("block {block} is {got} bytes, expected {expected}")]
    BlockLength {
        /// Its index.
        block: u64,
        /// The length its range gives.
        expected: u64,
        /// The length given.
        got: usize,
    },
    /// The bytes given for a block do not hash to the cached node: the stored piece changed.
    #[error("block {block} does not match the piece's tree (stored data damaged)")]
    BlockMismatch {
        /// Its index.
        block: u64,
    },
    /// A serialized [`TopLevels`] is malformed.
    #[error("cached tree levels are malformed: {0}")]
    Malformed(&'static str),
    /// A deal tree needs at least one piece.
    #[error("a deal tree needs at least one piece")]
    NoPieces,
    /// A piece index is not below the deal's piece count.
    #[error("piece {index} is out of range for {count} pieces")]
    PieceOutOfRange {
        /// The index.
        index: usize,
        /// The piece count.
        count: usize,
    },
    /// The CID importer failed.
    #[error(transparent)]
    Import(#[from] ImportError),
}

/// Result alias of this module.
pub type Result<T, E = PieceError> = std::result::Result<T, E>;

/// `keccak256(left || right)`, `StorageProof.hashPair`.
pub fn hash_pair(left: &B256, right: &B256) -> B256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(left.as_slice());
    buf[32..].copy_from_slice(right.as_slice());
    keccak256(buf)
}

/// Hashes the `count` nodes `buf[..count]` (`count` even) pairwise into `buf[..count / 2]`:
/// node `i` becomes `keccak256(buf[2 i] || buf[2 i + 1])`, several pairs at a time where the CPU
/// allows ([`lanes`]).
fn hash_level(buf: &mut [[u8; 32]], count: usize) {
    debug_assert!(count.is_multiple_of(2) && count <= buf.len());
    let done = lanes::hash_pairs(buf, count / 2);
    for i in done..count / 2 {
        let mut pair = [0u8; 64];
        pair[..32].copy_from_slice(&buf[2 * i]);
        pair[32..].copy_from_slice(&buf[2 * i + 1]);
        buf[i] = keccak256(pair).0;
    }
}

/// The root of the complete subtree over `2**height` chunks (`data`, exactly that long), level
/// by level in `scratch`.
fn subtree_root(data: &[u8], height: u8, scratch: &mut Vec<[u8; 32]>) -> B256 {
    let mut count = 1usize << height;
    debug_assert_eq!(data.len(), count * CHUNK_SIZE);
    scratch.resize(count, [0; 32]);
    scratch.as_flattened_mut().copy_from_slice(data);
    while count > 1 {
        hash_level(scratch, count);
        count /= 2;
    }
    B256::from(scratch[0])
}

/// Keccak-f[1600] over several independent states at once, for the 64-byte messages of the
/// piece tree (one permutation each): the states are kept lane-major (`state[lane][instance]`)
/// so that every step of a round is the same operation on `L` words, which the compiler turns
/// into one vector instruction per step (AVX-512: 8 words, with a rotate and a three-input
/// logic instruction; AVX2: 4 words). The CPU's features are checked at run time; without
/// them nothing is batched and the caller hashes one pair at a time.
mod lanes {
    const RC: [u64; 24] = [
        0x0000_0000_0000_0001,
        0x0000_0000_0000_8082,
        0x8000_0000_0000_808a,
        0x8000_0000_8000_8000,
        0x0000_0000_0000_808b,
        0x0000_0000_8000_0001,
        0x8000_0000_8000_8081,
        0x8000_0000_0000_8009,
        0x0000_0000_0000_008a,
        0x0000_0000_0000_0088,
        0x0000_0000_8000_8009,
        0x0000_0000_8000_000a,
        0x0000_0000_8000_808b,
        0x8000_0000_0000_008b,
        0x8000_0000_0000_8089,
        0x8000_0000_0000_8003,
        0x8000_0000_0000_8002,
        0x8000_0000_0000_0080,
        0x0000_0000_0000_800a,
        0x8000_0000_8000_000a,
        0x8000_0000_8000_8081,
        0x8000_0000_0000_8080,
        0x0000_0000_8000_0001,
        0x8000_0000_8000_8008,
    ];
    /// The rotation of lane `x + 5 y` (rho).
    const RHO: [u32; 25] = [
        0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56,
        14,
    ];

    /// Keccak-f[1600] on `L` states.
    #[inline(always)]
    fn permute<const L: usize>(a: &mut [[u64; L]; 25]) {
        for rc in RC {
            // theta
            let mut c = [[0u64; L]; 5];
            for x in 0..5 {
                for l in 0..L {
                    c[x][l] = a[x][l] ^ a[x + 5][l] ^ a[x + 10][l] ^ a[x + 15][l] ^ a[x + 20][l];
                }
            }
            for x in 0..5 {
                for l in 0..L {
                    let d = c[(x + 4) % 5][l] ^ c[(x + 1) % 5][l].rotate_left(1);
                    for y in 0..5 {
                        a[x + 5 * y][l] ^= d;
                    }
                }
            }
            // rho and pi
            let mut b = [[0u64; L]; 25];
            for x in 0..5 {
                for y in 0..5 {
                    for l in 0..L {
                        b[y + 5 * ((2 * x + 3 * y) % 5)][l] =
                            a[x + 5 * y][l].rotate_left(RHO[x + 5 * y]);
                    }
                }
            }
            // chi
            for y in 0..5 {
                for x in 0..5 {
                    for l in 0..L {
                        a[x + 5 * y][l] = b[x + 5 * y][l]
                            ^ (!b[(x + 1) % 5 + 5 * y][l] & b[(x + 2) % 5 + 5 * y][l]);
                    }
                }
            }
            // iota
            for lane in &mut a[0] {
                *lane ^= rc;
            }
        }
    }

    /// `buf[i] = keccak256(buf[2 i] || buf[2 i + 1])` for `i` in `first .. first + L`.
    #[inline(always)]
    fn hash_group<const L: usize>(buf: &mut [[u8; 32]], first: usize) {
        let mut a = [[0u64; L]; 25];
        for l in 0..L {
            let pair = [buf[2 * (first + l)], buf[2 * (first + l) + 1]];
            for (w, word) in pair.as_flattened().chunks_exact(8).enumerate() {
                a[w][l] = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            }
            // keccak256's padding of a 64-byte message: 0x01 after it, 0x80 at the rate's end.
            a[8][l] = 0x01;
            a[16][l] = 0x80 << 56;
        }
        permute(&mut a);
        for l in 0..L {
            let out = &mut buf[first + l];
            for w in 0..4 {
                out[8 * w..8 * w + 8].copy_from_slice(&a[w][l].to_le_bytes());
            }
        }
    }

    /// Hashes pairs `0 .. L * (pairs / L)` in groups of `L` (in place, in order: group `g`
    /// reads nodes `2 g L ..` and writes `g L ..`, which no later group reads).
    #[inline(always)]
    fn hash_groups<const L: usize>(buf: &mut [[u8; 32]], pairs: usize) -> usize {
        let groups = pairs / L;
        for g in 0..groups {
            hash_group::<L>(buf, g * L);
        }
        groups * L
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl")]
    fn hash_groups_avx512(buf: &mut [[u8; 32]], pairs: usize) -> usize {
        hash_groups::<8>(buf, pairs)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn hash_groups_avx2(buf: &mut [[u8; 32]], pairs: usize) -> usize {
        hash_groups::<4>(buf, pairs)
    }

    /// Hashes the first pairs of `buf` several at a time (see [`super::hash_level`]); returns
    /// how many it hashed (a multiple of the CPU's group size; 0 without AVX2 or AVX-512).
    pub(super) fn hash_pairs(buf: &mut [[u8; 32]], pairs: usize) -> usize {
        assert!(2 * pairs <= buf.len());
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vl")
            {
                // SAFETY: the CPU has AVX-512F and AVX-512VL (checked just above).
                return unsafe { hash_groups_avx512(buf, pairs) };
            }
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked just above).
                return unsafe { hash_groups_avx2(buf, pairs) };
            }
        }
        let _ = (buf, pairs);
        0
    }

    /// The portable form of the same permutation on `L` states, for the tests.
    #[cfg(test)]
    pub(super) fn hash_pairs_portable<const L: usize>(buf: &mut [[u8; 32]], pairs: usize) -> usize {
        hash_groups::<L>(buf, pairs)
    }
}

/// `Z[h]`: the root of an all-zero subtree of height `h` (`0 ..= MAX_DEPTH`).
pub fn zero_hash(h: u8) -> B256 {
    static ZEROS: OnceLock<[B256; MAX_DEPTH as usize + 1]> = OnceLock::new();
    ZEROS.get_or_init(|| {
        let mut z = [B256::ZERO; MAX_DEPTH as usize + 1];
        for i in 1..z.len() {
            z[i] = hash_pair(&z[i - 1], &z[i - 1]);
        }
        z
    })[usize::from(h)]
}

/// The smallest `d` with `2**d >= count` (`StorageProof.depthOf`; 0 for 0 or 1).
pub fn depth_of(count: u64) -> u8 {
    if count <= 1 {
        0
    } else {
        (64 - (count - 1).leading_zeros()) as u8
    }
}

/// Chunks (leaves) of a piece of `size` bytes.
pub fn chunks_of(size: u64) -> u64 {
    size.div_ceil(CHUNK_SIZE as u64)
}

/// A piece's root, depth and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PieceRoot {
    /// The Merkle root.
    pub root: B256,
    /// The tree's depth.
    pub depth: u8,
    /// Bytes.
    pub size: u64,
}

/// The Merkle root of a piece, streaming over its bytes (memory: one node per level), keeping
/// the nodes at one block level for [`TopLevels`].
#[derive(Clone, Debug)]
pub struct PieceHasher {
    size: u64,
    partial: [u8; CHUNK_SIZE],
    partial_len: usize,
    /// `stack[h]`: a finished left subtree of height `h` waiting for its right sibling.
    stack: [Option<B256>; MAX_DEPTH as usize + 1],
    block_level: u8,
    blocks: Vec<B256>,
    too_large: bool,
    /// Bytes of the next subtree, until it is whole (fewer than `32 << SUBTREE_HEIGHT`).
    pending: Vec<u8>,
    /// The levels of the subtree being hashed ([`subtree_root`]).
    scratch: Vec<[u8; 32]>,
}

/// The height of the subtrees [`PieceHasher`] hashes level by level, several pairs at a time:
/// `2**10` chunks, 32 KiB.
const SUBTREE_HEIGHT: u8 = 10;
/// Below this subtree height the hasher pushes chunk by chunk.
const MIN_SUBTREE_HEIGHT: u8 = 4;

impl PieceHasher {
    /// A hasher that keeps the nodes at `block_level` (`0 ..= MAX_DEPTH`; see [`TopLevels`]).
    pub fn new(block_level: u8) -> Self {
        Self {
            size: 0,
            partial: [0; CHUNK_SIZE],
            partial_len: 0,
            stack: [None; MAX_DEPTH as usize + 1],
            block_level: block_level.min(MAX_DEPTH),
            blocks: Vec::new(),
            too_large: false,
            pending: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Feeds piece bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        if self.size.saturating_add(data.len() as u64) > MAX_PIECE_SIZE {
            self.too_large = true;
            return;
        }
        self.size += data.len() as u64;
        // Whole subtrees of `2**s` chunks, however the bytes are split: what does not fill one
        // waits in `pending` (so the tree is always at a multiple of `2**s` chunks here). `s`
        // is at most the block level, so every node at the block level still goes through
        // `push_at`. Low block levels (tests) go chunk by chunk.
        let s = SUBTREE_HEIGHT.min(self.block_level);
        if s < MIN_SUBTREE_HEIGHT {
            self.update_chunks(data);
            return;
        }
        let span = CHUNK_SIZE << s;
        if !self.pending.is_empty() {
            let take = (span - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < span {
                return;
            }
            let root = subtree_root(&self.pending, s, &mut self.scratch);
            self.push_at(root, s);
            self.pending.clear();
        }
        while data.len() >= span {
            let root = subtree_root(&data[..span], s, &mut self.scratch);
            self.push_at(root, s);
            data = &data[span..];
        }
        self.pending.extend_from_slice(data);
    }

    /// Feeds bytes chunk by chunk (the size already counted).
    fn update_chunks(&mut self, mut data: &[u8]) {
        if self.partial_len > 0 {
            let take = (CHUNK_SIZE - self.partial_len).min(data.len());
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(&data[..take]);
            self.partial_len += take;
            data = &data[take..];
            if self.partial_len < CHUNK_SIZE {
                return;
            }
            let leaf = B256::from(self.partial);
            self.partial_len = 0;
            self.push(leaf);
        }
        let mut chunks = data.chunks_exact(CHUNK_SIZE);
        for chunk in &mut chunks {
            self.push(B256::from_slice(chunk));
        }
        let rest = chunks.remainder();
        self.partial[..rest.len()].copy_from_slice(rest);
        self.partial_len = rest.len();
    }

    fn push(&mut self, node: B256) {
        self.push_at(node, 0);
    }

    /// Pushes the root of a complete subtree of height `h0` (`2**h0` chunks), the tree being at
    /// a multiple of `2**h0` chunks.
    fn push_at(&mut self, mut node: B256, h0: u8) {
        let mut h = h0;
        loop {
            if h == self.block_level {
                self.blocks.push(node);
            }
            match self.stack[usize::from(h)].take() {
                Some(left) => {
                    node = hash_pair(&left, &node);
                    h += 1;
                }
                None => {
                    self.stack[usize::from(h)] = Some(node);
                    return;
                }
            }
        }
    }

    /// The piece's root, depth and size.
    pub fn finish(self) -> Result<PieceRoot> {
        self.finish_with_top().map(|(root, _)| root)
    }

    /// The root, depth and size, with the cached levels a prover keeps.
    pub fn finish_with_top(mut self) -> Result<(PieceRoot, TopLevels)> {
        if self.too_large {
            return Err(PieceError::TooLarge);
        }
        let rest = std::mem::take(&mut self.pending);
        self.update_chunks(&rest);
        if self.partial_len > 0 {
            self.partial[self.partial_len..].fill(0);
            let leaf = B256::from(self.partial);
            self.partial_len = 0;
            self.push(leaf);
        }
        let chunks = chunks_of(self.size);
        let depth = depth_of(chunks);
        // Close the right edge with zero subtrees.
        let mut acc: Option<B256> = None;
        for h in 0..depth {
            acc = match (self.stack[usize::from(h)].take(), acc) {
                (Some(l), Some(r)) => Some(hash_pair(&l, &r)),
                (Some(l), None) => Some(hash_pair(&l, &zero_hash(h))),
                (None, Some(l)) => Some(hash_pair(&l, &zero_hash(h))),
                (None, None) => None,
            };
            if h + 1 == self.block_level
                && let Some(node) = acc
            {
                self.blocks.push(node);
            }
        }
        let root = acc.or(self.stack[usize::from(depth)]).unwrap_or(B256::ZERO);
        let info = PieceRoot {
            root,
            depth,
            size: self.size,
        };
        let top = if chunks == 0 {
            TopLevels {
                size: 0,
                depth: 0,
                block_level: 0,
                levels: vec![vec![B256::ZERO]],
            }
        } else if self.block_level >= depth {
            TopLevels {
                size: self.size,
                depth,
                block_level: depth,
                levels: vec![vec![root]],
            }
        } else {
            TopLevels::from_blocks(self.size, depth, self.block_level, self.blocks)
        };
        debug_assert_eq!(top.root(), root);
        Ok((info, top))
    }
}

/// The root, depth and size of `piece`.
pub fn piece_root(piece: &[u8]) -> Result<PieceRoot> {
    let mut h = PieceHasher::new(MAX_DEPTH);
    h.update(piece);
    h.finish()
}

/// A challenged leaf and its path (`IStorageMarket.Proof`'s `leaf` and `piecePath`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PieceProof {
    /// The 32-byte chunk.
    pub leaf: B256,
    /// Its siblings from level 0 up (`depth` of them).
    pub path: Vec<B256>,
}

/// The levels of a piece tree at and above a block level: what a prover keeps per piece.
///
/// `levels[0]` holds the nodes at the block level `b` that cover data (`ceil(chunks / 2**b)`
/// of them), each next level the parents, up to the root. Nodes right of the data are zero
/// subtrees and not stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopLevels {
    size: u64,
    depth: u8,
    block_level: u8,
    levels: Vec<Vec<B256>>,
}

const TOP_MAGIC: &[u8; 4] = b"PXT1";

impl TopLevels {
    fn from_blocks(size: u64, depth: u8, block_level: u8, blocks: Vec<B256>) -> Self {
        let mut levels = vec![blocks];
        for h in block_level..depth {
            let below = levels.last().expect("one level at least");
            let up = below
                .chunks(2)
                .map(|pair| hash_pair(&pair[0], pair.get(1).unwrap_or(&zero_hash(h))))
                .collect();
            levels.push(up);
        }
        Self {
            size,
            depth,
            block_level,
            levels,
        }
    }

    /// The piece's root.
    pub fn root(&self) -> B256 {
        self.levels[self.levels.len() - 1][0]
    }

    /// The tree's depth.
    pub fn depth(&self) -> u8 {
        self.depth
    }

    /// The piece's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The block level in use (the one asked for, or the depth if the tree is lower).
    pub fn block_level(&self) -> u8 {
        self.block_level
    }

    /// The block holding `leaf`.
    pub fn block_of(&self, leaf: u64) -> u64 {
        leaf >> self.block_level
    }

    /// The byte range of the piece to reread to prove `leaf`, or `None` if the leaf lies in
    /// the zero padding beyond the piece's blocks (nothing to read).
    pub fn block_range(&self, leaf: u64) -> Option<Range<u64>> {
        let block_bytes = (CHUNK_SIZE as u64) << self.block_level;
        let start = self.block_of(leaf).checked_mul(block_bytes)?;
        (start < self.size).then(|| start..(start + block_bytes).min(self.size))
    }

    /// The proof of `leaf`, from the bytes of its block (what [`TopLevels::block_range`] names;
    /// empty if it names none). Fails if the bytes do not hash to the cached node.
    pub fn prove(&self, leaf: u64, block: &[u8]) -> Result<PieceProof> {
        if self.size == 0 {
            return Err(PieceError::Empty);
        }
        if self.depth < 64 && leaf >> self.depth != 0 {
            return Err(PieceError::LeafOutOfRange {
                leaf,
                depth: self.depth,
            });
        }
        let b = self.block_of(leaf);
        let expected = self.block_range(leaf).map_or(0, |r| r.end - r.start);
        if block.len() as u64 != expected {
            return Err(PieceError::BlockLength {
                block: b,
                expected,
                got: block.len(),
            });
        }
        let bl = self.block_level;
        let mut path = Vec::with_capacity(usize::from(self.depth));
        let offset = leaf & ((1u64 << bl) - 1);
        let leaf_node;
        if block.is_empty() {
            // A padding block: zero leaf, zero subtrees below the block level.
            leaf_node = B256::ZERO;
            path.extend((0..bl).map(zero_hash));
        } else {
            // The block's subtree, bottom up, padded with zero subtrees.
            // One spare node for the zero subtree that pads an odd level.
            let mut count = block.len().div_ceil(CHUNK_SIZE);
            let mut level = vec![[0u8; CHUNK_SIZE]; count + 1];
            level.as_flattened_mut()[..block.len()].copy_from_slice(block);
            let node = |level: &[[u8; 32]], count: usize, i: usize, h: u8| {
                if i < count {
                    B256::from(level[i])
                } else {
                    zero_hash(h)
                }
            };
            leaf_node = node(&level, count, offset as usize, 0);
            let mut idx = offset as usize;
            for h in 0..bl {
                path.push(node(&level, count, idx ^ 1, h));
                if count % 2 == 1 {
                    level[count] = zero_hash(h).0;
                    count += 1;
                }
                hash_level(&mut level, count);
                count /= 2;
                idx >>= 1;
            }
            if B256::from(level[0]) != self.levels[0][b as usize] {
                return Err(PieceError::BlockMismatch { block: b });
            }
        }
        let mut idx = b;
        for (i, nodes) in self.levels[..self.levels.len() - 1].iter().enumerate() {
            let h = bl + i as u8;
            path.push(
                nodes
                    .get((idx ^ 1) as usize)
                    .copied()
                    .unwrap_or(zero_hash(h)),
            );
            idx >>= 1;
        }
        Ok(PieceProof {
            leaf: leaf_node,
            path,
        })
    }

    /// A compact form to keep on disk: the block-level nodes (the levels above are recomputed
    /// on load). `"PXT1" || size u64 BE || depth u8 || block level u8 || nodes (32 bytes each)`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + 32 * self.levels[0].len());
        out.extend_from_slice(TOP_MAGIC);
        out.extend_from_slice(&self.size.to_be_bytes());
        out.push(self.depth);
        out.push(self.block_level);
        for n in &self.levels[0] {
            out.extend_from_slice(n.as_slice());
        }
        out
    }

    /// Reads [`TopLevels::to_bytes`]; checks its shape (not its root: compare
    /// [`TopLevels::root`] with the one the piece was stored under).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let rest = bytes
            .strip_prefix(TOP_MAGIC)
            .ok_or(PieceError::Malformed("magic"))?;
        if rest.len() < 10 {
            return Err(PieceError::Malformed("short header"));
        }
        let size = u64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
        let (depth, bl) = (rest[8], rest[9]);
        let nodes = &rest[10..];
        let chunks = chunks_of(size);
        if size > MAX_PIECE_SIZE || depth != depth_of(chunks) || bl > depth {
            return Err(PieceError::Malformed("size, depth or block level"));
        }
        let count = chunks.div_ceil(1 << bl).max(1);
        if nodes.len() as u64 != count * 32 {
            return Err(PieceError::Malformed("node count"));
        }
        let blocks = nodes.chunks_exact(32).map(B256::from_slice).collect();
        Ok(Self::from_blocks(size, depth, bl, blocks))
    }
}

/// Whether `path` leads from `leaf` at `index` to `root` in a tree of `depth`: the piece half
/// of `StorageMarket`'s check (the path must be exactly `depth` long).
pub fn verify_path(root: B256, depth: u8, index: u64, leaf: B256, path: &[B256]) -> bool {
    path.len() == usize::from(depth)
        && (depth >= 64 || index >> depth == 0)
        && process_path(leaf, index, path) == root
}

/// `StorageProof.processPath`: the root `path` leads to from `node` at `index`.
pub fn process_path(mut node: B256, mut index: u64, path: &[B256]) -> B256 {
    for sibling in path {
        node = if index & 1 == 0 {
            hash_pair(&node, sibling)
        } else {
            hash_pair(sibling, &node)
        };
        index >>= 1;
    }
    node
}

/// A deal tree's level-0 node: `keccak256(pieceRoot || uint8(depth))`.
pub fn deal_leaf(piece_root: &B256, depth: u8) -> B256 {
    let mut buf = [0u8; 33];
    buf[..32].copy_from_slice(piece_root.as_slice());
    buf[32] = depth;
    keccak256(buf)
}

/// The levels of the deal tree over `pieces` (root, depth), bottom up, padded with zero nodes.
fn deal_levels(pieces: &[(B256, u8)]) -> Result<Vec<Vec<B256>>> {
    if pieces.is_empty() {
        return Err(PieceError::NoPieces);
    }
    let depth = depth_of(pieces.len() as u64);
    let mut level: Vec<B256> = pieces.iter().map(|(r, d)| deal_leaf(r, *d)).collect();
    level.resize(1 << depth, B256::ZERO);
    let mut levels = vec![level];
    while levels.last().expect("non-empty").len() > 1 {
        let up = levels
            .last()
            .expect("non-empty")
            .chunks(2)
            .map(|p| hash_pair(&p[0], &p[1]))
            .collect();
        levels.push(up);
    }
    Ok(levels)
}

/// The deal root over `pieces` (root, depth) in deal order.
pub fn deal_root(pieces: &[(B256, u8)]) -> Result<B256> {
    Ok(deal_levels(pieces)?.last().expect("non-empty")[0])
}

/// The deal path of piece `index` (`IStorageMarket.Proof`'s `dealPath`).
pub fn deal_path(pieces: &[(B256, u8)], index: usize) -> Result<Vec<B256>> {
    if index >= pieces.len() {
        return Err(PieceError::PieceOutOfRange {
            index,
            count: pieces.len(),
        });
    }
    let levels = deal_levels(pieces)?;
    Ok(levels[..levels.len() - 1]
        .iter()
        .enumerate()
        .map(|(h, l)| l[(index >> h) ^ 1])
        .collect())
}

/// `StorageProof.challenge`: the piece and leaf challenge `index` of `seed` picks.
pub fn challenge(seed: B256, index: u64, piece_count: u64, piece_depth: u8) -> (u64, u64) {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(seed.as_slice());
    buf[56..].copy_from_slice(&index.to_be_bytes());
    let h = U256::from_be_bytes(keccak256(buf).0);
    let piece = (h % U256::from(piece_count)).to::<u64>();
    let mask = (U256::from(1u8) << usize::from(piece_depth)) - U256::from(1u8);
    let leaf = ((h >> 128usize) & mask).to::<u64>();
    (piece, leaf)
}

/// A piece's CID, Merkle root, depth and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PieceSummary {
    /// Its CID ([`CID_OPTIONS`]).
    pub cid: Cid,
    /// Root, depth, size.
    pub root: PieceRoot,
}

/// CID and Merkle root of a piece in one pass over its bytes.
#[derive(Debug)]
pub struct PieceDigest {
    importer: Importer,
    hasher: PieceHasher,
}

impl Default for PieceDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl PieceDigest {
    /// A new digest.
    pub fn new() -> Self {
        Self {
            importer: Importer::new(&CID_OPTIONS).expect("valid options"),
            hasher: PieceHasher::new(MAX_DEPTH),
        }
    }

    /// Feeds piece bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.importer
            .push(data, |_| Ok::<_, ImportError>(()))
            .expect("the sink never fails");
    }

    /// CID, root, depth and size.
    pub fn finish(self) -> Result<PieceSummary> {
        let root = self.hasher.finish()?;
        let cid = self.importer.finish(|_| Ok::<_, ImportError>(()))?.cid;
        Ok(PieceSummary { cid, root })
    }
}

/// CID, root, depth and size of `piece`.
pub fn summarize(piece: &[u8]) -> Result<PieceSummary> {
    let mut d = PieceDigest::new();
    d.update(piece);
    d.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erasure::tests::bytes;

    /// The textbook tree: all leaves padded to a power of two, every level materialized.
    fn naive_levels(piece: &[u8]) -> Vec<Vec<B256>> {
        let chunks = chunks_of(piece.len() as u64).max(1);
        let mut level: Vec<B256> = (0..chunks as usize)
            .map(|i| {
                let mut c = [0u8; 32];
                let s = &piece[(i * 32).min(piece.len())..((i + 1) * 32).min(piece.len())];
                c[..s.len()].copy_from_slice(s);
                B256::from(c)
            })
            .collect();
        level.resize(1 << depth_of(chunks), B256::ZERO);
        let mut levels = vec![level];
        while levels.last().unwrap().len() > 1 {
            let l = levels.last().unwrap();
            levels.push(l.chunks(2).map(|p| hash_pair(&p[0], &p[1])).collect());
        }
        levels
    }

    fn naive_path(levels: &[Vec<B256>], leaf: u64) -> Vec<B256> {
        levels[..levels.len() - 1]
            .iter()
            .enumerate()
            .map(|(h, l)| l[((leaf >> h) ^ 1) as usize])
            .collect()
    }

    #[test]
    fn depth_matches_depth_of() {
        assert_eq!(
            [0, 1, 2, 3, 4, 5, 8, 9].map(depth_of),
            [0, 0, 1, 2, 2, 3, 3, 4]
        );
        assert_eq!(depth_of(1 << 32), 32);
        assert_eq!(depth_of((1 << 32) + 1), 33);
    }

    #[test]
    fn zero_hashes_are_roots_of_zero_subtrees() {
        assert_eq!(zero_hash(0), B256::ZERO);
        assert_eq!(zero_hash(1), keccak256([0u8; 64]));
        assert_eq!(zero_hash(3), naive_levels(&[0u8; 256]).last().unwrap()[0]);
    }

    #[test]
    fn streaming_root_matches_the_full_tree_for_every_size_and_split() {
        let data = bytes(32 * 37 + 5, 11);
        for len in (0..=data.len())
            .step_by(7)
            .chain([1, 31, 32, 33, 64, 96, 1024])
        {
            let piece = &data[..len];
            let levels = naive_levels(piece);
            let want = levels.last().unwrap()[0];
            for split in [1, 5, 32, 33, 100, usize::MAX] {
                for bl in [0, 1, 2, 3, 13] {
                    let mut h = PieceHasher::new(bl);
                    for part in piece.chunks(split.min(len.max(1))) {
                        h.update(part);
                    }
                    let (info, top) = h.finish_with_top().unwrap();
                    assert_eq!(info.root, want, "len {len} split {split}");
                    assert_eq!(info.depth, depth_of(chunks_of(len as u64)));
                    assert_eq!(info.size, len as u64);
                    assert_eq!(top.root(), want, "len {len} bl {bl}");
                    // The cached levels are the full tree's levels (without zero subtrees).
                    if len > 0 {
                        let used = top.block_level() as usize;
                        for (i, l) in top.levels.iter().enumerate() {
                            assert_eq!(l[..], levels[used + i][..l.len()], "len {len} bl {bl}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn batched_pair_hashes_are_keccak256_of_each_pair() {
        let data = bytes(64 * 37, 21);
        let nodes: Vec<[u8; 32]> = data.chunks(32).map(|c| c.try_into().unwrap()).collect();
        let want: Vec<[u8; 32]> = data.chunks(64).map(|p| keccak256(p).0).collect();
        for count in (0..=nodes.len()).step_by(2) {
            let mut buf = nodes.clone();
            hash_level(&mut buf, count);
            assert_eq!(buf[..count / 2], want[..count / 2], "count {count}");
        }
        // Each lane width on its own, whatever this CPU has.
        for l in [1usize, 4, 8] {
            let mut buf = nodes.clone();
            let done = match l {
                1 => lanes::hash_pairs_portable::<1>(&mut buf, 37),
                4 => lanes::hash_pairs_portable::<4>(&mut buf, 37),
                _ => lanes::hash_pairs_portable::<8>(&mut buf, 37),
            };
            assert_eq!(done, 37 / l * l);
            assert_eq!(buf[..done], want[..done], "{l} lanes");
        }
    }

    #[test]
    fn subtree_hashing_keeps_roots_and_block_levels_of_large_pieces() {
        // Over 3 subtrees of 2**10 chunks, a ragged end, fed in splits that do and do not
        // fall on subtree boundaries.
        let data = bytes(32 * (3 * 1024 + 517) + 7, 4);
        let levels = naive_levels(&data);
        let want = levels.last().unwrap()[0];
        for split in [1, 31, 32 * 1024, 32 * 1024 + 32, 100_000, usize::MAX] {
            for bl in [3, 4, 5, 10, 11, 13, MAX_DEPTH] {
                let mut h = PieceHasher::new(bl);
                for part in data.chunks(split.min(data.len())) {
                    h.update(part);
                }
                let (info, top) = h.finish_with_top().unwrap();
                assert_eq!(info.root, want, "split {split} bl {bl}");
                let used = top.block_level() as usize;
                for (i, l) in top.levels.iter().enumerate() {
                    assert_eq!(l[..], levels[used + i][..l.len()], "split {split} bl {bl}");
                }
                if bl <= 13 {
                    for leaf in [0, 1, 1023, 1024, 3000, 3 * 1024 + 516, 3 * 1024 + 517, 4095] {
                        let block = top
                            .block_range(leaf)
                            .map_or(&[][..], |r| &data[r.start as usize..r.end as usize]);
                        let proof = top.prove(leaf, block).unwrap();
                        assert_eq!(proof.leaf, levels[0][leaf as usize], "bl {bl} leaf {leaf}");
                        assert_eq!(proof.path, naive_path(&levels, leaf), "bl {bl} leaf {leaf}");
                    }
                }
            }
        }
    }

    #[test]
    fn paths_from_cached_levels_match_the_full_tree_and_verify() {
        for len in [32, 33, 100, 32 * 16, 32 * 21 + 3, 32 * 64] {
            let piece = bytes(len, len as u64);
            let levels = naive_levels(&piece);
            let root = levels.last().unwrap()[0];
            let depth = depth_of(chunks_of(len as u64));
            for bl in [0, 1, 2, 3, 40] {
                let mut h = PieceHasher::new(bl);
                h.update(&piece);
                let (_, top) = h.finish_with_top().unwrap();
                for leaf in 0..1u64 << depth {
                    let block = top
                        .block_range(leaf)
                        .map_or(&[][..], |r| &piece[r.start as usize..r.end as usize]);
                    let proof = top.prove(leaf, block).unwrap();
                    assert_eq!(
                        proof.leaf, levels[0][leaf as usize],
                        "len {len} bl {bl} leaf {leaf}"
                    );
                    assert_eq!(
                        proof.path,
                        naive_path(&levels, leaf),
                        "len {len} bl {bl} leaf {leaf}"
                    );
                    assert!(verify_path(root, depth, leaf, proof.leaf, &proof.path));
                }
                assert!(matches!(
                    top.prove(1 << depth, &[]),
                    Err(PieceError::LeafOutOfRange { .. })
                ));
            }
        }
    }

    #[test]
    fn a_damaged_block_is_reported_not_proven() {
        let piece = bytes(32 * 40, 5);
        let mut h = PieceHasher::new(3);
        h.update(&piece);
        let (_, top) = h.finish_with_top().unwrap();
        let r = top.block_range(17).unwrap();
        assert_eq!(r, 512..768);
        let mut block = piece[r.start as usize..r.end as usize].to_vec();
        block[200] ^= 1;
        assert!(matches!(
            top.prove(17, &block),
            Err(PieceError::BlockMismatch { block: 2 })
        ));
        assert!(matches!(
            top.prove(17, &block[1..]),
            Err(PieceError::BlockLength {
                block: 2,
                expected: 256,
                got: 255
            })
        ));
    }

    #[test]
    fn verify_path_needs_exactly_depth_siblings() {
        let piece = bytes(32 * 4, 9);
        let levels = naive_levels(&piece);
        let root = levels[2][0];
        let path = naive_path(&levels, 2);
        assert!(verify_path(root, 2, 2, levels[0][2], &path));
        // The inner node over leaves 2 and 3 with a one-sibling path reaches the root too; the
        // length check refuses it, as the contract does.
        assert_eq!(process_path(levels[1][1], 1, &path[1..]), root);
        assert!(!verify_path(root, 2, 1, levels[1][1], &path[1..]));
        assert!(!verify_path(root, 2, 3, levels[0][2], &path));
    }

    #[test]
    fn top_levels_round_trip_through_bytes() {
        let piece = bytes(32 * 100 + 9, 3);
        let mut h = PieceHasher::new(4);
        h.update(&piece);
        let (_, top) = h.finish_with_top().unwrap();
        let bytes = top.to_bytes();
        assert_eq!(bytes.len(), 14 + 32 * 7);
        assert_eq!(TopLevels::from_bytes(&bytes).unwrap(), top);
        assert!(TopLevels::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(TopLevels::from_bytes(b"PXT0").is_err());
    }

    #[test]
    fn deal_tree_over_piece_roots() {
        let pieces: Vec<(B256, u8)> = (0..5u8).map(|i| (keccak256([i]), i + 1)).collect();
        let mut leaves: Vec<B256> = pieces.iter().map(|(r, d)| deal_leaf(r, *d)).collect();
        assert_eq!(
            leaves[0],
            keccak256([keccak256([0u8]).as_slice(), &[1]].concat())
        );
        leaves.resize(8, B256::ZERO);
        let l1: Vec<_> = leaves.chunks(2).map(|p| hash_pair(&p[0], &p[1])).collect();
        let l2: Vec<_> = l1.chunks(2).map(|p| hash_pair(&p[0], &p[1])).collect();
        let root = hash_pair(&l2[0], &l2[1]);
        assert_eq!(deal_root(&pieces).unwrap(), root);
        for (i, leaf) in leaves.iter().take(5).enumerate() {
            let path = deal_path(&pieces, i).unwrap();
            assert_eq!(process_path(*leaf, i as u64, &path), root);
        }
        assert_eq!(deal_root(&pieces[..1]).unwrap(), leaves[0]);
        assert!(deal_path(&pieces[..1], 0).unwrap().is_empty());
        assert!(matches!(deal_root(&[]), Err(PieceError::NoPieces)));
        assert!(matches!(
            deal_path(&pieces, 5),
            Err(PieceError::PieceOutOfRange { .. })
        ));
    }

    #[test]
    fn challenge_follows_storage_proof() {
        let seed = B256::repeat_byte(0x5a);
        let h = U256::from_be_bytes(
            keccak256([seed.as_slice(), &U256::from(3).to_be_bytes::<32>()].concat()).0,
        );
        let (piece, leaf) = challenge(seed, 3, 7, 19);
        assert_eq!(U256::from(piece), h % U256::from(7));
        assert_eq!(U256::from(leaf), (h >> 128) % (U256::from(1) << 19));
        assert_eq!(challenge(seed, 3, 1, 0), (0, 0));
        let (_, leaf32) = challenge(seed, 3, 1, 32);
        assert!(leaf32 < 1 << 32);
    }

    #[test]
    fn digest_gives_the_importers_cid_and_the_root() {
        let piece = bytes(300_000, 1);
        let s = summarize(&piece).unwrap();
        assert_eq!(
            s.cid,
            crate::importer::cid_of(&piece, &ImportOptions::v1())
                .unwrap()
                .cid
        );
        assert_eq!(s.root, piece_root(&piece).unwrap());
        let mut d = PieceDigest::new();
        for part in piece.chunks(1000) {
            d.update(part);
        }
        assert_eq!(d.finish().unwrap(), s);
    }
}
