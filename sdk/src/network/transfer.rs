//! Pieces to and from providers over HTTP.
//!
//! # Upload ([`Uploader`])
//! A segment's placement is a list of [`Target`]s: a provider and the home node's order for one
//! piece index. The first target of each index is its primary; the others are spares. All
//! primaries start at once. When a primary fails, the piece's next spare starts at once; when
//! no more pieces are pending than spare providers are idle (the long tail), each pending
//! piece also starts on a spare. The first success of each piece is kept and its other
//! attempts are cancelled (their connections dropped); once all `n` pieces are stored,
//! everything still running is cancelled. A provider takes at most one piece of a segment.
//! A success counts only if the provider's answer names the CID, root, depth and size the
//! SDK computed and the order's hash, and its receipt is signed by the provider.
//!
//! # Download ([`Downloader`])
//! For each segment, every piece is asked of its provider at once. Each answer is checked
//! (size while it streams, then CID and root); a provider that fails, answers garbage or the
//! wrong piece is taken as offline for the rest of the read and reported ([`Fault`]). As soon
//! as `k` good pieces are in, the other requests are cancelled and the segment is decoded and
//! decrypted.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256, Bytes as AlloyBytes, Signature},
    sol_types::Eip712Domain,
};
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, stream::FuturesUnordered};
use px_core::{
    crypto::{Encryptor, FileId, Opened, OwnerKey},
    network::{
        MANIFEST_VERSION, Manifest, PiecePlacement, PieceReceipt, SegmentPlacement, SignedOrder,
    },
};
use serde::Deserialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{
    NetworkError, PieceFault, Result,
    pipeline::{self, EncodeOptions, EncodedSegment, SegmentDecoder, check_piece},
};

/// The header carrying a piece's order (`px-node`'s provider routes).
pub const ORDER_HEADER: &str = "x-px-order";

/// Bytes of a piece body handed to the HTTP client at a time when an observer follows the
/// upload (so its progress moves in steps of this size).
const PROGRESS_STEP: usize = 256 * 1024;

/// Where one piece transfer (an upload attempt or a download request) stands, for progress
/// displays ([`PieceObserver`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PieceStage {
    /// The transfer started; the piece is `size` bytes.
    Started {
        /// Piece size.
        size: u64,
    },
    /// `bytes` of the piece are sent (upload: handed to the connection) or received so far.
    Progress {
        /// Bytes so far.
        bytes: u64,
    },
    /// Upload: the provider stored it with a valid receipt. Download: the piece is good.
    Done,
    /// The transfer failed (the upload's failure or the download's fault says why).
    Failed,
    /// The transfer was dropped: another provider stored the piece first, or `k` good pieces
    /// of the segment came in first, or the upload failed elsewhere.
    Cancelled,
}

/// One step of one piece transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceEvent {
    /// The segment.
    pub segment: u32,
    /// The piece index.
    pub piece: u16,
    /// The provider.
    pub provider: Address,
    /// What happened.
    pub stage: PieceStage,
}

/// Called with every [`PieceEvent`] of an [`Uploader`] or [`Downloader`] (from the tasks
/// doing the transfers: keep it quick).
pub type PieceObserver = Arc<dyn Fn(&PieceEvent) + Send + Sync>;

/// An optional observer.
#[derive(Clone, Default)]
struct Observe(Option<PieceObserver>);

impl std::fmt::Debug for Observe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

impl Observe {
    fn emit(&self, segment: u32, piece: u16, provider: Address, stage: PieceStage) {
        if let Some(o) = &self.0 {
            o(&PieceEvent {
                segment,
                piece,
                provider,
                stage,
            });
        }
    }
}

/// A provider: its registered address and the base URL of its node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProviderEndpoint {
    /// Its registered account (signs receipts).
    pub address: Address,
    /// Base URL of its node (`http://host:port`).
    pub url: String,
}

/// One place a piece may go: a provider and the home node's order for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The provider.
    pub provider: ProviderEndpoint,
    /// The order (names the segment, the piece index and the provider).
    pub order: SignedOrder,
}

/// Why one attempt to store a piece failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AttemptError {
    /// The provider could not be reached or the transfer broke.
    #[error("transport: {0}")]
    Transport(#[source] Arc<reqwest::Error>),
    /// The provider refused (its status and answer).
    #[error("refused with {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Its answer (the node's JSON error body).
        body: String,
    },
    /// The provider's answer or receipt does not match the piece.
    #[error(transparent)]
    Receipt(#[from] PieceFault),
    /// The attempt took longer than the uploader's timeout.
    #[error("timed out")]
    Timeout,
}

