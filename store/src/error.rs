//! The crate's error type and its Kubo-shaped HTTP rendering.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::importer::ImportError;
use crate::ipns::IpnsError;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the store.
///
/// Client errors render as HTTP 400 with `Code: 1`, server-side ones as HTTP 500 with
/// `Code: 0`, both in Kubo's `{"Message","Code","Type":"error"}` body; as in Kubo, a missing
/// argument is a plain-text 400 and an unknown command a plain-text 404. Messages are Kubo's
/// where Kubo has one for the same case (`tests/it/kubo.rs` compares them).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request argument is missing or malformed (bad CID, bad option value, ...).
    #[error("{0}")]
    BadRequest(String),
    /// The RPC command does not exist (Kubo: a plain-text 404).
    #[error("404 page not found")]
    UnknownCommand(String),
    /// A required argument is missing (Kubo: a plain-text 400 naming the argument).
    #[error("argument \"{0}\" is required")]
    MissingArgument(&'static str),
    /// `add` without a file part (Kubo: a plain-text 400).
    #[error("file argument 'path' is required")]
    MissingFile,
    /// A failure Kubo reports as a command error (HTTP 500, `Code: 0`), with Kubo's message:
    /// a malformed path, CID version or key type, a negative offset, ...
    #[error("{0}")]
    Failed(String),
    /// The request body is larger than `max_request_bytes`.
    #[error("request body exceeds the limit of {0} bytes")]
    TooLarge(u64),
    /// The multipart body could not be parsed.
    #[error("malformed multipart body: {0}")]
    Multipart(String),
    /// A requested option is valid for Kubo but not implemented here.
    #[error("unsupported option: {0}")]
    Unsupported(String),
    /// A block is not in the local store.
    #[error("block was not found locally (offline): ipld: could not find {0}")]
    BlockNotFound(String),
    /// A stored block does not hash to its CID (disk corruption).
    #[error("block {0} is corrupt: its bytes do not match its hash")]
    CorruptBlock(String),
    /// The node is not a UnixFS file (e.g. `cat` of a directory).
    #[error("{0}")]
    NotAFile(String),
    /// The content is not pinned.
    #[error("{0}")]
    NotPinned(String),
    /// A key with that name does not exist.
    #[error("no key by the given name was found")]
    KeyNotFound(String),
    /// A key with that name already exists.
    #[error("key with name '{0}' already exists")]
    KeyExists(String),
    /// No record is known for the name (the detail is logged, Kubo's message sent).
    #[error("could not resolve name")]
    NameNotFound(String),
    /// `routing/get`: no record is stored for the key (Kubo's exact message).
    #[error("routing: not found")]
    RoutingNotFound,
    /// An IPNS record or name was rejected.
    #[error("{0}")]
    Ipns(#[from] IpnsError),
    /// A record is valid but older than the stored one.
    #[error("record for {0} is not newer than the stored record")]
    StaleRecord(String),
    /// Filesystem error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// Metadata database error.
    #[error("database error: {0}")]
    Db(String),
    /// Anything else that is the server's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ImportError> for Error {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::InvalidOption(m) => Error::BadRequest(m),
            ImportError::Unsupported(m) => Error::Unsupported(m),
            ImportError::Io(e) => Error::Io(e),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl Error {
    /// Whether this is the client's fault (HTTP 400, Code 1).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Error::BadRequest(_)
                | Error::UnknownCommand(_)
                | Error::TooLarge(_)
                | Error::Multipart(_)
                | Error::Unsupported(_)
                | Error::NotAFile(_)
                | Error::MissingArgument(_)
                | Error::MissingFile
                | Error::Ipns(_)
                | Error::StaleRecord(_)
        )
    }

    /// The Kubo error body for this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            message: self.to_string(),
            code: if self.is_client_error() { 1 } else { 0 },
            kind: "error",
        }
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

/// Kubo's error body: `{"Message": "...", "Code": 0|1, "Type": "error"}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// Human-readable message.
    #[serde(rename = "Message")]
    pub message: String,
    /// 1 for client errors, 0 otherwise.
    #[serde(rename = "Code")]
    pub code: u8,
    /// Always `"error"`.
    #[serde(rename = "Type")]
    pub kind: &'static str,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let plain = match &self {
            Error::UnknownCommand(path) => {
                tracing::debug!(target: "store::api", %path, "unknown command");
                Some(StatusCode::NOT_FOUND)
            }
            Error::MissingArgument(_) | Error::MissingFile => Some(StatusCode::BAD_REQUEST),
            _ => None,
        };
        if let Some(status) = plain {
            return plain_text(status, &self.to_string());
        }
        let status = if self.is_client_error() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::warn!(target: "store::api", error = %self, "request failed");
        }
        let mut body = serde_json::to_vec(&self.body()).unwrap_or_default();
        body.push(b'\n');
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// A plain-text answer as Go's HTTP server writes it (`text/plain; charset=utf-8`, a line).
pub(crate) fn plain_text(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        format!("{text}\n"),
    )
        .into_response()
}
