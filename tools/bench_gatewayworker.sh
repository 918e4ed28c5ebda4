#!/usr/bin/env bash
# kefu's gateway against GatewayWorker's own Gateway, both in front of the same PHP
# BusinessWorker, servers alternated, ROUNDS rounds. Two cases (CASES="echo broadcast"):
# - echo: 100 WebSocket clients, 5 000 messages/s, tests/php/echo/Events.php answers each with
#   sendToCurrentClient;
# - broadcast: 2 rooms of 50 clients, one sender per room, 100 says/s in all (5 000
#   deliveries/s), tests/php/chat/Events.php answers each say with one sendToGroup.
# Reports the gateway's CPU per delivered message (kefu-load's /proc sampling of the gateway's
# process tree only; the BusinessWorker is not counted), latency, and how often per message the
# gateway slept (voluntary context switches: one per blocking wait) or was preempted, from /proc.
#
#   cargo build --release --workspace && bash tools/bench_gatewayworker.sh
#
# COUNT=1 adds one run per case and server under `perf stat` counting the gateway's system calls
# (all, and the socket and wait calls by name) and context switches, per delivered message.
# STRACE=1 adds one run per case and server under `strace -c -f` (every system call by name;
# ptrace slows the traced gateway several times over, so those runs are not timed and batch
# more than untraced ones). PERF=DIR records `perf record -e cpu-clock -g` of each gateway into
# DIR during the timed runs of the first round.
set -euo pipefail
cd "$(dirname "$0")/.."
G=${KEFU_GW_PEER:-/work/shared/peers/gatewayworker}
export GW_VENDOR=$G/vendor
P=$PWD/tests/php
K=$PWD/target/release
ROUNDS=${ROUNDS:-2}
CASES=${CASES:-echo broadcast}
SERVERS=${SERVERS:-kefu php}
SECS=${SECS:-10}
# Messages/s offered: echoes, and says (each delivered to a room of 50).
ECHO_RATE=${ECHO_RATE:-5000}
SAY_RATE=${SAY_RATE:-100}
# What COUNT=1 counts: every system call, the socket calls and the waits by name.
COUNTED=raw_syscalls:sys_enter,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_writev,syscalls:sys_enter_readv,syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_pselect6,syscalls:sys_enter_poll,context-switches
D=$(mktemp -d /tmp/kefu-gwbench.XXXXXX)
cat > "$D/kefu.toml" <<TOML
app = "gatewayworker"
workers = 1
listen = ["ws://127.0.0.1:18272"]
pid_file = "$D/kefu.pid"
log_file = "$D/kefu.log"
[gatewayworker]
lan_ip = "127.0.0.1"
start_port = 18300
register_address = ["127.0.0.1:18238"]
register_listen = "127.0.0.1:18238"
TOML
# Whatever is still running when the script ends (an error, ^C) is stopped.
cleanup() {
  "$K/kefu" stop -c "$D/kefu.toml" >/dev/null 2>&1 || true
  GW_RUN_DIR=$D/ref php "$P/register_gateway.php" stop >/dev/null 2>&1 || true
  GW_EVENTS_DIR=$P/echo bw stop
  rm -rf "$D"
}
trap cleanup EXIT
bw() { GW_REGISTER=127.0.0.1:18238 GW_RUN_DIR=$D/bw php "$P/business_worker.php" "$@" >/dev/null 2>&1 || true; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# The pids of a process tree (root first).
tree() {
  python3 - "$1" <<'PY'
import os, sys
root = int(sys.argv[1]); kids = {}
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            st = open(f"/proc/{p}/stat").read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(p))
out = [root]
for x in out:
    out += kids.get(x, [])
print(" ".join(map(str, out)))
PY
}
# Voluntary and involuntary context switches, summed over every task of the tree.
counters() {
  python3 - $(tree "$1") <<'PY'
import glob, sys
t = [0, 0]
for pid in sys.argv[1:]:
    for task in glob.glob(f"/proc/{pid}/task/*"):
        try:
            st = dict(l.split(":\t") for l in open(task + "/status").read().splitlines() if ":\t" in l)
        except OSError:
            continue
        t[0] += int(st["voluntary_ctxt_switches"]); t[1] += int(st["nonvoluntary_ctxt_switches"])
print(*t)
PY
}
load_args() {
  case $1 in
    echo) echo "echo --url ws://127.0.0.1:18272/ -c 100 --rate $ECHO_RATE --duration $SECS" ;;
    broadcast) echo "broadcast --url ws://127.0.0.1:18272/ --rooms 2 --room-size 50 --senders 1 --rate $SAY_RATE --duration $SECS" ;;
  esac
}
# run SERVER CASE [timed|strace|perf]
run() {
  local who=$1 case=$2 how=${3:-timed} pidf
  export GW_EVENTS_DIR=$P/$case
  [ "$case" = broadcast ] && export GW_EVENTS_DIR=$P/chat
  if [ "$who" = kefu ]; then
    "$K/kefu" start -d -c "$D/kefu.toml" >/dev/null; pidf=$D/kefu.pid
  else
    GW_REGISTER_PORT=18238 GW_WS_PORT=18272 GW_INNER_PORT=18300 GW_RUN_DIR=$D/ref \
      php "$P/register_gateway.php" start -d >/dev/null; pidf=$D/ref/reference.pid
  fi
  wait_port 18272
  bw start -d
  sleep 2 # the BusinessWorker links up (clients before that are closed, by both gateways)
  local root tracer="" before after
  root=$(cat "$pidf")
  case $how in
    strace)
      # shellcheck disable=SC2046
      strace -c -f -o "$D/strace" $(for p in $(tree "$root"); do echo -p "$p"; done) &
      tracer=$! ;;
    count)
      perf stat -x, -o "$D/count" -e "$COUNTED" -p "$(tree "$root" | tr ' ' ,)" &
      tracer=$! ;;
    perf)
      perf record -q -e cpu-clock -g -o "$PERF/$who-$case.data" \
        -p "$(tree "$root" | tr ' ' ,)" >/dev/null 2>&1 &
      tracer=$! ;;
  esac
  before=$(counters "$root")
  # shellcheck disable=SC2046
  "$K/kefu-load" $(load_args "$case") --server-pid-file "$pidf" 2>/dev/null | tail -1 > "$D/out.json" || true # "ok" is false: the echo handler greets first
  after=$(counters "$root")
  if [ -n "$tracer" ]; then kill -INT "$tracer"; wait "$tracer" || true; fi
  python3 - "$who" "$case" "$how" "$before" "$after" "$D/out.json" <<'PY'
