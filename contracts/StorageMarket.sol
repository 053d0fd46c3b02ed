// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {
    AccessControlDefaultAdminRules
} from "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {IProviderRegistry} from "./interfaces/IProviderRegistry.sol";
import {IStorageMarket} from "./interfaces/IStorageMarket.sol";
import {StorageProof} from "./libraries/StorageProof.sol";

/// @title StorageMarket
/// @notice Token escrow, deals between a token and its providers, storage proofs, misses,
/// slashing and earnings (see `IStorageMarket`).
/// @dev Accounting: the market's PXToken balance is, to the wei, the sum of the tokens'
/// uncommitted escrow, the deals' remaining commitments (`pricePerPeriod` times the periods an
/// active deal has left), the providers' earnings and the accrued fees.
contract StorageMarket is IStorageMarket, AccessControlDefaultAdminRules, EIP712 {
    using SafeERC20 for IERC20;

    /// @notice StorageNFT's role of storage nodes' keys (home nodes must hold it).
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");
    /// @notice Largest protocol fee (10%).
    uint256 public constant MAX_FEE_BPS = 1000;
    /// @notice Largest share of a slash paid as bounty (50%).
    uint256 public constant MAX_BOUNTY_BPS = 5000;
    /// @notice Most challenges per period.
    uint256 public constant MAX_CHALLENGES = 16;
    /// @notice Initial delay of a default admin transfer.
    uint48 public constant INITIAL_ADMIN_DELAY = 2 days;

    uint256 private constant _GIB = 1 << 30;
    uint256 private constant _MONTH = 30 days;
    bytes32 private constant _ACCEPTANCE_TYPEHASH = keccak256(
        "DealAcceptance(uint256 tokenId,address provider,bytes32 root,uint16 pieceCount,"
        "uint64 size,uint64 maxBytes,uint16 periods,uint128 pricePerGiBMonth,uint256 deadline,"
        "uint16 generation)"
    );
    bytes32 private constant _ROOT_UPDATE_TYPEHASH = keccak256(
        "RootUpdate(uint256 dealId,bytes32 root,uint16 pieceCount,uint64 size,uint64 sizeEnded,"
        "uint32 nonce)"
    );

    /// @dev A deal. Slot 0 (64+160+8+8+16), root, previous root, slot 3
    /// (40+40+16+16+16+16+32+64), slot 4 (128+64).
    struct DealState {
        uint64 tokenId;
        address provider;
        DealStatus status;
        uint8 misses;
        uint16 generation;
        bytes32 root;
        bytes32 prevRoot;
        uint40 startBlock;
        uint40 rootSince;
        uint16 periods;
        uint16 nextPeriod;
        uint16 pieceCount;
        uint16 prevPieceCount;
        uint32 nonce;
        uint64 size;
        uint128 pricePerPeriod;
        uint64 maxBytes;
    }

    /// @dev Fee and treasury. Fits one slot (16+160).
    struct FeeConfig {
        uint16 feeBps;
        address treasury;
    }

    IERC721 private immutable _nft;
    IProviderRegistry private immutable _registry;
    IERC20 private immutable _pxToken;
    uint256 private immutable _periodBlocks;
    uint256 private immutable _proofWindow;
    uint256 private immutable _challengeCount;
    uint256 private immutable _maxMisses;
    uint256 private immutable _blockTime;
    uint256 private immutable _bountyBps;
    uint256 private immutable _slashPerMiss;

    FeeConfig private _fee;
    uint256 private _fees;
    mapping(uint256 tokenId => uint256) private _escrow;
    mapping(uint256 tokenId => address node) private _homeNodes;
    mapping(uint256 dealId => DealState) private _deals;
    mapping(address provider => uint256) private _earnings;

    /// @param admin Receives the default admin role and is the first treasury.
    /// @param nft StorageNFT (its holders, its registrar role, its plan shares).
    /// @param registry The provider registry (this market must be set as its market).
    /// @param pxToken The PXToken escrow is in.
    /// @param c The fixed parameters (see `Config`).
    /// @param feeBps_ The protocol fee (at most `MAX_FEE_BPS`).
    constructor(
        address admin,
        IERC721 nft,
        IProviderRegistry registry,
        IERC20 pxToken,
        Config memory c,
        uint16 feeBps_
    ) AccessControlDefaultAdminRules(INITIAL_ADMIN_DELAY, admin) EIP712("PX StorageMarket", "1") {
        if (
            address(nft) == address(0) || address(registry) == address(0)
                || address(pxToken) == address(0)
        ) revert ZeroAddress();
        _checkBounds(c.periodBlocks, 2, type(uint32).max);
        // The window stays inside the period after the challenged one, so at most one root
        // update lies between a challenge block and its proof (see proveStorage).
        _checkBounds(c.proofWindow, 1, c.periodBlocks <= 256 ? c.periodBlocks - 1 : 256);
        _checkBounds(c.challengeCount, 1, MAX_CHALLENGES);
        _checkBounds(c.maxMisses, 1, type(uint8).max);
        _checkBounds(c.blockTime, 1, type(uint16).max);
        _checkBounds(c.bountyBps, 0, MAX_BOUNTY_BPS);
        _nft = nft;
        _registry = registry;
        _pxToken = pxToken;
        _periodBlocks = c.periodBlocks;
        _proofWindow = c.proofWindow;
        _challengeCount = c.challengeCount;
        _maxMisses = c.maxMisses;
        _blockTime = c.blockTime;
        _bountyBps = c.bountyBps;
        _slashPerMiss = c.slashPerMiss;
        _setFee(feeBps_);
        _fee.treasury = admin;
        emit TreasurySet(admin);
    }

    // ------------------------------------------------------------------------------------------
    // Escrow
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IStorageMarket
    function fund(uint256 tokenId, uint256 amount) external {
        // ownerOf reverts for a token that does not exist.
        // slither-disable-next-line unused-return
        _nft.ownerOf(tokenId);
        if (amount == 0) revert ZeroAmount(tokenId);
        uint256 balance = _escrow[tokenId] + amount;
        _escrow[tokenId] = balance;
        emit EscrowFunded(tokenId, msg.sender, amount, balance);
        _pxToken.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IStorageMarket
    function credit(uint256 tokenId, uint256 amount) external {
        if (msg.sender != address(_nft)) revert NotStorageNFT(msg.sender);
        uint256 balance = _escrow[tokenId] + amount;
        _escrow[tokenId] = balance;
        emit EscrowFunded(tokenId, msg.sender, amount, balance);
    }

    /// @inheritdoc IStorageMarket
    function withdrawEscrow(uint256 tokenId, uint256 amount, address to) external {
        _requireHolder(tokenId);
        if (to == address(0)) revert ZeroAddress();
        uint256 balance = _escrow[tokenId];
        if (amount > balance) revert InsufficientEscrow(tokenId, balance, amount);
        balance -= amount;
        _escrow[tokenId] = balance;
        emit EscrowWithdrawn(tokenId, to, amount, balance);
        _pxToken.safeTransfer(to, amount);
    }

    /// @inheritdoc IStorageMarket
    function setHomeNode(uint256 tokenId, address node) external {
        _requireHolder(tokenId);
        if (!IAccessControl(address(_nft)).hasRole(REGISTRAR_ROLE, node)) {
            revert NotRegistrar(node);
        }
        _homeNodes[tokenId] = node;
        emit HomeNodeSet(tokenId, node);
    }

    // ------------------------------------------------------------------------------------------
    // Deals
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IStorageMarket
    function openDeal(Acceptance calldata a, bytes calldata providerSig)
        external
        returns (uint256 dealId)
    {
        uint256 tokenId = a.tokenId;
        if (msg.sender != _homeNodes[tokenId]) revert NotHomeNode(tokenId, msg.sender);
        if (block.timestamp > a.deadline) revert AcceptanceExpired(a.deadline);
        if (a.pieceCount == 0 || a.periods == 0 || a.maxBytes == 0 || a.size > a.maxBytes) {
            revert InvalidTerms(a.pieceCount, a.periods, a.size, a.maxBytes);
        }
        dealId = dealIdOf(tokenId, a.provider);
        DealState storage d = _deals[dealId];
        if (d.status == DealStatus.Active) revert DealActive(dealId);
        uint16 generation = d.generation;
        address signer = ECDSA.recover(_acceptanceHash(a, generation), providerSig);
        if (signer != a.provider) revert NotProvider(signer, a.provider);
        uint256 price = _commit(a);
        // casting is safe: token ids are sequential from 1 and fit 64 bits; block numbers fit
        // 40 bits; _commit bounds the price by 128 bits
        // forge-lint: disable-next-item(unsafe-typecast)
        _deals[dealId] = DealState({
            tokenId: uint64(tokenId),
            provider: a.provider,
            status: DealStatus.Active,
            misses: 0,
            generation: generation + 1,
            root: a.root,
            prevRoot: bytes32(0),
            startBlock: uint40(block.number),
            rootSince: uint40(block.number),
            periods: a.periods,
            nextPeriod: 0,
            pieceCount: a.pieceCount,
            prevPieceCount: 0,
            nonce: d.nonce,
            size: a.size,
            pricePerPeriod: uint128(price),
            maxBytes: a.maxBytes
        });
        _emitOpened(dealId, a, generation, price);
        _reserve(a);
    }

    /// @inheritdoc IStorageMarket
    function updateDealRoot(
        RootUpdate calldata u,
        bytes calldata homeSig,
        bytes calldata providerSig
    ) external {
        uint256 dealId = u.dealId;
        DealState storage d = _deals[dealId];
        if (d.status != DealStatus.Active) revert DealNotActive(dealId);
        _checkUpdateSigners(u, d, homeSig, providerSig);

        uint256 start = d.startBlock;
        uint256 period = (block.number - start) / _periodBlocks;
        if (period <= (uint256(d.rootSince) - start) / _periodBlocks) {
            revert RootUpdateTooSoon(dealId, start + (period + 1) * _periodBlocks);
        }
        if (u.pieceCount == 0 || u.size > d.maxBytes) {
            revert InvalidTerms(u.pieceCount, d.periods, u.size, d.maxBytes);
        }
        if (uint256(u.size) + u.sizeEnded < d.size) {
            revert SizeDecreased(dealId, d.size, u.size, u.sizeEnded);
        }
        uint32 nonce = d.nonce;
        d.prevRoot = d.root;
        d.prevPieceCount = d.pieceCount;
        d.root = u.root;
        d.pieceCount = u.pieceCount;
        d.size = u.size;
        // casting is safe: block numbers fit 40 bits
        // forge-lint: disable-next-line(unsafe-typecast)
        d.rootSince = uint40(block.number);
        d.nonce = nonce + 1;
        emit DealRootUpdated(dealId, nonce, u.root, u.pieceCount, u.size, u.sizeEnded);
    }

    /// @inheritdoc IStorageMarket
    function proveStorage(uint256 dealId, uint256 period, Proof[] calldata proofs) external {
        DealState storage d = _deals[dealId];
        if (d.status != DealStatus.Active) revert DealNotActive(dealId);
        uint256 next = d.nextPeriod;
        if (period != next) revert PeriodNotNext(dealId, period, next);
        uint256 challengeBlock = d.startBlock + (period + 1) * _periodBlocks;
        if (block.number <= challengeBlock) revert ChallengeNotReady(challengeBlock);
        uint256 deadline = challengeBlock + _proofWindow;
        if (block.number > deadline) revert ProofWindowClosed(dealId, period, deadline);

        // The root in force before the challenge block: a later update applies to later periods.
        (bytes32 root, uint256 pieceCount) = d.rootSince < challengeBlock
            ? (d.root, uint256(d.pieceCount))
            : (d.prevRoot, uint256(d.prevPieceCount));
        bytes32 seed = _seed(challengeBlock, dealId, period);
        uint256 c = _challengeCount;
        if (proofs.length != c) revert InvalidProof(dealId, proofs.length);
        for (uint256 i; i < c; ++i) {
            if (!_verify(proofs[i], seed, i, pieceCount, root)) {
                revert InvalidProof(dealId, i);
            }
        }

        // casting is safe: next < periods, a uint16
        // forge-lint: disable-next-line(unsafe-typecast)
        d.nextPeriod = uint16(next + 1);
        uint256 price = d.pricePerPeriod;
        uint256 fee = price * _fee.feeBps / 10_000;
        _earnings[d.provider] += price - fee;
        _fees += fee;
        emit StorageProven(dealId, period, price - fee, fee);
        if (next + 1 == d.periods) _end(dealId, d, DealStatus.Completed, 0);
    }

    /// @inheritdoc IStorageMarket
    function markMissed(uint256 dealId) external {
        DealState storage d = _deals[dealId];
        if (d.status != DealStatus.Active) revert DealNotActive(dealId);
        uint256 period = d.nextPeriod;
        uint256 deadline = d.startBlock + (period + 1) * _periodBlocks + _proofWindow;
        if (block.number <= deadline) revert ProofWindowOpen(dealId, period, deadline);

        address provider = d.provider;
        uint256 stake = _registry.stakeOf(provider);
        uint256 slashed = stake < _slashPerMiss ? stake : _slashPerMiss;
        uint256 bounty = slashed * _bountyBps / 10_000;
        uint256 tokenId = d.tokenId;
        uint256 price = d.pricePerPeriod;
        // casting is safe: period < periods, a uint16
        // forge-lint: disable-next-line(unsafe-typecast)
        d.nextPeriod = uint16(period + 1);
        uint256 misses = uint256(d.misses) + 1;
        // casting is safe: a deal breaches at maxMisses, a uint8, so misses never exceeds it
        // forge-lint: disable-next-line(unsafe-typecast)
        d.misses = uint8(misses);
        // The period's price and the slash less the bounty go back to the escrow.
        _escrow[tokenId] += price + slashed - bounty;
        emit PeriodMissed(dealId, period, slashed, bounty, msg.sender);
        if (misses >= _maxMisses) {
            _end(dealId, d, DealStatus.Breached, price * (d.periods - period - 1));
        } else if (period + 1 == d.periods) {
            _end(dealId, d, DealStatus.Completed, 0);
        }
        // The registry slashes what was computed above (at most the stake read there).
        // slither-disable-next-line unused-return
        if (slashed != 0) _registry.slash(provider, slashed);
        if (bounty != 0) _pxToken.safeTransfer(msg.sender, bounty);
    }

    /// @inheritdoc IStorageMarket
    function claimEarnings() external {
        uint256 amount = _earnings[msg.sender];
        if (amount == 0) revert NothingToClaim(msg.sender);
        _earnings[msg.sender] = 0;
        emit EarningsClaimed(msg.sender, amount);
        _pxToken.safeTransfer(msg.sender, amount);
    }

    // ------------------------------------------------------------------------------------------
    // Admin
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IStorageMarket
    function setFee(uint16 feeBps_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setFee(feeBps_);
    }

    /// @inheritdoc IStorageMarket
    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (treasury_ == address(0)) revert ZeroAddress();
        _fee.treasury = treasury_;
        emit TreasurySet(treasury_);
    }

    /// @inheritdoc IStorageMarket
    function withdrawFees() external {
        uint256 amount = _fees;
        address to = _fee.treasury;
        if (amount == 0) revert NothingToClaim(to);
        _fees = 0;
        emit FeesWithdrawn(to, amount);
        _pxToken.safeTransfer(to, amount);
    }

    // ------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IStorageMarket
    function dealIdOf(uint256 tokenId, address provider) public pure returns (uint256) {
        return uint256(keccak256(abi.encode(tokenId, provider)));
    }

    /// @inheritdoc IStorageMarket
    function dealOf(uint256 dealId) external view returns (Deal memory deal) {
        DealState storage d = _deals[dealId];
        deal = Deal({
            tokenId: d.tokenId,
            provider: d.provider,
            status: d.status,
            misses: d.misses,
            generation: d.generation,
            nonce: d.nonce,
            root: d.root,
            prevRoot: d.prevRoot,
            startBlock: d.startBlock,
            rootSince: d.rootSince,
            periods: d.periods,
            nextPeriod: d.nextPeriod,
            pieceCount: d.pieceCount,
            prevPieceCount: d.prevPieceCount,
            size: d.size,
            maxBytes: d.maxBytes,
            pricePerPeriod: d.pricePerPeriod,
            remaining: _remaining(d)
        });
    }

    /// @inheritdoc IStorageMarket
    function escrowOf(uint256 tokenId) external view returns (uint256) {
        return _escrow[tokenId];
    }

    /// @inheritdoc IStorageMarket
    function homeNodeOf(uint256 tokenId) external view returns (address) {
        return _homeNodes[tokenId];
    }

    /// @inheritdoc IStorageMarket
    function earningsOf(address provider) external view returns (uint256) {
        return _earnings[provider];
    }

    /// @inheritdoc IStorageMarket
    function feesAccrued() external view returns (uint256) {
        return _fees;
    }

    /// @inheritdoc IStorageMarket
    function challengeSeed(uint256 dealId, uint256 period) external view returns (bytes32) {
        uint256 challengeBlock = _deals[dealId].startBlock + (period + 1) * _periodBlocks;
        // slither-disable-next-line incorrect-equality
        if (blockhash(challengeBlock) == bytes32(0)) return bytes32(0);
        return _seed(challengeBlock, dealId, period);
    }

    /// @inheritdoc IStorageMarket
    function challengeOf(bytes32 seed, uint256 index, uint256 pieceCount, uint256 pieceDepth)
        external
        pure
        returns (uint256 piece, uint256 leaf)
    {
        return StorageProof.challenge(seed, index, pieceCount, pieceDepth);
    }

    /// @inheritdoc IStorageMarket
    function acceptanceDigest(Acceptance calldata a) external view returns (bytes32) {
        return _acceptanceHash(a, _deals[dealIdOf(a.tokenId, a.provider)].generation);
    }

    /// @inheritdoc IStorageMarket
    function rootUpdateDigest(RootUpdate calldata u) external view returns (bytes32) {
        return _rootUpdateHash(u, _deals[u.dealId].nonce);
    }

    /// @inheritdoc IStorageMarket
    function config() external view returns (Config memory) {
        // casting is safe: each was checked against its field's width in the constructor
        // forge-lint: disable-next-item(unsafe-typecast)
        return Config({
            periodBlocks: uint32(_periodBlocks),
            proofWindow: uint32(_proofWindow),
            challengeCount: uint8(_challengeCount),
            maxMisses: uint8(_maxMisses),
            blockTime: uint16(_blockTime),
            bountyBps: uint16(_bountyBps),
            slashPerMiss: uint96(_slashPerMiss)
        });
    }

    /// @inheritdoc IStorageMarket
    function feeBps() external view returns (uint256) {
        return _fee.feeBps;
    }

    /// @inheritdoc IStorageMarket
    function treasury() external view returns (address) {
        return _fee.treasury;
    }

    // ------------------------------------------------------------------------------------------
    // Internal
    // ------------------------------------------------------------------------------------------

    /// @dev Ends a deal: returns `refund` to the token's escrow and releases the capacity.
    function _end(uint256 dealId, DealState storage d, DealStatus status, uint256 refund) private {
        d.status = status;
        if (status == DealStatus.Breached) {
            _escrow[d.tokenId] += refund;
            emit DealBreached(dealId, refund);
        } else {
            emit DealCompleted(dealId);
        }
        _registry.release(d.provider, d.maxBytes);
    }

    /// @dev Prices the deal at the accepted listing price (`_reserve` checks it is the current
    /// one) and commits the term from the token's escrow; returns the price per period.
    function _commit(Acceptance calldata a) private returns (uint256 price) {
        price = uint256(a.pricePerGiBMonth) * a.maxBytes * (_periodBlocks * _blockTime)
            / (_GIB * _MONTH);
        _checkBounds(price, 0, type(uint128).max);
        // The term is a whole number of periods at the rounded-down price, so the commitment is
        // exactly what its periods pay out or refund.
        // slither-disable-next-line divide-before-multiply
        uint256 total = price * a.periods;
        uint256 balance = _escrow[a.tokenId];
        if (total > balance) revert InsufficientEscrow(a.tokenId, balance, total);
        _escrow[a.tokenId] = balance - total;
    }

    /// @dev Reserves the provider's capacity (it must be active with enough free capacity) and
    /// checks that its listing price is the one it accepted.
    function _reserve(Acceptance calldata a) private {
        uint256 listed = _registry.reserve(a.provider, a.maxBytes);
        if (listed != a.pricePerGiBMonth) revert PriceChanged(listed, a.pricePerGiBMonth);
    }

    function _emitOpened(uint256 dealId, Acceptance calldata a, uint256 generation, uint256 price)
        private
    {
        emit DealOpened(
            dealId, a.tokenId, a.provider, generation, a.root, a.size, a.maxBytes, a.periods, price
        );
    }

    /// @dev Reverts unless the home node and the provider both signed the update.
    function _checkUpdateSigners(
        RootUpdate calldata u,
        DealState storage d,
        bytes calldata homeSig,
        bytes calldata providerSig
    ) private view {
        bytes32 digest = _rootUpdateHash(u, d.nonce);
        address home = ECDSA.recover(digest, homeSig);
        if (home != _homeNodes[d.tokenId]) revert NotHomeNode(d.tokenId, home);
        address signer = ECDSA.recover(digest, providerSig);
        if (signer != d.provider) revert NotProvider(signer, d.provider);
    }

    /// @dev Checks one answer. The piece path must be exactly as long as the committed depth:
    /// chunks are level-0 nodes as they are, so a shorter path would let an inner node stand
    /// for the chunks under it. The deal path needs no such check: a deal leaf hashes 33 bytes
    /// and an inner node 64, so a path of another length would need a keccak preimage.
    function _verify(
        Proof calldata p,
        bytes32 seed,
        uint256 index,
        uint256 pieceCount,
        bytes32 root
    ) private pure returns (bool) {
        uint256 depth = p.pieceDepth;
        if (p.piecePath.length != depth) return false;
        (uint256 piece, uint256 leaf) = StorageProof.challenge(seed, index, pieceCount, depth);
        if (StorageProof.processPath(p.leaf, leaf, p.piecePath) != p.pieceRoot) return false;
        bytes32 dealLeaf = StorageProof.dealLeaf(p.pieceRoot, p.pieceDepth);
        // slither-disable-next-line incorrect-equality
        return StorageProof.processPath(dealLeaf, piece, p.dealPath) == root;
    }

    function _remaining(DealState storage d) private view returns (uint256) {
        if (d.status != DealStatus.Active) return 0;
        return uint256(d.pricePerPeriod) * (d.periods - d.nextPeriod);
    }

    function _seed(uint256 challengeBlock, uint256 dealId, uint256 period)
        private
        view
        returns (bytes32)
    {
        return keccak256(abi.encode(blockhash(challengeBlock), dealId, period));
    }

    function _acceptanceHash(Acceptance calldata a, uint16 generation)
        private
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    _ACCEPTANCE_TYPEHASH,
                    a.tokenId,
                    a.provider,
                    a.root,
                    a.pieceCount,
                    a.size,
                    a.maxBytes,
                    a.periods,
                    a.pricePerGiBMonth,
                    a.deadline,
                    generation
                )
            )
        );
    }

    function _rootUpdateHash(RootUpdate calldata u, uint32 nonce) private view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    _ROOT_UPDATE_TYPEHASH,
                    u.dealId,
                    u.root,
                    u.pieceCount,
                    u.size,
                    u.sizeEnded,
                    nonce
                )
            )
        );
    }

    function _requireHolder(uint256 tokenId) private view {
        if (_nft.ownerOf(tokenId) != msg.sender) revert NotTokenHolder(tokenId, msg.sender);
    }

    function _setFee(uint16 feeBps_) private {
        _checkBounds(feeBps_, 0, MAX_FEE_BPS);
        _fee.feeBps = feeBps_;
        emit FeeSet(feeBps_);
    }

    function _checkBounds(uint256 value, uint256 min, uint256 max) private pure {
        if (value < min || value > max) revert OutOfBounds(value, min, max);
    }
}
