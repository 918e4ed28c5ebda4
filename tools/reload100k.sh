#!/usr/bin/env bash
# Reload hand-over at scale across workers: kefu (`--app chat`, WORKERS workers) holds about
# 100,000 idle WebSocket connections (PROCS generator processes of CONNS each; one process may
# hold at most ~19,900 fds here, and each generator binds its clients to source addresses
# 127.0.0.1-254, so the ~28k ephemeral ports of one address are never the limit) while a
# workerman-chat room of ROOM members broadcasts BCAST says/s. `kefu reload` then hands every
# connection to the new workers. Reports: the reload's times (the command's wall time, the
# master's "reload complete" line, each old worker's send and each new worker's receive),
# the server tree's memory before, during (peak) and after, whether any connection was lost,
# and the broadcast's delivery latency over a window that holds the reload, next to a
# baseline window just before it (same load, no reload).
#
#   tools/reload100k.sh            # WORKERS=6 PROCS=6 CONNS=16700 ROOM=100 BCAST=100
#   PERF=1 tools/reload100k.sh     # also `perf record -a -g` over the reload ($OUT/perf.data)
#   AUTOGROUP_NICE=-10 tools/reload100k.sh   # weigh the server's session (`start -d` makes
#       one: with sched_autogroup, all its processes share one session's CPU share) like a
#       dedicated service on a machine others are loading; needs root
#
# Bounded: the generators hold for HOLD seconds once set up and exit; the server is stopped on
# exit.
# Output: one JSON line on stdout (progress on stderr); files in $OUT.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORKERS="${WORKERS:-6}"
PROCS="${PROCS:-6}"
CONNS="${CONNS:-16700}"
RATE="${RATE:-1000}"
HOLD="${HOLD:-60}"
ROOM="${ROOM:-100}"
BCAST="${BCAST:-100}"
WINDOW="${WINDOW:-8}"
PERF="${PERF:-0}"
AUTOGROUP_NICE="${AUTOGROUP_NICE:-}"
PORT="${PORT:-$((21000 + RANDOM % 20000))}"
KEFU_BIN="${KEFU_BIN:-$ROOT/target/release/kefu}"
LOAD_BIN="${LOAD_BIN:-$ROOT/target/release/kefu-load}"
OUT="${OUT:-$ROOT/target/bench/reload100k-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
ulimit -n "$(ulimit -Hn)"
K=("$KEFU_BIN")
PIDF=(--pid-file "$OUT/k.pid")
URL="ws://127.0.0.1:$PORT/"
"${K[@]}" start -d --app chat --workers "$WORKERS" --listen "websocket://127.0.0.1:$PORT" \
  --log-file "$OUT/k.log" "${PIDF[@]}" >"$OUT/start.out" 2>&1 || { cat "$OUT/start.out" >&2; exit 1; }
GENS=()
cleanup() {
  for g in "${GENS[@]}"; do kill "$g" 2>/dev/null; done
  "${K[@]}" stop "${PIDF[@]}" >/dev/null 2>&1
}
trap cleanup EXIT
MASTER=$(cat "$OUT/k.pid")
if [ -n "$AUTOGROUP_NICE" ]; then
  echo "$AUTOGROUP_NICE" >/proc/"$MASTER"/autogroup || log "cannot set the server's autogroup nice"
  log "server session: $(cat /proc/"$MASTER"/autogroup)"
fi

