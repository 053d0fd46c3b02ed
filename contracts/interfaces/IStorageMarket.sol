// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IStorageMarket
/// @notice Storage deals between a token and the providers that hold its pieces, paid from the
/// token's PXToken escrow and checked with storage proofs.
///
/// Escrow: anyone funds a token (`fund`); plans route a share of their price into it (`credit`,
/// from StorageNFT); the holder withdraws what no deal has committed.
///
/// Deals: one per (token, provider) at a time, opened by the token's home node (the registrar the
/// holder named with `setHomeNode`) with the provider's EIP-712 acceptance. Its price per period
/// comes from the provider's listing (`pricePerGiBMonth * maxBytes` over a period's length) and
/// the whole term (`price * periods`) is committed from the escrow at once. Root updates carry
/// both the home node's and the provider's signatures and a per-deal nonce.
///
/// Periods are counted in blocks from the deal's opening block: period `p` spans
/// `[start + p*L, start + (p+1)*L)`; its challenge block is `cb = start + (p+1)*L`, its seed
/// `keccak256(abi.encode(blockhash(cb), dealId, p))`, and the root it challenges is the one in
/// force before block `cb` (a root committed in block `cb` or later applies to later periods).
/// The provider proves period `p` with `proveStorage` in blocks `(cb, cb + proofWindow]`; after
/// that anyone may `markMissed`. Periods settle in order.
///
/// Challenge `i` of a period: `h = keccak256(abi.encode(seed, i))`, piece `h % pieceCount`, leaf
/// `(h >> 128) % 2**pieceDepth` of that piece.
///
/// Merkle trees (keccak256, binary, padded with zero nodes to a power of two): a piece tree's
/// level-0 nodes are the piece's 32-byte chunks; a deal tree's level-0 nodes are
/// `keccak256(abi.encodePacked(pieceRoot, uint8(pieceDepth)))`; a parent is
/// `keccak256(abi.encodePacked(left, right))`; the deal tree's depth is the smallest `d` with
/// `2**d >= pieceCount`. A provider that dropped a fraction `f` of a deal's leaves (pieces of
/// equal size) is caught with probability `1 - (1 - f)**c` per period.
interface IStorageMarket {
    /// @notice A deal's life: opened `Active`; `Completed` once every period is settled;
    /// `Breached` after `maxMisses` missed periods (the rest of its escrow returns).
    enum DealStatus {
        None,
        Active,
        Completed,
        Breached
    }

    /// @notice A deal as the views return it.
    /// @param tokenId The token.
    /// @param provider The provider.
    /// @param status Its status.
    /// @param misses Periods missed.
    /// @param generation How many deals of this (token, provider) were opened before it.
    /// @param nonce Root updates so far (all generations): the next update signs this.
    /// @param root The current deal root.
    /// @param prevRoot The root before the last update.
    /// @param startBlock The block it opened in.
    /// @param rootSince The block the current root was committed in.
    /// @param periods Periods in its term.
    /// @param nextPeriod The period to settle next.
    /// @param pieceCount Pieces under the current root.
    /// @param prevPieceCount Pieces under the previous root.
    /// @param size Bytes under the current root.
    /// @param maxBytes Bytes reserved at the provider (the size the price is for).
    /// @param pricePerPeriod PXToken paid per proven period.
    /// @param remaining Escrow still committed to it.
    struct Deal {
        uint256 tokenId;
        address provider;
        DealStatus status;
        uint8 misses;
        uint16 generation;
        uint32 nonce;
        bytes32 root;
        bytes32 prevRoot;
        uint40 startBlock;
        uint40 rootSince;
        uint16 periods;
        uint16 nextPeriod;
        uint16 pieceCount;
        uint16 prevPieceCount;
        uint64 size;
        uint64 maxBytes;
        uint128 pricePerPeriod;
        uint256 remaining;
    }

