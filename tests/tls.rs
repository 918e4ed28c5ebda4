//! TLS listeners on the real binary with independent clients: Python's `websockets` and `ssl`
//! over `wss://` / `text+tls://` / `https://`, and `openssl s_client` for protocol versions,
//! ALPN and SNI. Certificates come from a test CA made with `openssl` at test time.

mod common;

use common::pki::{self, instance};
use common::ws::Ws;
use common::{wait_until, Instance, Out, SEC};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run `python3 -c script args...`; panics with its output unless it exits 0.
fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "python failed:\n{so}\n{se}");
    so
}

/// `openssl s_client -connect 127.0.0.1:port args...` with `input` on stdin.
fn s_client(port: u16, args: &[&str], input: &[u8]) -> Out {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

const WS_ECHO: &str = r#"
import asyncio, ssl, sys, websockets
async def main():
    url, ca = sys.argv[1], sys.argv[2]
    ctx = ssl.create_default_context(cafile=ca)
    async with websockets.connect(url, ssl=ctx, max_size=None) as ws:
        await ws.send("hello 客服")
        assert await ws.recv() == "hello 客服"
        big = bytes(i % 251 for i in range(3_000_000))
        await ws.send(big)
        got = await ws.recv()
        assert got == big, len(got)
        many = [f"m{i}" * 50 for i in range(500)]
        for m in many:
            await ws.send(m)
        for m in many:
            assert await ws.recv() == m
        await ws.close(code=4000, reason="bye")
        assert ws.close_code == 4000, ws.close_code
    # Over the message limit: 1009.
    async with websockets.connect(url, ssl=ctx, max_size=None) as ws:
        await ws.send(b"x" * (2 * 1024 * 1024))
        try:
            await ws.recv()
        except websockets.ConnectionClosed:
            pass
        assert ws.close_code == 1009, ws.close_code
    print("ok")
asyncio.run(main())
"#;

#[test]
fn wss_echo_large_messages_and_close_codes_with_python_websockets() {
    let (k, pki) = instance(
        "echo",
        &["wss", "websocket"],
        "[limits]\nmax_package_size = 3500000\n",
    );
    let k = k.start();
    let url = format!("wss://localhost:{}/", k.port("wss"));
    let script = WS_ECHO.replace("2 * 1024 * 1024", "4 * 1024 * 1024");
    assert_eq!(
        python(&script, &[&url, pki.ca.to_str().unwrap()]).trim(),
        "ok"
    );
    // The plain listener beside it still speaks plain WebSocket.
    let mut ws = Ws::connect(&k.addr("websocket"), "/");
    ws.send_text("plain");
    assert_eq!(ws.recv_text().as_deref(), Some("plain"));
}

const CHAT: &str = r#"
import asyncio, json, ssl, sys, websockets
async def main():
    ctx = ssl.create_default_context(cafile=sys.argv[2])
    async def recv_type(ws, t):
        while True:
            m = json.loads(await ws.recv())
            if m["type"] == t:
                return m
    async with websockets.connect(sys.argv[1], ssl=ctx) as a, websockets.connect(sys.argv[1], ssl=ctx) as b:
        await a.send(json.dumps({"type": "login", "client_name": "A", "room_id": 7}))
        await recv_type(a, "login")
        await b.send(json.dumps({"type": "login", "client_name": "B", "room_id": 7}))
        await recv_type(a, "login")
        await b.send(json.dumps({"type": "say", "to_client_id": "all", "content": "hi over tls"}))
        m = await recv_type(a, "say")
        assert m["content"] == "hi over tls", m
    print("ok")
asyncio.run(main())
"#;

#[test]
fn wss_chat_room_with_python_websockets() {
    let (k, pki) = instance("chat", &["wss"], "");
    let k = k.start();
    let url = format!("wss://localhost:{}/", k.port("wss"));
    assert_eq!(python(CHAT, &[&url, pki.ca.to_str().unwrap()]).trim(), "ok");
}

const TEXT_AND_HTTPS: &str = r#"
import socket, ssl, sys, urllib.request
tport, hport, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
with socket.create_connection(("127.0.0.1", tport)) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall("line one\n第二行\n".encode())
        got = b""
        while got.count(b"\n") < 2:
            got += s.recv(4096)
        assert got.decode() == "line one\n第二行\n", got
        print(s.version())
r = urllib.request.urlopen(f"https://localhost:{hport}/", context=ctx, timeout=10)
print(r.status)
"#;

#[test]
fn text_over_tls_and_https_get() {
    let (k, pki) = instance("echo", &["text+tls", "https", "text"], "");
    let k = k.start();
    let out = python(
        TEXT_AND_HTTPS,
        &[
            &k.port("text+tls").to_string(),
            &k.port("https").to_string(),
            pki.ca.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["TLSv1.3", "200"]
    );
}

#[test]
fn openssl_versions_alpn_and_sni() {
    let (k, pki) = instance("echo", &["wss"], "");
    let k = k.start();
    let port = k.port("wss");
    let ca = pki.ca.to_str().unwrap();
    for (v, name) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let o = s_client(port, &[v, "-CAfile", ca, "-servername", "localhost"], b"");
        assert!(
            o.stdout.contains(&format!("Protocol  : {name}"))
                || o.stdout.contains(&format!("New, {name}")),
            "{v}: {o:?}"
        );
        assert!(o.stdout.contains("Verify return code: 0 (ok)"), "{o:?}");
    }
    // TLS 1.1 is refused (the OpenSSL client may need its security level lowered to offer it).
    let o = s_client(port, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], b"");
    assert!(
        o.stdout.contains("Cipher is (NONE)"),
        "tls1.1 accepted: {o:?}"
    );
    // ALPN: http/1.1 is chosen.
    let o = s_client(port, &["-alpn", "h2,http/1.1", "-CAfile", ca], b"");
    assert!(o.stdout.contains("ALPN protocol: http/1.1"), "{o:?}");
    // SNI picks the certificate; another or no name gets the default one.
    let subject = |args: &[&str]| {
        let o = s_client(port, args, b"");
        o.stdout
            .lines()
            .find(|l| l.starts_with("subject="))
            .unwrap_or_default()
            .to_string()
    };
    assert!(subject(&["-servername", "b.test"]).contains("b.test"));
    assert!(subject(&["-servername", "B.TEST"]).contains("b.test"));
    assert!(subject(&["-servername", "localhost"]).contains("localhost"));
    assert!(subject(&["-noservername"]).contains("localhost"));
    assert!(subject(&["-servername", "c.test"]).contains("localhost"));
}

