#!/usr/bin/env bash
# io_uring against the polling fallback (issue 21): one release binary, run alternately with
# SLUICE_IO_DRIVER=io_uring ("old") and SLUICE_IO_DRIVER=polling ("new") through perf/ab.sh,
# a fresh broker and data directory per run, produce and then consume.
#
#   perf/io_driver_ab.sh [BIN] [ROUNDS]      (default: target/release/sluice, 3)
#
# Prints perf/ab.sh's lines: MB/s, latency percentiles, broker CPU-s/GB, peak RSS, faults.
set -euo pipefail
BIN="$(realpath "${1:-target/release/sluice}")"
ROUNDS="${2:-3}"
HERE="$(cd "$(dirname "$0")" && pwd)"
WRAP="$(mktemp -d)"
trap 'rm -rf "$WRAP"' EXIT
# exec keeps the broker's pid, which perf/ab.sh samples for CPU time and page faults.
for driver in io_uring polling; do
  printf '#!/bin/sh\nSLUICE_IO_DRIVER=%s exec %q "$@"\n' "$driver" "$BIN" > "$WRAP/sluice-$driver"
  chmod +x "$WRAP/sluice-$driver"
done
echo "== produce (old = io_uring, new = polling)"
"$HERE/ab.sh" "$WRAP/sluice-io_uring" "$WRAP/sluice-polling" "$ROUNDS" -- \
  produce --acks 1 --duration 6s --record-size 1024 --batch-size 16384
echo "== consume of 300000 preloaded 1 KiB records (old = io_uring, new = polling)"
AB_PRELOAD="produce --topic ab --records 300000 --acks 1 --record-size 1024" \
  "$HERE/ab.sh" "$WRAP/sluice-io_uring" "$WRAP/sluice-polling" "$ROUNDS" -- \
  consume --topic ab --records 300000
