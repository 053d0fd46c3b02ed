// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

import {IStorageNFT} from "../contracts/interfaces/IStorageNFT.sol";
import {SyncStatus} from "../contracts/libraries/SyncStatus.sol";
import {Deployers, IOperator} from "./utils/Deployers.sol";

/// @notice Regressions for the audit findings of issue 14, one scenario per finding and
/// behaviour, each as the audit's proof of concept would run it. Finding 6 (tests that cannot
/// fail) is covered by the handler asserting in StorageNFT.invariant.t.sol and by the mutation
/// check (`make mutation`).
contract StorageNFTFindingsTest is Deployers {
    // ---------------------------------------------------------------------------------------
    // 1. One bad answer froze a token forever
    // ---------------------------------------------------------------------------------------

    /// An answer naming another token is recorded against the request's own token and closes
    /// the request; the holder syncs again later and the gate reopens.
    function test_wrongTokenAnswerNeverFreezesTheToken() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        uint256 other = mintWithKeyFor(bob, keyOf(2));
        OracleRequest memory req = requestSyncAs(alice, id);
        // A plain Chainlink job (no simulation first) answers for the wrong token.
        assertTrue(fulfill(req, answer(req, other, 0, 9, 9, 9)), "the callback took it");
        assertFalse(info(id).pending, "request closed");
        assertEq(info(id).lastStatus, SyncStatus.WRONG_TOKEN);
        assertEq(info(other).seq, 0, "the other token is untouched");

        vm.warp(block.timestamp + 31 days);
        sync(alice, id, 10, 1, 1);
        (bool ok,) = nft.canUpload(id, 1);
        assertTrue(ok, "gate open again");
    }

    /// An answer the callback cannot even decode leaves the request pending; once the Operator
    /// lets it expire it is replaced, although the Operator no longer holds it to cancel.
    function test_undecodableAnswerIsRecoveredAfterExpiry() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        OracleRequest memory req = requestSyncAs(alice, id);
        assertFalse(fulfill(req, abi.encode(req.requestId)), "callback reverted in the Operator");
        assertTrue(info(id).pending);

        vm.warp(block.timestamp + 31 days);
        OracleRequest memory again = requestSyncAs(alice, id);
        assertTrue(fulfill(again, answer(again, id, 0, 10, 1, 1)));
        (bool ok,) = nft.canUpload(id, 1);
        assertTrue(ok, "gate open again");
    }

    // ---------------------------------------------------------------------------------------
    // 2. Anyone with a keyed token could drain the contract's LINK
    // ---------------------------------------------------------------------------------------

    /// An expired token cannot spend the contract's LINK.
    function test_expiredTokenCannotSpendLink() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        vm.warp(info(id).expiresAt + 1);
        uint256 linkBefore = link.balanceOf(address(nft));
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.TokenExpired.selector, id));
        vm.prank(alice);
        nft.requestSync(id);
        assertEq(link.balanceOf(address(nft)), linkBefore);
    }

    /// A paid token spends at most the sync credits its purchases included.
    function test_linkSpentIsBoundedByPaidCredits() public {
        uint256 planId = nft.createPlan(
            IStorageNFT.Plan({
                quota: 1 << 30,
                validity: 30 days,
                syncCredits: 3,
                mintable: true,
                renewable: true,
                free: false,
                escrowShareBps: 0,
                tokenPrice: 1 ether,
                nativePrice: 0
            })
        );
        vm.prank(alice);
        uint256 id = nft.mint(planId, ANY_PRICE);
        vm.prank(registrar);
        nft.registerKey(id, nameOf(keyOf(1)));
        uint256 linkBefore = link.balanceOf(address(nft));
        for (uint64 i = 1; i <= 3; ++i) {
            sync(alice, id, i, 1, i);
            vm.warp(block.timestamp + 60);
        }
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.NoSyncCredits.selector, id));
        vm.prank(alice);
        nft.requestSync(id);
        assertEq(linkBefore - link.balanceOf(address(nft)), 3 * DEVNET_FEE, "three paid syncs");
    }

    /// A free token (no expiry, no credits) syncs at most four times per sync window.
    function test_freeTokenSyncsAreRateLimited() public {
        uint256 id = mintFreeWithKeyFor(alice, keyOf(1));
        uint256 linkBefore = link.balanceOf(address(nft));
        uint256 start = block.timestamp;
        uint256 sent;
        while (block.timestamp < start + 30 days) {
            vm.recordLogs();
            vm.prank(alice);
            try nft.requestSync(id) returns (bytes32) {
                ++sent;
                OracleRequest memory req = lastOracleRequest();
                fulfill(req, answer(req, id, 0, 1, 1, uint64(sent)));
            } catch (bytes memory reason) {
                assertEq(bytes4(reason), IStorageNFT.SyncTooSoon.selector);
            }
            vm.warp(block.timestamp + 1 hours);
        }
        assertEq(sent, 4, "one request per quarter window");
        assertEq(linkBefore - link.balanceOf(address(nft)), 4 * DEVNET_FEE);
    }

    // ---------------------------------------------------------------------------------------
    // 3. The admin could rewrite anyone's usage at once
    // ---------------------------------------------------------------------------------------

    /// A wallet cannot be made the Operator, and another Operator takes over only after the
    /// delay, announced by an event at schedule and at effect; until then the old one answers.
    function test_adminCannotSwapTheOracleAtOnce() public {
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.OperatorNotContract.selector, bob));
        nft.scheduleOracleConfig(bob, DEVNET_JOB_ID, DEVNET_FEE);

        address rogue = _operatorAnsweringFrom(address(this));
        nft.scheduleOracleConfig(rogue, DEVNET_JOB_ID, DEVNET_FEE);
        vm.expectRevert(
            abi.encodeWithSelector(
                IStorageNFT.OracleConfigNotReady.selector,
                block.timestamp + nft.ORACLE_CONFIG_DELAY()
            )
        );
        nft.applyOracleConfig();

        // Requests still go to the real Operator, and only it can answer them.
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        OracleRequest memory req = requestSyncAs(alice, id);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.NotRequestOperator.selector, req.requestId, rogue)
        );
        vm.prank(rogue);
        nft.fulfillSync(req.requestId, id, 0, 0, 0, type(uint64).max, "cid");
        assertTrue(fulfill(req, answer(req, id, 0, 5, 1, 1)));
        assertEq(info(id).seq, 1);
    }

    /// The admin role moves only in two steps, the second after the delay.
    function test_adminRoleMovesInTwoStepsAfterDelay() public {
        address next = makeAddr("next admin");
        nft.beginDefaultAdminTransfer(next);
        uint48 schedule = uint48(block.timestamp + nft.INITIAL_ADMIN_DELAY());
        vm.expectRevert(
            abi.encodeWithSignature("AccessControlEnforcedDefaultAdminDelay(uint48)", schedule)
        );
        vm.prank(next);
        nft.acceptDefaultAdminTransfer();
        assertEq(nft.defaultAdmin(), address(this));
    }

    /// Every admin setting has bounds.
    function test_adminSettingsAreBounded() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IStorageNFT.OutOfBounds.selector, type(uint256).max, 1 days, 365 days
            )
        );
        nft.setSyncWindow(type(uint256).max);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.OutOfBounds.selector, 0, 1 days, 365 days)
        );
        nft.setSyncWindow(0);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.OutOfBounds.selector, 2 days, 0, 1 days));
        nft.setMinSyncInterval(2 days);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.FeeTooLarge.selector, 11 ether));
        nft.scheduleOracleConfig(d.operator, DEVNET_JOB_ID, 11 ether);
        IStorageNFT.Plan memory p = nft.plan(BASIC_PLAN);
        p.validity = uint32(nft.MAX_PREPAID_PERIOD() + 1);
        vm.expectRevert(IStorageNFT.InvalidPlan.selector);
        nft.createPlan(p);
    }

    // ---------------------------------------------------------------------------------------
    // 4. Users lost what they paid for
    // ---------------------------------------------------------------------------------------

    /// An upgrade keeps the value of the prepaid time left.
    function test_upgradeCreditsPrepaidTimeLeft() public {
        uint256 id = mintFor(alice);
        vm.warp(block.timestamp + 65 days);
        vm.prank(alice);
        nft.upgradePlan(id, PRO_PLAN, PRO_PRICE);
        // 300 days of Basic at 100 PX a year are worth 6 days of Pro at 5000 PX a year.
        assertEq(info(id).expiresAt, block.timestamp + 365 days + 6 days);
    }

    /// Renewing a plan without expiry is refused instead of taking payment for nothing.
    function test_renewRefusesPlanWithoutExpiry() public {
        uint256 lifetime = nft.createPlan(
            IStorageNFT.Plan({
                quota: 1 << 30,
                validity: 0,
                syncCredits: 0,
                mintable: true,
                renewable: true,
                free: false,
                escrowShareBps: 0,
                tokenPrice: 7 ether,
                nativePrice: 0
            })
        );
        vm.prank(alice);
        uint256 id = nft.mint(lifetime, ANY_PRICE);
        uint256 before = px.balanceOf(alice);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.PlanNotRenewable.selector, lifetime));
        vm.prank(alice);
        nft.renew(id, ANY_PRICE);
        assertEq(px.balanceOf(alice), before);
    }

    /// Stacked renewals stop at `MAX_PREPAID_PERIOD` ahead; the expiry never wraps around.
    function test_stackedRenewalsCannotOverflowExpiry() public {
        uint256 id = mintFor(alice);
        uint256 max = block.timestamp + nft.MAX_PREPAID_PERIOD();
        for (uint256 i; i < 9; ++i) {
            vm.prank(alice);
            nft.renew(id, BASIC_PRICE);
        }
        uint256 expiry = info(id).expiresAt;
        assertEq(expiry, block.timestamp + 3650 days);
        assertLe(expiry, max);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.PrepaidTooLong.selector, expiry + 365 days, max)
        );
        vm.prank(alice);
        nft.renew(id, BASIC_PRICE);
    }

    /// A price rise between approval and purchase is refused by the buyer's maximum, for mint,
    /// renewal, upgrade and extra quota alike.
    function test_priceRiseAboveBuyersMaximumIsRefused() public {
        uint256 id = mintFor(alice);
        nft.updatePlan(BASIC_PLAN, 150 ether, 0.01 ether, true, true);
        nft.updatePlan(PRO_PLAN, 9000 ether, 0.5 ether, true, true);
        nft.setQuotaUnitPrice(20 ether, 0.001 ether);
        uint256 before = px.balanceOf(alice);
        vm.startPrank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.PriceAboveMax.selector, 150 ether, BASIC_PRICE)
        );
        nft.mint(BASIC_PLAN, BASIC_PRICE);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.PriceAboveMax.selector, 150 ether, BASIC_PRICE)
        );
        nft.renew(id, BASIC_PRICE);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.PriceAboveMax.selector, 9000 ether, PRO_PRICE)
        );
        nft.upgradePlan(id, PRO_PLAN, PRO_PRICE);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.PriceAboveMax.selector, 40 ether, 20 ether)
        );
        nft.buyQuota(id, 2, 20 ether);
        vm.stopPrank();
        assertEq(px.balanceOf(alice), before, "nothing charged");
    }

    /// A plan withdrawn from sale stays renewable for its holders.
    function test_retiredPlanStaysRenewable() public {
        uint256 id = mintFor(alice);
        uint256 expiry = info(id).expiresAt;
        nft.updatePlan(BASIC_PLAN, 100 ether, 0.01 ether, false, true);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.PlanNotMintable.selector, BASIC_PLAN));
        vm.prank(bob);
        nft.mint(BASIC_PLAN, ANY_PRICE);
        vm.prank(alice);
        nft.renew(id, BASIC_PRICE);
        assertEq(info(id).expiresAt, expiry + 365 days);
    }

    /// While paused, neither expiry nor the sync window runs out.
    function test_pauseStopsExpiryAndSyncClocks() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        vm.warp(block.timestamp + 330 days);
        sync(alice, id, 1, 1, 1);
        vm.warp(block.timestamp + 29 days); // 6 days of validity and 1 of window left
        nft.pause();
        vm.warp(block.timestamp + 90 days);
        nft.unpause();
        (bool ok,) = nft.canUpload(id, 1);
        assertTrue(ok, "neither expired nor out of sync after the pause");
        vm.prank(alice);
        nft.requestSync(id);
    }

    /// The sync window is bounded, so `canUpload` cannot overflow.
    function test_canUploadNeverRevertsOnTheLargestWindow() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        vm.expectRevert(
            abi.encodeWithSelector(
                IStorageNFT.OutOfBounds.selector, type(uint256).max, 1 days, 365 days
            )
        );
        nft.setSyncWindow(type(uint256).max);
        nft.setSyncWindow(nft.MAX_SYNC_WINDOW());
        (bool ok,) = nft.canUpload(id, 1);
        assertTrue(ok);
    }

    /// `canUpload` answers `QuotaExceeded` for any size, the largest included.
    function test_canUploadAnswersQuotaExceededForAnySize() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        sync(alice, id, 1, 1, 1);
        (bool ok, IStorageNFT.Reason reason) = nft.canUpload(id, type(uint256).max);
        assertFalse(ok);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.QuotaExceeded));
    }

    // ---------------------------------------------------------------------------------------
    // 5. A token was tied to one storage node forever
    // ---------------------------------------------------------------------------------------

    /// The holder moves a token with files from node A to node B: node B's registrar assigns
    /// its key, the old key is released, usage and sequence carry over, and node B's records
    /// count only above the last synced sequence.
    function test_holderMovesTokenToAnotherNode() public {
        (address nodeB, uint256 nodeBKey) = makeAddrAndKey("node B registrar");
        nft.grantRole(nft.REGISTRAR_ROLE(), nodeB);
        uint256 id = mintWithKeyFor(alice, keyOf(1)); // node A's key
        sync(alice, id, 3 << 20, 12, 40);

        bytes memory nameB = nameOf(keyOf(2));
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signRebinding(nodeBKey, id, nameB, deadline);
        vm.prank(alice);
        nft.rebindKey(id, nameB, deadline, sig);
        assertEq(nft.ipnsName(id), nameB, "requests now resolve node B's name");
        assertEq(nft.tokenOfKey(keyOf(1)), 0, "node A's key released");
        assertEq(info(id).used, 3 << 20, "usage carried over");

        vm.warp(block.timestamp + 60);
        OracleRequest memory req = requestSyncAs(alice, id);
        assertTrue(fulfill(req, answer(req, id, 0, 1, 1, 40)));
        assertEq(info(id).lastStatus, SyncStatus.STALE_SEQUENCE, "node B must go above 40");
        vm.warp(block.timestamp + 60);
        sync(alice, id, (3 << 20) + 5, 13, 41);
        assertEq(info(id).seq, 41);
        assertEq(info(id).fileCount, 13);
    }

    /// Nobody but the holder (or an approved operator) can move a token, whatever a registrar
    /// signs.
    function test_registrarAloneCannotMoveAToken() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signRebinding(registrarKey, id, nameOf(keyOf(2)), deadline);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.NotTokenOwner.selector, id, registrar));
        vm.prank(registrar);
        nft.rebindKey(id, nameOf(keyOf(2)), deadline, sig);
        assertEq(info(id).ipnsKey, keyOf(1));
    }

    /// @dev A real Operator, owned by this test, that `sender` may answer through.
    function _operatorAnsweringFrom(address sender) internal returns (address op) {
        op = vm.deployCode("Operator.sol:Operator", abi.encode(d.link, address(this)));
        address[] memory senders = new address[](1);
        senders[0] = sender;
        IOperator(op).setAuthorizedSenders(senders);
    }
}