#[test]
fn bad_certificate_files_fail_start_with_the_reason() {
    for (what, cert, key, expect) in [
        ("missing", "nope.pem", "server.key", "cannot read"),
        ("garbage", "junk.pem", "server.key", "no CERTIFICATE block"),
        (
            "wrong key",
            "server.pem",
            "other.key",
            "do not belong together",
        ),
        ("no key", "server.pem", "server.pem", "no PRIVATE KEY"),
    ] {
        let k = Instance::new("echo", 1, &["wss"]);
        let dir = k.dir.join("pki");
        pki::make(&dir);
        std::fs::write(dir.join("junk.pem"), "not a certificate\n").unwrap();
        let url = format!("wss://127.0.0.1:{}", k.port("wss"));
        let k = k.config(&format!(
            "listen = [{{ url = \"{url}\", cert = {:?}, key = {:?} }}]\n",
            dir.join(cert),
            dir.join(key)
        ));
        let out = k.start_detached();
        assert!(!out.ok(), "{what}: started anyway");
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(all.contains(expect), "{what}: {all}");
        assert!(all.contains(cert) || all.contains(key), "{what}: {all}");
    }
    // A TLS listener without a certificate at all is a config error.
    let k = Instance::new("echo", 1, &["wss"]);
    let out = k.start_detached();
    assert!(!out.ok());
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("needs a certificate"),
        "{out:?}"
    );
}

