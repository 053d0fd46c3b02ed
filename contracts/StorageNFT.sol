// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {
    AccessControlDefaultAdminRules
} from "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {IERC4906} from "@openzeppelin/contracts/interfaces/IERC4906.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {
    OperatorInterface
} from "@chainlink/contracts/src/v0.8/operatorforwarder/interfaces/OperatorInterface.sol";
import {
    LinkTokenInterface
} from "@chainlink/contracts/src/v0.8/shared/interfaces/LinkTokenInterface.sol";

import {IStorageNFT} from "./interfaces/IStorageNFT.sol";
import {ITokenRenderer} from "./interfaces/ITokenRenderer.sol";
import {IpnsName} from "./libraries/IpnsName.sol";
import {MarketRef, Purchases, SyncState, TokenState} from "./libraries/Purchases.sol";
import {SyncRequest} from "./libraries/SyncRequest.sol";
import {SyncStatus} from "./libraries/SyncStatus.sol";

/// @title StorageNFT
/// @notice ERC-721 storage tokens with a byte quota and an IPNS name; usage is synced from the
/// token's IPNS-published usage record by a Chainlink direct request through the Operator.
/// @dev Trust: usage, file count, sequence and sync time change only in `fulfillSync`, which
/// only the Operator a request was sent to can call, once per request; the token is taken from
/// the request, never from the answer. No function lets a holder touch them. Who else can
/// change usage: the admin, by scheduling another Operator (effective `ORACLE_CONFIG_DELAY`
/// later); the Operator's owner and its authorized senders, for requests sent to it.
contract StorageNFT is IStorageNFT, IERC4906, ERC721, AccessControlDefaultAdminRules, EIP712 {
    using SafeERC20 for IERC20;

    /// @notice Role of storage nodes' keys: signs key assignments and binds keys.
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");
    /// @notice Role that can pause and unpause.
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    /// @notice Bytes in one unit of extra quota (1 GiB).
    uint256 public constant QUOTA_UNIT = Purchases.QUOTA_UNIT;
    /// @notice Seconds after which the Operator lets a requester cancel (Operator.EXPIRYTIME).
    uint256 public constant REQUEST_EXPIRY = 5 minutes;
    /// @notice Default sync window: uploads close 30 days after the last sync.
    uint256 public constant DEFAULT_SYNC_WINDOW = 30 days;
    /// @notice Smallest sync window the admin can set.
    uint256 public constant MIN_SYNC_WINDOW = 1 days;
    /// @notice Largest sync window the admin can set.
    uint256 public constant MAX_SYNC_WINDOW = 365 days;
    /// @notice Largest minimum interval between two requests the admin can set.
    uint256 public constant MAX_MIN_SYNC_INTERVAL = 1 days;
    /// @notice Requests per sync window a token without expiry (free, lifetime) may send.
    uint256 public constant FREE_SYNCS_PER_WINDOW = 4;
    /// @notice Longest time ahead a token can be paid for (and longest plan validity).
    uint256 public constant MAX_PREPAID_PERIOD = Purchases.MAX_PREPAID_PERIOD;
    /// @notice Largest LINK fee per request the admin can set.
    uint256 public constant MAX_LINK_FEE = 10 ether;
    /// @notice Delay between scheduling an oracle configuration and its earliest effect.
    uint256 public constant ORACLE_CONFIG_DELAY = 2 days;
    /// @notice Largest share of a plan's price routed into a token's market escrow (50%).
    uint256 public constant MAX_ESCROW_SHARE_BPS = Purchases.MAX_ESCROW_SHARE_BPS;
    /// @notice Initial delay of a default admin transfer (AccessControlDefaultAdminRules).
    uint48 public constant INITIAL_ADMIN_DELAY = 2 days;

    uint256 private constant _OPERATOR_ARGS_VERSION = 2;
    bytes32 private constant _KEY_ASSIGNMENT_TYPEHASH =
        keccak256("KeyAssignment(address minter,bytes ipnsName,uint256 deadline)");
    bytes32 private constant _KEY_REBINDING_TYPEHASH = keccak256(
        "KeyRebinding(uint256 tokenId,bytes32 currentKey,bytes ipnsName,uint256 deadline)"
    );

    /// @dev A request waiting for its answer: who may answer it and for which token. Fits one
    /// slot (160+96).
    struct Request {
        address operator;
        uint96 tokenId;
    }

    /// @dev Operator and fee of an oracle configuration. Fits one slot (160+64).
    struct OracleConfig {
        address operator;
        uint64 fee;
    }

    /// @dev Global state the hot paths read. `pausedAt` is the wall time of the pause (0: not
    /// paused), `pausedTotal` the seconds spent paused before it. Fits one slot (64+40+40+32+32).
    struct Globals {
        uint64 nextTokenId;
        uint40 pausedAt;
        uint40 pausedTotal;
        uint32 syncWindow;
        uint32 minSyncInterval;
    }

    IERC20 private immutable _pxToken;
    ITokenRenderer private immutable _renderer;
    LinkTokenInterface private immutable _link;

    Globals private _globals;
    OracleConfig private _oracle;
    bytes32 private _jobId;
    OracleConfig private _nextOracle;
    bytes32 private _nextJobId;
    uint256 private _nextOracleAt;
    address private _treasury;
    uint128 private _unitTokenPrice;
    uint128 private _unitNativePrice;

    Plan[] private _plans;
    mapping(uint256 tokenId => TokenState) private _tokens;
    mapping(uint256 tokenId => SyncState) private _syncs;
    mapping(bytes32 requestId => Request) private _requests;
    mapping(uint256 tokenId => bytes32 ipnsKey) private _keys;
    mapping(bytes32 ipnsKey => uint256 tokenId) private _keyTokens;
    mapping(address account => bool) private _freeClaimed;
    MarketRef private _market;

    /// @param admin Receives the default admin (transferable in two steps after
    /// `INITIAL_ADMIN_DELAY`) and pauser roles.
    /// @param pxToken_ PXToken that plans are priced in.
    /// @param link LINK token used to pay the oracle.
    /// @param operator Chainlink Operator that requests go to (a contract).
    /// @param jobId Chainlink job (spec) id of the sync job.
    /// @param fee LINK paid per sync request (at most `MAX_LINK_FEE`).
    /// @param minSyncInterval_ Minimum seconds between two requests for one token.
    /// @param renderer Builds `tokenURI` from the token's state.
    constructor(
        address admin,
        IERC20 pxToken_,
        address link,
        address operator,
        bytes32 jobId,
        uint256 fee,
        uint256 minSyncInterval_,
        ITokenRenderer renderer
    )
        ERC721("PX Storage", "PXS")
        AccessControlDefaultAdminRules(INITIAL_ADMIN_DELAY, admin)
        EIP712("PX StorageNFT", "1")
    {
        if (
            address(pxToken_) == address(0) || link == address(0) || address(renderer) == address(0)
        ) {
            revert ZeroAddress();
        }
        _grantRole(PAUSER_ROLE, admin);
        _pxToken = pxToken_;
        _renderer = renderer;
        _link = LinkTokenInterface(link);
        _treasury = admin;
        _checkOracle(operator, fee);
        _setOracle(operator, jobId, fee);
        _checkBounds(minSyncInterval_, 0, MAX_MIN_SYNC_INTERVAL);
        // casting is safe: both are at most a year of seconds (checked and constant)
        // forge-lint: disable-next-line(unsafe-typecast)
        _globals = Globals(1, 0, 0, uint32(DEFAULT_SYNC_WINDOW), uint32(minSyncInterval_));
    }

    // ------------------------------------------------------------------------------------------
    // Minting and plans
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IStorageNFT
    function mint(uint256 planId, uint256 maxTokenPrice)
        external
        payable
        returns (uint256 tokenId)
    {
        tokenId = _mintPlan(planId, maxTokenPrice);
    }

    /// @inheritdoc IStorageNFT
    function mintWithPermit(
        uint256 planId,
        uint256 maxTokenPrice,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external returns (uint256 tokenId) {
        _permit(maxTokenPrice, deadline, v, r, s);
        tokenId = _mintPlan(planId, maxTokenPrice);
    }

    /// @inheritdoc IStorageNFT
    function mintWithKey(
        uint256 planId,
        uint256 maxTokenPrice,
        bytes calldata ipnsName_,
        uint256 deadline,
        bytes calldata signature
    ) external payable returns (uint256 tokenId) {
        if (block.timestamp > deadline) revert AssignmentExpired(deadline);
        address signer =
            ECDSA.recover(keyAssignmentDigest(msg.sender, ipnsName_, deadline), signature);
        if (!hasRole(REGISTRAR_ROLE, signer)) revert InvalidAssignment(signer);
        tokenId = _mintPlan(planId, maxTokenPrice);
        _bindKey(tokenId, ipnsName_, signer);
    }

    /// @inheritdoc IStorageNFT
    function registerKey(uint256 tokenId, bytes calldata ipnsName_)
        external
        onlyRole(REGISTRAR_ROLE)
    {
        _requireOwned(tokenId);
        if (_keys[tokenId] != bytes32(0)) revert KeyAlreadySet(tokenId);
        _bindKey(tokenId, ipnsName_, msg.sender);
    }

    /// @inheritdoc IStorageNFT
    function rebindKey(
        uint256 tokenId,
        bytes calldata ipnsName_,
        uint256 deadline,
        bytes calldata signature
    ) external {
        _requireNotPaused();
        _requireAuthorized(tokenId);
        if (block.timestamp > deadline) revert AssignmentExpired(deadline);
        address signer = ECDSA.recover(keyRebindingDigest(tokenId, ipnsName_, deadline), signature);
        if (!hasRole(REGISTRAR_ROLE, signer)) revert InvalidAssignment(signer);

        SyncState memory s = _syncs[tokenId];
        Cancellation memory c = Cancellation(address(0), 0, 0, 0);
        if (s.pending) {
            c = _giveUp(tokenId, s);
            // The request went unanswered: its credit comes back.
            _syncs[tokenId] = s;
            if (_tokens[tokenId].expiresAt != 0) Purchases.addCredits(_syncs[tokenId], 1);
        }
        bytes32 oldKey = _keys[tokenId];
        if (oldKey != bytes32(0)) {
            delete _keyTokens[oldKey];
            emit KeyReleased(tokenId, oldKey);
        }
        _bindKey(tokenId, ipnsName_, signer);
        _cancelAtOperator(c);
    }

    /// @inheritdoc IStorageNFT
    function upgradePlan(uint256 tokenId, uint256 planId, uint256 maxTokenPrice) external payable {
        uint256 now_ = _runningNow();
        _requireAuthorized(tokenId);
        Purchases.upgrade(_tokens, _syncs, _plans, tokenId, planId, now_, _pxToken, maxTokenPrice);
    }

    /// @inheritdoc IStorageNFT
    function renew(uint256 tokenId, uint256 maxTokenPrice) external payable {
        uint256 now_ = _runningNow();
        _requireOwned(tokenId);
        Purchases.renew(
            _tokens,
            _syncs,
            _plans,
            tokenId,
            now_,
            block.timestamp - now_,
            _pxToken,
            maxTokenPrice,
            _market
        );
    }

    /// @inheritdoc IStorageNFT
    function buyQuota(uint256 tokenId, uint256 units, uint256 maxTokenPrice) external payable {
        _requireNotPaused();
        _requireOwned(tokenId);
        Purchases.buyQuota(
            _tokens[tokenId],
            tokenId,
            units,
            _unitTokenPrice,
            _unitNativePrice,
            _pxToken,
            maxTokenPrice
        );
    }

    // ------------------------------------------------------------------------------------------
    // Sync
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IStorageNFT
    function requestSync(uint256 tokenId) external returns (bytes32 requestId) {
        Globals memory g = _globals;
        if (g.pausedAt != 0) revert EnforcedPause();
        _requireAuthorized(tokenId);
        if (_keys[tokenId] == bytes32(0)) revert NoKey(tokenId);
        uint256 expiresAt = _tokens[tokenId].expiresAt;
        if (expiresAt != 0 && block.timestamp - g.pausedTotal >= expiresAt) {
            revert TokenExpired(tokenId);
        }

        SyncState memory s = _syncs[tokenId];
        Cancellation memory c = Cancellation(address(0), 0, 0, 0);
        if (s.pending) {
            // An unanswered request past its expiry is replaced free of charge.
            c = _giveUp(tokenId, s);
        } else {
            uint256 interval = g.minSyncInterval;
            if (expiresAt == 0) {
                uint256 freeInterval = uint256(g.syncWindow) / FREE_SYNCS_PER_WINDOW;
                if (freeInterval > interval) interval = freeInterval;
            }
            uint256 nextAt = uint256(s.requestedAt) + interval;
            if (s.requestedAt != 0 && block.timestamp < nextAt) {
                revert SyncTooSoon(tokenId, nextAt);
            }
            if (expiresAt != 0) {
                if (s.syncCredits == 0) revert NoSyncCredits(tokenId);
                --s.syncCredits;
            }
        }

        OracleConfig memory o = _oracle;
        ++s.requests;
        // casting is safe: block.timestamp fits 40 bits until the year 36812
        // forge-lint: disable-next-line(unsafe-typecast)
        s.requestedAt = uint40(block.timestamp);
        s.fee = o.fee;
        s.pending = true;
        _syncs[tokenId] = s;
        uint256 nonce = SyncRequest.nonce(tokenId, s.requests);
        requestId = SyncRequest.id(address(this), nonce);
        // casting is safe: token ids are sequential from 1 and fit 64 bits
        // forge-lint: disable-next-line(unsafe-typecast)
        _requests[requestId] = Request(o.operator, uint96(tokenId));
        emit SyncRequested(tokenId, requestId, msg.sender);

        _cancelAtOperator(c);
        _sendRequest(o, tokenId, nonce);
    }

    /// @inheritdoc IStorageNFT
    function fulfillSync(
        bytes32 requestId,
        uint256 tokenId,
        uint8 status,
        uint64 used,
        uint32 fileCount,
        uint64 seq,
        bytes calldata recordCid
    ) external {
        Request memory r = _requests[requestId];
        if (msg.sender != r.operator) revert NotRequestOperator(requestId, msg.sender);
        delete _requests[requestId];
        // From here on nothing reverts: the answer closes the request whatever it says.
        uint256 id = r.tokenId;
        SyncState memory s = _syncs[id];
        if (tokenId != id) {
            status = SyncStatus.WRONG_TOKEN;
        } else if (status == SyncStatus.OK) {
            if (recordCid.length == 0) status = SyncStatus.MALFORMED_ANSWER;
            else if (seq <= s.seq) status = SyncStatus.STALE_SEQUENCE;
        }
        s.pending = false;
        s.lastStatus = status;
        if (status != SyncStatus.OK) {
            _syncs[id] = s;
            emit SyncFailed(id, requestId, status);
            return;
        }
        s.seq = seq;
        _syncs[id] = s;
        TokenState storage t = _tokens[id];
        t.used = used;
        t.fileCount = fileCount;
        // casting is safe: service time <= block.timestamp fits 40 bits until the year 36812
        // forge-lint: disable-next-line(unsafe-typecast)
        t.lastSyncAt = uint40(_clockNow(_globals));
        emit Synced(id, requestId, used, fileCount, seq, recordCid);
        emit MetadataUpdate(id);
    }

    // ------------------------------------------------------------------------------------------
    // Gate and views
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IStorageNFT
    function canUpload(uint256 tokenId, uint256 size)
        external
        view
        returns (bool ok, Reason reason)
    {
        Globals memory g = _globals;
        if (g.pausedAt != 0) return (false, Reason.Paused);
        if (_ownerOf(tokenId) == address(0)) return (false, Reason.NoToken);
        TokenState memory t = _tokens[tokenId];
        uint256 now_ = block.timestamp - g.pausedTotal;
        if (t.expiresAt != 0 && now_ >= t.expiresAt) return (false, Reason.Expired);
        if (_keys[tokenId] == bytes32(0)) return (false, Reason.NoKey);
        if (now_ > uint256(t.lastSyncAt) + g.syncWindow) return (false, Reason.NotSynced);
        if (t.used > t.quota || size > t.quota - t.used) return (false, Reason.QuotaExceeded);
        return (true, Reason.None);
    }

    /// @inheritdoc IStorageNFT
    function tokenInfo(uint256 tokenId) public view returns (TokenInfo memory info) {
        _requireOwned(tokenId);
        TokenState memory t = _tokens[tokenId];
        SyncState memory s = _syncs[tokenId];
        // Stored times are on the service clock; report their wall-clock equivalents.
        // casting is safe: the shift is the time spent paused, far below 40 bits
        // forge-lint: disable-next-line(unsafe-typecast)
        uint40 shift = uint40(block.timestamp - _clockNow(_globals));
        info = TokenInfo({
            quota: t.quota,
            used: t.used,
            fileCount: t.fileCount,
            planId: t.planId,
            expiresAt: t.expiresAt == 0 ? 0 : t.expiresAt + shift,
            lastSyncAt: t.lastSyncAt + shift,
            seq: s.seq,
            pending: s.pending,
            requestedAt: s.requestedAt,
            lastStatus: s.lastStatus,
            ipnsKey: _keys[tokenId],
            syncCredits: s.syncCredits
        });
    }

    /// @inheritdoc IStorageNFT
    function ipnsName(uint256 tokenId) external view returns (bytes memory) {
        _requireOwned(tokenId);
        bytes32 key = _keys[tokenId];
        return key == bytes32(0) ? bytes("") : IpnsName.toName(key);
    }

    /// @inheritdoc IStorageNFT
    function tokenOfKey(bytes32 ipnsKey) external view returns (uint256) {
        return _keyTokens[ipnsKey];
    }

    /// @inheritdoc IStorageNFT
    function plan(uint256 planId) external view returns (Plan memory) {
        return _planOf(planId);
    }

    /// @inheritdoc IStorageNFT
    function planCount() external view returns (uint256) {
        return _plans.length;
    }

    /// @inheritdoc IStorageNFT
    function freePlanClaimed(address account) external view returns (bool) {
        return _freeClaimed[account];
    }

    /// @inheritdoc IStorageNFT
    function syncWindow() external view returns (uint256) {
        return _globals.syncWindow;
    }

    /// @inheritdoc IStorageNFT
    function minSyncInterval() external view returns (uint256) {
        return _globals.minSyncInterval;
    }

    /// @inheritdoc IStorageNFT
    function oracleConfig() external view returns (address operator, bytes32 jobId, uint256 fee) {
        return (_oracle.operator, _jobId, _oracle.fee);
    }

    /// @inheritdoc IStorageNFT
    function pendingOracleConfig()
        external
        view
        returns (address operator, bytes32 jobId, uint256 fee, uint256 effectiveAt)
    {
        return (_nextOracle.operator, _nextJobId, _nextOracle.fee, _nextOracleAt);
    }

    /// @inheritdoc IStorageNFT
    function paused() external view returns (bool) {
        return _globals.pausedAt != 0;
    }

    /// @notice The PXToken plans are priced in.
    /// @return token The PXToken.
    function pxToken() external view returns (IERC20 token) {
        return _pxToken;
    }

    /// @notice The treasury fees are withdrawn to.
    /// @return treasury_ The treasury.
    function treasury() external view returns (address treasury_) {
        return _treasury;
    }

    /// @notice Price of one extra quota unit in PXToken and in native coin.
    /// @return tokenPrice The PXToken price.
    /// @return nativePrice The native price.
    function quotaUnitPrice() external view returns (uint128 tokenPrice, uint128 nativePrice) {
        return (_unitTokenPrice, _unitNativePrice);
    }

    /// @inheritdoc IStorageNFT
    function keyAssignmentDigest(address minter, bytes calldata ipnsName_, uint256 deadline)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(abi.encode(_KEY_ASSIGNMENT_TYPEHASH, minter, keccak256(ipnsName_), deadline))
        );
    }

    /// @inheritdoc IStorageNFT
    function keyRebindingDigest(uint256 tokenId, bytes calldata ipnsName_, uint256 deadline)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    _KEY_REBINDING_TYPEHASH, tokenId, _keys[tokenId], keccak256(ipnsName_), deadline
                )
            )
        );
    }

    /// @notice Metadata computed on the fly by the renderer: nothing is stored.
    /// @param tokenId The token.
    /// @return uri A `data:application/json;base64,...` URI.
    function tokenURI(uint256 tokenId) public view override returns (string memory uri) {
        return _renderer.tokenURI(tokenId, tokenInfo(tokenId));
    }

    /// @notice ERC-165: ERC-721, ERC-4906, AccessControl, AccessControlDefaultAdminRules.
    /// @param interfaceId The interface.
    /// @return supported Whether it is supported.
    function supportsInterface(bytes4 interfaceId)
        public
        view
        override(IERC165, ERC721, AccessControlDefaultAdminRules)
        returns (bool supported)
    {
        return interfaceId == bytes4(0x49064906) || super.supportsInterface(interfaceId);
    }

    // ------------------------------------------------------------------------------------------
    // Administration
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IStorageNFT
    function createPlan(Plan calldata p)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
        returns (uint256 planId)
    {
        if (
            p.quota == 0 || p.validity > MAX_PREPAID_PERIOD || (p.free && p.validity != 0)
                || p.escrowShareBps > MAX_ESCROW_SHARE_BPS || _plans.length >= type(uint16).max
        ) {
            revert InvalidPlan();
        }
        _plans.push(p);
        planId = _plans.length;
        emit PlanCreated(planId, p);
    }

    /// @inheritdoc IStorageNFT
    function updatePlan(
        uint256 planId,
        uint128 tokenPrice,
        uint128 nativePrice,
        bool mintable,
        bool renewable
    ) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _planOf(planId);
        Plan storage p = _plans[planId - 1];
        p.tokenPrice = tokenPrice;
        p.nativePrice = nativePrice;
        p.mintable = mintable;
        p.renewable = renewable;
        emit PlanUpdated(planId, tokenPrice, nativePrice, mintable, renewable);
    }

    /// @inheritdoc IStorageNFT
    function setSyncWindow(uint256 syncWindow_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _checkBounds(syncWindow_, MIN_SYNC_WINDOW, MAX_SYNC_WINDOW);
        // casting is safe: bounded by MAX_SYNC_WINDOW on the line above
        // forge-lint: disable-next-line(unsafe-typecast)
        _globals.syncWindow = uint32(syncWindow_);
        emit SyncWindowSet(syncWindow_);
    }

    /// @inheritdoc IStorageNFT
    function setMinSyncInterval(uint256 minSyncInterval_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _checkBounds(minSyncInterval_, 0, MAX_MIN_SYNC_INTERVAL);
        // casting is safe: bounded by MAX_MIN_SYNC_INTERVAL on the line above
        // forge-lint: disable-next-line(unsafe-typecast)
        _globals.minSyncInterval = uint32(minSyncInterval_);
        emit MinSyncIntervalSet(minSyncInterval_);
    }

    /// @inheritdoc IStorageNFT
    function scheduleOracleConfig(address operator, bytes32 jobId, uint256 fee)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _checkOracle(operator, fee);
        uint256 effectiveAt = block.timestamp + ORACLE_CONFIG_DELAY;
        // casting is safe: _checkOracle bounds the fee by MAX_LINK_FEE
        // forge-lint: disable-next-line(unsafe-typecast)
        _nextOracle = OracleConfig(operator, uint64(fee));
        _nextJobId = jobId;
        _nextOracleAt = effectiveAt;
        emit OracleConfigScheduled(operator, jobId, fee, effectiveAt);
    }

    /// @inheritdoc IStorageNFT
    function applyOracleConfig() external {
        OracleConfig memory next = _nextOracle;
        if (next.operator == address(0)) revert NoOracleConfigScheduled();
        uint256 effectiveAt = _nextOracleAt;
        if (block.timestamp < effectiveAt) revert OracleConfigNotReady(effectiveAt);
        bytes32 jobId = _nextJobId;
        delete _nextOracle;
        delete _nextJobId;
        delete _nextOracleAt;
        _setOracle(next.operator, jobId, next.fee);
    }

    /// @inheritdoc IStorageNFT
    function setQuotaUnitPrice(uint128 tokenPrice, uint128 nativePrice)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _unitTokenPrice = tokenPrice;
        _unitNativePrice = nativePrice;
        emit QuotaUnitPriceSet(tokenPrice, nativePrice);
    }

    /// @inheritdoc IStorageNFT
    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (treasury_ == address(0)) revert ZeroAddress();
        _treasury = treasury_;
        emit TreasurySet(treasury_);
    }

    /// @inheritdoc IStorageNFT
    function setMarket(address market_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (market_ == address(0)) revert ZeroAddress();
        _market.market = market_;
        emit MarketSet(market_);
    }

    /// @inheritdoc IStorageNFT
    function withdrawFees() external onlyRole(DEFAULT_ADMIN_ROLE) {
        address to = _treasury;
        uint256 tokenAmount = _pxToken.balanceOf(address(this));
        uint256 nativeAmount = address(this).balance;
        emit FeesWithdrawn(to, tokenAmount, nativeAmount);
        if (tokenAmount != 0) _pxToken.safeTransfer(to, tokenAmount);
        if (nativeAmount != 0) _sendNative(to, nativeAmount);
    }

    /// @inheritdoc IStorageNFT
    function withdrawLink(address to, uint256 amount) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (to == address(0)) revert ZeroAddress();
        emit LinkWithdrawn(to, amount);
        IERC20(address(_link)).safeTransfer(to, amount);
    }

    /// @inheritdoc IStorageNFT
    function pause() external onlyRole(PAUSER_ROLE) {
        _requireNotPaused();
        // casting is safe: block.timestamp fits 40 bits until the year 36812
        // forge-lint: disable-next-line(unsafe-typecast)
        _globals.pausedAt = uint40(block.timestamp);
        emit Paused(msg.sender);
    }

    /// @inheritdoc IStorageNFT
    function unpause() external onlyRole(PAUSER_ROLE) {
        Globals memory g = _globals;
        if (g.pausedAt == 0) revert ExpectedPause();
        // casting is safe: a sum of paused spans up to now fits 40 bits until the year 36812
        // forge-lint: disable-next-line(unsafe-typecast)
        _globals.pausedTotal = uint40(g.pausedTotal + block.timestamp - g.pausedAt);
        _globals.pausedAt = 0;
        emit Unpaused(msg.sender);
    }

    // ------------------------------------------------------------------------------------------
    // Internal
    // ------------------------------------------------------------------------------------------

    /// @dev What cancelling a given-up request at its Operator needs (all zero: nothing).
    struct Cancellation {
        address operator;
        bytes32 requestId;
        uint256 fee;
        uint256 expiration;
    }

    function _mintPlan(uint256 planId, uint256 maxTokenPrice) private returns (uint256 tokenId) {
        Globals memory g = _globals;
        if (g.pausedAt != 0) revert EnforcedPause();
        Plan memory p = _planOf(planId);
        if (!p.mintable) revert PlanNotMintable(planId);
        if (p.free) {
            if (msg.value != 0) revert WrongPayment(msg.value, 0);
            if (_freeClaimed[msg.sender]) revert FreePlanClaimed(msg.sender);
            _freeClaimed[msg.sender] = true;
        } else {
            Purchases.collect(_pxToken, p.tokenPrice, p.nativePrice, maxTokenPrice);
        }
        tokenId = g.nextTokenId;
        // casting is safe: one more than an existing 64-bit id cannot reach 2^64 in practice
        // forge-lint: disable-next-line(unsafe-typecast)
        _globals.nextTokenId = uint64(tokenId + 1);
        uint256 now_ = block.timestamp - g.pausedTotal;
        _tokens[tokenId] = TokenState({
            quota: p.quota,
            used: 0,
            fileCount: 0,
            // casting is safe: planId <= planCount() <= type(uint16).max (enforced by createPlan)
            // forge-lint: disable-next-line(unsafe-typecast)
            planId: uint16(planId),
            // casting is safe: validity <= MAX_PREPAID_PERIOD (enforced by createPlan)
            // forge-lint: disable-next-line(unsafe-typecast)
            expiresAt: p.validity == 0 ? 0 : uint40(now_ + p.validity),
            // A new token stores nothing, which is as good as a fresh sync.
            // casting is safe: service time <= block.timestamp fits 40 bits
            // forge-lint: disable-next-line(unsafe-typecast)
            lastSyncAt: uint40(now_)
        });
        if (p.validity != 0 && p.syncCredits != 0) _syncs[tokenId].syncCredits = p.syncCredits;
        _mint(msg.sender, tokenId);
        emit Minted(tokenId, msg.sender, planId);
        Purchases.route(_pxToken, _market, tokenId, p);
    }

    /// @dev Applies a permit; a front-run permit (already used) is fine if the allowance is there.
    function _permit(uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s) private {
        try IERC20Permit(address(_pxToken))
            .permit(msg.sender, address(this), amount, deadline, v, r, s) {}
            catch {}
    }

    function _bindKey(uint256 tokenId, bytes calldata ipnsName_, address registrar) private {
        bytes32 key = IpnsName.toKey(ipnsName_);
        if (key == bytes32(0)) revert InvalidIpnsName(ipnsName_);
        uint256 holder = _keyTokens[key];
        if (holder != 0) revert KeyInUse(key, holder);
        _keys[tokenId] = key;
        _keyTokens[key] = tokenId;
        emit KeyRegistered(tokenId, key, registrar);
        emit MetadataUpdate(tokenId);
    }

    /// @dev Forgets the token's pending request once the Operator lets it expire, so nobody can
    /// answer it any more, and returns what cancelling it at the Operator needs.
    function _giveUp(uint256 tokenId, SyncState memory s) private returns (Cancellation memory c) {
        c.requestId = SyncRequest.id(address(this), SyncRequest.nonce(tokenId, s.requests));
        c.expiration = uint256(s.requestedAt) + REQUEST_EXPIRY;
        if (block.timestamp < c.expiration) revert SyncPending(tokenId, c.requestId);
        c.operator = _requests[c.requestId].operator;
        c.fee = s.fee;
        delete _requests[c.requestId];
        s.pending = false;
        emit SyncCancelled(tokenId, c.requestId);
    }

    /// @dev Asks the Operator to refund a given-up request. It refuses when it no longer holds
    /// the request (answered by a callback that reverted); the request is given up either way.
    function _cancelAtOperator(Cancellation memory c) private {
        if (c.operator == address(0)) return;
        try OperatorInterface(c.operator)
            .cancelOracleRequest(c.requestId, c.fee, this.fulfillSync.selector, c.expiration) {}
            catch {}
    }

    /// @dev Sends the request to the Operator with its LINK fee (`transferAndCall`).
    function _sendRequest(OracleConfig memory o, uint256 tokenId, uint256 nonce) private {
        uint256 balance = _link.balanceOf(address(this));
        if (balance < o.fee) revert InsufficientLink(balance, o.fee);
        bytes memory call = abi.encodeCall(
            OperatorInterface.operatorRequest,
            (
                address(0), // overridden by the Operator with this contract
                0, // overridden by the Operator with the LINK sent
                _jobId,
                this.fulfillSync.selector,
                nonce,
                _OPERATOR_ARGS_VERSION,
                SyncRequest.params(tokenId)
            )
        );
        if (!_link.transferAndCall(o.operator, o.fee, call)) {
            revert OracleRequestFailed(o.operator, o.fee);
        }
    }

    function _setOracle(address operator, bytes32 jobId, uint256 fee) private {
        // casting is safe: every caller checked fee <= MAX_LINK_FEE
        // forge-lint: disable-next-line(unsafe-typecast)
        _oracle = OracleConfig(operator, uint64(fee));
        _jobId = jobId;
        emit OracleConfigSet(operator, jobId, fee);
    }

    function _requireAuthorized(uint256 tokenId) private view {
        address owner = _requireOwned(tokenId);
        if (!_isAuthorized(owner, msg.sender, tokenId)) revert NotTokenOwner(tokenId, msg.sender);
    }

    function _requireNotPaused() private view {
        if (_globals.pausedAt != 0) revert EnforcedPause();
    }

    /// @dev The service clock, which stands still while paused.
    function _clockNow(Globals memory g) private view returns (uint256) {
        return (g.pausedAt != 0 ? g.pausedAt : block.timestamp) - g.pausedTotal;
    }

    /// @dev The service clock; reverts while paused.
    function _runningNow() private view returns (uint256) {
        Globals memory g = _globals;
        if (g.pausedAt != 0) revert EnforcedPause();
        return block.timestamp - g.pausedTotal;
    }

    function _checkOracle(address operator, uint256 fee) private view {
        if (operator == address(0)) revert ZeroAddress();
        if (operator.code.length == 0) revert OperatorNotContract(operator);
        if (fee > MAX_LINK_FEE) revert FeeTooLarge(fee);
    }

    function _planOf(uint256 planId) private view returns (Plan memory) {
        if (planId == 0 || planId > _plans.length) revert PlanNotFound(planId);
        return _plans[planId - 1];
    }

    function _sendNative(address to, uint256 amount) private {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert NativeTransferFailed(to, amount);
    }

    function _checkBounds(uint256 value, uint256 min, uint256 max) private pure {
        if (value < min || value > max) revert OutOfBounds(value, min, max);
    }
}