import json, sys
who, case, how, b, a, out = sys.argv[1:]
d = json.load(open(out)); s = d["server"]
n = d.get("received_in_run") or d.get("delivered") or 0
b = list(map(int, b.split())); a = list(map(int, a.split()))
per = [round((y - x) / max(n, 1), 2) for x, y in zip(b, a)]
print(who, case, how, "offered", d.get("rate_target"), "msgs/s", d.get("msgs_per_s", d.get("deliveries_per_s")), "gateway_cpu_s", s["cpu_s"],
      "us/msg", round(s["cpu_s"] * 1e6 / max(n, 1), 1),
      "p50_us", d["latency_us"]["p50"], "p99_us", d["latency_us"]["p99"],
      "per_msg: sleeps", per[0], "preempted", per[1],
      "lost", d.get("lost", 0), "mismatches", d.get("mismatches", 0), flush=True)
PY
  if [ "$how" = count ]; then
    python3 - "$D/count" "$D/out.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[2])); n = d.get("received_in_run") or d.get("delivered") or 1
rows = [l.split(",") for l in open(sys.argv[1]) if l[0].isdigit()]
print("  system calls per message (perf stat):",
      ", ".join(f"{r[2].split(':')[-1].replace('sys_enter_', '')} {int(r[0]) / n:.2f}" for r in rows if int(r[0])))
PY
  fi
  if [ "$how" = strace ]; then
    echo "  strace -c -f of the $who gateway ($case):"; sed -n '1,/^-.*total/p;/total/p' "$D/strace" | grep -v '^$' | sed 's/^/    /'
  fi
  bw stop
  if [ "$who" = kefu ]; then "$K/kefu" stop -c "$D/kefu.toml" >/dev/null;
  else GW_RUN_DIR=$D/ref php "$P/register_gateway.php" stop >/dev/null 2>&1 || true; fi
  sleep 1
}
for r in $(seq "$ROUNDS"); do
  for case in $CASES; do
    for who in $SERVERS; do
      if [ -n "${PERF:-}" ] && [ "$r" = 1 ]; then run "$who" "$case" perf; else run "$who" "$case"; fi
    done
  done
done
if [ -n "${COUNT:-}" ]; then
  for case in $CASES; do for who in $SERVERS; do run "$who" "$case" count; done; done
fi
if [ -n "${STRACE:-}" ]; then
  for case in $CASES; do for who in $SERVERS; do run "$who" "$case" strace; done; done
fi
