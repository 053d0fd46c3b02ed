//! The redundancy pipeline on one machine: plaintext → format-v2 ciphertext → segments →
//! Reed-Solomon pieces → each piece's CID and Merkle root, and back.
//!
//! # Two cores
//! Encrypting a segment (AES-256-GCM, plus the SHA-256 of the plaintext that format v2 checks)
//! is sequential; encoding a segment and hashing its `n` pieces (SHA-256 for the CID, keccak256
//! for the Merkle root) is not. [`encode`] therefore runs on two threads:
//!
//! ```text
//! caller's thread  │ encrypt seg 0 │ encrypt seg 1        │ hash jobs of 0 │ encrypt seg 2 …
//! helper thread    │               │ RS seg 0 │ hash jobs of 0            │ RS seg 1 │ …
//! ```
//!
//! The helper Reed-Solomon-encodes segment `i` while the caller's thread encrypts segment
//! `i + 1`; then both take the `2 n` digest jobs of segment `i` (the CID of a piece, the root
//! of a piece) from one counter until none is left, and segment `i` goes to the sink. Two
//! ciphertext buffers and one set of pieces (plus the one the sink holds) are alive at a
//! time: memory is bounded by about `2 S + 2 S n / k` for segments of `S` bytes, whatever the
//! file's size.
//!
//! [`SegmentDecoder`] is the reverse: any `k` checked pieces of each segment in order →
//! segment → decryption, releasing plaintext only after each encryption segment's tag
//! verified and checking the plaintext's SHA-256 sealed in the header at the end, as the
//! single-node download does.

use std::{
    io::Read,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
};

use cid::Cid;
use px_core::{
    crypto::{self, Decryptor, Encryptor, FileId, Opened, OwnerKey},
    erasure::{self, Decoder, Encoder, Pieces, Redundancy},
    importer::{ImportError, Importer},
    network::PiecePlacement,
    piece::{self, PieceHasher, PieceRoot, PieceSummary},
};

use super::{NetworkError, PieceFault, Result};

/// Settings of the encoding pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// `k`-of-`n`.
    pub redundancy: Redundancy,
    /// Ciphertext bytes per erasure segment (1 ..= 64 MiB; the last segment may be shorter).
    pub segment_size: usize,
    /// Two threads (the default) or one (the sequential reference, same output).
    pub parallel: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            redundancy: Redundancy::DEFAULT,
            segment_size: erasure::DEFAULT_SEGMENT_SIZE,
            parallel: true,
        }
    }
}

/// One encoded segment: its pieces and each piece's CID, root, depth and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedSegment {
    /// Its index in the file.
    pub index: u32,
    /// Ciphertext bytes in it (what the manifest records and decoding truncates to).
    pub length: u64,
    /// The `n` pieces.
    pub pieces: Pieces,
    /// Piece `i`'s CID and root at index `i`.
    pub digests: Vec<PieceSummary>,
}

impl EncodedSegment {
    /// Piece `i`.
    pub fn piece(&self, i: usize) -> &[u8] {
        self.pieces.piece(i)
    }
}

/// What [`encode`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    /// The encrypted file's id (header bytes 16..32), to bind its name to.
    pub file_id: FileId,
    /// Plaintext bytes read.
    pub plain_len: u64,
    /// Ciphertext bytes (the manifest's `size`).
    pub cipher_len: u64,
    /// Segments produced.
    pub segments: u32,
}

