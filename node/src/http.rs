//! The HTTP API: routes, the bearer-session extractor and the handlers, each a thin layer over
//! [`Node`].

use std::sync::Arc;

use alloy::primitives::Address;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use px_core::api;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::node::Node;

/// Shared state of the router.
pub type AppState = Arc<Node>;

/// Builds the router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/auth/nonce", get(nonce))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/key-assignment", get(key_assignment))
        .route("/v1/tokens/{token_id}/key", post(register_key))
        .route("/v1/tokens/{token_id}/usage", get(usage))
        .route("/v1/tokens/{token_id}/refresh", post(refresh))
        .route("/v1/tokens/{token_id}/rebind", post(rebind))
        .route("/v1/tokens/{token_id}/files", post(upload).get(list))
        .route("/v1/tokens/{token_id}/files/{file_id}", delete(delete_file))
        .route("/v1/tokens/{token_id}/content/{cid}", get(download))
        // Uploads stream: no body limit here, the node checks Content-Length itself.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// The signed-in address of a request (`Authorization: Bearer <token>`).
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub Address);

/// The bearer token of a request.
fn bearer(parts: &Parts) -> Result<&str> {
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
        Ok(Self(state.session(bearer(parts)?)?))
    }
}

/// A live session's bearer token.
#[derive(Debug, Clone)]
struct SessionToken(String);

impl FromRequestParts<AppState> for SessionToken {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer(parts)?;
        state.session(token)?;
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
    let tokens = node.db.tokens()?.len();
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
    let Json(req) = body.map_err(|e| Error::BadRequest(e.body_text()))?;
    Ok(Json(node.login(&req).await?))
}

async fn logout(State(node): State<AppState>, token: SessionToken) -> Result<StatusCode> {
    node.logout(&token.0).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn key_assignment(
    State(node): State<AppState>,
    Caller(me): Caller,
) -> Result<Json<api::KeyAssignment>> {
    Ok(Json(node.key_assignment(me).await?))
}

async fn register_key(
    State(node): State<AppState>,
    Caller(me): Caller,
    Path(token_id): Path<u64>,
) -> Result<Json<api::RegisteredKey>> {
    Ok(Json(node.register_key(token_id, me).await?))
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
    Ok(Json(node.refresh(token_id, me).await?))
}

async fn rebind(
    State(node): State<AppState>,
    Caller(me): Caller,
    Path(token_id): Path<u64>,
) -> Result<Json<api::KeyRebinding>> {
    Ok(Json(node.rebind(token_id, me).await?))
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
    let r = node
        .upload(token_id, me, q.name, q.sha256, len, body.into_data_stream())
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
    Ok(Json(node.delete(token_id, me, file_id).await?))
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
