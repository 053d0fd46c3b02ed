//! Node configuration: a TOML file, then `PX_NODE_*` environment variables, then command-line
//! flags, each overriding the one before. Every field has a documented default except the
//! deployment file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::error::{Error, Result};

/// A secret value (a private key) that never prints itself.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where the node keeps bytes and IPNS keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpfsBackend {
    /// The embedded `px-store`, started in-process with its repo in `<data_dir>/store`.
    Embedded,
    /// A running Kubo (or BTFS) RPC API, e.g. `http://127.0.0.1:5001` (`/api/v0` is appended
    /// unless the URL carries a path, e.g. `http://127.0.0.1:5001/api/v1` for BTFS).
    Remote(String),
}

/// Complete node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// HTTP listen address (default `127.0.0.1:7070`; port 0 picks a free port).
    pub listen: SocketAddr,
    /// Chain JSON-RPC URL (default `http://127.0.0.1:8545`).
    pub rpc_url: String,
    /// Deployment file written by the deploy script (`deployments/<chainId>.json`). Required.
    pub deployment: PathBuf,
    /// IPFS backend (default: embedded).
    pub ipfs: IpfsBackend,
    /// Private key (hex) of the account holding REGISTRAR_ROLE: signs key assignments and
    /// sends `registerKey`. Without it those two endpoints answer 503.
    pub registrar_key: Option<Secret>,
    /// Data directory: `node.redb` (all node state) and, when embedded, `store/`
    /// (default `./px-node-data`).
    pub data_dir: PathBuf,
    /// Public base URL of the node, e.g. `https://node.example`: its authority is the SIWE
    /// `domain`, and the message `URI` must start with it (default `http://<listen address>`).
    pub public_url: Option<String>,
    /// Largest accepted upload in bytes (default 10 GiB).
    pub max_upload_bytes: u64,
    /// How long a sign-in nonce stays valid (default 5 min).
    pub nonce_ttl: Duration,
    /// How long a session lasts (default 1 h).
    pub session_ttl: Duration,
    /// How long an `ownerOf` answer is cached (default 15 s; capped at 60 s so a transfer
    /// takes effect within a minute).
    pub owner_cache_ttl: Duration,
    /// Validity of a signed key assignment (default 1 h).
    pub assignment_ttl: Duration,
    /// Lifetime of published IPNS records (default 48 h).
    pub record_lifetime: Duration,
    /// How often all records are republished (default 4 h; they are also republished at
    /// start).
    pub republish_interval: Duration,
    /// Embedded store only: fsync blocks before committing them (default true).
    pub store_sync_writes: bool,
    /// Embedded store only: the address its Kubo RPC API listens on (default `127.0.0.1:0`,
    /// any free port). The node sends uploads and batched pins to the store in-process and its
    /// small calls (keys, names, reads) to this listener; operators and benchmarks can reach
    /// the store directly here. Keep it on loopback: the API has no authentication.
    pub store_api: SocketAddr,
    /// Whether every recursive pin of the IPFS backend is the node's (default: true for the
    /// embedded store, false for a remote one). Uploads then pin in their `add` without the
    /// node computing the CID first, and start-up recovery after a crash mid-upload unpins
    /// every pin the node's state does not reference. Without it the node hashes each upload
    /// as it streams to journal its CID before the backend pins, and never touches pins it
    /// did not take.
    pub exclusive_backend: Option<bool>,
    /// Longest time a request other than an upload may take before the node answers 503
    /// (default 30 s). The work of an update that started goes on in the background.
    pub request_timeout: Duration,
    /// Longest silence of a client: reading a request's headers, an idle keep-alive
    /// connection, and the gap between two pieces of an upload body (default 30 s).
    pub idle_timeout: Duration,
    /// Slowest average upload rate accepted, in bytes per second (default 64 KiB/s): an upload
    /// of `n` bytes must finish within `idle_timeout + n / min_upload_rate`, so a trickled body
    /// cannot hold its quota reservation for long. 0 disables the deadline (the idle timeout
    /// still applies).
    pub min_upload_rate: u64,
    /// Requests per minute from one IP address to the routes that need no session
    /// (`/health`, `/metrics`, `/openapi.json`, `/v1/auth/nonce`, `/v1/auth/login`), after a
    /// burst of `ip_burst` (default 600 per minute, burst 60). A burst of 0 disables it.
    pub ip_rate_per_min: u32,
    /// See `ip_rate_per_min` (default 60).
    pub ip_burst: u32,
    /// Logins and key assignments per minute of one address, after a burst of
    /// `address_burst` (default 20 per minute, burst 10). A burst of 0 disables it.
    pub address_rate_per_min: u32,
    /// See `address_rate_per_min` (default 10).
    pub address_burst: u32,
    /// IPFS keys the node creates for key assignments per minute, over all addresses, after a
    /// burst of as many (default 60).
    pub key_gen_per_min: u32,
    /// Most sign-in nonces outstanding at once (default 100,000, about 10 MiB).
    pub max_nonces: usize,
    /// Origins allowed to call the API from a browser (CORS), e.g. `https://app.example`;
    /// `*` allows any. Default: none (no CORS headers).
    pub cors_origins: Vec<String>,
    /// Directory of the built web dApp (`web/dist`) to serve at `/` beside the API
    /// ([`crate::web`]). Default: none (API only).
    pub web_dir: Option<PathBuf>,
    /// Chain RPC URL the dApp offers wallets that do not know the chain (in
    /// `/dapp-config.json`). Default: none.
    pub web_rpc_url: Option<String>,
    /// The provider role ([`crate::provider`]), on with a `[provider]` section or
    /// `--role provider`. Default: off.
    pub provider: Option<crate::provider::ProviderConfig>,
    /// The home role of the provider network ([`crate::home`]; `[home]` in the file): on by
    /// default when the node has a registrar key and the deployment a market.
    pub home: crate::home::HomeConfig,
}

