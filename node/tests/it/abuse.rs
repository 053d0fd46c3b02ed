//! Abuse: floods of the routes without a session, slowloris clients, oversized bodies, and
//! the per-address throttles. Figures are printed, not asserted (latencies on a shared CI
//! machine vary); liveness has generous timeouts.
//!
//! `flood_soak_without_rate_limits` is a heavier, ignored variant (`cargo test -p px-node
//! --test it flood_soak -- --ignored --nocapture`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use alloy::signers::SignerSync;
use px_core::api::{self, ErrorCode};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fixture::{
    Net, User, assert_consistent, data, metric, pins, quantile, sign_in_message, start_process,
    upload_head, wait_healthy,
};

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Sequential 16 KiB uploads for `secs`: answers the latencies and the failures.
async fn upload_for(user: &User, token: u64, secs: f64, seed: u64) -> (Vec<Duration>, usize) {
    let start = Instant::now();
    let (mut lat, mut failed) = (Vec::new(), 0);
    let mut i = 0;
    while start.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        match user
            .upload(
                token,
                &format!("u{seed}-{i}"),
                data(seed * 10_000 + i, 16 << 10),
            )
            .await
        {
            Ok(_) => lat.push(t.elapsed()),
            Err(e) => {
                eprintln!("upload refused: {e:?}");
                failed += 1;
            }
        }
        i += 1;
    }
    (lat, failed)
}

#[derive(Default)]
struct FloodCount {
    sent: AtomicU64,
    ok: AtomicU64,
    limited: AtomicU64,
    other: AtomicU64,
}

/// One flooding client: nonces and logins (validly signed, for its own address) as fast as
/// `conns` connections allow, until `stop`.
fn flood(net: &Net, base: &str, conns: usize, stop: Arc<AtomicBool>) -> Arc<FloodCount> {
    let count = Arc::new(FloodCount::default());
    let signer = net.devnet.signer(px_cli::devnet::FIRST_USER + 5);
    let http = reqwest::Client::new();
    for _ in 0..conns {
        let (http, base, stop, count, signer) = (
            http.clone(),
            base.to_string(),
            stop.clone(),
            count.clone(),
            signer.clone(),
        );
        tokio::spawn(async move {
            let tally = |s: StatusCode| {
                count.sent.fetch_add(1, Relaxed);
                match s {
                    s if s.is_success() => &count.ok,
                    StatusCode::TOO_MANY_REQUESTS => &count.limited,
                    _ => &count.other,
                }
                .fetch_add(1, Relaxed);
            };
            while !stop.load(Relaxed) {
                let Ok(r) = http.get(format!("{base}/v1/auth/nonce")).send().await else {
                    continue;
                };
                tally(r.status());
                let n: api::NonceResponse = match r.json().await {
                    Ok(n) => n,
                    Err(_) => api::NonceResponse {
                        nonce: "floodnonce0000".into(),
                        expires_at: 0,
                        domain: base.trim_start_matches("http://").into(),
                        uri: base.clone(),
                        chain_id: 31337,
                    },
                };
                let msg = sign_in_message(signer.address(), &n, None).to_string();
                let sig = signer.sign_message_sync(msg.as_bytes()).unwrap();
                let req = api::LoginRequest {
                    message: msg,
                    signature: sig.as_bytes().to_vec().into(),
                };
                if let Ok(r) = http
                    .post(format!("{base}/v1/auth/login"))
                    .json(&req)
                    .send()
                    .await
                {
                    tally(r.status());
                }
            }
        });
    }
    count
}

