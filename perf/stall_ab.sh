#!/usr/bin/env bash
# perf/stall_ab.sh BIN ROUNDS CFG... : per config, a fresh broker, a 12 s acks=1 16 KiB
# produce, and the median of the HDR log's per-second maxima (plus MB/s, p99, p99.9 and
# CPU-s/GB from the JSON). Issue 22: tells periodic stalls (one large request a second) from
# steady per-request cost. A CFG is a config file or "default"; "OTHER_BIN::CFG" runs that
# config on another binary (an A/B of two builds in the same loop). STALL_BENCH overrides
# the bench flags after the bootstrap server (e.g. "--batch-size 262144 ..." for 256 KiB,
# "--partitions 4 --producers 2 --keys 1000 ..." for the keyed scenario).
set -u
BIN=$1; ROUNDS=$2; shift 2
BENCH=${STALL_BENCH:-"--topic t --record-size 1024 --duration 12s --acks 1 --partitions 1 --producers 1 --batch-size 16384 --max-in-flight 5"}
for r in $(seq 1 "$ROUNDS"); do
  for item in "$@"; do
    bin=$BIN; cfg=$item
    if [[ "$item" == *::* ]]; then bin=${item%%::*}; cfg=${item#*::}; fi
    d=$(mktemp -d /tmp/stall-XXXX); port=$((20000 + RANDOM % 20000)); aport=$((port + 1))
    args=(serve --data-dir "$d" --listen 127.0.0.1:$port --advertised-listener 127.0.0.1:$port --admin-listen 127.0.0.1:$aport)
    [[ "$cfg" != default ]] && args+=(--config "$cfg")
    "$bin" "${args[@]}" > "$d/broker.log" 2>&1 & pid=$!
    sleep 1.5
    # shellcheck disable=SC2086
    "$bin" bench produce --bootstrap-server 127.0.0.1:$port $BENCH --json --broker-pid $pid --hdr-log "$d/h.hlog" > "$d/out.json" 2> "$d/bench.err"
    kill $pid; wait $pid 2>/dev/null
    maxes=$(grep -v '^#' "$d/h.hlog" | cut -d, -f4 | head -n -1 | sort -g | tr '\n' ' ')
    med=$(echo $maxes | tr ' ' '\n' | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
    read -r mbs p99 p999 cpu < <(python3 -c "import json; j=json.load(open('$d/out.json')); t=j['produced']; l=j['latency']; print(round(t['mb_per_s'],1), l['p99_ms'], l['p999_ms'], j['broker']['cpu_s_per_gb'])" 2>/dev/null)
    echo "round $r $(basename "$bin") $(basename "$cfg"): MB/s $mbs p99 $p99 p99.9 $p999 CPU-s/GB $cpu median-per-second-max $med  load $(cut -d' ' -f1 /proc/loadavg)  maxes: $maxes"
    [[ -s "$d/out.json" ]] || echo "  (no result: $(tail -c 300 "$d/bench.err" | tr '\n' ' ') broker: $(tail -n 2 "$d/broker.log" | tr '\n' ' '))"
    rm -rf "$d"
  done
done
