//! The IPFS backend, always spoken to through the Kubo RPC API: the embedded `px-store` or a
//! configured daemon (Kubo, js-ipfs; BTFS untested) alike. `cat`, `pin/ls`, single pins and
//! `version` go through `ipfs-api-backend-hyper` over HTTP (to the embedded store's loopback
//! listener when embedded). The node builds every other request itself: the streaming `add` of
//! uploads ([`Ipfs::add_stream_pinned`], [`Ipfs::add_stream_journaled`]), the multi-part `add`
//! of index objects, the multi-`arg` `pin/add` / `pin/rm`, and `key/gen`, `name/publish`,
//! `name/resolve`. One code path builds each of them; a `Transport` sends it, either over HTTP
//! with `reqwest` (a remote backend) or, for the embedded store, straight into its router
//! in-process (no socket: the upload's frames are handed to the store as they are, without the
//! two loopback copies and the TCP stack). The answer (status and Kubo JSON body) is read the
//! same way from both.
//!
//! What real daemons answer differently, and how the requests are written so that each of
//! them works (see `tools/RPC-FACTS.md`): `key/gen` sends `type=ed25519` and no `size` (Kubo
//! refuses `size=0`); key ids are accepted as `k51...` or `12D3KooW...` (js-ipfs); every
//! multipart part has a `Content-Type` (js-ipfs refuses parts without one); `add` answers are
//! matched to parts by position, and `Size` is never read (a string in Kubo, a number in
//! js-ipfs); `name/resolve` gets the base58 peer id (js-ipfs takes a `k51...` name for a
//! DNSLink domain) and `nocache`, unless refused (js-ipfs offline); `name/publish` sends
//! `allow-offline=true`.

use std::time::Duration;

use axum::http::{StatusCode, header};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use ipfs_api_backend_hyper::{IpfsApi, IpfsClient, TryFromUri};
use px_core::ipns::IpnsName;
use tokio::io::AsyncRead;

use crate::error::{Error, Result};

/// A Kubo RPC client.
#[derive(Clone)]
pub struct Ipfs {
    client: IpfsClient,
    /// How the requests the node builds itself reach the backend.
    transport: Transport,
}

impl std::fmt::Debug for Ipfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = match self.transport {
            Transport::Http { .. } => "http",
            Transport::InProcess(_) => "in-process",
        };
        f.debug_struct("Ipfs")
            .field("transport", &transport)
            .finish_non_exhaustive()
    }
}

/// How the Kubo RPC requests the node builds itself ([`Call`]) reach the backend.
#[derive(Clone)]
enum Transport {
    /// `POST <base>/<command>` over HTTP (`base` ends in `/api/v0`, or BTFS's `/api/v1`).
    Http {
        client: reqwest::Client,
        base: String,
    },
    /// The embedded store's router, called in-process with the same request
    /// (`/api/v0/<command>`, headers and body); body frames are handed over as they are.
    InProcess(axum::Router),
}

/// One Kubo RPC request: `POST <api>/<command>?<query>`.
struct Call<'a> {
    command: &'a str,
    /// Already encoded.
    query: String,
    content_type: Option<String>,
    content_length: Option<u64>,
    body: CallBody,
}

enum CallBody {
    Empty,
    Full(Bytes),
    Stream(futures::stream::BoxStream<'static, std::io::Result<Bytes>>),
}

impl<'a> Call<'a> {
    fn new(command: &'a str, query: String) -> Self {
        Self {
            command,
            query,
            content_type: None,
            content_length: None,
            body: CallBody::Empty,
        }
    }

    /// A multipart body (`boundary`) of `len` bytes.
    fn multipart(mut self, boundary: &str, len: u64, body: CallBody) -> Self {
        self.content_type = Some(format!("multipart/form-data; boundary={boundary}"));
        self.content_length = Some(len);
        self.body = body;
        self
    }
}

impl Call<'_> {
    /// `<api>/<command>?<query>`.
    fn target(&self, api: &str) -> String {
        let mut url = format!("{api}/{}", self.command);
        if !self.query.is_empty() {
            url.push('?');
            url.push_str(&self.query);
        }
        url
    }

    fn headers(&self) -> Result<header::HeaderMap> {
        let mut headers = header::HeaderMap::new();
        if let Some(t) = &self.content_type {
            let t = t
                .parse()
                .map_err(|_| Error::Internal(format!("bad content type {t}")))?;
            headers.insert(header::CONTENT_TYPE, t);
        }
        if let Some(n) = self.content_length {
            headers.insert(header::CONTENT_LENGTH, n.into());
        }
        Ok(headers)
    }
}

