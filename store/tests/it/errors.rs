//! Bad input of every class gets a Kubo error body with the right status, never a panic, and
//! leaves nothing stored or pinned.

use ipfs_api_backend_hyper::request::{Add, KeyType};
use ipfs_api_backend_hyper::{Error as ClientError, IpfsApi};

use crate::common::{RepoGc, config, content, expect_error, expect_plain, spawn_store, spawn_with};

fn api_code(e: ClientError) -> u8 {
    match e {
        ClientError::Api(api) => api.code,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn invalid_and_unknown_cids() {
    let store = spawn_store().await;
    // Invalid CID: a command error, as in Kubo (Code 0, 500, Kubo's message).
    let err = store.client.block_stat("not-a-cid").await.unwrap_err();
    assert_eq!(api_code(err), 0);
    for cmd in ["cat", "block/get", "block/stat", "pin/add", "pin/rm"] {
        let res = store
            .http
            .post(store.url(&format!("{cmd}?arg=zzz")))
            .send()
            .await
            .unwrap();
        let msg = expect_error(res, 500).await;
        assert_eq!(
            msg, "invalid path \"zzz\": path does not have enough components",
            "{cmd}"
        );
    }
    // Valid but unknown CID: server-side "not found" (Code 0, 500).
    let absent = "bafkreie7q3iidccmpvszul7kudcvvuavuo7u6gzlbobczuk5nqk3b4akba";
    let err = store.client.block_stat(absent).await.unwrap_err();
    assert_eq!(api_code(err), 0);
    let res = store
        .http
        .post(store.url(&format!("cat?arg={absent}")))
        .send()
        .await
        .unwrap();
    let msg = expect_error(res, 500).await;
    assert!(msg.contains("not found"), "{msg}");
    // Missing argument: Kubo's plain-text 400 naming the argument.
    let res = store.http.post(store.url("cat")).send().await.unwrap();
    assert_eq!(
        expect_plain(res, 400).await,
        "argument \"ipfs-path\" is required\n"
    );
    // Not pinned.
    let (cid, _) = store
        .add(
            b"loose".to_vec(),
            Add {
                pin: Some(false),
                ..Default::default()
            },
        )
        .await;
    let res = store
        .http
        .post(store.url(&format!("pin/rm?arg={cid}")))
        .send()
        .await
        .unwrap();
    expect_error(res, 500).await;
    store.stop().await;
}

#[tokio::test]
async fn unknown_command_method_and_options() {
    let store = spawn_store().await;
    let res = store
        .http
        .post(store.url("swarm/peers"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_plain(res, 404).await, "404 page not found\n");
    let res = store
        .http
        .post(format!("{}/nope", store.handle.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_plain(res, 404).await, "404 page not found\n");

    let res = store.http.get(store.url("version")).send().await.unwrap();
    assert_eq!(expect_plain(res, 405).await, "405 - Method Not Allowed\n");

    for query in [
        "add?chunker=rabin",
        "add?trickle=true",
        "add?hash=blake3",
        "add?pin=maybe",
    ] {
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(b"x".to_vec()));
        let res = store
            .http
            .post(store.url(query))
            .multipart(form)
            .send()
            .await
            .unwrap();
        expect_error(res, 400).await;
    }
    let err = store
        .client
        .key_gen("r", KeyType::Rsa, 2048)
        .await
        .unwrap_err();
    assert_eq!(api_code(err), 1);
    store.key_gen("dup").await;
    let res = store
        .http
        .post(store.url("key/gen?arg=dup&type=ed25519"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_error(res, 500).await,
        "key with name 'dup' already exists"
    );
    let res = store
        .http
        .post(store.url("name/publish?arg=/ipfs/QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH&lifetime=forever"))
        .send()
        .await
        .unwrap();
    expect_error(res, 400).await;
    let res =
        store
            .http
            .post(store.url(
                "name/resolve?arg=k51qzi5uqu5dlkw8pxuw9qmqayfdeh4kfebhmreauqdc6a7c3y7d5i9fi8mk9w",
            ))
            .send()
            .await
            .unwrap();
    expect_error(res, 500).await;
    assert_eq!(
        store.block_count(),
        0,
        "nothing stored by rejected requests"
    );
    store.stop().await;
}

#[tokio::test]
async fn malformed_multipart_stores_nothing() {
    let store = spawn_store().await;
    // Not multipart at all: no file argument (Kubo's plain-text 400).
    let res = store
        .http
        .post(store.url("add"))
        .body("plain body")
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_plain(res, 400).await,
        "file argument 'path' is required\n"
    );

    // A complete first file, then a second part cut off without its closing boundary.
    let first = content(600_000, 1);
    let mut body = Vec::new();
    body.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nContent-Type: application/octet-stream\r\n\r\n");
    body.extend_from_slice(&first);
    body.extend_from_slice(
        b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b\"\r\n\r\n",
    );
    body.extend_from_slice(&content(300_000, 2));
    let res = store
        .http
        .post(store.url("add"))
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(body)
        .send()
        .await
        .unwrap();
    expect_error(res, 400).await;
    assert_eq!(
        store.block_count(),
        0,
        "no block of the complete first part was kept"
    );
    assert_eq!(store.pin_count().await, 0);
    let cid = px_store::importer::cid_of(&first, &Default::default())
        .unwrap()
        .cid;
    assert!(store.client.block_stat(&cid.to_string()).await.is_err());
    store.stop().await;
}

#[tokio::test]
async fn request_over_the_size_limit_is_rejected_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.max_request_bytes = 1 << 20;
    let store = spawn_with(cfg, Some(dir)).await;
    let err = store
        .client
        .add_with_options(std::io::Cursor::new(content(3 << 20, 3)), Add::default())
        .await
        .unwrap_err();
    let msg = match err {
        ClientError::Api(api) => {
            assert_eq!(api.code, 1);
            api.message
        }
        other => panic!("expected API error, got {other}"),
    };
    assert!(msg.contains("exceeds the limit"), "{msg}");
    assert_eq!(store.block_count(), 0);
    // Small requests still work.
    let (cid, _) = store.add(b"small".to_vec(), Add::default()).await;
    assert_eq!(store.cat(&cid).await, b"small");
    store.stop().await;
}

#[tokio::test]
async fn corrupt_block_is_detected_on_read() {
    let store = spawn_store().await;
    let data = b"precious bytes".to_vec();
    let (cid, _) = store
        .add(
            data.clone(),
            Add {
                cid_version: Some(1),
                ..Default::default()
            },
        )
        .await;
    // Flip a byte of the block in the only pack (the block is the pack's last bytes).
    let packs: Vec<_> = std::fs::read_dir(store.repo.join("packs"))
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    assert_eq!(packs.len(), 1);
    let mut bytes = std::fs::read(&packs[0]).unwrap();
    let at = bytes.len() - data.len();
    assert_eq!(&bytes[at..], &data[..]);
    bytes[at] ^= 0x20;
    std::fs::write(&packs[0], bytes).unwrap();
    let res = store
        .http
        .post(store.url(&format!("cat?arg={cid}")))
        .send()
        .await
        .unwrap();
    let msg = expect_error(res, 500).await;
    assert!(msg.contains("corrupt"), "{msg}");
    store.stop().await;
}

#[tokio::test]
async fn only_hash_pin_and_gc() {
    let store = spawn_store().await;
    let data = content(700_000, 9);
    let (hashed, _) = store
        .add(
            data.clone(),
            Add {
                only_hash: Some(true),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(store.block_count(), 0, "only-hash stores nothing");
    assert_eq!(store.pin_count().await, 0);

    let (loose, _) = store
        .add(
            content(300_000, 10),
            Add {
                pin: Some(false),
                ..Default::default()
            },
        )
        .await;
    let (pinned, _) = store.add(data.clone(), Add::default()).await;
    assert_eq!(pinned, hashed);
    let pins = store.client.pin_ls(None, Some("recursive")).await.unwrap();
    assert_eq!(pins.keys.len(), 1);
    assert_eq!(pins.keys[&pinned].typ, "recursive");
    let all = store.client.pin_ls(None, None).await.unwrap();
    assert_eq!(all.keys.len(), 1 + 3, "root plus three distinct leaves");

    let (status, body) = store.raw(RepoGc).await;
    assert_eq!(status, 200);
    let removed: Vec<serde_json::Value> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(
        removed.len(),
        3,
        "the loose file: root and two leaves: {removed:?}"
    );
    assert!(store.client.block_stat(&loose).await.is_err());
    assert_eq!(store.cat(&pinned).await, data);

    store.client.pin_rm(&pinned, true).await.unwrap();
    store.raw(RepoGc).await;
    assert_eq!(store.block_count(), 0);
    assert!(store.client.block_stat(&pinned).await.is_err());

    // pin/add needs the whole DAG present.
    let res = store
        .http
        .post(store.url(&format!("pin/add?arg={pinned}")))
        .send()
        .await
        .unwrap();
    expect_error(res, 500).await;
    let (again, _) = store
        .add(
            data,
            Add {
                pin: Some(false),
                ..Default::default()
            },
        )
        .await;
    store.client.pin_add(&again, true).await.unwrap();
    store.raw(RepoGc).await;
    assert!(store.client.block_stat(&again).await.is_ok());
    store.stop().await;
}

#[tokio::test]
async fn progress_streams_lines() {
    let store = spawn_store().await;
    let data = content(3 << 20, 4);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(data.clone()).file_name("big.bin"),
    );
    let res = store
        .http
        .post(store.url("add?progress=true&cid-version=1"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 3, "{text}");
    let last = lines.last().unwrap();
    assert_eq!(last["Name"], "big.bin");
    let expected =
        px_store::importer::cid_of(&data, &px_store::importer::ImportOptions::v1()).unwrap();
    assert_eq!(last["Hash"], expected.cid.to_string());
    assert_eq!(last["Size"], expected.dag_size.to_string());
    let progress: Vec<u64> = lines[..lines.len() - 1]
        .iter()
        .map(|l| l["Bytes"].as_u64().unwrap())
        .collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(*progress.last().unwrap(), data.len() as u64);
    store.stop().await;
}

#[tokio::test]
async fn cat_with_a_lost_block_fails_instead_of_truncating() {
    use futures::TryStreamExt;
    let store = spawn_store().await;
    let data = content(5 * 262_144, 77);
    let (cid, _) = store.add(data.clone(), Add::default()).await;
    // Lose the block of the fourth leaf.
    let leaf = px_store::importer::cid_of(
        &data[3 * 262_144..4 * 262_144],
        &px_store::importer::ImportOptions::default(),
    )
    .unwrap()
    .cid;
    let key = px_store::blockstore::key_of(&leaf).unwrap();
    store.handle.state().repo().blocks.remove(&[key]).unwrap();

    let got = store
        .client
        .cat(&cid)
        .map_ok(|c| c.to_vec())
        .try_concat()
        .await;
    assert!(got.is_err(), "a short body must not pass as the file");
    store.stop().await;
}
