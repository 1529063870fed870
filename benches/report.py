#!/usr/bin/env python3
"""Regenerates the tables and plots of docs/BENCHMARKS.md from benchmark output.

Reads target/bench-results/{clear,stall}.csv (benches/clear_latency.rs),
storm.csv (benches/clear_storm.rs), memory.csv and churn.csv (benches/memory.rs) and criterion's
estimates under target/criterion (benches/throughput.rs); writes
docs/bench/tables.md and the SVG plots in docs/bench/. Python 3 standard library
only.

    cargo bench            # every benchmark; or one: cargo bench -p atomic-map-benches --bench memory
    python3 benches/report.py
"""

import csv
import json
import math
import os
import sys
from collections import defaultdict
from xml.sax.saxutils import escape

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "target", "bench-results")
CRITERION = os.path.join(ROOT, "target", "criterion")
OUT = os.path.join(ROOT, "docs", "bench")
OURS = "AtomicMap (pinned get)"
COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]


def fmt_ns(ns):
    ns = float(ns)
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_ratio(x):
    return f"{x:,.0f}×" if x >= 100 else f"{x:.2g}×"


def read_csv(name):
    path = os.path.join(RESULTS, name)
    if not os.path.exists(path):
        sys.exit(f"missing {path}: run `cargo bench -p atomic-map-benches --bench clear_latency` first")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def label(map_name):
    return "AtomicMap" if map_name == OURS else map_name


def short(map_name):
    """A label short enough for a plot."""
    return label(map_name).replace("ArcSwap<HashMap> (copy-on-write)", "ArcSwap (COW)")


# ---------------------------------------------------------------- tables

def clear_tables(rows):
    out = []
    by = defaultdict(dict)
    for r in rows:
        by[(r["key"], int(r["readers"]))][(r["map"], int(r["size"]))] = r
    for (key, readers) in sorted(by):
        cells = by[(key, readers)]
        sizes = sorted({s for (_, s) in cells})
        maps = list(dict.fromkeys(m for (m, _) in cells))
        out.append(f"\n#### Clear latency, `{key}` keys, {readers} reader thread(s): median (p99)\n")
        out.append("| map | " + " | ".join(f"{s:,}" for s in sizes) + f" | vs AtomicMap at {sizes[-1]:,} |")
        out.append("|---" * (len(sizes) + 2) + "|")
        ours = cells.get((OURS, sizes[-1]))
        for m in maps:
            line = [label(m)]
            for s in sizes:
                r = cells.get((m, s))
                line.append(f"{fmt_ns(r['median_ns'])} ({fmt_ns(r['p99_ns'])})" if r else "")
            r = cells.get((m, sizes[-1]))
            if r and ours and m != OURS:
                line.append(fmt_ratio(float(r["median_ns"]) / float(ours["median_ns"])))
            else:
                line.append("")
            out.append("| " + " | ".join(line) + " |")
        lo, hi = cells.get((OURS, sizes[0])), ours
        if lo and hi:
            out.append(
                f"\nAtomicMap flatness: median at {sizes[-1]:,} / at {sizes[0]:,} = "
                f"{float(hi['median_ns']) / float(lo['median_ns']):.2f}×; reclaim (teardown on the "
                f"reclaimer, after the call returned) at {sizes[-1]:,}: median {fmt_ns(hi['reclaim_median_ns'])}, "
                f"max {fmt_ns(hi['reclaim_max_ns'])}."
            )
    return out