impl Transport {
    /// Sends `call`; answers the status and body text. Only a failure to deliver the request
    /// or read the answer is an error here; the caller judges the status and body.
    async fn send(&self, call: Call<'_>) -> Result<(StatusCode, String)> {
        let (status, bytes) = self.send_bytes(call).await?;
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// [`Self::send`], answering the body's bytes as they are.
    async fn send_bytes(&self, call: Call<'_>) -> Result<(StatusCode, Bytes)> {
        let what = call.command;
        let fail = |e: &dyn std::fmt::Display| Error::Ipfs(format!("{what}: {e}"));
        let headers = call.headers()?;
        match self {
            Transport::Http { client, base } => {
                let request = client.post(call.target(base)).headers(headers);
                let request = match call.body {
                    CallBody::Empty => request,
                    CallBody::Full(b) => request.body(b),
                    CallBody::Stream(s) => request.body(reqwest::Body::wrap_stream(s)),
                };
                let r = request.send().await.map_err(|e| fail(&e))?;
                let status = r.status();
                let bytes = r.bytes().await.map_err(|e| fail(&e))?;
                Ok((status, bytes))
            }
            Transport::InProcess(router) => {
                let target = call.target("/api/v0");
                let body = match call.body {
                    CallBody::Empty => axum::body::Body::empty(),
                    CallBody::Full(b) => axum::body::Body::from(b),
                    CallBody::Stream(s) => axum::body::Body::from_stream(s),
                };
                let mut request = axum::http::Request::post(target)
                    .body(body)
                    .map_err(|e| fail(&e))?;
                *request.headers_mut() = headers;
                let response = tower::ServiceExt::oneshot(router.clone(), request)
                    .await
                    .unwrap_or_else(|never| match never {});
                let status = response.status();
                let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .map_err(|e| fail(&e))?;
                Ok((status, bytes))
            }
        }
    }
}

/// A CID as this node writes it (CIDv0 in base58btc, CIDv1 in base32), whatever multibase
/// the backend answered in: js-ipfs answers CIDv1 in base58btc (`zdj7…`), Kubo and px-store in
/// base32 (`bafk…`). A string that does not parse is kept as it is (the caller's comparison
/// with the CID it computed then fails).
fn canonical_cid(hash: String) -> String {
    match cid::Cid::try_from(hash.as_str()) {
        Ok(c) => c.to_string(),
        Err(_) => hash,
    }
}

/// `key=value&...`, values percent-encoded (everything but RFC 3986 unreserved characters).
fn encode_query(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        for b in v.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// A fresh multipart boundary.
fn boundary() -> Result<String> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(alloy::hex::encode(nonce))
}

/// The backend's deadline for [`Ipfs::cat_range`] (its `timeout` option, which Kubo and js-ipfs
/// take as a duration).
pub const CAT_RANGE_TIMEOUT: &str = "10s";

/// CIDs per batched RPC call (keeps request lines a few KiB long).
const ARGS_PER_CALL: usize = 64;

/// The body of an upload's `add` request: the multipart head, the upload's chunks (never
/// copied; with an importer, hashed into the CID on the way), then (with an importer, once the
/// CID has been handed over and the go-ahead received) the closing boundary.
struct Feed<S> {
    body: std::pin::Pin<Box<S>>,
    head: Option<Bytes>,
    /// The body has ended or failed.
    finished: bool,
    importer: Option<px_core::importer::Importer>,
    received: u64,
    len: u64,
    cid_tx: Option<tokio::sync::oneshot::Sender<String>>,
    go_rx: Option<tokio::sync::oneshot::Receiver<()>>,
    tail: Option<Bytes>,
}

type FeedItem = std::result::Result<Bytes, std::io::Error>;

impl<S, E> Feed<S>
where
    S: Stream<Item = std::result::Result<Bytes, E>>,
    E: std::fmt::Display,
{
    /// Ends the stream after an error: no closing boundary ever follows.
    fn fail(mut self, e: String) -> Option<(FeedItem, Self)> {
        self.finished = true;
        self.importer = None;
        self.tail = None;
        Some((Err(std::io::Error::other(e)), self))
    }

    async fn next(mut self) -> Option<(FeedItem, Self)> {
        if let Some(head) = self.head.take() {
            return Some((Ok(head), self));
        }
        if self.finished {
            return None;
        }
        match self.body.next().await {
            Some(Ok(chunk)) => {
                self.received += chunk.len() as u64;
                if self.received > self.len {
                    return self.fail("body longer than its length".into());
                }
                if let Some(importer) = self.importer.as_mut() {
                    importer
                        .push_bytes(chunk.clone(), |_| Ok::<_, std::convert::Infallible>(()))
                        .unwrap_or_else(|e| match e {});
                }
                Some((Ok(chunk), self))
            }
            Some(Err(e)) => self.fail(format!("upload interrupted: {e}")),
            None => {
                self.finished = true;
                if self.received != self.len {
                    let e = format!("body ended after {} of {} bytes", self.received, self.len);
                    return self.fail(e);
                }
                if let Some(importer) = self.importer.take() {
                    let imported = importer
                        .finish(|_| Ok::<_, std::convert::Infallible>(()))
                        .unwrap_or_else(|e| match e {});
                    let handed = self
                        .cid_tx
                        .take()
                        .is_some_and(|tx| tx.send(imported.cid.to_string()).is_ok());
                    let go = match self.go_rx.take() {
                        Some(rx) if handed => rx.await.is_ok(),
                        _ => false,
                    };
                    if !go {
                        return self.fail("CID not journaled".into());
                    }
                }
                let tail = self.tail.take()?;
                Some((Ok(tail), self))
            }
        }
    }
}

/// A created IPNS key.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Key name in the backend.
    pub name: String,
    /// Base36 IPNS name (`k51...`), whichever form the backend answered.
    pub id: String,
    /// ed25519 public key.
    pub pubkey: [u8; 32],
}

