#!/usr/bin/env python3
"""The read_committed side of the transaction coordinator failover test
(tests/cluster_transactions.rs): after the coordinator was killed with one transaction open
and one decided, and the next coordinator aborted / completed them, a read_committed
confluent-kafka consumer must read exactly the committed records (--expected, each
"partition:value", compared as a multiset) and none of the aborted ones.
"""

import argparse

import roundtrip_common as rc

TIMEOUT_S = 30.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, required=True)
    ap.add_argument("--expected", nargs="*", default=[])
    args = ap.parse_args()
    seen = rc.read_partitions(
        args.bootstrap,
        args.topic,
        args.partitions,
        "read_committed",
        len(args.expected),
        TIMEOUT_S,
        lambda m: f"{m.partition()}:{m.value().decode()}",
    )
    rc.check(sorted(seen) == sorted(args.expected),
             f"read_committed reads exactly the {len(args.expected)} committed records "
             f"(read {len(seen)}: {sorted(seen)})")


if __name__ == "__main__":
    rc.run_main(main)
