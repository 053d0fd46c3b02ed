//! `px devnet`: the whole system on one machine.
//!
//! Starts anvil and deploys the contracts with the project's forge script (through
//! [`px_cli::devnet`]), then runs the three services as the separate processes a node operator
//! would run: the IPFS backend (`--ipfs`: `px-store daemon`, the embedded Kubo-RPC store, by
//! default; or a throw-away Kubo or js-ipfs daemon, [`px_cli::daemon`]), `px-node` (registrar
//! key: anvil account 2) and `px-oracle` (relayer and external adapter; fulfilling key: anvil
//! account 1). On js-ipfs, which has no `routing/get`, the story skips the steps that need a
//! sync and says why.
//! Demo accounts get PXToken. With `--providers N` it also starts N provider nodes (`px-node
//! --role provider`, each with its own data directory, embedded px-store and anvil account,
//! registered in the ProviderRegistry with its URL, staked and certified by the admin before it
//! starts); they always use the embedded store, whatever `--ipfs` says (that backend is the home
//! node's).
//!
//! With `--story` it then runs a story through the SDK and exits 0 only if every step did what
//! it says: `--story` alone (or `--story default`) is the single-node end-to-end story;
//! `--story network` is the provider network's ([`network`], 6 providers unless `--providers`
//! asks for more). Without `--story` it prints what a user needs to drive the stack with `px`
//! and runs until Ctrl-C, stopping every process it started.
//!
//! The service binaries are looked up beside this executable (`cargo build` puts them in the
//! same target directory) unless `PX_STORE_BIN`, `PX_NODE_BIN` or `PX_ORACLE_BIN` name them.

#[path = "devnet_network.rs"]
mod network;

use std::{
    fmt::Display,
    net::TcpListener,
    path::{Path, PathBuf},
    process::Stdio,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, U256, aliases::U96, utils::parse_units},
    providers::Provider,
    signers::local::PrivateKeySigner,
};
use eyre::{WrapErr, bail, eyre};
use px_cli::daemon::{Capability, Daemon, Ipfs};
use px_cli::devnet::{ADMIN, Devnet, DevnetConfig, FIRST_USER, ORACLE, REGISTRAR};
use px_sdk::{
    Client, ClientConfig, Error as SdkError, Payment, UploadOptions,
    api::GateReason,
    client::human_bytes,
    contracts::{PXToken, ProviderRegistry},
};
use rustix::process::{Pid, Signal, kill_process};
use tokio::process::{Child, Command};

use crate::output::outln;

/// Demo accounts funded with PXToken.
const FUNDED_USERS: usize = 3;
/// PXToken each demo account gets.
const FUNDING_PX: u64 = 10_000;
/// Past the contract's 30-day sync window.
const TIME_TRAVEL_SECS: u64 = 31 * 24 * 3600;
/// The first anvil account given to a provider node (anvil's default ten come first).
const FIRST_PROVIDER_ACCOUNT: usize = 10;
/// Provider accounts beyond `--providers`, for the providers a story starts later.
const SPARE_PROVIDER_ACCOUNTS: usize = 16;
/// PXToken minted to each provider account; `PROVIDER_STAKE_PX` of it is staked.
const PROVIDER_MINT_PX: u64 = 1_000;
/// Each provider's stake (the devnet's minimum is 100 PX; a missed proof slashes 10 PX).
const PROVIDER_STAKE_PX: u64 = 500;
/// Each provider's listed capacity: 10 GiB.
const PROVIDER_CAPACITY: u64 = 10 << 30;
/// Each provider's listed price: 100 PX per GiB-month (wei; a 4 GiB deal earns about 0.03 PX
/// per 100-block period).
const PROVIDER_PRICE: u128 = 100_000_000_000_000_000_000;
/// Each provider's region code.
const PROVIDER_REGION: u16 = 1;
/// The provider nodes' prover poll interval (the default is 2 s; the story mines periods fast).
const PROVIDER_POLL_MS: u64 = 250;

