#!/usr/bin/env bash
# Issue 16's transaction benchmarks with `sluice bench`, alternating in one sitting, a fresh
# broker and data directory per run:
#   produce: idempotent acks=all (16 KiB batches) vs the same producer transactional,
#            committing every 100 ms (kafka-producer-perf-test --transaction-duration-ms);
#   consume: a filled topic read read_uncommitted vs read_committed (no transactions in it).
#
#   perf/txn_bench.sh BIN ROUNDS [DURATION]      e.g. perf/txn_bench.sh target/release/sluice 3 6s
#
# Prints one line per run (MB/s, latency percentiles, broker CPU-s/GB); quote medians.
set -euo pipefail
BIN="${1:?usage: perf/txn_bench.sh BIN ROUNDS [DURATION]}"
ROUNDS="${2:?usage: perf/txn_bench.sh BIN ROUNDS [DURATION]}"
DURATION="${3:-6s}"
PRODUCE=(produce --acks all --duration "$DURATION" --record-size 1024 --batch-size 16384)
CONSUME_RECORDS=400000

# shellcheck source=perf/broker_lib.sh
source "$(dirname "$0")/broker_lib.sh"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
pid=""
start_broker() {
  rm -rf "$WORK/data"
  port="$(free_port)"; admin="$(free_port)"
  "$BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$port" \
    --admin-listen "127.0.0.1:$admin" > "$WORK/broker.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "broker did not start: $(tail -3 "$WORK/broker.log")" >&2
  exit 1
}
stop_broker() { kill "$pid"; wait "$pid" 2>/dev/null || true; }
summary() {
  local out="$1"
  local rate latency cpu
  rate="$(grep -oE '[0-9.]+ MB/s' <<<"$out" | head -1)"
  latency="$(grep -E '^latency' <<<"$out" | head -1 | sed 's/^latency ([a-z_]*) *//')"
  cpu="$(grep 'broker CPU' <<<"$out" | grep -oE '[0-9.]+ CPU-s/GB' | paste -sd' ')"
  local failed
  failed="$(grep -E 'benchmark failed' <<<"$out" || true)"
  echo "$rate | $latency | $cpu ${failed}"
}

for round in $(seq 1 "$ROUNDS"); do
  start_broker
  out="$("$BIN" bench "${PRODUCE[@]}" --idempotence --bootstrap-server "127.0.0.1:$port" --broker-pid "$pid" 2>&1)" || true
  stop_broker
  echo "round $round produce idempotent     | $(summary "$out")"
  start_broker
  out="$("$BIN" bench "${PRODUCE[@]}" --transactional-id perf-tx --transaction-duration-ms 100 \
    --bootstrap-server "127.0.0.1:$port" --broker-pid "$pid" 2>&1)" || true
  stop_broker
  echo "round $round produce transactional  | $(summary "$out")"
  start_broker
  "$BIN" bench produce --topic filled --acks 1 --records "$CONSUME_RECORDS" --record-size 1024 \
    --bootstrap-server "127.0.0.1:$port" > /dev/null 2>&1
  for level in read_uncommitted read_committed; do
    out="$("$BIN" bench consume --topic filled --records "$CONSUME_RECORDS" --isolation-level "$level" \
      --bootstrap-server "127.0.0.1:$port" --broker-pid "$pid" 2>&1)" || true
    echo "round $round consume $level | $(summary "$out")"
  done
  stop_broker
done
