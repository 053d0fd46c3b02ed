// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IProviderRegistry
/// @notice Storage providers on chain: each registers a listing (endpoint, region, capacity,
/// price per GiB-month in PXToken) with a PXToken stake of at least `minStake`. A certifier role
/// certifies and decertifies providers. A provider can update its listing, pause, and exit: its
/// stake unlocks `unbondingDelay` after it asks to exit and only when it holds no active deal.
/// Only the storage market reserves capacity for deals, releases it, and slashes stake.
/// @dev A provider is *active* (listed: deals can be opened with it) while it is registered, not
/// paused, not exiting and holds at least `minStake`; a slash below the minimum delists it until
/// it adds stake.
interface IProviderRegistry {
    /// @notice A provider's listing and state, as the views return it.
    /// @param provider The provider's address (its signing key).
    /// @param endpoint URL of its storage endpoint.
    /// @param region Region code (e.g. an ISO 3166-1 numeric country code; 0: none given).
    /// @param capacity Bytes it offers.
    /// @param reserved Bytes reserved by its active deals.
    /// @param pricePerGiBMonth PXToken (wei) per GiB per 30 days.
    /// @param stake PXToken staked.
    /// @param unbondsAt When its stake unlocks (0: not exiting).
    /// @param activeDeals Deals it holds that are not over.
    /// @param certified Whether a certifier certified it.
    /// @param paused Whether it paused its listing.
    /// @param active Whether deals can be opened with it.
    struct Listing {
        address provider;
        string endpoint;
        uint16 region;
        uint64 capacity;
        uint64 reserved;
        uint128 pricePerGiBMonth;
        uint96 stake;
        uint40 unbondsAt;
        uint32 activeDeals;
        bool certified;
        bool paused;
        bool active;
    }

    /// @notice What `listProviders` keeps; zero fields do not filter.
    /// @param onlyActive Only active providers.
    /// @param onlyCertified Only certified providers.
    /// @param region Only this region (0: any).
    /// @param maxPrice Only providers at most this price per GiB-month (0: any).
    /// @param minFreeCapacity Only providers with at least these bytes unreserved.
    struct Filter {
        bool onlyActive;
        bool onlyCertified;
        uint16 region;
        uint128 maxPrice;
        uint64 minFreeCapacity;
    }

    // ------------------------------------------------------------------------------------------
    // Errors
    // ------------------------------------------------------------------------------------------

    /// @notice The address is not a registered provider.
    /// @param provider The address.
    error NotRegistered(address provider);
    /// @notice The address is already registered.
    /// @param provider The address.
    error AlreadyRegistered(address provider);
    /// @notice The stake is below the minimum.
    /// @param stake The stake it would have.
    /// @param minStake The minimum.
    error StakeTooLow(uint256 stake, uint256 minStake);
    /// @notice A listing has an empty or over-long endpoint or zero capacity.
    /// @param endpointLength The endpoint's length in bytes.
    /// @param capacity The capacity given.
    error InvalidListing(uint256 endpointLength, uint256 capacity);
    /// @notice Only the storage market may call this.
    /// @param caller The caller.
    error NotMarket(address caller);
    /// @notice The market is already set.
    /// @param market The market.
    error MarketAlreadySet(address market);
    /// @notice The provider already asked to exit.
    /// @param provider The provider.
    error Exiting(address provider);
    /// @notice The provider's stake is still bonded: it has not asked to exit, or the unbonding
    /// delay has not passed.
    /// @param provider The provider.
    /// @param unbondsAt When its stake unlocks (0: it has not asked to exit).
    error StillBonded(address provider, uint256 unbondsAt);
    /// @notice The provider holds active deals.
    /// @param provider The provider.
    /// @param activeDeals How many.
    error HasActiveDeals(address provider, uint256 activeDeals);
    /// @notice The provider cannot take a deal: not active, or too little free capacity.
    /// @param provider The provider.
    /// @param free Its unreserved bytes (0 when inactive).
    /// @param wanted The bytes the deal reserves.
    error CannotTakeDeal(address provider, uint256 free, uint256 wanted);
    /// @notice A setting is outside its bounds.
    /// @param value The value given.
    /// @param min The smallest value allowed.
    /// @param max The largest value allowed.
    error OutOfBounds(uint256 value, uint256 min, uint256 max);
    /// @notice A zero address was given where one is required.
    error ZeroAddress();