/// Which story `--story` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Story {
    /// The single-node end-to-end story: mint, upload, sync, time travel, refusal, download.
    Default,
    /// The provider network's story: fund, upload at 4/6, providers stopped, proofs, slashing,
    /// repair, earnings.
    Network,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Run a story, print each step and exit (non-zero if a step fails). `--story` alone is
    /// `--story default` (the single-node end-to-end story); `--story network` runs the provider
    /// network's story (with 6 providers unless --providers asks for more).
    #[arg(
        long,
        value_enum,
        num_args = 0..=1,
        default_missing_value = "default",
        value_name = "STORY"
    )]
    story: Option<Story>,
    /// Provider nodes to start beside the home node, each with its own store and key,
    /// registered, staked and certified [default: 0; 6 with --story network].
    #[arg(long, value_name = "N")]
    providers: Option<usize>,
    /// State directory (chain deployment, store repo, node and oracle data, logs); wiped at start.
    #[arg(long, default_value = ".devnet")]
    dir: PathBuf,
    /// Mine a block every N seconds instead of one per transaction.
    #[arg(long)]
    block_time: Option<u64>,
    /// anvil's port [default: a free one].
    #[arg(long)]
    chain_port: Option<u16>,
    /// How long to wait for each service to come up, in seconds.
    #[arg(long, default_value_t = 60)]
    startup_timeout: u64,
    /// IPFS backend: the embedded px-store, or a throw-away Kubo or js-ipfs daemon on
    /// loopback (built or installed into .cache/ and tools/jsipfs/ the first time).
    #[arg(long, default_value = "store", value_parser = ["store", "kubo", "jsipfs"])]
    ipfs: String,
}

pub(crate) async fn run(a: Args) -> eyre::Result<()> {
    let started = Instant::now();
    let backend: Ipfs = a.ipfs.parse().map_err(|e: String| eyre!(e))?;
    // Ctrl-C (SIGINT) and SIGTERM (a supervisor, a CI runner, `timeout`) stop it the same way,
    // at any stage: during start-up and the story, what was started is dropped (every process
    // is spawned with kill-on-drop); once up, the stack is stopped gracefully.
    let providers = match (a.story, a.providers) {
        (Some(Story::Network), None) => network::PROVIDERS,
        (Some(Story::Network), Some(n)) if n < network::PROVIDERS => bail!(
            "the network story needs at least {} providers (--providers {n})",
            network::PROVIDERS
        ),
        (_, n) => n.unwrap_or(0),
    };
    let stop = shutdown_signal()?;
    tokio::pin!(stop);
    let stack = tokio::select! {
        stack = Stack::start(&a, backend, providers) => stack?,
        _ = &mut stop => bail!("stopped by a signal during start-up"),
    };
    eprintln!("devnet up in {:.1} s", started.elapsed().as_secs_f64());
    if let Some(which) = a.story {
        let result = tokio::select! {
            r = async {
                match which {
                    Story::Default => story(&stack).await,
                    Story::Network => network::story(&stack).await,
                }
            } => r,
            _ = &mut stop => Err(eyre!("stopped by a signal during the story")),
        };
        stack.stop().await;
        result?;
        let skipped = if which == Story::Default && backend.lacks(Capability::RoutingGet).is_some()
        {
            format!(" (those {backend} cannot do skipped)")
        } else {
            String::new()
        };
        outln!(
            "\nall story steps passed{skipped} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    stack.print_endpoints();
    // Watch the services: if one dies, say so and stop the rest.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let outcome = loop {
        tokio::select! {
            _ = &mut stop => break Ok(()),
            _ = tick.tick() => {
                if let Some(msg) = stack.dead_service() {
                    break Err(eyre!(msg));
                }
            }
        }
    };
    eprintln!("stopping the devnet");
    stack.stop().await;
    outcome
}

/// Resolves at the first SIGINT or SIGTERM. The handlers are installed before it returns, so
/// a signal that arrives before the future is first polled is not lost.
fn shutdown_signal() -> eyre::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).wrap_err("install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).wrap_err("install the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// A running service process and where its log goes.
struct Service {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// A provider node the devnet started: its account, listing and process (`None` once stopped).
struct ProviderNode {
    /// `provider-<n>`, numbered from 1 in start order (its log and data directory).
    name: String,
    /// Its anvil account index.
    account: usize,
    /// Its chain address.
    address: Address,
    /// Its HTTP endpoint, as registered.
    url: String,
    /// Its stake right after registration, read from the registry.
    stake: U256,
    child: Option<Child>,
    log: PathBuf,
}

/// What the story and the listing see of a provider node.
#[derive(Debug, Clone)]
pub(crate) struct ProviderInfo {
    /// `provider-<n>`.
    pub(crate) name: String,
    /// Its chain address.
    pub(crate) address: Address,
    /// Its HTTP endpoint.
    pub(crate) url: String,
    /// Its stake right after registration.
    pub(crate) stake: U256,
    /// Whether its process runs.
    pub(crate) running: bool,
}

impl ProviderNode {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            name: self.name.clone(),
            address: self.address,
            url: self.url.clone(),
            stake: self.stake,
            running: self.child.is_some(),
        }
    }
}

