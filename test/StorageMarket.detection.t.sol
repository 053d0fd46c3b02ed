// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {IStorageMarket} from "../contracts/interfaces/IStorageMarket.sol";
import {StorageProof} from "../contracts/libraries/StorageProof.sol";
import {MarketParams} from "../script/Deployer.sol";
import {
    IProviderRegistryHarness,
    IStorageMarketHarness,
    MarketFixture
} from "./utils/MarketFixture.sol";

/// @notice The detection claim of DESIGN.md ("Provider network") as a test: a provider that
/// dropped a fraction f of a deal's leaves is caught in a period with probability
/// 1 - (1 - f)^c. Over many periods with fuzzed chain data, the provider proves every period it
/// can (it holds every challenged leaf) and tries a forged proof otherwise, which the contract
/// must refuse; the share of missed periods must match the prediction within 4.5 standard
/// deviations (plus one period of rounding).
contract StorageMarketDetectionTest is MarketFixture {
    uint256 internal constant PIECES = 16;
    uint256 internal constant CHUNKS = 4; // per piece: depth 2
    uint256 internal constant LEAVES = PIECES * CHUNKS;
    uint16 internal constant PERIODS = 240;

    bytes32[][] internal _chunks;
    bytes32[] internal _pieceRoots;
    bytes32[] internal _dealLeaves;
    bool[LEAVES] internal _dropped;

    /// forge-config: default.fuzz.runs = 12
    /// forge-config: ci.fuzz.runs = 32
    /// forge-config: mutation.fuzz.runs = 4
    function testFuzz_detection_matchesPredictedRate(uint256 seed, uint256 dropped, uint8 c)
        public
    {
        dropped = bound(dropped, 1, 32);
        c = uint8(bound(c, 1, 4));
        (, IStorageMarketHarness m) = _market(c);
        uint256 dealId = _deal(m, seed);
        _drop(seed, dropped);

        uint256 caught;
        for (uint256 p; p < PERIODS; ++p) {
            rollToWindow(m, dealId, p, keccak256(abi.encode(seed, "block", p)));
            (IStorageMarket.Proof[] memory proofs, bool complete) =
                _answer(m.challengeSeed(dealId, p), c);
            if (complete) {
                m.proveStorage(dealId, p, proofs);
            } else {
                // It answers what it lacks with a made-up chunk: refused.
                vm.expectPartialRevert(IStorageMarket.InvalidProof.selector);
                m.proveStorage(dealId, p, proofs);
                rollPastWindow(m, dealId, p);
                m.markMissed(dealId);
                ++caught;
            }
        }
        assertEq(m.dealOf(dealId).misses, caught, "every caught period is a miss");

        // Predicted rate q = 1 - ((LEAVES - dropped) / LEAVES)^c, in 1e18 fixed point.
        uint256 keptPow = 1e18;
        for (uint256 i; i < c; ++i) {
            keptPow = keptPow * (LEAVES - dropped) / LEAVES;
        }
        uint256 q = 1e18 - keptPow;
        uint256 observed = caught * 1e18 / PERIODS;
        // sigma = sqrt(q (1 - q) / n)
        uint256 sigma = Math.sqrt(q * (1e18 - q) / PERIODS);
        uint256 tolerance = sigma * 45 / 10 + 1e18 / PERIODS;
        assertApproxEqAbs(observed, q, tolerance, "detection rate");
    }

    function _market(uint8 c)
        internal
        returns (IProviderRegistryHarness r, IStorageMarketHarness m)
    {
        MarketParams memory p = devnetMarketParams();
        p.config = IStorageMarket.Config({
            periodBlocks: 4,
            proofWindow: 2,
            challengeCount: c,
            maxMisses: 255,
            blockTime: 1,
            bountyBps: 0,
            slashPerMiss: 0
        });
        (r, m) = deployOtherMarket(p);
        vm.startPrank(provider);
        px.approve(address(r), type(uint256).max);
        r.registerProvider("https://p1.example", 1, CAPACITY, PRICE, STAKE);
        vm.stopPrank();
        vm.startPrank(alice);
        m.setHomeNode(token, registrar);
        px.approve(address(m), type(uint256).max);
        m.fund(token, ESCROW);
        vm.stopPrank();
    }

    function _deal(IStorageMarketHarness m, uint256 seed) internal returns (uint256 dealId) {
        delete _chunks;
        delete _pieceRoots;
        delete _dealLeaves;
        for (uint256 i; i < PIECES; ++i) {
            bytes32[] memory piece = new bytes32[](CHUNKS);
            for (uint256 j; j < CHUNKS; ++j) {
                piece[j] = keccak256(abi.encode(seed, i, j));
            }
            _chunks.push(piece);
            _pieceRoots.push(rootOf(piece));
            _dealLeaves.push(StorageProof.dealLeaf(_pieceRoots[i], 2));
        }
        IStorageMarket.Acceptance memory a = terms(provider, uint16(PIECES), 2, PERIODS);
        a.root = rootOf(_dealLeaves);
        dealId = open(m, a, providerKey);
    }

    /// @dev Drops `n` distinct leaves picked from `seed`.
    function _drop(uint256 seed, uint256 n) internal {
        for (uint256 i; i < LEAVES; ++i) {
            _dropped[i] = false;
        }
        uint256 done;
        for (uint256 k; done < n; ++k) {
            uint256 leaf = uint256(keccak256(abi.encode(seed, "drop", k))) % LEAVES;
            if (!_dropped[leaf]) {
                _dropped[leaf] = true;
                ++done;
            }
        }
    }

    /// @dev The provider's answers to a seed's challenges, and whether it held every leaf.
    function _answer(bytes32 seed, uint256 c)
        internal
        view
        returns (IStorageMarket.Proof[] memory proofs, bool complete)
    {
        complete = true;
        proofs = new IStorageMarket.Proof[](c);
        for (uint256 i; i < c; ++i) {
            (uint256 piece, uint256 leaf) = StorageProof.challenge(seed, i, PIECES, 2);
            bytes32 chunk = _chunks[piece][leaf];
            if (_dropped[piece * CHUNKS + leaf]) {
                complete = false;
                chunk = bytes32(0);
            }
            proofs[i] = IStorageMarket.Proof(
                _pieceRoots[piece],
                2,
                chunk,
                pathOf(_chunks[piece], leaf),
                pathOf(_dealLeaves, piece)
            );
        }
    }
}
