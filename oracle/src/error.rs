//! The crate's error type.

use alloy::primitives::U256;
use alloy::transports::{RpcError, TransportError};

/// Result alias of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the oracle. Record problems are not errors: they are answered with a
/// status code (see [`crate::resolver::Rejection`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token does not exist on the StorageNFT contract.
    #[error("token {0} does not exist")]
    TokenNotFound(U256),
    /// The chain's JSON-RPC endpoint failed or could not be reached (worth retrying).
    #[error("chain RPC failed: {0}")]
    Rpc(String),
    /// The IPFS daemon could not be reached or failed (worth retrying).
    #[error("IPFS backend unavailable: {0}")]
    IpfsUnavailable(String),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The relayer's database failed.
    #[error("relayer database: {0}")]
    Db(String),
    /// Binding or serving a socket failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Rpc(_) | Self::IpfsUnavailable(_))
    }
}

/// Whether a transport error is the chain's verdict that the call reverted: a JSON-RPC error
/// with code 3 (EIP-1474's "execution reverted" with revert data) or an error carrying revert
/// data. Everything else (a timeout, "header not found", a rate limit, a 5xx, a lagging or
/// unreachable backend, a `-32000` without data) is an outage, never a verdict: callers retry
/// it with backoff.
pub(crate) fn is_revert(e: &TransportError) -> bool {
    match e {
        RpcError::ErrorResp(payload) => payload.code == 3 || payload.as_revert_data().is_some(),
        _ => false,
    }
}

macro_rules! db_error {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Db(e.to_string())
            }
        }
    )*};
}
db_error!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(code: i64, message: &str, data: Option<&str>) -> TransportError {
        let mut payload = serde_json::json!({"code": code, "message": message});
        if let Some(d) = data {
            payload["data"] = serde_json::Value::String(d.into());
        }
        RpcError::ErrorResp(serde_json::from_value(payload).unwrap())
    }

    #[test]
    fn only_a_revert_is_a_verdict() {
        // anvil / geth: code 3 with the revert data.
        assert!(is_revert(&resp(
            3,
            "execution reverted",
            Some("0x08c379a0")
        )));
        assert!(is_revert(&resp(3, "execution reverted", None)));
        // Revert data under another code (some providers).
        assert!(is_revert(&resp(
            -32000,
            "execution reverted",
            Some("0x1234abcd")
        )));
        // Outages, whatever they look like.
        assert!(!is_revert(&resp(-32000, "header not found", None)));
        assert!(!is_revert(&resp(-32603, "internal error", None)));
        assert!(!is_revert(&resp(-32005, "request rate exceeded", None)));
        assert!(!is_revert(&RpcError::NullResp));
        assert!(!is_revert(
            &alloy::transports::TransportErrorKind::custom_str("timed out")
        ));
    }
}
