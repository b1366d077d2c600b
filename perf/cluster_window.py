#!/usr/bin/env python3
"""Issue 17's throughput line (RF=3 acks=all against RF=1 acks=1) across producer shapes.

`perf/cluster_bench.py` measures one shape: one partition, 5 requests in flight. With acks=all
each request waits for two follower rounds, so at a window of 5 that figure is a latency
(window / round trip), not what the cluster can carry. This script runs both topics, same
cluster, alternating, for each producer shape given, and reports throughput, the ratio, and the
CPU the whole cluster (all three broker processes) spent per GB produced, so a shape's cost is
visible beside its throughput.

Shapes are `WINDOWxPARTITIONS` (e.g. `5x1 10x1 5x3`): `--max-in-flight WINDOW` and a topic of
PARTITIONS partitions (their leaders spread over the nodes, as CreateTopics places them; the
producer sends each leader's batches in one request, as Kafka's Java producer does, with
`--partitions-per-request 0`). Same records as cluster_bench: 1 KiB, 16 KiB batches.

Usage: perf/cluster_window.py [--sluice BIN] [--rounds 2] [--duration 8] [--shapes 5x1 10x1 ...]
"""

import argparse
import pathlib
import statistics
import sys
import tempfile

from cluster_bench import (Cluster, bench, cpu_seconds, create_topic, delete_topic,
                           leader_and_replicas)

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_one(cluster, topic, acks, window, partitions, duration):
    leader, _, _ = leader_and_replicas(cluster, topic)
    pids = [p.pid for p in cluster.procs]
    before = sum(cpu_seconds(pid) for pid in pids)
    # One partition is the same request in either shape; only ask for the Java shape where it
    # differs, so builds from before `--partitions-per-request` can run the one-partition rows.
    shape = ["--partitions-per-request", "0"] if partitions > 1 else []
    r = bench(cluster, "produce", topic, cluster.pid_of_node(leader),
              ["--record-size", "1024", "--batch-size", "16384", "--max-in-flight", str(window),
               "--acks", acks, "--duration", f"{duration}s", *shape])
    gb = r["produced"]["batch_bytes"] / 1e9
    return {"mb_per_s": r["produced"]["mb_per_s"], "p99_ms": r["latency"]["p99_ms"],
            "cluster_cpu_s_per_gb": (sum(cpu_seconds(pid) for pid in pids) - before) / gb,
            "client_cpu_s_per_gb": r["harness_cpu_s_per_gb"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", default=str(ROOT / "target" / "release" / "sluice"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--shapes", nargs="+", default=["5x1", "10x1", "20x1", "5x3"])
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    args = ap.parse_args()
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes]
    results = {(s, kind): [] for s in shapes for kind in ("rf1", "rf3")}
    cluster = Cluster(pathlib.Path(args.sluice), 3, args.workdir)
    try:
        cluster.wait_ready()
        for rnd in range(args.rounds):
            for window, partitions in shapes:
                for kind, rf, acks, configs in (
                        ("rf1", 1, "1", []),
                        ("rf3", 3, "all", ["min.insync.replicas=2", "sluice.durability=none"])):
                    topic = f"{kind}-{window}x{partitions}-{rnd}"
                    create_topic(cluster, topic, rf, configs, partitions)
                    results[((window, partitions), kind)].append(
                        run_one(cluster, topic, acks, window, partitions, args.duration))
                    delete_topic(cluster, topic)
            print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        cluster.stop()

    med = statistics.median
    print(f"\nMedians over {args.rounds} rounds, 3 nodes on one box, 1 KiB records, 16 KiB "
          "batches; RF=3 with min.insync.replicas=2 and no fdatasync (durability by "
          "replication).\n")
    print("| in flight | partitions | RF=1 acks=1 MB/s | RF=3 acks=all MB/s | ratio | "
          "RF=1 p99 ms | RF=3 p99 ms | cluster CPU-s/GB RF=1 / RF=3 | client CPU-s/GB RF=1 / RF=3 | "
          "rounds' ratios |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|---|---|")
    for window, partitions in shapes:
        one, three = results[((window, partitions), "rf1")], results[((window, partitions), "rf3")]
        ratios = ", ".join(f"{b['mb_per_s'] / a['mb_per_s']:.2f}" for a, b in zip(one, three))
        mb1, mb3 = med(r["mb_per_s"] for r in one), med(r["mb_per_s"] for r in three)
        print(f"| {window} | {partitions} | {mb1:.1f} | {mb3:.1f} | {mb3 / mb1:.2f} | "
              f"{med(r['p99_ms'] for r in one):.2f} | {med(r['p99_ms'] for r in three):.2f} | "
              f"{med(r['cluster_cpu_s_per_gb'] for r in one):.2f} / "
              f"{med(r['cluster_cpu_s_per_gb'] for r in three):.2f} | "
              f"{med(r['client_cpu_s_per_gb'] for r in one):.2f} / "
              f"{med(r['client_cpu_s_per_gb'] for r in three):.2f} | {ratios} |")


if __name__ == "__main__":
    main()
