#!/usr/bin/env python3
"""Turns bench.sh JSON lines into markdown tables: medians of runs, ratios kefu vs peers, and
every server as a fraction of the floor (tools/floor).

Each figure is the median of that figure over the runs (not the figures of one median run):
latency tails vary from run to run on a shared VM. A ramped case (room100, room1000, private)
counts its last step in each run: the one where the server (or the generator) was the limit.

    bench_table.py SESSION.jsonl [MORE.jsonl ...]  # the tables; several sessions pooled
    bench_table.py --by-generator SESSION.jsonl ...  # latency p99 against the generator's load
    bench_table.py --verdict JSON OFFERED SAT_CPU  # for bench.sh: "<limit> <delivered/s>"
"""
import json
import statistics
import sys
from collections import Counter

PRIMARY = {"echo": "msgs_per_s", "broadcast": "deliveries_per_s", "private": "deliveries_per_s"}
PER_CPU = {"echo": "msgs_per_server_cpu_s", "broadcast": "deliveries_per_server_cpu_s",
           "private": "deliveries_per_server_cpu_s"}
SERVERS = ["floor", "kefu1", "kefu2", "kefub", "bun", "node"]
HEADLINE = ["echo_w1", "echo_w16", "room100", "room1000", "private"]
GEN_SATURATED = 95.0


def primary(r):
    return r.get(PRIMARY.get(r.get("scenario"), "msgs_per_s"))


def verdict(raw, offered, sat_cpu):
    """Who limited one ramp step: the server (its core saturated, or it delivered less than
    offered while the generator had room), the generator (its core saturated), or neither
    ("more": raise the offered load)."""
    r = json.loads(raw)
    got = primary(r) or 0
    if "error" in r:
        return f"error {got:.0f}"
    server = server_cpu(r) or 0
    gen = generator_cpu(r) or 0
    if server >= sat_cpu:
        return f"server {got:.0f}"
    if gen >= GEN_SATURATED:
        return f"generator {got:.0f}"
    if got < 0.9 * offered or r.get("lost"):
        return f"server-lags {got:.0f}"
    return f"more {got:.0f}"


def load(paths):
    """Runs by case and server; of a ramped case only each run's last step. Sessions are
    pooled: each file's rounds are counted after the previous file's, so a round 1 of the
    second file does not replace round 1 of the first."""
    runs, last = {}, {}
    offset = 0
    for path in paths:
        offset = load_one(path, offset, runs, last)
    for (case, server, _), (_, r) in sorted(last.items()):
        runs.setdefault(case, {}).setdefault(server, []).append(r)
    return runs


def load_one(path, offset, runs, last):
    """Adds one session's lines; returns the offset for the next session's round numbers."""
    top = offset
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            rec = json.loads(line)
            b, r = rec["bench"], rec["result"]
            r["_limit"] = b.get("limit")
            r["_offered"] = b.get("offered_per_s")
            rnd = offset + int(b.get("run", 1))
            top = max(top, rnd)
            if "step" in b:
                key = (b["case"], b["server"], rnd)
                if key not in last or b["step"] >= last[key][0]:
                    last[key] = (b["step"], r)
                continue
            runs.setdefault(b["case"], {}).setdefault(b["server"], []).append(r)
    return top


def median_of(results, getter):
    """Median of getter over the runs that produced a value."""
    vals = [getter(r) for r in results if "error" not in r]
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return statistics.median(vals)


def correct(results, lenient=False):
    """ok when every run was clean. Where a server is driven past what it carries (ramped and
    quota cases) it may still hold messages when the grace period ends: those count as late,
    not as failures; duplicates, misrouted or damaged messages and failed connections still
    fail the run."""
    bad, late = 0, 0
    for r in results:
        if "error" in r:
            bad += 1
        elif lenient:
            conns = r.get("connections") or {}
            if (r.get("duplicated") or r.get("misrouted") or r.get("bad_content") or r.get("excess")
                    or r.get("mismatches") or conns.get("failed") or conns.get("dropped")):
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
    if isinstance(v, float):
        return f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def present(runs, cases):
    return [s for s in SERVERS if any(s in runs[c] for c in cases)]


