#!/usr/bin/env bash
# Run the Autobahn TestSuite cases (PyPI `kosoku`, fuzzingclient mode) against kefu's echo app.
#
#   tools/autobahn/run.sh [--update-docs]
#
# Needs target/release/kefu (cargo build --release) and `kosoku` on PATH (pip install kosoku).
# Exits 1 unless every case is OK or INFORMATIONAL (FAILED, NON-STRICT, UNIMPLEMENTED, ERROR all
# fail it; 12.* and 13.* run with permessage-deflate). --update-docs rewrites docs/autobahn.md.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
update_docs=0
case "${1:-}" in
    --update-docs) update_docs=1 ;;
    "") ;;
    *) echo "usage: $0 [--update-docs]" >&2; exit 2 ;;
esac

kefu=$root/target/release/kefu
[ -x "$kefu" ] || { echo "autobahn: $kefu missing, run cargo build --release" >&2; exit 1; }
command -v kosoku >/dev/null || { echo "autobahn: kosoku missing, run pip install kosoku" >&2; exit 1; }

work=$(mktemp -d /tmp/kefu-autobahn.XXXXXX)
outdir=$work/reports
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
kefu_pid=
cleanup() {
    if [ -n "$kefu_pid" ] && kill -0 "$kefu_pid" 2>/dev/null; then
        kill -TERM "$kefu_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$kefu_pid" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$kefu_pid" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Foreground master in the background of this shell: $! is the master, and workers die with it.
"$kefu" start --app echo --workers 1 --listen "websocket://127.0.0.1:$port" \
    --pid-file "$work/kefu.pid" --log-file "$work/kefu.log" \
    -c tools/autobahn/kefu-autobahn.toml >"$work/stdout.log" 2>"$work/stderr.log" &
kefu_pid=$!

ready=0
for _ in $(seq 400); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null; then
        ready=1; break
    fi
    kill -0 "$kefu_pid" 2>/dev/null || break
    sleep 0.05
done
if [ "$ready" != 1 ]; then
    echo "autobahn: kefu did not listen on $port" >&2
    cat "$work/stderr.log" >&2
    exit 1
fi

cmd="kosoku -m fuzzingclient -p 4 -o <outdir> 127.0.0.1:PORT"
echo "autobahn: $cmd (port $port)"
start=$(date +%s.%N)
# kosoku exits 1 whenever a case is not OK (INFORMATIONAL ones included): the verdict comes from
# index.json below, its log only matters when there is no report.
kosoku_rc=0
kosoku -m fuzzingclient -p 4 -o "$outdir" "127.0.0.1:$port" >"$work/kosoku.log" 2>&1 || kosoku_rc=$?
if [ ! -f "$outdir/index.json" ]; then
    echo "autobahn: kosoku exited with $kosoku_rc and wrote no report:" >&2
    tail -n 40 "$work/kosoku.log" >&2
    exit 1
fi
end=$(date +%s.%N)

kill -TERM "$kefu_pid"
for _ in $(seq 200); do kill -0 "$kefu_pid" 2>/dev/null || break; sleep 0.05; done

version=$("$kefu" --version)
KEFU_VERSION=$version AB_CMD=$cmd AB_SECS=$(python3 -c "print(f'{$end-$start:.1f}')") \
AB_UPDATE=$update_docs AB_DOC=$root/docs/autobahn.md \
python3 - "$outdir/index.json" <<'PY'
import collections, datetime, json, os, sys

path = sys.argv[1]
try:
    with open(path) as f:
        index = json.load(f)
except (OSError, ValueError) as e:
    print(f"autobahn: no usable report at {path}: {e}", file=sys.stderr)
    sys.exit(1)

counts = collections.Counter()
bad = []
informational = []
for agent, cases in index.items():
    for case, r in cases.items():
        b = r.get("behavior", "?")
        counts[b] += 1
        if b == "INFORMATIONAL":
            informational.append(case)
        if b not in ("OK", "INFORMATIONAL"):
            bad.append((case, b, r.get("behaviorClose")))

order = ["OK", "INFORMATIONAL", "UNIMPLEMENTED", "NON-STRICT", "FAILED"]
total = sum(counts.values())
lines = [f"{k}: {counts.get(k, 0)}" for k in order]
lines += [f"{k}: {v}" for k, v in sorted(counts.items()) if k not in order]
print(f"autobahn: {total} cases in {os.environ['AB_SECS']} s")
for l in lines:
    print(f"  {l}")
for case, b, bc in sorted(bad, key=lambda t: [int(x) if x.isdigit() else x for x in t[0].split(".")]):
    print(f"  BAD {case}: {b} (close: {bc})")

if os.environ["AB_UPDATE"] == "1" and not bad:
    doc = f"""# Autobahn TestSuite result

kefu's WebSocket server (the `echo` app, one worker) against the Autobahn TestSuite cases, run by
the PyPI package [`kosoku`](https://pypi.org/project/kosoku/) (the Autobahn case files on
Python 3). `.ci/run` runs it on every CI build through `tools/test.sh`; the run fails on any
case that is not OK or INFORMATIONAL (FAILED, NON-STRICT, UNIMPLEMENTED, ERROR). The 12.* and
13.* cases exercise permessage-deflate (RFC 7692) with every offer Autobahn makes.

- Date: {datetime.date.today().isoformat()}
- Version: {os.environ['KEFU_VERSION']}
- Command: `tools/autobahn/run.sh`, which runs `{os.environ['AB_CMD']}` against
  `kefu start --app echo --workers 1 -c tools/autobahn/kefu-autobahn.toml` (64 MiB message and
  send-buffer limits: the 9.* cases send 16 MiB messages; `compression_threshold = 0`, because
  kosoku hands the 12.*/13.* cases an echo sent uncompressed as a `str` they cannot hash, so
  every echo is compressed, even where deflate makes it larger)
- Cases: {total}, in {os.environ['AB_SECS']} s

| behavior | cases |
|---|---|
""" + "".join(f"| {k} | {counts.get(k, 0)} |\n" for k in order) + f"""
INFORMATIONAL cases ({", ".join(sorted(informational))}) have no pass/fail verdict. Update this file with
`tools/autobahn/run.sh --update-docs` and commit it.
"""
    with open(os.environ["AB_DOC"], "w") as f:
        f.write(doc)
    print(f"autobahn: wrote {os.environ['AB_DOC']}")

if bad or total == 0:
    print(f"autobahn: {len(bad)} bad case(s)", file=sys.stderr)
    sys.exit(1)
print("autobahn: ok")
PY
