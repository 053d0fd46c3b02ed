// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IStorageMarket} from "../contracts/interfaces/IStorageMarket.sol";
import {StorageProof} from "../contracts/libraries/StorageProof.sol";
import {MarketFixture} from "./utils/MarketFixture.sol";

/// @notice px-core's piece Merkle format judged by the market itself: the deal root, piece roots
/// and paths that Rust wrote to `core/vectors/erasure.json` (`core/tests/vectors.rs`) open a
/// deal and answer every challenge of its term through `proveStorage`.
contract PieceVectorsTest is MarketFixture {
    string internal json;
    uint256 internal pieceCount;

    function setUp() public override {
        super.setUp();
        json = vm.readFile(string.concat(vm.projectRoot(), "/core/vectors/erasure.json"));
        pieceCount = vm.parseJsonUint(json, "$.deal.pieceCount");
    }

    function test_rustDealRoot_opensDealAndProvesEveryPeriod() public {
        uint256 dealId = openRustDeal();
        uint256 periods = market.dealOf(dealId).periods;
        uint256 paddingLeaves;
        for (uint256 p; p < periods; ++p) {
            rollToWindow(market, dealId, p, keccak256(abi.encode("vectors", p)));
            IStorageMarket.Proof[] memory proofs = rustProofs(dealId, p);
            for (uint256 i; i < proofs.length; ++i) {
                // The 320-byte piece has 10 chunks in a tree of 16 leaves.
                if (proofs[i].pieceDepth == 4 && proofs[i].leaf == bytes32(0)) ++paddingLeaves;
            }
            market.proveStorage(dealId, p, proofs);
            assertEq(market.dealOf(dealId).nextPeriod, p + 1);
        }
        assertEq(
            uint256(market.dealOf(dealId).status), uint256(IStorageMarket.DealStatus.Completed)
        );
        // Padding leaves are challenged and proven like any other.
        assertGt(paddingLeaves, 0);
    }

    function test_RevertWhen_rustPathAltered() public {
        uint256 dealId = openRustDeal();
        rollToWindow(market, dealId, 0, keccak256(abi.encode("vectors", uint256(0))));
        IStorageMarket.Proof[] memory proofs = rustProofs(dealId, 0);
        proofs[1].piecePath[0] ^= bytes32(uint256(1));
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.InvalidProof.selector, dealId, 1));
        market.proveStorage(dealId, 0, proofs);
    }

    function test_rustDealLeaves_matchStorageProof() public view {
        for (uint256 i; i < pieceCount; ++i) {
            string memory k = string.concat("$.deal.pieces[", vm.toString(i), "]");
            bytes32 root = vm.parseJsonBytes32(json, string.concat(k, ".root"));
            uint8 depth = uint8(vm.parseJsonUint(json, string.concat(k, ".depth")));
            assertEq(
                StorageProof.dealLeaf(root, depth),
                vm.parseJsonBytes32(json, string.concat(k, ".dealLeaf"))
            );
        }
    }

    function test_rustChallenges_matchChallengeOf() public view {
        for (uint256 i; i < 4; ++i) {
            string memory k = string.concat("$.challenges[", vm.toString(i), "]");
            (uint256 piece, uint256 leaf) = market.challengeOf(
                vm.parseJsonBytes32(json, string.concat(k, ".seed")),
                vm.parseJsonUint(json, string.concat(k, ".index")),
                vm.parseJsonUint(json, string.concat(k, ".pieceCount")),
                vm.parseJsonUint(json, string.concat(k, ".pieceDepth"))
            );
            assertEq(piece, vm.parseJsonUint(json, string.concat(k, ".piece")));
            assertEq(leaf, vm.parseJsonUint(json, string.concat(k, ".leaf")));
        }
    }

    /// @dev Opens a deal with `provider` over the Rust deal root.
    function openRustDeal() internal returns (uint256 dealId) {
        // casting is safe: the vectors' deal has 7 pieces
        // forge-lint: disable-next-line(unsafe-typecast)
        IStorageMarket.Acceptance memory a = terms(provider, uint16(pieceCount), 0, 10);
        a.root = vm.parseJsonBytes32(json, "$.deal.root");
        return open(market, a, providerKey);
    }

    /// @dev The Rust proofs answering `period`'s challenges.
    function rustProofs(uint256 dealId, uint256 period)
        internal
        view
        returns (IStorageMarket.Proof[] memory proofs)
    {
        bytes32 seed = market.challengeSeed(dealId, period);
        proofs = new IStorageMarket.Proof[](market.config().challengeCount);
        for (uint256 i; i < proofs.length; ++i) {
            (uint256 piece,) = market.challengeOf(seed, i, pieceCount, 0);
            string memory k = string.concat("$.deal.pieces[", vm.toString(piece), "]");
            uint256 depth = vm.parseJsonUint(json, string.concat(k, ".depth"));
            (, uint256 leaf) = market.challengeOf(seed, i, pieceCount, depth);
            string memory l = string.concat(k, ".proofs[", vm.toString(leaf), "]");
            // casting is safe: piece depths are at most 32
            // forge-lint: disable-next-line(unsafe-typecast)
            proofs[i] = IStorageMarket.Proof({
                pieceRoot: vm.parseJsonBytes32(json, string.concat(k, ".root")),
                pieceDepth: uint8(depth),
                leaf: vm.parseJsonBytes32(json, string.concat(l, ".leaf")),
                piecePath: readPath(string.concat(l, ".path"), depth),
                dealPath: readPath(string.concat(k, ".dealPath"), 3)
            });
        }
    }

    /// @dev A path of `length` siblings (`parseJsonBytes32Array` cannot read an empty array).
    function readPath(string memory key, uint256 length) internal view returns (bytes32[] memory) {
        if (length == 0) return new bytes32[](0);
        return vm.parseJsonBytes32Array(json, key);
    }
}
