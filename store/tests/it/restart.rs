//! Stop the store, start it on the same repo: content, pins, keys and records are all there.

use ipfs_api_backend_hyper::IpfsApi;
use ipfs_api_backend_hyper::request::Add;

use crate::common::{RoutingGet, config, content, spawn_with};

#[tokio::test]
async fn everything_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = spawn_with(config(dir.path()), None).await;
    let data = content(1_000_000, 42);
    let (cid, _) = store.add(data.clone(), Add::default()).await;
    let key_id = store.key_gen("node").await;
    store
        .client
        .name_publish(&cid, true, None, None, Some("node"))
        .await
        .unwrap();
    let id = store.peer_id().await;
    let (_, record) = store
        .raw(RoutingGet {
            encoding: "text",
            arg: format!("/ipns/{}", key_id),
        })
        .await;
    store.stop().await;

    // A second daemon cannot open the repo while the first runs; after shutdown it can.
    let store = spawn_with(config(dir.path()), None).await;
    assert_eq!(store.cat(&cid).await, data);
    assert_eq!(store.peer_id().await, id);
    let pins = store.client.pin_ls(None, Some("recursive")).await.unwrap();
    assert!(pins.keys.contains_key(&cid));
    let keys = store.client.key_list().await.unwrap();
    assert!(keys.keys.iter().any(|k| k.name == "node" && k.id == key_id));
    let resolved = store
        .client
        .name_resolve(Some(&key_id), true, false)
        .await
        .unwrap();
    assert_eq!(resolved.path, format!("/ipfs/{cid}"));
    let (_, same) = store
        .raw(RoutingGet {
            encoding: "text",
            arg: format!("/ipns/{}", key_id),
        })
        .await;
    assert_eq!(same, record);

    // The sequence continues from the stored record (a new value: one up, as in Kubo).
    let (cid2, _) = store.add(content(1000, 43), Add::default()).await;
    store
        .client
        .name_publish(&cid2, true, None, None, Some("node"))
        .await
        .unwrap();
    let (_, next) = store
        .raw(RoutingGet {
            encoding: "text",
            arg: format!("/ipns/{}", key_id),
        })
        .await;
    let name: px_store::ipns::IpnsName = key_id.parse().unwrap();
    let opts = px_store::ipns::VerifyOptions::default();
    let a = px_store::ipns::verify_record(&name, &record, &opts).unwrap();
    let b = px_store::ipns::verify_record(&name, &next, &opts).unwrap();
    assert_eq!(b.sequence, a.sequence + 1);
    store.stop().await;
}

#[tokio::test]
async fn a_repo_is_owned_by_one_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let first = spawn_with(config(dir.path()), None).await;
    assert!(px_store::spawn(config(dir.path())).await.is_err());
    first.stop().await;
    let second = spawn_with(config(dir.path()), None).await;
    second.stop().await;
}

#[tokio::test]
async fn private_keys_are_mode_0600() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let store = spawn_with(config(dir.path()), None).await;
    store.key_gen("secret").await;
    for entry in std::fs::read_dir(dir.path().join("keystore")).unwrap() {
        let meta = entry.unwrap().metadata().unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
    }
    let meta = std::fs::metadata(dir.path().join("keystore")).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700);
    store.stop().await;
}
