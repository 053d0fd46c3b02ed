//! Settings: config file, then environment, then flags.

use std::path::{Path, PathBuf};

use clap::Args;
use eyre::WrapErr;
use px_sdk::{Client, ClientConfig, Deployment, crypto::OwnerKey};
use serde::Deserialize;

use crate::output::usage;

/// Options shared by every subcommand.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Config file (TOML) [default: $XDG_CONFIG_HOME/px/config.toml].
    #[arg(long, env = "PX_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Chain JSON-RPC URL [default: http://127.0.0.1:8545].
    #[arg(long, env = "PX_RPC_URL", global = true)]
    pub rpc_url: Option<String>,
    /// Wallet private key (hex). Prefer the environment or the config file over the flag.
    #[arg(long, env = "PX_PRIVATE_KEY", global = true, hide_env_values = true)]
    pub private_key: Option<String>,
    /// Deployment file written by the deploy script [default: deployments/<chain id>.json].
    #[arg(long, env = "PX_DEPLOYMENT", global = true)]
    pub deployment: Option<PathBuf>,
    /// Storage node base URL.
    #[arg(long = "node", env = "PX_NODE", global = true)]
    pub node_url: Option<String>,
    /// Owner key file for encryption [default: derived from a wallet signature].
    #[arg(long, env = "PX_KEY_FILE", global = true)]
    pub key_file: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The config file's fields (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    rpc_url: Option<String>,
    private_key: Option<String>,
    deployment: Option<PathBuf>,
    node_url: Option<String>,
    key_file: Option<PathBuf>,
}

/// Resolved settings.
pub(crate) struct Settings {
    pub rpc_url: String,
    pub private_key: Option<String>,
    pub deployment: Option<PathBuf>,
    pub node_url: Option<String>,
    pub key_file: Option<PathBuf>,
    pub json: bool,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("rpc_url", &self.rpc_url)
            .field(
                "private_key",
                &self.private_key.as_ref().map(|_| "<redacted>"),
            )
            .field("deployment", &self.deployment)
            .field("node_url", &self.node_url)
            .field("key_file", &self.key_file)
            .finish()
    }
}

fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("px/config.toml"))
}

/// Relative paths in the config file are relative to the file.
fn relative_to(base: &Path, p: Option<PathBuf>) -> Option<PathBuf> {
    p.map(|p| if p.is_relative() { base.join(p) } else { p })
}

impl Settings {
    pub(crate) fn resolve(args: GlobalArgs) -> eyre::Result<Self> {
        let (path, explicit) = match args.config {
            Some(p) => (Some(p), true),
            None => (default_config_path(), false),
        };
        let file = match path {
            Some(p) if explicit || p.exists() => {
                let text = std::fs::read_to_string(&p)
                    .wrap_err_with(|| format!("cannot read config file {}", p.display()))?;
                let mut cfg: FileConfig = toml::from_str(&text)
                    .map_err(|e| usage(format!("invalid config file {}: {e}", p.display())))?;
                let dir = p.parent().unwrap_or(Path::new("."));
                cfg.deployment = relative_to(dir, cfg.deployment);
                cfg.key_file = relative_to(dir, cfg.key_file);
                cfg
            }
            _ => FileConfig::default(),
        };
        Ok(Self {
            rpc_url: args
                .rpc_url
                .or(file.rpc_url)
                .unwrap_or_else(|| "http://127.0.0.1:8545".into()),
            private_key: args.private_key.or(file.private_key),
            deployment: args.deployment.or(file.deployment),
            node_url: args.node_url.or(file.node_url),
            key_file: args.key_file.or(file.key_file),
            json: args.json,
        })
    }

    /// The client these settings describe.
    pub(crate) async fn client(&self) -> eyre::Result<Client> {
        let key = self.private_key.as_deref().ok_or_else(|| {
            usage(
                "no wallet: set PX_PRIVATE_KEY, `private_key` in the config file, or --private-key",
            )
        })?;
        let signer = key
            .trim()
            .parse()
            .map_err(|e| usage(format!("the private key is not a valid hex key: {e}")))?;
        let deployment = match &self.deployment {
            Some(p) => Deployment::load(p)?,
            None => {
                let chain_id = chain_id(&self.rpc_url).await?;
                let p = PathBuf::from(format!("deployments/{chain_id}.json"));
                Deployment::load(&p).map_err(|e| {
                    usage(format!(
                        "no deployment file: pass --deployment or set PX_DEPLOYMENT ({e})"
                    ))
                })?
            }
        };
        let mut config = ClientConfig::new(self.rpc_url.clone(), signer, deployment);
        if let Some(url) = &self.node_url {
            config = config.with_node(url.clone());
        }
        if let Some(path) = &self.key_file {
            config = config.with_owner_key(OwnerKey::load(path)?);
        }
        Ok(Client::new(config).await?)
    }
}

async fn chain_id(rpc_url: &str) -> eyre::Result<u64> {
    use alloy::providers::{Provider, ProviderBuilder};
    let url = rpc_url
        .parse()
        .map_err(|e| usage(format!("invalid RPC URL {rpc_url:?}: {e}")))?;
    let provider = ProviderBuilder::new().connect_http(url);
    provider
        .get_chain_id()
        .await
        .wrap_err_with(|| format!("cannot reach the chain at {rpc_url}"))
}
