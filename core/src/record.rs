//! The usage record: what a storage node publishes under a token's IPNS name after every change,
//! and what the oracle verifies before it writes usage on chain.
//!
//! The record is small and bounded (O(1) in the number of files): the file list lives in its
//! own IPFS objects, referenced by `index`. It is bound to one chain, contract and token, so a
//! record cannot be replayed for another token or deployment, and carries a sequence number
//! that increases with every publish.
//!
//! ```
//! use px_core::record::{UsageRecord, MAX_RECORD_BYTES};
//! let json = br#"{"version":1,"chainId":31337,"contract":"0x0165878A594ca255338adfa4d48449f69242Eb8F",
//!   "tokenId":1,"quota":1024,"used":12,"fileCount":1,"seq":3,
//!   "index":"QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH","updatedAt":1700000000}"#;
//! let record = UsageRecord::parse(json, MAX_RECORD_BYTES).unwrap();
//! assert_eq!(record.seq, 3);
//! ```

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};

/// The schema version this crate writes and accepts.
pub const RECORD_VERSION: u32 = 1;

/// Default upper bound on a usage record's encoded size (64 KiB).
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// A token's usage as published by its storage node (schema version 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageRecord {
    /// Schema version, [`RECORD_VERSION`].
    pub version: u32,
    /// Chain id of the StorageNFT deployment.
    pub chain_id: u64,
    /// StorageNFT contract address.
    pub contract: Address,
    /// Token id.
    pub token_id: u64,
    /// Quota in bytes the node enforced when it wrote the record.
    pub quota: u64,
    /// Bytes stored for the token.
    pub used: u64,
    /// Number of files stored for the token.
    pub file_count: u64,
    /// Sequence number: strictly increasing with every publish for the token.
    pub seq: u64,
    /// CID of the root of the token's file index.
    pub index: String,
    /// Unix time (seconds) the record was written.
    pub updated_at: u64,
}

/// Why a usage record was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record is larger than allowed.
    #[error("usage record is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The record is not valid JSON of the expected shape.
    #[error("usage record is not valid: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The record declares a schema version this crate does not know.
    #[error("usage record has schema version {0}, expected {RECORD_VERSION}")]
    UnknownVersion(u32),
    /// The record is bound to another chain, contract or token.
    #[error(
        "usage record is for chain {chain_id} contract {contract} token {token_id}, expected chain \
         {expected_chain_id} contract {expected_contract} token {expected_token_id}"
    )]
    WrongBinding {
        /// Chain id in the record.
        chain_id: u64,
        /// Contract in the record.
        contract: Address,
        /// Token in the record.
        token_id: u64,
        /// Chain id expected.
        expected_chain_id: u64,
        /// Contract expected.
        expected_contract: Address,
        /// Token expected.
        expected_token_id: u64,
    },
}

impl UsageRecord {
    /// Parses and checks the size and schema version of an encoded record.
    pub fn parse(bytes: &[u8], max_len: usize) -> Result<Self, RecordError> {
        if bytes.len() > max_len {
            return Err(RecordError::TooLarge {
                size: bytes.len(),
                limit: max_len,
            });
        }
        // Peek at the version first, so a newer schema reports as such, not as a field error.
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let Version { version } = serde_json::from_slice(bytes)?;
        if version != RECORD_VERSION {
            return Err(RecordError::UnknownVersion(version));
        }
        Ok(serde_json::from_slice(bytes)?)
    }

    /// Checks that the record is bound to `chain_id`, `contract` and `token_id`.
    pub fn check_binding(
        &self,
        chain_id: u64,
        contract: Address,
        token_id: u64,
    ) -> Result<(), RecordError> {
        if self.chain_id == chain_id && self.contract == contract && self.token_id == token_id {
            return Ok(());
        }
        Err(RecordError::WrongBinding {
            chain_id: self.chain_id,
            contract: self.contract,
            token_id: self.token_id,
            expected_chain_id: chain_id,
            expected_contract: contract,
            expected_token_id: token_id,
        })
    }

    /// The canonical encoding (compact JSON) the node publishes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a usage record always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> UsageRecord {
        UsageRecord {
            version: RECORD_VERSION,
            chain_id: 31337,
            contract: Address::repeat_byte(0x11),
            token_id: 7,
            quota: 1 << 30,
            used: 4096,
            file_count: 2,
            seq: 9,
            index: "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH".into(),
            updated_at: 1_700_000_000,
        }
    }

    #[test]
    fn round_trips() {
        let r = sample();
        assert_eq!(
            UsageRecord::parse(&r.to_bytes(), MAX_RECORD_BYTES).unwrap(),
            r
        );
    }

    #[test]
    fn rejects_oversized() {
        let bytes = sample().to_bytes();
        let err = UsageRecord::parse(&bytes, bytes.len() - 1).unwrap_err();
        assert!(matches!(err, RecordError::TooLarge { .. }));
    }

    #[test]
    fn rejects_other_versions_and_garbage() {
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        v["version"] = 2.into();
        let err = UsageRecord::parse(&serde_json::to_vec(&v).unwrap(), MAX_RECORD_BYTES);
        assert!(matches!(err, Err(RecordError::UnknownVersion(2))));
        assert!(matches!(
            UsageRecord::parse(b"not json", MAX_RECORD_BYTES),
            Err(RecordError::Malformed(_))
        ));
        v["version"] = 1.into();
        v["extra"] = true.into();
        assert!(matches!(
            UsageRecord::parse(&serde_json::to_vec(&v).unwrap(), MAX_RECORD_BYTES),
            Err(RecordError::Malformed(_))
        ));
    }

    #[test]
    fn checks_binding() {
        let r = sample();
        assert!(
            r.check_binding(31337, Address::repeat_byte(0x11), 7)
                .is_ok()
        );
        assert!(r.check_binding(1, Address::repeat_byte(0x11), 7).is_err());
        assert!(
            r.check_binding(31337, Address::repeat_byte(0x12), 7)
                .is_err()
        );
        assert!(
            r.check_binding(31337, Address::repeat_byte(0x11), 8)
                .is_err()
        );
    }
}
