// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";

import {PXToken} from "../contracts/PXToken.sol";
import {IProviderRegistry} from "../contracts/interfaces/IProviderRegistry.sol";
import {IStorageMarket} from "../contracts/interfaces/IStorageMarket.sol";
import {IStorageNFT} from "../contracts/interfaces/IStorageNFT.sol";
import {IStorageNFTHarness} from "./utils/Deployers.sol";
import {StorageProof} from "../contracts/libraries/StorageProof.sol";
import {
    IProviderRegistryHarness,
    IStorageMarketHarness,
    MarketFixture
} from "./utils/MarketFixture.sol";

/// @notice Drives the market and the registry with random actions and keeps ghost totals of
/// every PXToken that entered (escrow funding, plan shares, stakes) and left (escrow
/// withdrawals, claimed earnings, withdrawn fees, bounties, returned stakes).
/// @dev Handlers never catch a revert: an action whose preconditions do not hold is skipped
/// before the call, and with `fail_on_revert = true` any revert fails the run. Each action
/// asserts its own effect.
contract MarketHandler is Test {
    uint256 internal constant GIB = 1 << 30;
    bytes32 internal constant CHUNK = keccak256("chunk");
    uint256 internal constant SHARE = 25 ether; // of the share plan's 100 PX

    IStorageMarketHarness internal immutable _m;
    IProviderRegistryHarness internal immutable _r;
    PXToken internal immutable _px;
    IStorageNFTHarness internal immutable _nft;
    address internal immutable _registrar;
    uint256 internal immutable _registrarKey;
    uint256 internal immutable _sharePlan;

    address[] public providers;
    uint256[] internal _providerKeys;
    uint256[] public tokens;
    uint256[] public deals;
    mapping(uint256 dealId => bool) internal _known;
    address[] internal _users;

    uint256 public ghostFunded;
    uint256 public ghostStaked;
    uint256 public ghostEscrowWithdrawn;
    uint256 public ghostClaimed;
    uint256 public ghostFeesWithdrawn;
    uint256 public ghostBounties;
    uint256 public ghostStakeWithdrawn;
    uint256 public ghostSlashed;

    constructor(
        IStorageMarketHarness m,
        IProviderRegistryHarness r,
        PXToken px,
        IStorageNFTHarness nft,
        address registrar,
        uint256 registrarKey,
        uint256 sharePlan
    ) {
        _m = m;
        _r = r;
        _px = px;
        _nft = nft;
        _registrar = registrar;
        _registrarKey = registrarKey;
        _sharePlan = sharePlan;
    }

    function init(
        address[] memory providers_,
        uint256[] memory keys,
        uint256 token,
        address[] memory users,
        uint256 funded,
        uint256 staked
    ) external {
        providers = providers_;
        _providerKeys = keys;
        tokens.push(token);
        _users = users;
        ghostFunded = funded;
        ghostStaked = staked;
    }

    function tokenCount() external view returns (uint256) {
        return tokens.length;
    }

    function dealCount() external view returns (uint256) {
        return deals.length;
    }

    function providerCount() external view returns (uint256) {
        return providers.length;
    }

    // ------------------------------------------------------------------------------------------
    // Escrow
    // ------------------------------------------------------------------------------------------

    function fund(uint256 ts, uint256 us, uint256 amount) external {
        uint256 tokenId = tokens[ts % tokens.length];
        address user = _users[us % _users.length];
        amount = bound(amount, 1, 100 ether);
        uint256 before = _m.escrowOf(tokenId);
        vm.prank(user);
        _m.fund(tokenId, amount);
        assertEq(_m.escrowOf(tokenId), before + amount, "fund");
        ghostFunded += amount;
    }

    function withdrawEscrow(uint256 ts, uint256 amount) external {
        uint256 tokenId = tokens[ts % tokens.length];
        uint256 balance = _m.escrowOf(tokenId);
        amount = bound(amount, 0, balance);
        address holder = _nft.ownerOf(tokenId);
        uint256 before = _px.balanceOf(holder);
        vm.prank(holder);
        _m.withdrawEscrow(tokenId, amount, holder);
        assertEq(_px.balanceOf(holder), before + amount, "withdrawn");
        ghostEscrowWithdrawn += amount;
    }

    /// @dev Mints a token on the plan that routes 25% of its price into the escrow.
    function mintShare(uint256 us) external {
        address user = _users[us % _users.length];
        vm.prank(user);
        uint256 tokenId = _nft.mint(_sharePlan, 100 ether);
        assertEq(_m.escrowOf(tokenId), SHARE, "plan share");
        vm.prank(user);
        _m.setHomeNode(tokenId, _registrar);
        tokens.push(tokenId);
        ghostFunded += SHARE;
    }

    // ------------------------------------------------------------------------------------------
    // Deals
    // ------------------------------------------------------------------------------------------

    function openDeal(uint256 ts, uint256 ps, uint256 periods, uint256 pieceLog) external {
        uint256 tokenId = tokens[ts % tokens.length];
        uint256 pi = ps % providers.length;
        address prov = providers[pi];
        uint256 dealId = _m.dealIdOf(tokenId, prov);
        if (_m.dealOf(dealId).status == IStorageMarket.DealStatus.Active) return;
        IProviderRegistry.Listing memory l = _r.providerOf(prov);
        if (!l.active || l.capacity - l.reserved < GIB) return;
        uint16 count = uint16(1 << bound(pieceLog, 0, 3));
        IStorageMarket.Acceptance memory a = IStorageMarket.Acceptance({
            tokenId: tokenId,
            provider: prov,
            root: uniformRoot(count),
            pieceCount: count,
            size: uint64(GIB / 2),
            maxBytes: uint64(GIB),
            periods: uint16(bound(periods, 1, 6)),
            pricePerGiBMonth: l.pricePerGiBMonth,
            deadline: block.timestamp
        });
        IStorageMarket.Config memory c = _m.config();
        uint256 price =
            uint256(l.pricePerGiBMonth) * GIB * (c.periodBlocks * c.blockTime) / (GIB * 30 days);
        uint256 escrow = _m.escrowOf(tokenId);
        if (price * a.periods > escrow) return;
        bytes memory sig = _sign(_providerKeys[pi], _m.acceptanceDigest(a));
        vm.prank(_registrar);
        _m.openDeal(a, sig);
        assertEq(_m.escrowOf(tokenId), escrow - price * a.periods, "committed");
        assertEq(_m.dealOf(dealId).remaining, price * a.periods, "remaining");
        if (!_known[dealId]) {
            _known[dealId] = true;
            deals.push(dealId);
        }
    }

    function updateRoot(uint256 ds, uint256 pieceLog) external {
        if (deals.length == 0) return;
        uint256 dealId = deals[ds % deals.length];
        IStorageMarket.Deal memory dl = _m.dealOf(dealId);
        if (dl.status != IStorageMarket.DealStatus.Active) return;
        uint256 L = _m.config().periodBlocks;
        if ((block.number - dl.startBlock) / L == (dl.rootSince - dl.startBlock) / L) return;
        uint16 count = uint16(1 << bound(pieceLog, 0, 3));
        IStorageMarket.RootUpdate memory u =
            IStorageMarket.RootUpdate(dealId, uniformRoot(count), count, dl.size, 0);
        bytes32 digest = _m.rootUpdateDigest(u);
        uint256 pi = _indexOf(dl.provider);
        _m.updateDealRoot(u, _sign(_registrarKey, digest), _sign(_providerKeys[pi], digest));
        assertEq(_m.dealOf(dealId).nonce, dl.nonce + 1, "nonce");
    }

    function prove(uint256 ds) external {
        if (deals.length == 0) return;
        uint256 dealId = deals[ds % deals.length];
        IStorageMarket.Deal memory dl = _m.dealOf(dealId);
        if (dl.status != IStorageMarket.DealStatus.Active) return;
        IStorageMarket.Config memory c = _m.config();
        uint256 cb = dl.startBlock + (uint256(dl.nextPeriod) + 1) * c.periodBlocks;
        if (block.number > cb + c.proofWindow) return;
        if (block.number <= cb) vm.roll(cb + 1);
        vm.setBlockhash(cb, keccak256(abi.encode("block", cb)));
        uint256 count = dl.rootSince < cb ? dl.pieceCount : dl.prevPieceCount;
        uint256 earned = _m.earningsOf(dl.provider);
        uint256 fees = _m.feesAccrued();
        _m.proveStorage(dealId, dl.nextPeriod, uniformProofs(c.challengeCount, count));
        uint256 fee = uint256(dl.pricePerPeriod) * _m.feeBps() / 10_000;
        assertEq(_m.earningsOf(dl.provider), earned + dl.pricePerPeriod - fee, "earned");
        assertEq(_m.feesAccrued(), fees + fee, "fee");
    }

    function markMissed(uint256 ds, uint256 us) external {
        if (deals.length == 0) return;
        uint256 dealId = deals[ds % deals.length];
        IStorageMarket.Deal memory dl = _m.dealOf(dealId);
        if (dl.status != IStorageMarket.DealStatus.Active) return;
        IStorageMarket.Config memory c = _m.config();
        uint256 deadline =
            dl.startBlock + (uint256(dl.nextPeriod) + 1) * c.periodBlocks + c.proofWindow;
        if (block.number <= deadline) vm.roll(deadline + 1);
        address keeper = _users[us % _users.length];
        uint256 stake = _r.stakeOf(dl.provider);
        uint256 slashed = stake < c.slashPerMiss ? stake : c.slashPerMiss;
        uint256 bounty = slashed * c.bountyBps / 10_000;
        uint256 before = _px.balanceOf(keeper);
        uint256 escrow = _m.escrowOf(dl.tokenId);
        vm.prank(keeper);
        _m.markMissed(dealId);
        assertEq(_px.balanceOf(keeper), before + bounty, "bounty");
        assertEq(_r.stakeOf(dl.provider), stake - slashed, "slashed");
        uint256 refund = dl.pricePerPeriod + slashed - bounty;
        if (dl.misses + 1 >= c.maxMisses) {
            refund += uint256(dl.pricePerPeriod) * (dl.periods - dl.nextPeriod - 1);
        }
        assertEq(_m.escrowOf(dl.tokenId), escrow + refund, "refund");
        ghostBounties += bounty;
        ghostSlashed += slashed;
    }

    function claim(uint256 ps) external {
        address prov = providers[ps % providers.length];
        uint256 amount = _m.earningsOf(prov);
        if (amount == 0) return;
        uint256 before = _px.balanceOf(prov);
        vm.prank(prov);
        _m.claimEarnings();
        assertEq(_px.balanceOf(prov), before + amount, "claimed");
        ghostClaimed += amount;
    }

    function withdrawFees() external {
        uint256 amount = _m.feesAccrued();
        if (amount == 0) return;
        _m.withdrawFees();
        ghostFeesWithdrawn += amount;
    }

    // ------------------------------------------------------------------------------------------
    // Providers
    // ------------------------------------------------------------------------------------------

    function addStake(uint256 ps, uint256 amount) external {
        address prov = providers[ps % providers.length];
        if (!_registered(prov)) return;
        amount = bound(amount, 1, 50 ether);
        uint256 before = _r.stakeOf(prov);
        vm.prank(prov);
        _r.addStake(uint96(amount));
        assertEq(_r.stakeOf(prov), before + amount, "staked");
        ghostStaked += amount;
    }

    function exit(uint256 ps) external {
        address prov = providers[ps % providers.length];
        if (!_registered(prov) || _r.providerOf(prov).unbondsAt != 0) return;
        vm.prank(prov);
        _r.requestExit();
    }

    function withdrawStake(uint256 ps) external {
        address prov = providers[ps % providers.length];
        IProviderRegistry.Listing memory l = _r.providerOf(prov);
        if (!_registered(prov) || l.unbondsAt == 0 || l.activeDeals != 0) return;
        if (block.timestamp < l.unbondsAt) vm.warp(l.unbondsAt);
        uint256 before = _px.balanceOf(prov);
        vm.prank(prov);
        _r.withdrawStake();
        assertEq(_px.balanceOf(prov), before + l.stake, "stake returned");
        ghostStakeWithdrawn += l.stake;
    }

    function register(uint256 ps) external {
        address prov = providers[ps % providers.length];
        if (_registered(prov)) return;
        uint96 stake = uint96(_r.minStake());
        vm.prank(prov);
        _r.registerProvider("https://again.example", 1, 1 << 40, 1 ether, stake);
        ghostStaked += stake;
    }

    function roll(uint256 blocks) external {
        vm.roll(block.number + bound(blocks, 1, 300));
        vm.warp(block.timestamp + 60);
    }

    // ------------------------------------------------------------------------------------------
    // Helpers
    // ------------------------------------------------------------------------------------------

    function _registered(address prov) internal view returns (bool) {
        return bytes(_r.providerOf(prov).endpoint).length != 0;
    }

    function _indexOf(address prov) internal view returns (uint256 i) {
        while (providers[i] != prov) ++i;
    }

    function _sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    function _uniform(bytes32 leaf, uint256 depth)
        internal
        pure
        returns (bytes32 root, bytes32[] memory path)
    {
        path = new bytes32[](depth);
        root = leaf;
        for (uint256 i; i < depth; ++i) {
            path[i] = root;
            root = StorageProof.hashPair(root, root);
        }
    }

    function uniformRoot(uint256 count) internal pure returns (bytes32 root) {
        (bytes32 pieceRoot,) = _uniform(CHUNK, 2);
        (root,) = _uniform(StorageProof.dealLeaf(pieceRoot, 2), StorageProof.depthOf(count));
    }

    function uniformProofs(uint256 c, uint256 count)
        internal
        pure
        returns (IStorageMarket.Proof[] memory proofs)
    {
        (bytes32 pieceRoot, bytes32[] memory piecePath) = _uniform(CHUNK, 2);
        (, bytes32[] memory dealPath) =
            _uniform(StorageProof.dealLeaf(pieceRoot, 2), StorageProof.depthOf(count));
        proofs = new IStorageMarket.Proof[](c);
        for (uint256 i; i < c; ++i) {
            proofs[i] = IStorageMarket.Proof(pieceRoot, 2, CHUNK, piecePath, dealPath);
        }
    }
}

