//! The core both faces share: from a token id to a verified usage answer.
//!
//! 1. Read the token's IPNS name from StorageNFT (`ipnsName`); a name supplied by a request is
//!    never used.
//! 2. Fetch the raw record with `routing/get` and verify it locally
//!    ([`px_core::ipns::verify_record`]): V2 signature against the name, end of life, V1-only
//!    records only in BTFS mode. A record whose IPNS sequence is below one already verified for
//!    the name is a regression (a daemon replaying an old record); the floor is kept in the
//!    relayer's database when it runs ([`SequenceFloor`]).
//! 3. `cat` the value (`/ipfs/<cid>`) with a size limit and check the bytes hash to that CID,
//!    so the daemon cannot substitute content.
//! 4. Parse the usage record, check its binding to this chain, contract and token, and that its
//!    sequence is not below the one synced on chain.
//!
//! A record problem is a [`Rejection`], answered on chain with its status code; only
//! infrastructure failures (chain RPC, IPFS unreachable) are errors, which the caller retries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use alloy::eips::BlockId;
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::DynProvider;
use cid::Cid;
use px_core::contracts::{StorageNFT, sync_status};
use px_core::importer::{ImportOptions, cid_of};
use px_core::ipns::{
    IpnsEntry, IpnsError, IpnsName, MAX_RECORD_SIZE, SignatureKind, VerifyOptions, verify_record,
};
use px_core::record::{RecordError, UsageRecord};
use serde::Serialize;
use tracing::instrument;

use crate::error::{Error, Result};
use crate::ipfs::{Ipfs, IpfsError};

/// Why a record was not accepted. Each maps to a status code the contract records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The token has no IPNS name, or no record or content exists for it.
    #[error("record not found: {0}")]
    NotFound(String),
    /// The IPNS record is malformed or its signature does not verify for the token's name.
    #[error("invalid IPNS record: {0}")]
    BadSignature(String),
    /// The IPNS record's end of life has passed.
    #[error("IPNS record expired: {0}")]
    Expired(String),
    /// The record carries only a V1 signature and V1-only records are not enabled.
    #[error("IPNS record has only a V1 signature")]
    V1Only,
    /// The usage record is too large, not JSON, of an unknown version, or not the content of
    /// its CID.
    #[error("invalid usage record: {0}")]
    BadUsageRecord(String),
    /// The usage record is bound to another chain, contract or token.
    #[error("usage record bound elsewhere: {0}")]
    WrongBinding(String),
    /// A sequence number went backwards.
    #[error("sequence regressed: {0}")]
    SequenceRegressed(String),
}

impl Rejection {
    /// The status code the contract records (`px_core::contracts::sync_status`).
    pub fn status(&self) -> u8 {
        match self {
            Self::NotFound(_) => sync_status::RECORD_NOT_FOUND,
            Self::BadSignature(_) => sync_status::BAD_SIGNATURE,
            Self::Expired(_) => sync_status::RECORD_EXPIRED,
            Self::V1Only => sync_status::V1_ONLY,
            Self::BadUsageRecord(_) => sync_status::BAD_USAGE_RECORD,
            Self::WrongBinding(_) => sync_status::WRONG_BINDING,
            Self::SequenceRegressed(_) => sync_status::SEQUENCE_REGRESSED,
        }
    }

    /// A short stable name for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "record_not_found",
            Self::BadSignature(_) => "bad_signature",
            Self::Expired(_) => "record_expired",
            Self::V1Only => "v1_only",
            Self::BadUsageRecord(_) => "bad_usage_record",
            Self::WrongBinding(_) => "wrong_binding",
            Self::SequenceRegressed(_) => "sequence_regressed",
        }
    }
}

/// The answer for one token: what goes into `fulfillSync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    /// The token.
    pub token_id: U256,
    /// `sync_status::OK` or an error status.
    pub status: u8,
    /// Bytes used (0 unless OK).
    pub used: u64,
    /// Files stored (0 unless OK).
    pub file_count: u32,
    /// Sequence number of the usage record (0 unless OK).
    pub seq: u64,
    /// Binary CID of the usage record (empty unless OK).
    pub record_cid: Bytes,
    /// Why the record was rejected (None when OK).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Answer {
    /// An error answer: no usage.
    pub fn rejected(token_id: U256, rejection: &Rejection) -> Self {
        Self {
            token_id,
            status: rejection.status(),
            used: 0,
            file_count: 0,
            seq: 0,
            record_cid: Bytes::new(),
            reason: Some(rejection.to_string()),
        }
    }

    /// An `IPFS_UNAVAILABLE` answer, given up on when a request is about to expire.
    pub fn unavailable(token_id: U256, why: &str) -> Self {
        Self {
            token_id,
            status: sync_status::IPFS_UNAVAILABLE,
            used: 0,
            file_count: 0,
            seq: 0,
            record_cid: Bytes::new(),
            reason: Some(format!("IPFS backend unavailable: {why}")),
        }
    }

    /// The record CID in text form, if any.
    pub fn cid_string(&self) -> Option<String> {
        Cid::try_from(self.record_cid.as_ref())
            .ok()
            .map(|c| c.to_string())
    }
}

