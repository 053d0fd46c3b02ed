//! Access to an IPFS daemon's RPC API: the raw IPNS record of a name (`routing/get`) and the
//! bytes of a CID (`cat`), each bounded in size.
//!
//! [`Ipfs`] is the small seam the resolver depends on; [`KuboRpc`] implements it over HTTP for
//! every daemon that speaks the Kubo RPC API: Kubo itself and the embedded px-store
//! (`/api/v0`) and BTFS (`/api/v1`). Nothing returned by the daemon is trusted: the resolver
//! verifies records and content itself.
//!
//! `routing/get` answers, as Kubo 0.43 sends them over HTTP, one JSON event per line,
//! `{"ID":"","Type":5,"Responses":null,"Extra":"<base64 of the signed record>"}` (only Kubo's
//! `encoding=text` writes raw bytes; the oracle does not ask for it). js-ipfs 0.66 has no
//! `routing/*` commands at all: against it every sync waits as "IPFS unavailable".

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use cid::Cid;
use futures::future::BoxFuture;
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

    /// Whether the daemon answers at all (`version`): the reachability check of `/health`.
    fn ping(&self) -> BoxFuture<'_, Result<(), IpfsError>>;
}

/// A Kubo RPC client (`POST <url><prefix>/<command>`) with a per-call timeout, written for
/// the two calls the oracle makes and for telling a verdict from an outage:
///
/// - only the daemon's own "this does not exist" answers become [`IpfsError::NotFound`]
///   (`routing/get` of a name the daemon has no record for: Kubo's `500 routing: not found`);
/// - every other failure is [`IpfsError::Unavailable`]: the daemon unreachable or timing out,
///   a command it lacks (js-ipfs answers `404 {"Message":"Not Found","Code":3}` for all of
///   `routing/*`), a request it refuses (4xx), any other 5xx, or an answer of an unexpected
///   shape. The resolver never turns those into an answer on chain; the request waits.
pub struct KuboRpc {
    http: reqwest::Client,
    /// `<url><api prefix>`, e.g. `http://127.0.0.1:5001/api/v0`.
    base: String,
    flavor: IpfsFlavor,
    timeout: Duration,
}

impl fmt::Debug for KuboRpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KuboRpc")
            .field("base", &self.base)
            .field("flavor", &self.flavor)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A `200` answer: its content type and body.
struct Answered {
    content_type: String,
    body: Vec<u8>,
}

