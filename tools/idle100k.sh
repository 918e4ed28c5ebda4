#!/usr/bin/env bash
# Idle-connection capacity: hold ~100,000 idle WebSocket connections to kefu on this machine
# and report the server's memory (RSS and PSS of the whole process tree) per connection.
#
#   tools/idle100k.sh                      # kefu --app echo --workers 8, 6 x 17000 connections
#   SERVER=bun PROCS=1 CONNS=17000 tools/idle100k.sh     # the Bun peer (one process, 20k fds)
#
# Env: SERVER (kefu|bun), WORKERS (8), PROCS (6 generator processes), CONNS (17000 each),
# RATE (5000 connects/s per process), HOLD (20 s), PORT (18700), SETUP_TIMEOUT (30 s).
# One process may hold at most ~19,900 connections (RLIMIT_NOFILE hard limit 20,000 here, not
# raisable without CAP_SYS_RESOURCE), so kefu needs several workers and the generator several
# processes. Output: one JSON summary line on stdout (progress on stderr); the generators'
# raw JSON lines are kept in $OUT (default target/bench/idle-<server>-<time>/).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SERVER="${SERVER:-kefu}"
WORKERS="${WORKERS:-8}"
PROCS="${PROCS:-6}"
CONNS="${CONNS:-17000}"
RATE="${RATE:-5000}"
HOLD="${HOLD:-20}"
PORT="${PORT:-18700}"
SETUP_TIMEOUT="${SETUP_TIMEOUT:-30}"
KEFU_BIN="${KEFU_BIN:-$ROOT/target/release/kefu}"
LOAD_BIN="${LOAD_BIN:-$ROOT/target/release/kefu-load}"
BUN_BIN="$ROOT/tools/peers/bun/node_modules/.bin/bun"
OUT="${OUT:-$ROOT/target/bench/idle-$SERVER-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# Every fd the hard limit allows (workers inherit the master's limit).
ulimit -n "$(ulimit -Hn)"
log "RLIMIT_NOFILE soft=$(ulimit -Sn) hard=$(ulimit -Hn)"
for k in net.core.somaxconn net.ipv4.tcp_max_syn_backlog net.ipv4.ip_local_port_range fs.nr_open fs.file-max; do
  log "$k = $(sysctl -n "$k" 2>/dev/null | tr '\t' ' ')"
done