/// A failed attempt to store a piece.
#[derive(Debug, Clone)]
pub struct UploadFailure {
    /// The piece index.
    pub piece: u16,
    /// The provider.
    pub provider: Address,
    /// What happened.
    pub error: AttemptError,
}

/// One segment stored: its manifest entry and what did not go as planned.
#[derive(Debug, Clone)]
pub struct SegmentUpload {
    /// The manifest's entry (pieces in index order).
    pub placement: SegmentPlacement,
    /// Attempts that failed (their pieces went to spares).
    pub failures: Vec<UploadFailure>,
    /// Attempts cancelled because another provider stored the piece first (piece, provider).
    pub cancelled: Vec<(u16, Address)>,
}

/// A provider's answer to `POST /v1/pieces` (`px-node`'s `PieceAccepted`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Accepted {
    cid: String,
    root: B256,
    depth: u8,
    size: u64,
    order_hash: B256,
    provider: Address,
    receipt: AlloyBytes,
}

/// Stores segments' pieces with providers; see the module docs.
#[derive(Debug, Clone)]
pub struct Uploader {
    http: reqwest::Client,
    domain: Eip712Domain,
    timeout: Option<Duration>,
    observe: Observe,
}

/// An attempt in flight: its provider, its abort handle and when it started.
type Running = (Address, futures::future::AbortHandle, Instant);

/// Piece `i` of a shared segment, as an HTTP body without a copy.
struct PieceBody(Arc<EncodedSegment>, usize);

impl AsRef<[u8]> for PieceBody {
    fn as_ref(&self) -> &[u8] {
        self.0.piece(self.1)
    }
}

impl Uploader {
    /// An uploader checking orders and receipts in `domain` ([`px_core::network::domain`]).
    pub fn new(http: reqwest::Client, domain: Eip712Domain) -> Self {
        Self {
            http,
            domain,
            timeout: None,
            observe: Observe::default(),
        }
    }

    /// Reports every attempt's steps to `observer` (the body then goes out in steps of
    /// 256 KiB, each reported).
    pub fn with_observer(mut self, observer: PieceObserver) -> Self {
        self.observe = Observe(Some(observer));
        self
    }

