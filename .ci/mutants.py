#!/usr/bin/env python3
"""The mutants of the mutation check (.ci/mutate.sh) and how to apply one.

Each mutant deletes one access check or one sequence/expiry comparison (or another check
the issue-14 audit relied on) in StorageNFT and the purchase logic it compiles in, or one
access check or comparison of the storage market and the provider registry (issue 16), or
moves a comparison's boundary by one. The mutation check applies them one at a time to a copy
of the sources and fails if the tests still pass on any of them.

    mutants.py list               one line per mutant: id, then its description
    mutants.py apply ID DIR       apply mutant ID to the sources under DIR
    mutants.py suite ID           the test files (a forge --match-path glob) that must kill it
"""
import re
import sys

NFT = "contracts/StorageNFT.sol"
PURCHASES = "contracts/libraries/Purchases.sol"
MARKET = "contracts/StorageMarket.sol"
REGISTRY = "contracts/ProviderRegistry.sol"

NFT_SUITES = "test/StorageNFT{.t,.sync.t,.findings.t}.sol"
MARKET_SUITES = "test/{StorageMarket,ProviderRegistry}.t.sol"
BOTH_SUITES = "test/{StorageNFT,StorageNFT.sync,StorageNFT.findings,StorageMarket,ProviderRegistry}.t.sol"

