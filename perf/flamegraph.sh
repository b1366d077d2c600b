#!/usr/bin/env bash
# CPU profile of a running broker (Sluice or any other) while a `sluice bench` scenario runs.
#   perf/flamegraph.sh PID OUT_PREFIX [SECONDS]
# Records with `perf record -g` (frame pointers are not needed: DWARF unwinding via
# --call-graph dwarf) for SECONDS (default 10), then:
#   - with inferno installed (`cargo install inferno`, builds from crates.io source):
#       OUT_PREFIX.svg, an interactive flame graph;
#   - always: OUT_PREFIX.txt, `perf report --stdio` top entries (no extra tools needed).
# Release builds keep line tables (Cargo.toml: debug = "line-tables-only"), so frames resolve.
# Needs perf_event access: run as root or set kernel.perf_event_paranoid <= 1.
set -euo pipefail
PID="${1:?usage: perf/flamegraph.sh PID OUT_PREFIX [SECONDS]}"
OUT="${2:?usage: perf/flamegraph.sh PID OUT_PREFIX [SECONDS]}"
SECONDS_TO_RECORD="${3:-10}"
DATA="$OUT.perf.data"
perf record -F "${PERF_FREQ:-199}" --call-graph dwarf,16384 -p "$PID" -o "$DATA" -- sleep "$SECONDS_TO_RECORD" \
  2> >(grep -v "^\[ perf record" >&2)
perf report -i "$DATA" --stdio --no-children --percent-limit 0.5 --sort symbol \
  > "$OUT.txt" 2>/dev/null
echo "perf report: $OUT.txt"
if command -v inferno-collapse-perf >/dev/null && command -v inferno-flamegraph >/dev/null; then
  perf script -i "$DATA" 2>/dev/null | inferno-collapse-perf | inferno-flamegraph > "$OUT.svg"
  echo "flame graph: $OUT.svg"
else
  echo "inferno not installed (cargo install inferno): no SVG, see $OUT.txt" >&2
fi
