//! Erasure coding of ciphertext for the provider network: segments and Reed-Solomon pieces.
//!
//! The SDK encrypts a file as [`crate::crypto`] specifies, then cuts the **ciphertext** into
//! segments and encodes each segment into `n` pieces of which any `k` rebuild it. Providers only
//! ever see pieces of ciphertext; the home node can repair a segment without any key.
//!
//! # Format
//! - **Segments.** A ciphertext of `L` bytes is cut at multiples of the segment size `S`
//!   (1 ..= [`MAX_SEGMENT_SIZE`], 64 MiB by default): segment `i` is bytes
//!   `[i*S, min((i+1)*S, L))`, so every segment but the last is `S` bytes long and the last is
//!   1 ..= `S` bytes ([`segment_lengths`]). An empty ciphertext has no segments (an encrypted
//!   file never is empty).
//! - **Piece size.** A segment of `m` bytes at `k`-of-`n` has pieces of
//!   `p = ceil(m / k)` rounded up to a multiple of [`PIECE_ALIGN`] (64) bytes
//!   ([`Redundancy::piece_size`]). `reed-solomon-simd` needs an even shard size; 64 is its SIMD
//!   block, and it makes every piece a whole number of the 32-byte chunks the piece Merkle tree
//!   is built over ([`crate::piece`]).
//! - **Padding.** The segment is followed by `k*p - m` zero bytes and cut into `k` original
//!   shards of `p` bytes: pieces `0 .. k` are those shards as they are (the code is
//!   systematic), pieces `k .. n` are the `n - k` recovery shards of `reed-solomon-simd`
//!   (Leopard-RS over GF(2^16), recovery shard `j` is piece `k + j`). Pieces carry no header.
//! - **Length.** The pieces do not record the segment's length: the manifest does
//!   ([`crate::network::Manifest`], per segment), and a decoder truncates the `k*p` rebuilt
//!   bytes to it. The piece size follows from the length and `k`, so a decoder refuses pieces
//!   of any other size.
//!
//! Memory stays bounded by one segment: [`Encoder`] and [`Decoder`] work on one segment at a
//! time and reuse their buffers. Test vectors are in `core/vectors/erasure.json`
//! (see `core/ERASURE.md`).
//!
//! ```
//! use px_core::erasure::{Decoder, Encoder, Redundancy};
//! let r: Redundancy = "4/6".parse().unwrap();
//! let segment = b"any ciphertext segment, up to 64 MiB".to_vec();
//! let pieces = Encoder::new(r).encode(&segment).unwrap();
//! assert_eq!(pieces.piece_size(), 64);
//! // Pieces 0 and 2 are lost: any 4 of the 6 rebuild the segment.
//! let have = [1, 3, 4, 5].map(|i| (i, pieces.piece(i)));
//! let mut out = Vec::new();
//! Decoder::new(r).decode(segment.len(), &have, &mut out).unwrap();
//! assert_eq!(out, segment);
//! ```

use std::{fmt, ops::Range, str::FromStr};

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

/// The largest segment (64 MiB).
pub const MAX_SEGMENT_SIZE: usize = 64 << 20;
/// The segment size the SDK uses unless told otherwise.
pub const DEFAULT_SEGMENT_SIZE: usize = MAX_SEGMENT_SIZE;
/// Pieces are a multiple of this many bytes.
pub const PIECE_ALIGN: usize = 64;
/// The most pieces a segment may be encoded into.
pub const MAX_PIECES: u16 = 256;

/// Why a segment could not be encoded or decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum ErasureError {
    /// `k` and `n` must satisfy `1 <= k < n <= MAX_PIECES`.
    #[error("redundancy {k}/{n} is invalid: need 1 <= k < n <= {MAX_PIECES}")]
    InvalidRedundancy {
        /// Pieces that rebuild a segment.
        k: u16,
        /// Pieces per segment.
        n: u16,
    },
    /// A redundancy string is not of the form `k/n`.
    #[error("redundancy {0:?} is not of the form k/n (e.g. 4/6)")]
    Unparsable(String),
    /// A segment size out of `1 ..= MAX_SEGMENT_SIZE`.
    #[error("segment size {0} is out of 1..={MAX_SEGMENT_SIZE}")]
    InvalidSegmentSize(usize),
    /// A segment is empty.
    #[error("segment is empty")]
    EmptySegment,
    /// A segment is larger than [`MAX_SEGMENT_SIZE`].
    #[error("segment of {0} bytes is over the {MAX_SEGMENT_SIZE}-byte limit")]
    SegmentTooLarge(usize),
    /// Fewer than `k` distinct pieces were given.
    #[error("{have} pieces given, {need} needed")]
    TooFewPieces {
        /// Distinct pieces given.
        have: usize,
        /// `k`.
        need: usize,
    },
    /// A piece is not of the size the segment length and `k` give.
    #[error("piece {index} is {got} bytes, expected {expected}")]
    PieceSize {
        /// Its index.
        index: usize,
        /// The size the segment length and `k` give.
        expected: usize,
        /// Its size.
        got: usize,
    },
    /// A piece index was given twice.
    #[error("piece {0} given twice")]
    DuplicatePiece(usize),
    /// A piece index is not below `n`.
    #[error("piece index {index} is out of range for {n} pieces")]
    PieceIndex {
        /// The index.
        index: usize,
        /// `n`.
        n: u16,
    },
    /// The Reed-Solomon codec refused (not expected once the checks above passed).
    #[error("reed-solomon: {0}")]
    Codec(#[from] reed_solomon_simd::Error),
}

