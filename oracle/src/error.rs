//! The crate's error type.

use alloy::primitives::U256;

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
