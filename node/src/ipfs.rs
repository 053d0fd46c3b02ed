//! The IPFS backend, always spoken to through the Kubo RPC API (`ipfs-api-backend-hyper`):
//! the embedded `px-store` or a configured Kubo/BTFS daemon alike.

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use ipfs_api_backend_hyper::request::{Add, KeyType};
use ipfs_api_backend_hyper::{IpfsApi, IpfsClient, TryFromUri};
use tokio::io::AsyncRead;
use tokio_util::compat::TokioAsyncReadCompatExt;

use crate::error::{Error, Result};

/// A Kubo RPC client.
#[derive(Clone)]
pub struct Ipfs {
    client: IpfsClient,
    /// Base URL of the RPC API (`.../api/v0`), for the streaming `add` (see [`Ipfs::add_stream`]).
    base: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for Ipfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ipfs").finish_non_exhaustive()
    }
}

/// Size the backend receives request chunks in: the server hands the node whatever the socket
/// read produced (often a few KiB); regrouping saves the backend per-chunk work.
const FORWARD_CHUNK: usize = 256 * 1024;

/// Regroups a byte stream into chunks of at least [`FORWARD_CHUNK`] bytes (the last may be
/// shorter).
struct Coalesce<S> {
    inner: std::pin::Pin<Box<S>>,
    buf: bytes::BytesMut,
    done: bool,
}

impl<S, E> Stream for Coalesce<S>
where
    S: Stream<Item = std::result::Result<Bytes, E>>,
{
    type Item = std::result::Result<Bytes, E>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        while !this.done && this.buf.len() < FORWARD_CHUNK {
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    if this.buf.is_empty() && chunk.len() >= FORWARD_CHUNK {
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                    this.buf.extend_from_slice(&chunk);
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => this.done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        if this.buf.is_empty() {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(this.buf.split().freeze())))
    }
}

/// A created IPNS key.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Key name in the backend.
    pub name: String,
    /// Base36 IPNS name.
    pub id: String,
    /// ed25519 public key.
    pub pubkey: [u8; 32],
}

/// The ed25519 public key inside a base36/base58 IPNS name (libp2p-key CID or peer id).
pub fn pubkey_of_ipns_id(id: &str) -> Result<[u8; 32]> {
    let cid =
        cid::Cid::try_from(id).map_err(|e| Error::Ipfs(format!("bad IPNS name {id}: {e}")))?;
    let mh = cid.hash();
    // identity multihash of the protobuf PublicKey { Type: Ed25519, Data: 32 bytes }
    let d = mh.digest();
    if mh.code() != 0 || d.len() != 36 || d[..4] != [0x08, 0x01, 0x12, 0x20] {
        return Err(Error::Ipfs(format!("IPNS name {id} is not an ed25519 key")));
    }
    Ok(d[4..].try_into().expect("32 bytes"))
}

