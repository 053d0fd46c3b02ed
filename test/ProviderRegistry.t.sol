// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

import {IProviderRegistry} from "../contracts/interfaces/IProviderRegistry.sol";
import {
    IProviderRegistryHarness,
    IStorageMarketHarness,
    MarketFixture
} from "./utils/MarketFixture.sol";

/// @notice IProviderRegistryHarness: registration, listings, stake, certification, exits, the market's
/// calls and the paged, filtered views.
contract ProviderRegistryTest is MarketFixture {
    address internal carol = makeAddr("carol");

    function setUp() public override {
        super.setUp();
        px.mint(carol, 1_000_000 ether);
        vm.prank(carol);
        px.approve(address(registry), type(uint256).max);
    }

    function test_registerProvider_storesListingAndStake() public {
        vm.expectEmit(address(registry));
        emit IProviderRegistry.ProviderRegistered(
            carol, "https://c.example", 40, 5 * GIB, 3 ether, 200 ether
        );
        vm.prank(carol);
        registry.registerProvider("https://c.example", 40, 5 * GIB, 3 ether, 200 ether);
        IProviderRegistry.Listing memory l = registry.providerOf(carol);
        assertEq(l.endpoint, "https://c.example");
        assertEq(l.region, 40);
        assertEq(l.capacity, 5 * GIB);
        assertEq(l.pricePerGiBMonth, 3 ether);
        assertEq(l.stake, 200 ether);
        assertTrue(l.active);
        assertFalse(l.certified);
        assertEq(registry.providerCount(), 3);
        assertEq(px.balanceOf(address(registry)), 2 * STAKE + 200 ether);
    }

    function test_RevertWhen_registerProviderBadInput() public {
        vm.startPrank(carol);
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.StakeTooLow.selector, 100 ether - 1, 100 ether)
        );
        registry.registerProvider("https://c.example", 40, GIB, 1, 100 ether - 1);
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.InvalidListing.selector, 0, GIB));
        registry.registerProvider("", 40, GIB, 1, 100 ether);
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.InvalidListing.selector, 17, 0));
        registry.registerProvider("https://c.example", 40, 0, 1, 100 ether);
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.InvalidListing.selector, 257, GIB));
        registry.registerProvider(string(new bytes(257)), 40, GIB, 1, 100 ether);
        registry.registerProvider(string(new bytes(256)), 40, GIB, 1, 100 ether); // exactly min
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.AlreadyRegistered.selector, carol));
        registry.registerProvider("https://c.example", 40, GIB, 1, 100 ether);
        vm.stopPrank();
    }

    function test_updateListing_changesListing() public {
        vm.prank(provider);
        registry.updateListing("https://new.example", 1, GIB, 2 ether);
        IProviderRegistry.Listing memory l = registry.providerOf(provider);
        assertEq(l.endpoint, "https://new.example");
        assertEq(l.region, 1);
        assertEq(l.capacity, GIB);
        assertEq(l.pricePerGiBMonth, 2 ether);
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.NotRegistered.selector, carol));
        vm.prank(carol);
        registry.updateListing("https://new.example", 1, GIB, 2 ether);
    }

    function test_setPaused_delistsUntilResumed() public {
        vm.prank(provider);
        registry.setPaused(true);
        assertFalse(registry.isActive(provider));
        vm.prank(provider);
        registry.setPaused(false);
        assertTrue(registry.isActive(provider));
    }

    // ------------------------------------------------------------------------------------------
    // Exit and unbonding
    // ------------------------------------------------------------------------------------------

    function test_withdrawStake_afterUnbondingWithoutDeals() public {
        vm.prank(provider);
        registry.requestExit();
        assertFalse(registry.isActive(provider), "exiting is not listed");
        uint256 unbondsAt = block.timestamp + 1 days;
        vm.warp(unbondsAt - 1);
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.StillBonded.selector, provider, unbondsAt)
        );
        vm.prank(provider);
        registry.withdrawStake();
        vm.warp(unbondsAt);
        uint256 before = px.balanceOf(provider);
        vm.prank(provider);
        registry.withdrawStake();
        assertEq(px.balanceOf(provider), before + STAKE);
        assertEq(registry.stakeOf(provider), 0);
        assertFalse(registry.providerOf(provider).active);
        IProviderRegistry.Filter memory f;
        (IProviderRegistry.Listing[] memory page,) = registry.listProviders(0, 10, f);
        assertEq(page.length, 1, "an exited provider is not listed");
        assertEq(page[0].provider, provider2);
        // It can come back; the list does not grow.
        vm.prank(provider);
        registry.registerProvider("https://p1.example", 1, GIB, 1, 100 ether);
        assertEq(registry.providerCount(), 2);
    }

    function test_RevertWhen_withdrawStakeWithoutExit() public {
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.StillBonded.selector, provider, 0));
        vm.prank(provider);
        registry.withdrawStake();
    }

    function test_RevertWhen_withdrawStakeWithActiveDeal() public {
        uint256 dealId = openDefault();
        vm.prank(provider);
        registry.requestExit();
        vm.warp(block.timestamp + 30 days);
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.HasActiveDeals.selector, provider, 1)
        );
        vm.prank(provider);
        registry.withdrawStake();
        // The exiting provider still proves its deal; once it is over, the stake comes back.
        for (uint256 p; p < 10; ++p) {
            proveUniform(market, dealId, p);
        }
        vm.prank(provider);
        registry.withdrawStake();
    }

    function test_RevertWhen_requestExitTwice() public {
        vm.prank(provider);
        registry.requestExit();
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.Exiting.selector, provider));
        vm.prank(provider);
        registry.requestExit();
    }

    function test_addStake_raisesStake() public {
        vm.prank(provider);
        registry.addStake(5 ether);
        assertEq(registry.stakeOf(provider), STAKE + 5 ether);
    }

    // ------------------------------------------------------------------------------------------
    // Certifier, market and admin
    // ------------------------------------------------------------------------------------------

    function test_certify_andDecertifyWithReason() public {
        vm.prank(certifier);
        registry.certify(provider);
        assertTrue(registry.providerOf(provider).certified);
        vm.expectEmit(address(registry));
        emit IProviderRegistry.ProviderDecertified(provider, certifier, 7);
        vm.prank(certifier);
        registry.decertify(provider, 7);
        assertFalse(registry.providerOf(provider).certified);
    }

    function test_RevertWhen_certifyNotCertifier() public {
        bytes32 role = registry.CERTIFIER_ROLE();
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, provider, role
            )
        );
        vm.prank(provider);
        registry.certify(provider);
        vm.prank(certifier);
        registry.certify(provider);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, provider, role
            )
        );
        vm.prank(provider);
        registry.decertify(provider, 1);
    }

    function test_RevertWhen_marketCallsFromAnyoneElse() public {
        vm.startPrank(provider);
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.NotMarket.selector, provider));
        registry.slash(provider2, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.NotMarket.selector, provider));
        registry.reserve(provider, 1);
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.NotMarket.selector, provider));
        registry.release(provider, 1);
        vm.stopPrank();
        assertEq(registry.stakeOf(provider2), STAKE);
    }

    function test_RevertWhen_adminCallsFromAnyoneElse() public {
        vm.startPrank(provider);
        bytes memory err = abi.encodeWithSelector(
            IAccessControl.AccessControlUnauthorizedAccount.selector, provider, bytes32(0)
        );
        vm.expectRevert(err);
        registry.setMinStake(0);
        vm.expectRevert(err);
        registry.setUnbondingDelay(2 days);
        vm.expectRevert(err);
        registry.setMarket(provider);
        vm.stopPrank();
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.MarketAlreadySet.selector, address(market))
        );
        registry.setMarket(provider);
    }

    /// @dev The registry caps a slash by the stake on its own (the market also asks no more).
    function test_slash_cappedByStake() public {
        IProviderRegistryHarness r = IProviderRegistryHarness(
            vm.deployCode(
                "ProviderRegistry.sol:ProviderRegistry",
                abi.encode(address(this), d.pxToken, uint96(100 ether), uint40(1 days))
            )
        );
        r.setMarket(address(this)); // this test plays the market
        vm.startPrank(carol);
        px.approve(address(r), type(uint256).max);
        r.registerProvider("https://c.example", 1, GIB, 1, 100 ether);
        vm.stopPrank();
        assertEq(r.slash(carol, 30 ether), 30 ether);
        assertEq(r.slash(carol, 100 ether), 70 ether, "capped by what is left");
        assertEq(r.stakeOf(carol), 0);
        assertEq(px.balanceOf(address(this)), 100 ether);
        assertEq(px.balanceOf(address(r)), 0);
    }

    function test_adminSettings_bounded() public {
        uint256 maxMin = registry.MAX_MIN_STAKE();
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.OutOfBounds.selector, maxMin + 1, 0, maxMin)
        );
        registry.setMinStake(uint96(maxMin + 1));
        registry.setMinStake(uint96(maxMin));
        vm.expectRevert(
            abi.encodeWithSelector(
                IProviderRegistry.OutOfBounds.selector, 1 hours - 1, 1 hours, 90 days
            )
        );
        registry.setUnbondingDelay(1 hours - 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IProviderRegistry.OutOfBounds.selector, 90 days + 1, 1 hours, 90 days
            )
        );
        registry.setUnbondingDelay(90 days + 1);
        registry.setUnbondingDelay(90 days);
        registry.setUnbondingDelay(1 hours);
        assertEq(registry.unbondingDelay(), 1 hours);
    }

    // ------------------------------------------------------------------------------------------
    // Paged, filtered listing
    // ------------------------------------------------------------------------------------------

    function test_listProviders_filtersAndPages() public {
        vm.prank(carol);
        registry.registerProvider("https://c.example", 276, 2 * GIB, 5 ether, 100 ether);
        vm.prank(certifier);
        registry.certify(provider2);
        IProviderRegistry.Filter memory f;

        (IProviderRegistry.Listing[] memory page, uint256 next) = registry.listProviders(0, 2, f);
        assertEq(page.length, 2);
        assertEq(page[0].provider, provider);
        assertEq(page[1].provider, provider2);
        assertEq(next, 2);
        (page, next) = registry.listProviders(next, 2, f);
        assertEq(page.length, 1);
        assertEq(page[0].provider, carol);
        assertEq(next, 3);

        f.region = 276;
        (page,) = registry.listProviders(0, 10, f);
        assertEq(page.length, 2, "region");
        f.onlyCertified = true;
        (page,) = registry.listProviders(0, 10, f);
        assertEq(page.length, 1, "certified");
        assertEq(page[0].provider, provider2);

        f = IProviderRegistry.Filter(false, false, 0, 1 ether, 0);
        (page,) = registry.listProviders(0, 10, f);
        assertEq(page.length, 2, "price cap");
        f = IProviderRegistry.Filter(false, false, 0, 0, 2 * GIB + 1);
        (page,) = registry.listProviders(0, 10, f);
        assertEq(page.length, 2, "free capacity");
        f = IProviderRegistry.Filter(false, false, 0, 0, 2 * GIB);
        (page,) = registry.listProviders(0, 10, f);
        assertEq(page.length, 3, "free capacity, exactly");

        vm.prank(carol);
        registry.setPaused(true);
        f = IProviderRegistry.Filter(true, false, 0, 0, 0);
        (page,) = registry.listProviders(0, 10, f);
        assertEq(page.length, 2, "active");
    }

    function test_listProviders_freeCapacityCountsReservations() public {
        openDefault(); // reserves 1 GiB at provider
        IProviderRegistry.Filter memory f;
        f.minFreeCapacity = CAPACITY - GIB + 1;
        (IProviderRegistry.Listing[] memory page,) = registry.listProviders(0, 10, f);
        assertEq(page.length, 1);
        assertEq(page[0].provider, provider2);
    }
}
