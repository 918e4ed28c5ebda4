#!/usr/bin/env bash
# Reruns the kefu vs Bun vs Node comparison matrix (bounded: about 13 min for all four servers).
#
#   tools/bench.sh            # full matrix, 3 rounds, medians
#   tools/bench.sh --quick    # 1 round of short runs, to check the setup
#   SERVERS="kefu1 bun" tools/bench.sh
#   SERVERS="kefu1 kefub" KEFU_BASE_BIN=/tmp/kefu-base tools/bench.sh   # before/after a change
#   KEFU_SCENARIO=1 tools/bench.sh   # also the kefu app scenario (tools/bench-kefu.sh)
#
# Servers are pinned with taskset to core 0 (SERVER_CPUS), the generator to core 1
# (LOAD_CPUS). kefu2 (2 workers) gets cores 0,1 (KEFU2_CPUS) and so shares core 1 with the
# generator: compare it through the per-server-CPU-second columns, not raw rates.
# Servers alternate: each round runs every server once, in a rotated order, so drift over
# the session (thermal, other load) spreads over all of them; medians are over rounds.
#
# Two kinds of case:
# - full core: echo (closed loop) and chat at a fixed offered load every server sustains
#   (40k deliveries/s, 5k private messages/s): CPU per delivery and latency.
# - sat_*: saturation. One generator core cannot saturate a server with a whole core, so the
#   server is held to SAT_QUOTA_PCT % of one core by a cgroup CPU quota for the measured phase
#   (setup runs unthrottled) while the generator offers more than that budget can carry:
#   deliveries/s on the same CPU budget. Needs root and the cgroup cpu controller; skipped
#   otherwise.
# Raw JSON lines go to target/bench/results.jsonl; markdown tables are printed on stdout.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/tools/bench-lib.sh"

RUNS=3; DUR=5; CDUR=5; SDUR=4; WARM=1
if [ "${1:-}" = "--quick" ]; then RUNS=1; DUR=2; CDUR=2; SDUR=2; WARM=0.5; fi
SERVERS="${SERVERS:-kefu1 kefu2 bun node}"
ROOM100_RATE="${ROOM100_RATE:-400}"     # says/s -> 40k deliveries/s
ROOM1000_RATE="${ROOM1000_RATE:-40}"    # says/s -> 40k deliveries/s
PRIVATE_RATE="${PRIVATE_RATE:-5000}"
SAT_QUOTA_PCT="${SAT_QUOTA_PCT:-10}"    # server CPU budget in saturation cases
SAT_ROOM100_RATE="${SAT_ROOM100_RATE:-5000}"    # offered 500k deliveries/s
SAT_ROOM1000_RATE="${SAT_ROOM1000_RATE:-500}"   # offered 500k deliveries/s
SAT_PRIVATE_RATE="${SAT_PRIVATE_RATE:-30000}"
GRACE="${GRACE:-10}"                    # max drain; ends as soon as all deliveries are in
SAT_GRACE="${SAT_GRACE:-6}"
CHAT_SETUP=(--connect-rate 2000 --setup-timeout 30)

mkdir -p "$ROOT/target/bench"
OUT="$ROOT/target/bench/results.jsonl"
SESSION="$(mktemp /tmp/bench-session.XXXXXX.jsonl)"
: >/tmp/bench-load.log
trap 'stop_server; rm -f "$SESSION"' EXIT

build_tools || { log "build failed"; exit 1; }
command -v taskset >/dev/null || { log "taskset missing (util-linux)"; exit 1; }
SAT_CGROUP="$(throttle_cgroup "$SAT_QUOTA_PCT" || true)"
[ -n "$SAT_CGROUP" ] || log "no writable cgroup cpu controller: saturation cases skipped"

record() { # server case run json
  local line="{\"bench\":{\"server\":\"$1\",\"case\":\"$2\",\"run\":$3,\"at\":\"$(date -u +%FT%TZ)\"},\"result\":$4}"
  echo "$line" >>"$OUT"
  echo "$line" >>"$SESSION"
}

