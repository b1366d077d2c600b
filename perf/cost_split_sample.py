# cost_split_sample.py PID OUT: every 1 s, per-thread utime/stime ticks and a few vmstat counters, until PID exits.
import os, sys, time, json
pid, out = int(sys.argv[1]), sys.argv[2]
ddir = sys.argv[3] if len(sys.argv) > 3 else None
def dsize():
    t = 0
    if ddir:
        for r, _, fs in os.walk(ddir):
            for f in fs:
                if f.endswith(".log"):
                    try: t += os.stat(os.path.join(r, f)).st_size
                    except OSError: pass
    return t
VM = ("pgscan_kswapd","pgscan_direct","pgsteal_direct","pgsteal_kswapd","allocstall_normal","allocstall_movable","nr_dirty","nr_writeback","nr_free_pages","pgfault","pgmajfault","nr_dirtied","nr_written")
def snap():
    th = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                s = open(f"/proc/{pid}/task/{tid}/stat").read()
            except OSError:
                continue
            comm = s[s.index("(")+1:s.rindex(")")]
            f = s[s.rindex(")")+2:].split()
            th[tid] = (comm, int(f[11]), int(f[12]), int(f[7]), int(f[9]))  # utime stime minflt majflt
        p = open(f"/proc/{pid}/stat").read(); f = p[p.rindex(")")+2:].split()
        proc = (int(f[11]), int(f[12]))
        st = open(f"/proc/{pid}/status").read()
        vcs = [l for l in st.splitlines() if "ctxt" in l]
    except OSError:
        return None
    vm = {}
    for l in open("/proc/vmstat"):
        k, v = l.split()
        if k in VM: vm[k] = int(v)
    return {"bytes": dsize(), "t": time.time(), "threads": th, "proc": proc, "vm": vm, "ctx": vcs}
with open(out, "w") as o:
    while True:
        s = snap()
        if s is None: break
        o.write(json.dumps(s) + "\n"); o.flush()
        time.sleep(1)
