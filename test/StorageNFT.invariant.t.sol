// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {
    IAccessControlDefaultAdminRules
} from "@openzeppelin/contracts/access/extensions/IAccessControlDefaultAdminRules.sol";
import {StdInvariant} from "forge-std/StdInvariant.sol";

import {IStorageNFT} from "../contracts/interfaces/IStorageNFT.sol";
import {SyncStatus} from "../contracts/libraries/SyncStatus.sol";
import {Deployers, ILink, IOperator, IStorageNFTHarness} from "./utils/Deployers.sol";

/// @notice Drives every external function of StorageNFT (mints of all kinds, transfers,
/// purchases, key binding and rebinding, sync requests, Operator answers good, stale, failing,
/// mismatched, malformed and undecodable, direct callback attempts, pause, every admin setting,
/// oracle reconfiguration, withdrawals, admin transfer) against a model of what each call must
/// do. Each call's outcome is checked where it happens: a call the model expects to succeed must
/// succeed, and one it expects to fail must revert with exactly the model's error. The handler
/// itself never reverts otherwise (`fail_on_revert = true`), so any assertion is a failure.
contract StorageNFTHandler is Deployers {
    /// @dev What the handler expects a token's on-chain state to be.
    struct Model {
        uint64 quota;
        uint64 used;
        uint32 fileCount;
        uint16 planId;
        uint40 expiresAt; // service clock, 0: never
        uint40 lastSyncAt; // service clock
        uint64 seq;
        bool pending;
        uint40 requestedAt; // wall clock
        uint32 requests;
        uint8 lastStatus;
        uint32 credits;
        bytes32 key;
        bool operatorHolds; // the pending request's Operator still holds it (fee refundable)
        address reqOperator;
        uint256 reqFee;
    }

    uint256 internal constant MAX_TOKENS = 12;
    uint256 internal constant KEYS = 16;

    uint256[] public tokens;
    mapping(uint256 tokenId => Model) internal _m;
    mapping(uint256 tokenId => OracleRequest) internal _req;
    mapping(bytes32 key => uint256 tokenId) public keyToken;

    // Global model.
    uint256 public pausedAt;
    uint256 public pausedTotal;
    uint256 public syncWindow = 30 days;
    uint256 public minInterval = DEVNET_MIN_SYNC_INTERVAL;
    address public opNow;
    bytes32 public jobNow = DEVNET_JOB_ID;
    uint256 public feeNow = DEVNET_FEE;
    address public opNext;
    bytes32 public jobNext;
    uint256 public feeNext;
    uint256 public nextAt;
    IStorageNFT.Plan[] internal _plans;
    uint128 public unitToken = 10 ether;
    uint128 public unitNative = 0.001 ether;
    address public treasury;
    address public admin;
    address public pendingAdmin;
    uint256 public adminSchedule;
    mapping(address account => bool) public freeClaimed;
    bool public registrarActive = true;

    // Money.
    uint256 public nftLink = DEVNET_LINK_FUNDING;
    mapping(address op => uint256) public opLink;
    uint256 public linkWithdrawn;
    uint256 public pxPaid;
    uint256 public pxWithdrawn;
    uint256 public nativePaid;
    uint256 public nativeWithdrawn;

    // Counters: how often each call (numbered by `lastCall`) succeeded or was refused, to see
    // that the campaign reaches the interesting paths.
    uint256 public fulfills;
    uint256 public lastCall;
    mapping(uint256 call => uint256) public okCalls;
    mapping(uint256 call => uint256) public refusedCalls;

    address[] internal _users;
    mapping(address user => uint256 key) internal _userKeys;
    address[2] internal _operators;
    address internal _admin2 = makeAddr("admin2");
    address internal _eoa = makeAddr("eoa");
    address internal _nobody = makeAddr("nobody");

    constructor() {
        setUp();
        for (uint256 i; i < 3; ++i) {
            (address u, uint256 k) = makeAddrAndKey(string.concat("user", vm.toString(i)));
            _users.push(u);
            _userKeys[u] = k;
            px.mint(u, 1_000_000 ether);
            vm.deal(u, 100 ether);
            vm.prank(u);
            px.approve(address(nft), type(uint256).max);
        }
        opNow = d.operator;
        _operators[0] = d.operator;
        _operators[1] = vm.deployCode("Operator.sol:Operator", abi.encode(d.link, address(this)));
        address[] memory senders = new address[](1);
        senders[0] = oracle;
        IOperator(_operators[1]).setAuthorizedSenders(senders);
        for (uint256 i = 1; i <= nft.planCount(); ++i) {
            _plans.push(nft.plan(i));
        }
        treasury = address(this);
        admin = address(this);
        vm.deal(_nobody, 100 ether); // pays like anyone else when it tries what it may not
    }

    /// @dev Receives coin fees as the treasury.
    receive() external payable {}

    // -----------------------------------------------------------------------------------------
    // Views for the invariants
    // -----------------------------------------------------------------------------------------

    function deployment() external view returns (Deployment memory) {
        return d;
    }

    function tokenCount() external view returns (uint256) {
        return tokens.length;
    }

    function model(uint256 id) external view returns (Model memory) {
        return _m[id];
    }

    function plans() external view returns (IStorageNFT.Plan[] memory) {
        return _plans;
    }

    function operators() external view returns (address[2] memory) {
        return _operators;
    }

    function users() external view returns (address[] memory) {
        return _users;
    }

    /// @dev The model's service clock.
    function clock() public view returns (uint256) {
        return (pausedAt != 0 ? pausedAt : block.timestamp) - pausedTotal;
    }

    // -----------------------------------------------------------------------------------------
    // Mints
    // -----------------------------------------------------------------------------------------

    /// Mints through `mint`, `mintWithPermit` or `mintWithKey`, from any plan, paying in PXToken
    /// (with a maximum at, above or below the price) or in coin (right or wrong amount).
    function mint(uint256 userSeed, uint256 planSeed, uint256 how, uint256 paySeed) external {
        lastCall = 1;
        if (tokens.length >= MAX_TOKENS) return;
        address user = _users[userSeed % _users.length];
        uint256 planId = planSeed % 8 == 0 ? 0 : 1 + planSeed % _plans.length; // 0: unknown
        // 0 mint, 1 mintWithPermit, 2 mintWithKey, 3 mintWithKey with a lapsed deadline
        how = how % 8 < 2 ? 0 : how % 8 == 2 ? 1 : how % 8 == 3 ? 3 : 2;
        (uint256 value, uint256 maxPrice) = _payment(planId, paySeed);
        if (how == 1) (value, maxPrice) = (0, maxPrice == 0 ? type(uint256).max : maxPrice);
        bytes32 key = keyOf(1 + uint256(keccak256(abi.encode(paySeed, userSeed))) % KEYS);

        bytes memory want;
        if (how == 3) want = abi.encodeWithSelector(IStorageNFT.AssignmentExpired.selector, 0);
        if (how == 2 && !registrarActive) {
            want = abi.encodeWithSelector(IStorageNFT.InvalidAssignment.selector, registrar);
        }
        if (want.length == 0) want = _mintError(user, planId, value, maxPrice);
        if (want.length == 0 && how >= 2 && keyToken[key] != 0) {
            want = abi.encodeWithSelector(IStorageNFT.KeyInUse.selector, key, keyToken[key]);
        }

        uint256 pxBefore = px.balanceOf(address(nft));
        bytes memory got;
        uint256 id;
        bool ok;
        if (how == 0) {
            vm.prank(user);
            try nft.mint{value: value}(planId, maxPrice) returns (uint256 minted) {
                (ok, id) = (true, minted);
            } catch (bytes memory r) {
                got = r;
            }
        } else if (how == 1) {
            (uint8 v, bytes32 r_, bytes32 s_) = _permitSig(user, maxPrice);
            vm.prank(user);
            try nft.mintWithPermit(planId, maxPrice, block.timestamp, v, r_, s_) returns (
                uint256 minted
            ) {
                (ok, id) = (true, minted);
            } catch (bytes memory r) {
                got = r;
            }
        } else {
            uint256 deadline = how == 3 ? 0 : block.timestamp;
            bytes memory name = nameOf(key);
            bytes memory sig = signAssignment(user, name, deadline);
            vm.prank(user);
            try nft.mintWithKey{value: value}(planId, maxPrice, name, deadline, sig) returns (
                uint256 minted
            ) {
                (ok, id) = (true, minted);
            } catch (bytes memory r) {
                got = r;
            }
        }
        if (how == 1) {
            // The permit set the allowance to `maxPrice`; restore the standing approval.
            vm.prank(user);
            px.approve(address(nft), type(uint256).max);
        }
        if (!_outcome(ok, got, want, "mint")) return;

        IStorageNFT.Plan memory p = _plans[planId - 1];
        assertEq(id, tokens.length + 1, "sequential id");
        tokens.push(id);
        Model storage t = _m[id];
        t.quota = p.quota;
        t.planId = uint16(planId);
        t.expiresAt = p.validity == 0 ? 0 : uint40(clock() + p.validity);
        t.lastSyncAt = uint40(clock());
        t.credits = p.validity == 0 ? 0 : p.syncCredits;
        if (p.free) freeClaimed[user] = true;
        else if (value != 0) nativePaid += value;
        else pxPaid += p.tokenPrice;
        assertEq(px.balanceOf(address(nft)) - pxBefore, value != 0 || p.free ? 0 : p.tokenPrice);
        if (how >= 2) _bind(id, key);
    }

    function transfer(uint256 tokenSeed, uint256 toSeed, bool approved) external {
        lastCall = 2;
        if (tokens.length == 0) return;
        uint256 id = tokens[tokenSeed % tokens.length];
        address from = nft.ownerOf(id);
        address to = _users[toSeed % _users.length];
        if (approved) {
            // An approved operator moves it (and may act for the token afterwards).
            address op = _users[(toSeed % _users.length + 1) % _users.length];
            vm.prank(from);
            nft.setApprovalForAll(op, true);
            vm.prank(op);
            nft.transferFrom(from, to, id);
        } else {
            vm.prank(from);
            nft.transferFrom(from, to, id);
        }
        assertEq(nft.ownerOf(id), to);
    }

    // -----------------------------------------------------------------------------------------
    // Purchases
    // -----------------------------------------------------------------------------------------

    function buyQuota(uint256 tokenSeed, uint256 units, uint256 paySeed) external {
        lastCall = 3;
        if (tokens.length == 0) return;
        uint256 id = tokens[tokenSeed % tokens.length];
        Model storage t = _m[id];
        // Now and then far more than 64 bits of quota can hold.
        units = paySeed % 5 == 0 ? (type(uint64).max >> 30) + 1 + units % 1000 : bound(units, 0, 20);
        address payer = _users[paySeed % _users.length];
        uint256 value;
        uint256 maxPrice = type(uint256).max;
        bytes memory want;
        if (pausedAt != 0) {
            want = abi.encodeWithSelector(IStorageNFT.EnforcedPause.selector);
        } else if (units == 0) {
            want = abi.encodeWithSelector(IStorageNFT.NotForSale.selector);
        } else if (units > (type(uint64).max - t.quota) / (1 << 30)) {
            want = abi.encodeWithSelector(IStorageNFT.InvalidPlan.selector);
        } else {
            uint256 price = units * unitToken;
            value = paySeed % 3 == 0 ? units * unitNative : 0;
            maxPrice = paySeed % 7 == 0 && price != 0 ? price - 1 : price;
            want = _collectError(price, units * unitNative, maxPrice, value);
        }
        bool ok;
        bytes memory got;
        vm.prank(payer);
        try nft.buyQuota{value: value}(id, units, maxPrice) {
            ok = true;
        } catch (bytes memory r) {
            got = r;
        }
        if (!_outcome(ok, got, want, "buyQuota")) return;
        t.quota += uint64(units << 30);
        if (value != 0) nativePaid += value;
        else pxPaid += units * unitToken;
    }

    function renew(uint256 tokenSeed, uint256 paySeed) external {
        lastCall = 4;
        if (tokens.length == 0) return;
        uint256 id = tokens[tokenSeed % tokens.length];
        Model storage t = _m[id];
        IStorageNFT.Plan memory p = _plans[t.planId - 1];
        (uint256 value, uint256 maxPrice) = _payment(t.planId, paySeed);
        uint256 base = t.expiresAt > clock() ? t.expiresAt : clock();
        uint256 expiresAt = base + p.validity;
        bytes memory want;
        if (pausedAt != 0) {
            want = abi.encodeWithSelector(IStorageNFT.EnforcedPause.selector);
        } else if (!p.renewable || p.validity == 0) {
            want = abi.encodeWithSelector(IStorageNFT.PlanNotRenewable.selector, t.planId);
        } else {
            want = _collectError(p.tokenPrice, p.nativePrice, maxPrice, value);
            if (want.length == 0 && expiresAt > clock() + nft.MAX_PREPAID_PERIOD()) {
                want = abi.encodeWithSelector(
                    IStorageNFT.PrepaidTooLong.selector,
                    expiresAt,
                    clock() + nft.MAX_PREPAID_PERIOD()
                );
            }
        }
        bool ok;
        bytes memory got;
        vm.prank(_users[paySeed % _users.length]); // anyone may pay for a renewal
        try nft.renew{value: value}(id, maxPrice) {
            ok = true;
        } catch (bytes memory r) {
            got = r;
        }
        if (!_outcome(ok, got, want, "renew")) return;
        t.expiresAt = uint40(expiresAt);
        t.credits = _plus(t.credits, p.syncCredits);
        if (value != 0) nativePaid += value;
        else pxPaid += p.tokenPrice;
    }

    function upgradePlan(uint256 tokenSeed, uint256 planSeed, uint256 paySeed) external {
        lastCall = 5;
        if (tokens.length == 0) return;
        uint256 id = tokens[tokenSeed % tokens.length];
        Model storage t = _m[id];
        uint256 planId = planSeed % 8 == 0 ? 0 : 1 + planSeed % _plans.length;
        if (planSeed % 2 == 1) planId = _nextLarger(t.planId, planId);
        (uint256 value, uint256 maxPrice) = _payment(planId, paySeed);
        address caller = paySeed % 7 == 0 ? _stranger(id) : nft.ownerOf(id);
        bytes memory want = _upgradeError(id, caller, planId, value, maxPrice);
        bool ok;
        bytes memory got;
        vm.prank(caller);
        try nft.upgradePlan{value: value}(id, planId, maxPrice) {
            ok = true;
        } catch (bytes memory r) {
            got = r;
        }
        if (!_outcome(ok, got, want, "upgradePlan")) return;
        IStorageNFT.Plan memory from = _plans[t.planId - 1];
        IStorageNFT.Plan memory to = _plans[planId - 1];
        t.quota = t.quota - from.quota + to.quota;
        t.planId = uint16(planId);
        if (to.validity == 0) {
            t.expiresAt = 0;
        } else {
            uint256 left = t.expiresAt > clock() ? t.expiresAt - clock() : 0;
            t.expiresAt = uint40(clock() + to.validity + _convert(left, from, to));
            t.credits = _plus(t.credits, to.syncCredits);
        }
        if (value != 0) nativePaid += value;
        else pxPaid += to.tokenPrice;
    }

    // -----------------------------------------------------------------------------------------
    // Keys
    // -----------------------------------------------------------------------------------------

    function registerKey(uint256 tokenSeed, uint256 keySeed) external {
        lastCall = 6;
        if (tokens.length == 0) return;
        uint256 id = _pickKeyless(tokenSeed);
        bool stranger = keySeed % 5 == 0;
        bytes32 key = keyOf(1 + keySeed % KEYS);
        address caller = stranger ? nft.ownerOf(id) : registrar;
        bytes memory want;
        if (stranger || !registrarActive) {
            want = abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector,
                caller,
                nft.REGISTRAR_ROLE()
            );
        } else if (_m[id].key != bytes32(0)) {
            want = abi.encodeWithSelector(IStorageNFT.KeyAlreadySet.selector, id);
        } else if (keyToken[key] != 0) {
            want = abi.encodeWithSelector(IStorageNFT.KeyInUse.selector, key, keyToken[key]);
        }
        bool ok;
        bytes memory got;
        vm.prank(caller);
        try nft.registerKey(id, nameOf(key)) {
            ok = true;
        } catch (bytes memory r) {
            got = r;
        }
        if (!_outcome(ok, got, want, "registerKey")) return;
        _bind(id, key);
    }

    /// Moves a token to another key with an assignment signed by the registrar or a stranger,
    /// by its holder or a stranger, with a live or lapsed deadline.
    function rebindKey(uint256 tokenSeed, uint256 keySeed, uint256 mode) external {
        lastCall = 7;
        if (tokens.length == 0) return;
        uint256 id = tokens[tokenSeed % tokens.length];
        Model storage t = _m[id];
        bytes32 key = keyOf(1 + keySeed % KEYS);
        address caller = mode % 8 == 1 ? _stranger(id) : nft.ownerOf(id);
        uint256 signer = mode % 8 == 2 ? _userKeys[_users[0]] : registrarKey;
        uint256 deadline = mode % 8 == 3 ? block.timestamp - 1 : block.timestamp;
        bytes memory want;
        if (pausedAt != 0) {
            want = abi.encodeWithSelector(IStorageNFT.EnforcedPause.selector);
        } else if (!_authorized(caller, id)) {
            want = abi.encodeWithSelector(IStorageNFT.NotTokenOwner.selector, id, caller);
        } else if (mode % 8 == 3) {
            want = abi.encodeWithSelector(IStorageNFT.AssignmentExpired.selector, deadline);
        } else if (signer != registrarKey) {
            want = abi.encodeWithSelector(IStorageNFT.InvalidAssignment.selector, _users[0]);
        } else if (!registrarActive) {
            want = abi.encodeWithSelector(IStorageNFT.InvalidAssignment.selector, registrar);
        } else if (t.pending && block.timestamp < uint256(t.requestedAt) + 5 minutes) {
            want = abi.encodeWithSelector(IStorageNFT.SyncPending.selector, id, _req[id].requestId);
        } else if (keyToken[key] != 0 && keyToken[key] != id) {
            want = abi.encodeWithSelector(IStorageNFT.KeyInUse.selector, key, keyToken[key]);
        }
        bytes memory sig = signRebinding(signer, id, nameOf(key), deadline);
        bool ok;
        bytes memory got;
        vm.prank(caller);
        try nft.rebindKey(id, nameOf(key), deadline, sig) {
            ok = true;
        } catch (bytes memory r) {
            got = r;
        }
        if (!_outcome(ok, got, want, "rebindKey")) return;
        if (t.pending) {
            _giveUp(id);
            if (t.expiresAt != 0) t.credits = _plus(t.credits, 1);
        }
        if (t.key != bytes32(0)) delete keyToken[t.key];
        _bind(id, key);
    }

    // -----------------------------------------------------------------------------------------
    // Sync
    // -----------------------------------------------------------------------------------------

    function requestSync(uint256 tokenSeed, uint256 callerSeed) external {
        lastCall = 8;
        if (tokens.length == 0) return;
        uint256 id = _pickKeyed(tokenSeed);
        Model storage t = _m[id];
        address caller = callerSeed % 4 == 0 ? _stranger(id) : nft.ownerOf(id);
        bool replacing = t.pending;
        bytes memory want = _requestError(id, caller);
        vm.recordLogs();
        bool ok;
        bytes memory got;
        vm.prank(caller);
        try nft.requestSync(id) returns (bytes32) {
            ok = true;
        } catch (bytes memory r) {
            got = r;
        }
        if (!_outcome(ok, got, want, "requestSync")) return;
        if (replacing) {
            _giveUp(id);
        } else if (t.expiresAt != 0) {
            --t.credits;
        }
        OracleRequest memory req = lastOracleRequest(opNow);
        ++t.requests;
        assertEq(req.requestId, keccak256(abi.encodePacked(address(nft), (id << 32) | t.requests)));
        assertEq(req.payment, feeNow, "fee");
        assertEq(req.specId, jobNow, "job");
        _req[id] = req;
        t.pending = true;
        t.requestedAt = uint40(block.timestamp);
        t.operatorHolds = true;
        t.reqOperator = opNow;
        t.reqFee = feeNow;
        nftLink -= feeNow;
        opLink[opNow] += feeNow;
    }

    /// The oracle answers the token's pending request through the Operator it went to: a fresh
    /// record, a stale one, an error status, another token's id, an OK without record CID, bytes
    /// the callback cannot decode, from an unauthorized sender, or with too little gas.
    function fulfill(uint256 tokenSeed, uint64 used, uint64 seqDelta, uint256 mode) external {
        lastCall = 9;
        uint256 id = _pickAnswerable(tokenSeed);
        if (id == 0) return;
        Model storage t = _m[id];
        OracleRequest memory req = _req[id];
        mode %= 8;
        used = uint64(bound(used, 0, 20 << 30));
        uint64 seq = mode == 1
            ? uint64(bound(seqDelta, 0, t.seq))
            : t.seq + uint64(bound(seqDelta, 1, 1000));
        uint8 status = mode == 2 ? uint8(1 + seqDelta % 8) : SyncStatus.OK;
        uint256 answerToken = mode == 3 ? id + 1 + seqDelta % 3 : id;
        bytes memory data = abi.encode(
            req.requestId, answerToken, status, used, uint32(seqDelta), seq, bytes("bafyrecord")
        );
        if (mode == 4) {
            data = abi.encode(req.requestId, id, SyncStatus.OK, used, uint32(1), seq, bytes(""));
        }
        if (mode == 5) data = abi.encode(req.requestId);

        address sender = mode == 6 ? _users[0] : oracle;
        uint256 gas = mode == 7 ? 390_000 : 500_000;
        vm.prank(sender);
        try IOperator(t.reqOperator).fulfillOracleRequest2{gas: gas}(
            req.requestId,
            req.payment,
            req.callbackAddr,
            req.callbackFunctionId,
            req.cancelExpiration,
            data
        ) returns (
            bool ok
        ) {
            assertTrue(mode < 6, "unauthorized or under-gassed answer accepted");
            assertEq(ok, mode != 5, "only an undecodable answer makes the callback fail");
        } catch (bytes memory r) {
            assertEq(
                r,
                abi.encodeWithSignature(
                    "Error(string)",
                    mode == 6 ? "Not authorized sender" : "Must provide consumer enough gas"
                ),
                "operator refusal"
            );
            assertTrue(mode >= 6, "a valid answer was refused");
            return;
        }
        fulfills++;
        // The Operator paid itself and forgot the request either way.
        t.operatorHolds = false;
        if (mode == 5) return; // callback reverted: the request stays pending until it expires
        t.pending = false;
        if (mode == 3) {
            t.lastStatus = SyncStatus.WRONG_TOKEN;
        } else if (mode == 4) {
            t.lastStatus = SyncStatus.MALFORMED_ANSWER;
        } else if (status != SyncStatus.OK) {
            t.lastStatus = status;
        } else if (seq <= t.seq) {
            t.lastStatus = SyncStatus.STALE_SEQUENCE;
        } else {
            t.lastStatus = SyncStatus.OK;
            t.seq = seq;
            t.used = used;
            t.fileCount = uint32(seqDelta);
            t.lastSyncAt = uint40(clock());
        }
    }

    /// The holder (or anyone) calls the callback directly, for the pending request or any id,
    /// trying to write usage. It must always be refused.
    function holderWritesUsage(uint256 tokenSeed, uint64 used, bool pendingId) external {
        lastCall = 10;
        if (tokens.length == 0) return;
        uint256 id = tokens[tokenSeed % tokens.length];
        bytes32 requestId =
            pendingId && _m[id].pending ? _req[id].requestId : keccak256(abi.encode(used));
        address holder = nft.ownerOf(id);
        vm.prank(holder);
        try nft.fulfillSync(requestId, id, 0, used, 0, type(uint64).max, "cid") {
            assertTrue(false, "a holder wrote usage");
        } catch (bytes memory r) {
            assertEq(
                r,
                abi.encodeWithSelector(IStorageNFT.NotRequestOperator.selector, requestId, holder),
                "holder refused"
            );
        }
    }

    // -----------------------------------------------------------------------------------------
    // Administration
    // -----------------------------------------------------------------------------------------

    /// Pauses now and then (a pause lasts until the next call here), by the pauser or a stranger.
    function pause(uint256 seed) external {
        lastCall = 11;
        bool stranger = seed % 5 == 0;
        address caller = stranger ? _users[1] : address(this);
        bool pausing = pausedAt == 0;
        if (pausing && !stranger && seed % 3 != 0) return;
        bytes memory want;
        if (stranger) {
            want = abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, caller, nft.PAUSER_ROLE()
            );
        }
        bool ok;
        bytes memory got;
        vm.prank(caller);
        if (pausing) {
            try nft.pause() {
                ok = true;
            } catch (bytes memory r) {
                got = r;
            }
        } else {
            try nft.unpause() {
                ok = true;
            } catch (bytes memory r) {
                got = r;
            }
        }
        if (!_outcome(ok, got, want, "pause")) return;
        if (pausing) {
            pausedAt = block.timestamp;
        } else {
            pausedTotal += block.timestamp - pausedAt;
            pausedAt = 0;
        }
    }

    function _setSyncWindow(uint256 window) internal {
        lastCall = 12;
        window = bound(window, 12 hours, 400 days);
        bytes memory want;
        if (window < 1 days || window > 365 days) {
            want = abi.encodeWithSelector(
                IStorageNFT.OutOfBounds.selector, window, uint256(1 days), uint256(365 days)
            );
        }
        bool ok;
        bytes memory got;
        vm.prank(admin);
        try nft.setSyncWindow(window) {
            ok = true;
        } catch (bytes memory r) {
            got = r;
        }
        if (_outcome(ok, got, want, "setSyncWindow")) syncWindow = window;
    }

    function _setMinSyncInterval(uint256 interval) internal {
        lastCall = 13;
        interval = bound(interval, 0, 2 days);
        bytes memory want;
        if (interval > 1 days) {
            want = abi.encodeWithSelector(
                IStorageNFT.OutOfBounds.selector, interval, uint256(0), uint256(1 days)
            );
        }
        bool ok;
        bytes memory got;
        vm.prank(admin);
        try nft.setMinSyncInterval(interval) {
            ok = true;
        } catch (bytes memory r) {
            got = r;
        }
        if (_outcome(ok, got, want, "setMinSyncInterval")) minInterval = interval;
    }

    /// Schedules another Operator (or the current one, or a wallet) with some job and fee.
    function _scheduleOracleConfig(uint256 opSeed, uint256 fee, bytes32 jobId) internal {
        lastCall = 14;
        address op = opSeed % 4 == 3 ? _eoa : _operators[opSeed % 2];
        fee = bound(fee, 0, 12 ether);
        bytes memory want;
        if (op == _eoa) {
            want = abi.encodeWithSelector(IStorageNFT.OperatorNotContract.selector, op);
        } else if (fee > 10 ether) {
            want = abi.encodeWithSelector(IStorageNFT.FeeTooLarge.selector, fee);
        }
        bool ok;
        bytes memory got;
        vm.prank(admin);
        try nft.scheduleOracleConfig(op, jobId, fee) {
            ok = true;
        } catch (bytes memory r) {
            got = r;
        }
        if (!_outcome(ok, got, want, "scheduleOracleConfig")) return;
        (opNext, jobNext, feeNext, nextAt) = (op, jobId, fee, block.timestamp + 2 days);
    }

    function _applyOracleConfig(uint256 callerSeed) internal {
        lastCall = 15;
        bytes memory want;
        if (nextAt == 0) {
            want = abi.encodeWithSelector(IStorageNFT.NoOracleConfigScheduled.selector);
        } else if (block.timestamp < nextAt) {
            want = abi.encodeWithSelector(IStorageNFT.OracleConfigNotReady.selector, nextAt);
        }
        bool ok;
        bytes memory got;
        vm.prank(_users[callerSeed % _users.length]);
        try nft.applyOracleConfig() {
            ok = true;
        } catch (bytes memory r) {
            got = r;
        }
        if (!_outcome(ok, got, want, "applyOracleConfig")) return;
        (opNow, jobNow, feeNow) = (opNext, jobNext, feeNext);
        (opNext, jobNext, feeNext, nextAt) = (address(0), bytes32(0), 0, 0);
    }

    function _updatePlan(uint256 planSeed, uint128 tokenPrice, uint128 nativePrice) internal {
        lastCall = 16;
        uint256 planId = 1 + planSeed % _plans.length;
        // Mostly mintable and renewable: a retired plan stops most of the other calls.
        bool mintable = (planSeed >> 8) % 4 != 0;
        bool renewable = (planSeed >> 16) % 4 != 0;
        tokenPrice = uint128(bound(tokenPrice, 0, 10_000 ether));
        nativePrice = uint128(bound(nativePrice, 0, 1 ether));
        vm.prank(admin);
        nft.updatePlan(planId, tokenPrice, nativePrice, mintable, renewable);
        IStorageNFT.Plan storage p = _plans[planId - 1];
        (p.tokenPrice, p.nativePrice, p.mintable, p.renewable) =
        (tokenPrice, nativePrice, mintable, renewable);
    }

    function _createPlan(uint64 quota, uint32 validity, uint16 credits, uint128 price) internal {
        lastCall = 17;
        if (_plans.length >= 6) return;
        quota = uint64(bound(quota, 1, 1 << 42));
        validity = uint32(bound(validity, 0, 4000 days));
        IStorageNFT.Plan memory p = IStorageNFT.Plan({
            quota: quota,
            validity: validity,
            syncCredits: credits % 50,
            mintable: true,
            renewable: true,
            free: false,
            escrowShareBps: 0,
            tokenPrice: uint128(bound(price, 0, 10_000 ether)),
            nativePrice: uint128(bound(price, 0, 1 ether))
        });
        bytes memory want;
        if (validity > 3650 days) want = abi.encodeWithSelector(IStorageNFT.InvalidPlan.selector);
        bool ok;
        bytes memory got;
        vm.prank(admin);
        try nft.createPlan(p) returns (uint256 planId) {
            ok = true;
            assertEq(planId, _plans.length + 1, "plan id");
        } catch (bytes memory r) {
            got = r;
        }
        if (_outcome(ok, got, want, "createPlan")) _plans.push(p);
    }

    function _setQuotaUnitPrice(uint128 tokenPrice, uint128 nativePrice) internal {
        lastCall = 18;
        tokenPrice = uint128(bound(tokenPrice, 0, 100 ether));
        nativePrice = uint128(bound(nativePrice, 0, 0.01 ether));
        vm.prank(admin);
        nft.setQuotaUnitPrice(tokenPrice, nativePrice);
        (unitToken, unitNative) = (tokenPrice, nativePrice);
    }

    function _withdraw(uint256 amount, bool fees, bool moveTreasury) internal {
        lastCall = 19;
        if (moveTreasury) {
            treasury = treasury == address(this) ? makeAddr("treasury") : address(this);
            vm.prank(admin);
            nft.setTreasury(treasury);
        }
        if (fees) {
            uint256 pxAmount = px.balanceOf(address(nft));
            uint256 native = address(nft).balance;
            uint256 pxBefore = px.balanceOf(treasury);
            uint256 nativeBefore = treasury.balance;
            vm.prank(admin);
            nft.withdrawFees();
            assertEq(px.balanceOf(treasury) - pxBefore, pxAmount, "PX to treasury");
            assertEq(treasury.balance - nativeBefore, native, "coin to treasury");
            pxWithdrawn += pxAmount;
            nativeWithdrawn += native;
        } else {
            amount = bound(amount, 0, nftLink < 1 ether ? nftLink : 1 ether);
            vm.prank(admin);
            nft.withdrawLink(admin, amount);
            nftLink -= amount;
            linkWithdrawn += amount;
        }
    }

    /// A stranger calls an admin function: always refused with the role error.
    function _strangerAdminCall(uint256 which) internal {
        lastCall = 20;
        address s = _users[2];
        bytes memory call;
        which %= 10;
        if (which == 0) call = abi.encodeCall(nft.createPlan, (_plans[0]));
        if (which == 1) call = abi.encodeCall(nft.updatePlan, (1, 0, 0, true, true));
        if (which == 2) call = abi.encodeCall(nft.setSyncWindow, (2 days));
        if (which == 3) call = abi.encodeCall(nft.setMinSyncInterval, (1));
        if (which == 4) call = abi.encodeCall(nft.scheduleOracleConfig, (opNow, jobNow, 1));
        if (which == 5) call = abi.encodeCall(nft.setQuotaUnitPrice, (0, 0));
        if (which == 6) call = abi.encodeCall(nft.setTreasury, (s));
        if (which == 7) call = abi.encodeCall(nft.withdrawFees, ());
        if (which == 8) call = abi.encodeCall(nft.withdrawLink, (s, 1));
        if (which == 9) call = abi.encodeCall(nft.beginDefaultAdminTransfer, (s));
        vm.prank(s);
        (bool ok, bytes memory r) = address(nft).call(call);
        assertFalse(ok, "a stranger used an admin function");
        assertEq(
            r,
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, s, bytes32(0)
            ),
            "role error"
        );
    }

    /// Revokes the registrar role, or grants it back.
    function _toggleRegistrar() internal {
        lastCall = 23;
        bytes32 role = nft.REGISTRAR_ROLE();
        vm.prank(admin);
        if (registrarActive) nft.revokeRole(role, registrar);
        else nft.grantRole(role, registrar);
        registrarActive = !registrarActive;
        assertEq(nft.hasRole(role, registrar), registrarActive, "registrar role");
    }

    /// Moves the default admin between two addresses in two steps with the delay.
    function _adminTransfer() internal {
        lastCall = 21;
        if (pendingAdmin == address(0)) {
            address next = admin == address(this) ? _admin2 : address(this);
            vm.prank(admin);
            nft.beginDefaultAdminTransfer(next);
            (pendingAdmin, adminSchedule) = (next, block.timestamp + 2 days);
            return;
        }
        vm.prank(pendingAdmin);
        try nft.acceptDefaultAdminTransfer() {
            assertGt(block.timestamp, adminSchedule, "accepted before the delay");
            (admin, pendingAdmin, adminSchedule) = (pendingAdmin, address(0), 0);
        } catch (bytes memory r) {
            assertLe(block.timestamp, adminSchedule, "refused after the delay");
            assertEq(
                r,
                abi.encodeWithSelector(
                    IAccessControlDefaultAdminRules.AccessControlEnforcedDefaultAdminDelay.selector,
                    adminSchedule
                )
            );
        }
    }

    /// An admin (or stranger) action: settings, plans, prices, oracle schedule and application,
    /// withdrawals, admin transfer.
    function adminAction(uint256 which, uint256 a, uint256 b, uint256 c) external {
        which %= 12;
        if (which == 0) _setSyncWindow(a);
        if (which == 1) _setMinSyncInterval(a);
        if (which == 2) _scheduleOracleConfig(a, b, bytes32(c));
        if (which == 3) _applyOracleConfig(a);
        if (which == 4) _updatePlan(a, uint128(b), uint128(c));
        if (which == 5) _createPlan(uint64(a), uint32(b), uint16(c), uint128(a >> 64));
        if (which == 6) _setQuotaUnitPrice(uint128(a), uint128(b));
        if (which == 7) _withdraw(a, b % 2 == 0, c % 3 == 0);
        if (which == 8) _strangerAdminCall(a);
        if (which == 9) _adminTransfer();
        if (which == 10) _applyOracleConfig(a); // schedules wait for this; give it weight
        if (which == 11 && (!registrarActive || a % 4 == 0)) _toggleRegistrar();
    }

    function warp(uint256 secs) external {
        lastCall = 22;
        vm.warp(
            block.timestamp + (secs % 3 == 0 ? bound(secs, 1, 10 minutes) : bound(secs, 1, 10 days))
        );
    }

    // -----------------------------------------------------------------------------------------
    // Model helpers
    // -----------------------------------------------------------------------------------------

    /// @dev Checks an outcome against the model: success when `want` is empty, else exactly that
    /// revert. Returns whether the call succeeded.
    function _outcome(bool ok, bytes memory got, bytes memory want, string memory what)
        internal
        returns (bool)
    {
        if (ok) ++okCalls[lastCall];
        else ++refusedCalls[lastCall];
        if (want.length == 0) {
            assertTrue(ok, string.concat(what, ": expected success, got a revert"));
            return true;
        }
        assertFalse(ok, string.concat(what, ": expected a revert, got success"));
        assertEq(got, want, string.concat(what, ": revert reason"));
        return false;
    }

    function _requestError(uint256 id, address caller) internal view returns (bytes memory) {
        Model storage t = _m[id];
        if (pausedAt != 0) return abi.encodeWithSelector(IStorageNFT.EnforcedPause.selector);
        if (!_authorized(caller, id)) {
            return abi.encodeWithSelector(IStorageNFT.NotTokenOwner.selector, id, caller);
        }
        if (t.key == bytes32(0)) return abi.encodeWithSelector(IStorageNFT.NoKey.selector, id);
        if (t.expiresAt != 0 && clock() >= t.expiresAt) {
            return abi.encodeWithSelector(IStorageNFT.TokenExpired.selector, id);
        }
        uint256 balance = nftLink;
        if (t.pending) {
            if (block.timestamp < uint256(t.requestedAt) + 5 minutes) {
                return
                    abi.encodeWithSelector(IStorageNFT.SyncPending.selector, id, _req[id].requestId);
            }
            if (t.operatorHolds) balance += t.reqFee;
        } else {
            uint256 interval = minInterval;
            if (t.expiresAt == 0 && syncWindow / 4 > interval) interval = syncWindow / 4;
            uint256 nextAllowed = uint256(t.requestedAt) + interval;
            if (t.requestedAt != 0 && block.timestamp < nextAllowed) {
                return abi.encodeWithSelector(IStorageNFT.SyncTooSoon.selector, id, nextAllowed);
            }
            if (t.expiresAt != 0 && t.credits == 0) {
                return abi.encodeWithSelector(IStorageNFT.NoSyncCredits.selector, id);
            }
        }
        if (balance < feeNow) {
            return abi.encodeWithSelector(IStorageNFT.InsufficientLink.selector, balance, feeNow);
        }
        return "";
    }

    function _mintError(address user, uint256 planId, uint256 value, uint256 maxPrice)
        internal
        view
        returns (bytes memory)
    {
        if (pausedAt != 0) return abi.encodeWithSelector(IStorageNFT.EnforcedPause.selector);
        if (planId == 0) return abi.encodeWithSelector(IStorageNFT.PlanNotFound.selector, 0);
        IStorageNFT.Plan memory p = _plans[planId - 1];
        if (!p.mintable) {
            return abi.encodeWithSelector(IStorageNFT.PlanNotMintable.selector, planId);
        }
        if (p.free) {
            if (value != 0) {
                return abi.encodeWithSelector(IStorageNFT.WrongPayment.selector, value, 0);
            }
            if (freeClaimed[user]) {
                return abi.encodeWithSelector(IStorageNFT.FreePlanClaimed.selector, user);
            }
            return "";
        }
        return _collectError(p.tokenPrice, p.nativePrice, maxPrice, value);
    }

    function _upgradeError(
        uint256 id,
        address caller,
        uint256 planId,
        uint256 value,
        uint256 maxPrice
    ) internal view returns (bytes memory) {
        Model storage t = _m[id];
        if (pausedAt != 0) return abi.encodeWithSelector(IStorageNFT.EnforcedPause.selector);
        if (!_authorized(caller, id)) {
            return abi.encodeWithSelector(IStorageNFT.NotTokenOwner.selector, id, caller);
        }
        if (planId == 0) return abi.encodeWithSelector(IStorageNFT.PlanNotFound.selector, 0);
        IStorageNFT.Plan memory from = _plans[t.planId - 1];
        IStorageNFT.Plan memory to = _plans[planId - 1];
        if (!to.mintable) {
            return abi.encodeWithSelector(IStorageNFT.PlanNotMintable.selector, planId);
        }
        if (
            to.free || to.quota <= from.quota
                || (from.validity == 0 && !from.free && to.validity != 0)
        ) {
            return abi.encodeWithSelector(IStorageNFT.NotAnUpgrade.selector, t.planId, planId);
        }
        bytes memory err = _collectError(to.tokenPrice, to.nativePrice, maxPrice, value);
        if (err.length != 0) return err;
        if (uint256(t.quota) - from.quota + to.quota > type(uint64).max) {
            return abi.encodeWithSignature("Panic(uint256)", 0x11);
        }
        if (to.validity != 0) {
            uint256 left = t.expiresAt > clock() ? t.expiresAt - clock() : 0;
            uint256 expiresAt = clock() + to.validity + _convert(left, from, to);
            if (expiresAt > clock() + nft.MAX_PREPAID_PERIOD()) {
                return abi.encodeWithSelector(
                    IStorageNFT.PrepaidTooLong.selector,
                    expiresAt,
                    clock() + nft.MAX_PREPAID_PERIOD()
                );
            }
        }
        return "";
    }

    function _collectError(uint256 tokenPrice, uint256 nativePrice, uint256 maxPrice, uint256 value)
        internal
        pure
        returns (bytes memory)
    {
        if (value != 0) {
            if (nativePrice == 0 || value != nativePrice) {
                return abi.encodeWithSelector(IStorageNFT.WrongPayment.selector, value, nativePrice);
            }
            return "";
        }
        if (tokenPrice != 0) {
            if (tokenPrice > maxPrice) {
                return
                    abi.encodeWithSelector(IStorageNFT.PriceAboveMax.selector, tokenPrice, maxPrice);
            }
            return "";
        }
        if (nativePrice != 0) {
            return abi.encodeWithSelector(IStorageNFT.WrongPayment.selector, 0, nativePrice);
        }
        return abi.encodeWithSelector(IStorageNFT.NotForSale.selector);
    }

    /// @dev A payment for `planId`: mostly right (coin at the price, or PXToken up to the price
    /// or without a limit), now and then wrong (coin off by one, a maximum below the price).
    function _payment(uint256 planId, uint256 seed)
        internal
        view
        returns (uint256 value, uint256 maxPrice)
    {
        if (planId == 0 || planId > _plans.length) return (0, type(uint256).max);
        IStorageNFT.Plan memory p = _plans[planId - 1];
        uint256 mode = seed % 16;
        if (mode == 0) return (p.nativePrice + 1, 0);
        if (mode == 1) return (0, p.tokenPrice == 0 ? 0 : p.tokenPrice - 1);
        if (mode < 6 && p.nativePrice != 0) return (p.nativePrice, 0);
        if (mode < 11) return (0, p.tokenPrice);
        return (0, type(uint256).max);
    }

    function _convert(uint256 left, IStorageNFT.Plan memory from, IStorageNFT.Plan memory to)
        internal
        pure
        returns (uint256)
    {
        if (left == 0) return 0;
        if (from.tokenPrice != 0 && to.tokenPrice != 0) {
            return left * from.tokenPrice * to.validity / (uint256(from.validity) * to.tokenPrice);
        }
        if (from.nativePrice != 0 && to.nativePrice != 0) {
            return left * from.nativePrice * to.validity / (uint256(from.validity) * to.nativePrice);
        }
        return left * from.quota / to.quota;
    }

    /// @dev The model's side of giving up a pending request (refund if the Operator holds it).
    function _giveUp(uint256 id) internal {
        Model storage t = _m[id];
        if (t.operatorHolds) {
            nftLink += t.reqFee;
            opLink[t.reqOperator] -= t.reqFee;
        }
        t.pending = false;
        t.operatorHolds = false;
    }

    /// @dev A token with a key if there is one (searching from `seed`), else any token.
    function _pickKeyed(uint256 seed) internal view returns (uint256) {
        for (uint256 i; i < tokens.length; ++i) {
            uint256 id = tokens[(seed % tokens.length + i) % tokens.length];
            if (_m[id].key != bytes32(0)) return id;
        }
        return tokens[seed % tokens.length];
    }

    /// @dev A token without a key if there is one (searching from `seed`), else any token.
    function _pickKeyless(uint256 seed) internal view returns (uint256) {
        for (uint256 i; i < tokens.length; ++i) {
            uint256 id = tokens[(seed % tokens.length + i) % tokens.length];
            if (_m[id].key == bytes32(0)) return id;
        }
        return tokens[seed % tokens.length];
    }

    /// @dev The plan with the next larger quota than `planId`'s (`otherwise` if none).
    function _nextLarger(uint256 planId, uint256 otherwise) internal view returns (uint256 next) {
        uint64 quota = _plans[planId - 1].quota;
        uint64 best = type(uint64).max;
        next = otherwise;
        for (uint256 i; i < _plans.length; ++i) {
            if (_plans[i].quota > quota && _plans[i].quota < best && !_plans[i].free) {
                (best, next) = (_plans[i].quota, i + 1);
            }
        }
    }

    /// @dev A token whose pending request its Operator still holds (0: none).
    function _pickAnswerable(uint256 seed) internal view returns (uint256) {
        for (uint256 i; i < tokens.length; ++i) {
            uint256 id = tokens[(seed % tokens.length + i) % tokens.length];
            if (_m[id].pending && _m[id].operatorHolds) return id;
        }
        return 0;
    }

    function _bind(uint256 id, bytes32 key) internal {
        _m[id].key = key;
        keyToken[key] = id;
    }

    function _authorized(address caller, uint256 id) internal view returns (bool) {
        address owner = nft.ownerOf(id);
        return
            caller == owner || nft.isApprovedForAll(owner, caller) || nft.getApproved(id) == caller;
    }

    /// @dev A user who is neither the token's owner nor approved for it.
    function _stranger(uint256 id) internal view returns (address) {
        for (uint256 i; i < _users.length; ++i) {
            if (!_authorized(_users[i], id)) return _users[i];
        }
        return _nobody;
    }

    function _plus(uint32 a, uint256 b) internal pure returns (uint32) {
        uint256 sum = a + b;
        return sum > type(uint32).max ? type(uint32).max : uint32(sum);
    }

    function _permitSig(address user, uint256 value)
        internal
        view
        returns (uint8 v, bytes32 r, bytes32 s)
    {
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"
                ),
                user,
                address(nft),
                value,
                px.nonces(user),
                block.timestamp
            )
        );
        (v, r, s) = vm.sign(
            _userKeys[user],
            keccak256(abi.encodePacked("\x19\x01", px.DOMAIN_SEPARATOR(), structHash))
        );
    }
}

