//! Benchmarks against the real components (not timed tests):
//!
//! 1. `latency`: sync latency on anvil with 1-second blocks, request mined to fulfill mined,
//!    in blocks and milliseconds (target <= 2 blocks).
//! 2. `burst`: 200 tokens request a sync within a few blocks; all must be fulfilled exactly
//!    once; reports the time and the blocks spanned.
//! 3. `ea`: external adapter throughput for a cached data request, with the adapter running as
//!    the `px-oracle` binary and this process as the load generator; requests/s and p50/p99.
//!
//! `cargo bench -p px-oracle --bench sync [latency|burst|ea]` (all three without an argument).
//! Without `--bench` (what `cargo test --all-targets` does) it runs a smoke pass: 2 syncs for
//! `latency`, 5 tokens for `burst`, 50 requests on 4 connections for `ea`.

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/it/common.rs"]
mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::B256;
use alloy::providers::Provider;
use alloy::sol_types::SolEvent;
use common::{Env, TestResult, free_port, wait_for};
use px_cli::devnet::FIRST_USER;
use px_core::contracts::StorageNFT;
use serde_json::Value;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> TestResult {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    if run("latency") {
        latency().await?;
    }
    if run("burst") {
        burst().await?;
    }
    if run("ea") {
        ea().await?;
    }
    Ok(())
}

async fn set_interval_mining(env: &Env, secs: u64) -> TestResult {
    let p = env.devnet.provider(0);
    let _: Value = p
        .raw_request("evm_setIntervalMining".into(), (secs,))
        .await?;
    Ok(())
}

/// Block of every answer (Synced / SyncFailed) by request id.
async fn answer_blocks(env: &Env) -> TestResult<HashMap<B256, Vec<u64>>> {
    let filter = alloy::rpc::types::Filter::new()
        .address(env.devnet.deployment.storage_nft)
        .event_signature(vec![
            StorageNFT::Synced::SIGNATURE_HASH,
            StorageNFT::SyncFailed::SIGNATURE_HASH,
        ])
        .from_block(0);
    let mut out: HashMap<B256, Vec<u64>> = HashMap::new();
    for log in env.devnet.provider(0).get_logs(&filter).await? {
        let id = log.topics()[2];
        out.entry(id)
            .or_default()
            .push(log.block_number.unwrap_or(0));
    }
    Ok(out)
}

async fn latency() -> TestResult {
    let n = if full() { 10 } else { 2 };
    let env = Env::spawn(None).await?;
    let tokens = env.served_tokens(n, "lat").await?;
    let mut config = env.config();
    config.adapter.enabled = false;
    config.relayer.poll_interval_ms = 200;
    let oracle = px_oracle::spawn(config).await?;
    set_interval_mining(&env, 1).await?;

    let mut blocks = Vec::new();
    let mut millis = Vec::new();
    for &token in &tokens {
        let receipt = env
            .nft(FIRST_USER)
            .requestSync(token)
            .send()
            .await?
            .get_receipt()
            .await?;
        let mined_at = Instant::now();
        let request_block = receipt.block_number.ok_or("no block")?;
        let request_id = receipt
            .inner
            .logs()
            .iter()
            .find_map(|l| l.log_decode::<StorageNFT::SyncRequested>().ok())
            .ok_or("no SyncRequested")?
            .inner
            .data
            .requestId;
        env.wait_answered(token, Duration::from_secs(30)).await?;
        millis.push(mined_at.elapsed().as_millis() as u64);
        let answered = answer_blocks(&env).await?;
        let block = answered.get(&request_id).ok_or("no answer event")?[0];
        blocks.push(block - request_block);
    }
    blocks.sort_unstable();
    millis.sort_unstable();
    println!(
        "latency (1 s blocks, poll 200 ms, {n} syncs): blocks request->fulfill median {} max {}; \
         request mined -> answer visible median {} ms max {} ms",
        blocks[n / 2],
        blocks[n - 1],
        millis[n / 2],
        millis[n - 1]
    );
    oracle.shutdown().await;
    Ok(())
}

