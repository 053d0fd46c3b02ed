// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {
    IAccessControlDefaultAdminRules
} from "@openzeppelin/contracts/access/extensions/IAccessControlDefaultAdminRules.sol";
import {IERC20Errors, IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {IStorageNFT} from "../contracts/interfaces/IStorageNFT.sol";
import {SyncStatus} from "../contracts/libraries/SyncStatus.sol";
import {Deployers, IOperator} from "./utils/Deployers.sol";

contract StorageNFTTest is Deployers {
    event MetadataUpdate(uint256 _tokenId);

    // ---------------------------------------------------------------------------------------
    // mint
    // ---------------------------------------------------------------------------------------

    function test_mint_paysTokenAndSetsQuota() public {
        uint256 before = px.balanceOf(alice);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.Minted(1, alice, BASIC_PLAN);
        uint256 id = mintFor(alice);
        assertEq(id, 1);
        assertEq(nft.ownerOf(id), alice);
        assertEq(before - px.balanceOf(alice), BASIC_PRICE);
        IStorageNFT.TokenInfo memory t = info(id);
        assertEq(t.quota, 10 << 30);
        assertEq(t.used, 0);
        assertEq(t.planId, BASIC_PLAN);
        assertEq(t.expiresAt, block.timestamp + 365 days);
        assertEq(t.lastSyncAt, block.timestamp);
        assertEq(t.ipnsKey, bytes32(0));
        assertEq(t.syncCredits, DEVNET_SYNC_CREDITS, "the plan's sync credits");
    }

    function test_mint_paysNative() public {
        uint256 pxBefore = px.balanceOf(alice);
        vm.prank(alice);
        uint256 id = nft.mint{value: 0.01 ether}(BASIC_PLAN, 0);
        assertEq(address(nft).balance, 0.01 ether);
        assertEq(px.balanceOf(alice), pxBefore);
        assertEq(info(id).quota, 10 << 30);
    }

    function test_mint_freePlanOncePerAddress() public {
        vm.prank(alice);
        uint256 id = nft.mint(FREE_PLAN, 0);
        assertEq(info(id).quota, 100 << 20);
        assertEq(info(id).expiresAt, 0);
        assertEq(info(id).syncCredits, 0, "free tokens sync rate-limited, without credits");
        assertTrue(nft.freePlanClaimed(alice));
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.FreePlanClaimed.selector, alice));
        vm.prank(alice);
        nft.mint(FREE_PLAN, 0);
    }

    function test_RevertWhen_mintFreePlanWithValue() public {
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.WrongPayment.selector, 1, 0));
        vm.prank(alice);
        nft.mint{value: 1}(FREE_PLAN, 0);
    }

    function test_RevertWhen_mintWrongNativeAmount() public {
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.WrongPayment.selector, 1 ether, 0.01 ether)
        );
        vm.prank(alice);
        nft.mint{value: 1 ether}(BASIC_PLAN, 0);
    }

    function test_RevertWhen_mintUnknownPlan() public {
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.PlanNotFound.selector, 0));
        nft.mint(0, 0);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.PlanNotFound.selector, 4));
        nft.mint(4, 0);
    }

    function test_RevertWhen_mintNotMintablePlan() public {
        nft.updatePlan(BASIC_PLAN, 100 ether, 0, false, true);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.PlanNotMintable.selector, BASIC_PLAN));
        vm.prank(alice);
        nft.mint(BASIC_PLAN, ANY_PRICE);
    }

    function test_RevertWhen_mintNativeOnlyPlanWithoutValue() public {
        nft.updatePlan(BASIC_PLAN, 0, 0.01 ether, true, true);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.WrongPayment.selector, 0, 0.01 ether));
        vm.prank(alice);
        nft.mint(BASIC_PLAN, ANY_PRICE);
    }

    function test_RevertWhen_mintPlanWithoutPrice() public {
        nft.updatePlan(BASIC_PLAN, 0, 0, true, true);
        vm.expectRevert(IStorageNFT.NotForSale.selector);
        vm.prank(alice);
        nft.mint(BASIC_PLAN, ANY_PRICE);
    }

    function test_RevertWhen_mintWithoutAllowance() public {
        address carol = makeAddr("carol");
        px.mint(carol, 1000 ether);
        vm.expectRevert(
            abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientAllowance.selector, address(nft), 0, BASIC_PRICE
            )
        );
        vm.prank(carol);
        nft.mint(BASIC_PLAN, BASIC_PRICE);
    }

    function test_RevertWhen_mintPriceAboveMax() public {
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.PriceAboveMax.selector, BASIC_PRICE, 99 ether)
        );
        vm.prank(alice);
        nft.mint(BASIC_PLAN, 99 ether);
    }

    function test_RevertWhen_mintPaused() public {
        nft.pause();
        vm.expectRevert(IStorageNFT.EnforcedPause.selector);
        vm.prank(alice);
        nft.mint(BASIC_PLAN, BASIC_PRICE);
    }

    function test_mintWithPermit_paysWithoutApproval() public {
        (address carol, uint256 carolKey) = makeAddrAndKey("carol");
        px.mint(carol, 1000 ether);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = _permit(carol, carolKey, BASIC_PRICE, deadline);
        vm.prank(carol);
        uint256 id = nft.mintWithPermit(BASIC_PLAN, BASIC_PRICE, deadline, v, r, s);
        assertEq(nft.ownerOf(id), carol);
        assertEq(px.balanceOf(carol), 900 ether);
    }

    function test_RevertWhen_mintWithPermitBadSignature() public {
        address carol = makeAddr("carol");
        px.mint(carol, 1000 ether);
        // The permit fails silently (front-running tolerance) and the allowance is missing.
        vm.expectRevert(
            abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientAllowance.selector, address(nft), 0, BASIC_PRICE
            )
        );
        vm.prank(carol);
        nft.mintWithPermit(BASIC_PLAN, BASIC_PRICE, block.timestamp, 27, bytes32(0), bytes32(0));
    }

    function test_RevertWhen_mintWithPermitPriceAbovePermit() public {
        (address carol, uint256 carolKey) = makeAddrAndKey("carol");
        px.mint(carol, 1000 ether);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = _permit(carol, carolKey, 50 ether, deadline);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.PriceAboveMax.selector, BASIC_PRICE, 50 ether)
        );
        vm.prank(carol);
        nft.mintWithPermit(BASIC_PLAN, 50 ether, deadline, v, r, s);
    }

    // ---------------------------------------------------------------------------------------
    // keys
    // ---------------------------------------------------------------------------------------

    function test_mintWithKey_bindsName() public {
        bytes32 key = keyOf(1);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.KeyRegistered(1, key, registrar);
        uint256 id = mintWithKeyFor(alice, key);
        assertEq(info(id).ipnsKey, key);
        assertEq(nft.ipnsName(id), nameOf(key));
        assertEq(nft.tokenOfKey(key), id);
    }

    function test_RevertWhen_mintWithKeyReplayed() public {
        bytes memory name = nameOf(keyOf(1));
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signAssignment(alice, name, deadline);
        vm.prank(alice);
        nft.mintWithKey(BASIC_PLAN, BASIC_PRICE, name, deadline, sig);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.KeyInUse.selector, keyOf(1), 1));
        vm.prank(alice);
        nft.mintWithKey(BASIC_PLAN, BASIC_PRICE, name, deadline, sig);
    }

    function test_RevertWhen_mintWithKeyForAnotherMinter() public {
        bytes memory name = nameOf(keyOf(1));
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signAssignment(alice, name, deadline);
        bytes32 digest = nft.keyAssignmentDigest(bob, name, deadline);
        address recovered = ECDSA.recover(digest, sig);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.InvalidAssignment.selector, recovered));
        vm.prank(bob);
        nft.mintWithKey(BASIC_PLAN, BASIC_PRICE, name, deadline, sig);
    }

    function test_RevertWhen_mintWithKeyNotRegistrar() public {
        (address mallory, uint256 malloryKey) = makeAddrAndKey("mallory");
        bytes memory name = nameOf(keyOf(1));
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = sign(malloryKey, nft.keyAssignmentDigest(alice, name, deadline));
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.InvalidAssignment.selector, mallory));
        vm.prank(alice);
        nft.mintWithKey(BASIC_PLAN, BASIC_PRICE, name, deadline, sig);
    }

    function test_RevertWhen_mintWithKeyExpired() public {
        bytes memory name = nameOf(keyOf(1));
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signAssignment(alice, name, deadline);
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.AssignmentExpired.selector, deadline));
        vm.prank(alice);
        nft.mintWithKey(BASIC_PLAN, BASIC_PRICE, name, deadline, sig);
    }

    function test_RevertWhen_mintWithKeyMalformedName() public {
        bytes memory name = abi.encodePacked(bytes6(0x002408011221), keyOf(1)); // wrong length byte
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signAssignment(alice, name, deadline);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.InvalidIpnsName.selector, name));
        vm.prank(alice);
        nft.mintWithKey(BASIC_PLAN, BASIC_PRICE, name, deadline, sig);
    }

    function test_registerKey_bindsLater() public {
        uint256 id = mintFor(alice);
        vm.prank(registrar);
        nft.registerKey(id, nameOf(keyOf(7)));
        assertEq(info(id).ipnsKey, keyOf(7));
    }

    function test_RevertWhen_registerKeyTwice() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.KeyAlreadySet.selector, id));
        vm.prank(registrar);
        nft.registerKey(id, nameOf(keyOf(2)));
    }

    function test_RevertWhen_registerKeyByHolder() public {
        uint256 id = mintFor(alice);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector,
                alice,
                nft.REGISTRAR_ROLE()
            )
        );
        vm.prank(alice);
        nft.registerKey(id, nameOf(keyOf(1)));
    }

    function test_RevertWhen_registerKeyUnknownToken() public {
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, 9));
        vm.prank(registrar);
        nft.registerKey(9, nameOf(keyOf(1)));
    }

    // ---------------------------------------------------------------------------------------
    // rebinding (moving a token to another node)
    // ---------------------------------------------------------------------------------------

    function test_rebindKey_movesTokenAndKeepsState() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        sync(alice, id, 4096, 3, 7);
        IStorageNFT.TokenInfo memory before = info(id);
        bytes memory name = nameOf(keyOf(2));
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signRebinding(registrarKey, id, name, deadline);

        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.KeyReleased(id, keyOf(1));
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.KeyRegistered(id, keyOf(2), registrar);
        vm.prank(alice);
        nft.rebindKey(id, name, deadline, sig);

        IStorageNFT.TokenInfo memory t = info(id);
        assertEq(t.ipnsKey, keyOf(2));
        assertEq(nft.tokenOfKey(keyOf(2)), id);
        assertEq(nft.tokenOfKey(keyOf(1)), 0, "old key released");
        assertEq(t.used, before.used);
        assertEq(t.fileCount, before.fileCount);
        assertEq(t.seq, before.seq);
        assertEq(t.lastSyncAt, before.lastSyncAt);
        assertEq(t.syncCredits, before.syncCredits);
        assertEq(t.expiresAt, before.expiresAt);
    }

    function test_rebindKey_bindsKeylessToken() public {
        uint256 id = mintFor(alice);
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signRebinding(registrarKey, id, nameOf(keyOf(5)), deadline);
        vm.prank(alice);
        nft.rebindKey(id, nameOf(keyOf(5)), deadline, sig);
        assertEq(info(id).ipnsKey, keyOf(5));
    }

    function test_rebindKey_releasedKeyCanBeBoundAgain() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signRebinding(registrarKey, id, nameOf(keyOf(2)), deadline);
        vm.prank(alice);
        nft.rebindKey(id, nameOf(keyOf(2)), deadline, sig);
        uint256 other = mintWithKeyFor(bob, keyOf(1));
        assertEq(nft.tokenOfKey(keyOf(1)), other);
    }

    function test_rebindKey_byApprovedOperator() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        vm.prank(alice);
        nft.approve(bob, id);
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signRebinding(registrarKey, id, nameOf(keyOf(2)), deadline);
        vm.prank(bob);
        nft.rebindKey(id, nameOf(keyOf(2)), deadline, sig);
        assertEq(info(id).ipnsKey, keyOf(2));
    }

    function test_RevertWhen_rebindKeyByStranger() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signRebinding(registrarKey, id, nameOf(keyOf(2)), deadline);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.NotTokenOwner.selector, id, bob));
        vm.prank(bob);
        nft.rebindKey(id, nameOf(keyOf(2)), deadline, sig);
    }

    function test_RevertWhen_rebindKeyNotSignedByRegistrar() public {
        (address mallory, uint256 malloryKey) = makeAddrAndKey("mallory");
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signRebinding(malloryKey, id, nameOf(keyOf(2)), deadline);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.InvalidAssignment.selector, mallory));
        vm.prank(alice);
        nft.rebindKey(id, nameOf(keyOf(2)), deadline, sig);
    }

    function test_RevertWhen_rebindKeyExpired() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signRebinding(registrarKey, id, nameOf(keyOf(2)), deadline);
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.AssignmentExpired.selector, deadline));
        vm.prank(alice);
        nft.rebindKey(id, nameOf(keyOf(2)), deadline, sig);
    }

    function test_RevertWhen_rebindKeyAssignmentReplayed() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory toTwo = signRebinding(registrarKey, id, nameOf(keyOf(2)), deadline);
        vm.prank(alice);
        nft.rebindKey(id, nameOf(keyOf(2)), deadline, toTwo);
        bytes memory toThree = signRebinding(registrarKey, id, nameOf(keyOf(3)), deadline);
        vm.prank(alice);
        nft.rebindKey(id, nameOf(keyOf(3)), deadline, toThree);
        // The first assignment named key 1 as the current key: it is spent.
        address recovered =
            ECDSA.recover(nft.keyRebindingDigest(id, nameOf(keyOf(2)), deadline), toTwo);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.InvalidAssignment.selector, recovered));
        vm.prank(alice);
        nft.rebindKey(id, nameOf(keyOf(2)), deadline, toTwo);
    }

    function test_RevertWhen_rebindKeyToKeyInUse() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        uint256 other = mintWithKeyFor(bob, keyOf(2));
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signRebinding(registrarKey, id, nameOf(keyOf(2)), deadline);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.KeyInUse.selector, keyOf(2), other));
        vm.prank(alice);
        nft.rebindKey(id, nameOf(keyOf(2)), deadline, sig);
    }

    function test_RevertWhen_rebindKeyWhileRequestPending() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        OracleRequest memory req = requestSyncAs(alice, id);
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signRebinding(registrarKey, id, nameOf(keyOf(2)), deadline);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.SyncPending.selector, id, req.requestId));
        vm.prank(alice);
        nft.rebindKey(id, nameOf(keyOf(2)), deadline, sig);
    }

    function test_rebindKey_givesUpExpiredRequestAndReturnsCredit() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        uint256 credits = info(id).syncCredits;
        OracleRequest memory req = requestSyncAs(alice, id);
        uint256 linkBefore = link.balanceOf(address(nft));
        vm.warp(req.cancelExpiration);
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signRebinding(registrarKey, id, nameOf(keyOf(2)), deadline);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.SyncCancelled(id, req.requestId);
        vm.prank(alice);
        nft.rebindKey(id, nameOf(keyOf(2)), deadline, sig);
        assertFalse(info(id).pending);
        assertEq(info(id).syncCredits, credits, "credit returned");
        assertEq(link.balanceOf(address(nft)), linkBefore + DEVNET_FEE, "LINK refunded");
        // The request for the old key can no longer be answered.
        vm.expectRevert(bytes("Must have a valid requestId"));
        fulfill(req, answer(req, id, 0, 5, 1, 1));
    }

    function test_RevertWhen_rebindKeyPaused() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signRebinding(registrarKey, id, nameOf(keyOf(2)), deadline);
        nft.pause();
        vm.expectRevert(IStorageNFT.EnforcedPause.selector);
        vm.prank(alice);
        nft.rebindKey(id, nameOf(keyOf(2)), deadline, sig);
    }

    // ---------------------------------------------------------------------------------------
    // upgrade, renew, extra quota
    // ---------------------------------------------------------------------------------------

    function test_upgradePlan_keepsExtraQuotaAndUsage() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        vm.prank(alice);
        nft.buyQuota(id, 2, ANY_PRICE);
        sync(alice, id, 123, 4, 1);
        uint256 credits = info(id).syncCredits;
        vm.warp(block.timestamp + 10 days);
        vm.prank(alice);
        nft.upgradePlan(id, PRO_PLAN, PRO_PRICE);
        IStorageNFT.TokenInfo memory t = info(id);
        assertEq(t.quota, (1 << 40) + 2 * (1 << 30));
        assertEq(t.planId, PRO_PLAN);
        assertEq(t.used, 123);
        assertEq(t.seq, 1);
        assertEq(t.syncCredits, credits + 10 * DEVNET_SYNC_CREDITS, "Pro's credits added");
    }

    function test_upgradePlan_creditsTimeLeftAtTokenPrices() public {
        uint256 id = mintFor(alice);
        vm.warp(block.timestamp + 10 days);
        vm.prank(alice);
        nft.upgradePlan(id, PRO_PLAN, PRO_PRICE);
        // 355 days of Basic (100 PX a year) are worth 355 * 100 / 5000 days of Pro.
        uint256 credit = uint256(355 days) * 100 / 5000;
        assertEq(info(id).expiresAt, block.timestamp + 365 days + credit);
    }

    function test_upgradePlan_creditsTimeLeftAtNativePrices() public {
        nft.updatePlan(BASIC_PLAN, 0, 0.01 ether, true, true);
        vm.prank(alice);
        uint256 id = nft.mint{value: 0.01 ether}(BASIC_PLAN, 0);
        vm.warp(block.timestamp + 65 days);
        vm.prank(alice);
        nft.upgradePlan{value: 0.5 ether}(id, PRO_PLAN, 0);
        uint256 credit = uint256(300 days) * 0.01 ether / 0.5 ether;
        assertEq(info(id).expiresAt, block.timestamp + 365 days + credit);
    }

    function test_upgradePlan_creditsTimeLeftByQuotaWithoutCommonPrice() public {
        uint256 id = mintFor(alice);
        nft.updatePlan(BASIC_PLAN, 0, 0.01 ether, true, true); // Basic now sold for coin only
        nft.updatePlan(PRO_PLAN, PRO_PRICE, 0, true, true); // Pro for PXToken only
        vm.warp(block.timestamp + 165 days);
        vm.prank(alice);
        nft.upgradePlan(id, PRO_PLAN, PRO_PRICE);
        uint256 credit = uint256(200 days) * (10 << 30) / (1 << 40);
        assertEq(info(id).expiresAt, block.timestamp + 365 days + credit);
    }

    function test_upgradePlan_expiredTokenGetsNoCredit() public {
        uint256 id = mintFor(alice);
        vm.warp(block.timestamp + 400 days);
        vm.prank(alice);
        nft.upgradePlan(id, PRO_PLAN, PRO_PRICE);
        assertEq(info(id).expiresAt, block.timestamp + 365 days);
    }

    function test_upgradePlan_toLifetimePlanClearsExpiry() public {
        uint256 lifetime = nft.createPlan(_plan(1 << 41, 0, 0, 9000 ether));
        uint256 id = mintFor(alice);
        vm.prank(alice);
        nft.upgradePlan(id, lifetime, ANY_PRICE);
        assertEq(info(id).expiresAt, 0);
    }

    function test_RevertWhen_upgradeLifetimeToExpiringPlan() public {
        uint256 lifetime = nft.createPlan(_plan(1 << 35, 0, 0, 1 ether));
        vm.prank(alice);
        uint256 id = nft.mint(lifetime, ANY_PRICE);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.NotAnUpgrade.selector, lifetime, PRO_PLAN)
        );
        vm.prank(alice);
        nft.upgradePlan(id, PRO_PLAN, ANY_PRICE);
    }

    function test_upgradePlan_fromFreePlan() public {
        vm.prank(alice);
        uint256 id = nft.mint(FREE_PLAN, 0);
        vm.prank(alice);
        nft.upgradePlan(id, BASIC_PLAN, BASIC_PRICE);
        assertEq(info(id).expiresAt, block.timestamp + 365 days);
        assertEq(info(id).syncCredits, DEVNET_SYNC_CREDITS);
    }

    function test_RevertWhen_upgradeToSmallerPlan() public {
        vm.prank(alice);
        uint256 id = nft.mint(PRO_PLAN, PRO_PRICE);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.NotAnUpgrade.selector, PRO_PLAN, BASIC_PLAN)
        );
        vm.prank(alice);
        nft.upgradePlan(id, BASIC_PLAN, ANY_PRICE);
    }

    function test_RevertWhen_upgradeToFreePlan() public {
        uint256 id = mintFor(alice);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.NotAnUpgrade.selector, BASIC_PLAN, FREE_PLAN)
        );
        vm.prank(alice);
        nft.upgradePlan(id, FREE_PLAN, ANY_PRICE);
    }

    function test_RevertWhen_upgradeToNotMintablePlan() public {
        uint256 id = mintFor(alice);
        nft.updatePlan(PRO_PLAN, PRO_PRICE, 0, false, true);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.PlanNotMintable.selector, PRO_PLAN));
        vm.prank(alice);
        nft.upgradePlan(id, PRO_PLAN, ANY_PRICE);
    }

    function test_RevertWhen_upgradeToUnknownPlan() public {
        uint256 id = mintFor(alice);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.PlanNotFound.selector, 9));
        vm.prank(alice);
        nft.upgradePlan(id, 9, ANY_PRICE);
    }

    function test_RevertWhen_upgradeByStranger() public {
        uint256 id = mintFor(alice);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.NotTokenOwner.selector, id, bob));
        vm.prank(bob);
        nft.upgradePlan(id, PRO_PLAN, ANY_PRICE);
    }

    function test_RevertWhen_upgradePaused() public {
        uint256 id = mintFor(alice);
        nft.pause();
        vm.expectRevert(IStorageNFT.EnforcedPause.selector);
        vm.prank(alice);
        nft.upgradePlan(id, PRO_PLAN, ANY_PRICE);
    }

    function test_renew_extendsFromExpiryAndAddsCredits() public {
        uint256 id = mintFor(alice);
        uint256 expiry = info(id).expiresAt;
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.Renewed(id, expiry + 365 days);
        vm.prank(alice);
        nft.renew(id, BASIC_PRICE);
        assertEq(info(id).expiresAt, expiry + 365 days);
        assertEq(info(id).syncCredits, 2 * DEVNET_SYNC_CREDITS);
        vm.warp(expiry + 500 days);
        vm.prank(alice);
        nft.renew(id, BASIC_PRICE);
        assertEq(info(id).expiresAt, block.timestamp + 365 days);
    }

    function test_renew_byAnyone() public {
        uint256 id = mintFor(alice);
        uint256 expiry = info(id).expiresAt;
        vm.prank(bob);
        nft.renew(id, BASIC_PRICE);
        assertEq(info(id).expiresAt, expiry + 365 days);
    }

    function test_RevertWhen_renewFreePlan() public {
        vm.prank(alice);
        uint256 id = nft.mint(FREE_PLAN, 0);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.PlanNotRenewable.selector, FREE_PLAN));
        vm.prank(alice);
        nft.renew(id, ANY_PRICE);
    }

    function test_RevertWhen_renewNotRenewablePlan() public {
        uint256 id = mintFor(alice);
        nft.updatePlan(BASIC_PLAN, 100 ether, 0, true, false);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.PlanNotRenewable.selector, BASIC_PLAN));
        vm.prank(alice);
        nft.renew(id, ANY_PRICE);
    }

    function test_RevertWhen_renewPriceAboveMax() public {
        uint256 id = mintFor(alice);
        nft.updatePlan(BASIC_PLAN, 150 ether, 0, true, true);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.PriceAboveMax.selector, 150 ether, BASIC_PRICE)
        );
        vm.prank(alice);
        nft.renew(id, BASIC_PRICE);
    }

    function test_RevertWhen_renewPaused() public {
        uint256 id = mintFor(alice);
        nft.pause();
        vm.expectRevert(IStorageNFT.EnforcedPause.selector);
        vm.prank(alice);
        nft.renew(id, BASIC_PRICE);
    }

    function test_buyQuota_addsUnits() public {
        uint256 id = mintFor(alice);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.QuotaPurchased(id, 3, (10 << 30) + 3 * (1 << 30));
        vm.prank(alice);
        nft.buyQuota{value: 0.003 ether}(id, 3, 0);
        assertEq(info(id).quota, (10 << 30) + 3 * (1 << 30));
    }

    function test_RevertWhen_buyZeroQuota() public {
        uint256 id = mintFor(alice);
        vm.expectRevert(IStorageNFT.NotForSale.selector);
        vm.prank(alice);
        nft.buyQuota(id, 0, ANY_PRICE);
    }

    function test_RevertWhen_buyQuotaBeyond64Bits() public {
        uint256 id = mintFor(alice);
        vm.expectRevert(IStorageNFT.InvalidPlan.selector);
        vm.prank(alice);
        nft.buyQuota(id, type(uint256).max, ANY_PRICE);
    }

    function test_RevertWhen_buyQuotaPriceAboveMax() public {
        uint256 id = mintFor(alice);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.PriceAboveMax.selector, 20 ether, 19 ether)
        );
        vm.prank(alice);
        nft.buyQuota(id, 2, 19 ether);
    }

    function test_RevertWhen_buyQuotaPaused() public {
        uint256 id = mintFor(alice);
        nft.pause();
        vm.expectRevert(IStorageNFT.EnforcedPause.selector);
        vm.prank(alice);
        nft.buyQuota(id, 1, ANY_PRICE);
    }

    // ---------------------------------------------------------------------------------------
    // gate
    // ---------------------------------------------------------------------------------------

    function test_canUpload_openAfterMintWithKey() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        (bool ok, IStorageNFT.Reason reason) = nft.canUpload(id, 1 << 30);
        assertTrue(ok);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.None));
    }

    function test_canUpload_reasons() public {
        (bool ok, IStorageNFT.Reason reason) = nft.canUpload(42, 1);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.NoToken));
        assertFalse(ok);

        uint256 id = mintFor(alice);
        (, reason) = nft.canUpload(id, 1);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.NoKey));

        vm.prank(registrar);
        nft.registerKey(id, nameOf(keyOf(1)));
        (, reason) = nft.canUpload(id, (10 << 30) + 1);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.QuotaExceeded));
        (ok,) = nft.canUpload(id, 10 << 30);
        assertTrue(ok);

        vm.warp(block.timestamp + 30 days);
        (ok,) = nft.canUpload(id, 1);
        assertTrue(ok, "open on the last second of the window");
        vm.warp(block.timestamp + 1);
        (, reason) = nft.canUpload(id, 1);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.NotSynced));

        vm.warp(block.timestamp + 400 days);
        (, reason) = nft.canUpload(id, 1);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.Expired));

        nft.pause();
        (, reason) = nft.canUpload(id, 1);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.Paused));
    }

    function test_canUpload_closesAtExpiry() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        vm.prank(alice);
        nft.setApprovalForAll(bob, true);
        uint256 expiry = info(id).expiresAt;
        vm.warp(expiry - 20 days);
        sync(bob, id, 1, 1, 1);
        vm.warp(expiry - 1);
        (bool ok,) = nft.canUpload(id, 1);
        assertTrue(ok, "open until the last second");
        vm.warp(expiry);
        (, IStorageNFT.Reason reason) = nft.canUpload(id, 1);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.Expired));
    }

    function test_canUpload_syncReopensGate() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        vm.warp(block.timestamp + 31 days);
        (, IStorageNFT.Reason reason) = nft.canUpload(id, 1);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.NotSynced));
        sync(alice, id, 10, 1, 1);
        (bool ok,) = nft.canUpload(id, 1);
        assertTrue(ok);
    }

    function test_canUpload_usageAboveQuotaRefusesEvenZeroBytes() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        sync(alice, id, uint64(10 << 30) + 1, 1, 1);
        (bool ok, IStorageNFT.Reason reason) = nft.canUpload(id, 0);
        assertFalse(ok);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.QuotaExceeded));
    }

    function test_setSyncWindow_movesGate() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        nft.setSyncWindow(1 days);
        assertEq(nft.syncWindow(), 1 days);
        vm.warp(block.timestamp + 1 days + 1);
        (, IStorageNFT.Reason reason) = nft.canUpload(id, 1);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.NotSynced));
    }

    // ---------------------------------------------------------------------------------------
    // requestSync (revert paths and payment; the round trip is in StorageNFT.sync.t.sol)
    // ---------------------------------------------------------------------------------------

    function test_RevertWhen_requestSyncByStranger() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.NotTokenOwner.selector, id, bob));
        vm.prank(bob);
        nft.requestSync(id);
    }

    function test_RevertWhen_requestSyncUnknownToken() public {
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, 9));
        vm.prank(alice);
        nft.requestSync(9);
    }

    function test_requestSync_byApprovedOperator() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        vm.prank(alice);
        nft.setApprovalForAll(bob, true);
        vm.prank(bob);
        nft.requestSync(id);
        assertTrue(info(id).pending);
    }

    function test_requestSync_spendsOneCredit() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        requestSyncAs(alice, id);
        assertEq(info(id).syncCredits, DEVNET_SYNC_CREDITS - 1);
    }

    function test_RevertWhen_requestSyncWithoutCredits() public {
        IStorageNFT.Plan memory p = _plan(1 << 30, 30 days, 1, 1 ether);
        uint256 planId = nft.createPlan(p);
        vm.prank(alice);
        uint256 id = nft.mint(planId, ANY_PRICE);
        vm.prank(registrar);
        nft.registerKey(id, nameOf(keyOf(1)));
        sync(alice, id, 1, 1, 1);
        vm.warp(block.timestamp + 1 days);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.NoSyncCredits.selector, id));
        vm.prank(alice);
        nft.requestSync(id);
        // A renewal buys the plan's credits again.
        vm.prank(alice);
        nft.renew(id, ANY_PRICE);
        requestSyncAs(alice, id);
    }

    function test_RevertWhen_requestSyncExpired() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        vm.warp(info(id).expiresAt);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.TokenExpired.selector, id));
        vm.prank(alice);
        nft.requestSync(id);
        vm.prank(alice);
        nft.renew(id, BASIC_PRICE);
        requestSyncAs(alice, id);
    }

    function test_requestSync_freeTokenRateLimitedToQuarterWindow() public {
        uint256 id = mintFreeWithKeyFor(alice, keyOf(1));
        sync(alice, id, 1, 1, 1);
        uint256 nextAt = block.timestamp + 30 days / 4;
        vm.warp(nextAt - 1);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.SyncTooSoon.selector, id, nextAt));
        vm.prank(alice);
        nft.requestSync(id);
        vm.warp(nextAt);
        requestSyncAs(alice, id);
        assertEq(info(id).syncCredits, 0, "free tokens spend no credits");
    }

    function test_RevertWhen_requestSyncWithoutKey() public {
        uint256 id = mintFor(alice);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.NoKey.selector, id));
        vm.prank(alice);
        nft.requestSync(id);
    }

    function test_RevertWhen_requestSyncPending() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        OracleRequest memory req = requestSyncAs(alice, id);
        vm.warp(req.cancelExpiration - 1);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.SyncPending.selector, id, req.requestId));
        vm.prank(alice);
        nft.requestSync(id);
    }

    function test_RevertWhen_requestSyncTooSoon() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        sync(alice, id, 1, 1, 1);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.SyncTooSoon.selector, id, block.timestamp + 60)
        );
        vm.prank(alice);
        nft.requestSync(id);
        vm.warp(block.timestamp + 60);
        requestSyncAs(alice, id);
    }

    function test_requestSync_replacesExpiredRequestFreeOfCharge() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        OracleRequest memory first = requestSyncAs(alice, id);
        uint256 credits = info(id).syncCredits;
        uint256 linkBefore = link.balanceOf(address(nft));
        vm.warp(first.cancelExpiration);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.SyncCancelled(id, first.requestId);
        OracleRequest memory second = requestSyncAs(alice, id);
        assertTrue(second.requestId != first.requestId);
        // The first fee came back, the second was paid; no second credit was spent.
        assertEq(link.balanceOf(address(nft)), linkBefore);
        assertEq(info(id).syncCredits, credits);
        // The cancelled request can no longer be fulfilled.
        vm.expectRevert(bytes("Must have a valid requestId"));
        fulfill(first, answer(first, id, 0, 5, 1, 1));
        assertTrue(fulfill(second, answer(second, id, 0, 5, 1, 1)));
        assertEq(info(id).used, 5);
    }

    function test_RevertWhen_requestSyncWithoutLink() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        uint256 balance = link.balanceOf(address(nft));
        nft.withdrawLink(address(this), balance);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.InsufficientLink.selector, 0, DEVNET_FEE)
        );
        vm.prank(alice);
        nft.requestSync(id);
    }

    function test_RevertWhen_requestSyncPaused() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        nft.pause();
        vm.expectRevert(IStorageNFT.EnforcedPause.selector);
        vm.prank(alice);
        nft.requestSync(id);
    }

    function test_RevertWhen_fulfillSyncCalledDirectly() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        OracleRequest memory req = requestSyncAs(alice, id);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.NotRequestOperator.selector, req.requestId, alice)
        );
        vm.prank(alice);
        nft.fulfillSync(req.requestId, id, 0, 0, 0, 99, "cid");
    }

    function test_RevertWhen_fulfillSyncUnknownRequest() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        vm.expectRevert(
            abi.encodeWithSelector(
                IStorageNFT.NotRequestOperator.selector, bytes32(uint256(1)), d.operator
            )
        );
        vm.prank(d.operator);
        nft.fulfillSync(bytes32(uint256(1)), id, 0, 0, 0, 99, "cid");
    }

    // ---------------------------------------------------------------------------------------
    // metadata
    // ---------------------------------------------------------------------------------------

    function test_tokenURI_isComputedJson() public {
        bytes32 key = 0xd88e0b4e3eee85a7ddff1a5ca5ba283e3df07156003d287cd0a2a4d26d94d024;
        uint256 id = mintWithKeyFor(alice, key);
        sync(alice, id, 4096, 3, 1);
        string memory uri = nft.tokenURI(id);
        string memory json = string(vm.parseBytes(_b64ToHex(uri)));
        assertEq(vm.parseJsonString(json, ".name"), "PX Storage #1");
        assertEq(vm.parseJsonUint(json, ".attributes[1].value"), 4096);
        assertEq(vm.parseJsonUint(json, ".attributes[2].value"), 3);
        assertEq(
            vm.parseJsonString(json, ".attributes[4].value"),
            "k51qzi5uqu5dlkw8pxuw9qmqayfdeh4kfebhmreauqdc6a7c3y7d5i9fi8mk9w"
        );
    }

    function test_supportsInterface_erc721AndErc4906() public view {
        assertTrue(nft.supportsInterface(0x80ac58cd)); // ERC-721
        assertTrue(nft.supportsInterface(0x49064906)); // ERC-4906
        assertTrue(nft.supportsInterface(type(IAccessControl).interfaceId));
        assertTrue(nft.supportsInterface(type(IAccessControlDefaultAdminRules).interfaceId));
        assertFalse(nft.supportsInterface(0xdeadbeef));
    }

    // ---------------------------------------------------------------------------------------
    // administration
    // ---------------------------------------------------------------------------------------

    function test_createPlan_appends() public {
        IStorageNFT.Plan memory p = _plan(1 << 20, 7 days, 10, 1 ether);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.PlanCreated(4, p);
        assertEq(nft.createPlan(p), 4);
        assertEq(nft.planCount(), 4);
        assertEq(nft.plan(4).quota, 1 << 20);
        assertEq(nft.plan(4).syncCredits, 10);
    }

    function test_RevertWhen_createPlanOutOfBounds() public {
        IStorageNFT.Plan memory p;
        vm.expectRevert(IStorageNFT.InvalidPlan.selector);
        nft.createPlan(p);
        p = _plan(1, uint32(nft.MAX_PREPAID_PERIOD() + 1), 0, 1);
        vm.expectRevert(IStorageNFT.InvalidPlan.selector);
        nft.createPlan(p);
        p = _plan(1, 1 days, 0, 0);
        p.free = true;
        vm.expectRevert(IStorageNFT.InvalidPlan.selector);
        nft.createPlan(p);
    }

    function test_updatePlan_setsPricesAndFlags() public {
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.PlanUpdated(BASIC_PLAN, 1 ether, 2 ether, false, true);
        nft.updatePlan(BASIC_PLAN, 1 ether, 2 ether, false, true);
        IStorageNFT.Plan memory p = nft.plan(BASIC_PLAN);
        assertEq(p.tokenPrice, 1 ether);
        assertEq(p.nativePrice, 2 ether);
        assertFalse(p.mintable);
        assertTrue(p.renewable);
        assertEq(p.quota, 10 << 30, "quota fixed");
    }

    function test_RevertWhen_updateUnknownPlan() public {
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.PlanNotFound.selector, 9));
        nft.updatePlan(9, 0, 0, true, true);
    }

    function test_RevertWhen_adminCallsByStranger() public {
        bytes32 admin = nft.DEFAULT_ADMIN_ROLE();
        bytes memory err = abi.encodeWithSelector(
            IAccessControl.AccessControlUnauthorizedAccount.selector, alice, admin
        );
        IStorageNFT.Plan memory p = nft.plan(1);
        vm.startPrank(alice);
        vm.expectRevert(err);
        nft.createPlan(p);
        vm.expectRevert(err);
        nft.updatePlan(1, 0, 0, false, false);
        vm.expectRevert(err);
        nft.setSyncWindow(2 days);
        vm.expectRevert(err);
        nft.setMinSyncInterval(1);
        vm.expectRevert(err);
        nft.scheduleOracleConfig(d.operator, bytes32(0), 0);
        vm.expectRevert(err);
        nft.setQuotaUnitPrice(0, 0);
        vm.expectRevert(err);
        nft.setTreasury(alice);
        vm.expectRevert(err);
        nft.withdrawFees();
        vm.expectRevert(err);
        nft.withdrawLink(alice, 1);
        vm.expectRevert(err);
        nft.beginDefaultAdminTransfer(alice);
        bytes memory notPauser = abi.encodeWithSelector(
            IAccessControl.AccessControlUnauthorizedAccount.selector, alice, nft.PAUSER_ROLE()
        );
        vm.expectRevert(notPauser);
        nft.pause();
        vm.stopPrank();
        nft.pause();
        vm.expectRevert(notPauser);
        vm.prank(alice);
        nft.unpause();
    }

    function test_oracleConfig_changeTakesEffectAfterDelay() public {
        address next = _newOperator();
        uint256 effectiveAt = block.timestamp + nft.ORACLE_CONFIG_DELAY();
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.OracleConfigScheduled(next, bytes32("job"), 2 ether, effectiveAt);
        nft.scheduleOracleConfig(next, bytes32("job"), 2 ether);
        (address op,,) = nft.oracleConfig();
        assertEq(op, d.operator, "nothing changes at once");
        (address pendingOp, bytes32 pendingJob, uint256 pendingFee, uint256 at) =
            nft.pendingOracleConfig();
        assertEq(pendingOp, next);
        assertEq(pendingJob, bytes32("job"));
        assertEq(pendingFee, 2 ether);
        assertEq(at, effectiveAt);

        vm.warp(effectiveAt - 1);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.OracleConfigNotReady.selector, effectiveAt)
        );
        nft.applyOracleConfig();

        vm.warp(effectiveAt);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.OracleConfigSet(next, bytes32("job"), 2 ether);
        vm.prank(bob); // anyone may apply it
        nft.applyOracleConfig();
        (address op2, bytes32 job2, uint256 fee2) = nft.oracleConfig();
        assertEq(op2, next);
        assertEq(job2, bytes32("job"));
        assertEq(fee2, 2 ether);
        (pendingOp,,, at) = nft.pendingOracleConfig();
        assertEq(pendingOp, address(0));
        assertEq(at, 0);
        vm.expectRevert(IStorageNFT.NoOracleConfigScheduled.selector);
        nft.applyOracleConfig();
    }

    function test_oracleConfig_rescheduleReplacesPending() public {
        nft.scheduleOracleConfig(_newOperator(), bytes32("x"), 1 ether);
        vm.warp(block.timestamp + 1 days);
        // Scheduling the configuration in effect cancels the change (and restarts the delay).
        nft.scheduleOracleConfig(d.operator, DEVNET_JOB_ID, DEVNET_FEE);
        vm.warp(block.timestamp + 1 days);
        vm.expectRevert(
            abi.encodeWithSelector(
                IStorageNFT.OracleConfigNotReady.selector, block.timestamp + 1 days
            )
        );
        nft.applyOracleConfig();
        vm.warp(block.timestamp + 1 days);
        nft.applyOracleConfig();
        (address op,,) = nft.oracleConfig();
        assertEq(op, d.operator);
    }

    function test_oracleConfig_pendingRequestStaysWithItsOperator() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        OracleRequest memory req = requestSyncAs(alice, id);
        address next = _newOperator();
        nft.scheduleOracleConfig(next, DEVNET_JOB_ID, DEVNET_FEE);
        vm.warp(block.timestamp + nft.ORACLE_CONFIG_DELAY());
        nft.applyOracleConfig();
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.NotRequestOperator.selector, req.requestId, next)
        );
        vm.prank(next);
        nft.fulfillSync(req.requestId, id, 0, 1, 1, 1, "cid");
        assertTrue(fulfill(req, answer(req, id, 0, 7, 1, 1)));
        assertEq(info(id).used, 7);
    }

    function test_RevertWhen_scheduleOracleConfigInvalid() public {
        vm.expectRevert(IStorageNFT.ZeroAddress.selector);
        nft.scheduleOracleConfig(address(0), bytes32(0), 0);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.OperatorNotContract.selector, bob));
        nft.scheduleOracleConfig(bob, bytes32(0), 0);
        uint256 tooMuch = nft.MAX_LINK_FEE() + 1;
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.FeeTooLarge.selector, tooMuch));
        nft.scheduleOracleConfig(d.operator, bytes32(0), tooMuch);
    }

    function test_setSyncWindow_bounded() public {
        uint256 min = nft.MIN_SYNC_WINDOW();
        uint256 max = nft.MAX_SYNC_WINDOW();
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.OutOfBounds.selector, min - 1, min, max));
        nft.setSyncWindow(min - 1);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.OutOfBounds.selector, max + 1, min, max));
        nft.setSyncWindow(max + 1);
        nft.setSyncWindow(max);
        assertEq(nft.syncWindow(), max);
    }

    function test_setMinSyncInterval_bounded() public {
        uint256 max = nft.MAX_MIN_SYNC_INTERVAL();
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.OutOfBounds.selector, max + 1, 0, max));
        nft.setMinSyncInterval(max + 1);
        nft.setMinSyncInterval(3600);
        assertEq(nft.minSyncInterval(), 3600);
    }

    function test_withdrawFees_sendsAllToTreasury() public {
        address treasury = makeAddr("treasury");
        nft.setTreasury(treasury);
        mintFor(alice);
        vm.prank(bob);
        nft.mint{value: 0.01 ether}(BASIC_PLAN, 0);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.FeesWithdrawn(treasury, 100 ether, 0.01 ether);
        nft.withdrawFees();
        assertEq(px.balanceOf(treasury), 100 ether);
        assertEq(treasury.balance, 0.01 ether);
        assertEq(address(nft).balance, 0);
    }

    function test_RevertWhen_setTreasuryZero() public {
        vm.expectRevert(IStorageNFT.ZeroAddress.selector);
        nft.setTreasury(address(0));
    }

    function test_RevertWhen_withdrawToRejectingTreasury() public {
        nft.setTreasury(address(px)); // a contract without receive()
        vm.prank(bob);
        nft.mint{value: 0.01 ether}(BASIC_PLAN, 0);
        vm.expectRevert(
            abi.encodeWithSelector(
                IStorageNFT.NativeTransferFailed.selector, address(px), 0.01 ether
            )
        );
        nft.withdrawFees();
    }

    function test_withdrawLink_sendsLink() public {
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.LinkWithdrawn(bob, 1 ether);
        nft.withdrawLink(bob, 1 ether);
        assertEq(link.balanceOf(bob), 1 ether);
        vm.expectRevert(IStorageNFT.ZeroAddress.selector);
        nft.withdrawLink(address(0), 1);
    }

    function test_pause_unpause() public {
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.Paused(address(this));
        nft.pause();
        assertTrue(nft.paused());
        vm.expectRevert(IStorageNFT.EnforcedPause.selector);
        nft.pause();
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.Unpaused(address(this));
        nft.unpause();
        assertFalse(nft.paused());
        vm.expectRevert(IStorageNFT.ExpectedPause.selector);
        nft.unpause();
        mintFor(alice);
    }

    function test_pause_stopsTheServiceClock() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        IStorageNFT.TokenInfo memory before = info(id);
        vm.warp(block.timestamp + 10 days);
        nft.pause();
        vm.warp(block.timestamp + 400 days);
        IStorageNFT.TokenInfo memory during = info(id);
        assertEq(during.expiresAt, before.expiresAt + 400 days, "expiry postponed while paused");
        nft.unpause();
        IStorageNFT.TokenInfo memory t = info(id);
        assertEq(t.expiresAt, before.expiresAt + 400 days);
        assertEq(t.lastSyncAt, before.lastSyncAt + 400 days);
        (bool ok,) = nft.canUpload(id, 1);
        assertTrue(ok, "10 days of the window used, 20 left");
        vm.warp(block.timestamp + 20 days);
        (ok,) = nft.canUpload(id, 1);
        assertTrue(ok);
        vm.warp(block.timestamp + 1);
        (, IStorageNFT.Reason reason) = nft.canUpload(id, 1);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.NotSynced));
    }

    function test_fulfillWhilePaused_recordsFrozenSyncTime() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        vm.warp(block.timestamp + 5 days);
        OracleRequest memory req = requestSyncAs(alice, id);
        nft.pause();
        vm.warp(block.timestamp + 3 days);
        assertTrue(fulfill(req, answer(req, id, 0, 9, 1, 1)), "answers still land");
        assertEq(info(id).used, 9);
        nft.unpause();
        // Synced as of the pause; the clock stood still since, so that reads as now.
        assertEq(info(id).lastSyncAt, block.timestamp);
    }

    function test_adminTransfer_takesTwoStepsAndDelay() public {
        address next = makeAddr("next admin");
        bytes32 admin = nft.DEFAULT_ADMIN_ROLE();
        vm.expectRevert(
            IAccessControlDefaultAdminRules.AccessControlEnforcedDefaultAdminRules.selector
        );
        nft.grantRole(admin, next);
        nft.beginDefaultAdminTransfer(next);
        (, uint48 schedule) = nft.pendingDefaultAdmin();
        assertEq(schedule, block.timestamp + nft.INITIAL_ADMIN_DELAY());
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControlDefaultAdminRules.AccessControlEnforcedDefaultAdminDelay.selector,
                schedule
            )
        );
        vm.prank(next);
        nft.acceptDefaultAdminTransfer();
        vm.warp(uint256(schedule) + 1);
        vm.prank(next);
        nft.acceptDefaultAdminTransfer();
        assertTrue(nft.hasRole(admin, next));
        assertFalse(nft.hasRole(admin, address(this)));
        assertEq(nft.defaultAdmin(), next);
    }

    // ---------------------------------------------------------------------------------------
    // holder cannot touch usage
    // ---------------------------------------------------------------------------------------

    function test_transfer_keepsUsageAndLock() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        sync(alice, id, 1 << 30, 9, 5);
        vm.warp(block.timestamp + 31 days);
        vm.prank(alice);
        nft.transferFrom(alice, bob, id);
        IStorageNFT.TokenInfo memory t = info(id);
        assertEq(t.used, 1 << 30);
        assertEq(t.seq, 5);
        (, IStorageNFT.Reason reason) = nft.canUpload(id, 1);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.NotSynced));
    }

    // ---------------------------------------------------------------------------------------
    // fuzz
    // ---------------------------------------------------------------------------------------

    function testFuzz_canUpload_matchesQuota(uint64 used, uint256 size) public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        used = uint64(bound(used, 0, 20 << 30));
        sync(alice, id, used, 1, 1);
        (bool ok, IStorageNFT.Reason reason) = nft.canUpload(id, size);
        bool fits = used <= 10 << 30 && size <= (10 << 30) - used;
        assertEq(ok, fits);
        assertEq(
            uint8(reason), uint8(fits ? IStorageNFT.Reason.None : IStorageNFT.Reason.QuotaExceeded)
        );
    }

    function testFuzz_sync_neverLowersSeq(uint64 first, uint64 second) public {
        first = uint64(bound(first, 1, type(uint64).max));
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        sync(alice, id, 100, 1, first);
        vm.warp(block.timestamp + 60);
        sync(alice, id, 200, 2, second);
        IStorageNFT.TokenInfo memory t = info(id);
        if (second > first) {
            assertEq(t.seq, second);
            assertEq(t.used, 200);
            assertEq(t.lastStatus, SyncStatus.OK);
        } else {
            assertEq(t.seq, first);
            assertEq(t.used, 100);
            assertEq(t.lastStatus, SyncStatus.STALE_SEQUENCE);
        }
    }

    function testFuzz_mintWithKey_rejectsForeignSigner(uint256 signerKey) public {
        signerKey = bound(signerKey, 1, 1e30);
        vm.assume(signerKey != registrarKey);
        bytes memory name = nameOf(keyOf(3));
        uint256 deadline = block.timestamp + 1;
        bytes memory sig = sign(signerKey, nft.keyAssignmentDigest(alice, name, deadline));
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.InvalidAssignment.selector, vm.addr(signerKey))
        );
        vm.prank(alice);
        nft.mintWithKey(BASIC_PLAN, BASIC_PRICE, name, deadline, sig);
    }

    function testFuzz_buyQuota_pricesLinearly(uint256 units) public {
        units = bound(units, 1, 1000);
        uint256 id = mintFor(alice);
        uint256 before = px.balanceOf(alice);
        vm.prank(alice);
        nft.buyQuota(id, units, units * 10 ether);
        assertEq(before - px.balanceOf(alice), units * 10 ether);
        assertEq(info(id).quota, (10 << 30) + units * (1 << 30));
    }

    function testFuzz_upgradePlan_creditNeverExceedsValueLeft(uint256 elapsed) public {
        elapsed = bound(elapsed, 0, 400 days);
        uint256 id = mintFor(alice);
        uint256 expiry = info(id).expiresAt;
        vm.warp(block.timestamp + elapsed);
        vm.prank(alice);
        nft.upgradePlan(id, PRO_PLAN, PRO_PRICE);
        uint256 left = expiry > block.timestamp ? expiry - block.timestamp : 0;
        uint256 credit = info(id).expiresAt - block.timestamp - 365 days;
        // Value in PX-seconds: credit * 5000 / year <= left * 100 / year.
        assertLe(credit * 5000, left * 100);
        assertGe((credit + 1) * 5000, left * 100, "rounded down by less than a second");
    }

    // ---------------------------------------------------------------------------------------
    // helpers
    // ---------------------------------------------------------------------------------------

    /// @dev A mintable, renewable paid plan priced in PXToken only.
    function _plan(uint64 quota, uint32 validity, uint16 credits, uint128 tokenPrice)
        internal
        pure
        returns (IStorageNFT.Plan memory)
    {
        return IStorageNFT.Plan({
            quota: quota,
            validity: validity,
            syncCredits: credits,
            mintable: true,
            renewable: true,
            free: false,
            escrowShareBps: 0,
            tokenPrice: tokenPrice,
            nativePrice: 0
        });
    }

    /// @dev A second real Operator on the same LINK, answering from `oracle`.
    function _newOperator() internal returns (address op) {
        op = vm.deployCode("Operator.sol:Operator", abi.encode(d.link, address(this)));
        address[] memory senders = new address[](1);
        senders[0] = oracle;
        IOperator(op).setAuthorizedSenders(senders);
    }

    /// @dev An EIP-2612 permit signature for `value` of PXToken to the StorageNFT.
    function _permit(address owner, uint256 key, uint256 value, uint256 deadline)
        internal
        view
        returns (uint8 v, bytes32 r, bytes32 s)
    {
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"
                ),
                owner,
                address(nft),
                value,
                px.nonces(owner),
                deadline
            )
        );
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", px.DOMAIN_SEPARATOR(), structHash));
        (v, r, s) = vm.sign(key, digest);
    }

    /// @dev Decodes the base64 payload of a data URI into a hex string for vm.parseBytes.
    function _b64ToHex(string memory uri) private pure returns (string memory) {
        bytes memory s = bytes(uri);
        uint256 start = bytes("data:application/json;base64,").length;
        bytes memory table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        uint8[128] memory rev;
        for (uint8 i; i < 64; ++i) {
            rev[uint8(table[i])] = i;
        }
        bytes memory out = new bytes((s.length - start) / 4 * 3);
        uint256 n;
        for (uint256 i = start; i < s.length; i += 4) {
            uint256 acc;
            uint256 pad;
            for (uint256 j; j < 4; ++j) {
                bytes1 c = s[i + j];
                acc <<= 6;
                if (c == "=") ++pad;
                else acc |= rev[uint8(c)];
            }
            out[n++] = bytes1(uint8(acc >> 16));
            if (pad < 2) out[n++] = bytes1(uint8(acc >> 8));
            if (pad < 1) out[n++] = bytes1(uint8(acc));
        }
        assembly {
            mstore(out, n)
        }
        return vm.toString(out);
    }
}

