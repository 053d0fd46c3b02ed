//! The node's error type. Every variant maps to an HTTP status and a machine-readable
//! [`ErrorCode`]; internal details (chain, IPFS, database) are logged, never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use px_core::api::{ErrorBody, ErrorCode};
use px_core::contracts::GateReason;

/// Result alias of the node.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Invalid configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// A malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// Missing, unknown or expired session.
    #[error("sign in first: {0}")]
    Unauthorized(&'static str),
    /// The SIWE message is malformed or its signature does not match.
    #[error("invalid sign-in: {0}")]
    InvalidSignature(String),
    /// The SIWE message names another domain, URI or chain.
    #[error("wrong sign-in scope: {0}")]
    WrongDomain(String),
    /// Unknown, reused or expired nonce.
    #[error("invalid nonce: unknown, already used or expired")]
    InvalidNonce,
    /// The SIWE message is expired or not yet valid.
    #[error("sign-in message {0}")]
    MessageExpired(&'static str),
    /// The caller does not own the token.
    #[error("address {address} does not own token {token_id}")]
    NotOwner {
        /// Token.
        token_id: u64,
        /// Caller.
        address: alloy::primitives::Address,
    },
    /// The on-chain gate refused.
    #[error("upload gate closed: {0}")]
    GateClosed(GateReason),
    /// The upload would exceed the quota.
    #[error("over quota: {used} bytes used + {size} bytes would exceed the {quota}-byte quota")]
    OverQuota {
        /// Bytes used (including uploads in flight).
        used: u64,
        /// Upload size.
        size: u64,
        /// Quota.
        quota: u64,
    },
    /// The upload is larger than the node accepts.
    #[error("upload of {size} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// Upload size.
        size: u64,
        /// Limit.
        limit: u64,
    },
    /// A request body over the route's limit (uploads have their own, [`Error::TooLarge`]).
    #[error("request body over the {limit}-byte limit of this route")]
    BodyTooLarge {
        /// Limit.
        limit: u64,
    },
    /// The upload body stalled (no data for the idle timeout) or came slower than the node's
    /// minimum upload rate.
    #[error("upload body timed out after {received} of {len} bytes: send faster")]
    BodyTimeout {
        /// Bytes received.
        received: u64,
        /// Content-Length.
        len: u64,
    },
    /// The request took longer than the request timeout.
    #[error("the request timed out; retry later")]
    Timeout,
    /// Too many requests from this IP address or address.
    #[error("too many requests; retry in {} s", retry_secs(*retry_after))]
    RateLimited {
        /// When the next request will be allowed.
        retry_after: std::time::Duration,
    },
    /// No `Content-Length`.
    #[error("uploads need a Content-Length")]
    LengthRequired,
    /// The token has no key this node holds.
    #[error("token {0} is not served by this node (no IPNS key of this node bound)")]
    NotServed(u64),
    /// The token already has a key.
    #[error("token {0} already has an IPNS key")]
    KeyAlreadySet(u64),
    /// The token's on-chain key is no longer this node's (it moved with `rebindKey`).
    #[error(
        "token {0} moved to another node: its on-chain IPNS key is no longer this node's; \
         upload, delete and refresh through the node that holds it now"
    )]
    KeyMoved(u64),
    /// The token cannot be taken over (rebinding): what the previous node left is unusable.
    #[error("cannot take over token {token_id}: {reason}")]
    TakeOver {
        /// Token.
        token_id: u64,
        /// Why.
        reason: String,
    },
    /// Not found.
    #[error("{0} not found")]
    NotFound(String),
    /// Provider network: this node is not the token's home node.
    #[error(
        "this node ({node}) is not token {token_id}'s home node (StorageMarket.homeNodeOf is \
         {home}): the holder names it with StorageMarket.setHomeNode"
    )]
    NotHomeNode {
        /// Token.
        token_id: u64,
        /// This node's address.
        node: alloy::primitives::Address,
        /// The home node on chain (zero if none).
        home: alloy::primitives::Address,
    },
    /// Provider network: too few eligible providers.
    #[error("{have} eligible providers (active, certified, live, with room), {need} needed")]
    NotEnoughProviders {
        /// Eligible providers.
        have: usize,
        /// Needed (`n`).
        need: usize,
    },
    /// Provider network: the token's escrow is too low for the deals needed.
    #[error(
        "token {token_id}'s escrow holds {escrow} wei of PXToken; the deals of this placement \
         commit {needed}: fund it (px fund {token_id} <amount>)"
    )]
    EscrowTooLow {
        /// Token.
        token_id: u64,
        /// Escrow (wei).
        escrow: alloy::primitives::U256,
        /// Needed (wei).
        needed: alloy::primitives::U256,
    },
    /// The registrar key is not configured.
    #[error("this node has no registrar key configured")]
    NoRegistrar,
    /// Chain RPC failure.
    #[error("chain: {0}")]
    Chain(String),
    /// IPFS backend failure.
    #[error("ipfs: {0}")]
    Ipfs(String),
    /// Database failure.
    #[error("database: {0}")]
    Db(String),
    /// I/O failure.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Anything else.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// The machine-readable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Config(_) | Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::InvalidSignature(_) => ErrorCode::InvalidSignature,
            Self::WrongDomain(_) => ErrorCode::WrongDomain,
            Self::InvalidNonce => ErrorCode::InvalidNonce,
            Self::MessageExpired(_) => ErrorCode::MessageExpired,
            Self::NotOwner { .. } => ErrorCode::NotOwner,
            Self::GateClosed(_) => ErrorCode::GateClosed,
            Self::OverQuota { .. } => ErrorCode::OverQuota,
            Self::TooLarge { .. } | Self::BodyTooLarge { .. } => ErrorCode::TooLarge,
            Self::BodyTimeout { .. } | Self::Timeout => ErrorCode::Timeout,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::LengthRequired => ErrorCode::LengthRequired,
            Self::NotServed(_) => ErrorCode::NotServed,
            Self::KeyAlreadySet(_) => ErrorCode::KeyAlreadySet,
            Self::KeyMoved(_) => ErrorCode::KeyMoved,
            Self::TakeOver { .. } => ErrorCode::BadRequest,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::NotHomeNode { .. } => ErrorCode::NotHomeNode,
            Self::NotEnoughProviders { .. } => ErrorCode::NotEnoughProviders,
            Self::EscrowTooLow { .. } => ErrorCode::EscrowTooLow,
            Self::NoRegistrar | Self::Chain(_) | Self::Ipfs(_) => ErrorCode::Unavailable,
            Self::Db(_) | Self::Io(_) | Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        if let Self::BodyTimeout { .. } = self {
            return StatusCode::REQUEST_TIMEOUT;
        }
        match self.code() {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized
            | ErrorCode::InvalidSignature
            | ErrorCode::WrongDomain
            | ErrorCode::InvalidNonce
            | ErrorCode::MessageExpired => StatusCode::UNAUTHORIZED,
            ErrorCode::NotOwner | ErrorCode::GateClosed => StatusCode::FORBIDDEN,
            ErrorCode::OverQuota | ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::LengthRequired => StatusCode::LENGTH_REQUIRED,
            ErrorCode::NotServed | ErrorCode::KeyAlreadySet | ErrorCode::KeyMoved => {
                StatusCode::CONFLICT
            }
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::NotHomeNode => StatusCode::CONFLICT,
            ErrorCode::EscrowTooLow => StatusCode::PAYMENT_REQUIRED,
            ErrorCode::NotEnoughProviders => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            // A request past the request timeout: retry later, like a backend outage.
            ErrorCode::Unavailable | ErrorCode::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body sent to the client; internal details stay in the log.
    pub fn body(&self) -> ErrorBody {
        let message = match self.code() {
            ErrorCode::Internal => "internal error".to_string(),
            ErrorCode::Unavailable if !matches!(self, Self::NoRegistrar) => {
                "a backend (chain or IPFS) is unavailable; retry later".to_string()
            }
            _ => self.to_string(),
        };
        ErrorBody {
            error: self.code(),
            message,
            gate: match self {
                Self::GateClosed(r) => Some(*r),
                _ => None,
            },
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(target: "node::http", error = %self, "request failed");
        } else {
            tracing::debug!(target: "node::http", error = %self, "request refused");
        }
        let retry_after = match &self {
            Self::RateLimited { retry_after } => Some(retry_secs(*retry_after)),
            // A backend outage: tell clients when to try again.
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(RETRY_AFTER_SECS),
            _ => None,
        };
        if let Some(secs) = retry_after {
            let retry = [(axum::http::header::RETRY_AFTER, secs.to_string())];
            return (status, retry, Json(self.body())).into_response();
        }
        (status, Json(self.body())).into_response()
    }
}

/// Whole seconds to wait, at least 1.
fn retry_secs(d: std::time::Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// The `Retry-After` of a 503 (a chain or IPFS backend unavailable), in seconds.
pub(crate) const RETRY_AFTER_SECS: u64 = 5;

impl From<redb::Error> for Error {
    fn from(e: redb::Error) -> Self {
        Self::Db(e.to_string())
    }
}

macro_rules! redb_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Self::Db(e.to_string())
            }
        }
    )*};
}
redb_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::Internal(format!("json: {e}"))
    }
}

impl From<ipfs_api_backend_hyper::Error> for Error {
    fn from(e: ipfs_api_backend_hyper::Error) -> Self {
        Self::Ipfs(e.to_string())
    }
}

impl From<alloy::contract::Error> for Error {
    fn from(e: alloy::contract::Error) -> Self {
        Self::Chain(e.to_string())
    }
}

impl From<alloy::transports::TransportError> for Error {
    fn from(e: alloy::transports::TransportError) -> Self {
        Self::Chain(e.to_string())
    }
}