run_case() { # server case run args...
  local server=$1 case=$2 run=$3 json
  shift 3
  json=$(load "$@" | tail -1)
  [ -n "$json" ] || json='{"error":"no output"}'
  record "$server" "$case" "$run" "$json"
  log "$server $case run $run: $(echo "$json" | head -c 160)"
}

one_round() { # run server
  local run=$1 server=$2 url
  if start_server "$server" echo; then
    url="ws://127.0.0.1:$SERVER_PORT/"
    run_case "$server" echo_w1 "$run" echo --url "$url" -c 100 --size 64 --window 1 --duration "$DUR" --warmup "$WARM"
    run_case "$server" echo_w16 "$run" echo --url "$url" -c 100 --size 64 --window 16 --duration "$DUR" --warmup "$WARM"
    stop_server
  fi
  if start_server "$server" chat; then
    url="ws://127.0.0.1:$SERVER_PORT/"
    run_case "$server" bcast_room100 "$run" broadcast --url "$url" --rooms 1 --room-size 100 --senders 10 \
      --rate "$ROOM100_RATE" --duration "$CDUR" --grace "$GRACE" "${CHAT_SETUP[@]}"
    run_case "$server" bcast_room1000 "$run" broadcast --url "$url" --rooms 1 --room-size 1000 --senders 10 \
      --rate "$ROOM1000_RATE" --duration "$CDUR" --grace "$GRACE" "${CHAT_SETUP[@]}"
    run_case "$server" private "$run" private --url "$url" -c 1000 --rate "$PRIVATE_RATE" --duration "$CDUR" \
      --grace "$GRACE" "${CHAT_SETUP[@]}"
    stop_server
  fi
  [ -n "$SAT_CGROUP" ] || return 0
  # A fresh server per saturation case: an overloaded one may still be draining.
  local sat=(--duration "$SDUR" --grace "$SAT_GRACE" --throttle-cgroup "$SAT_CGROUP" "${CHAT_SETUP[@]}")
  if start_server "$server" chat; then
    run_case "$server" sat_room100 "$run" broadcast --url "ws://127.0.0.1:$SERVER_PORT/" --rooms 1 \
      --room-size 100 --senders 10 --rate "$SAT_ROOM100_RATE" "${sat[@]}"
    stop_server
  fi
  if start_server "$server" chat; then
    run_case "$server" sat_room1000 "$run" broadcast --url "ws://127.0.0.1:$SERVER_PORT/" --rooms 1 \
      --room-size 1000 --senders 10 --rate "$SAT_ROOM1000_RATE" "${sat[@]}"
    stop_server
  fi
  if start_server "$server" chat; then
    run_case "$server" sat_private "$run" private --url "ws://127.0.0.1:$SERVER_PORT/" -c 1000 \
      --rate "$SAT_PRIVATE_RATE" "${sat[@]}"
    stop_server
  fi
}

available=()
for server in $SERVERS; do
  case $server in
    kefu1|kefu2)
      if ! kefu_available; then log "skipping $server: $KEFU_BIN missing or has no 'start' subcommand"; continue; fi ;;
    kefub)
      if [ ! -x "$KEFU_BASE_BIN" ]; then log "skipping kefub: set KEFU_BASE_BIN to a kefu binary"; continue; fi ;;
  esac
  available+=("$server")
done
n=${#available[@]}
for run in $(seq 1 "$RUNS"); do
  for i in $(seq 0 $((n - 1))); do
    one_round "$run" "${available[$(((i + run - 1) % n))]}"
  done
done

python3 "$ROOT/tools/bench_table.py" "$SESSION"
[ -z "$SAT_CGROUP" ] || echo "
Saturation cases (sat_*): server held to ${SAT_QUOTA_PCT}% of one core (cgroup $SAT_CGROUP)."
log "raw results appended to $OUT"

# Optional: the kefu (customer-service) scenario, 1 and 2 workers, synchronous full/normal.
if [ "${KEFU_SCENARIO:-0}" = 1 ]; then
  if [ "${1:-}" = "--quick" ]; then RUNS=1 DUR=3 "$ROOT/tools/bench-kefu.sh"; else "$ROOT/tools/bench-kefu.sh"; fi
fi
