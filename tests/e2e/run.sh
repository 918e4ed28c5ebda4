#!/usr/bin/env bash
# Browser tests of the kefu web pages: builds the release binary if needed, starts kefu on a
# free port with a temp data dir, creates a business + agents, runs the tests in headless
# Debian chromium (playwright-core, never a downloaded browser), stops kefu.
# Needs: apt-get install -y chromium chromium-driver; (cd tests/e2e && npm ci).
# Prints a final "N passed, N failed" line; exits non-zero on any failure.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then echo "e2e: $CHROMIUM not found (apt-get install -y chromium chromium-driver)"; echo "0 passed, 1 failed"; exit 1; fi
if [ ! -d "$HERE/node_modules/playwright-core" ]; then
  (cd "$HERE" && (npm ci --no-audit --no-fund || npm install --no-audit --no-fund)) || { echo "0 passed, 1 failed"; exit 1; }
fi

cargo build --release --bin kefu --quiet || { echo "e2e: build failed"; echo "0 passed, 1 failed"; exit 1; }
export KEFU_BIN="$ROOT/target/release/kefu"

# A free port below the kernel's ephemeral range (as tests/common::free_port does): a port
# from bind(:0) may be taken by a browser's outgoing connection before kefu binds it, or
# while the restart test has kefu stopped.
free_port() {
  python3 - <<'PY'
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
lo, hi = (max(1024, low - 12000), low) if low > 3024 else (20000, 30000)
for _ in range(1000):
    p = random.randrange(lo, hi)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
PY
}
PORT="$(free_port)"
DATA="$(mktemp -d "${TMPDIR:-/tmp}/kefu-e2e.XXXXXX")"
export KEFU_PORT="$PORT" KEFU_DATA="$DATA"
export KEFU_URL="http://127.0.0.1:$PORT"
# The same pages over TLS (https:// and wss:// on one port) with a throwaway CA's certificate
# for localhost; tls.test.mjs runs the visitor and console flow there.
TLS_PORT="$(free_port)"
export KEFU_TLS_URL="https://localhost:$TLS_PORT"
( cd "$DATA" &&
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=kefu e2e CA" &&
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key -out tls.csr -subj "/CN=localhost" &&
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > tls.ext &&
  openssl x509 -req -in tls.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out tls.crt -days 2 -extfile tls.ext &&
  cat tls.crt ca.pem > tls.pem ) >/dev/null 2>&1 || { echo "e2e: openssl failed"; echo "0 passed, 1 failed"; exit 1; }
printf '[[listen]]\nurl = "https://127.0.0.1:%s"\ncert = "%s/tls.pem"\nkey = "%s/tls.key"\n' "$TLS_PORT" "$DATA" "$DATA" > "$DATA/kefu.toml"
# The same start line is used again by the restart test.
export KEFU_START_ARGS="start -d --app kefu --workers 2 -c $DATA/kefu.toml --listen http://127.0.0.1:$PORT --listen https://127.0.0.1:$TLS_PORT --data-dir $DATA --pid-file $DATA/kefu.pid --log-file $DATA/kefu.log"

stop_kefu() { "$KEFU_BIN" stop --pid-file "$DATA/kefu.pid" >/dev/null 2>&1 || true; }
trap 'stop_kefu; [ -n "${KEEP_E2E_DATA:-}" ] || rm -rf "$DATA"' EXIT

export KEFU_BID="shop1"
export AGENT1_PASS="$(node -e "console.log(require('crypto').randomBytes(12).toString('hex'))")"
export AGENT2_PASS="$(node -e "console.log(require('crypto').randomBytes(12).toString('hex'))")"
printf '%s\n' "$AGENT1_PASS" | "$KEFU_BIN" agent add --bid shop1 --id alice --name Alice --password-stdin --data-dir "$DATA" >/dev/null || { echo "e2e: agent add failed"; echo "0 passed, 1 failed"; exit 1; }
export AGENT3_PASS="$(node -e "console.log(require('crypto').randomBytes(12).toString('hex'))")"
printf '%s\n' "$AGENT3_PASS" | "$KEFU_BIN" agent add --bid shop2 --id carol --name Carol --max 1 --password-stdin --data-dir "$DATA" >/dev/null || { echo "e2e: agent add failed"; echo "0 passed, 1 failed"; exit 1; }
export AGENT4_PASS="$(node -e "console.log(require('crypto').randomBytes(12).toString('hex'))")"
printf '%s\n' "$AGENT4_PASS" | "$KEFU_BIN" agent add --bid shop3 --id dave --name Dave --password-stdin --data-dir "$DATA" >/dev/null || { echo "e2e: agent add failed"; echo "0 passed, 1 failed"; exit 1; }
printf '%s\n' "$AGENT2_PASS" | "$KEFU_BIN" agent add --bid shop1 --id bob --name Bob --password-stdin --data-dir "$DATA" >/dev/null || { echo "e2e: agent add failed"; echo "0 passed, 1 failed"; exit 1; }

# shellcheck disable=SC2086
"$KEFU_BIN" $KEFU_START_ARGS || { echo "e2e: kefu start failed"; cat "$DATA/kefu.log" 2>/dev/null | tail -20; echo "0 passed, 1 failed"; exit 1; }

# Screenshots go under target/ so a test run leaves the tree clean; refresh the ones in the
# docs with SCREENSHOT_DIR=docs/screenshots bash tests/e2e/run.sh.
export SCREENSHOT_DIR="${SCREENSHOT_DIR:-$ROOT/target/e2e-screenshots}"
# The tests run in tests/e2e: a relative directory means one under the repository.
case "$SCREENSHOT_DIR" in /*) ;; *) SCREENSHOT_DIR="$ROOT/$SCREENSHOT_DIR" ;; esac
mkdir -p "$SCREENSHOT_DIR"
OUT="$DATA/tap.txt"
# E2E_ONLY="look crowd" runs only those files (while working on them).
mapfile -t FILES < <(cd "$HERE" && ls ./*.test.mjs)
if [ -n "${E2E_ONLY:-}" ]; then FILES=(); for f in $E2E_ONLY; do FILES+=("./$f.test.mjs"); done; fi
(cd "$HERE" && node --test --test-concurrency=1 --test-timeout=240000 "${FILES[@]}") 2>&1 | tee "$OUT"
status=${PIPESTATUS[0]}
pass=$(grep -E '^# pass [0-9]+' "$OUT" | tail -1 | awk '{print $3}')
fail=$(grep -E '^# fail [0-9]+' "$OUT" | tail -1 | awk '{print $3}')
pass=${pass:-0}; fail=${fail:-0}
if [ "$status" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
if [ "$fail" -ne 0 ]; then echo "--- kefu log (tail) ---"; tail -40 "$DATA/kefu.log" 2>/dev/null; fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