/// anvil with the contracts, plus the three services.
struct Stack {
    devnet: Devnet,
    backend: Ipfs,
    /// The Kubo or js-ipfs daemon (`None` with px-store, which runs as a service).
    daemon: Option<Daemon>,
    dir: PathBuf,
    deployment_file: PathBuf,
    store_url: String,
    node_url: String,
    adapter_url: String,
    /// The built web dApp the node serves (`web/dist`), if it was built.
    web_dir: Option<PathBuf>,
    services: std::sync::Mutex<Vec<Service>>,
    /// Provider nodes started so far (running or stopped), in start order.
    providers: std::sync::Mutex<Vec<ProviderNode>>,
    /// The anvil account the next provider gets.
    next_provider_account: AtomicUsize,
    /// Accounts anvil has.
    accounts: usize,
    /// How long a provider node may take to come up.
    startup_timeout: Duration,
}

impl Stack {
    async fn start(a: &Args, backend: Ipfs, providers: usize) -> eyre::Result<Self> {
        let dir = std::path::absolute(&a.dir)?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .wrap_err_with(|| format!("cannot clear {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir.join("logs"))?;

        step_note("starting anvil and deploying the contracts (forge script)");
        let accounts = FIRST_PROVIDER_ACCOUNT + providers + SPARE_PROVIDER_ACCOUNTS;
        let devnet = Devnet::spawn(DevnetConfig {
            block_time: a.block_time,
            port: a.chain_port,
            accounts: Some(u16::try_from(accounts).wrap_err("too many providers")?),
            ..Default::default()
        })
        .await?;
        let deployment_file = dir.join("deployment.json");
        std::fs::write(
            &deployment_file,
            serde_json::to_vec_pretty(&devnet.deployment)?,
        )?;

        let store_port = free_port()?;
        let node_port = free_port()?;
        let adapter_port = free_port()?;
        let node_url = format!("http://127.0.0.1:{node_port}");
        let adapter_url = format!("http://127.0.0.1:{adapter_port}");
        let daemon = match backend {
            Ipfs::Store => None,
            kind => {
                step_note(&format!(
                    "starting a {kind} daemon (built or installed on first use; minutes)"
                ));
                Some(Daemon::start_in(kind, &dir).await?)
            }
        };
        let store_url = match &daemon {
            Some(d) => d.api_url().to_string(),
            None => format!("http://127.0.0.1:{store_port}"),
        };
        let mut stack = Self {
            devnet,
            backend,
            daemon,
            dir: dir.clone(),
            deployment_file,
            store_url,
            node_url,
            adapter_url,
            web_dir: None,
            services: std::sync::Mutex::new(Vec::new()),
            providers: std::sync::Mutex::new(Vec::new()),
            next_provider_account: AtomicUsize::new(FIRST_PROVIDER_ACCOUNT),
            accounts,
            startup_timeout: Duration::from_secs(a.startup_timeout),
        };
        let timeout = stack.startup_timeout;

        if stack.daemon.is_none() {
            step_note("starting px-store");
            stack.spawn("px-store", |c| {
                c.arg("daemon")
                    .arg("--api")
                    .arg(format!("127.0.0.1:{store_port}"))
                    .arg("--repo")
                    .arg(dir.join("store"));
            })?;
        }
        wait_ready(&stack, backend.name(), timeout, || {
            let url = format!("{}/api/v0/version", stack.store_url);
            async move { reqwest::Client::new().post(url).send().await }
        })
        .await?;

        step_note("starting px-node");
        let rpc = stack.devnet.rpc_url();
        let registrar = key_hex(&stack.devnet.signer(REGISTRAR));
        let deployment = stack.deployment_file.clone();
        let store_url = stack.store_url.clone();
        // The dApp, when built (`make web`): served by the node on its own origin; the Vite dev
        // server (`npm run dev` in web/) may call the API too.
        let web_dir = stack.devnet.root().join("web/dist");
        stack.web_dir = web_dir.join("index.html").is_file().then_some(web_dir);
        let web_dir = stack.web_dir.clone();
        stack.spawn("px-node", |c| {
            if let Some(dir) = &web_dir {
                c.arg("--web-dir")
                    .arg(dir)
                    .arg("--web-rpc-url")
                    .arg(&rpc)
                    .arg("--cors-origins")
                    .arg("http://localhost:5173,http://127.0.0.1:5173");
            }
            c.arg("--listen")
                .arg(format!("127.0.0.1:{node_port}"))
                .arg("--rpc-url")
                .arg(&rpc)
                .arg("--deployment")
                .arg(&deployment)
                .arg("--ipfs-url")
                .arg(&store_url)
                .arg("--data-dir")
                .arg(dir.join("node"))
                .env("PX_NODE_REGISTRAR_KEY", &registrar);
        })?;
        wait_ready(&stack, "px-node", timeout, || {
            let url = format!("{}/health", stack.node_url);
            async move { reqwest::get(url).await.and_then(|r| r.error_for_status()) }
        })
        .await?;

        if providers > 0 {
            step_note(&format!(
                "starting {providers} provider node(s) (registered, staked, certified)"
            ));
        }
        for _ in 0..providers {
            stack.start_provider().await?;
        }

        step_note("starting px-oracle (relayer + external adapter)");
        let oracle_key = key_hex(&stack.devnet.signer(ORACLE));
        stack.spawn("px-oracle", |c| {
            c.arg("--host")
                .arg("127.0.0.1")
                .arg("--port")
                .arg(adapter_port.to_string())
                .arg("--rpc-url")
                .arg(&rpc)
                .arg("--deployment")
                .arg(&deployment)
                .arg("--ipfs-url")
                .arg(&store_url)
                .arg("--db")
                .arg(dir.join("oracle.redb"))
                .arg("--confirmations")
                .arg("1")
                .env("ORACLE_PRIVATE_KEY", &oracle_key);
        })?;
        wait_ready(&stack, "px-oracle", timeout, || {
            let url = format!("{}/health", stack.adapter_url);
            async move { reqwest::get(url).await.and_then(|r| r.error_for_status()) }
        })
        .await?;

        step_note("funding demo accounts with PXToken");
        let px = PXToken::new(
            stack.devnet.deployment.px_token,
            stack.devnet.provider(ADMIN),
        );
        let amount: U256 = parse_units(&FUNDING_PX.to_string(), 18)?.into();
        for i in FIRST_USER..FIRST_USER + FUNDED_USERS {
            px.mint(stack.devnet.address(i), amount)
                .send()
                .await?
                .get_receipt()
                .await
                .wrap_err("PXToken.mint")?;
        }
        stack.write_env_file()?;
        Ok(stack)
    }

    /// Spawns a service binary with its output going to `logs/<name>.log`.
    fn spawn(
        &mut self,
        name: &'static str,
        configure: impl FnOnce(&mut Command),
    ) -> eyre::Result<()> {
        let bin = service_bin(name)?;
        let log = self.dir.join("logs").join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let mut cmd = Command::new(&bin);
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .env("RUST_LOG", "info");
        configure(&mut cmd);
        let child = cmd
            .spawn()
            .wrap_err_with(|| format!("cannot start {}", bin.display()))?;
        self.services
            .lock()
            .expect("not poisoned")
            .push(Service { name, child, log });
        Ok(())
    }

    /// Starts one more provider node with the next free anvil account: PXToken minted to it,
    /// the stake approved and registered with its URL, certified by the admin (all before the
    /// process starts: a provider refuses to start unregistered), then `px-node --role
    /// provider` with its own data directory and embedded store, waited for until `GET
    /// /health` answers.
    async fn start_provider(&self) -> eyre::Result<ProviderInfo> {
        let account = self.next_provider_account.fetch_add(1, Ordering::SeqCst);
        if account >= self.accounts {
            bail!(
                "no anvil account left for another provider ({} accounts)",
                self.accounts
            );
        }
        let n = self.providers.lock().expect("not poisoned").len() + 1;
        let name = format!("provider-{n}");
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let address = self.devnet.address(account);
        let d = &self.devnet.deployment;
        let registry = d
            .provider_registry
            .ok_or_else(|| eyre!("the deployment has no ProviderRegistry"))?;
        let minted: U256 = parse_units(&PROVIDER_MINT_PX.to_string(), 18)?.into();
        let stake: U256 = parse_units(&PROVIDER_STAKE_PX.to_string(), 18)?.into();
        send(
            PXToken::new(d.px_token, self.devnet.provider(ADMIN)).mint(address, minted),
            "PXToken.mint",
        )
        .await?;
        send(
            PXToken::new(d.px_token, self.devnet.provider(account)).approve(registry, stake),
            "PXToken.approve",
        )
        .await?;
        send(
            ProviderRegistry::new(registry, self.devnet.provider(account)).registerProvider(
                url.clone(),
                PROVIDER_REGION,
                PROVIDER_CAPACITY,
                PROVIDER_PRICE,
                U96::from(stake),
            ),
            "ProviderRegistry.registerProvider",
        )
        .await?;
        let admin = ProviderRegistry::new(registry, self.devnet.provider(ADMIN));
        send(admin.certify(address), "ProviderRegistry.certify").await?;
        let listing = admin.providerOf(address).call().await?;
        if !(listing.active && listing.certified) {
            bail!(
                "{name} ({address}) is not listed active and certified after registration                  (active {}, certified {})",
                listing.active,
                listing.certified
            );
        }

        let data = self.dir.join("providers").join(&name);
        std::fs::create_dir_all(&data)?;
        let key = key_hex(&self.devnet.signer(account));
        let log = self.dir.join("logs").join(format!("{name}.log"));
        let mut child = spawn_logged(&log, |c| {
            c.arg("--role")
                .arg("provider")
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--rpc-url")
                .arg(self.devnet.rpc_url())
                .arg("--deployment")
                .arg(&self.deployment_file)
                .arg("--data-dir")
                .arg(&data)
                .env("PX_NODE_PROVIDER_KEY", &key)
                .env("PX_NODE_PROVIDER_POLL_MS", PROVIDER_POLL_MS.to_string());
        })?;
        let deadline = Instant::now() + self.startup_timeout;
        let health = format!("{url}/health");
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "{name} exited ({status}); last log lines from {}:\n{}",
                    log.display(),
                    tail(&log, 20)
                );
            }
            match reqwest::get(&health)
                .await
                .and_then(|r| r.error_for_status())
            {
                Ok(_) => break,
                Err(e) if Instant::now() >= deadline => bail!(
                    "{name} did not come up within {} s: {e}",
                    self.startup_timeout.as_secs()
                ),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let node = ProviderNode {
            name,
            account,
            address,
            url,
            stake: U256::from(listing.stake),
            child: Some(child),
            log,
        };
        let info = node.info();
        self.providers.lock().expect("not poisoned").push(node);
        Ok(info)
    }

    /// Stops the provider node at `address` the hard way (SIGKILL, as a crash or a pulled
    /// cable would): it answers nothing from then on. Its data stays on disk.
    async fn stop_provider(&self, address: Address) -> eyre::Result<()> {
        let child = {
            let mut nodes = self.providers.lock().expect("not poisoned");
            let node = nodes
                .iter_mut()
                .find(|p| p.address == address)
                .ok_or_else(|| eyre!("no provider node {address}"))?;
            node.child
                .take()
                .ok_or_else(|| eyre!("{} is stopped already", node.name))?
        };
        let mut child = child;
        child.kill().await.wrap_err("kill the provider node")?;
        Ok(())
    }

    /// The provider nodes started so far, running or stopped, in start order.
    fn provider_infos(&self) -> Vec<ProviderInfo> {
        self.providers
            .lock()
            .expect("not poisoned")
            .iter()
            .map(ProviderNode::info)
            .collect()
    }

    /// The anvil account index of the provider at `address`.
    fn provider_account(&self, address: Address) -> Option<usize> {
        self.providers
            .lock()
            .expect("not poisoned")
            .iter()
            .find(|p| p.address == address)
            .map(|p| p.account)
    }

    /// The first service that exited, described with the tail of its log.
    fn dead_service(&self) -> Option<String> {
        if let Some(d) = &self.daemon
            && !d.is_running()
        {
            let log = d.repo().join("daemon.log");
            return Some(format!(
                "the {} daemon exited; last log lines from {}:\n{}",
                d.kind(),
                log.display(),
                tail(&log, 20)
            ));
        }
        let mut services = self.services.lock().expect("not poisoned");
        for s in services.iter_mut() {
            if let Ok(Some(status)) = s.child.try_wait() {
                return Some(format!(
                    "{} exited ({status}); last log lines from {}:\n{}",
                    s.name,
                    s.log.display(),
                    tail(&s.log, 20)
                ));
            }
        }
        drop(services);
        let mut providers = self.providers.lock().expect("not poisoned");
        for p in providers.iter_mut() {
            if let Some(child) = &mut p.child
                && let Ok(Some(status)) = child.try_wait()
            {
                return Some(format!(
                    "{} exited ({status}); last log lines from {}:\n{}",
                    p.name,
                    p.log.display(),
                    tail(&p.log, 20)
                ));
            }
        }
        None
    }

    /// Stops the provider nodes and the services (SIGTERM, then SIGKILL after 5 s), the IPFS
    /// daemon and anvil.
    async fn stop(mut self) {
        let providers = std::mem::take(&mut *self.providers.lock().expect("not poisoned"));
        let services = std::mem::take(&mut *self.services.lock().expect("not poisoned"));
        let children = providers
            .into_iter()
            .rev()
            .filter_map(|p| p.child)
            .chain(services.into_iter().rev().map(|s| s.child));
        for mut child in children {
            // SIGTERM first: a graceful stop lets the services close their databases.
            if let Some(pid) = child.id().and_then(|p| Pid::from_raw(p as i32)) {
                let _ = kill_process(pid, Signal::TERM);
            }
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        if let Some(mut d) = self.daemon.take() {
            d.stop().await; // its repo goes with it
        }
        drop(self.devnet); // stops anvil
    }

    fn write_env_file(&self) -> eyre::Result<()> {
        let user = key_hex(&self.devnet.signer(FIRST_USER));
        let mut env = format!(
            "export PX_RPC_URL={}\nexport PX_DEPLOYMENT={}\nexport PX_NODE={}\nexport PX_PRIVATE_KEY={}\n",
            self.devnet.rpc_url(),
            self.deployment_file.display(),
            self.node_url,
            user
        );
        let providers = self.provider_infos();
        if !providers.is_empty() {
            for p in &providers {
                env.push_str(&format!(
                    "# {} {} {} stake {}\n",
                    p.name,
                    p.address,
                    p.url,
                    super::units(p.stake, "PX")
                ));
            }
            let urls: Vec<_> = providers.iter().map(|p| p.url.as_str()).collect();
            env.push_str(&format!("export PX_PROVIDER_URLS={}\n", urls.join(",")));
        }
        std::fs::write(self.dir.join("env"), env)?;
        Ok(())
    }

    fn print_endpoints(&self) {
        let d = &self.devnet.deployment;
        outln!("PX devnet is running; Ctrl-C stops everything.\n");
        outln!(
            "  chain        {} (chain id {})",
            self.devnet.rpc_url(),
            d.chain_id
        );
        outln!(
            "  ipfs         {} ({}, Kubo RPC API)",
            self.store_url,
            self.backend
        );
        outln!(
            "  node         {}  (OpenAPI at /openapi.json)",
            self.node_url
        );
        outln!("  oracle EA    {}  (POST /, GET /health)", self.adapter_url);
        match &self.web_dir {
            Some(_) => outln!(
                "  dApp         {}/  (web dApp, served by the node)",
                self.node_url
            ),
            None => outln!("  dApp         not built: run `make web`, then restart the devnet"),
        }
        outln!("  deployment   {}", self.deployment_file.display());
        outln!("  StorageNFT   {}", d.storage_nft);
        outln!("  PXToken      {}", d.px_token);
        outln!("  LinkToken    {}", d.link);
        outln!("  Operator     {}", d.operator);
        outln!("  logs         {}", self.dir.join("logs").display());
        let providers = self.provider_infos();
        if !providers.is_empty() {
            outln!(
                "\n  provider nodes ({}, registered, staked and certified in the ProviderRegistry):",
                providers.len()
            );
            for p in &providers {
                outln!(
                    "    {:<11} {}  {}  stake {}",
                    p.name,
                    p.address,
                    p.url,
                    super::units(p.stake, "PX")
                );
            }
        }
        outln!(
            "\n  demo accounts ({FUNDING_PX} PX each; anvil development keys, never use them elsewhere):"
        );
        for i in FIRST_USER..FIRST_USER + FUNDED_USERS {
            outln!(
                "    {}  {}",
                self.devnet.address(i),
                key_hex(&self.devnet.signer(i))
            );
        }
        outln!("\n  Drive it with px from another shell:");
        outln!("    source {}", self.dir.join("env").display());
        outln!(
            "    px plans && px mint --plan 2 && px upload 1 README.md && px ls 1 && px sync 1 --wait"
        );
    }
}

/// The scripted story, each step printed with its result.
async fn story(stack: &Stack) -> eyre::Result<()> {
    let signer = stack.devnet.signer(FIRST_USER);
    let config = ClientConfig::new(
        stack.devnet.rpc_url(),
        signer,
        stack.devnet.deployment.clone(),
    )
    .with_node(stack.node_url.clone());
    let client = Client::new(config).await?;
    let mut steps = Steps {
        n: 0,
        backend: stack.backend,
    };
    outln!("\nstory as {} ", client.address());

    let id = steps
        .run("mint a 10 GiB token, paying PXToken with a permit", async {
            let id = client.mint_via_node(2, Payment::Permit).await?;
            Ok((id, format!("token {id}")))
        })
        .await?;

    steps
        .run("the node's IPNS key is bound on chain", async {
            let t = client.token(id).await?;
            let key = t
                .ipns_key
                .ok_or_else(|| eyre!("token {id} has no IPNS key"))?;
            Ok(((), format!("ed25519 key {key}")))
        })
        .await?;

    let first = px_cli::devnet::sample_bytes(3 * 1024 * 1024 + 12_345, 1);
    let uploaded = steps
        .run("upload an encrypted 3 MiB file", async {
            let r = upload(&client, id, "report.bin", first.clone()).await?;
            if !r.encrypted {
                bail!("the upload was not encrypted");
            }
            let detail = format!(
                "{} stored as {}; node usage {} in {} file(s), seq {}",
                human_bytes(r.plain_size),
                r.file.cid,
                human_bytes(r.usage.used),
                r.usage.file_count,
                r.usage.seq
            );
            Ok((r, detail))
        })
        .await?;

    steps
        .run("list the token's files", async {
            let files = client.list(id).await?;
            let found = files.iter().any(|f| f.entry.cid == uploaded.file.cid);
            if !found {
                bail!("{} is not in the listing", uploaded.file.cid);
            }
            let names: Vec<_> = files.iter().map(|f| f.name.clone()).collect();
            Ok(((), format!("{} file(s): {}", files.len(), names.join(", "))))
        })
        .await?;

    steps
        .needing(Capability::RoutingGet)
        .run(
            "request a sync; the oracle answers through the Operator",
            async {
                let req = client.request_sync(id).await?;
                let synced = client.wait_answer(&req, Duration::from_secs(120)).await?;
                Ok((
                    (),
                    format!(
                        "request {} -> seq {}, {} used",
                        req.request_id,
                        synced.seq,
                        human_bytes(synced.used)
                    ),
                ))
            },
        )
        .await?;

    steps
        .needing(Capability::RoutingGet)
        .run("usage on chain equals the node's published record", async {
            let chain = client.token(id).await?;
            let node = client.usage(id).await?;
            if (chain.used, chain.file_count, chain.seq) != (node.used, node.file_count, node.seq) {
                bail!(
                    "chain has used {} files {} seq {}, node has used {} files {} seq {}",
                    chain.used,
                    chain.file_count,
                    chain.seq,
                    node.used,
                    node.file_count,
                    node.seq
                );
            }
            Ok((
                (),
                format!(
                    "used {} in {} file(s) at seq {}",
                    human_bytes(chain.used),
                    chain.file_count,
                    chain.seq
                ),
            ))
        })
        .await?;

    steps
        .run(
            "move chain time 31 days ahead (past the 30-day sync window)",
            async {
                stack.devnet.time_travel(TIME_TRAVEL_SECS).await?;
                let gate = client.can_upload(id, 1).await?;
                Ok(((), format!("gate now: {}", gate.reason)))
            },
        )
        .await?;

    let second = px_cli::devnet::sample_bytes(200_000, 2);
    steps
        .run("upload is refused with reason \"not synced\"", async {
            match upload(&client, id, "notes.txt", second.clone()).await {
                Err(e) => match e.downcast_ref::<SdkError>() {
                    Some(SdkError::GateClosed {
                        reason: GateReason::NotSynced,
                        ..
                    }) => Ok(((), format!("refused: {e}"))),
                    _ => bail!("refused for another reason: {e}"),
                },
                Ok(r) => bail!("the upload was accepted as {}", r.file.cid),
            }
        })
        .await?;

    steps
        .needing(Capability::RoutingGet)
        .run("sync again", async {
            let req = client.request_sync(id).await?;
            let synced = client.wait_answer(&req, Duration::from_secs(120)).await?;
            Ok(((), format!("seq {}", synced.seq)))
        })
        .await?;

    steps
        .needing(Capability::RoutingGet)
        .run("upload is accepted", async {
            let r = upload(&client, id, "notes.txt", second.clone()).await?;
            Ok((
                (),
                format!(
                    "{} as {}; {} file(s)",
                    human_bytes(r.plain_size),
                    r.file.cid,
                    r.usage.file_count
                ),
            ))
        })
        .await?;

    steps
        .run("download the first file, decrypt and compare", async {
            let mut out = Vec::with_capacity(first.len());
            client.download(id, &uploaded.file.cid, &mut out).await?;
            if out != first {
                bail!(
                    "downloaded {} bytes that differ from the {} uploaded",
                    out.len(),
                    first.len()
                );
            }
            Ok(((), format!("{} identical bytes", out.len())))
        })
        .await?;
    Ok(())
}

async fn upload(
    client: &Client,
    id: u64,
    name: &str,
    bytes: Vec<u8>,
) -> eyre::Result<px_sdk::UploadResult> {
    use sha2::Digest;
    let opts = UploadOptions {
        size: Some(bytes.len() as u64),
        sha256: Some(hex(&sha2::Sha256::digest(&bytes))),
        ..Default::default()
    };
    Ok(client
        .upload(id, std::io::Cursor::new(bytes), name, opts)
        .await?)
}

/// Numbered story steps.
struct Steps {
    n: usize,
    backend: Ipfs,
}

impl Steps {
    /// The next step needs `capability` of the IPFS backend: on a backend that lacks it, it
    /// is printed as skipped, with the reason, instead of run.
    fn needing(&mut self, capability: Capability) -> Needing<'_> {
        Needing {
            steps: self,
            capability,
        }
    }

    async fn run<T>(
        &mut self,
        what: &str,
        f: impl std::future::Future<Output = eyre::Result<(T, String)>>,
    ) -> eyre::Result<T> {
        self.n += 1;
        let started = Instant::now();
        match f.await {
            Ok((v, detail)) => {
                outln!(
                    "[{:>2}] ok   {what} ({:.1} s)\n          {detail}",
                    self.n,
                    started.elapsed().as_secs_f64()
                );
                Ok(v)
            }
            Err(e) => {
                outln!("[{:>2}] FAIL {what}\n          {e:#}", self.n);
                Err(e.wrap_err(format!("story step {} failed: {what}", self.n)))
            }
        }
    }
}

/// A step that runs only if the IPFS backend can do what it needs ([`Steps::needing`]).
struct Needing<'a> {
    steps: &'a mut Steps,
    capability: Capability,
}

