//! Kubo conformance through the real `ipfs-api-backend-hyper` client: fixture CIDs, add/cat
//! round trips at every chunk and link boundary, the balanced layout, ranges.

use ipfs_api_backend_hyper::IpfsApi;
use ipfs_api_backend_hyper::request::Add;

use crate::common::{BlockGet, content, spawn_store};

const CHUNK: usize = 262_144;

fn v1() -> Add<'static> {
    Add {
        cid_version: Some(1),
        ..Default::default()
    }
}

#[tokio::test]
async fn fixture_cids_match_kubo() {
    let store = spawn_store().await;
    let mib: Vec<u8> = (0..1 << 20).map(|i| (i % 256) as u8).collect();
    let cases: Vec<(Vec<u8>, Add<'static>, &str, &str)> = vec![
        (
            vec![],
            Add::default(),
            "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
            "6",
        ),
        (
            b"hello world\n".to_vec(),
            Add::default(),
            "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
            "20",
        ),
        (
            b"hello world".to_vec(),
            Add::default(),
            "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD",
            "19",
        ),
        (
            b"hello world".to_vec(),
            v1(),
            "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
            "11",
        ),
        (
            mib.clone(),
            Add::default(),
            "QmNVwWg6N5yixbSukgRFyXez5HdRY52RhEbg823ejW3cHn",
            "1048832",
        ),
        (
            mib,
            v1(),
            "bafybeiclphklsx6bfzfb5aezogjldbkeicyyvma6wrfnielfg7haplwahy",
            "1048784",
        ),
    ];
    for (data, opts, cid, size) in cases {
        let len = data.len();
        let (hash, got_size) = store.add(data.clone(), opts).await;
        assert_eq!((hash.as_str(), got_size.as_str()), (cid, size), "len {len}");
        assert_eq!(store.cat(cid).await, data, "cat {cid}");
    }
    // The empty directory fixture is a single dag-pb node with UnixFS type Directory; it is
    // not addable through `add` (no directories), but its CID is the dag-pb encoding of
    // Data{Type: Directory}: check that our block codec would give the same bytes.
    let empty_dir = [0x0a, 0x02, 0x08, 0x01];
    let mh = multihash_codetable::Code::Sha2_256.digest(&empty_dir);
    let v0 = cid::Cid::new_v0(mh).unwrap();
    assert_eq!(
        v0.to_string(),
        "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
    );
    let v1 = cid::Cid::new_v1(0x70, mh);
    assert_eq!(
        v1.to_string(),
        "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
    );
    store.stop().await;
}

use multihash_codetable::MultihashDigest;

#[tokio::test]
async fn add_then_cat_round_trips_at_every_boundary() {
    let store = spawn_store().await;
    let sizes = [
        0,
        1,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        174 * CHUNK - 1,
        174 * CHUNK,
        174 * CHUNK + 1,
        100 << 20,
    ];
    for (i, &len) in sizes.iter().enumerate() {
        let data = content(len, i as u32);
        for opts in [Add::default(), v1()] {
            let v = opts.cid_version.unwrap_or(0);
            let (cid, size) = store.add(data.clone(), opts).await;
            let expected = px_store::importer::cid_of(
                &data,
                &if v == 1 {
                    px_store::importer::ImportOptions::v1()
                } else {
                    Default::default()
                },
            )
            .unwrap();
            assert_eq!(cid, expected.cid.to_string(), "len {len} v{v}");
            assert_eq!(size, expected.dag_size.to_string(), "len {len} v{v}");
            let back = store.cat(&cid).await;
            assert!(
                back == data,
                "len {len} v{v}: cat returned {} bytes",
                back.len()
            );
            // Large sizes are checked for one CID version only, to keep the suite fast.
            if len > 10 * CHUNK {
                break;
            }
        }
    }
    store.stop().await;
}

/// Reads the links of a dag-pb node fetched with block/get.
async fn links(store: &crate::common::TestStore, cid: &str) -> Vec<String> {
    let (status, block) = store.raw(BlockGet { arg: cid.into() }).await;
    assert_eq!(status, 200);
    px_store::dagpb::links(&block)
        .expect("dag-pb")
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// go-unixfs's balanced builder: 174 leaves fill one node; the 175th leaf makes a root of
/// two children where the second is a branch holding a single leaf (not hoisted).
#[tokio::test]
async fn balanced_layout_wraps_the_175th_leaf() {
    let store = spawn_store().await;
    let data = content(174 * CHUNK, 99);
    let (full, _) = store.add(data.clone(), Add::default()).await;
    let root_links = links(&store, &full).await;
    assert_eq!(root_links.len(), 174);

    let mut more = data;
    more.push(7);
    let (cid, size) = store.add(more, Add::default()).await;
    let root_links = links(&store, &cid).await;
    assert_eq!(root_links.len(), 2);
    assert_eq!(root_links[0], full, "first child is the full 174-leaf node");
    let tail = links(&store, &root_links[1]).await;
    assert_eq!(tail.len(), 1, "second child wraps the single last leaf");
    assert!(
        links(&store, &tail[0]).await.is_empty(),
        "and that is a leaf"
    );
    // Size is the root's cumulative DAG size: sum of all block sizes.
    let stat = store.client.block_stat(&cid).await.unwrap();
    let first = store.client.block_stat(&full).await.unwrap();
    assert!(size.parse::<u64>().unwrap() > first.size + stat.size);
    store.stop().await;
}

#[tokio::test]
async fn cat_ranges_match_slices() {
    let store = spawn_store().await;
    let data = content(3 * CHUNK + 1234, 5);
    for opts in [Add::default(), v1()] {
        let (cid, _) = store.add(data.clone(), opts).await;
        for (off, len) in [
            (0, 10),
            (CHUNK - 3, 10),
            (CHUNK, CHUNK),
            (2 * CHUNK + 5, 5 * CHUNK),
            (data.len() + 10, 4),
            (17, 0),
        ] {
            use futures::TryStreamExt;
            let got: Vec<u8> = store
                .client
                .cat_range(&cid, off, len)
                .map_ok(|c| c.to_vec())
                .try_concat()
                .await
                .unwrap();
            let end = (off + len).min(data.len());
            let want = if off >= data.len() {
                &[][..]
            } else {
                &data[off..end]
            };
            assert_eq!(got, want, "offset {off} length {len}");
        }
    }
    store.stop().await;
}

#[tokio::test]
async fn block_stat_get_and_version_id() {
    let store = spawn_store().await;
    let (cid, _) = store.add(b"hello world".to_vec(), v1()).await;
    let stat = store.client.block_stat(&cid).await.unwrap();
    assert_eq!((stat.key.as_str(), stat.size), (cid.as_str(), 11));
    let (status, block) = store.raw(BlockGet { arg: cid.clone() }).await;
    assert_eq!((status, &block[..]), (200, &b"hello world"[..]));

    let version = store.client.version().await.unwrap();
    assert_eq!(version.version, env!("CARGO_PKG_VERSION"));
    let id = store.peer_id().await;
    assert!(id.starts_with("12D3KooW"), "{id}");
    let keys = store.client.key_list().await.unwrap();
    assert_eq!(keys.keys[0].name, "self");
    let self_name: px_store::ipns::IpnsName = keys.keys[0].id.parse().unwrap();
    assert_eq!(self_name.peer_id().to_base58(), id);
    store.stop().await;
}
