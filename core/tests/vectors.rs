//! The provider network's test vectors (`core/vectors/erasure.json`, described in
//! `core/ERASURE.md`): regenerated from the public API and compared with the committed file, so
//! the file is what this crate computes and other clients (the web dApp) can be held to it.
//! `PX_WRITE_VECTORS=1 cargo test -p px-core --test vectors` rewrites it after a deliberate
//! format change. `test/PieceVectors.t.sol` checks the deal section against StorageMarket.

use alloy::{
    primitives::{B256, address, hex},
    signers::local::PrivateKeySigner,
};
use px_core::{
    erasure::{Decoder, Encoder, Redundancy, segment_lengths},
    network::{PieceReceipt, UploadOrder, domain},
    piece::{self, DEFAULT_BLOCK_LEVEL, PieceHasher, summarize},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/erasure.json");

/// Byte `i` of an input of `len` bytes is `(i * 31 + 7) % 251`.
fn input(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

fn hex32(b: &B256) -> String {
    b.to_string()
}

fn erasure_case(k: u16, n: u16, len: usize) -> (Value, Vec<Vec<u8>>) {
    let r = Redundancy::new(k, n).unwrap();
    let data = input(len);
    let pieces = Encoder::new(r).encode(&data).unwrap();
    // Decoding from the last k pieces (recovery pieces first) gives the input back.
    let have: Vec<_> = (usize::from(n - k)..usize::from(n))
        .map(|i| (i, pieces.piece(i)))
        .collect();
    let mut out = Vec::new();
    Decoder::new(r).decode(len, &have, &mut out).unwrap();
    assert_eq!(out, data);
    let entries: Vec<Value> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let s = summarize(p).unwrap();
            let mut e = json!({
                "index": i,
                "sha256": hex::encode(Sha256::digest(p)),
                "cid": s.cid.to_string(),
                "root": hex32(&s.root.root),
                "depth": s.root.depth,
            });
            if p.len() <= 64 {
                e["hex"] = json!(hex::encode(p));
            }
            e
        })
        .collect();
    let case = json!({
        "redundancy": r.to_string(),
        "segmentLength": len,
        "pieceSize": pieces.piece_size(),
        "pieces": entries,
    });
    (case, pieces.iter().map(<[u8]>::to_vec).collect())
}

fn vectors() -> Value {
    let (c1, deal_pieces) = erasure_case(4, 6, 1000);
    let (c2, _) = erasure_case(2, 3, 100);
    let (c3, _) = erasure_case(10, 30, 5000);
    let (c4, _) = erasure_case(4, 6, 1);

    // A deal over the six pieces of the first case and one 320-byte piece (10 chunks, so its
    // tree is padded from 10 to 16 leaves); the deal tree is padded from 7 to 8.
    let mut pieces = deal_pieces;
    pieces.push(input(320));
    let roots: Vec<(B256, u8)> = pieces
        .iter()
        .map(|p| {
            let r = piece::piece_root(p).unwrap();
            (r.root, r.depth)
        })
        .collect();
    let deal_pieces: Vec<Value> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut h = PieceHasher::new(DEFAULT_BLOCK_LEVEL);
            h.update(p);
            let (info, top) = h.finish_with_top().unwrap();
            let proofs: Vec<Value> = (0..1u64 << info.depth)
                .map(|leaf| {
                    let block = top
                        .block_range(leaf)
                        .map_or(&[][..], |r| &p[r.start as usize..r.end as usize]);
                    let proof = top.prove(leaf, block).unwrap();
                    json!({
                        "leaf": hex32(&proof.leaf),
                        "path": proof.path.iter().map(hex32).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({
                "size": info.size,
                "root": hex32(&info.root),
                "depth": info.depth,
                "dealLeaf": hex32(&piece::deal_leaf(&info.root, info.depth)),
                "dealPath": piece::deal_path(&roots, i).unwrap().iter().map(hex32).collect::<Vec<_>>(),
                "proofs": proofs,
            })
        })
        .collect();
    let deal = json!({
        "pieceInputs": "the six pieces of erasure[0], then input(320)",
        "root": hex32(&piece::deal_root(&roots).unwrap()),
        "pieceCount": roots.len(),
        "pieces": deal_pieces,
    });

    let challenges: Vec<Value> = [(B256::repeat_byte(0x5a), 0, 7, 3), (B256::repeat_byte(0x5a), 3, 7, 4), (B256::ZERO, 1, 1, 0), (B256::repeat_byte(0xff), 15, 65535, 32)]
        .into_iter()
        .map(|(seed, index, count, depth)| {
            let (piece, leaf) = piece::challenge(seed, index, count, depth);
            json!({ "seed": hex32(&seed), "index": index, "pieceCount": count, "pieceDepth": depth, "piece": piece, "leaf": leaf })
        })
        .collect();

    let home = PrivateKeySigner::from_bytes(&B256::repeat_byte(1)).unwrap();
    let provider = PrivateKeySigner::from_bytes(&B256::repeat_byte(2)).unwrap();
    let market = address!("0x00000000000000000000000000000000000000aa");
    let d = domain(31337, market);
    let order = UploadOrder {
        token_id: 7,
        file: B256::repeat_byte(0x11),
        segment: 0,
        piece: 4,
        provider: provider.address(),
        max_size: 256,
        expiry: 1_700_000_000,
    };
    let signed = order.clone().sign(&home, &d).unwrap();
    let p4 = summarize(&pieces[4]).unwrap();
    let receipt = PieceReceipt {
        order_hash: order.hash(&d),
        cid: p4.cid,
        root: p4.root.root,
        depth: p4.root.depth,
        size: p4.root.size,
    };
    let eip712 = json!({
        "domain": { "name": "PX Storage Node", "version": "1", "chainId": 31337, "verifyingContract": market },
        "homeKey": hex32(&B256::repeat_byte(1)),
        "providerKey": hex32(&B256::repeat_byte(2)),
        "order": serde_json::to_value(&signed).unwrap(),
        "orderHash": hex32(&order.hash(&d)),
        "receipt": {
            "orderHash": hex32(&receipt.order_hash),
            "cid": receipt.cid.to_string(),
            "root": hex32(&receipt.root),
            "depth": receipt.depth,
            "size": receipt.size,
        },
        "receiptHash": hex32(&receipt.hash(&d)),
        "receiptSignature": hex::encode_prefixed(receipt.sign(&provider, &d).unwrap().as_bytes()),
    });

    json!({
        "version": 1,
        "input": "byte i of input(len) is (i * 31 + 7) % 251",
        "segments": { "total": 2500, "segmentSize": 1000, "lengths": segment_lengths(2500, 1000).unwrap() },
        "erasure": [c1, c2, c3, c4],
        "deal": deal,
        "challenges": challenges,
        "eip712": eip712,
    })
}

#[test]
fn vectors_match_the_committed_file() {
    let want = vectors();
    if std::env::var_os("PX_WRITE_VECTORS").is_some() {
        std::fs::write(PATH, serde_json::to_string_pretty(&want).unwrap() + "\n").unwrap();
    }
    let have: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    assert!(
        have == want,
        "core/vectors/erasure.json is stale: PX_WRITE_VECTORS=1 regenerates it"
    );
}
