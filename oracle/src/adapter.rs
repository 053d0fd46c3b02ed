//! The Chainlink external adapter: `POST /` answers `{"id", "data": {"tokenId"}}` with the
//! token's verified usage in the standard adapter shape; `GET /health` (the chain and the IPFS
//! daemon reachable: 200, else 503 saying which is not); `GET /metrics`. In relayer-only mode
//! [`ops_app`] serves the last two alone.
//!
//! A record problem is still a successful adapter answer (HTTP 200) carrying the error status
//! code, so the Chainlink job fulfills it and the request does not hang. Adapter errors (bad
//! input 400, unknown token 404, chain or IPFS unreachable 502, timeout 504) use the adapter
//! error shape `{"jobRunID", "status": "errored", "statusCode", "error": {"name", "message"}}`
//! with the same HTTP status, and never carry internal details beyond a short message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::providers::{DynProvider, Provider};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::Error;
use crate::metrics::Metrics;
use crate::resolver::{Answer, Resolver};

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;
/// Most answers kept in the cache.
const CACHE_CAPACITY: usize = 10_000;

/// The reachability checks behind `/health`: a block number from the chain RPC and an answer
/// from the IPFS daemon, each within a timeout.
#[derive(Debug, Clone)]
pub struct Health {
    provider: DynProvider,
    resolver: Resolver,
    timeout: Duration,
}

impl Health {
    /// Checks through `provider` and `resolver`'s IPFS client, each bounded by `timeout`.
    pub fn new(provider: DynProvider, resolver: Resolver, timeout: Duration) -> Self {
        Self {
            provider,
            resolver,
            timeout,
        }
    }

    /// Runs both checks; `Ok` only if both pass. The body says which failed.
    pub async fn check(&self) -> (bool, Value) {
        let chain = async {
            match tokio::time::timeout(self.timeout, self.provider.get_block_number()).await {
                Ok(Ok(n)) => Ok(n),
                Ok(Err(e)) => Err(format!("chain RPC failed: {e}")),
                Err(_) => Err(format!("chain RPC timed out after {:?}", self.timeout)),
            }
        };
        let ipfs = async {
            match tokio::time::timeout(self.timeout, self.resolver.ipfs_reachable()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("IPFS timed out after {:?}", self.timeout)),
            }
        };
        let (chain, ipfs) = tokio::join!(chain, ipfs);
        let ok = chain.is_ok() && ipfs.is_ok();
        let short = |e: String| e.chars().take(200).collect::<String>();
        let body = json!({
            "status": if ok { "OK" } else { "DOWN" },
            "chain": match chain {
                Ok(block) => json!({"ok": true, "block": block}),
                Err(e) => json!({"ok": false, "error": short(e)}),
            },
            "ipfs": match ipfs {
                Ok(()) => json!({"ok": true}),
                Err(e) => json!({"ok": false, "error": short(e)}),
            },
        });
        (ok, body)
    }
}

/// Shared state of the adapter.
#[derive(Debug, Clone)]
pub struct AdapterState {
    resolver: Resolver,
    metrics: Metrics,
    health: Option<Health>,
    timeout: Duration,
    cache_max_age: Duration,
    cache: Arc<Mutex<HashMap<U256, (Instant, Answer)>>>,
}

impl AdapterState {
    /// State answering through `resolver`, failing answers slower than `timeout` and serving
    /// OK answers from cache for `cache_max_age` (zero: no cache).
    pub fn new(
        resolver: Resolver,
        metrics: Metrics,
        timeout: Duration,
        cache_max_age: Duration,
    ) -> Self {
        Self {
            resolver,
            metrics,
            health: None,
            timeout,
            cache_max_age,
            cache: Arc::default(),
        }
    }

    /// `/health` runs `health`'s checks (without it, it answers OK as long as the process
    /// serves).
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = Some(health);
        self
    }

    fn cached(&self, token: U256) -> Option<Answer> {
        if self.cache_max_age.is_zero() {
            return None;
        }
        let cache = self.cache.lock().expect("cache lock");
        cache
            .get(&token)
            .filter(|(at, _)| at.elapsed() < self.cache_max_age)
            .map(|(_, a)| a.clone())
    }

    fn remember(&self, answer: &Answer) {
        if self.cache_max_age.is_zero() || answer.status != px_core::contracts::sync_status::OK {
            return;
        }
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.len() >= CACHE_CAPACITY {
            let max_age = self.cache_max_age;
            cache.retain(|_, (at, _)| at.elapsed() < max_age);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(answer.token_id, (Instant::now(), answer.clone()));
    }
}

/// The adapter's router.
pub fn app(state: AdapterState) -> Router {
    Router::new()
        .route("/", post(handle))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// A router serving only `/metrics` (for `METRICS_PORT`).
pub fn metrics_app(metrics_state: Metrics) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .with_state(metrics_state)
}

/// `/health` and `/metrics` alone, for relayer-only mode.
pub fn ops_app(health: Health, metrics_state: Metrics) -> Router {
    Router::new()
        .route(
            "/health",
            get(|State((h, _)): State<(Health, Metrics)>| async move { health_response(&h).await }),
        )
        .route(
            "/metrics",
            get(|State((_, m)): State<(Health, Metrics)>| async move {
                render_metrics(State(m)).await
            }),
        )
        .with_state((health, metrics_state))
}

