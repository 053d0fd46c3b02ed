//! The home role's routes, merged into the node's router when the role is on:
//! - `GET /v1/network` (no session, limited per client IP): [`px_core::api::NetworkInfo`];
//! - `POST /v1/tokens/{id}/placements`: [`px_core::api::Placement`];
//! - `POST /v1/tokens/{id}/manifests`: commits a network file ([`px_core::api::UploadResult`]);
//! - `GET /v1/tokens/{id}/files/{fileId}/manifest`: the file's current manifest;
//! - `GET /v1/tokens/{id}/network`: [`px_core::api::TokenNetwork`].
//!
//! Every route but the first needs a session (`Authorization: Bearer`), as the node's own.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use px_core::api::{ManifestCommit, PlacementRequest};

use super::Home;
use crate::error::{Error, Result};
use crate::limit::{Limiter, Rate};

/// Largest placement request.
const PLACEMENT_BODY_LIMIT: usize = 16 << 10;
/// Largest manifest commit (the manifest and a sealed name).
const COMMIT_BODY_LIMIT: usize = px_core::network::MAX_MANIFEST_BYTES + (64 << 10);
/// Client IPs tracked by the `/v1/network` limit at most.
const MAX_TRACKED_IPS: usize = 100_000;

#[derive(Clone)]
struct RouteState {
    home: Arc<Home>,
    by_ip: Arc<Limiter<IpAddr>>,
}

/// The signed-in address of a request.
struct Caller(alloy::primitives::Address);

impl FromRequestParts<RouteState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, s: &RouteState) -> Result<Self> {
        let token = crate::http::bearer(parts)?;
        Ok(Self(s.home.node.session(token).await?))
    }
}

/// The home routes (to merge into the node's router).
pub fn routes(home: Arc<Home>) -> Router {
    let state = RouteState {
        by_ip: Arc::new(Limiter::new(Rate::per_minute(60, 600), MAX_TRACKED_IPS)),
        home,
    };
    Router::new()
        .route(
            "/v1/network",
            get(info).layer(from_fn_with_state(state.clone(), per_ip)),
        )
        .route(
            "/v1/tokens/{token_id}/placements",
            post(placement).layer(DefaultBodyLimit::max(PLACEMENT_BODY_LIMIT)),
        )
        .route(
            "/v1/tokens/{token_id}/manifests",
            post(commit).layer(DefaultBodyLimit::max(COMMIT_BODY_LIMIT)),
        )
        .route(
            "/v1/tokens/{token_id}/files/{file_id}/manifest",
            get(manifest),
        )
        .route("/v1/tokens/{token_id}/network", get(token_network))
        .with_state(state)
}

async fn per_ip(State(s): State<RouteState>, req: Request, next: Next) -> Response {
    match crate::limit::check_client_ip(&s.by_ip, &s.home.node.metrics, &req) {
        None => next.run(req).await,
        Some(refused) => refused,
    }
}

async fn info(State(s): State<RouteState>) -> Response {
    Json(s.home.info()).into_response()
}

async fn placement(
    State(s): State<RouteState>,
    Path(token_id): Path<u64>,
    Caller(caller): Caller,
    Json(req): Json<PlacementRequest>,
) -> Result<Response> {
    Ok(Json(s.home.placement(token_id, caller, &req).await?).into_response())
}

async fn commit(
    State(s): State<RouteState>,
    Path(token_id): Path<u64>,
    Caller(caller): Caller,
    Json(req): Json<ManifestCommit>,
) -> Result<Response> {
    // The commit runs to its end even if the client goes away (it publishes a record).
    let home = s.home.clone();
    let r = s
        .home
        .node
        .detached(move |_| async move { home.commit(token_id, caller, req).await })
        .await?;
    Ok((axum::http::StatusCode::CREATED, Json(r)).into_response())
}

async fn manifest(
    State(s): State<RouteState>,
    Path((token_id, file_id)): Path<(u64, u64)>,
    Caller(caller): Caller,
) -> Result<Response> {
    Ok(Json(s.home.manifest(token_id, caller, file_id).await?).into_response())
}

async fn token_network(
    State(s): State<RouteState>,
    Path(token_id): Path<u64>,
    Caller(caller): Caller,
) -> Result<Response> {
    Ok(Json(s.home.token_network(token_id, caller).await?).into_response())
}
