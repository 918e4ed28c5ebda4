#!/usr/bin/env bash
# Reruns the comparison matrix: the floor, kefu and Bun (Node too if asked) side by side,
# bounded. Everything, with Node, in under 20 minutes: rounds after the first start each ramp
# where round 1 ended, the quota cases run in round 1 only (QUOTA_RUNS), measured windows are
# 3 s (2 s for a latency step) and the same-rate latency runs SAME_RUNS rounds.
#
#   tools/bench.sh            # full matrix, 3 rounds, medians
#   tools/bench.sh --quick    # 1 round of short runs, to check the setup
#   SERVERS="floor kefu1 bun node" tools/bench.sh   # with Node (slow to drain: +40 % time)
#   SERVERS="kefu1 kefub" KEFU_BASE_BIN=/tmp/kefu-base tools/bench.sh   # before/after a change
#   LATENCY=0 QUOTA=0 tools/bench.sh   # headline cases only
#   KEFU_SCENARIO=1 tools/bench.sh     # also the kefu app scenario (tools/bench-kefu.sh)
#   CASES="echo_w16 room100" LATENCY=0 QUOTA=0 tools/bench.sh   # only the cases named
#   AUTOGROUP_NICE=-20 tools/bench.sh  # weigh this run's session far above other sessions'
#       (sched_autogroup; needs root): builds elsewhere on the machine then get ~1 % of a core
#   HALT_POLL_NS=200000 tools/bench.sh # the guest polls 200 us before it halts (the kernel's
#       default; this VM boots with 0), put back after the run; see tools/bench-lib.sh
#
# Servers are pinned with taskset to core 0 (SERVER_CPUS), the generator to core 1
# (LOAD_CPUS). kefu2 (2 workers) gets cores 0,1 (KEFU2_CPUS) and so shares core 1 with the
# generator: compare it through the per-server-CPU-second columns, not raw rates. `floor` is
# tools/floor, a server that does nothing but the wire format: what the kernel allows.
# Servers alternate: each round runs every server once, in a rotated order, so drift over
# the session (thermal, other load) spreads over all of them; medians are over rounds.
#
# Three kinds of case:
# - headline, full core: echo_w1 (ping-pong) and echo_w16 (pipelined) are closed loops;
#   room100, room1000 and private raise the offered load step by step (ROOM100_STEPS, ...,
#   in says or messages per second) until the server is the limit: its core is saturated
#   (>= SAT_CPU % of it) or it delivers less than it is offered. A step where the generator's
#   core is saturated instead is marked so (the figure is then a lower bound for the server).
# - latency (LATENCY=1): each chat case again at 25 %, 50 % and 90 % of what that server
#   delivered at its saturated step (echo: of echo_w1's rate, paced), p50/p99/p99.9; then
#   (SAME=1) every case once more with every server at one offered rate, 50 % of the slowest
#   of SAME_OF's saturated rates (`case@same`), so latencies compare at equal load.
# - quota_* (QUOTA=1, secondary): the server held to QUOTA_PCT % of one core by a cgroup CPU
#   quota while offered more than that carries. The server then sleeps most of every 10 ms
#   period and drains a backlog in one batch, which flatters servers that batch; no deployment
#   runs like that. Needs root and the cgroup cpu controller; skipped otherwise.
# Raw JSON lines go to target/bench/results.jsonl; markdown tables are printed on stdout.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/tools/bench-lib.sh"
if [ -n "${AUTOGROUP_NICE:-}" ]; then
  echo "$AUTOGROUP_NICE" >/proc/self/autogroup 2>/dev/null || log "cannot set the autogroup nice (needs root and sched_autogroup)"
fi

