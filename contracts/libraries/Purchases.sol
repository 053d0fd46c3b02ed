// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC4906} from "@openzeppelin/contracts/interfaces/IERC4906.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {IStorageNFT} from "../interfaces/IStorageNFT.sol";

/// @dev The storage market's entry point for plan shares (see `IStorageMarket.credit`).
interface IEscrowFunding {
    function credit(uint256 tokenId, uint256 amount) external;
}

/// @dev Where plans' escrow shares go (a struct so that it is read only when a share is due).
struct MarketRef {
    address market;
}

/// @dev Storage state of a token that minting writes; times on StorageNFT's service clock. Fits
/// one slot (64+64+32+16+40+40).
struct TokenState {
    uint64 quota;
    uint64 used;
    uint32 fileCount;
    uint16 planId;
    uint40 expiresAt;
    uint40 lastSyncAt;
}

/// @dev Sync bookkeeping: requests, answers and credits. `requests` numbers the token's
/// requests; the pending one's id derives from it. Fits one slot (64+40+64+8+8+32+32).
struct SyncState {
    uint64 seq;
    uint40 requestedAt;
    uint64 fee;
    bool pending;
    uint8 lastStatus;
    uint32 requests;
    uint32 syncCredits;
}

/// @title Purchases
/// @notice What paying for an existing token changes: a plan upgrade (the prepaid time left
/// converted into time on the new plan), a renewal and extra quota. Payment is the exact native
/// price when coin is sent, else the PXToken price up to the caller's maximum.
/// @dev Internal functions on StorageNFT's storage, `msg.sender` and `msg.value`. StorageNFT
/// checks the caller and the pause before calling; these functions check plans, prices and
/// bounds.
library Purchases {
    using SafeERC20 for IERC20;

    /// @notice Longest time ahead a token can be paid for (and longest plan validity).
    uint256 internal constant MAX_PREPAID_PERIOD = 10 * 365 days;
    /// @notice Bytes in one unit of extra quota (1 GiB).
    uint256 internal constant QUOTA_UNIT = 1 << 30;
    /// @notice Largest share of a plan's price routed into a token's market escrow (50%).
    uint256 internal constant MAX_ESCROW_SHARE_BPS = 5000;

    /// @notice Moves token `tokenId` to plan `planId` (see `IStorageNFT.upgradePlan`).
    /// @param tokens StorageNFT's token states.
    /// @param syncs StorageNFT's sync states.
    /// @param plans StorageNFT's plans.
    /// @param tokenId The token.
    /// @param planId The plan to move to.
    /// @param now_ The service clock.
    /// @param pxToken The PXToken.
    /// @param maxTokenPrice The most PXToken the caller pays.
    function upgrade(
        mapping(uint256 => TokenState) storage tokens,
        mapping(uint256 => SyncState) storage syncs,
        IStorageNFT.Plan[] storage plans,
        uint256 tokenId,
        uint256 planId,
        uint256 now_,
        IERC20 pxToken,
        uint256 maxTokenPrice
    ) internal {
        TokenState storage t = tokens[tokenId];
        uint256 fromPlanId = t.planId;
        IStorageNFT.Plan memory from = plans[fromPlanId - 1];
        if (planId == 0 || planId > plans.length) revert IStorageNFT.PlanNotFound(planId);
        IStorageNFT.Plan memory to = plans[planId - 1];
        if (!to.mintable) revert IStorageNFT.PlanNotMintable(planId);
        // A paid token without expiry may only move to another plan without expiry.
        if (
            to.free || to.quota <= from.quota
                || (from.validity == 0 && !from.free && to.validity != 0)
        ) {
            revert IStorageNFT.NotAnUpgrade(fromPlanId, planId);
        }
        collect(pxToken, to.tokenPrice, to.nativePrice, maxTokenPrice);
        // Plan quotas are immutable, so the purchased extra is the total minus the old plan's.
        t.quota = t.quota - from.quota + to.quota;
        // casting is safe: planId <= planCount() <= type(uint16).max (enforced by createPlan)
        // forge-lint: disable-next-line(unsafe-typecast)
        t.planId = uint16(planId);
        uint256 expiresAt = 0;
        if (to.validity != 0) {
            uint256 left = t.expiresAt > now_ ? t.expiresAt - now_ : 0;
            expiresAt = now_ + to.validity + convertTime(left, from, to);
            checkPrepaid(expiresAt, now_);
            addCredits(syncs[tokenId], to.syncCredits);
        }
        // casting is safe: checkPrepaid bounds it by now + MAX_PREPAID_PERIOD
        // forge-lint: disable-next-line(unsafe-typecast)
        t.expiresAt = uint40(expiresAt);
        emit IStorageNFT.PlanUpgraded(tokenId, fromPlanId, planId);
        emit IERC4906.MetadataUpdate(tokenId);
    }

    /// @notice Renews token `tokenId` (see `IStorageNFT.renew`).
    /// @param tokens StorageNFT's token states.
    /// @param syncs StorageNFT's sync states.
    /// @param plans StorageNFT's plans.
    /// @param tokenId The token.
    /// @param now_ The service clock.
    /// @param shift Wall clock minus service clock, for the event.
    /// @param pxToken The PXToken.
    /// @param maxTokenPrice The most PXToken the caller pays.
    /// @param market The storage market the plan's escrow share goes to.
    function renew(
        mapping(uint256 => TokenState) storage tokens,
        mapping(uint256 => SyncState) storage syncs,
        IStorageNFT.Plan[] storage plans,
        uint256 tokenId,
        uint256 now_,
        uint256 shift,
        IERC20 pxToken,
        uint256 maxTokenPrice,
        MarketRef storage market
    ) internal {
        TokenState storage t = tokens[tokenId];
        uint256 planId = t.planId;
        IStorageNFT.Plan memory p = plans[planId - 1];
        if (!p.renewable || p.validity == 0) revert IStorageNFT.PlanNotRenewable(planId);
        collect(pxToken, p.tokenPrice, p.nativePrice, maxTokenPrice);
        uint256 base = t.expiresAt > now_ ? t.expiresAt : now_;
        uint256 expiresAt = base + p.validity;
        checkPrepaid(expiresAt, now_);
        // casting is safe: checkPrepaid bounds it by now + MAX_PREPAID_PERIOD
        // forge-lint: disable-next-line(unsafe-typecast)
        t.expiresAt = uint40(expiresAt);
        addCredits(syncs[tokenId], p.syncCredits);
        emit IStorageNFT.Renewed(tokenId, expiresAt + shift);
        route(pxToken, market, tokenId, p);
    }

    /// @notice Adds `units` of extra quota to token `tokenId` (see `IStorageNFT.buyQuota`).
    /// @param t The token's state.
    /// @param tokenId The token.
    /// @param units Units of `QUOTA_UNIT` bytes.
    /// @param unitTokenPrice PXToken price of a unit.
    /// @param unitNativePrice Native price of a unit.
    /// @param pxToken The PXToken.
    /// @param maxTokenPrice The most PXToken the caller pays in total.
    function buyQuota(
        TokenState storage t,
        uint256 tokenId,
        uint256 units,
        uint256 unitTokenPrice,
        uint256 unitNativePrice,
        IERC20 pxToken,
        uint256 maxTokenPrice
    ) internal {
        if (units == 0) revert IStorageNFT.NotForSale();
        if (units > (type(uint64).max - t.quota) / QUOTA_UNIT) revert IStorageNFT.InvalidPlan();
        collect(pxToken, units * unitTokenPrice, units * unitNativePrice, maxTokenPrice);
        uint256 quota = t.quota + units * QUOTA_UNIT;
        // casting is safe: units is bounded above so that quota fits 64 bits
        // forge-lint: disable-next-line(unsafe-typecast)
        t.quota = uint64(quota);
        emit IStorageNFT.QuotaPurchased(tokenId, units, quota);
        emit IERC4906.MetadataUpdate(tokenId);
    }

    /// @notice Takes payment: the native price if `msg.value` is non-zero, else the PXToken
    /// price (by allowance, at most `maxTokenPrice`).
    /// @dev Called only from StorageNFT's payable purchase functions and from `mintWithPermit`,
    /// which is not payable, so `msg.value` is 0 there (slither cannot follow the library call).
    /// @param pxToken The PXToken.
    /// @param tokenPrice The PXToken price (0: not payable in PXToken).
    /// @param nativePrice The native price (0: not payable in native coin).
    /// @param maxTokenPrice The most PXToken the caller pays.
    // slither-disable-next-line msg-value-in-nonpayable
    function collect(IERC20 pxToken, uint256 tokenPrice, uint256 nativePrice, uint256 maxTokenPrice)
        internal
    {
        if (msg.value != 0) {
            if (nativePrice == 0 || msg.value != nativePrice) {
                revert IStorageNFT.WrongPayment(msg.value, nativePrice);
            }
        } else if (tokenPrice != 0) {
            if (tokenPrice > maxTokenPrice) {
                revert IStorageNFT.PriceAboveMax(tokenPrice, maxTokenPrice);
            }
            pxToken.safeTransferFrom(msg.sender, address(this), tokenPrice);
        } else if (nativePrice != 0) {
            revert IStorageNFT.WrongPayment(0, nativePrice);
        } else {
            revert IStorageNFT.NotForSale();
        }
    }

    /// @notice Pays the plan's escrow share of a PXToken payment into the token's escrow in the
    /// storage market: sends it and has the market credit it (`IStorageMarket.credit`); nothing
    /// for native payments or a zero share. Before `setMarket` a plan with a share cannot be
    /// bought (the transfer to address 0 reverts).
    /// @param pxToken The PXToken.
    /// @param market The storage market.
    /// @param tokenId The token.
    /// @param p The plan paid for.
    // slither-disable-next-line msg-value-in-nonpayable
    function route(
        IERC20 pxToken,
        MarketRef storage market,
        uint256 tokenId,
        IStorageNFT.Plan memory p
    ) internal {
        uint256 share = uint256(p.tokenPrice) * p.escrowShareBps / 10_000;
        if (share == 0 || msg.value != 0) return;
        address to = market.market;
        pxToken.safeTransfer(to, share);
        IEscrowFunding(to).credit(tokenId, share);
    }

    /// @notice Adds sync credits, saturating at the 32-bit maximum.
    /// @param s The token's sync state.
    /// @param credits Credits to add.
    function addCredits(SyncState storage s, uint256 credits) internal {
        uint256 sum = s.syncCredits + credits;
        // casting is safe: bounded by type(uint32).max
        // forge-lint: disable-next-line(unsafe-typecast)
        s.syncCredits = sum > type(uint32).max ? type(uint32).max : uint32(sum);
    }

    /// @notice Reverts if `expiresAt` lies more than `MAX_PREPAID_PERIOD` after `now_`.
    /// @param expiresAt The expiry a purchase would give.
    /// @param now_ The service clock.
    function checkPrepaid(uint256 expiresAt, uint256 now_) internal pure {
        uint256 maxExpiresAt = now_ + MAX_PREPAID_PERIOD;
        if (expiresAt > maxExpiresAt) revert IStorageNFT.PrepaidTooLong(expiresAt, maxExpiresAt);
    }

    /// @notice Prepaid time left on `from` converted into time on `to` of the same value: at the
    /// plans' PXToken prices if both have one, else their native prices, else their quotas.
    /// @param left Seconds left on `from` (0 unless `from` has a validity).
    /// @param from The plan the token leaves.
    /// @param to The plan the token moves to.
    /// @return Seconds of `to`.
    function convertTime(uint256 left, IStorageNFT.Plan memory from, IStorageNFT.Plan memory to)
        internal
        pure
        returns (uint256)
    {
        // A token has time left only on a plan with a validity, so from.validity != 0.
        if (left == 0) return 0;
        if (from.tokenPrice != 0 && to.tokenPrice != 0) {
            return left * from.tokenPrice * to.validity / (uint256(from.validity) * to.tokenPrice);
        }
        if (from.nativePrice != 0 && to.nativePrice != 0) {
            return left * from.nativePrice * to.validity / (uint256(from.validity) * to.nativePrice);
        }
        return left * from.quota / to.quota;
    }
}