contract StorageNFTInvariantTest is StdInvariant, Deployers {
    StorageNFTHandler internal handler;

    function setUp() public override {
        handler = new StorageNFTHandler();
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](13);
        selectors[0] = StorageNFTHandler.mint.selector;
        selectors[1] = StorageNFTHandler.transfer.selector;
        selectors[2] = StorageNFTHandler.buyQuota.selector;
        selectors[3] = StorageNFTHandler.renew.selector;
        selectors[4] = StorageNFTHandler.upgradePlan.selector;
        selectors[5] = StorageNFTHandler.registerKey.selector;
        selectors[6] = StorageNFTHandler.rebindKey.selector;
        selectors[7] = StorageNFTHandler.requestSync.selector;
        selectors[8] = StorageNFTHandler.fulfill.selector;
        selectors[9] = StorageNFTHandler.holderWritesUsage.selector;
        selectors[10] = StorageNFTHandler.pause.selector;
        selectors[11] = StorageNFTHandler.adminAction.selector;
        selectors[12] = StorageNFTHandler.warp.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// After every call the contract's state is the model's. One campaign checks every property
    /// (a failure names the property in its message).
    function invariant_stateMatchesModel() public view {
        _usageOnlyFromAcceptedAnswers();
        _gateMatchesModel();
        _purchasesAsPaid();
        _pendingRequestsMatch();
        _keysBindOneToOne();
        _linkAddsUp();
        _feesAddUp();
        _settingsAsSet();
    }

    function _nft() internal view returns (IStorageNFT) {
        return IStorageNFT(handler.deployment().storageNFT);
    }

    /// Usage, file count, sequence and sync time change only through accepted answers: they
    /// equal the model's, with times reported as wall-clock equivalents of the service clock.
    function _usageOnlyFromAcceptedAnswers() internal view {
        IStorageNFT n = _nft();
        uint256 shift = block.timestamp - handler.clock();
        uint256 count = handler.tokenCount();
        for (uint256 i; i < count; ++i) {
            uint256 id = handler.tokens(i);
            IStorageNFT.TokenInfo memory t = n.tokenInfo(id);
            StorageNFTHandler.Model memory m = handler.model(id);
            assertEq(t.used, m.used, "used");
            assertEq(t.fileCount, m.fileCount, "fileCount");
            assertEq(t.seq, m.seq, "seq");
            assertEq(t.lastSyncAt, m.lastSyncAt + shift, "lastSyncAt");
            assertEq(t.lastStatus, m.lastStatus, "lastStatus");
        }
    }

    /// Purchases: quota, plan, expiry and credits are what was paid for.
    function _purchasesAsPaid() internal view {
        IStorageNFT n = _nft();
        uint256 shift = block.timestamp - handler.clock();
        uint256 count = handler.tokenCount();
        for (uint256 i; i < count; ++i) {
            uint256 id = handler.tokens(i);
            IStorageNFT.TokenInfo memory t = n.tokenInfo(id);
            StorageNFTHandler.Model memory m = handler.model(id);
            assertEq(t.quota, m.quota, "quota");
            assertEq(t.planId, m.planId, "planId");
            assertEq(t.expiresAt, m.expiresAt == 0 ? 0 : m.expiresAt + shift, "expiresAt");
            assertEq(t.syncCredits, m.credits, "credits");
        }
    }

    /// At most one pending request per token; the model agrees on it and on when it was sent.
    function _pendingRequestsMatch() internal view {
        IStorageNFT n = _nft();
        uint256 count = handler.tokenCount();
        for (uint256 i; i < count; ++i) {
            uint256 id = handler.tokens(i);
            IStorageNFT.TokenInfo memory t = n.tokenInfo(id);
            StorageNFTHandler.Model memory m = handler.model(id);
            assertEq(t.pending, m.pending, "pending");
            assertEq(t.requestedAt, m.requestedAt, "requestedAt");
        }
    }

    /// The gate answers what the model says for every token, for no bytes, a GiB and any size:
    /// paused, expired, no key, out of the sync window, over quota, or open.
    function _gateMatchesModel() internal view {
        IStorageNFT n = _nft();
        uint256 count = handler.tokenCount();
        uint256 clock = handler.clock();
        uint256[3] memory sizes = [uint256(0), 1 << 30, type(uint256).max];
        for (uint256 i; i < count; ++i) {
            uint256 id = handler.tokens(i);
            StorageNFTHandler.Model memory m = handler.model(id);
            for (uint256 j; j < sizes.length; ++j) {
                IStorageNFT.Reason want = IStorageNFT.Reason.None;
                if (handler.pausedAt() != 0) {
                    want = IStorageNFT.Reason.Paused;
                } else if (m.expiresAt != 0 && clock >= m.expiresAt) {
                    want = IStorageNFT.Reason.Expired;
                } else if (m.key == bytes32(0)) {
                    want = IStorageNFT.Reason.NoKey;
                } else if (clock > uint256(m.lastSyncAt) + handler.syncWindow()) {
                    want = IStorageNFT.Reason.NotSynced;
                } else if (m.used > m.quota || sizes[j] > m.quota - m.used) {
                    want = IStorageNFT.Reason.QuotaExceeded;
                }
                (bool ok, IStorageNFT.Reason reason) = n.canUpload(id, sizes[j]);
                assertEq(uint8(reason), uint8(want), "gate reason");
                assertEq(ok, want == IStorageNFT.Reason.None, "gate");
            }
            assertEq(n.ipnsName(id), m.key == bytes32(0) ? bytes("") : nameOf(m.key), "name");
        }
        address[] memory us = handler.users();
        for (uint256 i; i < us.length; ++i) {
            assertEq(n.freePlanClaimed(us[i]), handler.freeClaimed(us[i]), "free plan claimed");
        }
    }

    /// Keys: each token's key maps back to it, and only bound keys map to tokens.
    function _keysBindOneToOne() internal view {
        IStorageNFT n = _nft();
        uint256 count = handler.tokenCount();
        for (uint256 i; i < count; ++i) {
            uint256 id = handler.tokens(i);
            bytes32 key = handler.model(id).key;
            assertEq(n.tokenInfo(id).ipnsKey, key, "key");
            if (key != bytes32(0)) assertEq(n.tokenOfKey(key), id, "key -> token");
        }
        for (uint256 k = 1; k <= 16; ++k) {
            bytes32 key = keyOf(k);
            assertEq(n.tokenOfKey(key), handler.keyToken(key), "released keys map to nothing");
        }
    }

    /// LINK: the contract holds exactly the funding minus fees sent, plus refunds, minus
    /// withdrawals; each Operator holds exactly the fees it kept.
    function _linkAddsUp() internal view {
        Deployment memory dep = handler.deployment();
        address[2] memory ops = handler.operators();
        assertEq(ILink(dep.link).balanceOf(dep.storageNFT), handler.nftLink(), "nft LINK");
        uint256 held;
        for (uint256 i; i < 2; ++i) {
            uint256 b = ILink(dep.link).balanceOf(ops[i]);
            assertEq(b, handler.opLink(ops[i]), "operator LINK");
            held += b;
        }
        assertEq(
            handler.nftLink() + held + handler.linkWithdrawn(), DEVNET_LINK_FUNDING, "LINK total"
        );
    }

    /// Fees: the contract holds exactly what was paid and not withdrawn.
    function _feesAddUp() internal view {
        Deployment memory dep = handler.deployment();
        assertEq(
            ILink(dep.pxToken).balanceOf(dep.storageNFT),
            handler.pxPaid() - handler.pxWithdrawn(),
            "PX fees"
        );
        assertEq(
            dep.storageNFT.balance, handler.nativePaid() - handler.nativeWithdrawn(), "native fees"
        );
    }

    /// Settings are what the admin set, within bounds; the oracle in effect changed only after
    /// the delay (the handler's model applies a schedule only once `applyOracleConfig` succeeds,
    /// which it checks against the delay).
    function _settingsAsSet() internal view {
        IStorageNFT n = _nft();
        assertEq(n.syncWindow(), handler.syncWindow(), "sync window");
        assertEq(n.minSyncInterval(), handler.minInterval(), "min interval");
        assertEq(n.paused(), handler.pausedAt() != 0, "paused");
        IStorageNFTHarness h = IStorageNFTHarness(address(n));
        (uint128 unitToken, uint128 unitNative) = h.quotaUnitPrice();
        assertEq(unitToken, handler.unitToken(), "unit PX price");
        assertEq(unitNative, handler.unitNative(), "unit coin price");
        assertEq(h.treasury(), handler.treasury(), "treasury");
        assertEq(h.defaultAdmin(), handler.admin(), "admin");
        (address pending,) = h.pendingDefaultAdmin();
        assertEq(pending, handler.pendingAdmin(), "pending admin");
        (address op, bytes32 job, uint256 fee) = n.oracleConfig();
        assertEq(op, handler.opNow(), "operator");
        assertEq(job, handler.jobNow(), "job");
        assertEq(fee, handler.feeNow(), "fee");
        (address nextOp, bytes32 nextJob, uint256 nextFee, uint256 at) = n.pendingOracleConfig();
        assertEq(nextOp, handler.opNext(), "next operator");
        assertEq(nextJob, handler.jobNext(), "next job");
        assertEq(nextFee, handler.feeNext(), "next fee");
        assertEq(at, handler.nextAt(), "effective at");
        IStorageNFT.Plan[] memory ps = handler.plans();
        assertEq(n.planCount(), ps.length, "plan count");
        for (uint256 i; i < ps.length; ++i) {
            IStorageNFT.Plan memory p = n.plan(i + 1);
            assertEq(keccak256(abi.encode(p)), keccak256(abi.encode(ps[i])), "plan");
        }
    }
}
