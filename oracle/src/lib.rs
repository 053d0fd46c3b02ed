//! # px-oracle
//!
//! The oracle node operators run: it turns a token's signed usage record on IPNS into usage on
//! chain. Two faces share one core:
//!
//! - [`resolver`]: token id -> IPNS name read from StorageNFT -> raw record through the Kubo
//!   RPC API ([`ipfs`]) -> local verification -> usage record -> [`resolver::Answer`] with a
//!   status code for every kind of bad record.
//! - [`relayer`]: watches the Chainlink Operator's `OracleRequest` logs and fulfills them
//!   itself with `fulfillOracleRequest2`, exactly once, surviving restarts and reorgs; its
//!   state lives in redb.
//! - [`adapter`]: a Chainlink external adapter (axum), so a real Chainlink node can use the
//!   same core as a bridge in a direct-request job (see the crate README).
//!
//! [`spawn`] starts what the [`config::Config`] enables and returns a handle; [`run`] does so
//! until SIGINT/SIGTERM. `main.rs` only parses flags and sets up logging.

pub mod adapter;
pub mod config;
mod error;
pub mod ipfs;
pub mod metrics;
pub mod relayer;
pub mod resolver;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use px_core::Deployment;
use px_core::contracts::sync_status;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::Config;
pub use error::{Error, Result};

use crate::adapter::{AdapterState, Health};
use crate::ipfs::KuboRpc;
use crate::metrics::Metrics;
use crate::relayer::db::Db;
use crate::relayer::{Relayer, RelayerSettings};
use crate::resolver::{MemoryFloor, Resolver, ResolverOptions, SequenceFloor};

/// The metric/log label of a status code.
pub fn status_label(status: u8) -> String {
    match status {
        sync_status::OK => "ok",
        sync_status::RECORD_NOT_FOUND => "record_not_found",
        sync_status::BAD_SIGNATURE => "bad_signature",
        sync_status::RECORD_EXPIRED => "record_expired",
        sync_status::V1_ONLY => "v1_only",
        sync_status::BAD_USAGE_RECORD => "bad_usage_record",
        sync_status::WRONG_BINDING => "wrong_binding",
        sync_status::IPFS_UNAVAILABLE => "ipfs_unavailable",
        sync_status::SEQUENCE_REGRESSED => "sequence_regressed",
        _ => return format!("status_{status}"),
    }
    .to_string()
}

/// A running oracle.
#[derive(Debug)]
pub struct OracleHandle {
    adapter_addr: Option<SocketAddr>,
    ops_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    metrics: Metrics,
    relayer: Option<Arc<Relayer>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl OracleHandle {
    /// Where the external adapter listens, if it runs.
    pub fn adapter_addr(&self) -> Option<SocketAddr> {
        self.adapter_addr
    }

    /// Where `/health` and `/metrics` are served in relayer-only mode (the adapter's host and
    /// port; with the adapter on, its own router serves them).
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops_addr
    }

    /// Where the separate metrics server listens, if configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The relayer, if it runs.
    pub fn relayer(&self) -> Option<&Arc<Relayer>> {
        self.relayer.as_ref()
    }

    /// Stops everything gracefully: servers finish in-flight requests, the relayer stops
    /// (its progress is durable).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Connects to the chain named by `config` and checks it is the deployment's chain.
pub async fn connect(config: &Config) -> Result<(DynProvider, Deployment)> {
    let path = config
        .chain
        .deployment
        .as_ref()
        .ok_or_else(|| Error::Config("a deployment file is required".into()))?;
    let deployment = Deployment::load(path).map_err(|e| Error::Config(e.to_string()))?;
    let url = config
        .rpc_url()
        .parse()
        .map_err(|e| Error::Config(format!("invalid RPC URL: {e}")))?;
    // alloy's default HTTP client has no timeout: a hung backend would hang the relayer.
    let timeout = config.rpc_timeout();
    let client = alloy::transports::http::reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
    let provider = ProviderBuilder::new()
        .disable_recommended_fillers()
        .connect_reqwest(client, url)
        .erased();
    let chain_id = provider
        .get_chain_id()
        .await
        .map_err(|e| Error::Rpc(e.to_string()))?;
    if chain_id != deployment.chain_id {
        return Err(Error::Config(format!(
            "RPC is chain {chain_id}, the deployment is for chain {}",
            deployment.chain_id
        )));
    }
    Ok((provider, deployment))
}

async fn serve(listener: TcpListener, router: axum::Router, mut stop: watch::Receiver<bool>) {
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(target: "oracle::server", error = %e, "server failed");
    }
}

