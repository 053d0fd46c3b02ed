#!/usr/bin/env bash
# Builds the pinned Kubo (go-ipfs) daemon from its Go module into the
# project-local, git-ignored bin directory, and skips the build when the binary
# there was already built from this exact go.mod/go.sum.
#
#   tools/kubo/build.sh            # prints the path of the binary on stdout
#   PX_BIN_DIR=/some/dir tools/kubo/build.sh
#   PX_KUBO_REBUILD=1 tools/kubo/build.sh   # force a rebuild
#
# Needs Go >= 1.26.5 and the Go module proxy (GOPROXY); GitHub is not needed.
# GOPATH/GOMODCACHE/GOCACHE keep the user's defaults unless set by the caller.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin_dir="${PX_BIN_DIR:-$root/.cache/bin}"
bin="$bin_dir/ipfs"
stamp="$bin_dir/ipfs.stamp"
want_version="$(sed -n 's#^[[:space:]]*github.com/ipfs/kubo v\([0-9.]*\).*#\1#p' "$here/go.mod")"
[ -n "$want_version" ] || { echo "build.sh: no github.com/ipfs/kubo requirement in $here/go.mod" >&2; exit 1; }
want_stamp="kubo $want_version $(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -d' ' -f1)"

if [ -z "${PX_KUBO_REBUILD:-}" ] && [ -x "$bin" ] && [ -f "$stamp" ] \
   && [ "$(cat "$stamp")" = "$want_stamp" ] \
   && [ "$("$bin" version --number 2>/dev/null)" = "$want_version" ]; then
    echo "$bin"
    exit 0
fi

command -v go >/dev/null || { echo "build.sh: go not found (need Go >= 1.26.5)" >&2; exit 1; }
mkdir -p "$bin_dir"
echo "build.sh: building Kubo $want_version into $bin (a cold build takes minutes)" >&2
start=$(date +%s)
# -mod=readonly: build exactly the committed go.mod/go.sum, never edit them.
# GOTOOLCHAIN=local: never download another Go toolchain.
# nice: the machine is shared with cargo builds; default parallelism otherwise.
(
    cd "$here"
    GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -mod=readonly" \
        nice -n 10 go build -trimpath -ldflags='-s -w' -o "$bin.tmp" github.com/ipfs/kubo/cmd/ipfs
)
got="$("$bin.tmp" version --number)"
[ "$got" = "$want_version" ] || { echo "build.sh: built ipfs reports version $got, want $want_version" >&2; exit 1; }
mv -f "$bin.tmp" "$bin"
echo "$want_stamp" > "$stamp"
echo "build.sh: built Kubo $got in $(( $(date +%s) - start )) s" >&2
echo "$bin"
