// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IStorageNFT} from "../contracts/interfaces/IStorageNFT.sol";
import {SyncRequest} from "../contracts/libraries/SyncRequest.sol";
import {SyncStatus} from "../contracts/libraries/SyncStatus.sol";
import {Deployers} from "./utils/Deployers.sol";

/// @notice The Chainlink round trip against the real Operator: request, OracleRequest, fulfill.
contract StorageNFTSyncTest is Deployers {
    event MetadataUpdate(uint256 _tokenId);

    uint256 internal id;

    function setUp() public override {
        super.setUp();
        id = mintWithKeyFor(alice, keyOf(1));
    }

    function test_requestSync_emitsOracleRequest() public {
        uint256 linkBefore = link.balanceOf(address(nft));
        OracleRequest memory req = requestSyncAs(alice, id);
        assertEq(req.specId, DEVNET_JOB_ID, "spec id");
        assertEq(req.requester, address(nft), "requester");
        assertEq(req.callbackAddr, address(nft), "callback");
        assertEq(req.callbackFunctionId, nft.fulfillSync.selector, "callback selector");
        assertEq(req.payment, DEVNET_FEE, "payment");
        assertEq(req.cancelExpiration, block.timestamp + 5 minutes, "expiration");
        assertEq(req.dataVersion, 2, "operator request version");
        // CBOR map entry: text(7) "tokenId" -> uint 1 (0x67 'tokenId' 0x01).
        assertEq(req.data, abi.encodePacked(hex"67", "tokenId", hex"01"), "cbor params");
        assertEq(linkBefore - link.balanceOf(address(nft)), DEVNET_FEE, "fee paid in LINK");

        IStorageNFT.TokenInfo memory t = info(id);
        assertTrue(t.pending);
        assertEq(t.requestedAt, block.timestamp);
    }

    function test_fulfill_storesUsage() public {
        OracleRequest memory req = requestSyncAs(alice, id);
        vm.warp(block.timestamp + 30);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.Synced(id, req.requestId, 5000, 7, 3, bytes("bafyrecord"));
        vm.expectEmit(true, true, true, true, address(nft));
        emit MetadataUpdate(id);
        assertTrue(fulfillAs(oracle, req, answer(req, id, 0, 5000, 7, 3), 500_000));

        IStorageNFT.TokenInfo memory t = info(id);
        assertEq(t.used, 5000);
        assertEq(t.fileCount, 7);
        assertEq(t.seq, 3);
        assertEq(t.lastSyncAt, block.timestamp);
        assertFalse(t.pending);
        assertEq(t.lastStatus, SyncStatus.OK);
        assertEq(operator.withdrawable(), DEVNET_FEE, "operator got paid");
    }

    function test_fulfill_errorStatusChangesNoUsage() public {
        sync(alice, id, 100, 1, 1);
        vm.warp(block.timestamp + 60);
        OracleRequest memory req = requestSyncAs(alice, id);
        uint256 syncedAt = info(id).lastSyncAt;
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.SyncFailed(id, req.requestId, SyncStatus.BAD_SIGNATURE);
        assertTrue(
            fulfillAs(oracle, req, answer(req, id, SyncStatus.BAD_SIGNATURE, 0, 0, 0), 500_000)
        );
        IStorageNFT.TokenInfo memory t = info(id);
        assertEq(t.used, 100);
        assertEq(t.seq, 1);
        assertEq(t.lastSyncAt, syncedAt);
        assertEq(t.lastStatus, SyncStatus.BAD_SIGNATURE);
        assertFalse(t.pending, "an error answer still closes the request");
    }

    function test_fulfill_overQuotaStoredAndGateCloses() public {
        uint64 overQuota = uint64(10 << 30) + 1;
        sync(alice, id, overQuota, 1, 1);
        assertEq(info(id).used, overQuota);
        (bool ok, IStorageNFT.Reason reason) = nft.canUpload(id, 0);
        assertFalse(ok);
        assertEq(uint8(reason), uint8(IStorageNFT.Reason.QuotaExceeded));
    }

    function test_requestSync_requestIdIsTheOperators() public {
        vm.recordLogs();
        vm.prank(alice);
        bytes32 requestId = nft.requestSync(id);
        OracleRequest memory req = lastOracleRequest();
        // The Operator derives the id from the requester and the nonce we sent.
        assertEq(req.requestId, requestId);
        assertEq(req.requestId, SyncRequest.id(address(nft), SyncRequest.nonce(id, 1)));
    }

    function test_RevertWhen_fulfillByUnauthorizedSender() public {
        OracleRequest memory req = requestSyncAs(alice, id);
        vm.expectRevert("Not authorized sender");
        fulfillAs(bob, req, answer(req, id, 0, 1, 1, 1), 500_000);
        assertEq(info(id).seq, 0);
        assertTrue(info(id).pending);
    }

    function test_RevertWhen_fulfillReplayed() public {
        OracleRequest memory req = requestSyncAs(alice, id);
        bytes memory data = answer(req, id, 0, 1, 1, 1);
        assertTrue(fulfillAs(oracle, req, data, 500_000));
        vm.expectRevert("Must have a valid requestId");
        fulfillAs(oracle, req, data, 500_000);
    }

    function test_fulfill_staleSequenceRecordedNotApplied() public {
        sync(alice, id, 100, 1, 5);
        vm.warp(block.timestamp + 60);
        OracleRequest memory req = requestSyncAs(alice, id);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.SyncFailed(id, req.requestId, SyncStatus.STALE_SEQUENCE);
        assertTrue(fulfillAs(oracle, req, answer(req, id, 0, 1, 1, 5), 500_000));
        IStorageNFT.TokenInfo memory t = info(id);
        assertEq(t.used, 100, "usage unchanged");
        assertEq(t.seq, 5);
        assertEq(t.lastStatus, SyncStatus.STALE_SEQUENCE);
    }

    function test_RevertWhen_fulfillUnderGassed() public {
        OracleRequest memory req = requestSyncAs(alice, id);
        bytes memory data = answer(req, id, 0, 1, 1, 1);
        vm.expectRevert("Must provide consumer enough gas");
        fulfillAs(oracle, req, data, 390_000);
        assertTrue(info(id).pending, "still pending");
        // A properly gassed fulfill still works afterwards.
        assertTrue(fulfillAs(oracle, req, data, 500_000));
        assertEq(info(id).seq, 1);
    }

    function test_fulfill_wrongTokenRecordedAgainstRequestToken() public {
        uint256 other = mintWithKeyFor(bob, keyOf(2));
        OracleRequest memory req = requestSyncAs(alice, id);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.SyncFailed(id, req.requestId, SyncStatus.WRONG_TOKEN);
        assertTrue(fulfill(req, answer(req, other, 0, 9, 9, 9)), "the callback does not revert");
        assertEq(info(other).seq, 0);
        assertEq(info(id).seq, 0);
        assertFalse(info(id).pending);
        assertEq(info(id).lastStatus, SyncStatus.WRONG_TOKEN);
    }

    function test_fulfill_okWithoutRecordCidIsMalformed() public {
        OracleRequest memory req = requestSyncAs(alice, id);
        bytes memory data = abi.encode(req.requestId, id, uint8(0), 5, 1, 1, bytes(""));
        vm.expectEmit(true, true, true, true, address(nft));
        emit IStorageNFT.SyncFailed(id, req.requestId, SyncStatus.MALFORMED_ANSWER);
        assertTrue(fulfill(req, data));
        assertEq(info(id).used, 0);
        assertEq(info(id).lastStatus, SyncStatus.MALFORMED_ANSWER);
        assertFalse(info(id).pending);
    }

    function test_fulfill_undecodableAnswerLeavesRequestToExpire() public {
        OracleRequest memory req = requestSyncAs(alice, id);
        // Only the request id: the callback cannot decode it and reverts inside the Operator,
        // which keeps the fee and reports false.
        assertFalse(fulfill(req, abi.encode(req.requestId)));
        assertTrue(info(id).pending);
        vm.warp(req.cancelExpiration);
        OracleRequest memory again = requestSyncAs(alice, id);
        assertTrue(fulfill(again, answer(again, id, 0, 3, 1, 1)));
        assertEq(info(id).used, 3);
    }

    function test_RevertWhen_fulfillWithMismatchedRequestId() public {
        OracleRequest memory req = requestSyncAs(alice, id);
        bytes memory data = abi.encode(bytes32(uint256(1)), id, uint8(0), 1, 1, 1, bytes(""));
        vm.expectRevert("First word must be requestId");
        fulfillAs(oracle, req, data, 500_000);
    }

    function test_requestSync_twoTokensIndependent() public {
        uint256 other = mintWithKeyFor(bob, keyOf(2));
        OracleRequest memory a = requestSyncAs(alice, id);
        OracleRequest memory b = requestSyncAs(bob, other);
        assertTrue(a.requestId != b.requestId);
        assertTrue(fulfillAs(oracle, b, answer(b, other, 0, 20, 2, 1), 500_000));
        assertTrue(fulfillAs(oracle, a, answer(a, id, 0, 10, 1, 1), 500_000));
        assertEq(info(id).used, 10);
        assertEq(info(other).used, 20);
    }
}
