//! An independent reference of go-unixfs's balanced layout (written from its algorithm, not
//! from rust-unixfs), checked against the fixtures and then against the store at depths 1-3
//! with a tiny chunker so that full and partial 174-link subtrees occur at every level.

use cid::Cid;
use ipfs_api_backend_hyper::request::Add;
use multihash_codetable::{Code, MultihashDigest};

use crate::common::{content, spawn_store};

const MAX_LINKS: usize = 174;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, field << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn field_varint(out: &mut Vec<u8>, field: u64, v: u64) {
    varint(out, field << 3);
    varint(out, v);
}

/// A finished node: CID, cumulative DAG size (dag-pb Tsize) and file bytes covered.
#[derive(Clone, Copy)]
struct Node {
    cid: Cid,
    tsize: u64,
    filesize: u64,
}

struct Builder<'a> {
    chunks: std::iter::Peekable<std::slice::Chunks<'a, u8>>,
    v1: bool,
}

impl Builder<'_> {
    fn cid(&self, codec: u64, block: &[u8]) -> Cid {
        let mh = Code::Sha2_256.digest(block);
        if self.v1 {
            Cid::new_v1(codec, mh)
        } else {
            Cid::new_v0(mh).unwrap()
        }
    }

    fn leaf(&mut self, chunk: &[u8]) -> Node {
        if self.v1 {
            // Raw leaf.
            let mh = Code::Sha2_256.digest(chunk);
            return Node {
                cid: Cid::new_v1(0x55, mh),
                tsize: chunk.len() as u64,
                filesize: chunk.len() as u64,
            };
        }
        // dag-pb node whose Data is UnixFS {Type: File, Data: chunk, filesize}.
        let mut unixfs = Vec::new();
        field_varint(&mut unixfs, 1, 2);
        if !chunk.is_empty() {
            field_bytes(&mut unixfs, 2, chunk);
        }
        field_varint(&mut unixfs, 3, chunk.len() as u64);
        let mut block = Vec::new();
        field_bytes(&mut block, 1, &unixfs);
        Node {
            cid: self.cid(0x70, &block),
            tsize: block.len() as u64,
            filesize: chunk.len() as u64,
        }
    }

    fn next_leaf(&mut self) -> Node {
        let chunk = self.chunks.next().expect("not done");
        self.leaf(chunk)
    }

    fn branch(&self, children: &[Node]) -> Node {
        // PBNode: Links (field 2) first, then Data (field 1), as dag-pb requires.
        let mut block = Vec::new();
        for child in children {
            let mut link = Vec::new();
            field_bytes(&mut link, 1, &child.cid.to_bytes());
            field_bytes(&mut link, 2, b"");
            field_varint(&mut link, 3, child.tsize);
            field_bytes(&mut block, 2, &link);
        }
        let filesize: u64 = children.iter().map(|c| c.filesize).sum();
        let mut unixfs = Vec::new();
        field_varint(&mut unixfs, 1, 2);
        field_varint(&mut unixfs, 3, filesize);
        for child in children {
            field_varint(&mut unixfs, 4, child.filesize);
        }
        field_bytes(&mut block, 1, &unixfs);
        Node {
            cid: self.cid(0x70, &block),
            tsize: block.len() as u64 + children.iter().map(|c| c.tsize).sum::<u64>(),
            filesize,
        }
    }

    /// go-unixfs `fillNodeRec`: fill a node of `depth` left to right with at most 174
    /// children, each a leaf (depth 1) or a recursively filled node of depth - 1.
    fn fill(&mut self, first: Option<Node>, depth: usize) -> Node {
        let mut children: Vec<Node> = first.into_iter().collect();
        while children.len() < MAX_LINKS && self.chunks.peek().is_some() {
            let child = if depth == 1 {
                self.next_leaf()
            } else {
                self.fill(None, depth - 1)
            };
            children.push(child);
        }
        self.branch(&children)
    }

    /// go-unixfs balanced `Layout`: the first leaf is the root until more data arrives; each
    /// round wraps the current root as the first child of a node one level deeper.
    fn layout(mut self) -> Node {
        if self.chunks.peek().is_none() {
            return self.leaf(&[]);
        }
        let mut root = self.next_leaf();
        let mut depth = 1;
        while self.chunks.peek().is_some() {
            root = self.fill(Some(root), depth);
            depth += 1;
        }
        root
    }
}

fn reference(data: &[u8], chunk: usize, v1: bool) -> Node {
    Builder {
        chunks: data.chunks(chunk).peekable(),
        v1,
    }
    .layout()
}

#[test]
fn reference_reproduces_the_kubo_fixtures() {
    let mib: Vec<u8> = (0..1 << 20).map(|i| (i % 256) as u8).collect();
    let cases: [(&[u8], bool, &str, u64); 5] = [
        (
            b"",
            false,
            "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
            6,
        ),
        (
            b"hello world\n",
            false,
            "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
            20,
        ),
        (
            b"hello world",
            true,
            "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
            11,
        ),
        (
            &mib,
            false,
            "QmNVwWg6N5yixbSukgRFyXez5HdRY52RhEbg823ejW3cHn",
            1_048_832,
        ),
        (
            &mib,
            true,
            "bafybeiclphklsx6bfzfb5aezogjldbkeicyyvma6wrfnielfg7haplwahy",
            1_048_784,
        ),
    ];
    for (data, v1, cid, size) in cases {
        let node = reference(data, 262_144, v1);
        assert_eq!((node.cid.to_string().as_str(), node.tsize), (cid, size));
    }
}

#[tokio::test]
async fn store_matches_the_reference_layout_at_depth_three() {
    let store = spawn_store().await;
    const CHUNK: usize = 16;
    let leaves_at_depth2 = MAX_LINKS * MAX_LINKS;
    for (i, leaves) in [
        1,
        2,
        MAX_LINKS,
        MAX_LINKS + 1,
        leaves_at_depth2,
        leaves_at_depth2 + 1,
        leaves_at_depth2 + MAX_LINKS + 3,
    ]
    .into_iter()
    .enumerate()
    {
        // The last leaf is short whenever the length is not a multiple of the chunk size.
        let data = content(leaves * CHUNK - (i % 3), i as u32 + 100);
        for v1 in [false, true] {
            let expected = reference(&data, CHUNK, v1);
            // only-hash: the same import path without writing 30k tiny block files.
            let opts = Add {
                chunker: Some("size-16"),
                cid_version: Some(u32::from(v1)),
                only_hash: Some(true),
                ..Default::default()
            };
            let (cid, size) = store.add(data.clone(), opts).await;
            assert_eq!(cid, expected.cid.to_string(), "{leaves} leaves, v1={v1}");
            assert_eq!(size, expected.tsize.to_string(), "{leaves} leaves, v1={v1}");
        }
    }
    store.stop().await;
}