/// The ed25519 public key inside an IPNS name, in any form backends print it: base36 CIDv1
/// (`k51...`, Kubo and px-store), base58 peer id (`12D3KooW...`, js-ipfs), `/ipns/`-prefixed.
pub fn pubkey_of_ipns_id(id: &str) -> Result<[u8; 32]> {
    let name: IpnsName = id
        .parse()
        .map_err(|e| Error::Ipfs(format!("bad IPNS name {id}: {e}")))?;
    name.ed25519_key()
        .ok_or_else(|| Error::Ipfs(format!("IPNS name {id} is not an ed25519 key")))
}

/// The form of an IPNS name every backend resolves: the base58 peer id. (js-ipfs 0.66 takes
/// a `k51...` name for a DNSLink domain; Kubo and px-store accept both.)
fn resolvable_name(id: &str) -> Result<String> {
    let name: IpnsName = id
        .parse()
        .map_err(|e| Error::Ipfs(format!("bad IPNS name {id}: {e}")))?;
    Ok(name.peer_id().to_base58())
}

/// The one JSON object of a small command's answer (the last line, for NDJSON answers).
fn parse_answer<T: serde::de::DeserializeOwned>(
    command: &str,
    status: StatusCode,
    text: &str,
) -> Result<T> {
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    if !status.is_success() {
        return Err(Error::Ipfs(format!(
            "{command} answered {status}: {}",
            kubo_message(text)
        )));
    }
    serde_json::from_str(last).map_err(|e| {
        Error::Ipfs(format!(
            "{command} answered {status} with an unreadable body ({e}): {}",
            text.chars().take(200).collect::<String>()
        ))
    })
}

/// The `Message` of a Kubo error body, or the start of a non-JSON one.
fn kubo_message(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Failure {
        #[serde(rename = "Message")]
        message: String,
    }
    serde_json::from_str::<Failure>(body)
        .map(|f| f.message)
        .unwrap_or_else(|_| body.chars().take(200).collect())
}

impl Ipfs {
    /// A client for the RPC API at `url` (`/api/v0` appended unless the URL has a path), every
    /// call over HTTP.
    pub fn new(url: &str) -> Result<Self> {
        let uri: axum::http::Uri = url
            .parse()
            .map_err(|e| Error::Config(format!("invalid IPFS URL {url}: {e}")))?;
        let has_path = !uri.path().trim_end_matches('/').is_empty();
        let base = if has_path {
            url.trim_end_matches('/').to_string()
        } else {
            format!("{}/api/v0", url.trim_end_matches('/'))
        };
        let client = if has_path {
            // The client's own `http` 0.2 Uri type, inferred from the constructor.
            let base = url
                .trim_end_matches('/')
                .parse()
                .map_err(|e| Error::Config(format!("invalid IPFS URL {url}: {e}")))?;
            IpfsClient::build_with_base_uri(base)
        } else {
            IpfsClient::from_str(url)
                .map_err(|e| Error::Config(format!("invalid IPFS URL {url}: {e}")))?
        };
        Ok(Self {
            client,
            transport: Transport::Http {
                client: reqwest::Client::new(),
                base,
            },
        })
    }

    /// A client for a store running in this process: the uploads' `add`, the index objects'
    /// `add` and the batched `pin/add` / `pin/rm` go straight to its router (no socket), the
    /// other calls to its HTTP listener. The store must outlive the requests sent this way
    /// ([`px_store::StoreHandle::shutdown`] does not wait for them).
    pub fn embedded(store: &px_store::StoreHandle) -> Result<Self> {
        let mut ipfs = Self::new(&store.api_url())?;
        ipfs.transport = Transport::InProcess(store.router());
        Ok(ipfs)
    }

