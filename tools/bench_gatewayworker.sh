#!/usr/bin/env bash
# kefu's gateway against GatewayWorker's own Gateway, both in front of the same PHP
# BusinessWorker (the peer folder's examples/echo-events), servers alternated, ROUNDS rounds.
# Reports gateway CPU per echoed message (client -> gateway -> BusinessWorker -> gateway ->
# client) and latency, from kefu-load's /proc sampling of the gateway's process tree only.
#
#   cargo build --release --workspace && bash tools/bench_gatewayworker.sh
set -euo pipefail
cd "$(dirname "$0")/.."
G=${KEFU_GW_PEER:-/work/shared/peers/gatewayworker}
export GW_VENDOR=$G/vendor
P=$PWD/tests/php
K=$PWD/target/release
ROUNDS=${ROUNDS:-2}
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
export GW_EVENTS_DIR=$P/echo
bw() { GW_REGISTER=127.0.0.1:18238 GW_RUN_DIR=$D/bw php "$P/business_worker.php" "$@" >/dev/null 2>&1 || true; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
run() {
  local who=$1; shift
  if [ "$who" = kefu ]; then
    "$K/kefu" start -d -c "$D/kefu.toml" >/dev/null; pidf=$D/kefu.pid
  else
    GW_REGISTER_PORT=18238 GW_WS_PORT=18272 GW_INNER_PORT=18300 GW_RUN_DIR=$D/ref \
      php "$P/register_gateway.php" start -d >/dev/null; pidf=$D/ref/reference.pid
  fi
  wait_port 18272
  bw start -d
  sleep 2 # the BusinessWorker links up (clients before that are closed, by both gateways)
  echo "$who $("$K/kefu-load" "$@" --server-pid-file "$pidf" 2>/dev/null | tail -1 | python3 -c '
import json, sys
d = json.load(sys.stdin); s = d["server"]; n = d["received_in_run"]
print("msgs/s", d["msgs_per_s"], "gateway_cpu_s", s["cpu_s"], "us/msg", round(s["cpu_s"] * 1e6 / max(n, 1), 1),
      "p50_us", d["latency_us"]["p50"], "p99_us", d["latency_us"]["p99"])')"
  bw stop
  if [ "$who" = kefu ]; then "$K/kefu" stop -c "$D/kefu.toml" >/dev/null;
  else GW_RUN_DIR=$D/ref php "$P/register_gateway.php" stop >/dev/null 2>&1 || true; fi
  sleep 1
}
for _ in $(seq "$ROUNDS"); do
  for who in kefu php; do
    run "$who" echo --url ws://127.0.0.1:18272/ -c 100 --rate 5000 --duration 10
  done
done
rm -rf "$D"
