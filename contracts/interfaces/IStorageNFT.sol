// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IStorageNFT
/// @notice A storage NFT (sNFT) holds a byte quota and the IPNS name under which a storage node
/// publishes the token's signed usage record. Usage reaches the chain only through a Chainlink
/// direct request answered by an authorized oracle through the Operator contract; the holder
/// can neither report usage nor clear the sync lock. Uploads are gated by `canUpload`.
/// @dev IPNS names are libp2p identity multihashes of ed25519 keys (38 bytes:
/// `0x00 0x24 0x08 0x01 0x12 0x20 || pubkey`); only the 32-byte public key is stored.
interface IStorageNFT {
    /// @notice A plan that tokens are minted from. Fits two slots.
    /// @param quota Storage quota in bytes granted by the plan.
    /// @param validity Seconds a token stays valid after mint or renewal; 0 means no expiry.
    /// @param active Whether the plan can be minted, renewed or upgraded to.
    /// @param free Whether the plan is the free plan, claimable once per address.
    /// @param tokenPrice Price in PXToken (0: not payable in PXToken).
    /// @param nativePrice Price in native coin (0: not payable in native coin).
    struct Plan {
        uint64 quota;
        uint32 validity;
        bool active;
        bool free;
        uint128 tokenPrice;
        uint128 nativePrice;
    }

    /// @notice Everything the chain knows about a token's storage.
    /// @param quota Total quota in bytes (plan quota plus purchased extra quota).
    /// @param used Bytes used as of the last accepted sync.
    /// @param fileCount Files stored as of the last accepted sync.
    /// @param planId Plan the token was minted from or upgraded to.
    /// @param expiresAt Expiry time (0: never).
    /// @param lastSyncAt Time of the last accepted sync (the mint time before the first one).
    /// @param seq Sequence number of the last accepted usage record.
    /// @param pending Whether a sync request is waiting for its answer.
    /// @param requestedAt Time the last sync request was sent.
    /// @param lastStatus Status of the last answered request (`STATUS_OK` or an error code).
    /// @param ipnsKey ed25519 public key of the token's IPNS name (0: none bound).
    struct TokenInfo {
        uint64 quota;
        uint64 used;
        uint32 fileCount;
        uint32 planId;
        uint40 expiresAt;
        uint40 lastSyncAt;
        uint64 seq;
        bool pending;
        uint40 requestedAt;
        uint8 lastStatus;
        bytes32 ipnsKey;
    }

    /// @notice Why `canUpload` refuses an upload.
    enum Reason {
        None,
        Paused,
        NoToken,
        Expired,
        NoKey,
        NotSynced,
        QuotaExceeded
    }

    // ------------------------------------------------------------------------------------------
    // Errors
    // ------------------------------------------------------------------------------------------

    /// @notice The plan does not exist.
    error PlanNotFound(uint256 planId);
    /// @notice The plan exists but is not active.
    error PlanInactive(uint256 planId);
    /// @notice A plan was given a zero quota or a quota/validity beyond its field width.
    error InvalidPlan();
    /// @notice The address already claimed the free plan.
    error FreePlanClaimed(address account);
    /// @notice The payment sent does not match any price of the plan.
    error WrongPayment(uint256 sent, uint256 nativePrice);
    /// @notice The plan (or extra quota) cannot be paid in the requested currency.
    error NotForSale();
    /// @notice The caller is neither owner nor approved for the token.
    error NotTokenOwner(uint256 tokenId, address caller);
    /// @notice The token does not exist.
    error TokenNotFound(uint256 tokenId);
    /// @notice An upgrade must move to a plan with a larger quota.
    error NotAnUpgrade(uint256 fromPlanId, uint256 toPlanId);
    /// @notice The free plan cannot be renewed or upgraded to.
    error FreePlanNotRenewable(uint256 planId);
    /// @notice An IPNS name is not a 38-byte ed25519 libp2p identity multihash.
    error InvalidIpnsName(bytes ipnsName);
    /// @notice The IPNS key is already bound to a token.
    error KeyInUse(bytes32 ipnsKey, uint256 tokenId);
    /// @notice The token already has an IPNS key.
    error KeyAlreadySet(uint256 tokenId);
    /// @notice A key assignment's deadline has passed.
    error AssignmentExpired(uint256 deadline);
    /// @notice A key assignment was not signed by a registrar.
    error InvalidAssignment(address signer);
    /// @notice A sync request for the token is still pending and not yet expired.
    error SyncPending(uint256 tokenId, bytes32 requestId);
    /// @notice The token was synced or requested too recently.
    error SyncTooSoon(uint256 tokenId, uint256 nextAllowedAt);
    /// @notice The token has no IPNS key to sync from.
    error NoKey(uint256 tokenId);
    /// @notice The fulfill does not answer the token's pending request.
    error UnknownRequest(bytes32 requestId, uint256 tokenId);
    /// @notice The contract lacks LINK to pay the oracle.
    error InsufficientLink(uint256 balance, uint256 fee);
    /// @notice A zero address was given where one is required.
    error ZeroAddress();
    /// @notice The LINK fee does not fit 96 bits.
    error FeeTooLarge(uint256 fee);
    /// @notice A native transfer failed.
    error NativeTransferFailed(address to, uint256 amount);

