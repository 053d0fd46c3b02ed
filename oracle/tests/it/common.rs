//! The one shared fixture: a devnet (anvil + the project's forge deployment with the real
//! Chainlink Operator), the IPFS backend of the run, and helpers to mint, bind keys, publish
//! records, request syncs and run the oracle.
//!
//! The backend is the one `PX_TEST_IPFS` names: `store` (default: px-store served in-process
//! by its real router, so a test can also play a malicious daemon), `kubo` or `jsipfs` (a
//! daemon per test on loopback). Tests that need what a backend lacks skip themselves by name
//! ([`skip`]).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use alloy::primitives::{B256, U256};
use alloy::providers::{DynProvider, Provider};
use px_cli::daemon::{Capability, Daemon, Ipfs};
use px_cli::devnet::{Devnet, DevnetConfig, FIRST_USER, ORACLE, REGISTRAR};
use px_core::contracts::StorageNFT;
use px_core::ipns::{IpnsName, create_record};
use px_core::record::{RECORD_VERSION, UsageRecord};
use px_oracle::Config;
use px_oracle::config::Secret;
use px_oracle::ipfs::IpfsFlavor;
use px_store::{AppState, StoreConfig};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Price of plan 2 in native coin.
const PLAN2_PRICE: u128 = 10_000_000_000_000_000;