tree_pids() {
  local todo=("$1") pid
  while [ ${#todo[@]} -gt 0 ]; do
    pid=${todo[0]}; todo=("${todo[@]:1}")
    echo "$pid"
    for k in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do todo+=("$k"); done
  done
}
# "rss_kb pss_kb" of the server tree.
tree_mem() {
  local rss=0 pss=0 r s
  for p in $(tree_pids "$MASTER"); do
    r=$(awk '/^Rss:/{print $2}' /proc/"$p"/smaps_rollup 2>/dev/null)
    s=$(awk '/^Pss:/{print $2}' /proc/"$p"/smaps_rollup 2>/dev/null)
    [ -n "$r" ] && [ -n "$s" ] || continue
    rss=$((rss + r)); pss=$((pss + s))
  done
  echo "$rss $pss"
}
# Connections the workers hold, by their own count (`kefu status`; ss does not see every
# socket in every sandbox).
established() {
  "${K[@]}" status --json "${PIDF[@]}" 2>/dev/null |
    python3 -c 'import json,sys; print(sum(w.get("connections", 0) for w in json.load(sys.stdin)["workers"]))' 2>/dev/null || echo 0
}
TARGET=$((PROCS * CONNS))

for i in $(seq 1 "$PROCS"); do
  "$LOAD_BIN" connect --url "$URL" -n "$CONNS" --rate "$RATE" --hold "$HOLD" \
    --setup-timeout 60 >"$OUT/gen$i.json" 2>"$OUT/gen$i.err" &
  GENS+=($!)
done
for _ in $(seq 1 300); do
  [ "$(established)" -ge "$TARGET" ] && break
  sleep 0.5
done
E0=$(established)
read -r RSS0 PSS0 <<<"$(tree_mem)"
log "established $E0 / $TARGET; server tree RSS ${RSS0} KiB PSS ${PSS0} KiB"
bcast() { # name: one broadcast window of WINDOW seconds
  "$LOAD_BIN" broadcast --url "$URL" --rooms 1 --room-size "$ROOM" --senders 10 --rate "$BCAST" \
    --duration "$WINDOW" --grace 10 --connect-rate 2000 --setup-timeout 30 \
    >"$OUT/$1.json" 2>"$OUT/$1.err"
}
log "baseline broadcast window (${WINDOW}s, no reload)"
bcast base
log "broadcast window with a reload in it"
bcast reload &
BC=$!
GENS+=($BC)
# The room is set up once its members are connected: then the window runs; reload a third in.
for _ in $(seq 1 300); do
  [ "$(established)" -ge $((E0 + ROOM)) ] && break
  sleep 0.1
done
sleep "$(python3 -c "print($WINDOW / 3)")"
PEAK="0 0"
( while kill -0 $BC 2>/dev/null; do tree_mem; sleep 0.2; done ) >"$OUT/mem.txt" &
MEMS=$!
if [ "$PERF" = 1 ]; then
  perf record -e cpu-clock -a -g -F 499 -o "$OUT/perf.data" >"$OUT/perf.err" 2>&1 &
  PERF_PID=$!
  sleep 0.5
fi
T0=$(date +%s.%N)
"${K[@]}" reload "${PIDF[@]}" >"$OUT/reload.out" 2>&1
T1=$(date +%s.%N)
if [ "$PERF" = 1 ]; then kill -INT "$PERF_PID"; wait "$PERF_PID"; fi
log "reload: $(cat "$OUT/reload.out") ($(python3 -c "print(round($T1 - $T0, 3))") s)"
wait $BC
kill $MEMS 2>/dev/null; wait $MEMS 2>/dev/null
E1=$(established)
read -r RSS1 PSS1 <<<"$(tree_mem)"
log "after: established $E1; server tree RSS ${RSS1} KiB PSS ${PSS1} KiB; waiting for the generators"
for g in "${GENS[@]}"; do wait "$g" 2>/dev/null; done
GENS=()
AUTOGROUP_NICE="$AUTOGROUP_NICE" python3 - "$OUT" "$TARGET" "$E0" "$E1" "$RSS0" "$PSS0" "$RSS1" "$PSS1" "$T0" "$T1" "$WORKERS" <<'PY'
import glob, json, os, re, sys
out, target, e0, e1, rss0, pss0, rss1, pss1, t0, t1, workers = sys.argv[1:]
log = open(out + "/k.log").read()
SCHED = r" \((\d+) ms on a CPU, (\d+) ms waiting for one\)"
num = lambda m: tuple(int(x) if x else None for x in m)
# "clients held" (old worker: its clients unread, from the end of the copy to the commit) and
# "installed" (successor: from Done to its loop) are the stall; builds before the copy-ahead
# hand-over print neither (their whole send and receive stalled the clients).
sent = [num(m) for m in re.findall(r"handed (\d+) connections and (\d+) bus links over in (\d+) ms" + SCHED + r"(?:, clients held for the last (\d+) ms)?", log)]
took = [num(m) for m in re.findall(r"took over (\d+) connections as incarnation \w+ in (\d+) ms" + SCHED + r"(?:, installed in the last (\d+) ms)?", log)]
done = re.search(r"reload complete in (\d+) ms(?: \(connections handed over in (\d+) ms\))?", log)
peak = [tuple(map(int, l.split())) for l in open(out + "/mem.txt") if len(l.split()) == 2]
gens = [json.loads(open(f).read().strip().splitlines()[-1]) for f in sorted(glob.glob(out + "/gen*.json"))]
conn = lambda k: sum(g.get("connections", {}).get(k, 0) for g in gens)
def window(name):
    j = json.loads(open(out + "/" + name + ".json").read().strip().splitlines()[-1])
    lat = j.get("latency_us", {})
    return {"delivered": j.get("delivered"), "lost": j.get("lost"), "duplicated": j.get("duplicated"),
            "dropped": j.get("connections", {}).get("dropped"),
            "latency_us": {k: lat.get(k) for k in ("p50", "p99", "p999", "max") if k in lat}}
print(json.dumps({
    "scenario": "reload100k", "workers": int(workers), "autogroup_nice": os.environ.get("AUTOGROUP_NICE") or None, "connections": int(target),
    "established_before": int(e0), "established_after": int(e1),
    "idle_generators": {"established": conn("established"), "failed": conn("failed"), "dropped": conn("dropped")},
    "handed_over": sum(s[0] for s in sent),
    "reload_command_s": round(float(t1) - float(t0), 3),
    "master_reload_ms": int(done.group(1)) if done else None,
    "master_handover_ms": int(done.group(2)) if done and done.group(2) else None,
    "old_worker_send_ms": [s[2] for s in sent], "new_worker_receive_ms": [t[1] for t in took],
    "old_worker_send_cpu_ms": [s[3] for s in sent], "new_worker_receive_cpu_ms": [t[2] for t in took],
    "old_worker_send_runqueue_ms": [s[4] for s in sent], "new_worker_receive_runqueue_ms": [t[3] for t in took],
    "old_worker_clients_held_ms": [s[5] for s in sent], "new_worker_install_ms": [t[4] for t in took],
    "server_tree_kb": {"rss_before": int(rss0), "pss_before": int(pss0),
                       "rss_peak": max((p[0] for p in peak), default=None),
                       "pss_peak": max((p[1] for p in peak), default=None),
                       "rss_after": int(rss1), "pss_after": int(pss1)},
    "broadcast_baseline": window("base"), "broadcast_with_reload": window("reload"),
}, sort_keys=True))
PY
