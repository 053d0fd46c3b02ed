// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC4906} from "@openzeppelin/contracts/interfaces/IERC4906.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {Chainlink} from "@chainlink/contracts/src/v0.8/operatorforwarder/Chainlink.sol";
import {ChainlinkClient} from "@chainlink/contracts/src/v0.8/operatorforwarder/ChainlinkClient.sol";
import {
    LinkTokenInterface
} from "@chainlink/contracts/src/v0.8/shared/interfaces/LinkTokenInterface.sol";

import {IStorageNFT} from "./interfaces/IStorageNFT.sol";
import {ITokenRenderer} from "./interfaces/ITokenRenderer.sol";
import {IpnsName} from "./libraries/IpnsName.sol";
import {SyncStatus} from "./libraries/SyncStatus.sol";

/// @title StorageNFT
/// @notice ERC-721 storage tokens with a byte quota and an IPNS name; usage is synced from the
/// token's IPNS-published usage record by a Chainlink direct request through the Operator.
/// @dev Trust: usage, file count, sequence and sync time change only in `fulfillSync`, which
/// only the Operator a request was sent to can call (ChainlinkClient's pending-request check),
/// and only for the token's one pending request. No function lets a holder touch them.
contract StorageNFT is
    IStorageNFT,
    IERC4906,
    ERC721,
    AccessControl,
    Pausable,
    EIP712,
    ChainlinkClient
{
    using Chainlink for Chainlink.Request;
    using SafeERC20 for IERC20;

    /// @notice Role of storage nodes' keys: signs key assignments and binds keys.
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");
    /// @notice Role that can pause and unpause.
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    /// @notice Bytes in one unit of extra quota (1 GiB).
    uint256 public constant QUOTA_UNIT = 1 << 30;
    /// @notice Seconds after which the Operator lets a requester cancel (Operator.EXPIRYTIME).
    uint256 public constant REQUEST_EXPIRY = 5 minutes;
    /// @notice Default sync window: uploads close 30 days after the last sync.
    uint256 public constant DEFAULT_SYNC_WINDOW = 30 days;

    bytes32 private constant _KEY_ASSIGNMENT_TYPEHASH =
        keccak256("KeyAssignment(address minter,bytes ipnsName,uint256 deadline)");

    /// @dev Storage state of a token that minting writes. Fits one slot (64+64+32+16+40+40).
    struct TokenState {
        uint64 quota;
        uint64 used;
        uint32 fileCount;
        uint16 planId;
        uint40 expiresAt;
        uint40 lastSyncAt;
    }

    /// @dev Sync bookkeeping that only requests and answers write. Fits one slot (64+40+96+8+8).
    struct SyncState {
        uint64 seq;
        uint40 requestedAt;
        uint96 fee;
        bool pending;
        uint8 lastStatus;
    }

    IERC20 private immutable _pxToken;
    ITokenRenderer private immutable _renderer;

    uint256 private _nextTokenId = 1;
    uint256 private _syncWindow = DEFAULT_SYNC_WINDOW;
    uint256 private _minSyncInterval;
    bytes32 private _jobId;
    uint256 private _fee;
    address private _treasury;
    uint128 private _unitTokenPrice;
    uint128 private _unitNativePrice;

    Plan[] private _plans;
    mapping(uint256 tokenId => TokenState) private _tokens;
    mapping(uint256 tokenId => SyncState) private _syncs;
    mapping(uint256 tokenId => bytes32 requestId) private _requestIds;
    mapping(uint256 tokenId => bytes32 ipnsKey) private _keys;
    mapping(bytes32 ipnsKey => uint256 tokenId) private _keyTokens;
    mapping(address account => bool) private _freeClaimed;

    /// @param admin Receives the admin and pauser roles.
    /// @param pxToken_ PXToken that plans are priced in.
    /// @param link LINK token used to pay the oracle.
    /// @param operator Chainlink Operator that requests go to.
    /// @param jobId Chainlink job (spec) id of the sync job.
    /// @param fee LINK paid per sync request.
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
    ) ERC721("PX Storage", "PXS") EIP712("PX StorageNFT", "1") {
        if (
            admin == address(0) || address(pxToken_) == address(0) || link == address(0)
                || address(renderer) == address(0)
        ) {
            revert ZeroAddress();
        }
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(PAUSER_ROLE, admin);
        _pxToken = pxToken_;
        _renderer = renderer;
        _treasury = admin;
        _setChainlinkToken(link);
        _setOracle(operator, jobId, fee);
        _minSyncInterval = minSyncInterval_;
    }

    // ------------------------------------------------------------------------------------------
    // Minting and plans
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IStorageNFT
    function mint(uint256 planId) external payable whenNotPaused returns (uint256 tokenId) {
        tokenId = _mintPlan(planId);
    }

    /// @inheritdoc IStorageNFT
    function mintWithPermit(uint256 planId, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        whenNotPaused
        returns (uint256 tokenId)
    {
        _permit(_planOf(planId).tokenPrice, deadline, v, r, s);
        tokenId = _mintPlan(planId);
    }

    /// @inheritdoc IStorageNFT
    function mintWithKey(
        uint256 planId,
        bytes calldata ipnsName_,
        uint256 deadline,
        bytes calldata signature
    ) external payable whenNotPaused returns (uint256 tokenId) {
        if (block.timestamp > deadline) revert AssignmentExpired(deadline);
        address signer =
            ECDSA.recover(keyAssignmentDigest(msg.sender, ipnsName_, deadline), signature);
        if (!hasRole(REGISTRAR_ROLE, signer)) revert InvalidAssignment(signer);
        tokenId = _mintPlan(planId);
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
    function upgradePlan(uint256 tokenId, uint256 planId) external payable whenNotPaused {
        _requireAuthorized(tokenId);
        TokenState storage t = _tokens[tokenId];
        uint256 fromPlanId = t.planId;
        Plan memory from = _plans[fromPlanId - 1];
        Plan memory to = _activePlan(planId);
        if (to.free) revert FreePlanNotRenewable(planId);
        if (to.quota <= from.quota) revert NotAnUpgrade(fromPlanId, planId);
        _collect(to.tokenPrice, to.nativePrice);
        // Plan quotas are immutable, so the purchased extra is the total minus the old plan's.
        t.quota = t.quota - from.quota + to.quota;
        // casting is safe: planId <= planCount() <= type(uint16).max (enforced by createPlan)
        // forge-lint: disable-next-line(unsafe-typecast)
        t.planId = uint16(planId);
        t.expiresAt = to.validity == 0 ? 0 : uint40(block.timestamp + to.validity);
        emit PlanUpgraded(tokenId, fromPlanId, planId);
        emit MetadataUpdate(tokenId);
    }

    /// @inheritdoc IStorageNFT
    function renew(uint256 tokenId) external payable whenNotPaused {
        _requireOwned(tokenId);
        TokenState storage t = _tokens[tokenId];
        uint256 planId = t.planId;
        Plan memory p = _activePlan(planId);
        if (p.free) revert FreePlanNotRenewable(planId);
        _collect(p.tokenPrice, p.nativePrice);
        if (p.validity != 0) {
            uint256 base = t.expiresAt > block.timestamp ? t.expiresAt : block.timestamp;
            // casting is safe: a timestamp plus a uint32 period fits uint40 until the year 36812
            // forge-lint: disable-next-line(unsafe-typecast)
            t.expiresAt = uint40(base + p.validity);
        }
        emit Renewed(tokenId, t.expiresAt);
    }

    /// @inheritdoc IStorageNFT
    function buyQuota(uint256 tokenId, uint256 units) external payable whenNotPaused {
        _requireOwned(tokenId);
        if (units == 0) revert NotForSale();
        _collect(units * _unitTokenPrice, units * _unitNativePrice);
        TokenState storage t = _tokens[tokenId];
        uint256 quota = t.quota + units * QUOTA_UNIT;
        if (quota > type(uint64).max) revert InvalidPlan();
        // casting is safe: checked against type(uint64).max on the line above
        // forge-lint: disable-next-line(unsafe-typecast)
        t.quota = uint64(quota);
        emit QuotaPurchased(tokenId, units, quota);
        emit MetadataUpdate(tokenId);
    }

    // ------------------------------------------------------------------------------------------
    // Sync
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IStorageNFT
    function requestSync(uint256 tokenId) external whenNotPaused returns (bytes32 requestId) {
        _requireAuthorized(tokenId);
        if (_keys[tokenId] == bytes32(0)) revert NoKey(tokenId);
        SyncState storage s = _syncs[tokenId];
        uint256 requestedAt = s.requestedAt;
        if (s.pending) {
            bytes32 pendingId = _requestIds[tokenId];
            uint256 expiration = requestedAt + REQUEST_EXPIRY;
            if (block.timestamp < expiration) revert SyncPending(tokenId, pendingId);
            // Unanswered past the Operator's expiry: take the LINK back and ask again.
            _cancelChainlinkRequest(pendingId, s.fee, this.fulfillSync.selector, expiration);
            emit SyncCancelled(tokenId, pendingId);
        } else if (requestedAt != 0 && block.timestamp < requestedAt + _minSyncInterval) {
            revert SyncTooSoon(tokenId, requestedAt + _minSyncInterval);
        }

        uint256 fee = _fee;
        uint256 balance = LinkTokenInterface(_chainlinkTokenAddress()).balanceOf(address(this));
        if (balance < fee) revert InsufficientLink(balance, fee);

        s.requestedAt = uint40(block.timestamp);
        // casting is safe: _setOracle rejects fees above type(uint96).max
        // forge-lint: disable-next-line(unsafe-typecast)
        s.fee = uint96(fee);
        s.pending = true;

        Chainlink.Request memory req = _buildOperatorRequest(_jobId, this.fulfillSync.selector);
        req._addUint("tokenId", tokenId);
        requestId = _sendOperatorRequest(req, fee);
        _requestIds[tokenId] = requestId;
        emit SyncRequested(tokenId, requestId, msg.sender);
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
    ) external recordChainlinkFulfillment(requestId) {
        SyncState storage s = _syncs[tokenId];
        if (!s.pending || _requestIds[tokenId] != requestId) {
            revert UnknownRequest(requestId, tokenId);
        }
        s.pending = false;
        if (status == SyncStatus.OK && seq <= s.seq) status = SyncStatus.STALE_SEQUENCE;
        s.lastStatus = status;
        if (status != SyncStatus.OK) {
            emit SyncFailed(tokenId, requestId, status);
            return;
        }
        s.seq = seq;
        TokenState storage t = _tokens[tokenId];
        t.used = used;
        t.fileCount = fileCount;
        t.lastSyncAt = uint40(block.timestamp);
        emit Synced(tokenId, requestId, used, fileCount, seq, recordCid);
        emit MetadataUpdate(tokenId);
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
        if (paused()) return (false, Reason.Paused);
        if (_ownerOf(tokenId) == address(0)) return (false, Reason.NoToken);
        TokenState memory t = _tokens[tokenId];
        if (t.expiresAt != 0 && block.timestamp >= t.expiresAt) return (false, Reason.Expired);
        if (_keys[tokenId] == bytes32(0)) return (false, Reason.NoKey);
        if (block.timestamp > uint256(t.lastSyncAt) + _syncWindow) {
            return (false, Reason.NotSynced);
        }
        if (uint256(t.used) + size > t.quota) return (false, Reason.QuotaExceeded);
        return (true, Reason.None);
    }

    /// @inheritdoc IStorageNFT
    function tokenInfo(uint256 tokenId) public view returns (TokenInfo memory info) {
        _requireOwned(tokenId);
        TokenState memory t = _tokens[tokenId];
        SyncState memory s = _syncs[tokenId];
        info = TokenInfo({
            quota: t.quota,
            used: t.used,
            fileCount: t.fileCount,
            planId: t.planId,
            expiresAt: t.expiresAt,
            lastSyncAt: t.lastSyncAt,
            seq: s.seq,
            pending: s.pending,
            requestedAt: s.requestedAt,
            lastStatus: s.lastStatus,
            ipnsKey: _keys[tokenId]
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
        return _syncWindow;
    }

    /// @inheritdoc IStorageNFT
    function minSyncInterval() external view returns (uint256) {
        return _minSyncInterval;
    }

    /// @inheritdoc IStorageNFT
    function oracleConfig() external view returns (address operator, bytes32 jobId, uint256 fee) {
        return (_chainlinkOracleAddress(), _jobId, _fee);
    }

    /// @notice The PXToken plans are priced in.
    function pxToken() external view returns (IERC20) {
        return _pxToken;
    }

    /// @notice The treasury fees are withdrawn to.
    function treasury() external view returns (address) {
        return _treasury;
    }

    /// @notice Price of one extra quota unit in PXToken and in native coin.
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

    /// @notice Metadata computed on the fly by the renderer: nothing is stored.
    function tokenURI(uint256 tokenId) public view override returns (string memory) {
        return _renderer.tokenURI(tokenId, tokenInfo(tokenId));
    }

    /// @notice ERC-165: ERC-721, ERC-4906, AccessControl.
    function supportsInterface(bytes4 interfaceId)
        public
        view
        override(IERC165, ERC721, AccessControl)
        returns (bool)
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
        if (p.quota == 0 || _plans.length >= type(uint16).max) {
            revert InvalidPlan();
        }
        _plans.push(p);
        planId = _plans.length;
        emit PlanCreated(planId, p);
    }

    /// @inheritdoc IStorageNFT
    function updatePlan(uint256 planId, uint128 tokenPrice, uint128 nativePrice, bool active)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _planOf(planId);
        Plan storage p = _plans[planId - 1];
        p.tokenPrice = tokenPrice;
        p.nativePrice = nativePrice;
        p.active = active;
        emit PlanUpdated(planId, tokenPrice, nativePrice, active);
    }

    /// @inheritdoc IStorageNFT
    function setSyncWindow(uint256 syncWindow_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _syncWindow = syncWindow_;
        emit SyncWindowSet(syncWindow_);
    }

    /// @inheritdoc IStorageNFT
    function setMinSyncInterval(uint256 minSyncInterval_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _minSyncInterval = minSyncInterval_;
        emit MinSyncIntervalSet(minSyncInterval_);
    }

    /// @inheritdoc IStorageNFT
    function setOracleConfig(address operator, bytes32 jobId, uint256 fee)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _setOracle(operator, jobId, fee);
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
        IERC20(_chainlinkTokenAddress()).safeTransfer(to, amount);
    }

    /// @inheritdoc IStorageNFT
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @inheritdoc IStorageNFT
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    // ------------------------------------------------------------------------------------------
    // Internal
    // ------------------------------------------------------------------------------------------

    function _mintPlan(uint256 planId) private returns (uint256 tokenId) {
        Plan memory p = _activePlan(planId);
        if (p.free) {
            if (msg.value != 0) revert WrongPayment(msg.value, 0);
            if (_freeClaimed[msg.sender]) revert FreePlanClaimed(msg.sender);
            _freeClaimed[msg.sender] = true;
        } else {
            _collect(p.tokenPrice, p.nativePrice);
        }
        tokenId = _nextTokenId++;
        _tokens[tokenId] = TokenState({
            quota: p.quota,
            used: 0,
            fileCount: 0,
            // casting is safe: planId <= planCount() <= type(uint16).max (enforced by createPlan)
            // forge-lint: disable-next-line(unsafe-typecast)
            planId: uint16(planId),
            expiresAt: p.validity == 0 ? 0 : uint40(block.timestamp + p.validity),
            // A new token stores nothing, which is as good as a fresh sync.
            lastSyncAt: uint40(block.timestamp)
        });
        _mint(msg.sender, tokenId);
        emit Minted(tokenId, msg.sender, planId);
    }

    /// @dev Takes payment: the native price if `msg.value` is non-zero, else the token price.
    function _collect(uint256 tokenPrice, uint256 nativePrice) private {
        if (msg.value != 0) {
            if (nativePrice == 0 || msg.value != nativePrice) {
                revert WrongPayment(msg.value, nativePrice);
            }
        } else if (tokenPrice != 0) {
            _pxToken.safeTransferFrom(msg.sender, address(this), tokenPrice);
        } else if (nativePrice != 0) {
            revert WrongPayment(0, nativePrice);
        } else {
            revert NotForSale();
        }
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

    function _setOracle(address operator, bytes32 jobId, uint256 fee) private {
        if (operator == address(0)) revert ZeroAddress();
        if (fee > type(uint96).max) revert FeeTooLarge(fee);
        _setChainlinkOracle(operator);
        _jobId = jobId;
        _fee = fee;
        emit OracleConfigSet(operator, jobId, fee);
    }

    function _requireAuthorized(uint256 tokenId) private view {
        address owner = _requireOwned(tokenId);
        if (!_isAuthorized(owner, msg.sender, tokenId)) revert NotTokenOwner(tokenId, msg.sender);
    }

    function _planOf(uint256 planId) private view returns (Plan memory) {
        if (planId == 0 || planId > _plans.length) revert PlanNotFound(planId);
        return _plans[planId - 1];
    }

    function _activePlan(uint256 planId) private view returns (Plan memory p) {
        p = _planOf(planId);
        if (!p.active) revert PlanInactive(planId);
    }

    function _sendNative(address to, uint256 amount) private {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert NativeTransferFailed(to, amount);
    }
}