    /// @notice What a provider accepts when it signs a deal (EIP-712 `DealAcceptance`, with the
    /// deal's `generation`).
    /// @param tokenId The token.
    /// @param provider The provider.
    /// @param root The first deal root.
    /// @param pieceCount Pieces under it.
    /// @param size Bytes under it.
    /// @param maxBytes Bytes reserved (at least `size`).
    /// @param periods Periods in the term.
    /// @param pricePerGiBMonth The listing price it accepts (must be its current one).
    /// @param deadline Last timestamp the acceptance is valid.
    struct Acceptance {
        uint256 tokenId;
        address provider;
        bytes32 root;
        uint16 pieceCount;
        uint64 size;
        uint64 maxBytes;
        uint16 periods;
        uint128 pricePerGiBMonth;
        uint256 deadline;
    }

    /// @notice A root update both parties sign (EIP-712 `RootUpdate`, with the deal's `nonce`).
    /// @param dealId The deal.
    /// @param root The new deal root.
    /// @param pieceCount Pieces under it.
    /// @param size Bytes under it (at most `maxBytes`).
    /// @param sizeEnded Bytes of pieces the update ends; `size + sizeEnded` must reach the
    /// deal's current size.
    struct RootUpdate {
        uint256 dealId;
        bytes32 root;
        uint16 pieceCount;
        uint64 size;
        uint64 sizeEnded;
    }

    /// @notice One answered challenge.
    /// @param pieceRoot The challenged piece's root.
    /// @param pieceDepth Its tree's depth (as committed in its deal leaf).
    /// @param leaf The challenged 32-byte chunk.
    /// @param piecePath Siblings from the chunk up to the piece root (`pieceDepth` of them).
    /// @param dealPath Siblings from the piece's deal leaf up to the deal root (the deal tree's
    /// depth of them).
    struct Proof {
        bytes32 pieceRoot;
        uint8 pieceDepth;
        bytes32 leaf;
        bytes32[] piecePath;
        bytes32[] dealPath;
    }

    /// @notice Fixed parameters of a market.
    /// @param periodBlocks Blocks per period (at least 2).
    /// @param proofWindow Blocks after a challenge block in which the proof is due (below
    /// `periodBlocks`, so the window ends inside the next period, and at most 256, the reach of
    /// `blockhash`).
    /// @param challengeCount Challenges per period (`c`, 1 to 16).
    /// @param maxMisses Missed periods that breach a deal (at least 1).
    /// @param blockTime Seconds per block the period price assumes.
    /// @param bountyBps Share of a slash paid to whoever marks the miss (at most 50%).
    /// @param slashPerMiss PXToken slashed from the provider's stake per missed period.
    struct Config {
        uint32 periodBlocks;
        uint32 proofWindow;
        uint8 challengeCount;
        uint8 maxMisses;
        uint16 blockTime;
        uint16 bountyBps;
        uint96 slashPerMiss;
    }

    // ------------------------------------------------------------------------------------------
    // Errors
    // ------------------------------------------------------------------------------------------

