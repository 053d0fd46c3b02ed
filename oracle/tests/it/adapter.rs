//! The external adapter over real HTTP on loopback: shapes, bad input, unknown token, IPFS
//! down, health, metrics on both ports.

use std::time::Duration;

use alloy::primitives::U256;
use px_cli::daemon::Capability;
use px_core::contracts::sync_status;
use serde_json::{Value, json};

use crate::common::{Env, TestResult, skip};

async fn post(client: &reqwest::Client, url: &str, body: String) -> TestResult<(u16, Value)> {
    let res = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = res.status().as_u16();
    Ok((status, res.json().await?))
}

fn assert_error(body: &Value, job: &str, status: u16, name: &str) {
    assert_eq!(body["jobRunID"], job, "{body}");
    assert_eq!(body["status"], "errored", "{body}");
    assert_eq!(body["statusCode"], status, "{body}");
    assert_eq!(body["error"]["name"], name, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapter_answers_in_the_chainlink_shapes() -> TestResult {
    if skip(
        "adapter_answers_in_the_chainlink_shapes",
        Capability::RoutingGet,
    ) {
        return Ok(());
    }
    let mut env = Env::spawn(None).await?;
    let mut config = env.config();
    config.relayer.enabled = false;
    config.adapter.cache_max_age_ms = 60_000;
    config.adapter.metrics_port = Some(0);
    let oracle = px_oracle::spawn(config).await?;
    let base = format!("http://{}", oracle.adapter_addr().expect("adapter runs"));
    let client = reqwest::Client::new();

    let good = env.mint(0).await?;
    let name = env.key_gen("ea-good").await?;
    env.bind(good, &name).await?;
    let cid = env
        .publish_record("ea-good", &env.record(good, 777, 4))
        .await?;

    let bad = env.mint(0).await?;
    let name = env.key_gen("ea-bad").await?;
    env.bind(bad, &name).await?;
    let bad_cid = env.add(b"not json".to_vec()).await?;
    env.publish("ea-bad", &bad_cid).await?;

    // Success shape, token id as a number.
    let (status, body) = post(
        &client,
        &base,
        json!({"id": "run-1", "data": {"tokenId": good.to::<u64>()}}).to_string(),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["jobRunID"], "run-1");
    assert_eq!(body["statusCode"], 200);
    assert_eq!(body["result"], "777");
    let data = &body["data"];
    assert_eq!(data["status"], sync_status::OK);
    assert_eq!(data["used"], "777");
    assert_eq!(data["fileCount"], 3);
    assert_eq!(data["seq"], "4");
    assert_eq!(data["cid"], cid.as_str());
    assert_eq!(data["result"], "777");
    let cid_bytes = cid::Cid::try_from(cid.as_str())?.to_bytes();
    assert_eq!(data["recordCid"], alloy::hex::encode_prefixed(cid_bytes));
    assert_eq!(data["tokenId"], good.to_string());

    // A bad record is still an adapter success, carrying the error status.
    let (status, body) = post(
        &client,
        &base,
        json!({"id": 9, "data": {"tokenId": bad.to_string()}}).to_string(),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["jobRunID"], "9");
    assert_eq!(body["data"]["status"], sync_status::BAD_USAGE_RECORD);
    assert_eq!(body["data"]["used"], "0");
    assert!(
        body["data"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not valid"))
    );

    // Bad input: 400 in the error shape.
    for (body, job) in [
        (json!({"id": "x"}).to_string(), "x"),
        (json!({"id": "x", "data": {}}).to_string(), "x"),
        (
            json!({"id": "x", "data": {"tokenId": "twelve"}}).to_string(),
            "x",
        ),
        (json!({"id": "x", "data": {"tokenId": -1}}).to_string(), "x"),
        (
            json!({"id": "x", "data": {"tokenId": "18446744073709551616"}}).to_string(),
            "x",
        ),
        (json!({"id": "x", "data": "1"}).to_string(), "x"),
        ("{not json".to_string(), "1"),
    ] {
        let (status, res) = post(&client, &base, body.clone()).await?;
        assert_eq!(status, 400, "{body} -> {res}");
        assert_error(&res, job, 400, "AdapterInputError");
    }

    // Unknown token: 404.
    let (status, res) = post(
        &client,
        &base,
        json!({"id": "u", "data": {"tokenId": 999}}).to_string(),
    )
    .await?;
    assert_eq!(status, 404, "{res}");
    assert_error(&res, "u", 404, "TokenNotFound");

    // IPFS down: uncached answers fail with 502; the cached OK answer is still served.
    env.ipfs.stop().await;
    let (status, res) = post(
        &client,
        &base,
        json!({"id": "d", "data": {"tokenId": bad.to::<u64>()}}).to_string(),
    )
    .await?;
    assert_eq!(status, 502, "{res}");
    assert_error(&res, "d", 502, "IpfsUnavailable");
    let (status, body) = post(
        &client,
        &base,
        json!({"id": "c", "data": {"tokenId": good.to::<u64>()}}).to_string(),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["used"], "777");
    env.ipfs.start().await?;

    // Health.
    let res = client.get(format!("{base}/health")).send().await?;
    assert_eq!(res.status().as_u16(), 200);
    let health = res.json::<Value>().await?;
    assert_eq!(health["status"], "OK", "{health}");
    assert_eq!(health["chain"]["ok"], true, "{health}");
    assert_eq!(health["ipfs"]["ok"], true, "{health}");

    // Metrics, on the adapter port and on the metrics port.
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        text.contains("px_oracle_ea_requests_total{kind=\"ok\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("px_oracle_ea_requests_total{kind=\"bad_request\"} 7"),
        "{text}"
    );
    assert!(
        text.contains("px_oracle_ea_requests_total{kind=\"not_found\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("px_oracle_ea_requests_total{kind=\"unavailable\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("px_oracle_answers_total{kind=\"bad_usage_record\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("px_oracle_ea_request_seconds_bucket"),
        "{text}"
    );
    let metrics_url = format!(
        "http://{}/metrics",
        oracle.metrics_addr().expect("metrics port")
    );
    let text2 = client.get(metrics_url).send().await?.text().await?;
    assert!(
        text2.contains("px_oracle_answers_total{kind=\"ok\"} 1"),
        "{text2}"
    );

    // Graceful shutdown: the port stops answering.
    oracle.shutdown().await;
    let after = tokio::time::timeout(
        Duration::from_secs(2),
        client.get(format!("{base}/health")).send(),
    )
    .await;
    assert!(matches!(after, Ok(Err(_))), "server stopped");
    let _ = U256::ZERO;
    Ok(())
}