impl NodeConfig {
    /// A configuration with every default and the given deployment file.
    pub fn new(deployment: impl Into<PathBuf>) -> Self {
        Self {
            listen: "127.0.0.1:7070".parse().expect("valid default address"),
            rpc_url: "http://127.0.0.1:8545".into(),
            deployment: deployment.into(),
            ipfs: IpfsBackend::Embedded,
            registrar_key: None,
            data_dir: PathBuf::from("px-node-data"),
            public_url: None,
            max_upload_bytes: 10 << 30,
            nonce_ttl: Duration::from_secs(300),
            session_ttl: Duration::from_secs(3600),
            owner_cache_ttl: Duration::from_secs(15),
            assignment_ttl: Duration::from_secs(3600),
            record_lifetime: Duration::from_secs(48 * 3600),
            republish_interval: Duration::from_secs(4 * 3600),
            store_sync_writes: true,
            store_api: "127.0.0.1:0".parse().expect("valid default address"),
            exclusive_backend: None,
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            min_upload_rate: 64 << 10,
            ip_rate_per_min: 600,
            ip_burst: 60,
            address_rate_per_min: 20,
            address_burst: 10,
            key_gen_per_min: 60,
            max_nonces: 100_000,
            cors_origins: Vec::new(),
            web_dir: None,
            web_rpc_url: None,
            provider: None,
            home: crate::home::HomeConfig::default(),
        }
    }

    /// [`NodeConfig::exclusive_backend`] with its default applied.
    pub fn backend_is_exclusive(&self) -> bool {
        self.exclusive_backend
            .unwrap_or(self.ipfs == IpfsBackend::Embedded)
    }

    /// Loads the configuration from the command line (and the file and environment it names).
    pub fn from_args() -> Result<Self> {
        Self::from_cli(Cli::parse())
    }

