#!/usr/bin/env bash
# Starts a throw-away js-ipfs 0.66 daemon for tests, like tools/kubo/start.sh:
# a fresh repo (`jsipfs init --profile test`), API, Gateway, gRPC (Addresses.RPC)
# and Swarm on kernel-picked 127.0.0.1 ports (tcp/0), Bootstrap [], Delegates [],
# MDNS and webRTCStar off, Routing.Type none, `jsipfs daemon --offline` with
# preload off. NODE_OPTIONS loads the Promise.withResolvers polyfill (Node 20)
# and loopback-only.cjs, which makes any non-loopback connect/DNS/UDP attempt fail.
#
#   eval "$(tools/jsipfs/start.sh)"            # repo in a new mktemp dir
#   curl -X POST "$PX_IPFS_API/api/v0/version"
#   tools/kubo/stop.sh "$IPFS_PATH"
#   PX_KEEP_REPO=1 tools/kubo/stop.sh "$IPFS_PATH"; tools/jsipfs/start.sh "$IPFS_PATH"
#                                              # a restart: same repo, same API/Gateway ports
#
# Prints IPFS_PATH=, PX_IPFS_API=, PX_IPFS_GATEWAY=, PX_IPFS_PID= lines; the
# log is $IPFS_PATH/daemon.log. Installs js-ipfs first if needed (install.sh).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
jsipfs="$("$here/install.sh")"
repo="${1:-$(mktemp -d "${TMPDIR:-/tmp}/px-jsipfs.XXXXXX")}"
mkdir -p "$repo"
repo="$(cd "$repo" && pwd)"
export IPFS_PATH="$repo" NODE_ENV=test NO_UPDATE_NOTIFIER=1 \
    NODE_OPTIONS="${NODE_OPTIONS:-} --require $here/promise-with-resolvers.cjs --require $here/loopback-only.cjs"

# A fresh test repo, every address on loopback port 0, made in $1.
make_repo() {
    IPFS_PATH="$1" "$jsipfs" init --profile test --empty-repo >"$1/init.log" 2>&1 \
        || { cat "$1/init.log" >&2; exit 1; }
    # One node process instead of a dozen `jsipfs config` runs (each takes ~1 s).
    node --input-type=module -e '
import fs from "fs"
const f = process.argv[1] + "/config"
const c = JSON.parse(fs.readFileSync(f, "utf8"))
c.Addresses = { ...c.Addresses,
  API: "/ip4/127.0.0.1/tcp/0", Gateway: "/ip4/127.0.0.1/tcp/0", RPC: "/ip4/127.0.0.1/tcp/0",
  Swarm: ["/ip4/127.0.0.1/tcp/0"], Announce: [], NoAnnounce: [], Delegates: [] }
c.Bootstrap = []
c.Discovery = { MDNS: { Enabled: false, Interval: 10 }, webRTCStar: { Enabled: false } }
c.Routing = { Type: "none" }
c.Swarm = { ...(c.Swarm || {}), DisableNatPortMap: true }
fs.writeFileSync(f, JSON.stringify(c, null, 2))
' "$1"
}

# The first start: a copy of a repo made once per install and version of this script (init
# and the config edit take ~6 of the ~9 s of a start; test daemons then share the identity
# key, harmless on loopback without peers). The template lives in node_modules (git-ignored,
# gone with a reinstall); concurrent first starts race to make it, one wins.
init_repo() {
    [ -z "$(ls -A "$repo")" ] || { echo "start.sh: $repo is not empty" >&2; exit 1; }
    local template tmp
    template="$here/node_modules/.px-repo-template-$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)"
    if [ ! -f "$template/config" ]; then
        tmp="$(mktemp -d "$here/node_modules/.px-repo-template.XXXXXX")"
        make_repo "$tmp"
        mv -T "$tmp" "$template" 2>/dev/null || rm -rf "$tmp"
    fi
    cp -a "$template/." "$repo/"
}

# A restart: the API and Gateway on the ports of the first start (daemon.env).
reuse_repo() {
    local pid
    pid="$(cat "$repo/daemon.pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
       && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
        echo "start.sh: the daemon of $repo still runs (pid $pid)" >&2; exit 1
    fi
    # js-ipfs's repo lock (a directory, proper-lockfile) outlives a killed daemon for its
    # stale time; its daemon is gone, so the lock is stale now.
    rm -rf "$repo/repo.lock"
    node --input-type=module -e '
import fs from "fs"
const [repo] = process.argv.slice(1)
const env = fs.readFileSync(repo + "/daemon.env", "utf8")
const port = k => env.match(new RegExp("^" + k + "=http://127.0.0.1:(\\d+)$", "m"))[1]
const f = repo + "/config"
const c = JSON.parse(fs.readFileSync(f, "utf8"))
c.Addresses.API = "/ip4/127.0.0.1/tcp/" + port("PX_IPFS_API")
c.Addresses.Gateway = "/ip4/127.0.0.1/tcp/" + port("PX_IPFS_GATEWAY")
fs.writeFileSync(f, JSON.stringify(c, null, 2))
' "$repo"
}

if [ -f "$repo/daemon.env" ] && [ -f "$repo/config" ]; then reuse_repo; else init_repo; fi

setsid "$jsipfs" daemon --offline --enable-preload=false >"$repo/daemon.log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$repo/daemon.pid"
for _ in $(seq 1 600); do
    if grep -q '^Daemon is ready' "$repo/daemon.log" 2>/dev/null; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "start.sh: jsipfs daemon exited; its log:" >&2; cat "$repo/daemon.log" >&2; exit 1
    fi
    sleep 0.1
done
grep -q '^Daemon is ready' "$repo/daemon.log" || { echo "start.sh: daemon not ready after 60 s" >&2; cat "$repo/daemon.log" >&2; kill "$pid"; exit 1; }

api="$(sed -n 's#^HTTP API listening on /ip4/\([0-9.]*\)/tcp/\([0-9]*\).*#http://\1:\2#p' "$repo/daemon.log" | head -1)"
gw="$(sed -n 's#^Gateway (read only) listening on /ip4/\([0-9.]*\)/tcp/\([0-9]*\).*#http://\1:\2#p' "$repo/daemon.log" | head -1)"
[ -n "$api" ] && [ -n "$gw" ] || { echo "start.sh: could not read the listening addresses" >&2; cat "$repo/daemon.log" >&2; exit 1; }
printf 'IPFS_PATH=%s\nPX_IPFS_API=%s\nPX_IPFS_GATEWAY=%s\nPX_IPFS_PID=%s\n' "$repo" "$api" "$gw" "$pid" | tee "$repo/daemon.env"
