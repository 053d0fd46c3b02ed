//! px-store: an embedded content store that speaks the subset of the Kubo RPC API that PX
//! storage uses, so the same client code runs against it, a real Kubo daemon or BTFS.
//!
//! # Flow
//! - [`importer`] turns a byte stream into a UnixFS DAG with exactly Kubo's CIDs (CIDv0 or
//!   CIDv1, size-262144 chunks, balanced 174-link layout). It is usable on its own, e.g. by
//!   the SDK to compute a CID client side.
//! - [`repo`] keeps blocks (appended to per-import pack files, indexed and pinned in redb in
//!   one transaction, verified on every read; see [`blockstore`]), recursive pins and IPNS
//!   records (redb) and ed25519 keys (0600 files).
//! - [`ipns`] creates and verifies IPNS records per the specification, standalone so that the
//!   oracle can verify a record fetched from any daemon.
//! - [`api`] maps `POST /api/v0/<command>` to those, with Kubo's JSON shapes and errors
//!   ([`Error`] renders as `{"Message","Code","Type":"error"}` with HTTP 400 or 500).
//!
//! # Embedding
//! ```no_run
//! # async fn demo() -> px_store::Result<()> {
//! let mut config = px_store::StoreConfig::new("/tmp/px-repo");
//! config.api = "127.0.0.1:0".parse().unwrap();
//! let store = px_store::spawn(config).await?;
//! println!("Kubo RPC at {}", store.api_url());
//! store.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! A process embedding the store can also send Kubo RPC requests straight to its router
//! ([`StoreHandle::router`]), without a socket, and should call [`tune_allocator`] at start.

pub mod api;
pub mod blockstore;
mod error;
pub mod keystore;
pub mod repo;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use api::app;
pub use error::{Error, ErrorBody, Result};
/// The UnixFS importer, DAG-PB codec and IPNS records live in `px-core` (the protocol crate), so
/// clients compute CIDs and verify records without this crate; re-exported here for the store's
/// own modules and its users.
pub use px_core::{dagpb, importer, ipns};

/// Default API address, as Kubo's.
pub const DEFAULT_API: &str = "127.0.0.1:5001";
/// Default request body limit: 64 GiB.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 64 << 30;

/// Store configuration.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Address the RPC API listens on (`127.0.0.1:0` picks a free port).
    pub api: SocketAddr,
    /// Repo directory (created if missing).
    pub repo: PathBuf,
    /// Largest accepted request body in bytes; larger requests fail with HTTP 400 and store
    /// nothing.
    pub max_request_bytes: u64,
    /// Fsync blocks before they are committed and pinned (default true). Without it a killed
    /// process still never exposes a partial block, but an OS crash or power loss can lose
    /// recently added blocks (which then fail verification when read: reported as corrupt,
    /// never served as wrong data).
    pub sync_writes: bool,
    /// Accept IPNS records that carry only a V1 signature (BTFS mode). The specification
    /// calls them invalid; default false.
    pub allow_v1_only_records: bool,
}

impl StoreConfig {
    /// Defaults: API on 127.0.0.1:5001, 64 GiB body limit, synced writes, V2 records only.
    pub fn new(repo: impl Into<PathBuf>) -> Self {
        Self {
            api: DEFAULT_API.parse().expect("valid default address"),
            repo: repo.into(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            sync_writes: true,
            allow_v1_only_records: false,
        }
    }
}

/// Shared server state: the opened repo and the configuration.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    repo: repo::Repo,
    config: StoreConfig,
}

impl AppState {
    /// Opens the repo named by `config` (blocking I/O; call from a blocking context or at
    /// startup).
    pub fn open(config: StoreConfig) -> Result<Self> {
        let repo = repo::Repo::open(&config.repo, config.sync_writes)?;
        Ok(Self {
            inner: Arc::new(Shared { repo, config }),
        })
    }

    /// The repo.
    pub fn repo(&self) -> &repo::Repo {
        &self.inner.repo
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }
}

/// Tunes glibc's allocator for streaming large bodies; call it once at the start of a process
/// that serves or embeds the store (the `px-store` and `px-node` binaries do).
///
/// An `add` keeps every body frame (hyper's receive buffers) until its block is written, so
/// hundreds of KiB are allocated and freed per MiB uploaded. With glibc's defaults those
/// buffers are mapped and unmapped, or trimmed off the heap and faulted back in, over and
/// over: page faults and unmaps cost about 15% of the add's CPU (`benches/throughput.rs`).
/// Serving every allocation up to 4 MiB from the heap and keeping up to 64 MiB of free heap
/// makes the buffers reuse resident memory; peak RSS is unchanged (`benches/rss.rs`).
/// Does nothing on other C libraries.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before the runtime starts
    // threads in the binaries, and glibc serializes it against concurrent allocation anyway.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// A running server. Dropping it stops the server (without waiting); [`StoreHandle::shutdown`]
/// stops it gracefully and waits until the repo is released.
#[derive(Debug)]
pub struct StoreHandle {
    addr: SocketAddr,
    state: AppState,
    router: axum::Router,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl StoreHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The opened repo and configuration the server uses (for in-process inspection).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The server's router, for sending Kubo RPC requests in-process (no socket, body frames
    /// passed through without a copy). Requests sent this way are not awaited by
    /// [`StoreHandle::shutdown`]: finish them first.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// The API base URL, e.g. `http://127.0.0.1:5001` (clients append `/api/v0`).
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, lets in-flight requests finish and waits for the server
    /// to exit.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for StoreHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Opens the repo, binds `config.api` and serves the RPC API in a background task.
pub async fn spawn(config: StoreConfig) -> Result<StoreHandle> {
    let api = config.api;
    let state = tokio::task::spawn_blocking(move || AppState::open(config))
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    let listener = TcpListener::bind(api).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let router = app(state.clone());
    let served = router.clone();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, served).with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(target: "store::server", error = %e, "server failed");
        }
    });
    tracing::info!(target: "store::server", %addr, "px-store listening");
    Ok(StoreHandle {
        addr,
        state,
        router,
        stop: Some(stop),
        task: Some(task),
    })
}

/// Runs the store until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run(config: StoreConfig) -> Result<()> {
    let handle = spawn(config).await?;
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!(target: "store::server", "shutting down");
    handle.shutdown().await;
    Ok(())
}
