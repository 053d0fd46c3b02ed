//! The node's core: sessions, token adoption, uploads, deletes and publishing, independent of
//! HTTP.
//!
//! # Updates and crash consistency
//! An uploaded file streams into IPFS outside the token's lock, through `add` with `pin=true`
//! (an unpinned `add` and a `pin/add` would make the backend walk the whole DAG again). Before
//! the backend can pin, the upload has a durable row in the `uploads` table:
//! - exclusive backend (the embedded store by default: every pin is the node's): the row,
//!   without the CID, is written before the add; recovery after a crash with such a row unpins
//!   every pin the committed state does not reference;
//! - otherwise the node computes the CID as the bytes pass and writes it in the row before the
//!   request's closing boundary leaves (the backend cannot finish the add without it), so
//!   recovery unpins exactly that CID and nothing else.
//!
//! A failed upload gives its pin back (unless something committed holds the same content).
//! Then every change of a token runs under that token's lock (tokens proceed in parallel):
//! 1. new objects (index pages, the usage record) get their CIDs computed locally;
//! 2. those CIDs are written to the token's journal (`pending`), then added pinned (imported
//!    files are pinned);
//! 3. one database transaction commits the files, pages, usage, sequence + 1 and record CID,
//!    drops the upload's `uploads` row and moves the replaced objects to the journal's
//!    `release` list;
//! 4. the record is published under the token's IPNS name, then released objects are unpinned
//!    and the journal cleared.
//!
//! A crash before 3 leaves only journaled pins (journal and `uploads`), which recovery removes
//! (nothing committed references them); a crash after 3 leaves a committed state whose record
//! recovery publishes. Either way the published record describes exactly what is stored and
//! pinned. Records are republished at start and periodically.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, Bytes};
use bytes::Bytes as Chunk;
use futures::{Stream, StreamExt};
use px_core::api::{self, FileEntry, FileListPage, KeyAssignment, RegisteredKey, Usage};
use px_core::contracts::{GateReason, ipns_name_bytes};
use px_core::record::{RECORD_VERSION, UsageRecord};
use sha2::{Digest, Sha256};

use crate::chain::Chain;
use crate::db::{Db, Journal, KeyRow, TokenState, Update, UploadPin};
use crate::error::{Error, Result};
use crate::index::{self, Edit};
use crate::ipfs::Ipfs;
use crate::limit::{Limiter, Rate};
use crate::metrics::Metrics;
use crate::nonces::Nonces;
use crate::siwe;

mod rebind;

/// Unix time now (seconds).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("OS randomness");
    alloy::hex::encode(buf)
}

/// A fresh key for the `uploads` table.
fn new_upload_id() -> u64 {
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).expect("OS randomness");
    u64::from_le_bytes(id)
}

fn random_alnum(n: usize) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("OS randomness");
    // Modulo bias (256 % 62) costs a fraction of a bit per character; 24 characters keep
    // well over 128 bits.
    buf.iter()
        .map(|b| ABC[(*b as usize) % ABC.len()] as char)
        .collect()
}

/// Aborts the process at a named point when `PX_NODE_FAILPOINT` names it: crash testing.
pub(crate) fn failpoint(name: &str) {
    static POINT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if POINT
        .get_or_init(|| std::env::var("PX_NODE_FAILPOINT").ok())
        .as_deref()
        == Some(name)
    {
        eprintln!("px-node: failpoint {name}: aborting");
        std::process::abort();
    }
}

/// Refuses a file name a listing could not show or a path could not hold.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 1024 || name.contains(['/', '\0']) {
        return Err(Error::BadRequest(
            "file name must be 1-1024 bytes without '/'".into(),
        ));
    }
    Ok(())
}

/// Content already in the IPFS backend, for [`Node::import_files`].
#[derive(Debug, Clone)]
pub struct ImportFile {
    /// File name.
    pub name: String,
    /// CID of the stored bytes.
    pub cid: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the plaintext, if known.
    pub sha256: Option<String>,
}

/// Settings the core needs (from [`crate::NodeConfig`] and the bound address).
#[derive(Debug, Clone)]
pub struct Settings {
    /// SIWE domain.
    pub domain: String,
    /// Public base URL (SIWE URIs must start with it).
    pub public_url: String,
    /// Largest upload.
    pub max_upload_bytes: u64,
    /// Nonce lifetime.
    pub nonce_ttl: Duration,
    /// Session lifetime.
    pub session_ttl: Duration,
    /// Key assignment validity.
    pub assignment_ttl: Duration,
    /// IPNS record lifetime.
    pub record_lifetime: Duration,
    /// Every recursive pin of the backend is the node's ([`crate::NodeConfig::exclusive_backend`]).
    pub exclusive_backend: bool,
    /// Longest gap between two pieces of an upload body.
    pub idle_timeout: Duration,
    /// Slowest average upload rate (bytes/s; 0: no deadline).
    pub min_upload_rate: u64,
    /// Logins and key assignments per address.
    pub address_rate: Rate,
    /// IPFS keys created for key assignments, node-wide.
    pub key_gen_rate: Rate,
    /// Most sign-in nonces outstanding.
    pub max_nonces: usize,
}

/// Keys tracked per rate limit at most (a bucket is a few dozen bytes).
const MAX_LIMITER_KEYS: usize = 100_000;

/// The node core shared by all requests.
#[derive(Debug)]
pub struct Node {
    pub(crate) settings: Settings,
    pub(crate) db: Arc<Db>,
    pub(crate) ipfs: Ipfs,
    pub(crate) chain: Chain,
    pub(crate) metrics: Metrics,
    locks: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
    reserved: Mutex<HashMap<u64, u64>>,
    pinning: tokio::sync::Mutex<HashMap<String, usize>>,
    /// CIDs unpinned while an exclusive-backend upload's `add` ran, by `uploads` row.
    unpin_watch: Mutex<HashMap<u64, Vec<String>>>,
    dirty: Mutex<HashSet<u64>>,
    /// Tokens whose on-chain key is not this node's (moved away): not republished.
    moved: Mutex<HashSet<u64>>,
    nonces: Nonces,
    by_address: Limiter<Address>,
    key_gen: Limiter<()>,
    /// Request work that must finish once started (uploads, updates), detached from the
    /// client's connection; shutdown waits for it.
    pub(crate) tasks: tokio_util::task::TaskTracker,
}