def stall_tables(rows):
    out = []
    sizes = sorted({int(r["size"]) for r in rows})
    top = sizes[-1]
    by = defaultdict(list)
    for r in rows:
        if int(r["size"]) == top:
            by[(r["key"], int(r["readers"]))].append(r)
    for (key, readers) in sorted(by):
        out.append(f"\n#### Readers' get latency around clears, {top:,} `{key}` entries, {readers} reader thread(s)\n")
        out.append("| map | window | gets | p50 | p99 | p99.9 | max | gets > 100 µs |")
        out.append("|---|---|---|---|---|---|---|---|")
        for r in by[(key, readers)]:
            out.append(
                f"| {label(r['map'])} | {r['window']} | {int(r['gets']):,} | {fmt_ns(r['p50_ns'])} | "
                f"{fmt_ns(r['p99_ns'])} | {fmt_ns(r['p999_ns'])} | {fmt_ns(r['max_ns'])} | {int(r['slow_gets']):,} |"
            )
    return out


def fmt_mib(b):
    return f"{float(b) / 2**20:,.1f} MiB"


def memory_table(rows):
    out = ["| key | map | bytes per entry | RSS filled | after clear | after clear + malloc_trim |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        base = float(r["rss_before"])
        out.append(
            f"| {r['key']} | {label(r['map'])} | {float(r['bytes_per_entry']):.0f} | "
            f"{fmt_mib(float(r['rss_filled']) - base)} | {fmt_mib(float(r['rss_after_clear']) - base)} | "
            f"{fmt_mib(float(r['rss_after_trim']) - base)} |")
    out.append(f"\nRSS figures are above the level before the fill ({int(rows[0]['entries']):,} entries).")
    return out


def churn_table(rows):
    out = ["| key | map | bytes per entry, filled | values replaced | in | bytes per entry after | after / filled |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        filled, churned = float(r["bytes_per_entry"]), float(r["bytes_per_entry_churned"])
        out.append(
            f"| {r['key']} | {label(r['map'])} | {filled:.0f} | {int(r['replaced']):,} | {float(r['seconds']):.1f} s | "
            f"{churned:.0f} | {churned / filled:.2f}× |")
    out.append(f"\nRSS above the level before the fill of {int(rows[0]['entries']):,} entries, "
               "then after one thread replaced the values of random keys (at most for 3 s).")
    return out


def storm_table(rows):
    out = ["| map | reads/s | writes/s | clears/s | peak retired generations | peak pending values | single-generation footprint | peak RSS | peak RSS / footprint |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {label(r['map'])} | {float(r['reads_per_s']) / 1e6:.1f} M | {float(r['writes_per_s']) / 1e6:.2f} M | "
            f"{float(r['clears_per_s']):,.0f} | {r['peak_retired'] or '—'} | {r['peak_pending'] or '—'} | "
            f"{fmt_mib(r['footprint_bytes'])} | {fmt_mib(r['peak_rss_bytes'])} | {float(r['peak_rss_over_footprint']):.2f}× |")
    return out


def criterion_estimates():
    """{group: {(map, threads): (ns per round, operations per round)}} from
    target/criterion/*/*/*/new."""
    found = defaultdict(dict)
    if not os.path.isdir(CRITERION):
        return found
    for dirpath, _, files in os.walk(CRITERION):
        if "benchmark.json" not in files or not dirpath.endswith(os.sep + "new"):
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bench = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            est = json.load(f)
        group = bench["group_id"]
        threads = int(bench["value_str"])
        per_round = (bench.get("throughput") or {}).get("Elements", threads)
        found[group][(bench["function_id"], threads)] = (est["median"]["point_estimate"], per_round)
    return found


def throughput_tables(est):
    out = []
    for group in sorted(est):
        cells = est[group]
        threads = sorted({t for (_, t) in cells})
        maps = sorted({m for (m, _) in cells}, key=lambda m: (m != OURS, not m.startswith("AtomicMap"), m))
        out.append(f"\n#### Throughput `{group}`: million operations per second (ratio to DashMap)\n")
        out.append("| map | " + " | ".join(f"{t} thread(s)" for t in threads) + " |")
        out.append("|---" * (len(threads) + 1) + "|")
        for m in maps:
            line = [m]
            for t in threads:
                cell, dash = cells.get((m, t)), cells.get(("DashMap", t))
                if cell is None:
                    line.append("")
                    continue
                mops = cell[1] * 1e3 / cell[0]
                ratio = f" ({mops / (dash[1] * 1e3 / dash[0]):.2f}×)" if dash and m != "DashMap" else ""
                line.append(f"{mops:.2f}{ratio}")
            out.append("| " + " | ".join(line) + " |")
    return out


# ---------------------------------------------------------------- plots

def log_decades(values):
    """The powers of ten that bracket the positive values: (lowest, highest) exponent."""
    vals = [v for v in values if v > 0]
    lo, hi = math.floor(math.log10(min(vals))), math.ceil(math.log10(max(vals)))
    return lo, max(hi, lo + 1)


def svg_frame(box, title, ylabel, decades):
    """An SVG's opening, its title, a log-scale y axis of latencies with a grid line
    per decade, and the y label. box = (W, H, L, R, T, B): size and margins.
    Returns the element list and the y position of a value."""
    W, H, L, R, T, B = box
    y0, y1 = decades
    py = lambda v: H - B - (math.log10(v) - y0) / (y1 - y0) * (H - T - B)
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{(W - R) / 2}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>']
    for e in range(y0, y1 + 1):
        y = py(10 ** e)
        s.append(f'<line x1="{L}" x2="{W - R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        s.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt_ns(10 ** e)}</text>')
    s.append(f'<text x="16" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 {(T + H - B) / 2})">{ylabel}</text>')
    return s, py


def write_svg(path, elements):
    with open(path, "w") as f:
        f.write("\n".join(elements + ["</svg>"]) + "\n")


def svg_plot(path, title, series, xlabel, ylabel):
    """series: [(name, [(x, y), ...])]; a log-log line plot."""
    box = W, H, L, R, T, B = 800, 440, 80, 200, 40, 60
    xs = sorted({x for _, pts in series for x, _ in pts})
    s, py = svg_frame(box, title, ylabel, log_decades(y for _, pts in series for _, y in pts))
    x0, x1 = math.log10(xs[0]), math.log10(xs[-1])
    x1 = x1 if x1 > x0 else x0 + 1
    px = lambda v: L + (math.log10(v) - x0) / (x1 - x0) * (W - L - R)
    for v in xs:
        x = px(v)
        s.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{T}" y2="{H - B}" stroke="#eee"/>')
        s.append(f'<text x="{x:.1f}" y="{H - B + 16}" text-anchor="middle">{v:,}</text>')
    s.append(f'<text x="{(L + W - R) / 2}" y="{H - 18}" text-anchor="middle">{xlabel}</text>')
    for i, (name, pts) in enumerate(series):
        c = COLORS[i % len(COLORS)]
        pts = [(x, y) for x, y in pts if y > 0]
        d = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        s.append(f'<polyline points="{d}" fill="none" stroke="{c}" stroke-width="2"/>')
        for x, y in pts:
            s.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{c}"/>')
        ly = T + 10 + i * 18
        s.append(f'<line x1="{W - R + 12}" x2="{W - R + 32}" y1="{ly}" y2="{ly}" stroke="{c}" stroke-width="2"/>')
        s.append(f'<text x="{W - R + 38}" y="{ly + 4}">{escape(name)}</text>')
    write_svg(path, s)


def svg_bars(path, title, groups, bars, ylabel):
    """groups: [(group label, {bar: value})]; grouped bars on a log scale."""
    box = W, H, L, R, T, B = 960, 480, 80, 110, 40, 130
    s, py = svg_frame(box, title, ylabel, log_decades(v for _, d in groups for v in d.values()))
    gw = (W - L - R) / len(groups)
    bw = gw * 0.8 / len(bars)
    for g, (name, d) in enumerate(groups):
        gx = L + g * gw + gw * 0.1
        for b, bar in enumerate(bars):
            v = d.get(bar, 0)
            if v <= 0:
                continue
            y = py(v)
            s.append(f'<rect x="{gx + b * bw:.1f}" y="{y:.1f}" width="{bw - 1:.1f}" height="{H - B - y:.1f}" fill="{COLORS[b % len(COLORS)]}"/>')
        cx = L + g * gw + gw / 2
        s.append(f'<text x="{cx:.1f}" y="{H - B + 14}" text-anchor="end" transform="rotate(-35 {cx:.1f} {H - B + 14})">{escape(name)}</text>')
    for b, bar in enumerate(bars):
        ly = T + 10 + b * 18
        s.append(f'<rect x="{W - R + 12}" y="{ly - 6}" width="14" height="10" fill="{COLORS[b % len(COLORS)]}"/>')
        s.append(f'<text x="{W - R + 32}" y="{ly + 4}">{bar}</text>')
    write_svg(path, s)


def plots(clear, stall):
    made = []
    for key in sorted({r["key"] for r in clear}):
        readers = max(int(r["readers"]) for r in clear if r["key"] == key)
        series = defaultdict(list)
        for r in clear:
            if r["key"] == key and int(r["readers"]) == readers:
                series[short(r["map"])].append((int(r["size"]), float(r["median_ns"])))
        name = f"clear_vs_size_{key}.svg"
        svg_plot(os.path.join(OUT, name), f"clear() median latency vs entries ({key} keys, {readers} readers)",
                 [(m, sorted(p)) for m, p in series.items()], "entries", "latency of the clear call")
        made.append(name)
    top = max(int(r["size"]) for r in stall)
    for key in sorted({r["key"] for r in stall}):
        rows = [r for r in stall if r["key"] == key and int(r["size"]) == top]
        if not rows:
            continue
        # One reader: the clearer and the reader each have a core, so the windows
        # show the maps' own effects rather than the scheduler's.
        readers = 1 if any(int(r["readers"]) == 1 for r in rows) else max(int(r["readers"]) for r in rows)
        groups = []
        for r in rows:
            if int(r["readers"]) == readers and r["window"] in ("clear", "quiet"):
                groups.append((f"{short(r['map'])} ({r['window']})",
                               {"p50": float(r["p50_ns"]), "p99": float(r["p99_ns"]),
                                "p99.9": float(r["p999_ns"]), "max": float(r["max_ns"])}))
        name = f"reader_latency_{key}.svg"
        svg_bars(os.path.join(OUT, name),
                 f"readers' get latency in clear windows vs quiet windows ({top:,} {key} entries, "
                 f"{readers} reader{'s' if readers != 1 else ''})",
                 groups, ["p50", "p99", "p99.9", "max"], "get latency")
        made.append(name)
    return made


def main():
    os.makedirs(OUT, exist_ok=True)
    clear, stall = read_csv("clear.csv"), read_csv("stall.csv")
    est = criterion_estimates()
    lines = ["<!-- generated by benches/report.py; do not edit -->",
             "\n### Clear latency\n", *clear_tables(clear),
             "\n### Reader stall during clears\n", *stall_tables(stall)]
    if est:
        lines += ["\n### Throughput\n", *throughput_tables(est)]
    if os.path.exists(os.path.join(RESULTS, "storm.csv")):
        lines += ["\n### Clear storm\n", *storm_table(read_csv("storm.csv"))]
    if os.path.exists(os.path.join(RESULTS, "memory.csv")):
        lines += ["\n### Memory\n", *memory_table(read_csv("memory.csv"))]
    if os.path.exists(os.path.join(RESULTS, "churn.csv")):
        lines += ["\n### Memory under churn\n", *churn_table(read_csv("churn.csv"))]
    with open(os.path.join(OUT, "tables.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    made = plots(clear, stall)
    print("wrote docs/bench/tables.md and " + ", ".join(f"docs/bench/{m}" for m in made))


if __name__ == "__main__":
    main()