/// Encrypts `input` with `enc` (format v2: build it with the plaintext's SHA-256, as for a
/// single-node upload), cuts the ciphertext into segments, encodes each into pieces and
/// computes their CIDs and roots; each segment goes to `sink` in order. See the module docs.
///
/// # Errors
/// Reading `input`, encryption (the input no longer hashes to the SHA-256 `enc` was built
/// with), invalid options, or the sink's error (which stops the pipeline).
pub fn encode<R: Read + Send>(
    enc: Encryptor,
    input: R,
    opts: &EncodeOptions,
    sink: impl FnMut(EncodedSegment) -> Result<()>,
) -> Result<Encoded> {
    erasure::check_segment_size(opts.segment_size)?;
    let file_id = enc.file_id();
    let mut cipher = CipherStream::new(enc, input);
    let segments = if opts.parallel {
        encode_parallel(&mut cipher, opts, sink)?
    } else {
        encode_sequential(&mut cipher, opts, sink)?
    };
    Ok(Encoded {
        file_id,
        plain_len: cipher.plain_len,
        cipher_len: cipher.cipher_len,
        segments,
    })
}

/// The SHA-256 of `input` (the first pass: format v2 seals it into the header), read in 1 MiB
/// blocks.
pub fn sha256_of(mut input: impl Read) -> Result<[u8; 32]> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = read_some(&mut input, &mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

fn read_some(input: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    loop {
        match input.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(NetworkError::Io(e)),
        }
    }
}

