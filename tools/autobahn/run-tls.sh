#!/usr/bin/env bash
# The Autobahn TestSuite cases over wss:// (kefu's TLS path: rustls in the worker loop).
#
#   tools/autobahn/run-tls.sh
#
# kosoku (the runner of tools/autobahn/run.sh) is built without TLS ("TLS support not compiled
# in"), so it drives a small relay (tools/autobahn/tls_relay.py) that takes its plain
# connections and opens one TLS connection to kefu's wss:// listener for each, checking the
# certificate of a throwaway CA made here with openssl. Every byte kefu reads and writes goes
# through its TLS code. Exits 1 if any case is other than OK or INFORMATIONAL (the compression
# cases 12.* and 13.* included).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
kefu=$root/target/release/kefu
[ -x "$kefu" ] || { echo "autobahn-tls: $kefu missing, run cargo build --release" >&2; exit 1; }
command -v kosoku >/dev/null || { echo "autobahn-tls: kosoku missing, run pip install kosoku" >&2; exit 1; }

work=$(mktemp -d /tmp/kefu-autobahn-tls.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
relay_port=$(free_port)
kefu_pid=
relay_pid=
cleanup() {
    for p in $relay_pid $kefu_pid; do
        if kill -0 "$p" 2>/dev/null; then
            kill -TERM "$p" 2>/dev/null || true
            for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
            kill -KILL "$p" 2>/dev/null || true
        fi
    done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

(
    cd "$work"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
        -out ca.pem -days 2 -subj "/CN=kefu autobahn CA"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key -out tls.csr \
        -subj "/CN=localhost"
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >tls.ext
    openssl x509 -req -in tls.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out tls.crt -days 2 \
        -extfile tls.ext
    cat tls.crt ca.pem >tls.pem
) >/dev/null 2>&1
{
    cat tools/autobahn/kefu-autobahn.toml
    printf '\n[[listen]]\nurl = "wss://127.0.0.1:%s"\ncert = "%s/tls.pem"\nkey = "%s/tls.key"\n' \
        "$port" "$work" "$work"
} >"$work/kefu.toml"

"$kefu" start --workers 1 --pid-file "$work/kefu.pid" --log-file "$work/kefu.log" \
    -c "$work/kefu.toml" >"$work/stdout.log" 2>"$work/stderr.log" &
kefu_pid=$!
python3 tools/autobahn/tls_relay.py "$relay_port" "$port" "$work/ca.pem" 2>"$work/relay.log" &
relay_pid=$!

ready=0
for _ in $(seq 400); do
    if python3 -c "import socket; [socket.create_connection(('127.0.0.1',p),0.2) for p in ($port,$relay_port)]" 2>/dev/null; then
        ready=1; break
    fi
    kill -0 "$kefu_pid" 2>/dev/null || break
    sleep 0.05
done
if [ "$ready" != 1 ]; then
    echo "autobahn-tls: kefu or the relay did not listen" >&2
    cat "$work/stderr.log" "$work/relay.log" >&2
    exit 1
fi

echo "autobahn-tls: kosoku -m fuzzingclient -p 4 -> relay 127.0.0.1:$relay_port -> wss://127.0.0.1:$port"
start=$(date +%s)
kosoku -m fuzzingclient -p 4 -o "$work/reports" "127.0.0.1:$relay_port" >"$work/kosoku.log" 2>&1 || true
echo "autobahn-tls: $(( $(date +%s) - start )) s"
[ -f "$work/reports/index.json" ] || { echo "autobahn-tls: no report" >&2; tail -40 "$work/kosoku.log" >&2; exit 1; }
python3 - "$work/reports/index.json" <<'PY'
import collections, json, sys
index = json.load(open(sys.argv[1]))
counts, bad = collections.Counter(), []
for cases in index.values():
    for case, r in cases.items():
        b = r.get("behavior", "?")
        counts[b] += 1
        # permessage-deflate is in: every case, 12.* and 13.* included, must be OK.
        if b not in ("OK", "INFORMATIONAL"):
            bad.append((case, b, r.get("behaviorClose")))
print("autobahn-tls:", sum(counts.values()), "cases:", dict(sorted(counts.items())))
for case, b, bc in sorted(bad):
    print(f"  BAD {case}: {b} (close: {bc})")
if bad or not counts:
    sys.exit(1)
print("autobahn-tls: ok")
PY
