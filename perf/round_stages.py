#!/usr/bin/env python3
"""Where one acks=all round's wall time goes (issue 17, session 25).

Starts the 3-node cluster of perf/cluster_bench.py with `SLUICE_STAGE_TRACE` set (each broker
thread writes timestamped marks, `src/metrics/stage_trace.rs`), runs one RF=3 acks=all produce
(1 KiB records, 16 KiB batches, 5 in flight, min.insync.replicas=2, durability none), stops
the cluster and lines the three brokers' marks up on CLOCK_MONOTONIC. For every acknowledged
produce request (end offset E) and every follower f:

  write      leader: request decoded -> its append written (inline)
  to_answer  leader: written -> f's fetch read the records (parked: woken by the append;
             else f's next fetch had to arrive first: "busy")
  out        leader's read -> f received the whole answer (answer framed and sent, loopback,
             f's wake-up and receive)
  f_write    f: answer received -> CRC and inline write done
  back       f: written -> its next fetch (offset >= E) recorded at the leader
  hw_to_ack  leader: the last in-sync follower's fetch (HW >= E) -> the produce answered

with median / p90 microseconds and, per stage, the shard sleeps (blocking ring waits, i.e.
wake-ups) that ended inside it on the process the stage ends on.

Usage: perf/round_stages.py --sluice BIN [--duration 5] [--in-flight 5] [--keep DIR]
"""

import argparse
import bisect
import collections
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

import cluster_bench as cb


def load(dirpath, pid_to_node):
    """{node: {event: [(ns, key, a, b, c, tid)]}} sorted by ns."""
    ev = collections.defaultdict(lambda: collections.defaultdict(list))
    for f in pathlib.Path(dirpath).glob("trace.*"):
        _, pid, tid = f.name.split(".")
        node = pid_to_node.get(int(pid), 0)  # 0: the bench client
        for line in f.read_text().splitlines():
            parts = line.split()
            if len(parts) != 6:
                continue  # a line cut by the kill
            ns, name, key, a, b, c = parts
            ev[node][name].append((int(ns), int(key), int(a), int(b), int(c), int(tid)))
    for node in ev.values():
        for lst in node.values():
            lst.sort()
    return ev


def first_after(lst, t, pred):
    i = bisect.bisect_left(lst, (t,))
    for e in lst[i:]:
        if pred(e):
            return e
    return None


def last_before(lst, t, pred):
    i = bisect.bisect_left(lst, (t,))
    for e in reversed(lst[:i]):
        if pred(e):
            return e
    return None


def sleeps_between(sl, t0, t1):
    """Blocking waits that ended in (t0, t1]: a sleep mark is (from, duration)."""
    ends = sl  # sorted list of end times
    return bisect.bisect_right(ends, t1) - bisect.bisect_right(ends, t0)


