//! The storage-node side of [`Client`]: sign-in, upload, download, list, delete.
//!
//! Every call carries a session from Sign-In with Ethereum: the client asks the node for a
//! nonce, signs an EIP-4361 message with its wallet and keeps the session token until shortly
//! before it expires (or the node answers 401), then signs in again; [`Client::logout`] revokes
//! it on the node. The message's domain and URI come from the configured node URL, never from
//! the node's answer: a node that names another site is refused ([`Error::ForeignSignIn`]).
//!
//! Uploads stream: the body is produced by the [`crate::prepare`] pipeline while it is sent,
//! so memory stays bounded, and the CID the node answers is checked against the one computed
//! locally. The node learns the ciphertext, its length and CID, and an encrypted name: the
//! plaintext's SHA-256 is sealed inside the encrypted header (format version 2, see
//! [`crate::crypto`]) and never sent. Downloads stream too: the content's CID is recomputed,
//! encrypted content is decrypted segment by segment (nothing unauthenticated is written), the
//! entry's name must be bound to the content's file id, and the plaintext's SHA-256 is compared
//! with the one sealed in the header by the uploader (not with anything the node says).
//! Where encryption is expected (the default), content that is not encrypted, or whose name is
//! plain while the content is encrypted, is refused ([`Error::Unencrypted`]).

use std::{
    collections::VecDeque,
    path::Path,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use alloy::{providers::Provider, signers::Signer};
use bytes::Bytes;
use futures::StreamExt;
use px_core::{
    importer::{ImportError, ImportOptions, Importer},
    siwe::Scope,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};

use crate::{
    Client,
    api::{self, ErrorBody, ErrorCode, FileEntry, FileListPage},
    crypto::{self, Decryptor},
    error::{Error, Result},
    prepare::{PrepareOptions, Prepared, Preparer},
    siwe::SiweMessage,
};

/// Renew the session when less than this is left.
const RENEW_BEFORE: u64 = 120;
/// Lifetime asked for in the sign-in message; the node may grant less (its `session_ttl`).
const SESSION_LIFETIME: u64 = 24 * 3600;
/// Plaintext read per step of an upload.
const READ_STEP: usize = 256 * 1024;

/// Called with (plaintext bytes sent, plaintext total).
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// How to upload.
#[derive(Clone)]
pub struct UploadOptions {
    /// Encrypt client side (default true).
    pub encrypt: bool,
    /// Plaintext length, when known (else the input is spooled to a temporary file first).
    pub size: Option<u64>,
    /// Hex SHA-256 of the plaintext, when known (else computed). It is sealed inside the
    /// encrypted header; the node never sees it.
    pub sha256: Option<String>,
    /// Check the on-chain gate before sending (default true).
    pub check_gate: bool,
    /// When the gate is closed for lack of a sync, request one and wait (default false).
    pub auto_sync: bool,
    /// Progress callback.
    pub progress: Option<Progress>,
    /// Segment size and CID settings.
    pub prepare: PrepareOptions,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            encrypt: true,
            size: None,
            sha256: None,
            check_gate: true,
            auto_sync: false,
            progress: None,
            prepare: PrepareOptions::default(),
        }
    }
}

impl std::fmt::Debug for UploadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadOptions")
            .field("encrypt", &self.encrypt)
            .field("size", &self.size)
            .field("sha256", &self.sha256)
            .field("check_gate", &self.check_gate)
            .field("auto_sync", &self.auto_sync)
            .field("progress", &self.progress.is_some())
            .field("prepare", &self.prepare)
            .finish()
    }
}

/// What an upload stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadResult {
    /// The node's file entry (name encrypted when the content is).
    pub file: FileEntry,
    /// The plain file name.
    pub name: String,
    /// Usage after the upload.
    pub usage: api::Usage,
    /// Whether the content is encrypted.
    pub encrypted: bool,
    /// Plaintext length.
    pub plain_size: u64,
}

/// How to download.
#[derive(Clone)]
pub struct DownloadOptions {
    /// Decrypt encrypted content (default true); false writes the stored bytes as they are,
    /// with only the CID checked.
    pub decrypt: bool,
    /// Look up the file entry and check that its name is bound to the content (default true).
    pub verify: bool,
    /// Accept content stored unencrypted (`encrypt: false` uploads) under a plain name
    /// (default false: where encryption is expected, plain content is refused).
    pub allow_plain: bool,
    /// Progress callback: (bytes received, bytes the node announced).
    pub progress: Option<Progress>,
}

impl std::fmt::Debug for DownloadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadOptions")
            .field("decrypt", &self.decrypt)
            .field("verify", &self.verify)
            .field("allow_plain", &self.allow_plain)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Default for DownloadOptions {
    fn default() -> Self {
        Self {
            decrypt: true,
            verify: true,
            allow_plain: false,
            progress: None,
        }
    }
}

/// What a download wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadResult {
    /// Bytes written.
    pub written: u64,
    /// Whether the content was encrypted (and decrypted).
    pub encrypted: bool,
    /// Hex SHA-256 of what was written.
    pub sha256: String,
    /// The file entry, when found.
    pub file: Option<ListedFile>,
}

