#!/usr/bin/env bash
# The node's and the oracle's integration tests and the devnet story on one IPFS backend
# (`make test-kubo`, `make test-jsipfs`): .ci/ipfs-tests.sh store|kubo|jsipfs
#
# It runs the test binaries `cargo test --workspace` builds (`cargo test -p <package>` would
# resolve that package's own feature set and build much of the dependency graph again), each
# from its package directory as cargo does. Test modules that never touch IPFS (sign-in, abuse
# limits, the OpenAPI document; the oracle's chain-RPC faults, reorgs and start-up checks) run
# on px-store only: on another backend they would test the same code again.
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:?usage: .ci/ipfs-tests.sh store|kubo|jsipfs}
cargo=${CARGO:-cargo}
read -r -a flags <<<"${CARGO_FLAGS---locked}"
json=$("$cargo" test "${flags[@]}" --workspace --all-targets --no-run --message-format=json)

run() {
  local package=$1 dir exe
  shift
  read -r dir exe < <(python3 .ci/it-bin.py "$package" <<<"$json")
  echo "ipfs-tests: $package on $backend: $exe $*"
  (cd "$dir" && PX_TEST_IPFS=$backend "$exe" "$@")
}

run px-node --skip auth:: --skip abuse:: --skip api::
run px-oracle --skip faults::
run px-cli story
