#!/usr/bin/env python3
"""The cluster benchmarks of issue 17, on a local 3-node cluster (one core per node).

Starts three `sluice serve` processes as `sluice cluster local` does (each a quorum voter and a
broker, `--cores 1`), on ports chosen at run time, and measures in one sitting, alternating the
two produce runs so that a noisy box hurts both alike:

  * rf1-acks1: RF=1 topic, `sluice bench produce --acks 1` (the single-copy baseline);
  * rf3-acks-all: RF=3 topic with min.insync.replicas=2 and `sluice.durability=none` (no
    fdatasync before the ack: durability by replication, Apache Kafka's default), acks=all.
    Also reads the CPU time each follower process spent while it ran: a follower's
    replication cost in CPU-seconds per GB replicated (fetch, append, its share of the
    leader's ack path is on the leader), and its threads' context switches per MB;
  * consume: `sluice bench consume` of the RF=3 topic from the beginning (catch-up): the
    leader's CPU-seconds per GB served to a consumer, to compare with the follower's cost;
  * e2e: `sluice bench e2e --rate 5000 --acks all` on another RF=3 topic: produce-to-consume
    latency percentiles.

Usage: perf/cluster_bench.py [--sluice target/release/sluice] [--rounds 2] [--duration 10]
                             [--config node.toml] [--serve-arg=ARG ...]
--config passes one TOML file to every node's `sluice serve --config` (e.g. `[log]
write_inline_max_bytes = 0` to A/B a broker setting with one binary). The nodes get the
arguments `sluice cluster local` of that binary gives them (`--no-pin-shards` since session
22: three one-shard nodes pinned to core 0 queued behind each other); --serve-arg replaces
them (`--serve-arg=` alone: none, i.e. pinned).
Prints a Markdown table (medians over rounds) and writes the raw reports as JSON with --out.
"""

import argparse
import json
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCH_TIMEOUT_S = 300
BENCH_ATTEMPTS = 3
READY_TIMEOUT_S = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def context_switches(pid):
    """Voluntary + involuntary context switches of every thread of a process: a follower's
    per-round wake-ups (receive, hand-offs, write completions), which its CPU time hides.
    Threads that exit between two readings take their counts with them (io-wq workers exit
    when idle), so a difference can come out low or negative; `perf/cluster_profile.py
    --switches` counts every switch on the box instead."""
    total = 0
    for status in pathlib.Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            for line in status.read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
        except OSError:  # a thread that ended between the listing and the read
            pass
    return total


def local_cluster_serve_args(sluice):
    """The `sluice serve` arguments `sluice cluster local` of this binary adds for sharing one
    host: `--no-pin-shards` where the binary has it (session 22); older binaries pinned
    every node's shard to core 0, and the bench then measures them as they ran."""
    res = subprocess.run([str(sluice), "serve", "--help"], capture_output=True, text=True,
                         timeout=30)
    return ["--no-pin-shards"] if "--no-pin-shards" in res.stdout else []


def parse_arm(spec):
    """An A/B arm given as NAME=BIN[,CONFIG[,SERVE_ARG...]]: (name, binary, config or None,
    serve_args or None). SERVE_ARGs replace what `sluice cluster local` adds; a lone "-"
    means none."""
    name, _, rest = spec.partition("=")
    binary, *extra = rest.split(",")
    config = extra[0] if extra else ""
    serve_args = None if len(extra) < 2 else [a for a in extra[1:] if a != "-"]
    return name, binary, config or None, serve_args


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class Cluster:
    def __init__(self, sluice, nodes, workdir, config=None, node_cores=None, serve_args=None):
        if serve_args is None:
            serve_args = local_cluster_serve_args(sluice)
        self.sluice = sluice
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="sluice-cluster-bench-", dir=workdir))
        self.kafka = [free_port() for _ in range(nodes)]
        self.controller = [free_port() for _ in range(nodes)]
        self.admin = [free_port() for _ in range(nodes)]
        voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(self.controller))
        self.procs = []
        for i in range(nodes):
            node_dir = self.dir / f"node-{i + 1}"
            node_dir.mkdir()
            log = open(node_dir / "sluice.log", "w")
            self.procs.append(subprocess.Popen([
                str(sluice), "serve", "--data-dir", str(node_dir / "data"),
                "--listen", f"127.0.0.1:{self.kafka[i]}",
                "--admin-listen", f"127.0.0.1:{self.admin[i]}",
                "--cores", node_cores[i % len(node_cores)] if node_cores else "1",
                "--node-id", str(i + 1),
                "--controller-quorum-voters", voters,
                "--controller-listen", f"127.0.0.1:{self.controller[i]}",
                *(["--config", str(config)] if config else []),
                *serve_args,
            ], stdout=log, stderr=subprocess.STDOUT))

    def wait_ready(self):
        """Every node serving (/v1/ready) and registered with the quorum (placement needs it)."""
        deadline = time.time() + READY_TIMEOUT_S
        nodes = len(self.procs)
        for port in self.admin:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/ready", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.time() > deadline:
                    raise RuntimeError(f"node on admin port {port} not ready in {READY_TIMEOUT_S}s")
                time.sleep(0.2)
        from confluent_kafka.admin import AdminClient
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        while True:
            try:
                if len(admin.list_topics(timeout=10).brokers) >= nodes:
                    break
            except Exception:  # librdkafka: "partial response" while none are registered
                pass
            if time.time() > deadline:
                raise RuntimeError(f"fewer than {nodes} brokers registered in {READY_TIMEOUT_S}s")
            time.sleep(0.2)

    @property
    def bootstrap(self):
        return ",".join(f"127.0.0.1:{p}" for p in self.kafka)

    def pid_of_node(self, node_id):
        return self.procs[node_id - 1].pid

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def sluice(cluster, *args, timeout=60):
    res = subprocess.run([str(cluster.sluice), *args], capture_output=True, text=True,
                         timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"sluice {' '.join(args)}: {res.stderr.strip() or res.stdout.strip()}")
    return res.stdout


