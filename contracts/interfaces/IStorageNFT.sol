// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IStorageNFT
/// @notice A storage NFT (sNFT) holds a byte quota and the IPNS name under which a storage node
/// publishes the token's signed usage record. Usage reaches the chain only through a Chainlink
/// direct request answered through the Operator the request was sent to; the holder can neither
/// report usage nor clear the sync lock. Uploads are gated by `canUpload`.
/// @dev IPNS names are libp2p identity multihashes of ed25519 keys (38 bytes:
/// `0x00 0x24 0x08 0x01 0x12 0x20 || pubkey`); only the 32-byte public key is stored.
///
/// Time: expiry and the sync window run on a service clock that stops while the contract is
/// paused. Views report times as wall-clock equivalents (the stored service time shifted by the
/// time spent paused since), so a pause postpones every expiry and every sync deadline by its
/// length.
///
/// Sync payment: a token on a plan with an expiry spends one prepaid sync credit per request
/// (its plan includes `syncCredits` with every purchase: mint, renewal, upgrade); a token on a
/// plan without expiry (the free plan, a lifetime plan) requests without credits but at most
/// once per `syncWindow / FREE_SYNCS_PER_WINDOW`. Expired tokens cannot request. The contract
/// pays the Operator's LINK fee from its own balance, which only paid credits and rate-limited
/// free requests can spend.
interface IStorageNFT {
    /// @notice A plan that tokens are minted from. Fits two slots.
    /// @param quota Storage quota in bytes granted by the plan.
    /// @param validity Seconds a token stays valid after mint or renewal; 0 means no expiry.
    /// @param syncCredits Sync requests included with each purchase of the plan (mint, renewal,
    /// upgrade to it); unused by plans without expiry, whose tokens sync rate-limited instead.
    /// @param mintable Whether new tokens can be minted from (or upgraded to) the plan.
    /// @param renewable Whether tokens of the plan can be renewed (requires a validity).
    /// @param free Whether the plan is the free plan, claimable once per address.
    /// @param escrowShareBps Share of a PXToken-paid mint or renewal price (basis points, at most
    /// `MAX_ESCROW_SHARE_BPS`) routed into the token's escrow in the storage market (0: none).
    /// @param tokenPrice Price in PXToken (0: not payable in PXToken).
    /// @param nativePrice Price in native coin (0: not payable in native coin).
    struct Plan {
        uint64 quota;
        uint32 validity;
        uint16 syncCredits;
        bool mintable;
        bool renewable;
        bool free;
        uint16 escrowShareBps;
        uint128 tokenPrice;
        uint128 nativePrice;
    }