/// A file entry with its name decrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedFile {
    /// The plain name, as the owner wrote it (a plain name is the node's word; print it with
    /// its control characters escaped).
    pub name: String,
    /// Whether the name (and content) is encrypted.
    pub encrypted: bool,
    /// The file id the encrypted name is bound to (hex; format version 2), checked against
    /// the content's header at download.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// The node's entry.
    pub entry: FileEntry,
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn hex_sha256(h: Sha256) -> String {
    alloy::hex::encode(h.finalize())
}

/// A pending plaintext source for an upload: its length and hash are known.
struct Source<R> {
    reader: R,
    size: u64,
    sha256: [u8; 32],
    _spool: Option<tempfile::TempPath>,
}

impl<P, S> Client<P, S>
where
    P: Provider,
    S: Signer + Send + Sync,
{
    fn node_url(&self) -> Result<&str> {
        self.inner.node_url.as_deref().ok_or(Error::NoNode)
    }

    fn node_scope(&self) -> Result<&Scope> {
        self.inner.node_scope.as_ref().ok_or(Error::NoNode)
    }

    /// Signs in to the node (SIWE) and answers the new session.
    ///
    /// A node rate-limits sign-ins per address and per IP (HTTP 429 with `Retry-After`): the
    /// client waits as told and signs in again, for up to [`LOGIN_RETRY_BUDGET`] in all (many
    /// `px` processes of one user start at once), then reports the node's refusal.
    #[tracing::instrument(target = "sdk::node", skip(self), fields(account = %self.address()))]
    pub async fn login(&self) -> Result<api::Session> {
        let deadline = tokio::time::Instant::now() + LOGIN_RETRY_BUDGET;
        loop {
            match self.login_once(deadline).await? {
                Ok(session) => return Ok(session),
                Err(wait) => {
                    tracing::debug!(target: "sdk::node", ?wait, "sign-in rate-limited; waiting");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One sign-in; `Ok(Err(wait))` when the node rate-limited it and waiting `wait` still
    /// ends before `deadline`.
    async fn login_once(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<std::result::Result<api::Session, std::time::Duration>> {
        let base = self.node_url()?;
        let http = &self.inner.http;
        let resp = http.get(format!("{base}/v1/auth/nonce")).send().await?;
        if let Some(wait) = retry_after(&resp, deadline) {
            return Ok(Err(wait));
        }
        let nonce: api::NonceResponse = read_json(resp).await?;
        let d = &self.inner.deployment;
        if nonce.chain_id != d.chain_id {
            return Err(Error::NodeMismatch(format!(
                "the node serves chain {} but the deployment is for chain {}",
                nonce.chain_id, d.chain_id
            )));
        }
        // The scope is ours (the URL we were given), never the node's word for it.
        let scope = self.node_scope()?;
        let offered = Scope {
            domain: nonce.domain,
            uri: nonce.uri.trim_end_matches('/').to_owned(),
        };
        if offered != *scope {
            return Err(Error::ForeignSignIn {
                expected: scope.clone(),
                offered,
            });
        }
        let now = unix_now();
        let message = SiweMessage::new(
            scope.domain.clone(),
            self.address(),
            Some("Sign in to the PX storage node.".into()),
            scope.uri.clone(),
            d.chain_id,
            nonce.nonce,
            now,
            Some(now + SESSION_LIFETIME),
        )
        .to_string();
        let signature = self.inner.signer.sign_message(message.as_bytes()).await?;
        let req = api::LoginRequest {
            message,
            signature: signature.as_bytes().to_vec().into(),
        };
        let resp = http
            .post(format!("{base}/v1/auth/login"))
            .json(&req)
            .send()
            .await?;
        if let Some(wait) = retry_after(&resp, deadline) {
            return Ok(Err(wait));
        }
        let session: api::Session = read_json(resp).await?;
        if session.address != self.address() {
            return Err(Error::NodeMismatch(format!(
                "signed in as {}, but the node issued a session for {}",
                self.address(),
                session.address
            )));
        }
        *self.inner.session.lock().await = Some((session.clone(), now));
        Ok(Ok(session))
    }

    /// Revokes the current session on the node and forgets it; the next call signs in again.
    /// Does nothing when there is no session.
    pub async fn logout(&self) -> Result<()> {
        let Some((session, _)) = self.inner.session.lock().await.take() else {
            return Ok(());
        };
        let url = format!("{}/v1/auth/logout", self.node_url()?);
        let mut retries = 0;
        let resp = loop {
            let resp = self
                .inner
                .http
                .post(&url)
                .bearer_auth(&session.token)
                .send()
                .await?;
            match rate_limited(&resp, retries) {
                Some(wait) => {
                    retries += 1;
                    tokio::time::sleep(wait).await;
                }
                None => break resp,
            }
        };
        // An expired or unknown session is as logged out as it gets.
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Ok(());
        }
        check(resp).await.map(drop)
    }

    /// The current session, if signed in and not expired.
    pub async fn session(&self) -> Option<api::Session> {
        let session = self.inner.session.lock().await;
        session
            .as_ref()
            .filter(|(s, _)| s.expires_at > unix_now())
            .map(|(s, _)| s.clone())
    }

    /// A valid session token, signing in when there is none or it is about to expire.
    async fn session_token(&self) -> Result<String> {
        {
            let session = self.inner.session.lock().await;
            if let Some((s, obtained)) = session.as_ref() {
                // Renew ahead of expiry: 2 minutes, or a quarter of a shorter lifetime.
                let margin = RENEW_BEFORE.min(s.expires_at.saturating_sub(*obtained) / 4);
                if s.expires_at > unix_now() + margin {
                    return Ok(s.token.clone());
                }
            }
        }
        Ok(self.login().await?.token)
    }

    async fn authed(&self, method: Method, path: &str) -> Result<RequestBuilder> {
        let url = format!("{}{path}", self.node_url()?);
        let token = self.session_token().await?;
        Ok(self.inner.http.request(method, url).bearer_auth(token))
    }

    /// Sends a request without a streaming body; signs in again once on 401, and waits and
    /// sends it again on 429 as the node's `Retry-After` says (see [`rate_limited`]).
    async fn call(
        &self,
        method: Method,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response> {
        let mut retries = 0;
        loop {
            let resp = self.call_once(method.clone(), path, &build).await?;
            match rate_limited(&resp, retries) {
                Some(wait) => {
                    tracing::debug!(target: "sdk::node", %path, ?wait, "rate-limited; waiting");
                    retries += 1;
                    tokio::time::sleep(wait).await;
                }
                None => return Ok(resp),
            }
        }
    }

    async fn call_once(
        &self,
        method: Method,
        path: &str,
        build: &impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response> {
        let resp = build(self.authed(method.clone(), path).await?)
            .send()
            .await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        *self.inner.session.lock().await = None;
        Ok(build(self.authed(method, path).await?).send().await?)
    }

    async fn node_error(&self, token_id: Option<u64>, size: u64, err: Error) -> Error {
        match (err, token_id) {
            (
                err @ Error::Node {
                    code: Some(ErrorCode::GateClosed),
                    ..
                },
                Some(id),
            ) => {
                // Re-derive the reason and next step from the chain.
                match self.can_upload(id, size).await {
                    Ok(gate) if !gate.ok => self.gate_error(id, size, gate.reason).await,
                    _ => err,
                }
            }
            (e, _) => e,
        }
    }

    /// A signed key assignment from the node for `StorageNFT.mintWithKey`.
    pub async fn key_assignment(&self) -> Result<api::KeyAssignment> {
        read_json(self.call(Method::GET, "/v1/key-assignment", |r| r).await?).await
    }

    /// Asks the node to bind a key to a token minted without one (`registerKey`).
    pub async fn register_key(&self, token_id: u64) -> Result<api::RegisteredKey> {
        read_json(
            self.call(Method::POST, &format!("/v1/tokens/{token_id}/key"), |r| r)
                .await?,
        )
        .await
    }

    /// Mints through the node: gets a key assignment and mints with it, so the token can
    /// store files on that node right away.
    pub async fn mint_via_node(&self, plan_id: u64, payment: crate::Payment) -> Result<u64> {
        let assignment = self.key_assignment().await?;
        self.mint_with_key(plan_id, &assignment, payment).await
    }

    /// Asks this client's node to take `token_id` over from the node serving it now: the node
    /// imports and pins the token's files under a new IPNS key and answers the registrar-signed
    /// rebinding to submit with `StorageNFT.rebindKey` (see [`Client::move_to_node`]).
    pub async fn rebind_offer(&self, token_id: u64) -> Result<api::KeyRebinding> {
        let offer: api::KeyRebinding = read_json(
            self.call(
                Method::POST,
                &format!("/v1/tokens/{token_id}/rebind"),
                |r| r,
            )
            .await?,
        )
        .await?;
        let d = &self.inner.deployment;
        if offer.token_id != token_id
            || offer.contract != d.storage_nft
            || offer.chain_id != d.chain_id
        {
            return Err(Error::NodeMismatch(format!(
                "key rebinding is for token {} contract {} chain {}, not token {token_id} of this deployment",
                offer.token_id, offer.contract, offer.chain_id
            )));
        }
        Ok(offer)
    }

    /// Asks the node to publish a fresh usage record (same files, sequence + 1).
    ///
    /// The contract accepts a sync only for a record newer than the last synced one, so a sync
    /// after a quiet period needs the node to attest current usage anew;
    /// [`Client::request_sync`] calls this first whenever a node is configured.
    pub async fn refresh(&self, token_id: u64) -> Result<api::Usage> {
        read_json(
            self.call(
                Method::POST,
                &format!("/v1/tokens/{token_id}/refresh"),
                |r| r,
            )
            .await?,
        )
        .await
    }

    /// The token's usage as the node last published it.
    pub async fn usage(&self, token_id: u64) -> Result<api::Usage> {
        read_json(
            self.call(Method::GET, &format!("/v1/tokens/{token_id}/usage"), |r| r)
                .await?,
        )
        .await
    }

    /// What the node offers as a home node of the provider network (`GET /v1/network`, no
    /// session). A node without the home role answers 404 ([`Error::Node`]).
    pub async fn network_info(&self) -> Result<api::NetworkInfo> {
        let url = format!("{}/v1/network", self.node_url()?);
        let mut retries = 0;
        loop {
            let resp = self.inner.http.get(&url).send().await?;
            match rate_limited(&resp, retries) {
                Some(wait) => {
                    retries += 1;
                    tokio::time::sleep(wait).await;
                }
                None => return read_json(resp).await,
            }
        }
    }

    /// Asks the token's home node where to store a file's pieces
    /// (`POST /v1/tokens/{id}/placements`): providers with upload orders it signed.
    ///
    /// # Errors
    /// [`Error::Node`] with [`ErrorCode::NotHomeNode`] (the token names another home node,
    /// `StorageMarket.setHomeNode`), [`ErrorCode::EscrowTooLow`],
    /// [`ErrorCode::NotEnoughProviders`], or the upload refusals (gate, quota).
    pub async fn placement(
        &self,
        token_id: u64,
        req: &api::PlacementRequest,
    ) -> Result<api::Placement> {
        read_json(
            self.call(
                Method::POST,
                &format!("/v1/tokens/{token_id}/placements"),
                |r| r.json(req),
            )
            .await?,
        )
        .await
    }

    /// Records a file stored on providers (`POST /v1/tokens/{id}/manifests`): the manifest
    /// with every piece's receipt, under `commit.name` (sealed by the caller when encrypted).
    pub async fn commit_manifest(
        &self,
        token_id: u64,
        commit: &api::ManifestCommit,
    ) -> Result<api::UploadResult> {
        read_json(
            self.call(
                Method::POST,
                &format!("/v1/tokens/{token_id}/manifests"),
                |r| r.json(commit),
            )
            .await?,
        )
        .await
    }

    /// The current manifest of network file `file_id` (its entry's id) of `token_id`
    /// (`GET /v1/tokens/{id}/files/{fileId}/manifest`; it changes when the home node repairs
    /// the file). Checked for shape ([`px_core::network::Manifest::validate`]), not trusted:
    /// the pieces are checked against it and the plaintext against its sealed hash.
    pub async fn manifest(
        &self,
        token_id: u64,
        file_id: u64,
    ) -> Result<px_core::network::Manifest> {
        let m: px_core::network::Manifest = read_json(
            self.call(
                Method::GET,
                &format!("/v1/tokens/{token_id}/files/{file_id}/manifest"),
                |r| r,
            )
            .await?,
        )
        .await?;
        m.validate()
            .map_err(|e| Error::NodeMismatch(format!("the node's manifest: {e}")))?;
        if m.token_id != token_id {
            return Err(Error::NodeMismatch(format!(
                "asked for a manifest of token {token_id}, the node sent one of token {}",
                m.token_id
            )));
        }
        Ok(m)
    }

    /// The token's deals, escrow and the health of its network files
    /// (`GET /v1/tokens/{id}/network`).
    pub async fn token_network(&self, token_id: u64) -> Result<api::TokenNetwork> {
        read_json(
            self.call(
                Method::GET,
                &format!("/v1/tokens/{token_id}/network"),
                |r| r,
            )
            .await?,
        )
        .await
    }

    /// One page of a token's files: ids above `after`, at most `limit` (≤ [`api::MAX_PAGE`]).
    pub async fn list_page(
        &self,
        token_id: u64,
        after: Option<u64>,
        limit: u32,
    ) -> Result<FileListPage> {
        let mut query = vec![("limit", limit.min(api::MAX_PAGE).to_string())];
        if let Some(a) = after {
            query.push(("after", a.to_string()));
        }
        read_json(
            self.call(Method::GET, &format!("/v1/tokens/{token_id}/files"), |r| {
                r.query(&query)
            })
            .await?,
        )
        .await
    }

    /// All of a token's files, names decrypted.
    ///
    /// # Errors
    /// [`Error::WrongKey`] when a name is encrypted under another owner key.
    pub async fn list(&self, token_id: u64) -> Result<Vec<ListedFile>> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self.list_page(token_id, after, api::MAX_PAGE).await?;
            for entry in page.files {
                out.push(self.listed(entry).await?);
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
    }

    async fn listed(&self, entry: FileEntry) -> Result<ListedFile> {
        let opened = if crypto::is_encrypted_name(&entry.name) {
            crypto::open_name(self.owner_key().await?, &entry.name)?
        } else {
            None
        };
        Ok(match opened {
            Some(o) => ListedFile {
                name: o.name,
                encrypted: true,
                file_id: o.file_id.map(alloy::hex::encode),
                entry,
            },
            None => ListedFile {
                name: entry.name.clone(),
                encrypted: false,
                file_id: None,
                entry,
            },
        })
    }

    /// The files of `token_id` stored under `cid`.
    pub async fn find(&self, token_id: u64, cid: &str) -> Result<Vec<ListedFile>> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self.list_page(token_id, after, api::MAX_PAGE).await?;
            for entry in page.files {
                if entry.cid == cid {
                    out.push(self.listed(entry).await?);
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// Deletes every file of `token_id` stored under `cid`; answers the last usage.
    ///
    /// # Errors
    /// [`Error::FileNotFound`] when none is.
    #[tracing::instrument(target = "sdk::node", skip(self))]
    pub async fn delete(&self, token_id: u64, cid: &str) -> Result<api::DeleteResult> {
        let files = self.find(token_id, cid).await?;
        let mut last = None;
        for f in files {
            let path = format!("/v1/tokens/{token_id}/files/{}", f.entry.id);
            last = Some(read_json(self.call(Method::DELETE, &path, |r| r).await?).await?);
        }
        last.ok_or_else(|| Error::FileNotFound {
            token_id,
            cid: cid.to_owned(),
        })
    }

    /// Uploads a local file (read twice: once to hash, once to send).
    pub async fn upload_file(
        &self,
        token_id: u64,
        path: impl AsRef<Path>,
        name: &str,
        mut opts: UploadOptions,
    ) -> Result<UploadResult> {
        let path = path.as_ref();
        let mut file = tokio::fs::File::open(path).await?;
        if opts.sha256.is_none() || opts.size.is_none() {
            let (size, sha) = hash_reader(&mut file).await?;
            opts.size = Some(size);
            opts.sha256 = Some(sha);
            file.rewind().await?;
        }
        self.upload(token_id, file, name, opts).await
    }

    /// Uploads what `reader` yields as file `name` of token `token_id`.
    ///
    /// Unless `opts.size` and `opts.sha256` are both given, the input is first copied to a
    /// temporary file (hashing it on the way), since the node needs the length before the body
    /// and the encrypted header carries the plaintext hash.
    ///
    /// # Errors
    /// [`Error::GateClosed`] with the next step when the gate is closed;
    /// [`Error::NodeMismatch`] when the node stored other bytes than were sent.
    pub async fn upload<R>(
        &self,
        token_id: u64,
        reader: R,
        name: &str,
        opts: UploadOptions,
    ) -> Result<UploadResult>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        match (opts.size, opts.sha256.as_deref().map(parse_sha256)) {
            (Some(size), Some(sha256)) => {
                let sha256 = sha256?;
                self.upload_source(
                    token_id,
                    Source {
                        reader,
                        size,
                        sha256,
                        _spool: None,
                    },
                    name,
                    opts,
                )
                .await
            }
            _ => {
                let source = spool(reader).await?;
                self.upload_source(token_id, source, name, opts).await
            }
        }
    }

    #[tracing::instrument(target = "sdk::node", skip(self, source, opts), fields(size = source.size, encrypt = opts.encrypt))]
    async fn upload_source<R>(
        &self,
        token_id: u64,
        source: Source<R>,
        name: &str,
        opts: UploadOptions,
    ) -> Result<UploadResult>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let body_len = opts.prepare.body_len(source.size, opts.encrypt);
        if opts.check_gate {
            self.ensure_can_upload(token_id, body_len, opts.auto_sync)
                .await?;
        }
        let owner = if opts.encrypt {
            Some(self.owner_key().await?.clone())
        } else {
            None
        };
        let preparer = Preparer::new(owner.as_ref().map(|k| (k, source.sha256)), opts.prepare)?;
        // The encrypted name is bound to the file's id, so the node cannot swap names.
        let wire_name = match (&owner, preparer.file_id()) {
            (Some(k), Some(file_id)) => crypto::encrypt_name(k, &file_id, name)?,
            _ => name.to_owned(),
        };
        let result: Arc<Mutex<Option<Result<Prepared>>>> = Arc::default();
        // The body's state stays here until the HTTP client first polls the body: a 429
        // answered before that can be retried with the same state; after it, the input is
        // partly consumed and a 429 is reported ([`Error::RateLimited`]).
        let unsent = Arc::new(Mutex::new(Some(BodyState {
            reader: source.reader,
            preparer: Some(preparer),
            buf: vec![0u8; READ_STEP],
            out: VecDeque::new(),
            read: 0,
            size: source.size,
            progress: opts.progress.clone(),
            result: result.clone(),
        })));
        let path = format!("/v1/tokens/{token_id}/files");
        let mut retries = 0;
        let resp = loop {
            // No `sha256` parameter: the plaintext's hash stays inside the encrypted header.
            let resp = self
                .authed(Method::POST, &path)
                .await?
                .query(&[("name", wire_name.as_str())])
                .header(reqwest::header::CONTENT_LENGTH, body_len)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(reqwest::Body::wrap_stream(body_stream(unsent.clone())))
                .send()
                .await;
            if let Ok(r) = &resp
                && unsent.lock().expect("not poisoned").is_some()
                && let Some(wait) = rate_limited(r, retries)
            {
                tracing::debug!(target: "sdk::node", ?wait, "upload rate-limited before its body was read; waiting");
                retries += 1;
                tokio::time::sleep(wait).await;
                continue;
            }
            break resp;
        };
        let prepared = result.lock().expect("not poisoned").take();
        // A failure of the local pipeline explains a failed request best.
        if let Some(Err(e)) = prepared {
            return Err(e);
        }
        let resp = match resp {
            Ok(r) => r,
            // The node refuses an upload (gate, quota, ...) before it reads the body, and then
            // closes the connection: a client still sending may see only the broken connection.
            // Ask again with the body held back to hear the node's reason.
            Err(e) if e.is_connect() => return Err(Error::Http(e)),
            Err(e) => match self.refusal_probe(&path, &wire_name, body_len).await {
                Some(r) => r,
                None => return Err(Error::UploadInterrupted(e)),
            },
        };
        let uploaded: api::UploadResult = match read_json(resp).await {
            Ok(u) => u,
            Err(e) => return Err(self.node_error(Some(token_id), body_len, e).await),
        };
        let prepared = match prepared {
            Some(Ok(p)) => p,
            _ => {
                return Err(Error::NodeMismatch(
                    "the node answered before the whole body was sent".into(),
                ));
            }
        };
        if uploaded.file.cid != prepared.cid || uploaded.file.size != prepared.body_len {
            return Err(Error::NodeMismatch(format!(
                "sent {} bytes with CID {}, the node stored {} bytes as {}",
                prepared.body_len, prepared.cid, uploaded.file.size, uploaded.file.cid
            )));
        }
        Ok(UploadResult {
            file: uploaded.file,
            name: name.to_owned(),
            usage: uploaded.usage,
            encrypted: prepared.encrypted,
            plain_size: prepared.plain_len,
        })
    }

    /// After an upload's connection broke while the body was being sent: sends the same
    /// request head with a body that never comes, and answers the node's refusal if it refuses
    /// at once (it gates uploads before reading the body). `None` when the node would accept
    /// (it then waits for the body; dropping the request ends its reservation) or does not
    /// answer within [`PROBE_WAIT`].
    async fn refusal_probe(&self, path: &str, wire_name: &str, body_len: u64) -> Option<Response> {
        let req = self
            .authed(Method::POST, path)
            .await
            .ok()?
            .query(&[("name", wire_name)])
            .header(reqwest::header::CONTENT_LENGTH, body_len)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::Body::wrap_stream(futures::stream::pending::<
                std::io::Result<Bytes>,
            >()));
        match tokio::time::timeout(PROBE_WAIT, req.send()).await {
            Ok(Ok(resp)) if !resp.status().is_success() => Some(resp),
            _ => None,
        }
    }

    /// Downloads `cid` of token `token_id` into `writer` with the default options.
    pub async fn download<W>(
        &self,
        token_id: u64,
        cid: &str,
        writer: &mut W,
    ) -> Result<DownloadResult>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        self.download_with(token_id, cid, writer, DownloadOptions::default())
            .await
    }

    /// Downloads `cid` of token `token_id` into `writer`.
    ///
    /// With `verify`, the file entry is looked up first: an encrypted name must be bound to
    /// the content's file id (checked on the header, before any plaintext is written). With
    /// `decrypt`, content that is not encrypted is refused unless `allow_plain` (and then only
    /// under a plain name), and version 2 content's plaintext is checked against the SHA-256
    /// its uploader sealed in the header.
    ///
    /// On error, `writer` may hold a prefix of authenticated plaintext; write to a temporary
    /// file and rename it on success (as `px download` does).
    ///
    /// # Errors
    /// [`Error::WrongKey`](crate::crypto::CryptoError::WrongKey),
    /// [`Error::Crypto`] (corrupt, swapped name), [`Error::Unencrypted`],
    /// [`Error::HashMismatch`] (version 1 content), [`Error::NodeMismatch`] (content does not
    /// hash to `cid`).
    #[tracing::instrument(target = "sdk::node", skip(self, writer, opts))]
    pub async fn download_with<W>(
        &self,
        token_id: u64,
        cid: &str,
        writer: &mut W,
        opts: DownloadOptions,
    ) -> Result<DownloadResult>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let file = if opts.verify {
            let files = self.find(token_id, cid).await?;
            if files.is_empty() {
                return Err(Error::FileNotFound {
                    token_id,
                    cid: cid.to_owned(),
                });
            }
            files.into_iter().next()
        } else {
            None
        };
        let path = format!("/v1/tokens/{token_id}/content/{cid}");
        let resp = self.call(Method::GET, &path, |r| r).await?;
        let resp = check(resp).await?;
        // The node streams without a length; the entry says how many bytes are stored.
        let total = resp
            .content_length()
            .or(file.as_ref().map(|f| f.entry.size));
        let parsed: Option<cid::Cid> = cid.parse().ok();
        let mut importer = match parsed.map(|c| c.version()) {
            Some(cid::Version::V0) => Some(ImportOptions::default()),
            Some(cid::Version::V1) => Some(ImportOptions::v1()),
            None => None,
        }
        .map(|o| Importer::new(&o))
        .transpose()
        .map_err(|e| Error::Config(format!("UnixFS import: {e}")))?;

        let owner = if opts.decrypt {
            Some(self.owner_key().await?.clone())
        } else {
            None
        };
        let unencrypted = |detail: &str| Error::Unencrypted {
            token_id,
            cid: cid.to_owned(),
            detail: detail.to_owned(),
        };
        let mut stream = resp.bytes_stream();
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let mut received = 0u64;
        let mut decryptor: Option<Decryptor> = None;
        let mut head: Vec<u8> = Vec::new();
        let mut decided = false;
        let mut was_encrypted = false;
        let mut opened = None;
        let mut plain_out: Vec<u8> = Vec::new();
        loop {
            let chunk = stream.next().await.transpose()?;
            let at_end = chunk.is_none();
            let chunk = chunk.unwrap_or_default();
            received += chunk.len() as u64;
            if let Some(imp) = importer.as_mut() {
                imp.push(&chunk, |_| Ok::<_, ImportError>(()))
                    .map_err(|e| Error::Config(format!("UnixFS import: {e}")))?;
            }
            let data: Vec<u8> = if decided {
                chunk.to_vec()
            } else {
                head.extend_from_slice(&chunk);
                if head.len() < crypto::MAGIC.len() && !at_end {
                    continue;
                }
                decided = true;
                was_encrypted = crypto::is_encrypted(&head);
                if let Some(owner) = owner.as_ref() {
                    let name_encrypted = file.as_ref().map(|f| f.encrypted);
                    match (was_encrypted, name_encrypted) {
                        (true, Some(false)) => {
                            return Err(unencrypted(
                                "the content is encrypted but the node lists it under a plain \
                                 name, which an encrypting client never writes",
                            ));
                        }
                        (false, Some(true)) => {
                            return Err(unencrypted(
                                "the file entry's name is encrypted but the content is not",
                            ));
                        }
                        (false, _) if !opts.allow_plain => {
                            return Err(unencrypted(
                                "the content is not encrypted; if you uploaded it unencrypted \
                                 (--no-encrypt), download it with --plain",
                            ));
                        }
                        (false, _) => {}
                        (true, _) => {
                            decryptor = Some(match &file {
                                Some(f) => Decryptor::bound_to(owner, parse_file_id(f)?),
                                None => Decryptor::new(owner),
                            });
                        }
                    }
                }
                std::mem::take(&mut head)
            };
            plain_out.clear();
            match decryptor.as_mut() {
                Some(dec) => dec.push(&data, |p| {
                    plain_out.extend_from_slice(p);
                    Ok(())
                })?,
                None => plain_out.extend_from_slice(&data),
            }
            if at_end && let Some(dec) = decryptor.take() {
                opened = Some(dec.finish(|p| {
                    plain_out.extend_from_slice(p);
                    Ok(())
                })?);
            }
            hasher.update(&plain_out);
            writer.write_all(&plain_out).await?;
            written += plain_out.len() as u64;
            if let Some(p) = &opts.progress {
                p(received, total.unwrap_or(received));
            }
            if at_end {
                break;
            }
        }
        writer.flush().await?;
        if let (Some(imp), Some(want)) = (importer, parsed) {
            let got = imp
                .finish(|_| Ok::<_, ImportError>(()))
                .map_err(|e| Error::Config(format!("UnixFS import: {e}")))?
                .cid;
            if got != want {
                return Err(Error::NodeMismatch(format!(
                    "asked for {want}, the node sent content with CID {got}"
                )));
            }
        }
        let sha256 = hex_sha256(hasher);
        // Version 2: `finish` checked the plaintext against the uploader's sealed hash. Version
        // 1 content had its hash in the file entry (the node's copy of what the client sent).
        if let Some(o) = opened
            && o.version == crypto::VERSION_1
            && let Some(expected) = file.as_ref().and_then(|f| f.entry.sha256.as_ref())
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            return Err(Error::HashMismatch {
                expected: expected.clone(),
                actual: sha256,
            });
        }
        Ok(DownloadResult {
            written,
            encrypted: was_encrypted,
            sha256,
            file,
        })
    }
}

/// How long [`Client::login`] keeps trying when the node rate-limits sign-ins.
pub const LOGIN_RETRY_BUDGET: std::time::Duration = std::time::Duration::from_secs(90);

/// For a 429 answer: its `Retry-After` (default 1 s) plus up to 0.5 s of jitter, so that
/// clients refused together do not all come back at once; `None` for any other answer or when
/// the wait would end after `deadline`.
fn retry_after(resp: &Response, deadline: tokio::time::Instant) -> Option<std::time::Duration> {
    if resp.status() != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let secs = retry_after_header(resp).as_secs().min(60);
    let jitter = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 500)
        .unwrap_or_default();
    let wait =
        std::time::Duration::from_secs(secs) + std::time::Duration::from_millis(jitter.into());
    (tokio::time::Instant::now() + wait <= deadline).then_some(wait)
}

/// Most times a node call is sent again after a 429 answer.
pub const RATE_LIMIT_RETRIES: u32 = 3;
/// Longest `Retry-After` a node call waits for; the node asking for more is reported at
/// once ([`Error::RateLimited`]).
pub const RATE_LIMIT_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The `Retry-After` of an answer, in whole seconds (1 when absent or not a number of
/// seconds).
fn retry_after_header(resp: &Response) -> std::time::Duration {
    let secs = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1);
    std::time::Duration::from_secs(secs)
}

/// For a 429 answer to a node call that was sent `retries` times again already: how long to
/// wait before sending it again (its `Retry-After` plus up to 0.5 s of jitter); `None` for
/// any other answer, after [`RATE_LIMIT_RETRIES`], or when the node asks for more than
/// [`RATE_LIMIT_MAX_WAIT`] (the answer then becomes [`Error::RateLimited`]).
fn rate_limited(resp: &Response, retries: u32) -> Option<std::time::Duration> {
    if resp.status() != StatusCode::TOO_MANY_REQUESTS || retries >= RATE_LIMIT_RETRIES {
        return None;
    }
    let wait = retry_after_header(resp);
    if wait > RATE_LIMIT_MAX_WAIT {
        return None;
    }
    let jitter = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 500)
        .unwrap_or_default();
    Some(wait + std::time::Duration::from_millis(jitter.into()))
}

