#!/usr/bin/env python3
"""Delayed delivery at scale (issue 18, decision 0008), against a real `sluice serve`.

Two measurements:

  deliver  N records, each with a `sluice.deliver.at.ms` header uniform in now + [0, 60 s),
           produced at full speed (confluent-kafka, acks=all) to a LogAppendTime topic, so
           every delivered record carries the broker's append time. The broker is SIGKILLed
           K times while the records fall due (kills after production: a producer retry
           after a kill may store a delayed record twice, see decision 0008 "Not covered").
           A consumer reads everything; the script reports records early (append time before
           due), lateness p50/p99/max (append time - due), lost and duplicated records,
           and per kill: kill -> /v1/ready, kill -> first append after it (from the
           records' append times) and the worst lateness of records due near the kill.
           Lateness is the broker's: append time (LogAppendTime) - due. The consumer's
           arrival time - due is reported beside it (`arrival_lateness_*`): it adds the
           consumer's own fetch wait and, across a kill, its reconnect, which is not the
           broker's delivery. The start-up phases of every restart are read from the
           broker's log (`startup_phases`: medians and maxima over the restarts).
  rss      M records delayed by an hour (never due during the run); the broker's RSS
           before, after producing, and after a restart that replays the delay log.

  /work/main/.venv/bin/python perf/delay.py deliver --bin target/release/sluice \
      --records 1000000 --kills 10
  /work/main/.venv/bin/python perf/delay.py rss --bin target/release/sluice --records 10000000

Prints one JSON object with every figure (and `--out FILE` writes it).
"""

import argparse
import bisect
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TOPIC = "delay-perf"
PARTITIONS = 4


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Broker:
    def __init__(self, binary, data_dir):
        self.binary = binary
        self.data_dir = data_dir
        self.port = free_port()
        self.admin = free_port()
        self.proc = None
        self.log = open(os.path.join(os.path.dirname(data_dir), "broker.log"), "ab")

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--data-dir", self.data_dir,
             "--listen", self.bootstrap, "--admin-listen", f"127.0.0.1:{self.admin}"],
            stdout=self.log, stderr=self.log)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                import urllib.request
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/v1/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except Exception:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"broker exited: {self.proc.returncode}")
            # 10 ms: the restart times reported are read at this resolution.
            time.sleep(0.01)
        raise SystemExit("broker not ready within 120 s")

    def kill(self):
        """SIGKILLs the broker; returns the epoch ms of the kill."""
        killed_ms = int(time.time() * 1000)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        return killed_ms

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)

    def rss_mb(self, field="VmRSS"):
        """`field` of /proc/PID/status in MB: VmRSS now, VmHWM the peak since start."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
        return None

    def metric(self, name):
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics", timeout=5) as r:
            total = 0.0
            for line in r.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    total += float(line.rsplit(" ", 1)[1])
            return total


def create_topic(broker, configs):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1, config=configs)])
    for f in futures.values():
        f.result(30)


def produce(broker, records, delay_of):
    """Produces `records` records; value = "<id>:<due_ms>". Returns (acked, failed, seconds)."""
    producer = Producer({
        "bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5,
        "batch.num.messages": 10000, "queue.buffering.max.messages": 1000000,
        "enable.idempotence": False, "message.timeout.ms": 300000})
    acked = [0]
    failed = [0]

    def report(err, _msg):
        if err is None:
            acked[0] += 1
        else:
            failed[0] += 1

    started = time.time()
    for i in range(records):
        due = int(time.time() * 1000) + delay_of(i)
        headers = [("sluice.deliver.at.ms", str(due).encode())]
        while True:
            try:
                producer.produce(TOPIC, value=f"{i}:{due}".encode(), headers=headers,
                                 partition=i % PARTITIONS, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10000 == 0:
            producer.poll(0)
    producer.flush(300)
    return acked[0], failed[0], time.time() - started


class Reader(threading.Thread):
    """Reads the topic from the start until stopped: offsets -> (id, due_ms, append_ms);
    `arrived` keeps each record's arrival time at the consumer (epoch ms)."""

    def __init__(self, bootstrap):
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.seen = {}
        self.arrived = {}
        self.stop = False

    def run(self):
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap, "group.id": "delay-perf-reader",
            "enable.auto.commit": False, "fetch.wait.max.ms": 50,
            "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 500})
        consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        while not self.stop:
            batch = consumer.consume(10000, 0.2)
            now_ms = int(time.time() * 1000)
            for m in batch:
                if m.error():
                    continue
                ident, due = m.value().decode().split(":")
                key = (m.partition(), m.offset())
                self.seen[key] = (int(ident), int(due), m.timestamp()[1])
                self.arrived.setdefault(key, now_ms)
        consumer.close()


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def startup_phases(log_path):
    """Per restart, from the broker's log: each start-up line's `name_ms=N` fields (the
    slower shard's, for per-shard lines; the slowest partition's for the per-partition
    recovery lines). Returns medians and maxima over the starts after
    the first (the first start is on an empty data dir)."""
    import re
    import statistics
    text = re.sub(r"\x1b\[[0-9;]*m", "", open(log_path, errors="replace").read())
    starts = []
    for line in text.splitlines():
        if "admin listener" in line:
            starts.append({})
        if not starts:
            continue
        for label in ("delay log replayed", "shard ready", "sluice ready",
                      "first delivery since the delay log was opened",
                      "partition recovered after an unclean shutdown"):
            if label in line:
                for name, value in re.findall(r"(\w+_ms)=(\d+)", line):
                    key = f"{label.split()[0]}_{name}" if label != "shard ready" else f"shard_{name}"
                    if label.startswith("first"):
                        key = f"first_delivery_{name}"
                    if label.startswith("partition"):
                        # The slowest partition's phases (one line per recovered partition).
                        key = f"partition_{name}"
                    starts[-1][key] = max(starts[-1].get(key, 0), int(value))
                for name, value in re.findall(r"(tail_bytes|pending)=(\d+)", line):
                    starts[-1][f"replay_{name}"] = max(starts[-1].get(f"replay_{name}", 0), int(value))
    restarts = starts[1:]
    keys = sorted({k for s in restarts for k in s})
    return {k: {"median": statistics.median([s[k] for s in restarts if k in s]),
                "max": max(s[k] for s in restarts if k in s)} for k in keys}


