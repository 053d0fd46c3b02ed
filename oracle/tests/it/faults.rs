//! The oracle under faults: a burst of syncs through a faulty RPC proxy, reorgs and rollbacks
//! before and after the fulfill is sent, misconfiguration at start, `/health` in relayer-only
//! mode.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use alloy::primitives::{B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::sol_types::SolEvent;
use px_cli::daemon::Capability;
use px_cli::devnet::{FIRST_USER, ORACLE};
use px_core::contracts::{StorageNFT, sync_status};
use px_oracle::relayer::db::Stage;
use serde_json::Value;

use crate::common::{Env, TestResult, skip, wait_for};
use crate::fault_proxy::{FaultProxy, Faults};

/// Requests in the burst (`PX_FAULT_BURST`): a CI default that stays well under a minute on a
/// loaded 2-core machine (200 took 34 s there, setup included); the figure is 200.
const DEFAULT_BURST: usize = 100;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Blocks of every answer (Synced / SyncFailed) on the canonical chain, by request id.
async fn answers(env: &Env) -> TestResult<HashMap<B256, Vec<u64>>> {
    let filter = alloy::rpc::types::Filter::new()
        .address(env.devnet.deployment.storage_nft)
        .event_signature(vec![
            StorageNFT::Synced::SIGNATURE_HASH,
            StorageNFT::SyncFailed::SIGNATURE_HASH,
        ])
        .from_block(0);
    let mut out: HashMap<B256, Vec<u64>> = HashMap::new();
    for log in env.devnet.provider(0).get_logs(&filter).await? {
        out.entry(log.topics()[2])
            .or_default()
            .push(log.block_number.unwrap_or(0));
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_through_a_faulty_rpc_is_fulfilled_exactly_once() -> TestResult {
    if skip(
        "a_burst_through_a_faulty_rpc_is_fulfilled_exactly_once",
        Capability::RoutingGet,
    ) {
        return Ok(());
    }
    let n: usize = env_or("PX_FAULT_BURST", DEFAULT_BURST);
    let rate: f64 = env_or("PX_FAULT_RATE", 0.10);
    let seed: u64 = env_or("PX_FAULT_SEED", 15);
    let env = Env::spawn(None).await?;
    let setup = Instant::now();
    let tokens = env.served_tokens(n, "burst").await?;
    let prepared = setup.elapsed();

    let proxy = FaultProxy::start(
        &env.devnet.rpc_url(),
        Faults {
            rate,
            seed,
            hang: Duration::from_millis(1_500),
            max_latency: Duration::from_millis(300),
        },
    )
    .await?;
    let mut config = env.config();
    config.adapter.enabled = false;
    config.adapter.host = [127, 0, 0, 1].into();
    config.chain.rpc_url = Some(proxy.url());
    config.chain.rpc_timeout_ms = Some(1_000);
    config.relayer.confirmations = 2;
    config.relayer.poll_interval_ms = 200;
    // Started through the faulty proxy too: transient failures at start are retried.
    let oracle = px_oracle::spawn(config).await?;
    let p = env.devnet.provider(0);
    let _: Value = p.raw_request("evm_setIntervalMining".into(), (1,)).await?;

    let start = Instant::now();
    let nft = env.nft(FIRST_USER);
    let mut pending = Vec::with_capacity(n);
    for &token in &tokens {
        pending.push(nft.requestSync(token).gas(300_000).send().await?);
    }
    let mut request_ids = Vec::with_capacity(n);
    for pending in pending {
        let receipt = pending.get_receipt().await?;
        let ev = receipt
            .inner
            .logs()
            .iter()
            .find_map(|l| l.log_decode::<StorageNFT::SyncRequested>().ok())
            .ok_or("no SyncRequested")?;
        request_ids.push(ev.inner.data.requestId);
    }
    let all = wait_for(Duration::from_secs(240), || async {
        let answered = answers(&env).await.ok()?;
        request_ids
            .iter()
            .all(|id| answered.contains_key(id))
            .then_some(answered)
    })
    .await;
    let answered_after = start.elapsed();
    let db = oracle.relayer().expect("relayer runs").db().clone();
    let done = wait_for(Duration::from_secs(60), || async {
        let entries = db.all().ok()?;
        let done = entries
            .iter()
            .filter(|e| matches!(e.stage, Stage::Done { .. }))
            .count();
        (done == n).then_some(())
    })
    .await;
    let done_after = start.elapsed();

    // What happened, whatever the verdict.
    let answered = answers(&env).await?;
    let lost = request_ids
        .iter()
        .filter(|id| !answered.contains_key(*id))
        .count();
    let double = request_ids
        .iter()
        .filter(|id| answered.get(*id).is_some_and(|b| b.len() > 1))
        .count();
    let mut wrong = 0;
    for (i, &token) in tokens.iter().enumerate() {
        let info = env.info(token).await?;
        if !info.pending && (info.lastStatus != sync_status::OK || info.used != 1_000 + i as u64) {
            wrong += 1;
        }
    }
    let txs = env.oracle_tx_count().await?;
    let metrics = oracle.metrics().render();
    let rpc_failures = metrics
        .lines()
        .find(|l| l.starts_with("px_oracle_failures_total{kind=\"rpc\"}"))
        .unwrap_or("no rpc failures counted")
        .to_string();
    println!(
        "fault burst: {n} requests, fault rate {rate}, seed {seed} (setup {prepared:?}): all \
         answered on chain {answered_after:?} after the first request was sent, all confirmed \
         done in the relayer after {done_after:?}; lost {lost}, double {double}, wrong {wrong}; \
         oracle transactions {txs}; proxy: {}; relayer: {rpc_failures}",
        proxy.stats.summary()
    );
    assert!(all.is_some(), "every request answered ({lost} lost)");
    assert_eq!((lost, double, wrong), (0, 0, 0), "lost, double, wrong");
    assert!(
        done.is_some(),
        "every request marked done after confirmations"
    );
    assert_eq!(txs, n as u64, "one nonce per request");
    assert!(proxy.stats.injected() > 0, "faults were injected");
    proxy.set_rate(0.0);
    oracle.shutdown().await;
    Ok(())
}

/// The raw signed transaction `hash` (to re-include it in a reorg).
async fn raw_tx(env: &Env, hash: B256) -> TestResult<Bytes> {
    Ok(env
        .devnet
        .provider(0)
        .raw_request("eth_getRawTransactionByHash".into(), (hash,))
        .await?)
}

/// `anvil_reorg`: replaces the last `depth` blocks, re-including `txs` in the first new one.
async fn reorg(env: &Env, depth: u64, txs: &[Bytes]) -> TestResult {
    let txs: Vec<(Bytes, u64)> = txs.iter().map(|t| (t.clone(), 0)).collect();
    let _: Value = env
        .devnet
        .provider(0)
        .raw_request("anvil_reorg".into(), (depth, txs))
        .await?;
    Ok(())
}

async fn head(env: &Env) -> TestResult<u64> {
    Ok(env.devnet.provider(0).get_block_number().await?)
}

/// The request's sync transaction: its hash and block.
async fn request_tx(env: &Env, token: U256) -> TestResult<(B256, B256, u64)> {
    let receipt = env
        .nft(FIRST_USER)
        .requestSync(token)
        .send()
        .await?
        .get_receipt()
        .await?;
    let id = receipt
        .inner
        .logs()
        .iter()
        .find_map(|l| l.log_decode::<StorageNFT::SyncRequested>().ok())
        .ok_or("no SyncRequested")?
        .inner
        .data
        .requestId;
    Ok((
        id,
        receipt.transaction_hash,
        receipt.block_number.ok_or("no block")?,
    ))
}

/// A reorg replaces the request's block before the fulfill is signed: re-included, the
/// request is answered once (its entry follows it to the new block); left out, it is never
/// answered.
async fn reorg_before_the_fulfill(reinclude: bool, test: &str) -> TestResult {
    if skip(test, Capability::RoutingGet) {
        return Ok(());
    }
    let mut env = Env::spawn(None).await?;
    let oracle = env.relayer().await?;
    let token = env.served_token("reorg-a", 5_151, 1).await?;
    let db = oracle.relayer().expect("relayer runs").db().clone();

    // IPFS down: the relayer records the request and cannot answer it yet.
    env.ipfs.stop().await;
    let (request_id, tx, block) = request_tx(&env, token).await?;
    let raw = raw_tx(&env, tx).await?;
    let seen = wait_for(Duration::from_secs(10), || async {
        db.get(&request_id).ok().flatten()
    })
    .await
    .ok_or("relayer recorded the request")?;
    assert_eq!(seen.request.block_number, block);
    let old_hash = seen.request.block_hash;

    let depth = head(&env).await? - block + 1;
    let txs = if reinclude { vec![raw] } else { Vec::new() };
    reorg(&env, depth, &txs).await?;
    env.devnet.mine().await?;
    env.ipfs.start().await?;

    if reinclude {
        let info = env.wait_answered(token, Duration::from_secs(30)).await?;
        assert_eq!((info.lastStatus, info.used), (sync_status::OK, 5_151));
        let entry = wait_for(Duration::from_secs(10), || async {
            let e = db.get(&request_id).ok().flatten()?;
            matches!(e.stage, Stage::Done { .. }).then_some(e)
        })
        .await
        .ok_or("request done")?;
        assert_ne!(
            entry.request.block_hash, old_hash,
            "entry follows the new block"
        );
        assert_eq!(env.answers_for(request_id).await?, 1);
        assert_eq!(env.oracle_tx_count().await?, 1);
    } else {
        let gone = wait_for(Duration::from_secs(15), || async {
            matches!(db.get(&request_id).ok().flatten()?.stage, Stage::Reorged).then_some(())
        })
        .await;
        assert!(gone.is_some(), "the request is marked reorged out");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            env.oracle_tx_count().await?,
            0,
            "no fulfill for a gone request"
        );
        assert!(!env.info(token).await?.pending);
    }
    oracle.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_reincluded_by_a_reorg_before_the_fulfill_is_answered_once() -> TestResult {
    reorg_before_the_fulfill(
        true,
        "a_request_reincluded_by_a_reorg_before_the_fulfill_is_answered_once",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_dropped_by_a_reorg_before_the_fulfill_is_never_answered() -> TestResult {
    reorg_before_the_fulfill(
        false,
        "a_request_dropped_by_a_reorg_before_the_fulfill_is_never_answered",
    )
    .await
}

/// Mines a block every 200 ms until dropped (automine only mines on transactions).
fn keep_mining(env: &Env) -> tokio::task::JoinHandle<()> {
    let p = env.devnet.provider(0);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = p.raw_request::<_, Value>("evm_mine".into(), ()).await;
        }
    })
}

/// After the fulfill is mined (and before it has its confirmations) a reorg removes it: the
/// relayer sends it again, and the request ends answered exactly once and done.
async fn reorg_after_the_fulfill(rollback: bool, test: &str) -> TestResult {
    if skip(test, Capability::RoutingGet) {
        return Ok(());
    }
    let env = Env::spawn(None).await?;
    let mut config = env.config();
    config.adapter.enabled = false;
    config.relayer.confirmations = 2;
    let oracle = px_oracle::spawn(config).await?;
    let token = env.served_token("reorg-b", 6_262, 1).await?;
    let db = oracle.relayer().expect("relayer runs").db().clone();

    let (request_id, tx, block) = request_tx(&env, token).await?;
    let raw = raw_tx(&env, tx).await?;
    // Confirmations 2: the request is acted on once one more block is mined.
    env.devnet.mine().await?;
    let info = env.wait_answered(token, Duration::from_secs(30)).await?;
    assert_eq!(info.used, 6_262);
    // Automine: the fulfill is the head block, without a second confirmation yet.
    let fulfilled_at = head(&env).await?;
    assert!(
        matches!(
            db.get(&request_id)?.ok_or("entry")?.stage,
            Stage::Sending { .. }
        ),
        "not done before its confirmations"
    );
    if rollback {
        // `anvil_rollback` drops the fulfill block and its transaction.
        let _: Value = env
            .devnet
            .provider(0)
            .raw_request("anvil_rollback".into(), (1u64,))
            .await?;
    } else {
        // Replace the request's and the fulfill's blocks; only the request comes back.
        reorg(&env, fulfilled_at - block + 1, &[raw]).await?;
    }
    assert!(env.info(token).await?.pending, "the answer was reorged out");

    let miner = keep_mining(&env);
    let info = env.wait_answered(token, Duration::from_secs(30)).await?;
    assert_eq!((info.lastStatus, info.used), (sync_status::OK, 6_262));
    let done = wait_for(Duration::from_secs(15), || async {
        matches!(
            db.get(&request_id).ok().flatten()?.stage,
            Stage::Done { .. }
        )
        .then_some(())
    })
    .await;
    miner.abort();
    assert!(done.is_some(), "request done after its confirmations");
    assert_eq!(env.answers_for(request_id).await?, 1, "answered once");
    assert_eq!(env.oracle_tx_count().await?, 1, "the same fulfill, once");
    oracle.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fulfill_rolled_back_before_its_confirmations_is_sent_again() -> TestResult {
    reorg_after_the_fulfill(
        true,
        "a_fulfill_rolled_back_before_its_confirmations_is_sent_again",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_reincluded_after_its_fulfill_was_reorged_out_is_answered_once() -> TestResult {
    reorg_after_the_fulfill(
        false,
        "a_request_reincluded_after_its_fulfill_was_reorged_out_is_answered_once",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthorized_or_unfunded_relayer_key_refuses_to_start() -> TestResult {
    let env = Env::spawn(None).await?;

    // A funded key that is not an authorized sender of the Operator.
    let mut config = env.config();
    config.adapter.enabled = false;
    let stranger = env.devnet.signer(FIRST_USER + 5);
    config.relayer.private_key = Some(px_oracle::config::Secret::new(alloy::hex::encode_prefixed(
        stranger.to_bytes(),
    )));
    let err = px_oracle::spawn(config)
        .await
        .expect_err("an unauthorized key is refused");
    let text = err.to_string();
    assert!(text.contains("not an authorized sender"), "{text}");
    assert!(text.contains(&stranger.address().to_string()), "{text}");

    // The authorized key with no gas money.
    let p = env.devnet.provider(0);
    let _: Value = p
        .raw_request(
            "anvil_setBalance".into(),
            (env.devnet.address(ORACLE), U256::ZERO),
        )
        .await?;
    let mut config = env.config();
    config.adapter.enabled = false;
    let err = px_oracle::spawn(config)
        .await
        .expect_err("an unfunded key is refused");
    let text = err.to_string();
    assert!(text.contains("fund it"), "{text}");

    // Funded again: it starts.
    let _: Value = p
        .raw_request(
            "anvil_setBalance".into(),
            (env.devnet.address(ORACLE), U256::from(10u128.pow(18))),
        )
        .await?;
    let oracle = env.relayer().await?;
    oracle.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayer_only_mode_serves_a_real_health_check_and_metrics() -> TestResult {
    let mut env = Env::spawn(None).await?;
    let oracle = env.relayer().await?;
    let addr = oracle
        .ops_addr()
        .ok_or("relayer-only mode serves /health")?;
    let client = reqwest::Client::new();
    let health = |client: reqwest::Client| async move {
        let res = client.get(format!("http://{addr}/health")).send().await?;
        let status = res.status().as_u16();
        TestResult::Ok((status, res.json::<Value>().await?))
    };
    let (status, body) = health(client.clone()).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["chain"]["ok"], true, "{body}");
    assert_eq!(body["ipfs"]["ok"], true, "{body}");

    env.ipfs.stop().await;
    let (status, body) = health(client.clone()).await?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "DOWN", "{body}");
    assert_eq!(body["ipfs"]["ok"], false, "{body}");
    assert_eq!(body["chain"]["ok"], true, "{body}");
    env.ipfs.start().await?;

    let text = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    for metric in [
        "px_oracle_relayer_open_requests",
        "px_oracle_relayer_cursor_block",
        "px_oracle_relayer_balance_ether",
    ] {
        assert!(text.contains(metric), "{metric} in {text}");
    }
    let balance = text
        .lines()
        .find(|l| l.starts_with("px_oracle_relayer_balance_ether "))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or("a balance value")?;
    assert!(balance > 0.0, "{text}");
    oracle.shutdown().await;
    Ok(())
}

/// Sets anvil's block gas limit.
async fn block_gas_limit(env: &Env, gas: u64) -> TestResult {
    let _: Value = env
        .devnet
        .provider(0)
        .raw_request("anvil_setBlockGasLimit".into(), (U256::from(gas),))
        .await?;
    Ok(())
}

/// A fulfil stuck in the sending stage past its request's expiry, for a request the holder
/// closed meanwhile (re-requesting after expiry cancels it at the Operator), is abandoned:
/// the relayer fills its nonce with a zero-value transfer to self and skips the request, which
/// is never fulfilled; the nonces after it move on. The fulfil sticks for real: blocks are
/// made too small for it (block gas limit 400,000 under the fulfil's 500,000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fulfil_stuck_past_expiry_of_a_closed_request_is_abandoned_and_its_nonce_filled()
-> TestResult {
    if skip(
        "a_fulfil_stuck_past_expiry_of_a_closed_request_is_abandoned_and_its_nonce_filled",
        Capability::RoutingGet,
    ) {
        return Ok(());
    }
    let env = Env::spawn(None).await?;
    let mut config = env.config();
    config.adapter.enabled = false;
    config.relayer.stuck_after_secs = 1;
    let oracle = px_oracle::spawn(config).await?;
    let token = env.served_token("stuck-expiry", 321, 1).await?;
    let nonce = env.oracle_tx_count().await?;

    block_gas_limit(&env, 400_000).await?;
    let first = env.request_sync(0, token).await?;
    let db = oracle.relayer().expect("relayer runs").db().clone();
    let sending = wait_for(Duration::from_secs(20), || async {
        match db.get(&first).ok().flatten()?.stage {
            Stage::Sending { nonce, txs, .. } => Some((nonce, txs)),
            _ => None,
        }
    })
    .await
    .ok_or("the first fulfil is signed")?;
    assert_eq!(sending.0, nonce);
    assert!(!sending.1[0].cancel);

    // Past expiry, the holder asks again: the contract cancels the first request.
    env.devnet.time_travel(301).await?;
    let second = env.request_sync(0, token).await?;
    let filled = wait_for(Duration::from_secs(30), || async {
        match db.get(&first).ok().flatten()?.stage {
            Stage::Skipped { reason } => Some(reason),
            _ => None,
        }
    })
    .await
    .ok_or("the stuck fulfil of the closed request was abandoned")?;
    println!("first request: {filled}");
    assert!(
        filled.starts_with(&format!("expired and closed; nonce {nonce} filled by ")),
        "{filled}"
    );
    assert!(
        oracle
            .metrics()
            .render()
            .contains("px_oracle_fulfills_total{kind=\"cancelled\"}"),
        "a cancel was sent"
    );

    // Blocks big enough again: the second request's fulfil (the next nonce) is mined.
    block_gas_limit(&env, 30_000_000).await?;
    let info = env.wait_answered(token, Duration::from_secs(60)).await?;
    assert_eq!(info.lastStatus, sync_status::OK);
    assert_eq!(info.used, 321);
    assert_eq!(env.answers_for(first).await?, 0, "the closed request");
    assert_eq!(env.answers_for(second).await?, 1);
    assert_eq!(
        env.oracle_tx_count().await?,
        nonce + 2,
        "the cancel and one fulfil"
    );
    oracle.shutdown().await;
    Ok(())
}

/// Requests counted by method over `window`: (calls per poll, polls, calls by method). A
/// poll is one scan step, which reads the head once (`eth_blockNumber`).
async fn rpc_per_poll(
    proxy: &FaultProxy,
    window: Duration,
) -> (f64, u64, std::collections::BTreeMap<String, u64>) {
    let before = proxy.stats.by_method();
    tokio::time::sleep(window).await;
    let mut diff = proxy.stats.by_method();
    for (method, n) in &mut diff {
        *n -= before.get(method).copied().unwrap_or(0);
    }
    diff.retain(|_, n| *n > 0);
    let polls = diff.get("eth_blockNumber").copied().unwrap_or(0);
    let total: u64 = diff.values().sum();
    (total as f64 / polls.max(1) as f64, polls, diff)
}

/// "Cost must stay flat": with every request finished, the relayer's JSON-RPC calls per poll
/// are the same for 1 finished request as for `PX_FLAT_FINISHED` (default 20), counted by a
/// loopback proxy in front of anvil.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_calls_per_poll_are_flat_in_the_number_of_finished_requests() -> TestResult {
    if skip(
        "rpc_calls_per_poll_are_flat_in_the_number_of_finished_requests",
        Capability::RoutingGet,
    ) {
        return Ok(());
    }
    let n: usize = env_or("PX_FLAT_FINISHED", 20);
    let env = Env::spawn(None).await?;
    let tokens = env.served_tokens(n, "flat").await?;
    let proxy = FaultProxy::start(
        &env.devnet.rpc_url(),
        Faults {
            rate: 0.0,
            seed: 0,
            hang: Duration::ZERO,
            max_latency: Duration::ZERO,
        },
    )
    .await?;
    let mut config = env.config();
    config.adapter.enabled = false;
    config.chain.rpc_url = Some(proxy.url());
    let oracle = px_oracle::spawn(config).await?;
    let db = oracle.relayer().expect("relayer runs").db().clone();
    let all_done = |count: usize| {
        let db = db.clone();
        async move {
            wait_for(Duration::from_secs(120), || async {
                let entries = db.all().ok()?;
                (entries.len() == count
                    && entries
                        .iter()
                        .all(|e| matches!(e.stage, Stage::Done { .. })))
                .then_some(())
            })
            .await
            .ok_or_else(|| format!("{count} requests done"))
        }
    };
    let window = Duration::from_secs(3);

    env.request_sync(0, tokens[0]).await?;
    all_done(1).await?;
    let (one, one_polls, one_calls) = rpc_per_poll(&proxy, window).await;

    let nft = env.nft(FIRST_USER);
    for &token in &tokens[1..] {
        nft.requestSync(token).send().await?.get_receipt().await?;
    }
    all_done(n).await?;
    let (many, many_polls, many_calls) = rpc_per_poll(&proxy, window).await;
    println!(
        "JSON-RPC calls per poll with 1 finished request: {one:.2} ({one_polls} polls in \
         {window:?}: {one_calls:?}); with {n} finished: {many:.2} ({many_polls} polls: \
         {many_calls:?})"
    );
    assert!(one_polls >= 5 && many_polls >= 5, "the relayer polls");
    // The balance is read every 10th poll: allow for one reading more in a window.
    assert!(
        many <= one + 0.5,
        "calls per poll grew with finished requests: {one:.2} -> {many:.2}"
    );
    oracle.shutdown().await;
    Ok(())
}
