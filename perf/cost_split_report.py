# cost_split_report.py SAMPLES: broker CPU by thread class and CPU-s/GB per third of a run, with the
# reclaim counters (perf/cost_split.sh).
import json, sys, re, collections
rows = [json.loads(l) for l in open(sys.argv[1])]
tick = 100.0
def cls(c):
    if c.startswith("iou-wrk"): return "io-wq"
    if c.startswith("iou-sqp"): return "sqpoll"
    return c
def agg(s):
    a = collections.Counter()
    for tid,(comm,u,st,mn,mj) in s["threads"].items():
        a[cls(comm)+".u"] += u; a[cls(comm)+".s"] += st
    return a
n = len(rows)
print("samples", n, "proc total s", (rows[-1]["proc"][0]+rows[-1]["proc"][1]-rows[0]["proc"][0]-rows[0]["proc"][1])/tick)
# phases by thirds of the run
idx = [0, n//3, 2*n//3, n-1]
for a,b in zip(idx, idx[1:]):
    A, B = rows[a], rows[b]
    dt = B["t"]-A["t"]; gb = (B.get("bytes",0)-A.get("bytes",0))/1e9
    pa = (B["proc"][0]-A["proc"][0])/tick, (B["proc"][1]-A["proc"][1])/tick
    ca, cb = agg(A), agg(B)
    keys = sorted(set(ca)|set(cb))
    d = {k: (cb[k]-ca[k])/tick for k in keys if cb[k]-ca[k] != 0}
    vm = {k: B["vm"][k]-A["vm"][k] for k in B["vm"] if not k.startswith("nr_")}
    print(f"[{a}-{b}] {dt:.1f}s {gb:.2f} GB cpu/GB {(pa[0]+pa[1])/max(gb,1e-9):.3f} proc u {pa[0]:.2f} s {pa[1]:.2f}  threads(live) {d}")
    print("   vm", vm, "dirty", B["vm"]["nr_dirty"], "wb", B["vm"]["nr_writeback"], "free", B["vm"]["nr_free_pages"])