def create_topic(cluster, name, rf, configs, partitions=1):
    args = ["topic", "create", name, "--bootstrap-server", cluster.bootstrap,
            "--partitions", str(partitions), "--replication-factor", str(rf)]
    for c in configs:
        args += ["--config", c]
    sluice(cluster, *args)


def delete_topic(cluster, name):
    """Deletes a measured topic as soon as its runs are done, so the next run starts with the page
    cache the first one had. On this VM (free page reporting to the host) a cluster that keeps
    every run's gigabytes cached measured RF=3 acks=all at 71-103 MB/s from the fourth 6 s run
    on, against 162-181 MB/s with the cache dropped before each run (session 32, perf/RESULTS.md):
    the later rounds measured the box, not the broker."""
    sluice(cluster, "topic", "delete", name, "--bootstrap-server", cluster.bootstrap)


def leader_and_replicas(cluster, topic):
    """(leader, replicas, isr) of partition 0, from Metadata via confluent-kafka."""
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    deadline = time.time() + 30
    while time.time() < deadline:
        md = admin.list_topics(topic, timeout=10)
        t = md.topics.get(topic)
        if t is not None and t.error is None and 0 in t.partitions:
            p = t.partitions[0]
            if p.leader >= 0 and len(p.isrs) == len(p.replicas):
                return p.leader, list(p.replicas), list(p.isrs)
        time.sleep(0.2)
    raise RuntimeError(f"{topic}: no leader with a full ISR within 30 s")


