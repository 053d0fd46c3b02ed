// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IStorageNFT} from "./IStorageNFT.sol";

/// @title ITokenRenderer
/// @notice Builds a storage token's metadata URI from its state. Kept out of StorageNFT so the
/// token contract stays under the contract size limit.
interface ITokenRenderer {
    /// @notice A `data:application/json;base64,...` URI with the token's quota, usage, file
    /// count, last sync time and IPNS name.
    /// @param tokenId The token.
    /// @param info The token's state (`IStorageNFT.tokenInfo`).
    /// @return uri The metadata URI.
    function tokenURI(uint256 tokenId, IStorageNFT.TokenInfo calldata info)
        external
        pure
        returns (string memory uri);
}