def table(runs, cases, title, getter, higher_better=True, ratios=True, floor_pct=False):
    cases = [c for c in cases if c in runs]
    if not cases:
        return
    servers = present(runs, cases)
    pairs = []
    if ratios:
        # kefub is another kefu binary (KEFU_BASE_BIN): kefu1/kefub compares a change with its base.
        pairs = [(k, p) for k in ("kefu1", "kefu2") if k in servers
                 for p in ("kefub", "bun", "node") if p in servers and p != k]
    floors = [s for s in servers if s != "floor"] if floor_pct and "floor" in servers else []
    head = (["case"] + servers + [f"{k}/{p}" for k, p in pairs]
            + [f"{s} % of floor" for s in floors])
    print(f"\n### {title}\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for case in cases:
        vals = {s: median_of(runs[case].get(s, []), getter) for s in servers}
        row = [case] + [fmt(vals[s]) for s in servers]
        for k, p in pairs:
            a, b = vals.get(k), vals.get(p)
            row.append(f"{(a / b if higher_better else b / a):.2f}x" if a and b else "-")
        for s in floors:
            a, f = vals.get(s), vals.get("floor")
            row.append(f"{100 * a / f:.0f} %" if a and f else "-")
        print("| " + " | ".join(row) + " |")


def limits(runs, cases):
    cases = [c for c in cases if c in runs]
    servers = present(runs, cases)
    print("\n### What limited each run (ramped cases: the last step; server = its core saturated"
          " or it fell behind the offered load, generator = the generator's core saturated)\n")
    print("| case | " + " | ".join(servers) + " |")
    print("|" + "---|" * (len(servers) + 1))
    for case in cases:
        row = []
        for s in servers:
            rs = runs[case].get(s, [])
            labels = Counter(r.get("_limit") or label_closed(r) for r in rs)
            row.append(", ".join(f"{k} {v}/{len(rs)}" for k, v in labels.most_common()) or "-")
        print(f"| {case} | " + " | ".join(row) + " |")


def label_closed(r):
    """Echo is a closed loop: say which side's core was (near) full."""
    server = server_cpu(r) or 0
    gen = generator_cpu(r) or 0
    if server >= 90:
        return "server"
    if gen >= GEN_SATURATED:
        return "generator"
    return "neither"


def server_cpu(r):
    return (r.get("server") or {}).get("cpu_pct_of_one_core")


def generator_cpu(r):
    return (r.get("generator_cpu") or {}).get("pct_of_one_core")


def user_share(r):
    s = r.get("server") or {}
    if not s.get("cpu_s") or s.get("user_s") is None:
        return None
    return round(100.0 * s["user_s"] / s["cpu_s"], 1)


GEN_BANDS = [(0, 60), (60, 70), (70, 80), (80, 90), (90, 95), (95, 101)]


def by_generator(paths):
    """Every latency step of every round, p99 grouped by how busy the generator's core was:
    a tail compared at equal generator load says what the server adds; one compared at each
    server's own rate also says how hard that rate drove the generator."""
    runs = load(paths)
    for case in sorted({c.split("@")[0] for c in runs if "@" in c}):
        steps = {}
        for c in runs:
            if c.split("@")[0] != case or "@" not in c:
                continue
            for srv, results in runs[c].items():
                for r in results:
                    gen, p99 = generator_cpu(r), (r.get("latency_us") or {}).get("p99")
                    if "error" not in r and gen is not None and p99:
                        steps.setdefault(srv, []).append((gen, p99))
        servers = [s for s in SERVERS if s in steps]
        print(f"\n### {case}: p99 (µs) by the generator's CPU during the step, median (steps)\n")
        print("| generator CPU % | " + " | ".join(servers) + " |")
        print("|" + "---|" * (len(servers) + 1))
        for lo, hi in GEN_BANDS:
            cells = []
            for srv in servers:
                v = [p for g, p in steps[srv] if lo <= g < hi]
                cells.append(f"{fmt(float(statistics.median(v)))} ({len(v)})" if v else "-")
            print(f"| {lo}-{min(hi, 100)} | " + " | ".join(cells) + " |")


def main():
    if sys.argv[1:2] == ["--verdict"]:
        print(verdict(sys.argv[2], float(sys.argv[3]), float(sys.argv[4])))
        return
    if sys.argv[1:2] == ["--by-generator"]:
        by_generator(sys.argv[2:])
        return
    runs = load(sys.argv[1:])
    if not runs:
        print("no results")
        return
    head = HEADLINE
    lat = sorted(c for c in runs if "@" in c)
    quota = sorted(c for c in runs if c.startswith("quota_"))
    other = sorted(c for c in runs if c not in head and c not in lat and c not in quota)
    head = head + other
    print("\n## Headline: server pinned to one whole core, offered load raised until it is the limit")
    table(runs, head, "Per server CPU-second (msgs/s for echo, deliveries/s for chat; higher is better)",
          lambda r: r.get(PER_CPU.get(r.get("scenario"), "")), floor_pct=True)
    table(runs, head, "Throughput (msgs/s for echo, deliveries/s for chat)", primary, floor_pct=True)
    table(runs, head, "Server CPU (% of one core during the measured window)",
          server_cpu, ratios=False)
    table(runs, head, "Server CPU spent in user space (% of its CPU; the rest is the kernel's)",
          user_share, ratios=False)
    table(runs, head, "Generator CPU (% of one core; near 100 means the generator was the limit)",
          generator_cpu, ratios=False)
    limits(runs, head)
    if lat:
        print("\n## Latency at 25 / 50 / 90 % of each server's own saturated rate, and (`@same`)"
              " every server at one offered rate")
        for p, name in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")):
            table(runs, lat, f"Latency {name} (µs; ratio > 1 means kefu is faster)",
                  lambda r, p=p: (r.get("latency_us") or {}).get(p), higher_better=False)
        table(runs, lat, "Offered load (msgs/s for echo, deliveries/s for chat)",
              lambda r: r.get("_offered"), ratios=False)
        table(runs, lat, "Server CPU at each latency step (% of one core)", server_cpu,
              ratios=False)
        table(runs, lat, "Generator CPU at each latency step (% of one core; at 90 or more the"
              " generator's own queueing is in the tail as much as the server's)",
              generator_cpu, ratios=False)
    if quota:
        print("\n## Secondary: server held to a fraction of a core by a cgroup quota (batches per"
              " 10 ms period; flatters servers that batch, no deployment runs like this)")
        table(runs, quota, "Deliveries/s on the same CPU budget", primary, floor_pct=True)
        table(runs, quota, "Per server CPU-second",
              lambda r: r.get(PER_CPU.get(r.get("scenario"), "")), floor_pct=True)
    print("\n### Correctness (lost / duplicated / mismatched / failed connections; where a server is"
          " driven past what it carries, messages still undelivered when the grace period ended"
          " are shown as late)\n")
    servers = [s for s in SERVERS if any(s in v for v in runs.values())]
    print("| case | " + " | ".join(servers) + " |")
    print("|" + "---|" * (len(servers) + 1))
    for case in head + lat + quota:
        if case not in runs:
            continue
        lenient = case in ("room100", "room1000", "private") or case.startswith("quota_")
        print("| " + case + " | " + " | ".join(
            correct(runs[case].get(s, []), lenient) if s in runs[case] else "-"
            for s in servers) + " |")


if __name__ == "__main__":
    main()
