//! # px-node: the PX storage node (upload gateway)
//!
//! Users sign in with Ethereum (EIP-4361) and upload files for the storage NFTs they own. The
//! node checks `ownerOf`, the on-chain upload gate (`canUpload`: sync window, expiry, pause)
//! and its own live usage against the quota, stores and pins the bytes through the Kubo RPC
//! API (the embedded `px-store` by default, or a Kubo/BTFS daemon), keeps a per-token file
//! index as IPFS objects, and publishes a new [`px_core::UsageRecord`] (sequence + 1) under the
//! token's IPNS name after every change. The oracle reads that record when a sync is
//! requested.
//!
//! Modules, in the order a request meets them:
//! - [`config`]: file, environment and flags.
//! - [`http`]: routes and the session extractor; [`openapi`] documents them.
//! - [`siwe`]: EIP-4361 parsing and verification.
//! - [`node`]: the core (sessions, keys, uploads, deletes, publishing, crash recovery).
//! - [`chain`]: StorageNFT reads, `registerKey`, EIP-712 key assignments.
//! - [`web`]: the web dApp's assets, when configured (`web_dir`).
//! - [`index`]: the file index tree; [`ipfs`]: the Kubo RPC client; [`db`]: redb state.
//!
//! ```no_run
//! # async fn demo() -> px_node::Result<()> {
//! let mut config = px_node::NodeConfig::new("deployments/31337.json");
//! config.listen = "127.0.0.1:0".parse().unwrap();
//! let node = px_node::spawn(config).await?;
//! println!("node at {}", node.url());
//! node.shutdown().await;
//! # Ok(()) }
//! ```

pub mod chain;
pub mod config;
pub mod db;
mod error;
pub mod home;
pub mod http;
pub mod index;
pub mod ipfs;
pub mod limit;
pub mod metrics;
pub mod node;
pub mod nonces;
pub mod openapi;
pub mod provider;
mod serve;
pub mod siwe;
pub mod web;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use alloy::signers::local::PrivateKeySigner;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{Cli, IpfsBackend, NodeConfig, Secret};
pub use error::{Error, Result};
pub use http::app;
pub use node::Node;

/// A running node. [`NodeHandle::shutdown`] stops it gracefully (and the embedded store).
#[derive(Debug)]
pub struct NodeHandle {
    addr: SocketAddr,
    node: Arc<Node>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    store: Option<px_store::StoreHandle>,
    provider: Option<provider::Running>,
    home: Option<home::Running>,
}

