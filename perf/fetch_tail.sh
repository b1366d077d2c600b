#!/usr/bin/env bash
# perf/fetch_tail.sh ROUNDS BIN... : the catch-up fetch scenario of perf/scenarios/consume-1k.toml
# (1M preloaded 1 KiB records in 16 KiB batches, one partition, one consumer, 1 MiB per fetch),
# per broker binary in turn (alternating order each round), each on a fresh broker and data
# directory. The harness is one binary for every side (HARNESS, default the first BIN not named crabka*), so
# only the broker differs. Prints MB/s, fetch round trip p50/p99/p99.9/max, the broker's
# CPU-s/GB, the broker's own Fetch stage histograms (from /metrics: time in queue,
# processing, and the whole request including the send) and the load average (issue 22).
#
# PRELOAD_RECORDS (default 1000000, the scenario's) sets how much is preloaded and read back:
# the scenario's read lasts under a second, so its p99.9 is the worst one or two of ~1,000
# fetches; a larger preload gives the tail more samples.
#
# FLOOR=1 adds a floor row to every round, right after the brokers: `perf/replication_floor.c`
# in fetch mode: one 64-byte request per 1 MiB answer spliced from the page cache through a
# 1 MiB pipe (as Sluice sends it)
# over loopback TCP, as many round trips as the read's fetches (no broker, no Kafka framing,
# no record decoding). Its p99.9 is what this box's scheduling allows a 1 MiB round trip in
# that sitting: the catch-up p99.9 line (1.5 ms, issue 22) cannot be met below it.
#
# CLIENT_CORE pins the consumer (taskset) to one core. The owning shard is pinned to its core
# and the client is not: whether they share a core decides most of a run's MB/s (session 21,
# decision 0001), so an unpinned A/B needs rounds enough to see both placements.
set -u
# shellcheck source=perf/broker_lib.sh
source "$(dirname "$0")/broker_lib.sh"
ROUNDS=${1:?usage: perf/fetch_tail.sh ROUNDS BIN...}
shift
BINS=("$@")
if [[ -z "${HARNESS:-}" ]]; then
  for bin in "${BINS[@]}"; do [[ "$(basename "$bin")" == crabka* ]] || { HARNESS=$bin; break; }; done
fi
: "${HARNESS:?set HARNESS to a sluice binary}"
PRELOAD_RECORDS=${PRELOAD_RECORDS:-1000000}
if [[ -n "${FLOOR:-}" ]]; then
  floor_tool=$(mktemp /tmp/fetch-floor-XXXX)
  cc -O2 -o "$floor_tool" "$(dirname "$0")/replication_floor.c" || exit 1
  # The read's size in MiB: records × (1 KiB + ~70 bytes of batch overhead per 16 records).
  floor_mib=$(( PRELOAD_RECORDS * 1024 / 1048576 ))
fi
for r in $(seq 1 "$ROUNDS"); do
  order=("${BINS[@]}")
  if (( r % 2 == 0 )); then
    order=()
    for (( i=${#BINS[@]}-1; i>=0; i-- )); do order+=("${BINS[$i]}"); done
  fi
  for bin in "${order[@]}"; do
    d=$(mktemp -d /tmp/fetchtail-XXXX); port=$((20000 + RANDOM % 20000)); aport=$((port + 1))
    if [[ "$(basename "$bin")" == crabka* ]]; then
      # The on-disk peer (perf/peers/crabka), started as perf/compare.py starts it.
      mkdir -p "$d/data"
      "$bin" --listen 127.0.0.1:$port --controller 127.0.0.1:$((port + 2)) --log-dir "$d/data" \
        > "$d/broker.log" 2>&1 & pid=$!
    else
      "$bin" serve --data-dir "$d/data" --listen 127.0.0.1:$port --advertised-listener 127.0.0.1:$port \
        --admin-listen 127.0.0.1:$aport > "$d/broker.log" 2>&1 & pid=$!
    fi
    wait_for_port "$port" || true
    sleep 0.5 # as perf/compare.py: let it finish starting (metadata, shards)
    "$HARNESS" bench produce --bootstrap-server 127.0.0.1:$port --topic t --record-size 1024 \
      --records "$PRELOAD_RECORDS" --acks 1 --partitions 1 --batch-size 16384 --max-in-flight 5 > "$d/preload.log" 2>&1
    load=$(cut -d' ' -f1 /proc/loadavg)
    dirty=$(awk '/^Dirty:/ {print int($2/1024)}' /proc/meminfo)
    pin=()
    [[ -n "${CLIENT_CORE:-}" ]] && pin=(taskset -c "$CLIENT_CORE")
    "${pin[@]}" "$HARNESS" bench consume --bootstrap-server 127.0.0.1:$port --topic t --partitions 1 --consumers 1 \
      --fetch-partition-max-bytes 1048576 --json --broker-pid $pid --hdr-log "$d/h.hlog" > "$d/out.json" 2>"$d/consume.err"
    curl -s "http://127.0.0.1:$aport/metrics" > "$d/metrics.txt" 2>/dev/null
    kill $pid; wait $pid 2>/dev/null
    read -r mbs p50 p99 p999 max cpu < <(python3 -c "
import json; j=json.load(open('$d/out.json')); t=j['consumed']; l=j['latency']
print(round(t['mb_per_s'],1), l.get('p50_ms'), l['p99_ms'], l['p999_ms'], l.get('max_ms'), j['broker']['cpu_s_per_gb'])" 2>/dev/null)
    maxes=$(grep -v '^#' "$d/h.hlog" | cut -d, -f4 | tr '\n' ' ')
    stages=$(python3 "$(dirname "$0")/fetch_stages.py" "$d/metrics.txt")
    echo "round $r $(basename "$bin")${CLIENT_CORE:+ client-core $CLIENT_CORE}: MB/s $mbs rtt p50/p99/p99.9/max $p50/$p99/$p999/$max ms CPU-s/GB $cpu load $load dirty ${dirty}MB | per-second max $maxes| $stages"
    [[ -n "${KEEP:-}" ]] || rm -rf "$d"
  done
  if [[ -n "${FLOOR:-}" ]]; then
    d=$(mktemp -d /tmp/fetchfloor-XXXX)
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "round $r floor (1 MiB spliced round trips, no broker): $("$floor_tool" fetch "$d" "$floor_mib" 1048576 -r | tr '\n' ' ')load $load"
    rm -rf "$d"
  fi
done
if [[ -n "${FLOOR:-}" ]]; then rm -f "$floor_tool"; fi
