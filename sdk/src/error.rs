//! The SDK's error type.
//!
//! Every failure that crosses a boundary keeps what the other side said: a revert is decoded to
//! the contract's custom error ([`Revert`]), a refusal of the storage node keeps its HTTP status,
//! machine-readable code and body, and transport failures keep alloy's or reqwest's error as
//! their [`source`](std::error::Error::source).

use alloy::{
    contract::Error as ContractError,
    primitives::{Address, B256, Bytes},
    providers::PendingTransactionError,
    sol_types::SolInterface,
    transports::TransportError,
};
use px_core::{
    api::{ErrorCode, GateReason},
    contracts::{PXToken::PXTokenErrors, StorageNFT::StorageNFTErrors},
    crypto::CryptoError,
    siwe::Scope,
};

/// Result alias of the SDK.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the SDK.
///
/// Errors that a program may want to react to (a closed gate, a wrong key, a missing token, a
/// revert) have their own variants; the `Display` text of each is written for the person running
/// the program.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is incomplete or invalid (missing RPC URL, unreadable key, ...).
    #[error("configuration: {0}")]
    Config(String),

    /// The chain's JSON-RPC endpoint failed: connection, timeout, or an error response that is
    /// not a revert.
    #[error("chain RPC: {0}")]
    Transport(#[source] TransportError),

    /// A contract call failed for another reason than a revert (for example an answer that
    /// does not decode).
    #[error("contract call: {0}")]
    Contract(#[source] ContractError),

    /// A call or transaction reverted; [`Revert`] is the decoded custom error when the ABI knows
    /// it.
    #[error("transaction reverted: {revert}")]
    Reverted {
        /// The decoded revert.
        revert: Revert,
        /// alloy's error, with the RPC's answer.
        #[source]
        source: Box<ContractError>,
    },

    /// Waiting for a sent transaction's receipt failed.
    #[error("waiting for transaction: {0}")]
    PendingTransaction(#[source] PendingTransactionError),

    /// A transaction was mined but failed (status 0).
    #[error("transaction {tx_hash} failed on chain")]
    TransactionFailed {
        /// The transaction.
        tx_hash: B256,
    },

    /// The chain answered something the SDK cannot use (an event missing from a receipt, an
    /// unknown enum value).
    #[error("unexpected answer from the chain: {0}")]
    UnexpectedChainAnswer(String),

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
    /// [`px_core::contracts::sync_status`]).
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
        /// The node's machine-readable code (`None` when the body is not the node's JSON).
        code: Option<ErrorCode>,
        /// The node's explanation.
        message: String,
        /// The answer's body as received (at most 4 KiB).
        body: String,
    },

    /// The storage node rate-limited the request (HTTP 429) and the client gave up: its
    /// retries were used up, the node asked for a longer wait than the client waits, or the
    /// request was an upload whose body had already been sent (a body is not sent twice).
    #[error("storage node: {message} (rate-limited; retry in {} s)", retry_after.as_secs().max(1))]
    RateLimited {
        /// How long the node asked to wait (`Retry-After`; 1 s when it named none).
        retry_after: std::time::Duration,
        /// The node's explanation.
        message: String,
    },

    /// The storage node could not be reached, or its answer could not be read.
    #[error("storage node unreachable or answered badly: {0}")]
    Http(#[source] reqwest::Error),

    /// The storage node's answer does not match what the client sent (e.g. another CID).
    #[error("storage node answered inconsistently: {0}")]
    NodeMismatch(String),

    /// The node asked to be signed in to with another domain or URI than the configured node
    /// URL: signing would give it a sign-in valid for another site.
    #[error(
        "refusing to sign in: the node at {} asked for a sign-in to domain {:?} and URI {:?}; \
         check the node URL (or the node's `public_url`)",
        expected.uri, offered.domain, offered.uri
    )]
    ForeignSignIn {
        /// The scope of the configured node URL.
        expected: Scope,
        /// The scope the node's nonce answer named.
        offered: Scope,
    },

    /// No storage node URL is configured.
    #[error("no storage node configured: set `node_url` (or `--node`/`PX_NODE`)")]
    NoNode,

    /// Encryption, decryption or an owner-key operation failed: a wrong key
    /// ([`CryptoError::WrongKey`]), tampered content ([`CryptoError::Corrupt`]), ...
    #[error(transparent)]
    Crypto(#[from] CryptoError),

    /// Encryption is expected, but the content is not encrypted or its file entry's name is
    /// plain while the content is encrypted (a node cannot slip in files of its own).
    #[error("refusing file {cid} of token {token_id}: {detail}")]
    Unencrypted {
        /// The token.
        token_id: u64,
        /// The CID asked for.
        cid: String,
        /// What was found.
        detail: String,
    },

    /// The connection broke while an upload's body was being sent, and the node gave no
    /// reason when asked again.
    #[error(
        "the upload was interrupted: the storage node closed the connection while the file was \
         being sent ({0})"
    )]
    UploadInterrupted(#[source] reqwest::Error),

    /// Decrypted content does not match the plaintext hash recorded at upload (version 1
    /// content; version 2 checks the hash sealed in its header, a [`CryptoError::Corrupt`]).
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

    /// The wallet signed the owner-key message twice with different signatures, so a key
    /// derived from it could not be derived again: files encrypted with it would be lost.
    #[error(
        "wallet {address} does not sign deterministically (two signatures of the same message \
         differ), so an encryption key derived from its signature could never be derived again \
         and your files would be unrecoverable; use a key file instead (`px key new <path>`, then \
         `--key-file`)"
    )]
    NondeterministicSigner {
        /// The wallet.
        address: Address,
    },

    /// The signer failed to sign.
    #[error("signing: {0}")]
    Signing(#[source] alloy::signers::Error),

    /// Local I/O failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// A decoded revert.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revert {
    /// A custom error of `StorageNFT` (`contracts/interfaces/IStorageNFT.sol`).
    StorageNFT(StorageNFTErrors),
    /// A custom error of `PXToken` (OpenZeppelin's ERC-20 errors, permit errors).
    PXToken(PXTokenErrors),
    /// Revert data no known ABI decodes (empty for a bare `revert()`).
    Unknown(Bytes),
}