/// Reads as much as fits in `buf` (short only at the end of the input).
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let n = read_some(input, &mut buf[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

/// The ciphertext of a file as a byte stream, produced one encryption segment at a time.
struct CipherStream<R> {
    enc: Encryptor,
    input: R,
    /// Sealed bytes not yet handed out, from `pending_at`.
    pending: Vec<u8>,
    pending_at: usize,
    /// A byte read ahead to learn whether the segment before it was the last.
    lookahead: Option<u8>,
    header_sent: bool,
    done: bool,
    plain_len: u64,
    cipher_len: u64,
}

impl<R: Read> CipherStream<R> {
    fn new(enc: Encryptor, input: R) -> Self {
        let cap = enc.segment_size() + crypto::TAG_LEN;
        Self {
            enc,
            input,
            pending: Vec::with_capacity(cap),
            pending_at: 0,
            lookahead: None,
            header_sent: false,
            done: false,
            plain_len: 0,
            cipher_len: 0,
        }
    }

    /// Seals the next encryption segment into `pending`; false when the stream has ended.
    fn refill(&mut self) -> Result<bool> {
        self.pending.clear();
        self.pending_at = 0;
        if !self.header_sent {
            self.header_sent = true;
            self.pending.extend_from_slice(self.enc.header());
            return Ok(true);
        }
        if self.done {
            return Ok(false);
        }
        let size = self.enc.segment_size();
        self.pending.resize(size, 0);
        let mut got = 0;
        if let Some(b) = self.lookahead.take() {
            self.pending[0] = b;
            got = 1;
        }
        got += read_full(&mut self.input, &mut self.pending[got..])?;
        self.pending.truncate(got);
        let last = if got < size {
            true
        } else {
            let mut one = [0u8; 1];
            let more = read_full(&mut self.input, &mut one)? == 1;
            if more {
                self.lookahead = Some(one[0]);
            }
            !more
        };
        self.plain_len += got as u64;
        self.enc.seal_segment(&mut self.pending, last)?;
        self.done = last;
        Ok(true)
    }

    /// Fills `buf` (cleared first) with up to `max` ciphertext bytes; empty at the end.
    fn fill(&mut self, buf: &mut Vec<u8>, max: usize) -> Result<()> {
        buf.clear();
        while buf.len() < max {
            if self.pending_at == self.pending.len() && !self.refill()? {
                break;
            }
            let take = (max - buf.len()).min(self.pending.len() - self.pending_at);
            buf.extend_from_slice(&self.pending[self.pending_at..self.pending_at + take]);
            self.pending_at += take;
        }
        self.cipher_len += buf.len() as u64;
        Ok(())
    }
}

/// The `2 n` digest jobs of one encoded segment, shared by both threads.
struct Jobs {
    pieces: Pieces,
    next: AtomicUsize,
    cids: Mutex<Vec<Option<Cid>>>,
    roots: Mutex<Vec<Option<PieceRoot>>>,
}

impl Jobs {
    fn new(pieces: Pieces) -> Self {
        let n = pieces.len();
        Self {
            pieces,
            next: AtomicUsize::new(0),
            cids: Mutex::new(vec![None; n]),
            roots: Mutex::new(vec![None; n]),
        }
    }

    /// Takes and runs jobs until none is left. Job `2 i` is piece `i`'s CID, `2 i + 1` its
    /// root, so both kinds are spread over both threads.
    fn work(&self) -> Result<()> {
        let n = self.pieces.len();
        loop {
            let j = self.next.fetch_add(1, Ordering::Relaxed);
            if j >= 2 * n {
                return Ok(());
            }
            let (i, root) = (j / 2, j % 2 == 1);
            let bytes = self.pieces.piece(i);
            if root {
                let mut h = PieceHasher::new(piece::MAX_DEPTH);
                h.update(bytes);
                let r = h.finish()?;
                self.roots.lock().expect("lock")[i] = Some(r);
            } else {
                let mut imp = Importer::new(&piece::CID_OPTIONS).expect("valid options");
                imp.push(bytes, |_| Ok::<_, ImportError>(()))?;
                let cid = imp.finish(|_| Ok::<_, ImportError>(()))?.cid;
                self.cids.lock().expect("lock")[i] = Some(cid);
            }
        }
    }

    fn into_segment(self, index: u32, length: usize) -> EncodedSegment {
        let cids = self.cids.into_inner().expect("lock");
        let roots = self.roots.into_inner().expect("lock");
        let digests = cids
            .into_iter()
            .zip(roots)
            .map(|(cid, root)| PieceSummary {
                cid: cid.expect("every job ran"),
                root: root.expect("every job ran"),
            })
            .collect();
        EncodedSegment {
            index,
            length: length as u64,
            pieces: self.pieces,
            digests,
        }
    }
}

fn segment_index(i: usize) -> Result<u32> {
    u32::try_from(i).map_err(|_| NetworkError::TooManySegments)
}

fn encode_sequential<R: Read>(
    cipher: &mut CipherStream<R>,
    opts: &EncodeOptions,
    mut sink: impl FnMut(EncodedSegment) -> Result<()>,
) -> Result<u32> {
    let mut rs = Encoder::new(opts.redundancy);
    let mut buf = Vec::with_capacity(opts.segment_size);
    let mut i = 0usize;
    loop {
        cipher.fill(&mut buf, opts.segment_size)?;
        if buf.is_empty() {
            return segment_index(i);
        }
        let jobs = Jobs::new(rs.encode(&buf)?);
        jobs.work()?;
        sink(jobs.into_segment(segment_index(i)?, buf.len()))?;
        i += 1;
    }
}

fn encode_parallel<R: Read + Send>(
    cipher: &mut CipherStream<R>,
    opts: &EncodeOptions,
    mut sink: impl FnMut(EncodedSegment) -> Result<()>,
) -> Result<u32> {
    // Caller -> helper: a ciphertext segment to encode (None: stop).
    let (to_helper, segments) = mpsc::sync_channel::<Option<Vec<u8>>>(1);
    // Helper -> caller: the buffer back and the segment's jobs (or the encoder's error).
    let (to_caller, encoded) = mpsc::sync_channel::<Result<(Vec<u8>, Arc<Jobs>)>>(1);
    // Helper -> caller: done with the jobs of the segment (its Arc dropped).
    let (done_tx, done) = mpsc::sync_channel::<Result<()>>(1);
    let redundancy = opts.redundancy;
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut rs = Encoder::new(redundancy);
            while let Ok(Some(buf)) = segments.recv() {
                let jobs = match rs.encode(&buf) {
                    Ok(p) => Arc::new(Jobs::new(p)),
                    Err(e) => {
                        let _ = to_caller.send(Err(e.into()));
                        return;
                    }
                };
                if to_caller.send(Ok((buf, jobs.clone()))).is_err() {
                    return;
                }
                let r = jobs.work();
                drop(jobs);
                if done_tx.send(r).is_err() {
                    return;
                }
            }
        });
        let result = (|| {
            let mut current = Vec::with_capacity(opts.segment_size);
            let mut next = Vec::with_capacity(opts.segment_size);
            cipher.fill(&mut current, opts.segment_size)?;
            let mut i = 0usize;
            while !current.is_empty() {
                let length = current.len();
                to_helper
                    .send(Some(std::mem::take(&mut current)))
                    .map_err(|_| NetworkError::Pipeline)?;
                // Encrypt the next segment while the helper encodes this one.
                let filled = cipher.fill(&mut next, opts.segment_size);
                let (back, jobs) = encoded.recv().map_err(|_| NetworkError::Pipeline)??;
                let worked = jobs.work();
                let helper = done.recv().map_err(|_| NetworkError::Pipeline)?;
                filled?;
                worked?;
                helper?;
                let jobs = Arc::try_unwrap(jobs).map_err(|_| NetworkError::Pipeline)?;
                sink(jobs.into_segment(segment_index(i)?, length))?;
                i += 1;
                current = std::mem::replace(&mut next, back);
            }
            segment_index(i)
        })();
        let _ = to_helper.send(None);
        result
    })
}