    /// @notice Everything the chain knows about a token's storage.
    /// @param quota Total quota in bytes (plan quota plus purchased extra quota).
    /// @param used Bytes used as of the last accepted sync.
    /// @param fileCount Files stored as of the last accepted sync.
    /// @param planId Plan the token was minted from or upgraded to.
    /// @param expiresAt Expiry time, wall-clock equivalent (0: never).
    /// @param lastSyncAt Time of the last accepted sync (the mint time before the first one),
    /// wall-clock equivalent.
    /// @param seq Sequence number of the last accepted usage record.
    /// @param pending Whether a sync request is waiting for its answer.
    /// @param requestedAt Time the last sync request was sent (wall clock).
    /// @param lastStatus Status of the last answered request (`SyncStatus.OK` or an error code).
    /// @param ipnsKey ed25519 public key of the token's IPNS name (0: none bound).
    /// @param syncCredits Prepaid sync requests left.
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
        uint32 syncCredits;
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
    /// @param planId The plan asked for.
    error PlanNotFound(uint256 planId);
    /// @notice The plan cannot be minted from or upgraded to.
    /// @param planId The plan asked for.
    error PlanNotMintable(uint256 planId);
    /// @notice The token's plan cannot be renewed (not renewable, or without expiry).
    /// @param planId The token's plan.
    error PlanNotRenewable(uint256 planId);
    /// @notice A plan or quota is out of bounds: zero quota, a validity above
    /// `MAX_PREPAID_PERIOD`, a free plan with a validity, an escrow share above
    /// `MAX_ESCROW_SHARE_BPS`, or a quota beyond 64 bits.
    error InvalidPlan();
    /// @notice The address already claimed the free plan.
    /// @param account The address that minted the free plan before.
    error FreePlanClaimed(address account);
    /// @notice The payment sent does not match any price of the plan.
    /// @param sent The native coin sent.
    /// @param nativePrice The native price asked.
    error WrongPayment(uint256 sent, uint256 nativePrice);
    /// @notice The PXToken price is above the caller's maximum.
    /// @param price The current price in PXToken.
    /// @param maxPrice The caller's maximum.
    error PriceAboveMax(uint256 price, uint256 maxPrice);
    /// @notice The plan (or extra quota) cannot be paid in the requested currency.
    error NotForSale();
    /// @notice The caller is neither owner nor approved for the token.
    /// @param tokenId The token.
    /// @param caller The caller.
    error NotTokenOwner(uint256 tokenId, address caller);
    /// @notice The token does not exist.
    /// @param tokenId The token.
    error TokenNotFound(uint256 tokenId);
    /// @notice An upgrade must move to a non-free plan with a larger quota, and a token without
    /// expiry on a paid plan only to another plan without expiry.
    /// @param fromPlanId The token's plan.
    /// @param toPlanId The plan asked for.
    error NotAnUpgrade(uint256 fromPlanId, uint256 toPlanId);
    /// @notice The purchase would push the token's expiry beyond `MAX_PREPAID_PERIOD` from now.
    /// @param expiresAt The expiry the purchase would give (service clock).
    /// @param maxExpiresAt The latest expiry allowed now (service clock).
    error PrepaidTooLong(uint256 expiresAt, uint256 maxExpiresAt);
    /// @notice An IPNS name is not a 38-byte ed25519 libp2p identity multihash.
    /// @param ipnsName The name given.
    error InvalidIpnsName(bytes ipnsName);
    /// @notice The IPNS key is already bound to a token.
    /// @param ipnsKey The key.
    /// @param tokenId The token it is bound to.
    error KeyInUse(bytes32 ipnsKey, uint256 tokenId);
    /// @notice The token already has an IPNS key.
    /// @param tokenId The token.
    error KeyAlreadySet(uint256 tokenId);
    /// @notice A key assignment's deadline has passed.
    /// @param deadline The assignment's deadline.
    error AssignmentExpired(uint256 deadline);
    /// @notice A key assignment was not signed by a registrar.
    /// @param signer The address the signature recovers to.
    error InvalidAssignment(address signer);
    /// @notice A sync request for the token is still pending and not yet expired.
    /// @param tokenId The token.
    /// @param requestId The pending request.
    error SyncPending(uint256 tokenId, bytes32 requestId);
    /// @notice The token was requested too recently.
    /// @param tokenId The token.
    /// @param nextAllowedAt The first time the next request is allowed (wall clock).
    error SyncTooSoon(uint256 tokenId, uint256 nextAllowedAt);
    /// @notice The token has no IPNS key to sync from.
    /// @param tokenId The token.
    error NoKey(uint256 tokenId);
    /// @notice The token has expired: renew it first.
    /// @param tokenId The token.
    error TokenExpired(uint256 tokenId);
    /// @notice The token has no prepaid sync credit left: renew (or upgrade) it first.
    /// @param tokenId The token.
    error NoSyncCredits(uint256 tokenId);
    /// @notice The caller is not the Operator the request was sent to (or the request is
    /// unknown, answered or cancelled).
    /// @param requestId The request the caller answered.
    /// @param caller The caller.
    error NotRequestOperator(bytes32 requestId, address caller);
    /// @notice The contract lacks LINK to pay the oracle.
    /// @param balance The contract's LINK balance.
    /// @param fee The fee a request costs.
    error InsufficientLink(uint256 balance, uint256 fee);
    /// @notice The LINK token refused to carry the request to the Operator.
    /// @param operator The Operator.
    /// @param fee The fee sent.
    error OracleRequestFailed(address operator, uint256 fee);
    /// @notice A zero address was given where one is required.
    error ZeroAddress();
    /// @notice The Operator is not a contract.
    /// @param operator The address given.
    error OperatorNotContract(address operator);
    /// @notice The LINK fee is above `MAX_LINK_FEE`.
    /// @param fee The fee given.
    error FeeTooLarge(uint256 fee);
    /// @notice An admin setting is outside its bounds.
    /// @param value The value given.
    /// @param min The smallest value allowed.
    /// @param max The largest value allowed.
    error OutOfBounds(uint256 value, uint256 min, uint256 max);
    /// @notice No oracle configuration is scheduled.
    error NoOracleConfigScheduled();
    /// @notice The scheduled oracle configuration cannot take effect yet.
    /// @param effectiveAt The time it can take effect.
    error OracleConfigNotReady(uint256 effectiveAt);
    /// @notice A native transfer failed.
    /// @param to The recipient.
    /// @param amount The amount.
    error NativeTransferFailed(address to, uint256 amount);
    /// @notice The contract is paused.
    error EnforcedPause();
    /// @notice The contract is not paused.
    error ExpectedPause();