impl std::fmt::Display for Revert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::StorageNFT(e) => write!(f, "StorageNFT.{e:?}"),
            Self::PXToken(e) => write!(f, "PXToken.{e:?}"),
            Self::Unknown(data) if data.is_empty() => f.write_str("without data"),
            Self::Unknown(data) => write!(f, "with data {data}"),
        }
    }
}

impl Revert {
    /// Decodes revert data with the project's contract ABIs.
    pub fn decode(data: &[u8]) -> Self {
        if let Ok(e) = StorageNFTErrors::abi_decode(data) {
            return Self::StorageNFT(e);
        }
        if let Ok(e) = PXTokenErrors::abi_decode(data) {
            return Self::PXToken(e);
        }
        Self::Unknown(Bytes::copy_from_slice(data))
    }
}

impl Error {
    /// Whether this is a revert (of a call or a transaction).
    pub fn is_revert(&self) -> bool {
        matches!(self, Self::Reverted { .. })
    }

    /// The `StorageNFT` custom error of a revert, if that is what this is.
    pub fn storage_nft_error(&self) -> Option<&StorageNFTErrors> {
        match self {
            Self::Reverted {
                revert: Revert::StorageNFT(e),
                ..
            } => Some(e),
            _ => None,
        }
    }
}

impl From<ContractError> for Error {
    fn from(e: ContractError) -> Self {
        if let Some(data) = e.as_revert_data() {
            return Self::Reverted {
                revert: Revert::decode(&data),
                source: Box::new(e),
            };
        }
        match e {
            ContractError::TransportError(t) => Self::Transport(t),
            ContractError::PendingTransactionError(p) => Self::PendingTransaction(p),
            other => Self::Contract(other),
        }
    }
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        match e.as_error_resp().and_then(|r| r.as_revert_data()) {
            Some(data) => Self::Reverted {
                revert: Revert::decode(&data),
                source: Box::new(ContractError::TransportError(e)),
            },
            None => Self::Transport(e),
        }
    }
}

impl From<PendingTransactionError> for Error {
    fn from(e: PendingTransactionError) -> Self {
        Self::PendingTransaction(e)
    }
}

impl From<alloy::signers::Error> for Error {
    fn from(e: alloy::signers::Error) -> Self {
        Self::Signing(e)
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        Self::Http(e)
    }
}