/// Checks a piece fetched for `expected` (a manifest entry): its size, CID and Merkle root.
pub fn check_piece(expected: &PiecePlacement, bytes: &[u8]) -> std::result::Result<(), PieceFault> {
    if bytes.len() as u64 != expected.size {
        return Err(PieceFault::Size {
            expected: expected.size,
            got: bytes.len() as u64,
        });
    }
    let got = piece::summarize(bytes).map_err(|e| PieceFault::Unreadable(e.to_string()))?;
    if got.cid != expected.cid {
        return Err(PieceFault::Cid {
            expected: Box::new(expected.cid),
            got: Box::new(got.cid),
        });
    }
    if got.root.root != expected.root || got.root.depth != expected.depth {
        return Err(PieceFault::Root {
            expected: expected.root,
            got: got.root.root,
        });
    }
    Ok(())
}

/// Bytes of a decoded segment given to the decryptor at a time ([`SegmentDecoder`]).
const DECRYPT_FEED: usize = 64 << 10;

/// Rebuilds a file from `k` pieces per segment and decrypts it, segment by segment.
///
/// Give it each segment in order ([`SegmentDecoder::push_segment`]) with pieces already
/// checked against the manifest ([`check_piece`]), then [`SegmentDecoder::finish`], which
/// checks the plaintext's SHA-256 sealed in the header. Plaintext is released only after each
/// encryption segment's tag verified; a file whose name is bound to a file id is checked
/// against it before any plaintext is released ([`Decryptor::bound_to`]).
#[derive(Debug)]
pub struct SegmentDecoder {
    decoder: Decoder,
    decryptor: Decryptor,
    segment: Vec<u8>,
    next: u32,
}

impl SegmentDecoder {
    /// A decoder for pieces at `redundancy`, decrypting with `owner`; `file_id` is the id the
    /// file's (version 2) name is bound to, checked before any plaintext is released; `None`
    /// accepts any file id.
    pub fn new(redundancy: Redundancy, owner: &OwnerKey, file_id: Option<FileId>) -> Self {
        Self {
            decoder: Decoder::new(redundancy),
            decryptor: match file_id {
                Some(id) => Decryptor::bound_to(owner, Some(id)),
                None => Decryptor::new(owner),
            },
            segment: Vec::new(),
            next: 0,
        }
    }

