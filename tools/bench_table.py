#!/usr/bin/env python3
"""Turns bench.sh JSON lines into markdown tables: medians of runs, ratios kefu vs peers.

Each figure is the median of that figure over the runs (not the figures of one median run):
at a fixed offered load every run has the same throughput, so a "median run" would be picked
by noise, and latency tails vary from run to run on a shared VM."""
import json
import statistics
import sys

PRIMARY = {"echo": "msgs_per_s", "broadcast": "deliveries_per_s", "private": "deliveries_per_s"}
PER_CPU = {"echo": "msgs_per_server_cpu_s", "broadcast": "deliveries_per_server_cpu_s",
           "private": "deliveries_per_server_cpu_s"}
SERVERS = ["kefu1", "kefu2", "kefub", "bun", "node"]


def load(path):
    runs = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            rec = json.loads(line)
            b, r = rec["bench"], rec["result"]
            runs.setdefault(b["case"], {}).setdefault(b["server"], []).append(r)
    return runs


def median_of(results, getter):
    """Median of getter over the runs that produced a value."""
    vals = [getter(r) for r in results if "error" not in r]
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return statistics.median(vals)


def correct(results, saturation=False):
    """ok when every run was clean. In saturation cases an overloaded server may still hold
    messages when the grace period ends: those count as late, not as failures; duplicates,
    misrouted or damaged messages and failed connections still fail the run."""
    bad, late = 0, 0
    for r in results:
        if "error" in r:
            bad += 1
        elif saturation:
            conns = r.get("connections") or {}
            if (r.get("duplicated") or r.get("misrouted") or r.get("bad_content") or r.get("excess")
                    or conns.get("failed") or conns.get("dropped")):
                bad += 1
            late += r.get("lost") or 0
        elif not r.get("ok", False):
            bad += 1
    out = "ok" if bad == 0 else f"{bad}/{len(results)} failed"
    return out + (f" ({late:,} late)" if late else "")


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float) and v >= 100:
        return f"{v:,.0f}"
    if isinstance(v, (int, float)):
        return f"{v:,}"
    return str(v)


def table(runs, title, getter, higher_better=True):
    servers = [s for s in SERVERS if any(s in v for v in runs.values())]
    # kefub is another kefu binary (KEFU_BASE_BIN): kefu1/kefub compares a change with its base.
    ratios = [(k, p) for k in ("kefu1", "kefu2") if k in servers
              for p in ("kefub", "bun", "node") if p in servers and p != k]
    head = ["case"] + servers + [f"{k}/{p}" for k, p in ratios]
    print(f"\n### {title}\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for case in sorted(runs):
        vals = {}
        for s in servers:
            vals[s] = median_of(runs[case].get(s, []), getter)
        row = [case] + [fmt(vals[s]) for s in servers]
        for k, p in ratios:
            a, b = vals.get(k), vals.get(p)
            if a and b:
                row.append(f"{(a / b if higher_better else b / a):.2f}x")
            else:
                row.append("-")
        print("| " + " | ".join(row) + " |")


def main():
    runs = load(sys.argv[1])
    if not runs:
        print("no results")
        return
    table(runs, "Throughput (median of runs; msgs/s for echo, deliveries/s for chat)",
          lambda r: r.get(PRIMARY.get(r.get("scenario"), "msgs_per_s")))
    table(runs, "Per server CPU-second (higher is better)",
          lambda r: r.get(PER_CPU.get(r.get("scenario"), "")))
    table(runs, "Latency p50 (µs; ratio > 1 means kefu is faster)",
          lambda r: (r.get("latency_us") or {}).get("p50"), higher_better=False)
    table(runs, "Latency p99 (µs; ratio > 1 means kefu is faster)",
          lambda r: (r.get("latency_us") or {}).get("p99"), higher_better=False)
    table(runs, "Server CPU (% of one core during the measured window)",
          lambda r: (r.get("server") or {}).get("cpu_pct_of_one_core"), higher_better=False)
    table(runs, "Generator CPU (% of one core; near 100 means the generator was the limit)",
          lambda r: (r.get("generator_cpu") or {}).get("pct_of_one_core"), higher_better=False)
    print("\n### Correctness (lost / duplicated / mismatched / failed connections; for sat_* cases,")
    print("messages still undelivered when the grace period ended are shown as late)\n")
    servers = [s for s in SERVERS if any(s in v for v in runs.values())]
    print("| case | " + " | ".join(servers) + " |")
    print("|" + "---|" * (len(servers) + 1))
    for case in sorted(runs):
        sat = case.startswith("sat_")
        print("| " + case + " | " + " | ".join(correct(runs[case].get(s, []), sat) if s in runs[case] else "-"
                                                for s in servers) + " |")


if __name__ == "__main__":
    main()
