//! The HTTP API: routes, the bearer-session extractor and the handlers, each a thin layer over
//! [`Node`], and the layers that guard them:
//! - every route but the upload: a body limit of [`SMALL_BODY_LIMIT`] bytes and the request
//!   timeout; uploads are gated (session, owner, gate, quota) before the node reads their
//!   body, which then runs under the idle timeout and the minimum upload rate
//!   ([`Node::upload`]);
//! - the routes without a session: a rate limit per client IP (logins and key assignments are
//!   also limited per address, in [`Node`]);
//! - all: a panic answers 500 instead of dropping the connection; CORS when configured.
//!
//! Handlers that change state run their work detached from the connection
//! ([`Node::detached`]): a client that goes away cannot stop an update halfway.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Address;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use axum::{Json, Router};
use px_core::api;
use serde::Deserialize;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::{Error, Result};
use crate::limit::{Limiter, Rate};
use crate::node::Node;

/// Shared state of the router.
pub type AppState = Arc<Node>;

/// Largest request body of every route but the upload (a sign-in is about 1 KiB).
pub const SMALL_BODY_LIMIT: u64 = 16 * 1024;

/// Client IPs tracked by the rate limit at most.
const MAX_TRACKED_IPS: usize = 100_000;

/// The HTTP-level limits of [`app_with`] (from [`crate::NodeConfig`]).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Timeout of every request but the upload.
    pub request_timeout: Duration,
    /// Rate per client IP of the routes without a session.
    pub ip_rate: Rate,
    /// CORS origins (`*`: any); empty: no CORS.
    pub cors_origins: Vec<String>,
}

impl Limits {
    /// The limits a configuration sets.
    pub fn from_config(c: &crate::NodeConfig) -> Self {
        Self {
            request_timeout: c.request_timeout,
            ip_rate: Rate::per_minute(c.ip_burst, c.ip_rate_per_min),
            cors_origins: c.cors_origins.clone(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::from_config(&crate::NodeConfig::new(""))
    }
}

#[derive(Clone)]
struct Guard {
    node: AppState,
    timeout: Duration,
    by_ip: Arc<Limiter<IpAddr>>,
}

/// Builds the router with the default limits.
pub fn app(state: AppState) -> Router {
    app_with(state, &Limits::default())
}

/// Builds the router with `limits`.
pub fn app_with(state: AppState, limits: &Limits) -> Router {
    app_with_routes(state, limits, Router::new())
}

/// [`app_with`] plus `extra` routes, which get only the layers around the whole router (CORS,
/// catch-panic): for tests that need a handler of their own, e.g. one that panics.
#[doc(hidden)]
pub fn app_with_routes(state: AppState, limits: &Limits, extra: Router<AppState>) -> Router {
    let guard = Guard {
        node: state.clone(),
        timeout: limits.request_timeout,
        by_ip: Arc::new(Limiter::new(limits.ip_rate, MAX_TRACKED_IPS)),
    };
    // Every route but the upload: small bodies, bounded time.
    let small = |r: MethodRouter<AppState>| {
        r.layer(from_fn_with_state(guard.clone(), request_timeout))
            .layer(from_fn_with_state(guard.clone(), limit_body))
    };
    // And no session: limited per client IP.
    let public =
        |r: MethodRouter<AppState>| small(r).layer(from_fn_with_state(guard.clone(), per_ip));
    let router = Router::new()
        .route("/health", public(get(health)))
        .route("/metrics", public(get(metrics)))
        .route("/openapi.json", public(get(openapi)))
        .route("/v1/auth/nonce", public(get(nonce)))
        .route("/v1/auth/login", public(post(login)))
        .route("/v1/auth/logout", small(post(logout)))
        .route("/v1/key-assignment", small(get(key_assignment)))
        .route("/v1/tokens/{token_id}/key", small(post(register_key)))
        .route("/v1/tokens/{token_id}/usage", small(get(usage)))
        .route("/v1/tokens/{token_id}/refresh", small(post(refresh)))
        .route("/v1/tokens/{token_id}/rebind", small(post(rebind)))
        // Uploads stream with no body limit: the node checks Content-Length itself, after the
        // session, ownership, gate and quota.
        .route(
            "/v1/tokens/{token_id}/files",
            post(upload)
                .layer(axum::extract::DefaultBodyLimit::disable())
                .merge(small(get(list))),
        )
        .route(
            "/v1/tokens/{token_id}/files/{file_id}",
            small(delete(delete_file)),
        )
        .route("/v1/tokens/{token_id}/content/{cid}", small(get(download)))
        .merge(extra)
        .with_state(state);
    let router = match cors(&limits.cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.layer(CatchPanicLayer::custom(|_| {
        Error::Internal("handler panicked".into()).into_response()
    }))
}

/// The CORS layer for `origins` (none when empty). Browsers may send the bearer token and
/// read `Retry-After`.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([header::RETRY_AFTER])
            .max_age(Duration::from_secs(3600)),
    )
}

/// Refuses a body over [`SMALL_BODY_LIMIT`]: at once when `Content-Length` says so, else when
/// the handler reads past the limit.
async fn limit_body(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > SMALL_BODY_LIMIT) {
        g.node.metrics.body_too_large();
        return Error::BodyTooLarge {
            limit: SMALL_BODY_LIMIT,
        }
        .into_response();
    }
    let req = req.map(|b| Body::new(http_body_util::Limited::new(b, SMALL_BODY_LIMIT as usize)));
    next.run(req).await
}

