#!/usr/bin/env python3
"""Metadata commit latency of a local Sluice cluster (issue 17, decision 0008).

Against a running cluster (`sluice cluster local --nodes 3 --dir DIR`), times N metadata
changes made through the admin API of one broker, each acknowledged only after the Raft
leader has the record on a majority of the voters' disks (fdatasync), and the broker that
was asked has applied it:
  * alter-config: a topic config (retention.ms), a record and nothing else (each node
    hands the new config to the partitions it leads);
  * create-topic: a 1-partition topic (the record, then the leader opens its partition).
Prints p50/p90/p99/max in milliseconds. Usage:
  perf/cluster_commit_latency.py --bootstrap 127.0.0.1:9092 [--count 200]
"""

import argparse
import time
import warnings

from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType


def percentiles(samples):
    samples = sorted(samples)
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    return f"p50 {pick(0.5):.2f}  p90 {pick(0.9):.2f}  p99 {pick(0.99):.2f}  max {samples[-1]:.2f} ms"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    admin.list_topics(timeout=10)

    target = f"lat-config-{int(time.time())}"
    admin.create_topics([NewTopic(target, num_partitions=1, replication_factor=1)])[target].result(timeout=30)
    altered = []
    for i in range(args.count):
        resource = ConfigResource(ResourceType.TOPIC, target, set_config={"retention.ms": str(3_600_000 + i)})
        started = time.perf_counter()
        admin.alter_configs([resource])[resource].result(timeout=30)
        altered.append((time.perf_counter() - started) * 1000)
    print(f"alter-config x{args.count}: {percentiles(altered)}")

    created = []
    prefix = f"lat-{int(time.time())}"
    for i in range(args.count):
        name = f"{prefix}-{i}"
        started = time.perf_counter()
        admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(timeout=30)
        created.append((time.perf_counter() - started) * 1000)
    print(f"create-topic x{args.count}: {percentiles(created)}")


if __name__ == "__main__":
    main()