/// The embedded store, served by its real router, with the repo kept at hand so a test can
/// play a malicious daemon (store records the API would refuse).
pub(crate) struct Store {
    pub(crate) state: AppState,
    pub(crate) addr: SocketAddr,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Store {
    async fn open(dir: PathBuf) -> TestResult<Self> {
        let mut config = StoreConfig::new(dir);
        config.sync_writes = false;
        let state = tokio::task::spawn_blocking(move || AppState::open(config)).await??;
        let mut store = Self {
            state,
            addr: "127.0.0.1:0".parse()?,
            server: None,
        };
        store.start().await?;
        Ok(store)
    }

    /// Serves the API (again) on `self.addr` (a free port the first time).
    pub(crate) async fn start(&mut self) -> TestResult {
        let listener = TcpListener::bind(self.addr).await?;
        self.addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let router = px_store::app(self.state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        self.server = Some((tx, task));
        Ok(())
    }

    /// Stops serving (the IPFS daemon is down); the repo stays.
    pub(crate) async fn stop(&mut self) {
        if let Some((tx, task)) = self.server.take() {
            let _ = tx.send(());
            let _ = task.await;
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Whether a test needing `what` must be skipped on this run's backend (it prints why).
pub(crate) fn skip(test: &str, what: Capability) -> bool {
    Ipfs::from_test_env().skip(test, what).is_some()
}

/// The run's IPFS backend: px-store in-process, or a Kubo or js-ipfs daemon.
pub(crate) enum Backend {
    Store(Store),
    Daemon(Daemon),
}

impl Backend {
    async fn start_new(kind: Ipfs, dir: PathBuf) -> TestResult<Self> {
        Ok(match kind {
            Ipfs::Store => Backend::Store(Store::open(dir).await?),
            kind => Backend::Daemon(Daemon::start(kind).await?),
        })
    }

    pub(crate) fn kind(&self) -> Ipfs {
        match self {
            Backend::Store(_) => Ipfs::Store,
            Backend::Daemon(d) => d.kind(),
        }
    }

    /// The Kubo RPC base URL (the same across [`Backend::stop`] and [`Backend::start`]).
    pub(crate) fn url(&self) -> String {
        match self {
            Backend::Store(s) => s.url(),
            Backend::Daemon(d) => d.api_url().to_string(),
        }
    }

    /// The oracle's `IPFS_FLAVOR` for it.
    pub(crate) fn flavor(&self) -> IpfsFlavor {
        match self {
            Backend::Store(_) => IpfsFlavor::Embedded,
            Backend::Daemon(_) => IpfsFlavor::Kubo,
        }
    }

    /// [`Backend::flavor`] as the `IPFS_FLAVOR` variable spells it.
    pub(crate) fn flavor_name(&self) -> &'static str {
        match self.flavor() {
            IpfsFlavor::Embedded => "embedded",
            IpfsFlavor::Kubo => "kubo",
            IpfsFlavor::Btfs => "btfs",
        }
    }

    /// Takes the backend down (an IPFS outage); its repo stays.
    pub(crate) async fn stop(&mut self) {
        match self {
            Backend::Store(s) => s.stop().await,
            Backend::Daemon(d) => d.stop().await,
        }
    }

    /// Brings it back on the same repo and URL.
    pub(crate) async fn start(&mut self) -> TestResult {
        match self {
            Backend::Store(s) => s.start().await,
            Backend::Daemon(d) => Ok(d.start_again().await?),
        }
    }
}

pub(crate) struct Env {
    pub(crate) devnet: Devnet,
    pub(crate) ipfs: Backend,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) deployment_path: PathBuf,
    http: reqwest::Client,
}

impl Env {
    /// A devnet (automine, or `block_time` seconds per block) and the run's IPFS backend.
    pub(crate) async fn spawn(block_time: Option<u64>) -> TestResult<Self> {
        let dir = tempfile::tempdir()?;
        let devnet = Devnet::spawn(DevnetConfig {
            block_time,
            accounts: Some(12),
            ..DevnetConfig::default()
        });
        let ipfs = Backend::start_new(Ipfs::from_test_env(), dir.path().join("store"));
        let (devnet, ipfs) = tokio::join!(devnet, ipfs);
        let (devnet, ipfs) = (devnet?, ipfs?);
        let deployment_path = dir.path().join("deployment.json");
        std::fs::write(&deployment_path, serde_json::to_vec(&devnet.deployment)?)?;
        Ok(Self {
            devnet,
            ipfs,
            dir,
            deployment_path,
            http: reqwest::Client::new(),
        })
    }

    pub(crate) fn nft(&self, account: usize) -> StorageNFT::StorageNFTInstance<DynProvider> {
        StorageNFT::new(
            self.devnet.deployment.storage_nft,
            self.devnet.provider(account),
        )
    }

    /// An oracle configuration for this environment: adapter on a free loopback port, the
    /// run's IPFS backend, the relayer fulfilling from anvil account 1, fast polling.
    pub(crate) fn config(&self) -> Config {
        let mut c = Config::default();
        c.adapter.port = 0;
        c.adapter.cache_max_age_ms = 0;
        c.chain.rpc_url = Some(self.devnet.rpc_url());
        c.chain.deployment = Some(self.deployment_path.clone());
        c.ipfs.url = self.ipfs.url();
        c.ipfs.flavor = self.ipfs.flavor();
        c.ipfs.timeout_ms = 2_000;
        let key = self.devnet.signer(ORACLE).to_bytes();
        c.relayer.private_key = Some(Secret::new(alloy::hex::encode_prefixed(key)));
        c.relayer.db = self.dir.path().join("relayer.redb");
        c.relayer.poll_interval_ms = 100;
        // Automine: a block only when a transaction comes; wait for none on top.
        c.relayer.confirmations = 1;
        c
    }

    /// Starts the oracle with only its relayer (no adapter), on [`Env::config`].
    pub(crate) async fn relayer(&self) -> TestResult<px_oracle::OracleHandle> {
        let mut config = self.config();
        config.adapter.enabled = false;
        Ok(px_oracle::spawn(config).await?)
    }

    /// Mints a token to the first user, binds a fresh daemon key named `key` to it and
    /// publishes a usage record (`used`, `seq`) under it: a token a node has served.
    pub(crate) async fn served_token(&self, key: &str, used: u64, seq: u64) -> TestResult<U256> {
        let token = self.mint(0).await?;
        let name = self.key_gen(key).await?;
        self.bind(token, &name).await?;
        self.publish_record(key, &self.record(token, used, seq))
            .await?;
        Ok(token)
    }

    /// `n` served tokens (keys `<prefix>-<i>`, records with `used = 1000 + i` at seq 1).
    pub(crate) async fn served_tokens(&self, n: usize, prefix: &str) -> TestResult<Vec<U256>> {
        let mut tokens = Vec::with_capacity(n);
        for i in 0..n {
            let key = format!("{prefix}-{i}");
            tokens.push(self.served_token(&key, 1_000 + i as u64, 1).await?);
        }
        Ok(tokens)
    }

    /// Mints a plan-2 token to anvil account `FIRST_USER + user`.
    pub(crate) async fn mint(&self, user: usize) -> TestResult<U256> {
        let receipt = self
            .nft(FIRST_USER + user)
            .mint(U256::from(2), U256::ZERO)
            .value(U256::from(PLAN2_PRICE))
            .send()
            .await?
            .get_receipt()
            .await?;
        let minted = receipt
            .inner
            .logs()
            .iter()
            .find_map(|l| l.log_decode::<StorageNFT::Minted>().ok())
            .ok_or("no Minted event")?;
        Ok(minted.inner.data.tokenId)
    }

    /// Binds `name` to `token` as the registrar.
    pub(crate) async fn bind(&self, token: U256, name: &IpnsName) -> TestResult {
        self.nft(REGISTRAR)
            .registerKey(token, name.to_bytes().into())
            .send()
            .await?
            .get_receipt()
            .await?;
        Ok(())
    }

    /// The holder (`user`) requests a sync; returns the request id.
    pub(crate) async fn request_sync(&self, user: usize, token: U256) -> TestResult<B256> {
        let receipt = self
            .nft(FIRST_USER + user)
            .requestSync(token)
            .send()
            .await?
            .get_receipt()
            .await?;
        let ev = receipt
            .inner
            .logs()
            .iter()
            .find_map(|l| l.log_decode::<StorageNFT::SyncRequested>().ok())
            .ok_or("no SyncRequested event")?;
        Ok(ev.inner.data.requestId)
    }

    pub(crate) async fn info(
        &self,
        token: U256,
    ) -> TestResult<px_core::contracts::IStorageNFT::TokenInfo> {
        Ok(self.nft(0).tokenInfo(token).call().await?)
    }

    /// Waits until the token has no pending request; returns its info.
    pub(crate) async fn wait_answered(
        &self,
        token: U256,
        within: Duration,
    ) -> TestResult<px_core::contracts::IStorageNFT::TokenInfo> {
        let info = wait_for(within, || async {
            let info = self.info(token).await.ok()?;
            (!info.pending).then_some(info)
        })
        .await
        .ok_or_else(|| format!("token {token} not answered within {within:?}"))?;
        Ok(info)
    }

    async fn rpc(&self, path: &str, query: &[(&str, &str)]) -> TestResult<Value> {
        let res = self
            .http
            .post(format!("{}/api/v0/{path}", self.ipfs.url()))
            .query(query)
            .send()
            .await?;
        let status = res.status();
        let text = res.text().await?;
        if !status.is_success() {
            return Err(format!("{path}: {status} {text}").into());
        }
        Ok(serde_json::from_str(text.lines().last().unwrap_or("null"))?)
    }

    /// `key/gen`: an ed25519 key in the daemon's keystore (what a storage node does per token).
    pub(crate) async fn key_gen(&self, key: &str) -> TestResult<IpnsName> {
        let v = self
            .rpc("key/gen", &[("arg", key), ("type", "ed25519")])
            .await?;
        Ok(v["Id"].as_str().ok_or("no Id")?.parse()?)
    }

    /// `add`: stores bytes, returns the CID text.
    pub(crate) async fn add(&self, bytes: Vec<u8>) -> TestResult<String> {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes)
                .file_name("record.json")
                .mime_str("application/octet-stream")?,
        );
        let res = self
            .http
            .post(format!("{}/api/v0/add", self.ipfs.url()))
            .multipart(form)
            .send()
            .await?;
        let text = res.error_for_status()?.text().await?;
        let v: Value = serde_json::from_str(text.lines().last().ok_or("empty add answer")?)?;
        Ok(v["Hash"].as_str().ok_or("no Hash")?.to_string())
    }

    /// `name/publish` of `/ipfs/<cid>` under the daemon key `key`.
    pub(crate) async fn publish(&self, key: &str, cid: &str) -> TestResult {
        self.rpc(
            "name/publish",
            &[
                ("arg", &format!("/ipfs/{cid}")),
                ("key", key),
                ("allow-offline", "true"),
            ],
        )
        .await?;
        Ok(())
    }

    /// Adds a usage record and publishes it under `key` (the storage node's flow).
    pub(crate) async fn publish_record(
        &self,
        key: &str,
        record: &UsageRecord,
    ) -> TestResult<String> {
        let cid = self.add(record.to_bytes()).await?;
        self.publish(key, &cid).await?;
        Ok(cid)
    }

    /// `routing/put` of a raw record (the daemon verifies it).
    pub(crate) async fn routing_put(&self, name: &IpnsName, record: Vec<u8>) -> TestResult {
        let part = reqwest::multipart::Part::bytes(record).mime_str("application/octet-stream")?;
        let form = reqwest::multipart::Form::new().part("file", part);
        self.http
            .post(format!("{}/api/v0/routing/put", self.ipfs.url()))
            .query(&[("arg", format!("/ipns/{name}"))])
            .multipart(form)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Stores raw record bytes under `name` without any check: a malicious daemon. Only
    /// px-store can (see [`Env::can_forge`]).
    pub(crate) fn inject_record(&self, name: &IpnsName, record: &[u8]) -> TestResult {
        match &self.ipfs {
            Backend::Store(store) => Ok(store.state.repo().put_record(name, record)?),
            Backend::Daemon(d) => Err(format!("{} serves no forged record", d.kind()).into()),
        }
    }

    /// Whether the backend can play a malicious daemon; if not, says that `case` is skipped.
    pub(crate) fn can_forge(&self, case: &str) -> bool {
        let kind = self.ipfs.kind();
        match kind.lacks(Capability::ForgedRecords) {
            None => true,
            Some(why) => {
                eprintln!("SKIPPED case {case:?} on {kind}: {why}");
                false
            }
        }
    }

    /// A usage record bound to this deployment.
    pub(crate) fn record(&self, token: U256, used: u64, seq: u64) -> UsageRecord {
        UsageRecord {
            version: RECORD_VERSION,
            chain_id: self.devnet.deployment.chain_id,
            contract: self.devnet.deployment.storage_nft,
            token_id: token.to(),
            quota: 10 << 30,
            used,
            file_count: 3,
            seq,
            index: "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH".into(),
            updated_at: 1_700_000_000,
        }
    }

    /// Number of transactions the oracle's account sent (its nonce).
    pub(crate) async fn oracle_tx_count(&self) -> TestResult<u64> {
        Ok(self
            .devnet
            .provider(0)
            .get_transaction_count(self.devnet.address(ORACLE))
            .await?)
    }

    /// Fulfill outcomes (Synced + SyncFailed events) for a request id.
    pub(crate) async fn answers_for(&self, request_id: B256) -> TestResult<usize> {
        let p = self.devnet.provider(0);
        let filter = alloy::rpc::types::Filter::new()
            .address(self.devnet.deployment.storage_nft)
            .event_signature(vec![
                <StorageNFT::Synced as alloy::sol_types::SolEvent>::SIGNATURE_HASH,
                <StorageNFT::SyncFailed as alloy::sol_types::SolEvent>::SIGNATURE_HASH,
            ])
            .from_block(0)
            .topic2(request_id);
        Ok(p.get_logs(&filter).await?.len())
    }
}

/// A signed record for `key` pointing at `cid`, valid for an hour, with IPNS sequence `seq`.
pub(crate) fn signed_record(key: &libp2p_identity::Keypair, cid: &str, seq: u64) -> Vec<u8> {
    let eol = SystemTime::now() + Duration::from_secs(3600);
    create_record(
        key,
        &format!("/ipfs/{cid}"),
        seq,
        eol,
        Duration::from_secs(60),
    )
    .unwrap()
}

/// Polls `f` every 50 ms until it yields a value or `within` passes.
pub(crate) async fn wait_for<T, F, Fut>(within: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A free loopback port.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
