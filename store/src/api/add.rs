//! `add`: multipart upload -> UnixFS import -> staged blocks -> commit + pin.
//!
//! The request task reads the multipart body and hands its frames (zero-copy `Bytes`, batched
//! so the worker wakes once per half MiB rather than once per frame) through a bounded channel
//! to one blocking worker that chunks, hashes and stages blocks. The content is never copied in
//! user space between the socket and the pack file. Memory is bounded by the channel depth and
//! the staging queue, whatever the file size. Nothing becomes visible until every part was
//! read successfully: the worker commits the staging area and the pins together at the end, and
//! drops (deletes) it on any error. With `progress=true` the response streams
//! `{"Name","Bytes"}` lines while the upload runs; an error after streaming started is sent as
//! a final Kubo error line.

use axum::body::{Body, BodyDataStream};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use super::multipart::{self, PartHeaders};
use super::{Params, chunked_output, ndjson};
use crate::AppState;
use crate::error::{Error, Result};
use crate::importer::{ImportOptions, Imported, Importer};

/// Body frames are handed to the worker in batches of at least this many bytes.
const MIN_BATCH_BYTES: usize = 512 * 1024;

const WORKER_GONE: &str = "import worker stopped";

/// Progress lines are emitted at most every this many bytes.
const PROGRESS_EVERY: u64 = 1 << 20;

#[derive(Debug, Clone, Copy)]
struct AddOptions {
    import: ImportOptions,
    only_hash: bool,
    pin: bool,
    progress: bool,
}

impl AddOptions {
    fn parse(p: &Params) -> Result<Self> {
        let mut import = ImportOptions::default();
        if let Some(v) = p.uint("cid-version")? {
            import.cid_version = match v {
                0 | 1 => v as u8,
                _ => return Err(Error::Failed(format!("unknown CID version: {v}"))),
            };
        }
        if p.get("raw-leaves").is_some() {
            import.raw_leaves = Some(p.flag("raw-leaves", false)?);
        }
        if let Some(spec) = p.get("chunker") {
            import.chunk_size = ImportOptions::parse_chunker(spec)?;
        }
        if let Some(hash) = p.get("hash")
            && hash != "sha2-256"
        {
            return Err(Error::Unsupported(format!("hash {hash:?} (only sha2-256)")));
        }
        for unsupported in [
            "trickle",
            "wrap-with-directory",
            "inline",
            "nocopy",
            "fscache",
        ] {
            if p.flag(unsupported, false)? {
                return Err(Error::Unsupported(unsupported.to_string()));
            }
        }
        if p.get("to-files").is_some() {
            return Err(Error::Unsupported("to-files".into()));
        }
        Ok(Self {
            import,
            only_hash: p.flag("only-hash", false)?,
            pin: p.flag("pin", true)?,
            progress: p.flag("progress", false)?,
        })
    }
}

/// One NDJSON line of the add response.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum AddLine {
    Done {
        #[serde(rename = "Name")]
        name: String,
        #[serde(rename = "Hash")]
        hash: String,
        #[serde(rename = "Size")]
        size: String,
    },
    Progress {
        #[serde(rename = "Name")]
        name: String,
        #[serde(rename = "Bytes")]
        bytes: u64,
    },
}

enum Msg {
    Start(String),
    /// Part content: the body's frames as received.
    Data(Vec<Bytes>),
    End,
    Commit,
}

/// The blocking side: imports every part, stages its blocks, commits on `Commit`.
fn worker(
    state: AppState,
    opts: AddOptions,
    mut rx: mpsc::Receiver<Msg>,
) -> Result<Vec<(String, Imported)>> {
    let repo = state.repo();
    let guard = if opts.only_hash {
        None
    } else {
        Some(repo.import_guard()?)
    };
    let mut staging = if opts.only_hash {
        None
    } else {
        Some(repo.blocks.staging()?)
    };
    let mut results = Vec::new();
    let mut current: Option<(String, Importer)> = None;
    let stage = |staging: &mut Option<crate::blockstore::Staging<'_>>,
                 b: crate::importer::Block|
     -> Result<()> {
        match staging {
            Some(st) => st.put(b),
            None => Ok(()),
        }
    };
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Start(name) => current = Some((name, Importer::new(&opts.import)?)),
            Msg::Data(batch) => {
                let (_, importer) = current
                    .as_mut()
                    .ok_or_else(|| Error::Internal("data before part start".into()))?;
                for frame in batch {
                    importer.push_bytes(frame, |b| stage(&mut staging, b))?;
                }
            }
            Msg::End => {
                let (name, importer) = current
                    .take()
                    .ok_or_else(|| Error::Internal("part end without start".into()))?;
                let out = importer.finish(|b| stage(&mut staging, b))?;
                results.push((name, out));
            }
            Msg::Commit => {
                if let (Some(st), Some(guard)) = (staging.take(), guard.as_ref()) {
                    let roots: Vec<_> = if opts.pin {
                        results.iter().map(|(_, r)| r.cid).collect()
                    } else {
                        Vec::new()
                    };
                    repo.commit_import(guard, st, &roots)?;
                }
                return Ok(results);
            }
        }
    }
    // The request side went away or failed: dropping `staging` deletes the staged blocks.
    Err(Error::Internal("upload aborted".into()))
}

/// The multipart reader of an `add` body.
type Parts = multipart::Reader<BodyDataStream>;

