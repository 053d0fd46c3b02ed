#!/usr/bin/env bash
# Starts a throw-away Kubo daemon for tests: a fresh repo (`ipfs init --profile
# test`: no bootstrap peers, MDNS/AutoTLS/AutoConf off), API, Gateway and Swarm
# on 127.0.0.1 ports picked by the kernel (tcp/0), no announce addresses,
# telemetry off, DNS resolution pointed at a dead loopback DoH URL. It listens
# only on loopback and has no peer to dial.
#
#   eval "$(tools/kubo/start.sh)"            # repo in a new mktemp dir
#   eval "$(tools/kubo/start.sh /tmp/repo)"  # repo in /tmp/repo (must not exist or be empty)
#   curl -X POST "$PX_IPFS_API/api/v0/version"
#   tools/kubo/stop.sh "$IPFS_PATH"
#   PX_KEEP_REPO=1 tools/kubo/stop.sh "$IPFS_PATH"; tools/kubo/start.sh "$IPFS_PATH"
#                                            # a restart: same repo, same API/Gateway ports
#
# Given a repo this script started before (it holds daemon.env), it restarts the
# daemon on it with the API and Gateway on the ports of that first start, so
# clients keep their URL across a daemon outage (tests of backend faults).
#
# Prints shell assignments on stdout:
#   IPFS_PATH=...  PX_IPFS_API=http://127.0.0.1:N  PX_IPFS_GATEWAY=http://127.0.0.1:M  PX_IPFS_PID=...
# The daemon's log is $IPFS_PATH/daemon.log, its pid $IPFS_PATH/daemon.pid.
# IPFS_BIN overrides the binary (default: build it with tools/kubo/build.sh).
#
# PX_KUBO_MODE picks how IPNS records are kept (see tools/RPC-FACTS.md):
#   dht (default)  online, Routing.Type dht with no peers: publish stores the
#                  record locally, name/resolve and routing/get answer it.
#   offline        `ipfs daemon --offline`, Routing.Type none: no libp2p host;
#                  publish needs allow-offline=true, name/resolve works, but
#                  routing/get answers 500 "this action must be run in online mode".
#   none           online, Routing.Type none: publish answers 200 but the record
#                  is not found afterwards (name/resolve, routing/get: 500).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ipfs="${IPFS_BIN:-$("$here/build.sh")}"
repo="${1:-$(mktemp -d "${TMPDIR:-/tmp}/px-kubo.XXXXXX")}"
mkdir -p "$repo"
repo="$(cd "$repo" && pwd)"
export IPFS_PATH="$repo" IPFS_TELEMETRY=off
cfg() { "$ipfs" config --json "$1" "$2"; }

# The first start: a fresh test repo, every address on loopback port 0.
init_repo() {
    [ -z "$(ls -A "$repo")" ] || { echo "start.sh: $repo is not empty" >&2; exit 1; }
    "$ipfs" init --profile test --empty-repo >"$repo/init.log" 2>&1 \
        || { cat "$repo/init.log" >&2; exit 1; }
    # init pins the empty directory even with --empty-repo: a test repo starts with no pin.
    "$ipfs" pin rm QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn >>"$repo/init.log" 2>&1 || true
    cfg Addresses.API '"/ip4/127.0.0.1/tcp/0"'
    cfg Addresses.Gateway '"/ip4/127.0.0.1/tcp/0"'
    cfg Addresses.Swarm '["/ip4/127.0.0.1/tcp/0"]'
    cfg Addresses.Announce '[]'
    cfg Addresses.NoAnnounce '["/ip4/0.0.0.0/ipcidr/0", "/ip6/::/ipcidr/0"]'
    cfg Bootstrap '[]'
    cfg Peering.Peers '[]'
    cfg Discovery.MDNS.Enabled false
    case "$mode" in
        dht) cfg Routing.Type '"dht"' ;;
        offline|none) cfg Routing.Type '"none"' ;;
        *) echo "start.sh: PX_KUBO_MODE must be dht, offline or none" >&2; exit 1 ;;
    esac
    cfg Routing.DelegatedRouters '[]'
    cfg Ipns.DelegatedPublishers '[]'
    cfg AutoConf.Enabled false
    cfg AutoTLS.Enabled false
    cfg Swarm.DisableNatPortMap true
    cfg Plugins.Plugins '{"telemetry": {"Config": {"Mode": "off"}}}'
    # DNSLink lookups (a name that is not a key, a gateway Host header) go to a DoH
    # endpoint on loopback where nothing listens: they fail at once, never leave.
    cfg DNS.Resolvers '{".": "https://127.0.0.1:9/dns-query"}'
    echo "$mode" >"$repo/mode"
}

# A restart: the mode and the API/Gateway ports of the first start (daemon.env).
reuse_repo() {
    local pid api_port gw_port
    pid="$(cat "$repo/daemon.pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
       && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
        echo "start.sh: the daemon of $repo still runs (pid $pid)" >&2; exit 1
    fi
    port_of() { sed -n "s#^$1=http://127.0.0.1:\([0-9]*\)\$#\1#p" "$repo/daemon.env"; }
    api_port="$(port_of PX_IPFS_API)"; gw_port="$(port_of PX_IPFS_GATEWAY)"
    [ -n "$api_port" ] && [ -n "$gw_port" ] \
        || { echo "start.sh: no ports in $repo/daemon.env" >&2; exit 1; }
    cfg Addresses.API "\"/ip4/127.0.0.1/tcp/$api_port\""
    cfg Addresses.Gateway "\"/ip4/127.0.0.1/tcp/$gw_port\""
    mode="$(cat "$repo/mode" 2>/dev/null || echo dht)"
}

mode="${PX_KUBO_MODE:-dht}"
if [ -f "$repo/daemon.env" ] && [ -f "$repo/config" ]; then reuse_repo; else init_repo; fi

offline=
[ "$mode" = offline ] && offline=--offline
# setsid: its own process group, so stop.sh can end it and nothing else.
setsid "$ipfs" daemon $offline >"$repo/daemon.log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$repo/daemon.pid"

for _ in $(seq 1 300); do
    if grep -q '^Daemon is ready' "$repo/daemon.log" 2>/dev/null; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "start.sh: ipfs daemon exited; its log:" >&2; cat "$repo/daemon.log" >&2; exit 1
    fi
    sleep 0.1
done
grep -q '^Daemon is ready' "$repo/daemon.log" || { echo "start.sh: daemon not ready after 30 s" >&2; cat "$repo/daemon.log" >&2; kill "$pid"; exit 1; }

api="$(sed -n 's#^RPC API server listening on /ip4/\([0-9.]*\)/tcp/\([0-9]*\).*#http://\1:\2#p' "$repo/daemon.log" | head -1)"
gw="$(sed -n 's#^Gateway server listening on /ip4/\([0-9.]*\)/tcp/\([0-9]*\).*#http://\1:\2#p' "$repo/daemon.log" | head -1)"
[ -n "$api" ] && [ -n "$gw" ] || { echo "start.sh: could not read the listening addresses" >&2; cat "$repo/daemon.log" >&2; exit 1; }
printf 'IPFS_PATH=%s\nPX_IPFS_API=%s\nPX_IPFS_GATEWAY=%s\nPX_IPFS_PID=%s\n' "$repo" "$api" "$gw" "$pid" | tee "$repo/daemon.env"
