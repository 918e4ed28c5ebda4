#!/usr/bin/env bash
# The kefu (customer-service) scenario: stored-and-acked messages/s, ack and delivery latency,
# lost/duplicated, for kefu --app kefu with 1 and 2 workers and both [kefu] synchronous modes.
#
#   tools/bench-kefu.sh                  # 2 runs per case, 10 s each (about 2 min)
#   RUNS=1 DUR=5 SYNCS=normal WORKERS_LIST=1 tools/bench-kefu.sh
#   KEFU_SCENARIO=1 tools/bench.sh       # runs this after the main matrix
#
# Env: AGENTS (4), VISITORS (40), RATE (500 visitor msgs/s in total), REPLY_EVERY (10: agents
# answer every 10th message), DUR (10 s), RUNS (2), SYNCS ("full normal"),
# WORKERS_LIST ("1 2"), BASE_PORT (18650).
# Every run gets a fresh data dir (business + agents created with the CLI), so earlier runs'
# open conversations do not fill the agents' slots. The server's per-connection rate limit is
# raised (rate_per_sec) so the offered load, not the limiter, is measured.
# Raw JSON lines: target/bench/kefu-results.jsonl; markdown table on stdout.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/tools/bench-lib.sh"

AGENTS="${AGENTS:-4}"
VISITORS="${VISITORS:-40}"
RATE="${RATE:-500}"
REPLY_EVERY="${REPLY_EVERY:-10}"
DUR="${DUR:-10}"
RUNS="${RUNS:-2}"
SYNCS="${SYNCS:-full normal}"
WORKERS_LIST="${WORKERS_LIST:-1 2}"
PORT="${BASE_PORT:-18650}"
BID=shop1
MAX=$(((VISITORS + AGENTS - 1) / AGENTS + 1))

mkdir -p "$ROOT/target/bench"
OUT="$ROOT/target/bench/kefu-results.jsonl"
SESSION="$(mktemp /tmp/bench-kefu.XXXXXX.jsonl)"
DATA=""
KPID=""
cleanup() {
  if [ -n "$KPID" ]; then
    kill -TERM "$KPID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$KPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$KPID" 2>/dev/null
    wait "$KPID" 2>/dev/null
    KPID=""
  fi
  [ -n "$DATA" ] && rm -rf "$DATA"
  DATA=""
}
trap 'cleanup; rm -f "$SESSION"' EXIT

(cd "$ROOT" && cargo build --release -q -p kefu-load) || { log "kefu-load build failed"; exit 1; }
kefu_available || { log "skipping: $KEFU_BIN missing or has no 'start --app'"; exit 0; }

# start_kefu SYNC WORKERS: fresh data dir, business, agents; kefu --app kefu pinned.
start_kefu() {
  local sync=$1 workers=$2 cpus=$SERVER_CPUS i
  [ "$workers" -ge 2 ] && cpus=$KEFU2_CPUS
  DATA=$(mktemp -d /tmp/bench-kefu-data.XXXXXX)
  cat >"$DATA/kefu.toml" <<EOF
[kefu]
synchronous = "$sync"
rate_per_sec = 1000.0
rate_burst = 2000.0
# Every simulated visitor comes from 127.0.0.1: the per-address abuse limits are off.
visitor_new_per_ip = { per_min = 0, burst = 0 }
conv_new_per_ip = { per_min = 0, burst = 0 }
visitor_msg_per_ip = { per_min = 0, burst = 0 }
EOF
  "$KEFU_BIN" business add -c "$DATA/kefu.toml" --data-dir "$DATA" --bid "$BID" --name Bench >/dev/null || return 1
  : >"$DATA/agents.txt"
  for i in $(seq 1 "$AGENTS"); do
    printf '%s\n' "pw-$i-bench" | "$KEFU_BIN" agent add -c "$DATA/kefu.toml" --data-dir "$DATA" \
      --bid "$BID" --id "agent$i" --name "Agent $i" --password-stdin --max "$MAX" >/dev/null || return 1
    echo "agent$i:pw-$i-bench" >>"$DATA/agents.txt"
  done
  PORT=$((PORT + 1))
  taskset -c "$cpus" "$KEFU_BIN" start -c "$DATA/kefu.toml" --data-dir "$DATA" --app kefu \
    --workers "$workers" --listen "websocket://127.0.0.1:$PORT" --pid-file "$DATA/kefu.pid" \
    >"$DATA/server.log" 2>&1 &
  KPID=$!
  wait_listen "$PORT" || { log "kefu did not listen; log: $(tail -5 "$DATA/server.log")"; return 1; }
  sleep 0.5
}

