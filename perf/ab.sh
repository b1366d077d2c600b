#!/usr/bin/env bash
# A/B two Sluice binaries on one `sluice bench` command, alternating, a fresh broker and data
# directory per run, so a change's effect is measured in one sitting on the same machine.
#
#   perf/ab.sh OLD_BIN NEW_BIN ROUNDS -- produce --acks 1 --duration 6s [more bench flags]
#
# AB_PRELOAD, when set, is a bench command run (unmeasured) before the measured one on the same
# broker, e.g. to fill a topic for a consume A/B:
#   AB_PRELOAD="produce --topic ab --records 300000 --acks 1" \
#     perf/ab.sh OLD NEW 3 -- consume --topic ab --records 300000
#
# OLD_DATA_PARENT / NEW_DATA_PARENT (default: a temporary directory) put each side's data
# directory on a chosen filesystem, so one binary can be A/B-tested on two (say ext4, XFS).
#
# Prints one line per run: MB/s, produce/fetch latency percentiles, broker CPU-s/GB, peak
# RSS, the broker's minor page faults, the load average and the host's steal time.
# Quote medians over rounds, not single runs.
# The session-3 A/Bs (decisions 0001 addendum and 0004, mallopt, background seals) were
# taken with this loop.
set -euo pipefail
OLD="${1:?usage: perf/ab.sh OLD_BIN NEW_BIN ROUNDS -- BENCH_ARGS...}"
NEW="${2:?usage: perf/ab.sh OLD_BIN NEW_BIN ROUNDS -- BENCH_ARGS...}"
ROUNDS="${3:?usage: perf/ab.sh OLD_BIN NEW_BIN ROUNDS -- BENCH_ARGS...}"
shift 3
[[ "${1:-}" == "--" ]] && shift
[[ $# -gt 0 ]] || { echo "perf/ab.sh: no bench arguments after --" >&2; exit 2; }

# CPU time the host took from this VM's vCPUs (/proc/stat "steal", clock ticks): a run whose
# delta is not near 0 had part of its tail taken by the host, whatever the broker did.
steal_ticks() {
  awk '/^cpu / { print $9; exit }' /proc/stat
}

# shellcheck source=perf/broker_lib.sh
source "$(dirname "$0")/broker_lib.sh"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
for round in $(seq 1 "$ROUNDS"); do
  for side in old new; do
    bin="$OLD"; parent="${OLD_DATA_PARENT:-$WORK}"
    [[ $side == new ]] && bin="$NEW" && parent="${NEW_DATA_PARENT:-$WORK}"
    data="$parent/sluice-ab-data"
    rm -rf "$data"
    port="$(free_port)"; admin="$(free_port)"
    "$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" \
      --admin-listen "127.0.0.1:$admin" > "$WORK/broker.log" 2>&1 &
    pid=$!
    wait_for_port "$port" || true
    if [[ -n "${AB_PRELOAD:-}" ]]; then
      # shellcheck disable=SC2086 # AB_PRELOAD is a list of bench arguments
      "$bin" bench $AB_PRELOAD --bootstrap-server "127.0.0.1:$port" > "$WORK/preload.log" 2>&1 ||
        { echo "round $round $side: preload failed: $(tail -1 "$WORK/preload.log")"; }
    fi
    faults_before="$(awk '{print $10}' "/proc/$pid/stat")"
    steal_before="$(steal_ticks)"; load="$(cut -d' ' -f1 /proc/loadavg)"
    out="$("$bin" bench "$@" --bootstrap-server "127.0.0.1:$port" --broker-pid "$pid" 2>&1)" || true
    faults_after="$(awk '{print $10}' "/proc/$pid/stat")"
    steal_after="$(steal_ticks)"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$data"
    rate="$(grep -oE '[0-9.]+ MB/s' <<<"$out" | head -1)"
    latency="$(grep -E '^latency' <<<"$out" | head -1 | sed 's/^latency ([a-z_]*) *//')"
    cpu="$(grep 'broker CPU' <<<"$out" | grep -oE '[0-9.]+ CPU-s/GB|peak RSS [0-9.]+ MB' | paste -sd' ')"
    steal="$(awk -v a="$steal_before" -v b="$steal_after" -v hz="$(getconf CLK_TCK)" \
      'BEGIN { printf "%.1f", (b - a) / hz }')"
    echo "round $round $side | $rate | $latency | $cpu | minor faults $((faults_after - faults_before)) | load $load, host steal ${steal} s"
  done
done