/// Read until EOF or error; returns the bytes and when the end came.
fn read_to_end_timed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Instant) {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return (got, Instant::now()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn slowloris_and_garbage_are_closed_by_the_handshake_deadline() {
    let (k, _pki) = instance(
        "echo",
        &["wss", "text+tls"],
        "[limits]\nhandshake_timeout = 1\n",
    );
    let k = k.env("KEFU_LOG", "debug").start();
    for scheme in ["wss", "text+tls"] {
        let port = k.port(scheme);
        // Slowloris: the first bytes of a ClientHello, then nothing.
        let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let t0 = Instant::now();
        slow.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            .unwrap();
        let (_, end) = read_to_end_timed(&mut slow, 10 * SEC);
        let took = end - t0;
        assert!(
            took >= Duration::from_millis(900),
            "{scheme}: closed early {took:?}"
        );
        assert!(
            took < 5 * SEC,
            "{scheme}: not closed by the deadline: {took:?}"
        );

        // Garbage (an HTTP request on the TLS port): an alert, then the close, at once.
        let mut junk = TcpStream::connect(("127.0.0.1", port)).unwrap();
        junk.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let (got, _) = read_to_end_timed(&mut junk, 10 * SEC);
        assert!(
            got.len() < 64 && got.first() == Some(&0x15),
            "{scheme}: {got:?}"
        );

        // A ClientHello announcing a 16 MB handshake message: refused before it is buffered.
        let mut big = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut rec = vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0xff, 0xff, 0xff];
        rec.resize(5 + 0x4000, 0);
        let _ = big.write_all(&rec);
        let (_, end) = read_to_end_timed(&mut big, 10 * SEC);
        assert!(end.elapsed() < 5 * SEC);
    }
    // TLS errors are logged at debug level, once per connection however many bad bytes it
    // sent (the garbage client sent a whole request, the big one 16 KiB).
    let lines: Vec<String> = k
        .stderr()
        .lines()
        .filter(|l| l.contains("DEBUG tls "))
        .map(String::from)
        .collect();
    let peers: std::collections::HashSet<&str> = lines
        .iter()
        .filter_map(|l| l.split("DEBUG tls ").nth(1)?.split(": ").next())
        .collect();
    assert!(lines.len() >= 2 && peers.len() == lines.len(), "{lines:#?}");
    // Nothing is left behind.
    let gone = wait_until(10 * SEC, || {
        k.status()
            .and_then(|s| s["workers"][0]["connections"].as_u64())
            == Some(0)
    });
    assert!(gone, "{:?}", k.status());
}

const DRIBBLE: &str = r#"
import selectors, socket, ssl, sys, time
port, ca, n, need = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ctx = ssl.create_default_context(cafile=ca)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            if out.pending:
                s.sendall(out.read())
            got = s.recv(65536)
            assert got, f"handshake {i} refused"
            inc.write(got)
    s.sendall(out.read())
    socks.append(s)
# Every session established; now each sends most of one maximal record and stops.
for s in socks:
    s.sendall(bytes([0x17, 3, 3, 0x41, 0x00]) + b"\x00" * 16000)
sel = selectors.DefaultSelector()
for s in socks:
    sel.register(s, selectors.EVENT_READ)
closed, deadline = 0, time.monotonic() + 20
while closed < need and time.monotonic() < deadline:
    for key, _ in sel.select(timeout=1):
        try:
            got = key.fileobj.recv(65536)
        except ConnectionResetError:
            got = b""
        if not got:
            sel.unregister(key.fileobj)
            closed += 1
print(closed)
for s in socks:
    s.close()
"#;

#[test]
fn partial_records_count_against_the_input_budget() {
    // 30 established sessions each hold most of a 16 KiB record: 480 KB against a budget of
    // 300 000 bytes. The sessions whose record pushes the worker past it are closed, as a
    // plain connection's growing input is, so at most 18 partial records stay held.
    // The handshake deadline (TLS, then the HTTP upgrade these clients never send) is long
    // enough that only the budget can close them while the test looks.
    let (k, pki) = instance(
        "echo",
        &["wss"],
        "[limits]\nmax_buffered_input = 300000\nhandshake_timeout = 60\n",
    );
    let k = k.start();
    let port = k.port("wss").to_string();
    let closed: usize = python(DRIBBLE, &[&port, pki.ca.to_str().unwrap(), "30", "12"])
        .trim()
        .parse()
        .unwrap();
    assert!(closed >= 12, "only {closed} of 30 closed over the budget");
    let log = k.log() + &k.stderr();
    assert!(log.contains("max_buffered_input"), "{log}");
    // The budget is given back with the connections: a new session works.
    let gone = wait_until(10 * SEC, || {
        k.status()
            .and_then(|s| s["workers"][0]["connections"].as_u64())
            == Some(0)
    });
    assert!(gone, "{:?}", k.status());
    let url = format!("wss://localhost:{port}/");
    assert_eq!(
        python(SMALL_ECHO, &[&url, pki.ca.to_str().unwrap()]).trim(),
        "ok"
    );
}

const SMALL_ECHO: &str = r#"
import asyncio, ssl, sys, websockets
async def main():
    ctx = ssl.create_default_context(cafile=sys.argv[2])
    async with websockets.connect(sys.argv[1], ssl=ctx) as ws:
        await ws.send("still here")
        assert await ws.recv() == "still here"
    print("ok")
asyncio.run(main())
"#;

#[test]
fn connections_show_tls() {
    let (k, pki) = instance("echo", &["text+tls"], "");
    let k = k.start();
    let script = r#"
import socket, ssl, sys, subprocess
ctx = ssl.create_default_context(cafile=sys.argv[2])
with ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="localhost") as s:
    s.sendall(b"x\n"); s.recv(10)
    print(subprocess.run(sys.argv[3:], capture_output=True, text=True).stdout)
"#;
    let out = python(
        script,
        &[
            &k.port("text+tls").to_string(),
            pki.ca.to_str().unwrap(),
            common::KEFU,
            "connections",
            "--json",
            "--pid-file",
            k.pid_file().to_str().unwrap(),
        ],
    );
    assert!(out.contains("\"text+tls\""), "{out}");
}