RUNS=3; DUR=3; SDUR=3; WARM=1; LDUR=2
if [ "${1:-}" = "--quick" ]; then RUNS=1; DUR=2; SDUR=2; WARM=0.5; LDUR=2; fi
SERVERS="${SERVERS:-floor kefu1 bun}"
ROOM100_STEPS="${ROOM100_STEPS:-1000 4000 16000}"   # says/s x 100 members
ROOM1000_STEPS="${ROOM1000_STEPS:-100 400 1600}"    # says/s x 1000 members
PRIVATE_STEPS="${PRIVATE_STEPS:-10000 40000 160000}"
SAT_CPU="${SAT_CPU:-90}"                # server CPU % of one core that counts as saturated
LATENCY="${LATENCY:-1}"
SAME="${SAME:-1}"                       # latency again, every server at one offered rate
SAME_OF="${SAME_OF:-kefu1 bun}"         # ... 50 % of the slowest of these servers' saturated rates
SAME_RUNS="${SAME_RUNS:-2}"             # ... in this many rounds
QUOTA="${QUOTA:-1}"
QUOTA_PCT="${QUOTA_PCT:-10}"
QUOTA_RUNS="${QUOTA_RUNS:-1}"                # rounds that also run the quota cases
QUOTA_ROOM100_RATE="${QUOTA_ROOM100_RATE:-5000}"    # offered 500k deliveries/s
QUOTA_ROOM1000_RATE="${QUOTA_ROOM1000_RATE:-500}"   # offered 500k deliveries/s
QUOTA_PRIVATE_RATE="${QUOTA_PRIVATE_RATE:-30000}"
GRACE="${GRACE:-4}"                     # max drain; ends as soon as all deliveries are in
CHAT_SETUP=(--connect-rate 2000 --setup-timeout 30)
TABLE="$ROOT/tools/bench_table.py"

mkdir -p "$ROOT/target/bench"
OUT="$ROOT/target/bench/results.jsonl"
SESSION="$(mktemp /tmp/bench-session.XXXXXX.jsonl)"
: >"$LOAD_LOG"
trap 'stop_server; restore_halt_poll; rm -f "$SESSION"' EXIT
STARTED=$(date +%s)

build_tools || { log "build failed"; exit 1; }
set_halt_poll
command -v taskset >/dev/null || { log "taskset missing (util-linux)"; exit 1; }
QUOTA_CGROUP=""
if [ "$QUOTA" = 1 ]; then
  QUOTA_CGROUP="$(throttle_cgroup "$QUOTA_PCT" || true)"
  [ -n "$QUOTA_CGROUP" ] || log "no writable cgroup cpu controller: quota cases skipped"
fi

record() { # server case run json [extra-bench-fields]
  local line="{\"bench\":{\"server\":\"$1\",\"case\":\"$2\",\"run\":$3,\"at\":\"$(date -u +%FT%TZ)\"${5:-}},\"result\":$4}"
  echo "$line" >>"$OUT"
  echo "$line" >>"$SESSION"
}

# want CASE: the case is in $CASES (all cases when CASES is empty).
want() { [ -z "${CASES:-}" ] || [[ " $CASES " == *" ${1%@*} "* ]]; }

LAST_JSON=""
run_case() { # server case run extra args...
  local server=$1 case=$2 run=$3 extra=$4 json
  shift 4
  want "$case" || { LAST_JSON='{}'; return 0; }
  json=$(load "$@" | tail -1)
  [ -n "$json" ] || json='{"error":"no output"}'
  LAST_JSON=$json
  record "$server" "$case" "$run" "$json" "$extra"
  log "$server $case run $run: $(echo "$json" | head -c 160)"
}

# ramp SERVER CASE RUN MEMBERS STEPS SCENARIO-ARGS...: raises the offered rate step by step
# until the server is the limit (or the generator is); every step is recorded as CASE with
# its step number, the last one also with "final":true. Prints the last step's deliveries/s.
#
# After the first round a ramp starts at the step where that server's first round ended: the
# steps below it were "more" then, and skipping them is a third of a run's time (if the
# server now has headroom there, the ramp goes on up as before).
ramp() {
  local server=$1 case=$2 run=$3 members=$4 steps=$5 step=0 rate verdict=more from
  shift 5
  want "$case" || { echo 0; return 0; }
  from=$(awk -v s="$server" -v c="$case" '$1 == s && $2 == c { print $3; exit }' "$BENCH_TMP/ramp_end.txt" 2>/dev/null)
  for rate in $steps; do
    step=$((step + 1))
    if [ -n "$from" ] && [ "$rate" -lt "$from" ]; then continue; fi
    json=$(load "$@" --rate "$rate" | tail -1)
    [ -n "$json" ] || json='{"error":"no output"}'
    verdict=$(python3 "$TABLE" --verdict "$json" "$((rate * members))" "$SAT_CPU")
    record "$server" "$case" "$run" "$json" ",\"step\":$step,\"offered_per_s\":$((rate * members)),\"limit\":\"${verdict% *}\""
    log "$server $case step $step ($rate/s): $verdict $(echo "$json" | head -c 120)"
    case $verdict in more*) ;; *) break ;; esac
  done
  [ -n "$from" ] || echo "$server $case $rate" >>"$BENCH_TMP/ramp_end.txt"
  echo "${verdict#* }"
}