impl Needing<'_> {
    async fn run<T: Default>(
        self,
        what: &str,
        f: impl std::future::Future<Output = eyre::Result<(T, String)>>,
    ) -> eyre::Result<T> {
        let Some(why) = self.steps.backend.lacks(self.capability) else {
            return self.steps.run(what, f).await;
        };
        self.steps.n += 1;
        outln!("[{:>2}] skip {what}\n          {why}", self.steps.n);
        Ok(T::default())
    }
}

fn step_note(what: &str) {
    eprintln!("devnet: {what}");
}

async fn wait_ready<F, Fut, T, E>(
    stack: &Stack,
    name: &str,
    timeout: Duration,
    probe: F,
) -> eyre::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: Display,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(msg) = stack.dead_service() {
            bail!(msg);
        }
        match probe().await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                bail!("{name} did not come up within {} s: {e}", timeout.as_secs())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Starts `px-node` (a provider node) with its output going to `log`; killed when dropped.
fn spawn_logged(log: &Path, configure: impl FnOnce(&mut Command)) -> eyre::Result<Child> {
    let bin = service_bin("px-node")?;
    let out = std::fs::File::create(log)?;
    let mut cmd = Command::new(&bin);
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true)
        .env("RUST_LOG", "info");
    configure(&mut cmd);
    cmd.spawn()
        .wrap_err_with(|| format!("cannot start {}", bin.display()))
}