/// Result alias of this module.
pub type Result<T, E = ErasureError> = std::result::Result<T, E>;

/// `k`-of-`n`: a segment is encoded into `n` pieces of which any `k` rebuild it.
///
/// Written `k/n` (`"4/6"`, `"10/30"`) in strings and JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Redundancy {
    k: u16,
    n: u16,
}

impl Redundancy {
    /// The devnet default, 4-of-6.
    pub const DEFAULT: Self = Self { k: 4, n: 6 };

    /// `k`-of-`n`, checked: `1 <= k < n <= MAX_PIECES`.
    pub fn new(k: u16, n: u16) -> Result<Self> {
        if k == 0 || k >= n || n > MAX_PIECES {
            return Err(ErasureError::InvalidRedundancy { k, n });
        }
        Ok(Self { k, n })
    }

    /// Pieces that rebuild a segment.
    pub fn k(self) -> u16 {
        self.k
    }

    /// Pieces per segment.
    pub fn n(self) -> u16 {
        self.n
    }

    /// The size of each piece of a segment of `segment_len` bytes:
    /// `ceil(segment_len / k)` rounded up to a multiple of [`PIECE_ALIGN`].
    pub fn piece_size(self, segment_len: usize) -> usize {
        segment_len
            .div_ceil(usize::from(self.k))
            .div_ceil(PIECE_ALIGN)
            * PIECE_ALIGN
    }

    fn check_segment(self, len: usize) -> Result<usize> {
        if len == 0 {
            return Err(ErasureError::EmptySegment);
        }
        if len > MAX_SEGMENT_SIZE {
            return Err(ErasureError::SegmentTooLarge(len));
        }
        Ok(self.piece_size(len))
    }
}

impl fmt::Display for Redundancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

impl FromStr for Redundancy {
    type Err = ErasureError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || ErasureError::Unparsable(s.to_owned());
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        Self::new(
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        )
    }
}

impl serde::Serialize for Redundancy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Redundancy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Checks a segment size (`1 ..= MAX_SEGMENT_SIZE`).
pub fn check_segment_size(segment_size: usize) -> Result<()> {
    if segment_size == 0 || segment_size > MAX_SEGMENT_SIZE {
        return Err(ErasureError::InvalidSegmentSize(segment_size));
    }
    Ok(())
}

/// The byte ranges of the segments of a ciphertext of `total` bytes.
pub fn segment_ranges(total: u64, segment_size: usize) -> Result<impl Iterator<Item = Range<u64>>> {
    check_segment_size(segment_size)?;
    let s = segment_size as u64;
    let count = total.div_ceil(s);
    Ok((0..count).map(move |i| i * s..((i + 1) * s).min(total)))
}

/// The lengths of the segments of a ciphertext of `total` bytes (what the manifest records).
pub fn segment_lengths(total: u64, segment_size: usize) -> Result<Vec<u64>> {
    Ok(segment_ranges(total, segment_size)?
        .map(|r| r.end - r.start)
        .collect())
}

/// The `n` pieces of one segment, in one buffer (piece `i` at `i * piece_size`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pieces {
    piece_size: usize,
    count: usize,
    buf: Vec<u8>,
}

impl Pieces {
    /// Each piece's size.
    pub fn piece_size(&self) -> usize {
        self.piece_size
    }

    /// How many pieces (`n`).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none (before the first encode).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Piece `i` (panics unless `i < n`).
    pub fn piece(&self, i: usize) -> &[u8] {
        assert!(i < self.count, "piece {i} of {}", self.count);
        &self.buf[i * self.piece_size..(i + 1) * self.piece_size]
    }

