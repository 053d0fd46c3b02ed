#!/usr/bin/env bash
# Installs js-ipfs 0.66 (npm `ipfs`) from tools/jsipfs/package-lock.json into
# tools/jsipfs/node_modules (git-ignored), and skips the install when that exact
# lockfile is already installed. Prints the path of the `jsipfs` launcher.
#
#   tools/jsipfs/install.sh              # -> tools/jsipfs/node_modules/.bin/jsipfs
#   PX_JSIPFS_REINSTALL=1 tools/jsipfs/install.sh
#
# Install scripts are not run (--ignore-scripts): the ones in this tree
# (electron, wrtc prebuilt downloads) would fetch from hosts that cannot be
# reached and are not needed by the daemon. Run the daemon with
# NODE_OPTIONS=--require tools/jsipfs/promise-with-resolvers.cjs (start.sh does).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
stamp="$here/node_modules/.px-install-stamp"
want="$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)"
bin="$here/node_modules/.bin/jsipfs"

if [ -z "${PX_JSIPFS_REINSTALL:-}" ] && [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "$bin"
    exit 0
fi
echo "install.sh: npm ci for js-ipfs into $here/node_modules (takes minutes)" >&2
start=$(date +%s)
(cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
echo "$want" >"$stamp"
echo "install.sh: installed in $(( $(date +%s) - start )) s" >&2
echo "$bin"