# (id, file, function, kind, target, replacement, description)
#   kind "delete":   remove `target` (a whole statement) from the function's body
#   kind "modifier": remove the modifier `target` from the function's header
#   kind "replace":  replace `target` with `replacement` in the function
MUTANTS = [
    # Access checks.
    ("fulfil-operator", NFT, "fulfillSync", "delete",
     "if (msg.sender != r.operator) revert NotRequestOperator(requestId, msg.sender);", None,
     "Chainlink fulfilment check: fulfillSync accepts any caller"),
    ("require-authorized", NFT, "_requireAuthorized", "delete",
     "if (!_isAuthorized(owner, msg.sender, tokenId)) revert NotTokenOwner(tokenId, msg.sender);",
     None, "_requireAuthorized lets anyone act for a token"),
    ("role-registerKey", NFT, "registerKey", "modifier", "onlyRole(REGISTRAR_ROLE)", None,
     "registerKey without the registrar role"),
    ("role-mintWithKey-signer", NFT, "mintWithKey", "delete",
     "if (!hasRole(REGISTRAR_ROLE, signer)) revert InvalidAssignment(signer);", None,
     "mintWithKey accepts an assignment from anyone"),
    ("role-rebindKey-signer", NFT, "rebindKey", "delete",
     "if (!hasRole(REGISTRAR_ROLE, signer)) revert InvalidAssignment(signer);", None,
     "rebindKey accepts an assignment from anyone"),
] + [
    ("role-" + fn, NFT, fn, "modifier", "onlyRole(DEFAULT_ADMIN_ROLE)", None,
     fn + " without the admin role")
    for fn in ["createPlan", "updatePlan", "setSyncWindow", "setMinSyncInterval",
               "scheduleOracleConfig", "setQuotaUnitPrice", "setTreasury", "withdrawFees",
               "withdrawLink", "setMarket"]
] + [
    ("role-" + fn, NFT, fn, "modifier", "onlyRole(PAUSER_ROLE)", None,
     fn + " without the pauser role")
    for fn in ["pause", "unpause"]
] + [
    ("oracle-delay", NFT, "applyOracleConfig", "delete",
     "if (block.timestamp < effectiveAt) revert OracleConfigNotReady(effectiveAt);", None,
     "an oracle configuration takes effect before its delay"),
    ("pause-requestSync", NFT, "requestSync", "delete",
     "if (g.pausedAt != 0) revert EnforcedPause();", None, "requestSync while paused"),
    ("pause-mint", NFT, "_mintPlan", "delete",
     "if (g.pausedAt != 0) revert EnforcedPause();", None, "minting while paused"),
    ("pause-purchases", NFT, "_runningNow", "delete",
     "if (g.pausedAt != 0) revert EnforcedPause();", None, "upgrade and renewal while paused"),
    ("pause-rebind-quota", NFT, "_requireNotPaused", "delete",
     "if (_globals.pausedAt != 0) revert EnforcedPause();", None,
     "rebinding and extra quota while paused"),
    # Sequence comparisons and answer checks.
    ("seq", NFT, "fulfillSync", "delete",
     "else if (seq <= s.seq) status = SyncStatus.STALE_SEQUENCE;", None,
     "seq comparison: a record not above the last one is accepted"),
    ("answer-token", NFT, "fulfillSync", "replace", "if (tokenId != id) {", "if (false) {",
     "an answer naming another token is applied to the request's token"),
    ("answer-cid", NFT, "fulfillSync", "replace", "if (recordCid.length == 0)", "if (false)",
     "an OK answer without a record CID is accepted"),
    # Expiry and time comparisons.
    ("expiry-canUpload", NFT, "canUpload", "delete",
     "if (t.expiresAt != 0 && now_ >= t.expiresAt) return (false, Reason.Expired);", None,
     "expiry check: canUpload ignores expiry"),
    ("expiry-requestSync", NFT, "requestSync", "replace",
     "if (expiresAt != 0 && block.timestamp - g.pausedTotal >= expiresAt)", "if (false)",
     "expiry check: expired tokens can request syncs"),
    ("window-canUpload", NFT, "canUpload", "delete",
     "if (now_ > uint256(t.lastSyncAt) + g.syncWindow) return (false, Reason.NotSynced);", None,
     "canUpload ignores the sync window"),
    ("request-expiry", NFT, "_giveUp", "delete",
     "if (block.timestamp < c.expiration) revert SyncPending(tokenId, c.requestId);", None,
     "a pending request is replaced before the Operator lets it expire"),
    ("deadline-mintWithKey", NFT, "mintWithKey", "delete",
     "if (block.timestamp > deadline) revert AssignmentExpired(deadline);", None,
     "mintWithKey accepts a lapsed assignment"),
    ("deadline-rebindKey", NFT, "rebindKey", "delete",
     "if (block.timestamp > deadline) revert AssignmentExpired(deadline);", None,
     "rebindKey accepts a lapsed assignment"),
    ("rate-limit", NFT, "requestSync", "replace",
     "if (s.requestedAt != 0 && block.timestamp < nextAt)", "if (false)",
     "requests are not rate-limited"),
    ("free-rate-limit", NFT, "requestSync", "delete",
     "if (freeInterval > interval) interval = freeInterval;", None,
     "tokens without expiry are not held to a quarter window"),
    ("credits", NFT, "requestSync", "delete",
     "if (s.syncCredits == 0) revert NoSyncCredits(tokenId);", None,
     "requests without sync credits"),
    # Payments.
    ("max-price", PURCHASES, "collect", "replace", "if (tokenPrice > maxTokenPrice)",
     "if (false)", "the buyer's maximum price is ignored"),
    ("prepaid-cap", PURCHASES, "checkPrepaid", "delete",
     "if (expiresAt > maxExpiresAt) revert IStorageNFT.PrepaidTooLong(expiresAt, maxExpiresAt);",
     None, "expiry can be paid for beyond MAX_PREPAID_PERIOD"),
    ("renewable", PURCHASES, "renew", "replace", "if (!p.renewable || p.validity == 0)",
     "if (false)", "plans without expiry or not renewable are renewed"),
    # Plan shares routed into the market escrow (issue 16).
    ("share-bound", NFT, "createPlan", "replace", "|| p.escrowShareBps > MAX_ESCROW_SHARE_BPS",
     "", "a plan's escrow share is not bounded"),
    ("share-native", PURCHASES, "route", "replace", "if (share == 0 || msg.value != 0)",
     "if (share == 0)", "a native payment also routes PXToken into the escrow"),
] + [
    # ProviderRegistry: access checks.
    ("reg-role-" + fn, REGISTRY, fn, "modifier", "onlyRole(" + role + ")", None,
     fn + " without the " + role)
    for fn, role in [("certify", "CERTIFIER_ROLE"), ("decertify", "CERTIFIER_ROLE"),
                     ("setMarket", "DEFAULT_ADMIN_ROLE"), ("setMinStake", "DEFAULT_ADMIN_ROLE"),
                     ("setUnbondingDelay", "DEFAULT_ADMIN_ROLE")]
] + [
    ("reg-market-" + fn, REGISTRY, fn, "modifier", "onlyMarket", None,
     fn + " callable by anyone, not only the market")
    for fn in ["reserve", "release", "slash"]
] + [
    ("reg-market-once", REGISTRY, "setMarket", "delete",
     "if (_market != address(0)) revert MarketAlreadySet(_market);", None,
     "the market can be replaced"),
    ("reg-not-registered", REGISTRY, "_registered", "delete",
     "if (!p.registered) revert NotRegistered(provider);", None,
     "unregistered addresses act as providers"),
    # ProviderRegistry: comparisons.
    ("reg-registered-twice", REGISTRY, "registerProvider", "delete",
     "if (p.registered) revert AlreadyRegistered(msg.sender);", None,
     "a provider registers twice"),
    ("reg-min-stake", REGISTRY, "registerProvider", "replace", "if (stake < _minStake)",
     "if (false)", "registration below the minimum stake"),
    ("reg-min-stake-edge", REGISTRY, "registerProvider", "replace", "if (stake < _minStake)",
     "if (stake <= _minStake)", "the minimum stake itself is refused"),
    ("reg-exit-twice", REGISTRY, "requestExit", "delete",
     "if (p.unbondsAt != 0) revert Exiting(msg.sender);", None,
     "a second exit request pushes the unbonding back"),
    ("reg-unbond-time", REGISTRY, "withdrawStake", "replace",
     "if (unbondsAt == 0 || block.timestamp < unbondsAt)", "if (unbondsAt == 0)",
     "stake withdrawn before the unbonding delay"),
    ("reg-unbond-time-edge", REGISTRY, "withdrawStake", "replace",
     "block.timestamp < unbondsAt", "block.timestamp <= unbondsAt",
     "stake not withdrawable at the end of the delay"),
    ("reg-unbond-exit", REGISTRY, "withdrawStake", "replace",
     "if (unbondsAt == 0 || block.timestamp < unbondsAt)", "if (block.timestamp < unbondsAt)",
     "stake withdrawn without asking to exit"),
    ("reg-active-deals", REGISTRY, "withdrawStake", "delete",
     "if (p.activeDeals != 0) revert HasActiveDeals(msg.sender, p.activeDeals);", None,
     "stake withdrawn while holding an active deal"),
    ("reg-capacity", REGISTRY, "reserve", "replace", "if (size > free)", "if (false)",
     "a deal beyond the free capacity (or with an inactive provider)"),
    ("reg-capacity-edge", REGISTRY, "reserve", "replace", "if (size > free)",
     "if (size >= free)", "a deal of exactly the free capacity is refused"),
    ("reg-active-paused", REGISTRY, "_isActive", "replace", "!p.paused &&", "",
     "a paused provider is listed"),
    ("reg-active-exiting", REGISTRY, "_isActive", "replace", "p.unbondsAt == 0 &&", "",
     "an exiting provider is listed"),
    ("reg-active-stake", REGISTRY, "_isActive", "replace", "&& p.stake >= _minStake", "",
     "a provider below the minimum stake stays listed"),
    ("reg-delisted", REGISTRY, "slash", "replace", "if (stake < _minStake) emit",
     "if (false) emit", "no delisting event below the minimum stake"),
    ("reg-slash-cap", REGISTRY, "slash", "replace",
     "slashed = amount < stake ? amount : stake;", "slashed = amount;",
     "a slash is not capped by the stake"),
    ("reg-endpoint-empty", REGISTRY, "_checkListing", "replace", "len == 0 ||", "",
     "an empty endpoint is listed"),
    ("reg-endpoint-long", REGISTRY, "_checkListing", "replace",
     "|| len > MAX_ENDPOINT_LENGTH", "", "an over-long endpoint is listed"),
    ("reg-endpoint-long-edge", REGISTRY, "_checkListing", "replace",
     "len > MAX_ENDPOINT_LENGTH", "len >= MAX_ENDPOINT_LENGTH",
     "an endpoint of the maximum length is refused"),
    ("reg-capacity-zero", REGISTRY, "_checkListing", "replace", "|| capacity == 0", "",
     "a listing without capacity"),
    ("reg-min-stake-bound", REGISTRY, "_setMinStake", "replace",
     "if (minStake_ > MAX_MIN_STAKE)", "if (false)", "the minimum stake is not bounded"),
    ("reg-unbonding-min", REGISTRY, "_setUnbondingDelay", "replace",
     "delay < MIN_UNBONDING_DELAY ||", "", "the unbonding delay has no lower bound"),
    ("reg-unbonding-max", REGISTRY, "_setUnbondingDelay", "replace",
     "|| delay > MAX_UNBONDING_DELAY", "", "the unbonding delay has no upper bound"),
    ("reg-list-registered", REGISTRY, "_matches", "delete",
     "if (!p.registered) return false;", None, "exited providers are listed"),
    ("reg-filter-active", REGISTRY, "_matches", "replace", "f.onlyActive && !_isActive(p)",
     "false", "the active filter keeps inactive providers"),
    ("reg-filter-certified", REGISTRY, "_matches", "replace",
     "f.onlyCertified && !p.certified", "false", "the certified filter keeps uncertified ones"),
    ("reg-filter-region", REGISTRY, "_matches", "replace",
     "f.region != 0 && p.region != f.region", "false", "the region filter is ignored"),
    ("reg-filter-price", REGISTRY, "_matches", "replace",
     "f.maxPrice != 0 && p.price > f.maxPrice", "false", "the price cap is ignored"),
    ("reg-filter-price-edge", REGISTRY, "_matches", "replace", "p.price > f.maxPrice",
     "p.price >= f.maxPrice", "a provider at exactly the price cap is filtered out"),
    ("reg-filter-capacity-edge", REGISTRY, "_matches", "replace",
     "_free(p) >= f.minFreeCapacity", "_free(p) > f.minFreeCapacity",
     "a provider with exactly the free capacity asked is filtered out"),
] + [
    # StorageMarket: access checks.
    ("mk-role-" + fn, MARKET, fn, "modifier", "onlyRole(DEFAULT_ADMIN_ROLE)", None,
     fn + " without the admin role")
    for fn in ["setFee", "setTreasury"]
] + [
    ("mk-credit-nft", MARKET, "credit", "delete",
     "if (msg.sender != address(_nft)) revert NotStorageNFT(msg.sender);", None,
     "anyone credits escrow without paying"),
    ("mk-holder", MARKET, "_requireHolder", "delete",
     "if (_nft.ownerOf(tokenId) != msg.sender) revert NotTokenHolder(tokenId, msg.sender);",
     None, "anyone withdraws escrow or names the home node"),
    ("mk-home-registrar", MARKET, "setHomeNode", "replace",
     "if (!IAccessControl(address(_nft)).hasRole(REGISTRAR_ROLE, node))", "if (false)",
     "a home node without the registrar role"),
    ("mk-open-home", MARKET, "openDeal", "delete",
     "if (msg.sender != _homeNodes[tokenId]) revert NotHomeNode(tokenId, msg.sender);", None,
     "anyone opens a deal for a token"),
    ("mk-open-provider", MARKET, "openDeal", "delete",
     "if (signer != a.provider) revert NotProvider(signer, a.provider);", None,
     "a deal opens without the provider's acceptance"),
    ("mk-update-home", MARKET, "_checkUpdateSigners", "delete",
     "if (home != _homeNodes[d.tokenId]) revert NotHomeNode(d.tokenId, home);", None,
     "a root update without the home node's signature"),
    ("mk-update-provider", MARKET, "_checkUpdateSigners", "delete",
     "if (signer != d.provider) revert NotProvider(signer, d.provider);", None,
     "a root update without the provider's signature"),
    # StorageMarket: comparisons.
    ("mk-fund-zero", MARKET, "fund", "delete", "if (amount == 0) revert ZeroAmount(tokenId);", None,
     "zero funding"),
    ("mk-withdraw-escrow", MARKET, "withdrawEscrow", "replace", "if (amount > balance)",
     "if (false)", "withdrawing more than the uncommitted escrow"),
    ("mk-withdraw-escrow-edge", MARKET, "withdrawEscrow", "replace", "if (amount > balance)",
     "if (amount >= balance)", "the whole uncommitted escrow cannot be withdrawn"),
    ("mk-open-deadline", MARKET, "openDeal", "replace", "if (block.timestamp > a.deadline)",
     "if (false)", "a lapsed acceptance opens a deal"),
    ("mk-open-deadline-edge", MARKET, "openDeal", "replace",
     "if (block.timestamp > a.deadline)", "if (block.timestamp >= a.deadline)",
     "an acceptance is refused at its deadline"),
    ("mk-open-pieces", MARKET, "openDeal", "replace", "a.pieceCount == 0 ||", "",
     "a deal without pieces"),
    ("mk-open-periods", MARKET, "openDeal", "replace", "a.periods == 0 ||", "",
     "a deal without periods"),
    ("mk-open-maxbytes", MARKET, "openDeal", "replace", "a.maxBytes == 0 ||", "",
     "a deal reserving nothing"),
    ("mk-open-size", MARKET, "openDeal", "replace", "|| a.size > a.maxBytes", "",
     "a deal above its reserved size"),
    ("mk-open-size-edge", MARKET, "openDeal", "replace", "a.size > a.maxBytes",
     "a.size >= a.maxBytes", "a deal of exactly its reserved size is refused"),
    ("mk-open-active", MARKET, "openDeal", "delete",
     "if (d.status == DealStatus.Active) revert DealActive(dealId);", None,
     "a second active deal for the same pair overwrites the first"),
    ("mk-open-price", MARKET, "_reserve", "delete",
     "if (listed != a.pricePerGiBMonth) revert PriceChanged(listed, a.pricePerGiBMonth);", None,
     "a deal at another price than the provider accepted"),
    ("mk-open-escrow", MARKET, "_commit", "replace", "if (total > balance)", "if (false)",
     "a deal above the escrow"),
    ("mk-open-escrow-edge", MARKET, "_commit", "replace", "if (total > balance)",
     "if (total >= balance)", "a deal of exactly the escrow is refused"),
    ("mk-update-active", MARKET, "updateDealRoot", "delete",
     "if (d.status != DealStatus.Active) revert DealNotActive(dealId);", None,
     "an ended deal's root is updated"),
    ("mk-update-once", MARKET, "updateDealRoot", "replace",
     "if (period <= (uint256(d.rootSince) - start) / _periodBlocks)", "if (false)",
     "several root updates in one period"),
    ("mk-update-empty", MARKET, "updateDealRoot", "replace", "u.pieceCount == 0 ||", "",
     "a root update without pieces"),
    ("mk-update-maxbytes", MARKET, "updateDealRoot", "replace", "|| u.size > d.maxBytes", "",
     "a root update above the reserved size"),
    ("mk-update-size", MARKET, "updateDealRoot", "replace",
     "if (uint256(u.size) + u.sizeEnded < d.size)", "if (false)",
     "a root update lowers the size without ending pieces"),
    ("mk-prove-active", MARKET, "proveStorage", "delete",
     "if (d.status != DealStatus.Active) revert DealNotActive(dealId);", None,
     "an ended deal is proven"),
    ("mk-prove-period", MARKET, "proveStorage", "delete",
     "if (period != next) revert PeriodNotNext(dealId, period, next);", None,
     "a proof for another period than the next one"),
    ("mk-prove-ready", MARKET, "proveStorage", "replace",
     "if (block.number <= challengeBlock)", "if (false)",
     "a proof before the challenge block"),
    ("mk-prove-ready-edge", MARKET, "proveStorage", "replace",
     "if (block.number <= challengeBlock)", "if (block.number < challengeBlock)",
     "a proof in the challenge block itself"),
    ("mk-prove-window", MARKET, "proveStorage", "replace", "if (block.number > deadline)",
     "if (false)", "a proof after the window"),
    ("mk-prove-window-edge", MARKET, "proveStorage", "replace", "if (block.number > deadline)",
     "if (block.number >= deadline)", "a proof in the window's last block is refused"),
    ("mk-prove-root", MARKET, "proveStorage", "replace", "d.rootSince < challengeBlock",
     "true", "a period is proven against a root committed after its challenge block"),
    ("mk-prove-root-edge", MARKET, "proveStorage", "replace", "d.rootSince < challengeBlock",
     "d.rootSince <= challengeBlock", "a root committed in the challenge block answers it"),
    ("mk-prove-count", MARKET, "proveStorage", "replace", "if (proofs.length != c)",
     "if (false)", "fewer answers than challenges"),
    ("mk-verify-depth", MARKET, "_verify", "delete",
     "if (p.piecePath.length != depth) return false;", None,
     "an inner node answers for its chunks"),
    ("mk-verify-piece", MARKET, "_verify", "delete",
     "if (StorageProof.processPath(p.leaf, leaf, p.piecePath) != p.pieceRoot) return false;",
     None, "the chunk is not checked against its piece"),
    ("mk-verify-deal", MARKET, "_verify", "replace",
     "return StorageProof.processPath(dealLeaf, piece, p.dealPath) == root;", "return true;",
     "the piece is not checked against the deal root"),
    ("mk-complete-prove", MARKET, "proveStorage", "replace", "if (next + 1 == d.periods)",
     "if (false)", "a deal whose last period is proven stays active"),
    ("mk-miss-active", MARKET, "markMissed", "delete",
     "if (d.status != DealStatus.Active) revert DealNotActive(dealId);", None,
     "an ended (or unknown) deal is marked missed"),
    ("mk-miss-window", MARKET, "markMissed", "replace", "if (block.number <= deadline)",
     "if (false)", "a period is marked missed inside its window"),
    ("mk-miss-window-edge", MARKET, "markMissed", "replace", "if (block.number <= deadline)",
     "if (block.number < deadline)", "a period is marked missed in the window's last block"),
    ("mk-miss-breach", MARKET, "markMissed", "replace", "if (misses >= _maxMisses)",
     "if (misses > _maxMisses)", "a deal breaches one miss late"),
    ("mk-miss-complete", MARKET, "markMissed", "replace",
     "} else if (period + 1 == d.periods) {", "} else if (false) {",
     "a deal whose last period is missed stays active"),
    ("mk-miss-slash-cap", MARKET, "markMissed", "replace",
     "stake < _slashPerMiss ? stake : _slashPerMiss", "_slashPerMiss",
     "the bounty is computed from more than was slashed"),
    ("mk-miss-slash", MARKET, "markMissed", "replace",
     "if (slashed != 0) _registry.slash(provider, slashed);", "", "a miss slashes nothing"),
    ("mk-breach-refund", MARKET, "_end", "replace", "if (status == DealStatus.Breached)",
     "if (false)", "a breach keeps the rest of the term"),
    ("mk-claim-zero", MARKET, "claimEarnings", "delete",
     "if (amount == 0) revert NothingToClaim(msg.sender);", None, "claiming nothing succeeds"),
    ("mk-fees-zero", MARKET, "withdrawFees", "delete",
     "if (amount == 0) revert NothingToClaim(to);", None, "withdrawing no fees succeeds"),
    ("mk-fee-bound", MARKET, "_setFee", "delete", "_checkBounds(feeBps_, 0, MAX_FEE_BPS);",
     None, "the protocol fee is not bounded"),
]

