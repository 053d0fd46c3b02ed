//! Uploads, quota and gate refusals, concurrency, delete and listing.

use px_core::api::{ErrorCode, GateReason};
use reqwest::StatusCode;
use std::collections::HashSet;

use crate::fixture::{Net, assert_consistent, data, pins, published_record};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_uploads_to_one_token() {
    let net = Net::start().await;
    let node = net.node("concurrent").await;
    let mut alice = net.user(0, &node);
    alice.login().await;
    let token = alice.mint(&net).await;
    let ipfs = net.ipfs_url(&node);

    let alice = std::sync::Arc::new(alice);
    let mut tasks = Vec::new();
    for i in 0..100u64 {
        let alice = alice.clone();
        tasks.push(tokio::spawn(async move {
            let size = 1000 + (i as usize) * 37;
            let r = alice
                .upload(token, &format!("f{i}"), data(i, size))
                .await
                .unwrap();
            assert_eq!(r.file.size, size as u64);
            (r.usage.seq, size as u64, r.file)
        }));
    }
    let mut seqs = Vec::new();
    let mut total = 0;
    let mut files = Vec::new();
    for t in tasks {
        let (seq, size, file) = t.await.unwrap();
        seqs.push(seq);
        total += size;
        files.push(file);
    }
    // Every upload got its own sequence number: 1..=100, each exactly once.
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
    let usage = alice.usage(token).await.unwrap();
    assert_eq!((usage.used, usage.file_count, usage.seq), (total, 100, 100));
    let record = published_record(&ipfs, &usage.ipns_id).await;
    assert_eq!(
        (record.used, record.file_count, record.seq, record.quota),
        (total, 100, 100, 100 << 20)
    );
    assert_eq!(record.contract, net.devnet.deployment.storage_nft);
    assert_consistent(&alice, &ipfs, token).await;
    let f = &files[42];
    assert_eq!(
        alice.download(token, &f.cid).await.unwrap(),
        data(42, 1000 + 42 * 37)
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_quota_and_too_large_are_refused_and_change_nothing() {
    let net = Net::start().await;
    let mut config = net.config("quota");
    config.max_upload_bytes = 200 << 20;
    let node = px_node::spawn(config).await.unwrap();
    let mut alice = net.user(0, &node);
    alice.login().await;
    let token = alice.mint(&net).await;
    let ipfs = net.ipfs_url(&node);
    let quota: u64 = 100 << 20;

    let big = alice
        .upload(token, "big", data(7, (quota - 1000) as usize))
        .await
        .unwrap();
    assert_eq!(big.usage.used, quota - 1000);
    let before_pins = pins(&ipfs).await;
    let before = alice.usage(token).await.unwrap();

    // One byte over the quota: refused by the node's live usage (the chain has not synced).
    let r = alice
        .upload(token, "over", data(8, 1001))
        .await
        .unwrap_err();
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::OverQuota)
    );
    assert_eq!(
        alice.usage(token).await.unwrap(),
        before,
        "usage and sequence unchanged"
    );
    assert_eq!(pins(&ipfs).await, before_pins, "nothing pinned");
    assert_eq!(
        published_record(&ipfs, &before.ipns_id).await.seq,
        before.seq
    );

    // Exactly the quota fits.
    let r = alice.upload(token, "fits", data(8, 1000)).await.unwrap();
    assert_eq!(r.usage.used, quota);
    assert_consistent(&alice, &ipfs, token).await;

    // Over the node's upload limit, and without a Content-Length.
    let mut config = net.config("small");
    config.max_upload_bytes = 1000;
    let small = px_node::spawn(config).await.unwrap();
    let mut bob = net.user(1, &small);
    bob.login().await;
    let bob_token = bob.mint(&net).await;
    let r = bob.upload(bob_token, "x", data(1, 1001)).await.unwrap_err();
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge)
    );
    let chunks =
        futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"abc"))]);
    let r = bob
        .http
        .post(format!("{}/v1/tokens/{bob_token}/files?name=x", bob.base))
        .bearer_auth(bob.session.as_ref().unwrap())
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::LENGTH_REQUIRED);
    assert_eq!(bob.usage(bob_token).await.unwrap().seq, 0);
    small.shutdown().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_closes_when_not_synced_within_the_window() {
    let net = Net::start().await;
    let node = net.node("gate").await;
    let mut alice = net.user(0, &node);
    alice.login().await;
    let token = alice.mint(&net).await;
    alice.upload(token, "a", data(1, 10)).await.unwrap();
    let before = alice.usage(token).await.unwrap();

    net.devnet.time_travel(31 * 24 * 3600).await.unwrap();
    let r = alice.upload(token, "b", data(2, 10)).await.unwrap_err();
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, ErrorCode::GateClosed)
    );
    assert_eq!(r.body.gate, Some(GateReason::NotSynced));
    assert!(r.body.message.contains("not synced"), "{}", r.body.message);
    assert_eq!(alice.usage(token).await.unwrap(), before);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_lowers_usage_and_unpins_only_unshared_content() {
    let net = Net::start().await;
    let node = net.node("delete").await;
    let ipfs = net.ipfs_url(&node);
    let mut alice = net.user(0, &node);
    let mut bob = net.user(1, &node);
    alice.login().await;
    bob.login().await;
    let a = alice.mint(&net).await;
    let b = bob.mint(&net).await;

    let x = alice.upload(a, "x", data(1, 5000)).await.unwrap();
    let shared = alice.upload(a, "shared", data(2, 3000)).await.unwrap();
    let bob_shared = bob.upload(b, "shared", data(2, 3000)).await.unwrap();
    assert_eq!(shared.file.cid, bob_shared.file.cid);
    let before = alice.usage(a).await.unwrap();
    assert_eq!(before.used, 8000);

    let d = alice.delete(a, x.file.id).await.unwrap();
    assert_eq!(d.file, x.file);
    assert_eq!(
        (d.usage.used, d.usage.file_count, d.usage.seq),
        (3000, 1, before.seq + 1)
    );
    assert!(
        !pins(&ipfs).await.contains(&x.file.cid),
        "deleted content unpinned"
    );
    assert_eq!(
        alice.download(a, &x.file.cid).await.unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert_eq!(
        alice.delete(a, x.file.id).await.unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert_consistent(&alice, &ipfs, a).await;

    // Content shared with another token stays pinned for it.
    alice.delete(a, shared.file.id).await.unwrap();
    assert!(pins(&ipfs).await.contains(&shared.file.cid));
    assert_eq!(
        bob.download(b, &shared.file.cid).await.unwrap(),
        data(2, 3000)
    );
    let u = alice.usage(a).await.unwrap();
    assert_eq!((u.used, u.file_count), (0, 0));
    assert_consistent(&alice, &ipfs, a).await;
    assert_consistent(&bob, &ipfs, b).await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_through_ten_thousand_files() {
    let net = Net::start().await;
    let node = net.node("list").await;
    let ipfs = net.ipfs_url(&node);
    let mut alice = net.user(0, &node);
    alice.login().await;
    let token = alice.mint(&net).await;

    let n = 10_000u64;
    // 9,900 files imported in batches (content stored once through the store, as an
    // operator migrating a collection would), then 100 real uploads through HTTP.
    let started = std::time::Instant::now();
    let blob = px_node::ipfs::Ipfs::new(&ipfs).unwrap();
    let stored = blob
        .add_unpinned(std::io::Cursor::new(data(0, 16)))
        .await
        .unwrap();
    for batch in 0..9u64 {
        let files = (batch * 1100..(batch + 1) * 1100)
            .map(|i| px_node::node::ImportFile {
                name: format!("file-{i:05}"),
                cid: stored.clone(),
                size: 16,
                sha256: None,
            })
            .collect();
        node.node().import_files(token, files).await.unwrap();
    }
    eprintln!("9,900 files imported in {:?}", started.elapsed());
    let started = std::time::Instant::now();
    let alice = std::sync::Arc::new(alice);
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let alice = alice.clone();
        tasks.push(tokio::spawn(async move {
            for i in (9_900 + w..n).step_by(4) {
                alice
                    .upload(token, &format!("file-{i:05}"), data(i, 16))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!("100 uploads in {:?}", started.elapsed());

    let all = alice.list_all(token, 1000).await;
    assert_eq!(all.len(), n as usize);
    let ids: Vec<u64> = all.iter().map(|f| f.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids strictly increasing across pages"
    );
    let names: HashSet<&str> = all.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names.len(), n as usize);
    // Small pages agree with big ones.
    let first = alice.list(token, 0, 7).await.unwrap();
    assert_eq!(first.files, all[..7]);
    assert_eq!(first.next, Some(all[6].id));
    let last = alice.list(token, all[9_990].id, 100).await.unwrap();
    assert_eq!(last.files, all[9_991..]);
    assert_eq!(last.next, None);
    assert_consistent(&alice, &ipfs, token).await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_publishes_a_newer_record_for_the_same_files() {
    let net = Net::start().await;
    let node = net.node("refresh").await;
    let ipfs = net.ipfs_url(&node);
    let mut alice = net.user(0, &node);
    alice.login().await;
    let token = alice.mint(&net).await;
    let refresh = |alice: &crate::fixture::User| {
        let url = format!("{}/v1/tokens/{token}/refresh", alice.base);
        alice
            .http
            .post(url)
            .bearer_auth(alice.session.clone().unwrap())
            .send()
    };

    // A token without files: the record still names a real (empty) index.
    let r = refresh(&alice).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let u: px_core::api::Usage = r.json().await.unwrap();
    assert_eq!((u.seq, u.used, u.file_count), (1, 0, 0));
    assert!(!u.index.is_empty());
    assert_consistent(&alice, &ipfs, token).await;

    alice.upload(token, "a", data(1, 100)).await.unwrap();
    let before = alice.usage(token).await.unwrap();
    let u: px_core::api::Usage = refresh(&alice).await.unwrap().json().await.unwrap();
    assert_eq!(u.seq, before.seq + 1);
    assert_eq!(
        (u.used, u.file_count, &u.index),
        (before.used, before.file_count, &before.index)
    );
    assert_eq!(published_record(&ipfs, &u.ipns_id).await.seq, u.seq);
    assert_consistent(&alice, &ipfs, token).await;

    let bob = net.user(1, &node);
    let mut bob = bob;
    bob.login().await;
    let r = refresh(&bob).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    node.shutdown().await;
}

/// Stress: 10,000 uploads through HTTP to one token (about 5 minutes here; run with
/// `--ignored`). The default suite seeds most files by import instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow stress test"]
async fn ten_thousand_http_uploads_stay_consistent() {
    let net = Net::start().await;
    let node = net.node("stress").await;
    let ipfs = net.ipfs_url(&node);
    let mut alice = net.user(0, &node);
    alice.login().await;
    let token = alice.mint(&net).await;
    let alice = std::sync::Arc::new(alice);
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let alice = alice.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..10_000).step_by(8) {
                if let Err(e) = alice
                    .upload(token, &format!("file-{i:05}"), data(i, 16))
                    .await
                {
                    panic!("upload {i}: {e:?}");
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let usage = alice.usage(token).await.unwrap();
    assert_eq!((usage.file_count, usage.seq), (10_000, 10_000));
    assert_consistent(&alice, &ipfs, token).await;
    node.shutdown().await;
}

/// A remote backend (`--ipfs-url`: a px-store on its own, or the run's Kubo or js-ipfs
/// daemon): every call goes over HTTP, uploads included, in both backend modes; files, index,
/// record and pins stay consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_backend_over_http_stays_consistent() {
    let net = Net::start().await;
    let store = match net.daemon_url() {
        Some(_) => None,
        None => {
            let mut sc = px_store::StoreConfig::new(net.dir.path().join("remote-store"));
            sc.api = "127.0.0.1:0".parse().unwrap();
            sc.sync_writes = false;
            Some(px_store::spawn(sc).await.unwrap())
        }
    };
    let ipfs = match &store {
        Some(store) => store.api_url(),
        None => net.daemon_url().unwrap(),
    };

    for (n, exclusive) in [(0, false), (1, true)] {
        let mut config = net.config(&format!("remote-{exclusive}"));
        config.ipfs = px_node::IpfsBackend::Remote(ipfs.clone());
        config.exclusive_backend = Some(exclusive);
        let node = px_node::spawn(config).await.unwrap();
        assert!(node.store_url().is_none(), "no embedded store");
        let mut user = net.user(n, &node);
        user.login().await;
        let token = user.mint(&net).await;
        // Several 256 KiB chunks, a small file, and one to delete.
        let big = user
            .upload(token, "big", data(10 + n as u64, 700_000))
            .await
            .unwrap();
        user.upload(token, "small", data(20 + n as u64, 10))
            .await
            .unwrap();
        let gone = user
            .upload(token, "gone", data(30 + n as u64, 5000))
            .await
            .unwrap();
        user.delete(token, gone.file.id).await.unwrap();
        assert!(!pins(&ipfs).await.contains(&gone.file.cid), "{exclusive}");
        assert_eq!(
            user.download(token, &big.file.cid).await.unwrap(),
            data(10 + n as u64, 700_000)
        );
        let usage = user.usage(token).await.unwrap();
        assert_eq!((usage.used, usage.file_count), (700_010, 2));
        assert_consistent(&user, &ipfs, token).await;
        node.shutdown().await;
    }
    if let Some(store) = store {
        store.shutdown().await;
    }
}