    /// Merges a parsed command line (flags and environment) over its config file.
    pub fn from_cli(cli: Cli) -> Result<Self> {
        let file = match &cli.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let deployment = cli.deployment.or(file.deployment).ok_or_else(|| {
            Error::Config("the deployment file is required (--deployment)".into())
        })?;
        let mut c = Self::new(deployment);
        macro_rules! merge {
            ($field:ident) => {
                if let Some(v) = cli.$field.or(file.$field) {
                    c.$field = v;
                }
            };
        }
        merge!(listen);
        merge!(rpc_url);
        merge!(data_dir);
        merge!(max_upload_bytes);
        merge!(store_sync_writes);
        merge!(store_api);
        merge!(min_upload_rate);
        merge!(ip_rate_per_min);
        merge!(ip_burst);
        merge!(address_rate_per_min);
        merge!(address_burst);
        merge!(key_gen_per_min);
        merge!(max_nonces);
        merge!(cors_origins);
        c.exclusive_backend = cli.exclusive_backend.or(file.exclusive_backend);
        c.public_url = cli.public_url.or(file.public_url);
        c.web_dir = cli.web_dir.or(file.web_dir);
        c.web_rpc_url = cli.web_rpc_url.or(file.web_rpc_url);
        c.registrar_key = cli.registrar_key.map(Secret).or(file.registrar_key);
        c.provider = crate::provider::ProviderConfig::merge(
            cli.role.as_deref(),
            cli.provider_key,
            cli.provider_poll_ms,
            file.provider,
        )?;
        c.home = file.home.unwrap_or_default();
        if let Some(r) = cli.redundancy {
            c.home.redundancy = r
                .parse()
                .map_err(|e| Error::Config(format!("--redundancy: {e}")))?;
        }
        if let Some(ms) = cli.home_poll_ms {
            c.home.poll_ms = ms;
        }
        if let Some(ttl) = cli.deal_periods {
            c.home.deal_periods = ttl;
        }
        if let Some(url) = cli.ipfs_url.or(file.ipfs_url) {
            c.ipfs = IpfsBackend::Remote(url);
        }
        let secs = |v: Option<u64>, f: Option<u64>| v.or(f).map(Duration::from_secs);
        if let Some(d) = secs(cli.nonce_ttl_secs, file.nonce_ttl_secs) {
            c.nonce_ttl = d;
        }
        if let Some(d) = secs(cli.session_ttl_secs, file.session_ttl_secs) {
            c.session_ttl = d;
        }
        if let Some(d) = secs(cli.owner_cache_secs, file.owner_cache_secs) {
            c.owner_cache_ttl = d;
        }
        if let Some(d) = secs(cli.assignment_ttl_secs, file.assignment_ttl_secs) {
            c.assignment_ttl = d;
        }
        if let Some(d) = secs(cli.record_lifetime_secs, file.record_lifetime_secs) {
            c.record_lifetime = d;
        }
        if let Some(d) = secs(cli.republish_interval_secs, file.republish_interval_secs) {
            c.republish_interval = d;
        }
        if let Some(d) = secs(cli.request_timeout_secs, file.request_timeout_secs) {
            c.request_timeout = d;
        }
        if let Some(d) = secs(cli.idle_timeout_secs, file.idle_timeout_secs) {
            c.idle_timeout = d;
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks bounds that the rest of the node relies on.
    pub fn validate(&self) -> Result<()> {
        if self.owner_cache_ttl > Duration::from_secs(60) {
            return Err(Error::Config(
                "owner_cache_secs must be at most 60 (a transfer must take effect within a minute)"
                    .into(),
            ));
        }
        if self.nonce_ttl.is_zero() || self.session_ttl.is_zero() {
            return Err(Error::Config(
                "nonce and session lifetimes must be positive".into(),
            ));
        }
        if self.request_timeout.is_zero() || self.idle_timeout.is_zero() {
            return Err(Error::Config(
                "request_timeout_secs and idle_timeout_secs must be positive".into(),
            ));
        }
        if self.max_nonces == 0 {
            return Err(Error::Config("max_nonces must be positive".into()));
        }
        if self.record_lifetime < Duration::from_secs(60) {
            return Err(Error::Config(
                "record_lifetime_secs must be at least 60".into(),
            ));
        }
        Ok(())
    }
}

/// The config file (TOML). Every key is optional and named like the flag, with `_`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    rpc_url: Option<String>,
    deployment: Option<PathBuf>,
    ipfs_url: Option<String>,
    registrar_key: Option<Secret>,
    data_dir: Option<PathBuf>,
    public_url: Option<String>,
    max_upload_bytes: Option<u64>,
    nonce_ttl_secs: Option<u64>,
    session_ttl_secs: Option<u64>,
    owner_cache_secs: Option<u64>,
    assignment_ttl_secs: Option<u64>,
    record_lifetime_secs: Option<u64>,
    republish_interval_secs: Option<u64>,
    store_sync_writes: Option<bool>,
    store_api: Option<SocketAddr>,
    exclusive_backend: Option<bool>,
    request_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    min_upload_rate: Option<u64>,
    ip_rate_per_min: Option<u32>,
    ip_burst: Option<u32>,
    address_rate_per_min: Option<u32>,
    address_burst: Option<u32>,
    key_gen_per_min: Option<u32>,
    max_nonces: Option<usize>,
    cors_origins: Option<Vec<String>>,
    web_dir: Option<PathBuf>,
    web_rpc_url: Option<String>,
    provider: Option<crate::provider::ProviderConfig>,
    home: Option<crate::home::HomeConfig>,
}

impl FileConfig {
    fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }
}

