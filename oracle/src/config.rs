//! Configuration: a TOML file, then environment variables, then command-line flags, each
//! overriding the one before. The Chainlink external adapter conventions (`EA_PORT`, `EA_HOST`,
//! `LOG_LEVEL`, `API_TIMEOUT`, `METRICS_PORT`, `CACHE_MAX_AGE`) are honoured.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use alloy::primitives::{Address, B256};
use clap::Parser;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::ipfs::IpfsFlavor;

/// A secret (private key) that never prints itself.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The external adapter server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdapterConfig {
    /// Serve the external adapter (default true).
    pub enabled: bool,
    /// Listen address (`EA_HOST`, default 127.0.0.1; use 0.0.0.0 to serve a remote node).
    pub host: IpAddr,
    /// Listen port (`EA_PORT`, default 8080; 0 picks a free port).
    pub port: u16,
    /// Separate port for `/metrics` (`METRICS_PORT`; `/metrics` is also on the main port).
    pub metrics_port: Option<u16>,
    /// Milliseconds an answer may take before the request fails with 504 (`API_TIMEOUT`,
    /// default 30000).
    pub api_timeout_ms: u64,
    /// Milliseconds an OK answer is served from cache (`CACHE_MAX_AGE`, default 5000; 0
    /// disables the cache).
    pub cache_max_age_ms: u64,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8080,
            metrics_port: None,
            api_timeout_ms: 30_000,
            cache_max_age_ms: 5_000,
        }
    }
}

/// The IPFS daemon records are read from.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpfsConfig {
    /// RPC API base URL without the API path (default `http://127.0.0.1:5001`).
    pub url: String,
    /// Kind of daemon: `kubo`, `embedded` or `btfs`.
    pub flavor: IpfsFlavor,
    /// Accept IPNS records with only a V1 signature; only allowed with the `btfs` flavor.
    pub allow_v1_only: bool,
    /// Per-call timeout in milliseconds (default 10000).
    pub timeout_ms: u64,
    /// Largest usage record accepted, bytes (default 64 KiB).
    pub max_record_bytes: usize,
}

impl Default for IpfsConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:5001".into(),
            flavor: IpfsFlavor::Kubo,
            allow_v1_only: false,
            timeout_ms: 10_000,
            max_record_bytes: px_core::record::MAX_RECORD_BYTES,
        }
    }
}

/// The chain and the deployment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainConfig {
    /// JSON-RPC URL (default `http://127.0.0.1:8545`).
    pub rpc_url: Option<String>,
    /// The deployment file (`deployments/<chainId>.json`) naming the contracts.
    pub deployment: Option<PathBuf>,
    /// Timeout of every chain JSON-RPC call, milliseconds (`RPC_TIMEOUT`, default 10000). A
    /// call that times out is retried, never taken as an answer.
    pub rpc_timeout_ms: Option<u64>,
}

/// Default of [`ChainConfig::rpc_timeout_ms`].
pub const DEFAULT_RPC_TIMEOUT_MS: u64 = 10_000;

/// The relayer that fulfills `OracleRequest`s itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayerConfig {
    /// Run the relayer (default true when a key is set).
    pub enabled: bool,
    /// Private key of the Operator's authorized sender (`ORACLE_PRIVATE_KEY`).
    pub private_key: Option<Secret>,
    /// The database file (default `px-oracle.redb`).
    pub db: PathBuf,
    /// Confirmations before a request is acted on, and on a fulfill's receipt before the
    /// request counts as done (1: as soon as it is mined; default 3).
    pub confirmations: u64,
    /// How often to poll for new blocks, milliseconds (default 1000).
    pub poll_interval_ms: u64,
    /// Spec (job) ids answered; empty means the deployment's job id.
    pub spec_ids: Vec<B256>,
    /// Requesters answered; empty means the deployment's StorageNFT.
    pub requesters: Vec<Address>,
    /// Gas limit of a fulfill (at least 500000).
    pub gas_limit: u64,
    /// Seconds before an unconfirmed fulfill is replaced with a higher fee (default 30).
    pub stuck_after_secs: u64,
    /// Fee increase of a replacement, percent (at least 10, default 25).
    pub fee_bump_percent: u64,
    /// Upper bound on `maxFeePerGas`, wei (default 500 gwei).
    pub max_fee_per_gas: u128,
    /// Requests worked on at once (default 32).
    pub concurrency: usize,
    /// Stop retrying a transient failure this many seconds before the request expires and
    /// answer `IPFS_UNAVAILABLE` instead (default 30).
    pub expiry_margin_secs: u64,
    /// Largest block range of one `eth_getLogs` (default 1000).
    pub max_log_range: u64,
}

