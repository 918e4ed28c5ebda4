# Shared helpers for tools/bench.sh and tools/smoke.sh (source it; needs ROOT set).
# Servers: floor (tools/floor: the least a server can do, the kernel's floor), kefu1 / kefu2
# (kefu with 1 or 2 workers), kefub (another kefu binary, KEFU_BASE_BIN, 1 worker: a
# before/after comparison of a change), bun, node; apps: echo, chat.

KEFU_BIN="${KEFU_BIN:-$ROOT/target/release/kefu}"
KEFU_BASE_BIN="${KEFU_BASE_BIN:-}"
LOAD_BIN="${LOAD_BIN:-$ROOT/target/release/kefu-load}"
FLOOR_BIN="${FLOOR_BIN:-$ROOT/target/release/kefu-floor}"
BUN_BIN="$ROOT/tools/peers/bun/node_modules/.bin/bun"
SERVER_CPUS="${SERVER_CPUS:-0}"   # core(s) for 1-process servers
KEFU2_CPUS="${KEFU2_CPUS:-0,1}"   # 2 workers get both cores (they share core 1 with the generator)
LOAD_CPUS="${LOAD_CPUS:-1}"
SERVER_PID=""
SERVER_PORT=""
# Several benchmarks may run at once on a shared machine: each run gets its own ports (a
# random base unless BENCH_BASE_PORT is set), its own pid file and its own logs, so one run's
# generator never connects to another run's server and one run never stops another's kefu.
NEXT_PORT="${BENCH_BASE_PORT:-$((20000 + RANDOM % 20000))}"
BENCH_TMP="${BENCH_TMP:-$(mktemp -d /tmp/kefu-bench.XXXXXX)}"
KEFU_PID_FILE="$BENCH_TMP/kefu.pid"
LOAD_LOG="$BENCH_TMP/load.log"

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# Guest halt polling (cpuidle-haltpoll, in KVM guests): how long an idle vCPU polls before it
# halts. This VM boots with 0 (haltpoll.guest_halt_poll_ns=0 on its command line), so a
# wake-up of an idle core exits to the hypervisor; the kernel's own default is 200 us.
# HALT_POLL_NS=200000 runs a benchmark with that default and puts the old value back when it
# ends; the default, "keep", leaves the machine as it is. Either way the output says which.
# Measured in one full run (BENCHMARKS.md): echo p50 halves for every server (about 40 -> 21
# us); p99 and the ratios between servers moved, none of it in kefu's favour.
HALT_POLL_NS="${HALT_POLL_NS:-keep}"
HALT_POLL_PARAM=/sys/module/haltpoll/parameters/guest_halt_poll_ns
HALT_POLL_WAS=""
set_halt_poll() {
  [ "$HALT_POLL_NS" != keep ] && [ -w "$HALT_POLL_PARAM" ] || return 0
  HALT_POLL_WAS=$(cat "$HALT_POLL_PARAM")
  echo "$HALT_POLL_NS" >"$HALT_POLL_PARAM" || { HALT_POLL_WAS=""; log "cannot set $HALT_POLL_PARAM"; }
}
restore_halt_poll() {
  [ -z "$HALT_POLL_WAS" ] || echo "$HALT_POLL_WAS" >"$HALT_POLL_PARAM" || true
  HALT_POLL_WAS=""
}
# halt_poll_note: one line for a run's output saying what idle vCPUs did during it.
halt_poll_note() {
  if [ ! -r "$HALT_POLL_PARAM" ]; then
    echo "Guest halt polling: not available (not a KVM guest with cpuidle-haltpoll)."
  elif [ -n "$HALT_POLL_WAS" ]; then
    echo "Guest halt polling during the run: $(cat "$HALT_POLL_PARAM") ns, set for it (it was $HALT_POLL_WAS ns before)."
  else
    echo "Guest halt polling during the run: $(cat "$HALT_POLL_PARAM") ns, as the machine had it."
  fi
}

build_tools() {
  (cd "$ROOT" && cargo build --release -q -p kefu-load -p kefu-floor) || return 1
  "$ROOT/tools/peers/install.sh" >/dev/null 2>&1 || { log "peer install failed (see tools/peers/install.sh)"; return 1; }
}

# kefu_available: true if the kefu binary exists (building it if the crate builds) and its
# `start` subcommand knows --app (the skeleton binary does not).
kefu_available() {
  if [ ! -x "$KEFU_BIN" ]; then
    (cd "$ROOT" && cargo build --release -q --bin kefu >/dev/null 2>&1) || true
  fi
  [ -x "$KEFU_BIN" ] && "$KEFU_BIN" start --help 2>&1 | grep -q -- '--app'
}

