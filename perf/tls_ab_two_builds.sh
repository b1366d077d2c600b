#!/usr/bin/env bash
# Two builds through perf/tls_ab.sh, alternating round by round in one sitting (each round:
# OLD plaintext, OLD TLS, NEW plaintext, NEW TLS, a fresh broker per run), the load average
# before each build's round. AB_PRELOAD is passed through (see perf/tls_ab.sh).
#
#   perf/tls_ab_two_builds.sh OLD_BIN NEW_BIN ROUNDS -- produce --topic p --acks 1 --duration 6s
#
# Lines read "round R old|new plaintext|tls | ..."; quote medians over rounds.
set -uo pipefail
OLD="${1:?usage: perf/tls_ab_two_builds.sh OLD_BIN NEW_BIN ROUNDS -- BENCH_ARGS...}"
NEW="${2:?usage: perf/tls_ab_two_builds.sh OLD_BIN NEW_BIN ROUNDS -- BENCH_ARGS...}"
ROUNDS="${3:?usage: perf/tls_ab_two_builds.sh OLD_BIN NEW_BIN ROUNDS -- BENCH_ARGS...}"
shift 3
[[ "${1:-}" == "--" ]] && shift
HERE="$(cd "$(dirname "$0")" && pwd)"
for round in $(seq 1 "$ROUNDS"); do
  for side in old new; do
    bin=$OLD
    [[ $side == new ]] && bin=$NEW
    echo "# $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"
    "$HERE/tls_ab.sh" "$bin" 1 -- "$@" | sed "s/^round 1 /round $round $side /"
  done
done