/// What an update pins besides its index pages and record.
#[derive(Default)]
struct Pins<'a> {
    /// CIDs already in the backend, to pin (imported files).
    files: Vec<String>,
    /// The `uploads` row of an uploaded file, pinned by its `add`: the commit takes it over.
    upload: Option<u64>,
    /// The quota reservation of the update, released as soon as the commit counts its bytes.
    reservation: Option<Reservation<'a>>,
    /// New objects `(cid, bytes)` to add pinned with the index pages (network manifests).
    objects: Vec<(String, Vec<u8>)>,
}

/// An [`Edit`] that owns its files, to move to the blocking pool.
enum OwnedEdit {
    Add(Vec<FileEntry>),
    Remove(u64),
    Replace(FileEntry),
}

impl OwnedEdit {
    fn as_edit(&self) -> Edit<'_> {
        match self {
            Self::Add(f) => Edit::Add(f),
            Self::Remove(id) => Edit::Remove(*id),
            Self::Replace(f) => Edit::Replace(f),
        }
    }
}

/// Releases an upload's quota reservation when dropped (the update drops it right after its
/// commit).
struct Reservation<'a> {
    node: &'a Node,
    token_id: u64,
    size: u64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut r = self.node.reserved.lock().expect("lock");
        if let Some(v) = r.get_mut(&self.token_id) {
            *v = v.saturating_sub(self.size);
            if *v == 0 {
                r.remove(&self.token_id);
            }
        }
    }
}

impl Node {
    /// Assembles the core.
    pub fn new(settings: Settings, db: Db, ipfs: Ipfs, chain: Chain) -> Self {
        Self {
            db: Arc::new(db),
            ipfs,
            chain,
            metrics: Metrics::default(),
            locks: Mutex::new(HashMap::new()),
            reserved: Mutex::new(HashMap::new()),
            pinning: tokio::sync::Mutex::new(HashMap::new()),
            unpin_watch: Mutex::new(HashMap::new()),
            dirty: Mutex::new(HashSet::new()),
            moved: Mutex::new(HashSet::new()),
            nonces: Nonces::new(settings.max_nonces),
            by_address: Limiter::new(settings.address_rate, MAX_LIMITER_KEYS),
            key_gen: Limiter::new(settings.key_gen_rate, 1),
            tasks: tokio_util::task::TaskTracker::new(),
            settings,
        }
    }

    /// Runs `work` in a task of its own, so it finishes even if the client disconnects and
    /// the request's future is dropped (uploads and updates must not stop halfway), and
    /// answers its result. Shutdown waits for these tasks.
    pub async fn detached<T, F>(self: &Arc<Self>, work: impl FnOnce(Arc<Self>) -> F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.tasks
            .spawn(work(self.clone()))
            .await
            .map_err(|e| Error::Internal(format!("request task: {e}")))?
    }

    /// Detached request tasks still running (uploads and updates whose work goes on).
    pub fn tasks_in_flight(&self) -> usize {
        self.tasks.len()
    }

    /// Sign-in nonces outstanding.
    pub fn nonce_count(&self) -> usize {
        self.nonces.len()
    }