def analyse(ev):
    leader = max(ev, key=lambda n: len(ev[n]["pw"]))
    key = collections.Counter(e[1] for e in ev[leader]["pw"]).most_common(1)[0][0]
    followers = sorted({e[2] for e in ev[leader]["fi"] if e[1] == key})
    sleep_ends = {n: sorted(e[2] + e[3] for e in ev[n]["sl"]) for n in ev}
    L = ev[leader]
    fi = {f: [e for e in L["fi"] if e[1] == key and e[2] == f] for f in followers}
    fr = {f: [e for e in L["fr"] if e[1] == key and e[2] == f and e[3] > 0] for f in followers}
    pa = {e[2]: e[0] for e in L["pa"] if e[1] == key}
    # Fetch answers written by the leader: ("rs" of api 1), by their request's read time.
    fetch_done = [e for e in L["rs"] if e[1] == 1]
    fetch_writes = sorted((e[2], e[0]) for e in fetch_done)
    fetch_done = [(e[0],) for e in fetch_done]
    stages = collections.defaultdict(list)
    wakes = collections.defaultdict(list)
    kinds = collections.Counter()
    pws = [e for e in L["pw"] if e[1] == key]
    # Skip the first and last second: start-up and the tail.
    t_lo, t_hi = pws[0][0] + 1e9, pws[-1][0] - 1e9
    for (t_w, _, end, t0, _, _) in pws:
        if not (t_lo <= t_w <= t_hi) or end not in pa:
            continue
        t_ack = pa[end]
        stages["total"].append(t_ack - t0)
        stages["write"].append(t_w - t0)
        backs = []
        for f in followers:
            ans = first_after(fr[f], t_w, lambda e: e[4] >= end)
            if ans is None:
                break
            # A parked fetch woken by the append reads again, which marks "fi" again with
            # the same offset: parked = an earlier mark of the same fetch before the write.
            fetch = last_before(fi[f], ans[0] + 1, lambda e: True)
            prev = fetch and last_before(fi[f], fetch[0], lambda e: True)
            parked = bool(prev) and prev[3] == fetch[3] and prev[0] < t_w
            kinds["parked" if parked else "busy"] += 1
            if parked:
                stages["to_answer(parked)"].append(ans[0] - t_w)
                wakes["to_answer(parked)"].append(sleeps_between(sleep_ends[leader], t_w, ans[0]))
            else:
                stages["to_answer(busy)"].append(ans[0] - t_w)
                stages["  of which fetch in -> read"].append(ans[0] - fetch[0])
                wakes["to_answer(busy)"].append(sleeps_between(sleep_ends[leader], t_w, ans[0]))
            F = ev[f]
            fw = first_after(F["fw"], ans[0], lambda e: e[1] == key and e[2] >= end)
            if fw is None:
                break
            fv = last_before(F["fv"], fw[0], lambda e: True)
            if fv is None or fv[0] < ans[0]:
                break
            stages["out"].append(fv[0] - ans[0])
            first_fi = prev if parked else fetch
            sent = last_before(fetch_writes, first_fi[0] + 1, lambda e: True)
            f1 = last_before(F["f1"], fv[0] + 1, lambda e: True)
            if sent is not None and f1 is not None:
                done = first_after(fetch_done, sent[0], lambda e: True)
                if done is not None and ans[0] <= done[0] <= f1[0]:
                    stages["  out: leader read -> answer written"].append(done[0] - ans[0])
                    stages["  out: written -> follower's first receive"].append(f1[0] - done[0])
                    stages["  out: first receive -> decoded"].append(fv[0] - f1[0])
            wakes["out"].append(sleeps_between(sleep_ends[f], ans[0], fv[0]))
            stages["f_write"].append(fw[0] - fv[0])
            wakes["f_write"].append(sleeps_between(sleep_ends[f], fv[0], fw[0]))
            back = first_after(fi[f], fw[0], lambda e: e[3] >= end)
            if back is None:
                break
            stages["back"].append(back[0] - fw[0])
            wakes["back"].append(sleeps_between(sleep_ends[leader], fw[0], back[0]))
            backs.append(back[0])
        else:
            if backs:
                t_hw = max(backs)
                stages["hw_to_ack"].append(t_ack - t_hw)
                if t_ack >= t_hw:  # else a later answer of the same follower was matched
                    wakes["hw_to_ack"].append(sleeps_between(sleep_ends[leader], t_hw, t_ack))
                stages["first_back_to_last_back"].append(t_hw - min(backs))
                wakes["total"].append(sleeps_between(sleep_ends[leader], t0, t_ack))
    produce_stages(ev, leader, key, stages)
    return leader, followers, stages, wakes, kinds


