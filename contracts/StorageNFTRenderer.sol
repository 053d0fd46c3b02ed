// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Base64} from "@openzeppelin/contracts/utils/Base64.sol";
import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";

import {IStorageNFT} from "./interfaces/IStorageNFT.sol";
import {ITokenRenderer} from "./interfaces/ITokenRenderer.sol";
import {IpnsName} from "./libraries/IpnsName.sol";

/// @title StorageNFTRenderer
/// @notice On-the-fly JSON metadata for storage tokens (ERC-721 metadata JSON schema with
/// OpenSea-style attributes). Stateless.
contract StorageNFTRenderer is ITokenRenderer {
    /// @inheritdoc ITokenRenderer
    function tokenURI(uint256 tokenId, IStorageNFT.TokenInfo calldata info)
        external
        pure
        returns (string memory)
    {
        string memory json = string.concat(
            '{"name":"PX Storage #',
            Strings.toString(tokenId),
            '","description":"Storage quota synced from the IPNS usage record of the token.",',
            '"attributes":[',
            _attributes(info),
            "]}"
        );
        return string.concat("data:application/json;base64,", Base64.encode(bytes(json)));
    }

    function _attributes(IStorageNFT.TokenInfo calldata info) private pure returns (string memory) {
        string memory key = info.ipnsKey == bytes32(0) ? "" : IpnsName.toText(info.ipnsKey);
        return string.concat(
            string.concat(
                '{"trait_type":"Quota (bytes)","value":',
                Strings.toString(info.quota),
                '},{"trait_type":"Used (bytes)","value":',
                Strings.toString(info.used),
                '},{"trait_type":"Files","value":',
                Strings.toString(info.fileCount)
            ),
            '},{"trait_type":"Last sync","display_type":"date","value":',
            Strings.toString(info.lastSyncAt),
            '},{"trait_type":"IPNS name","value":"',
            key,
            '"}'
        );
    }
}
