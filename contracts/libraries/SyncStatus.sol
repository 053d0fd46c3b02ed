// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title SyncStatus
/// @notice Status codes carried by a sync answer (`IStorageNFT.fulfillSync`). The oracle sends
/// `OK` with verified usage, or one of the error codes below with zero usage; the contract
/// itself records `STALE_SEQUENCE`, `WRONG_TOKEN` and `MALFORMED_ANSWER` for answers it cannot
/// apply.
library SyncStatus {
    /// @notice The record was verified and its usage is carried in the answer.
    uint8 internal constant OK = 0;
    /// @notice No record could be found for the token's IPNS name.
    uint8 internal constant RECORD_NOT_FOUND = 1;
    /// @notice The IPNS record's signature or encoding is invalid for the token's name.
    uint8 internal constant BAD_SIGNATURE = 2;
    /// @notice The IPNS record's validity (EOL) has passed.
    uint8 internal constant RECORD_EXPIRED = 3;
    /// @notice The record carries only a V1 signature and V1-only records are not accepted.
    uint8 internal constant V1_ONLY = 4;
    /// @notice The usage record is too large, not JSON, or of an unknown schema version.
    uint8 internal constant BAD_USAGE_RECORD = 5;
    /// @notice The usage record is bound to another chain, contract or token.
    uint8 internal constant WRONG_BINDING = 6;
    /// @notice The IPFS backend could not be reached before the request expired.
    uint8 internal constant IPFS_UNAVAILABLE = 7;
    /// @notice The record's sequence number is lower than one the oracle already saw.
    uint8 internal constant SEQUENCE_REGRESSED = 8;
    /// @notice Recorded by the contract: an `OK` answer without a record CID.
    uint8 internal constant MALFORMED_ANSWER = 253;
    /// @notice Recorded by the contract: the answer names another token than its request's.
    uint8 internal constant WRONG_TOKEN = 254;
    /// @notice Recorded by the contract: the record is not newer than the last synced one.
    uint8 internal constant STALE_SEQUENCE = 255;
}