impl Default for RelayerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            private_key: None,
            db: PathBuf::from("px-oracle.redb"),
            confirmations: 3,
            poll_interval_ms: 1000,
            spec_ids: Vec::new(),
            requesters: Vec::new(),
            gas_limit: 500_000,
            stuck_after_secs: 30,
            fee_bump_percent: 25,
            max_fee_per_gas: 500_000_000_000,
            concurrency: 32,
            expiry_margin_secs: 30,
            max_log_range: 1000,
        }
    }
}

/// Everything the oracle needs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Log filter (`LOG_LEVEL`, default `info`).
    pub log_level: Option<String>,
    /// The external adapter.
    pub adapter: AdapterConfig,
    /// The IPFS daemon.
    pub ipfs: IpfsConfig,
    /// The chain.
    pub chain: ChainConfig,
    /// The relayer.
    pub relayer: RelayerConfig,
}

/// Command-line flags; each also reads the environment variable named in its help.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "px-oracle",
    version,
    about = "PX storage oracle: Chainlink external adapter and relayer"
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, short, env = "PX_ORACLE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `oracle=debug`.
    #[arg(long, env = "LOG_LEVEL")]
    pub log_level: Option<String>,
    /// External adapter listen address.
    #[arg(long, env = "EA_HOST")]
    pub host: Option<IpAddr>,
    /// External adapter port.
    #[arg(long, env = "EA_PORT")]
    pub port: Option<u16>,
    /// Separate metrics port.
    #[arg(long, env = "METRICS_PORT")]
    pub metrics_port: Option<u16>,
    /// Answer timeout, milliseconds.
    #[arg(long, env = "API_TIMEOUT")]
    pub api_timeout: Option<u64>,
    /// Cache lifetime of OK answers, milliseconds (0: off).
    #[arg(long, env = "CACHE_MAX_AGE")]
    pub cache_max_age: Option<u64>,
    /// Chain JSON-RPC URL.
    #[arg(long, env = "RPC_URL")]
    pub rpc_url: Option<String>,
    /// Timeout of every chain RPC call, milliseconds.
    #[arg(long, env = "RPC_TIMEOUT")]
    pub rpc_timeout: Option<u64>,
    /// Deployment file.
    #[arg(long, env = "DEPLOYMENT")]
    pub deployment: Option<PathBuf>,
    /// IPFS RPC API base URL.
    #[arg(long, env = "IPFS_API_URL")]
    pub ipfs_url: Option<String>,
    /// IPFS daemon kind: kubo, embedded, btfs.
    #[arg(long, env = "IPFS_FLAVOR")]
    pub ipfs_flavor: Option<IpfsFlavor>,
    /// Accept V1-only IPNS records (BTFS flavor only).
    #[arg(long, env = "IPFS_ALLOW_V1_ONLY")]
    pub allow_v1_only: Option<bool>,
    /// Private key of the Operator's authorized sender.
    #[arg(long, env = "ORACLE_PRIVATE_KEY", hide_env_values = true)]
    pub private_key: Option<String>,
    /// Relayer database file.
    #[arg(long, env = "RELAYER_DB")]
    pub db: Option<PathBuf>,
    /// Confirmations before acting on a request.
    #[arg(long, env = "CONFIRMATIONS")]
    pub confirmations: Option<u64>,
    /// Poll interval, milliseconds.
    #[arg(long, env = "POLL_INTERVAL")]
    pub poll_interval: Option<u64>,
    /// Do not run the relayer (external adapter only).
    #[arg(long)]
    pub no_relayer: bool,
    /// Do not serve the external adapter (relayer only).
    #[arg(long)]
    pub no_adapter: bool,
}

