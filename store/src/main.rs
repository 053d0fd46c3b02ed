//! `px-store daemon --api 127.0.0.1:5001 --repo <dir>`: serves the Kubo RPC API subset.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use px_store::{DEFAULT_API, DEFAULT_MAX_REQUEST_BYTES, StoreConfig};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "px-store",
    version,
    about = "Embedded content store speaking the Kubo RPC API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the RPC API server.
    Daemon {
        /// Listen address of the RPC API.
        #[arg(long, env = "PX_STORE_API", default_value = DEFAULT_API)]
        api: SocketAddr,
        /// Repo directory (created if missing).
        #[arg(long, env = "PX_STORE_REPO")]
        repo: PathBuf,
        /// Largest accepted request body, in bytes.
        #[arg(long, env = "PX_STORE_MAX_REQUEST_BYTES", default_value_t = DEFAULT_MAX_REQUEST_BYTES)]
        max_request_bytes: u64,
        /// Do not fsync blocks before committing them (faster, not power-loss safe).
        #[arg(long, env = "PX_STORE_NO_SYNC")]
        no_sync: bool,
        /// Accept IPNS records with only a V1 signature (BTFS compatibility).
        #[arg(long, env = "PX_STORE_ALLOW_V1_RECORDS")]
        allow_v1_records: bool,
    },
}

fn main() -> eyre::Result<()> {
    px_store::tune_allocator();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(daemon())
}

async fn daemon() -> eyre::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Daemon {
            api,
            repo,
            max_request_bytes,
            no_sync,
            allow_v1_records,
        } => {
            let mut config = StoreConfig::new(repo);
            config.api = api;
            config.max_request_bytes = max_request_bytes;
            config.sync_writes = !no_sync;
            config.allow_v1_only_records = allow_v1_records;
            px_store::run(config).await?;
        }
    }
    Ok(())
}
