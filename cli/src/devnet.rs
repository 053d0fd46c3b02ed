//! A local devnet: anvil plus the contracts deployed by the project's own forge script.
//!
//! Used by `px devnet`, by the demo, and by every crate's integration tests, so they all run
//! against exactly what `script/Deploy.s.sol` deploys (the real Chainlink Operator and
//! LinkToken, PXToken, StorageNFT with the default plans).
//!
//! anvil and forge come from the project's npm install (`node_modules/.bin`, see `make
//! bootstrap`); the repository root is found from `PX_ROOT` or from this crate's location.
//!
//! Accounts are anvil's well-known development keys: [`ADMIN`] deploys and administers,
//! [`ORACLE`] is the Operator's authorized sender, [`REGISTRAR`] holds REGISTRAR_ROLE (the
//! storage node), and [`FIRST_USER`] onwards are free for users.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use alloy::{
    network::EthereumWallet,
    node_bindings::{Anvil, AnvilInstance},
    primitives::Address,
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};

use px_core::Deployment;

/// Index of the admin/deployer account.
pub const ADMIN: usize = 0;
/// Index of the oracle's fulfilling account (authorized on the Operator).
pub const ORACLE: usize = 1;
/// Index of the storage node's registrar account (REGISTRAR_ROLE).
pub const REGISTRAR: usize = 2;
/// Index of the first account free for users.
pub const FIRST_USER: usize = 3;

/// How to start a devnet.
#[derive(Debug, Clone, Default)]
pub struct DevnetConfig {
    /// Mine a block every this many seconds; `None` mines one per transaction.
    pub block_time: Option<u64>,
    /// Port for anvil; `None` lets the OS choose a free one.
    pub port: Option<u16>,
    /// Repository root holding `node_modules/`, `script/` and `out/`; `None` finds it.
    pub root: Option<PathBuf>,
    /// Number of anvil accounts (default 10).
    pub accounts: Option<u16>,
}