latency_steps() { # server case run per_s members scenario-args... (paced at 25/50/90 % of per_s)
  local server=$1 case=$2 run=$3 per_s=$4 members=$5 pct rate
  shift 5
  echo "$server $case $per_s" >>"$BENCH_TMP/saturated.txt"
  [ "$LATENCY" = 1 ] || return 0
  for pct in 25 50 90; do
    rate=$(python3 -c "print(max(1, int($per_s * $pct / 100 / $members)))")
    run_case "$server" "$case@$pct%" "$run" ",\"offered_per_s\":$((rate * members))" "$@" --rate "$rate"
  done
}

one_round() { # run server
  local run=$1 server=$2 url s
  if start_server "$server" echo; then
    url="ws://127.0.0.1:$SERVER_PORT/"
    run_case "$server" echo_w1 "$run" "" echo --url "$url" -c 100 --size 64 --window 1 --duration "$DUR" --warmup "$WARM"
    # Echo latency is paced at fractions of the ping-pong rate: half the pipelined rate (0.7-1
    # million msgs/s) is more than one generator core can pace (it is at 99 % from about
    # 300 000/s), so its latencies would be the generator's, the same for every server.
    s=$(python3 -c "import json,sys; print(int(json.loads(sys.argv[1]).get('msgs_per_s') or 0))" "$LAST_JSON")
    run_case "$server" echo_w16 "$run" "" echo --url "$url" -c 100 --size 64 --window 16 --duration "$DUR" --warmup "$WARM"
    if [ "$s" -gt 0 ]; then
      latency_steps "$server" echo "$run" "$s" 1 echo --url "$url" -c 100 --size 64 --window 64 \
        --duration "$LDUR" --warmup "$WARM"
    fi
    stop_server
  fi
  if start_server "$server" chat; then
    url="ws://127.0.0.1:$SERVER_PORT/"
    local common=(--duration "$DUR" --grace "$GRACE" "${CHAT_SETUP[@]}")
    local lat=(--duration "$LDUR" --grace "$GRACE" "${CHAT_SETUP[@]}")
    local r100=(broadcast --url "$url" --rooms 1 --room-size 100 --senders 10)
    local r1000=(broadcast --url "$url" --rooms 1 --room-size 1000 --senders 10)
    local priv=(private --url "$url" -c 1000)
    s=$(ramp "$server" room100 "$run" 100 "$ROOM100_STEPS" "${r100[@]}" "${common[@]}")
    latency_steps "$server" room100 "$run" "$s" 100 "${r100[@]}" "${lat[@]}"
    s=$(ramp "$server" room1000 "$run" 1000 "$ROOM1000_STEPS" "${r1000[@]}" "${common[@]}")
    latency_steps "$server" room1000 "$run" "$s" 1000 "${r1000[@]}" "${lat[@]}"
    s=$(ramp "$server" private "$run" 1 "$PRIVATE_STEPS" "${priv[@]}" "${common[@]}")
    latency_steps "$server" private "$run" "$s" 1 "${priv[@]}" "${lat[@]}"
    stop_server
  fi
  # The quota table is secondary (see above): one round of it keeps the run under 20 min.
  [ -n "$QUOTA_CGROUP" ] && [ "$run" -le "$QUOTA_RUNS" ] || return 0
  # A fresh server per quota case: an overloaded one may still be draining.
  local q=(--duration "$SDUR" --grace "$GRACE" --throttle-cgroup "$QUOTA_CGROUP" "${CHAT_SETUP[@]}")
  if start_server "$server" chat; then
    run_case "$server" quota_room100 "$run" "" broadcast --url "ws://127.0.0.1:$SERVER_PORT/" --rooms 1 \
      --room-size 100 --senders 10 --rate "$QUOTA_ROOM100_RATE" "${q[@]}"
    stop_server
  fi
  if start_server "$server" chat; then
    run_case "$server" quota_room1000 "$run" "" broadcast --url "ws://127.0.0.1:$SERVER_PORT/" --rooms 1 \
      --room-size 1000 --senders 10 --rate "$QUOTA_ROOM1000_RATE" "${q[@]}"
    stop_server
  fi
  if start_server "$server" chat; then
    run_case "$server" quota_private "$run" "" private --url "ws://127.0.0.1:$SERVER_PORT/" -c 1000 \
      --rate "$QUOTA_PRIVATE_RATE" "${q[@]}"
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

# Latency at one offered rate for every server: "50 % of each server's own rate" puts a faster
# server under a higher load, and the generator's own queueing grows with the rate; at one
# rate the difference between servers is theirs.
same_rate() { # case members -> per-second rate (as latency_steps paces it) or nothing
  python3 - "$BENCH_TMP/saturated.txt" "$1" "$SAME_OF" <<'PY'
import statistics, sys
path, case, of = sys.argv[1], sys.argv[2], sys.argv[3].split()
rates = {}
for line in open(path):
    server, c, per_s = line.split()
    if c == case and server in of and float(per_s) > 0:
        rates.setdefault(server, []).append(float(per_s))
if rates:
    print(int(min(statistics.median(v) for v in rates.values()) * 0.5))
PY
}
if [ "$SAME" = 1 ] && [ "$LATENCY" = 1 ] && [ -s "$BENCH_TMP/saturated.txt" ]; then
  E_RATE=$(same_rate echo); R100=$(same_rate room100); R1000=$(same_rate room1000); P_RATE=$(same_rate private)
  log "same-rate latency: echo ${E_RATE:-?}/s, room100 ${R100:-?}, room1000 ${R1000:-?}, private ${P_RATE:-?} deliveries/s"
  for run in $(seq 1 "$SAME_RUNS"); do
    for i in $(seq 0 $((n - 1))); do
      server="${available[$(((i + run - 1) % n))]}"
      if [ -n "$E_RATE" ] && want echo && start_server "$server" echo; then
        run_case "$server" "echo@same" "$run" ",\"offered_per_s\":$E_RATE" echo --url "ws://127.0.0.1:$SERVER_PORT/" \
          -c 100 --size 64 --window 64 --duration "$LDUR" --warmup "$WARM" --rate "$E_RATE"
        stop_server
      fi
      if start_server "$server" chat; then
        url="ws://127.0.0.1:$SERVER_PORT/"
        lat=(--duration "$LDUR" --grace "$GRACE" "${CHAT_SETUP[@]}")
        [ -z "$R100" ] || run_case "$server" "room100@same" "$run" ",\"offered_per_s\":$((R100 / 100 * 100))" \
          broadcast --url "$url" --rooms 1 --room-size 100 --senders 10 --rate $((R100 / 100)) "${lat[@]}"
        [ -z "$R1000" ] || run_case "$server" "room1000@same" "$run" ",\"offered_per_s\":$((R1000 / 1000 * 1000))" \
          broadcast --url "$url" --rooms 1 --room-size 1000 --senders 10 --rate $((R1000 / 1000)) "${lat[@]}"
        [ -z "$P_RATE" ] || run_case "$server" "private@same" "$run" ",\"offered_per_s\":$P_RATE" \
          private --url "$url" -c 1000 --rate "$P_RATE" "${lat[@]}"
        stop_server
      fi
    done
  done
fi

KEEP="$ROOT/target/bench/session-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
cp "$SESSION" "$KEEP" && log "this run's lines: $KEEP (pool runs: python3 tools/bench_table.py A.jsonl B.jsonl)"
python3 "$TABLE" "$SESSION"
echo "
Machine load (1/5/15 min) at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; \
$(( $(date +%s) - STARTED )) s for the whole run.
$(halt_poll_note)"
[ -z "$QUOTA_CGROUP" ] || echo "quota_* cases: server held to ${QUOTA_PCT}% of one core (cgroup $QUOTA_CGROUP)."
log "raw results appended to $OUT; server and generator logs in $BENCH_TMP"

# Optional: the kefu (customer-service) scenario, 1 and 2 workers, synchronous full/normal.
if [ "${KEFU_SCENARIO:-0}" = 1 ]; then
  if [ "${1:-}" = "--quick" ]; then RUNS=1 DUR=3 "$ROOT/tools/bench-kefu.sh"; else "$ROOT/tools/bench-kefu.sh"; fi
fi