    // ------------------------------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------------------------------

    /// @notice A plan was created.
    /// @param planId The new plan's id.
    /// @param plan The plan.
    event PlanCreated(uint256 indexed planId, Plan plan);
    /// @notice A plan's prices or flags changed.
    /// @param planId The plan.
    /// @param tokenPrice The new PXToken price.
    /// @param nativePrice The new native price.
    /// @param mintable Whether the plan can be minted from or upgraded to.
    /// @param renewable Whether tokens of the plan can be renewed.
    event PlanUpdated(
        uint256 indexed planId,
        uint128 tokenPrice,
        uint128 nativePrice,
        bool mintable,
        bool renewable
    );
    /// @notice A token was minted from a plan.
    /// @param tokenId The new token.
    /// @param owner The minter.
    /// @param planId The plan.
    event Minted(uint256 indexed tokenId, address indexed owner, uint256 indexed planId);
    /// @notice A token moved to a larger plan.
    /// @param tokenId The token.
    /// @param fromPlanId The plan it left.
    /// @param toPlanId The plan it moved to.
    event PlanUpgraded(
        uint256 indexed tokenId, uint256 indexed fromPlanId, uint256 indexed toPlanId
    );
    /// @notice A token's validity was extended.
    /// @param tokenId The token.
    /// @param expiresAt The new expiry (wall-clock equivalent).
    event Renewed(uint256 indexed tokenId, uint256 expiresAt);
    /// @notice Extra quota was bought for a token.
    /// @param tokenId The token.
    /// @param units Units of `QUOTA_UNIT` bytes bought.
    /// @param newQuota The token's quota afterwards.
    event QuotaPurchased(uint256 indexed tokenId, uint256 units, uint256 newQuota);
    /// @notice An IPNS key was bound to a token.
    /// @param tokenId The token.
    /// @param ipnsKey The key.
    /// @param registrar The registrar that bound or assigned it.
    event KeyRegistered(
        uint256 indexed tokenId, bytes32 indexed ipnsKey, address indexed registrar
    );
    /// @notice A token's IPNS key was released by a rebinding; it can be bound again.
    /// @param tokenId The token.
    /// @param ipnsKey The released key.
    event KeyReleased(uint256 indexed tokenId, bytes32 indexed ipnsKey);
    /// @notice A sync was requested through the Operator.
    /// @param tokenId The token.
    /// @param requestId The Chainlink request id.
    /// @param by The caller.
    event SyncRequested(uint256 indexed tokenId, bytes32 indexed requestId, address indexed by);
    /// @notice A usage record was accepted.
    /// @param tokenId The token.
    /// @param requestId The request answered.
    /// @param used Bytes used.
    /// @param fileCount Files stored.
    /// @param seq The record's sequence number.
    /// @param recordCid Binary CID of the usage record (its file index is what a new node
    /// takes over on a rebinding).
    event Synced(
        uint256 indexed tokenId,
        bytes32 indexed requestId,
        uint64 used,
        uint32 fileCount,
        uint64 seq,
        bytes recordCid
    );
    /// @notice A sync request was answered with an error, a stale record or a mismatched or
    /// malformed answer; usage did not change.
    /// @param tokenId The token the request was for.
    /// @param requestId The request answered.
    /// @param status The status recorded (`SyncStatus`).
    event SyncFailed(uint256 indexed tokenId, bytes32 indexed requestId, uint8 status);
    /// @notice An unanswered, expired request was given up (its LINK refunded when the
    /// Operator still held it).
    /// @param tokenId The token.
    /// @param requestId The request given up.
    event SyncCancelled(uint256 indexed tokenId, bytes32 indexed requestId);
    /// @notice The sync window changed.
    /// @param syncWindow The new window in seconds.
    event SyncWindowSet(uint256 syncWindow);
    /// @notice The minimum interval between sync requests changed.
    /// @param minSyncInterval The new interval in seconds.
    event MinSyncIntervalSet(uint256 minSyncInterval);
    /// @notice An oracle configuration was scheduled; it can take effect at `effectiveAt`.
    /// @param operator The Operator requests will go to.
    /// @param jobId The Chainlink job id.
    /// @param fee The LINK fee per request.
    /// @param effectiveAt The earliest time `applyOracleConfig` can apply it.
    event OracleConfigScheduled(
        address indexed operator, bytes32 jobId, uint256 fee, uint256 effectiveAt
    );
    /// @notice The oracle configuration in effect changed (at deployment or by
    /// `applyOracleConfig`).
    /// @param operator The Operator requests go to.
    /// @param jobId The Chainlink job id.
    /// @param fee The LINK fee per request.
    event OracleConfigSet(address indexed operator, bytes32 jobId, uint256 fee);
    /// @notice The price of one extra quota unit changed.
    /// @param tokenPrice The new PXToken price.
    /// @param nativePrice The new native price.
    event QuotaUnitPriceSet(uint128 tokenPrice, uint128 nativePrice);
    /// @notice The treasury changed.
    /// @param treasury The new treasury.
    event TreasurySet(address indexed treasury);
    /// @notice The storage market that plans' escrow shares go to was set.
    /// @param market The market.
    event MarketSet(address indexed market);
    /// @notice Fees were sent to the treasury.
    /// @param treasury The treasury.
    /// @param tokenAmount PXToken sent.
    /// @param nativeAmount Native coin sent.
    event FeesWithdrawn(address indexed treasury, uint256 tokenAmount, uint256 nativeAmount);
    /// @notice LINK was withdrawn from the contract.
    /// @param to The recipient.
    /// @param amount The amount.
    event LinkWithdrawn(address indexed to, uint256 amount);
    /// @notice The contract was paused; the service clock stopped.
    /// @param account The pauser.
    event Paused(address account);
    /// @notice The pause was lifted; the service clock runs again.
    /// @param account The pauser.
    event Unpaused(address account);