    /// Gives up on an attempt after `timeout` (then a spare takes the piece).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn check_targets(&self, seg: &EncodedSegment, targets: &[Target]) -> Result<()> {
        let bad = |reason: String| {
            Err(NetworkError::Placement {
                segment: seg.index,
                reason,
            })
        };
        let n = seg.pieces.len();
        let size = seg.pieces.piece_size() as u64;
        let mut covered = vec![false; n];
        for t in targets {
            let o = &t.order.order;
            if o.segment != seg.index || usize::from(o.piece) >= n {
                return bad(format!(
                    "an order names segment {} piece {}",
                    o.segment, o.piece
                ));
            }
            if o.provider != t.provider.address {
                return bad(format!(
                    "the order for {} is given to {}",
                    o.provider, t.provider.address
                ));
            }
            if o.max_size < size {
                return bad(format!(
                    "the order of piece {} covers {} bytes, the piece is {size}",
                    o.piece, o.max_size
                ));
            }
            covered[usize::from(o.piece)] = true;
        }
        if let Some(i) = covered.iter().position(|c| !c) {
            return bad(format!("no provider for piece {i}"));
        }
        Ok(())
    }

    /// One attempt: `POST /v1/pieces` with the order, then the answer's checks.
    async fn attempt(
        &self,
        seg: Arc<EncodedSegment>,
        target: Target,
    ) -> Result<PiecePlacement, AttemptError> {
        let i = usize::from(target.order.order.piece);
        let digest = seg.digests[i];
        let order_json = serde_json::to_string(&target.order).expect("orders serialize");
        let (segment, piece, provider) =
            (seg.index, target.order.order.piece, target.provider.address);
        let body = Bytes::from_owner(PieceBody(seg, i));
        let len = body.len();
        let request = self
            .http
            .post(format!(
                "{}/v1/pieces",
                target.provider.url.trim_end_matches('/')
            ))
            .header(ORDER_HEADER, order_json)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream");
        let request = if self.observe.0.is_some() {
            // The piece in steps, each reported as the HTTP client takes it.
            let observe = self.observe.clone();
            let steps = (0..len.div_ceil(PROGRESS_STEP)).map(move |s| {
                let end = ((s + 1) * PROGRESS_STEP).min(len);
                observe.emit(
                    segment,
                    piece,
                    provider,
                    PieceStage::Progress { bytes: end as u64 },
                );
                Ok::<_, std::io::Error>(body.slice(s * PROGRESS_STEP..end))
            });
            request
                .header(reqwest::header::CONTENT_LENGTH, len)
                .body(reqwest::Body::wrap_stream(futures::stream::iter(steps)))
        } else {
            request.body(body)
        };
        let send = async {
            let r = request
                .send()
                .await
                .map_err(|e| AttemptError::Transport(Arc::new(e)))?;
            let status = r.status();
            if !status.is_success() {
                let body = r.text().await.unwrap_or_default();
                return Err(AttemptError::Refused {
                    status: status.as_u16(),
                    body,
                });
            }
            r.json::<Accepted>()
                .await
                .map_err(|e| AttemptError::Transport(Arc::new(e)))
        };
        let accepted = match self.timeout {
            Some(t) => tokio::time::timeout(t, send)
                .await
                .map_err(|_| AttemptError::Timeout)??,
            None => send.await?,
        };
        let order_hash = target.order.order.hash(&self.domain);
        let receipt = PieceReceipt {
            order_hash,
            cid: digest.cid,
            root: digest.root.root,
            depth: digest.root.depth,
            size: digest.root.size,
        };
        let mismatch = |what: &str| Err(AttemptError::Receipt(PieceFault::Receipt(what.into())));
        if accepted.cid != digest.cid.to_string() {
            return mismatch(&format!("CID {} for {}", accepted.cid, digest.cid));
        }
        if (accepted.root, accepted.depth, accepted.size)
            != (receipt.root, receipt.depth, receipt.size)
        {
            return mismatch(&format!(
                "root {} depth {} size {} for {} {} {}",
                accepted.root,
                accepted.depth,
                accepted.size,
                receipt.root,
                receipt.depth,
                receipt.size
            ));
        }
        if accepted.order_hash != order_hash || accepted.provider != target.provider.address {
            return mismatch("another order or provider");
        }
        let signature = Signature::try_from(accepted.receipt.as_ref())
            .map_err(|e| PieceFault::Receipt(format!("receipt signature: {e}")))?;
        let signer = receipt
            .signer(&signature, &self.domain)
            .map_err(|e| PieceFault::Receipt(format!("receipt signature: {e}")))?;
        if signer != target.provider.address {
            return Err(PieceFault::ReceiptSigner {
                signer,
                provider: target.provider.address,
            }
            .into());
        }
        Ok(PiecePlacement {
            index: target.order.order.piece,
            provider: target.provider.address,
            cid: digest.cid,
            root: receipt.root,
            depth: receipt.depth,
            size: receipt.size,
            order: target.order,
            receipt: signature,
        })
    }

    /// Stores the `n` pieces of `seg` with the providers of `targets` (see the module docs).
    ///
    /// # Errors
    /// [`NetworkError::Placement`] when the targets do not fit the segment;
    /// [`NetworkError::PieceNotStored`] when every provider a piece could go to failed.
    pub async fn upload_segment(
        &self,
        seg: Arc<EncodedSegment>,
        targets: &[Target],
    ) -> Result<SegmentUpload> {
        self.check_targets(&seg, targets)?;
        let n = seg.pieces.len();
        // Candidates of each piece, in the placement's order (the first is the primary).
        let mut candidates: Vec<std::collections::VecDeque<&Target>> = vec![Default::default(); n];
        for t in targets {
            candidates[usize::from(t.order.order.piece)].push_back(t);
        }
        let providers = targets
            .iter()
            .map(|t| t.provider.address)
            .collect::<HashSet<_>>()
            .len();
        let mut used: HashSet<Address> = HashSet::new();
        // Each piece's attempts in flight: provider, abort handle, start.
        let mut running: Vec<Vec<Running>> = vec![Vec::new(); n];
        let mut stored: Vec<Option<PiecePlacement>> = vec![None; n];
        let mut failures: Vec<UploadFailure> = Vec::new();
        let mut cancelled = Vec::new();
        let mut in_flight = FuturesUnordered::new();

        // Starts piece `i` on its next candidate whose provider is free; false if none is.
        let mut start = |i: usize,
                         used: &mut HashSet<Address>,
                         running: &mut [Vec<Running>],
                         in_flight: &mut FuturesUnordered<_>| {
            while let Some(t) = candidates[i].pop_front() {
                if used.insert(t.provider.address) {
                    self.observe.emit(
                        seg.index,
                        i as u16,
                        t.provider.address,
                        PieceStage::Started {
                            size: seg.pieces.piece_size() as u64,
                        },
                    );
                    let (fut, handle) = futures::future::abortable({
                        let (seg, t) = (seg.clone(), (*t).clone());
                        async move {
                            let provider = t.provider.address;
                            (i, provider, self.attempt(seg, t).await)
                        }
                    });
                    running[i].push((t.provider.address, handle, Instant::now()));
                    in_flight.push(fut);
                    return true;
                }
            }
            false
        };
        for i in 0..n {
            if !start(i, &mut used, &mut running, &mut in_flight) {
                return Err(NetworkError::Placement {
                    segment: seg.index,
                    reason: format!("no free provider for piece {i}"),
                });
            }
        }
        let mut done = 0;
        while done < n {
            let Some(next) = in_flight.next().await else {
                break;
            };
            let Ok((i, provider, outcome)) = next else {
                continue; // cancelled
            };
            running[i].retain(|(p, _, _)| *p != provider);
            match outcome {
                Ok(placement) if stored[i].is_none() => {
                    stored[i] = Some(placement);
                    done += 1;
                    self.observe
                        .emit(seg.index, i as u16, provider, PieceStage::Done);
                    for (p, h, _) in running[i].drain(..) {
                        h.abort();
                        self.observe
                            .emit(seg.index, i as u16, p, PieceStage::Cancelled);
                        cancelled.push((i as u16, p));
                    }
                }
                Ok(_) => self
                    .observe
                    .emit(seg.index, i as u16, provider, PieceStage::Cancelled),
                Err(error) => {
                    self.observe
                        .emit(seg.index, i as u16, provider, PieceStage::Failed);
                    tracing::info!(target: "sdk::network", segment = seg.index, piece = i,
                        %provider, %error, "piece not stored");
                    failures.push(UploadFailure {
                        piece: i as u16,
                        provider,
                        error,
                    });
                    if stored[i].is_none()
                        && running[i].is_empty()
                        && !start(i, &mut used, &mut running, &mut in_flight)
                    {
                        for (j, r) in running.iter().enumerate() {
                            for (p, h, _) in r {
                                h.abort();
                                self.observe
                                    .emit(seg.index, j as u16, *p, PieceStage::Cancelled);
                            }
                        }
                        return Err(NetworkError::PieceNotStored {
                            segment: seg.index,
                            piece: i as u16,
                            failures: failures
                                .into_iter()
                                .filter(|f| usize::from(f.piece) == i)
                                .collect(),
                        });
                    }
                }
            }
            // The long tail: no more pieces pending than idle providers, so each pending piece
            // also goes to a spare, the longest-running first.
            let idle = providers - used.len();
            if idle > 0 && n - done <= idle {
                let mut tail: Vec<usize> = (0..n)
                    .filter(|&i| stored[i].is_none() && running[i].len() == 1)
                    .collect();
                tail.sort_by_key(|&i| running[i][0].2);
                for i in tail {
                    start(i, &mut used, &mut running, &mut in_flight);
                }
            }
        }
        for (i, r) in running.iter().enumerate() {
            for (p, h, _) in r {
                h.abort();
                self.observe
                    .emit(seg.index, i as u16, *p, PieceStage::Cancelled);
                cancelled.push((i as u16, *p));
            }
        }
        let pieces = stored
            .into_iter()
            .map(|p| p.expect("every piece stored"))
            .collect();
        Ok(SegmentUpload {
            placement: SegmentPlacement {
                length: seg.length,
                pieces,
            },
            failures,
            cancelled,
        })
    }

    /// Encrypts, encodes and stores a file: the pipeline runs on two threads beside the
    /// transfers, so segment `i + 1` is encoded while segment `i`'s pieces are sent.
    /// `placements[s]` are segment `s`'s targets. Answers the manifest (checked with
    /// [`Manifest::validate`]) and each segment's report.
    pub async fn upload_file<R: std::io::Read + Send + 'static>(
        &self,
        enc: Encryptor,
        input: R,
        opts: EncodeOptions,
        token_id: u64,
        placements: &[Vec<Target>],
    ) -> Result<(Manifest, Vec<SegmentUpload>)> {
        let file = placements
            .first()
            .and_then(|p| p.first())
            .map(|t| t.order.order.file)
            .ok_or_else(|| NetworkError::Placement {
                segment: 0,
                reason: "no placement".into(),
            })?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<EncodedSegment>(1);
        let encoder = tokio::task::spawn_blocking(move || {
            pipeline::encode(enc, input, &opts, |seg| {
                tx.blocking_send(seg).map_err(|_| NetworkError::Pipeline)
            })
        });
        let mut reports = Vec::new();
        let uploaded = async {
            while let Some(seg) = rx.recv().await {
                let targets =
                    placements
                        .get(seg.index as usize)
                        .ok_or_else(|| NetworkError::Placement {
                            segment: seg.index,
                            reason: "no placement for this segment".into(),
                        })?;
                reports.push(self.upload_segment(Arc::new(seg), targets).await?);
            }
            Ok::<_, NetworkError>(())
        }
        .await;
        // Closing the receiver stops the encoder if the transfers failed.
        drop(rx);
        let encoded = encoder
            .await
            .map_err(|e| NetworkError::Task(e.to_string()))?;
        uploaded?;
        let encoded = encoded?;
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            token_id,
            file,
            size: encoded.cipher_len,
            segment_size: opts.segment_size as u64,
            redundancy: opts.redundancy,
            segments: reports.iter().map(|r| r.placement.clone()).collect(),
        };
        manifest.validate()?;
        Ok((manifest, reports))
    }
}

