// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test, Vm} from "forge-std/Test.sol";

import {
    IAccessControlDefaultAdminRules
} from "@openzeppelin/contracts/access/extensions/IAccessControlDefaultAdminRules.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";

import {PXToken} from "../../contracts/PXToken.sol";
import {IStorageNFT} from "../../contracts/interfaces/IStorageNFT.sol";
import {IpnsName} from "../../contracts/libraries/IpnsName.sol";
import {Deployer} from "../../script/Deployer.sol";

/// @dev The parts of Chainlink's Operator the tests drive (the real contract, deployed from its
/// artifact; it cannot be imported beside OpenZeppelin v5).
interface IOperator {
    function fulfillOracleRequest2(
        bytes32 requestId,
        uint256 payment,
        address callbackAddress,
        bytes4 callbackFunctionId,
        uint256 expiration,
        bytes calldata data
    ) external returns (bool);
    function isAuthorizedSender(address sender) external view returns (bool);
    function withdrawable() external view returns (uint256);
    function owner() external view returns (address);
    function setAuthorizedSenders(address[] calldata senders) external;
}

/// @dev StorageNFT as the tests reach it: its interface plus ERC-721, the admin rules and its
/// public constants. The tests never import StorageNFT.sol: it compiles through the IR pipeline,
/// which every importer would have to share (minutes instead of seconds for the tests).
interface IStorageNFTHarness is IStorageNFT, IERC721, IAccessControlDefaultAdminRules {
    function REGISTRAR_ROLE() external view returns (bytes32);
    function PAUSER_ROLE() external view returns (bytes32);
    function DEFAULT_ADMIN_ROLE() external view returns (bytes32);
    function QUOTA_UNIT() external view returns (uint256);
    function MIN_SYNC_WINDOW() external view returns (uint256);
    function MAX_SYNC_WINDOW() external view returns (uint256);
    function MAX_MIN_SYNC_INTERVAL() external view returns (uint256);
    function MAX_PREPAID_PERIOD() external view returns (uint256);
    function MAX_LINK_FEE() external view returns (uint256);
    function ORACLE_CONFIG_DELAY() external view returns (uint256);
    function INITIAL_ADMIN_DELAY() external view returns (uint48);
    function tokenURI(uint256 tokenId) external view returns (string memory);
    function treasury() external view returns (address);
    function quotaUnitPrice() external view returns (uint128 tokenPrice, uint128 nativePrice);
}

/// @dev LinkToken views the tests read.
interface ILink {
    function balanceOf(address account) external view returns (uint256);
    function transfer(address to, uint256 amount) external returns (bool);
}