/// Runs `f` until it succeeds, fails for good, or `STARTUP_ATTEMPTS` transient (chain RPC)
/// failures in a row: a flaky RPC at start is not a reason to refuse.
async fn retry_transient<T, F, Fut>(what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    const STARTUP_ATTEMPTS: u32 = 8;
    let mut wait = Duration::from_millis(250);
    let mut attempt = 1;
    loop {
        match f().await {
            Err(Error::Rpc(e)) if attempt < STARTUP_ATTEMPTS => {
                tracing::warn!(target: "oracle::server", error = %e, attempt, "{what} failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Starts the external adapter and/or the relayer as configured.
pub async fn spawn(config: Config) -> Result<OracleHandle> {
    let (provider, deployment) =
        retry_transient("connecting to the chain", || connect(&config)).await?;
    let ipfs = KuboRpc::new(
        &config.ipfs.url,
        config.ipfs.flavor,
        Duration::from_millis(config.ipfs.timeout_ms),
    )
    .map_err(|e| Error::Config(e.to_string()))?;
    // The relayer's database also keeps the IPNS sequence floor across restarts.
    let db = if config.relayer_active() {
        let db_path = config.relayer.db.clone();
        let (chain_id, operator) = (deployment.chain_id, deployment.operator);
        Some(
            tokio::task::spawn_blocking(move || Db::open(&db_path, chain_id, operator))
                .await
                .map_err(|e| Error::Db(e.to_string()))??,
        )
    } else {
        None
    };
    let floor: Arc<dyn SequenceFloor> = match &db {
        Some(db) => Arc::new(db.clone()),
        None => Arc::new(MemoryFloor::default()),
    };
    let resolver = Resolver::new(
        provider.clone(),
        deployment.chain_id,
        deployment.storage_nft,
        Arc::new(ipfs),
        ResolverOptions {
            allow_v1_only: config.ipfs.allow_v1_only,
            max_record_bytes: config.ipfs.max_record_bytes,
        },
        floor,
    );
    let metrics = Metrics::new();
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();

    let health = Health::new(
        provider.clone(),
        resolver.clone(),
        Duration::from_millis(config.adapter.api_timeout_ms.clamp(100, 5_000)),
    );
    let mut adapter_addr = None;
    let mut metrics_addr = None;
    if config.adapter.enabled {
        let state = AdapterState::new(
            resolver.clone(),
            metrics.clone(),
            Duration::from_millis(config.adapter.api_timeout_ms),
            Duration::from_millis(config.adapter.cache_max_age_ms),
        );
        let listener =
            TcpListener::bind(SocketAddr::new(config.adapter.host, config.adapter.port)).await?;
        adapter_addr = Some(listener.local_addr()?);
        let router = adapter::app(state.with_health(health.clone()))
            .layer(tower_http::trace::TraceLayer::new_for_http());
        tasks.push(tokio::spawn(serve(listener, router, stopped.clone())));
        if let Some(port) = config.adapter.metrics_port {
            let listener = TcpListener::bind(SocketAddr::new(config.adapter.host, port)).await?;
            metrics_addr = Some(listener.local_addr()?);
            tasks.push(tokio::spawn(serve(
                listener,
                adapter::metrics_app(metrics.clone()),
                stopped.clone(),
            )));
        }
        tracing::info!(target: "oracle::adapter", addr = ?adapter_addr, metrics = ?metrics_addr, "external adapter listening");
    }

    let mut relayer = None;
    let mut ops_addr = None;
    if let Some(db) = db {
        let key = config
            .relayer
            .private_key
            .as_ref()
            .expect("checked by relayer_active");
        let signer: PrivateKeySigner = key
            .expose()
            .trim()
            .parse()
            .map_err(|_| Error::Config("the relayer private key is invalid".into()))?;
        let r = &config.relayer;
        let settings = RelayerSettings {
            chain_id: deployment.chain_id,
            operator: deployment.operator,
            start_block: deployment.start_block,
            spec_ids: if r.spec_ids.is_empty() {
                vec![deployment.job_id]
            } else {
                r.spec_ids.clone()
            },
            requesters: if r.requesters.is_empty() {
                vec![deployment.storage_nft]
            } else {
                r.requesters.clone()
            },
            confirmations: r.confirmations,
            poll_interval: Duration::from_millis(r.poll_interval_ms.max(10)),
            gas_limit: r.gas_limit,
            stuck_after: Duration::from_secs(r.stuck_after_secs),
            fee_bump_percent: r.fee_bump_percent,
            max_fee_per_gas: r.max_fee_per_gas,
            concurrency: r.concurrency,
            expiry_margin: Duration::from_secs(r.expiry_margin_secs),
            max_log_range: r.max_log_range,
        };
        let rel = Arc::new(Relayer::new(
            provider.clone(),
            signer,
            db,
            resolver.clone(),
            metrics.clone(),
            settings,
        ));
        // Misconfiguration is loud: an unauthorized or unfunded key refuses to start.
        if let Err(e) = retry_transient("startup checks", || rel.preflight()).await {
            let _ = stop.send(true);
            for task in tasks {
                let _ = task.await;
            }
            tracing::error!(target: "oracle::relayer", error = %e, "relayer refuses to start");
            return Err(e);
        }
        tasks.push(tokio::spawn(Arc::clone(&rel).run(stopped.clone())));
        relayer = Some(rel);
        if !config.adapter.enabled {
            // Relayer only: the adapter's address serves `/health` and `/metrics`.
            let listener =
                TcpListener::bind(SocketAddr::new(config.adapter.host, config.adapter.port))
                    .await?;
            let addr = listener.local_addr()?;
            ops_addr = Some(addr);
            tasks.push(tokio::spawn(serve(
                listener,
                adapter::ops_app(health.clone(), metrics.clone()),
                stopped.clone(),
            )));
            tracing::info!(target: "oracle::relayer", %addr, "health and metrics listening");
        }
    }

    Ok(OracleHandle {
        adapter_addr,
        ops_addr,
        metrics_addr,
        metrics,
        relayer,
        stop,
        tasks,
    })
}

/// Runs until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run(config: Config) -> Result<()> {
    let handle = spawn(config).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!(target: "oracle::server", "shutting down");
    handle.shutdown().await;
    Ok(())
}
