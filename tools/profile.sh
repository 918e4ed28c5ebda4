#!/usr/bin/env bash
# Where each server's CPU goes on every headline case: `perf record -e cpu-clock` of the
# server's core (core 0, where tools/bench-lib.sh pins it) while kefu-load drives the case
# at its top offered rate from core 1. Prints, per server and case, the share of samples in
# the kernel and in user space (of the core's busy samples), the core's busy share, and the top
# user-space symbols as shares of the busy samples (BENCHMARKS.md's profile table).
#
#   tools/profile.sh                          # floor, kefu1, bun; every case
#   SERVERS="kefu1" CASES="room100" tools/profile.sh
#
# Needs `perf` (software events are enough: cpu-clock). Each case: 1 s warm-up, 3 s sampled
# at 999 Hz, bounded by the generator's own duration. Run it on a quiet machine: samples of
# core 0 include whatever else runs there.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/tools/bench-lib.sh"
SERVERS="${SERVERS:-floor kefu1 bun}"
CASES="${CASES:-echo_w1 echo_w16 room100 room1000 private}"
OUTDIR="$ROOT/target/profile"
mkdir -p "$OUTDIR"
trap 'stop_server' EXIT
command -v perf >/dev/null || { log "perf missing"; exit 1; }
build_tools || { log "build failed"; exit 1; }

args_for() { # case url -> kefu-load arguments at the case's top rate
  local url=$2
  case $1 in
    echo_w1) echo "echo --url $url -c 100 --size 64 --window 1" ;;
    echo_w16) echo "echo --url $url -c 100 --size 64 --window 16" ;;
    room100) echo "broadcast --url $url --rooms 1 --room-size 100 --senders 10 --rate 16000 --grace 3 --connect-rate 2000" ;;
    room1000) echo "broadcast --url $url --rooms 1 --room-size 1000 --senders 10 --rate 1600 --grace 3 --connect-rate 2000" ;;
    private) echo "private --url $url -c 1000 --rate 160000 --grace 3 --connect-rate 2000" ;;
  esac
}

for server in $SERVERS; do
  for case in $CASES; do
    app=chat
    case $case in echo*) app=echo ;; esac
    start_server "$server" "$app" || continue
    url="ws://127.0.0.1:$SERVER_PORT/"
    data="$OUTDIR/$server-$case.data"
    # shellcheck disable=SC2046
    warm=(--warmup 1)
    case $case in echo*) ;; *) warm=(--setup-timeout 30) ;; esac
    load $(args_for "$case" "$url") --duration 6 "${warm[@]}" >/dev/null &
    lpid=$!
    # The chat cases connect 100-1000 clients first: sample once the load is running.
    case $case in room1000|private) sleep 2.5 ;; *) sleep 1.5 ;; esac
    perf record -q -e cpu-clock -F 999 -C 0 -g -o "$data" -- sleep 3 >/dev/null 2>&1 || true
    wait "$lpid" || true
    stop_server
    python3 - "$data" "$server" "$case" <<'EOF'
import subprocess, sys, collections
data, server, case = sys.argv[1:]
out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "-g", "none",
                      "-t", "|", "--sort", "comm,dso,sym", "--percent-limit", "0"],
                     capture_output=True, text=True).stdout
kernel = user = idle = 0.0
syms = collections.Counter()
for line in out.splitlines():
    if not line.strip() or line.lstrip().startswith("#"):
        continue
    parts = [p.strip() for p in line.split("|")]
    if len(parts) < 4:
        continue
    try:
        pct = float(parts[0].rstrip("%"))
    except ValueError:
        continue
    comm, dso, sym = parts[1], parts[2], parts[3]
    if comm == "swapper":
        idle += pct
    elif sym.startswith("[k]") or "kernel" in dso:
        kernel += pct
    else:
        user += pct
        syms[f"{sym.removeprefix('[.] ')} ({dso})"] += pct
busy = kernel + user
if busy == 0:
    print(f"| {case} | {server} | no samples | | |")
    sys.exit(0)
top = ", ".join(f"`{s}` {100 * p / busy:.1f} %" for s, p in syms.most_common(6))
print(f"| {case} | {server} | {100 - idle:.0f} % | {100 * kernel / busy:.0f} % | {100 * user / busy:.0f} % | {top} |")
EOF
  done
done
