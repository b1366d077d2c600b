#!/usr/bin/env python3
"""Restart time A/B (issue 18): starts each binary on a fresh copy of one data dir, polls
/v1/ready every 5 ms, SIGKILLs it, and prints the time to ready and the start-up log's
phase lines (admin listener, delay log replay, shard ready, sluice ready). Binaries are
alternated, three rounds, so a loaded box's noise falls on all of them alike.

  /work/main/.venv/bin/python perf/restart_time.py DATA_DIR BIN_A BIN_B ...

DATA_DIR: a broker's data dir, e.g. copied from a `perf/delay.py` run after a SIGKILL.
The copies go to /tmp/rab (removed and made again per start).

The floors are measured in the same rounds (issue 18: is a target out of reach?): the time
to spawn and reap `/bin/true` through the same `Popen` (process creation, exec, wait), and
each binary's start to ready on an EMPTY data dir (exec, threads, io_uring rings, listeners,
no recovery). The last line is a JSON summary with the medians.
"""
import json, os, re, shutil, signal, socket, subprocess, sys, time, urllib.request

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def one(binary, src, work):
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    if src is None:
        os.makedirs(os.path.join(work, "data"))
    else:
        shutil.copytree(src, os.path.join(work, "data"))
    subprocess.run(["sync"])
    port, admin = free_port(), free_port()
    log = open(os.path.join(work, "broker.log"), "wb")
    t0 = time.time()
    p = subprocess.Popen([binary, "serve", "--data-dir", os.path.join(work, "data"), "--listen",
                          f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}"],
                         stdout=log, stderr=log)
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/v1/ready", timeout=1) as r:
                if r.status == 200:
                    break
        except Exception:
            pass
        time.sleep(0.005)
    ready = time.time() - t0
    p.send_signal(signal.SIGKILL); p.wait()
    text = re.sub(r"\x1b\[[0-9;]*m", "", open(os.path.join(work, "broker.log")).read())
    phases = [l[11:] for l in text.splitlines()
              if any(k in l for k in ("replayed", "shard ready", "sluice ready", "admin listener",
                                          "partition recovered"))]
    return ready, phases

def spawn_true():
    t0 = time.time()
    subprocess.Popen(["/bin/true"]).wait()
    return time.time() - t0

src = sys.argv[1]
bins = sys.argv[2:]
times = {"/bin/true spawn+wait": []}
for rnd in range(3):
    times["/bin/true spawn+wait"].append(spawn_true() * 1000)
    for b in bins:
        name = os.path.basename(b)
        empty, _ = one(b, None, "/tmp/rab")
        times.setdefault(f"{name} empty dir", []).append(empty * 1000)
        ready, phases = one(b, src, "/tmp/rab")
        times.setdefault(f"{name} data dir", []).append(ready * 1000)
        print(f"{name} run {rnd}: ready after {ready*1000:.0f} ms (empty data dir: {empty*1000:.0f} ms)")
        for ph in phases:
            print("   ", ph[:170])
print(json.dumps({k: {"median_ms": round(sorted(v)[len(v) // 2], 1),
                      "all_ms": [round(x, 1) for x in v]} for k, v in times.items()}))
