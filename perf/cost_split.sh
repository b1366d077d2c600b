#!/usr/bin/env bash
# perf/cost_split.sh BIN TAG [CFG]: a fresh broker, a 256 KiB acks=1 produce (DUR, default 15 s), the
# broker's per-thread utime/stime, /proc/vmstat reclaim counters and log bytes sampled every
# second (cost_split_sample.py; split by phase with cost_split_report.py OUT/TAG/samples.jsonl);
# PERFMODE=record adds a system-wide perf record -g (issue 22, session 22).
set -u
BIN=$1; TAG=$2; CFG=${3:-default}
OUT=${COST_SPLIT_OUT:-/tmp/cost-split}/$TAG; mkdir -p $OUT
d=$(mktemp -d /tmp/cost-split-data-XXXX); port=$((20000 + RANDOM % 20000)); aport=$((port + 1))
args=(serve --data-dir "$d" --listen 127.0.0.1:$port --advertised-listener 127.0.0.1:$port --admin-listen 127.0.0.1:$aport)
[[ "$CFG" != default ]] && args+=(--config "$CFG")
"$BIN" "${args[@]}" > "$OUT/broker.log" 2>&1 & pid=$!
sleep 1.5
python3 "$(dirname "$0")/cost_split_sample.py" $pid $OUT/samples.jsonl $d & spid=$!
case "${PERFMODE:-}" in
  record) perf record -F 499 -g -a -o $OUT/perf.data -- sleep ${PERFSECS:-16} 2>$OUT/perf.err & ppid=$! ;;
  stat) perf stat --per-thread -e task-clock,instructions,context-switches,page-faults -p $pid -o $OUT/perfstat.txt -- sleep 16 & ppid=$! ;;
  *) ppid= ;;
esac
timeout 60 "$BIN" bench produce --bootstrap-server 127.0.0.1:$port --topic t --record-size 1024 --duration ${DUR:-15s} --acks 1 --partitions 1 --producers 1 --batch-size 262144 --max-in-flight 5 --json --broker-pid $pid > "$OUT/out.json" 2> "$OUT/bench.err"
[[ -n "$ppid" ]] && wait $ppid
kill $pid; wait $pid 2>/dev/null; wait $spid 2>/dev/null
python3 -c "import json; j=json.load(open('$OUT/out.json')); t=j['produced']; l=j['latency']; print('$TAG', round(t['mb_per_s'],1), 'p99', l['p99_ms'], 'p999', l['p999_ms'], 'cpu', j['broker']['cpu_s_per_gb'], 'GB', round(t.get('bytes',0)/1e9,2) if 'bytes' in t else t)"
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$d"
