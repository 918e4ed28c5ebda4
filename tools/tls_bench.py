#!/usr/bin/env python3
"""TLS benchmarks against kefu (`--app echo --workers 1`, a wss:// listener) or the Bun peer
(tools/peers/bun/server.js, `Bun.serve({ tls })`), with a throwaway CA made here by openssl.

    python3 tools/tls_bench.py idle kefu|bun [N] [--plain] [--compress] [--off]
        open N (2000) wss:// connections (Python websockets, TLS 1.3), one echo each, and
        report how much the server's PSS (whole process tree) grew per connection. The client
        offers permessage-deflate (websockets' default): kefu accepts it unless --off, Bun
        only with --compress (Bun.serve's perMessageDeflate); "extensions" says what the
        server answered.
    python3 tools/tls_bench.py echo kefu|bun [C SECS SIZE DEPTH] [--plain]
        C (100) connections echo SIZE-byte (32) messages for SECS (10) seconds, DEPTH (1)
        in flight each (1 = ping-pong), driven by tools/tls_echo_client.mjs (Node `ws`);
        report messages and the server's CPU seconds over the run (utime+stime of its tree).

    python3 tools/tls_bench.py load kefu|bun echo|chat SCENARIO [kefu-load args] [--plain]
        the server in that mode, then `kefu-load SCENARIO --url wss://localhost:PORT/ --ca CA
        --server-pid PID [args]` (target/release/kefu-load): e.g. `load kefu chat broadcast
        --rooms 1 --room-size 100 --senders 10 --rate 200 --duration 10` or `load bun echo
        connect -n 2000 --rate 1000`. Prints kefu-load's JSON line.

    python3 tools/tls_bench.py room-deflate kefu|bun|node [N SENDERS RATE SECS SIZE] [--off]
        permessage-deflate room broadcast over ws:// (each server's defaults with compression
        on; --off: compression off everywhere), clients in Node `ws`
        (tools/deflate_room_client.mjs): N (100) clients in one workerman-chat room, SENDERS
        (10) each sending RATE (20) chat lines of SIZE (1500) bytes per second for SECS (10)
        s; reports deliveries per server CPU-second and bytes on the wire per delivery.

KEFU_BIN=PATH runs that kefu binary instead of target/release/kefu (for before/after runs).

Prints one JSON line. Loopback only; stops the server at the end. Run tools/peers/install.sh
first (Bun, Node ws).
"""
import asyncio, json, os, resource, signal, socket, ssl, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def pss_kib(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_secs(pid):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / tick


def make_cert(d):
    def run(*a):
        subprocess.run(a, cwd=d, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "tls.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", "tls.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "tls.crt", "-days", "2", "-extfile", "tls.ext")
    with open(os.path.join(d, "tls.pem"), "w") as f:
        f.write(open(os.path.join(d, "tls.crt")).read() + open(os.path.join(d, "ca.pem")).read())


async def main():
    import websockets
    off = "--off" in sys.argv
    compress = "--compress" in sys.argv
    plain = "--plain" in sys.argv or sys.argv[1] == "room-deflate"
    argv = [a for a in sys.argv[1:] if a not in ("--plain", "--off", "--compress")]
    mode, server = argv[0], argv[1]
    app, load_args = "echo", []
    if mode == "load":
        app, load_args = argv[2], argv[3:]
        argv = argv[:2]
    if mode == "room-deflate":
        app = "chat"
    nums = [int(a) for a in argv[2:]]
    n = nums[0] if nums else 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    d = tempfile.mkdtemp(prefix="kefu-tls-idle.")
    make_cert(d)
    port = free_port()
    if server == "kefu":
        url = f"{'ws' if plain else 'wss'}://127.0.0.1:{port}"
        entry = f'url = "{url}"\n' + ("" if plain else f'cert = "{d}/tls.pem"\nkey = "{d}/tls.key"\n')
        if off:
            entry += "compression = false\n"
        with open(f"{d}/kefu.toml", "w") as f:
            f.write(f'app = "{app}"\nworkers = 1\n[limits]\nmax_connections_per_ip = 0\n[[listen]]\n{entry}')
        kefu_bin = os.environ.get("KEFU_BIN", f"{ROOT}/target/release/kefu")
        cmd = [kefu_bin, "start", "-c", f"{d}/kefu.toml",
               "--pid-file", f"{d}/k.pid", "--log-file", f"{d}/k.log"]
    elif server == "node":
        cmd = ["node", f"{ROOT}/tools/peers/node/server.js", "--port", str(port), "--mode", app]
        if not off:
            cmd.append("--compress")
    else:
        bun = f"{ROOT}/tools/peers/bun/node_modules/.bin/bun"
        cmd = [bun, f"{ROOT}/tools/peers/bun/server.js", "--port", str(port), "--mode", app]
        if not plain:
            cmd += ["--cert", f"{d}/tls.pem", "--key", f"{d}/tls.key"]
        if (mode == "room-deflate" and not off) or compress:
            cmd.append("--compress")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(400):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        if mode == "load":
            scheme = "ws" if plain else "wss"
            cmd = [f"{ROOT}/target/release/kefu-load", load_args[0],
                   "--url", f"{scheme}://localhost:{port}/", "--server-pid", str(proc.pid)]
            if not plain:
                cmd += ["--ca", f"{d}/ca.pem"]
            out = subprocess.run(cmd + load_args[1:], stdout=subprocess.PIPE, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r["server"] = server
            print(json.dumps(r))
            return
        if mode == "room-deflate":
            n, senders, rate, secs, size = (nums + [100, 10, 20, 10, 1500][len(nums):])[:5]
            client = subprocess.Popen(
                ["node", f"{ROOT}/tools/deflate_room_client.mjs", f"ws://127.0.0.1:{port}/",
                 str(n), str(senders), str(rate), str(secs), str(size), "0" if off else "1"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            client.stderr.readline()  # "open": every client is in the room
            cpu0 = cpu_secs(proc.pid)
            out, err = client.communicate(timeout=secs + 120)
            cpu = cpu_secs(proc.pid) - cpu0
            r = json.loads(out)
            print(json.dumps({
                "server": server, "compression": not off, "clients": n, "senders": senders,
                "rate_per_sender": rate, "size": size, "secs": secs, "sent": r["sent"],
                "deliveries": r["deliveries"], "expected": r["sent"] * n,
                "server_cpu_s": round(cpu, 2),
                "deliveries_per_server_cpu_s": round(r["deliveries"] / cpu) if cpu > 0 else None,
                "wire_bytes_per_delivery": round(r["bytes_in"] / max(1, r["deliveries"]), 1),
                "extensions": r["extensions"],
            }))
            return
        if mode == "echo":
            c, secs, size, depth = (nums + [100, 10, 32, 1][len(nums):])[:4]
            scheme = "ws" if plain else "wss"
            client = subprocess.Popen(
                ["node", f"{ROOT}/tools/tls_echo_client.mjs", f"{scheme}://localhost:{port}/",
                 f"{d}/ca.pem", str(c), str(secs), str(size), str(depth)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            client.stderr.readline()  # "open": every connection is up
            cpu0 = cpu_secs(proc.pid)
            out, err = client.communicate(timeout=secs + 60)
            cpu = cpu_secs(proc.pid) - cpu0
            r = json.loads(out)
            print(json.dumps({
                "server": server, "tls": not plain, "connections": c, "size": size,
                "depth": depth, "secs": secs, "messages": r["messages"],
                "msgs_per_s": round(r["messages"] / secs),
                "server_cpu_s": round(cpu, 2),
                "msgs_per_server_cpu_s": round(r["messages"] / cpu) if cpu > 0 else None,
            }))
            return
        ctx = None
        if not plain:
            ctx = ssl.create_default_context(cafile=f"{d}/ca.pem")
        scheme = "ws" if plain else "wss"
        # One connection and an echo first, so lazily set up state is in the baseline.
        warm = await websockets.connect(f"{scheme}://localhost:{port}/", ssl=ctx, ping_interval=None)
        await warm.send("x"); await warm.recv()
        await asyncio.sleep(1)
        before = pss_kib(proc.pid)
        conns = []
        extensions = set()
        sem = asyncio.Semaphore(100)
        async def one():
            async with sem:
                ws = await websockets.connect(f"{scheme}://localhost:{port}/", ssl=ctx,
                                              ping_interval=None, open_timeout=60)
                await ws.send("hello"); await ws.recv()
                resp = getattr(ws, "response", None)
                headers = resp.headers if resp is not None else ws.response_headers
                extensions.add(headers.get("Sec-WebSocket-Extensions") or "")
                conns.append(ws)
        t0 = time.time()
        await asyncio.gather(*(one() for _ in range(n)))
        setup = time.time() - t0
        await asyncio.sleep(2)
        after = pss_kib(proc.pid)
        print(json.dumps({
            "server": server, "tls": not plain, "connections": len(conns),
            "pss_before_kib": before, "pss_after_kib": after,
            "bytes_per_conn": round((after - before) * 1024 / len(conns)),
            "setup_s": round(setup, 1), "extensions": sorted(extensions),
        }))
        for ws in conns:
            ws.transport.abort()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        subprocess.run(["rm", "-rf", d])


asyncio.run(main())
