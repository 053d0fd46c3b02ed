#!/usr/bin/env python3
"""The mutants of the mutation check (.ci/mutate.sh) and how to apply one.

Each mutant deletes one access check or one sequence/expiry comparison (or another check
the issue-14 audit relied on) in StorageNFT and the purchase logic it compiles in. The
mutation check applies them one at a time to a copy of the sources and fails if the tests
still pass on any of them.

    mutants.py list               one line per mutant: id, then its description
    mutants.py apply ID DIR       apply mutant ID to the sources under DIR
"""
import re
import sys

NFT = "contracts/StorageNFT.sol"
PURCHASES = "contracts/libraries/Purchases.sol"

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
               "withdrawLink"]
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
]


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
