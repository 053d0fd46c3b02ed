// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {IStorageNFT} from "../contracts/interfaces/IStorageNFT.sol";
import {SyncStatus} from "../contracts/libraries/SyncStatus.sol";
import {Deployers} from "./utils/Deployers.sol";

contract StorageNFTTest is Deployers {
    event MetadataUpdate(uint256 _tokenId);

    // ---------------------------------------------------------------------------------------
    // mint
    // ---------------------------------------------------------------------------------------

    function test_mint_paysTokenAndSetsQuota() public {
        uint256 before = px.balanceOf(alice);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.Minted(1, alice, BASIC_PLAN);
        vm.prank(alice);
        uint256 id = nft.mint(BASIC_PLAN);
        assertEq(id, 1);
        assertEq(nft.ownerOf(id), alice);
        assertEq(before - px.balanceOf(alice), 100 ether);
        IStorageNFT.TokenInfo memory t = info(id);
        assertEq(t.quota, 10 << 30);
        assertEq(t.used, 0);
        assertEq(t.planId, BASIC_PLAN);
        assertEq(t.expiresAt, block.timestamp + 365 days);
        assertEq(t.lastSyncAt, block.timestamp);
        assertEq(t.ipnsKey, bytes32(0));
    }

    function test_mint_paysNative() public {
        uint256 pxBefore = px.balanceOf(alice);
        vm.prank(alice);
        uint256 id = nft.mint{value: 0.01 ether}(BASIC_PLAN);
        assertEq(address(nft).balance, 0.01 ether);
        assertEq(px.balanceOf(alice), pxBefore);
        assertEq(info(id).quota, 10 << 30);
    }

    function test_mint_freePlanOncePerAddress() public {
        vm.prank(alice);
        uint256 id = nft.mint(FREE_PLAN);
        assertEq(info(id).quota, 100 << 20);
        assertEq(info(id).expiresAt, 0);
        assertTrue(nft.freePlanClaimed(alice));
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.FreePlanClaimed.selector, alice));
        vm.prank(alice);
        nft.mint(FREE_PLAN);
    }

    function test_RevertWhen_mintFreePlanWithValue() public {
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.WrongPayment.selector, 1, 0));
        vm.prank(alice);
        nft.mint{value: 1}(FREE_PLAN);
    }

    function test_RevertWhen_mintWrongNativeAmount() public {
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.WrongPayment.selector, 1 ether, 0.01 ether)
        );
        vm.prank(alice);
        nft.mint{value: 1 ether}(BASIC_PLAN);
    }

    function test_RevertWhen_mintUnknownPlan() public {
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.PlanNotFound.selector, 0));
        nft.mint(0);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.PlanNotFound.selector, 4));
        nft.mint(4);
    }

    function test_RevertWhen_mintInactivePlan() public {
        nft.updatePlan(BASIC_PLAN, 100 ether, 0, false);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.PlanInactive.selector, BASIC_PLAN));
        vm.prank(alice);
        nft.mint(BASIC_PLAN);
    }

    function test_RevertWhen_mintNativeOnlyPlanWithoutValue() public {
        nft.updatePlan(BASIC_PLAN, 0, 0.01 ether, true);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.WrongPayment.selector, 0, 0.01 ether));
        vm.prank(alice);
        nft.mint(BASIC_PLAN);
    }

    function test_RevertWhen_mintPlanWithoutPrice() public {
        nft.updatePlan(BASIC_PLAN, 0, 0, true);
        vm.expectRevert(IStorageNFT.NotForSale.selector);
        vm.prank(alice);
        nft.mint(BASIC_PLAN);
    }

    function test_RevertWhen_mintWithoutAllowance() public {
        address carol = makeAddr("carol");
        px.mint(carol, 1000 ether);
        vm.expectRevert();
        vm.prank(carol);
        nft.mint(BASIC_PLAN);
    }

    function test_RevertWhen_mintPaused() public {
        nft.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        vm.prank(alice);
        nft.mint(BASIC_PLAN);
    }

    function test_mintWithPermit_paysWithoutApproval() public {
        (address carol, uint256 carolKey) = makeAddrAndKey("carol");
        px.mint(carol, 1000 ether);
        uint256 deadline = block.timestamp + 1 hours;
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"
                ),
                carol,
                address(nft),
                100 ether,
                px.nonces(carol),
                deadline
            )
        );
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", px.DOMAIN_SEPARATOR(), structHash));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(carolKey, digest);
        vm.prank(carol);
        uint256 id = nft.mintWithPermit(BASIC_PLAN, deadline, v, r, s);
        assertEq(nft.ownerOf(id), carol);
        assertEq(px.balanceOf(carol), 900 ether);
    }

    function test_RevertWhen_mintWithPermitBadSignature() public {
        address carol = makeAddr("carol");
        px.mint(carol, 1000 ether);
        // The permit fails silently (front-running tolerance) and the allowance is missing.
        vm.expectRevert();
        vm.prank(carol);
        nft.mintWithPermit(BASIC_PLAN, block.timestamp, 27, bytes32(0), bytes32(0));
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
        nft.mintWithKey(BASIC_PLAN, name, deadline, sig);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.KeyInUse.selector, keyOf(1), 1));
        vm.prank(alice);
        nft.mintWithKey(BASIC_PLAN, name, deadline, sig);
    }

    function test_RevertWhen_mintWithKeyForAnotherMinter() public {
        bytes memory name = nameOf(keyOf(1));
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signAssignment(alice, name, deadline);
        bytes32 digest = nft.keyAssignmentDigest(bob, name, deadline);
        address recovered = ECDSA.recover(digest, sig);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.InvalidAssignment.selector, recovered));
        vm.prank(bob);
        nft.mintWithKey(BASIC_PLAN, name, deadline, sig);
    }

    function test_RevertWhen_mintWithKeyNotRegistrar() public {
        (address mallory, uint256 malloryKey) = makeAddrAndKey("mallory");
        bytes memory name = nameOf(keyOf(1));
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(malloryKey, nft.keyAssignmentDigest(alice, name, deadline));
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.InvalidAssignment.selector, mallory));
        vm.prank(alice);
        nft.mintWithKey(BASIC_PLAN, name, deadline, abi.encodePacked(r, s, v));
    }

    function test_RevertWhen_mintWithKeyExpired() public {
        bytes memory name = nameOf(keyOf(1));
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signAssignment(alice, name, deadline);
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.AssignmentExpired.selector, deadline));
        vm.prank(alice);
        nft.mintWithKey(BASIC_PLAN, name, deadline, sig);
    }

    function test_RevertWhen_mintWithKeyMalformedName() public {
        bytes memory name = abi.encodePacked(bytes6(0x002408011221), keyOf(1)); // wrong length byte
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signAssignment(alice, name, deadline);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.InvalidIpnsName.selector, name));
        vm.prank(alice);
        nft.mintWithKey(BASIC_PLAN, name, deadline, sig);
    }

    function test_registerKey_bindsLater() public {
        vm.prank(alice);
        uint256 id = nft.mint(BASIC_PLAN);
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
        vm.prank(alice);
        uint256 id = nft.mint(BASIC_PLAN);
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
    // upgrade, renew, extra quota
    // ---------------------------------------------------------------------------------------

    function test_upgradePlan_keepsExtraQuotaAndUsage() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        vm.prank(alice);
        nft.buyQuota(id, 2);
        sync(alice, id, 123, 4, 1);
        vm.warp(block.timestamp + 10 days);
        vm.prank(alice);
        nft.upgradePlan(id, PRO_PLAN);
        IStorageNFT.TokenInfo memory t = info(id);
        assertEq(t.quota, (1 << 40) + 2 * (1 << 30));
        assertEq(t.planId, PRO_PLAN);
        assertEq(t.used, 123);
        assertEq(t.seq, 1);
        assertEq(t.expiresAt, block.timestamp + 365 days);
    }

    function test_RevertWhen_upgradeToSmallerPlan() public {
        vm.prank(alice);
        uint256 id = nft.mint(PRO_PLAN);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.NotAnUpgrade.selector, PRO_PLAN, BASIC_PLAN)
        );
        vm.prank(alice);
        nft.upgradePlan(id, BASIC_PLAN);
    }

    function test_RevertWhen_upgradeToFreePlan() public {
        vm.prank(alice);
        uint256 id = nft.mint(BASIC_PLAN);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.FreePlanNotRenewable.selector, 1));
        vm.prank(alice);
        nft.upgradePlan(id, FREE_PLAN);
    }

    function test_RevertWhen_upgradeByStranger() public {
        vm.prank(alice);
        uint256 id = nft.mint(BASIC_PLAN);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.NotTokenOwner.selector, id, bob));
        vm.prank(bob);
        nft.upgradePlan(id, PRO_PLAN);
    }

    function test_renew_extendsFromExpiry() public {
        vm.prank(alice);
        uint256 id = nft.mint(BASIC_PLAN);
        uint256 expiry = info(id).expiresAt;
        vm.prank(alice);
        nft.renew(id);
        assertEq(info(id).expiresAt, expiry + 365 days);
        vm.warp(expiry + 500 days);
        vm.prank(alice);
        nft.renew(id);
        assertEq(info(id).expiresAt, block.timestamp + 365 days);
    }

    function test_RevertWhen_renewFreePlan() public {
        vm.prank(alice);
        uint256 id = nft.mint(FREE_PLAN);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.FreePlanNotRenewable.selector, 1));
        vm.prank(alice);
        nft.renew(id);
    }

    function test_buyQuota_addsUnits() public {
        vm.prank(alice);
        uint256 id = nft.mint(BASIC_PLAN);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.QuotaPurchased(id, 3, (10 << 30) + 3 * (1 << 30));
        vm.prank(alice);
        nft.buyQuota{value: 0.003 ether}(id, 3);
        assertEq(info(id).quota, (10 << 30) + 3 * (1 << 30));
    }

    function test_RevertWhen_buyZeroQuota() public {
        vm.prank(alice);
        uint256 id = nft.mint(BASIC_PLAN);
        vm.expectRevert(IStorageNFT.NotForSale.selector);
        vm.prank(alice);
        nft.buyQuota(id, 0);
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

        vm.prank(alice);
        uint256 id = nft.mint(BASIC_PLAN);
        (, reason) = nft.canUpload(id, 1);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.NoKey));

        vm.prank(registrar);
        nft.registerKey(id, nameOf(keyOf(1)));
        (, reason) = nft.canUpload(id, (10 << 30) + 1);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.QuotaExceeded));
        (ok,) = nft.canUpload(id, 10 << 30);
        assertTrue(ok);

        vm.warp(block.timestamp + 30 days + 1);
        (, reason) = nft.canUpload(id, 1);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.NotSynced));

        vm.warp(block.timestamp + 400 days);
        (, reason) = nft.canUpload(id, 1);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.Expired));

        nft.pause();
        (, reason) = nft.canUpload(id, 1);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.Paused));
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

    function test_setSyncWindow_movesGate() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        nft.setSyncWindow(1 days);
        assertEq(nft.syncWindow(), 1 days);
        vm.warp(block.timestamp + 1 days + 1);
        (, IStorageNFT.Reason reason) = nft.canUpload(id, 1);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.NotSynced));
    }

    // ---------------------------------------------------------------------------------------
    // requestSync (revert paths; the round trip is in StorageNFT.sync.t.sol)
    // ---------------------------------------------------------------------------------------

    function test_RevertWhen_requestSyncByStranger() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.NotTokenOwner.selector, id, bob));
        vm.prank(bob);
        nft.requestSync(id);
    }

    function test_requestSync_byApprovedOperator() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        vm.prank(alice);
        nft.setApprovalForAll(bob, true);
        vm.prank(bob);
        nft.requestSync(id);
        assertTrue(info(id).pending);
    }

    function test_RevertWhen_requestSyncWithoutKey() public {
        vm.prank(alice);
        uint256 id = nft.mint(BASIC_PLAN);
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.NoKey.selector, id));
        vm.prank(alice);
        nft.requestSync(id);
    }

    function test_RevertWhen_requestSyncPending() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        OracleRequest memory req = requestSyncAs(alice, id);
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

    function test_requestSync_cancelsExpiredRequest() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        OracleRequest memory first = requestSyncAs(alice, id);
        uint256 linkBefore = link.balanceOf(address(nft));
        vm.warp(first.cancelExpiration);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.SyncCancelled(id, first.requestId);
        OracleRequest memory second = requestSyncAs(alice, id);
        assertTrue(second.requestId != first.requestId);
        // The first fee came back, the second was paid.
        assertEq(link.balanceOf(address(nft)), linkBefore);
        // The cancelled request can no longer be fulfilled.
        vm.expectRevert();
        fulfillAs(oracle, first, answer(first, id, 0, 5, 1, 1), 500_000);
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
        vm.expectRevert(Pausable.EnforcedPause.selector);
        vm.prank(alice);
        nft.requestSync(id);
    }

    function test_RevertWhen_fulfillSyncCalledDirectly() public {
        uint256 id = mintWithKeyFor(alice, keyOf(1));
        OracleRequest memory req = requestSyncAs(alice, id);
        vm.expectRevert("Source must be the oracle of the request");
        vm.prank(alice);
        nft.fulfillSync(req.requestId, id, 0, 0, 0, 99, "");
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
        assertFalse(nft.supportsInterface(0xdeadbeef));
    }

    // ---------------------------------------------------------------------------------------
    // administration
    // ---------------------------------------------------------------------------------------

    function test_createPlan_appends() public {
        IStorageNFT.Plan memory p = IStorageNFT.Plan({
            quota: 1 << 20,
            validity: 7 days,
            active: true,
            free: false,
            tokenPrice: 1 ether,
            nativePrice: 0
        });
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.PlanCreated(4, p);
        assertEq(nft.createPlan(p), 4);
        assertEq(nft.planCount(), 4);
        assertEq(nft.plan(4).quota, 1 << 20);
    }

    function test_RevertWhen_createPlanZeroQuota() public {
        IStorageNFT.Plan memory p;
        vm.expectRevert(IStorageNFT.InvalidPlan.selector);
        nft.createPlan(p);
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
        nft.updatePlan(1, 0, 0, false);
        vm.expectRevert(err);
        nft.setSyncWindow(1);
        vm.expectRevert(err);
        nft.setMinSyncInterval(1);
        vm.expectRevert(err);
        nft.setOracleConfig(alice, bytes32(0), 0);
        vm.expectRevert(err);
        nft.setQuotaUnitPrice(0, 0);
        vm.expectRevert(err);
        nft.setTreasury(alice);
        vm.expectRevert(err);
        nft.withdrawFees();
        vm.expectRevert(err);
        nft.withdrawLink(alice, 1);
        bytes32 pauser = nft.PAUSER_ROLE();
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, alice, pauser
            )
        );
        nft.pause();
        vm.stopPrank();
    }

    function test_setOracleConfig_updates() public {
        nft.setOracleConfig(address(0xBEEF), bytes32("job"), 2 ether);
        (address op, bytes32 job, uint256 fee) = nft.oracleConfig();
        assertEq(op, address(0xBEEF));
        assertEq(job, bytes32("job"));
        assertEq(fee, 2 ether);
    }

    function test_RevertWhen_setOracleConfigInvalid() public {
        vm.expectRevert(IStorageNFT.ZeroAddress.selector);
        nft.setOracleConfig(address(0), bytes32(0), 0);
        uint256 tooMuch = uint256(type(uint96).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(IStorageNFT.FeeTooLarge.selector, tooMuch));
        nft.setOracleConfig(address(1), bytes32(0), tooMuch);
    }

    function test_setMinSyncInterval_updates() public {
        nft.setMinSyncInterval(3600);
        assertEq(nft.minSyncInterval(), 3600);
    }

    function test_withdrawFees_sendsAllToTreasury() public {
        address treasury = makeAddr("treasury");
        nft.setTreasury(treasury);
        vm.prank(alice);
        nft.mint(BASIC_PLAN);
        vm.prank(bob);
        nft.mint{value: 0.01 ether}(BASIC_PLAN);
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
        nft.mint{value: 0.01 ether}(BASIC_PLAN);
        vm.expectRevert(
            abi.encodeWithSelector(
                IStorageNFT.NativeTransferFailed.selector, address(px), 0.01 ether
            )
        );
        nft.withdrawFees();
    }

    function test_pause_unpause() public {
        nft.pause();
        assertTrue(nft.paused());
        nft.unpause();
        vm.prank(alice);
        nft.mint(BASIC_PLAN);
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
        size = bound(size, 0, 20 << 30);
        sync(alice, id, used, 1, 1);
        (bool ok, IStorageNFT.Reason reason) = nft.canUpload(id, size);
        bool fits = uint256(used) + size <= 10 << 30;
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
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(signerKey, nft.keyAssignmentDigest(alice, name, deadline));
        vm.expectRevert(
            abi.encodeWithSelector(IStorageNFT.InvalidAssignment.selector, vm.addr(signerKey))
        );
        vm.prank(alice);
        nft.mintWithKey(BASIC_PLAN, name, deadline, abi.encodePacked(r, s, v));
    }

    function testFuzz_buyQuota_pricesLinearly(uint256 units) public {
        units = bound(units, 1, 1000);
        vm.prank(alice);
        uint256 id = nft.mint(BASIC_PLAN);
        uint256 before = px.balanceOf(alice);
        vm.prank(alice);
        nft.buyQuota(id, units);
        assertEq(before - px.balanceOf(alice), units * 10 ether);
        assertEq(info(id).quota, (10 << 30) + units * (1 << 30));
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