def deliver(args):
    work = tempfile.mkdtemp(prefix="sluice-delay-perf-")
    broker = Broker(args.bin, os.path.join(work, "data"))
    broker.start()
    create_topic(broker, {"message.timestamp.type": "LogAppendTime"})
    window_ms = args.max_delay_s * 1000
    acked, failed, produce_s = produce(broker, args.records,
                                       lambda _i: random.randrange(window_ms))
    produced_at = time.time()
    reader = Reader(broker.bootstrap)
    reader.start()
    kills = 0
    restarts = []
    # Kills spread over the delivery window (records fall due until ~max_delay_s after
    # the last one was produced). The broker is started again at once: no pause.
    for k in range(args.kills):
        target = produced_at + (k + 1) * args.max_delay_s / (args.kills + 1)
        time.sleep(max(0.0, target - time.time()))
        killed_ms = broker.kill()
        broker.start()
        restarts.append({"killed_ms": killed_ms,
                         "ready_ms": int(time.time() * 1000) - killed_ms})
        kills += 1
    deadline = produced_at + args.max_delay_s + args.settle_s
    last = -1
    while time.time() < deadline or len(reader.seen) != last:
        last = len(reader.seen)
        time.sleep(2)
        if time.time() > deadline + 120:
            break
    reader.stop = True
    reader.join(30)
    pending_after = broker.metric("sluice_delayed_records_pending")
    broker.stop()
    ids = {}
    early = 0
    lateness = []
    for (_p, _o), (ident, due, append_ms) in reader.seen.items():
        ids[ident] = ids.get(ident, 0) + 1
        if append_ms < due:
            early += 1
        lateness.append(append_ms - due)
    lateness.sort()
    arrival = sorted(reader.arrived[key] - due for key, (_i, due, _a) in reader.seen.items())
    # Kill -> first append after it, from the records themselves (records fall due about
    # every 0.06 ms, so some are always overdue when the broker comes back): the time a
    # restart keeps deliveries away, whatever the harness's own ready polling sees.
    appends = sorted(append_ms for (_i, _d, append_ms) in reader.seen.values())
    for r in restarts:
        at = bisect.bisect_right(appends, r["killed_ms"])
        r["first_delivery_ms"] = appends[at] - r["killed_ms"] if at < len(appends) else None
        # The records due while the broker was away are the late ones: their worst.
        window = [append_ms - due for (_i, due, append_ms) in reader.seen.values()
                  if r["killed_ms"] - 1000 <= due <= r["killed_ms"] + 1000]
        r["lateness_ms_max_near_kill"] = max(window) if window else None
    first = sorted(r["first_delivery_ms"] for r in restarts if r["first_delivery_ms"] is not None)
    duplicated = sum(1 for n in ids.values() if n > 1)
    result = {
        "mode": "deliver", "records": args.records, "acked": acked, "failed": failed,
        "produce_seconds": round(produce_s, 1),
        "produce_records_per_s": round(args.records / produce_s),
        "kills": kills, "delivered_records": len(reader.seen), "distinct_ids": len(ids),
        "lost": acked - len(ids), "duplicated": duplicated, "early": early,
        "lateness_ms_p50": percentile(lateness, 0.5),
        "lateness_ms_p99": percentile(lateness, 0.99),
        "lateness_ms_max": lateness[-1] if lateness else None,
        "arrival_lateness_ms_p50": percentile(arrival, 0.5),
        "arrival_lateness_ms_p99": percentile(arrival, 0.99),
        "arrival_lateness_ms_max": arrival[-1] if arrival else None,
        "kill_to_first_delivery_ms_median": percentile(first, 0.5),
        "kill_to_first_delivery_ms_max": first[-1] if first else None,
        "restarts": restarts,
        "startup_phases": startup_phases(broker.log.name) if kills else None,
        "pending_after": pending_after, "work_dir": work,
    }
    return result