    /// Segment `index` (the next one) of `length` ciphertext bytes from its pieces
    /// (index, bytes); its plaintext goes to `out`.
    pub fn push_segment(
        &mut self,
        index: u32,
        length: u64,
        pieces: &[(usize, &[u8])],
        mut out: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        if index != self.next {
            return Err(NetworkError::SegmentOrder {
                expected: self.next,
                got: index,
            });
        }
        let length = usize::try_from(length).map_err(|_| NetworkError::TooManySegments)?;
        self.decoder.decode(length, pieces, &mut self.segment)?;
        let mut failed = None;
        // In parts of `DECRYPT_FEED` bytes: the decryptor buffers what it is given and moves
        // what follows each encryption segment it opens to the front, so a whole erasure
        // segment at once would be copied over and over (a quarter of the download's CPU at
        // 64 MiB segments).
        for part in self.segment.chunks(DECRYPT_FEED) {
            self.decryptor
                .push(part, |p| {
                    out(p).map_err(|e| {
                        failed = Some(e);
                        crypto::CryptoError::Invalid("output failed".into())
                    })
                })
                .map_err(|e| failed.take().unwrap_or(NetworkError::Crypto(e)))?;
        }
        self.next += 1;
        Ok(())
    }

    /// Ends the file: checks it was complete and its plaintext's SHA-256.
    pub fn finish(self, mut out: impl FnMut(&[u8]) -> Result<()>) -> Result<Opened> {
        let mut failed = None;
        self.decryptor
            .finish(|p| {
                out(p).map_err(|e| {
                    failed = Some(e);
                    crypto::CryptoError::Invalid("output failed".into())
                })
            })
            .map_err(|e| failed.take().unwrap_or(NetworkError::Crypto(e)))
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256};
    use px_core::{
        crypto::CryptoError,
        erasure::ErasureError,
        network::{SignedOrder, UploadOrder},
    };

    use super::*;

    const CRYPTO_SEGMENT: usize = crypto::MIN_SEGMENT_SIZE;

    fn data(len: usize, seed: u8) -> Vec<u8> {
        px_cli::devnet::sample_bytes(len, u64::from(seed))
    }

    fn owner() -> OwnerKey {
        OwnerKey::from_bytes([7; 32])
    }

    fn encryptor(plain: &[u8]) -> Encryptor {
        Encryptor::deterministic(
            &owner(),
            CRYPTO_SEGMENT,
            crypto::sha256(plain),
            [0x11; 32],
            [0x22; 16],
            [0x33; 12],
        )
    }

    fn opts(k: u16, n: u16, segment_size: usize, parallel: bool) -> EncodeOptions {
        EncodeOptions {
            redundancy: Redundancy::new(k, n).unwrap(),
            segment_size,
            parallel,
        }
    }

    fn run(plain: &[u8], o: &EncodeOptions) -> (Encoded, Vec<EncodedSegment>) {
        let mut segs = Vec::new();
        let done = encode(encryptor(plain), plain, o, |s| {
            segs.push(s);
            Ok(())
        })
        .unwrap();
        (done, segs)
    }

    /// What the pipeline must equal: format v2 ciphertext as `crypto::encrypt_with` writes it,
    /// cut into segments, each erasure-coded and each piece summarized by px-core.
    fn reference(plain: &[u8], o: &EncodeOptions) -> Vec<EncodedSegment> {
        let sealed = crypto::encrypt_with(&mut encryptor(plain), plain).unwrap();
        let mut enc = Encoder::new(o.redundancy);
        sealed
            .chunks(o.segment_size)
            .enumerate()
            .map(|(i, seg)| {
                let pieces = enc.encode(seg).unwrap();
                let digests = pieces
                    .iter()
                    .map(|p| piece::summarize(p).unwrap())
                    .collect();
                EncodedSegment {
                    index: i as u32,
                    length: seg.len() as u64,
                    pieces,
                    digests,
                }
            })
            .collect()
    }

