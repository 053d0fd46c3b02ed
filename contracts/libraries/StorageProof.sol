// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title StorageProof
/// @notice Keccak Merkle paths of the storage market's piece and deal trees (see
/// `IStorageMarket` for the tree layout) and the challenge derivation.
library StorageProof {
    /// @notice The root a path leads to from `node` at position `index`.
    /// @param node The level-0 node.
    /// @param index Its position (below `2**path.length`).
    /// @param path The siblings, from level 0 up.
    /// @return root The computed root.
    function processPath(bytes32 node, uint256 index, bytes32[] calldata path)
        internal
        pure
        returns (bytes32 root)
    {
        uint256 n = path.length;
        for (uint256 i; i < n; ++i) {
            bytes32 sibling = path[i];
            node = (index & 1 == 0) ? hashPair(node, sibling) : hashPair(sibling, node);
            index >>= 1;
        }
        return node;
    }

    /// @notice `keccak256(abi.encodePacked(left, right))` without memory allocation.
    /// @param left The left child.
    /// @param right The right child.
    /// @return parent The parent.
    function hashPair(bytes32 left, bytes32 right) internal pure returns (bytes32 parent) {
        assembly ("memory-safe") {
            mstore(0x00, left)
            mstore(0x20, right)
            parent := keccak256(0x00, 0x40)
        }
    }

    /// @notice A deal tree's level-0 node for a piece.
    /// @param pieceRoot The piece's root.
    /// @param pieceDepth Its depth.
    /// @return leaf `keccak256(abi.encodePacked(pieceRoot, uint8(pieceDepth)))`.
    function dealLeaf(bytes32 pieceRoot, uint8 pieceDepth) internal pure returns (bytes32 leaf) {
        return keccak256(abi.encodePacked(pieceRoot, pieceDepth));
    }

    /// @notice The smallest `d` with `2**d >= count`.
    /// @param count Leaves (at least 1).
    /// @return d The depth.
    function depthOf(uint256 count) internal pure returns (uint256 d) {
        while ((uint256(1) << d) < count) ++d;
    }

    /// @notice The piece and leaf that challenge `index` of `seed` picks.
    /// @param seed The period's seed.
    /// @param index The challenge.
    /// @param pieceCount Pieces under the challenged root (at least 1).
    /// @param pieceDepth The picked piece's depth (at most 32).
    /// @return piece The piece index.
    /// @return leaf The leaf index within the piece.
    function challenge(bytes32 seed, uint256 index, uint256 pieceCount, uint256 pieceDepth)
        internal
        pure
        returns (uint256 piece, uint256 leaf)
    {
        uint256 h = uint256(keccak256(abi.encode(seed, index)));
        piece = h % pieceCount;
        leaf = (h >> 128) & ((uint256(1) << pieceDepth) - 1);
    }
}
