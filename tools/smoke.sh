#!/usr/bin/env bash
# Smoke proof against the Bun and Node peers (about 1.5 min): connect 1000, echo W=1 and
# W=16 for 5 s, broadcast 2 rooms x 50 for 5 s, private 100 clients for 5 s.
# Prints each command and its JSON line; exits non-zero if any run was not ok.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/tools/bench-lib.sh"
SERVERS="${SERVERS:-bun node}"
trap stop_server EXIT
: >"$LOAD_LOG"
build_tools
fail=0
run() {
  echo "\$ kefu-load $*"
  local json
  json=$(load "$@" | tail -1)
  echo "$json"
  echo "$json" | grep -q '"ok":true' || fail=1
}
for server in $SERVERS; do
  echo "## $server"
  start_server "$server" echo
  url="ws://127.0.0.1:$SERVER_PORT/"
  run connect --url "$url" -n 1000 --rate 2000 --hold 2
  run echo --url "$url" -c 100 --size 64 --window 1 --duration 5 --warmup 1
  run echo --url "$url" -c 100 --size 64 --window 16 --duration 5 --warmup 1
  stop_server
  start_server "$server" chat
  url="ws://127.0.0.1:$SERVER_PORT/"
  run broadcast --url "$url" --rooms 2 --room-size 50 --senders 5 --rate 1000 --duration 5 --grace 10
  run private --url "$url" -c 100 --rate 5000 --duration 5 --grace 10
  stop_server
done
exit $fail
