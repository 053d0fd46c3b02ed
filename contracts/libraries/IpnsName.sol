// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IpnsName
/// @notice Conversions between an IPNS name for an ed25519 key and its compact on-chain form.
/// @dev The name of an ed25519 key is the libp2p peer id: an identity multihash (0x00, length
/// 0x24) over the protobuf-encoded public key (0x08 0x01 = KeyType Ed25519, 0x12 0x20 = 32-byte
/// data field). Only the 32-byte key varies, so only it is stored. The text form is a CIDv1
/// (0x01) with the libp2p-key codec (0x72) in lowercase base36 with the multibase prefix `k`.
library IpnsName {
    /// @notice Length of the binary IPNS name of an ed25519 key.
    uint256 internal constant LENGTH = 38;
    /// @notice The constant first six bytes of every ed25519 IPNS name.
    bytes6 internal constant PREFIX = 0x002408011220;

    bytes private constant _BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz";

    /// @notice Extracts the ed25519 public key from a binary IPNS name.
    /// @return key The public key, or 0 if `name` is not an ed25519 identity multihash.
    function toKey(bytes calldata name) internal pure returns (bytes32 key) {
        if (name.length != LENGTH || bytes6(name[:6]) != PREFIX) return bytes32(0);
        key = bytes32(name[6:]);
    }

    /// @notice The binary IPNS name of an ed25519 public key.
    function toName(bytes32 key) internal pure returns (bytes memory) {
        return abi.encodePacked(PREFIX, key);
    }

    /// @notice The `k51...` text form of the IPNS name of an ed25519 public key.
    function toText(bytes32 key) internal pure returns (string memory) {
        // CIDv1 bytes: 0x01 0x72 || name (40 bytes), read as a big-endian number.
        bytes memory num = abi.encodePacked(bytes2(0x0172), PREFIX, key);
        // 40 bytes need at most ceil(320 / log2(36)) = 62 digits.
        bytes memory digits = new bytes(62);
        uint256 count = 0;
        uint256 start = 0; // first non-zero byte of `num`
        while (start < num.length) {
            uint256 rem = 0;
            for (uint256 i = start; i < num.length; ++i) {
                uint256 acc = (rem << 8) | uint8(num[i]);
                // casting is safe: acc < 36 * 256, so acc / 36 < 256
                // forge-lint: disable-next-line(unsafe-typecast)
                num[i] = bytes1(uint8(acc / 36));
                rem = acc % 36;
            }
            digits[count++] = _BASE36[rem];
            while (start < num.length && num[start] == 0) ++start;
        }
        // The leading 0x01 byte is non-zero, so no leading-zero digits need adding.
        bytes memory out = new bytes(count + 1);
        out[0] = "k";
        for (uint256 i; i < count; ++i) {
            out[i + 1] = digits[count - 1 - i];
        }
        return string(out);
    }
}
