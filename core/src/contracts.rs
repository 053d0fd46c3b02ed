//! Contract bindings, generated at compile time from the ABI JSON in `core/abi/`.
//!
//! `make abi` refreshes those files from the forge build; `make test` fails when they are stale.

#![allow(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::too_many_arguments
)]

/// Generates the bindings of one contract from its ABI JSON, with alloy's contract instances
/// when the `rpc` feature is on.
macro_rules! bindings {
    ($($name:ident => $abi:tt),* $(,)?) => {
        $(
            #[cfg(feature = "rpc")]
            alloy::sol!(
                #[sol(rpc)]
                #[derive(Debug, PartialEq, Eq)]
                $name,
                $abi
            );
            #[cfg(not(feature = "rpc"))]
            alloy::sol!(
                #[derive(Debug, PartialEq, Eq)]
                $name,
                $abi
            );
        )*
    };
}

bindings! {
    StorageNFT => "abi/StorageNFT.json",
    PXToken => "abi/PXToken.json",
    ProviderRegistry => "abi/ProviderRegistry.json",
    StorageMarket => "abi/StorageMarket.json",
    Operator => "abi/Operator.json",
    LinkToken => "abi/LinkToken.json",
}

/// Status codes of a sync answer (`contracts/libraries/SyncStatus.sol`).
pub mod sync_status {
    /// The record was verified; usage is carried in the answer.
    pub const OK: u8 = 0;
    /// No record could be found for the token's IPNS name.
    pub const RECORD_NOT_FOUND: u8 = 1;
    /// The IPNS record's signature or encoding is invalid for the token's name.
    pub const BAD_SIGNATURE: u8 = 2;
    /// The IPNS record's validity (EOL) has passed.
    pub const RECORD_EXPIRED: u8 = 3;
    /// The record carries only a V1 signature and V1-only records are not accepted.
    pub const V1_ONLY: u8 = 4;
    /// The usage record is too large, not JSON, or of an unknown schema version.
    pub const BAD_USAGE_RECORD: u8 = 5;
    /// The usage record is bound to another chain, contract or token.
    pub const WRONG_BINDING: u8 = 6;
    /// The IPFS backend could not be reached before the request expired.
    pub const IPFS_UNAVAILABLE: u8 = 7;
    /// The record's sequence number is lower than one the oracle already saw.
    pub const SEQUENCE_REGRESSED: u8 = 8;
    /// Recorded by the contract: an `OK` answer without a record CID.
    pub const MALFORMED_ANSWER: u8 = 253;
    /// Recorded by the contract: the answer names another token than its request.
    pub const WRONG_TOKEN: u8 = 254;
    /// Recorded by the contract: the record is not newer than the last synced one.
    pub const STALE_SEQUENCE: u8 = 255;
}

/// Why `canUpload` refuses an upload (`IStorageNFT.Reason`), in contract order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GateReason {
    /// Upload allowed.
    None,
    /// The contract is paused.
    Paused,
    /// The token does not exist.
    NoToken,
    /// The token's plan expired.
    Expired,
    /// The token has no IPNS key.
    NoKey,
    /// The token was not synced within the sync window.
    NotSynced,
    /// The upload would exceed the quota.
    QuotaExceeded,
}

impl GateReason {
    /// Maps the contract's `Reason` enum value.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::None,
            1 => Self::Paused,
            2 => Self::NoToken,
            3 => Self::Expired,
            4 => Self::NoKey,
            5 => Self::NotSynced,
            6 => Self::QuotaExceeded,
            _ => return None,
        })
    }

    /// A short human-readable form, e.g. "not synced".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Paused => "paused",
            Self::NoToken => "no such token",
            Self::Expired => "plan expired",
            Self::NoKey => "no IPNS key bound",
            Self::NotSynced => "not synced",
            Self::QuotaExceeded => "quota exceeded",
        }
    }
}

impl std::fmt::Display for GateReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The 38-byte binary IPNS name of an ed25519 key as StorageNFT stores it: the libp2p identity
/// multihash `0x00 0x24 0x08 0x01 0x12 0x20 || pubkey`.
pub fn ipns_name_bytes(ed25519_pubkey: &[u8; 32]) -> [u8; 38] {
    let mut out = [0u8; 38];
    out[..6].copy_from_slice(&IPNS_NAME_PREFIX);
    out[6..].copy_from_slice(ed25519_pubkey);
    out
}

/// The constant prefix of a binary ed25519 IPNS name (see [`ipns_name_bytes`]).
pub const IPNS_NAME_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_reason_round_trips_contract_order() {
        for v in 0..=6u8 {
            let r = GateReason::from_u8(v).unwrap();
            assert_eq!(r as u8, v);
        }
        assert_eq!(GateReason::from_u8(7), None);
        assert_eq!(GateReason::NotSynced.to_string(), "not synced");
    }
}
