#!/usr/bin/env python3
"""Draws the recall-vs-throughput plot of a pinak-bench ef_search sweep.

usage: plot_recall_qps.py SWEEP.csv OUT.png "title"

SWEEP.csv is written by pinak-bench (.tools/bench/recall-qps-<size>.csv): one row per
(series, ef_search) with the measured req/s, p99 and recall@10. scripts/bench calls this
with the venv's matplotlib after a full run.
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    src, out, title = sys.argv[1:]
    series: dict[str, list[tuple[int, float, float]]] = {}
    with open(src, newline="") as f:
        for row in csv.DictReader(f):
            series.setdefault(row["series"], []).append((int(row["ef_search"]), float(row["qps"]), float(row["recall"])))
    if not series:
        print(f"plot_recall_qps: {src} holds no measurements", file=sys.stderr)
        return 1
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    for (name, points), marker in zip(series.items(), "osD^v"):
        points.sort()
        ax.plot([p[2] for p in points], [p[1] for p in points], marker=marker, label=name)
        for ef, qps, rec in points:
            ax.annotate(f"ef {ef}", (rec, qps), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("recall@10 (against exact search)")
    ax.set_ylabel("requests/s at concurrency 8")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(out)
    print(f"plot written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
