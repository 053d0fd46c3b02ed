//! Access to an IPFS daemon's RPC API: the raw IPNS record of a name (`routing/get`) and the
//! bytes of a CID (`cat`), each bounded in size.
//!
//! [`Ipfs`] is the small seam the resolver depends on; [`KuboRpc`] implements it over
//! `ipfs-api-backend-hyper` for every daemon that speaks the Kubo RPC API: Kubo itself and the
//! embedded px-store (`/api/v0`) and BTFS (`/api/v1`). Nothing returned by the daemon is
//! trusted: the resolver verifies records and content itself.

use std::fmt;
use std::time::Duration;

use cid::Cid;
use futures::TryStreamExt;
use futures::future::BoxFuture;
use ipfs_api_backend_hyper::IpfsClient;
use ipfs_api_prelude::{ApiRequest, Backend, TryFromUri};
use px_core::ipns::IpnsName;
use serde::{Deserialize, Serialize};

/// Which kind of daemon the RPC endpoint is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpfsFlavor {
    /// A Kubo daemon (`/api/v0`).
    #[default]
    Kubo,
    /// The embedded px-store (`/api/v0`, Kubo's shapes).
    Embedded,
    /// A BTFS daemon (`/api/v1`). Its BTNS records carry only a V1 signature, which the
    /// resolver accepts only when V1-only records are enabled.
    Btfs,
}

impl IpfsFlavor {
    /// The RPC path prefix the flavor serves.
    pub fn api_prefix(self) -> &'static str {
        match self {
            Self::Kubo | Self::Embedded => "/api/v0",
            Self::Btfs => "/api/v1",
        }
    }
}

impl std::str::FromStr for IpfsFlavor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "kubo" => Ok(Self::Kubo),
            "embedded" | "px-store" => Ok(Self::Embedded),
            "btfs" => Ok(Self::Btfs),
            other => Err(format!(
                "unknown IPFS flavor {other:?} (kubo, embedded, btfs)"
            )),
        }
    }
}

/// Why an IPFS call failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum IpfsError {
    /// The daemon answered that the name or content does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The answer exceeded the size limit.
    #[error("answer exceeds the {limit}-byte limit")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The daemon could not be reached, timed out or failed (worth retrying).
    #[error("IPFS backend unavailable: {0}")]
    Unavailable(String),
}

/// The IPFS operations the oracle needs.
pub trait Ipfs: Send + Sync + fmt::Debug {
    /// The raw signed IPNS record stored for `name`, at most `limit` bytes.
    fn routing_get<'a>(
        &'a self,
        name: &'a IpnsName,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<u8>, IpfsError>>;

    /// The content of the UnixFS file `cid`, at most `limit` bytes.
    fn cat<'a>(&'a self, cid: &'a Cid, limit: usize) -> BoxFuture<'a, Result<Vec<u8>, IpfsError>>;
}

/// `routing/get?arg=/ipns/<name>`: not among the typed requests of ipfs-api 0.6.
#[derive(Serialize)]
struct RoutingGet<'a> {
    arg: &'a str,
}

impl ApiRequest for RoutingGet<'_> {
    const PATH: &'static str = "/routing/get";
}

/// `cat?arg=<cid>&length=<n>`.
#[derive(Serialize)]
struct Cat<'a> {
    arg: &'a str,
    length: usize,
}

impl ApiRequest for Cat<'_> {
    const PATH: &'static str = "/cat";
}

/// A Kubo RPC client (ipfs-api-backend-hyper) with a per-call timeout.
pub struct KuboRpc {
    client: IpfsClient,
    url: String,
    flavor: IpfsFlavor,
    timeout: Duration,
}

impl fmt::Debug for KuboRpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KuboRpc")
            .field("url", &self.url)
            .field("flavor", &self.flavor)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl KuboRpc {
    /// A client for the daemon at `url` (e.g. `http://127.0.0.1:5001`, without the API path).
    pub fn new(url: &str, flavor: IpfsFlavor, timeout: Duration) -> Result<Self, IpfsError> {
        let base = format!("{}{}", url.trim_end_matches('/'), flavor.api_prefix());
        let uri = base
            .parse()
            .map_err(|e| IpfsError::Unavailable(format!("invalid IPFS API URL {url:?}: {e}")))?;
        Ok(Self {
            client: IpfsClient::build_with_base_uri(uri),
            url: url.to_string(),
            flavor,
            timeout,
        })
    }

    async fn fetch<R: ApiRequest>(&self, req: R, limit: usize) -> Result<Vec<u8>, IpfsError> {
        let http = self
            .client
            .build_base_request(req, None)
            .map_err(|e| IpfsError::Unavailable(e.to_string()))?;
        let read = async {
            let mut stream = self.client.request_stream_bytes(http);
            let mut out = Vec::new();
            while let Some(chunk) = stream.try_next().await.map_err(classify)? {
                if out.len() + chunk.len() > limit {
                    return Err(IpfsError::TooLarge { limit });
                }
                out.extend_from_slice(&chunk);
            }
            Ok(out)
        };
        tokio::time::timeout(self.timeout, read)
            .await
            .map_err(|_| IpfsError::Unavailable(format!("timed out after {:?}", self.timeout)))?
    }
}

/// Daemon errors that say "does not exist" (Kubo: `routing: not found`, `could not resolve
/// name`, `block was not found locally`) are verdicts; everything else may pass.
fn classify(e: ipfs_api_backend_hyper::Error) -> IpfsError {
    match e {
        ipfs_api_backend_hyper::Error::Api(api) => {
            let m = api.message.to_ascii_lowercase();
            if m.contains("not found")
                || m.contains("could not find")
                || m.contains("could not resolve")
            {
                IpfsError::NotFound(api.message)
            } else {
                IpfsError::Unavailable(api.message)
            }
        }
        other => IpfsError::Unavailable(other.to_string()),
    }
}

impl Ipfs for KuboRpc {
    fn routing_get<'a>(
        &'a self,
        name: &'a IpnsName,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<u8>, IpfsError>> {
        Box::pin(async move {
            let key = format!("/ipns/{name}");
            self.fetch(RoutingGet { arg: &key }, limit).await
        })
    }

    fn cat<'a>(&'a self, cid: &'a Cid, limit: usize) -> BoxFuture<'a, Result<Vec<u8>, IpfsError>> {
        Box::pin(async move {
            let arg = cid.to_string();
            // Ask for one byte more than allowed, so an oversized file is seen as such.
            let length = limit.saturating_add(1);
            self.fetch(Cat { arg: &arg, length }, limit).await
        })
    }
}