    /// Streams `len` bytes into the backend's `add` with `pin=true` and answers the CID the
    /// backend reports. Whoever calls this must be able to find the pin after a crash without
    /// knowing its CID (the node sweeps unreferenced pins of a backend it owns).
    ///
    /// Pinning in the `add` spares the backend a second pass: `pin/add` after an unpinned
    /// `add` walks the whole DAG again (px-store reads and re-hashes every block).
    ///
    /// The request is built here, not by `ipfs-api-backend-hyper`: that client's multipart
    /// encoder reads the body in 2 KiB pieces, which halved upload throughput (measured by the
    /// `node` benchmark). Here the multipart framing is written by hand around the request's
    /// own chunks, which reach the backend as they arrived, never copied (in-process, the
    /// store reads the very same `Bytes`).
    pub async fn add_stream_pinned<S, E>(&self, body: S, len: u64) -> Result<String>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        self.add_stream(
            body,
            len,
            None::<fn(String) -> std::future::Ready<Result<()>>>,
        )
        .await
    }

    /// As [`Ipfs::add_stream_pinned`], but the CID is computed here as the bytes pass (Kubo's
    /// layout, pinned down by the request's parameters: CIDv0, `size-262144` chunks, balanced,
    /// dag-pb leaves), and `before_pin(cid)` runs before the request's last bytes leave: the
    /// backend cannot finish the add, let alone pin, without the multipart closing boundary,
    /// so whatever `before_pin` records (the node journals the CID) precedes the pin. If
    /// `before_pin` fails, or the body errs or is not exactly `len` bytes, the request is
    /// aborted before that boundary and nothing is pinned. The caller compares the answer with
    /// the CID given to `before_pin`. Hashing costs about as much CPU as the backend's own.
    pub async fn add_stream_journaled<S, E, F, Fut>(
        &self,
        body: S,
        len: u64,
        before_pin: F,
    ) -> Result<String>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        self.add_stream(body, len, Some(before_pin)).await
    }

    /// As [`Ipfs::add_stream_journaled`] with the import settings `options` (CID version, raw
    /// leaves, chunk size) for the CID computed here and the backend's `add`: a provider's
    /// pieces are CIDv1 with raw leaves ([`px_core::piece::CID_OPTIONS`]).
    pub async fn add_stream_journaled_as<S, E, F, Fut>(
        &self,
        body: S,
        len: u64,
        options: &px_core::importer::ImportOptions,
        before_pin: F,
    ) -> Result<String>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        self.add_stream_with(body, len, options, Some(before_pin))
            .await
    }

    async fn add_stream<S, E, F, Fut>(
        &self,
        body: S,
        len: u64,
        before_pin: Option<F>,
    ) -> Result<String>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        self.add_stream_with(body, len, &Self::add_options(), before_pin)
            .await
    }

    async fn add_stream_with<S, E, F, Fut>(
        &self,
        body: S,
        len: u64,
        options: &px_core::importer::ImportOptions,
        before_pin: Option<F>,
    ) -> Result<String>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let boundary = boundary()?;
        let head = Bytes::from(format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"file\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        ));
        let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
        let total = head.len() as u64 + len + tail.len() as u64;
        let importer = match before_pin {
            Some(_) => Some(
                px_core::importer::Importer::new(options)
                    .map_err(|e| Error::Internal(e.to_string()))?,
            ),
            None => None,
        };
        let (cid_tx, cid_rx) = tokio::sync::oneshot::channel::<String>();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let feed = Feed {
            body: Box::pin(body),
            head: Some(head),
            finished: false,
            importer,
            received: 0,
            len,
            cid_tx: Some(cid_tx),
            go_rx: Some(go_rx),
            tail: Some(tail),
        };
        let call = Call::new(
            "add",
            format!(
                "pin=true&cid-version={}&raw-leaves={}&chunker=size-{}&progress=false",
                options.cid_version,
                options.raw_leaves.unwrap_or(options.cid_version == 1),
                options.chunk_size
            ),
        )
        .multipart(
            &boundary,
            total,
            CallBody::Stream(futures::stream::unfold(feed, Feed::next).boxed()),
        );
        let request = self.transport.send(call);
        let handshake = async move {
            if let (Some(before_pin), Ok(cid)) = (before_pin, cid_rx.await) {
                match before_pin(cid).await {
                    Ok(()) => {
                        let _ = go_tx.send(());
                    }
                    // Dropping `go_tx` aborts the request before its closing boundary.
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        };
        let (response, handshake) = tokio::join!(request, handshake);
        handshake?;
        let (status, text) = response?;
        let hash = add_lines(status, &text)?
            .pop()
            .and_then(|line| line.hash)
            .ok_or_else(|| Error::Ipfs(format!("add answered {status} without a CID")))?;
        Ok(canonical_cid(hash))
    }

    /// The import settings [`Ipfs::add_stream_journaled`] computes CIDs with and uploads ask
    /// the backend for (Kubo's defaults).
    fn add_options() -> px_core::importer::ImportOptions {
        px_core::importer::ImportOptions::default()
    }

    /// Adds a byte stream without pinning it; answers its CID.
    pub async fn add_unpinned<R>(&self, mut data: R) -> Result<String>
    where
        R: AsyncRead + Send + Sync + Unpin + 'static,
    {
        let mut bytes = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut data, &mut bytes).await?;
        self.add_small(bytes, false).await
    }

    /// `add` of one small object (CIDv0, Kubo's defaults); answers its CID.
    async fn add_small(&self, bytes: Vec<u8>, pin: bool) -> Result<String> {
        let boundary = boundary()?;
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"file\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let call = Call::new("add", format!("pin={pin}&cid-version=0&progress=false")).multipart(
            &boundary,
            body.len() as u64,
            CallBody::Full(Bytes::from(body)),
        );
        let (status, text) = self.transport.send(call).await?;
        add_lines(status, &text)?
            .pop()
            .and_then(|line| line.hash)
            .ok_or_else(|| Error::Ipfs(format!("add answered {status} without a CID")))
    }

    /// Adds small objects in one `add` request (one part each, unpinned), checks that the
    /// backend computed each expected CID (so the caller can journal them before the pins
    /// exist), then pins them all in one `pin/add`: two round trips whatever their number.
    pub async fn add_objects_pinned(&self, objects: Vec<(String, Vec<u8>)>) -> Result<()> {
        if objects.is_empty() {
            return Ok(());
        }
        // One part per object, each with a Content-Type (js-ipfs refuses parts without one).
        // The answer lines come in the order of the parts; their `Name` is not used (Kubo
        // echoes the file name, js-ipfs answers the CID for a digit-only name).
        let boundary = boundary()?;
        let mut body = Vec::new();
        let mut expected = Vec::with_capacity(objects.len());
        for (i, (cid, bytes)) in objects.into_iter().enumerate() {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
                     filename=\"{i}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(&bytes);
            body.extend_from_slice(b"\r\n");
            expected.push(cid);
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let call = Call::new("add", "pin=false&cid-version=0&progress=false".into()).multipart(
            &boundary,
            body.len() as u64,
            CallBody::Full(Bytes::from(body)),
        );
        let (status, text) = self.transport.send(call).await?;
        let got: Vec<Option<String>> = add_lines(status, &text)?
            .into_iter()
            .map(|line| line.hash)
            .collect();
        if got.len() != expected.len() {
            return Err(Error::Ipfs(format!(
                "add answered {} results for {} objects",
                got.len(),
                expected.len()
            )));
        }
        for (want, got) in expected.iter().zip(&got) {
            if got.as_deref() != Some(want.as_str()) {
                return Err(Error::Ipfs(format!(
                    "backend stored an object as {got:?}, expected {want}"
                )));
            }
        }
        self.pin_all(&expected).await
    }

    /// Unpins `cids`, up to `ARGS_PER_CALL` (64) per `pin/rm` call; a CID that is not pinned is
    /// not an error (a batch the backend refuses for that is redone one by one).
    pub async fn unpin_all(&self, cids: &[String]) -> Result<()> {
        for batch in cids.chunks(ARGS_PER_CALL) {
            match self.call_with_args("pin/rm", batch).await {
                Ok(()) => {}
                Err(Error::Ipfs(m)) if m.contains("not pinned") => {
                    for c in batch {
                        self.unpin(c).await?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Adds a small object and pins it, checking that the backend computed `cid` (so the
    /// caller can journal the CID before the pin exists).
    pub async fn add_pinned(&self, cid: &str, data: Vec<u8>) -> Result<()> {
        let hash = self.add_small(data, true).await?;
        if hash != cid {
            let _ = self.unpin(&hash).await;
            return Err(Error::Ipfs(format!(
                "backend stored the object as {hash}, expected {cid}"
            )));
        }
        Ok(())
    }

    /// Pins `cids` recursively, up to `ARGS_PER_CALL` (64) per `pin/add` call (Kubo's `pin/add`,
    /// and px-store's, take several `arg`s).
    pub async fn pin_all(&self, cids: &[String]) -> Result<()> {
        for batch in cids.chunks(ARGS_PER_CALL) {
            self.call_with_args("pin/add", batch).await?;
        }
        Ok(())
    }

    /// POSTs `<api>/<command>?arg=..&arg=..`; an answer other than 2xx is an error with the
    /// backend's message.
    async fn call_with_args(&self, command: &str, args: &[String]) -> Result<()> {
        let query: Vec<(&str, &str)> = args.iter().map(|a| ("arg", a.as_str())).collect();
        let call = Call::new(command, encode_query(&query));
        let (status, body) = self.transport.send(call).await?;
        if status.is_success() {
            return Ok(());
        }
        Err(Error::Ipfs(format!(
            "{command} answered {status}: {}",
            kubo_message(&body)
        )))
    }

    /// POSTs a small command with `query` (already encoded) and reads its JSON answer.
    async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        command: &str,
        query: &[(&str, &str)],
    ) -> Result<T> {
        let (status, text) = self
            .transport
            .send(Call::new(command, encode_query(query)))
            .await?;
        parse_answer(command, status, &text)
    }

    /// Pins `cid` recursively.
    pub async fn pin(&self, cid: &str) -> Result<()> {
        self.client.pin_add(cid, true).await?;
        Ok(())
    }

    /// Unpins `cid`; a CID that is not pinned is not an error.
    pub async fn unpin(&self, cid: &str) -> Result<()> {
        match self.client.pin_rm(cid, true).await {
            Ok(_) => Ok(()),
            Err(ipfs_api_backend_hyper::Error::Api(e)) if e.message.contains("not pinned") => {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `cid` is pinned (directly or recursively).
    pub async fn is_pinned(&self, cid: &str) -> Result<bool> {
        match self.client.pin_ls(Some(cid), None).await {
            Ok(r) => Ok(!r.keys.is_empty()),
            Err(ipfs_api_backend_hyper::Error::Api(e)) if e.message.contains("not pinned") => {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// All recursively pinned CIDs, in the canonical text form the node records (CIDv1 in
    /// base32, CIDv0 as is): js-ipfs lists CIDv1 pins in base58btc (`zdj7…`).
    ///
    /// Kubo leaves `Keys` out of its answer when nothing is pinned (`{}`, an `omitempty` map),
    /// which `ipfs-api`'s typed `pin_ls` refuses: the answer is read here with `Keys` optional.
    pub async fn pins(&self) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct PinLs {
            #[serde(rename = "Keys", default)]
            keys: std::collections::HashMap<String, serde_json::Value>,
        }
        let (status, body) = self
            .transport
            .send_bytes(Call::new("pin/ls", encode_query(&[("type", "recursive")])))
            .await?;
        if !status.is_success() {
            return Err(Error::Ipfs(format!(
                "pin/ls answered {status}: {}",
                kubo_message(&String::from_utf8_lossy(&body))
            )));
        }
        let r: PinLs = serde_json::from_slice(&body)
            .map_err(|e| Error::Ipfs(format!("pin/ls answer: {e}")))?;
        Ok(r.keys.into_keys().map(canonical_cid).collect())
    }

    /// Streams the bytes of `cid`.
    pub fn cat(&self, cid: &str) -> impl Stream<Item = Result<Bytes>> + Send + use<> {
        self.client
            .cat(&format!("/ipfs/{cid}"))
            .map_err(Error::from)
    }

    /// Reads exactly `length` bytes of `cid` from byte `offset` (a piece's block, for a
    /// proof) from the backend's own blocks: `offline=true`, so a daemon that lost a block
    /// answers an error at once instead of fetching it from the network (Kubo would otherwise
    /// wait on bitswap, and a provider could answer challenges with data it does not keep).
    /// Fewer or more bytes than asked, as when a block goes missing mid-stream, are an error.
    /// The backend gives up after [`CAT_RANGE_TIMEOUT`] (a local block read takes
    /// milliseconds).
    pub async fn cat_range(&self, cid: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let path = format!("/ipfs/{cid}");
        let (offset_s, length_s) = (offset.to_string(), length.to_string());
        let query = [
            ("arg", path.as_str()),
            ("offset", offset_s.as_str()),
            ("length", length_s.as_str()),
            ("offline", "true"),
            // js-ipfs waits for an absent block even when offline: its own deadline ends that.
            ("timeout", CAT_RANGE_TIMEOUT),
        ];
        let (status, body) = self
            .transport
            .send_bytes(Call::new("cat", encode_query(&query)))
            .await?;
        if !status.is_success() {
            return Err(Error::Ipfs(format!(
                "cat of {cid} answered {status}: {}",
                kubo_message(&String::from_utf8_lossy(&body))
            )));
        }
        if body.len() as u64 != length {
            return Err(Error::Ipfs(format!(
                "cat of {cid} at {offset} answered {} bytes, not {length}",
                body.len()
            )));
        }
        Ok(body.to_vec())
    }

    /// Reads a small object whole.
    pub async fn cat_all(&self, cid: &str, limit: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut s = std::pin::pin!(self.cat(cid));
        while let Some(chunk) = s.try_next().await? {
            if out.len() + chunk.len() > limit {
                return Err(Error::Ipfs(format!("object {cid} is over {limit} bytes")));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Creates an ed25519 key named `name`.
    ///
    /// `type=ed25519` and nothing else: Kubo refuses the `size=0` that `ipfs-api`'s `key_gen`
    /// sends, and js-ipfs makes an RSA key without a type. The `Id` may come as base36
    /// (`k51...`, Kubo) or as a base58 peer id (`12D3KooW...`, js-ipfs; it ignores
    /// `ipns-base`); it is returned as base36. A key the node cannot use (not ed25519, an
    /// unreadable answer) is removed again and the error is permanent
    /// ([`Error::Internal`]: the backend is not one the node can work with), never a "retry
    /// later".
    pub async fn key_gen(&self, name: &str) -> Result<NewKey> {
        #[derive(serde::Deserialize)]
        struct KeyGen {
            #[serde(rename = "Name")]
            name: String,
            #[serde(rename = "Id")]
            id: String,
        }
        let r: KeyGen = self
            .call_json("key/gen", &[("arg", name), ("type", "ed25519")])
            .await?;
        match pubkey_of_ipns_id(&r.id) {
            Ok(pubkey) => {
                let id = IpnsName::from_ed25519_key(&pubkey)
                    .map_err(|e| Error::Internal(format!("key {}: {e}", r.name)))?
                    .to_string();
                Ok(NewKey {
                    name: r.name,
                    id,
                    pubkey,
                })
            }
            Err(e) => {
                if let Err(rm) = self.key_rm(&r.name).await {
                    tracing::warn!(target: "node::ipfs", key = %r.name, error = %rm, "cannot remove an unusable key");
                }
                Err(Error::Internal(format!(
                    "the IPFS backend made key {} unusable for IPNS: {e}",
                    r.name
                )))
            }
        }
    }

    /// Removes the key named `name` from the backend's keystore.
    pub async fn key_rm(&self, name: &str) -> Result<()> {
        let (status, text) = self
            .transport
            .send(Call::new("key/rm", encode_query(&[("arg", name)])))
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Error::Ipfs(format!(
                "key/rm answered {status}: {}",
                kubo_message(&text)
            )))
        }
    }

    /// Publishes `/ipfs/<cid>` under the key `key`, valid for `lifetime`. `allow-offline`
    /// lets a daemon without peers (Kubo `--offline`, js-ipfs) publish into its own store.
    pub async fn publish(&self, key: &str, cid: &str, lifetime: Duration) -> Result<()> {
        let lifetime = format!("{}s", lifetime.as_secs());
        let path = format!("/ipfs/{cid}");
        let _: serde_json::Value = self
            .call_json(
                "name/publish",
                &[
                    ("arg", &path),
                    ("key", key),
                    ("lifetime", &lifetime),
                    ("allow-offline", "true"),
                ],
            )
            .await?;
        Ok(())
    }

    /// Resolves an IPNS name (any form) to its path, one step (`recursive=false`), bypassing
    /// the daemon's cache (`nocache=true`: Kubo answers a name it resolved before from its
    /// cache, older than what was published since). js-ipfs refuses `nocache` offline
    /// ("cannot specify both offline and nocache"); it is asked again without.
    pub async fn resolve(&self, ipns_id: &str) -> Result<String> {
        #[derive(serde::Deserialize)]
        struct Resolved {
            #[serde(rename = "Path")]
            path: String,
        }
        let arg = format!("/ipns/{}", resolvable_name(ipns_id)?);
        let query = [("arg", arg.as_str()), ("recursive", "false")];
        let uncached = [query[0], query[1], ("nocache", "true")];
        let r: Resolved = match self.call_json("name/resolve", &uncached).await {
            Err(Error::Ipfs(m)) if m.contains("offline and nocache") => {
                self.call_json("name/resolve", &query).await?
            }
            r => r?,
        };
        Ok(r.path)
    }

    /// Whether the backend answers.
    pub async fn alive(&self) -> bool {
        tokio::time::timeout(Duration::from_secs(2), self.client.version())
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// One NDJSON line of an `add` answer: a result, a progress line or a Kubo error. `Name` and
/// `Size` are not read (see the module docs).
#[derive(serde::Deserialize)]
struct AddLine {
    #[serde(rename = "Hash")]
    hash: Option<String>,
    #[serde(rename = "Message")]
    message: Option<String>,
}

/// The lines of an `add` answer; an error line, an unreadable line or a failure status is an
/// error.
fn add_lines(status: StatusCode, text: &str) -> Result<Vec<AddLine>> {
    let mut lines = Vec::new();
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let line: AddLine = serde_json::from_str(l).map_err(|_| {
            Error::Ipfs(format!(
                "add answered {status}: {}",
                text.chars().take(200).collect::<String>()
            ))
        })?;
        if let Some(m) = line.message {
            return Err(Error::Ipfs(format!("add: {m}")));
        }
        lines.push(line);
    }
    if !status.is_success() {
        return Err(Error::Ipfs(format!("add answered {status}")));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// js-ipfs answers `add --cid-version=1` in base58btc; Kubo's `ipfs cid base32` of that
    /// answer is what the node computes. CIDv0 stays as it is.
    #[test]
    fn backend_cids_are_compared_in_one_multibase() {
        assert_eq!(
            canonical_cid("zdj7WZpzWtupoSciyU3oCxzyxVtm13Nzop1WtjXorJynVeAuJ".into()),
            "bafybeicblfarb2fu5iij6elladqlbkdkwobcs6p4jcvdpry3a4zz2oykiu"
        );
        let v0 = "QmW3ELYT88Z3hKb2sb55u1s8kE5P2ziY3ArgJw9QQz9x7A";
        assert_eq!(canonical_cid(v0.into()), v0);
        assert_eq!(canonical_cid("not a cid".into()), "not a cid");
    }

    /// A store with a 64 KiB request limit, and two clients of it: over HTTP and in-process.
    async fn store() -> (tempfile::TempDir, px_store::StoreHandle, Ipfs, Ipfs) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = px_store::StoreConfig::new(dir.path().join("store"));
        config.api = "127.0.0.1:0".parse().unwrap();
        config.sync_writes = false;
        config.max_request_bytes = 64 << 10;
        let store = px_store::spawn(config).await.unwrap();
        let http = Ipfs::new(&store.api_url()).unwrap();
        let local = Ipfs::embedded(&store).unwrap();
        assert!(matches!(http.transport, Transport::Http { .. }));
        assert!(matches!(local.transport, Transport::InProcess(_)));
        (dir, store, http, local)
    }

    fn chunks(
        seed: u8,
        len: usize,
    ) -> impl Stream<Item = std::result::Result<Bytes, std::io::Error>> + Send + 'static {
        let data: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect();
        let parts: Vec<_> = data
            .chunks(7000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures::stream::iter(parts)
    }

    fn message(r: Result<impl std::fmt::Debug>) -> String {
        match r {
            Err(Error::Ipfs(m)) => m,
            other => panic!("expected a backend error, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_transports_store_the_same() {
        let (_dir, store, http, local) = store().await;
        for ipfs in [&http, &local] {
            let cid = ipfs.add_stream_pinned(chunks(1, 50_000), 50_000).await;
            let journaled = std::sync::Mutex::new(None);
            let cid2 = ipfs
                .add_stream_journaled(chunks(2, 60_000), 60_000, |c| {
                    *journaled.lock().unwrap() = Some(c);
                    async { Ok(()) }
                })
                .await
                .unwrap();
            assert_eq!(journaled.lock().unwrap().as_deref(), Some(cid2.as_str()));
            let cid = cid.unwrap();
            assert!(ipfs.is_pinned(&cid).await.unwrap());
            assert!(ipfs.is_pinned(&cid2).await.unwrap());
            assert_eq!(ipfs.cat_all(&cid, 1 << 20).await.unwrap().len(), 50_000);
            // The index objects' add (CIDs computed by the same importer the store uses).
            let objects: Vec<(String, Vec<u8>)> = (0..3u8)
                .map(|i| {
                    let bytes = vec![i; 100 + usize::from(i)];
                    (crate::index::object_cid(&bytes).unwrap(), bytes)
                })
                .collect();
            let cids: Vec<String> = objects.iter().map(|(c, _)| c.clone()).collect();
            ipfs.add_objects_pinned(objects).await.unwrap();
            for c in &cids {
                assert!(ipfs.is_pinned(c).await.unwrap());
            }
            let mut all = cids.clone();
            all.extend([cid, cid2]);
            ipfs.unpin_all(&all).await.unwrap();
            // Not pinned any more: the batch is refused and redone one by one, quietly.
            ipfs.unpin_all(&all).await.unwrap();
            assert!(ipfs.pins().await.unwrap().is_empty());
        }
        drop((http, local));
        store.shutdown().await;
    }

    /// Store errors reach the caller as the same node error whichever the transport.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn store_errors_map_the_same_on_both_transports() {
        let (_dir, store, http, local) = store().await;
        let mut seen = Vec::new();
        for ipfs in [&http, &local] {
            // A malformed argument: 500 with Kubo's error body.
            let bad = message(ipfs.pin_all(&["not-a-cid".to_string()]).await);
            // The store computed another CID than the caller expects.
            let wrong = message(
                ipfs.add_objects_pinned(vec![("QmWrong".into(), b"x".to_vec())])
                    .await,
            );
            // Over the store's request limit (declared length): 400 with a Kubo error body,
            // before the store reads the body. Last: over HTTP the store then closes the
            // connection, and a request sent right after may find it closed in reqwest's pool.
            let over = message(ipfs.add_stream_pinned(chunks(3, 70_000), 70_000).await);
            seen.push((over, bad, wrong));
            assert!(ipfs.pins().await.unwrap().is_empty());
        }
        assert_eq!(seen[0], seen[1], "HTTP vs in-process");
        let (over, bad, wrong) = &seen[0];
        assert!(
            over.starts_with("add: request body exceeds the limit"),
            "{over}"
        );
        assert_eq!(
            bad,
            "pin/add answered 500 Internal Server Error: invalid path \"not-a-cid\": path does \
             not have enough components"
        );
        assert!(wrong.contains("expected QmWrong"), "{wrong}");
        drop((http, local));
        store.shutdown().await;
    }

    /// A body that fails midway (or is shorter than declared) pins nothing, whichever the
    /// transport.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn interrupted_upload_pins_nothing_on_both_transports() {
        let (_dir, store, http, local) = store().await;
        for ipfs in [&http, &local] {
            let failing = chunks(4, 30_000).chain(futures::stream::once(async {
                Err(std::io::Error::other("client went away"))
            }));
            message(ipfs.add_stream_pinned(failing, 40_000).await);
            message(ipfs.add_stream_pinned(chunks(5, 30_000), 40_000).await);
            let refused = ipfs
                .add_stream_journaled(chunks(6, 30_000), 30_000, |_| async {
                    Err(Error::Internal("journal full".into()))
                })
                .await;
            assert!(matches!(refused, Err(Error::Internal(_))), "{refused:?}");
            assert!(ipfs.pins().await.unwrap().is_empty());
        }
        drop((http, local));
        store.shutdown().await;
    }

    /// A daemon that hands out a key the node cannot use (not ed25519: no real daemon does so
    /// when asked for `type=ed25519`, hence a stand-in): the key is removed again and the
    /// error is permanent (500), not a 503 "retry later".
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unusable_key_is_removed_and_the_error_is_permanent() {
        use axum::routing::post;
        let removed = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen = removed.clone();
        let router = axum::Router::new()
            .route(
                "/api/v0/key/gen",
                post(|| async {
                    // A sha2-256 peer id (an RSA key's form).
                    r#"{"Name":"k","Id":"QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"}"#
                }),
            )
            .route(
                "/api/v0/key/rm",
                post(move |q: axum::extract::RawQuery| async move {
                    seen.lock().unwrap().push(q.0.unwrap_or_default());
                    r#"{"Keys":[]}"#
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let ipfs = Ipfs::new(&format!("http://{addr}")).unwrap();
        let e = ipfs.key_gen("k").await.unwrap_err();
        assert!(matches!(e, Error::Internal(_)), "{e:?}");
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(*removed.lock().unwrap(), vec!["arg=k".to_string()]);
        server.abort();
    }
}
