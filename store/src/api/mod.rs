//! The Kubo RPC API subset: `POST /api/v0/<command>?arg=...`.
//!
//! Arguments come in the query string (`arg` may repeat), file payloads as multipart bodies.
//! Failures answer as Kubo 0.43 does (`tests/it/kubo.rs` holds the store to it): a Kubo error
//! body (`{"Message","Code","Type":"error"}`, 400 for client errors, 500 for command errors),
//! plain text for a missing argument (400), an unknown command (404) and another HTTP method
//! (405). Streamed commands (`add`, `routing/*`) carry `X-Chunked-Output: 1`. Blocking work
//! (disk, hashing) runs on the blocking pool.

mod add;
mod content;
mod info;
mod multipart;
mod names;
mod pin;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use cid::Cid;
use serde::Serialize;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::AppState;
use crate::error::{Error, Result};

/// Builds the router for `state`.
pub fn app(state: AppState) -> Router {
    let limit = usize::try_from(state.config().max_request_bytes).unwrap_or(usize::MAX);
    let api = Router::new()
        .route("/version", post(info::version))
        .route("/id", post(info::id))
        .route("/add", post(add::add))
        .route("/cat", post(content::cat))
        .route("/block/get", post(content::block_get))
        .route("/block/stat", post(content::block_stat))
        .route("/pin/add", post(pin::add))
        .route("/pin/ls", post(pin::ls))
        .route("/pin/rm", post(pin::rm))
        .route("/repo/gc", post(pin::gc))
        .route("/key/gen", post(names::key_gen))
        .route("/key/list", post(names::key_list))
        .route("/name/publish", post(names::publish))
        .route("/name/resolve", post(names::resolve))
        .route("/routing/get", post(names::routing_get))
        .route("/routing/put", post(names::routing_put))
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .nest("/api/v0", api)
        .fallback(unknown_command)
        .layer(DefaultBodyLimit::max(limit))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn unknown_command(uri: Uri) -> Error {
    Error::UnknownCommand(uri.path().to_string())
}

async fn method_not_allowed() -> Response {
    crate::error::plain_text(StatusCode::METHOD_NOT_ALLOWED, "405 - Method Not Allowed")
}

/// A handler panic (a bug) still answers with a Kubo error body instead of a dropped
/// connection.
fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!(target: "store::api", "handler panicked");
    Error::Internal("handler panicked".into()).into_response()
}

/// Parsed query string, keeping repeated keys in order.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

fn percent_decode(s: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| Error::BadRequest("malformed percent-encoding".into()))?;
                out.push(hex);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| Error::BadRequest("query is not UTF-8".into()))
}

impl Params {
    pub(crate) fn parse(query: Option<&str>) -> Result<Self> {
        let mut pairs = Vec::new();
        for part in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((percent_decode(k)?, percent_decode(v)?));
        }
        Ok(Self(pairs))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn args(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == "arg")
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The `arg` of a command whose argument Kubo calls `name` (named in the error when it is
    /// missing, as Kubo does).
    pub(crate) fn arg(&self, name: &'static str) -> Result<&str> {
        self.get("arg").ok_or(Error::MissingArgument(name))
    }

    /// A boolean flag, Go `strconv.ParseBool` style; a bare flag (`?pin`) is true.
    pub(crate) fn flag(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some("" | "1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(v) => Err(Error::BadRequest(format!(
                "option {key:?}: {v:?} is not a boolean"
            ))),
        }
    }

    pub(crate) fn uint(&self, key: &str) -> Result<Option<u64>> {
        self.get(key)
            .map(|v| {
                if v.starts_with('-') && v.parse::<i64>().is_ok() {
                    return Err(Error::Failed(format!("cannot specify negative {key}")));
                }
                v.parse::<u64>().map_err(|_| {
                    Error::BadRequest(format!(
                        "option {key:?}: {v:?} is not a non-negative integer"
                    ))
                })
            })
            .transpose()
    }
}

/// Parses `<cid>` or `/ipfs/<cid>` (no sub-path). A malformed one fails as in Kubo: a bare
/// word is a path without enough components, an `/ipfs/` path an invalid CID.
pub(crate) fn parse_cid_arg(arg: &str) -> Result<Cid> {
    let Some(path) = arg.strip_prefix("/ipfs/") else {
        return Cid::try_from(arg).map_err(|_| {
            Error::Failed(format!(
                "invalid path {arg:?}: path does not have enough components"
            ))
        });
    };
    let bare = path.strip_suffix('/').unwrap_or(path);
    if bare.contains('/') {
        return Err(Error::Unsupported(format!(
            "path {arg:?}: paths inside a DAG are not supported, give a CID"
        )));
    }
    Cid::try_from(bare)
        .map_err(|e| Error::Failed(format!("invalid path {arg:?}: invalid cid: {e}")))
}

/// A JSON response (one line, as Kubo's encoder writes it).
pub(crate) fn json<T: Serialize>(value: &T) -> Response {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response()
}

/// Marks a response as a streamed command's (Kubo's `X-Chunked-Output: 1`).
pub(crate) fn chunked_output(mut res: Response) -> Response {
    res.headers_mut().insert(
        header::HeaderName::from_static("x-chunked-output"),
        header::HeaderValue::from_static("1"),
    );
    res
}

/// An NDJSON response built from already computed values.
pub(crate) fn ndjson<T: Serialize>(items: &[T]) -> Result<Response> {
    let mut body = Vec::new();
    for item in items {
        serde_json::to_writer(&mut body, item).map_err(|e| Error::Internal(e.to_string()))?;
        body.push(b'\n');
    }
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response())
}

/// Runs blocking work on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("task failed: {e}")))?
}
