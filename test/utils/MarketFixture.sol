// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {
    IAccessControlDefaultAdminRules
} from "@openzeppelin/contracts/access/extensions/IAccessControlDefaultAdminRules.sol";

import {IProviderRegistry} from "../../contracts/interfaces/IProviderRegistry.sol";
import {IStorageMarket} from "../../contracts/interfaces/IStorageMarket.sol";
import {StorageProof} from "../../contracts/libraries/StorageProof.sol";
import {MarketParams} from "../../script/Deployer.sol";
import {Deployers} from "./Deployers.sol";

/// @dev The registry as the tests reach it: its interface, the admin rules and its constants.
/// The tests deploy the registry and the market from their artifacts and never import them, so
/// a change to either (a mutant) recompiles only itself.
interface IProviderRegistryHarness is IProviderRegistry, IAccessControlDefaultAdminRules {
    function CERTIFIER_ROLE() external view returns (bytes32);
    function MAX_MIN_STAKE() external view returns (uint256);
}

/// @dev The market as the tests reach it: its interface and the admin rules.
interface IStorageMarketHarness is IStorageMarket, IAccessControlDefaultAdminRules {}

/// @notice Shared fixture of the market tests: the devnet deployment (registry and market
/// included), two registered providers, alice's token with the registrar as home node and a
/// funded escrow, and helpers for acceptances, root updates, Merkle trees and proofs.
abstract contract MarketFixture is Deployers {
    uint128 internal constant PRICE = 1 ether; // per GiB-month
    uint64 internal constant CAPACITY = 1 << 40;
    uint96 internal constant STAKE = 1000 ether;
    uint256 internal constant ESCROW = 1000 ether;
    uint64 internal constant GIB = 1 << 30;
    /// @dev The chunk every leaf of a uniform tree holds.
    bytes32 internal constant CHUNK = keccak256("chunk");

    IProviderRegistryHarness internal registry;
    IStorageMarketHarness internal market;
    address internal provider;
    uint256 internal providerKey;
    address internal provider2;
    uint256 internal provider2Key;
    uint256 internal token;
    address internal certifier = makeAddr("certifier");

    function setUp() public virtual override {
        super.setUp();
        registry = IProviderRegistryHarness(d.providerRegistry);
        market = IStorageMarketHarness(d.storageMarket);
        registry.grantRole(registry.CERTIFIER_ROLE(), certifier);
        (provider, providerKey) = makeAddrAndKey("provider");
        (provider2, provider2Key) = makeAddrAndKey("provider2");
        registerAs(provider, "https://p1.example", 756);
        registerAs(provider2, "https://p2.example", 276);

        token = mintWithKeyFor(alice, keyOf(1));
        vm.startPrank(alice);
        market.setHomeNode(token, registrar);
        px.approve(address(market), type(uint256).max);
        market.fund(token, ESCROW);
        vm.stopPrank();
    }

    /// @dev Funds `who` with PX, approves the registry and registers it with `STAKE`.
    function registerAs(address who, string memory endpoint, uint16 region) internal {
        px.mint(who, 1_000_000 ether);
        vm.startPrank(who);
        px.approve(address(registry), type(uint256).max);
        px.approve(address(market), type(uint256).max);
        registry.registerProvider(endpoint, region, CAPACITY, PRICE, STAKE);
        vm.stopPrank();
    }

    /// @dev Deploys a separate registry and market for `nft` with other parameters (StorageNFT's
    /// plan shares keep going to the devnet market).
    function deployOtherMarket(MarketParams memory p)
        internal
        returns (IProviderRegistryHarness r, IStorageMarketHarness m)
    {
        r = IProviderRegistryHarness(
            vm.deployCode(
                "ProviderRegistry.sol:ProviderRegistry",
                abi.encode(address(this), d.pxToken, p.minStake, p.unbondingDelay)
            )
        );
        m = IStorageMarketHarness(
            vm.deployCode(
                "StorageMarket.sol:StorageMarket",
                abi.encode(address(this), d.storageNFT, r, d.pxToken, p.config, p.feeBps)
            )
        );
        r.setMarket(address(m));
    }

    // ------------------------------------------------------------------------------------------
    // Trees
    // ------------------------------------------------------------------------------------------

    /// @dev Root of a tree of `2**depth` copies of `leaf`, and the path of any of them.
    function uniform(bytes32 leaf, uint256 depth)
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

    /// @dev Root of a uniform deal: `pieceCount` (a power of two) copies of a piece of
    /// `2**pieceDepth` copies of `CHUNK`.
    function uniformDealRoot(uint256 pieceCount, uint8 pieceDepth) internal pure returns (bytes32) {
        (bytes32 pieceRoot,) = uniform(CHUNK, pieceDepth);
        (bytes32 root,) =
            uniform(StorageProof.dealLeaf(pieceRoot, pieceDepth), StorageProof.depthOf(pieceCount));
        return root;
    }

    /// @dev Proofs of a uniform deal: valid for whatever the challenges pick.
    function uniformProofs(uint256 c, uint256 pieceCount, uint8 pieceDepth)
        internal
        pure
        returns (IStorageMarket.Proof[] memory proofs)
    {
        (bytes32 pieceRoot, bytes32[] memory piecePath) = uniform(CHUNK, pieceDepth);
        (, bytes32[] memory dealPath) =
            uniform(StorageProof.dealLeaf(pieceRoot, pieceDepth), StorageProof.depthOf(pieceCount));
        proofs = new IStorageMarket.Proof[](c);
        for (uint256 i; i < c; ++i) {
            proofs[i] = IStorageMarket.Proof(pieceRoot, pieceDepth, CHUNK, piecePath, dealPath);
        }
    }

    /// @dev Root of a full binary tree over `leaves` (a power of two of them).
    function rootOf(bytes32[] memory leaves) internal pure returns (bytes32) {
        bytes32[] memory level = leaves;
        while (level.length > 1) {
            bytes32[] memory up = new bytes32[](level.length / 2);
            for (uint256 i; i < up.length; ++i) {
                up[i] = StorageProof.hashPair(level[2 * i], level[2 * i + 1]);
            }
            level = up;
        }
        return level[0];
    }

    /// @dev The path of leaf `index` in the full tree over `leaves`.
    function pathOf(bytes32[] memory leaves, uint256 index)
        internal
        pure
        returns (bytes32[] memory path)
    {
        path = new bytes32[](StorageProof.depthOf(leaves.length));
        bytes32[] memory level = leaves;
        for (uint256 k; k < path.length; ++k) {
            path[k] = level[index ^ 1];
            bytes32[] memory up = new bytes32[](level.length / 2);
            for (uint256 i; i < up.length; ++i) {
                up[i] = StorageProof.hashPair(level[2 * i], level[2 * i + 1]);
            }
            level = up;
            index >>= 1;
        }
    }

    // ------------------------------------------------------------------------------------------
    // Deals
    // ------------------------------------------------------------------------------------------

    /// @dev Terms for `who` over a uniform deal of `pieceCount` pieces of depth `pieceDepth`.
    function terms(address who, uint16 pieceCount, uint8 pieceDepth, uint16 periods)
        internal
        view
        returns (IStorageMarket.Acceptance memory a)
    {
        a = IStorageMarket.Acceptance({
            tokenId: token,
            provider: who,
            root: uniformDealRoot(pieceCount, pieceDepth),
            pieceCount: pieceCount,
            size: GIB / 2,
            maxBytes: GIB,
            periods: periods,
            pricePerGiBMonth: PRICE,
            deadline: block.timestamp + 1 hours
        });
    }

    /// @dev Opens `a` on `m` as the registrar, signed by `key`.
    function open(IStorageMarketHarness m, IStorageMarket.Acceptance memory a, uint256 key)
        internal
        returns (uint256 dealId)
    {
        bytes memory sig = sign(key, m.acceptanceDigest(a));
        vm.prank(registrar);
        dealId = m.openDeal(a, sig);
    }

    /// @dev Opens a uniform deal of 4 pieces of depth 2 over 10 periods with `provider`.
    function openDefault() internal returns (uint256 dealId) {
        return open(market, terms(provider, 4, 2, 10), providerKey);
    }

    /// @dev A root update of a uniform deal of `pieceCount` pieces of depth `pieceDepth`.
    function rootUpdate(uint256 dealId, uint16 pieceCount, uint8 pieceDepth, uint64 size)
        internal
        pure
        returns (IStorageMarket.RootUpdate memory)
    {
        return IStorageMarket.RootUpdate(
            dealId, uniformDealRoot(pieceCount, pieceDepth), pieceCount, size, 0
        );
    }

    /// @dev Signs `u` on `m` by the registrar and by `key`.
    function signUpdate(IStorageMarketHarness m, IStorageMarket.RootUpdate memory u, uint256 key)
        internal
        view
        returns (bytes memory homeSig, bytes memory providerSig)
    {
        bytes32 digest = m.rootUpdateDigest(u);
        return (sign(registrarKey, digest), sign(key, digest));
    }

    /// @dev The challenge block of `period` of a deal on `m`.
    function challengeBlock(IStorageMarketHarness m, uint256 dealId, uint256 period)
        internal
        view
        returns (uint256)
    {
        return m.dealOf(dealId).startBlock + (period + 1) * m.config().periodBlocks;
    }

    /// @dev Rolls to the first block of `period`'s proof window, its challenge block's hash set
    /// to `hash`.
    function rollToWindow(IStorageMarketHarness m, uint256 dealId, uint256 period, bytes32 hash)
        internal
    {
        uint256 cb = challengeBlock(m, dealId, period);
        vm.roll(cb + 1);
        vm.setBlockhash(cb, hash);
    }

    /// @dev Rolls past `period`'s proof window.
    function rollPastWindow(IStorageMarketHarness m, uint256 dealId, uint256 period) internal {
        vm.roll(challengeBlock(m, dealId, period) + m.config().proofWindow + 1);
    }

    /// @dev Proves `period` of a uniform deal on `m` (4 pieces of depth 2 unless told).
    function proveUniform(IStorageMarketHarness m, uint256 dealId, uint256 period) internal {
        IStorageMarket.Deal memory dl = m.dealOf(dealId);
        rollToWindow(m, dealId, period, keccak256(abi.encode("block", dealId, period)));
        m.proveStorage(dealId, period, uniformProofs(m.config().challengeCount, dl.pieceCount, 2));
    }
}
