#!/usr/bin/env bash
# User-space instructions per delivery, counted by valgrind's callgrind: repeatable whatever
# else the machine runs (it counts instructions, not time), so a change to the hot path can be
# measured on a busy machine. The kernel's share is not counted (see bench.sh's user/kernel
# table for that).
#
#   tools/callgrind.sh                         # kefu1 and floor, every case
#   SERVERS="kefu1" CASES="room100" tools/callgrind.sh
#   KEFU_BIN=/tmp/kefu-before SERVERS=kefu1 tools/callgrind.sh   # another build
#   TLS=1 SERVERS=kefu1 CASES=room100 tools/callgrind.sh   # kefu over wss:// (a throwaway CA)
#
# Each server starts under callgrind with instrumentation off; kefu-load switches it on just
# before its measured window and off after the drain (--window-cmd), so setup and teardown are
# not counted. The chat rates are low enough that every message gets a loop turn of its own
# even ~50x slower under valgrind (one say -> a whole room's deliveries in one turn; one private
# message -> two), so the counts do not depend on how the machine's load batched them; the
# echo cases are closed loops, their batching is their own. Prints one line per case: Ir (instructions) per delivery
# (echo: per message answered), the top user-space symbols (self cost) go to
# target/callgrind/SERVER.CASE.top. Bounded: each case runs DUR s plus setup and drain.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/tools/bench-lib.sh"
SERVERS="${SERVERS:-floor kefu1}"
CASES="${CASES:-echo_w1 echo_w16 room100 room1000 private}"
DUR="${DUR:-3}"
REPEAT="${REPEAT:-3}"   # runs per server and case; the summary gives their median
OUTDIR="$ROOT/target/callgrind"
mkdir -p "$OUTDIR"
(cd "$ROOT" && cargo build --release -q -p kefu-load -p kefu-floor)
command -v valgrind >/dev/null || { log "valgrind missing (apt-get install valgrind)"; exit 1; }

HOOK="$(mktemp /tmp/cg-hook.XXXXXX.sh)"
trap 'stop_cg; rm -f "$HOOK"' EXIT
CG_PID=""
stop_cg() {
  [ -n "$CG_PID" ] || return 0
  if [ -f "$BENCH_TMP/cg.pid" ]; then "$KEFU_BIN" stop --pid-file "$BENCH_TMP/cg.pid" >/dev/null 2>&1 || true; fi
  kill -TERM "$CG_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 100); do kill -0 "$CG_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$CG_PID" 2>/dev/null || true
  wait "$CG_PID" 2>/dev/null || true
  rm -f "$BENCH_TMP/cg.pid"
  CG_PID=""
}

# The hook switches instrumentation of the server's whole process tree on (start) or off and
# dumps the counts (stop).
cat >"$HOOK" <<'EOF'
#!/bin/sh
root=$CG_ROOT
pids="$root $(pgrep -P "$root" | tr '\n' ' ')"
for p in $pids; do
  case $1 in
    start) callgrind_control -z "$p" >/dev/null 2>&1; callgrind_control -i on "$p" >/dev/null 2>&1 ;;
    stop) callgrind_control -i off "$p" >/dev/null 2>&1; callgrind_control -d "window" "$p" >/dev/null 2>&1 ;;
  esac
done
EOF
chmod +x "$HOOK"

start_cg() { # server app port prefix
  local server=$1 app=$2 port=$3 prefix=$4
  local vg=(valgrind --tool=callgrind --instr-atstart=no --trace-children=yes
    "--callgrind-out-file=$prefix.%p.out")
  case $server in
    floor) taskset -c "$SERVER_CPUS" "${vg[@]}" "$FLOOR_BIN" --port "$port" --mode "$app" >"$prefix.log" 2>&1 & ;;
    kefu1) if [ "${TLS:-0}" = 1 ]; then
        printf 'app = "%s"\nworkers = 1\n[limits]\nmax_connections_per_ip = 0\n[[listen]]\nurl = "wss://127.0.0.1:%s"\ncert = "%s"\nkey = "%s"\n' \
          "$app" "$port" "$BENCH_TMP/tls.pem" "$BENCH_TMP/tls.key" >"$BENCH_TMP/cg.toml"
        taskset -c "$SERVER_CPUS" "${vg[@]}" "$KEFU_BIN" start -c "$BENCH_TMP/cg.toml" \
          --pid-file "$BENCH_TMP/cg.pid" >"$prefix.log" 2>&1 &
      else
        taskset -c "$SERVER_CPUS" "${vg[@]}" "$KEFU_BIN" start --app "$app" \
          --listen "websocket://127.0.0.1:$port" --workers 1 --pid-file "$BENCH_TMP/cg.pid" >"$prefix.log" 2>&1 &
      fi ;;
    *) log "callgrind.sh knows floor and kefu1, not $server"; return 1 ;;
  esac
  CG_PID=$!
  local i
  for i in $(seq 1 600); do
    if ss -ltnH "sport = :$port" 2>/dev/null | grep -q .; then sleep 1; return 0; fi
    sleep 0.2
  done
  log "$server did not listen on $port"
  return 1
}