    // ------------------------------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------------------------------

    /// @notice A plan was created.
    event PlanCreated(uint256 indexed planId, Plan plan);
    /// @notice A plan's prices or active flag changed.
    event PlanUpdated(uint256 indexed planId, uint128 tokenPrice, uint128 nativePrice, bool active);
    /// @notice A token was minted from a plan.
    event Minted(uint256 indexed tokenId, address indexed owner, uint256 indexed planId);
    /// @notice A token moved to a larger plan.
    event PlanUpgraded(
        uint256 indexed tokenId, uint256 indexed fromPlanId, uint256 indexed toPlanId
    );
    /// @notice A token's validity was extended.
    event Renewed(uint256 indexed tokenId, uint256 expiresAt);
    /// @notice Extra quota was bought for a token.
    event QuotaPurchased(uint256 indexed tokenId, uint256 units, uint256 newQuota);
    /// @notice An IPNS key was bound to a token.
    event KeyRegistered(
        uint256 indexed tokenId, bytes32 indexed ipnsKey, address indexed registrar
    );
    /// @notice A sync was requested through the Operator.
    event SyncRequested(uint256 indexed tokenId, bytes32 indexed requestId, address indexed by);
    /// @notice A usage record was accepted.
    event Synced(
        uint256 indexed tokenId,
        bytes32 indexed requestId,
        uint64 used,
        uint32 fileCount,
        uint64 seq,
        bytes recordCid
    );
    /// @notice A sync request was answered with an error; usage did not change.
    event SyncFailed(uint256 indexed tokenId, bytes32 indexed requestId, uint8 status);
    /// @notice An unanswered, expired request was cancelled and its LINK refunded.
    event SyncCancelled(uint256 indexed tokenId, bytes32 indexed requestId);
    /// @notice The sync window changed.
    event SyncWindowSet(uint256 syncWindow);
    /// @notice The minimum interval between sync requests changed.
    event MinSyncIntervalSet(uint256 minSyncInterval);
    /// @notice The Chainlink job or fee changed.
    event OracleConfigSet(address indexed operator, bytes32 jobId, uint256 fee);
    /// @notice The price of one extra quota unit changed.
    event QuotaUnitPriceSet(uint128 tokenPrice, uint128 nativePrice);
    /// @notice The treasury changed.
    event TreasurySet(address indexed treasury);
    /// @notice Fees were sent to the treasury.
    event FeesWithdrawn(address indexed treasury, uint256 tokenAmount, uint256 nativeAmount);
    /// @notice LINK was withdrawn from the contract.
    event LinkWithdrawn(address indexed to, uint256 amount);

    // ------------------------------------------------------------------------------------------
    // Minting and plans
    // ------------------------------------------------------------------------------------------

    /// @notice Mints a token from `planId` to the caller. Pays the native price when `msg.value`
    /// is non-zero, the PXToken price (by allowance) otherwise; the free plan costs nothing
    /// and can be claimed once per address.
    function mint(uint256 planId) external payable returns (uint256 tokenId);

