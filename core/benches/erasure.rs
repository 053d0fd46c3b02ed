//! Erasure coding and piece hashing throughput, against AES-256-GCM measured in the same run.
//!
//! - `aes-256-gcm/*`: sealing a 64 MiB buffer in place with the RustCrypto crate the SDK uses
//!   (`aes-gcm`) and with `ring` (BoringSSL's assembly: VAES/VPCLMULQDQ where the CPU has them).
//! - `rs-encode/*`: one 64 MiB segment into its pieces (`erasure::Encoder::encode_into`, buffers
//!   reused as the SDK does), at 4/6 and 10/30.
//! - `rs-decode/*`: the same segment rebuilt from the worst case of k pieces (as many originals
//!   missing as the code allows: 2 of 4 at 4/6, all 10 at 10/30).
//! - `piece-hash/*`: a 16 MiB piece's Merkle root (`piece::PieceHasher`), its CID (the UnixFS
//!   importer, CIDv1 raw leaves) and both in one pass (`piece::PieceDigest`), against a flat
//!   keccak256 and a flat SHA-256 over the same bytes.
//! - `piece-root/*`: the Merkle root of the same 16 MiB piece with one keccak256 per pair, in
//!   each implementation this machine can build: alloy's `keccak256` (the `sha3` crate, which
//!   `PieceHasher` used for every pair before), `keccak-asm` (the assembly alloy's
//!   `asm-keccak` feature switches to) and `tiny-keccak`; against `PieceHasher` as it is now
//!   (8 pairs per permutation call with AVX-512, 4 with AVX2, see `piece.rs`) and SHA-256 of
//!   the same bytes (`ring` and `sha2`, both with SHA-NI here).
//!
//! Recorded 2026-11-30 on the project's 2-core VM (AVX-512, SHA-NI; other builds running, load
//! average about 2.4), `cargo bench -p px-core --bench erasure -- piece-root --warm-up-time 1
//! --measurement-time 3`, one run, 16 MiB piece:
//!
//! | piece-root/ | MiB/s |
//! |---|---:|
//! | pairwise/alloy-keccak256 (`sha3`, what `PieceHasher` did before) | 75 |
//! | pairwise/keccak-asm | 99 |
//! | pairwise/tiny-keccak | 72 |
//! | **PieceHasher** (8 pairs per AVX-512 call) | **475** (6.3 x alloy, 4.8 x keccak-asm) |
//! | PieceHasher fed in 16,000-byte updates (as a provider is) | 428 |
//! | sha256-flat/ring | 1,385 |
//! | sha256-flat/sha2 | 1,319 |
//!
//! Throughput is in bytes of input (segment or piece) per second. Brief run:
//! `cargo bench -p px-core --bench erasure -- --warm-up-time 1 --measurement-time 3`.

use aes_gcm::{Aes256Gcm, KeyInit, Nonce, aead::AeadInPlace};
use alloy::primitives::keccak256;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use px_core::{
    erasure::{Decoder, Encoder, Pieces, Redundancy},
    importer::cid_of,
    piece::{CID_OPTIONS, DEFAULT_BLOCK_LEVEL, PieceDigest, PieceHasher},
};
use sha2::{Digest, Sha256};

const SEGMENT: usize = 64 << 20;
const PIECE: usize = 16 << 20;

fn data(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn aes(c: &mut Criterion) {
    let mut g = c.benchmark_group("aes-256-gcm");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(SEGMENT as u64));
    let mut buf = data(SEGMENT);
    let key = [7u8; 32];
    let rc = Aes256Gcm::new(&key.into());
    g.bench_function("rustcrypto", |b| {
        b.iter(|| {
            rc.encrypt_in_place_detached(Nonce::from_slice(&[0; 12]), b"", &mut buf)
                .unwrap()
        })
    });
    let ring_key = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &key).unwrap(),
    );
    g.bench_function("ring", |b| {
        b.iter(|| {
            ring_key
                .seal_in_place_separate_tag(
                    ring::aead::Nonce::assume_unique_for_key([0; 12]),
                    ring::aead::Aad::empty(),
                    &mut buf,
                )
                .unwrap()
        })
    });
    g.finish();
}