# TLS=1: a throwaway CA and a P-256 `localhost` certificate (as tools/tls_bench.py makes).
if [ "${TLS:-0}" = 1 ]; then
  ( cd "$BENCH_TMP"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
      -days 2 -subj "/CN=bench CA" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key -out tls.csr \
      -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >tls.ext
    openssl x509 -req -in tls.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out tls.crt -days 2 \
      -extfile tls.ext 2>/dev/null
    cat tls.crt ca.pem >tls.pem )
fi

port=$NEXT_PORT
printf '%-8s %-10s %14s %12s %10s  %s\n' server case instructions deliveries "Ir/deliv" "load"
SUMMARY="$(mktemp /tmp/cg-summary.XXXXXX)"
for server in $SERVERS; do
  for case in $CASES; do
  for rep in $(seq 1 "$REPEAT"); do
    port=$((port + 1))
    prefix="$OUTDIR/$server.$case"
    rm -f "$prefix".*.out* "$prefix.top"
    app=chat; [[ $case == echo* ]] && app=echo
    start_cg "$server" "$app" "$port" "$prefix" || { stop_cg; continue; }
    url="ws://127.0.0.1:$port/"
    common=(--server-pid "$CG_PID" --window-cmd "CG_ROOT=$CG_PID $HOOK" --setup-timeout 60)
    if [ "${TLS:-0}" = 1 ] && [ "$server" = kefu1 ]; then
      common+=(--url "wss://localhost:$port/" --ca "$BENCH_TMP/ca.pem")
    else
      common+=(--url "$url")
    fi
    case $case in
      echo_w1) args=(echo -c 100 --size 64 --window 1 --duration "$DUR" --warmup 1) ;;
      echo_w16) args=(echo -c 100 --size 64 --window 16 --duration "$DUR" --warmup 1) ;;
      room100) args=(broadcast --rooms 1 --room-size 100 --senders 1 --rate 20 --duration "$DUR" --grace 30 --connect-rate 200) ;;
      room1000) args=(broadcast --rooms 1 --room-size 1000 --senders 1 --rate 5 --duration "$DUR" --grace 30 --connect-rate 200) ;;
      private) args=(private -c 1000 --rate 200 --duration "$DUR" --grace 30 --connect-rate 200) ;;
      *) log "unknown case $case"; stop_cg; continue ;;
    esac
    json=$(timeout 600 taskset -c "$LOAD_CPUS" "$LOAD_BIN" "${args[@]}" "${common[@]}" 2>>"$prefix.log" | tail -1)
    stop_cg
    n=$(python3 -c "
import json, sys
r = json.loads(sys.argv[1])
print(r.get('delivered') or r.get('received_in_run') or 0)" "${json:-{\}}")
    files=$(ls "$prefix".*.out.*window* 2>/dev/null || ls "$prefix".*.out.* 2>/dev/null || true)
    if [ -z "$files" ] || [ "$n" = 0 ]; then
      log "$server $case: no counts (log: $prefix.log)"; continue
    fi
    ir=0
    for f in $files; do
      t=$(grep -m1 '^totals:' "$f" | awk '{print $2}')
      ir=$((ir + ${t:-0}))
    done
    # The process that did the work (kefu's worker, not its master) gets the symbol list.
    big=$(for f in $files; do echo "$(grep -m1 '^totals:' "$f" | awk '{print $2}') $f"; done | sort -n | tail -1 | cut -d' ' -f2)
    callgrind_annotate --inclusive=no "$big" 2>/dev/null | sed -n '/file:function/,$p' | sed -n '3,32p' >"$prefix.top" || true
    printf '%-8s %-10s %14s %12s %10s  %s\n' "$server" "$case" "$ir" "$n" "$((ir / n))" "${args[*]:0:12}"
    echo "$server $case $((ir / n))" >>"$SUMMARY"
  done
  done
done
echo
echo "median of $REPEAT runs (Ir per delivery; echo: per message), all runs in brackets:"
python3 - "$SUMMARY" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    server, case, ir = line.split()
    runs.setdefault((server, case), []).append(int(ir))
for (server, case), v in runs.items():
    print(f"{server:8} {case:10} {statistics.median(v):>8.0f}  {sorted(v)}")
PY
rm -f "$SUMMARY"