/// Uploads with and without a nonce + login flood from another client, against a `px-node`
/// process (so its RSS is the node's own). Reports p50/p99 upload latency, successes, the
/// flood's answers and the node's RSS.
async fn flood_run(name: &str, secs: f64, env: &[(&str, &str)]) {
    let net = Net::start().await;
    let data_dir = net.dir.path().join(name);
    let mut env: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.to_string())).collect();
    env.push(("PX_NODE_STORE_SYNC_WRITES", "false".into()));
    // The embedded store's API on a known port, for the consistency check.
    let ipfs = match net.daemon_url() {
        Some(url) => url,
        None => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            env.push(("PX_NODE_STORE_API", format!("127.0.0.1:{port}")));
            format!("http://127.0.0.1:{port}")
        }
    };
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (mut child, url) = start_process(&net, &data_dir, None, true, &env);
    wait_healthy(&url).await;
    let pid = child.id();
    let mut alice = net.user_at(0, url.clone());
    alice.login().await;
    let token = alice.mint(&net).await;
    alice.upload(token, "warm", data(1, 1000)).await.unwrap();

    let (mut calm, calm_failed) = upload_for(&alice, token, secs, 1).await;
    let rss_calm = rss_kib(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let count = flood(&net, &url, 16, stop.clone());
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        tokio::spawn(async move {
            while !stop.load(Relaxed) {
                peak.fetch_max(rss_kib(pid), Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut flooded, flooded_failed) = upload_for(&alice, token, secs, 2).await;
    stop.store(true, Relaxed);
    sampler.await.unwrap();
    let rss_after = rss_kib(pid);

    println!(
        "flood [{name}]: uploads without flood: {} ok, {calm_failed} failed, p50 {:.1} ms, \
         p99 {:.1} ms; with flood: {} ok, {flooded_failed} failed, p50 {:.1} ms, p99 {:.1} ms",
        calm.len(),
        quantile(&mut calm, 0.5).as_secs_f64() * 1e3,
        quantile(&mut calm, 0.99).as_secs_f64() * 1e3,
        flooded.len(),
        quantile(&mut flooded, 0.5).as_secs_f64() * 1e3,
        quantile(&mut flooded, 0.99).as_secs_f64() * 1e3,
    );
    println!(
        "flood [{name}]: flood requests {} ({} ok, {} rate-limited, {} other) in {secs} s; \
         node RSS {} KiB before, peak {} KiB, {} KiB after",
        count.sent.load(Relaxed),
        count.ok.load(Relaxed),
        count.limited.load(Relaxed),
        count.other.load(Relaxed),
        rss_calm,
        peak.load(Relaxed),
        rss_after,
    );
    assert_eq!(
        (calm_failed, flooded_failed),
        (0, 0),
        "every upload succeeds"
    );
    assert!(!flooded.is_empty());
    assert!(
        peak.load(Relaxed) < rss_calm + (256 << 10),
        "node memory bounded under the flood"
    );
    assert_consistent(&alice, &ipfs, token).await;
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_does_not_starve_uploads() {
    flood_run("flood", 3.0, &[]).await;
}

/// Soak: the same flood for 30 s with the rate limits off (the nonce cap and the in-memory
/// nonces then bound memory). Ignored in CI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: 30 s"]
async fn flood_soak_without_rate_limits() {
    flood_run(
        "flood-soak",
        30.0,
        &[("PX_NODE_IP_BURST", "0"), ("PX_NODE_ADDRESS_BURST", "0")],
    )
    .await;
}

/// Sends `head` and then `body` in pieces of `piece` bytes every `every`, until the node
/// answers or closes; answers the status line (empty when closed without an answer) and when.
async fn trickle(
    addr: std::net::SocketAddr,
    head: String,
    body: Vec<u8>,
    piece: usize,
    every: Duration,
) -> (String, Duration) {
    let start = Instant::now();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    let writer = tokio::spawn(async move {
        if wr.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for c in body.chunks(piece) {
            tokio::time::sleep(every).await;
            if wr.write_all(c).await.is_err() {
                return;
            }
        }
        // Then stay silent, connection open.
        tokio::time::sleep(Duration::from_secs(120)).await;
        drop(wr);
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let answer = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    writer.abort();
    assert!(
        answer.is_ok(),
        "the node neither answered nor closed within 60 s"
    );
    let text = String::from_utf8_lossy(&buf);
    (
        text.lines().next().unwrap_or_default().to_string(),
        start.elapsed(),
    )
}

/// Slowloris clients (trickled upload body, stalled body, trickled headers) are cut off and
/// give their quota reservation back; oversized bodies are refused on every route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_requests_are_cut_off_and_release_their_reservation() {
    let net = Net::start().await;
    let mut config = net.config("slowloris");
    config.idle_timeout = Duration::from_secs(1);
    config.min_upload_rate = 1 << 20;
    config.request_timeout = Duration::from_secs(2);
    config.cors_origins = vec!["https://app.example".into()];
    let node = px_node::spawn(config).await.unwrap();
    let mut alice = net.user(0, &node);
    alice.login().await;
    let token = alice.mint(&net).await;
    let ipfs = net.ipfs_url(&node);
    let session = alice.session.clone().unwrap();
    // Leave 1.5 MiB of quota.
    let seed = alice.upload(token, "seed", data(0, 10)).await.unwrap();
    let quota: u64 = 100 << 20;
    node.node()
        .import_files(
            token,
            vec![px_node::node::ImportFile {
                name: "filler".into(),
                cid: seed.file.cid.clone(),
                size: quota - (3 << 19) - 10,
                sha256: None,
            }],
        )
        .await
        .unwrap();
    let before = alice.usage(token).await.unwrap();

    // 1. A trickled 1 MiB upload (1 KiB every 300 ms, under the idle timeout): it holds a
    // 1 MiB reservation, so another 1 MiB upload is refused meanwhile...
    let mib = 1u64 << 20;
    let slow = tokio::spawn(trickle(
        node.addr(),
        upload_head(&node.url(), token, &session, "slow", mib),
        data(5, mib as usize),
        1024,
        Duration::from_millis(300),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let e = alice
        .upload(token, "meanwhile", data(6, mib as usize))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::OverQuota, "the reservation is held");
    // ...until its deadline (idle 1 s + 1 MiB at 1 MiB/s) cuts it off with 408.
    let (status, took) = slow.await.unwrap();
    println!("slowloris upload: {status:?} after {took:?}");
    assert!(status.contains(" 408 "), "{status}");
    // 2. A body that stalls: cut off after the idle timeout.
    let (status, took) = trickle(
        node.addr(),
        upload_head(&node.url(), token, &session, "stalled", mib),
        data(7, 10_000),
        10_000,
        Duration::ZERO,
    )
    .await;
    println!("stalled upload: {status:?} after {took:?}");
    assert!(status.contains(" 408 "), "{status}");
    // 3. Headers trickled a byte at a time: the connection is closed without an answer.
    let head =
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_string() + &"a".repeat(200) + "\r\n\r\n";
    let (status, took) = trickle(
        node.addr(),
        String::new(),
        head.into_bytes(),
        1,
        Duration::from_millis(200),
    )
    .await;
    println!("trickled headers: {status:?} after {took:?}");
    assert!(!status.contains(" 200 "), "{status}");
    assert!(took < Duration::from_secs(30));

    // The reservations are back: the 1 MiB upload fits now.
    let r = alice
        .upload(token, "fits", data(6, mib as usize))
        .await
        .unwrap();
    assert_eq!(r.usage.used, before.used + mib);
    assert!(node.node().db().uploads().unwrap().is_empty());

    // 4. Oversized bodies on every route: 413 from the declared length, before any work.
    let big = vec![b'x'; 64 << 10];
    let routes = [
        (reqwest::Method::GET, "/health".to_string()),
        (reqwest::Method::GET, "/metrics".into()),
        (reqwest::Method::GET, "/openapi.json".into()),
        (reqwest::Method::GET, "/v1/auth/nonce".into()),
        (reqwest::Method::POST, "/v1/auth/login".into()),
        (reqwest::Method::POST, "/v1/auth/logout".into()),
        (reqwest::Method::GET, "/v1/key-assignment".into()),
        (reqwest::Method::POST, format!("/v1/tokens/{token}/key")),
        (reqwest::Method::GET, format!("/v1/tokens/{token}/usage")),
        (reqwest::Method::POST, format!("/v1/tokens/{token}/refresh")),
        (reqwest::Method::POST, format!("/v1/tokens/{token}/rebind")),
        (reqwest::Method::GET, format!("/v1/tokens/{token}/files")),
        (
            reqwest::Method::DELETE,
            format!("/v1/tokens/{token}/files/1"),
        ),
        (
            reqwest::Method::GET,
            format!("/v1/tokens/{token}/content/{}", seed.file.cid),
        ),
    ];
    // A fresh connection each time: the node closes one whose body it did not read, and a
    // pooled client would send the next request into the closing connection.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for (method, path) in &routes {
        let r = fresh
            .request(method.clone(), format!("{}{path}", node.url()))
            .bearer_auth(&session)
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "{method} {path}");
        let body: api::ErrorBody = r.json().await.unwrap();
        assert_eq!(body.error, ErrorCode::TooLarge, "{method} {path}");
    }
    // Without a length (chunked), the login's reader stops at the limit.
    // (Just over the limit: the node answers and closes without reading the rest, which a
    // longer body would meet as a reset while still sending.)
    let chunks = futures::stream::iter(
        (0..20).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'{'; 1024]))),
    );
    let r = fresh
        .post(format!("{}/v1/auth/login", node.url()))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Uploads: over the node's limit, refused from the declared length.
    let r = fresh
        .post(format!("{}/v1/tokens/{token}/files?name=huge", node.url()))
        .bearer_auth(&session)
        .header("content-length", (11u64 << 30).to_string())
        .body(reqwest::Body::wrap_stream(futures::stream::pending::<
            Result<bytes::Bytes, std::io::Error>,
        >()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // CORS, as configured: a browser preflight from the dApp's origin is answered.
    let r = alice
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/tokens/{token}/files", node.url()),
        )
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some("https://app.example")
    );

    assert!(metric(&node.url(), "px_node_timeouts_total").await >= 2);
    assert_eq!(alice.usage(token).await.unwrap().used, before.used + mib);
    assert_consistent(&alice, &ipfs, token).await;
    assert_eq!(
        pins(&ipfs).await,
        crate::fixture::referenced(&alice, &ipfs, token).await,
        "no pin left by the cut-off uploads"
    );
    node.shutdown().await;
}