/// The highest IPNS sequence number verified per name, so a daemon cannot replay an older
/// (validly signed) record. [`MemoryFloor`] keeps it for the process; the relayer's database
/// keeps it across restarts.
pub trait SequenceFloor: Send + Sync + std::fmt::Debug {
    /// If `seq` is below the recorded floor for `name`, returns the floor; otherwise raises
    /// the floor to `seq` and returns `None`.
    fn check_and_raise(&self, name: &IpnsName, seq: u64) -> Result<Option<u64>>;
}

/// An in-memory [`SequenceFloor`].
#[derive(Debug, Default)]
pub struct MemoryFloor(Mutex<HashMap<IpnsName, u64>>);

impl SequenceFloor for MemoryFloor {
    fn check_and_raise(&self, name: &IpnsName, seq: u64) -> Result<Option<u64>> {
        let mut map = self.0.lock().expect("sequence floor lock");
        let floor = map.entry(*name).or_insert(0);
        if seq < *floor {
            return Ok(Some(*floor));
        }
        *floor = seq;
        Ok(None)
    }
}

/// Settings of the resolver.
#[derive(Debug, Clone, Copy)]
pub struct ResolverOptions {
    /// Accept IPNS records carrying only a V1 signature (BTFS mode).
    pub allow_v1_only: bool,
    /// Largest usage record accepted, in bytes.
    pub max_record_bytes: usize,
}

/// Resolves tokens to verified usage answers.
#[derive(Debug, Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    nft: StorageNFT::StorageNFTInstance<DynProvider>,
    chain_id: u64,
    contract: Address,
    ipfs: Arc<dyn Ipfs>,
    opts: ResolverOptions,
    /// Highest IPNS sequence verified per name.
    floor: Arc<dyn SequenceFloor>,
}

/// Whether a contract call error is the contract's answer (a revert, see
/// [`crate::error::is_revert`]); anything else is the RPC's failure, retried.
pub(crate) fn is_revert(e: &alloy::contract::Error) -> bool {
    matches!(e, alloy::contract::Error::TransportError(t) if crate::error::is_revert(t))
}

impl Resolver {
    /// A resolver reading StorageNFT at `contract` on chain `chain_id` through `provider`.
    pub fn new(
        provider: DynProvider,
        chain_id: u64,
        contract: Address,
        ipfs: Arc<dyn Ipfs>,
        opts: ResolverOptions,
        floor: Arc<dyn SequenceFloor>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                nft: StorageNFT::new(contract, provider),
                chain_id,
                contract,
                ipfs,
                opts,
                floor,
            }),
        }
    }

    /// Whether the IPFS daemon answers (for `/health`).
    pub async fn ipfs_reachable(&self) -> std::result::Result<(), IpfsError> {
        self.inner.ipfs.ping().await
    }

    /// The StorageNFT contract address.
    pub fn contract(&self) -> Address {
        self.inner.contract
    }

    /// Resolves `token_id`. `Err` only for failures worth retrying or a token that does not
    /// exist; every record problem is an `Ok` answer with an error status.
    #[instrument(target = "oracle::resolver", skip(self), fields(token_id = %token_id))]
    pub async fn resolve(&self, token_id: U256) -> Result<Answer> {
        self.resolve_at(token_id, None).await
    }

    /// [`Resolver::resolve`] reading the contract at block `at` (the latest if `None`), so a
    /// backend lagging behind the request's block cannot make the token look absent.
    pub async fn resolve_at(&self, token_id: U256, at: Option<u64>) -> Result<Answer> {
        match self.verify(token_id, at).await {
            Ok(answer) => Ok(answer),
            Err(Failure::Rejected(r)) => {
                tracing::info!(target: "oracle::resolver", %token_id, reason = r.reason(), detail = %r, "record rejected");
                Ok(Answer::rejected(token_id, &r))
            }
            Err(Failure::Error(e)) => Err(e),
        }
    }

    async fn verify(
        &self,
        token_id: U256,
        at: Option<u64>,
    ) -> std::result::Result<Answer, Failure> {
        let inner = &*self.inner;
        let block = at.map_or(BlockId::latest(), BlockId::number);
        let Ok(token) = u64::try_from(token_id) else {
            return Err(Rejection::WrongBinding(format!(
                "token id {token_id} does not fit a usage record"
            ))
            .into());
        };
        let name_bytes = inner
            .nft
            .ipnsName(token_id)
            .block(block)
            .call()
            .await
            .map_err(|e| {
                if is_revert(&e) {
                    Error::TokenNotFound(token_id)
                } else {
                    Error::Rpc(e.to_string())
                }
            })?;
        if name_bytes.is_empty() {
            return Err(Rejection::NotFound(format!("token {token_id} has no IPNS name")).into());
        }
        let name = IpnsName::from_bytes(&name_bytes)
            .map_err(|e| Rejection::BadSignature(format!("on-chain name: {e}")))?;

        let raw = inner
            .ipfs
            .routing_get(&name, MAX_RECORD_SIZE)
            .await
            .map_err(|e| ipfs_failure(e, "IPNS record"))?;
        let opts = VerifyOptions {
            allow_v1_only: inner.opts.allow_v1_only,
            now: None,
        };
        let record = verify_record(&name, &raw, &opts).map_err(|e| ipns_rejection(e, &raw))?;
        // A V1 signature covers the value and validity but not the sequence: anyone serving a
        // genuine V1-only record can set any sequence, so it neither raises nor is held to the
        // floor (a V1-only record with sequence 2^64-1 must not lock the name).
        if record.signature == SignatureKind::V2 {
            let floor = Arc::clone(&inner.floor);
            let seq = record.sequence;
            // The floor may be a durable database: its commit stays off the async workers.
            let regressed = tokio::task::spawn_blocking(move || floor.check_and_raise(&name, seq))
                .await
                .map_err(|e| Error::Db(format!("sequence floor task: {e}")))??;
            if let Some(floor) = regressed {
                return Err(Rejection::SequenceRegressed(format!(
                    "IPNS sequence {seq} below {floor} already verified for {name}"
                ))
                .into());
            }
        }

        let cid = record
            .value
            .strip_prefix("/ipfs/")
            .and_then(|c| Cid::try_from(c).ok())
            .ok_or_else(|| {
                Rejection::BadUsageRecord(format!(
                    "IPNS value {:?} is not /ipfs/<cid>",
                    record.value
                ))
            })?;
        let limit = inner.opts.max_record_bytes;
        let bytes = inner.ipfs.cat(&cid, limit).await.map_err(|e| match e {
            IpfsError::TooLarge { limit } => {
                Rejection::BadUsageRecord(format!("usage record over the {limit}-byte limit"))
                    .into()
            }
            e => ipfs_failure(e, "usage record"),
        })?;
        check_content(&cid, &bytes)?;

        let usage = UsageRecord::parse(&bytes, limit).map_err(record_rejection)?;
        usage
            .check_binding(inner.chain_id, inner.contract, token)
            .map_err(record_rejection)?;
        let file_count = u32::try_from(usage.file_count).map_err(|_| {
            Rejection::BadUsageRecord(format!("file count {} over 2^32", usage.file_count))
        })?;
        let info = inner
            .nft
            .tokenInfo(token_id)
            .block(block)
            .call()
            .await
            .map_err(|e| Error::Rpc(e.to_string()))?;
        if usage.seq < info.seq {
            return Err(Rejection::SequenceRegressed(format!(
                "usage record sequence {} below {} synced on chain",
                usage.seq, info.seq
            ))
            .into());
        }
        Ok(Answer {
            token_id,
            status: sync_status::OK,
            used: usage.used,
            file_count,
            seq: usage.seq,
            record_cid: Bytes::from(cid.to_bytes()),
            reason: None,
        })
    }
}