async fn burst() -> TestResult {
    let n = if full() { 200 } else { 5 };
    let env = Env::spawn(None).await?;
    let setup = Instant::now();
    let tokens = env.served_tokens(n, "burst").await?;
    println!("burst: prepared {n} tokens in {:?}", setup.elapsed());
    let mut config = env.config();
    config.adapter.enabled = false;
    config.relayer.poll_interval_ms = 200;
    let oracle = px_oracle::spawn(config).await?;
    set_interval_mining(&env, 1).await?;

    let start = Instant::now();
    let nft = env.nft(FIRST_USER);
    let mut pending = Vec::with_capacity(n);
    for &token in &tokens {
        pending.push(nft.requestSync(token).gas(300_000).send().await?);
    }
    let mut request_ids = Vec::with_capacity(n);
    let mut first_block = u64::MAX;
    for p in pending {
        let receipt = p.get_receipt().await?;
        first_block = first_block.min(receipt.block_number.unwrap_or(0));
        let ev = receipt
            .inner
            .logs()
            .iter()
            .find_map(|l| l.log_decode::<StorageNFT::SyncRequested>().ok())
            .ok_or("no SyncRequested")?;
        request_ids.push(ev.inner.data.requestId);
    }
    let sent = start.elapsed();
    let all = wait_for(Duration::from_secs(180), || async {
        let answered = answer_blocks(&env).await.ok()?;
        request_ids
            .iter()
            .all(|id| answered.contains_key(id))
            .then_some(answered)
    })
    .await
    .ok_or("not all answered within 180 s")?;
    let elapsed = start.elapsed();
    let once = request_ids.iter().all(|id| all[id].len() == 1);
    let last_block = request_ids.iter().map(|id| all[id][0]).max().unwrap_or(0);
    let txs = env.oracle_tx_count().await?;
    println!(
        "burst: {n} requests sent and mined in {sent:?} (from block {first_block}); all fulfilled \
         after {elapsed:?} (last fulfill in block {last_block}, {} blocks after the first request); \
         exactly once: {once}; oracle transactions: {txs}",
        last_block - first_block
    );
    assert!(once, "every request answered exactly once");
    assert_eq!(txs, n as u64, "one transaction per request");
    oracle.shutdown().await;
    Ok(())
}

async fn ea() -> TestResult {
    let requests: usize = if full() { 5_000 } else { 50 };
    let concurrency: usize = if full() { 32 } else { 4 };
    let env = Env::spawn(None).await?;
    let tokens = env.served_tokens(1, "ea").await?;
    let port = free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_px-oracle"))
        .env_clear()
        .env("RPC_URL", env.devnet.rpc_url())
        .env("DEPLOYMENT", &env.deployment_path)
        .env("IPFS_API_URL", env.ipfs.url())
        .env("IPFS_FLAVOR", env.ipfs.flavor_name())
        .env("EA_HOST", "127.0.0.1")
        .env("EA_PORT", port.to_string())
        .env("CACHE_MAX_AGE", "600000")
        .env("LOG_LEVEL", "warn")
        .arg("--no-relayer")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}/");
    let client = reqwest::Client::new();
    let body =
        serde_json::json!({"id": "bench", "data": {"tokenId": tokens[0].to::<u64>()}}).to_string();
    let ready = wait_for(Duration::from_secs(20), || async {
        let r = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    ready.ok_or("adapter did not come up")?;

    let body = Arc::new(body);
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let (client, url, body) = (client.clone(), url.clone(), Arc::clone(&body));
        workers.spawn(async move {
            let mut lat = Vec::new();
            for _ in (w..requests).step_by(concurrency) {
                let t = Instant::now();
                let res = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.as_str().to_owned())
                    .send()
                    .await
                    .expect("request");
                assert_eq!(res.status(), 200);
                res.bytes().await.expect("body");
                lat.push(t.elapsed());
            }
            lat
        });
    }
    let mut lat = Vec::with_capacity(requests);
    while let Some(r) = workers.join_next().await {
        lat.extend(r?);
    }
    let elapsed = start.elapsed();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "ea (cached, {requests} requests, {concurrency} connections, separate process): {:.0} req/s, \
         p50 {:?}, p99 {:?}, max {:?}",
        requests as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        lat[lat.len() - 1]
    );
    child.kill().await?;
    Ok(())
}

/// Whether this is a measurement run (`cargo bench` passes `--bench`). Without it (as
/// `cargo test --all-targets` runs the binary) the bench makes a small smoke pass instead.
fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}
