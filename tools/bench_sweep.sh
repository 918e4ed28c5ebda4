#!/usr/bin/env bash
# Latency against offered rate: p50/p99 of each server at the same list of rates, servers
# alternated within every round, medians over the rounds.
#
# bench.sh measures each server at 25/50/90 % of its *own* saturated rate, so a faster server
# is measured at a higher absolute load. This sweep puts every server at the same rates, so
# its table reads as curves side by side: where each one starts to queue, and which is lower
# at any one rate.
#
#   tools/bench_sweep.sh                                   # echo and private, floor kefu1 bun
#   CASES=private PRIVATE_RATES="40000 60000 80000" ROUNDS=3 tools/bench_sweep.sh
#
# Bounded: every step is a 2 s window (LDUR) plus setup; the defaults took 4 minutes here.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/tools/bench-lib.sh"
if [ -n "${AUTOGROUP_NICE:-}" ]; then
  echo "$AUTOGROUP_NICE" >/proc/self/autogroup 2>/dev/null || log "cannot set the autogroup nice"
fi

SERVERS="${SERVERS:-floor kefu1 bun}"
CASES="${CASES:-echo private}"
ROUNDS="${ROUNDS:-3}"
LDUR="${LDUR:-2}"
ECHO_RATES="${ECHO_RATES:-40000 60000 80000 100000}"
PRIVATE_RATES="${PRIVATE_RATES:-30000 45000 60000 80000}"
OUT="$ROOT/target/bench/sweep-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
mkdir -p "$ROOT/target/bench"
trap 'stop_server; restore_halt_poll' EXIT
build_tools || { log "build failed"; exit 1; }
set_halt_poll

step() { # server case rate round
  local server=$1 case=$2 rate=$3 round=$4 json app=echo
  [ "$case" = private ] && app=chat
  start_server "$server" "$app" || { log "$server did not start"; return 0; }
  local url="ws://127.0.0.1:$SERVER_PORT/"
  case $case in
    echo) json=$(load echo --url "$url" -c 100 --size 64 --window 64 --duration "$LDUR" \
            --warmup 1 --rate "$rate" | tail -1) ;;
    private) json=$(load private --url "$url" -c 1000 --rate "$rate" --duration "$LDUR" \
            --grace 4 --connect-rate 2000 --setup-timeout 30 | tail -1) ;;
  esac
  stop_server
  [ -n "$json" ] || json='{"error":"no output"}'
  echo "{\"sweep\":{\"server\":\"$server\",\"case\":\"$case\",\"rate\":$rate,\"round\":$round},\"result\":$json}" >>"$OUT"
  log "$server $case $rate/s round $round: $(echo "$json" | head -c 100)"
}

for round in $(seq 1 "$ROUNDS"); do
  # Rotate the server order each round so no server always runs first or last.
  read -r -a order <<<"$SERVERS"
  shift_by=$(( (round - 1) % ${#order[@]} ))
  order=("${order[@]:$shift_by}" "${order[@]:0:$shift_by}")
  for case in $CASES; do
    rates=$ECHO_RATES
    [ "$case" = private ] && rates=$PRIVATE_RATES
    for rate in $rates; do
      for server in "${order[@]}"; do step "$server" "$case" "$rate" "$round"; done
    done
  done
done

python3 - "$OUT" "$SERVERS" <<'PY'
import json, statistics, sys
path, servers = sys.argv[1], sys.argv[2].split()
cells = {}
for line in open(path):
    rec = json.loads(line)
    s, r = rec["sweep"], rec["result"]
    if "error" in r or not r.get("ok", False):
        continue
    lat = r.get("latency_us") or {}
    cpu = (r.get("server") or {}).get("cpu_pct_of_one_core")
    gen = (r.get("generator_cpu") or {}).get("pct_of_one_core")
    cells.setdefault((s["case"], s["rate"], s["server"]), []).append(
        (lat.get("p50"), lat.get("p99"), cpu, gen))
def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None
def f(v, unit=""):
    return "-" if v is None else f"{v:,.0f}{unit}"
for case in sorted({c for c, _, _ in cells}):
    print(f"\n### {case}: p99 latency (µs) at the same offered rate, medians of rounds"
          " (server CPU % / generator CPU %)\n")
    print("| offered/s | " + " | ".join(servers) + " |")
    print("|" + "---|" * (len(servers) + 1))
    for rate in sorted({r for c, r, _ in cells if c == case}):
        row = []
        for s in servers:
            v = cells.get((case, rate, s), [])
            row.append(f"{f(med(x[1] for x in v))} ({f(med(x[2] for x in v))} / "
                       f"{f(med(x[3] for x in v))})" if v else "-")
        print(f"| {rate:,} | " + " | ".join(row) + " |")
print(f"\nraw lines: {path}")
PY
halt_poll_note