/// @notice Shared fixture: a fresh devnet deployment (through the same `Deployer` the deploy
/// script uses) with funded users and helpers for the mint, key and sync flows.
abstract contract Deployers is Test, Deployer {
    bytes32 internal constant ORACLE_REQUEST_TOPIC = keccak256(
        "OracleRequest(bytes32,address,bytes32,uint256,address,bytes4,uint256,uint256,bytes)"
    );
    uint256 internal constant FREE_PLAN = 1;
    uint256 internal constant BASIC_PLAN = 2;
    uint256 internal constant PRO_PLAN = 3;
    uint128 internal constant BASIC_PRICE = 100 ether;
    uint128 internal constant PRO_PRICE = 5000 ether;
    /// @dev A maximum PXToken price that never binds.
    uint256 internal constant ANY_PRICE = type(uint256).max;

    /// @dev One OracleRequest as the Operator emitted it.
    struct OracleRequest {
        bytes32 specId;
        address requester;
        bytes32 requestId;
        uint256 payment;
        address callbackAddr;
        bytes4 callbackFunctionId;
        uint256 cancelExpiration;
        uint256 dataVersion;
        bytes data;
    }

    Deployment internal d;
    IStorageNFTHarness internal nft;
    PXToken internal px;
    IOperator internal operator;
    ILink internal link;

    address internal oracle = makeAddr("oracle");
    address internal registrar;
    uint256 internal registrarKey;
    address internal alice = makeAddr("alice");
    address internal bob = makeAddr("bob");

    function setUp() public virtual {
        (registrar, registrarKey) = makeAddrAndKey("registrar");
        d = deploy(devnetConfig(address(this), oracle, registrar));
        nft = IStorageNFTHarness(d.storageNFT);
        px = PXToken(d.pxToken);
        operator = IOperator(d.operator);
        link = ILink(d.link);
        px.mint(alice, 1_000_000 ether);
        px.mint(bob, 1_000_000 ether);
        vm.deal(alice, 100 ether);
        vm.deal(bob, 100 ether);
        vm.prank(alice);
        px.approve(address(nft), type(uint256).max);
        vm.prank(bob);
        px.approve(address(nft), type(uint256).max);
    }

    /// @dev A deterministic ed25519-shaped key for test number `i`.
    function keyOf(uint256 i) internal pure returns (bytes32) {
        return keccak256(abi.encode("ipns-key", i));
    }

    /// @dev The 38-byte IPNS name of `key`.
    function nameOf(bytes32 key) internal pure returns (bytes memory) {
        return IpnsName.toName(key);
    }

    /// @dev The registrar's signature assigning `name` to `minter`.
    function signAssignment(address minter, bytes memory name, uint256 deadline)
        internal
        view
        returns (bytes memory)
    {
        return sign(registrarKey, nft.keyAssignmentDigest(minter, name, deadline));
    }

    /// @dev `signer`'s signature moving `tokenId` to the key `name`.
    function signRebinding(uint256 signer, uint256 tokenId, bytes memory name, uint256 deadline)
        internal
        view
        returns (bytes memory)
    {
        return sign(signer, nft.keyRebindingDigest(tokenId, name, deadline));
    }

    /// @dev A 65-byte ECDSA signature of `digest` by `key`.
    function sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    /// @dev Mints a Basic-plan token with a bound key for `user`.
    function mintWithKeyFor(address user, bytes32 key) internal returns (uint256 tokenId) {
        bytes memory name = nameOf(key);
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signAssignment(user, name, deadline);
        vm.prank(user);
        tokenId = nft.mintWithKey(BASIC_PLAN, BASIC_PRICE, name, deadline, sig);
    }

    /// @dev Mints a free-plan token with a bound key for `user`.
    function mintFreeWithKeyFor(address user, bytes32 key) internal returns (uint256 tokenId) {
        bytes memory name = nameOf(key);
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory sig = signAssignment(user, name, deadline);
        vm.prank(user);
        tokenId = nft.mintWithKey(FREE_PLAN, 0, name, deadline, sig);
    }

    /// @dev Mints a Basic-plan token without a key for `user`, paying PXToken.
    function mintFor(address user) internal returns (uint256 tokenId) {
        vm.prank(user);
        tokenId = nft.mint(BASIC_PLAN, BASIC_PRICE);
    }

    /// @dev Requests a sync as `user` and returns the Operator's OracleRequest.
    function requestSyncAs(address user, uint256 tokenId)
        internal
        returns (OracleRequest memory req)
    {
        vm.recordLogs();
        vm.prank(user);
        bytes32 requestId = nft.requestSync(tokenId);
        req = lastOracleRequest();
        assertEq(req.requestId, requestId, "request id");
    }

    /// @dev The last OracleRequest the deployment's Operator emitted among the recorded logs.
    function lastOracleRequest() internal returns (OracleRequest memory req) {
        return lastOracleRequest(d.operator);
    }

    /// @dev The last OracleRequest `op` emitted among the recorded logs.
    function lastOracleRequest(address op) internal returns (OracleRequest memory req) {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i = logs.length; i > 0; --i) {
            Vm.Log memory l = logs[i - 1];
            if (l.emitter == op && l.topics[0] == ORACLE_REQUEST_TOPIC) {
                req.specId = l.topics[1];
                bytes memory data = l.data;
                req.requester = address(uint160(uint256(_word(data, 0))));
                req.requestId = _word(data, 1);
                req.payment = uint256(_word(data, 2));
                req.callbackAddr = address(uint160(uint256(_word(data, 3))));
                req.callbackFunctionId = bytes4(_word(data, 4));
                req.cancelExpiration = uint256(_word(data, 5));
                req.dataVersion = uint256(_word(data, 6));
                (,,,,,,, req.data) = abi.decode(
                    data, (uint256, uint256, uint256, uint256, uint256, uint256, uint256, bytes)
                );
                return req;
            }
        }
        revert("no OracleRequest");
    }

    /// @dev The `i`-th 32-byte word of ABI-encoded `data`.
    function _word(bytes memory data, uint256 i) private pure returns (bytes32 w) {
        assembly {
            w := mload(add(add(data, 32), mul(i, 32)))
        }
    }

    /// @dev The answer `data` the oracle sends for `req`.
    function answer(
        OracleRequest memory req,
        uint256 tokenId,
        uint8 status,
        uint64 used,
        uint32 fileCount,
        uint64 seq
    ) internal pure returns (bytes memory) {
        return abi.encode(req.requestId, tokenId, status, used, fileCount, seq, bytes("bafyrecord"));
    }

    /// @dev Fulfills `req` through the real Operator as `sender` with `gas`.
    function fulfillAs(address sender, OracleRequest memory req, bytes memory data, uint256 gas)
        internal
        returns (bool)
    {
        vm.prank(sender);
        return operator.fulfillOracleRequest2{gas: gas}(
            req.requestId,
            req.payment,
            req.callbackAddr,
            req.callbackFunctionId,
            req.cancelExpiration,
            data
        );
    }

    /// @dev Requests a sync and has the oracle answer OK with the given usage.
    function sync(address user, uint256 tokenId, uint64 used, uint32 fileCount, uint64 seq)
        internal
        returns (OracleRequest memory req)
    {
        req = requestSyncAs(user, tokenId);
        assertTrue(
            fulfillAs(oracle, req, answer(req, tokenId, 0, used, fileCount, seq), 500_000),
            "fulfill"
        );
    }

    /// @dev Fulfills `req` through the Operator as the oracle with ample gas.
    function fulfill(OracleRequest memory req, bytes memory data) internal returns (bool) {
        return fulfillAs(oracle, req, data, 500_000);
    }

    function info(uint256 tokenId) internal view returns (IStorageNFT.TokenInfo memory) {
        return nft.tokenInfo(tokenId);
    }
}
