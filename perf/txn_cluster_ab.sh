#!/usr/bin/env bash
# A/B of perf/txn_cluster_latency.py (decision 0022) for two Sluice binaries, alternating in
# one sitting, a fresh `sluice cluster local --nodes 3` (one core per node) per run:
#
#   perf/txn_cluster_ab.sh OLD_BIN NEW_BIN ROUNDS [COUNT]    e.g. ... 5 200
#
# Needs confluent-kafka in PYTHON (default: the repo's .venv). Prints the load average and
# the script's "here" / "there" percentiles per run; quote medians of the p50s.
set -euo pipefail
OLD="${1:?usage: perf/txn_cluster_ab.sh OLD_BIN NEW_BIN ROUNDS [COUNT]}"
NEW="${2:?usage: perf/txn_cluster_ab.sh OLD_BIN NEW_BIN ROUNDS [COUNT]}"
ROUNDS="${3:?usage: perf/txn_cluster_ab.sh OLD_BIN NEW_BIN ROUNDS [COUNT]}"
COUNT="${4:-200}"
HERE="$(cd "$(dirname "$0")" && pwd)"
PYTHON="${PYTHON:-$HERE/../.venv/bin/python}"
BASE_PORT="${BASE_PORT:-23092}"

run() {
  local bin="$1" label="$2"
  local dir
  dir="$(mktemp -d)"
  "$bin" cluster local --nodes 3 --dir "$dir" --base-port "$BASE_PORT" > "$dir/cluster.log" 2>&1 &
  local pid=$!
  # Until all three brokers are registered (the topic's leaders must spread over them).
  for _ in $(seq 1 120); do
    if [[ "$("$bin" cluster status --bootstrap-server "127.0.0.1:$BASE_PORT" 2>/dev/null \
          | grep -c "127.0.0.1:" || true)" == 3 ]]; then
      break
    fi
    sleep 0.5
  done
  echo "== $label (load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$PYTHON" "$HERE/txn_cluster_latency.py" --count "$COUNT" \
    --bootstrap "127.0.0.1:$BASE_PORT,127.0.0.1:$((BASE_PORT + 1)),127.0.0.1:$((BASE_PORT + 2))" \
    || echo "$label: the run failed"
  kill -TERM "$pid"
  wait "$pid" || true
  rm -rf "$dir"
}

for round in $(seq 1 "$ROUNDS"); do
  run "$OLD" "old round $round"
  run "$NEW" "new round $round"
done