    /// @notice The caller is not the token's holder.
    /// @param tokenId The token.
    /// @param caller The caller.
    error NotTokenHolder(uint256 tokenId, address caller);
    /// @notice The caller is not StorageNFT.
    /// @param caller The caller.
    error NotStorageNFT(address caller);
    /// @notice The address does not hold StorageNFT's registrar role.
    /// @param node The address.
    error NotRegistrar(address node);
    /// @notice The caller (or signer) is not the token's home node.
    /// @param tokenId The token.
    /// @param account The caller or signer.
    error NotHomeNode(uint256 tokenId, address account);
    /// @notice A signature is not the provider's.
    /// @param signer The address it recovers to.
    /// @param provider The provider.
    error NotProvider(address signer, address provider);
    /// @notice The escrow holds less than asked.
    /// @param tokenId The token.
    /// @param balance Its uncommitted escrow.
    /// @param amount The amount asked.
    error InsufficientEscrow(uint256 tokenId, uint256 balance, uint256 amount);
    /// @notice A zero amount.
    /// @param tokenId The token it was for.
    error ZeroAmount(uint256 tokenId);
    /// @notice The acceptance's deadline has passed.
    /// @param deadline The deadline.
    error AcceptanceExpired(uint256 deadline);
    /// @notice A deal's terms (or a root update's) are invalid: no pieces, no periods, a size
    /// above `maxBytes`, or a zero `maxBytes`.
    /// @param pieceCount The pieces.
    /// @param periods The periods.
    /// @param size The size.
    /// @param maxBytes The reserved size.
    error InvalidTerms(uint256 pieceCount, uint256 periods, uint256 size, uint256 maxBytes);
    /// @notice The (token, provider) pair already has an active deal.
    /// @param dealId The deal.
    error DealActive(uint256 dealId);
    /// @notice The deal is not active.
    /// @param dealId The deal.
    error DealNotActive(uint256 dealId);
    /// @notice The provider's listing price is not the one it accepted.
    /// @param listed The listing price.
    /// @param accepted The accepted price.
    error PriceChanged(uint256 listed, uint256 accepted);
    /// @notice The deal's root was already updated in this period.
    /// @param dealId The deal.
    /// @param nextBlock The first block of the next period.
    error RootUpdateTooSoon(uint256 dealId, uint256 nextBlock);
    /// @notice A root update would lower the size below the current one without ending pieces.
    /// @param dealId The deal.
    /// @param size The current size.
    /// @param newSize The new size.
    /// @param sizeEnded The bytes the update ends.
    error SizeDecreased(uint256 dealId, uint256 size, uint256 newSize, uint256 sizeEnded);
    /// @notice Periods settle in order: this one is not next.
    /// @param dealId The deal.
    /// @param period The period given.
    /// @param nextPeriod The period to settle next.
    error PeriodNotNext(uint256 dealId, uint256 period, uint256 nextPeriod);
    /// @notice The period's challenge block has not passed yet.
    /// @param challengeBlock The challenge block.
    error ChallengeNotReady(uint256 challengeBlock);
    /// @notice The period's proof window has closed.
    /// @param dealId The deal.
    /// @param period The period.
    /// @param deadline The window's last block.
    error ProofWindowClosed(uint256 dealId, uint256 period, uint256 deadline);
    /// @notice The period's proof window is still open.
    /// @param dealId The deal.
    /// @param period The period.
    /// @param deadline The window's last block.
    error ProofWindowOpen(uint256 dealId, uint256 period, uint256 deadline);
    /// @notice The proof does not answer the period's challenges.
    /// @param dealId The deal.
    /// @param index The first challenge it fails.
    error InvalidProof(uint256 dealId, uint256 index);
    /// @notice Nothing to claim.
    /// @param account Whose earnings (or the treasury, for fees).
    error NothingToClaim(address account);
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