def rss(args):
    work = tempfile.mkdtemp(prefix="sluice-delay-rss-")
    broker = Broker(args.bin, os.path.join(work, "data"))
    broker.start()
    create_topic(broker, {})
    before = broker.rss_mb()
    acked, failed, produce_s = produce(broker, args.records, lambda _i: 3_600_000)
    time.sleep(2)
    pending = broker.metric("sluice_delayed_records_pending")
    after = broker.rss_mb()
    peak = broker.rss_mb("VmHWM")
    broker.stop()
    started = time.time()
    broker.start()
    replay_s = time.time() - started
    time.sleep(2)
    after_restart = broker.rss_mb()
    pending_restart = broker.metric("sluice_delayed_records_pending")
    du = subprocess.run(["du", "-sm", os.path.join(broker.data_dir, "delay")],
                        capture_output=True, text=True).stdout.split()[0]
    broker.stop()
    return {
        "mode": "rss", "records": args.records, "acked": acked, "failed": failed,
        "produce_seconds": round(produce_s, 1), "pending": pending,
        "rss_mb_empty": before, "rss_mb_pending": after, "rss_mb_peak": peak,
        "rss_mb_after_restart": after_restart, "pending_after_restart": pending_restart,
        "restart_seconds": round(replay_s, 1), "delay_log_mb": int(du),
        "bytes_per_pending_record": round((after - before) * 1024 * 1024 / max(1, pending), 1),
        "work_dir": work,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["deliver", "rss"])
    parser.add_argument("--bin", default="target/release/sluice")
    parser.add_argument("--records", type=int, default=100000)
    parser.add_argument("--kills", type=int, default=0)
    parser.add_argument("--max-delay-s", type=int, default=60)
    parser.add_argument("--settle-s", type=int, default=15)
    parser.add_argument("--out")
    args = parser.parse_args()
    result = deliver(args) if args.mode == "deliver" else rss(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.mode == "deliver" and (result["lost"] or result["duplicated"] or result["early"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