impl NodeHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:7070`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The node core.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The provider role, if on.
    pub fn provider(&self) -> Option<&Arc<provider::Provider>> {
        self.provider.as_ref().map(|r| &r.provider)
    }

    /// The home role, if on.
    pub fn home(&self) -> Option<&Arc<home::Home>> {
        self.home.as_ref().map(|r| &r.home)
    }

    /// The embedded store's Kubo RPC URL, if the node runs one.
    pub fn store_url(&self) -> Option<String> {
        self.store.as_ref().map(|s| s.api_url())
    }

    /// Stops serving, lets in-flight requests finish, and stops the embedded store.
    ///
    /// The order matters: the node's requests send their store calls in-process (which the
    /// store's own shutdown does not wait for), so the node's server, which waits for every
    /// in-flight request, stops first; then the store stops and releases its repo.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        // The roles' loops stop, and are gone before this returns: a loop aborted but not yet
        // dropped would still hold the node's database open (a prover's proof stored but not
        // sent goes out after a restart).
        if let Some(home) = self.home.take() {
            home.stop().await;
        }
        if let Some(provider) = self.provider.take() {
            provider.stop().await;
        }
        // Uploads and updates whose clients went away finish before the store stops.
        self.node.tasks.close();
        self.node.tasks.wait().await;
        // A database write a stopped loop had handed to a blocking thread still holds the
        // node's database: it closes (only this handle left) before this returns, so a
        // restart in the same process can open it again.
        released("the node's database", || {
            Arc::strong_count(&self.node) > 1 || Arc::strong_count(&self.node.db) > 1
        })
        .await;
        if let Some(store) = self.store.take() {
            store.shutdown().await;
        }
    }
}

/// Waits until `held()` turns false, checking every 5 ms for up to 10 s (a blocking database
/// write takes milliseconds); past that, it warns and returns.
pub(crate) async fn released(what: &str, held: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while held() {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(target: "node::server", "{what} is still held 10 s after shutdown");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the node: opens the database, starts (or connects to) the IPFS backend, checks the
/// chain, recovers from any interrupted update, republishes every record, and serves HTTP in
/// a background task.
pub async fn spawn(config: NodeConfig) -> Result<NodeHandle> {
    config.validate()?;
    let deployment =
        px_core::Deployment::load(&config.deployment).map_err(|e| Error::Config(e.to_string()))?;
    std::fs::create_dir_all(&config.data_dir)?;
    let (ipfs, store) = match &config.ipfs {
        IpfsBackend::Remote(url) => (ipfs::Ipfs::new(url)?, None),
        IpfsBackend::Embedded => {
            let mut sc = px_store::StoreConfig::new(config.data_dir.join("store"));
            sc.api = config.store_api;
            sc.sync_writes = config.store_sync_writes;
            let store = px_store::spawn(sc)
                .await
                .map_err(|e| Error::Ipfs(e.to_string()))?;
            // Uploads and batched pins go to the store's router in-process; the small calls
            // and outside clients use its listener.
            (ipfs::Ipfs::embedded(&store)?, Some(store))
        }
    };
    let registrar = config
        .registrar_key
        .as_ref()
        .map(|k| PrivateKeySigner::from_str(k.expose().trim()))
        .transpose()
        .map_err(|_| Error::Config("registrar_key is not a valid private key".into()))?;
    let chain = chain::Chain::new(
        &config.rpc_url,
        &deployment,
        registrar,
        config.owner_cache_ttl,
    )?;
    chain.check().await?;
    let db_path = config.data_dir.join("node.redb");
    let db = tokio::task::spawn_blocking(move || db::Db::open(&db_path))
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;

    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_string();
    let scope = siwe::Scope::from_url(&public_url)
        .map_err(|e| Error::Config(format!("public_url: {e}")))?;
    let settings = node::Settings {
        domain: scope.domain,
        public_url: scope.uri,
        max_upload_bytes: config.max_upload_bytes,
        nonce_ttl: config.nonce_ttl,
        session_ttl: config.session_ttl,
        assignment_ttl: config.assignment_ttl,
        record_lifetime: config.record_lifetime,
        exclusive_backend: config.backend_is_exclusive(),
        idle_timeout: config.idle_timeout,
        min_upload_rate: config.min_upload_rate,
        address_rate: limit::Rate::per_minute(config.address_burst, config.address_rate_per_min),
        key_gen_rate: limit::Rate::per_minute(config.key_gen_per_min, config.key_gen_per_min),
        max_nonces: config.max_nonces,
    };
    let node = Arc::new(Node::new(settings, db, ipfs.clone(), chain));
    // The provider role's pieces are pins the node's own state does not reference.
    let data_dir = config.data_dir.clone();
    let keep = tokio::task::spawn_blocking(move || provider::store::Store::pieces_in(&data_dir))
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    node.recover(&keep).await?;
    let provider = match &config.provider {
        Some(pc) => Some(provider::Running::spawn(
            provider::Provider::start(
                node.clone(),
                ipfs,
                pc,
                &config.rpc_url,
                &deployment,
                &config.data_dir,
            )
            .await?,
        )),
        None => None,
    };

    let home = home::Home::start(node.clone(), &config.home, &deployment, &config.data_dir)
        .await?
        .map(home::Running::spawn);

    let (stop, stopped) = oneshot::channel::<()>();
    let router = http::app_with(node.clone(), &http::Limits::from_config(&config));
    let router = match &config.web_dir {
        Some(dir) => router.merge(web::routes(
            dir,
            &deployment,
            config.web_rpc_url.as_deref(),
        )?),
        None => router,
    };
    let router = match &provider {
        Some(p) => router.merge(provider::routes(p.provider.clone())),
        None => router,
    };
    let router = match &home {
        Some(h) => router.merge(home::routes(h.home.clone())),
        None => router,
    };
    let background = node.clone();
    let interval = config.republish_interval;
    let idle_timeout = config.idle_timeout;
    let task = tokio::spawn(async move {
        let republish = async move {
            let mut full = tokio::time::interval(interval);
            full.tick().await;
            let mut retry = tokio::time::interval(std::time::Duration::from_secs(10));
            loop {
                tokio::select! {
                    _ = full.tick() => background.republish_all().await,
                    _ = retry.tick() => background.republish_dirty().await,
                }
            }
        };
        let serve = serve::serve(listener, router, idle_timeout, async move {
            let _ = stopped.await;
        });
        tokio::select! {
            () = serve => {}
            () = republish => {}
        }
    });
    tracing::info!(target: "node::server", %addr, "px-node listening");
    Ok(NodeHandle {
        addr,
        node,
        stop: Some(stop),
        task: Some(task),
        store,
        provider,
        home,
    })
}

/// Runs the node until SIGINT or SIGTERM.
pub async fn run(config: NodeConfig) -> Result<()> {
    let handle = spawn(config).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!(target: "node::server", "shutting down");
    handle.shutdown().await;
    Ok(())
}