    /// @notice A token's escrow was funded (by anyone, or by StorageNFT with a plan share).
    /// @param tokenId The token.
    /// @param from Who paid.
    /// @param amount PXToken added.
    /// @param balance Its uncommitted escrow now.
    event EscrowFunded(
        uint256 indexed tokenId, address indexed from, uint256 amount, uint256 balance
    );
    /// @notice The holder withdrew uncommitted escrow.
    /// @param tokenId The token.
    /// @param to Recipient.
    /// @param amount PXToken withdrawn.
    /// @param balance Its uncommitted escrow now.
    event EscrowWithdrawn(
        uint256 indexed tokenId, address indexed to, uint256 amount, uint256 balance
    );
    /// @notice The holder named the token's home node.
    /// @param tokenId The token.
    /// @param node The home node.
    event HomeNodeSet(uint256 indexed tokenId, address indexed node);
    /// @notice A deal was opened and its term committed from the escrow.
    /// @param dealId The deal.
    /// @param tokenId The token.
    /// @param provider The provider.
    /// @param generation Deals of the pair before it.
    /// @param root The first root.
    /// @param size Bytes under it.
    /// @param maxBytes Bytes reserved.
    /// @param periods Periods in the term.
    /// @param pricePerPeriod PXToken per period.
    event DealOpened(
        uint256 indexed dealId,
        uint256 indexed tokenId,
        address indexed provider,
        uint256 generation,
        bytes32 root,
        uint256 size,
        uint256 maxBytes,
        uint256 periods,
        uint256 pricePerPeriod
    );
    /// @notice A deal's root was updated.
    /// @param dealId The deal.
    /// @param nonce The update's nonce.
    /// @param root The new root.
    /// @param pieceCount Pieces under it.
    /// @param size Bytes under it.
    /// @param sizeEnded Bytes of pieces it ended.
    event DealRootUpdated(
        uint256 indexed dealId,
        uint256 nonce,
        bytes32 root,
        uint256 pieceCount,
        uint256 size,
        uint256 sizeEnded
    );
    /// @notice A period was proven; its price (less the fee) is claimable by the provider.
    /// @param dealId The deal.
    /// @param period The period.
    /// @param earned PXToken credited to the provider.
    /// @param fee PXToken credited to the protocol.
    event StorageProven(
        uint256 indexed dealId, uint256 indexed period, uint256 earned, uint256 fee
    );
    /// @notice A period was missed: its price returned to the escrow, the provider slashed.
    /// @param dealId The deal.
    /// @param period The period.
    /// @param slashed PXToken slashed.
    /// @param bounty Part of it paid to the caller (the rest went to the escrow).
    /// @param by The caller.
    event PeriodMissed(
        uint256 indexed dealId,
        uint256 indexed period,
        uint256 slashed,
        uint256 bounty,
        address indexed by
    );
    /// @notice A deal settled all its periods.
    /// @param dealId The deal.
    event DealCompleted(uint256 indexed dealId);
    /// @notice A deal was breached by too many misses; its remaining escrow returned.
    /// @param dealId The deal.
    /// @param refund PXToken returned to the token's escrow.
    event DealBreached(uint256 indexed dealId, uint256 refund);
    /// @notice A provider claimed its earnings.
    /// @param provider The provider.
    /// @param amount PXToken paid.
    event EarningsClaimed(address indexed provider, uint256 amount);
    /// @notice The protocol fee was changed.
    /// @param feeBps Basis points of each period's price.
    event FeeSet(uint256 feeBps);
    /// @notice The treasury was changed.
    /// @param treasury The treasury.
    event TreasurySet(address indexed treasury);
    /// @notice Accrued fees were sent to the treasury.
    /// @param treasury The treasury.
    /// @param amount PXToken sent.
    event FeesWithdrawn(address indexed treasury, uint256 amount);

    // ------------------------------------------------------------------------------------------
    // Escrow
    // ------------------------------------------------------------------------------------------

    /// @notice Adds `amount` PXToken (allowance) to the escrow of an existing token.
    /// @param tokenId The token.
    /// @param amount PXToken.
    function fund(uint256 tokenId, uint256 amount) external;

    /// @notice Credits a plan's escrow share StorageNFT has just sent. StorageNFT only.
    /// @param tokenId The token.
    /// @param amount PXToken sent.
    function credit(uint256 tokenId, uint256 amount) external;

    /// @notice Withdraws uncommitted escrow. Holder only.
    /// @param tokenId The token.
    /// @param amount PXToken.
    /// @param to Recipient.
    function withdrawEscrow(uint256 tokenId, uint256 amount, address to) external;

    /// @notice Names the token's home node, which opens its deals and co-signs their roots.
    /// Holder only; the node must hold StorageNFT's registrar role.
    /// @param tokenId The token.
    /// @param node The home node.
    function setHomeNode(uint256 tokenId, address node) external;

    // ------------------------------------------------------------------------------------------
    // Deals
    // ------------------------------------------------------------------------------------------

    /// @notice Opens a deal for `a.tokenId` with `a.provider`, committing `price * periods` of
    /// the escrow. Home node only, with the provider's signature over `a`.
    /// @param a The accepted terms.
    /// @param providerSig The provider's signature of `acceptanceDigest(a)`.
    /// @return dealId The deal.
    function openDeal(Acceptance calldata a, bytes calldata providerSig)
        external
        returns (uint256 dealId);

    /// @notice Replaces a deal's root (at most once per period). Anyone may submit it with both
    /// signatures.
    /// @param u The update.
    /// @param homeSig The home node's signature of `rootUpdateDigest(u)`.
    /// @param providerSig The provider's signature of it.
    function updateDealRoot(
        RootUpdate calldata u,
        bytes calldata homeSig,
        bytes calldata providerSig
    ) external;