def bench(cluster, mode, topic, pid, extra):
    cmd = [str(cluster.sluice), "bench", mode, "--bootstrap-server", cluster.bootstrap,
           "--topic", topic, "--json", "--broker-pid", str(pid), *extra]
    # A node may answer LEADER_NOT_AVAILABLE for a topic created a moment ago while it is still
    # applying the metadata log (another node's Metadata already names it the leader); Kafka's
    # clients retry that, the bench stops on it, so the run is started again.
    for attempt in range(BENCH_ATTEMPTS):
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S)
        if res.returncode == 0:
            return json.loads(res.stdout)
        if "LEADER_NOT_AVAILABLE" not in res.stderr or attempt + 1 == BENCH_ATTEMPTS:
            raise RuntimeError(f"{' '.join(cmd)}: {res.stderr.strip()}")
        time.sleep(1.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", default=str(ROOT / "target" / "release" / "sluice"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=int, default=10, help="seconds per produce run")
    ap.add_argument("--e2e-duration", type=int, default=15)
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--out", help="write every report to this JSON file")
    ap.add_argument("--config", help="a TOML file every node's `sluice serve` reads")
    ap.add_argument("--serve-arg", action="append",
                    help="extra `sluice serve` arguments for every node instead of those "
                         "`sluice cluster local` adds (--serve-arg= for none: pinned shards)")
    args = ap.parse_args()

    rows = {"rf1-acks1": [], "rf3-acks-all": [], "follower": [], "follower-switches": [],
            "consume": [], "e2e": []}
    raw = []
    common = ["--record-size", "1024", "--batch-size", "16384", "--max-in-flight", "5"]
    serve_args = None if args.serve_arg is None else [a for a in args.serve_arg if a]
    cluster = Cluster(pathlib.Path(args.sluice), 3, args.workdir, args.config,
                      serve_args=serve_args)
    try:
        cluster.wait_ready()
        for rnd in range(args.rounds):
            rf1, rf3, e2e = f"rf1-{rnd}", f"rf3-{rnd}", f"e2e-{rnd}"
            create_topic(cluster, rf1, 1, [])
            rf3_configs = ["min.insync.replicas=2", "sluice.durability=none"]
            create_topic(cluster, rf3, 3, rf3_configs)
            create_topic(cluster, e2e, 3, rf3_configs)

            leader, _, _ = leader_and_replicas(cluster, rf1)
            r = bench(cluster, "produce", rf1, cluster.pid_of_node(leader),
                      common + ["--acks", "1", "--duration", f"{args.duration}s"])
            rows["rf1-acks1"].append(r)
            raw.append({"run": "rf1-acks1", "round": rnd, "report": r})
            delete_topic(cluster, rf1)

            leader, replicas, _ = leader_and_replicas(cluster, rf3)
            followers = [n for n in replicas if n != leader]
            before = {n: cpu_seconds(cluster.pid_of_node(n)) for n in followers}
            switches_before = {n: context_switches(cluster.pid_of_node(n)) for n in followers}
            r = bench(cluster, "produce", rf3, cluster.pid_of_node(leader),
                      common + ["--acks", "all", "--duration", f"{args.duration}s"])
            # Let the followers finish fetching the tail before reading their CPU time.
            time.sleep(1.0)
            gb = r["produced"]["batch_bytes"] / 1e9
            follower_cost = [(cpu_seconds(cluster.pid_of_node(n)) - before[n]) / gb
                             for n in followers]
            follower_switches = [(context_switches(cluster.pid_of_node(n)) - switches_before[n])
                                 / (gb * 1000) for n in followers]
            rows["rf3-acks-all"].append(r)
            rows["follower"].append(statistics.mean(follower_cost))
            rows["follower-switches"].append(statistics.mean(follower_switches))
            raw.append({"run": "rf3-acks-all", "round": rnd, "report": r,
                        "follower_cpu_s_per_gb": follower_cost,
                        "follower_switches_per_mb": follower_switches})

            r = bench(cluster, "consume", rf3, cluster.pid_of_node(leader), [])
            rows["consume"].append(r)
            raw.append({"run": "consume", "round": rnd, "report": r})
            delete_topic(cluster, rf3)

            leader, _, _ = leader_and_replicas(cluster, e2e)
            r = bench(cluster, "e2e", e2e, cluster.pid_of_node(leader),
                      ["--record-size", "1024", "--rate", "5000", "--acks", "all",
                       "--duration", f"{args.e2e_duration}s"])
            rows["e2e"].append(r)
            raw.append({"run": "e2e", "round": rnd, "report": r})
            delete_topic(cluster, e2e)
            print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        cluster.stop()

    med = statistics.median
    def produced(rs, key):
        return med(r["produced"][key] for r in rs)
    def lat(rs, key):
        return med(r["latency"][key] for r in rs)
    def broker_cpu(rs):
        return med(r["broker"]["cpu_s_per_gb"] for r in rs)

    rf1_mb, rf3_mb = produced(rows["rf1-acks1"], "mb_per_s"), produced(rows["rf3-acks-all"], "mb_per_s")
    consume_cpu = broker_cpu(rows["consume"])
    follower_cpu = med(rows["follower"])
    print(f"\nMedians over {args.rounds} rounds, 3 nodes x 1 core on one box, 1 KiB records, "
          "16 KiB batches, 5 in flight.\n")
    print("| run | MB/s | p99 ms | p99.9 ms | leader CPU-s/GB |")
    print("|---|---:|---:|---:|---:|")
    for name in ("rf1-acks1", "rf3-acks-all"):
        rs = rows[name]
        print(f"| {name} | {produced(rs, 'mb_per_s'):.1f} | {lat(rs, 'p99_ms'):.2f} | "
              f"{lat(rs, 'p999_ms'):.2f} | {broker_cpu(rs):.2f} |")
    cons = rows["consume"]
    print(f"| consume (catch-up, leader) | {med(r['consumed']['mb_per_s'] for r in cons):.1f} | "
          f"{lat(cons, 'p99_ms'):.2f} | {lat(cons, 'p999_ms'):.2f} | {consume_cpu:.2f} |")
    e = rows["e2e"]
    print(f"| e2e 5,000 rec/s RF=3 acks=all | {med(r['consumed']['mb_per_s'] for r in e):.1f} | "
          f"{lat(e, 'p99_ms'):.2f} | {lat(e, 'p999_ms'):.2f} | {broker_cpu(e):.2f} |")
    print(f"\nRF=3 acks=all / RF=1 acks=1 throughput: {rf3_mb / rf1_mb:.2f} (target >= 0.5)")
    print(f"follower CPU-s per GB replicated: {follower_cpu:.2f}; leader CPU-s per GB served to "
          f"a consumer: {consume_cpu:.2f}; ratio {follower_cpu / consume_cpu:.2f} (target <= 1.5)")
    print(f"follower context switches per MB replicated: {med(rows['follower-switches']):.0f}")
    print(f"e2e p99 at 5,000 records/s on RF=3: {lat(e, 'p99_ms'):.2f} ms (target < 5)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(raw, f, indent=1)


if __name__ == "__main__":
    main()
