#!/usr/bin/env bash
# Reruns the kefu vs Bun vs Node comparison matrix (bounded: about 10 min for all four servers).
#
#   tools/bench.sh            # full matrix, 3 runs per case, medians
#   tools/bench.sh --quick    # 1 run of 3 s per case, to check the setup
#   SERVERS="bun node" tools/bench.sh
#   KEFU_SCENARIO=1 tools/bench.sh   # also the kefu app scenario (tools/bench-kefu.sh)
#
# Servers are pinned with taskset to core 0 (SERVER_CPUS), the generator to core 1
# (LOAD_CPUS). kefu2 (2 workers) gets cores 0,1 (KEFU2_CPUS) and so shares core 1 with the
# generator: compare it through the per-server-CPU-second columns, not raw rates.
# Raw JSON lines go to target/bench/results.jsonl; a markdown table is printed on stdout.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/tools/bench-lib.sh"

RUNS=3; DUR=10; CDUR=8; WARM=1
if [ "${1:-}" = "--quick" ]; then RUNS=1; DUR=3; CDUR=3; WARM=0.5; fi
SERVERS="${SERVERS:-kefu1 kefu2 bun node}"
# Chat cases run at a fixed offered load that every server should sustain, so they compare
# CPU per delivery and latency; echo W=16 is the closed-loop saturation case.
ROOM100_RATE="${ROOM100_RATE:-500}"     # says/s -> 50k deliveries/s
ROOM1000_RATE="${ROOM1000_RATE:-50}"    # says/s -> 50k deliveries/s
PRIVATE_RATE="${PRIVATE_RATE:-5000}"
GRACE="${GRACE:-10}"                    # max drain; ends as soon as all deliveries are in
# Logins cost O(room size) broadcasts each, so ramp gently and allow slow upgrades.
CHAT_SETUP=(--connect-rate 500 --setup-timeout 30)

mkdir -p "$ROOT/target/bench"
OUT="$ROOT/target/bench/results.jsonl"
SESSION="$(mktemp /tmp/bench-session.XXXXXX.jsonl)"
: >/tmp/bench-load.log
trap 'stop_server; rm -f "$SESSION"' EXIT

build_tools || { log "build failed"; exit 1; }
command -v taskset >/dev/null || { log "taskset missing (util-linux)"; exit 1; }

record() { # server case run json
  local line="{\"bench\":{\"server\":\"$1\",\"case\":\"$2\",\"run\":$3,\"at\":\"$(date -u +%FT%TZ)\"},\"result\":$4}"
  echo "$line" >>"$OUT"
  echo "$line" >>"$SESSION"
}

run_case() { # server case args...
  local server=$1 case=$2 i json
  shift 2
  for i in $(seq 1 "$RUNS"); do
    json=$(load "$@" | tail -1)
    [ -n "$json" ] || json='{"error":"no output"}'
    record "$server" "$case" "$i" "$json"
    log "$server $case run $i: $(echo "$json" | head -c 160)"
  done
}

for server in $SERVERS; do
  case $server in
    kefu1|kefu2)
      if ! kefu_available; then log "skipping $server: $KEFU_BIN missing or has no 'start' subcommand"; continue; fi ;;
  esac
  if start_server "$server" echo; then
    url="ws://127.0.0.1:$SERVER_PORT/"
    run_case "$server" echo_w1 echo --url "$url" -c 100 --size 64 --window 1 --duration "$DUR" --warmup "$WARM"
    run_case "$server" echo_w16 echo --url "$url" -c 100 --size 64 --window 16 --duration "$DUR" --warmup "$WARM"
    stop_server
  fi
  if start_server "$server" chat; then
    url="ws://127.0.0.1:$SERVER_PORT/"
    run_case "$server" bcast_room100 broadcast --url "$url" --rooms 1 --room-size 100 --senders 10 \
      --rate "$ROOM100_RATE" --duration "$CDUR" --grace "$GRACE" "${CHAT_SETUP[@]}"
    run_case "$server" bcast_room1000 broadcast --url "$url" --rooms 1 --room-size 1000 --senders 10 \
      --rate "$ROOM1000_RATE" --duration "$CDUR" --grace "$GRACE" "${CHAT_SETUP[@]}"
    run_case "$server" private private --url "$url" -c 1000 --rate "$PRIVATE_RATE" --duration "$CDUR" --grace "$GRACE" "${CHAT_SETUP[@]}"
    stop_server
  fi
done

python3 "$ROOT/tools/bench_table.py" "$SESSION"
log "raw results appended to $OUT"

# Optional: the kefu (customer-service) scenario, 1 and 2 workers, synchronous full/normal.
if [ "${KEFU_SCENARIO:-0}" = 1 ]; then
  if [ "${1:-}" = "--quick" ]; then RUNS=1 DUR=3 "$ROOT/tools/bench-kefu.sh"; else "$ROOT/tools/bench-kefu.sh"; fi
fi