    /// Runs a blocking database read on the blocking pool.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.write(f).await
    }

    /// The chain access of the node.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The node database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Runs a blocking database write on the blocking pool.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| Error::Internal(format!("db task: {e}")))?
    }

    fn token_lock(&self, token_id: u64) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .expect("lock")
            .entry(token_id)
            .or_default()
            .clone()
    }

    // ------------------------------------------------------------------ sign-in

    /// Issues a single-use nonce.
    pub async fn nonce(&self) -> Result<api::NonceResponse> {
        let nonce = random_alnum(24);
        let now = unix_now();
        let expires_at = now + self.settings.nonce_ttl.as_secs();
        if !self.nonces.put(nonce.clone(), expires_at, now) {
            return Err(Error::RateLimited {
                retry_after: Duration::from_secs(1),
            });
        }
        Ok(api::NonceResponse {
            nonce,
            expires_at,
            domain: self.settings.domain.clone(),
            uri: self.settings.public_url.clone(),
            chain_id: self.chain.chain_id(),
        })
    }

    /// Verifies a SIWE login and opens a session.
    pub async fn login(&self, req: &api::LoginRequest) -> Result<api::Session> {
        let now = unix_now();
        let expected = siwe::Expected {
            domain: &self.settings.domain,
            uri_prefix: &self.settings.public_url,
            chain_id: self.chain.chain_id(),
            now,
        };
        let result = async {
            let msg = siwe::verify(&req.message, &req.signature, &expected)?;
            // Limited after the signature check, so nobody can use up another address's
            // logins.
            self.by_address
                .check(&msg.address)
                .map_err(|retry_after| Error::RateLimited { retry_after })?;
            if !self.nonces.take(&msg.nonce, now) {
                return Err(Error::InvalidNonce);
            }
            let token = random_hex(32);
            let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            let mut expires_at = now + self.settings.session_ttl.as_secs();
            if let Some(t) = msg.expiration_time {
                expires_at = expires_at.min(t);
            }
            let address = msg.address;
            self.write(move |db| db.put_session(&hash, address, expires_at, now))
                .await?;
            Ok(api::Session {
                token,
                address,
                expires_at,
            })
        }
        .await;
        self.metrics.login(result.is_ok());
        result
    }

    /// Revokes a bearer token's session (logout): the token is refused from now on.
    pub async fn logout(&self, token: &str) -> Result<()> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.write(move |db| db.delete_session(&hash)).await?;
        Ok(())
    }

    /// The address of a bearer token's session.
    pub async fn session(&self, token: &str) -> Result<Address> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.read(move |db| db.session(&hash, unix_now()))
            .await?
            .ok_or(Error::Unauthorized("unknown or expired session"))
    }

    // ------------------------------------------------------------------ keys

    /// Checks that `address` owns `token_id` (cached `ownerOf`).
    pub async fn authorize(&self, token_id: u64, address: Address) -> Result<()> {
        match self.chain.owner_of(token_id).await? {
            Some(owner) if owner == address => Ok(()),
            Some(_) => Err(Error::NotOwner { token_id, address }),
            None => Err(Error::NotFound(format!("token {token_id}"))),
        }
    }

    /// The state of a token this node serves, adopting it if its on-chain key is one of ours.
    pub async fn ensure_token(&self, token_id: u64) -> Result<TokenState> {
        if let Some(s) = self.read(move |db| db.token(token_id)).await? {
            return Ok(s);
        }
        let facts = self.chain.token_facts(token_id).await?;
        if facts.ipns_key.is_zero() {
            return Err(Error::NotServed(token_id));
        }
        let pubkey: [u8; 32] = facts.ipns_key.0;
        let key = self
            .read(move |db| db.key(&pubkey))
            .await?
            .ok_or(Error::NotServed(token_id))?;
        let state = self
            .write(move |db| db.adopt_token(token_id, &pubkey, &key))
            .await?;
        tracing::info!(target: "node::keys", token_id, ipns = %state.ipns_id, "serving token");
        Ok(state)
    }

    /// A signed key assignment for `minter` (reusing its outstanding unbound key).
    pub async fn key_assignment(&self, minter: Address) -> Result<KeyAssignment> {
        if self.chain.registrar().is_none() {
            return Err(Error::NoRegistrar);
        }
        self.by_address
            .check(&minter)
            .map_err(|retry_after| Error::RateLimited { retry_after })?;
        let mut key = None;
        // The outstanding key of `minter`, if any: two point reads, on the blocking pool.
        let outstanding = self
            .read(move |db| {
                let Some(pk) = db.assignment(minter)? else {
                    return Ok(None);
                };
                Ok(db.key(&pk)?.map(|row| (pk, row)))
            })
            .await?;
        if let Some((pk, row)) = outstanding
            && row.token_id.is_none()
            && self.chain.token_of_key(&pk).await? == 0
        {
            key = Some((pk, row));
        }
        let (pubkey, row) = match key {
            Some(k) => k,
            None => {
                self.key_gen
                    .check(&())
                    .map_err(|retry_after| Error::RateLimited { retry_after })?;
                let k = self
                    .ipfs
                    .key_gen(&format!("px-assign-{}", random_hex(8)))
                    .await?;
                let row = KeyRow {
                    key_name: k.name,
                    ipns_id: k.id,
                    token_id: None,
                };
                let (pk, r) = (k.pubkey, row.clone());
                if let Err(e) = self
                    .write(move |db| db.put_assignment(minter, &pk, &r))
                    .await
                {
                    // Not recorded: the key would be an orphan in the backend.
                    let _ = self.ipfs.key_rm(&row.key_name).await;
                    return Err(e);
                }
                (k.pubkey, row)
            }
        };
        let name = ipns_name_bytes(&pubkey);
        let now = self.chain.now().await?.max(unix_now());
        let deadline = now + self.settings.assignment_ttl.as_secs();
        let signature = self.chain.sign_assignment(minter, &name, deadline)?;
        Ok(KeyAssignment {
            minter,
            ipns_name: Bytes::copy_from_slice(&name),
            ipns_id: row.ipns_id,
            deadline,
            signature,
            chain_id: self.chain.chain_id(),
            contract: self.chain.contract(),
        })
    }

    /// Creates a key for a token minted without one and binds it with `registerKey`.
    pub async fn register_key(&self, token_id: u64, caller: Address) -> Result<RegisteredKey> {
        self.authorize(token_id, caller).await?;
        if self.chain.registrar().is_none() {
            return Err(Error::NoRegistrar);
        }
        let lock = self.token_lock(token_id);
        let _guard = lock.lock().await;
        let facts = self.chain.token_facts(token_id).await?;
        if !facts.ipns_key.is_zero() {
            return Err(Error::KeyAlreadySet(token_id));
        }
        let k = self
            .ipfs
            .key_gen(&format!("px-token-{token_id}-{}", random_hex(4)))
            .await?;
        let row = KeyRow {
            key_name: k.name.clone(),
            ipns_id: k.id.clone(),
            token_id: None,
        };
        let (pk, r) = (k.pubkey, row.clone());
        self.write(move |db| db.put_key(&pk, &r)).await?;
        let name = ipns_name_bytes(&k.pubkey);
        let tx = self.chain.register_key(token_id, &name).await?;
        tracing::info!(target: "node::keys", token_id, %tx, ipns = %k.id, "key registered");
        self.write(move |db| db.adopt_token(token_id, &pk, &row))
            .await?;
        Ok(RegisteredKey {
            token_id,
            ipns_name: Bytes::copy_from_slice(&name),
            ipns_id: k.id,
        })
    }

    // ------------------------------------------------------------------ reads

    fn usage_of(&self, token_id: u64, s: &TokenState) -> Usage {
        Usage {
            token_id,
            quota: s.quota,
            used: s.used,
            file_count: s.file_count,
            seq: s.seq,
            index: s.index_root.clone(),
            ipns_id: s.ipns_id.clone(),
        }
    }

    /// Usage of a token (owner only).
    pub async fn usage(&self, token_id: u64, caller: Address) -> Result<Usage> {
        self.authorize(token_id, caller).await?;
        let s = self.ensure_token(token_id).await?;
        let mut u = self.usage_of(token_id, &s);
        if s.seq == 0 {
            u.quota = self.chain.token_facts(token_id).await?.quota;
        }
        Ok(u)
    }

    /// A page of a token's files (owner only).
    pub async fn list(
        &self,
        token_id: u64,
        caller: Address,
        after: u64,
        limit: u32,
    ) -> Result<FileListPage> {
        self.authorize(token_id, caller).await?;
        self.ensure_token(token_id).await?;
        let limit = limit.clamp(1, api::MAX_PAGE) as usize;
        let (files, more) = self
            .read(move |db| db.files_after(token_id, after, limit))
            .await?;
        let next = if more {
            files.last().map(|f| f.id)
        } else {
            None
        };
        Ok(FileListPage { files, next })
    }

    /// The bytes of `cid` if the token holds a file with it (owner only).
    pub async fn download(
        &self,
        token_id: u64,
        caller: Address,
        cid: &str,
    ) -> Result<impl Stream<Item = Result<Chunk>> + Send + use<>> {
        self.authorize(token_id, caller).await?;
        let c = cid.to_string();
        if !self.read(move |db| db.has_content(token_id, &c)).await? {
            return Err(Error::NotFound(format!(
                "content {cid} of token {token_id}"
            )));
        }
        Ok(self.ipfs.cat(cid))
    }

    // ------------------------------------------------------------------ updates

    /// Uploads `len` bytes from `body` as a new file of `token_id`.
    #[tracing::instrument(target = "node::upload", skip(self, body, sha256), fields(%caller))]
    pub async fn upload<S, E>(
        &self,
        token_id: u64,
        caller: Address,
        name: String,
        sha256: Option<String>,
        len: u64,
        body: S,
    ) -> Result<api::UploadResult>
    where
        S: Stream<Item = std::result::Result<Chunk, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let r = self
            .upload_inner(token_id, caller, name, sha256, len, body)
            .await;
        self.metrics.upload(&r, len);
        if matches!(r, Err(Error::BodyTimeout { .. })) {
            self.metrics.timeout();
        }
        r
    }

    async fn upload_inner<S, E>(
        &self,
        token_id: u64,
        caller: Address,
        name: String,
        sha256: Option<String>,
        len: u64,
        body: S,
    ) -> Result<api::UploadResult>
    where
        S: Stream<Item = std::result::Result<Chunk, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        if len > self.settings.max_upload_bytes {
            return Err(Error::TooLarge {
                size: len,
                limit: self.settings.max_upload_bytes,
            });
        }
        check_name(&name)?;
        if let Some(h) = &sha256
            && (h.len() != 64 || !h.bytes().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(Error::BadRequest("sha256 must be 64 hex characters".into()));
        }
        self.authorize(token_id, caller).await?;
        let state = self.ensure_token(token_id).await?;
        self.check_bound(token_id, &state).await?;
        let (quota, reservation) = self.admit(token_id, len).await?;
        let timed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let body = self.body_deadline(body, len, timed_out.clone());

        // Stream the body into the backend's `add?pin=true`; count what arrives. Before the
        // backend can pin, the upload has its `uploads` row (see the module docs).
        let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = received.clone();
        // Whether the client's body ended or failed (as opposed to the node no longer
        // reading it because the backend failed).
        let body_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (done_on_error, done_at_end) = (body_done.clone(), body_done.clone());
        let counted = body
            .inspect(move |chunk| match chunk {
                Ok(c) => {
                    counter.fetch_add(c.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
                Err(_) => done_on_error.store(true, std::sync::atomic::Ordering::Relaxed),
            })
            .chain(futures::stream::poll_fn(move |_| {
                done_at_end.store(true, std::sync::atomic::Ordering::Relaxed);
                std::task::Poll::Ready(None)
            }));
        let (added, journaled) = if self.settings.exclusive_backend {
            self.add_exclusive(token_id, counted, len, &received)
                .await?
        } else {
            let journaled = Mutex::new(None);
            let added = self
                .ipfs
                .add_stream_journaled(counted, len, |cid| {
                    self.journal_upload(token_id, cid, &journaled)
                })
                .await;
            (added, journaled.into_inner().expect("lock"))
        };
        failpoint("after_add");
        let received = received.load(std::sync::atomic::Ordering::Relaxed);
        let body_done = body_done.load(std::sync::atomic::Ordering::Relaxed);
        let result = async {
            if timed_out.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(Error::BodyTimeout { received, len });
            }
            // A body of the wrong length is the client's doing, unless the backend failed
            // first and the node stopped reading it (then the backend's error, a 503).
            if received > len || (received < len && (body_done || added.is_ok())) {
                return Err(Error::BadRequest(format!(
                    "body has {received} bytes, Content-Length says {len}"
                )));
            }
            let cid = added?;
            let Some((upload, expected)) = &journaled else {
                return Err(Error::Internal("upload CID not journaled".into()));
            };
            if cid != *expected {
                // The backend chunked differently: it pinned a CID nobody journaled.
                self.give_back_foreign(token_id, &cid).await;
                return Err(Error::Ipfs(format!(
                    "backend stored the upload as {cid}, the node computed {expected}"
                )));
            }
            self.commit_upload(
                token_id,
                name,
                sha256,
                len,
                quota,
                cid,
                *upload,
                reservation,
            )
            .await
        }
        .await;
        if let Some((upload, cid)) = journaled {
            self.unmark_pinning(std::slice::from_ref(&cid)).await;
            if result.is_err() {
                self.give_back_upload(token_id, upload, &cid).await;
            }
        }
        result
    }

    /// Ends an upload body with an error when the client falls silent for the idle timeout or
    /// the upload runs past `idle_timeout + len / min_upload_rate`, setting `timed_out`: a
    /// trickled body then gives its quota reservation back. The provider role applies it to
    /// piece bodies too.
    pub(crate) fn body_deadline<S, E>(
        &self,
        body: S,
        len: u64,
        timed_out: Arc<std::sync::atomic::AtomicBool>,
    ) -> impl Stream<Item = std::result::Result<Chunk, String>> + Send + 'static
    where
        S: Stream<Item = std::result::Result<Chunk, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let idle = self.settings.idle_timeout;
        let total = match self.settings.min_upload_rate {
            0 => Duration::MAX,
            rate => idle.saturating_add(Duration::from_secs_f64(len as f64 / rate as f64)),
        };
        let deadline = tokio::time::Instant::now()
            .checked_add(total)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(1 << 40));
        futures::stream::unfold(Some(Box::pin(body)), move |body| {
            let timed_out = timed_out.clone();
            async move {
                let mut body = body?;
                let wait =
                    idle.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
                match tokio::time::timeout(wait, body.next()).await {
                    Ok(Some(Ok(c))) => Some((Ok(c), Some(body))),
                    Ok(Some(Err(e))) => Some((Err(e.to_string()), None)),
                    Ok(None) => None,
                    Err(_) => {
                        timed_out.store(true, std::sync::atomic::Ordering::Relaxed);
                        Some((Err("upload body timed out".to_string()), None))
                    }
                }
            }
        })
    }

    /// The `add` of an upload to a backend the node owns: an `uploads` row without a CID
    /// first (a crash from here on makes recovery sweep unreferenced pins), then the add,
    /// pinned. Answers the add's outcome and, when it has a CID, the row and CID, counted as
    /// pinning. A failed add of a whole body leaves its row to recovery (the backend might
    /// have pinned before the answer was lost); a body cut short removes it at once.
    async fn add_exclusive<S, E>(
        &self,
        token_id: u64,
        body: S,
        len: u64,
        received: &std::sync::atomic::AtomicU64,
    ) -> Result<(Result<String>, Option<(u64, String)>)>
    where
        S: Stream<Item = std::result::Result<Chunk, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let id = new_upload_id();
        let pin = UploadPin {
            token_id,
            cid: None,
        };
        self.write(move |db| db.put_upload(id, &pin)).await?;
        self.unpin_watch
            .lock()
            .expect("lock")
            .insert(id, Vec::new());
        let added = self.ipfs.add_stream_pinned(body, len).await;
        let cid = match &added {
            Ok(cid) => cid.clone(),
            Err(_) => {
                self.unpin_watch.lock().expect("lock").remove(&id);
                // A body that did not arrive whole (the client went away or timed out) never
                // got its closing boundary sent, so the backend cannot have pinned it: the
                // row goes now (not at the next restart). Otherwise the answer may have been
                // lost after the pin, and recovery sweeps.
                if received.load(std::sync::atomic::Ordering::Relaxed) != len
                    && let Err(e) = self.write(move |db| db.remove_upload(id)).await
                {
                    tracing::warn!(target: "node::update", token_id, error = %e, "upload row left to recovery");
                }
                return Ok((added, None));
            }
        };
        // Counted as pinning from now on; if a release unpinned the same content while the
        // add ran (the add's pin then went with it), pin it again.
        let unpinned = {
            let mut p = self.pinning.lock().await;
            *p.entry(cid.clone()).or_default() += 1;
            let seen = self.unpin_watch.lock().expect("lock").remove(&id);
            seen.is_some_and(|v| v.contains(&cid))
        };
        let added = if unpinned {
            self.ipfs.pin(&cid).await.map(|()| cid.clone())
        } else {
            added
        };
        Ok((added, Some((id, cid))))
    }

    /// Journals an upload's CID before its `add` may pin it: counted as pinning (so no
    /// concurrent release unpins the same content meanwhile), then a durable `uploads` row.
    /// `slot` receives the row id and CID first, so the caller cleans up even if the write
    /// fails.
    async fn journal_upload(
        &self,
        token_id: u64,
        cid: String,
        slot: &Mutex<Option<(u64, String)>>,
    ) -> Result<()> {
        let id = new_upload_id();
        self.mark_pinning(std::slice::from_ref(&cid)).await;
        *slot.lock().expect("lock") = Some((id, cid.clone()));
        let pin = UploadPin {
            token_id,
            cid: Some(cid),
        };
        self.write(move |db| db.put_upload(id, &pin)).await
    }

    /// Unpins an uncommitted upload's file (unless something else holds it) and forgets it;
    /// on failure recovery retries.
    async fn give_back_upload(&self, token_id: u64, upload: u64, cid: &str) {
        let r = async {
            self.unpin_if_unreferenced(token_id, cid).await?;
            self.write(move |db| db.remove_upload(upload)).await
        }
        .await;
        if let Err(e) = r {
            tracing::warn!(target: "node::update", token_id, error = %e, "upload pin not given back; recovery will retry");
        }
    }

    /// Gives back a pin the backend took under a CID the node did not expect: journaled first,
    /// like any upload pin.
    async fn give_back_foreign(&self, token_id: u64, cid: &str) {
        let slot = Mutex::new(None);
        let r = self.journal_upload(token_id, cid.to_string(), &slot).await;
        self.unmark_pinning(&[cid.to_string()]).await;
        if let Some((upload, _)) = slot.into_inner().expect("lock")
            && r.is_ok()
        {
            self.give_back_upload(token_id, upload, cid).await;
        } else if let Err(e) = self.unpin_if_unreferenced(token_id, cid).await {
            tracing::warn!(target: "node::update", token_id, error = %e, "cannot unpin {cid}");
        }
    }

    /// Adds an uploaded (pinned, journaled) file to its token: steps 2-4 of an update.
    #[allow(clippy::too_many_arguments)]
    async fn commit_upload(
        &self,
        token_id: u64,
        name: String,
        sha256: Option<String>,
        len: u64,
        quota: u64,
        cid: String,
        upload: u64,
        reservation: Reservation<'_>,
    ) -> Result<api::UploadResult> {
        let lock = self.token_lock(token_id);
        let _guard = lock.lock().await;
        let state = self
            .read(move |db| db.token(token_id))
            .await?
            .ok_or(Error::NotServed(token_id))?;
        self.recheck_quota(&state, len, quota)?;
        let file = FileEntry {
            id: state.next_file_id,
            name,
            cid,
            size: len,
            sha256: sha256.map(|h| h.to_ascii_lowercase()),
            created_at: unix_now(),
            redundancy: None,
        };
        let next = with_added_file(&state, len, quota);
        let usage = self
            .apply(
                token_id,
                &state,
                next,
                Some(Edit::Add(std::slice::from_ref(&file))),
                Pins {
                    upload: Some(upload),
                    reservation: Some(reservation),
                    ..Pins::default()
                },
            )
            .await?;
        Ok(api::UploadResult { file, usage })
    }

    async fn mark_pinning(&self, cids: &[String]) {
        let mut p = self.pinning.lock().await;
        for c in cids {
            *p.entry(c.clone()).or_default() += 1;
        }
    }

    async fn unmark_pinning(&self, cids: &[String]) {
        let mut p = self.pinning.lock().await;
        for c in cids {
            if let Some(n) = p.get_mut(c) {
                *n -= 1;
                if *n == 0 {
                    p.remove(c);
                }
            }
        }
    }

    /// Adds content already stored in the IPFS backend to a token's index in one update (one
    /// new record): for operators migrating an existing collection, and for seeding large
    /// indexes in tests and benchmarks. Not exposed over HTTP: the sizes are the operator's
    /// word. The gate and quota are checked as for uploads; every CID is pinned.
    pub async fn import_files(&self, token_id: u64, files: Vec<ImportFile>) -> Result<Usage> {
        let state = self.ensure_token(token_id).await?;
        self.check_bound(token_id, &state).await?;
        let total: u64 = files.iter().map(|f| f.size).sum();
        let (quota, reservation) = self.admit(token_id, total).await?;
        let lock = self.token_lock(token_id);
        let _guard = lock.lock().await;
        let state = self
            .read(move |db| db.token(token_id))
            .await?
            .ok_or(Error::NotServed(token_id))?;
        self.recheck_quota(&state, total, quota)?;
        let now = unix_now();
        let entries: Vec<FileEntry> = files
            .into_iter()
            .enumerate()
            .map(|(i, f)| FileEntry {
                id: state.next_file_id + i as u64,
                name: f.name,
                cid: f.cid,
                size: f.size,
                sha256: f.sha256,
                created_at: now,
                redundancy: None,
            })
            .collect();
        let mut cids: Vec<String> = entries.iter().map(|f| f.cid.clone()).collect();
        cids.sort();
        cids.dedup();
        let mut next = state.clone();
        next.used += total;
        next.file_count += entries.len() as u64;
        next.next_file_id += entries.len() as u64;
        next.quota = quota;
        let pins = Pins {
            files: cids,
            upload: None,
            reservation: Some(reservation),
            objects: Vec::new(),
        };
        self.apply(token_id, &state, next, Some(Edit::Add(&entries)), pins)
            .await
    }

    /// Records a file stored on the provider network (its pieces are with providers): the
    /// manifest `manifest` (JSON) is added and pinned here and becomes the entry's `cid`;
    /// `size` (the ciphertext's bytes) counts against the quota as an upload would. The
    /// session, gate and quota are checked as for uploads; the caller
    /// ([`crate::home`]) has checked the manifest and its signatures.
    pub async fn commit_network_file(
        &self,
        token_id: u64,
        caller: Address,
        name: String,
        manifest: Vec<u8>,
        size: u64,
        redundancy: px_core::erasure::Redundancy,
    ) -> Result<api::UploadResult> {
        if size > self.settings.max_upload_bytes {
            return Err(Error::TooLarge {
                size,
                limit: self.settings.max_upload_bytes,
            });
        }
        check_name(&name)?;
        self.authorize(token_id, caller).await?;
        let state = self.ensure_token(token_id).await?;
        self.check_bound(token_id, &state).await?;
        let (quota, reservation) = self.admit(token_id, size).await?;
        let cid = index::object_cid(&manifest)?;
        let lock = self.token_lock(token_id);
        let _guard = lock.lock().await;
        let state = self
            .read(move |db| db.token(token_id))
            .await?
            .ok_or(Error::NotServed(token_id))?;
        self.recheck_quota(&state, size, quota)?;
        let file = FileEntry {
            id: state.next_file_id,
            name,
            cid: cid.clone(),
            size,
            sha256: None,
            created_at: unix_now(),
            redundancy: Some(redundancy),
        };
        let next = with_added_file(&state, size, quota);
        let pins = Pins {
            reservation: Some(reservation),
            objects: vec![(cid, manifest)],
            ..Pins::default()
        };
        let usage = self
            .apply(
                token_id,
                &state,
                next,
                Some(Edit::Add(std::slice::from_ref(&file))),
                pins,
            )
            .await?;
        Ok(api::UploadResult { file, usage })
    }

    /// Replaces a network file's manifest (after a repair moved pieces): same id, name and
    /// size, the new manifest's CID; a new record is published. Answers the new entry.
    pub async fn replace_network_file(
        &self,
        token_id: u64,
        file_id: u64,
        manifest: Vec<u8>,
    ) -> Result<FileEntry> {
        let state = self.ensure_token(token_id).await?;
        self.check_bound(token_id, &state).await?;
        let cid = index::object_cid(&manifest)?;
        let lock = self.token_lock(token_id);
        let _guard = lock.lock().await;
        let (state, old) = self
            .read(move |db| Ok((db.token(token_id)?, db.file(token_id, file_id)?)))
            .await?;
        let state = state.ok_or(Error::NotServed(token_id))?;
        let old = old.ok_or_else(|| Error::NotFound(format!("file {file_id}")))?;
        if old.redundancy.is_none() {
            return Err(Error::BadRequest(format!(
                "file {file_id} is not stored on the provider network"
            )));
        }
        let file = FileEntry {
            cid: cid.clone(),
            ..old
        };
        let pins = Pins {
            objects: vec![(cid, manifest)],
            ..Pins::default()
        };
        let next = state.clone();
        self.apply(token_id, &state, next, Some(Edit::Replace(&file)), pins)
            .await?;
        Ok(file)
    }

    /// Reserves `size` bytes of the token's quota for an update in flight. The committed usage
    /// is read under the reservation lock: an update commits before it gives its reservation
    /// back, so every committed or admitted byte is counted at least once here.
    fn reserve(&self, token_id: u64, size: u64, quota: u64) -> Result<Reservation<'_>> {
        let mut r = self.reserved.lock().expect("lock");
        // A point read (microseconds), under the lock by design.
        let used = self.db.token(token_id)?.map_or(0, |s| s.used);
        let inflight = r.get(&token_id).copied().unwrap_or(0);
        let live = used + inflight;
        if live.saturating_add(size) > quota {
            return Err(Error::OverQuota {
                used: live,
                size,
                quota,
            });
        }
        *r.entry(token_id).or_default() += size;
        Ok(Reservation {
            node: self,
            token_id,
            size,
        })
    }

    /// Publishes a fresh usage record for a token: the same files, the quota as the chain has
    /// it now, sequence + 1 and a new time. A sync needs it when nothing changed since the last
    /// one: the contract accepts only a record newer than the last synced one, so the node
    /// attests current usage anew (through the same journaled update as an upload).
    pub async fn refresh(&self, token_id: u64, caller: Address) -> Result<Usage> {
        self.authorize(token_id, caller).await?;
        let state = self.ensure_token(token_id).await?;
        let quota = self.check_bound(token_id, &state).await?.quota;
        let lock = self.token_lock(token_id);
        let _guard = lock.lock().await;
        let state = self
            .read(move |db| db.token(token_id))
            .await?
            .ok_or(Error::NotServed(token_id))?;
        let mut next = state.clone();
        next.quota = quota;
        let usage = self
            .apply(token_id, &state, next, None, Pins::default())
            .await?;
        Ok(usage)
    }

    /// Admits `size` more bytes for a token: the on-chain gate (quota refusals name the live
    /// numbers), then a reservation against the chain's quota that holds until the update
    /// commits or fails. Answers the quota and the reservation.
    /// The gate and quota check of an update of `size` bytes, without keeping a reservation
    /// (a placement: the commit checks again).
    pub(crate) async fn check_admission(&self, token_id: u64, size: u64) -> Result<()> {
        self.admit(token_id, size).await.map(|_| ())
    }

    async fn admit(&self, token_id: u64, size: u64) -> Result<(u64, Reservation<'_>)> {
        let quota = self.chain.token_facts(token_id).await?.quota;
        match self.chain.gate(token_id, size).await? {
            None => {}
            Some(GateReason::QuotaExceeded) => {
                let used = self
                    .read(move |db| db.token(token_id))
                    .await?
                    .map_or(0, |s| s.used);
                return Err(Error::OverQuota { used, size, quota });
            }
            Some(reason) => return Err(Error::GateClosed(reason)),
        }
        Ok((quota, self.reserve(token_id, size, quota)?))
    }

    /// The check at commit, under the token lock: the committed usage plus `size` fits the
    /// quota (whatever the reservations did).
    fn recheck_quota(&self, state: &TokenState, size: u64, quota: u64) -> Result<()> {
        if state.used.saturating_add(size) > quota {
            self.metrics.refused_at_commit();
            return Err(Error::OverQuota {
                used: state.used,
                size,
                quota,
            });
        }
        Ok(())
    }

    /// Deletes a file of a token.
    pub async fn delete(
        &self,
        token_id: u64,
        caller: Address,
        file_id: u64,
    ) -> Result<api::DeleteResult> {
        self.authorize(token_id, caller).await?;
        let state = self.ensure_token(token_id).await?;
        self.check_bound(token_id, &state).await?;
        let lock = self.token_lock(token_id);
        let _guard = lock.lock().await;
        let state = self
            .read(move |db| db.token(token_id))
            .await?
            .ok_or(Error::NotServed(token_id))?;
        let file = self
            .read(move |db| db.file(token_id, file_id))
            .await?
            .ok_or_else(|| Error::NotFound(format!("file {file_id} of token {token_id}")))?;
        let mut next = state.clone();
        next.used -= file.size;
        next.file_count -= 1;
        let usage = self
            .apply(
                token_id,
                &state,
                next,
                Some(Edit::Remove(file_id)),
                Pins::default(),
            )
            .await?;
        self.metrics.delete();
        Ok(api::DeleteResult { file, usage })
    }

    /// Steps 2-4 of an update (see the module docs); the token lock is held by the caller.
    async fn apply(
        &self,
        token_id: u64,
        old: &TokenState,
        mut next: TokenState,
        edit: Option<Edit<'_>>,
        Pins {
            files,
            upload,
            reservation,
            objects: extra_objects,
        }: Pins<'_>,
    ) -> Result<Usage> {
        let (chain_id, contract) = (self.chain.chain_id(), self.chain.contract());
        // The index pages are read and encoded on the blocking pool.
        let owned = match edit {
            Some(Edit::Add(f)) => Some(OwnedEdit::Add(f.to_vec())),
            Some(Edit::Remove(id)) => Some(OwnedEdit::Remove(id)),
            Some(Edit::Replace(f)) => Some(OwnedEdit::Replace(f.clone())),
            // A refresh of a token that never had a file: publish an (empty) index root, so
            // every record names a real index object.
            None if old.index_root.is_empty() => Some(OwnedEdit::Add(Vec::new())),
            // A refresh: same files, same index.
            None => None,
        };
        let change = match owned {
            Some(e) => {
                self.read(move |db| index::apply(db, chain_id, contract, token_id, e.as_edit()))
                    .await?
            }
            None => index::IndexChange {
                root: old.index_root.clone(),
                ..Default::default()
            },
        };
        next.seq = old.seq + 1;
        next.index_root = change.root.clone();
        let record = UsageRecord {
            version: RECORD_VERSION,
            chain_id,
            contract,
            token_id,
            quota: next.quota,
            used: next.used,
            file_count: next.file_count,
            seq: next.seq,
            index: change.root.clone(),
            updated_at: unix_now(),
        };
        let record_bytes = record.to_bytes();
        let record_cid = index::object_cid(&record_bytes)?;
        next.record_cid = record_cid.clone();
        let mut objects = change.new.clone();
        objects.extend(extra_objects);
        objects.push((record_cid.clone(), record_bytes));
        let mut pins = files.clone();
        pins.extend(objects.iter().map(|(c, _)| c.clone()));

        // Journal every CID this update will pin (keeping what earlier updates still have to
        // release), then pin.
        let pending = pins.clone();
        self.write(move |db| db.journal_pending(token_id, &pending))
            .await?;
        self.mark_pinning(&pins).await;
        let result = async {
            self.ipfs.pin_all(&files).await?;
            self.ipfs.add_objects_pinned(objects).await?;
            failpoint("after_pin");
            let mut release = change.old.clone();
            if !old.record_cid.is_empty() {
                release.push(old.record_cid.clone());
            }
            let mut update = Update {
                pages: change.pages.clone(),
                state: next.clone(),
                release,
                uploads: upload.into_iter().collect(),
                ..Update::default()
            };
            match edit {
                None => {}
                Some(Edit::Add(f)) => update.add_files.extend_from_slice(f),
                Some(Edit::Remove(id)) => {
                    let (f, refs) = self
                        .read(move |db| {
                            let f = db
                                .file(token_id, id)?
                                .ok_or_else(|| Error::NotFound(format!("file {id}")))?;
                            let refs = db.cid_refs(&f.cid)?;
                            Ok((f, refs))
                        })
                        .await?;
                    if refs <= 1 {
                        update.release.push(f.cid.clone());
                    }
                    update.remove_files.push(f);
                }
                Some(Edit::Replace(new)) => {
                    let id = new.id;
                    let (f, refs) = self
                        .read(move |db| {
                            let f = db
                                .file(token_id, id)?
                                .ok_or_else(|| Error::NotFound(format!("file {id}")))?;
                            let refs = db.cid_refs(&f.cid)?;
                            Ok((f, refs))
                        })
                        .await?;
                    if refs <= 1 && f.cid != new.cid {
                        update.release.push(f.cid.clone());
                    }
                    update.remove_files.push(f);
                    update.add_files.push(new.clone());
                }
            }
            // Answers what this and earlier updates released (the journal's merged list).
            self.write(move |db| db.commit_update(token_id, &update))
                .await
        }
        .await;
        // The commit counts the bytes: the reservation is not needed any more.
        drop(reservation);
        self.unmark_pinning(&pins).await;
        let release = match result {
            Ok(r) => r,
            Err(e) => {
                // Not committed: give the pins back (recovery does it if this fails too).
                self.rollback(token_id).await;
                return Err(e);
            }
        };
        failpoint("after_commit");
        self.publish(token_id, &next).await;
        self.release(token_id, &release).await;
        Ok(self.usage_of(token_id, &next))
    }

    /// Unpins what a token's journal holds and nothing committed references.
    async fn rollback(&self, token_id: u64) {
        if let Err(e) = self.recover_token(token_id).await {
            tracing::warn!(target: "node::update", token_id, error = %e, "rollback failed; recovery will retry");
        }
    }

    /// Unpins released objects (unless referenced again) and clears the journal.
    async fn release(&self, token_id: u64, release: &[String]) {
        let r = async {
            self.unpin_unreferenced(token_id, release).await?;
            self.write(move |db| db.put_journal(token_id, &Journal::default(), false))
                .await
        }
        .await;
        if let Err(e) = r {
            tracing::warn!(target: "node::update", token_id, error = %e, "release failed; recovery will retry");
        }
    }

    async fn unpin_if_unreferenced(&self, token_id: u64, cid: &str) -> Result<()> {
        self.unpin_unreferenced(token_id, &[cid.to_string()]).await
    }

    /// Unpins those of `cids` that no update is pinning and nothing committed references, in
    /// batched calls.
    async fn unpin_unreferenced(&self, token_id: u64, cids: &[String]) -> Result<()> {
        let p = self.pinning.lock().await;
        let candidates: Vec<String> = cids
            .iter()
            .filter(|c| !p.contains_key(*c))
            .cloned()
            .collect();
        let unpin = self
            .read(move |db| db.unreferenced(token_id, &candidates))
            .await?;
        if unpin.is_empty() {
            return Ok(());
        }
        self.ipfs.unpin_all(&unpin).await?;
        for seen in self.unpin_watch.lock().expect("lock").values_mut() {
            seen.extend(unpin.iter().cloned());
        }
        drop(p);
        Ok(())
    }

    /// Publishes a token's committed record; on failure the token is retried later.
    async fn publish(&self, token_id: u64, state: &TokenState) {
        if state.record_cid.is_empty() {
            return;
        }
        let r = self
            .ipfs
            .publish(
                &state.key_name,
                &state.record_cid,
                self.settings.record_lifetime,
            )
            .await;
        self.metrics.publish(r.is_ok());
        match r {
            Ok(()) => {
                self.dirty.lock().expect("lock").remove(&token_id);
            }
            Err(e) => {
                tracing::warn!(target: "node::publish", token_id, error = %e, "publish failed; will retry");
                self.dirty.lock().expect("lock").insert(token_id);
            }
        }
    }

    async fn recover_token(&self, token_id: u64) -> Result<()> {
        let j = self.db.journal(token_id)?;
        let cids: Vec<String> = j.pending.into_iter().chain(j.release).collect();
        self.unpin_unreferenced(token_id, &cids).await?;
        self.write(move |db| db.put_journal(token_id, &Journal::default(), true))
            .await
    }

    /// Start-up recovery: resolves every journal and every upload left uncommitted, then
    /// republishes every token's record. `keep` are pins of other roles of the node (the
    /// provider's pieces, in its own database) that the sweep of an exclusive backend leaves.
    pub async fn recover(&self, keep: &HashSet<String>) -> Result<()> {
        for token_id in self.db.journaled_tokens()? {
            let lock = self.token_lock(token_id);
            let _g = lock.lock().await;
            self.recover_token(token_id).await?;
            tracing::info!(target: "node::recover", token_id, "journal resolved");
        }
        let mut unknown = Vec::new();
        for (upload, pin) in self.db.uploads()? {
            let Some(cid) = pin.cid else {
                unknown.push(upload);
                continue;
            };
            self.unpin_if_unreferenced(pin.token_id, &cid).await?;
            self.write(move |db| db.remove_upload(upload)).await?;
            tracing::info!(target: "node::recover", token_id = pin.token_id, %cid, "uncommitted upload unpinned");
        }
        if !unknown.is_empty() {
            if self.settings.exclusive_backend {
                // An upload may have been pinned under a CID never recorded: every pin the
                // committed state does not reference goes (the backend is the node's alone).
                let referenced = self.db.referenced_cids()?;
                for cid in self.ipfs.pins().await? {
                    if !referenced.contains(&cid) && !keep.contains(&cid) {
                        self.ipfs.unpin(&cid).await?;
                        tracing::info!(target: "node::recover", %cid, "unreferenced pin removed");
                    }
                }
            } else {
                tracing::warn!(target: "node::recover", uploads = unknown.len(), "uploads of an exclusive-backend run left unresolved: the backend is not exclusive now, so no pin is swept");
            }
            for upload in unknown {
                self.write(move |db| db.remove_upload(upload)).await?;
            }
        }
        self.republish_all().await;
        Ok(())
    }

    /// Republishes every served token's latest record.
    pub async fn republish_all(&self) {
        let tokens = match self.db.tokens() {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(target: "node::publish", error = %e, "cannot list tokens");
                return;
            }
        };
        for (token_id, _) in tokens {
            let lock = self.token_lock(token_id);
            let _g = lock.lock().await;
            if let Ok(Some(s)) = self.db.token(token_id)
                && !s.record_cid.is_empty()
                && !self.moved_away(token_id, &s, true).await
            {
                self.publish(token_id, &s).await;
            }
        }
    }

    /// Republishes tokens whose last publish failed.
    pub async fn republish_dirty(&self) {
        let dirty: Vec<u64> = self.dirty.lock().expect("lock").iter().copied().collect();
        for token_id in dirty {
            let lock = self.token_lock(token_id);
            let _g = lock.lock().await;
            if let Ok(Some(s)) = self.db.token(token_id)
                && !self.moved_away(token_id, &s, false).await
            {
                self.publish(token_id, &s).await;
            }
        }
    }

    /// Health of the backends.
    pub async fn health(&self) -> api::Health {
        let (chain, ipfs) = tokio::join!(self.chain.alive(), self.ipfs.alive());
        api::Health {
            status: if chain && ipfs { "ok" } else { "degraded" }.into(),
            chain,
            ipfs,
        }
    }
}

/// The token's state after one file of `size` bytes is added under `quota`: usage, file
/// count and next file id advance.
fn with_added_file(state: &TokenState, size: u64, quota: u64) -> TokenState {
    let mut next = state.clone();
    next.used += size;
    next.file_count += 1;
    next.next_file_id += 1;
    next.quota = quota;
    next
}