/// How long [`Client::refusal_probe`] waits for the node's refusal.
const PROBE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The file id a listed entry's encrypted name is bound to (`None` for a version 1 name).
fn parse_file_id(f: &ListedFile) -> Result<Option<crypto::FileId>> {
    f.file_id
        .as_deref()
        .map(|h| {
            let mut id = [0u8; crypto::FILE_ID_LEN];
            alloy::hex::decode_to_slice(h, &mut id)
                .map(|()| id)
                .map_err(|_| Error::NodeMismatch(format!("bad file id {h}")))
        })
        .transpose()
}

/// The 32 bytes of a hex SHA-256.
fn parse_sha256(hex: &str) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    alloy::hex::decode_to_slice(hex.trim_start_matches("0x"), &mut out)
        .map_err(|_| Error::Config(format!("sha256 must be 64 hex digits, not {hex:?}")))?;
    Ok(out)
}

/// Length and hex SHA-256 of everything `reader` yields.
async fn hash_reader<R: AsyncRead + Unpin>(reader: &mut R) -> Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; READ_STEP];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex_sha256(hasher)))
}

/// Copies `reader` to a temporary file, hashing it; answers the file positioned at its start.
async fn spool<R: AsyncRead + Unpin>(mut reader: R) -> Result<Source<tokio::fs::File>> {
    let path = tempfile::NamedTempFile::new()?.into_temp_path();
    let mut file = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; READ_STEP];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).await?;
        size += n as u64;
    }
    file.flush().await?;
    file.rewind().await?;
    Ok(Source {
        reader: file,
        size,
        sha256: hasher.finalize().into(),
        _spool: Some(path),
    })
}

