#!/usr/bin/env bash
# CPU profile of a broker while one producer spreads full 16 KiB batches over many warmed-up
# partitions (the produce side of perf/scale_spread.py), for issue 19 point 3:
#   perf/spread_profile.sh BIN CONFIG_TOML OUT_PREFIX [PARTITIONS]
# Starts BIN with CONFIG_TOML on a fresh data directory, writes two batches to every
# partition (so their files exist), then runs `perf record -g` (499 Hz, 6 s) on the broker
# during a 600,000-record acks=1 produce. Writes OUT_PREFIX.data and OUT_PREFIX.txt (the top
# of `perf report --sort comm,dso,symbol`). Needs perf and perf_event access.
set -euo pipefail
BIN="${1:?usage: perf/spread_profile.sh BIN CONFIG_TOML OUT_PREFIX [PARTITIONS]}"
CONF="${2:?usage: perf/spread_profile.sh BIN CONFIG_TOML OUT_PREFIX [PARTITIONS]}"
OUT="${3:?usage: perf/spread_profile.sh BIN CONFIG_TOML OUT_PREFIX [PARTITIONS]}"
PARTITIONS="${4:-1000}"
# shellcheck source=perf/broker_lib.sh
source "$(dirname "$0")/broker_lib.sh"
WORK="$(mktemp -d)"
pid=""
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$WORK"' EXIT
spawn_broker "$BIN" "$WORK" --config "$CONF"
common=(--topic spread --partitions "$PARTITIONS" --record-size 1024 --acks 1 --batch-size 16384
  --keys 0 --bootstrap-server "127.0.0.1:$port")
"$BIN" bench produce "${common[@]}" --records $((32 * PARTITIONS)) > /dev/null
sleep 2
perf record -F 499 -g -p "$pid" -o "$OUT.data" -- sleep 6 2>/dev/null &
recorder=$!
"$BIN" bench produce "${common[@]}" --records 600000 --broker-pid "$pid" | tail -5
wait "$recorder" || true
perf report -i "$OUT.data" --stdio --no-children --percent-limit 0.7 --sort comm,dso,symbol \
  2>/dev/null | grep '%' | head -70 > "$OUT.txt"
echo "perf report: $OUT.txt"