    /// The pieces in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        (0..self.count).map(|i| self.piece(i))
    }
}

/// Encodes segments, one at a time, reusing its buffers.
pub struct Encoder {
    r: Redundancy,
    rs: Option<ReedSolomonEncoder>,
}

impl fmt::Debug for Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encoder")
            .field("redundancy", &self.r)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// An encoder for `r`.
    pub fn new(r: Redundancy) -> Self {
        Self { r, rs: None }
    }

    /// Its redundancy.
    pub fn redundancy(&self) -> Redundancy {
        self.r
    }

    /// Encodes one segment (1 ..= [`MAX_SEGMENT_SIZE`] bytes) into `n` pieces.
    pub fn encode(&mut self, segment: &[u8]) -> Result<Pieces> {
        let mut out = Pieces::default();
        self.encode_into(segment, &mut out)?;
        Ok(out)
    }

    /// [`Encoder::encode`] into `out`, reusing its allocation.
    pub fn encode_into(&mut self, segment: &[u8], out: &mut Pieces) -> Result<()> {
        let p = self.r.check_segment(segment.len())?;
        let (k, n) = (usize::from(self.r.k), usize::from(self.r.n));
        out.buf.clear();
        out.buf.reserve(n * p);
        out.buf.extend_from_slice(segment);
        out.buf.resize(k * p, 0);
        out.piece_size = p;
        out.count = n;
        let rs = match &mut self.rs {
            Some(rs) => {
                rs.reset(k, n - k, p)?;
                rs
            }
            None => self.rs.insert(ReedSolomonEncoder::new(k, n - k, p)?),
        };
        for shard in out.buf.chunks_exact(p) {
            rs.add_original_shard(shard)?;
        }
        let result = rs.encode()?;
        for recovery in result.recovery_iter() {
            out.buf.extend_from_slice(recovery);
        }
        Ok(())
    }
}

/// Rebuilds segments from any `k` of their pieces, one at a time, reusing its buffers.
pub struct Decoder {
    r: Redundancy,
    rs: Option<ReedSolomonDecoder>,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("redundancy", &self.r)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// A decoder for `r`.
    pub fn new(r: Redundancy) -> Self {
        Self { r, rs: None }
    }

    /// Rebuilds a segment of `segment_len` bytes from `pieces` (index, bytes) into `out`
    /// (cleared first). Any `k` distinct pieces do; pieces beyond the first `k` distinct ones
    /// are checked but not used. Original pieces (index below `k`) are copied, the rest decoded.
    pub fn decode(
        &mut self,
        segment_len: usize,
        pieces: &[(usize, &[u8])],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let p = self.r.check_segment(segment_len)?;
        let (k, n) = (usize::from(self.r.k), usize::from(self.r.n));
        let mut slots: Vec<Option<&[u8]>> = vec![None; n];
        for &(index, bytes) in pieces {
            if index >= n {
                return Err(ErasureError::PieceIndex { index, n: self.r.n });
            }
            if bytes.len() != p {
                return Err(ErasureError::PieceSize {
                    index,
                    expected: p,
                    got: bytes.len(),
                });
            }
            if slots[index].replace(bytes).is_some() {
                return Err(ErasureError::DuplicatePiece(index));
            }
        }
        let have = slots.iter().flatten().count();
        if have < k {
            return Err(ErasureError::TooFewPieces { have, need: k });
        }
        out.clear();
        out.reserve(k * p);
        let originals = slots[..k].iter().flatten().count();
        if originals == k {
            for shard in slots[..k].iter().flatten() {
                out.extend_from_slice(shard);
            }
        } else {
            let rs = match &mut self.rs {
                Some(rs) => {
                    rs.reset(k, n - k, p)?;
                    rs
                }
                None => self.rs.insert(ReedSolomonDecoder::new(k, n - k, p)?),
            };
            for (i, shard) in slots[..k].iter().enumerate() {
                if let Some(shard) = shard {
                    rs.add_original_shard(i, shard)?;
                }
            }
            // Exactly as many recovery pieces as originals are missing.
            for (j, shard) in slots[k..]
                .iter()
                .enumerate()
                .filter_map(|(j, s)| Some((j, (*s)?)))
                .take(k - originals)
            {
                rs.add_recovery_shard(j, shard)?;
            }
            let result = rs.decode()?;
            for (i, shard) in slots[..k].iter().enumerate() {
                match shard {
                    Some(shard) => out.extend_from_slice(shard),
                    None => out.extend_from_slice(
                        result
                            .restored_original(i)
                            .expect("decoder restores every missing original"),
                    ),
                }
            }
        }
        out.truncate(segment_len);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic bytes (xorshift), so failures reproduce.
    pub(crate) fn bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn r(k: u16, n: u16) -> Redundancy {
        Redundancy::new(k, n).unwrap()
    }

    /// Every k-subset of n (small n).
    fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
        (0u32..1 << n)
            .filter(|m| m.count_ones() as usize == k)
            .map(|m| (0..n).filter(|i| m & (1 << i) != 0).collect())
            .collect()
    }

