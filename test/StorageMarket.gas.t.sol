// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IStorageMarket} from "../contracts/interfaces/IStorageMarket.sol";
import {MarketParams} from "../script/Deployer.sol";
import {
    IProviderRegistryHarness,
    IStorageMarketHarness,
    MarketFixture
} from "./utils/MarketFixture.sol";

/// @notice Gas of the market's hot paths, written to snapshots/StorageMarketGasTest.json and
/// checked in CI (`FORGE_SNAPSHOT_CHECK=true`). Budgets: registerProvider <= 150k, openDeal <=
/// 160k, updateDealRoot <= 90k, proveStorage (c = 1, piece depth 20, deal depth 10) <= 70k,
/// markMissed <= 90k, claimEarnings <= 60k.
/// @dev As in StorageNFTGasTest, every precondition is set up in `setUp` (its own transaction),
/// so each measured call touches cold storage. The market measured has c = 1; the steady state
/// is measured: the provider proved a period before (its earnings and the fees are non-zero),
/// the caller of `markMissed` holds PXToken already.
contract StorageMarketGasTest is MarketFixture {
    uint16 internal constant PIECES = 1024; // deal depth 10
    uint8 internal constant PIECE_DEPTH = 20;

    IProviderRegistryHarness internal r;
    IStorageMarketHarness internal m;
    address internal carol = makeAddr("carol");
    uint256 internal dealA;
    uint256 internal dealB;
    uint256 internal token2;
    IStorageMarket.Acceptance internal acceptance;
    bytes internal acceptanceSig;
    IStorageMarket.RootUpdate internal update;
    bytes internal homeSig;
    bytes internal providerSig;
    IStorageMarket.Proof[] internal proofs;

    function setUp() public override {
        super.setUp();
        MarketParams memory p = devnetMarketParams();
        p.config.challengeCount = 1;
        (r, m) = deployOtherMarket(p);
        _register(provider);
        _register(provider2);
        px.mint(carol, 1_000_000 ether);
        vm.prank(carol);
        px.approve(address(r), type(uint256).max);

        vm.startPrank(alice);
        m.setHomeNode(token, registrar);
        px.approve(address(m), type(uint256).max);
        m.fund(token, ESCROW);
        vm.stopPrank();
        token2 = mintWithKeyFor(bob, keyOf(2));
        vm.startPrank(bob);
        m.setHomeNode(token2, registrar);
        px.approve(address(m), type(uint256).max);
        m.fund(token2, ESCROW);
        vm.stopPrank();

        // Deal A proves period 0; the measured proof is period 1's. Deal B missed period 0.
        IStorageMarket.Acceptance memory a = terms(provider, PIECES, PIECE_DEPTH, 10);
        dealA = open(m, a, providerKey);
        a.provider = provider2;
        dealB = open(m, a, provider2Key);
        IStorageMarket.Proof[] memory ps = uniformProofs(1, PIECES, PIECE_DEPTH);
        rollToWindow(m, dealA, 0, keccak256("h0"));
        m.proveStorage(dealA, 0, ps);
        rollToWindow(m, dealA, 1, keccak256("h1"));
        proofs.push(ps[0]);

        acceptance = terms(provider, PIECES, PIECE_DEPTH, 10);
        acceptance.tokenId = token2;
        acceptanceSig = sign(providerKey, m.acceptanceDigest(acceptance));
        update = rootUpdate(dealA, PIECES, PIECE_DEPTH, GIB);
        (homeSig, providerSig) = signUpdate(m, update, providerKey);
    }

    function _register(address who) internal {
        vm.startPrank(who);
        px.approve(address(r), type(uint256).max);
        r.registerProvider("https://provider.example:4001", 756, CAPACITY, PRICE, STAKE);
        vm.stopPrank();
    }

    function test_gas_registerProvider() public {
        vm.prank(carol);
        r.registerProvider("https://carol.example:4001", 756, CAPACITY, PRICE, STAKE);
        assertLe(vm.snapshotGasLastCall("registerProvider"), 150_000);
    }

    function test_gas_openDeal() public {
        IStorageMarket.Acceptance memory a = acceptance;
        bytes memory sig = acceptanceSig;
        vm.prank(registrar);
        m.openDeal(a, sig);
        assertLe(vm.snapshotGasLastCall("openDeal"), 160_000);
    }

    function test_gas_updateDealRoot() public {
        IStorageMarket.RootUpdate memory u = update;
        bytes memory h = homeSig;
        bytes memory p = providerSig;
        m.updateDealRoot(u, h, p);
        assertLe(vm.snapshotGasLastCall("updateDealRoot"), 90_000);
    }

    function test_gas_proveStorage() public {
        IStorageMarket.Proof[] memory ps = proofs;
        m.proveStorage(dealA, 1, ps);
        assertLe(vm.snapshotGasLastCall("proveStorage"), 70_000);
    }

    function test_gas_markMissed() public {
        vm.prank(bob);
        m.markMissed(dealB);
        assertLe(vm.snapshotGasLastCall("markMissed"), 90_000);
    }

    function test_gas_claimEarnings() public {
        vm.prank(provider);
        m.claimEarnings();
        assertLe(vm.snapshotGasLastCall("claimEarnings"), 60_000);
    }
}