    /// @notice Proves period `period` of a deal within its window; its price becomes claimable.
    /// @param dealId The deal.
    /// @param period The period (the next one to settle).
    /// @param proofs One proof per challenge, in challenge order.
    function proveStorage(uint256 dealId, uint256 period, Proof[] calldata proofs) external;

    /// @notice Marks the next period of a deal missed once its window has closed: its price
    /// returns to the escrow, `slashPerMiss` is slashed from the provider (the bounty share to
    /// the caller, the rest to the escrow); the `maxMisses`-th miss breaches the deal.
    /// @param dealId The deal.
    function markMissed(uint256 dealId) external;

    /// @notice Pays the caller what its proven periods earned.
    function claimEarnings() external;

    // ------------------------------------------------------------------------------------------
    // Admin
    // ------------------------------------------------------------------------------------------

    /// @notice Sets the protocol fee (at most `MAX_FEE_BPS`). Admin only.
    /// @param feeBps Basis points of each proven period's price.
    function setFee(uint16 feeBps) external;

    /// @notice Sets the treasury. Admin only.
    /// @param treasury The treasury.
    function setTreasury(address treasury) external;

    /// @notice Sends the accrued fees to the treasury (anyone may call).
    function withdrawFees() external;

    // ------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------

    /// @notice The deal id of a (token, provider) pair.
    /// @param tokenId The token.
    /// @param provider The provider.
    /// @return dealId `uint256(keccak256(abi.encode(tokenId, provider)))`.
    function dealIdOf(uint256 tokenId, address provider) external pure returns (uint256 dealId);

    /// @notice A deal.
    /// @param dealId The deal.
    /// @return deal Its state (zero if never opened).
    function dealOf(uint256 dealId) external view returns (Deal memory deal);

    /// @notice A token's uncommitted escrow.
    /// @param tokenId The token.
    /// @return balance PXToken.
    function escrowOf(uint256 tokenId) external view returns (uint256 balance);

    /// @notice A token's home node.
    /// @param tokenId The token.
    /// @return node The home node (0: none named).
    function homeNodeOf(uint256 tokenId) external view returns (address node);

    /// @notice What a provider can claim.
    /// @param provider The provider.
    /// @return amount PXToken.
    function earningsOf(address provider) external view returns (uint256 amount);

    /// @notice Fees accrued and not yet withdrawn.
    /// @return amount PXToken.
    function feesAccrued() external view returns (uint256 amount);

    /// @notice The seed of a period's challenge (available in its proof window).
    /// @param dealId The deal.
    /// @param period The period.
    /// @return seed The seed (0 while its challenge block's hash is not available).
    function challengeSeed(uint256 dealId, uint256 period) external view returns (bytes32 seed);

    /// @notice The piece and leaf that challenge `index` of a seed picks.
    /// @param seed The period's seed.
    /// @param index The challenge.
    /// @param pieceCount Pieces under the challenged root.
    /// @param pieceDepth The picked piece's depth.
    /// @return piece The piece index.
    /// @return leaf The leaf index within the piece.
    function challengeOf(bytes32 seed, uint256 index, uint256 pieceCount, uint256 pieceDepth)
        external
        pure
        returns (uint256 piece, uint256 leaf);

    /// @notice The EIP-712 digest a provider signs to accept a deal.
    /// @param a The terms.
    /// @return digest The digest (with the pair's next generation).
    function acceptanceDigest(Acceptance calldata a) external view returns (bytes32 digest);

    /// @notice The EIP-712 digest home node and provider sign for a root update.
    /// @param u The update.
    /// @return digest The digest (with the deal's current nonce).
    function rootUpdateDigest(RootUpdate calldata u) external view returns (bytes32 digest);

    /// @notice The market's fixed parameters.
    /// @return config The parameters.
    function config() external view returns (Config memory config);

    /// @notice The protocol fee.
    /// @return feeBps Basis points.
    function feeBps() external view returns (uint256 feeBps);

    /// @notice The treasury.
    /// @return treasury The treasury.
    function treasury() external view returns (address treasury);
}
