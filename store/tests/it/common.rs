//! The shared fixture: a store on 127.0.0.1:0 in a temp repo, and a real Kubo RPC client.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use ipfs_api_backend_hyper::request::Add;
use ipfs_api_backend_hyper::{IpfsApi, IpfsClient, TryFromUri};
use ipfs_api_prelude::{ApiRequest, Backend};
use px_store::{StoreConfig, StoreHandle};
use serde::Serialize;

pub(crate) const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures");

pub(crate) struct TestStore {
    pub(crate) handle: StoreHandle,
    pub(crate) client: IpfsClient,
    pub(crate) http: reqwest::Client,
    pub(crate) repo: PathBuf,
    // Keeps the temp dir alive for the test's duration.
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    pub(crate) fn url(&self, command: &str) -> String {
        format!("{}/api/v0/{command}", self.handle.api_url())
    }

    pub(crate) async fn add(&self, data: Vec<u8>, opts: Add<'static>) -> (String, String) {
        let res = self
            .client
            .add_with_options(Cursor::new(data), opts)
            .await
            .expect("add");
        (res.hash, res.size)
    }

    pub(crate) async fn cat(&self, cid: &str) -> Vec<u8> {
        self.client
            .cat(cid)
            .map_ok(|c| c.to_vec())
            .try_concat()
            .await
            .expect("cat")
    }

    /// `key/gen?arg=<name>&type=ed25519` (not the client's `key_gen`: it sends `size=0`, which
    /// Kubo refuses and so does the store); answers the key's id.
    pub(crate) async fn key_gen(&self, name: &str) -> String {
        let res = self
            .http
            .post(self.url("key/gen"))
            .query(&[("arg", name), ("type", "ed25519")])
            .send()
            .await
            .expect("key/gen");
        assert_eq!(res.status().as_u16(), 200, "key/gen {name}");
        let v: serde_json::Value = res.json().await.expect("key/gen answer");
        assert_eq!(v["Name"], name);
        v["Id"].as_str().expect("Id").to_string()
    }

    /// The `ID` of `id` (not the client's `id`: it wants a `ProtocolVersion` field Kubo 0.43
    /// no longer sends, and neither does the store).
    pub(crate) async fn peer_id(&self) -> String {
        let v: serde_json::Value = self
            .http
            .post(self.url("id"))
            .send()
            .await
            .expect("id")
            .json()
            .await
            .expect("id answer");
        v["ID"].as_str().expect("ID").to_string()
    }

    /// A raw call through the client for commands it has no method for.
    pub(crate) async fn raw<R: ApiRequest>(&self, req: R) -> (u16, bytes::Bytes) {
        let (status, body) = self.client.request_raw(req, None).await.expect("request");
        (status.as_u16(), body)
    }

    /// Number of pins of every kind, as `pin/ls` lists them.
    pub(crate) async fn pin_count(&self) -> usize {
        self.client
            .pin_ls(None, None)
            .await
            .expect("pin/ls")
            .keys
            .len()
    }

    /// Number of blocks in the repo.
    pub(crate) fn block_count(&self) -> u64 {
        self.handle
            .state()
            .repo()
            .blocks
            .len()
            .expect("block index")
    }

    pub(crate) async fn stop(self) -> Option<tempfile::TempDir> {
        self.handle.shutdown().await;
        self._dir
    }
}

pub(crate) fn config(repo: &Path) -> StoreConfig {
    let mut config = StoreConfig::new(repo);
    config.api = "127.0.0.1:0".parse().unwrap();
    config
}

pub(crate) async fn spawn_with(config: StoreConfig, dir: Option<tempfile::TempDir>) -> TestStore {
    let repo = config.repo.clone();
    let handle = px_store::spawn(config).await.expect("spawn store");
    let client = IpfsClient::from_str(&handle.api_url()).expect("client");
    TestStore {
        handle,
        client,
        http: reqwest::Client::new(),
        repo,
        _dir: dir,
    }
}

pub(crate) async fn spawn_store() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    spawn_with(config, Some(dir)).await
}

/// Deterministic non-repeating-per-chunk content.
pub(crate) fn content(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// `routing/get` with `encoding=text`: the raw record bytes (Kubo's default is a JSON event
/// with the record base64-encoded, see `kubo.rs`).
#[derive(Serialize)]
pub(crate) struct RoutingGet {
    pub(crate) arg: String,
    pub(crate) encoding: &'static str,
}
impl ApiRequest for RoutingGet {
    const PATH: &'static str = "/routing/get";
}

#[derive(Serialize)]
pub(crate) struct RepoGc;
impl ApiRequest for RepoGc {
    const PATH: &'static str = "/repo/gc";
}

#[derive(Serialize)]
pub(crate) struct BlockGet {
    pub(crate) arg: String,
}
impl ApiRequest for BlockGet {
    const PATH: &'static str = "/block/get";
}

/// Asserts a plain-text answer (Kubo's missing argument, unknown command, wrong method) and
/// its status; answers the text.
pub(crate) async fn expect_plain(res: reqwest::Response, status: u16) -> String {
    assert_eq!(res.status().as_u16(), status, "status");
    let ct = res.headers()[reqwest::header::CONTENT_TYPE].clone();
    assert_eq!(ct, "text/plain; charset=utf-8");
    res.text().await.unwrap()
}

/// Asserts a Kubo error body and status.
pub(crate) async fn expect_error(res: reqwest::Response, status: u16) -> String {
    assert_eq!(res.status().as_u16(), status, "status");
    let body: serde_json::Value = res.json().await.expect("json error body");
    assert_eq!(body["Type"], "error", "{body}");
    let code = if status == 400 { 1 } else { 0 };
    assert_eq!(body["Code"], code, "{body}");
    body["Message"].as_str().expect("Message").to_string()
}