    // ------------------------------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------------------------------

    /// @notice A provider registered.
    /// @param provider The provider.
    /// @param endpoint Its endpoint URL.
    /// @param region Its region code.
    /// @param capacity Bytes offered.
    /// @param pricePerGiBMonth Its price.
    /// @param stake Its stake.
    event ProviderRegistered(
        address indexed provider,
        string endpoint,
        uint16 indexed region,
        uint64 capacity,
        uint128 pricePerGiBMonth,
        uint256 stake
    );
    /// @notice A provider changed its listing.
    /// @param provider The provider.
    /// @param endpoint Its endpoint URL.
    /// @param region Its region code.
    /// @param capacity Bytes offered.
    /// @param pricePerGiBMonth Its price.
    event ListingUpdated(
        address indexed provider,
        string endpoint,
        uint16 indexed region,
        uint64 capacity,
        uint128 pricePerGiBMonth
    );
    /// @notice A provider added stake.
    /// @param provider The provider.
    /// @param amount PXToken added.
    /// @param stake Its stake now.
    event StakeAdded(address indexed provider, uint256 amount, uint256 stake);
    /// @notice A provider paused or resumed its listing.
    /// @param provider The provider.
    /// @param paused Whether it is paused now.
    event ProviderPaused(address indexed provider, bool paused);
    /// @notice A provider asked to exit; its listing is inactive from now on.
    /// @param provider The provider.
    /// @param unbondsAt When its stake unlocks (if it holds no active deal then).
    event ExitRequested(address indexed provider, uint256 unbondsAt);
    /// @notice A provider withdrew its stake and left the registry.
    /// @param provider The provider.
    /// @param amount PXToken returned.
    event StakeWithdrawn(address indexed provider, uint256 amount);
    /// @notice A certifier certified a provider.
    /// @param provider The provider.
    /// @param certifier The certifier.
    event ProviderCertified(address indexed provider, address indexed certifier);
    /// @notice A certifier withdrew a provider's certification.
    /// @param provider The provider.
    /// @param certifier The certifier.
    /// @param reason Reason code (off-chain meaning, e.g. 1: failed audit, 2: SLA breach).
    event ProviderDecertified(address indexed provider, address indexed certifier, uint16 reason);
    /// @notice The market reserved capacity for a deal.
    /// @param provider The provider.
    /// @param size Bytes reserved.
    /// @param reserved Its reserved bytes now.
    event CapacityReserved(address indexed provider, uint256 size, uint256 reserved);
    /// @notice A deal ended and its capacity was released.
    /// @param provider The provider.
    /// @param size Bytes released.
    /// @param reserved Its reserved bytes now.
    event CapacityReleased(address indexed provider, uint256 size, uint256 reserved);
    /// @notice The market slashed a provider's stake (sent to the market).
    /// @param provider The provider.
    /// @param amount PXToken slashed.
    /// @param stake Its stake now.
    event ProviderSlashed(address indexed provider, uint256 amount, uint256 stake);
    /// @notice A slash left a provider below the minimum stake: it is delisted until it adds
    /// stake.
    /// @param provider The provider.
    /// @param stake Its stake now.
    event ProviderDelisted(address indexed provider, uint256 stake);
    /// @notice The storage market was set.
    /// @param market The market.
    event MarketSet(address indexed market);
    /// @notice The minimum stake was changed.
    /// @param minStake The minimum.
    event MinStakeSet(uint256 minStake);
    /// @notice The unbonding delay was changed.
    /// @param delay Seconds.
    event UnbondingDelaySet(uint256 delay);

    // ------------------------------------------------------------------------------------------
    // Providers
    // ------------------------------------------------------------------------------------------

    /// @notice Registers the caller as a provider, pulling `stake` PXToken (allowance).
    /// @param endpoint URL of its storage endpoint (1 to 256 bytes).
    /// @param region Region code.
    /// @param capacity Bytes offered (non-zero).
    /// @param pricePerGiBMonth PXToken (wei) per GiB per 30 days.
    /// @param stake PXToken staked (at least `minStake`).
    function registerProvider(
        string calldata endpoint,
        uint16 region,
        uint64 capacity,
        uint128 pricePerGiBMonth,
        uint96 stake
    ) external;