/// Key assignments are throttled per address and node-wide; the nonce route per IP; CORS is
/// off by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_assignments_and_nonces_are_throttled() {
    let net = Net::start().await;
    let mut config = net.config("throttle");
    config.key_gen_per_min = 2;
    config.address_burst = 4;
    config.ip_burst = 30;
    config.ip_rate_per_min = 60;
    let node = px_node::spawn(config).await.unwrap();
    let mut users = Vec::new();
    for n in 0..3 {
        let mut u = net.user(n, &node);
        u.login().await;
        users.push(u);
    }
    // Per address: the login took one of 4; the same address's key is reused, no new key.
    for _ in 0..3 {
        users[0].key_assignment().await.unwrap();
    }
    let e = users[0].key_assignment().await.unwrap_err();
    assert_eq!(
        (e.status, e.code()),
        (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited)
    );
    // Node-wide: user 0's key and user 1's used the 2 new keys of the minute.
    users[1].key_assignment().await.unwrap();
    let e = users[2].key_assignment().await.unwrap_err();
    assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
    // Per IP: the nonce route answers 429 with Retry-After once the burst is used (3 logins
    // used 3 of it).
    let http = reqwest::Client::new();
    let mut limited = None;
    for i in 0..40 {
        let r = http
            .get(format!("{}/v1/auth/nonce", node.url()))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers().contains_key("retry-after"));
            let body: api::ErrorBody = r.json().await.unwrap();
            assert_eq!(body.error, ErrorCode::RateLimited);
            limited = Some(i);
            break;
        }
    }
    println!("nonce route limited after {limited:?} requests");
    assert!(limited.is_some(), "the per-IP limit applies");
    // CORS is off by default: no CORS headers.
    let r = http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/auth/login", node.url()),
        )
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    node.shutdown().await;
}

