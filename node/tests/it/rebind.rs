//! Moving a token with files from one node to another (`rebindKey`, issue 14 finding 5): both
//! nodes store through one IPFS backend, so the new node fetches the old node's blocks.

use alloy::primitives::U256;
use px_core::api::ErrorCode;
use px_node::IpfsBackend;
use px_sdk::Client;

use crate::fixture::{Net, data, published_record};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_moves_with_its_files_to_another_node_which_serves_it_and_the_old_node_refuses() {
    let net = Net::start().await;
    // One backend for both nodes: the test's daemon, or one px-store started here.
    let mut store = None;
    let ipfs_url = match net.daemon_url() {
        Some(url) => url,
        None => {
            let mut sc = px_store::StoreConfig::new(net.dir.path().join("shared-store"));
            sc.api = "127.0.0.1:0".parse().unwrap();
            sc.sync_writes = false;
            let s = px_store::spawn(sc).await.expect("store starts");
            let url = s.api_url();
            store = Some(s);
            url
        }
    };
    let start = |name: &str| {
        let mut c = net.config(name);
        c.ipfs = IpfsBackend::Remote(ipfs_url.clone());
        px_node::spawn(c)
    };
    let a = start("a").await.expect("node A starts");
    let b = start("b").await.expect("node B starts");

    // A serves a token with two files.
    let mut on_a = net.user(0, &a);
    on_a.login().await;
    let token = on_a.mint(&net).await;
    let (one, two) = (data(1, 300_000), data(2, 1_000));
    let f1 = on_a
        .upload(token, "one.bin", one.clone())
        .await
        .unwrap()
        .file;
    let f2 = on_a
        .upload(token, "two.bin", two.clone())
        .await
        .unwrap()
        .file;
    let nft = net.nft(on_a.account);
    let before = nft.tokenInfo(U256::from(token)).call().await.unwrap();

    // The holder moves it to B through the SDK.
    let client = Client::builder(
        net.devnet.provider(on_a.account),
        net.devnet.signer(on_a.account),
        net.devnet.deployment.clone(),
    )
    .node(a.url())
    .build()
    .await
    .unwrap();
    let moved = client
        .move_to_node(token, &b.url())
        .await
        .expect("token moves");
    assert_eq!(moved.rebinding.file_count, 2);
    assert_eq!(moved.rebinding.used, 301_000);
    let after = nft.tokenInfo(U256::from(token)).call().await.unwrap();
    assert_eq!(after.ipnsKey.as_slice(), &moved.rebinding.ipns_name[6..]);
    assert_eq!(after.seq, before.seq, "seq carries over");

    // B published the taken-over index under its key with the on-chain seq + 1.
    assert_eq!(moved.usage.seq, after.seq + 1);
    assert_eq!(moved.usage.file_count, 2);
    assert_eq!(moved.usage.used, 301_000);
    assert_eq!(moved.usage.ipns_id, moved.rebinding.ipns_id);
    let record = published_record(&ipfs_url, &moved.rebinding.ipns_id).await;
    assert_eq!(record.seq, after.seq + 1);
    assert_eq!(record.used, 301_000);
    assert_eq!(record.file_count, 2);
    assert_eq!(record.index, moved.usage.index);

    // The holder lists and downloads through B.
    let mut on_b = net.user(0, &b);
    on_b.login().await;
    let files = on_b.list_all(token, 100).await;
    assert_eq!(files, vec![f1.clone(), f2.clone()]);
    assert_eq!(on_b.download(token, &f1.cid).await.unwrap(), one);
    assert_eq!(on_b.download(token, &f2.cid).await.unwrap(), two);

    // A refuses uploads and deletes of the token now; B takes them.
    let refused = on_a
        .upload(token, "late.bin", data(3, 10))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::KeyMoved);
    assert_eq!(refused.status, reqwest::StatusCode::CONFLICT);
    let refused = on_a.delete(token, f1.id).await.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::KeyMoved);
    let r = on_b.upload(token, "three.bin", data(4, 100)).await.unwrap();
    assert_eq!(r.file.id, f2.id + 1);
    assert_eq!(r.usage.seq, after.seq + 2);
    assert_eq!(r.usage.file_count, 3);

    // B will not take the same token over again.
    let again = moved.client.rebind_offer(token).await.unwrap_err();
    assert!(
        matches!(
            &again,
            px_sdk::Error::Node {
                code: Some(ErrorCode::BadRequest),
                ..
            }
        ),
        "{again}"
    );

    b.shutdown().await;
    a.shutdown().await;
    if let Some(s) = store {
        s.shutdown().await;
    }
}