    /// @notice Changes the caller's listing; deals already open keep their price.
    /// @param endpoint URL of its storage endpoint (1 to 256 bytes).
    /// @param region Region code.
    /// @param capacity Bytes offered (non-zero).
    /// @param pricePerGiBMonth PXToken (wei) per GiB per 30 days.
    function updateListing(
        string calldata endpoint,
        uint16 region,
        uint64 capacity,
        uint128 pricePerGiBMonth
    ) external;

    /// @notice Adds `amount` PXToken to the caller's stake (allowance); lifts a delisting once
    /// the stake reaches the minimum.
    /// @param amount PXToken added.
    function addStake(uint96 amount) external;

    /// @notice Pauses or resumes the caller's listing (open deals go on).
    /// @param paused Whether to pause.
    function setPaused(bool paused) external;

    /// @notice Starts the caller's exit: the listing is inactive from now on and the stake
    /// unlocks after `unbondingDelay`.
    function requestExit() external;

    /// @notice Returns the caller's whole stake and removes it from the registry, once the
    /// unbonding delay has passed and it holds no active deal.
    function withdrawStake() external;

    // ------------------------------------------------------------------------------------------
    // Certifier, market and admin
    // ------------------------------------------------------------------------------------------

    /// @notice Certifies a registered provider. Certifier only.
    /// @param provider The provider.
    function certify(address provider) external;

    /// @notice Withdraws a provider's certification. Certifier only.
    /// @param provider The provider.
    /// @param reason Reason code.
    function decertify(address provider, uint16 reason) external;

    /// @notice Reserves `size` bytes of an active provider's capacity for a new deal and returns
    /// its price. Market only.
    /// @param provider The provider.
    /// @param size Bytes to reserve.
    /// @return pricePerGiBMonth The provider's current price.
    function reserve(address provider, uint64 size) external returns (uint128 pricePerGiBMonth);

    /// @notice Releases the capacity of a deal that ended. Market only.
    /// @param provider The provider.
    /// @param size Bytes to release.
    function release(address provider, uint64 size) external;

    /// @notice Slashes up to `amount` of a provider's stake and sends it to the market. Market
    /// only.
    /// @param provider The provider.
    /// @param amount PXToken to slash.
    /// @return slashed What was slashed (at most its stake).
    function slash(address provider, uint256 amount) external returns (uint256 slashed);

    /// @notice Sets the storage market, once. Admin only.
    /// @param market The market.
    function setMarket(address market) external;

    /// @notice Sets the minimum stake (at most `MAX_MIN_STAKE`). Admin only.
    /// @param minStake The minimum.
    function setMinStake(uint96 minStake) external;

    /// @notice Sets the unbonding delay (`MIN_UNBONDING_DELAY` to `MAX_UNBONDING_DELAY`). Admin
    /// only.
    /// @param delay Seconds.
    function setUnbondingDelay(uint40 delay) external;

    // ------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------

    /// @notice A provider's listing and state (zero fields if it never registered).
    /// @param provider The provider.
    /// @return listing Its listing.
    function providerOf(address provider) external view returns (Listing memory listing);

    /// @notice A provider's stake.
    /// @param provider The provider.
    /// @return stake PXToken.
    function stakeOf(address provider) external view returns (uint256 stake);

    /// @notice Whether deals can be opened with `provider`.
    /// @param provider The provider.
    /// @return active Whether it is active.
    function isActive(address provider) external view returns (bool active);

    /// @notice How many addresses ever registered (the range `listProviders` pages through).
    /// @return count The count.
    function providerCount() external view returns (uint256 count);

    /// @notice A page of the providers matching `filter`, in registration order, from index
    /// `cursor`; scans until `limit` match or the list ends. Exited providers are skipped.
    /// @param cursor Index to start at (0 for the first page).
    /// @param limit Most listings to return.
    /// @param filter What to keep.
    /// @return page The matching listings.
    /// @return next The cursor of the next page (`providerCount()` once the list is done).
    function listProviders(uint256 cursor, uint256 limit, Filter calldata filter)
        external
        view
        returns (Listing[] memory page, uint256 next);

    /// @notice The minimum stake.
    /// @return minStake PXToken.
    function minStake() external view returns (uint256 minStake);

    /// @notice The unbonding delay.
    /// @return delay Seconds.
    function unbondingDelay() external view returns (uint256 delay);

    /// @notice The storage market.
    /// @return market The market (0: not set yet).
    function market() external view returns (address market);
}