impl Ipfs {
    /// A client for the RPC API at `url` (`/api/v0` appended unless the URL has a path).
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
            base,
            http: reqwest::Client::new(),
        })
    }

    /// Streams `len` bytes into the backend's `add` (unpinned, CIDv0) and answers the CID.
    ///
    /// This one call bypasses `ipfs-api-backend-hyper`: its multipart encoder reads the body
    /// in 2 KiB pieces, which halves upload throughput (measured by the `node` benchmark).
    /// Here the request chunks are handed to the backend as they arrive, without copying.
    pub async fn add_stream<S, E>(&self, body: S, len: u64) -> Result<String>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        let body = Coalesce {
            inner: Box::pin(body),
            buf: bytes::BytesMut::new(),
            done: false,
        };
        let part =
            reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(body), len)
                .file_name("file")
                .mime_str("application/octet-stream")
                .map_err(|e| Error::Internal(e.to_string()))?;
        let form = reqwest::multipart::Form::new().part("file", part);
        let r = self
            .http
            .post(format!(
                "{}/add?pin=false&cid-version=0&progress=false",
                self.base
            ))
            .multipart(form)
            .send()
            .await
            .map_err(|e| Error::Ipfs(format!("add: {e}")))?;
        let status = r.status();
        let text = r
            .text()
            .await
            .map_err(|e| Error::Ipfs(format!("add: {e}")))?;
        #[derive(serde::Deserialize)]
        struct Line {
            #[serde(rename = "Hash")]
            hash: Option<String>,
            #[serde(rename = "Message")]
            message: Option<String>,
        }
        let last = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let line: Line = serde_json::from_str(last).map_err(|_| {
            Error::Ipfs(format!(
                "add answered {status}: {}",
                text.chars().take(200).collect::<String>()
            ))
        })?;
        match (status.is_success(), line.hash, line.message) {
            (true, Some(hash), None) => Ok(hash),
            (_, _, Some(m)) => Err(Error::Ipfs(format!("add: {m}"))),
            _ => Err(Error::Ipfs(format!("add answered {status}"))),
        }
    }

    /// Adds a byte stream without pinning it; answers its CID.
    pub async fn add_unpinned<R>(&self, data: R) -> Result<String>
    where
        R: AsyncRead + Send + Sync + Unpin + 'static,
    {
        let opts = Add {
            pin: Some(false),
            cid_version: Some(0),
            ..Add::default()
        };
        let r = self
            .client
            .add_async_with_options(data.compat(), opts)
            .await?;
        Ok(r.hash)
    }

    /// Adds a small object and pins it, checking that the backend computed `cid` (so the
    /// caller can journal the CID before the pin exists).
    pub async fn add_pinned(&self, cid: &str, data: Vec<u8>) -> Result<()> {
        let opts = Add {
            pin: Some(true),
            cid_version: Some(0),
            ..Add::default()
        };
        let r = self
            .client
            .add_async_with_options(std::io::Cursor::new(data).compat(), opts)
            .await?;
        if r.hash != cid {
            let _ = self.unpin(&r.hash).await;
            return Err(Error::Ipfs(format!(
                "backend stored {} as {}, expected {cid}",
                r.hash, cid
            )));
        }
        Ok(())
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

    /// All recursively pinned CIDs.
    pub async fn pins(&self) -> Result<Vec<String>> {
        let r = self.client.pin_ls(None, Some("recursive")).await?;
        Ok(r.keys.into_keys().collect())
    }

    /// Streams the bytes of `cid`.
    pub fn cat(&self, cid: &str) -> impl Stream<Item = Result<Bytes>> + Send + use<> {
        self.client
            .cat(&format!("/ipfs/{cid}"))
            .map_err(Error::from)
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
    pub async fn key_gen(&self, name: &str) -> Result<NewKey> {
        let r = self.client.key_gen(name, KeyType::Ed25519, 0).await?;
        let pubkey = pubkey_of_ipns_id(&r.id)?;
        Ok(NewKey {
            name: r.name,
            id: r.id,
            pubkey,
        })
    }

    /// Publishes `/ipfs/<cid>` under the key `key`, valid for `lifetime`.
    pub async fn publish(&self, key: &str, cid: &str, lifetime: Duration) -> Result<()> {
        let lifetime = format!("{}s", lifetime.as_secs());
        self.client
            .name_publish(
                &format!("/ipfs/{cid}"),
                true,
                Some(&lifetime),
                None,
                Some(key),
            )
            .await?;
        Ok(())
    }

    /// Resolves an IPNS name to its path.
    pub async fn resolve(&self, ipns_id: &str) -> Result<String> {
        let r = self
            .client
            .name_resolve(Some(&format!("/ipns/{ipns_id}")), false, true)
            .await?;
        Ok(r.path)
    }

    /// Whether the backend answers.
    pub async fn alive(&self) -> bool {
        tokio::time::timeout(Duration::from_secs(2), self.client.version())
            .await
            .is_ok_and(|r| r.is_ok())
    }
}
