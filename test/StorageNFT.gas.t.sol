// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Deployers} from "./utils/Deployers.sol";

/// @notice Gas of the hot paths, written to snapshots/StorageNFTGasTest.json and checked in CI
/// (`FORGE_SNAPSHOT_CHECK=true`). Budgets: mint <= 150k, requestSync (a token's first, which
/// spends a credit) <= 200k, fulfillSync (the whole Operator.fulfillOracleRequest2 call,
/// callback included) <= 150k, transferFrom <= 60k.
/// @dev Every precondition is set up in `setUp`, which runs as its own transaction: each measured
/// call is then the first to touch its storage, so slots are cold and unmodified as in a real
/// transaction (preparing in the test body would make them warm and dirty, and far cheaper).
contract StorageNFTGasTest is Deployers {
    address internal carol = makeAddr("carol");
    uint256 internal keyedToken;
    uint256 internal pendingToken;
    uint256 internal plainToken;
    OracleRequest internal pendingRequest;
    bytes internal rebindSig;
    uint256 internal constant REBIND_DEADLINE = 2 hours;

    function setUp() public override {
        super.setUp();
        // A live contract already holds PX fees and the Operator already holds LINK.
        mintFor(bob);
        sync(bob, mintWithKeyFor(bob, keyOf(99)), 1, 1, 1);

        // carol: a first-time holder with an allowance.
        px.mint(carol, 1000 ether);
        vm.deal(carol, 1 ether);
        vm.prank(carol);
        px.approve(address(nft), type(uint256).max);

        keyedToken = mintWithKeyFor(alice, keyOf(1));
        pendingToken = mintWithKeyFor(alice, keyOf(2));
        pendingRequest = requestSyncAs(alice, pendingToken);
        plainToken = mintFor(alice);
        rebindSig = signRebinding(registrarKey, keyedToken, nameOf(keyOf(4)), REBIND_DEADLINE);
    }

    function test_gas_mint() public {
        vm.prank(carol);
        nft.mint(BASIC_PLAN, BASIC_PRICE);
        assertLe(vm.snapshotGasLastCall("mint"), 150_000);
    }

    function test_gas_mintNative() public {
        vm.prank(carol);
        nft.mint{value: 0.01 ether}(BASIC_PLAN, 0);
        vm.snapshotGasLastCall("mintNative");
    }

    function test_gas_mintFree() public {
        vm.prank(carol);
        nft.mint(FREE_PLAN, 0);
        vm.snapshotGasLastCall("mintFree");
    }

    function test_gas_mintWithKey() public {
        bytes memory name = nameOf(keyOf(3));
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signAssignment(carol, name, deadline);
        vm.prank(carol);
        nft.mintWithKey(BASIC_PLAN, BASIC_PRICE, name, deadline, sig);
        vm.snapshotGasLastCall("mintWithKey");
    }

    function test_gas_requestSync() public {
        vm.prank(alice);
        nft.requestSync(keyedToken);
        assertLe(vm.snapshotGasLastCall("requestSync"), 200_000);
    }

    function test_gas_fulfillSync() public {
        OracleRequest memory req = pendingRequest;
        bytes memory data = answer(req, pendingToken, 0, 123_456, 7, 1);
        vm.prank(oracle);
        operator.fulfillOracleRequest2{gas: 500_000}(
            req.requestId,
            req.payment,
            req.callbackAddr,
            req.callbackFunctionId,
            req.cancelExpiration,
            data
        );
        assertLe(vm.snapshotGasLastCall("fulfillSync"), 150_000);
        assertEq(info(pendingToken).used, 123_456);
    }

    function test_gas_transferFrom() public {
        vm.prank(alice);
        nft.transferFrom(alice, bob, plainToken);
        assertLe(vm.snapshotGasLastCall("transferFrom"), 60_000);
    }

    function test_gas_renew() public {
        vm.prank(alice);
        nft.renew(plainToken, BASIC_PRICE);
        vm.snapshotGasLastCall("renew");
    }

    function test_gas_rebindKey() public {
        vm.prank(alice);
        nft.rebindKey(keyedToken, nameOf(keyOf(4)), REBIND_DEADLINE, rebindSig);
        vm.snapshotGasLastCall("rebindKey");
    }

    function test_gas_canUpload() public {
        nft.canUpload(keyedToken, 1 << 20);
        vm.snapshotGasLastCall("canUpload");
    }
}
