// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title SyncRequest
/// @notice How StorageNFT identifies and encodes its Chainlink sync requests.
/// @dev The Operator derives a request's id from the requester and the nonce it is sent with,
/// as ChainlinkClient does; StorageNFT numbers each token's requests, so the nonce (and with it
/// the id of a token's pending request) follows from the token and its request count.
library SyncRequest {
    /// @notice The Operator nonce of a token's `n`-th request: unique per token and request.
    /// @param tokenId The token (below 2^64).
    /// @param n The request's number (below 2^32).
    /// @return The nonce.
    function nonce(uint256 tokenId, uint256 n) internal pure returns (uint256) {
        return (tokenId << 32) | n;
    }

    /// @notice The id the Operator gives a request sent by `requester` with `nonce_`.
    /// @param requester The requesting contract.
    /// @param nonce_ The nonce.
    /// @return The request id.
    function id(address requester, uint256 nonce_) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(requester, nonce_));
    }

    /// @notice The request's CBOR parameters `{"tokenId": tokenId}`, byte for byte what
    /// Chainlink's `Request._addUint("tokenId", tokenId)` writes (the map entry without a map
    /// header, the shortest unsigned-integer form).
    /// @param tokenId The token (below 2^64).
    /// @return The CBOR bytes.
    function params(uint256 tokenId) internal pure returns (bytes memory) {
        bytes memory key = abi.encodePacked(hex"67", "tokenId");
        // casting is safe in each branch: the value is below the width it is cast to
        // forge-lint: disable-start(unsafe-typecast)
        if (tokenId < 24) return abi.encodePacked(key, uint8(tokenId));
        if (tokenId <= type(uint8).max) return abi.encodePacked(key, hex"18", uint8(tokenId));
        if (tokenId <= type(uint16).max) return abi.encodePacked(key, hex"19", uint16(tokenId));
        if (tokenId <= type(uint32).max) return abi.encodePacked(key, hex"1a", uint32(tokenId));
        return abi.encodePacked(key, hex"1b", uint64(tokenId));
        // forge-lint: disable-end(unsafe-typecast)
    }
}