fn reed_solomon(c: &mut Criterion) {
    let segment = data(SEGMENT);
    for (k, n) in [(4u16, 6u16), (10, 30)] {
        let r = Redundancy::new(k, n).unwrap();
        let mut enc = Encoder::new(r);
        let mut pieces = Pieces::default();
        let mut g = c.benchmark_group("rs-encode");
        g.sample_size(10);
        g.throughput(Throughput::Bytes(SEGMENT as u64));
        g.bench_function(BenchmarkId::from_parameter(r), |b| {
            b.iter(|| enc.encode_into(&segment, &mut pieces).unwrap())
        });
        g.finish();

        // Encoded once outside the measurement too, so that a filter leaving out
        // `rs-encode` still has the pieces to decode.
        enc.encode_into(&segment, &mut pieces).unwrap();
        // Worst case: n - k originals missing (all of them when n - k >= k).
        let missing = usize::from((n - k).min(k));
        let have: Vec<(usize, &[u8])> = (missing..missing + usize::from(k))
            .map(|i| (i, pieces.piece(i)))
            .collect();
        let mut dec = Decoder::new(r);
        let mut out = Vec::new();
        dec.decode(SEGMENT, &have, &mut out).unwrap();
        assert!(out == segment);
        let mut g = c.benchmark_group("rs-decode");
        g.sample_size(10);
        g.throughput(Throughput::Bytes(SEGMENT as u64));
        g.bench_function(BenchmarkId::from_parameter(r), |b| {
            b.iter(|| dec.decode(SEGMENT, &have, &mut out).unwrap())
        });
        g.finish();
    }
}

fn piece_hash(c: &mut Criterion) {
    let piece = data(PIECE);
    let mut g = c.benchmark_group("piece-hash");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(PIECE as u64));
    g.bench_function("merkle-root", |b| {
        b.iter(|| {
            let mut h = PieceHasher::new(DEFAULT_BLOCK_LEVEL);
            h.update(&piece);
            h.finish_with_top().unwrap()
        })
    });
    g.bench_function("cid", |b| b.iter(|| cid_of(&piece, &CID_OPTIONS).unwrap()));
    g.bench_function("cid+merkle", |b| {
        b.iter(|| {
            let mut d = PieceDigest::new();
            d.update(&piece);
            d.finish().unwrap()
        })
    });
    g.bench_function("keccak256-flat", |b| b.iter(|| keccak256(&piece)));
    g.bench_function("sha256-flat", |b| b.iter(|| Sha256::digest(&piece)));
    g.finish();
}

/// The root of a piece of `2**d` chunks, level by level, one `hash` call per pair.
fn tree_root(piece: &[u8], hash: impl Fn(&[u8]) -> [u8; 32]) -> [u8; 32] {
    let mut level: Vec<[u8; 32]> = piece.chunks_exact(64).map(&hash).collect();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|p| hash(p.as_flattened()))
            .collect();
    }
    level[0]
}

fn piece_root(c: &mut Criterion) {
    let piece = data(PIECE);
    let alloy_hash = |m: &[u8]| keccak256(m).0;
    let asm_hash = |m: &[u8]| -> [u8; 32] {
        // `Digest` is imported above (sha2's, the same `digest` 0.10 trait).
        keccak_asm::Keccak256::digest(m).into()
    };
    let tiny_hash = |m: &[u8]| {
        use tiny_keccak::Hasher as _;
        let mut k = tiny_keccak::Keccak::v256();
        k.update(m);
        let mut out = [0u8; 32];
        k.finalize(&mut out);
        out
    };
    let root = || {
        let mut h = PieceHasher::new(DEFAULT_BLOCK_LEVEL);
        h.update(&piece);
        h.finish_with_top().unwrap()
    };
    let want = root().0.root.0;
    for f in [
        &alloy_hash as &dyn Fn(&[u8]) -> [u8; 32],
        &asm_hash,
        &tiny_hash,
    ] {
        assert_eq!(tree_root(&piece, f), want);
    }
    let mut g = c.benchmark_group("piece-root");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(PIECE as u64));
    g.bench_function("pairwise/alloy-keccak256", |b| {
        b.iter(|| tree_root(&piece, alloy_hash))
    });
    g.bench_function("pairwise/keccak-asm", |b| {
        b.iter(|| tree_root(&piece, asm_hash))
    });
    g.bench_function("pairwise/tiny-keccak", |b| {
        b.iter(|| tree_root(&piece, tiny_hash))
    });
    g.bench_function("PieceHasher", |b| b.iter(root));
    // As a provider feeds it: the HTTP body's frames, not aligned to its subtrees.
    g.bench_function("PieceHasher/16000-byte-updates", |b| {
        b.iter(|| {
            let mut h = PieceHasher::new(DEFAULT_BLOCK_LEVEL);
            for part in piece.chunks(16_000) {
                h.update(part);
            }
            h.finish_with_top().unwrap()
        })
    });
    g.bench_function("sha256-flat/ring", |b| {
        b.iter(|| ring::digest::digest(&ring::digest::SHA256, &piece))
    });
    g.bench_function("sha256-flat/sha2", |b| b.iter(|| Sha256::digest(&piece)));
    g.finish();
}

criterion_group!(benches, aes, reed_solomon, piece_hash, piece_root);
criterion_main!(benches);
