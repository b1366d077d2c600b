#!/usr/bin/env bash
# Ring reads a broker makes while one consumer fetches everything from offset 0 of a topic
# spread over PARTITIONS partitions (the fetch side of perf/scale_spread.py), for issue 19:
#   perf/spread_reads.sh BIN [PARTITIONS] [RECORDS]
# A count load does not move (unlike CPU-s/GB): io_uring READ submissions (opcode 22,
# `perf stat` of the io_uring_submit_req tracepoint on the broker) and the bytes they
# returned (io_uring_complete's res, summed by `perf script`), per MB served. A fetch
# served by `splice` makes no ring read; the ones counted are the lookups' and CRC checks'.
# Prints one line: MB/s, broker CPU-s/GB, reads per MB, KiB read per MB, load average.
set -euo pipefail
BIN="${1:?usage: perf/spread_reads.sh BIN [PARTITIONS] [RECORDS]}"
PARTITIONS="${2:-1000}"
RECORDS="${3:-200000}"
FETCH_MAX_BYTES=$((50 * 1024 * 1024))
READ_OPCODE=22
# shellcheck source=perf/broker_lib.sh
source "$(dirname "$0")/broker_lib.sh"
WORK="$(mktemp -d)"
pid=""
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$WORK"' EXIT
spawn_broker "$BIN" "$WORK"
common=(--topic spread --partitions "$PARTITIONS" --record-size 1024
  --bootstrap-server "127.0.0.1:$port" --broker-pid "$pid" --json)
"$BIN" bench produce "${common[@]}" --records "$RECORDS" --acks 1 --batch-size 16384 \
  --keys 0 > /dev/null
sleep 2
perf record -q -e io_uring:io_uring_submit_req -e io_uring:io_uring_complete -p "$pid" \
  -o "$WORK/reads.data" 2>/dev/null &
recorder=$!
sleep 0.3
report="$("$BIN" bench consume "${common[@]}" --records "$RECORDS" \
  --fetch-max-bytes "$FETCH_MAX_BYTES" --fetch-partition-max-bytes $((FETCH_MAX_BYTES / PARTITIONS)))"
# A recorder that could not attach has already exited: say so rather than print nothing.
kill -INT "$recorder" 2>/dev/null || { echo "perf record ended early: no count" >&2; exit 1; }
wait "$recorder" || true
# Pair each READ submission with its completion by the request's user_data.
perf script -i "$WORK/reads.data" -F event,trace 2>/dev/null | python3 -c '
import json, os, re, sys
opcode, report = sys.argv[1], json.loads(sys.argv[2])
reads, done_bytes, pending = 0, 0, set()
for line in sys.stdin:
    data = re.search(r"user_data 0x([0-9a-f]+)", line)
    if "io_uring_submit_req" in line and re.search(r"opcode (READ|" + opcode + r"),", line):
        reads += 1
        if data: pending.add(data.group(1))
    elif "io_uring_complete" in line and data and data.group(1) in pending:
        pending.discard(data.group(1))
        res = re.search(r"result (-?\d+)", line)
        done_bytes += max(0, int(res.group(1))) if res else 0
side = report["consumed"]
mb = side["payload_bytes"] / 1e6
cpu = (report.get("broker") or {}).get("cpu_s_per_gb", 0)
print("%.1f MB/s, broker %.2f CPU-s/GB, %.2f reads/MB, %.1f KiB read/MB (%d reads over %.0f MB), "
      "load %.1f" % (side["mb_per_s"], cpu, reads / mb, done_bytes / 1024 / mb, reads, mb,
                     os.getloadavg()[0]))
' "$READ_OPCODE" "$report"