struct BodyState<R> {
    reader: R,
    preparer: Option<Preparer>,
    buf: Vec<u8>,
    out: VecDeque<Bytes>,
    read: u64,
    size: u64,
    progress: Option<Progress>,
    result: Arc<Mutex<Option<Result<Prepared>>>>,
}

impl<R> BodyState<R> {
    fn fail(&mut self, e: Error) -> std::io::Error {
        let io = std::io::Error::other(e.to_string());
        *self.result.lock().expect("not poisoned") = Some(Err(e));
        self.preparer = None;
        io
    }
}

/// The upload body: reads plaintext, runs the pipeline, yields body chunks. The state is
/// taken out of `unsent` when the body is first polled (empty when it was taken before).
fn body_stream<R>(
    unsent: Arc<Mutex<Option<BodyState<R>>>>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static
where
    R: AsyncRead + Unpin + Send + 'static,
{
    futures::stream::unfold(None, move |st: Option<BodyState<R>>| {
        let unsent = unsent.clone();
        async move {
            let st = match st {
                Some(st) => st,
                None => unsent.lock().expect("not poisoned").take()?,
            };
            body_step(st).await.map(|(item, st)| (item, Some(st)))
        }
    })
}

/// The next chunk of an upload body.
async fn body_step<R>(mut st: BodyState<R>) -> Option<(std::io::Result<Bytes>, BodyState<R>)>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    loop {
        if let Some(chunk) = st.out.pop_front() {
            return Some((Ok(chunk), st));
        }
        let prep = st.preparer.as_mut()?;
        let n = match st.reader.read(&mut st.buf).await {
            Ok(n) => n,
            Err(e) => {
                let e = st.fail(Error::Io(e));
                return Some((Err(e), st));
            }
        };
        let mut out = std::mem::take(&mut st.out);
        let mut sink = |b: &[u8]| {
            out.push_back(Bytes::copy_from_slice(b));
            Ok(())
        };
        if n == 0 {
            if st.read != st.size {
                let e = st.fail(Error::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the input ended after {} of {} bytes", st.read, st.size),
                )));
                return Some((Err(e), st));
            }
            let prep = st.preparer.take().expect("checked above");
            let done = prep.finish(&mut sink);
            st.out = out;
            match done {
                Ok(p) => *st.result.lock().expect("not poisoned") = Some(Ok(p)),
                Err(e) => {
                    let e = st.fail(e);
                    return Some((Err(e), st));
                }
            }
            continue;
        }
        st.read += n as u64;
        if st.read > st.size {
            let e = st.fail(Error::Io(std::io::Error::other(format!(
                "the input is longer than the {} bytes announced",
                st.size
            ))));
            return Some((Err(e), st));
        }
        let mut pushed = prep.push(&st.buf[..n], &mut sink);
        // The whole announced input is in: finish now, since the HTTP client stops
        // polling the body once `Content-Length` bytes went out.
        if pushed.is_ok() && st.read == st.size {
            let prep = st.preparer.take().expect("present");
            match prep.finish(&mut sink) {
                Ok(p) => *st.result.lock().expect("not poisoned") = Some(Ok(p)),
                Err(e) => pushed = Err(e),
            }
        }
        st.out = out;
        if let Err(e) = pushed {
            let e = st.fail(e);
            return Some((Err(e), st));
        }
        if let Some(p) = &st.progress {
            p(st.read, st.size);
        }
    }
}

