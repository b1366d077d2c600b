#!/usr/bin/env python3
"""A/B of Sluice builds on issue 17's cluster figures, with the kernel's replication floor
measured in the same sitting (decision 0012, session 19).

Runs `perf/cluster_bench.py --rounds 1` once per arm per turn, arms alternating, so a noisy
box hurts all alike; before each turn, `perf/replication_floor.c` (built to a temporary
file): a follower's floor (receive 32 KiB answers, one request in flight, pwrite each into a
fresh file) and a consumer's (sendfile of 1 MiB answers, one request in flight), in
CPU-seconds per GB.

Usage (with the Python that has confluent-kafka, e.g. .venv/bin/python):
       perf/cluster_ab.py --arm base=/tmp/sluice-base --arm new=target/release/sluice
                                        [--arm NAME=BIN[,CONFIG[,SERVE_ARG...]]] [--turns 3] [--duration 8] [--out F]
Prints one row per run and the medians per arm as Markdown.
"""

import argparse
import json
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile

import cluster_bench as cb

ROOT = pathlib.Path(__file__).resolve().parent.parent
FLOOR_MIB = 1024
FLOOR_FOLLOWER_CHUNK = 32 * 1024
FLOOR_CONSUMER_CHUNK = 1024 * 1024


def floor(tool, mode, chunk, workdir):
    out = subprocess.run([tool, mode, workdir, str(FLOOR_MIB), str(chunk), "-r"],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    fields = dict(re.findall(r"(\S+)=(\S+)", out))
    side = "receiver" if mode == "follower" else "sender"
    return float(fields[f"{side}_cpu_s_per_gb"])


def run_arm(binary, config, duration, workdir, serve_args=None):
    with tempfile.NamedTemporaryFile(suffix=".json", dir=workdir) as out:
        cmd = [sys.executable, str(ROOT / "perf" / "cluster_bench.py"), "--sluice", binary,
               "--rounds", "1", "--duration", str(duration), "--e2e-duration", str(duration),
               "--workdir", workdir, "--out", out.name]
        if config:
            cmd += ["--config", config]
        if serve_args is not None:  # else the nodes run as `sluice cluster local` starts them
            cmd += [f"--serve-arg={a}" for a in serve_args] or ["--serve-arg="]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {res.stderr.strip()}")
        raw = json.load(open(out.name))
    runs = {r["run"]: r for r in raw}
    rf1 = runs["rf1-acks1"]["report"]
    rf3 = runs["rf3-acks-all"]
    consume = runs["consume"]["report"]
    e2e = runs["e2e"]["report"]
    follower = statistics.mean(rf3["follower_cpu_s_per_gb"])
    return {
        "rf1": rf1["produced"]["mb_per_s"],
        "rf3": rf3["report"]["produced"]["mb_per_s"],
        "ratio": rf3["report"]["produced"]["mb_per_s"] / rf1["produced"]["mb_per_s"],
        "p99": rf3["report"]["latency"]["p99_ms"],
        "leader": rf3["report"]["broker"]["cpu_s_per_gb"],
        "follower": follower,
        "consume": consume["broker"]["cpu_s_per_gb"],
        "f/c": follower / consume["broker"]["cpu_s_per_gb"],
        "e2e_p99": e2e["latency"]["p99_ms"],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arm", action="append", required=True,
                    help="NAME=BIN[,CONFIG[,SERVE_ARG...]] (CONFIG may be empty; SERVE_ARGs "
                         "replace `sluice cluster local`'s, '-' for none)")
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--out")
    args = ap.parse_args()
    arms = [cb.parse_arm(a) for a in args.arm]

    tool = pathlib.Path(args.workdir) / "replication_floor_ab"
    subprocess.run(["cc", "-O2", "-o", str(tool), str(ROOT / "perf" / "replication_floor.c")],
                   check=True)
    rows = []
    cols = ["rf1", "rf3", "ratio", "p99", "leader", "follower", "consume", "f/c", "e2e_p99"]
    for turn in range(1, args.turns + 1):
        fl = floor(str(tool), "follower", FLOOR_FOLLOWER_CHUNK, args.workdir)
        fc = floor(str(tool), "consumer", FLOOR_CONSUMER_CHUNK, args.workdir)
        rows.append({"arm": "floor", "turn": turn, "follower": fl, "consume": fc,
                     "f/c": fl / fc})
        print(f"turn {turn} floor: follower {fl:.3f} consumer {fc:.3f} ({fl / fc:.2f}x)",
              file=sys.stderr)
        for name, binary, config, serve_args in arms:
            r = run_arm(binary, config, args.duration, args.workdir, serve_args)
            r.update({"arm": name, "turn": turn})
            rows.append(r)
            print(f"turn {turn} {name}: " + " ".join(f"{c}={r[c]:.2f}" for c in cols),
                  file=sys.stderr)
    print("| arm | turn | " + " | ".join(cols) + " |")
    print("|---|---:|" + "---:|" * len(cols))
    for r in rows:
        print(f"| {r['arm']} | {r['turn']} | " +
              " | ".join(f"{r[c]:.2f}" if c in r else "" for c in cols) + " |")
    for name in ["floor"] + [a[0] for a in arms]:
        mine = [r for r in rows if r["arm"] == name]
        print(f"| **{name}** | median | " +
              " | ".join(f"{statistics.median(r[c] for r in mine):.2f}" if c in mine[0] else ""
                         for c in cols) + " |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