    // ------------------------------------------------------------------------------------------
    // Minting and plans
    // ------------------------------------------------------------------------------------------

    /// @notice Mints a token from `planId` to the caller. Pays the native price when `msg.value`
    /// is non-zero, the PXToken price (by allowance) otherwise; the free plan costs nothing
    /// and can be claimed once per address.
    /// @param planId The plan.
    /// @param maxTokenPrice The most PXToken the caller pays (ignored for native and free).
    /// @return tokenId The new token.
    function mint(uint256 planId, uint256 maxTokenPrice) external payable returns (uint256 tokenId);

    /// @notice `mint` paying in PXToken through an EIP-2612 permit of `maxTokenPrice`.
    /// @param planId The plan.
    /// @param maxTokenPrice The permit's value and the most PXToken the caller pays.
    /// @param deadline The permit's deadline.
    /// @param v The permit signature's v.
    /// @param r The permit signature's r.
    /// @param s The permit signature's s.
    /// @return tokenId The new token.
    function mintWithPermit(
        uint256 planId,
        uint256 maxTokenPrice,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external returns (uint256 tokenId);

    /// @notice Mints and binds `ipnsName` in one call, with the name assigned by a registrar
    /// through an EIP-712 `KeyAssignment(address minter,bytes ipnsName,uint256 deadline)`
    /// signature. A name can be bound to one token at a time.
    /// @param planId The plan.
    /// @param maxTokenPrice The most PXToken the caller pays (ignored for native and free).
    /// @param ipnsName The 38-byte IPNS name.
    /// @param deadline The assignment's deadline.
    /// @param signature The registrar's signature of the assignment.
    /// @return tokenId The new token.
    function mintWithKey(
        uint256 planId,
        uint256 maxTokenPrice,
        bytes calldata ipnsName,
        uint256 deadline,
        bytes calldata signature
    ) external payable returns (uint256 tokenId);

    /// @notice Binds `ipnsName` to a token that has no key yet. Registrar only.
    /// @param tokenId The token.
    /// @param ipnsName The 38-byte IPNS name.
    function registerKey(uint256 tokenId, bytes calldata ipnsName) external;

    /// @notice Moves a token to another storage node: binds `ipnsName` (the new node's key) in
    /// place of the current key, which is released. Owner or approved only, with the new node
    /// registrar's EIP-712 `KeyRebinding(uint256 tokenId,bytes32 currentKey,bytes ipnsName,
    /// uint256 deadline)` signature (`currentKey` is the token's key when signed, so an
    /// assignment is good for one move). Usage, sequence, sync time and credits carry over: the
    /// new node publishes records above the last synced sequence. An expired pending request is
    /// given up (its credit returned); a pending one that has not expired makes it revert.
    /// @param tokenId The token.
    /// @param ipnsName The new node's 38-byte IPNS name for the token.
    /// @param deadline The assignment's deadline.
    /// @param signature The new node registrar's signature of the assignment.
    function rebindKey(
        uint256 tokenId,
        bytes calldata ipnsName,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Moves a token to a non-free plan with a larger quota, paying that plan's price.
    /// Purchased extra quota is kept; the new plan's validity starts now and the prepaid time
    /// left on the old plan is added, converted at the two plans' prices (PXToken prices if both
    /// have one, else native prices, else quotas). The new plan's sync credits are added. Usage
    /// and sync state are untouched. Owner or approved only.
    /// @param tokenId The token.
    /// @param planId The plan to move to (must be mintable).
    /// @param maxTokenPrice The most PXToken the caller pays (ignored for native).
    function upgradePlan(uint256 tokenId, uint256 planId, uint256 maxTokenPrice) external payable;

    /// @notice Extends a token's validity by its plan's period (from its expiry, or from now if
    /// it has expired) and adds the plan's sync credits, paying the plan's price. Refuses plans
    /// without expiry or not renewable, and expiries beyond `MAX_PREPAID_PERIOD` from now.
    /// @param tokenId The token (anyone may pay for its renewal).
    /// @param maxTokenPrice The most PXToken the caller pays (ignored for native).
    function renew(uint256 tokenId, uint256 maxTokenPrice) external payable;

    /// @notice Buys `units` of extra quota (`QUOTA_UNIT` bytes each).
    /// @param tokenId The token (anyone may pay for it).
    /// @param units Units to buy.
    /// @param maxTokenPrice The most PXToken the caller pays in total (ignored for native).
    function buyQuota(uint256 tokenId, uint256 units, uint256 maxTokenPrice) external payable;

    // ------------------------------------------------------------------------------------------
    // Sync
    // ------------------------------------------------------------------------------------------

    /// @notice Sends a Chainlink direct request for the token's usage, with the LINK fee paid
    /// from this contract's balance. Owner or approved only; not for expired tokens; spends one
    /// sync credit (tokens with an expiry) or is rate-limited (tokens without); one pending
    /// request per token. An unanswered request is given up once the Operator lets it expire
    /// (its LINK refunded if the Operator still holds it) and replaced free of charge.
    /// @param tokenId The token.
    /// @return requestId The Chainlink request id.
    function requestSync(uint256 tokenId) external returns (bytes32 requestId);

    /// @notice The Operator's callback (through `fulfillOracleRequest2`). Only the Operator the
    /// request was sent to can call it, once. It never reverts after that check: the token is
    /// the request's own; an answer naming another token is recorded as
    /// `SyncStatus.WRONG_TOKEN`, an `OK` answer without a record CID as
    /// `SyncStatus.MALFORMED_ANSWER`, an `OK` answer not above the last synced sequence as
    /// `SyncStatus.STALE_SEQUENCE`; any other status is recorded and changes no usage.
    /// @param requestId The request answered.
    /// @param tokenId The token the answer is about.
    /// @param status `SyncStatus.OK` or an error code.
    /// @param used Bytes used.
    /// @param fileCount Files stored.
    /// @param seq The usage record's sequence number.
    /// @param recordCid Binary CID of the usage record.
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
    /// Never reverts.
    /// @param tokenId The token.
    /// @param size Bytes to upload.
    /// @return ok Whether the upload is allowed.
    /// @return reason Why not (`Reason.None` if allowed).
    function canUpload(uint256 tokenId, uint256 size) external view returns (bool ok, Reason reason);

    /// @notice The token's storage state.
    /// @param tokenId The token.
    /// @return info The state.
    function tokenInfo(uint256 tokenId) external view returns (TokenInfo memory info);

    /// @notice The token's IPNS name as bytes.
    /// @param tokenId The token.
    /// @return name The 38-byte identity multihash (empty if none is bound).
    function ipnsName(uint256 tokenId) external view returns (bytes memory name);

    /// @notice The token bound to an IPNS key.
    /// @param ipnsKey The ed25519 public key.
    /// @return tokenId The token (0: none).
    function tokenOfKey(bytes32 ipnsKey) external view returns (uint256 tokenId);

    /// @notice A plan.
    /// @param planId The plan.
    /// @return plan The plan.
    function plan(uint256 planId) external view returns (Plan memory plan);

    /// @notice Number of plans; ids run from 1 to `planCount()`.
    /// @return count The number of plans.
    function planCount() external view returns (uint256 count);

    /// @notice Whether `account` already claimed the free plan.
    /// @param account The address.
    /// @return claimed Whether it did.
    function freePlanClaimed(address account) external view returns (bool claimed);

    /// @notice Seconds after the last sync during which uploads stay open (service clock).
    /// @return window The sync window.
    function syncWindow() external view returns (uint256 window);

    /// @notice Minimum seconds between two sync requests for one token.
    /// @return interval The interval.
    function minSyncInterval() external view returns (uint256 interval);

    /// @notice The oracle configuration in effect.
    /// @return operator The Operator requests go to.
    /// @return jobId The Chainlink job id.
    /// @return fee The LINK fee per request.
    function oracleConfig() external view returns (address operator, bytes32 jobId, uint256 fee);

    /// @notice The scheduled oracle configuration (all zero if none).
    /// @return operator The Operator requests will go to.
    /// @return jobId The Chainlink job id.
    /// @return fee The LINK fee per request.
    /// @return effectiveAt The earliest time it can be applied.
    function pendingOracleConfig()
        external
        view
        returns (address operator, bytes32 jobId, uint256 fee, uint256 effectiveAt);

    /// @notice Whether the contract is paused (no mints, purchases, requests or rebindings;
    /// the service clock stands still).
    /// @return isPaused Whether it is.
    function paused() external view returns (bool isPaused);

    /// @notice EIP-712 digest a registrar signs to assign `ipnsName` to `minter` for a mint.
    /// @param minter The address that will mint.
    /// @param ipnsName The 38-byte IPNS name.
    /// @param deadline The assignment's deadline.
    /// @return digest The digest.
    function keyAssignmentDigest(address minter, bytes calldata ipnsName, uint256 deadline)
        external
        view
        returns (bytes32 digest);

    /// @notice EIP-712 digest a registrar signs to take over `tokenId` under `ipnsName`; it
    /// includes the token's current key, so it is valid only while that key is bound.
    /// @param tokenId The token.
    /// @param ipnsName The new node's 38-byte IPNS name for the token.
    /// @param deadline The assignment's deadline.
    /// @return digest The digest.
    function keyRebindingDigest(uint256 tokenId, bytes calldata ipnsName, uint256 deadline)
        external
        view
        returns (bytes32 digest);

    // ------------------------------------------------------------------------------------------
    // Administration
    // ------------------------------------------------------------------------------------------

    /// @notice Creates a plan. Admin only.
    /// @param plan The plan (non-zero quota; validity at most `MAX_PREPAID_PERIOD`; a free plan
    /// has no validity).
    /// @return planId The new plan's id.
    function createPlan(Plan calldata plan) external returns (uint256 planId);

    /// @notice Changes a plan's prices and flags (quota, validity and credits are fixed). Admin
    /// only. Holders are protected from price rises by the `maxTokenPrice` arguments and by
    /// the exact native price.
    /// @param planId The plan.
    /// @param tokenPrice The new PXToken price.
    /// @param nativePrice The new native price.
    /// @param mintable Whether the plan can be minted from or upgraded to.
    /// @param renewable Whether tokens of the plan can be renewed.
    function updatePlan(
        uint256 planId,
        uint128 tokenPrice,
        uint128 nativePrice,
        bool mintable,
        bool renewable
    ) external;

    /// @notice Sets the sync window, between `MIN_SYNC_WINDOW` and `MAX_SYNC_WINDOW`. Admin
    /// only.
    /// @param syncWindow The window in seconds.
    function setSyncWindow(uint256 syncWindow) external;

    /// @notice Sets the minimum interval between sync requests, at most
    /// `MAX_MIN_SYNC_INTERVAL`. Admin only.
    /// @param minSyncInterval The interval in seconds.
    function setMinSyncInterval(uint256 minSyncInterval) external;

    /// @notice Schedules an oracle configuration; `applyOracleConfig` puts it into effect
    /// `ORACLE_CONFIG_DELAY` later. A new schedule replaces the previous one (scheduling the
    /// configuration in effect cancels a change). Admin only.
    /// @param operator The Operator (a contract).
    /// @param jobId The Chainlink job id.
    /// @param fee The LINK fee per request, at most `MAX_LINK_FEE`.
    function scheduleOracleConfig(address operator, bytes32 jobId, uint256 fee) external;

    /// @notice Puts the scheduled oracle configuration into effect once its delay has passed.
    /// Anyone may call it. Requests already sent stay with the Operator they went to.
    function applyOracleConfig() external;

    /// @notice Sets the price of one extra quota unit. Admin only.
    /// @param tokenPrice The PXToken price.
    /// @param nativePrice The native price.
    function setQuotaUnitPrice(uint128 tokenPrice, uint128 nativePrice) external;

    /// @notice Sets the treasury fees go to. Admin only.
    /// @param treasury The treasury.
    function setTreasury(address treasury) external;

    /// @notice Sets the storage market that plans' escrow shares are paid into (a plan with a
    /// share cannot be bought before). Admin only.
    /// @param market The market (`IStorageMarket`: it credits what StorageNFT sends it).
    function setMarket(address market) external;

    /// @notice Sends all collected PXToken and native fees to the treasury. Admin only.
    function withdrawFees() external;

    /// @notice Withdraws LINK held for oracle payments (requests fail without it). Admin only.
    /// @param to The recipient.
    /// @param amount The amount.
    function withdrawLink(address to, uint256 amount) external;

    /// @notice Pauses minting, purchases, sync requests, rebindings and uploads, and stops the
    /// service clock. Pauser only.
    function pause() external;

    /// @notice Lifts the pause; the service clock runs again. Pauser only.
    function unpause() external;
}
