#!/usr/bin/env bash
# Context switches per MB of a broker while one producer spreads full 16 KiB batches over
# many warmed-up partitions (the produce side of perf/scale_spread.py), for issue 19 point 3:
#   perf/spread_switches.sh BIN [PARTITIONS] [RECORDS]
# Starts BIN on a fresh data directory, writes two batches to every partition, then sums
# voluntary and involuntary context switches over the broker's threads (shards, io-wq
# workers: /proc/PID/task/*/status) before and after a RECORDS-record acks=1 produce.
# Prints one line: MB/s, broker CPU-s/GB, switches per MB by thread kind, load average.
# A thread that exits during the run (an idle io-wq worker) takes its count with it, so the
# io-wq figure is a lower bound.
set -euo pipefail
BIN="${1:?usage: perf/spread_switches.sh BIN [PARTITIONS] [RECORDS]}"
PARTITIONS="${2:-1000}"
RECORDS="${3:-200000}"
# shellcheck source=perf/broker_lib.sh
source "$(dirname "$0")/broker_lib.sh"
WORK="$(mktemp -d)"
pid=""
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$WORK"' EXIT
spawn_broker "$BIN" "$WORK"
# Per thread kind (sluice-shard-N, iou-wrk-*, other): voluntary + involuntary switches.
switches() {
  for status in /proc/"$pid"/task/*/status; do
    awk '/^Name:/ { name = $2 } /ctxt_switches/ { n += $2 } END { print name, n }' "$status" \
      2>/dev/null || true
  done | awk '{ kind = ($1 ~ /^sluice-shard/) ? "shard" : ($1 ~ /^iou-wrk/) ? "iowq" : "other";
               s[kind] += $2 } END { printf "%d %d %d\n", s["shard"], s["iowq"], s["other"] }'
}
common=(--topic spread --partitions "$PARTITIONS" --record-size 1024 --acks 1 --batch-size 16384
  --keys 0 --bootstrap-server "127.0.0.1:$port")
"$BIN" bench produce "${common[@]}" --records $((32 * PARTITIONS)) > /dev/null
sleep 2
read -r shard0 iowq0 other0 < <(switches)
report="$("$BIN" bench produce "${common[@]}" --records "$RECORDS" --broker-pid "$pid" --json)"
read -r shard1 iowq1 other1 < <(switches)
python3 - "$report" "$((shard1 - shard0))" "$((iowq1 - iowq0))" "$((other1 - other0))" <<'EOF'
import json, os, sys
report = json.loads(sys.argv[1])
shard, iowq, other = (int(v) for v in sys.argv[2:5])
produced = report["produced"]
mb = produced["payload_bytes"] / 1e6
cpu = (report.get("broker") or {}).get("cpu_s_per_gb", float("nan"))
print(f"produce {produced['mb_per_s']:.1f} MB/s ({cpu:.2f} broker CPU-s/GB), switches per MB: "
      f"shards {shard / mb:.1f}, io-wq {iowq / mb:.1f}, other {other / mb:.1f}, "
      f"load {os.getloadavg()[0]:.1f}")
EOF