/// Answers 503 when the handler takes longer than the request timeout (its detached work
/// goes on).
async fn request_timeout(State(g): State<Guard>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(g.timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            g.node.metrics.timeout();
            Error::Timeout.into_response()
        }
    }
}

/// The per-IP rate limit (the peer address; tests driving the router without a socket
/// share one bucket).
async fn per_ip(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    if let Err(retry_after) = g.by_ip.check(&ip) {
        g.node.metrics.rate_limited();
        return Error::RateLimited { retry_after }.into_response();
    }
    next.run(req).await
}

/// The signed-in address of a request (`Authorization: Bearer <token>`).
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub Address);

/// The bearer token of a request.
pub(crate) fn bearer(parts: &Parts) -> Result<&str> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(Error::Unauthorized("missing Authorization header"))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(Error::Unauthorized(
            "Authorization must be `Bearer <token>`",
        ))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        Ok(Self(state.session(bearer(parts)?).await?))
    }
}

/// A live session's bearer token.
#[derive(Debug, Clone)]
struct SessionToken(String);

impl FromRequestParts<AppState> for SessionToken {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer(parts)?;
        state.session(token).await?;
        Ok(Self(token.to_owned()))
    }
}

async fn health(State(node): State<AppState>) -> Response {
    let h = node.health().await;
    let status = if h.chain && h.ipfs {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(h)).into_response()
}

async fn metrics(State(node): State<AppState>) -> Result<Response> {
    let tokens = node.read(|db| db.token_count()).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        node.metrics.render(tokens),
    )
        .into_response())
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::DOCUMENT,
    )
        .into_response()
}

async fn nonce(State(node): State<AppState>) -> Result<Json<api::NonceResponse>> {
    Ok(Json(node.nonce().await?))
}

async fn login(
    State(node): State<AppState>,
    body: std::result::Result<Json<api::LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<api::Session>> {
    let Json(req) = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::BodyTooLarge {
                limit: SMALL_BODY_LIMIT,
            }
        } else {
            Error::BadRequest(e.body_text())
        }
    })?;
    let session = node
        .detached(move |n| async move { n.login(&req).await })
        .await?;
    Ok(Json(session))
}

async fn logout(State(node): State<AppState>, token: SessionToken) -> Result<StatusCode> {
    node.logout(&token.0).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn key_assignment(
    State(node): State<AppState>,
    Caller(me): Caller,
) -> Result<Json<api::KeyAssignment>> {
    let a = node
        .detached(move |n| async move { n.key_assignment(me).await })
        .await?;
    Ok(Json(a))
}

async fn register_key(
    State(node): State<AppState>,
    Caller(me): Caller,
    Path(token_id): Path<u64>,
) -> Result<Json<api::RegisteredKey>> {
    let k = node
        .detached(move |n| async move { n.register_key(token_id, me).await })
        .await?;
    Ok(Json(k))
}

async fn usage(
    State(node): State<AppState>,
    Caller(me): Caller,
    Path(token_id): Path<u64>,
) -> Result<Json<api::Usage>> {
    Ok(Json(node.usage(token_id, me).await?))
}

async fn refresh(
    State(node): State<AppState>,
    Caller(me): Caller,
    Path(token_id): Path<u64>,
) -> Result<Json<api::Usage>> {
    let u = node
        .detached(move |n| async move { n.refresh(token_id, me).await })
        .await?;
    Ok(Json(u))
}

async fn rebind(
    State(node): State<AppState>,
    Caller(me): Caller,
    Path(token_id): Path<u64>,
) -> Result<Json<api::KeyRebinding>> {
    let r = node
        .detached(move |n| async move { n.rebind(token_id, me).await })
        .await?;
    Ok(Json(r))
}

#[derive(Debug, Deserialize)]
struct UploadQuery {
    name: String,
    sha256: Option<String>,
}

async fn upload(
    State(node): State<AppState>,
    Caller(me): Caller,
    Path(token_id): Path<u64>,
    query: std::result::Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<api::UploadResult>)> {
    let Query(q) = query.map_err(|e| Error::BadRequest(e.body_text()))?;
    let len = headers
        .get(header::CONTENT_LENGTH)
        .ok_or(Error::LengthRequired)?
        .to_str()
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| Error::BadRequest("invalid Content-Length".into()))?;
    // Detached: the body streams in the task, and a client that goes away only ends the
    // body; the task then gives the pin and the reservation back (or, past the body,
    // commits and publishes).
    let body = body.into_data_stream();
    let r = node
        .detached(move |n| async move { n.upload(token_id, me, q.name, q.sha256, len, body).await })
        .await?;
    Ok((StatusCode::CREATED, Json(r)))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default)]
    after: u64,
    limit: Option<u32>,
}

async fn list(
    State(node): State<AppState>,
    Caller(me): Caller,
    Path(token_id): Path<u64>,
    query: std::result::Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<api::FileListPage>> {
    let Query(q) = query.map_err(|e| Error::BadRequest(e.body_text()))?;
    Ok(Json(
        node.list(token_id, me, q.after, q.limit.unwrap_or(100))
            .await?,
    ))
}

async fn delete_file(
    State(node): State<AppState>,
    Caller(me): Caller,
    Path((token_id, file_id)): Path<(u64, u64)>,
) -> Result<Json<api::DeleteResult>> {
    let r = node
        .detached(move |n| async move { n.delete(token_id, me, file_id).await })
        .await?;
    Ok(Json(r))
}

async fn download(
    State(node): State<AppState>,
    Caller(me): Caller,
    Path((token_id, cid)): Path<(u64, String)>,
) -> Result<Response> {
    let stream = node.download(token_id, me, &cid).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(stream),
    )
        .into_response())
}
