//! The SDK's error type.

use alloy::primitives::Address;

use crate::api::{ErrorCode, GateReason};

/// Result alias of the SDK.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the SDK.
///
/// Errors that a program may want to react to (a closed gate, a wrong key, a missing token)
/// have their own variants; the `Display` text of each is written for the person running the
/// program.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is incomplete or invalid (missing RPC URL, unreadable key, ...).
    #[error("configuration: {0}")]
    Config(String),

    /// A JSON-RPC call to the chain failed (transport, node error, revert).
    #[error("chain RPC: {0}")]
    Rpc(String),

    /// A transaction reverted; `reason` is the decoded custom error when the ABI knows it.
    #[error("transaction reverted: {reason}")]
    Reverted {
        /// The contract's custom error (e.g. `FreePlanClaimed(0x..)`) or raw revert data.
        reason: String,
    },

    /// The plan does not exist or cannot be minted.
    #[error("plan {0} does not exist or is not active; run `px plans` to see the plans")]
    NoSuchPlan(u64),

    /// The token does not exist.
    #[error("token {0} does not exist")]
    NoSuchToken(u64),

    /// The signer does not own the token.
    #[error("token {token_id} is owned by {owner}, not by {signer}")]
    NotOwner {
        /// The token.
        token_id: u64,
        /// Its owner.
        owner: Address,
        /// The signer's address.
        signer: Address,
    },

    /// The on-chain upload gate (`canUpload`) is closed.
    #[error("uploads to token {token_id} are locked: {detail}")]
    GateClosed {
        /// The token.
        token_id: u64,
        /// The contract's reason.
        reason: GateReason,
        /// A human explanation with the next step (e.g. "last sync 31 days ago; run `px sync 7
        /// --wait`").
        detail: String,
    },

    /// A sync request was answered with an error status (see
    /// [`crate::contracts::sync_status`]).
    #[error("sync of token {token_id} failed with status {status} ({})", crate::client::sync_status_name(*status))]
    SyncFailed {
        /// The token.
        token_id: u64,
        /// The status code the oracle or the contract recorded.
        status: u8,
    },

    /// A sync cannot be requested yet.
    #[error("sync of token {token_id} cannot be requested yet: {detail}")]
    SyncNotAllowed {
        /// The token.
        token_id: u64,
        /// Why, with the next step.
        detail: String,
    },

    /// Waiting for something (a sync answer) took longer than allowed.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(std::time::Duration, &'static str),

    /// The storage node refused a request.
    #[error("storage node: {message}")]
    Node {
        /// HTTP status.
        status: u16,
        /// The node's machine-readable code.
        code: Option<ErrorCode>,
        /// The node's explanation.
        message: String,
    },

    /// The storage node could not be reached or answered something unreadable.
    #[error("storage node unreachable or answered badly: {0}")]
    Http(String),

    /// The storage node's answer does not match what the client sent (e.g. another CID).
    #[error("storage node answered inconsistently: {0}")]
    NodeMismatch(String),

    /// No storage node URL is configured.
    #[error("no storage node configured: set `node_url` (or `--node`/`PX_NODE`)")]
    NoNode,

    /// The content is encrypted under another owner key.
    #[error(
        "wrong key: the content is encrypted for owner key {expected}, but the key in use is \
         {actual}; use the key file or wallet the content was uploaded with"
    )]
    WrongKey {
        /// Key id (hex) recorded in the content.
        expected: String,
        /// Key id (hex) of the key in use.
        actual: String,
    },

    /// Encrypted content failed authentication: it was modified, cut short, reordered or
    /// mixed with another file's segments.
    #[error("encrypted content is corrupt or tampered with: {0}")]
    Corrupt(String),

    /// Decrypted content does not match the plaintext hash recorded at upload.
    #[error("content hash mismatch: expected sha256 {expected}, got {actual}")]
    HashMismatch {
        /// Hash recorded in the file entry.
        expected: String,
        /// Hash of the bytes received.
        actual: String,
    },

    /// No file with that CID is stored for the token.
    #[error("no file with CID {cid} in token {token_id}; run `px ls {token_id}`")]
    FileNotFound {
        /// The token.
        token_id: u64,
        /// The CID asked for.
        cid: String,
    },

    /// Signing failed.
    #[error("signing: {0}")]
    Signing(String),

    /// Local I/O failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub(crate) fn rpc(e: impl std::fmt::Display) -> Self {
        Self::Rpc(e.to_string())
    }
}

impl From<alloy::contract::Error> for Error {
    fn from(e: alloy::contract::Error) -> Self {
        use crate::contracts::StorageNFT::StorageNFTErrors;
        if let Some(decoded) = e.as_decoded_interface_error::<StorageNFTErrors>() {
            return Self::Reverted {
                reason: format!("{decoded:?}"),
            };
        }
        if let Some(data) = e.as_revert_data() {
            return Self::Reverted {
                reason: format!("revert data {data}"),
            };
        }
        Self::Rpc(e.to_string())
    }
}

impl From<alloy::transports::TransportError> for Error {
    fn from(e: alloy::transports::TransportError) -> Self {
        Self::Rpc(e.to_string())
    }
}

impl From<alloy::providers::PendingTransactionError> for Error {
    fn from(e: alloy::providers::PendingTransactionError) -> Self {
        Self::Rpc(e.to_string())
    }
}

impl From<alloy::signers::Error> for Error {
    fn from(e: alloy::signers::Error) -> Self {
        Self::Signing(e.to_string())
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        Self::Http(e.to_string())
    }
}
