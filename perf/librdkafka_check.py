#!/usr/bin/env python3
"""Cross-checks `sluice bench produce` against a librdkafka client (confluent-kafka), on the
same scenario, on both brokers: if the harness flattered Sluice (e.g. by exploiting something
only Sluice does well), the ranking or the ratio would differ between the two clients.

Each (client, broker) pair gets a fresh broker. Reports payload MB/s, broker CPU-s/GB and
client CPU-s/GB. Run with the perf venv's python (perf/compare.sh creates it):
  $VENV/bin/python perf/librdkafka_check.py [--records 200000] [--acks all]
      [--partitions 4 --keys 1000] [--brokers sluice,crabka] [--rounds 3]

--partitions/--keys (issue 22, session 25) cross-check the keyed row
(perf/scenarios/produce-1k-4p-keyed-acks-1.toml): `sluice bench` sends one partition per
Produce request, round-robin, so on a two-shard broker every other request crosses to the
other shard. librdkafka 2.16 sends one partition per request too (librdkafka issue #1700;
counted in session 31: 64,000 records of 1 KiB over 100 partitions took 4,315 Produce
requests); the Java client drains every partition's ready batch for a broker into one
request (`sluice bench --partitions-per-request 0`). Whether the keyed row's CPU ratio
holds for a real client is what this shows. librdkafka's partitioner hashes the same 1,000 keys over the partitions.
--rounds repeats the whole set, alternating the broker order, and prints per-pair medians.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (Broker, SLUICE, find_tansu)

# Same shape as perf/scenarios/produce-1k-acks-all.toml.
BATCH_BYTES = 16384
LINGER_MS = 5
IN_FLIGHT = 5


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def librdkafka_produce(bootstrap, topic, records, size, acks, broker_pid, partitions, keys):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(topic, partitions, 1)])[topic]
    try:
        fut.result(10)
    except Exception as e:  # already exists is fine
        if "TOPIC_ALREADY_EXISTS" not in str(e):
            raise
    time.sleep(0.5)
    p = Producer({
        "bootstrap.servers": bootstrap,
        "acks": acks,
        "linger.ms": LINGER_MS,
        "batch.size": BATCH_BYTES,
        "max.in.flight.requests.per.connection": IN_FLIGHT,
        "enable.idempotence": False,
        # As the Java client (and `sluice bench --keys`): murmur2 of the key.
        "partitioner": "murmur2_random",
        "compression.type": "none",
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
    })
    value = (b"ABCDEFGHIJKLMNOPQRSTUVWXYZ" * (size // 26 + 1))[:size]
    # Keys as `sluice bench --keys` makes them: key-0 .. key-(keys-1), cycled; without keys
    # every record goes to partition 0.
    key_list = [f"key-{k}".encode() for k in range(keys)] if keys else None
    failures = [0]

    def on_delivery(err, _msg):
        if err is not None:
            failures[0] += 1

    # Warm the connection and metadata outside the measurement.
    p.produce(topic, value, partition=0, on_delivery=on_delivery)
    p.flush(10)
    cpu0, bcpu0, t0 = own_cpu(), proc_cpu(broker_pid), time.time()
    for i in range(records):
        while True:
            try:
                if key_list:
                    p.produce(topic, value, key=key_list[i % keys], on_delivery=on_delivery)
                else:
                    p.produce(topic, value, partition=0, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.001)
        p.poll(0)
    p.flush(60)
    elapsed = time.time() - t0
    gb = records * size / 1e9
    return {
        "client": "confluent-kafka (librdkafka)",
        "mb_per_s": records * size / elapsed / 1e6,
        "records_per_s": records / elapsed,
        "broker_cpu_s_per_gb": (proc_cpu(broker_pid) - bcpu0) / gb,
        "client_cpu_s_per_gb": (own_cpu() - cpu0) / gb,
        "failures": failures[0],
    }


def sluice_bench_produce(bootstrap, topic, records, size, acks, broker_pid, partitions, keys):
    cmd = [str(compare.SLUICE), "bench", "produce", "--bootstrap-server", bootstrap,
           "--topic", topic, "--records", str(records), "--record-size", str(size),
           "--acks", acks, "--batch-size", str(BATCH_BYTES), "--max-in-flight", str(IN_FLIGHT),
           "--partitions", str(partitions), "--broker-pid", str(broker_pid), "--json"]
    if keys:
        cmd += ["--keys", str(keys)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(f"sluice bench failed: {res.stderr.strip()}")
    r = json.loads(res.stdout)
    return {
        "client": "sluice bench",
        "mb_per_s": r["produced"]["mb_per_s"],
        "records_per_s": r["produced"]["records_per_s"],
        "broker_cpu_s_per_gb": r["broker"]["cpu_s_per_gb"],
        "client_cpu_s_per_gb": r["harness_cpu_s_per_gb"],
        "failures": len(r["errors"]),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--acks", default="all")
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--keys", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--brokers", default="sluice,tansu")
    ap.add_argument("--out", help="write the JSON here too")
    args = ap.parse_args()
    kinds = [b for b in args.brokers.split(",") if b]
    tansu = compare.find_tansu(None) if "tansu" in kinds else None
    rows = []
    workdir = os.environ.get("TMPDIR", "/tmp")
    for round_no in range(args.rounds):
        order = kinds if round_no % 2 == 0 else list(reversed(kinds))
        for broker_kind in order:
            for fn in (sluice_bench_produce, librdkafka_produce):
                log = tempfile.NamedTemporaryFile(prefix=f"{broker_kind}-", suffix=".log",
                                                  delete=False)
                broker = compare.Broker(broker_kind, tansu, workdir, log.name)
                try:
                    r = fn(broker.bootstrap, "xcheck", args.records, args.size, args.acks,
                           broker.proc.pid, args.partitions, args.keys)
                finally:
                    broker.stop()
                r["broker"] = broker_kind
                r["round"] = round_no + 1
                r["load"] = os.getloadavg()[0]
                rows.append(r)
                print(f"round {round_no + 1} {broker_kind:6} {r['client']:30} "
                      f"{r['mb_per_s']:8.1f} MB/s  broker {r['broker_cpu_s_per_gb']:.3f} "
                      f"CPU-s/GB  client {r['client_cpu_s_per_gb']:.3f} CPU-s/GB  failures "
                      f"{r['failures']}  load {r['load']:.2f}", file=sys.stderr, flush=True)
    md = ["| broker | client | MB/s | records/s | broker CPU-s/GB | client CPU-s/GB |",
          "|---|---|---:|---:|---:|---:|"]
    for kind in kinds:
        for client in ("sluice bench", "confluent-kafka (librdkafka)"):
            mine = [r for r in rows if r["broker"] == kind and r["client"] == client]
            if not mine:
                continue
            def med(key):
                return statistics.median(r[key] for r in mine)
            each = ", ".join(f"{r['broker_cpu_s_per_gb']:.2f}" for r in mine)
            md.append(f"| {kind} | {client} | {med('mb_per_s'):.1f} | "
                      f"{med('records_per_s'):.0f} | {med('broker_cpu_s_per_gb'):.3f} "
                      f"({each}) | {med('client_cpu_s_per_gb'):.3f} |")
    print(f"{args.records} records of {args.size} B, acks={args.acks}, batch {BATCH_BYTES} B, "
          f"linger {LINGER_MS} ms, {IN_FLIGHT} in flight, {args.partitions} partition(s), "
          f"{args.keys or 'null'} keys, medians of {args.rounds} round(s) (each round's broker "
          f"CPU-s/GB in brackets)\n")
    print("\n".join(md))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