/// The serial number of the certificate the server presents.
fn served_serial(port: u16) -> String {
    let o = s_client(port, &["-servername", "localhost", "-showcerts"], b"");
    let mut x = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    x.stdin
        .take()
        .unwrap()
        .write_all(o.stdout.as_bytes())
        .unwrap();
    let out = x.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn file_serial(pem: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(pem)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn reload_serves_renewed_certificates_and_keeps_the_old_on_a_bad_file() {
    let (k, pki) = instance("echo", &["wss"], "");
    let out = k.start_detached();
    assert!(out.ok(), "{out:?}");
    let port = k.port("wss");
    let first = file_serial(&pki.cert);
    assert_eq!(served_serial(port), first);

    // Renewal (as certbot does): new files in place, then a reload.
    let dir = k.dir.join("pki");
    let (cert, key) = pki::leaf(&dir, "renewed", "localhost", "DNS:localhost,IP:127.0.0.1");
    std::fs::copy(&cert, &pki.cert).unwrap();
    std::fs::copy(&key, &pki.key).unwrap();
    let renewed = file_serial(&pki.cert);
    assert_ne!(renewed, first);
    let r = k.run(&["reload"], 30 * SEC);
    assert!(r.ok(), "{r:?}");
    assert!(
        wait_until(20 * SEC, || served_serial(port) == renewed),
        "still serving the old certificate"
    );

    // A broken renewal: the reload is refused with the reason, the renewed one stays.
    std::fs::write(&pki.cert, "-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    let r = k.run(&["reload"], 30 * SEC);
    assert!(!r.ok(), "{r:?}");
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("server.pem") && all.contains("keep"), "{all}");
    assert_eq!(served_serial(port), renewed);
    // Plain WebSocket on the TLS port is refused: its first bytes are no ClientHello.
    let (_, status, _) = Ws::try_connect(&format!("127.0.0.1:{port}"), "/", &[]);
    assert_ne!(status, 101);
}

const API: &str = r#"
import asyncio, json, ssl, sys, urllib.request, urllib.error, websockets
wss, api, ca, key = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=ca)
def call(k):
    req = urllib.request.Request(f"{api}/gateway/get_all_client_id_count", data=b"{}",
                                 headers={"Content-Type": "application/json"})
    if k:
        req.add_header("Authorization", f"Bearer {k}")
    try:
        r = urllib.request.urlopen(req, context=ctx, timeout=10)
        return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, None
async def main():
    async with websockets.connect(wss, ssl=ctx) as ws:
        await ws.send("hi"); await ws.recv()
        print(call(key)[1]["result"], call(None)[0], call("wrong-key-0123456789")[0])
asyncio.run(main())
"#;

#[test]
fn gateway_api_over_tls_needs_the_key() {
    let (k, pki) = instance("echo", &["wss", "api+tls"], &common::http::api_config());
    let k = k.start();
    let out = python(
        API,
        &[
            &format!("wss://localhost:{}/", k.port("wss")),
            &format!("https://localhost:{}", k.port("api+tls")),
            pki.ca.to_str().unwrap(),
            common::http::API_KEY,
        ],
    );
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["1", "401", "401"]
    );
}
