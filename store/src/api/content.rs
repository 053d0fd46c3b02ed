//! `cat`, `block/get`, `block/stat`.
//!
//! `cat` resolves the root synchronously (so a missing or non-file root is a proper error
//! response), then streams the rest from a blocking producer that reads, verifies and slices
//! one block at a time (zero-copy into the response) a few blocks ahead of the socket.

use std::ops::Range;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cid::Cid;
use rust_unixfs::file::visit::{FileVisit, IdleFileVisit};
use serde_json::json;
use tokio::sync::mpsc;

use super::add::tokio_stream_from;
use super::{Params, blocking, json, parse_cid_arg};
use crate::AppState;
use crate::dagpb;
use crate::error::{Error, Result};

/// `sub` must be a sub-slice of `whole`; returns the zero-copy `Bytes` for it.
fn slice_of(whole: &Bytes, sub: &[u8]) -> Bytes {
    if sub.is_empty() {
        return Bytes::new();
    }
    let start = sub.as_ptr() as usize - whole.as_ptr() as usize;
    whole.slice(start..start + sub.len())
}

fn not_a_file(cid: &Cid, e: impl std::fmt::Display) -> Error {
    Error::NotAFile(format!("{cid} is not a UnixFS file: {e}"))
}

fn get_block(state: &AppState, cid: &Cid) -> Result<Bytes> {
    state
        .repo()
        .blocks
        .get(cid)?
        .ok_or_else(|| Error::BlockNotFound(cid.to_string()))
}

/// The first content of a read, the walk to continue (if any) and the exact number of bytes
/// the whole read yields.
type CatStart = (Bytes, Option<FileVisit>, u64);

/// Starts a file read.
fn start_cat(state: &AppState, root: &Cid, range: Option<Range<u64>>) -> Result<CatStart> {
    let block = get_block(state, root)?;
    let mut idle = IdleFileVisit::default();
    if let Some(r) = range.clone() {
        idle = idle.with_target_range(r);
    }
    let (first, next, size) = match root.codec() {
        dagpb::RAW => {
            let (content, size, _, _) = idle.start_from_raw(&block);
            (slice_of(&block, content), None, size)
        }
        dagpb::DAG_PB => {
            let (content, size, _, next) = idle.start(&block).map_err(|e| not_a_file(root, e))?;
            (slice_of(&block, content), next, size)
        }
        c => return Err(not_a_file(root, format_args!("codec 0x{c:x}"))),
    };
    let total = match range {
        None => size,
        Some(r) => r.end.min(size).saturating_sub(r.start),
    };
    Ok((first, next, total))
}

/// Continues a walk on the blocking pool, sending content into `tx`.
fn produce(
    state: AppState,
    mut next: Option<FileVisit>,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let mut cache = None;
    while let Some(visit) = next.take() {
        let cid = *visit.pending_links().0;
        let step = get_block(&state, &cid).and_then(|block| {
            let (content, rest) = visit
                .continue_walk(&block, &mut cache)
                .map_err(|e| not_a_file(&cid, e))?;
            Ok((slice_of(&block, content), rest))
        });
        match step {
            Ok((bytes, rest)) => {
                if !bytes.is_empty() && tx.blocking_send(Ok(bytes)).is_err() {
                    return; // client went away
                }
                next = rest;
            }
            Err(e) => {
                tracing::warn!(target: "store::api", error = %e, "cat aborted mid-stream");
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                return;
            }
        }
    }
}

pub(crate) async fn cat(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let p = Params::parse(query.as_deref())?;
    let root = parse_cid_arg(p.arg("ipfs-path")?)?;
    let offset = p.uint("offset")?.unwrap_or(0);
    let length = p.uint("length")?;
    let range = match (offset, length) {
        (0, None) => None,
        (o, None) => Some(o..u64::MAX),
        (o, Some(l)) => Some(o..o.saturating_add(l)),
    };
    if range.as_ref().is_some_and(|r| r.is_empty()) {
        return Ok(octets(Body::empty()));
    }
    let st = state.clone();
    let (first, next, total) = blocking(move || start_cat(&st, &root, range)).await?;
    if next.is_none() {
        return Ok(octets(Body::from(first)));
    }
    let (tx, rx) = mpsc::channel(8);
    if !first.is_empty() {
        let _ = tx.send(Ok(first)).await;
    }
    tokio::task::spawn_blocking(move || produce(state, next, tx));
    // The exact length is known up front: if the producer stops early for any reason the
    // connection is cut instead of a short body passing as the whole file.
    let mut res = octets(Body::from_stream(tokio_stream_from(rx)));
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_LENGTH, total.into());
    headers.insert(
        header::HeaderName::from_static("x-content-length"),
        total.into(),
    );
    Ok(res)
}

fn octets(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain"),
            (header::HeaderName::from_static("x-stream-output"), "1"),
        ],
        body,
    )
        .into_response()
}

pub(crate) async fn block_get(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let p = Params::parse(query.as_deref())?;
    let cid = parse_cid_arg(p.arg("cid")?)?;
    let block = blocking(move || get_block(&state, &cid)).await?;
    Ok(octets(Body::from(block)))
}

pub(crate) async fn block_stat(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let p = Params::parse(query.as_deref())?;
    let cid = parse_cid_arg(p.arg("cid")?)?;
    let block = blocking(move || get_block(&state, &cid)).await?;
    Ok(json(
        &json!({ "Key": cid.to_string(), "Size": block.len() }),
    ))
}