for sync in $SYNCS; do
  for workers in $WORKERS_LIST; do
    for run in $(seq 1 "$RUNS"); do
      if ! start_kefu "$sync" "$workers"; then cleanup; continue; fi
      json=$(timeout 120 taskset -c "$LOAD_CPUS" "$LOAD_BIN" kefu --url "ws://127.0.0.1:$PORT/ws" \
        --http "http://127.0.0.1:$PORT" --bid "$BID" --agents "$AGENTS" \
        --agent-password-file "$DATA/agents.txt" --visitors "$VISITORS" --rate "$RATE" \
        --reply-every "$REPLY_EVERY" --duration "$DUR" --grace 10 --server-rate-limit 1000 \
        --server-pid "$KPID" 2>>/tmp/bench-kefu-load.log | tail -1)
      [ -n "$json" ] || json='{"error":"no output"}'
      line="{\"bench\":{\"server\":\"kefu$workers\",\"case\":\"kefu-$sync\",\"sync\":\"$sync\",\"workers\":$workers,\"run\":$run,\"at\":\"$(date -u +%FT%TZ)\"},\"result\":$json}"
      echo "$line" >>"$OUT"
      echo "$line" >>"$SESSION"
      log "kefu$workers sync=$sync run $run: $(echo "$json" | head -c 200)"
      cleanup
    done
  done
done

python3 - "$SESSION" "$AGENTS" "$VISITORS" "$RATE" "$REPLY_EVERY" "$DUR" <<'EOF'
import json, statistics, sys
path, agents, visitors, rate, reply, dur = sys.argv[1:]
rows = {}
for line in open(path):
    rec = json.loads(line)
    b = rec["bench"]
    rows.setdefault((b["sync"], b["workers"]), []).append(rec["result"])
print(f"\n### kefu scenario: {agents} agents, {visitors} visitors, {rate} visitor msgs/s, "
      f"agents reply to 1 in {reply}, {dur} s (median run by acked msgs/s)\n")
print("| sync | workers | runs ok | acked msgs/s | ack p50 / p99 µs | delivery p50 / p99 µs "
      "| lost | dup | seq out-of-order | routed/queued | server CPU-s per 1000 msgs |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for (sync, workers), rs in sorted(rows.items()):
    good = [r for r in rs if "error" not in r]
    ok = sum(1 for r in good if r.get("ok"))
    if not good:
        print(f"| {sync} | {workers} | 0/{len(rs)} | error: {rs[0].get('error')} |||||||||")
        continue
    good.sort(key=lambda r: r.get("acked_per_s") or 0)
    m = good[(len(good) - 1) // 2]
    a, d = m["ack_latency_us"], m["delivery_latency_us"]["all"]
    print(f"| {sync} | {workers} | {ok}/{len(rs)} | {m['acked_per_s']:.0f} | {a['p50']} / {a['p99']} "
          f"| {d['p50']} / {d['p99']} | {sum(r['lost'] for r in good)} "
          f"| {sum(r['duplicated'] for r in good)} | {sum(r['seq']['out_of_order'] for r in good)} "
          f"| {m['routed']}/{m['queued']} | {m.get('server_cpu_s_per_1000_msgs')} |")
EOF
