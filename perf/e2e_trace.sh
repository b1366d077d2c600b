#!/usr/bin/env bash
# e2e_trace.sh KIND BROKER_BIN OUTDIR [SECONDS]: one e2e run at 5,000 records/s (acks=1, as
# perf/scenarios/e2e-5k-rps.toml) against a fresh broker (KIND sluice or crabka), with the
# harness's slow log and a whole-box `perf record -k mono` of scheduler and io_uring
# tracepoints, then the split of every slow record by perf/e2e_stages.py (session 23).
# OUTDIR gets slow.log, perf.data (large: delete it once read), script.txt, stages.txt.
# The bench client is SLUICE_BENCH (default target/release/sluice); HARNESS_SCHED=fifo runs it
# SCHED_FIFO at priority 1 as `compare.py --harness-sched fifo` does (session 24), default
# plain (other). Run it alone on the box
# (`flock /tmp/turn.lock flock /tmp/box.lock`): it is a tail-latency measurement.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/broker_lib.sh"
kind=$1; bin=$2; out=$3; secs=${4:-20}
bench="${SLUICE_BENCH:-$here/../target/release/sluice}"
mkdir -p "$out"
data=$(mktemp -d)
port=$(free_port); port2=$(free_port)
if [[ $kind == sluice ]]; then
  "$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" \
    --advertised-listener "127.0.0.1:$port" --admin-listen "127.0.0.1:$port2" > "$out/broker.log" 2>&1 &
else
  "$bin" --listen "127.0.0.1:$port" --controller "127.0.0.1:$port2" --log-dir "$data" > "$out/broker.log" 2>&1 &
fi
broker=$!
trap 'kill $broker 2>/dev/null || true; rm -rf "$data"' EXIT
wait_for_port "$port"
sleep 0.5
timeout $((secs + 60)) perf record -k mono -o "$out/perf.data" -a -e \
  'io_uring:io_uring_submit_req,io_uring:io_uring_queue_async_work,io_uring:io_uring_complete,sched:sched_wakeup,sched:sched_switch' \
  > "$out/perf.out" 2>&1 &
recorder=$!
sleep 1
# The harness is started directly (no `timeout` wrapper) so its pid is the one we know; `chrt`
# execs it, so the pid stays the harness's.
sched=()
case "${HARNESS_SCHED:-other}" in
  other) ;;
  fifo) sched=(chrt -f 1) ;;
  *) echo "HARNESS_SCHED: want other or fifo" >&2; exit 2 ;;
esac
"${sched[@]}" "$bench" bench e2e --bootstrap-server "127.0.0.1:$port" --topic perf-e2e --record-size 1024 \
  --rate 5000 --duration "${secs}s" --acks 1 --partitions 1 --linger-ms 0 \
  --fetch-max-wait-ms 500 --json --broker-pid "$broker" --slow-log "$out/slow.log" \
  > "$out/bench.json" 2> "$out/bench.err" &
harness=$!
wait $harness || true
kill -INT $recorder; wait $recorder || true
echo "broker $broker harness $harness $(uptime)" > "$out/pids"
perf script -i "$out/perf.data" -F comm,pid,tid,cpu,time,event,trace --ns 2>/dev/null > "$out/script.txt"
python3 "$here/e2e_stages.py" "$out/slow.log" "$out/script.txt" --broker-pid "$broker" \
  --harness-pid "$harness" | tee "$out/stages.txt"
