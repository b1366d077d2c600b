#!/usr/bin/env bash
# Wake-up counts of the cross-shard hop (session 25, perf/RESULTS.md "poll before sleep"):
#   perf/hop_counts.sh BIN ROW [CONFIG]
# Starts BIN (with CONFIG, a broker TOML file, if given; SERVE_ARGS adds serve flags) on a
# fresh data directory and, during one produce row (keyed: 4 partitions, 1,000 keys, 2
# producers, 10 s; one: 1 partition, 10 s; spread: 200,000 records over 1,000 warmed-up
# partitions), counts per shard thread: voluntary and involuntary context switches
# (/proc), and with `perf stat` context switches, `write` calls (a shard's writes are
# eventfd wake-ups of the other shard) and `io_uring_enter` calls. Needs perf and root.
set -euo pipefail
BIN="$1"; ROW="$2"; CFG="${3:-}"
source "$(dirname "$0")/broker_lib.sh"
WORK="$(mktemp -d)"
pid=""
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$WORK"' EXIT
extra=()
[[ -n "$CFG" ]] && extra=(--config "$CFG")
spawn_broker "$BIN" "$WORK" "${extra[@]}" ${SERVE_ARGS:-}
case "$ROW" in
  keyed) args=(--topic k --partitions 4 --producers 2 --keys 1000 --duration 10s) ;;
  one) args=(--topic o --partitions 1 --producers 1 --duration 10s) ;;
  spread) "$BIN" bench produce --topic s --partitions 1000 --acks 1 --keys 0 --records 32000 --bootstrap-server "127.0.0.1:$port" >/dev/null
          sleep 2; args=(--topic s --partitions 1000 --records 200000) ;;
esac
perf stat --per-thread -e context-switches,syscalls:sys_enter_write,syscalls:sys_enter_io_uring_enter -p "$pid" -o "$WORK/stat" &
sp=$!
sleep 0.5
sw() { for st in /proc/"$pid"/task/*/status; do awk '/^Name:/{n=$2} /^voluntary_ctxt/{v=$2} /^nonvoluntary_ctxt/{i=$2} END{if (n ~ /shard/) print FILENAME, n, v, i}' "$st" 2>/dev/null; done | sort; }
sw > "$WORK/sw0"
report="$("$BIN" bench produce "${args[@]}" --record-size 1024 --acks 1 --batch-size 16384 --max-in-flight 5 --bootstrap-server "127.0.0.1:$port" --broker-pid "$pid" --json)"
sw > "$WORK/sw1"
kill -INT "$sp"; wait "$sp" || true
join "$WORK/sw0" "$WORK/sw1" | awk '$6-$3 > 1000 {printf "%s voluntary %d involuntary %d\n", $2, $6-$3, $7-$4}'
python3 - "$report" "$WORK/stat" <<'PY'
import json, sys, re, os
r = json.loads(sys.argv[1]); p = r["produced"]
# Full 16 KiB batches of 1 KiB records: 16 records each.
reqs = p["records"] // 16
print("MB/s %.1f cpu_s_per_gb %.2f" % (p["mb_per_s"], (r.get("broker") or {}).get("cpu_s_per_gb", float("nan"))))
rows = {}
for line in open(sys.argv[2]):
    m = re.match(r"\s*(\S+)-(\d+)\s+([\d,]+)\s+(\S+)", line)
    if m:
        name, tid, n, ev = m.groups()
        kind = name if name.startswith("sluice-shard") else ("iou-wrk" if name.startswith("iou-wrk") else "other")
        rows.setdefault(kind, {}).setdefault(ev, 0)
        rows[kind][ev] += int(n.replace(",", ""))
print("batches", reqs, "load", os.getloadavg()[0])
for k, v in sorted(rows.items()):
    print(k, {e: (n, round(n / reqs, 3) if reqs else None) for e, n in v.items()})
PY