async fn health_response(health: &Health) -> Response {
    let (ok, body) = health.check().await;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn health(State(state): State<AdapterState>) -> Response {
    match &state.health {
        Some(h) => health_response(h).await,
        None => Json(json!({ "status": "OK" })).into_response(),
    }
}

async fn metrics(State(state): State<AdapterState>) -> Response {
    render_metrics(State(state.metrics)).await
}

async fn render_metrics(State(metrics): State<Metrics>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}

/// An adapter error response.
#[derive(Debug)]
pub struct AdapterError {
    job_run_id: String,
    status: StatusCode,
    name: &'static str,
    message: String,
}

impl AdapterError {
    fn new(job_run_id: &str, status: StatusCode, name: &'static str, message: String) -> Self {
        Self {
            job_run_id: job_run_id.to_string(),
            status,
            name,
            message,
        }
    }

    fn outcome(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::GATEWAY_TIMEOUT => "timeout",
            _ => "unavailable",
        }
    }
}

impl IntoResponse for AdapterError {
    fn into_response(self) -> Response {
        let body = json!({
            "jobRunID": self.job_run_id,
            "status": "errored",
            "statusCode": self.status.as_u16(),
            "error": { "name": self.name, "message": self.message },
        });
        (self.status, Json(body)).into_response()
    }
}

/// Parses `data.tokenId`: a JSON number or a decimal / `0x` hex string, at most 2^64 - 1.
pub fn parse_token_id(v: &Value) -> Result<U256, String> {
    let parsed = match v {
        Value::Number(n) => n
            .as_u64()
            .map(U256::from)
            .ok_or_else(|| format!("tokenId {n} is not a non-negative integer")),
        Value::String(s) => {
            let s = s.trim();
            let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(hex) if !hex.is_empty() => U256::from_str_radix(hex, 16),
                _ => U256::from_str_radix(s, 10),
            };
            r.map_err(|_| format!("tokenId {s:?} is not an integer"))
        }
        Value::Null => Err("data.tokenId is required".into()),
        other => Err(format!("tokenId must be a number or a string, not {other}")),
    }?;
    if parsed > U256::from(u64::MAX) {
        return Err(format!("tokenId {parsed} is out of range"));
    }
    Ok(parsed)
}

fn job_run_id(body: &Value) -> String {
    match body.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "1".to_string(),
    }
}

async fn handle(
    State(state): State<AdapterState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let started = Instant::now();
    let result = answer(&state, body).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.outcome(),
    };
    state.metrics.ea_request(outcome, started.elapsed());
    match result {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(target: "oracle::adapter", job_run_id = %e.job_run_id, status = e.status.as_u16(), error = %e.message, "request failed");
            e.into_response()
        }
    }
}

async fn answer(
    state: &AdapterState,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, AdapterError> {
    let Json(body) = body.map_err(|e| {
        AdapterError::new(
            "1",
            StatusCode::BAD_REQUEST,
            "AdapterInputError",
            e.body_text(),
        )
    })?;
    let id = job_run_id(&body);
    let bad = |m: String| AdapterError::new(&id, StatusCode::BAD_REQUEST, "AdapterInputError", m);
    let data = body
        .get("data")
        .filter(|d| d.is_object())
        .ok_or_else(|| bad("data must be an object with tokenId".into()))?;
    let token = parse_token_id(data.get("tokenId").unwrap_or(&Value::Null)).map_err(bad)?;

    let answer = match state.cached(token) {
        Some(a) => a,
        None => {
            let started = Instant::now();
            let resolved = tokio::time::timeout(state.timeout, state.resolver.resolve(token))
                .await
                .map_err(|_| {
                    state.metrics.failure("timeout");
                    AdapterError::new(
                        &id,
                        StatusCode::GATEWAY_TIMEOUT,
                        "AdapterTimeoutError",
                        format!("no answer within {} ms", state.timeout.as_millis()),
                    )
                })?;
            let answer = resolved.map_err(|e| {
                let (status, name, reason) = match &e {
                    Error::TokenNotFound(_) => {
                        (StatusCode::NOT_FOUND, "TokenNotFound", "token_not_found")
                    }
                    Error::IpfsUnavailable(_) => (
                        StatusCode::BAD_GATEWAY,
                        "IpfsUnavailable",
                        "ipfs_unavailable",
                    ),
                    _ => (StatusCode::BAD_GATEWAY, "ChainRpcError", "rpc"),
                };
                state.metrics.failure(reason);
                AdapterError::new(&id, status, name, e.to_string())
            })?;
            state
                .metrics
                .answer(&crate::status_label(answer.status), started.elapsed());
            state.remember(&answer);
            answer
        }
    };
    Ok(Json(success_body(&id, &answer)).into_response())
}

/// The adapter success body for an answer.
pub fn success_body(job_run_id: &str, a: &Answer) -> Value {
    let mut data = json!({
        "tokenId": a.token_id.to_string(),
        "status": a.status,
        "used": a.used.to_string(),
        "fileCount": a.file_count,
        "seq": a.seq.to_string(),
        "recordCid": a.record_cid.to_string(),
        "cid": a.cid_string(),
        "result": a.used.to_string(),
    });
    if let Some(reason) = &a.reason {
        data["reason"] = Value::String(reason.clone());
    }
    json!({
        "jobRunID": job_run_id,
        "data": data,
        "result": a.used.to_string(),
        "statusCode": 200,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids() {
        assert_eq!(parse_token_id(&json!(7)).unwrap(), U256::from(7));
        assert_eq!(parse_token_id(&json!("12")).unwrap(), U256::from(12));
        assert_eq!(parse_token_id(&json!("0x1f")).unwrap(), U256::from(31));
        assert!(parse_token_id(&json!(-1)).is_err());
        assert!(parse_token_id(&json!(1.5)).is_err());
        assert!(parse_token_id(&json!("abc")).is_err());
        assert!(parse_token_id(&json!("0x")).is_err());
        assert!(parse_token_id(&json!("18446744073709551616")).is_err());
        assert!(parse_token_id(&json!([1])).is_err());
        assert!(parse_token_id(&Value::Null).is_err());
    }
}
