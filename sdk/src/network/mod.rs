//! The provider network, client side (issue 17): files encrypted as for a single node, then
//! erasure-coded into pieces that go to several providers, and read back from any `k` of each
//! segment's `n` pieces.
//!
//! ```text
//! upload    plaintext ─► format v2 encryption ─► segments ─► Reed-Solomon n pieces ─► CID + root
//!           (pipeline::encode, two threads)                                │
//!           pieces of a segment ─► n providers at once, spares for the long tail,
//!           (transfer::Uploader)    each receipt checked ─► manifest segment
//! download  manifest ─► every provider of a segment at once ─► each piece checked (size, CID,
//!           (transfer::Downloader)   root; a bad one = that provider offline, reported)
//!           ─► first k ─► decode ─► decrypt (tags, file id, plaintext SHA-256) ─► plaintext
//! ```
//!
//! - [`pipeline`]: the CPU side, no I/O but the input reader ([`encode`], [`SegmentDecoder`],
//!   [`check_piece`]).
//! - [`transfer`]: the HTTP side against providers' `POST /v1/pieces` and
//!   `GET /v1/pieces/{cid}` ([`Uploader`], [`Downloader`]), with a per-piece observer for
//!   progress displays ([`PieceObserver`]).
//! - [`client`]: the whole flow through the token's home node, on [`crate::Client`]:
//!   placement, upload, manifest commit ([`crate::Client::upload_to_network`]), download of a
//!   network file with endpoints from the registry ([`crate::Client::download_from_network`]),
//!   the registry with proof records ([`crate::Client::providers`]) and escrow funding
//!   ([`crate::Client::fund_escrow`]).

pub mod client;
pub mod pipeline;
pub mod transfer;

use alloy::primitives::{Address, B256};
use cid::Cid;

pub use client::{
    NetworkDownload, NetworkDownloadOptions, NetworkUpload, NetworkUploadOptions, ProviderInfo,
    cipher_len, targets_of,
};
pub use pipeline::{
    EncodeOptions, Encoded, EncodedSegment, SegmentDecoder, check_piece, encode, sha256_of,
};
pub use transfer::{
    DownloadReport, Downloader, Fault, PieceEvent, PieceObserver, PieceStage, ProviderEndpoint,
    SegmentUpload, Target, UploadFailure, Uploader,
};

/// Result alias of the provider network.
pub type Result<T, E = NetworkError> = std::result::Result<T, E>;

/// Why an upload to or a download from providers failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    /// Reading the input failed.
    #[error("reading the input: {0}")]
    Io(#[from] std::io::Error),
    /// Encryption or decryption failed (a wrong key, tampered content, a changed input).
    #[error(transparent)]
    Crypto(#[from] px_core::crypto::CryptoError),
    /// Erasure coding refused (invalid redundancy or segment size, too few pieces).
    #[error(transparent)]
    Erasure(#[from] px_core::erasure::ErasureError),
    /// A piece's CID could not be computed.
    #[error("piece CID: {0}")]
    Import(#[from] px_core::importer::ImportError),
    /// A piece's Merkle root could not be computed.
    #[error("piece root: {0}")]
    Piece(#[from] px_core::piece::PieceError),
    /// An order, receipt or manifest was refused.
    #[error(transparent)]
    Protocol(#[from] px_core::network::NetworkError),
    /// The file needs more than 2^32 segments.
    #[error("file has too many segments")]
    TooManySegments,
    /// Segments were given out of order.
    #[error("segment {got} given, expected {expected}")]
    SegmentOrder {
        /// The next segment.
        expected: u32,
        /// The one given.
        got: u32,
    },
    /// A thread of the pipeline stopped.
    #[error("encoding pipeline stopped")]
    Pipeline,
    /// The placement does not fit the segment (no target for a piece, an order for another
    /// segment or size).
    #[error("placement of segment {segment}: {reason}")]
    Placement {
        /// The segment.
        segment: u32,
        /// What is wrong.
        reason: String,
    },
    /// Piece `piece` of segment `segment` could not be stored: every provider it could go to
    /// failed (each failure is listed).
    #[error("segment {segment} piece {piece}: no provider stored it ({} failed)", failures.len())]
    PieceNotStored {
        /// The segment.
        segment: u32,
        /// The piece index.
        piece: u16,
        /// What each provider tried did.
        failures: Vec<UploadFailure>,
    },
    /// Fewer than `k` good pieces of a segment could be fetched.
    #[error("segment {segment}: {have} good pieces of {need} needed ({} providers failed)", faults.len())]
    NotEnoughPieces {
        /// The segment.
        segment: u32,
        /// Good pieces fetched.
        have: usize,
        /// `k`.
        need: usize,
        /// What went wrong with the others.
        faults: Vec<Fault>,
    },
    /// A blocking task failed.
    #[error("background task: {0}")]
    Task(String),
    /// The home node or the chain failed or refused (sign-in, gate, quota, commit, registry).
    #[error(transparent)]
    Client(Box<crate::Error>),
    /// The node refused the placement: it is not the token's home node on chain.
    #[error(
        "token {token_id}'s home node is not this node ({message}): name it with \
         StorageMarket.setHomeNode (`px home {token_id}`, or Client::use_as_home_node)"
    )]
    NotHomeNode {
        /// The token.
        token_id: u64,
        /// The node's words.
        message: String,
    },
    /// The node refused the placement: the token's escrow cannot pay the deals it needs.
    #[error(
        "token {token_id}'s escrow is too low for the deals this upload needs ({message}): \
         fund it (StorageMarket.fund, `px fund {token_id} <amount>`)"
    )]
    EscrowTooLow {
        /// The token.
        token_id: u64,
        /// The node's words.
        message: String,
    },
    /// The node refused the placement: fewer eligible providers than the redundancy needs.
    #[error("not enough providers for this redundancy: {message}")]
    NotEnoughProviders {
        /// The node's words.
        message: String,
    },
    /// The file is stored on the node itself, not on providers (its entry has no
    /// `redundancy`).
    #[error("file {file} of token {token_id} is not stored on the provider network")]
    NotNetworkFile {
        /// The token.
        token_id: u64,
        /// The file's id.
        file: u64,
    },
}

impl From<crate::Error> for NetworkError {
    fn from(e: crate::Error) -> Self {
        Self::Client(Box::new(e))
    }
}

/// What is wrong with a piece a provider answered (or with its receipt).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PieceFault {
    /// Not of the size the manifest records.
    #[error("piece is {got} bytes, expected {expected}")]
    Size {
        /// The size recorded.
        expected: u64,
        /// The size received.
        got: u64,
    },
    /// Its CID is not the one recorded.
    #[error("piece hashes to {got}, expected {expected}")]
    Cid {
        /// The CID recorded.
        expected: Box<Cid>,
        /// The CID of the bytes received.
        got: Box<Cid>,
    },
    /// Its Merkle root is not the one recorded.
    #[error("piece root is {got}, expected {expected}")]
    Root {
        /// The root recorded.
        expected: B256,
        /// The root of the bytes received.
        got: B256,
    },
    /// Its digest could not be computed.
    #[error("piece unreadable: {0}")]
    Unreadable(String),
    /// The receipt names another CID, root, depth, size, order or provider than the piece
    /// sent.
    #[error("receipt does not match the piece sent: {0}")]
    Receipt(String),
    /// The receipt is not signed by the provider.
    #[error("receipt signed by {signer}, not by the provider {provider}")]
    ReceiptSigner {
        /// Who signed it.
        signer: Address,
        /// The provider.
        provider: Address,
    },
}