    #[test]
    fn any_k_of_n_rebuild_the_segment() {
        for (k, n) in [(1, 2), (2, 3), (4, 6), (3, 7)] {
            let red = r(k, n);
            for len in [1, 63, 64, 65, 255, 1000, 4096 + 7] {
                let seg = bytes(len, len as u64 + u64::from(k));
                let pieces = Encoder::new(red).encode(&seg).unwrap();
                assert_eq!(pieces.len(), usize::from(n));
                let mut dec = Decoder::new(red);
                for set in subsets(usize::from(n), usize::from(k)) {
                    let have: Vec<_> = set.iter().map(|&i| (i, pieces.piece(i))).collect();
                    let mut out = vec![0xAA; 3];
                    dec.decode(len, &have, &mut out).unwrap();
                    assert_eq!(out, seg, "{red} len {len} from {set:?}");
                }
            }
        }
    }

    #[test]
    fn ten_of_thirty_rebuilds_from_recovery_pieces_only() {
        let red = r(10, 30);
        let seg = bytes(100_003, 7);
        let pieces = Encoder::new(red).encode(&seg).unwrap();
        let have: Vec<_> = (20..30).map(|i| (i, pieces.piece(i))).collect();
        let mut out = Vec::new();
        Decoder::new(red)
            .decode(seg.len(), &have, &mut out)
            .unwrap();
        assert_eq!(out, seg);
        // Mixed, unordered, with extra pieces.
        let have: Vec<_> = [29, 3, 17, 0, 9, 22, 5, 11, 13, 28, 1, 2]
            .map(|i| (i, pieces.piece(i)))
            .to_vec();
        Decoder::new(red)
            .decode(seg.len(), &have, &mut out)
            .unwrap();
        assert_eq!(out, seg);
    }

    #[test]
    fn pieces_are_systematic_and_zero_padded() {
        let red = r(4, 6);
        let seg = bytes(200, 1);
        let pieces = Encoder::new(red).encode(&seg).unwrap();
        // ceil(200 / 4) = 50 -> 64.
        assert_eq!(pieces.piece_size(), 64);
        let mut padded = seg.clone();
        padded.resize(256, 0);
        for i in 0..4 {
            assert_eq!(pieces.piece(i), &padded[i * 64..(i + 1) * 64]);
        }
        // Recovery pieces are those of reed-solomon-simd over the padded shards.
        let rec = reed_solomon_simd::encode(4, 2, padded.chunks(64)).unwrap();
        assert_eq!(pieces.piece(4), rec[0]);
        assert_eq!(pieces.piece(5), rec[1]);
    }

    #[test]
    fn piece_size_is_ceil_over_k_aligned_to_64() {
        let red = r(10, 30);
        assert_eq!(red.piece_size(1), 64);
        assert_eq!(red.piece_size(640), 64);
        assert_eq!(red.piece_size(641), 128);
        assert_eq!(red.piece_size(MAX_SEGMENT_SIZE), 6_710_912);
        assert_eq!(r(4, 6).piece_size(MAX_SEGMENT_SIZE), 16 << 20);
    }

    #[test]
    fn encoder_reuse_gives_the_same_pieces() {
        let red = r(4, 6);
        let mut enc = Encoder::new(red);
        let a = bytes(5000, 1);
        let b = bytes(70, 2);
        let first = enc.encode(&a).unwrap();
        let mut out = Pieces::default();
        enc.encode_into(&b, &mut out).unwrap();
        assert_eq!(out, Encoder::new(red).encode(&b).unwrap());
        enc.encode_into(&a, &mut out).unwrap();
        assert_eq!(out, first);
    }