# wait_listen PORT: up to 20 s for a listener on 127.0.0.1:PORT.
wait_listen() {
  local port=$1 i
  for i in $(seq 1 200); do
    if ss -ltnH "sport = :$port" 2>/dev/null | grep -q .; then return 0; fi
    sleep 0.1
  done
  return 1
}

# start_server NAME APP: starts it pinned, sets SERVER_PID and SERVER_PORT.
start_server() {
  local name=$1 app=$2 port=$NEXT_PORT
  NEXT_PORT=$((NEXT_PORT + 1))
  local mode=$app
  case $name in
    kefu1|kefu2)
      local workers=${name#kefu} cpus=$SERVER_CPUS
      [ "$workers" = 2 ] && cpus=$KEFU2_CPUS
      taskset -c "$cpus" "$KEFU_BIN" start --app "$app" --listen "websocket://127.0.0.1:$port" \
        --workers "$workers" --pid-file $KEFU_PID_FILE >"$BENCH_TMP/$name.log" 2>&1 &
      ;;
    kefub)
      taskset -c "$SERVER_CPUS" "$KEFU_BASE_BIN" start --app "$app" --listen "websocket://127.0.0.1:$port" \
        --workers 1 --pid-file $KEFU_PID_FILE >"$BENCH_TMP/$name.log" 2>&1 &
      ;;
    floor)
      taskset -c "$SERVER_CPUS" "$FLOOR_BIN" --port "$port" --mode "$mode" >"$BENCH_TMP/$name.log" 2>&1 &
      ;;
    bun)
      taskset -c "$SERVER_CPUS" "$BUN_BIN" "$ROOT/tools/peers/bun/server.js" --port "$port" --mode "$mode" \
        >"$BENCH_TMP/$name.log" 2>&1 &
      ;;
    node)
      taskset -c "$SERVER_CPUS" node "$ROOT/tools/peers/node/server.js" --port "$port" --mode "$mode" \
        >"$BENCH_TMP/$name.log" 2>&1 &
      ;;
    *) log "unknown server $name"; return 1 ;;
  esac
  SERVER_PID=$!
  SERVER_PORT=$port
  if ! wait_listen "$port"; then
    log "$name ($app) did not listen on $port; log: $BENCH_TMP/$name.log"
    stop_server
    return 1
  fi
  sleep 0.3
}

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  if [ -x "$KEFU_BIN" ] && [ -f $KEFU_PID_FILE ] && [ "$(cat $KEFU_PID_FILE 2>/dev/null)" = "$SERVER_PID" ]; then
    "$KEFU_BIN" stop --pid-file $KEFU_PID_FILE >/dev/null 2>&1 || true
  fi
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 50); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  rm -f $KEFU_PID_FILE
  SERVER_PID=""
}

# throttle_cgroup PCT: prints a cgroup directory whose CPU quota is PCT % of one core (period
# 10 ms), creating it under the cgroup v1 cpu controller or cgroup v2; fails without one.
throttle_cgroup() {
  local pct=$1 period=10000 dir
  local quota=$((period * pct / 100))
  [ "$quota" -ge 1000 ] || { log "SAT_QUOTA_PCT below 10 needs a longer period than 10 ms"; return 1; }
  if [ -d /sys/fs/cgroup/cpu ] && [ -f /sys/fs/cgroup/cpu/cgroup.procs ]; then
    dir=/sys/fs/cgroup/cpu/kefu-bench
    mkdir -p "$dir" 2>/dev/null || return 1
    echo "$period" >"$dir/cpu.cfs_period_us" 2>/dev/null || return 1
    echo "$quota" >"$dir/cpu.cfs_quota_us" 2>/dev/null || return 1
  elif [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers; then
    dir=/sys/fs/cgroup/kefu-bench
    echo +cpu >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
    mkdir -p "$dir" 2>/dev/null || return 1
    echo "$quota $period" >"$dir/cpu.max" 2>/dev/null || return 1
  else
    return 1
  fi
  echo "$dir"
}

# load ARGS...: runs kefu-load pinned, bounded by a timeout; prints its JSON line.
load() {
  timeout 300 taskset -c "$LOAD_CPUS" "$LOAD_BIN" "$@" --server-pid "$SERVER_PID" 2>>"$LOAD_LOG"
  return 0
}
