//! IPNS records per the IPNS Record specification (specs.ipfs.tech/ipns/ipns-record).
//!
//! A record is a protobuf `IpnsEntry`. Its authoritative content is the `data` field, a DAG-CBOR
//! map `{Value, Validity, ValidityType, Sequence, TTL}`, signed by `signatureV2` over the bytes
//! `"ipns-signature:" || data`. The legacy V1 fields (`value`, `validity`, `validityType`,
//! `sequence`, `ttl`, and `signatureV1` over `value || validity || "EOL"`) are still written for
//! old readers, and when present must agree with `data`.
//!
//! - [`create_record`] signs a record with both signatures, as Kubo does.
//! - [`verify_record`] checks a record against the name it was fetched for, following the
//!   specification's verification steps, and returns the [`VerifiedRecord`]. It needs nothing
//!   but the bytes and the name, so a client (the oracle) can verify a record obtained from an
//!   untrusted daemon through `routing/get`.
//! - [`VerifyOptions::allow_v1_only`] accepts records that carry only the V1 signature (BTFS
//!   writes those). The specification calls them invalid, so it is off by default.
//! - [`IpnsName`] converts between the textual name (`k51...`) and the raw identity-multihash
//!   bytes the contracts store.
//!
//! The protobuf codec ([`IpnsEntry`]) is hand-written: nine scalar fields, and a strict reader
//! is easier to audit than generated code.

mod name;
mod record;
pub mod time;

pub use name::{ED25519_NAME_PREFIX, IpnsName, LIBP2P_KEY_CODEC};
pub use record::{
    IpnsEntry, MAX_RECORD_SIZE, SignatureKind, VerifiedRecord, VerifyOptions, create_record,
    verify_record,
};

/// Why an IPNS record or name was rejected.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpnsError {
    /// The name is not a valid IPNS name / peer id.
    #[error("invalid IPNS name: {0}")]
    InvalidName(String),
    /// The record exceeds the 10 KiB limit of the specification.
    #[error("record is {0} bytes, over the {MAX_RECORD_SIZE} byte limit")]
    TooLarge(usize),
    /// The bytes are not a valid `IpnsEntry` protobuf.
    #[error("malformed record protobuf: {0}")]
    Malformed(&'static str),
    /// The record has no V2 signature (or no `data`) and V1-only records are not accepted.
    #[error("record has no V2 signature")]
    MissingSignatureV2,
    /// V1-only mode: the record has no V1 signature either.
    #[error("record has no signature")]
    MissingSignature,
    /// The public key could not be obtained (not inlined in the name and not embedded).
    #[error("public key not found in name or record")]
    MissingPublicKey,
    /// The embedded public key is malformed.
    #[error("invalid public key in record")]
    InvalidPublicKey,
    /// The embedded public key does not belong to the name.
    #[error("public key in record does not match the name")]
    PublicKeyMismatch,
    /// The V2 signature does not verify.
    #[error("V2 signature is invalid")]
    InvalidSignatureV2,
    /// The V1 signature does not verify (V1-only mode).
    #[error("V1 signature is invalid")]
    InvalidSignatureV1,
    /// `data` is not the expected DAG-CBOR map.
    #[error("malformed record data: {0}")]
    MalformedData(String),
    /// A V1 protobuf field disagrees with the signed `data`.
    #[error("record field {0} does not match the signed data")]
    FieldMismatch(&'static str),
    /// Only `ValidityType` 0 (EOL) is defined.
    #[error("unsupported validity type {0}")]
    UnsupportedValidityType(u64),
    /// The validity is not an RFC 3339 timestamp.
    #[error("invalid validity timestamp")]
    InvalidValidity,
    /// The record's end of life has passed.
    #[error("record expired at {0}")]
    Expired(String),
    /// The value is not UTF-8.
    #[error("record value is not UTF-8")]
    InvalidValue,
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(String),
}
