#!/usr/bin/env python3
"""OffsetCommit latency (issue 17, decision 0018).

Times N synchronous OffsetCommits of one partition by a confluent-kafka consumer that
commits explicit offsets without joining the group (a standalone commit, as admin tools
make): against a cluster each is answered once the metadata quorum has the record on a
majority of disks and the coordinator applied it; against a single node once the group's
own file is fdatasync'ed. Also OffsetFetch (committed()) latency, which is local either way.
Prints p50/p90/p99/max in milliseconds. Usage:
  perf/offset_commit_latency.py --bootstrap 127.0.0.1:9092 [--count 500]
"""

import argparse
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster_commit_latency import percentiles


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--replication-factor", type=int, default=1)
    args = parser.parse_args()
    topic = f"commit-lat-{int(time.time())}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=args.replication_factor)])[
        topic
    ].result(timeout=30)
    time.sleep(1)
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"{topic}-group"})
    tp = lambda offset: [TopicPartition(topic, 0, offset)]
    consumer.commit(offsets=tp(0), asynchronous=False)
    commits, fetches = [], []
    for i in range(1, args.count + 1):
        started = time.perf_counter()
        consumer.commit(offsets=tp(i), asynchronous=False)
        commits.append((time.perf_counter() - started) * 1000)
        if i % 10 == 0:
            started = time.perf_counter()
            got = consumer.committed(tp(0), timeout=10)[0].offset
            fetches.append((time.perf_counter() - started) * 1000)
            assert got == i, (got, i)
    print(f"offset-commit x{args.count}: {percentiles(commits)}")
    print(f"offset-fetch x{len(fetches)}: {percentiles(fetches)}")
    consumer.close()


if __name__ == "__main__":
    main()
