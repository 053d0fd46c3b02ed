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
//! locally. Downloads stream too: the content's CID is recomputed, encrypted content is
//! decrypted segment by segment (nothing unauthenticated is written) and the plaintext's
//! SHA-256 is compared with the file entry's.

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
    /// Hex SHA-256 of the plaintext, when known (else computed).
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
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Decrypt encrypted content (default true); false writes the stored bytes as they are.
    pub decrypt: bool,
    /// Look up the file entry and check the plaintext's SHA-256 against it (default true).
    pub verify: bool,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        Self {
            decrypt: true,
            verify: true,
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
    /// The plain name.
    pub name: String,
    /// Whether the name (and content) is encrypted.
    pub encrypted: bool,
    /// The node's entry.
    pub entry: FileEntry,
}

fn unix_now() -> u64 {
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
    sha256: String,
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
    #[tracing::instrument(target = "sdk::node", skip(self), fields(account = %self.address()))]
    pub async fn login(&self) -> Result<api::Session> {
        let base = self.node_url()?;
        let http = &self.inner.http;
        let nonce: api::NonceResponse =
            read_json(http.get(format!("{base}/v1/auth/nonce")).send().await?).await?;
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
        let session: api::Session = read_json(
            http.post(format!("{base}/v1/auth/login"))
                .json(&req)
                .send()
                .await?,
        )
        .await?;
        if session.address != self.address() {
            return Err(Error::NodeMismatch(format!(
                "signed in as {}, but the node issued a session for {}",
                self.address(),
                session.address
            )));
        }
        *self.inner.session.lock().await = Some((session.clone(), now));
        Ok(session)
    }

    /// Revokes the current session on the node and forgets it; the next call signs in again.
    /// Does nothing when there is no session.
    pub async fn logout(&self) -> Result<()> {
        let Some((session, _)) = self.inner.session.lock().await.take() else {
            return Ok(());
        };
        let url = format!("{}/v1/auth/logout", self.node_url()?);
        let resp = self
            .inner
            .http
            .post(url)
            .bearer_auth(&session.token)
            .send()
            .await?;
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

    /// Sends a request without a streaming body; signs in again once on 401.
    async fn call(
        &self,
        method: Method,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
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
        let encrypted = crypto::is_encrypted_name(&entry.name);
        let name = if encrypted {
            crypto::decrypt_name(self.owner_key().await?, &entry.name)?
        } else {
            entry.name.clone()
        };
        Ok(ListedFile {
            name,
            encrypted,
            entry,
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
    /// temporary file (hashing it on the way), since the node needs the length and the
    /// plaintext hash before the body.
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
        match (opts.size, opts.sha256.clone()) {
            (Some(size), Some(sha256)) => {
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
        let wire_name = match &owner {
            Some(k) => crypto::encrypt_name(k, name)?,
            None => name.to_owned(),
        };
        let preparer = Preparer::new(owner.as_ref(), opts.prepare)?;
        let result: Arc<Mutex<Option<Result<Prepared>>>> = Arc::default();
        let body = body_stream(
            source.reader,
            source.size,
            preparer,
            opts.progress.clone(),
            result.clone(),
        );
        let path = format!("/v1/tokens/{token_id}/files");
        let resp = self
            .authed(Method::POST, &path)
            .await?
            .query(&[
                ("name", wire_name.as_str()),
                ("sha256", source.sha256.as_str()),
            ])
            .header(reqwest::header::CONTENT_LENGTH, body_len)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await;
        let prepared = result.lock().expect("not poisoned").take();
        // A failure of the local pipeline explains a failed request best.
        if let Some(Err(e)) = prepared {
            return Err(e);
        }
        let uploaded: api::UploadResult = match read_json(resp?).await {
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
    /// On error, `writer` may hold a prefix of authenticated plaintext; write to a temporary
    /// file and rename it on success (as `px download` does).
    ///
    /// # Errors
    /// [`Error::WrongKey`], [`Error::Corrupt`], [`Error::HashMismatch`],
    /// [`Error::NodeMismatch`] (content does not hash to `cid`).
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
        let parsed: Option<cid::Cid> = cid.parse().ok();
        let mut importer = match parsed.map(|c| c.version()) {
            Some(cid::Version::V0) => Some(ImportOptions::default()),
            Some(cid::Version::V1) => Some(ImportOptions::v1()),
            None => None,
        }
        .map(|o| Importer::new(&o))
        .transpose()
        .map_err(|e| Error::Config(format!("UnixFS import: {e}")))?;

        let mut stream = resp.bytes_stream();
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let mut decryptor: Option<Decryptor> = None;
        let mut head: Vec<u8> = Vec::new();
        let mut decided = false;
        let mut was_encrypted = false;
        let owner = if opts.decrypt {
            Some(self.owner_key().await?.clone())
        } else {
            None
        };
        let mut plain_out: Vec<u8> = Vec::new();
        loop {
            let chunk = stream.next().await.transpose()?;
            let at_end = chunk.is_none();
            let chunk = chunk.unwrap_or_default();
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
                if let (true, Some(owner)) = (was_encrypted, owner.as_ref()) {
                    decryptor = Some(Decryptor::new(owner));
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
                dec.finish(|p| {
                    plain_out.extend_from_slice(p);
                    Ok(())
                })?;
            }
            hasher.update(&plain_out);
            writer.write_all(&plain_out).await?;
            written += plain_out.len() as u64;
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
        let encrypted = was_encrypted;
        if let Some(f) = &file
            && opts.decrypt
            && let Some(expected) = &f.entry.sha256
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            return Err(Error::HashMismatch {
                expected: expected.clone(),
                actual: sha256,
            });
        }
        Ok(DownloadResult {
            written,
            encrypted,
            sha256,
            file,
        })
    }
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
        sha256: hex_sha256(hasher),
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

/// The upload body: reads plaintext, runs the pipeline, yields body chunks.
fn body_stream<R>(
    reader: R,
    size: u64,
    preparer: Preparer,
    progress: Option<Progress>,
    result: Arc<Mutex<Option<Result<Prepared>>>>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let state = BodyState {
        reader,
        preparer: Some(preparer),
        buf: vec![0u8; READ_STEP],
        out: VecDeque::new(),
        read: 0,
        size,
        progress,
        result,
    };
    futures::stream::unfold(state, |mut st| async move {
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
    })
}

/// Most of an error answer's body kept in [`Error::Node`].
const MAX_ERROR_BODY: usize = 4096;

/// Turns a non-2xx answer into [`Error::Node`].
async fn check(resp: Response) -> Result<Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let mut text = resp.text().await.unwrap_or_default();
    if text.len() > MAX_ERROR_BODY {
        let mut end = MAX_ERROR_BODY;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    Err(match serde_json::from_str::<ErrorBody>(&text) {
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