/// What went wrong with one provider during a download.
#[derive(Debug, Clone)]
pub struct Fault {
    /// The segment being read.
    pub segment: u32,
    /// The piece asked for.
    pub piece: u16,
    /// The provider (offline for the rest of the read).
    pub provider: Address,
    /// What happened.
    pub kind: FaultKind,
}

/// Why a provider's piece was not used.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FaultKind {
    /// No endpoint known for the provider.
    #[error("no endpoint known")]
    NoEndpoint,
    /// Unreachable, or the transfer broke.
    #[error("transport: {0}")]
    Transport(#[source] Arc<reqwest::Error>),
    /// It answered an error status.
    #[error("answered {0}")]
    Status(u16),
    /// It answered bytes that are not the piece (garbage, another piece, cut short).
    #[error(transparent)]
    BadPiece(#[from] PieceFault),
}

/// What a download did.
#[derive(Debug, Clone)]
pub struct DownloadReport {
    /// What the decryptor checked (file id, plaintext SHA-256).
    pub opened: Opened,
    /// Plaintext bytes written.
    pub plain_len: u64,
    /// Providers that failed or answered a wrong piece, with what happened.
    pub faults: Vec<Fault>,
    /// Requests cancelled because `k` good pieces of their segment were in first.
    pub cancelled: usize,
}

/// Reads files from providers; see the module docs.
#[derive(Debug, Clone)]
pub struct Downloader {
    http: reqwest::Client,
    observe: Observe,
}

impl Downloader {
    /// A downloader over `http`.
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            observe: Observe::default(),
        }
    }

    /// Reports every piece request's steps to `observer`.
    pub fn with_observer(mut self, observer: PieceObserver) -> Self {
        self.observe = Observe(Some(observer));
        self
    }

    /// Fetches one piece and checks it against the manifest.
    async fn fetch(
        &self,
        segment: u32,
        url: String,
        expected: PiecePlacement,
    ) -> Result<Bytes, FaultKind> {
        let r = self
            .http
            .get(format!(
                "{}/v1/pieces/{}",
                url.trim_end_matches('/'),
                expected.cid
            ))
            .send()
            .await
            .map_err(|e| FaultKind::Transport(Arc::new(e)))?;
        if !r.status().is_success() {
            return Err(FaultKind::Status(r.status().as_u16()));
        }
        let limit = expected.size;
        let mut body = BytesMut::with_capacity(limit as usize);
        let mut stream = r.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| FaultKind::Transport(Arc::new(e)))?;
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(PieceFault::Size {
                    expected: limit,
                    got: (body.len() + chunk.len()) as u64,
                }
                .into());
            }
            body.extend_from_slice(&chunk);
            self.observe.emit(
                segment,
                expected.index,
                expected.provider,
                PieceStage::Progress {
                    bytes: body.len() as u64,
                },
            );
        }
        let body = body.freeze();
        let checked = body.clone();
        tokio::task::spawn_blocking(move || check_piece(&expected, &checked))
            .await
            .map_err(|e| PieceFault::Unreadable(e.to_string()))??;
        Ok(body)
    }

    /// Reads the file `manifest` describes from its providers (`endpoints`: address → base
    /// URL), decodes and decrypts it with `owner` into `out`. `file_id` is the id the file's
    /// name is bound to, if known. Each segment is read from all its providers at once and
    /// decoded from the first `k` good pieces.
    pub async fn download(
        &self,
        manifest: &Manifest,
        endpoints: &HashMap<Address, String>,
        owner: &OwnerKey,
        file_id: Option<FileId>,
        out: &mut (impl AsyncWrite + Unpin),
    ) -> Result<DownloadReport> {
        manifest.validate()?;
        let k = usize::from(manifest.redundancy.k());
        let mut decoder = Some(SegmentDecoder::new(manifest.redundancy, owner, file_id));
        let mut faults: Vec<Fault> = Vec::new();
        let mut offline: HashSet<Address> = HashSet::new();
        let mut cancelled = 0;
        let mut plain_len = 0u64;
        for (s, seg) in manifest.segments.iter().enumerate() {
            let segment = u32::try_from(s).map_err(|_| NetworkError::TooManySegments)?;
            let mut in_flight = FuturesUnordered::new();
            let mut seg_faults = Vec::new();
            let mut pending: HashSet<(u16, Address)> = HashSet::new();
            for p in &seg.pieces {
                if offline.contains(&p.provider) {
                    continue;
                }
                let Some(url) = endpoints.get(&p.provider) else {
                    offline.insert(p.provider);
                    seg_faults.push(Fault {
                        segment,
                        piece: p.index,
                        provider: p.provider,
                        kind: FaultKind::NoEndpoint,
                    });
                    continue;
                };
                let (url, p) = (url.clone(), p.clone());
                self.observe.emit(
                    segment,
                    p.index,
                    p.provider,
                    PieceStage::Started { size: p.size },
                );
                pending.insert((p.index, p.provider));
                in_flight.push(async move {
                    let r = self.fetch(segment, url, p.clone()).await;
                    (p.index, p.provider, r)
                });
            }
            let mut good: Vec<(usize, Bytes)> = Vec::with_capacity(k);
            while good.len() < k {
                let Some((index, provider, r)) = in_flight.next().await else {
                    break;
                };
                pending.remove(&(index, provider));
                match r {
                    Ok(bytes) => {
                        self.observe
                            .emit(segment, index, provider, PieceStage::Done);
                        good.push((usize::from(index), bytes));
                    }
                    Err(kind) => {
                        self.observe
                            .emit(segment, index, provider, PieceStage::Failed);
                        tracing::warn!(target: "sdk::network", segment, piece = index,
                            %provider, error = %kind, "provider offline for this read");
                        offline.insert(provider);
                        seg_faults.push(Fault {
                            segment,
                            piece: index,
                            provider,
                            kind,
                        });
                    }
                }
            }
            cancelled += in_flight.len();
            drop(in_flight);
            for (index, provider) in pending {
                self.observe
                    .emit(segment, index, provider, PieceStage::Cancelled);
            }
            faults.extend(seg_faults);
            if good.len() < k {
                return Err(NetworkError::NotEnoughPieces {
                    segment,
                    have: good.len(),
                    need: k,
                    faults,
                });
            }
            let mut dec = decoder.take().expect("decoder present");
            let length = seg.length;
            let (dec, plain) = tokio::task::spawn_blocking(move || {
                let pieces: Vec<(usize, &[u8])> =
                    good.iter().map(|(i, b)| (*i, b.as_ref())).collect();
                let mut plain = Vec::new();
                let r = dec.push_segment(segment, length, &pieces, |p| {
                    plain.extend_from_slice(p);
                    Ok(())
                });
                (dec, r.map(|()| plain))
            })
            .await
            .map_err(|e| NetworkError::Task(e.to_string()))?;
            decoder = Some(dec);
            let plain = plain?;
            plain_len += plain.len() as u64;
            out.write_all(&plain).await?;
        }
        let mut tail = Vec::new();
        let opened = decoder.take().expect("decoder present").finish(|p| {
            tail.extend_from_slice(p);
            Ok(())
        })?;
        plain_len += tail.len() as u64;
        out.write_all(&tail).await?;
        out.flush().await?;
        Ok(DownloadReport {
            opened,
            plain_len,
            faults,
            cancelled,
        })
    }
}