/// Most of an error answer's body kept in [`Error::Node`].
const MAX_ERROR_BODY: usize = 4096;

/// Turns a non-2xx answer into [`Error::Node`].
async fn check(resp: Response) -> Result<Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let retry_after = retry_after_header(&resp);
    let mut text = resp.text().await.unwrap_or_default();
    if text.len() > MAX_ERROR_BODY {
        let mut end = MAX_ERROR_BODY;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    let parsed = serde_json::from_str::<ErrorBody>(&text);
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(Error::RateLimited {
            retry_after,
            message: match parsed {
                Ok(p) => p.message,
                Err(_) => "too many requests".into(),
            },
        });
    }
    Err(match parsed {
        Ok(parsed) => Error::Node {
            status: status.as_u16(),
            code: Some(parsed.error),
            message: parsed.message,
            body: text,
        },
        Err(_) => Error::Node {
            status: status.as_u16(),
            code: None,
            message: format!(
                "HTTP {status}: {}",
                text.chars().take(200).collect::<String>()
            ),
            body: text,
        },
    })
}

async fn read_json<T: DeserializeOwned>(resp: Response) -> Result<T> {
    let resp = check(resp).await?;
    let bytes = resp.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::NodeMismatch(format!("the node's answer is not the expected JSON: {e}"))
    })
}
