//! The shared fixture: a devnet, nodes on 127.0.0.1:0 and signed-in users, on the IPFS
//! backend `PX_TEST_IPFS` selects: `store` (default: every node embeds its own px-store),
//! `kubo` or `jsipfs` (one daemon per test, started here on loopback, that every node of the
//! test uses as its remote backend).

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::DynProvider;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use bytes::Bytes;
use px_cli::daemon::{Daemon, Ipfs};
use px_cli::devnet::{Devnet, DevnetConfig, FIRST_USER, REGISTRAR};
use px_core::api::{self, ErrorBody, ErrorCode};
use px_core::contracts::StorageNFT;
use px_core::record::{MAX_RECORD_BYTES, UsageRecord};
use px_node::siwe::SiweMessage;
use px_node::{NodeConfig, NodeHandle};
use reqwest::StatusCode;
use std::collections::HashSet;
use std::process::{Child, Command, Stdio};

/// A devnet plus a scratch directory holding its deployment file and node data, and the IPFS
/// daemon of the run's backend.
pub struct Net {
    pub devnet: Devnet,
    pub dir: tempfile::TempDir,
    pub deployment: PathBuf,
    /// The backend of this run (`PX_TEST_IPFS`).
    pub backend: Ipfs,
    /// The Kubo or js-ipfs daemon every node of the test uses (`None` on px-store).
    pub daemon: Option<Daemon>,
}

impl Net {
    pub async fn start() -> Net {
        let backend = Ipfs::from_test_env();
        let devnet = Devnet::spawn(DevnetConfig {
            accounts: Some(40),
            ..DevnetConfig::default()
        });
        let daemon = async {
            match backend {
                Ipfs::Store => None,
                kind => Some(Daemon::start(kind).await.expect("IPFS daemon starts")),
            }
        };
        let (devnet, daemon) = tokio::join!(devnet, daemon);
        let devnet = devnet.expect("devnet starts (run `make bootstrap` first)");
        let dir = tempfile::tempdir().unwrap();
        let deployment = dir.path().join("deployment.json");
        std::fs::write(&deployment, serde_json::to_vec(&devnet.deployment).unwrap()).unwrap();
        Net {
            devnet,
            dir,
            deployment,
            backend,
            daemon,
        }
    }

    /// The Kubo RPC URL `node` stores through: the test's daemon, or the node's embedded store.
    pub fn ipfs_url(&self, node: &NodeHandle) -> String {
        match &self.daemon {
            Some(d) => d.api_url().to_string(),
            None => node.store_url().expect("an embedded store"),
        }
    }

    /// The daemon's URL, if the run has one.
    pub fn daemon_url(&self) -> Option<String> {
        self.daemon.as_ref().map(|d| d.api_url().to_string())
    }

    /// A node configuration for this devnet with its data in `<dir>/<name>`.
    pub fn config(&self, name: &str) -> NodeConfig {
        let mut c = NodeConfig::new(&self.deployment);
        c.listen = "127.0.0.1:0".parse().unwrap();
        c.rpc_url = self.devnet.rpc_url();
        c.data_dir = self.dir.path().join(name);
        c.owner_cache_ttl = Duration::from_secs(1);
        c.store_sync_writes = false;
        let key = self.devnet.signer(REGISTRAR).to_bytes();
        c.registrar_key = Some(px_node::Secret::new(alloy::hex::encode(key)));
        if let Some(url) = self.daemon_url() {
            c.ipfs = px_node::IpfsBackend::Remote(url);
        }
        c
    }

    pub async fn node(&self, name: &str) -> NodeHandle {
        px_node::spawn(self.config(name))
            .await
            .expect("node starts")
    }

    pub fn nft(&self, account: usize) -> StorageNFT::StorageNFTInstance<DynProvider> {
        StorageNFT::new(
            self.devnet.deployment.storage_nft,
            self.devnet.provider(account),
        )
    }

    /// User `n` (0-based) among the accounts free for users.
    pub fn user(&self, n: usize, node: &NodeHandle) -> User {
        self.user_at(n, node.url())
    }

    /// User `n` talking to the node at `base`.
    pub fn user_at(&self, n: usize, base: String) -> User {
        let account = FIRST_USER + n;
        User {
            account,
            signer: self.devnet.signer(account),
            http: reqwest::Client::new(),
            base,
            session: None,
        }
    }
}

/// An HTTP failure: status and error body.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl Refusal {
    pub fn code(&self) -> ErrorCode {
        self.body.error
    }
}