# tree_pids ROOT: ROOT and all its descendants.
tree_pids() {
  local todo=("$1") pid kids
  while [ ${#todo[@]} -gt 0 ]; do
    pid=${todo[0]}; todo=("${todo[@]:1}")
    echo "$pid"
    kids=$(cat /proc/"$pid"/task/*/children 2>/dev/null)
    for k in $kids; do todo+=("$k"); done
  done
}

# tree_mem ROOT: "processes rss_kb pss_kb" of the tree (smaps_rollup).
tree_mem() {
  local n=0 rss=0 pss=0 p r s
  for p in $(tree_pids "$1"); do
    r=$(awk '/^Rss:/{print $2}' /proc/"$p"/smaps_rollup 2>/dev/null) || continue
    s=$(awk '/^Pss:/{print $2}' /proc/"$p"/smaps_rollup 2>/dev/null) || continue
    [ -n "$r" ] || continue
    n=$((n + 1)); rss=$((rss + r)); pss=$((pss + s))
  done
  echo "$n $rss $pss"
}

# Server-side established connections on PORT.
established() { ss -Htn state established "( sport = :$PORT )" 2>/dev/null | wc -l; }
sock_mem_pages() { awk '/^TCP:/{for(i=1;i<=NF;i++) if($i=="mem") print $(i+1)}' /proc/net/sockstat; }

PIDFILE="$OUT/server.pid"
case $SERVER in
  kefu)
    "$KEFU_BIN" start --app echo --workers "$WORKERS" --listen "websocket://127.0.0.1:$PORT" \
      --pid-file "$PIDFILE" >"$OUT/server.log" 2>&1 &
    ;;
  bun)
    [ -x "$BUN_BIN" ] || "$ROOT/tools/peers/install.sh" >/dev/null
    "$BUN_BIN" "$ROOT/tools/peers/bun/server.js" --port "$PORT" --mode echo >"$OUT/server.log" 2>&1 &
    echo $! >"$PIDFILE"
    ;;
  *) log "SERVER must be kefu or bun"; exit 2 ;;
esac
LAUNCHED=$!
stop() {
  kill -TERM "$LAUNCHED" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$LAUNCHED" 2>/dev/null || return; sleep 0.1; done
  kill -KILL "$LAUNCHED" 2>/dev/null
}
trap stop EXIT
for _ in $(seq 1 200); do
  ss -ltnH "sport = :$PORT" | grep -q . && [ -s "$PIDFILE" ] && break
  sleep 0.1
done
sleep 1
SPID=$(cat "$PIDFILE")
read -r P0 RSS0 PSS0 <<<"$(tree_mem "$SPID")"
SOCK0=$(sock_mem_pages)
log "$SERVER pid $SPID: $P0 processes, RSS ${RSS0} KiB, PSS ${PSS0} KiB before connecting"

START=$(date +%s.%N)
for i in $(seq 1 "$PROCS"); do
  "$LOAD_BIN" connect --url "ws://127.0.0.1:$PORT/" -n "$CONNS" --rate "$RATE" --hold "$HOLD" \
    --setup-timeout "$SETUP_TIMEOUT" --server-pid-file "$PIDFILE" \
    >"$OUT/gen$i.json" 2>"$OUT/gen$i.err" &
done

# Sample the tree while the generators hold: keep the sample with the most connections.
TARGET=$((PROCS * CONNS))
BEST=0; BEST_LINE="0 0 0"; BEST_SOCK=0; PEAK_AT=""
while [ "$(jobs -rp | grep -vc "^$LAUNCHED\$")" -gt 0 ]; do
  sleep 2
  E=$(established)
  if [ "$E" -gt "$BEST" ]; then
    BEST=$E; BEST_LINE=$(tree_mem "$SPID"); BEST_SOCK=$(sock_mem_pages)
    PEAK_AT=$(awk -v s="$START" -v n="$(date +%s.%N)" 'BEGIN{printf "%.1f", n-s}')
  fi
  log "established $E / $TARGET"
done
wait_s=$(awk -v s="$START" -v n="$(date +%s.%N)" 'BEGIN{printf "%.1f", n-s}')
read -r P1 RSS1 PSS1 <<<"$BEST_LINE"

python3 - "$OUT" "$SERVER" "$WORKERS" "$PROCS" "$CONNS" "$RATE" "$HOLD" "$BEST" "$P1" "$RSS0" "$PSS0" \
  "$RSS1" "$PSS1" "$SOCK0" "$BEST_SOCK" "$PEAK_AT" "$wait_s" <<'EOF'
import glob, json, sys
(out, server, workers, procs, conns, rate, hold, best, procs_srv, rss0, pss0, rss1, pss1,
 sock0, sock1, peak_at, wall) = sys.argv[1:]
gens, errors = [], {}
for f in sorted(glob.glob(out + "/gen*.json")):
    try:
        gens.append(json.loads(open(f).read().strip().splitlines()[-1]))
    except Exception as e:
        gens.append({"error": "%s: %s" % (f, e)})
est = sum(g.get("connections", {}).get("established", 0) for g in gens)
failed = sum(g.get("connections", {}).get("failed", 0) for g in gens)
dropped = sum(g.get("connections", {}).get("dropped", 0) for g in gens)
for g in gens:
    for k, v in g.get("connections", {}).get("errors", {}).items():
        errors[k] = errors.get(k, 0) + v
best = int(best)
per = lambda a, b: round((int(a) - int(b)) * 1024 / best, 1) if best else None
summary = {
    "scenario": "idle", "server": server, "workers": int(workers) if server == "kefu" else 1,
    "generator_processes": int(procs), "conns_per_process": int(conns),
    "rate_per_process": float(rate), "hold_s": float(hold),
    "attempted": int(procs) * int(conns), "established": est, "failed": failed,
    "dropped": dropped, "errors": errors,
    "server_established_peak": best, "peak_at_s": float(peak_at or 0),
    "server_processes": int(procs_srv),
    "server_rss_kb": {"before": int(rss0), "peak": int(rss1)},
    "server_pss_kb": {"before": int(pss0), "peak": int(pss1)},
    "rss_bytes_per_conn": per(rss1, rss0), "pss_bytes_per_conn": per(pss1, pss0),
    "kernel_tcp_mem_kb": {"before": int(sock0 or 0) * 4, "peak": int(sock1 or 0) * 4},
    "setup_rate_per_s": [g.get("connections", {}).get("setup_rate_per_s") for g in gens],
    "setup_wall_s_max": max((g.get("setup_wall_s", 0) for g in gens), default=0),
    "generator_cpu_setup_s": round(sum((g.get("generator_cpu_setup") or {}).get("user_s", 0)
        + (g.get("generator_cpu_setup") or {}).get("sys_s", 0) for g in gens), 3),
    "wall_s": float(wall),
    "ok": est == int(procs) * int(conns) and failed == 0 and dropped == 0,
}
print(json.dumps(summary, sort_keys=True))
EOF