    #[test]
    fn both_pipelines_give_px_core_ciphertext_pieces_cids_and_roots() {
        for (len, segment_size) in [
            (0, 4096),
            (1, 4096),
            (5000, 4096),
            (3 * CRYPTO_SEGMENT, 1000),
            (50_000, 10_007),
            (50_000, 1 << 20),
        ] {
            let plain = data(len, len as u8);
            for parallel in [true, false] {
                let o = opts(4, 6, segment_size, parallel);
                let (done, segs) = run(&plain, &o);
                let want = reference(&plain, &o);
                assert_eq!(
                    segs, want,
                    "len {len} segment {segment_size} parallel {parallel}"
                );
                assert_eq!(done.segments as usize, want.len());
                assert_eq!(done.plain_len, len as u64);
                assert_eq!(
                    done.cipher_len,
                    crypto::encrypted_len(len as u64, CRYPTO_SEGMENT)
                );
                assert_eq!(done.file_id, [0x22; 16]);
            }
        }
    }

    fn decode_all(
        o: &EncodeOptions,
        segs: &[EncodedSegment],
        keep: impl Fn(u32, usize) -> bool,
        file_id: Option<FileId>,
    ) -> Result<(Vec<u8>, Opened)> {
        let mut dec = SegmentDecoder::new(o.redundancy, &owner(), file_id);
        let mut out = Vec::new();
        for s in segs {
            let have: Vec<(usize, &[u8])> = (0..s.pieces.len())
                .filter(|&i| keep(s.index, i))
                .map(|i| (i, s.piece(i)))
                .collect();
            dec.push_segment(s.index, s.length, &have, |p| {
                out.extend_from_slice(p);
                Ok(())
            })?;
        }
        let opened = dec.finish(|p| {
            out.extend_from_slice(p);
            Ok(())
        })?;
        Ok((out, opened))
    }

    #[test]
    fn any_k_pieces_per_segment_give_back_the_plaintext() {
        let plain = data(40_000, 9);
        let o = opts(4, 6, 7000, true);
        let (_, segs) = run(&plain, &o);
        assert!(segs.len() >= 6);
        // Every pair of lost pieces, a different pair in each segment.
        let pairs: Vec<(usize, usize)> = (0..6)
            .flat_map(|a| (a + 1..6).map(move |b| (a, b)))
            .collect();
        for shift in 0..pairs.len() {
            let (out, opened) = decode_all(
                &o,
                &segs,
                |s, i| {
                    let (a, b) = pairs[(s as usize + shift) % pairs.len()];
                    i != a && i != b
                },
                Some([0x22; 16]),
            )
            .unwrap();
            assert_eq!(out, plain);
            assert_eq!(opened.sha256, crypto::sha256(&plain));
        }
        // 10-of-30 from recovery pieces only.
        let o = opts(10, 30, 9000, true);
        let (_, segs) = run(&plain, &o);
        let (out, _) = decode_all(&o, &segs, |_, i| i >= 20, None).unwrap();
        assert_eq!(out, plain);
    }

    #[test]
    fn fewer_than_k_pieces_or_a_wrong_file_id_release_nothing() {
        let plain = data(20_000, 3);
        let o = opts(4, 6, 8192, false);
        let (_, segs) = run(&plain, &o);
        let r = decode_all(&o, &segs, |s, i| s != 1 || i < 3, None);
        assert!(
            matches!(
                r,
                Err(NetworkError::Erasure(ErasureError::TooFewPieces {
                    have: 3,
                    need: 4
                }))
            ),
            "{r:?}"
        );
        let r = decode_all(&o, &segs, |_, _| true, Some([0x99; 16]));
        assert!(matches!(r, Err(NetworkError::Crypto(_))), "{r:?}");
        // A segment left out is caught (order), one missing at the end by the decryptor.
        let mut dec = SegmentDecoder::new(o.redundancy, &owner(), None);
        let all: Vec<(usize, &[u8])> = (0..6).map(|i| (i, segs[1].piece(i))).collect();
        assert!(matches!(
            dec.push_segment(1, segs[1].length, &all, |_| Ok(())),
            Err(NetworkError::SegmentOrder {
                expected: 0,
                got: 1
            })
        ));
        let r = decode_all(&o, &segs[..segs.len() - 1], |_, _| true, None);
        assert!(
            matches!(r, Err(NetworkError::Crypto(CryptoError::Corrupt(_)))),
            "{r:?}"
        );
    }

