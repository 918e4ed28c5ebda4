#!/usr/bin/env python3
"""Check that kefu's layers import one way only.

Reads every file under src/, collects the top-level modules it names (`crate::x`, and in
main.rs `kefu::x`), and checks two things:
  1. the module graph has no circle (any length), reported with the files that close it;
  2. every edge goes down the declared layer order below (a module may import only modules of
     a lower rank).
Exits 1 with the offending edges, else prints the graph. Run by tools/test.sh.

    python3 tools/layers.py [--dot]
"""
import re
import sys
from collections import defaultdict
from pathlib import Path

# Rank of each top-level module: imports go from a higher rank to a lower one only.
# Modules of equal rank may not import each other.
LAYERS = [
    ["sys", "log", "protocol"],
    ["config"],
    ["ipc", "tls"],
    ["connection"],
    ["gateway"],
    ["state"],
    ["api"],
    ["worker", "store", "web", "cluster"],
    ["app"],
    ["master"],
    ["cli"],
    ["main"],
]
RANK = {m: i for i, layer in enumerate(LAYERS) for m in layer}

ROOT = Path(__file__).resolve().parent.parent / "src"
REF = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
BIN_REF = re.compile(r"\bkefu::([a-z_][a-z0-9_]*)")


def top_module(path: Path) -> str:
    rel = path.relative_to(ROOT)
    if rel.parts == ("main.rs",):
        return "main"
    if rel.parts == ("lib.rs",):
        return "lib"
    first = rel.parts[0]
    return first[:-3] if first.endswith(".rs") else first


def strip_comments(text: str) -> str:
    # Doc comments name other layers in prose ("see crate::worker"); only code counts.
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def main() -> int:
    edges = defaultdict(set)  # (from, to) -> files
    for f in sorted(ROOT.rglob("*.rs")):
        src = top_module(f)
        if src == "lib":
            continue
        code = strip_comments(f.read_text())
        names = set(REF.findall(code))
        if src == "main":
            names |= set(BIN_REF.findall(code))
        for dst in names:
            # The log macros are `#[macro_export]`ed from log.rs, so they are `crate::error!`.
            if dst in ("error", "warn", "info", "debug"):
                dst = "log"
            if dst != src:
                edges[(src, dst)].add(str(f.relative_to(ROOT.parent)))

    bad = []
    for (a, b), files in sorted(edges.items()):
        if a not in RANK or b not in RANK:
            bad.append(f"unknown layer in {a} -> {b} ({', '.join(sorted(files))}); add it to LAYERS")
        elif RANK[a] <= RANK[b]:
            bad.append(f"{a} -> {b} goes up or sideways ({', '.join(sorted(files))})")

    # Circles of any length, independent of the declared order.
    graph = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    state = {}
    cycle = []

    def visit(n, stack):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                cycle.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m, stack)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [])
    for c in cycle:
        bad.append("circle: " + " -> ".join(c))

    if "--dot" in sys.argv:
        print("digraph kefu {")
        for a, b in sorted(edges):
            print(f'  "{a}" -> "{b}";')
        print("}")
    if bad:
        print("tools/layers.py: import rules broken:", file=sys.stderr)
        for b in bad:
            print("  " + b, file=sys.stderr)
        return 1
    if "--dot" not in sys.argv:
        for a in sorted(graph, key=lambda m: RANK.get(m, 99)):
            print(f"{a:>10} -> {', '.join(sorted(graph[a], key=lambda m: RANK.get(m, 99)))}")
        print("tools/layers.py: no circle; every import goes down the layer order")
    return 0


if __name__ == "__main__":
    sys.exit(main())
