#!/usr/bin/env bash
# Reload hand-over at scale: one kefu worker holding N idle WebSocket connections (19,000 by
# default: the fd limit here is 20,000 per process) is replaced by `kefu reload`; reports how
# long the hand-over took (both sides' log lines and the `reload` command's wall time), the
# worker's memory before and after, and whether the generator lost any connection.
#
#   tools/handover19k.sh                 # CONNS=19000 HOLD=25 PORT=18800
#   TLS=1 tools/handover19k.sh           # the same over wss:// (TLS 1.3; a throwaway CA made
#                                        # with openssl): every session moves with its keys
#
# Output: one JSON line on stdout (progress on stderr); files in $OUT.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CONNS="${CONNS:-19000}"
RATE="${RATE:-5000}"
HOLD="${HOLD:-25}"
PORT="${PORT:-18800}"
KEFU_BIN="${KEFU_BIN:-$ROOT/target/release/kefu}"
LOAD_BIN="${LOAD_BIN:-$ROOT/target/release/kefu-load}"
OUT="${OUT:-$ROOT/target/bench/handover-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
ulimit -n "$(ulimit -Hn)"
TLS="${TLS:-0}"
K=("$KEFU_BIN")
PIDF=(--pid-file "$OUT/k.pid")
URL="ws://127.0.0.1:$PORT/"
LISTEN=(--listen "websocket://127.0.0.1:$PORT")
CA=()
if [ "$TLS" = 1 ]; then
  (cd "$OUT" && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout ca.key -out ca.pem -days 1 -subj /CN=bench-ca 2>/dev/null &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem \
      -out c.csr -subj /CN=localhost 2>/dev/null &&
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext &&
    openssl x509 -req -in c.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem \
      -days 1 -extfile ext 2>/dev/null) || { log "openssl failed"; exit 1; }
  printf '[[listen]]\nurl = "wss://127.0.0.1:%s"\ncert = "%s/cert.pem"\nkey = "%s/key.pem"\n' \
    "$PORT" "$OUT" "$OUT" >"$OUT/kefu.toml"
  URL="wss://127.0.0.1:$PORT/"
  LISTEN=(-c "$OUT/kefu.toml")
  CA=(--ca "$OUT/ca.pem")
fi
"${K[@]}" start -d --app echo --workers 1 "${LISTEN[@]}" \
  --log-file "$OUT/k.log" "${PIDF[@]}" >"$OUT/start.out" 2>&1 || { cat "$OUT/start.out" >&2; exit 1; }
trap '"${K[@]}" stop "${PIDF[@]}" >/dev/null 2>&1' EXIT
worker_pid() { "${K[@]}" status --json "${PIDF[@]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["workers"][0]["pid"])'; }
rss_kb() { awk '/^VmRSS:/{print $2}' /proc/"$1"/status; }
hwm_kb() { awk '/^VmHWM:/{print $2}' /proc/"$1"/status; }
# Server-side sockets in ESTABLISHED (01) on PORT, from /proc (ss may see none in a container).
established() {
  awk -v p="$(printf ':%04X' "$PORT")" 'substr($2, length($2) - 4) == p && $4 == "01"' \
    /proc/net/tcp | wc -l
}

"$LOAD_BIN" connect --url "$URL" "${CA[@]}" -n "$CONNS" --rate "$RATE" --hold "$HOLD" \
  --setup-timeout 30 --server-pid-file "$OUT/k.pid" >"$OUT/gen.json" 2>"$OUT/gen.err" &
GEN=$!
# All set up (or, on a loaded machine where a few time out, 95 % and no growth for 2 s).
LAST=0
for _ in $(seq 1 300); do
  E=$(established)
  [ "$E" -ge "$CONNS" ] && break
  [ "$E" -ge $((CONNS * 95 / 100)) ] && [ "$E" -eq "$LAST" ] && break
  LAST=$E; sleep 2
done
E0=$(established); W0=$(worker_pid); R0=$(rss_kb "$W0")
log "established $E0, worker $W0 RSS ${R0} KiB; reloading"
T0=$(date +%s.%N)
"${K[@]}" reload "${PIDF[@]}" >"$OUT/reload.out" 2>&1
T1=$(date +%s.%N)
W1=$(worker_pid); R1=$(rss_kb "$W1"); H1=$(hwm_kb "$W1"); E1=$(established)
log "reload done: worker $W1 RSS ${R1} KiB, established $E1"
wait "$GEN"
python3 - "$OUT" "$CONNS" "$E0" "$E1" "$R0" "$R1" "$T0" "$T1" "$H1" "$TLS" <<'PY'
import json, re, sys
out, conns, e0, e1, r0, r1, t0, t1, h1, tls = sys.argv[1:]
log = open(out + "/k.log").read()
sent = re.search(r"handed (\d+) connections and (\d+) bus links over in (\d+) ms", log)
took = re.search(r"took over (\d+) connections as incarnation \w+ in (\d+) ms", log)
# The stall of the copy-ahead hand-over (absent from the log of older builds).
held = re.search(r"clients held for the last (\d+) ms", log)
inst = re.search(r"installed in the last (\d+) ms", log)
gen = json.loads(open(out + "/gen.json").read().strip().splitlines()[-1])
c = gen.get("connections", {})
print(json.dumps({
    "scenario": "handover", "tls": tls == "1", "connections": int(conns),
    "established_before": int(e0), "established_after": int(e1),
    "handed_over": int(sent.group(1)) if sent else None,
    "old_worker_send_ms": int(sent.group(3)) if sent else None,
    "new_worker_receive_ms": int(took.group(2)) if took else None,
    "old_worker_clients_held_ms": int(held.group(1)) if held else None,
    "new_worker_install_ms": int(inst.group(1)) if inst else None,
    "reload_command_s": round(float(t1) - float(t0), 3),
    "worker_rss_kb": {"before": int(r0), "after": int(r1), "new_worker_peak": int(h1)},
    "generator": {k: c.get(k) for k in ("established", "failed", "dropped")},
}, sort_keys=True))
PY
