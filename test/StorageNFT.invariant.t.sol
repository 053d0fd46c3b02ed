// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {StdInvariant} from "forge-std/StdInvariant.sol";

import {IStorageNFT} from "../contracts/interfaces/IStorageNFT.sol";
import {SyncStatus} from "../contracts/libraries/SyncStatus.sol";
import {Deployers, ILink} from "./utils/Deployers.sol";

/// @notice Drives mints, transfers, quota purchases, sync requests, oracle answers (good, stale,
/// failing), holder attempts to call the callback, and time, while keeping ghost totals.
contract StorageNFTHandler is Deployers {
    uint256[] public tokens;
    mapping(uint256 tokenId => OracleRequest) internal _pending;
    mapping(uint256 tokenId => bool) public hasPending;

    // Ghosts.
    mapping(uint256 tokenId => uint64) public ghostUsed;
    mapping(uint256 tokenId => uint64) public ghostSeq;
    uint256 public ghostLinkSpent;
    uint256 public ghostPxPaid;
    uint256 public ghostNativePaid;
    uint256 public fulfills;

    address[] internal _users;

    constructor() {
        setUp();
        _users.push(alice);
        _users.push(bob);
    }

    function deployment() external view returns (Deployment memory) {
        return d;
    }

    function tokenCount() external view returns (uint256) {
        return tokens.length;
    }

    function mint(uint256 userSeed, bool native) external {
        address user = _users[userSeed % _users.length];
        uint256 pxBefore = px.balanceOf(address(nft));
        bytes32 key = keyOf(tokens.length + 1);
        bytes memory name = nameOf(key);
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signAssignment(user, name, deadline);
        vm.prank(user);
        uint256 id = native
            ? nft.mintWithKey{value: 0.01 ether}(BASIC_PLAN, name, deadline, sig)
            : nft.mintWithKey(BASIC_PLAN, name, deadline, sig);
        tokens.push(id);
        ghostPxPaid += px.balanceOf(address(nft)) - pxBefore;
        if (native) ghostNativePaid += 0.01 ether;
    }

    function transfer(uint256 tokenSeed, uint256 toSeed) external {
        if (tokens.length == 0) return;
        uint256 id = tokens[tokenSeed % tokens.length];
        address from = nft.ownerOf(id);
        address to = _users[toSeed % _users.length];
        vm.prank(from);
        nft.transferFrom(from, to, id);
    }

    function buyQuota(uint256 tokenSeed, uint256 units) external {
        if (tokens.length == 0) return;
        uint256 id = tokens[tokenSeed % tokens.length];
        units = bound(units, 1, 10);
        vm.prank(nft.ownerOf(id));
        nft.buyQuota(id, units);
        ghostPxPaid += units * 10 ether;
    }

    function requestSync(uint256 tokenSeed) external {
        if (tokens.length == 0) return;
        uint256 id = tokens[tokenSeed % tokens.length];
        IStorageNFT.TokenInfo memory t = nft.tokenInfo(id);
        if (t.pending && block.timestamp < t.requestedAt + 5 minutes) return;
        if (!t.pending && t.requestedAt != 0 && block.timestamp < t.requestedAt + 60) return;
        uint256 linkBefore = link.balanceOf(address(nft));
        _pending[id] = requestSyncAs(nft.ownerOf(id), id);
        hasPending[id] = true;
        // A cancelled expired request refunds its fee, so this is the net spend.
        ghostLinkSpent = ghostLinkSpent + linkBefore - link.balanceOf(address(nft));
    }

    function fulfill(uint256 tokenSeed, uint64 used, uint64 seqDelta, uint8 mode) external {
        if (tokens.length == 0) return;
        uint256 id = tokens[tokenSeed % tokens.length];
        if (!hasPending[id]) return;
        OracleRequest memory req = _pending[id];
        if (block.timestamp >= req.cancelExpiration) return; // may have been cancelled
        used = uint64(bound(used, 0, 20 << 30));
        mode = mode % 3;
        uint64 seq;
        uint8 status;
        if (mode == 0) {
            seq = ghostSeq[id] + uint64(bound(seqDelta, 1, 1000)); // fresh record
        } else if (mode == 1) {
            seq = uint64(bound(seqDelta, 0, ghostSeq[id])); // stale record
        } else {
            status = SyncStatus.RECORD_EXPIRED; // oracle error
        }
        bool ok = fulfillAs(oracle, req, answer(req, id, status, used, 1, seq), 500_000);
        require(ok, "fulfill failed");
        hasPending[id] = false;
        fulfills++;
        if (mode == 0) {
            ghostUsed[id] = used;
            ghostSeq[id] = seq;
        }
    }

    /// The holder tries to write usage directly; it must always fail.
    function holderWritesUsage(uint256 tokenSeed, uint64 used) external {
        if (tokens.length == 0) return;
        uint256 id = tokens[tokenSeed % tokens.length];
        bytes32 requestId = hasPending[id] ? _pending[id].requestId : bytes32(0);
        vm.prank(nft.ownerOf(id));
        try nft.fulfillSync(requestId, id, 0, used, 0, type(uint64).max, "") {
            revert("holder wrote usage");
        } catch {}
    }

    function warp(uint256 secs) external {
        vm.warp(block.timestamp + bound(secs, 1, 10 days));
    }
}

