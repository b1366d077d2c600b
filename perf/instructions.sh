#!/bin/bash
# User-space instructions the broker executes for a fixed produce workload, counted by
# callgrind: repeatable whatever else the machine is doing, so it settles small A/Bs that a
# busy 2-core VM without hardware counters cannot (wall-clock and task-clock vary ±15 % here).
#
#   perf/instructions.sh BIN [RECORDS] [-- extra bench produce flags]
#
# Starts BIN under callgrind with instrumentation off, warms up with 2,000 records, switches
# instrumentation on, produces RECORDS 1 KiB records (16 KiB batches, acks=1 unless overridden),
# dumps, and prints instructions in total and per record, plus the top functions by
# inclusive cost. Kernel work (io_uring, io-wq, page cache) is not counted: it is the same
# code in both binaries of an A/B, and fixed_work.sh counts its events.
set -euo pipefail
BIN=${1:?usage: perf/instructions.sh BIN [RECORDS] [-- bench flags]}
N=${2:-20000}
shift 2 || shift $#
[[ "${1:-}" == "--" ]] && shift
D=$(mktemp -d)
trap '[[ -n "${KEEP:-}" ]] || rm -rf "$D"' EXIT
# shellcheck source=perf/broker_lib.sh
source "$(dirname "$0")/broker_lib.sh"
P=$(free_port); A=$(free_port)
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$D/cg.out" \
  "$BIN" serve --cores 1 --data-dir "$D/data" --listen "127.0.0.1:$P" --admin-listen "127.0.0.1:$A" \
  > "$D/log" 2>&1 &
PID=$!
for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$P") 2>/dev/null && break; sleep 0.2; done
"$BIN" bench produce --acks 1 --records 2000 --record-size 1024 --batch-size 16384 "$@" \
  --bootstrap-server "127.0.0.1:$P" > "$D/warm.log" 2>&1
callgrind_control -i on "$PID" > /dev/null 2>&1
"$BIN" bench produce --acks 1 --records "$N" --record-size 1024 --batch-size 16384 "$@" \
  --bootstrap-server "127.0.0.1:$P" > "$D/bench.log" 2>&1
callgrind_control -i off "$PID" > /dev/null 2>&1
callgrind_control -d "$PID" > /dev/null 2>&1
kill "$PID"; wait "$PID" 2>/dev/null || true
# The -d dump holds the measured window; the file written at exit holds nothing after it.
out=$(ls "$D"/cg.out.* 2>/dev/null | head -1)
[[ -n "$out" ]] || out="$D/cg.out"
total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !t {gsub(",","",$1); t=$1} END {print t}')
echo "== $(basename "$BIN"): $total instructions for $N records, $((total / N)) per record"
callgrind_annotate --inclusive=no "$out" 2>/dev/null | grep -E '^ *[0-9,]+ .*:' | sed -n 1,25p