SUITE_OVERRIDES = {"role-setMarket": BOTH_SUITES, "share-bound": BOTH_SUITES,
                   "share-native": BOTH_SUITES}


def suite(mutant):
    """The test files that must kill `mutant`."""
    if mutant[0] in SUITE_OVERRIDES:
        return SUITE_OVERRIDES[mutant[0]]
    return MARKET_SUITES if mutant[1] in (MARKET, REGISTRY) else NFT_SUITES


def function_span(src, name):
    """The text span of function `name`, from its `function` keyword to the next function."""
    m = re.search(r"\n    function " + re.escape(name) + r"\(", src)
    if not m:
        sys.exit(f"mutants: function {name} not found")
    nxt = src.find("\n    function ", m.end())
    return m.start(), (len(src) if nxt < 0 else nxt)


def pattern(text):
    """A regex matching `text` whatever the whitespace between its tokens (forge fmt may wrap)."""
    return r"\s*".join(re.escape(t) for t in re.findall(r"\w+|[^\w\s]", text))


def apply(mutant, root):
    _id, path, fn, kind, target, replacement, _desc = mutant
    full = f"{root}/{path}"
    src = open(full).read()
    start, end = function_span(src, fn)
    part = src[start:end]
    if kind == "modifier":
        body = part.index("{")
        header = part[:body]
        found = list(re.finditer(r"\s*" + pattern(target), header))
        if len(found) != 1:
            sys.exit(f"mutants: {target} not found once in the header of {fn}")
        header = header[: found[0].start()] + header[found[0].end():]
        part = header + part[body:]
    else:
        found = list(re.finditer(pattern(target), part))
        if len(found) != 1:
            sys.exit(f"mutants: {target!r} not found once in {fn} ({path})")
        m = found[0]
        part = part[: m.start()] + ("" if kind == "delete" else replacement) + part[m.end():]
    open(full, "w").write(src[:start] + part + src[end:])


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "list":
        for m in MUTANTS:
            print(f"{m[0]}\t{m[6]}")
    elif len(sys.argv) == 3 and sys.argv[1] == "suite":
        for m in MUTANTS:
            if m[0] == sys.argv[2]:
                print(suite(m))
                return
        sys.exit(f"mutants: no mutant {sys.argv[2]}")
    elif len(sys.argv) == 4 and sys.argv[1] == "apply":
        for m in MUTANTS:
            if m[0] == sys.argv[2]:
                apply(m, sys.argv[3])
                return
        sys.exit(f"mutants: no mutant {sys.argv[2]}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