/// Checks that `bytes` are the content of `cid` as Kubo imports a small file (CIDv0 dag-pb, or
/// CIDv1 with raw leaves).
fn check_content(cid: &Cid, bytes: &[u8]) -> std::result::Result<(), Failure> {
    let opts = if cid.version() == cid::Version::V0 {
        ImportOptions::default()
    } else {
        ImportOptions::v1()
    };
    let computed = cid_of(bytes, &opts)
        .map_err(|e| Rejection::BadUsageRecord(format!("cannot hash content: {e}")))?;
    if computed.cid != *cid {
        return Err(Rejection::BadUsageRecord(format!(
            "content served for {cid} hashes to {}",
            computed.cid
        ))
        .into());
    }
    Ok(())
}

enum Failure {
    Rejected(Rejection),
    Error(Error),
}

impl From<Rejection> for Failure {
    fn from(r: Rejection) -> Self {
        Self::Rejected(r)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::Error(e)
    }
}

fn ipfs_failure(e: IpfsError, what: &str) -> Failure {
    match e {
        IpfsError::NotFound(m) => Rejection::NotFound(format!("{what}: {m}")).into(),
        IpfsError::TooLarge { limit } => {
            Rejection::BadSignature(format!("{what} over the {limit}-byte limit")).into()
        }
        IpfsError::Unavailable(m) => Error::IpfsUnavailable(m).into(),
    }
}

fn ipns_rejection(e: IpnsError, raw: &[u8]) -> Failure {
    match e {
        IpnsError::Expired(at) => Rejection::Expired(format!("end of life {at} has passed")),
        IpnsError::MissingSignatureV2 => {
            let has_v1 = IpnsEntry::decode(raw)
                .ok()
                .and_then(|entry| entry.signature_v1)
                .is_some_and(|s| !s.is_empty());
            if has_v1 {
                Rejection::V1Only
            } else {
                Rejection::BadSignature(e.to_string())
            }
        }
        other => Rejection::BadSignature(other.to_string()),
    }
    .into()
}

fn record_rejection(e: RecordError) -> Failure {
    match e {
        e @ RecordError::WrongBinding { .. } => Rejection::WrongBinding(e.to_string()),
        other => Rejection::BadUsageRecord(other.to_string()),
    }
    .into()
}
