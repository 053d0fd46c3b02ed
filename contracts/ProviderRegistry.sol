// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {
    AccessControlDefaultAdminRules
} from "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {IProviderRegistry} from "./interfaces/IProviderRegistry.sol";

/// @title ProviderRegistry
/// @notice Storage providers with a PXToken stake, listings a client can page through and
/// filter, certification by a certifier role, unbonding exits; only the market slashes.
/// @dev Stake accounting: the registry's PXToken balance is the sum of the providers' stakes.
contract ProviderRegistry is IProviderRegistry, AccessControlDefaultAdminRules {
    using SafeERC20 for IERC20;

    /// @notice Role that certifies and decertifies providers.
    bytes32 public constant CERTIFIER_ROLE = keccak256("CERTIFIER_ROLE");
    /// @notice Largest minimum stake the admin can set.
    uint256 public constant MAX_MIN_STAKE = 1e9 ether;
    /// @notice Shortest unbonding delay the admin can set.
    uint256 public constant MIN_UNBONDING_DELAY = 1 hours;
    /// @notice Longest unbonding delay the admin can set.
    uint256 public constant MAX_UNBONDING_DELAY = 90 days;
    /// @notice Longest endpoint URL.
    uint256 public constant MAX_ENDPOINT_LENGTH = 256;
    /// @notice Initial delay of a default admin transfer.
    uint48 public constant INITIAL_ADMIN_DELAY = 2 days;

    /// @dev A provider's state. Fits one slot (96+40+32+16+8*4) plus one (128+64+64) plus the
    /// endpoint.
    struct Provider {
        uint96 stake;
        uint40 unbondsAt;
        uint32 activeDeals;
        uint16 region;
        bool registered;
        bool certified;
        bool paused;
        bool indexed_;
        uint128 price;
        uint64 capacity;
        uint64 reserved;
        string endpoint;
    }

    IERC20 private immutable _pxToken;
    address private _market;
    uint96 private _minStake;
    uint40 private _unbondingDelay;
    address[] private _providerList;
    mapping(address provider => Provider) private _providers;

    /// @param admin Receives the default admin role (two-step transfers after
    /// `INITIAL_ADMIN_DELAY`) and the certifier role.
    /// @param pxToken The PXToken stakes are in.
    /// @param minStake_ The minimum stake (at most `MAX_MIN_STAKE`).
    /// @param unbondingDelay_ The unbonding delay (within its bounds).
    constructor(address admin, IERC20 pxToken, uint96 minStake_, uint40 unbondingDelay_)
        AccessControlDefaultAdminRules(INITIAL_ADMIN_DELAY, admin)
    {
        if (address(pxToken) == address(0)) revert ZeroAddress();
        _pxToken = pxToken;
        _grantRole(CERTIFIER_ROLE, admin);
        _setMinStake(minStake_);
        _setUnbondingDelay(unbondingDelay_);
    }

    modifier onlyMarket() {
        if (msg.sender != _market) revert NotMarket(msg.sender);
        _;
    }

    // ------------------------------------------------------------------------------------------
    // Providers
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IProviderRegistry
    function registerProvider(
        string calldata endpoint,
        uint16 region,
        uint64 capacity,
        uint128 pricePerGiBMonth,
        uint96 stake
    ) external {
        Provider storage p = _providers[msg.sender];
        if (p.registered) revert AlreadyRegistered(msg.sender);
        _checkListing(endpoint, capacity);
        if (stake < _minStake) revert StakeTooLow(stake, _minStake);
        if (!p.indexed_) _providerList.push(msg.sender);
        p.stake = stake;
        p.region = region;
        p.registered = true;
        p.indexed_ = true;
        p.price = pricePerGiBMonth;
        p.capacity = capacity;
        p.endpoint = endpoint;
        emit ProviderRegistered(msg.sender, endpoint, region, capacity, pricePerGiBMonth, stake);
        _pxToken.safeTransferFrom(msg.sender, address(this), stake);
    }

    /// @inheritdoc IProviderRegistry
    function updateListing(
        string calldata endpoint,
        uint16 region,
        uint64 capacity,
        uint128 pricePerGiBMonth
    ) external {
        Provider storage p = _registered(msg.sender);
        _checkListing(endpoint, capacity);
        p.region = region;
        p.price = pricePerGiBMonth;
        p.capacity = capacity;
        p.endpoint = endpoint;
        emit ListingUpdated(msg.sender, endpoint, region, capacity, pricePerGiBMonth);
    }

    /// @inheritdoc IProviderRegistry
    function addStake(uint96 amount) external {
        Provider storage p = _registered(msg.sender);
        uint96 stake = p.stake + amount;
        p.stake = stake;
        emit StakeAdded(msg.sender, amount, stake);
        _pxToken.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IProviderRegistry
    function setPaused(bool paused) external {
        _registered(msg.sender).paused = paused;
        emit ProviderPaused(msg.sender, paused);
    }

    /// @inheritdoc IProviderRegistry
    function requestExit() external {
        Provider storage p = _registered(msg.sender);
        if (p.unbondsAt != 0) revert Exiting(msg.sender);
        uint256 unbondsAt = block.timestamp + _unbondingDelay;
        // casting is safe: block.timestamp plus at most 90 days fits 40 bits
        // forge-lint: disable-next-line(unsafe-typecast)
        p.unbondsAt = uint40(unbondsAt);
        emit ExitRequested(msg.sender, unbondsAt);
    }

    /// @inheritdoc IProviderRegistry
    function withdrawStake() external {
        Provider storage p = _registered(msg.sender);
        uint256 unbondsAt = p.unbondsAt;
        if (unbondsAt == 0 || block.timestamp < unbondsAt) {
            revert StillBonded(msg.sender, unbondsAt);
        }
        if (p.activeDeals != 0) revert HasActiveDeals(msg.sender, p.activeDeals);
        uint256 amount = p.stake;
        delete _providers[msg.sender];
        // It stays in the list (once): a later registration reuses its index.
        _providers[msg.sender].indexed_ = true;
        emit StakeWithdrawn(msg.sender, amount);
        _pxToken.safeTransfer(msg.sender, amount);
    }

    // ------------------------------------------------------------------------------------------
    // Certifier, market and admin
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IProviderRegistry
    function certify(address provider) external onlyRole(CERTIFIER_ROLE) {
        _registered(provider).certified = true;
        emit ProviderCertified(provider, msg.sender);
    }

    /// @inheritdoc IProviderRegistry
    function decertify(address provider, uint16 reason) external onlyRole(CERTIFIER_ROLE) {
        _registered(provider).certified = false;
        emit ProviderDecertified(provider, msg.sender, reason);
    }

    /// @inheritdoc IProviderRegistry
    function reserve(address provider, uint64 size)
        external
        onlyMarket
        returns (uint128 pricePerGiBMonth)
    {
        Provider storage p = _providers[provider];
        uint256 free = _isActive(p) ? _free(p) : 0;
        if (size > free) revert CannotTakeDeal(provider, free, size);
        uint64 reserved = p.reserved + size;
        p.reserved = reserved;
        ++p.activeDeals;
        emit CapacityReserved(provider, size, reserved);
        return p.price;
    }

    /// @inheritdoc IProviderRegistry
    function release(address provider, uint64 size) external onlyMarket {
        Provider storage p = _providers[provider];
        uint64 reserved = p.reserved - size;
        p.reserved = reserved;
        --p.activeDeals;
        emit CapacityReleased(provider, size, reserved);
    }

    /// @inheritdoc IProviderRegistry
    function slash(address provider, uint256 amount) external onlyMarket returns (uint256 slashed) {
        Provider storage p = _providers[provider];
        uint96 stake = p.stake;
        slashed = amount < stake ? amount : stake;
        // casting is safe: slashed <= stake, a uint96
        // forge-lint: disable-next-line(unsafe-typecast)
        stake -= uint96(slashed);
        p.stake = stake;
        emit ProviderSlashed(provider, slashed, stake);
        if (stake < _minStake) emit ProviderDelisted(provider, stake);
        if (slashed != 0) _pxToken.safeTransfer(msg.sender, slashed);
    }

    /// @inheritdoc IProviderRegistry
    function setMarket(address market_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (market_ == address(0)) revert ZeroAddress();
        if (_market != address(0)) revert MarketAlreadySet(_market);
        _market = market_;
        emit MarketSet(market_);
    }

    /// @inheritdoc IProviderRegistry
    function setMinStake(uint96 minStake_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setMinStake(minStake_);
    }

    /// @inheritdoc IProviderRegistry
    function setUnbondingDelay(uint40 delay) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setUnbondingDelay(delay);
    }

    // ------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IProviderRegistry
    function providerOf(address provider) public view returns (Listing memory listing) {
        Provider storage p = _providers[provider];
        listing = Listing({
            provider: provider,
            endpoint: p.endpoint,
            region: p.region,
            capacity: p.capacity,
            reserved: p.reserved,
            pricePerGiBMonth: p.price,
            stake: p.stake,
            unbondsAt: p.unbondsAt,
            activeDeals: p.activeDeals,
            certified: p.certified,
            paused: p.paused,
            active: _isActive(p)
        });
    }

    /// @inheritdoc IProviderRegistry
    function stakeOf(address provider) external view returns (uint256) {
        return _providers[provider].stake;
    }

    /// @inheritdoc IProviderRegistry
    function isActive(address provider) external view returns (bool) {
        return _isActive(_providers[provider]);
    }

    /// @inheritdoc IProviderRegistry
    function providerCount() external view returns (uint256) {
        return _providerList.length;
    }

    /// @inheritdoc IProviderRegistry
    function listProviders(uint256 cursor, uint256 limit, Filter calldata filter)
        external
        view
        returns (Listing[] memory page, uint256 next)
    {
        uint256 n = _providerList.length;
        page = new Listing[](limit);
        uint256 found;
        for (next = cursor; next < n && found < limit; ++next) {
            address a = _providerList[next];
            Provider storage p = _providers[a];
            if (_matches(p, filter)) page[found++] = providerOf(a);
        }
        // Trim the page to what was found.
        assembly ("memory-safe") {
            mstore(page, found)
        }
    }

    /// @inheritdoc IProviderRegistry
    function minStake() external view returns (uint256) {
        return _minStake;
    }

    /// @inheritdoc IProviderRegistry
    function unbondingDelay() external view returns (uint256) {
        return _unbondingDelay;
    }

    /// @inheritdoc IProviderRegistry
    function market() external view returns (address) {
        return _market;
    }

    // ------------------------------------------------------------------------------------------
    // Internal
    // ------------------------------------------------------------------------------------------

    function _registered(address provider) private view returns (Provider storage p) {
        p = _providers[provider];
        if (!p.registered) revert NotRegistered(provider);
    }

    function _isActive(Provider storage p) private view returns (bool) {
        return p.registered && !p.paused && p.unbondsAt == 0 && p.stake >= _minStake;
    }

    function _matches(Provider storage p, Filter calldata f) private view returns (bool) {
        if (!p.registered) return false;
        if (f.onlyActive && !_isActive(p)) return false;
        if (f.onlyCertified && !p.certified) return false;
        if (f.region != 0 && p.region != f.region) return false;
        if (f.maxPrice != 0 && p.price > f.maxPrice) return false;
        return _free(p) >= f.minFreeCapacity;
    }

    function _free(Provider storage p) private view returns (uint256) {
        return p.capacity > p.reserved ? p.capacity - p.reserved : 0;
    }

    function _checkListing(string calldata endpoint, uint64 capacity) private pure {
        uint256 len = bytes(endpoint).length;
        if (len == 0 || len > MAX_ENDPOINT_LENGTH || capacity == 0) {
            revert InvalidListing(len, capacity);
        }
    }

    function _setMinStake(uint96 minStake_) private {
        if (minStake_ > MAX_MIN_STAKE) revert OutOfBounds(minStake_, 0, MAX_MIN_STAKE);
        _minStake = minStake_;
        emit MinStakeSet(minStake_);
    }

    function _setUnbondingDelay(uint40 delay) private {
        if (delay < MIN_UNBONDING_DELAY || delay > MAX_UNBONDING_DELAY) {
            revert OutOfBounds(delay, MIN_UNBONDING_DELAY, MAX_UNBONDING_DELAY);
        }
        _unbondingDelay = delay;
        emit UnbondingDelaySet(delay);
    }
}
