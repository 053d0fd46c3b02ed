#!/usr/bin/env bash
# Stops a daemon started by tools/jsipfs/start.sh and removes its repo (same as tools/kubo/stop.sh).
exec "$(dirname "${BASH_SOURCE[0]}")/../kubo/stop.sh" "$@"