/// @notice Escrow conservation to the wei, the contracts' balances, and the registry's view of
/// active deals, over random sequences of market and registry actions.
contract StorageMarketInvariantTest is MarketFixture {
    MarketHandler internal handler;

    function setUp() public override {
        super.setUp();
        uint256 sharePlan = nft.createPlan(
            IStorageNFT.Plan({
                quota: 1 << 30,
                validity: 30 days,
                syncCredits: 10,
                mintable: true,
                renewable: true,
                free: false,
                escrowShareBps: 2500,
                tokenPrice: 100 ether,
                nativePrice: 0
            })
        );
        handler = new MarketHandler(market, registry, px, nft, registrar, registrarKey, sharePlan);
        address[] memory provs = new address[](2);
        provs[0] = provider;
        provs[1] = provider2;
        uint256[] memory keys = new uint256[](2);
        keys[0] = providerKey;
        keys[1] = provider2Key;
        address[] memory users = new address[](2);
        users[0] = alice;
        users[1] = bob;
        vm.prank(bob);
        px.approve(address(market), type(uint256).max);
        handler.init(provs, keys, token, users, ESCROW, 2 * uint256(STAKE));

        bytes4[] memory selectors = new bytes4[](14);
        selectors[0] = MarketHandler.fund.selector;
        selectors[1] = MarketHandler.withdrawEscrow.selector;
        selectors[2] = MarketHandler.mintShare.selector;
        selectors[3] = MarketHandler.openDeal.selector;
        selectors[4] = MarketHandler.updateRoot.selector;
        selectors[5] = MarketHandler.prove.selector;
        selectors[6] = MarketHandler.markMissed.selector;
        selectors[7] = MarketHandler.claim.selector;
        selectors[8] = MarketHandler.withdrawFees.selector;
        selectors[9] = MarketHandler.addStake.selector;
        selectors[10] = MarketHandler.exit.selector;
        selectors[11] = MarketHandler.withdrawStake.selector;
        selectors[12] = MarketHandler.register.selector;
        selectors[13] = MarketHandler.roll.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
        targetContract(address(handler));
    }

    function _sums()
        internal
        view
        returns (uint256 escrow, uint256 remaining, uint256 earnings, uint256 stakes)
    {
        for (uint256 i; i < handler.tokenCount(); ++i) {
            escrow += market.escrowOf(handler.tokens(i));
        }
        for (uint256 i; i < handler.dealCount(); ++i) {
            remaining += market.dealOf(handler.deals(i)).remaining;
        }
        for (uint256 i; i < handler.providerCount(); ++i) {
            earnings += market.earningsOf(handler.providers(i));
            stakes += registry.stakeOf(handler.providers(i));
        }
    }

    /// @dev Escrow + committed + claimable + paid out + slashed-and-redistributed + fees + stakes
    /// equals what was funded plus what was staked, to the wei.
    function invariant_conservation() public view {
        (uint256 escrow, uint256 remaining, uint256 earnings, uint256 stakes) = _sums();
        uint256 held = escrow + remaining + earnings + market.feesAccrued() + stakes;
        uint256 paidOut = handler.ghostEscrowWithdrawn() + handler.ghostClaimed()
            + handler.ghostFeesWithdrawn() + handler.ghostBounties() + handler.ghostStakeWithdrawn();
        assertEq(held + paidOut, handler.ghostFunded() + handler.ghostStaked(), "conservation");
    }

    /// @dev The contracts hold exactly what their books say.
    function invariant_balancesMatchBooks() public view {
        (uint256 escrow, uint256 remaining, uint256 earnings, uint256 stakes) = _sums();
        assertEq(
            px.balanceOf(address(market)),
            escrow + remaining + earnings + market.feesAccrued(),
            "market balance"
        );
        assertEq(px.balanceOf(address(registry)), stakes, "registry balance");
    }

    /// @dev Each provider's active-deal count and reserved bytes match its active deals.
    function invariant_registryTracksActiveDeals() public view {
        for (uint256 p; p < handler.providerCount(); ++p) {
            address prov = handler.providers(p);
            uint256 active;
            for (uint256 i; i < handler.dealCount(); ++i) {
                IStorageMarket.Deal memory dl = market.dealOf(handler.deals(i));
                if (dl.provider == prov && dl.status == IStorageMarket.DealStatus.Active) {
                    ++active;
                }
            }
            IProviderRegistry.Listing memory l = registry.providerOf(prov);
            assertEq(l.activeDeals, active, "active deals");
            assertEq(l.reserved, active << 30, "reserved");
        }
    }
}