/// Sends `head` (a request head and the start of its body) on a new connection, keeps the
/// connection open without sending more, and reads the node's answer: answers the whole
/// answer text (empty when the node closed without one) and when it came; `None` when no
/// answer came within `within`.
async fn stall(
    addr: std::net::SocketAddr,
    head: &str,
    within: Duration,
) -> Option<(String, Duration)> {
    let start = Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = tokio::time::timeout(within, async {
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    break;
                }
            }
        }
    })
    .await;
    read.ok()?;
    Some((String::from_utf8_lossy(&buf).to_string(), start.elapsed()))
}

/// A request that outlives the request timeout — a sign-in whose body stalls after a few
/// bytes (the handler reads the body inside the timeout) — answers 503 `timeout` with
/// `Retry-After` once the timeout passes, instead of holding the connection and its task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_request_timeout_answers_503_timeout() {
    let net = Net::start().await;
    let mut config = net.config("request-timeout");
    config.request_timeout = Duration::from_millis(800);
    let node = px_node::spawn(config).await.unwrap();
    let before = metric(&node.url(), "px_node_timeouts_total").await;
    let head = format!(
        "POST /v1/auth/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 200\r\n\r\n{{\"message\":\"",
        node.addr()
    );
    let (answer, took) = stall(node.addr(), &head, Duration::from_secs(20))
        .await
        .expect("the node answers a stalled request within 20 s");
    println!("stalled sign-in body: answered after {took:?}");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("\r\nretry-after: "),
        "{head}"
    );
    let body: api::ErrorBody = serde_json::from_str(body).unwrap();
    assert_eq!(body.error, ErrorCode::Timeout, "{body:?}");
    assert!(took >= Duration::from_millis(800), "not before the timeout");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(
        metric(&node.url(), "px_node_timeouts_total").await,
        before + 1
    );
    node.shutdown().await;
}

async fn panics() -> &'static str {
    panic!("a test handler panicked")
}

/// A handler that panics answers 500 `internal` (the catch-panic layer around the whole
/// router) instead of dropping the connection, and the node goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_answers_500_and_the_node_goes_on() {
    let net = Net::start().await;
    let node = net.node("panic").await;
    let extra = axum::Router::new().route("/test/panic", axum::routing::get(panics));
    let router = px_node::http::app_with_routes(
        node.node().clone(),
        &px_node::http::Limits::default(),
        extra,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let http = reqwest::Client::new();
    for _ in 0..2 {
        let r = http
            .get(format!("http://{addr}/test/panic"))
            .send()
            .await
            .expect("an answer, not a dropped connection");
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body: api::ErrorBody = r.json().await.unwrap();
        assert_eq!(
            (body.error, body.message.as_str()),
            (ErrorCode::Internal, "internal error"),
            "nothing of the panic is sent"
        );
    }
    let r = http
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    server.abort();
    node.shutdown().await;
}