def produce_stages(ev, leader, key, stages):
    """The producer's side, lined up by order (one connection, one partition, in order):
    the n-th send, the n-th produce read, append, acknowledgement, answer written, answer
    read by the client."""
    C, L = ev.get(0, {}), ev[leader]
    cs, ca = C.get("cs", []), C.get("ca", [])
    rs = [e for e in L["rs"] if e[1] == 0]
    pw = [e for e in L["pw"] if e[1] == key]
    pa = [e for e in L["pa"] if e[1] == key]
    n = min(len(cs), len(ca), len(rs), len(pw), len(pa))
    if n == 0 or len({len(cs), len(rs), len(pw)}) != 1:
        print(f"producer marks not aligned: cs {len(cs)} ca {len(ca)} rs {len(rs)} "
              f"pw {len(pw)} pa {len(pa)}")
        return
    lo, hi = n // 7, n - n // 7
    for i in range(lo, hi):
        read, started, handled = rs[i][2], rs[i][3], rs[i][4]
        stages["c: sent -> leader read it"].append(read - cs[i][0])
        stages["c: read -> dispatched"].append(started - read)
        stages["c: dispatched -> append start"].append(pw[i][3] - started)
        stages["c: append start -> acked (write + replication)"].append(pa[i][0] - pw[i][3])
        stages["c: acked -> answer written"].append(rs[i][0] - pa[i][0])
        stages["c: answer written -> client read it"].append(ca[i][0] - rs[i][0])
        stages["c: client round trip"].append(ca[i][0] - cs[i][0])


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def report(stages, wakes, kinds):
    print(f"fetches that carried a produce: {dict(kinds)}")
    print("| stage | n | median µs | p90 µs | shard wake-ups in it (mean) |")
    print("|---|---:|---:|---:|---:|")
    order = ["write", "to_answer(parked)", "to_answer(busy)", "  of which fetch in -> read", "out", "f_write", "back",
             "first_back_to_last_back", "hw_to_ack", "total"]
    order = order[:5] + [k for k in stages if k.startswith("  out:")] + order[5:]
    order += [k for k in stages if k.startswith("c:")]
    for s in order:
        xs = stages.get(s)
        if not xs:
            continue
        w = wakes.get(s)
        wtxt = f"{statistics.mean(w):.2f}" if w else ""
        print(f"| {s} | {len(xs)} | {statistics.median(xs) / 1e3:.1f} | "
              f"{pct(xs, 0.9) / 1e3:.1f} | {wtxt} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--in-flight", default="5")
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--keep", help="copy the trace files here")
    ap.add_argument("--analyse", help="only analyse trace files kept in this directory "
                    "(node of each pid from its nodes.txt)")
    args = ap.parse_args()
    if args.analyse:
        pids = pathlib.Path(args.analyse, "nodes.txt").read_text().split()
        ev = load(args.analyse, {int(p): i + 1 for i, p in enumerate(pids)})
        report(*analyse(ev)[2:])
        return
    tdir = tempfile.mkdtemp(prefix="stage-trace-", dir=args.workdir)
    os.environ["SLUICE_STAGE_TRACE"] = f"{tdir}/trace"
    cluster = cb.Cluster(pathlib.Path(args.sluice), 3, args.workdir)
    pid_to_node = {p.pid: i + 1 for i, p in enumerate(cluster.procs)}
    pathlib.Path(tdir, "nodes.txt").write_text(" ".join(str(p.pid) for p in cluster.procs))
    try:
        cluster.wait_ready()
        cb.create_topic(cluster, "stages", 3, ["min.insync.replicas=2",
                                               "sluice.durability=none"])
        leader, _, _ = cb.leader_and_replicas(cluster, "stages")
        r = cb.bench(cluster, "produce", "stages", cluster.pid_of_node(leader),
                     ["--record-size", "1024", "--batch-size", "16384", "--max-in-flight",
                      args.in_flight, "--acks", "all", "--duration", f"{args.duration}s"])
        print(f"RF=3 acks=all {r['produced']['mb_per_s']:.1f} MB/s, "
              f"p50 {r['latency']['p50_ms']:.2f} ms, p99 {r['latency']['p99_ms']:.2f} ms")
        time.sleep(1.5)  # a maintenance tick flushes every shard's marks
    finally:
        cluster.stop()
    ev = load(tdir, pid_to_node)
    leader, followers, stages, wakes, kinds = analyse(ev)
    print(f"leader node {leader}, followers {followers}")
    report(stages, wakes, kinds)
    if args.keep:
        shutil.copytree(tdir, args.keep, dirs_exist_ok=True)
    shutil.rmtree(tdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
