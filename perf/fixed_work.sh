#!/bin/bash
# Broker cost of a fixed amount of produce work, for A/Bs on a machine too busy for
# throughput to mean much: task-clock, context switches, syscalls, io_uring submissions and
# io-wq punts, fdatasyncs and page faults of the broker process while `sluice bench`
# produces RECORDS 1 KiB records (16 KiB batches, acks=1) after a 20,000-record warm-up.
# This VM has no hardware counters (no instruction counts), so interleave rounds of the two
# binaries and compare medians:
#
#   for i in 1 2 3 4 5; do for b in OLD NEW; do perf/fixed_work.sh $b 300000; done; done
#
# Needs `perf` with tracepoint access.
BIN=$1; N=${2:-200000}
# shellcheck source=perf/broker_lib.sh
source "$(dirname "$0")/broker_lib.sh"
D=$(mktemp -d); P=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'); A=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$BIN serve --data-dir $D/data --listen 127.0.0.1:$P --admin-listen 127.0.0.1:$A > $D/log 2>&1 &
PID=$!
wait_for_port "$P" || true
$BIN bench produce --acks 1 --records 20000 --record-size 1024 --batch-size 16384 --bootstrap-server 127.0.0.1:$P > /dev/null 2>&1
perf stat -e task-clock,context-switches,raw_syscalls:sys_enter,io_uring:io_uring_submit_req,io_uring:io_uring_queue_async_work,io_uring:io_uring_poll_arm,syscalls:sys_enter_fdatasync,syscalls:sys_enter_clock_gettime,page-faults -p $PID -o $D/stat -- sleep 1000 &
SP=$!
sleep 0.3
$BIN bench produce --acks 1 --records $N --record-size 1024 --batch-size 16384 --bootstrap-server 127.0.0.1:$P > $D/bench.log 2>&1
sleep 0.2
pkill -P $SP sleep; wait $SP 2>/dev/null
kill $PID; wait $PID 2>/dev/null
echo "== $(basename $BIN) $(grep -oE '[0-9.]+ MB/s' $D/bench.log | head -1)"
grep -E "^ +[0-9]" $D/stat | awk '{print $1, $2}' | tr '\n' ' '; echo
rm -rf $D
