#!/usr/bin/env python3
"""Plots perf/scale.py's --json rows (issue 19 point 3): idle RSS, start-up time (restart to
ready after a clean stop and after SIGKILL) and produce CPU per GB against the partition
count, on log-log axes with a dashed "linear from the first point" line in each panel, so
cost that grows linearly or slower sits on or under it.

Needs matplotlib, which the tests do not: use a separate venv, e.g.
  python3 -m venv /tmp/plotvenv && /tmp/plotvenv/bin/pip install matplotlib
  /tmp/plotvenv/bin/python perf/scale_plot.py ROWS.json perf/results/scale.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    rows = sorted(json.load(open(sys.argv[1])), key=lambda r: r["partitions"])
    out = sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else ""
    n = [r["partitions"] for r in rows]
    panels = [
        ("idle RSS (MiB)", [("idle RSS", [r["idle_rss_mib"] for r in rows])]),
        ("restart to ready (s)", [("after clean stop", [r["restart_clean_s"] for r in rows]),
                                  ("after SIGKILL", [r["restart_sigkill_s"] for r in rows])]),
        ("broker CPU-s per GB produced", [("produce CPU-s/GB",
                                           [r["produce_cpu_s_per_gb"] for r in rows])]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, (label, series) in zip(axes, panels):
        for name, ys in series:
            ax.plot(n, ys, marker="o", label=name)
            linear = [ys[0] * x / n[0] for x in n]
            ax.plot(n, linear, linestyle="--", color="grey", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("partitions")
        ax.set_ylabel(label)
        ax.grid(True, which="both", linewidth=0.3)
        ax.legend(fontsize=8, title="dashed: linear", title_fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
