#!/usr/bin/env bash
# Produce throughput with metrics recording on vs off (issue 5: the difference must stay
# under 3 %). Runs the same `sluice bench produce` scenario against a fresh broker with
# `metrics_enabled = true` and `= false`, alternating, ROUNDS times each, and prints the
# median MB/s of each side and their ratio.
#
# Usage: perf/metrics_overhead.sh [ROUNDS] [DURATION]   (defaults: 3 rounds of 8s)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS="${1:-3}"
DURATION="${2:-8s}"
cargo build --release -q
BIN="$PWD/target/release/sluice"
WORK="$(mktemp -d)"
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$WORK"' EXIT

# shellcheck source=perf/broker_lib.sh
source "$(dirname "$0")/broker_lib.sh"

run_once() { # $1 = true|false
    local enabled="$1" port admin dir pid mbps
    port="$(free_port)"; admin="$(free_port)"; dir="$WORK/data-$enabled-$RANDOM"
    printf 'metrics_enabled = %s\n' "$enabled" > "$WORK/sluice-$enabled.toml"
    "$BIN" serve --config "$WORK/sluice-$enabled.toml" --data-dir "$dir" \
        --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    mbps="$("$BIN" bench produce --bootstrap-server "127.0.0.1:$port" --acks 1 \
        --duration "$DURATION" --json | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["produced"]["mb_per_s"])')"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$mbps"
}

on=(); off=()
for round in $(seq "$ROUNDS"); do
    on+=("$(run_once true)")
    off+=("$(run_once false)")
    echo "round $round: metrics on ${on[-1]} MB/s, off ${off[-1]} MB/s"
done
python3 - "${on[*]}" "${off[*]}" <<'PY'
import statistics, sys
on = [float(x) for x in sys.argv[1].split()]
off = [float(x) for x in sys.argv[2].split()]
m_on, m_off = statistics.median(on), statistics.median(off)
print(f"median MB/s: metrics on {m_on:.1f}, off {m_off:.1f}; on/off = {m_on / m_off:.3f} "
      f"({(1 - m_on / m_off) * 100:+.1f} % cost)")
PY