impl KuboRpc {
    /// A client for the daemon at `url` (e.g. `http://127.0.0.1:5001`, without the API path).
    pub fn new(url: &str, flavor: IpfsFlavor, timeout: Duration) -> Result<Self, IpfsError> {
        let base = format!("{}{}", url.trim_end_matches('/'), flavor.api_prefix());
        reqwest::Url::parse(&base)
            .map_err(|e| IpfsError::Unavailable(format!("invalid IPFS API URL {url:?}: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .build()
            .map_err(|e| IpfsError::Unavailable(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            flavor,
            timeout,
        })
    }

    /// `POST <base>/<command>?<query>`, the answer read up to `limit` bytes within the timeout.
    async fn post(
        &self,
        command: &str,
        query: &[(&str, &str)],
        limit: usize,
    ) -> Result<Answered, IpfsError> {
        let call = async {
            let response = self
                .http
                .post(format!("{}/{command}", self.base))
                .query(query)
                .send()
                .await
                .map_err(|e| IpfsError::Unavailable(format!("{command}: {e}")))?;
            let status = response.status();
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            // Error bodies are short; read a few KiB of them whatever the limit.
            let cap = if status.is_success() { limit } else { 4096 };
            let body = read_capped(response, cap).await.map_err(|e| match e {
                Read::TooLarge if status.is_success() => IpfsError::TooLarge { limit },
                Read::TooLarge => IpfsError::Unavailable(format!("{command}: {status}")),
                Read::Failed(e) => IpfsError::Unavailable(format!("{command}: {e}")),
            })?;
            if status.is_success() {
                return Ok(Answered { content_type, body });
            }
            Err(classify(command, status, &body))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| {
                IpfsError::Unavailable(format!("{command}: timed out after {:?}", self.timeout))
            })?
    }
}

enum Read {
    TooLarge,
    Failed(reqwest::Error),
}

/// The body of `response`, failing as soon as it exceeds `limit` bytes.
async fn read_capped(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, Read> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Read::Failed)? {
        if out.len() + chunk.len() > limit {
            return Err(Read::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// What a failure status with `body` means. A Kubo error body is
/// `{"Message","Code","Type":"error"}`; some answers (Kubo's 400/404/405) are plain text.
fn classify(command: &str, status: reqwest::StatusCode, body: &[u8]) -> IpfsError {
    #[derive(Deserialize)]
    struct KuboError {
        #[serde(rename = "Message")]
        message: String,
    }
    let message = serde_json::from_slice::<KuboError>(body)
        .map(|e| e.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).chars().take(200).collect());
    let absent = command == "routing/get"
        && status == reqwest::StatusCode::INTERNAL_SERVER_ERROR
        && message.starts_with("routing: not found");
    if absent {
        return IpfsError::NotFound(message);
    }
    let why = match status.as_u16() {
        404 | 405 | 501 => "the daemon does not serve this command",
        400..=499 => "the daemon refused the request",
        _ => "the daemon failed",
    };
    IpfsError::Unavailable(format!("{command} answered {status} ({why}): {message}"))
}

/// One event of Kubo's `routing/get` answer (a `routing.QueryEvent`, one JSON object per
/// line); the record is the base64 `Extra` of the event of type 5 (`routing.Value`).
#[derive(Deserialize)]
struct QueryEvent {
    #[serde(rename = "Type")]
    kind: Option<i64>,
    #[serde(rename = "Extra")]
    extra: Option<String>,
}

/// Kubo's `routing.Value` event type.
const QUERY_EVENT_VALUE: i64 = 5;

/// The raw record inside a `routing/get` answer (see [`QueryEvent`]).
fn record_of_routing_answer(answer: &Answered) -> Result<Vec<u8>, IpfsError> {
    let unexpected = |why: &str| {
        IpfsError::Unavailable(format!(
            "routing/get answered 200 {:?} that is not a Kubo value event: {why}",
            answer.content_type
        ))
    };
    if !answer.content_type.starts_with("application/json") {
        return Err(unexpected("not JSON"));
    }
    for line in answer.body.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let event: QueryEvent =
            serde_json::from_slice(line).map_err(|e| unexpected(&e.to_string()))?;
        if event.kind == Some(QUERY_EVENT_VALUE) {
            let extra = event.extra.unwrap_or_default();
            return base64::engine::general_purpose::STANDARD
                .decode(extra.as_bytes())
                .map_err(|e| unexpected(&format!("Extra is not base64: {e}")));
        }
    }
    Err(unexpected("no value event"))
}

impl Ipfs for KuboRpc {
    fn routing_get<'a>(
        &'a self,
        name: &'a IpnsName,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<u8>, IpfsError>> {
        Box::pin(async move {
            let key = format!("/ipns/{name}");
            // Base64 and the JSON around it: 4/3 of the record plus a few dozen bytes.
            let answer = self
                .post("routing/get", &[("arg", &key)], limit / 3 * 4 + 256)
                .await
                .map_err(|e| match e {
                    IpfsError::TooLarge { .. } => IpfsError::TooLarge { limit },
                    e => e,
                })?;
            let record = record_of_routing_answer(&answer)?;
            if record.len() > limit {
                return Err(IpfsError::TooLarge { limit });
            }
            Ok(record)
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), IpfsError>> {
        Box::pin(async move { self.post("version", &[], 4096).await.map(|_| ()) })
    }

    fn cat<'a>(&'a self, cid: &'a Cid, limit: usize) -> BoxFuture<'a, Result<Vec<u8>, IpfsError>> {
        Box::pin(async move {
            let arg = cid.to_string();
            // Ask for one byte more than allowed, so an oversized file is seen as such.
            let length = limit.saturating_add(1).to_string();
            let answer = self
                .post("cat", &[("arg", &arg), ("length", &length)], limit)
                .await?;
            Ok(answer.body)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(content_type: &str, body: &str) -> Answered {
        Answered {
            content_type: content_type.into(),
            body: body.as_bytes().to_vec(),
        }
    }

    /// Kubo 0.43.1's answer (tools/rpc-facts/kubo.md), with a record shortened to 3 bytes.
    #[test]
    fn kubo_routing_answer_decodes_to_the_record() {
        let a = answered(
            "application/json",
            "{\"ID\":\"\",\"Type\":5,\"Responses\":null,\"Extra\":\"AQID\"}\n",
        );
        assert_eq!(record_of_routing_answer(&a).unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn other_routing_answers_are_unavailable_never_a_record() {
        for a in [
            // Raw bytes (Kubo's `encoding=text`, which the oracle does not ask for).
            answered("text/plain", "\u{a}4/ipfs/..."),
            answered("application/json", "{\"Type\":1,\"Extra\":\"\"}"),
            answered("application/json", "{\"Type\":5,\"Extra\":\"***\"}"),
            answered("application/json", "[]"),
            answered("application/json", ""),
        ] {
            assert!(
                matches!(record_of_routing_answer(&a), Err(IpfsError::Unavailable(_))),
                "{:?}",
                String::from_utf8_lossy(&a.body)
            );
        }
    }

    #[test]
    fn only_a_routing_not_found_is_a_verdict() {
        use reqwest::StatusCode as S;
        let kubo = br#"{"Message":"routing: not found","Code":0,"Type":"error"}"#;
        assert!(matches!(
            classify("routing/get", S::INTERNAL_SERVER_ERROR, kubo),
            IpfsError::NotFound(_)
        ));
        // js-ipfs has no routing/* at all; Kubo's unknown-command and refusals.
        let js = br#"{"Message":"Not Found","Code":3,"Type":"error"}"#;
        for (command, status, body) in [
            ("routing/get", S::NOT_FOUND, &js[..]),
            ("routing/get", S::NOT_FOUND, b"404 page not found"),
            (
                "routing/get",
                S::METHOD_NOT_ALLOWED,
                b"405 - Method Not Allowed",
            ),
            (
                "routing/get",
                S::BAD_REQUEST,
                b"argument \"key\" is required",
            ),
            (
                "routing/get",
                S::INTERNAL_SERVER_ERROR,
                b"{\"Message\":\"this action must be run in online mode\"}",
            ),
            (
                "cat",
                S::INTERNAL_SERVER_ERROR,
                br#"{"Message":"block was not found locally (offline)"}"#,
            ),
            ("cat", S::INTERNAL_SERVER_ERROR, kubo),
        ] {
            assert!(
                matches!(classify(command, status, body), IpfsError::Unavailable(_)),
                "{command} {status} {}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