pub type Answer<T> = Result<T, Refusal>;

async fn answer<T: serde::de::DeserializeOwned>(r: reqwest::Response) -> Answer<T> {
    let status = r.status();
    if status.is_success() {
        return Ok(r.json().await.expect("JSON answer"));
    }
    let text = r.text().await.unwrap();
    let body: ErrorBody =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("error body for {status}: {text}"));
    Err(Refusal { status, body })
}

/// A wallet talking to one node.
pub struct User {
    pub account: usize,
    pub signer: PrivateKeySigner,
    pub http: reqwest::Client,
    pub base: String,
    pub session: Option<String>,
}

impl User {
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    pub async fn nonce(&self) -> api::NonceResponse {
        let r = self
            .http
            .get(format!("{}/v1/auth/nonce", self.base))
            .send()
            .await
            .unwrap();
        answer(r).await.unwrap()
    }

    /// The message a well-behaved client signs for `nonce`.
    pub fn message(&self, n: &api::NonceResponse) -> SiweMessage {
        sign_in_message(self.address(), n, Some("Sign in to PX storage."))
    }

    /// Sends a login for `message` signed by `signer`.
    pub async fn login_with(
        &self,
        message: &SiweMessage,
        signer: &PrivateKeySigner,
    ) -> Answer<api::Session> {
        let text = message.to_string();
        let sig = signer.sign_message_sync(text.as_bytes()).unwrap();
        let req = api::LoginRequest {
            message: text,
            signature: sig.as_bytes().to_vec().into(),
        };
        let r = self
            .http
            .post(format!("{}/v1/auth/login", self.base))
            .json(&req)
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    pub async fn login(&mut self) {
        let n = self.nonce().await;
        let m = self.message(&n);
        let s = self
            .login_with(&m, &self.signer.clone())
            .await
            .expect("login succeeds");
        assert_eq!(s.address, self.address());
        self.session = Some(s.token);
    }

    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.session {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub async fn key_assignment(&self) -> Answer<api::KeyAssignment> {
        let r = self
            .auth(self.http.get(format!("{}/v1/key-assignment", self.base)))
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    /// Mints a free-plan token with a key assignment from the node; answers its id.
    pub async fn mint(&self, net: &Net) -> u64 {
        let a = self.key_assignment().await.expect("assignment");
        let nft = net.nft(self.account);
        nft.mintWithKey(
            U256::from(1),
            U256::ZERO,
            a.ipns_name.clone(),
            U256::from(a.deadline),
            a.signature.clone(),
        )
        .send()
        .await
        .expect("mintWithKey sent")
        .get_receipt()
        .await
        .expect("mined");
        let key = alloy::primitives::B256::from_slice(&a.ipns_name[6..]);
        let id: U256 = nft.tokenOfKey(key).call().await.unwrap();
        assert!(!id.is_zero(), "token minted and bound");
        id.to::<u64>()
    }

    pub async fn upload(
        &self,
        token: u64,
        name: &str,
        data: impl Into<Bytes>,
    ) -> Answer<api::UploadResult> {
        let r = self
            .auth(
                self.http
                    .post(format!("{}/v1/tokens/{token}/files", self.base)),
            )
            .query(&[("name", name)])
            .body(data.into())
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    pub async fn usage(&self, token: u64) -> Answer<api::Usage> {
        let r = self
            .auth(
                self.http
                    .get(format!("{}/v1/tokens/{token}/usage", self.base)),
            )
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    pub async fn list(&self, token: u64, after: u64, limit: u32) -> Answer<api::FileListPage> {
        let r = self
            .auth(
                self.http
                    .get(format!("{}/v1/tokens/{token}/files", self.base)),
            )
            .query(&[("after", after), ("limit", u64::from(limit))])
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    /// Every file of a token, following `next`.
    pub async fn list_all(&self, token: u64, limit: u32) -> Vec<api::FileEntry> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = self.list(token, after, limit).await.unwrap();
            assert!(page.files.len() <= limit as usize);
            out.extend(page.files);
            match page.next {
                Some(n) => after = n,
                None => return out,
            }
        }
    }

    pub async fn delete(&self, token: u64, file: u64) -> Answer<api::DeleteResult> {
        let r = self
            .auth(
                self.http
                    .delete(format!("{}/v1/tokens/{token}/files/{file}", self.base)),
            )
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    pub async fn download(&self, token: u64, cid: &str) -> Result<Vec<u8>, Refusal> {
        let r = self
            .auth(
                self.http
                    .get(format!("{}/v1/tokens/{token}/content/{cid}", self.base)),
            )
            .send()
            .await
            .unwrap();
        if r.status().is_success() {
            return Ok(r.bytes().await.unwrap().to_vec());
        }
        let status = r.status();
        Err(Refusal {
            status,
            body: r.json().await.unwrap(),
        })
    }
}

/// The usage record currently published under `ipns_id`, read back through the store.
pub async fn published_record(ipfs_url: &str, ipns_id: &str) -> UsageRecord {
    let ipfs = px_node::ipfs::Ipfs::new(ipfs_url).unwrap();
    let path = ipfs.resolve(ipns_id).await.expect("name resolves");
    let cid = path.strip_prefix("/ipfs/").expect("an /ipfs/ path");
    let bytes = ipfs.cat_all(cid, MAX_RECORD_BYTES).await.unwrap();
    UsageRecord::parse(&bytes, MAX_RECORD_BYTES).unwrap()
}

/// Checks that what the node says, what it published, its index objects and the store's pins
/// all agree for `token`.
pub async fn assert_consistent(user: &User, ipfs_url: &str, token: u64) {
    let usage = user.usage(token).await.unwrap();
    let files = user.list_all(token, 1000).await;
    assert_eq!(files.len() as u64, usage.file_count, "file count");
    assert_eq!(
        files.iter().map(|f| f.size).sum::<u64>(),
        usage.used,
        "used bytes"
    );
    let record = published_record(ipfs_url, &usage.ipns_id).await;
    assert_eq!(record.seq, usage.seq, "published sequence");
    assert_eq!(record.used, usage.used, "published usage");
    assert_eq!(record.file_count, usage.file_count, "published file count");
    assert_eq!(record.index, usage.index, "published index");
    assert_eq!(record.token_id, token);

    // Walk the index objects: they list exactly the files.
    let ipfs = px_node::ipfs::Ipfs::new(ipfs_url).unwrap();
    let mut pages = vec![usage.index.clone()];
    let root: px_node::index::BranchPage =
        serde_json::from_slice(&ipfs.cat_all(&usage.index, 1 << 20).await.unwrap()).unwrap();
    let mut indexed = Vec::new();
    for inner in root.children {
        pages.push(inner.cid.clone());
        let inner: px_node::index::BranchPage =
            serde_json::from_slice(&ipfs.cat_all(&inner.cid, 1 << 20).await.unwrap()).unwrap();
        for leaf in inner.children {
            pages.push(leaf.cid.clone());
            let leaf: px_node::index::LeafPage =
                serde_json::from_slice(&ipfs.cat_all(&leaf.cid, 1 << 20).await.unwrap()).unwrap();
            indexed.extend(leaf.files);
        }
    }
    assert_eq!(indexed, files, "index objects list the files");

    // Everything referenced is pinned.
    let pins: std::collections::HashSet<String> = ipfs.pins().await.unwrap().into_iter().collect();
    let path = ipfs.resolve(&usage.ipns_id).await.unwrap();
    let record_cid = path.strip_prefix("/ipfs/").unwrap().to_string();
    for c in files
        .iter()
        .map(|f| &f.cid)
        .chain(pages.iter())
        .chain([&record_cid])
    {
        assert!(pins.contains(c), "{c} is pinned");
    }
}

/// The set of recursive pins of the store.
pub async fn pins(ipfs_url: &str) -> std::collections::HashSet<String> {
    let ipfs = px_node::ipfs::Ipfs::new(ipfs_url).unwrap();
    ipfs.pins().await.unwrap().into_iter().collect()
}

/// Deterministic pseudo-random bytes.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    px_cli::devnet::sample_bytes(len, seed)
}

/// Starts the `px-node` binary on `data_dir` (embedded store inside the process, or the test's
/// IPFS daemon), with `env` added (`PX_NODE_*` settings).
pub fn start_process(
    net: &Net,
    data_dir: &std::path::Path,
    failpoint: Option<&str>,
    exclusive: bool,
    env: &[(&str, &str)],
) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_px-node"));
    cmd.env("PX_NODE_LISTEN", format!("127.0.0.1:{port}"))
        .env("PX_NODE_RPC_URL", net.devnet.rpc_url())
        .env("PX_NODE_DEPLOYMENT", &net.deployment)
        .env("PX_NODE_DATA_DIR", data_dir)
        .env(
            "PX_NODE_REGISTRAR_KEY",
            alloy::hex::encode(net.devnet.signer(REGISTRAR).to_bytes()),
        )
        .env("PX_NODE_OWNER_CACHE_SECS", "1")
        .env("PX_NODE_EXCLUSIVE_BACKEND", exclusive.to_string())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log_file(data_dir, port));
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(f) = failpoint {
        cmd.env("PX_NODE_FAILPOINT", f);
    }
    if let Some(url) = net.daemon_url() {
        cmd.env("PX_NODE_IPFS_URL", url);
    }
    (
        cmd.spawn().expect("px-node binary starts"),
        format!("http://127.0.0.1:{port}"),
    )
}

/// The file a node process started by [`start_process`] logs to: `<data_dir>.<port>.log`
/// (beside its data directory, in the test's temporary directory), opened for appending.
fn log_file(data_dir: &std::path::Path, port: u16) -> std::fs::File {
    let path = data_dir.with_extension(format!("{port}.log"));
    NODE_LOGS.lock().unwrap().insert(port, path.clone());
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("node log file")
}

/// The log file of each node process started by [`start_process`], by port.
static NODE_LOGS: std::sync::Mutex<std::collections::BTreeMap<u16, PathBuf>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Waits up to 30 s for the node at `url` to answer `/health` (a node process starting beside
/// other tests' daemons on two cores has taken over 10 s). On time-out it panics with the
/// node's log when [`start_process`] started it.
pub async fn wait_healthy(url: &str) {
    for _ in 0..600 {
        if let Ok(r) = reqwest::get(format!("{url}/health")).await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let port = url.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
    let log = port.and_then(|p| NODE_LOGS.lock().unwrap().get(&p).cloned());
    let log = log.map_or_else(
        || "(not started by start_process)".to_string(),
        |p| std::fs::read_to_string(&p).unwrap_or_else(|e| format!("{}: {e}", p.display())),
    );
    panic!("node at {url} did not become healthy in 30 s; its log:\n{log}");
}

/// Every object the token's committed state references: files, index pages, the record.
pub async fn referenced(user: &User, ipfs_url: &str, token: u64) -> HashSet<String> {
    let usage = user.usage(token).await.unwrap();
    let ipfs = px_node::ipfs::Ipfs::new(ipfs_url).unwrap();
    let mut out: HashSet<String> = user
        .list_all(token, 1000)
        .await
        .into_iter()
        .map(|f| f.cid)
        .collect();
    out.insert(usage.index.clone());
    let root: px_node::index::BranchPage =
        serde_json::from_slice(&ipfs.cat_all(&usage.index, 1 << 20).await.unwrap()).unwrap();
    for inner in root.children {
        let page: px_node::index::BranchPage =
            serde_json::from_slice(&ipfs.cat_all(&inner.cid, 1 << 20).await.unwrap()).unwrap();
        out.insert(inner.cid);
        out.extend(page.children.into_iter().map(|c| c.cid));
    }
    let path = ipfs.resolve(&usage.ipns_id).await.unwrap();
    out.insert(path.trim_start_matches("/ipfs/").to_string());
    out
}

/// A counter of the node's `/metrics` (summed over its labels).
pub async fn metric(base: &str, name: &str) -> u64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split([' ', '{']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The head of a raw `POST /v1/tokens/{token}/files` with `Content-Length: len`.
pub fn upload_head(base: &str, token: u64, session: &str, name: &str, len: u64) -> String {
    let host = base.trim_start_matches("http://");
    format!(
        "POST /v1/tokens/{token}/files?name={name} HTTP/1.1\r\nHost: {host}\r\n\
         Authorization: Bearer {session}\r\nContent-Length: {len}\r\n\r\n"
    )
}

/// The `p`-quantile (0..=1) of `v` (sorted here).
pub fn quantile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}

/// The sign-in message `address` signs for nonce `n`, valid for five minutes from now.
pub fn sign_in_message(
    address: Address,
    n: &api::NonceResponse,
    statement: Option<&str>,
) -> SiweMessage {
    let now = px_node::node::unix_now();
    SiweMessage {
        domain: n.domain.clone(),
        address,
        statement: statement.map(Into::into),
        uri: n.uri.clone(),
        version: "1".into(),
        chain_id: n.chain_id,
        nonce: n.nonce.clone(),
        issued_at: now,
        expiration_time: Some(now + 300),
        not_before: None,
        request_id: None,
        resources: vec![],
    }
}
