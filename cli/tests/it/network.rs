//! Issue 17: `px devnet --providers N` and `px devnet --story network`.
//!
//! `--providers N` starts N provider nodes (`px-node --role provider`) beside the home node,
//! each with its own store and anvil account, registered in the ProviderRegistry with its URL,
//! staked and certified; the devnet lists them (address, URL, stake) and watches them like its
//! other services. The network story runs every step of the story against them.
//!
//! The service binaries must sit beside `px` (`cargo test --workspace` builds them all). The
//! home node's IPFS backend is the run's (`PX_TEST_IPFS`: `store`, `kubo` or `jsipfs`, passed as
//! `--ipfs`); provider nodes always use their own embedded store.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use alloy::primitives::{Address, U256};
use px_cli::daemon::Ipfs;
use px_sdk::{
    Deployment,
    contracts::{ProviderRegistry, StorageMarket},
};
use rustix::process::{Pid, Signal, kill_process};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// A provider as `px devnet` lists it.
#[derive(Debug)]
struct Listed {
    name: String,
    address: Address,
    url: String,
    stake: String,
}

/// Parses the provider lines of the endpoints listing:
/// `    provider-1  0xabc…  http://127.0.0.1:1234  stake 500 PX`.
fn listed(stdout: &str) -> Vec<Listed> {
    stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() == 6 && f[0].starts_with("provider-") && f[3] == "stake" {
                Some(Listed {
                    name: f[0].to_owned(),
                    address: f[1].parse().ok()?,
                    url: f[2].to_owned(),
                    stake: format!("{} {}", f[4], f[5]),
                })
            } else {
                None
            }
        })
        .collect()
}

/// The value of `export NAME=value` in the devnet's env file.
fn env_value(env: &str, name: &str) -> String {
    env.lines()
        .find_map(|l| l.strip_prefix(&format!("export {name}=")))
        .unwrap_or_else(|| panic!("{name} not in the env file:\n{env}"))
        .to_owned()
}

/// The pid of the child of `parent` whose command line contains `needle`.
fn child_with(parent: u32, needle: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_string_lossy().parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
            let ppid: u32 = stat[stat.rfind(')')? + 2..]
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            (ppid == parent && String::from_utf8_lossy(&cmdline).contains(needle)).then_some(pid)
        })
}

#[tokio::test]
async fn devnet_providers_are_registered_staked_certified_and_watched() {
    let px = env!("CARGO_BIN_EXE_px");
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().join("devnet");
    let mut child = tokio::process::Command::new(px)
        .args(["devnet", "--providers", "3", "--dir"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("px runs");
    let pid = child.id().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdout = String::new();
    let up = tokio::time::timeout(Duration::from_secs(600), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            stdout.push_str(&line);
            stdout.push('\n');
            if line.contains("Drive it with px") {
                return true;
            }
        }
        false
    })
    .await;
    if up != Ok(true) {
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err).await;
        panic!("the devnet did not come up:\n{stdout}\n{err}");
    }

    // Listed with address, URL and the stake registered; in the env file too.
    let providers = listed(&stdout);
    assert_eq!(providers.len(), 3, "{stdout}");
    let env = std::fs::read_to_string(dir.join("env")).unwrap();
    let urls: Vec<&str> = providers.iter().map(|p| p.url.as_str()).collect();
    assert_eq!(env_value(&env, "PX_PROVIDER_URLS"), urls.join(","));
    let deployment = Deployment::load(env_value(&env, "PX_DEPLOYMENT")).unwrap();
    let chain = alloy::providers::ProviderBuilder::new()
        .connect_http(env_value(&env, "PX_RPC_URL").parse().unwrap());
    let registry = ProviderRegistry::new(deployment.provider_registry.unwrap(), &chain);
    assert_eq!(
        registry.providerCount().call().await.unwrap(),
        U256::from(3)
    );
    let mut addresses = Vec::new();
    for p in &providers {
        assert_eq!(p.stake, "500 PX", "{p:?}");
        assert!(
            env.contains(&format!("# {} {} {}", p.name, p.address, p.url)),
            "{env}"
        );
        // Each answers on its own port and is listed active, certified, at that URL, with
        // the stake shown.
        let health = reqwest::get(format!("{}/health", p.url)).await.unwrap();
        assert!(
            health.status().is_success(),
            "{}: {}",
            p.name,
            health.status()
        );
        let l = registry.providerOf(p.address).call().await.unwrap();
        assert!(l.active && l.certified, "{}: {l:?}", p.name);
        assert_eq!(l.endpoint, p.url);
        assert_eq!(
            U256::from(l.stake),
            U256::from(500u64) * U256::from(10u64).pow(U256::from(18))
        );
        addresses.push(p.address);
    }
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 3, "each provider has its own account");
    // Each has its own data directory (its own embedded store and provider state).
    for p in &providers {
        assert!(
            dir.join("providers")
                .join(&p.name)
                .join("provider.redb")
                .is_file()
        );
    }
    // No market deal exists yet: the registry only.
    let market = StorageMarket::new(deployment.storage_market.unwrap(), &chain);
    assert!(
        market
            .earningsOf(providers[0].address)
            .call()
            .await
            .unwrap()
            .is_zero()
    );

    // A provider that dies is noticed like any service: the devnet says which and stops the
    // rest.
    let port = providers[1].url.rsplit(':').next().unwrap();
    let victim = child_with(pid, &format!("127.0.0.1:{port}")).expect("provider-2's process");
    kill_process(Pid::from_raw(victim as i32).unwrap(), Signal::KILL).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the devnet stops")
        .unwrap();
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err).await;
    assert!(!status.success(), "{err}");
    assert!(err.contains("provider-2 exited"), "{err}");
    let deadline = Instant::now() + Duration::from_secs(10);
    for p in &providers {
        while reqwest::get(format!("{}/health", p.url)).await.is_ok() {
            assert!(Instant::now() < deadline, "{} still answers", p.name);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The story's steps (1-2 need only the registry and the chain; 3-11 the home node's role too).
const NETWORK_STEPS: usize = 11;

#[test]
fn devnet_network_story_passes_every_step() {
    let px = env!("CARGO_BIN_EXE_px");
    let backend = Ipfs::from_test_env();
    let state = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(px)
        .args(["devnet", "--story", "network", "--providers", "6"])
        .args(["--ipfs", backend.name(), "--dir"])
        .arg(state.path().join("devnet"))
        .output()
        .expect("px runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "network story failed on {backend}:\n{stdout}\n{stderr}"
    );
    for step in 1..=NETWORK_STEPS {
        assert!(
            stdout.contains(&format!("[{step:>2}] ok  ")),
            "step {step} not ok:\n{stdout}"
        );
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains("all story steps passed"), "{stdout}");
}