    #[test]
    fn an_unchecked_wrong_piece_fails_decryption_and_the_check_names_it() {
        let plain = data(30_000, 5);
        let o = opts(4, 6, 16_384, true);
        let (_, segs) = run(&plain, &o);
        // A recovery piece with one byte flipped, used to rebuild original piece 0.
        let mut bad = segs[0].piece(4).to_vec();
        bad[100] ^= 1;
        let mut dec = SegmentDecoder::new(o.redundancy, &owner(), None);
        let have = [
            (1, segs[0].piece(1)),
            (2, segs[0].piece(2)),
            (3, segs[0].piece(3)),
            (4, &bad[..]),
        ];
        let r = dec.push_segment(0, segs[0].length, &have, |_| Ok(()));
        assert!(
            matches!(r, Err(NetworkError::Crypto(CryptoError::Corrupt(_)))),
            "{r:?}"
        );

        // The manifest's entry of piece 4 of segment 0.
        let d = segs[0].digests[4];
        let order = SignedOrder {
            order: UploadOrder {
                token_id: 1,
                file: B256::ZERO,
                segment: 0,
                piece: 4,
                provider: Address::ZERO,
                max_size: d.root.size,
                expiry: 0,
            },
            signature: alloy::primitives::Signature::test_signature(),
        };
        let entry = PiecePlacement {
            index: 4,
            provider: Address::ZERO,
            cid: d.cid,
            root: d.root.root,
            depth: d.root.depth,
            size: d.root.size,
            order,
            receipt: alloy::primitives::Signature::test_signature(),
        };
        assert_eq!(check_piece(&entry, segs[0].piece(4)), Ok(()));
        assert!(matches!(
            check_piece(&entry, &bad),
            Err(PieceFault::Cid { .. })
        ));
        // Another piece of the same size: the wrong piece.
        assert!(matches!(
            check_piece(&entry, segs[0].piece(5)),
            Err(PieceFault::Cid { got, .. }) if *got == segs[0].digests[5].cid
        ));
        assert_eq!(
            check_piece(&entry, &bad[..bad.len() - 64]),
            Err(PieceFault::Size {
                expected: d.root.size,
                got: d.root.size - 64
            })
        );
        // The right bytes under a recorded root that is not theirs.
        let mut wrong_root = entry.clone();
        wrong_root.root = B256::repeat_byte(1);
        assert!(matches!(
            check_piece(&wrong_root, segs[0].piece(4)),
            Err(PieceFault::Root { .. })
        ));
    }

    #[test]
    fn an_input_that_changed_after_hashing_fails_the_upload() {
        let plain = data(10_000, 1);
        let mut changed = plain.clone();
        changed[9_999] ^= 1;
        for parallel in [true, false] {
            let r = encode(
                encryptor(&plain),
                &changed[..],
                &opts(4, 6, 4096, parallel),
                |_| Ok(()),
            );
            assert!(
                matches!(r, Err(NetworkError::Crypto(CryptoError::Invalid(_)))),
                "{r:?}"
            );
        }
    }

    #[test]
    fn a_failing_sink_stops_the_pipeline() {
        let plain = data(50_000, 2);
        let mut calls = 0;
        let r = encode(
            encryptor(&plain),
            &plain[..],
            &opts(4, 6, 4096, true),
            |s| {
                calls += 1;
                if s.index == 2 {
                    Err(NetworkError::Pipeline)
                } else {
                    Ok(())
                }
            },
        );
        assert!(matches!(r, Err(NetworkError::Pipeline)));
        assert_eq!(calls, 3);
    }
}
