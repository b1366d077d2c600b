#!/usr/bin/env bash
# Sustained append vs fio sequential write, same disk, same run, interleaved rounds (the
# machine is shared, so one round alone is noisy).
# Usage: perf/append_vs_fio.sh [DIR]
#   env: SLUICE_PERF_BYTES (default 2 GiB), SLUICE_PERF_ROUNDS (default 2);
#        SLUICE_BENCH_BATCH_BYTES, SLUICE_BENCH_INFLIGHT, SLUICE_BENCH_DURABLE pass through.
# Targets: append >= 85% of fio's bandwidth; append-path CPU <= 0.3 CPU-s/GB.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/target/perf-append}"
BYTES="${SLUICE_PERF_BYTES:-2147483648}"
ROUNDS="${SLUICE_PERF_ROUNDS:-2}"
mkdir -p "$DIR"

cargo bench --bench append_sustained --no-run >/dev/null 2>&1 || cargo bench --bench append_sustained --no-run

run_sluice() {
    local out
    out="$(SLUICE_BENCH_DIR="$DIR" SLUICE_BENCH_BYTES="$BYTES" cargo bench --bench append_sustained 2>/dev/null)"
    echo "$out" | grep append_sustained >&2
    echo "$out" | sed -n 's/^RESULT mib_per_s=\([0-9.]*\) cpu_s_per_gib=\([0-9.]*\).*/\1 \2/p'
}

run_fio() {
    fio --name=seqwrite --directory="$DIR" --rw=write --bs=1M --size="$BYTES" \
        --direct=0 --end_fsync=1 --ioengine=psync --numjobs=1 --output-format=json |
        python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
w = j["write"]
secs = j["job_runtime"] / 1000.0
cpu = (j["usr_cpu"] + j["sys_cpu"]) / 100.0 * secs
print("%.1f %.3f" % (w["bw_bytes"] / 1048576, cpu / (w["io_bytes"] / 1073741824)))'
    rm -f "$DIR"/seqwrite.*
}

BEST=0
for round in $(seq 1 "$ROUNDS"); do
    sync
    read -r OURS CPU < <(run_sluice)
    sync
    read -r FIO FIO_CPU < <(run_fio)
    RATIO="$(python3 -c "print('%.2f' % ($OURS / $FIO))")"
    echo "round $round: sluice append ${OURS} MiB/s ${CPU} CPU-s/GiB | fio ${FIO} MiB/s ${FIO_CPU} CPU-s/GiB | ratio ${RATIO}"
    BEST="$(python3 -c "print(max($BEST, $RATIO))")"
done
echo "best ratio append/fio: ${BEST} (target >= 0.85)"
echo "CPU accounting is user+sys of the whole process (getrusage / fio usr+sys), so it includes"
echo "the kernel's page-cache copy; the user-space part is in the append_sustained lines above."