    /// @notice `mint` paying in PXToken through an EIP-2612 permit for the plan's price.
    function mintWithPermit(uint256 planId, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        returns (uint256 tokenId);

    /// @notice Mints and binds `ipnsName` in one call, with the name assigned by a registrar
    /// through an EIP-712 `KeyAssignment(address minter,bytes ipnsName,uint256 deadline)`
    /// signature. A name can be bound once, so an assignment cannot be replayed.
    function mintWithKey(
        uint256 planId,
        bytes calldata ipnsName,
        uint256 deadline,
        bytes calldata signature
    ) external payable returns (uint256 tokenId);

    /// @notice Binds `ipnsName` to a token that has no key yet. Registrar only.
    function registerKey(uint256 tokenId, bytes calldata ipnsName) external;

    /// @notice Moves a token to a plan with a larger quota, paying that plan's price. Purchased
    /// extra quota is kept; validity restarts. Usage and sync state are untouched.
    function upgradePlan(uint256 tokenId, uint256 planId) external payable;

    /// @notice Extends a token's validity by its plan's period, paying the plan's price.
    function renew(uint256 tokenId) external payable;

    /// @notice Buys `units` of extra quota (`QUOTA_UNIT` bytes each).
    function buyQuota(uint256 tokenId, uint256 units) external payable;

    // ------------------------------------------------------------------------------------------
    // Sync
    // ------------------------------------------------------------------------------------------

    /// @notice Sends a Chainlink direct request for the token's usage, paid in LINK from this
    /// contract's balance. Owner or approved only; one pending request per token; an
    /// unanswered request is cancelled (LINK refunded) once the Operator lets it expire.
    function requestSync(uint256 tokenId) external returns (bytes32 requestId);

    /// @notice The Operator's callback (through `fulfillOracleRequest2`). Status `STATUS_OK`
    /// stores the usage if `seq` is above the last synced sequence number (a stale record is
    /// recorded as `STATUS_STALE_SEQUENCE`); any other status is recorded and changes no usage.
    function fulfillSync(
        bytes32 requestId,
        uint256 tokenId,
        uint8 status,
        uint64 used,
        uint32 fileCount,
        uint64 seq,
        bytes calldata recordCid
    ) external;

    // ------------------------------------------------------------------------------------------
    // Gate and views
    // ------------------------------------------------------------------------------------------

    /// @notice Whether an upload of `size` bytes to `tokenId` is allowed now, and if not why.
    function canUpload(uint256 tokenId, uint256 size) external view returns (bool ok, Reason reason);

    /// @notice The token's storage state.
    function tokenInfo(uint256 tokenId) external view returns (TokenInfo memory);

    /// @notice The token's IPNS name as bytes (38-byte identity multihash; empty if none).
    function ipnsName(uint256 tokenId) external view returns (bytes memory);

    /// @notice The token bound to an IPNS key (0: none).
    function tokenOfKey(bytes32 ipnsKey) external view returns (uint256);

    /// @notice A plan.
    function plan(uint256 planId) external view returns (Plan memory);

    /// @notice Number of plans; ids run from 1 to `planCount()`.
    function planCount() external view returns (uint256);

    /// @notice Whether `account` already claimed the free plan.
    function freePlanClaimed(address account) external view returns (bool);

    /// @notice Seconds after the last sync during which uploads stay open.
    function syncWindow() external view returns (uint256);

    /// @notice Minimum seconds between two sync requests for one token.
    function minSyncInterval() external view returns (uint256);

    /// @notice Operator, job id and LINK fee per request.
    function oracleConfig() external view returns (address operator, bytes32 jobId, uint256 fee);

    /// @notice EIP-712 digest a registrar signs to assign `ipnsName` to `minter`.
    function keyAssignmentDigest(address minter, bytes calldata ipnsName, uint256 deadline)
        external
        view
        returns (bytes32);

    // ------------------------------------------------------------------------------------------
    // Administration
    // ------------------------------------------------------------------------------------------

    /// @notice Creates a plan. Admin only.
    function createPlan(Plan calldata plan) external returns (uint256 planId);

    /// @notice Changes a plan's prices and active flag (quota and validity are fixed). Admin only.
    function updatePlan(uint256 planId, uint128 tokenPrice, uint128 nativePrice, bool active)
        external;

    /// @notice Sets the sync window. Admin only.
    function setSyncWindow(uint256 syncWindow) external;

    /// @notice Sets the minimum interval between sync requests. Admin only.
    function setMinSyncInterval(uint256 minSyncInterval) external;

    /// @notice Sets the Operator, job id and fee. Admin only.
    function setOracleConfig(address operator, bytes32 jobId, uint256 fee) external;

    /// @notice Sets the price of one extra quota unit. Admin only.
    function setQuotaUnitPrice(uint128 tokenPrice, uint128 nativePrice) external;

    /// @notice Sets the treasury fees go to. Admin only.
    function setTreasury(address treasury) external;

    /// @notice Sends all collected PXToken and native fees to the treasury. Admin only.
    function withdrawFees() external;

    /// @notice Withdraws LINK held for oracle payments. Admin only.
    function withdrawLink(address to, uint256 amount) external;

    /// @notice Pauses minting, syncs and uploads. Pauser only.
    function pause() external;

    /// @notice Lifts the pause. Pauser only.
    function unpause() external;
}
