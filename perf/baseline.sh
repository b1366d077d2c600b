#!/usr/bin/env bash
# This machine's physical limits, so every perf report can state its ratio to them:
#  - fio sequential write, 1 MiB blocks, 2 GiB, fsync at the end, on the disk brokers use;
#  - loopback TCP throughput, one stream (iperf3 if installed, else a Python socket pump);
#  - the CPU floor of producing: what the kernel alone spends per GB to receive bytes over
#    loopback TCP (iperf3's receiver) and to copy them into the page cache (fio, buffered
#    16 KiB writes, no fsync: the flusher's writeback is nobody's process CPU, as for a
#    broker). A broker that did nothing else would still spend their sum per GB produced.
#  - the disk's fdatasync tail: 4 files each appending 16 KiB and fdatasyncing every write
#    (fio, SYNC_SECONDS), as acks=all partitions do. Its p99.9 is a floor under the tail of
#    any broker that fdatasyncs before acknowledging, on this disk.
# Writes JSON to stdout and to $OUT (default perf/results/baseline.json).
# Usage: perf/baseline.sh [DIR]   (DIR: where fio writes; default $TMPDIR or /tmp)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${1:-${TMPDIR:-/tmp}}"
OUT="${OUT:-$ROOT/perf/results/baseline.json}"
FIO_SIZE="${FIO_SIZE:-2G}"
LOOPBACK_SECONDS="${LOOPBACK_SECONDS:-5}"
SYNC_SECONDS="${SYNC_SECONDS:-6}"
mkdir -p "$(dirname "$OUT")"

work="$(mktemp -d "$DIR/sluice-fio-XXXXXX")"
trap 'rm -rf "$work"' EXIT
fio_json="$(fio --name=seqwrite --rw=write --bs=1M --size="$FIO_SIZE" --end_fsync=1 \
  --directory="$work" --output-format=json)"
# bw_bytes is bytes/s over the job including the final fsync.
fio_mbs="$(printf '%s' "$fio_json" | python3 -c \
  'import json,sys; j=json.load(sys.stdin); print(j["jobs"][0]["write"]["bw_bytes"]/1e6)')"
rm -rf "${work:?}"/*
# CPU-seconds per GB of buffered 16 KiB writes: fio's usr+sys percentages over its runtime.
pagecache_json="$(fio --name=pagecache --rw=write --bs=16k --size="$FIO_SIZE" \
  --directory="$work" --output-format=json)"
pagecache_cpu="$(printf '%s' "$pagecache_json" | python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
cpu_s = (j["usr_cpu"] + j["sys_cpu"]) / 100 * j["job_runtime"] / 1000
print(round(cpu_s / (j["write"]["io_bytes"] / 1e9), 4))')"
rm -rf "${work:?}"/*
# fdatasync latency of 4 concurrent appenders (fio's sync_ percentiles, in ns).
sync_json="$(fio --name=fdatasync --rw=write --bs=16k --size=1G --numjobs=4 --fdatasync=1 \
  --time_based --runtime="$SYNC_SECONDS" --group_reporting --directory="$work" \
  --percentile_list=50:99:99.9 --output-format=json)"
read -r sync_p50 sync_p99 sync_p999 sync_max sync_iops < <(printf '%s' "$sync_json" | python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
s = j["sync"]["lat_ns"]
p = s["percentile"]
ms = lambda ns: round(ns / 1e6, 3)
print(ms(p["50.000000"]), ms(p["99.000000"]), ms(p["99.900000"]), ms(s["max"]), round(j["write"]["iops"]))')
rm -rf "${work:?}"/*

if command -v iperf3 >/dev/null; then
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  iperf3 -s -1 -B 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  server=$!
  sleep 0.5
  iperf_json="$(iperf3 -c 127.0.0.1 -p "$port" -t "$LOOPBACK_SECONDS" -J)"
  wait "$server" || true
  # cpu_utilization_percent: "host" is this (sending) client, "remote" the receiving server.
  read -r lo_mbs recv_cpu send_cpu < <(printf '%s' "$iperf_json" | python3 -c '
import json, sys
e = json.load(sys.stdin)["end"]
r = e["sum_received"]
gb = r["bytes"] / 1e9
cpu = e["cpu_utilization_percent"]
per_gb = lambda pct: round(pct / 100 * r["seconds"] / gb, 4)
print(r["bits_per_second"] / 8e6, per_gb(cpu["remote_total"]), per_gb(cpu["host_total"]))')
  tool="iperf3 single stream"
else
  lo_mbs="$(python3 - "$LOOPBACK_SECONDS" <<'PY'
import socket, sys, threading, time
secs = float(sys.argv[1]); buf = bytearray(1 << 20)
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
got = [0]
def sink():
    c, _ = srv.accept(); v = memoryview(bytearray(1 << 20))
    while (n := c.recv_into(v)):
        got[0] += n
t = threading.Thread(target=sink); t.start()
s = socket.create_connection(srv.getsockname()); end = time.time() + secs; t0 = time.time()
while time.time() < end:
    s.sendall(buf)
s.close(); t.join()
print(got[0] / (time.time() - t0) / 1e6)
PY
)"
  tool="python socket pump"
  recv_cpu=null
  send_cpu=null
fi
if [[ "$recv_cpu" == null ]]; then
  floor=null
else
  floor="$(python3 -c "print(round($recv_cpu + $pagecache_cpu, 4))")"
fi

cat > "$OUT" <<JSON
{"fio_write_mb_per_s": $fio_mbs, "fio_size": "$FIO_SIZE", "fio_dir": "$DIR",
 "loopback_mb_per_s": $lo_mbs, "loopback_tool": "$tool", "cpus": $(nproc),
 "pagecache_write_cpu_s_per_gb": $pagecache_cpu,
 "loopback_recv_cpu_s_per_gb": $recv_cpu, "loopback_send_cpu_s_per_gb": $send_cpu,
 "produce_cpu_floor_s_per_gb": $floor,
 "fdatasync_4x16k_ms": {"p50": $sync_p50, "p99": $sync_p99, "p99.9": $sync_p999, "max": $sync_max},
 "fdatasync_4x16k_write_iops": $sync_iops,
 "date": "$(date -u +%FT%TZ)"}
JSON
cat "$OUT"
