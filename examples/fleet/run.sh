#!/usr/bin/env bash
# Three local wabridge instances on one Redis (REDIS_URL, default redis://127.0.0.1:6379), ports
# 3001-3003, without a process manager. Ctrl-C stops all three (SIGTERM: each drains, then exits).
# Run from anywhere; logs go to stdout prefixed with the instance name.
set -euo pipefail
cd "$(dirname "$0")/../.."
pids=()
stop() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait; }
trap stop INT TERM
for i in 1 2 3; do
  PORT=300$i node bin/wabridge.js serve --config examples/fleet/wabridge.yaml > >(sed -u "s/^/wab$i | /") 2>&1 &
  pids+=($!)
done
wait
