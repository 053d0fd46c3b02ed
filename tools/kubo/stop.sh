#!/usr/bin/env bash
# Stops a daemon started by tools/kubo/start.sh or tools/jsipfs/start.sh and
# removes its repo:  tools/kubo/stop.sh "$IPFS_PATH"   (PX_KEEP_REPO=1 keeps it)
set -euo pipefail
repo="${1:?usage: stop.sh REPO_DIR}"
if [ -f "$repo/daemon.pid" ]; then
    pid="$(cat "$repo/daemon.pid")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
fi
[ -n "${PX_KEEP_REPO:-}" ] || rm -rf "$repo"