/// Errors starting a devnet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevnetError {
    /// A tool (anvil, forge) is missing: the npm install has not run.
    #[error("{tool} not found at {path}: run `make bootstrap` first")]
    ToolMissing {
        /// The tool.
        tool: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// anvil failed to start.
    #[error("anvil failed to start: {0}")]
    Anvil(#[from] alloy::node_bindings::NodeError),
    /// The forge deploy script failed.
    #[error("forge deploy script failed ({status}):\n{output}")]
    Deploy {
        /// Exit status.
        status: String,
        /// What forge printed.
        output: String,
    },
    /// Reading the deployment file or running forge failed.
    #[error("devnet I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The deployment file forge wrote is invalid.
    #[error(transparent)]
    Deployment(#[from] px_core::deployment::DeploymentError),
    /// An RPC call to anvil failed.
    #[error("anvil RPC: {0}")]
    Rpc(String),
}

/// A running anvil with PX storage deployed. Dropping it stops anvil.
#[derive(Debug)]
pub struct Devnet {
    anvil: AnvilInstance,
    root: PathBuf,
    /// The deployment forge wrote.
    pub deployment: Deployment,
}

impl Devnet {
    /// Starts anvil and runs the deploy script against it.
    pub async fn spawn(config: DevnetConfig) -> Result<Self, DevnetError> {
        let root = match config.root {
            Some(root) => root,
            None => repo_root(),
        };
        let bin = root.join("node_modules/.bin");
        let anvil_bin = tool(&bin, "anvil")?;
        let forge_bin = tool(&bin, "forge")?;

        let mut anvil = Anvil::new().path(anvil_bin).arg("--host").arg("127.0.0.1");
        if let Some(port) = config.port {
            anvil = anvil.port(port);
        }
        if let Some(secs) = config.block_time {
            anvil = anvil.block_time(secs);
        }
        if let Some(n) = config.accounts {
            anvil = anvil.arg("--accounts").arg(n.to_string());
        }
        let anvil = tokio::task::spawn_blocking(move || anvil.try_spawn())
            .await
            .map_err(|e| DevnetError::Rpc(e.to_string()))??;

        let deployment = deploy(&root, &forge_bin, &anvil).await?;
        Ok(Self {
            anvil,
            root,
            deployment,
        })
    }

    /// HTTP JSON-RPC endpoint.
    pub fn rpc_url(&self) -> String {
        self.anvil.endpoint()
    }

    /// WebSocket JSON-RPC endpoint.
    pub fn ws_url(&self) -> String {
        self.anvil.ws_endpoint()
    }

    /// Repository root the devnet was deployed from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Signer of anvil account `index`.
    pub fn signer(&self, index: usize) -> PrivateKeySigner {
        PrivateKeySigner::from(self.anvil.keys()[index].clone())
    }

    /// Address of anvil account `index`.
    pub fn address(&self, index: usize) -> Address {
        self.anvil.addresses()[index]
    }

    /// A provider that signs with anvil account `index`.
    pub fn provider(&self, index: usize) -> DynProvider {
        let wallet = EthereumWallet::from(self.signer(index));
        ProviderBuilder::new()
            .wallet(wallet)
            .connect_http(self.anvil.endpoint_url())
            .erased()
    }

    /// Moves the chain's clock forward by `secs` and mines a block.
    pub async fn time_travel(&self, secs: u64) -> Result<(), DevnetError> {
        let p = self.provider(ADMIN);
        p.raw_request::<_, serde_json::Value>("evm_increaseTime".into(), (secs,))
            .await
            .map_err(|e| DevnetError::Rpc(e.to_string()))?;
        self.mine().await
    }

    /// Mines one block.
    pub async fn mine(&self) -> Result<(), DevnetError> {
        self.provider(ADMIN)
            .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
            .await
            .map_err(|e| DevnetError::Rpc(e.to_string()))?;
        Ok(())
    }
}

/// The repository root: `PX_ROOT`, else the parent of this crate's manifest directory.
pub fn repo_root() -> PathBuf {
    std::env::var_os("PX_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("cli/ has a parent")
                .to_path_buf()
        })
}

fn tool(bin: &Path, name: &'static str) -> Result<PathBuf, DevnetError> {
    let path = bin.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(DevnetError::ToolMissing { tool: name, path })
    }
}

/// Runs `script/Deploy.s.sol` against `anvil` and reads the deployment it writes.
async fn deploy(
    root: &Path,
    forge: &Path,
    anvil: &AnvilInstance,
) -> Result<Deployment, DevnetError> {
    // Each devnet writes its own deployment file and broadcast log, so devnets started in
    // parallel (tests) never share a file.
    let out_rel = format!(
        "deployments/devnet/{}-{}.json",
        std::process::id(),
        anvil.port()
    );
    let out = root.join(&out_rel);
    std::fs::create_dir_all(out.parent().expect("has a parent"))?;
    let broadcast = tempfile_dir(root, anvil.port())?;

    let output = tokio::process::Command::new(forge)
        .current_dir(root)
        .args([
            "script",
            "script/Deploy.s.sol:Deploy",
            "--broadcast",
            "--rpc-url",
        ])
        .arg(anvil.endpoint())
        .env("DEPLOYMENT_OUT", &out_rel)
        .env("FOUNDRY_BROADCAST", &broadcast)
        .env_remove("DEPLOYER_KEY")
        .env_remove("ORACLE_SENDER")
        .env_remove("REGISTRAR")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), output)
        .await
        .map_err(|_| DevnetError::Rpc("forge script timed out after 300 s".into()))??;
    let _ = std::fs::remove_dir_all(&broadcast);
    if !output.status.success() {
        return Err(DevnetError::Deploy {
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    let deployment = Deployment::load(&out)?;
    let _ = std::fs::remove_file(&out);
    Ok(deployment)
}

fn tempfile_dir(root: &Path, port: u16) -> std::io::Result<PathBuf> {
    let dir = root.join(format!(
        "deployments/devnet/broadcast-{}-{port}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
