// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";

import {IProviderRegistry} from "../contracts/interfaces/IProviderRegistry.sol";
import {IStorageMarket} from "../contracts/interfaces/IStorageMarket.sol";
import {IStorageNFT} from "../contracts/interfaces/IStorageNFT.sol";
import {StorageProof} from "../contracts/libraries/StorageProof.sol";
import {MarketParams} from "../script/Deployer.sol";
import {
    IProviderRegistryHarness,
    IStorageMarketHarness,
    MarketFixture
} from "./utils/MarketFixture.sol";

/// @notice IStorageMarketHarness: escrow, deals, root updates, proofs, misses, earnings, fees, and the
/// plan share StorageNFT routes into the escrow.
contract StorageMarketTest is MarketFixture {
    uint256 internal constant L = 100; // devnet period blocks
    uint256 internal constant W = 50; // devnet proof window
    uint256 internal constant C = 4; // devnet challenges

    // ------------------------------------------------------------------------------------------
    // Escrow
    // ------------------------------------------------------------------------------------------

    function test_fund_addsToEscrow() public {
        vm.prank(bob);
        px.approve(address(market), 5 ether);
        vm.expectEmit(address(market));
        emit IStorageMarket.EscrowFunded(token, bob, 5 ether, ESCROW + 5 ether);
        vm.prank(bob);
        market.fund(token, 5 ether);
        assertEq(market.escrowOf(token), ESCROW + 5 ether);
        assertEq(px.balanceOf(address(market)), ESCROW + 5 ether);
    }

    function test_RevertWhen_fundZeroOrUnknownToken() public {
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.ZeroAmount.selector, token));
        vm.prank(alice);
        market.fund(token, 0);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, 999));
        vm.prank(alice);
        market.fund(999, 1);
    }

    function test_withdrawEscrow_holderTakesUncommitted() public {
        openDefault();
        uint256 free = market.escrowOf(token);
        vm.prank(alice);
        market.withdrawEscrow(token, free, carolAddr());
        assertEq(px.balanceOf(carolAddr()), free);
        assertEq(market.escrowOf(token), 0);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageMarket.InsufficientEscrow.selector, token, 0, 1)
        );
        vm.prank(alice);
        market.withdrawEscrow(token, 1, alice);
    }

    function test_RevertWhen_withdrawEscrowNotHolder() public {
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.NotTokenHolder.selector, token, bob));
        vm.prank(bob);
        market.withdrawEscrow(token, 1, bob);
        // The home node cannot either.
        vm.expectRevert(
            abi.encodeWithSelector(IStorageMarket.NotTokenHolder.selector, token, registrar)
        );
        vm.prank(registrar);
        market.withdrawEscrow(token, 1, registrar);
    }

    function test_RevertWhen_withdrawEscrowAboveBalance() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IStorageMarket.InsufficientEscrow.selector, token, ESCROW, ESCROW + 1
            )
        );
        vm.prank(alice);
        market.withdrawEscrow(token, ESCROW + 1, alice);
    }

    function test_RevertWhen_creditNotStorageNFT() public {
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.NotStorageNFT.selector, alice));
        vm.prank(alice);
        market.credit(token, 1 ether);
    }

    function test_RevertWhen_setHomeNodeNotHolderOrNotRegistrar() public {
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.NotTokenHolder.selector, token, bob));
        vm.prank(bob);
        market.setHomeNode(token, registrar);
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.NotRegistrar.selector, bob));
        vm.prank(alice);
        market.setHomeNode(token, bob);
    }

    // ------------------------------------------------------------------------------------------
    // Plan share (StorageNFT routes part of a plan's price into the escrow)
    // ------------------------------------------------------------------------------------------

    function _sharePlan(uint16 bps) internal returns (uint256 planId) {
        planId = nft.createPlan(
            IStorageNFT.Plan({
                quota: 1 << 30,
                validity: 30 days,
                syncCredits: 10,
                mintable: true,
                renewable: true,
                free: false,
                escrowShareBps: bps,
                tokenPrice: 100 ether,
                nativePrice: 0.01 ether
            })
        );
    }

    function test_mint_routesPlanShareIntoEscrow() public {
        uint256 planId = _sharePlan(2500);
        uint256 nftBalance = px.balanceOf(address(nft));
        vm.prank(bob);
        uint256 id = nft.mint(planId, 100 ether);
        assertEq(market.escrowOf(id), 25 ether, "share at mint");
        assertEq(px.balanceOf(address(nft)), nftBalance + 75 ether, "rest to StorageNFT");
        vm.prank(bob);
        nft.renew(id, 100 ether);
        assertEq(market.escrowOf(id), 50 ether, "share at renewal");
        assertEq(px.balanceOf(address(market)), ESCROW + 50 ether, "market holds it");
    }

    function test_mint_nativePaymentOrZeroShareRoutesNothing() public {
        uint256 planId = _sharePlan(2500);
        vm.prank(bob);
        uint256 id = nft.mint{value: 0.01 ether}(planId, 0);
        assertEq(market.escrowOf(id), 0);
        uint256 plain = mintFor(bob); // devnet plans have no share
        assertEq(market.escrowOf(plain), 0);
    }

    function test_RevertWhen_planShareAboveMax() public {
        IStorageNFT.Plan memory p = nft.plan(BASIC_PLAN);
        p.escrowShareBps = 5001;
        vm.expectRevert(IStorageNFT.InvalidPlan.selector);
        nft.createPlan(p);
        p.escrowShareBps = 5000;
        nft.createPlan(p);
    }

    function test_RevertWhen_setMarketNotAdmin() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, bob, bytes32(0)
            )
        );
        vm.prank(bob);
        nft.setMarket(bob);
    }

    // ------------------------------------------------------------------------------------------
    // Opening deals
    // ------------------------------------------------------------------------------------------

    function test_openDeal_commitsTermFromEscrow() public {
        IStorageMarket.Acceptance memory a = terms(provider, 4, 2, 10);
        uint256 dealId = open(market, a, providerKey);
        IStorageMarket.Deal memory dl = market.dealOf(dealId);
        // 1 PX per GiB-month, 1 GiB reserved, 100 blocks of 2 s: 200 s of a 30-day month.
        uint256 price = uint256(PRICE) * 200 / 30 days;
        assertEq(dl.pricePerPeriod, price);
        assertEq(dl.remaining, price * 10);
        assertEq(uint8(dl.status), uint8(IStorageMarket.DealStatus.Active));
        assertEq(dl.generation, 1);
        assertEq(market.escrowOf(token), ESCROW - price * 10);
        assertEq(registry.providerOf(provider).reserved, GIB);
        assertEq(registry.providerOf(provider).activeDeals, 1);
        assertEq(dealId, market.dealIdOf(token, provider));
    }

    function test_RevertWhen_openDealNotHomeNode() public {
        IStorageMarket.Acceptance memory a = terms(provider, 4, 2, 10);
        bytes memory sig = sign(providerKey, market.acceptanceDigest(a));
        vm.expectRevert(
            abi.encodeWithSelector(IStorageMarket.NotHomeNode.selector, token, provider)
        );
        vm.prank(provider);
        market.openDeal(a, sig);
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.NotHomeNode.selector, token, alice));
        vm.prank(alice);
        market.openDeal(a, sig);
    }

    function test_RevertWhen_openDealNotSignedByProvider() public {
        IStorageMarket.Acceptance memory a = terms(provider, 4, 2, 10);
        bytes memory sig = sign(provider2Key, market.acceptanceDigest(a));
        vm.expectRevert(
            abi.encodeWithSelector(IStorageMarket.NotProvider.selector, provider2, provider)
        );
        vm.prank(registrar);
        market.openDeal(a, sig);
    }

    function test_RevertWhen_openDealAcceptanceExpired() public {
        IStorageMarket.Acceptance memory a = terms(provider, 4, 2, 10);
        bytes memory sig = sign(providerKey, market.acceptanceDigest(a));
        vm.warp(a.deadline + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageMarket.AcceptanceExpired.selector, a.deadline)
        );
        vm.prank(registrar);
        market.openDeal(a, sig);
        vm.warp(a.deadline);
        vm.prank(registrar);
        market.openDeal(a, sig);
    }

    function test_RevertWhen_openDealInvalidTerms() public {
        IStorageMarket.Acceptance memory a = terms(provider, 4, 2, 10);
        a.size = a.maxBytes + 1;
        _expectOpenRevert(a, _invalidTerms(4, 10, GIB + 1, GIB));
        a = terms(provider, 4, 2, 0);
        _expectOpenRevert(a, _invalidTerms(4, 0, GIB / 2, GIB));
        a = terms(provider, 4, 2, 10);
        a.pieceCount = 0;
        _expectOpenRevert(a, _invalidTerms(0, 10, GIB / 2, GIB));
        a = terms(provider, 4, 2, 10);
        a.maxBytes = 0;
        a.size = 0;
        _expectOpenRevert(a, _invalidTerms(4, 10, 0, 0));
        // size == maxBytes is fine
        a = terms(provider, 4, 2, 10);
        a.size = a.maxBytes;
        open(market, a, providerKey);
    }

    function _invalidTerms(uint256 pieces, uint256 periods, uint256 size, uint256 maxBytes)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodeWithSelector(
            IStorageMarket.InvalidTerms.selector, pieces, periods, size, maxBytes
        );
    }

    function _expectOpenRevert(IStorageMarket.Acceptance memory a, bytes memory err) internal {
        bytes memory sig = sign(providerKey, market.acceptanceDigest(a));
        vm.expectRevert(err);
        vm.prank(registrar);
        market.openDeal(a, sig);
    }

    function test_RevertWhen_openDealTwiceOrReplayed() public {
        IStorageMarket.Acceptance memory a = terms(provider, 4, 2, 1);
        bytes memory sig = sign(providerKey, market.acceptanceDigest(a));
        vm.prank(registrar);
        uint256 dealId = market.openDeal(a, sig);
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.DealActive.selector, dealId));
        vm.prank(registrar);
        market.openDeal(a, sig);
        // Once the deal is over, the old acceptance (generation 0) does not reopen it.
        proveUniform(market, dealId, 0);
        assertEq(uint8(market.dealOf(dealId).status), uint8(IStorageMarket.DealStatus.Completed));
        vm.prank(registrar);
        vm.expectPartialRevert(IStorageMarket.NotProvider.selector);
        market.openDeal(a, sig);
        open(market, a, providerKey); // a fresh acceptance does
        assertEq(market.dealOf(dealId).generation, 2);
    }

    function test_RevertWhen_openDealPriceChanged() public {
        IStorageMarket.Acceptance memory a = terms(provider, 4, 2, 10);
        bytes memory sig = sign(providerKey, market.acceptanceDigest(a));
        vm.prank(provider);
        registry.updateListing("https://p1.example", 756, CAPACITY, PRICE * 2);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageMarket.PriceChanged.selector, PRICE * 2, PRICE)
        );
        vm.prank(registrar);
        market.openDeal(a, sig);
    }

    function test_RevertWhen_openDealAboveEscrow() public {
        vm.prank(alice);
        market.withdrawEscrow(token, ESCROW, alice);
        IStorageMarket.Acceptance memory a = terms(provider, 4, 2, 10);
        uint256 total = uint256(PRICE) * 200 / 30 days * 10;
        _expectOpenRevert(
            a, abi.encodeWithSelector(IStorageMarket.InsufficientEscrow.selector, token, 0, total)
        );
        vm.prank(alice);
        market.fund(token, total);
        open(market, a, providerKey); // exactly enough
        assertEq(market.escrowOf(token), 0);
    }

    function test_RevertWhen_openDealProviderCannotTakeIt() public {
        vm.prank(provider);
        registry.setPaused(true);
        _expectOpenRevert(
            terms(provider, 4, 2, 10),
            abi.encodeWithSelector(IProviderRegistry.CannotTakeDeal.selector, provider, 0, GIB)
        );
        vm.prank(provider);
        registry.setPaused(false);
        vm.prank(provider);
        registry.updateListing("https://p1.example", 756, GIB - 1, PRICE);
        _expectOpenRevert(
            terms(provider, 4, 2, 10),
            abi.encodeWithSelector(
                IProviderRegistry.CannotTakeDeal.selector, provider, GIB - 1, GIB
            )
        );
        vm.prank(provider);
        registry.updateListing("https://p1.example", 756, GIB, PRICE);
        openDefault(); // exactly its capacity
    }

    // ------------------------------------------------------------------------------------------
    // Root updates
    // ------------------------------------------------------------------------------------------

    function _update(IStorageMarket.RootUpdate memory u) internal {
        (bytes memory h, bytes memory p) = signUpdate(market, u, providerKey);
        market.updateDealRoot(u, h, p);
    }

    function test_updateDealRoot_bothSignaturesReplaceRoot() public {
        uint256 dealId = openDefault();
        vm.roll(block.number + L);
        IStorageMarket.RootUpdate memory u = rootUpdate(dealId, 8, 2, GIB);
        vm.prank(bob); // anyone may submit it
        _update(u);
        IStorageMarket.Deal memory dl = market.dealOf(dealId);
        assertEq(dl.root, u.root);
        assertEq(dl.prevRoot, uniformDealRoot(4, 2));
        assertEq(dl.pieceCount, 8);
        assertEq(dl.size, GIB);
        assertEq(dl.nonce, 1);
    }

    function test_RevertWhen_updateDealRootMissingASignature() public {
        uint256 dealId = openDefault();
        vm.roll(block.number + L);
        IStorageMarket.RootUpdate memory u = rootUpdate(dealId, 8, 2, GIB);
        bytes32 digest = market.rootUpdateDigest(u);
        bytes memory homeSig = sign(registrarKey, digest);
        bytes memory providerSig = sign(providerKey, digest);
        bytes memory bobSig = sign(uint256(keccak256("bob")), digest);
        address bobSigner = vm.addr(uint256(keccak256("bob")));
        vm.expectRevert(
            abi.encodeWithSelector(IStorageMarket.NotHomeNode.selector, token, bobSigner)
        );
        market.updateDealRoot(u, bobSig, providerSig);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageMarket.NotProvider.selector, registrar, provider)
        );
        market.updateDealRoot(u, homeSig, homeSig);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageMarket.NotHomeNode.selector, token, provider)
        );
        market.updateDealRoot(u, providerSig, providerSig);
    }

    function test_RevertWhen_updateDealRootReplayed() public {
        uint256 dealId = openDefault();
        vm.roll(block.number + L);
        IStorageMarket.RootUpdate memory u = rootUpdate(dealId, 8, 2, GIB);
        (bytes memory h, bytes memory p) = signUpdate(market, u, providerKey);
        market.updateDealRoot(u, h, p);
        vm.roll(block.number + L);
        // Same update again: the nonce moved on, so the signatures recover to other addresses.
        vm.expectPartialRevert(IStorageMarket.NotHomeNode.selector);
        market.updateDealRoot(u, h, p);
    }

    function test_RevertWhen_updateDealRootForAnotherDealChainOrContract() public {
        uint256 dealId = openDefault();
        uint256 other = open(market, terms(provider2, 4, 2, 10), provider2Key);
        vm.roll(block.number + L);
        IStorageMarket.RootUpdate memory u = rootUpdate(dealId, 8, 2, GIB);
        (bytes memory h, bytes memory p) = signUpdate(market, u, providerKey);
        // Another deal id.
        u.dealId = other;
        vm.expectPartialRevert(IStorageMarket.NotHomeNode.selector);
        market.updateDealRoot(u, h, p);
        u.dealId = dealId;
        // Another chain id.
        uint256 chainId = block.chainid;
        vm.chainId(chainId + 1);
        vm.expectPartialRevert(IStorageMarket.NotHomeNode.selector);
        market.updateDealRoot(u, h, p);
        vm.chainId(chainId);
        // Another market.
        (, IStorageMarketHarness m2) = deployOtherMarket(_params(devnetMarketParams().config));
        assertTrue(m2.rootUpdateDigest(u) != market.rootUpdateDigest(u));
        market.updateDealRoot(u, h, p);
    }

    function test_RevertWhen_updateDealRootTwiceInAPeriod() public {
        uint256 dealId = openDefault();
        uint256 start = block.number;
        vm.roll(start + L - 1); // still the opening period
        IStorageMarket.RootUpdate memory u = rootUpdate(dealId, 8, 2, GIB);
        (bytes memory h, bytes memory p) = signUpdate(market, u, providerKey);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageMarket.RootUpdateTooSoon.selector, dealId, start + L)
        );
        market.updateDealRoot(u, h, p);
        vm.roll(start + L);
        market.updateDealRoot(u, h, p);
        vm.roll(start + 2 * L - 1);
        u = rootUpdate(dealId, 16, 2, GIB);
        (h, p) = signUpdate(market, u, providerKey);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageMarket.RootUpdateTooSoon.selector, dealId, start + 2 * L)
        );
        market.updateDealRoot(u, h, p);
    }

    function test_RevertWhen_updateDealRootLowersSizeWithoutEndingPieces() public {
        uint256 dealId = openDefault(); // size GIB / 2
        vm.roll(block.number + L);
        IStorageMarket.RootUpdate memory u = rootUpdate(dealId, 2, 2, GIB / 4);
        (bytes memory h, bytes memory p) = signUpdate(market, u, providerKey);
        vm.expectRevert(
            abi.encodeWithSelector(
                IStorageMarket.SizeDecreased.selector, dealId, GIB / 2, GIB / 4, 0
            )
        );
        market.updateDealRoot(u, h, p);
        // Ending the pieces it drops makes it valid.
        u.sizeEnded = GIB / 4;
        _update(u);
        assertEq(market.dealOf(dealId).size, GIB / 4);
    }

    function test_RevertWhen_updateDealRootAboveMaxBytesOrEmpty() public {
        uint256 dealId = openDefault();
        vm.roll(block.number + L);
        IStorageMarket.RootUpdate memory u = rootUpdate(dealId, 8, 2, GIB + 1);
        (bytes memory h, bytes memory p) = signUpdate(market, u, providerKey);
        vm.expectRevert(_invalidTerms(8, 10, GIB + 1, GIB));
        market.updateDealRoot(u, h, p);
        u = rootUpdate(dealId, 0, 2, GIB);
        (h, p) = signUpdate(market, u, providerKey);
        vm.expectRevert(_invalidTerms(0, 10, GIB, GIB));
        market.updateDealRoot(u, h, p);
        _update(rootUpdate(dealId, 8, 2, GIB)); // exactly maxBytes
    }

    function test_RevertWhen_updateDealRootOfEndedDeal() public {
        uint256 dealId = open(market, terms(provider, 4, 2, 1), providerKey);
        proveUniform(market, dealId, 0);
        IStorageMarket.RootUpdate memory u = rootUpdate(dealId, 8, 2, GIB);
        (bytes memory h, bytes memory p) = signUpdate(market, u, providerKey);
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.DealNotActive.selector, dealId));
        market.updateDealRoot(u, h, p);
    }

    // ------------------------------------------------------------------------------------------
    // Proofs
    // ------------------------------------------------------------------------------------------

    function test_proveStorage_creditsEarningsAndFee() public {
        uint256 dealId = openDefault();
        uint256 price = market.dealOf(dealId).pricePerPeriod;
        uint256 fee = price * 200 / 10_000;
        rollToWindow(market, dealId, 0, keccak256("h0"));
        vm.expectEmit(address(market));
        emit IStorageMarket.StorageProven(dealId, 0, price - fee, fee);
        vm.prank(bob); // anyone may carry the proof
        market.proveStorage(dealId, 0, uniformProofs(C, 4, 2));
        assertEq(market.earningsOf(provider), price - fee);
        assertEq(market.feesAccrued(), fee);
        assertEq(market.dealOf(dealId).nextPeriod, 1);
        assertEq(market.dealOf(dealId).remaining, price * 9);
    }

    function test_RevertWhen_proveBeforeChallengeOrAfterWindow() public {
        uint256 dealId = openDefault();
        uint256 cb = challengeBlock(market, dealId, 0);
        IStorageMarket.Proof[] memory proofs = uniformProofs(C, 4, 2);
        vm.roll(cb);
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.ChallengeNotReady.selector, cb));
        market.proveStorage(dealId, 0, proofs);
        vm.roll(cb + W + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageMarket.ProofWindowClosed.selector, dealId, 0, cb + W)
        );
        market.proveStorage(dealId, 0, proofs);
        vm.roll(cb + W); // the window's last block
        vm.setBlockhash(cb, keccak256("h"));
        market.proveStorage(dealId, 0, proofs);
    }

    function test_RevertWhen_proveOtherPeriod() public {
        uint256 dealId = openDefault();
        rollToWindow(market, dealId, 1, keccak256("h1"));
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.PeriodNotNext.selector, dealId, 1, 0));
        market.proveStorage(dealId, 1, uniformProofs(C, 4, 2));
    }

    function test_RevertWhen_proveEndedOrUnknownDeal() public {
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.DealNotActive.selector, 7));
        market.proveStorage(7, 0, uniformProofs(C, 4, 2));
    }

    /// @dev A real (non-uniform) deal: 4 pieces of 4 distinct chunks each.
    function _realDeal(bytes32 salt)
        internal
        returns (uint256 dealId, bytes32[][] memory chunks, bytes32[] memory pieceRoots)
    {
        chunks = new bytes32[][](4);
        pieceRoots = new bytes32[](4);
        bytes32[] memory dealLeaves = new bytes32[](4);
        for (uint256 i; i < 4; ++i) {
            chunks[i] = new bytes32[](4);
            for (uint256 j; j < 4; ++j) {
                chunks[i][j] = keccak256(abi.encode(salt, i, j));
            }
            pieceRoots[i] = rootOf(chunks[i]);
            dealLeaves[i] = StorageProof.dealLeaf(pieceRoots[i], 2);
        }
        IStorageMarket.Acceptance memory a = terms(provider, 4, 2, 10);
        a.root = rootOf(dealLeaves);
        dealId = open(market, a, providerKey);
    }

    /// @dev Honest proofs of `period`'s challenges for the real deal.
    function _realProofs(
        uint256 dealId,
        uint256 period,
        bytes32[][] memory chunks,
        bytes32[] memory pieceRoots
    ) internal view returns (IStorageMarket.Proof[] memory proofs) {
        bytes32 seed = market.challengeSeed(dealId, period);
        proofs = _proofsFor(seed, chunks, pieceRoots);
    }

    function _proofsFor(bytes32 seed, bytes32[][] memory chunks, bytes32[] memory pieceRoots)
        internal
        view
        returns (IStorageMarket.Proof[] memory proofs)
    {
        bytes32[] memory dealLeaves = new bytes32[](4);
        for (uint256 i; i < 4; ++i) {
            dealLeaves[i] = StorageProof.dealLeaf(pieceRoots[i], 2);
        }
        proofs = new IStorageMarket.Proof[](C);
        for (uint256 i; i < C; ++i) {
            (uint256 piece, uint256 leaf) = market.challengeOf(seed, i, 4, 2);
            proofs[i] = IStorageMarket.Proof(
                pieceRoots[piece],
                2,
                chunks[piece][leaf],
                pathOf(chunks[piece], leaf),
                pathOf(dealLeaves, piece)
            );
        }
    }

    function test_proveStorage_realTreeHonestProofPasses() public {
        (uint256 dealId, bytes32[][] memory chunks, bytes32[] memory roots) = _realDeal("a");
        rollToWindow(market, dealId, 0, keccak256("h0"));
        market.proveStorage(dealId, 0, _realProofs(dealId, 0, chunks, roots));
        assertEq(market.dealOf(dealId).nextPeriod, 1);
    }

    function test_RevertWhen_proofForgesALeafOrPath() public {
        (uint256 dealId, bytes32[][] memory chunks, bytes32[] memory roots) = _realDeal("a");
        rollToWindow(market, dealId, 0, keccak256("h0"));
        IStorageMarket.Proof[] memory proofs = _realProofs(dealId, 0, chunks, roots);
        proofs[2].leaf = bytes32(uint256(proofs[2].leaf) ^ 1);
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.InvalidProof.selector, dealId, 2));
        market.proveStorage(dealId, 0, proofs);

        proofs = _realProofs(dealId, 0, chunks, roots);
        proofs[1].piecePath[0] = keccak256("forged");
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.InvalidProof.selector, dealId, 1));
        market.proveStorage(dealId, 0, proofs);

        proofs = _realProofs(dealId, 0, chunks, roots);
        proofs[3].dealPath[1] = keccak256("forged");
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.InvalidProof.selector, dealId, 3));
        market.proveStorage(dealId, 0, proofs);

        // Too few answers.
        IStorageMarket.Proof[] memory short = new IStorageMarket.Proof[](C - 1);
        for (uint256 i; i < C - 1; ++i) {
            short[i] = proofs[i];
        }
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.InvalidProof.selector, dealId, C - 1));
        market.proveStorage(dealId, 0, short);
    }

    function test_RevertWhen_proofPathsHaveWrongLengths() public {
        uint256 dealId = openDefault();
        rollToWindow(market, dealId, 0, keccak256("h0"));
        // A deeper piece than committed.
        IStorageMarket.Proof[] memory proofs = uniformProofs(C, 4, 3);
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.InvalidProof.selector, dealId, 0));
        market.proveStorage(dealId, 0, proofs);
        // A deal path of the wrong depth (a tree of 8 pieces).
        proofs = uniformProofs(C, 8, 2);
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.InvalidProof.selector, dealId, 0));
        market.proveStorage(dealId, 0, proofs);
    }

    /// @dev A provider that kept the inner nodes one level up but not the chunks cannot answer
    /// with an inner node and a shortened path.
    function test_RevertWhen_proofAnswersWithAnInnerNode() public {
        (uint256 dealId, bytes32[][] memory chunks, bytes32[] memory roots) = _realDeal("a");
        uint256 cb = challengeBlock(market, dealId, 0);
        vm.roll(cb + 1);
        uint256 piece;
        uint256 leaf;
        // Chain data under which challenge 0 picks chunk 0 or 3 of its piece: there a one-step
        // walk from the inner node over the chunk's pair lands on the piece root.
        for (uint256 k;; ++k) {
            vm.setBlockhash(cb, keccak256(abi.encode("search", k)));
            (piece, leaf) = market.challengeOf(market.challengeSeed(dealId, 0), 0, 4, 2);
            if (leaf == 0 || leaf == 3) break;
        }
        IStorageMarket.Proof[] memory proofs = _realProofs(dealId, 0, chunks, roots);
        uint256 pair = leaf & 2;
        bytes32 inner = StorageProof.hashPair(chunks[piece][pair], chunks[piece][pair + 1]);
        bytes32 other =
            StorageProof.hashPair(chunks[piece][pair ^ 2], chunks[piece][(pair ^ 2) + 1]);
        assertEq(
            leaf == 0 ? StorageProof.hashPair(inner, other) : StorageProof.hashPair(other, inner),
            roots[piece],
            "the short walk reaches the piece root"
        );
        proofs[0].leaf = inner;
        proofs[0].piecePath = new bytes32[](1);
        proofs[0].piecePath[0] = other;
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.InvalidProof.selector, dealId, 0));
        market.proveStorage(dealId, 0, proofs);
    }

    function test_RevertWhen_proofForAnotherDeal() public {
        (uint256 dealA, bytes32[][] memory chunksA, bytes32[] memory rootsA) = _realDeal("a");
        // Deal B: same token, provider2, other data.
        vm.roll(block.number); // same start block
        IStorageMarket.Acceptance memory b = terms(provider2, 4, 2, 10);
        uint256 dealB = open(market, b, provider2Key);
        rollToWindow(market, dealA, 0, keccak256("h0"));
        IStorageMarket.Proof[] memory proofsA = _realProofs(dealA, 0, chunksA, rootsA);
        vm.expectPartialRevert(IStorageMarket.InvalidProof.selector);
        market.proveStorage(dealB, 0, proofsA);
        market.proveStorage(dealA, 0, proofsA);
    }

    function test_RevertWhen_proofForAnotherPeriod() public {
        (uint256 dealId, bytes32[][] memory chunks, bytes32[] memory roots) = _realDeal("a");
        rollToWindow(market, dealId, 0, keccak256("h0"));
        IStorageMarket.Proof[] memory p0 = _realProofs(dealId, 0, chunks, roots);
        market.proveStorage(dealId, 0, p0);
        rollToWindow(market, dealId, 1, keccak256("h1"));
        // The answers to period 0's challenges do not answer period 1's.
        IStorageMarket.Proof[] memory p1 = _realProofs(dealId, 1, chunks, roots);
        bool same = true;
        for (uint256 i; i < C; ++i) {
            same = same && p0[i].leaf == p1[i].leaf;
        }
        assertFalse(same, "the seeds pick other leaves");
        vm.expectPartialRevert(IStorageMarket.InvalidProof.selector);
        market.proveStorage(dealId, 1, p0);
        market.proveStorage(dealId, 1, p1);
    }

    function test_RevertWhen_proofAgainstStaleRoot() public {
        uint256 dealId = openDefault(); // 4 pieces
        vm.roll(block.number + L / 2);
        // Move to 8 pieces in period 0: period 0 is challenged against the new root.
        vm.roll(challengeBlock(market, dealId, 0) - 1);
        // (one update per period: the opening counts for period 0, so wait for period 1)
        vm.roll(challengeBlock(market, dealId, 0));
        _update(rootUpdate(dealId, 8, 2, GIB));
        // That update was committed in period 1's first block: period 1 uses it.
        rollToWindow(market, dealId, 0, keccak256("h0"));
        market.proveStorage(dealId, 0, uniformProofs(C, 4, 2)); // period 0: old root
        rollToWindow(market, dealId, 1, keccak256("h1"));
        vm.expectPartialRevert(IStorageMarket.InvalidProof.selector);
        market.proveStorage(dealId, 1, uniformProofs(C, 4, 2)); // stale root
        market.proveStorage(dealId, 1, uniformProofs(C, 8, 2));
    }

    /// @dev The challenge is fixed by chain data after the root: a root committed in or after the
    /// challenge block does not answer that period, and the seed follows the challenge block's
    /// hash, which nobody knows when the root is committed.
    function test_challenge_comesFromChainDataAfterTheRoot() public {
        uint256 dealId = openDefault();
        uint256 cb = challengeBlock(market, dealId, 0);
        assertGt(cb, market.dealOf(dealId).rootSince, "challenge block after the root");
        vm.roll(cb + 1);
        vm.setBlockhash(cb, keccak256("x"));
        bytes32 s1 = market.challengeSeed(dealId, 0);
        vm.setBlockhash(cb, keccak256("y"));
        bytes32 s2 = market.challengeSeed(dealId, 0);
        assertTrue(s1 != s2, "seed follows the block hash");
        assertEq(s2, keccak256(abi.encode(keccak256("y"), dealId, uint256(0))));

        // A root committed in the challenge block (period 1's first block) is not period 0's.
        vm.roll(cb);
        _update(rootUpdate(dealId, 8, 2, GIB));
        vm.roll(cb + 1);
        vm.expectPartialRevert(IStorageMarket.InvalidProof.selector);
        market.proveStorage(dealId, 0, uniformProofs(C, 8, 2));
        market.proveStorage(dealId, 0, uniformProofs(C, 4, 2));
    }

    function testFuzz_proveStorage_forgedLeafFails(bytes32 blockHash, uint256 which, bytes32 forged)
        public
    {
        (uint256 dealId, bytes32[][] memory chunks, bytes32[] memory roots) = _realDeal("f");
        rollToWindow(market, dealId, 0, blockHash == 0 ? bytes32(uint256(1)) : blockHash);
        IStorageMarket.Proof[] memory proofs = _realProofs(dealId, 0, chunks, roots);
        which = bound(which, 0, C - 1);
        vm.assume(forged != proofs[which].leaf);
        proofs[which].leaf = forged;
        vm.expectPartialRevert(IStorageMarket.InvalidProof.selector);
        market.proveStorage(dealId, 0, proofs);
    }

    // ------------------------------------------------------------------------------------------
    // Misses, breaches, completion
    // ------------------------------------------------------------------------------------------

    function test_markMissed_refundsPeriodSlashesAndPaysBounty() public {
        uint256 dealId = openDefault();
        uint256 price = market.dealOf(dealId).pricePerPeriod;
        uint256 escrow = market.escrowOf(token);
        rollPastWindow(market, dealId, 0);
        vm.expectEmit(address(market));
        emit IStorageMarket.PeriodMissed(dealId, 0, 10 ether, 1 ether, bob);
        vm.prank(bob);
        market.markMissed(dealId);
        assertEq(px.balanceOf(bob), 1_000_000 ether + 1 ether, "bounty");
        assertEq(market.escrowOf(token), escrow + price + 9 ether, "refund");
        assertEq(registry.stakeOf(provider), STAKE - 10 ether, "slashed");
        IStorageMarket.Deal memory dl = market.dealOf(dealId);
        assertEq(dl.misses, 1);
        assertEq(dl.nextPeriod, 1);
        assertEq(dl.remaining, price * 9);
    }

    function test_RevertWhen_markMissedInWindow() public {
        uint256 dealId = openDefault();
        uint256 deadline = challengeBlock(market, dealId, 0) + W;
        vm.roll(deadline);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageMarket.ProofWindowOpen.selector, dealId, 0, deadline)
        );
        market.markMissed(dealId);
        vm.roll(deadline + 1);
        market.markMissed(dealId);
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.DealNotActive.selector, 99));
        market.markMissed(99);
    }

    function test_markMissed_breachesAfterMaxMissesAndReturnsEscrow() public {
        uint256 dealId = openDefault();
        uint256 price = market.dealOf(dealId).pricePerPeriod;
        rollPastWindow(market, dealId, 0);
        market.markMissed(dealId);
        rollPastWindow(market, dealId, 1);
        market.markMissed(dealId);
        assertEq(uint8(market.dealOf(dealId).status), uint8(IStorageMarket.DealStatus.Active));
        rollPastWindow(market, dealId, 2);
        vm.expectEmit(address(market));
        emit IStorageMarket.DealBreached(dealId, price * 7);
        market.markMissed(dealId);
        IStorageMarket.Deal memory dl = market.dealOf(dealId);
        assertEq(uint8(dl.status), uint8(IStorageMarket.DealStatus.Breached));
        assertEq(dl.remaining, 0);
        // All of the term came back, plus three slashes less three bounties.
        assertEq(market.escrowOf(token), ESCROW + 3 * 9 ether);
        assertEq(registry.providerOf(provider).activeDeals, 0);
        assertEq(registry.providerOf(provider).reserved, 0);
    }

    function test_markMissed_lastPeriodCompletesDeal() public {
        uint256 dealId = open(market, terms(provider, 4, 2, 1), providerKey);
        rollPastWindow(market, dealId, 0);
        market.markMissed(dealId);
        assertEq(uint8(market.dealOf(dealId).status), uint8(IStorageMarket.DealStatus.Completed));
        assertEq(registry.providerOf(provider).activeDeals, 0);
    }

    function test_markMissed_slashBelowMinimumDelists() public {
        // Leave the provider exactly at the minimum, then miss once.
        (IProviderRegistryHarness r, IStorageMarketHarness m) =
            deployOtherMarket(_params(devnetMarketParams().config));
        px.mint(provider, 1 ether);
        vm.startPrank(provider);
        px.approve(address(r), type(uint256).max);
        r.registerProvider("https://p1.example", 1, CAPACITY, PRICE, 100 ether);
        vm.stopPrank();
        vm.startPrank(alice);
        m.setHomeNode(token, registrar);
        px.approve(address(m), type(uint256).max);
        m.fund(token, 10 ether);
        vm.stopPrank();
        uint256 dealId = open(m, terms(provider, 4, 2, 10), providerKey);
        assertTrue(r.isActive(provider));
        rollPastWindow(m, dealId, 0);
        vm.expectEmit(address(r));
        emit IProviderRegistry.ProviderDelisted(provider, 90 ether);
        m.markMissed(dealId);
        assertFalse(r.isActive(provider), "delisted");
        IProviderRegistry.Filter memory f;
        f.onlyActive = true;
        (IProviderRegistry.Listing[] memory page,) = r.listProviders(0, 10, f);
        assertEq(page.length, 0, "not listed");
        // Topping the stake back up lists it again.
        vm.prank(provider);
        r.addStake(10 ether);
        assertTrue(r.isActive(provider));
    }

    function test_markMissed_slashCappedByStake() public {
        (IProviderRegistryHarness r, IStorageMarketHarness m) =
            deployOtherMarket(_params(devnetMarketParams().config));
        r.setMinStake(0);
        px.mint(provider, 1 ether);
        vm.startPrank(provider);
        px.approve(address(r), type(uint256).max);
        r.registerProvider("https://p1.example", 1, CAPACITY, PRICE, 4 ether);
        vm.stopPrank();
        vm.startPrank(alice);
        m.setHomeNode(token, registrar);
        px.approve(address(m), type(uint256).max);
        m.fund(token, 10 ether);
        vm.stopPrank();
        uint256 dealId = open(m, terms(provider, 4, 2, 10), providerKey);
        rollPastWindow(m, dealId, 0);
        vm.prank(bob);
        m.markMissed(dealId);
        assertEq(r.stakeOf(provider), 0);
        assertEq(px.balanceOf(bob), 1_000_000 ether + 0.4 ether, "10% of the 4 PX slashed");
        // Nothing left to slash: the miss still refunds the period.
        rollPastWindow(m, dealId, 1);
        m.markMissed(dealId);
        assertEq(px.balanceOf(address(r)), 0);
    }

    function test_proveStorage_lastPeriodCompletesAndReleases() public {
        uint256 dealId = open(market, terms(provider, 4, 2, 2), providerKey);
        proveUniform(market, dealId, 0);
        assertEq(registry.providerOf(provider).activeDeals, 1);
        vm.expectEmit(address(market));
        emit IStorageMarket.DealCompleted(dealId);
        proveUniform(market, dealId, 1);
        assertEq(uint8(market.dealOf(dealId).status), uint8(IStorageMarket.DealStatus.Completed));
        assertEq(registry.providerOf(provider).activeDeals, 0);
        assertEq(registry.providerOf(provider).reserved, 0);
    }

    // ------------------------------------------------------------------------------------------
    // Earnings and fees
    // ------------------------------------------------------------------------------------------

    function test_claimEarnings_paysProvider() public {
        uint256 dealId = openDefault();
        proveUniform(market, dealId, 0);
        uint256 earned = market.earningsOf(provider);
        uint256 before = px.balanceOf(provider);
        vm.prank(provider);
        market.claimEarnings();
        assertEq(px.balanceOf(provider), before + earned);
        assertEq(market.earningsOf(provider), 0);
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.NothingToClaim.selector, provider));
        vm.prank(provider);
        market.claimEarnings();
    }

    function test_withdrawFees_sendsToTreasury() public {
        uint256 dealId = openDefault();
        proveUniform(market, dealId, 0);
        uint256 fees = market.feesAccrued();
        address treasury = makeAddr("treasury");
        market.setTreasury(treasury);
        vm.prank(bob);
        market.withdrawFees();
        assertEq(px.balanceOf(treasury), fees);
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.NothingToClaim.selector, treasury));
        market.withdrawFees();
    }

    function test_RevertWhen_feeAboveMaxOrNotAdmin() public {
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.OutOfBounds.selector, 1001, 0, 1000));
        market.setFee(1001);
        market.setFee(1000);
        assertEq(market.feeBps(), 1000);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, bob, bytes32(0)
            )
        );
        vm.prank(bob);
        market.setFee(0);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, bob, bytes32(0)
            )
        );
        vm.prank(bob);
        market.setTreasury(bob);
    }

    function test_constructor_boundsConfig() public {
        IStorageMarket.Config memory c = devnetMarketParams().config;
        c.proofWindow = 100; // reaching into the period after next
        _expectBadConfig(c, 100, 1, 99);
        c = devnetMarketParams().config;
        c.periodBlocks = 1;
        c.proofWindow = 1;
        _expectBadConfig(c, 1, 2, type(uint32).max);
        c = devnetMarketParams().config;
        c.periodBlocks = 1000;
        c.proofWindow = 257; // beyond blockhash's reach
        _expectBadConfig(c, 257, 1, 256);
        c = devnetMarketParams().config;
        c.challengeCount = 17;
        _expectBadConfig(c, 17, 1, 16);
        c = devnetMarketParams().config;
        c.bountyBps = 5001;
        _expectBadConfig(c, 5001, 0, 5000);
    }

    function _expectBadConfig(IStorageMarket.Config memory c, uint256 v, uint256 lo, uint256 hi)
        internal
    {
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.OutOfBounds.selector, v, lo, hi));
        vm.deployCode(
            "StorageMarket.sol:StorageMarket",
            abi.encode(address(this), d.storageNFT, registry, px, c, uint16(200))
        );
    }

    function _params(IStorageMarket.Config memory c) internal pure returns (MarketParams memory p) {
        p = devnetMarketParams();
        p.config = c;
    }

    function carolAddr() internal returns (address) {
        return makeAddr("carol");
    }
}