    #[test]
    fn redundancy_is_checked_and_parsed() {
        assert_eq!(
            Redundancy::new(0, 2),
            Err(ErasureError::InvalidRedundancy { k: 0, n: 2 })
        );
        assert_eq!(
            Redundancy::new(4, 4),
            Err(ErasureError::InvalidRedundancy { k: 4, n: 4 })
        );
        assert_eq!(
            Redundancy::new(5, 4),
            Err(ErasureError::InvalidRedundancy { k: 5, n: 4 })
        );
        assert_eq!(
            Redundancy::new(10, MAX_PIECES + 1),
            Err(ErasureError::InvalidRedundancy { k: 10, n: 257 })
        );
        assert!(Redundancy::new(255, MAX_PIECES).is_ok());
        assert_eq!("10/30".parse::<Redundancy>().unwrap(), r(10, 30));
        assert_eq!(r(4, 6).to_string(), "4/6");
        for bad in ["4", "4/", "a/6", "4/6/8", ""] {
            assert!(
                matches!(bad.parse::<Redundancy>(), Err(ErasureError::Unparsable(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            "0/6".parse::<Redundancy>(),
            Err(ErasureError::InvalidRedundancy { .. })
        ));
        let json = serde_json::to_string(&r(4, 6)).unwrap();
        assert_eq!(json, "\"4/6\"");
        assert_eq!(serde_json::from_str::<Redundancy>(&json).unwrap(), r(4, 6));
        assert!(serde_json::from_str::<Redundancy>("\"6/4\"").is_err());
    }

    #[test]
    fn segments_cut_at_multiples_of_the_segment_size() {
        assert_eq!(segment_lengths(0, 10).unwrap(), Vec::<u64>::new());
        assert_eq!(segment_lengths(10, 10).unwrap(), vec![10]);
        assert_eq!(segment_lengths(25, 10).unwrap(), vec![10, 10, 5]);
        let ranges: Vec<_> = segment_ranges(25, 10).unwrap().collect();
        assert_eq!(ranges, vec![0..10, 10..20, 20..25]);
        let gib = 1u64 << 30;
        assert_eq!(
            segment_lengths(gib + 1, DEFAULT_SEGMENT_SIZE)
                .unwrap()
                .len(),
            17
        );
        assert_eq!(
            segment_lengths(1, 0),
            Err(ErasureError::InvalidSegmentSize(0))
        );
        assert_eq!(
            segment_lengths(1, MAX_SEGMENT_SIZE + 1),
            Err(ErasureError::InvalidSegmentSize(MAX_SEGMENT_SIZE + 1))
        );
    }

    #[test]
    fn bad_input_is_refused() {
        let red = r(4, 6);
        let mut enc = Encoder::new(red);
        assert_eq!(enc.encode(&[]), Err(ErasureError::EmptySegment));
        let seg = bytes(300, 3);
        let pieces = enc.encode(&seg).unwrap();
        let p = pieces.piece_size();
        let mut dec = Decoder::new(red);
        let mut out = Vec::new();
        let some = |idx: &[usize]| {
            idx.iter()
                .map(|&i| (i, pieces.piece(i)))
                .collect::<Vec<_>>()
        };

        assert_eq!(
            dec.decode(300, &some(&[0, 1, 5]), &mut out),
            Err(ErasureError::TooFewPieces { have: 3, need: 4 })
        );
        let mut dup = some(&[0, 1, 5]);
        dup.push((5, pieces.piece(5)));
        assert_eq!(
            dec.decode(300, &dup, &mut out),
            Err(ErasureError::DuplicatePiece(5))
        );
        let mut far = some(&[0, 1, 5]);
        far.push((6, pieces.piece(4)));
        assert_eq!(
            dec.decode(300, &far, &mut out),
            Err(ErasureError::PieceIndex { index: 6, n: 6 })
        );
        let short = &pieces.piece(4)[..p - 2];
        let mut sized = some(&[0, 1, 5]);
        sized.push((4, short));
        assert_eq!(
            dec.decode(300, &sized, &mut out),
            Err(ErasureError::PieceSize {
                index: 4,
                expected: p,
                got: p - 2
            })
        );
        // A length whose piece size differs from the pieces' (300 -> 128, 100 -> 64).
        assert!(matches!(
            dec.decode(100, &some(&[0, 1, 2, 3]), &mut out),
            Err(ErasureError::PieceSize {
                index: 0,
                expected: 64,
                got: 128
            })
        ));
        assert_eq!(
            dec.decode(0, &some(&[0, 1, 2, 3]), &mut out),
            Err(ErasureError::EmptySegment)
        );
        assert_eq!(
            enc.encode(&vec![0; MAX_SEGMENT_SIZE + 1]),
            Err(ErasureError::SegmentTooLarge(MAX_SEGMENT_SIZE + 1))
        );
        // The decoder still works after refusals.
        dec.decode(300, &some(&[2, 3, 4, 5]), &mut out).unwrap();
        assert_eq!(out, seg);
    }
}