impl Config {
    /// Parses a TOML configuration.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Config(e.to_string()))
    }

    /// Loads the file named by `cli` (if any) and applies the environment and flags.
    pub fn load(cli: &Cli) -> Result<Self> {
        let mut config = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
                Self::from_toml(&text)?
            }
            None => Self::default(),
        };
        config.apply(cli);
        config.validate()?;
        Ok(config)
    }

    /// Applies flags (and the environment, which clap has already merged into them).
    pub fn apply(&mut self, cli: &Cli) {
        fn set<T: Clone>(dst: &mut T, src: &Option<T>) {
            if let Some(v) = src {
                *dst = v.clone();
            }
        }
        if cli.log_level.is_some() {
            self.log_level.clone_from(&cli.log_level);
        }
        set(&mut self.adapter.host, &cli.host);
        set(&mut self.adapter.port, &cli.port);
        if cli.metrics_port.is_some() {
            self.adapter.metrics_port = cli.metrics_port;
        }
        set(&mut self.adapter.api_timeout_ms, &cli.api_timeout);
        set(&mut self.adapter.cache_max_age_ms, &cli.cache_max_age);
        if cli.rpc_url.is_some() {
            self.chain.rpc_url.clone_from(&cli.rpc_url);
        }
        if cli.rpc_timeout.is_some() {
            self.chain.rpc_timeout_ms = cli.rpc_timeout;
        }
        if cli.deployment.is_some() {
            self.chain.deployment.clone_from(&cli.deployment);
        }
        set(&mut self.ipfs.url, &cli.ipfs_url);
        set(&mut self.ipfs.flavor, &cli.ipfs_flavor);
        set(&mut self.ipfs.allow_v1_only, &cli.allow_v1_only);
        if let Some(key) = &cli.private_key {
            self.relayer.private_key = Some(Secret::new(key.clone()));
        }
        set(&mut self.relayer.db, &cli.db);
        set(&mut self.relayer.confirmations, &cli.confirmations);
        set(&mut self.relayer.poll_interval_ms, &cli.poll_interval);
        if cli.no_relayer {
            self.relayer.enabled = false;
        }
        if cli.no_adapter {
            self.adapter.enabled = false;
        }
    }

    /// Checks the values that have rules.
    pub fn validate(&self) -> Result<()> {
        if self.ipfs.allow_v1_only && self.ipfs.flavor != IpfsFlavor::Btfs {
            return Err(Error::Config(
                "V1-only IPNS records can only be enabled with the btfs IPFS flavor".into(),
            ));
        }
        if self.relayer.gas_limit < 500_000 {
            return Err(Error::Config(format!(
                "relayer gas limit {} is below 500000 (the Operator needs 400000 left for the callback)",
                self.relayer.gas_limit
            )));
        }
        if self.relayer.fee_bump_percent < 10 {
            return Err(Error::Config("fee bump must be at least 10 percent".into()));
        }
        if self.relayer.confirmations == 0 {
            return Err(Error::Config("confirmations must be at least 1".into()));
        }
        if self.relayer.concurrency == 0 {
            return Err(Error::Config(
                "relayer concurrency must be at least 1".into(),
            ));
        }
        if self.chain.deployment.is_none() {
            return Err(Error::Config(
                "a deployment file is required (--deployment)".into(),
            ));
        }
        if self.relayer.enabled && self.relayer.private_key.is_none() && !self.adapter.enabled {
            return Err(Error::Config(
                "nothing to run: no relayer key and the adapter is off".into(),
            ));
        }
        Ok(())
    }

    /// The JSON-RPC URL.
    pub fn rpc_url(&self) -> &str {
        self.chain
            .rpc_url
            .as_deref()
            .unwrap_or("http://127.0.0.1:8545")
    }

    /// The timeout of one chain RPC call.
    pub fn rpc_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.chain
                .rpc_timeout_ms
                .unwrap_or(DEFAULT_RPC_TIMEOUT_MS)
                .max(1),
        )
    }

    /// Whether the relayer runs: enabled and a key is set.
    pub fn relayer_active(&self) -> bool {
        self.relayer.enabled && self.relayer.private_key.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags() {
        let mut c = Config::from_toml(
            r#"
            log_level = "debug"
            [adapter]
            port = 9000
            [ipfs]
            url = "http://127.0.0.1:5002"
            flavor = "embedded"
            [chain]
            deployment = "d.json"
            [relayer]
            confirmations = 3
            private_key = "0x01"
            "#,
        )
        .unwrap();
        assert_eq!(c.adapter.port, 9000);
        assert_eq!(c.ipfs.flavor, IpfsFlavor::Embedded);
        assert_eq!(c.relayer.confirmations, 3);
        assert_eq!(
            format!("{:?}", c.relayer.private_key),
            "Some(Secret([redacted]))"
        );
        let cli = Cli::parse_from(["px-oracle", "--port", "9001", "--confirmations", "2"]);
        c.apply(&cli);
        assert_eq!(c.adapter.port, 9001);
        assert_eq!(c.relayer.confirmations, 2);
        assert_eq!(c.ipfs.url, "http://127.0.0.1:5002");
        c.validate().unwrap();
    }

    #[test]
    fn rejects_unsafe_values() {
        let mut c = Config::from_toml("[chain]\ndeployment = \"d.json\"").unwrap();
        c.validate().unwrap();
        c.ipfs.allow_v1_only = true;
        assert!(c.validate().is_err());
        c.ipfs.flavor = IpfsFlavor::Btfs;
        c.validate().unwrap();
        c.relayer.gas_limit = 400_000;
        assert!(c.validate().is_err());
        assert!(Config::from_toml("[adapter]\nunknown = 1").is_err());
    }
}
