//! A JSON-RPC fault proxy: forwards HTTP JSON-RPC to a real node (anvil) and, at a configured
//! rate, answers instead with what flaky production RPCs answer: a JSON-RPC error without
//! revert data, a timeout (the request may or may not have reached the node), a `null` block,
//! receipt or transaction (a lagging load-balanced backend), or the right answer late.
//!
//! Which request gets which fault comes from a seeded RNG (splitmix64), so a run's fault
//! sequence is reproducible; the requests' arrival order is up to the client. At rate 0 it
//! is a plain counting proxy: [`Stats::by_method`] counts every request by method.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::common::TestResult;

/// What the proxy injects.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Faults {
    /// Share of requests that get a fault, 0.0..=1.0.
    pub(crate) rate: f64,
    /// RNG seed.
    pub(crate) seed: u64,
    /// How long a "timeout" holds the request (longer than the client's timeout).
    pub(crate) hang: Duration,
    /// Longest added latency.
    pub(crate) max_latency: Duration,
}

/// Counts of what the proxy did.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) forwarded: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) nulls: AtomicU64,
    pub(crate) delayed: AtomicU64,
    /// Requests by JSON-RPC method (faulted or not).
    pub(crate) methods: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Stats {
    pub(crate) fn summary(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "{} forwarded; injected {} JSON-RPC errors, {} timeouts, {} null answers, {} delays",
            g(&self.forwarded),
            g(&self.errors),
            g(&self.timeouts),
            g(&self.nulls),
            g(&self.delayed)
        )
    }

    /// A snapshot of [`Stats::methods`].
    pub(crate) fn by_method(&self) -> std::collections::BTreeMap<String, u64> {
        self.methods.lock().expect("methods lock").clone()
    }

    pub(crate) fn injected(&self) -> u64 {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        g(&self.errors) + g(&self.timeouts) + g(&self.nulls) + g(&self.delayed)
    }
}

struct Inner {
    upstream: String,
    http: reqwest::Client,
    faults: Mutex<Faults>,
    rng: Mutex<u64>,
    stats: Arc<Stats>,
}

impl Inner {
    /// splitmix64: a uniform `u64`.
    fn next(&self) -> u64 {
        let mut state = self.rng.lock().expect("rng lock");
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in [0, 1).
    fn unit(&self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The proxy, listening on 127.0.0.1 at a free port.
pub(crate) struct FaultProxy {
    pub(crate) addr: SocketAddr,
    pub(crate) stats: Arc<Stats>,
    inner: Arc<Inner>,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (an HTTP JSON-RPC URL) injecting `faults`.
    pub(crate) async fn start(upstream: &str, faults: Faults) -> TestResult<Self> {
        let stats = Arc::new(Stats::default());
        let inner = Arc::new(Inner {
            upstream: upstream.to_string(),
            http: reqwest::Client::new(),
            rng: Mutex::new(faults.seed),
            faults: Mutex::new(faults),
            stats: Arc::clone(&stats),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let router = axum::Router::new()
            .route("/", post(handle))
            .with_state(Arc::clone(&inner));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            stats,
            inner,
            server: Some((tx, task)),
        })
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the fault rate (0 turns faults off).
    pub(crate) fn set_rate(&self, rate: f64) {
        self.inner.faults.lock().expect("faults lock").rate = rate;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some((tx, task)) = self.server.take() {
            let _ = tx.send(());
            task.abort();
        }
    }
}

/// Methods a lagging backend answers with `null`.
fn nullable(method: &str) -> bool {
    matches!(
        method,
        "eth_getBlockByNumber"
            | "eth_getBlockByHash"
            | "eth_getTransactionReceipt"
            | "eth_getTransactionByHash"
    )
}

fn json_response(body: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn forward(inner: &Inner, body: Bytes) -> Response {
    inner.stats.forwarded.fetch_add(1, Ordering::Relaxed);
    let sent = inner
        .http
        .post(&inner.upstream)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(res) => {
            let status = StatusCode::from_u16(res.status().as_u16()).unwrap_or(StatusCode::OK);
            let bytes = res.bytes().await.unwrap_or_default();
            (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

async fn handle(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // Batches (alloy sends none here) pass untouched.
    let (Some(method), id) = (
        request.get("method").and_then(Value::as_str),
        request.get("id").cloned().unwrap_or(Value::Null),
    ) else {
        return forward(&inner, body).await;
    };
    *inner
        .stats
        .methods
        .lock()
        .expect("methods lock")
        .entry(method.to_string())
        .or_default() += 1;
    let faults = *inner.faults.lock().expect("faults lock");
    if inner.unit() >= faults.rate {
        return forward(&inner, body).await;
    }
    match inner.next() % 5 {
        // A JSON-RPC error a node or load balancer answers under load: never a revert.
        0 | 1 => {
            inner.stats.errors.fetch_add(1, Ordering::Relaxed);
            let (code, message) = match inner.next() % 4 {
                0 => (-32000, "header not found"),
                1 => (-32603, "internal error"),
                2 => (-32005, "request rate exceeded"),
                _ => (-32000, "missing trie node"),
            };
            json_response(json!({
                "jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}
            }))
        }
        // A timeout, half the time after the node got (and acted on) the request.
        2 => {
            inner.stats.timeouts.fetch_add(1, Ordering::Relaxed);
            if inner.next() % 2 == 0 {
                let _ = forward(&inner, body).await;
            }
            tokio::time::sleep(faults.hang).await;
            (StatusCode::GATEWAY_TIMEOUT, "upstream timed out").into_response()
        }
        // A lagging backend: no such block / receipt / transaction yet.
        3 if nullable(method) => {
            inner.stats.nulls.fetch_add(1, Ordering::Relaxed);
            json_response(json!({"jsonrpc": "2.0", "id": id, "result": null}))
        }
        // Latency.
        _ => {
            inner.stats.delayed.fetch_add(1, Ordering::Relaxed);
            let max = u64::try_from(faults.max_latency.as_millis())
                .unwrap_or(1)
                .max(1);
            tokio::time::sleep(Duration::from_millis(inner.next() % max)).await;
            forward(&inner, body).await
        }
    }
}
