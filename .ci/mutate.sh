#!/usr/bin/env bash
# Mutation check: the contract tests must fail on every mutant of StorageNFT that deletes an
# access check or a sequence/expiry comparison, and on every mutant of the storage market and
# the provider registry that deletes an access check or breaks or shifts a comparison (the list
# is .ci/mutants.py). Each mutant is applied alone to a copy of the sources, compiled (the
# `mutation` forge profile: the legacy pipeline builds a mutant in seconds) and tested with the
# suites `mutants.py suite ID` names (StorageNFT's unit, round-trip and regression suites; the
# market's and registry's unit suites); a mutant the tests do not kill survives, and any
# survivor fails the check. The
# fulfilment-check mutant must also be killed by the invariant suite on its own (audit finding 6:
# the old invariants stayed green without that check).
#
# The working tree is never modified: everything happens in scratch copies under
# $PX_MUTATION_DIR (default .cache/mutation; they keep their build caches between runs), one per
# parallel job ($PX_MUTATION_JOBS, default 2), and a trap restores the copies' sources whatever
# happens.
#
#   .ci/mutate.sh            all mutants
#   .ci/mutate.sh ID...      only these (ids from `.ci/mutants.py list`)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$root/node_modules/.bin:$PATH"
export FOUNDRY_PROFILE=mutation
base=${PX_MUTATION_DIR:-$root/.cache/mutation}
jobs=${PX_MUTATION_JOBS:-2}
all_suites='test/{StorageNFT,StorageNFT.sync,StorageNFT.findings,StorageMarket,ProviderRegistry}.t.sol'
invariants='test/StorageNFT.invariant.t.sol'
sources=(contracts/StorageNFT.sol contracts/libraries/Purchases.sol contracts/StorageMarket.sol
  contracts/ProviderRegistry.sol)

if [ $# -gt 0 ]; then
  ids=("$@")
else
  mapfile -t ids < <(python3 "$root/.ci/mutants.py" list | cut -f1)
fi
[ "$jobs" -ge 1 ] || jobs=1
[ "$jobs" -le "${#ids[@]}" ] || jobs=${#ids[@]}

# A fresh copy of everything forge reads; out/ and cache/ stay for incremental builds.
setup_copy() {
  local dir=$1
  mkdir -p "$dir"
  rm -rf "$dir/contracts" "$dir/test" "$dir/script" "$dir/.ci" "$dir/pristine" "$dir/results"
  cp -R "$root/contracts" "$root/test" "$root/script" "$dir/"
  mkdir -p "$dir/.ci" "$dir/pristine"
  cp "$root/.ci/solc.cjs" "$dir/.ci/"
  cp "$root/foundry.toml" "$dir/"
  ln -sfn "$root/node_modules" "$dir/node_modules"
  for f in "${sources[@]}"; do cp "$dir/$f" "$dir/pristine/$(basename "$f")"; done
  touch "$dir/results"
}

restore() {
  local dir=$1
  for f in "${sources[@]}"; do
    if [ -f "$dir/pristine/$(basename "$f")" ]; then cp "$dir/pristine/$(basename "$f")" "$dir/$f"; fi
  done
}

restore_all() {
  for ((k = 1; k <= jobs; k++)); do restore "$base/job$k"; done
}
trap restore_all EXIT

# Runs the suites matching $2 in copy $1: succeeds when every test passes, fails when a test
# fails, and stops the job on anything else (a mutant that does not compile is a bug in the list).
run_tests() {
  local dir=$1 pattern=$2
  if (cd "$dir" && forge test --match-path "$pattern" >"$dir/last.log" 2>&1); then return 0; fi
  if grep -q "Encountered a total of [0-9]* failing test" "$dir/last.log"; then return 1; fi
  cat "$dir/last.log" >&2
  echo "mutation: forge failed without a failing test in $dir" >&2
  return 2
}

# Job $1 of $jobs: builds its copy, checks the baseline, then tests its share of the mutants.
job() {
  local k=$1 dir="$base/job$1" i id verdict t rc suites
  if run_tests "$dir" "$all_suites"; then :; else
    echo "mutation: the tests do not pass without a mutant" >&2
    echo "baseline ERROR" >>"$dir/results"
    return 1
  fi
  for ((i = k - 1; i < ${#ids[@]}; i += jobs)); do
    id=${ids[$i]}
    t=$(date +%s)
    restore "$dir"
    python3 "$root/.ci/mutants.py" apply "$id" "$dir"
    suites=$(python3 "$root/.ci/mutants.py" suite "$id")
    rc=0
    run_tests "$dir" "$suites" || rc=$?
    if [ $rc -eq 0 ]; then
      verdict=SURVIVED
    elif [ $rc -eq 1 ]; then
      verdict=killed
      if [ "$id" = fulfil-operator ]; then
        rc=0
        run_tests "$dir" "$invariants" || rc=$?
        [ $rc -eq 1 ] || verdict=SURVIVED-invariants
      fi
    else
      verdict=ERROR
    fi
    echo "$id $verdict" >>"$dir/results"
    echo "mutation: $id: $verdict ($(( $(date +%s) - t ))s)" >&2
  done
  restore "$dir"
}

start=$(date +%s)
for ((k = 1; k <= jobs; k++)); do setup_copy "$base/job$k"; done
echo "mutation: ${#ids[@]} mutants in $jobs jobs (the first build of a copy takes a minute)" >&2
pids=()
for ((k = 1; k <= jobs; k++)); do
  job "$k" &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done

results=$(cat "$base"/job*/results)
killed=$(grep -c ' killed$' <<<"$results" || true)
bad=$(grep -v ' killed$' <<<"$results" || true)
echo "mutation: $killed of ${#ids[@]} mutants killed in $(( $(date +%s) - start ))s" >&2
if [ -n "$bad" ] || [ "$killed" -ne "${#ids[@]}" ] || [ $failed -ne 0 ]; then
  echo "mutation: not killed:" >&2
  echo "${bad:-(a job failed)}" >&2
  exit 1
fi
