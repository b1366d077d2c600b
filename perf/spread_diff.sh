#!/usr/bin/env bash
# Profiles of a broker for one partition against PARTITIONS, produce and fetch apart, for a
# `perf diff` of what grows per partition (issue 19 point 3, session 22):
#   perf/spread_diff.sh BIN OUT_DIR [PARTITIONS] [RECORDS]
# For 1 and PARTITIONS partitions: a fresh broker, the perf/scale_spread.py warm-up (two full
# batches a partition), then `perf record -g` (cpu-clock, 999 Hz; this VM has no hardware
# counters) of the broker during a RECORDS-record acks=1 produce of full 16 KiB batches, and
# again during a consume of everything from offset 0 with scale_spread.py's fetch sizes.
# Writes OUT_DIR/{produce,fetch}-{1,PARTITIONS}.data and .txt (top symbols, with the broker's
# CPU-s/GB and the run's MB/s from the harness at the top), and OUT_DIR/diff-*.txt
# (`perf diff` one partition -> PARTITIONS). The samples are relative, so read the diff's
# deltas with the CPU-s/GB of the two runs beside them.
set -euo pipefail
BIN="${1:?usage: perf/spread_diff.sh BIN OUT_DIR [PARTITIONS] [RECORDS]}"
OUT="${2:?usage: perf/spread_diff.sh BIN OUT_DIR [PARTITIONS] [RECORDS]}"
SPREAD="${3:-1000}"
RECORDS="${4:-400000}"
FETCH_MAX_BYTES=$((50 * 1024 * 1024))
mkdir -p "$OUT"
# shellcheck source=perf/broker_lib.sh
source "$(dirname "$0")/broker_lib.sh"
pid=""
WORK=""
cleanup() {
  if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [[ -n "$WORK" ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
# record NAME CMD...: perf record of the broker while CMD runs; the harness's JSON summary
# heads NAME.txt. The `head`s drain the rest of their input: under pipefail a grep killed by
# SIGPIPE ended the whole script after a long report (session 23).
record() {
  local name="$1"; shift
  perf record -F 999 -g -p "$pid" -o "$OUT/$name.data" 2>/dev/null &
  local recorder=$!
  sleep 0.3
  local report
  report="$("$@")"
  kill -INT "$recorder"; wait "$recorder" || true
  python3 - "$report" > "$OUT/$name.txt" <<'EOF'
import json, os, sys
r = json.loads(sys.argv[1])
side = r["produced"] if r["produced"]["records"] else r["consumed"]
print(f"{side['mb_per_s']:.1f} MB/s, broker {(r.get('broker') or {}).get('cpu_s_per_gb', 0):.2f} "
      f"CPU-s/GB, harness {r['harness_cpu_s_per_gb']:.2f} CPU-s/GB, load {os.getloadavg()[0]:.1f}")
EOF
  perf report -i "$OUT/$name.data" --stdio --no-children --percent-limit 0.5 \
    --sort dso,symbol 2>/dev/null | grep '%' | grep -v '^#' | { head -60; cat > /dev/null; } >> "$OUT/$name.txt"
  head -1 "$OUT/$name.txt"
}
for parts in 1 "$SPREAD"; do
  WORK="$(mktemp -d)"
  spawn_broker "$BIN" "$WORK"
  common=(--topic spread --partitions "$parts" --record-size 1024
    --bootstrap-server "127.0.0.1:$port" --broker-pid "$pid" --json)
  "$BIN" bench produce "${common[@]}" --records $((32 * parts)) --acks 1 --batch-size 16384 \
    --keys 0 > /dev/null
  sleep 2
  echo -n "produce, $parts partitions: "
  record "produce-$parts" "$BIN" bench produce "${common[@]}" --records "$RECORDS" --acks 1 \
    --batch-size 16384 --keys 0
  echo -n "fetch, $parts partitions: "
  record "fetch-$parts" "$BIN" bench consume "${common[@]}" --records "$RECORDS" \
    --fetch-max-bytes "$FETCH_MAX_BYTES" --fetch-partition-max-bytes $((FETCH_MAX_BYTES / parts))
  cleanup
  pid=""; WORK=""
done
for side in produce fetch; do
  perf diff "$OUT/$side-1.data" "$OUT/$side-$SPREAD.data" --sort dso,symbol 2>/dev/null \
    | grep -v '^#' | grep '%' | { head -80; cat > /dev/null; } > "$OUT/diff-$side.txt"
done
echo "profiles and diffs in $OUT"