contract StorageNFTInvariantTest is StdInvariant, Deployers {
    StorageNFTHandler internal handler;

    function setUp() public override {
        handler = new StorageNFTHandler();
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](7);
        selectors[0] = StorageNFTHandler.mint.selector;
        selectors[1] = StorageNFTHandler.transfer.selector;
        selectors[2] = StorageNFTHandler.buyQuota.selector;
        selectors[3] = StorageNFTHandler.requestSync.selector;
        selectors[4] = StorageNFTHandler.fulfill.selector;
        selectors[5] = StorageNFTHandler.holderWritesUsage.selector;
        selectors[6] = StorageNFTHandler.warp.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    function _nft() internal view returns (IStorageNFT) {
        return IStorageNFT(handler.deployment().storageNFT);
    }

    /// Usage and sequence change only through accepted answers: they equal the ghosts.
    function invariant_usageOnlyFromFulfill() public view {
        IStorageNFT n = _nft();
        uint256 count = handler.tokenCount();
        for (uint256 i; i < count; ++i) {
            uint256 id = handler.tokens(i);
            IStorageNFT.TokenInfo memory t = n.tokenInfo(id);
            assertEq(t.used, handler.ghostUsed(id), "used");
            assertEq(t.seq, handler.ghostSeq(id), "seq");
        }
    }

    /// At most one pending request per token, and the handler's view agrees with the contract.
    function invariant_onePendingPerToken() public view {
        IStorageNFT n = _nft();
        uint256 count = handler.tokenCount();
        for (uint256 i; i < count; ++i) {
            uint256 id = handler.tokens(i);
            IStorageNFT.TokenInfo memory t = n.tokenInfo(id);
            if (!handler.hasPending(id)) assertFalse(t.pending, "pending without request");
        }
    }

    /// LINK: what left the contract is exactly what the Operator holds (escrow + earned).
    function invariant_linkAddsUp() public view {
        Deployment memory dep = handler.deployment();
        uint256 nftLink = ILink(dep.link).balanceOf(dep.storageNFT);
        assertEq(nftLink, DEVNET_LINK_FUNDING - handler.ghostLinkSpent(), "nft LINK");
        assertEq(ILink(dep.link).balanceOf(dep.operator), handler.ghostLinkSpent(), "operator LINK");
    }

    /// Fees: the contract holds exactly what was paid.
    function invariant_feesAddUp() public view {
        Deployment memory dep = handler.deployment();
        assertEq(ILink(dep.pxToken).balanceOf(dep.storageNFT), handler.ghostPxPaid(), "PX fees");
        assertEq(dep.storageNFT.balance, handler.ghostNativePaid(), "native fees");
    }
}
