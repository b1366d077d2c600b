#!/usr/bin/env bash
# This machine's physical limits, so every perf report can state its ratio to them:
#  - fio sequential write, 1 MiB blocks, 2 GiB, fsync at the end, on the disk brokers use;
#  - loopback TCP throughput, one stream (iperf3 if installed, else a Python socket pump).
# Writes JSON to stdout and to $OUT (default perf/results/baseline.json).
# Usage: perf/baseline.sh [DIR]   (DIR: where fio writes; default $TMPDIR or /tmp)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${1:-${TMPDIR:-/tmp}}"
OUT="${OUT:-$ROOT/perf/results/baseline.json}"
FIO_SIZE="${FIO_SIZE:-2G}"
LOOPBACK_SECONDS="${LOOPBACK_SECONDS:-5}"
mkdir -p "$(dirname "$OUT")"

work="$(mktemp -d "$DIR/sluice-fio-XXXXXX")"
trap 'rm -rf "$work"' EXIT
fio_json="$(fio --name=seqwrite --rw=write --bs=1M --size="$FIO_SIZE" --end_fsync=1 \
  --directory="$work" --output-format=json)"
# bw_bytes is bytes/s over the job including the final fsync.
fio_mbs="$(printf '%s' "$fio_json" | python3 -c \
  'import json,sys; j=json.load(sys.stdin); print(j["jobs"][0]["write"]["bw_bytes"]/1e6)')"

if command -v iperf3 >/dev/null; then
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  iperf3 -s -1 -B 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  server=$!
  sleep 0.5
  lo_mbs="$(iperf3 -c 127.0.0.1 -p "$port" -t "$LOOPBACK_SECONDS" -J | python3 -c \
    'import json,sys; j=json.load(sys.stdin); print(j["end"]["sum_received"]["bits_per_second"]/8e6)')"
  wait "$server" || true
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
fi

cat > "$OUT" <<JSON
{"fio_write_mb_per_s": $fio_mbs, "fio_size": "$FIO_SIZE", "fio_dir": "$DIR",
 "loopback_mb_per_s": $lo_mbs, "loopback_tool": "$tool", "cpus": $(nproc),
 "date": "$(date -u +%FT%TZ)"}
JSON
cat "$OUT"