fn part_name(headers: &PartHeaders) -> Result<String> {
    // Kubo clients percent-encode file names.
    match &headers.file_name {
        Some(n) => super::percent_decode(n),
        None => Ok(String::new()),
    }
}

/// Reads the multipart body into the worker; `progress` receives `(name, bytes so far)`.
async fn feed(
    mut parts: Parts,
    tx: &mpsc::Sender<Msg>,
    progress: Option<&mpsc::Sender<AddLine>>,
) -> Result<()> {
    let gone = || Error::Internal(WORKER_GONE.into());
    let mut files = 0;
    while let Some(headers) = parts.next_part().await? {
        if headers.content_type.as_deref() == Some("application/x-directory") {
            return Err(Error::Unsupported("adding directories".into()));
        }
        let name = part_name(&headers)?;
        tx.send(Msg::Start(name.clone()))
            .await
            .map_err(|_| gone())?;
        let (mut total, mut reported) = (0u64, 0u64);
        let (mut batch, mut batch_len) = (Vec::new(), 0);
        while let Some(chunk) = parts.chunk().await? {
            total += chunk.len() as u64;
            batch_len += chunk.len();
            batch.push(chunk);
            if batch_len >= MIN_BATCH_BYTES {
                batch_len = 0;
                tx.send(Msg::Data(std::mem::take(&mut batch)))
                    .await
                    .map_err(|_| gone())?;
            }
            if let Some(p) = progress
                && total - reported >= PROGRESS_EVERY
            {
                reported = total;
                let _ = p
                    .send(AddLine::Progress {
                        name: name.clone(),
                        bytes: total,
                    })
                    .await;
            }
        }
        if !batch.is_empty() {
            tx.send(Msg::Data(batch)).await.map_err(|_| gone())?;
        }
        if let Some(p) = progress {
            let _ = p
                .send(AddLine::Progress {
                    name: name.clone(),
                    bytes: total,
                })
                .await;
        }
        tx.send(Msg::End).await.map_err(|_| gone())?;
        files += 1;
    }
    if files == 0 {
        return Err(Error::MissingFile);
    }
    tx.send(Msg::Commit).await.map_err(|_| gone())?;
    Ok(())
}

/// Runs one upload to completion: returns the final lines or the first error.
async fn run_import(
    state: AppState,
    opts: AddOptions,
    parts: Parts,
    progress: Option<mpsc::Sender<AddLine>>,
) -> Result<Vec<AddLine>> {
    let (tx, rx) = mpsc::channel(4);
    let worker_state = state.clone();
    let worker = tokio::task::spawn_blocking(move || worker(worker_state, opts, rx));
    let fed = feed(parts, &tx, progress.as_ref()).await;
    drop(tx);
    let outcome = worker
        .await
        .map_err(|e| Error::Internal(format!("import task failed: {e}")))?;
    let results = match (fed, outcome) {
        (Ok(()), outcome) => outcome?,
        // The worker failed first (e.g. a disk error): its error is the cause.
        (Err(Error::Internal(m)), Err(cause)) if m == WORKER_GONE => return Err(cause),
        // A request error (malformed body, over the limit) is the cause; the worker only
        // reports the abort.
        (Err(e), _) => return Err(e),
    };
    Ok(results
        .into_iter()
        .map(|(name, out)| {
            let hash = out.cid.to_string();
            AddLine::Done {
                name: if name.is_empty() { hash.clone() } else { name },
                hash,
                size: out.dag_size.to_string(),
            }
        })
        .collect())
}

pub(crate) async fn add(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let params = Params::parse(query.as_deref())?;
    let opts = AddOptions::parse(&params)?;
    let limit = state.config().max_request_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(Error::TooLarge(limit));
    }
    if !headers.contains_key(header::CONTENT_TYPE) {
        return Err(Error::MissingFile);
    }
    let boundary = multipart::boundary(&headers)?;
    let mp = multipart::Reader::new(body.into_data_stream(), &boundary, limit);
    if !opts.progress {
        let lines = run_import(state, opts, mp, None).await?;
        return ndjson(&lines).map(chunked_output);
    }
    let (line_tx, mut line_rx) = mpsc::channel::<AddLine>(64);
    let (body_tx, body_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let forward_tx = body_tx.clone();
        let forward = tokio::spawn(async move {
            while let Some(line) = line_rx.recv().await {
                if let Ok(mut v) = serde_json::to_vec(&line) {
                    v.push(b'\n');
                    if forward_tx.send(Ok(Bytes::from(v))).await.is_err() {
                        break;
                    }
                }
            }
        });
        let result = run_import(state, opts, mp, Some(line_tx)).await;
        let _ = forward.await;
        let tail = match result {
            Ok(lines) => lines,
            Err(e) => {
                let mut v = serde_json::to_vec(&e.body()).unwrap_or_default();
                v.push(b'\n');
                let _ = body_tx.send(Ok(Bytes::from(v))).await;
                return;
            }
        };
        for line in tail {
            if let Ok(mut v) = serde_json::to_vec(&line) {
                v.push(b'\n');
                let _ = body_tx.send(Ok(Bytes::from(v))).await;
            }
        }
    });
    let stream = tokio_stream_from(body_rx);
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::HeaderName::from_static("x-chunked-output"), "1"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Adapts an mpsc receiver into a `Stream`.
pub(crate) fn tokio_stream_from<T: Send + 'static>(
    rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}