/// Sends a contract call and waits for its receipt: an error (with `what`) unless it was mined
/// and succeeded.
async fn send<P, D, N>(
    call: alloy::contract::CallBuilder<P, D, N>,
    what: &str,
) -> eyre::Result<N::ReceiptResponse>
where
    P: Provider<N>,
    D: alloy::contract::CallDecoder,
    N: alloy::network::Network,
{
    use alloy::network::ReceiptResponse;
    let receipt = call
        .send()
        .await
        .wrap_err_with(|| format!("{what}: not sent"))?
        .get_receipt()
        .await
        .wrap_err_with(|| format!("{what}: no receipt"))?;
    if !receipt.status() {
        bail!(
            "{what} reverted (transaction {})",
            receipt.transaction_hash()
        );
    }
    Ok(receipt)
}

fn service_bin(name: &str) -> eyre::Result<PathBuf> {
    let var = format!("{}_BIN", name.to_uppercase().replace('-', "_"));
    if let Some(p) = std::env::var_os(&var) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| eyre!("no directory for {}", exe.display()))?;
    let bin = dir.join(name);
    if bin.is_file() {
        return Ok(bin);
    }
    bail!(
        "{name} not found beside {}: build it with `cargo build --locked -p {name}` (or set {var})",
        exe.display()
    )
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn key_hex(signer: &PrivateKeySigner) -> String {
    format!("0x{}", hex(&signer.to_bytes()[..]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<_> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