/// Command line of `px-node`. Each flag can also be set by the environment variable shown.
#[derive(Debug, Default, Parser)]
#[command(name = "px-node", version, about = "PX storage node: upload gateway")]
pub struct Cli {
    /// TOML config file (keys as the flags below, with `_`).
    #[arg(long, env = "PX_NODE_CONFIG")]
    pub config: Option<PathBuf>,
    /// HTTP listen address [default: 127.0.0.1:7070].
    #[arg(long, env = "PX_NODE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Chain JSON-RPC URL [default: http://127.0.0.1:8545].
    #[arg(long, env = "PX_NODE_RPC_URL")]
    pub rpc_url: Option<String>,
    /// Deployment JSON file (required here or in the config file).
    #[arg(long, env = "PX_NODE_DEPLOYMENT")]
    pub deployment: Option<PathBuf>,
    /// Kubo/BTFS RPC URL; without it the embedded store runs in-process.
    #[arg(long, env = "PX_NODE_IPFS_URL")]
    pub ipfs_url: Option<String>,
    /// Registrar private key (hex). Prefer the environment variable or the file.
    #[arg(long, env = "PX_NODE_REGISTRAR_KEY", hide_env_values = true)]
    pub registrar_key: Option<String>,
    /// Data directory [default: ./px-node-data].
    #[arg(long, env = "PX_NODE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Public base URL (SIWE domain and URI) [default: http:// and the listen address].
    #[arg(long, env = "PX_NODE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Largest upload in bytes [default: 10 GiB].
    #[arg(long, env = "PX_NODE_MAX_UPLOAD_BYTES")]
    pub max_upload_bytes: Option<u64>,
    /// Sign-in nonce lifetime in seconds [default: 300].
    #[arg(long, env = "PX_NODE_NONCE_TTL_SECS")]
    pub nonce_ttl_secs: Option<u64>,
    /// Session lifetime in seconds [default: 3600].
    #[arg(long, env = "PX_NODE_SESSION_TTL_SECS")]
    pub session_ttl_secs: Option<u64>,
    /// ownerOf cache in seconds, at most 60 [default: 15].
    #[arg(long, env = "PX_NODE_OWNER_CACHE_SECS")]
    pub owner_cache_secs: Option<u64>,
    /// Key assignment validity in seconds [default: 3600].
    #[arg(long, env = "PX_NODE_ASSIGNMENT_TTL_SECS")]
    pub assignment_ttl_secs: Option<u64>,
    /// IPNS record lifetime in seconds [default: 172800].
    #[arg(long, env = "PX_NODE_RECORD_LIFETIME_SECS")]
    pub record_lifetime_secs: Option<u64>,
    /// Republish interval in seconds [default: 14400].
    #[arg(long, env = "PX_NODE_REPUBLISH_INTERVAL_SECS")]
    pub republish_interval_secs: Option<u64>,
    /// Embedded store: fsync blocks before commit [default: true].
    #[arg(long, env = "PX_NODE_STORE_SYNC_WRITES")]
    pub store_sync_writes: Option<bool>,
    /// Embedded store: Kubo RPC API listen address [default: 127.0.0.1:0].
    #[arg(long, env = "PX_NODE_STORE_API")]
    pub store_api: Option<SocketAddr>,
    /// Every pin of the IPFS backend is the node's [default: true when embedded].
    #[arg(long, env = "PX_NODE_EXCLUSIVE_BACKEND")]
    pub exclusive_backend: Option<bool>,
    /// Timeout of requests other than uploads, in seconds [default: 30].
    #[arg(long, env = "PX_NODE_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<u64>,
    /// Longest client silence (headers, idle connection, upload body gap) [default: 30].
    #[arg(long, env = "PX_NODE_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Slowest accepted average upload rate, bytes/s; 0: no deadline [default: 65536].
    #[arg(long, env = "PX_NODE_MIN_UPLOAD_RATE")]
    pub min_upload_rate: Option<u64>,
    /// Requests per minute per IP to the routes without session [default: 600].
    #[arg(long, env = "PX_NODE_IP_RATE_PER_MIN")]
    pub ip_rate_per_min: Option<u32>,
    /// Burst of the per-IP limit; 0 disables it [default: 60].
    #[arg(long, env = "PX_NODE_IP_BURST")]
    pub ip_burst: Option<u32>,
    /// Logins and key assignments per minute per address [default: 20].
    #[arg(long, env = "PX_NODE_ADDRESS_RATE_PER_MIN")]
    pub address_rate_per_min: Option<u32>,
    /// Burst of the per-address limit; 0 disables it [default: 10].
    #[arg(long, env = "PX_NODE_ADDRESS_BURST")]
    pub address_burst: Option<u32>,
    /// IPFS keys created for key assignments per minute, node-wide [default: 60].
    #[arg(long, env = "PX_NODE_KEY_GEN_PER_MIN")]
    pub key_gen_per_min: Option<u32>,
    /// Most sign-in nonces outstanding [default: 100000].
    #[arg(long, env = "PX_NODE_MAX_NONCES")]
    pub max_nonces: Option<usize>,
    /// CORS origins allowed, comma-separated; `*` for any [default: none].
    #[arg(long, env = "PX_NODE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// Serve the built web dApp from this directory at `/` [default: API only].
    #[arg(long, env = "PX_NODE_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Chain RPC URL the dApp offers wallets that lack the chain [default: none].
    #[arg(long, env = "PX_NODE_WEB_RPC_URL")]
    pub web_rpc_url: Option<String>,
    /// `provider` runs the provider role too (needs the provider key) [default: home only].
    #[arg(long, env = "PX_NODE_ROLE")]
    pub role: Option<String>,
    /// Provider role: the registered provider account's private key (hex).
    #[arg(long, env = "PX_NODE_PROVIDER_KEY", hide_env_values = true)]
    pub provider_key: Option<String>,
    /// Provider role: prover poll interval in milliseconds [default: 2000].
    #[arg(long, env = "PX_NODE_PROVIDER_POLL_MS")]
    pub provider_poll_ms: Option<u64>,
    /// Home role: redundancy of placements that ask for none, `k/n` [default: 4/6].
    #[arg(long, env = "PX_NODE_REDUNDANCY")]
    pub redundancy: Option<String>,
    /// Home role: deals and repair loop interval in milliseconds [default: 2000].
    #[arg(long, env = "PX_NODE_HOME_POLL_MS")]
    pub home_poll_ms: Option<u64>,
    /// Home role: periods in the term of a deal it opens [default: 12].
    #[arg(long, env = "PX_NODE_DEAL_PERIODS")]
    pub deal_periods: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            "deployment = \"d.json\"\nrpc_url = \"http://file\"\nmax_upload_bytes = 5\n\
             owner_cache_secs = 30\nregistrar_key = \"0xabc\"\nstore_api = \"127.0.0.1:5999\"\n\
             cors_origins = [\"https://app.example\"]\nidle_timeout_secs = 7\n",
        )
        .unwrap();
        let cli = Cli {
            config: Some(file),
            rpc_url: Some("http://flag".into()),
            ipfs_url: Some("http://127.0.0.1:5001".into()),
            ..Cli::default()
        };
        let c = NodeConfig::from_cli(cli).unwrap();
        assert_eq!(c.rpc_url, "http://flag");
        assert_eq!(c.max_upload_bytes, 5);
        assert_eq!(c.owner_cache_ttl, Duration::from_secs(30));
        assert_eq!(c.deployment, PathBuf::from("d.json"));
        assert_eq!(c.ipfs, IpfsBackend::Remote("http://127.0.0.1:5001".into()));
        assert!(!c.backend_is_exclusive());
        assert!(NodeConfig::new("d.json").backend_is_exclusive());
        assert_eq!(c.nonce_ttl, Duration::from_secs(300));
        assert_eq!(c.store_api, "127.0.0.1:5999".parse().unwrap());
        assert_eq!(
            NodeConfig::new("d.json").store_api,
            "127.0.0.1:0".parse().unwrap()
        );
        assert_eq!(format!("{:?}", c.registrar_key), "Some(Secret(<redacted>))");
        assert_eq!(c.cors_origins, vec!["https://app.example".to_string()]);
        assert_eq!(c.idle_timeout, Duration::from_secs(7));
        assert!(
            NodeConfig::new("d.json").cors_origins.is_empty(),
            "CORS off by default"
        );
    }

    #[test]
    fn rejects_long_owner_cache_and_unknown_keys() {
        let cli = Cli {
            deployment: Some("d.json".into()),
            owner_cache_secs: Some(61),
            ..Cli::default()
        };
        assert!(matches!(NodeConfig::from_cli(cli), Err(Error::Config(_))));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(&file, "deploymnet = \"d.json\"\n").unwrap();
        let cli = Cli {
            config: Some(file),
            ..Cli::default()
        };
        assert!(matches!(NodeConfig::from_cli(cli), Err(Error::Config(_))));
        assert!(matches!(
            NodeConfig::from_cli(Cli::default()),
            Err(Error::Config(_))
        ));
    }
}
