#!/usr/bin/env bash
# Sustained append vs fio sequential write, same disk, same run.
# Usage: perf/append_vs_fio.sh [DIR]   (env: SLUICE_PERF_BYTES, default 2 GiB;
#        SLUICE_BENCH_BATCH_BYTES, SLUICE_BENCH_INFLIGHT, SLUICE_BENCH_DURABLE pass through)
# Targets: append >= 85% of fio's bandwidth; append-path CPU <= 0.3 CPU-s/GB.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-$PWD/target/perf-append}"
BYTES="${SLUICE_PERF_BYTES:-2147483648}"
mkdir -p "$DIR"

cargo bench --bench append_sustained --no-run >/dev/null 2>&1 || cargo bench --bench append_sustained --no-run

sync
echo "== sluice append ($BYTES bytes into $DIR)"
OUT="$(SLUICE_BENCH_DIR="$DIR" SLUICE_BENCH_BYTES="$BYTES" cargo bench --bench append_sustained 2>/dev/null)"
echo "$OUT" | grep append_sustained
OURS="$(echo "$OUT" | sed -n 's/^RESULT mib_per_s=\([0-9.]*\).*/\1/p')"
CPU="$(echo "$OUT" | sed -n 's/^RESULT .*cpu_s_per_gib=\([0-9.]*\).*/\1/p')"

sync
echo "== fio --rw=write --bs=1M --direct=0 --end_fsync=1"
FIO_JSON="$(fio --name=seqwrite --directory="$DIR" --rw=write --bs=1M --size="$BYTES" \
    --direct=0 --end_fsync=1 --ioengine=psync --numjobs=1 --output-format=json)"
rm -f "$DIR"/seqwrite.*
read -r FIO FIO_CPU < <(echo "$FIO_JSON" | python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
w = j["write"]
secs = j["job_runtime"] / 1000.0
cpu = (j["usr_cpu"] + j["sys_cpu"]) / 100.0 * secs
print("%.1f %.3f" % (w["bw_bytes"] / 1048576, cpu / (w["io_bytes"] / 1073741824)))')

echo "sluice append: ${OURS} MiB/s, ${CPU} CPU-s/GiB (user+sys, includes kernel page-cache copy)"
echo "fio seq write: ${FIO} MiB/s, ${FIO_CPU} CPU-s/GiB (same accounting)"
python3 -c "print('ratio append/fio: %.2f (target >= 0.85)' % ($OURS / $FIO))"
