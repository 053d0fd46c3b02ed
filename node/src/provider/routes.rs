//! The provider role's routes, merged into the node's router when the role is on:
//! - `POST /v1/pieces` (also `PUT`): a piece, its order in the `X-PX-Order` header; 201 with
//!   [`PieceAccepted`]. No session: the order is the authorization. The body is bounded by
//!   its `Content-Length`, which must fit the order and `max_piece_bytes`.
//! - `GET /v1/pieces/{cid}`: a piece held here, to anyone; limited per client IP.
//! - `POST /v1/deals/acceptance`, `POST /v1/deals/root-update`: co-signatures
//!   ([`CoSignature`]); small bodies, limited per client IP.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use px_core::api::{ErrorBody, ErrorCode};

use super::{
    AcceptanceRequest, CoSignature, ORDER_HEADER, PieceAccepted, Provider, ProviderError,
    RootUpdateRequest,
};
use crate::error::Error;
use crate::limit::Limiter;

/// Largest co-signature request (a deal of a few thousand pieces).
const COSIGN_BODY_LIMIT: usize = 1 << 20;
/// Client IPs tracked by the read limit at most.
const MAX_TRACKED_IPS: usize = 100_000;

impl ProviderError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest(_) | Self::Mismatch(_) => ErrorCode::BadRequest,
            Self::WrongProvider { .. } => ErrorCode::WrongDomain,
            Self::Expired { .. } => ErrorCode::MessageExpired,
            Self::Replayed(_) => ErrorCode::InvalidNonce,
            Self::NotHomeNode { .. } => ErrorCode::InvalidSignature,
            Self::TooLarge { .. } => ErrorCode::TooLarge,
            Self::UnknownPiece(_) => ErrorCode::NotFound,
            Self::Node(e) => e.code(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Mismatch(_) => StatusCode::CONFLICT,
            Self::WrongProvider { .. }
            | Self::Expired { .. }
            | Self::Replayed(_)
            | Self::NotHomeNode { .. } => StatusCode::FORBIDDEN,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnknownPiece(_) => StatusCode::NOT_FOUND,
            Self::Node(e) => e.status(),
        }
    }
}

impl IntoResponse for ProviderError {
    fn into_response(self) -> Response {
        match self {
            Self::Node(e) => e.into_response(),
            e => {
                let body = ErrorBody {
                    error: e.code(),
                    message: e.to_string(),
                    gate: None,
                };
                (e.status(), Json(body)).into_response()
            }
        }
    }
}

#[derive(Clone)]
struct RouteState {
    provider: Arc<Provider>,
    by_ip: Arc<Limiter<IpAddr>>,
}

/// The provider routes (to merge into the node's router).
pub fn routes(provider: Arc<Provider>) -> Router {
    let state = RouteState {
        by_ip: Arc::new(Limiter::new(provider.read_rate(), MAX_TRACKED_IPS)),
        provider,
    };
    let limited = from_fn_with_state(state.clone(), per_ip);
    Router::new()
        .route(
            "/v1/pieces",
            post(upload).put(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/pieces/{cid}", get(download).layer(limited.clone()))
        .route(
            "/v1/deals/acceptance",
            post(acceptance)
                .layer(DefaultBodyLimit::max(COSIGN_BODY_LIMIT))
                .layer(limited.clone()),
        )
        .route(
            "/v1/deals/root-update",
            post(root_update)
                .layer(DefaultBodyLimit::max(COSIGN_BODY_LIMIT))
                .layer(limited),
        )
        .with_state(state)
}

/// The per-IP limit (the node's [`Limiter`], counted in its rate-limit metric).
async fn per_ip(State(s): State<RouteState>, req: Request, next: Next) -> Response {
    match crate::limit::check_client_ip(&s.by_ip, &s.provider.node.metrics, &req) {
        None => next.run(req).await,
        Some(refused) => refused,
    }
}

async fn upload(
    State(s): State<RouteState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<PieceAccepted>), ProviderError> {
    let order = headers
        .get(ORDER_HEADER)
        .ok_or_else(|| ProviderError::BadRequest(format!("missing {ORDER_HEADER} header")))?
        .to_str()
        .map_err(|_| ProviderError::BadRequest(format!("{ORDER_HEADER} is not text")))?
        .to_string();
    let len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| ProviderError::BadRequest("pieces need a Content-Length".into()))?;
    let body = body.into_data_stream();
    // Detached: a client that goes away ends the body, and the task gives the pin back.
    let provider = s.provider.clone();
    let r = s
        .provider
        .node
        .tasks
        .spawn(async move { provider.accept(&order, len, body).await })
        .await
        .map_err(|e| Error::Internal(format!("piece task: {e}")))??;
    Ok((StatusCode::CREATED, Json(r)))
}

async fn download(
    State(s): State<RouteState>,
    Path(cid): Path<String>,
) -> Result<Response, ProviderError> {
    let (size, stream) = s.provider.read(&cid).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

fn json<T>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ProviderError> {
    body.map(|Json(t)| t)
        .map_err(|e| ProviderError::BadRequest(e.body_text()))
}

async fn acceptance(
    State(s): State<RouteState>,
    body: Result<Json<AcceptanceRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<CoSignature>, ProviderError> {
    Ok(Json(s.provider.cosign_acceptance(json(body)?).await?))
}

async fn root_update(
    State(s): State<RouteState>,
    body: Result<Json<RootUpdateRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<CoSignature>, ProviderError> {
    Ok(Json(s.provider.cosign_root_update(json(body)?).await?))
}
