//! The relayer end to end: round trip, IPFS outage, reorg, kill -9 and restart.

use std::process::Stdio;
use std::time::Duration;

use alloy::primitives::U256;
use alloy::providers::Provider;
use cid::Cid;
use px_cli::daemon::Capability;
use px_cli::devnet::ORACLE;
use px_core::contracts::{StorageNFT, sync_status};
use px_oracle::relayer::db::Stage;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::common::{Env, TestResult, free_port, skip, wait_for};

const ANSWER_WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_writes_the_published_usage_on_chain() -> TestResult {
    if skip(
        "round_trip_writes_the_published_usage_on_chain",
        Capability::RoutingGet,
    ) {
        return Ok(());
    }
    let env = Env::spawn(None).await?;
    let mut config = env.config();
    config.adapter.enabled = false;
    // Scan the deployment's history in small ranges.
    config.relayer.max_log_range = 2;
    let oracle = px_oracle::spawn(config).await?;

    let token = env.mint(0).await?;
    let name = env.key_gen("token-a").await?;
    env.bind(token, &name).await?;
    let (ok, _) = env
        .nft(0)
        .canUpload(token, U256::from(1))
        .call()
        .await
        .map(|r| (r.ok, r.reason))?;
    assert!(ok, "freshly minted token is inside its sync window");
    let record = env.record(token, 123_456, 7);
    let cid = env.publish_record("token-a", &record).await?;

    let request_id = env.request_sync(0, token).await?;
    let info = env.wait_answered(token, ANSWER_WITHIN).await?;
    assert_eq!(info.lastStatus, sync_status::OK);
    assert_eq!(info.used, 123_456);
    assert_eq!(info.fileCount, 3);
    assert_eq!(info.seq, 7);
    assert_eq!(env.answers_for(request_id).await?, 1);

    // The Synced event carries the record's CID.
    let filter = alloy::rpc::types::Filter::new()
        .address(env.devnet.deployment.storage_nft)
        .event_signature(<StorageNFT::Synced as alloy::sol_types::SolEvent>::SIGNATURE_HASH)
        .from_block(0);
    let logs = env.devnet.provider(0).get_logs(&filter).await?;
    let synced = logs[0].log_decode::<StorageNFT::Synced>()?;
    assert_eq!(
        synced.inner.data.recordCid.to_vec(),
        Cid::try_from(cid.as_str())?.to_bytes()
    );
    assert_eq!(env.oracle_tx_count().await?, 1);

    let db = oracle.relayer().expect("relayer runs").db().clone();
    // The relayer notices the receipt on its next poll.
    let done = wait_for(Duration::from_secs(5), || async {
        let entry = db.get(&request_id).ok().flatten()?;
        matches!(entry.stage, Stage::Done { status: 0, .. }).then_some(())
    })
    .await;
    assert!(done.is_some(), "request marked done");
    let metrics = oracle.metrics().render();
    assert!(
        metrics.contains("px_oracle_fulfills_total{kind=\"confirmed\"} 1"),
        "{metrics}"
    );
    oracle.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipfs_outage_delays_the_answer_and_writes_nothing_wrong() -> TestResult {
    if skip(
        "ipfs_outage_delays_the_answer_and_writes_nothing_wrong",
        Capability::RoutingGet,
    ) {
        return Ok(());
    }
    let mut env = Env::spawn(None).await?;
    let oracle = env.relayer().await?;
    let token = env.served_token("token-b", 999, 3).await?;

    env.ipfs.stop().await;
    env.request_sync(0, token).await?;
    let failed = wait_for(Duration::from_secs(10), || async {
        oracle
            .metrics()
            .render()
            .contains("px_oracle_failures_total{kind=\"ipfs_unavailable\"}")
            .then_some(())
    })
    .await;
    assert!(failed.is_some(), "relayer saw the IPFS failure");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let info = env.info(token).await?;
    assert!(info.pending, "nothing answered while IPFS is down");
    assert_eq!(info.used, 0);
    assert_eq!(env.oracle_tx_count().await?, 0);

    env.ipfs.start().await?;
    let info = env.wait_answered(token, ANSWER_WITHIN).await?;
    assert_eq!(info.lastStatus, sync_status::OK);
    assert_eq!(info.used, 999);
    assert_eq!(env.oracle_tx_count().await?, 1);
    oracle.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_reorged_out_is_never_fulfilled() -> TestResult {
    if skip(
        "a_request_reorged_out_is_never_fulfilled",
        Capability::RoutingGet,
    ) {
        return Ok(());
    }
    let mut env = Env::spawn(None).await?;
    let oracle = env.relayer().await?;
    let token = env.served_token("token-c", 5, 1).await?;

    // Keep the relayer from answering at once, so the reorg lands between "seen" and "sent".
    env.ipfs.stop().await;
    let p = env.devnet.provider(0);
    let snapshot: U256 = p.raw_request("evm_snapshot".into(), ()).await?;
    let request_id = env.request_sync(0, token).await?;
    let db = oracle.relayer().expect("relayer runs").db().clone();
    let seen = wait_for(Duration::from_secs(10), || async {
        db.get(&request_id).ok().flatten()
    })
    .await;
    assert!(seen.is_some(), "relayer recorded the request");

    let reverted: bool = p.raw_request("evm_revert".into(), (snapshot,)).await?;
    assert!(reverted);
    for _ in 0..3 {
        env.devnet.mine().await?;
    }
    env.ipfs.start().await?;
    let gone = wait_for(Duration::from_secs(15), || async {
        matches!(db.get(&request_id).ok().flatten()?.stage, Stage::Reorged).then_some(())
    })
    .await;
    assert!(gone.is_some(), "the reorged request is marked Reorged");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(env.oracle_tx_count().await?, 0, "no fulfill was sent");
    let info = env.info(token).await?;
    assert!(!info.pending);
    assert_eq!(info.used, 0);
    let metrics = oracle.metrics().render();
    assert!(
        metrics.contains("px_oracle_failures_total{kind=\"reorg\"}"),
        "{metrics}"
    );
    oracle.shutdown().await;
    Ok(())
}

/// The oracle binary with the environment's settings, adapter on `port` (for metrics).
fn oracle_process(env: &Env, port: u16) -> std::io::Result<Child> {
    crashing_oracle_process(env, port, "")
}

/// [`oracle_process`] aborting at the crash point `crash_at` (`PX_ORACLE_CRASH_AT`).
fn crashing_oracle_process(env: &Env, port: u16, crash_at: &str) -> std::io::Result<Child> {
    let key = alloy::hex::encode_prefixed(env.devnet.signer(ORACLE).to_bytes());
    Command::new(env!("CARGO_BIN_EXE_px-oracle"))
        .env_clear()
        .env("PX_ORACLE_CRASH_AT", crash_at)
        .env("RPC_URL", env.devnet.rpc_url())
        .env("DEPLOYMENT", &env.deployment_path)
        .env("IPFS_API_URL", env.ipfs.url())
        .env("IPFS_FLAVOR", env.ipfs.flavor_name())
        .env("ORACLE_PRIVATE_KEY", key)
        .env("RELAYER_DB", env.dir.path().join("relayer.redb"))
        .env("POLL_INTERVAL", "100")
        .env("CONFIRMATIONS", "1")
        .env("EA_HOST", "127.0.0.1")
        .env("EA_PORT", port.to_string())
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
}

async fn metric(port: u16, needle: &str) -> Option<String> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(needle))
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_fulfills_each_request_exactly_once() -> TestResult {
    if skip(
        "kill_9_and_restart_fulfills_each_request_exactly_once",
        Capability::RoutingGet,
    ) {
        return Ok(());
    }
    let mut env = Env::spawn(None).await?;
    let mut tokens = Vec::new();
    for i in 0..6 {
        tokens.push(env.served_token(&format!("kill-{i}"), 1000 + i, 2).await?);
    }

    // Phase 1: the relayer sees a request and cannot answer yet (IPFS down); kill -9 it.
    env.ipfs.stop().await;
    let port = free_port();
    let mut child = oracle_process(&env, port)?;
    let first = env.request_sync(0, tokens[0]).await?;
    let seen = wait_for(Duration::from_secs(20), || {
        metric(port, "px_oracle_failures_total{kind=\"ipfs_unavailable\"}")
    })
    .await;
    assert!(seen.is_some(), "relayer saw the request");
    child.kill().await?;
    assert!(env.info(tokens[0]).await?.pending);
    env.ipfs.start().await?;

    // Phase 2: more requests, and kill -9 at arbitrary points while they are being fulfilled.
    let mut requests = vec![(tokens[0], first)];
    for &token in &tokens[1..] {
        requests.push((token, env.request_sync(0, token).await?));
    }
    for round in 0..4u64 {
        let mut child = oracle_process(&env, port)?;
        tokio::time::sleep(Duration::from_millis(150 + 70 * round)).await;
        child.kill().await?;
    }

    // Phase 3: let it finish.
    let _child = oracle_process(&env, port)?;
    for (i, &(token, request_id)) in requests.iter().enumerate() {
        let info = env.wait_answered(token, ANSWER_WITHIN).await?;
        assert_eq!(info.lastStatus, sync_status::OK);
        assert_eq!(info.used, 1000 + i as u64);
        assert_eq!(
            env.answers_for(request_id).await?,
            1,
            "request {i} answered once"
        );
    }
    // Exactly one transaction per request: nothing double-sent, nothing reverted.
    assert_eq!(env.oracle_tx_count().await?, requests.len() as u64);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_fulfill_is_replaced_with_a_higher_fee_and_mined_once() -> TestResult {
    if skip(
        "a_stuck_fulfill_is_replaced_with_a_higher_fee_and_mined_once",
        Capability::RoutingGet,
    ) {
        return Ok(());
    }
    let mut env = Env::spawn(None).await?;
    let mut config = env.config();
    config.adapter.enabled = false;
    config.relayer.stuck_after_secs = 1;
    let oracle = px_oracle::spawn(config).await?;
    let token = env.served_token("token-s", 4242, 9).await?;

    // The request is mined; from then on nothing is mined until the test says so.
    env.ipfs.stop().await;
    let request_id = env.request_sync(0, token).await?;
    let p = env.devnet.provider(0);
    let _: Value = p.raw_request("evm_setAutomine".into(), (false,)).await?;
    env.ipfs.start().await?;

    let db = oracle.relayer().expect("relayer runs").db().clone();
    let replaced = wait_for(Duration::from_secs(15), || async {
        match db.get(&request_id).ok().flatten()?.stage {
            Stage::Sending { txs, .. } if txs.len() >= 2 => Some(txs),
            _ => None,
        }
    })
    .await
    .expect("the pending fulfill was replaced");
    assert!(replaced[1].max_fee_per_gas > replaced[0].max_fee_per_gas);
    assert!(replaced[1].max_priority_fee_per_gas > replaced[0].max_priority_fee_per_gas);
    assert_ne!(replaced[0].hash, replaced[1].hash);

    let _: Value = p.raw_request("evm_setAutomine".into(), (true,)).await?;
    env.devnet.mine().await?;
    let info = env.wait_answered(token, ANSWER_WITHIN).await?;
    assert_eq!(info.lastStatus, sync_status::OK);
    assert_eq!(info.used, 4242);
    assert_eq!(env.answers_for(request_id).await?, 1);
    assert_eq!(env.oracle_tx_count().await?, 1, "one nonce used");
    let done = wait_for(Duration::from_secs(5), || async {
        matches!(
            db.get(&request_id).ok().flatten()?.stage,
            Stage::Done { .. }
        )
        .then_some(())
    })
    .await;
    assert!(done.is_some());
    oracle.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipfs_down_until_expiry_answers_unavailable_and_expired_requests_are_skipped() -> TestResult
{
    if skip(
        "ipfs_down_until_expiry_answers_unavailable_and_expired_requests_are_skipped",
        Capability::RoutingGet,
    ) {
        return Ok(());
    }
    let mut env = Env::spawn(None).await?;
    let oracle = env.relayer().await?;
    let mut tokens = Vec::new();
    for key in ["exp-a", "exp-b"] {
        tokens.push(env.served_token(key, 77, 1).await?);
    }
    env.ipfs.stop().await;

    // Within the expiry margin (30 s of 300 s): answered with IPFS_UNAVAILABLE, no usage.
    env.request_sync(0, tokens[0]).await?;
    env.devnet.time_travel(280).await?;
    let info = env.wait_answered(tokens[0], ANSWER_WITHIN).await?;
    assert_eq!(info.lastStatus, sync_status::IPFS_UNAVAILABLE);
    assert_eq!(info.used, 0);

    // Past expiry: skipped, nothing sent; the holder can cancel and ask again.
    let request_id = env.request_sync(0, tokens[1]).await?;
    env.devnet.time_travel(301).await?;
    let db = oracle.relayer().expect("relayer runs").db().clone();
    let skipped = wait_for(Duration::from_secs(20), || async {
        match db.get(&request_id).ok().flatten()?.stage {
            Stage::Skipped { reason } => Some(reason),
            _ => None,
        }
    })
    .await;
    assert_eq!(skipped.as_deref(), Some("expired"));
    assert!(env.info(tokens[1]).await?.pending);
    assert_eq!(env.oracle_tx_count().await?, 1);

    // The holder re-requests (cancelling the expired one); with IPFS back it is answered.
    env.ipfs.start().await?;
    env.request_sync(0, tokens[1]).await?;
    let info = env.wait_answered(tokens[1], ANSWER_WITHIN).await?;
    assert_eq!(info.lastStatus, sync_status::OK);
    assert_eq!(info.used, 77);
    assert_eq!(
        env.answers_for(request_id).await?,
        0,
        "the expired request was never answered"
    );
    oracle.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_answered_elsewhere_is_skipped_without_a_transaction() -> TestResult {
    if skip(
        "a_request_answered_elsewhere_is_skipped_without_a_transaction",
        Capability::RoutingGet,
    ) {
        return Ok(());
    }
    use alloy::network::TransactionBuilder;
    use alloy::sol_types::SolEvent;
    use px_oracle::relayer::request::Request;
    use px_oracle::resolver::{Answer, Rejection};

    let mut env = Env::spawn(None).await?;
    let oracle = env.relayer().await?;
    let token = env.served_token("token-e", 31, 1).await?;

    env.ipfs.stop().await;
    let request_id = env.request_sync(0, token).await?;
    let db = oracle.relayer().expect("relayer runs").db().clone();
    let seen = wait_for(Duration::from_secs(10), || async {
        db.get(&request_id).ok().flatten()
    })
    .await;
    assert!(seen.is_some(), "relayer recorded the request");

    // Another authorized sender (say, a Chainlink job) answers first.
    let d = &env.devnet.deployment;
    let filter = alloy::rpc::types::Filter::new()
        .address(d.operator)
        .event_signature(px_core::contracts::Operator::OracleRequest::SIGNATURE_HASH)
        .from_block(0);
    let logs = env.devnet.provider(0).get_logs(&filter).await?;
    let request = Request::from_log(&logs[0], &[d.job_id], &[d.storage_nft])?;
    assert_eq!(request.request_id, request_id);
    let answer = Answer::rejected(token, &Rejection::NotFound("answered elsewhere".into()));
    let tx = alloy::rpc::types::TransactionRequest::default()
        .with_to(d.operator)
        .with_input(request.fulfill_calldata(&answer))
        .with_gas_limit(500_000);
    let receipt = env
        .devnet
        .provider(ORACLE)
        .send_transaction(tx)
        .await?
        .get_receipt()
        .await?;
    assert!(receipt.status());
    assert_eq!(
        env.info(token).await?.lastStatus,
        sync_status::RECORD_NOT_FOUND
    );

    env.ipfs.start().await?;
    let skipped = wait_for(Duration::from_secs(20), || async {
        match db.get(&request_id).ok().flatten()?.stage {
            Stage::Skipped { reason } => Some(reason),
            _ => None,
        }
    })
    .await
    .expect("relayer skipped the closed request");
    assert!(skipped.starts_with("request closed"), "{skipped}");
    assert_eq!(
        env.oracle_tx_count().await?,
        1,
        "only the other sender's transaction"
    );
    assert_eq!(env.answers_for(request_id).await?, 1);
    oracle.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_each_failpoint_loses_nothing_and_answers_nothing_twice() -> TestResult {
    if skip(
        "a_crash_at_each_failpoint_loses_nothing_and_answers_nothing_twice",
        Capability::RoutingGet,
    ) {
        return Ok(());
    }
    let env = Env::spawn(None).await?;
    let points = [
        "after_record",
        "after_sign",
        "after_broadcast",
        "before_done",
    ];
    let port = free_port();
    let mut requests = Vec::new();
    for (i, point) in points.iter().enumerate() {
        let token = env
            .served_token(&format!("crash-{i}"), 2_000 + i as u64, 1)
            .await?;
        let mut child = crashing_oracle_process(&env, port, point)?;
        requests.push((token, env.request_sync(0, token).await?));
        // The process dies at its crash point (abort: no cleanup, like kill -9).
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .map_err(|_| format!("no crash at {point}"))??;
        assert!(!status.success(), "{point}: {status}");
    }
    let _child = oracle_process(&env, port)?;
    for (i, &(token, request_id)) in requests.iter().enumerate() {
        let info = env.wait_answered(token, ANSWER_WITHIN).await?;
        assert_eq!(info.lastStatus, sync_status::OK);
        assert_eq!(info.used, 2_000 + i as u64);
        assert_eq!(
            env.answers_for(request_id).await?,
            1,
            "request {i} answered once"
        );
    }
    assert_eq!(env.oracle_tx_count().await?, requests.len() as u64);
    Ok(())
}
