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
    /// `forge build` or the deploy script did not finish in time.
    #[error("forge {step} did not finish in {secs} s; it printed:\n{output}")]
    DeployTimeout {
        /// `build` or `script`.
        step: &'static str,
        /// The deadline.
        secs: u64,
        /// What forge printed until then.
        output: String,
    },
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
        // The contracts are compiled once per process, with no tight deadline (a cold IR build
        // takes minutes on two cores); the deploy script then only runs them.
        build_once(&root, &forge_bin).await?;
        let mut attempt = 1;
        loop {
            let builder = anvil.clone();
            let instance = tokio::task::spawn_blocking(move || builder.try_spawn())
                .await
                .map_err(|e| DevnetError::Rpc(e.to_string()))??;
            match deploy(&root, &forge_bin, &instance).await {
                Ok(deployment) => {
                    return Ok(Self {
                        anvil: instance,
                        root,
                        deployment,
                    });
                }
                // A deploy that hangs leaves the chain in an unknown state: start over on a fresh
                // anvil rather than on top of half a deployment.
                Err(DevnetError::DeployTimeout { output, .. }) if attempt < DEPLOY_ATTEMPTS => {
                    eprintln!(
                        "devnet: the deploy script did not finish in {} s (attempt {attempt} of \
                         {DEPLOY_ATTEMPTS}); retrying on a fresh anvil. It printed:\n{output}",
                        DEPLOY_TIMEOUT.as_secs()
                    );
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
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

    /// Mines `blocks` empty blocks at once (`anvil_mine`): moves the market's periods on.
    pub async fn mine_blocks(&self, blocks: u64) -> Result<(), DevnetError> {
        self.provider(ADMIN)
            .raw_request::<_, serde_json::Value>("anvil_mine".into(), (format!("0x{blocks:x}"),))
            .await
            .map_err(|e| DevnetError::Rpc(e.to_string()))?;
        Ok(())
    }

    /// The latest block's number.
    pub async fn block_number(&self) -> Result<u64, DevnetError> {
        self.provider(ADMIN)
            .get_block_number()
            .await
            .map_err(|e| DevnetError::Rpc(e.to_string()))
    }
}

/// Sends a contract call and waits for its receipt; panics unless the transaction was mined
/// and succeeded. For tests and scripted steps on the devnet, where a failure is the answer.
pub async fn send_ok<P, D, N>(call: alloy::contract::CallBuilder<P, D, N>)
where
    P: Provider<N>,
    D: alloy::contract::CallDecoder,
    N: alloy::network::Network,
{
    let receipt = call
        .send()
        .await
        .expect("transaction sent")
        .get_receipt()
        .await
        .expect("mined");
    assert!(
        alloy::network::ReceiptResponse::status(&receipt),
        "transaction reverted"
    );
}

/// Reads an HTTP/1 request head from `stream`, for the loopback proxies tests put in front of
/// a node: the bytes read so far (the head and whatever of the body came with it) and where
/// the head ends (after its blank line). `None` if the peer closed or failed first.
pub async fn read_http_head<R>(stream: &mut R) -> Option<(Vec<u8>, usize)>
where
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some((head, i + 4));
        }
    }
}

/// Deterministic, incompressible-looking bytes (xorshift64 from `seed`): the demo's files and
/// the test suites' payloads, so a failure reproduces.
pub fn sample_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
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

/// How long the deploy script may take once the contracts are compiled (it takes about a second).
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `forge build` may take (a cold build compiles StorageNFT through the IR pipeline).
const BUILD_TIMEOUT: Duration = Duration::from_secs(1_800);
/// Fresh anvils tried before a hanging deploy is an error.
const DEPLOY_ATTEMPTS: u32 = 3;

/// Runs `forge build` the first time a devnet starts in this process: every later deploy script
/// finds the artifacts current, and devnets started in parallel never compile side by side.
async fn build_once(root: &Path, forge: &Path) -> Result<(), DevnetError> {
    static BUILT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    BUILT
        .get_or_try_init(|| async {
            let mut cmd = tokio::process::Command::new(forge);
            cmd.current_dir(root).arg("build");
            run_forge(cmd, "build", BUILD_TIMEOUT).await
        })
        .await
        .map(|_| ())
}

/// Runs a forge command to completion within `timeout`, keeping what it printed; on timeout it
/// is killed and what it printed until then is in the error.
async fn run_forge(
    mut cmd: tokio::process::Command,
    step: &'static str,
    timeout: Duration,
) -> Result<(), DevnetError> {
    use tokio::io::AsyncReadExt;

    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let printed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    for mut stream in [
        Box::new(child.stdout.take().expect("piped"))
            as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(child.stderr.take().expect("piped")),
    ] {
        let sink = printed.clone();
        readers.push(tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("not poisoned")
                    .extend_from_slice(&buf[..n]);
            }
        }));
    }
    let text = |p: &std::sync::Mutex<Vec<u8>>| {
        String::from_utf8_lossy(&p.lock().expect("not poisoned")).into_owned()
    };
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status?,
        Err(_) => {
            let _ = child.kill().await;
            return Err(DevnetError::DeployTimeout {
                step,
                secs: timeout.as_secs(),
                output: text(&printed),
            });
        }
    };
    // A process forge started may still hold its pipes open: wait for the rest of the output
    // only briefly, never for that process.
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
    }
    if status.success() {
        Ok(())
    } else {
        Err(DevnetError::Deploy {
            status: status.to_string(),
            output: text(&printed),
        })
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

    let mut cmd = tokio::process::Command::new(forge);
    cmd.current_dir(root)
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
        .env_remove("REGISTRAR");
    let result = run_forge(cmd, "script", DEPLOY_TIMEOUT).await;
    let _ = std::fs::remove_dir_all(&broadcast);
    result?;
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
