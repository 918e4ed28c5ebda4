//! GatewayWorker compatibility against the real PHP stack (`php-cli`, the unmodified library in
//! /work/shared/peers/gatewayworker or $KEFU_GW_PEER): kefu is the Register and the gateway,
//! PHP's own BusinessWorker runs the example Events.php, PHP's own GatewayClient calls kefu.
//! Every PHP process a test starts is stopped by the test (a guard kills it on any exit).

mod common;

use common::gw_php::*;
use common::ws::Ws;
use common::{free_port, wait_for, Instance};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn php_business_worker_and_gateway_client_against_kefu() {
    if !have_peer("php_business_worker_and_gateway_client_against_kefu") {
        return;
    }
    let reg = free_port();
    let inner = free_port();
    let s = Instance::new("gatewayworker", 2, &["text", "websocket", "api"])
        .config(&(config(reg, inner, "") + &common::http::api_config()))
        .start();
    let register = format!("127.0.0.1:{reg}");
    let _bw = Php::business(&register, &s.dir, example_events(), "BusinessWorker");

    // Events::onConnect greets with GatewayWorker's 20-digit id: lan IP, inner port, counter.
    let (mut a, id_a) = text_client(&s.addr("text"));
    assert_eq!(id_a.len(), 20);
    assert!(id_a.starts_with("7f000001"), "{id_a}");
    let port = u16::from_str_radix(&id_a[8..12], 16).unwrap();
    assert!(port == inner || port == inner + 1, "{id_a}");

    // A WebSocket client too. It may land on the worker whose BusinessWorker link is not up
    // yet, which closes it as GatewayWorker does (before or after the 101): try again then.
    let (mut w, id_w) = wait_for(Duration::from_secs(10), || {
        let (mut w, status, _) = Ws::try_connect(&s.addr("websocket"), "/?room=1", &[]);
        if status != 101 {
            return None;
        }
        let t = w.recv_text()?;
        let v: serde_json::Value = serde_json::from_str(&t).ok()?;
        let id = v[1]["client_id"].as_str()?.to_owned();
        Some((w, id))
    })
    .expect("websocket client greeted");

    // Events calling Gateway methods: joinGroup + getClientIdCountByGroup (a query from PHP
    // back to every kefu worker), bindUid, setSession, sendToCurrentClient, sendToGroup.
    assert_eq!(say(&mut a, "join:room1"), "joined room1 1");
    w.send_text("join:room1");
    assert_eq!(w.recv_text().unwrap(), "joined room1 2");
    assert_eq!(say(&mut a, "uid:42"), "bound 42");
    assert_eq!(say(&mut a, "hello"), "hello");
    a.get_mut().write_all(b"room:room1:hi all\n").unwrap();
    assert_eq!(hear(&mut a), "hi all");
    assert_eq!(w.recv_text().unwrap(), "hi all");

    // GatewayClient, as a PHP web backend uses it.
    let r = gateway_client(
        &register,
        "getClientCountByGroup",
        serde_json::json!(["room1"]),
    );
    assert_eq!(r["result"], 2, "{r}");
    let r = gateway_client(&register, "getClientIdByUid", serde_json::json!(["42"]));
    assert_eq!(r["result"], serde_json::json!([id_a]));
    let r = gateway_client(&register, "getSession", serde_json::json!([id_a]));
    assert_eq!(r["result"], serde_json::json!({"uid": "42"}));
    let r = gateway_client(&register, "isOnline", serde_json::json!([id_a]));
    assert_eq!(r["result"], 1);
    let r = gateway_client(&register, "getAllUidList", serde_json::json!([]));
    assert_eq!(r["result"], serde_json::json!({"42": "42"}));
    let r = gateway_client(&register, "getAllGroupIdList", serde_json::json!([]));
    assert_eq!(r["result"], serde_json::json!({"room1": "room1"}));
    let r = gateway_client(
        &register,
        "getClientSessionsByGroup",
        serde_json::json!(["room1"]),
    );
    assert_eq!(r["result"][&id_a], serde_json::json!({"uid": "42"}));
    let r = gateway_client(&register, "getAllClientIdCount", serde_json::json!([]));
    assert_eq!(r["result"], 2);
    let r = gateway_client(&register, "getUidListByGroup", serde_json::json!(["room1"]));
    assert_eq!(r["result"], serde_json::json!({"42": "42"}));

    let r = gateway_client(&register, "sendToUid", serde_json::json!(["42", "to uid"]));
    assert_eq!(r["ok"], true);
    assert_eq!(hear(&mut a), "to uid");
    gateway_client(
        &register,
        "sendToGroup",
        serde_json::json!(["room1", "to room"]),
    );
    assert_eq!(hear(&mut a), "to room");
    assert_eq!(w.recv_text().unwrap(), "to room");
    gateway_client(
        &register,
        "sendToClient",
        serde_json::json!([id_a, "to one"]),
    );
    assert_eq!(hear(&mut a), "to one");

    // The session PHP set (Events: setSession(['uid' => ...])) reads as JSON through kefu's
    // HTTP API, and one written there reads back in PHP.
    let mut api = common::http::Http::connect(&s.addr("api"));
    let by_group = api.ok(
        "get_client_sessions_by_group",
        serde_json::json!({"group": "room1"}),
    );
    let (kefu_id, _) = by_group
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, v)| **v == serde_json::json!({"uid": "42"}))
        .unwrap_or_else(|| panic!("PHP's session not in {by_group}"));
    // The HTTP API gives and takes GatewayWorker's ids in this mode.
    assert_eq!(kefu_id, &id_a, "{by_group}");
    api.ok(
        "set_session",
        serde_json::json!({"client_id": kefu_id, "session": {"uid": "42", "vip": true, "tags": ["a", 1.5]}}),
    );
    let r = gateway_client(&register, "getSession", serde_json::json!([id_a]));
    assert_eq!(
        r["result"],
        serde_json::json!({"uid": "42", "vip": true, "tags": ["a", 1.5]})
    );

    gateway_client(
        &register,
        "setSession",
        serde_json::json!([id_a, {"name": "客服", "n": 3}]),
    );
    let r = gateway_client(&register, "getSession", serde_json::json!([id_a]));
    assert_eq!(r["result"], serde_json::json!({"name": "客服", "n": 3}));

    gateway_client(&register, "leaveGroup", serde_json::json!([id_a, "room1"]));
    let r = gateway_client(
        &register,
        "getClientCountByGroup",
        serde_json::json!(["room1"]),
    );
    assert_eq!(r["result"], 1);

    // Whichever worker answers (fresh connections spread over both), ids PHP handed out work
    // in the HTTP API and its answers name the clients as PHP does, the other worker's too.
    let mut both = [id_a.clone(), id_w.clone()];
    both.sort();
    for _ in 0..6 {
        let mut api = common::http::Http::connect(&s.addr("api"));
        let mut list: Vec<String> =
            serde_json::from_value(api.ok("get_all_client_id_list", serde_json::json!({})))
                .unwrap();
        list.sort();
        assert_eq!(list, both);
        assert_eq!(
            api.ok("get_client_id_by_uid", serde_json::json!({"uid": "42"})),
            serde_json::json!([id_a])
        );
        assert_eq!(
            api.ok("is_online", serde_json::json!({"client_id": id_w})),
            true
        );
        assert_eq!(
            api.ok(
                "get_uid_by_client_id",
                serde_json::json!({"client_id": id_a})
            ),
            "42"
        );
    }
    api.ok(
        "send_to_client",
        serde_json::json!({"client_id": id_w, "message": "api to a PHP id"}),
    );
    assert_eq!(w.recv_text().unwrap(), "api to a PHP id");
    // An id from the API, used by GatewayClient.
    let listed = api.ok("get_all_client_id_list", serde_json::json!({}));
    let from_api = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|v| **v != serde_json::json!(id_a))
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("{listed}"))
        .to_owned();
    gateway_client(
        &register,
        "sendToClient",
        serde_json::json!([from_api, "php to an api id"]),
    );
    assert_eq!(w.recv_text().unwrap(), "php to an api id");
    // Another host's id names no client here; a malformed one is refused.
    let other_host = format!("0a000001{}", &id_a[8..]);
    assert_eq!(
        api.ok("is_online", serde_json::json!({"client_id": other_host})),
        false
    );
    let bad = api.call(
        "is_online",
        &serde_json::json!({"client_id": "7f000001zz0000000001"}),
    );
    assert_eq!(
        (bad.status, bad.error_code().as_str()),
        (400, "bad_client_id")
    );

    // closeClient: the client is closed by kefu.
    gateway_client(&register, "closeClient", serde_json::json!([id_a]));
    let mut rest = Vec::new();
    let _ = a.read_to_end(&mut rest);
    let r = gateway_client(&register, "isOnline", serde_json::json!([id_a]));
    assert_eq!(r["result"], 0);
}

/// Raw inner-port frame: 28-byte header, ext, body.
fn frame(cmd: u8, flag: u8, conn: u32, ext: &[u8], body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((28 + ext.len() + body.len()) as u32).to_be_bytes());
    v.push(cmd);
    v.extend_from_slice(&[0; 4]);
    v.extend_from_slice(&[0; 2]);
    v.extend_from_slice(&[0; 4]);
    v.extend_from_slice(&[0; 2]);
    v.extend_from_slice(&conn.to_be_bytes());
    v.push(flag);
    v.extend_from_slice(&[0; 2]);
    v.extend_from_slice(&(ext.len() as u32).to_be_bytes());
    v.extend_from_slice(ext);
    v.extend_from_slice(body);
    v
}

/// Whether the server closed `s` (EOF or reset) within a few seconds.
fn closed(mut s: TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 256];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn hostile_peers_on_inner_port_and_register_are_closed() {
    let reg = free_port();
    let inner = free_port();
    let secret = "s3cret-key";
    let s = Instance::new("gatewayworker", 1, &["text"])
        .config(&config(reg, inner, secret))
        .start();
    let inner_addr = format!("127.0.0.1:{inner}");
    let reg_addr = format!("127.0.0.1:{reg}");
    let query = frame(24, 1, 0, b"", b""); // getClientCountByGroup("")
    let hello = |key: &str| {
        frame(
            202,
            1,
            0,
            b"",
            format!("{{\"secret_key\":\"{key}\"}}").as_bytes(),
        )
    };

    // A command before the secret.
    let mut c = TcpStream::connect(&inner_addr).unwrap();
    c.write_all(&query).unwrap();
    assert!(closed(c), "unauthorized command not closed");
    // The wrong secret.
    let mut c = TcpStream::connect(&inner_addr).unwrap();
    c.write_all(&hello("nope")).unwrap();
    assert!(closed(c), "wrong secret not closed");
    // A huge declared length: refused from its 4 bytes, nothing buffered.
    let mut c = TcpStream::connect(&inner_addr).unwrap();
    c.write_all(&[0xff, 0xff, 0xff, 0xff, 5]).unwrap();
    assert!(closed(c), "huge frame not closed");
    // Before the secret, only hello-sized frames: 8 KiB declared is refused at once.
    let mut c = TcpStream::connect(&inner_addr).unwrap();
    c.write_all(&[0, 0, 0x20, 0, 202]).unwrap();
    assert!(closed(c), "a large frame before the secret not closed");
    // A length shorter than the header, an unknown command, an ext overrunning the frame.
    for bad in [vec![0, 0, 0, 4], frame(99, 1, 0, b"", b""), {
        let mut f = frame(5, 1, 0, b"", b"xy");
        f[24..28].copy_from_slice(&1000u32.to_be_bytes());
        f
    }] {
        let mut c = TcpStream::connect(&inner_addr).unwrap();
        c.write_all(&hello(secret)).unwrap();
        c.write_all(&bad).unwrap();
        assert!(closed(c), "bad frame {bad:?} not closed");
    }
    // Malformed serialize data in a session or a body: closed or ignored, never a crash.
    let mut c = TcpStream::connect(&inner_addr).unwrap();
    c.write_all(&hello(secret)).unwrap();
    c.write_all(&frame(204, 1, 1, b"a:99999999:{", b""))
        .unwrap();
    c.write_all(&frame(5, 0, 1, b"", b"O:8:\"stdClass\":0:{}"))
        .unwrap();
    assert!(closed(c), "an object body must close the peer");

    // Register: garbage, a wrong secret, silence are all closed.
    let mut c = TcpStream::connect(&reg_addr).unwrap();
    c.write_all(b"not json\n").unwrap();
    assert!(closed(c));
    let mut c = TcpStream::connect(&reg_addr).unwrap();
    c.write_all(b"{\"event\":\"worker_connect\",\"secret_key\":\"nope\"}\n")
        .unwrap();
    assert!(closed(c));
    let mut c = TcpStream::connect(&reg_addr).unwrap();
    c.write_all(&vec![b'x'; 200_000]).unwrap_or(());
    assert!(closed(c), "an endless line must be closed");

    // After all that, the right secret still gets answers, in serialize() format.
    let mut c = TcpStream::connect(&inner_addr).unwrap();
    c.write_all(&hello(secret)).unwrap();
    c.write_all(&query).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut ans = [0u8; 8];
    c.read_exact(&mut ans).unwrap();
    assert_eq!(&ans, b"\0\0\0\x04i:0;");
    // And the Register lists the gateway to a worker with the secret.
    let c = TcpStream::connect(&reg_addr).unwrap();
    let mut r = BufReader::new(c);
    r.get_mut()
        .write_all(
            format!("{{\"event\":\"worker_connect\",\"secret_key\":\"{secret}\"}}\n").as_bytes(),
        )
        .unwrap();
    r.get_mut()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // The worker registers its own inner port shortly after start: read broadcasts until it
    // is listed.
    let v = wait_for(Duration::from_secs(10), || {
        let mut l = String::new();
        r.read_line(&mut l).ok()?;
        let v: serde_json::Value = serde_json::from_str(&l).ok()?;
        (v["addresses"] != serde_json::json!([])).then_some(v)
    })
    .expect("a broadcast listing the gateway");
    assert_eq!(v["event"], "broadcast_addresses");
    assert_eq!(v["addresses"], serde_json::json!([inner_addr]));
    drop(s);
}

/// The same script against any Register + gateway: a WebSocket client drives tests/php/Events.php
/// through every `Lib\Gateway` call, and GatewayClient asks from outside. Returns the
/// transcript with the client's own id replaced by "SELF".
fn scenario(ws: &str, register: &str) -> Vec<serde_json::Value> {
    let extra = [("X-Test", "t"), ("Cookie", "c=1; d=two")];
    // The PHP reference takes a moment to listen.
    assert!(common::wait_until(Duration::from_secs(20), || {
        TcpStream::connect(ws).is_ok()
    }));
    let (mut w, id) = wait_for(Duration::from_secs(20), || {
        // Until a BusinessWorker is linked the gateway resets clients (GatewayWorker does,
        // and so does kefu): the helper panics on that, which here only means "again".
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Ws::try_connect(ws, "/chat?room=7&x=y", &extra)
        }));
        let (mut w, status, _) = attempt.ok()?;
        if status != 101 {
            return None;
        }
        let t = w.recv_text()?;
        let v: serde_json::Value = serde_json::from_str(&t).ok()?;
        let id = v[1]["client_id"].as_str()?.to_owned();
        Some((w, id))
    })
    .expect("greeted through the PHP BusinessWorker");
    let norm = |t: &str| -> serde_json::Value {
        let t = t.replace(&id, "SELF");
        serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t))
    };
    let mut out = vec![norm(&w.recv_text().unwrap())];
    let say = |w: &mut Ws, m: &str, until: &str| {
        w.send_text(m);
        let mut got = Vec::new();
        loop {
            let t = w
                .recv_text()
                .unwrap_or_else(|| panic!("no answer to {m} after {got:?}"));
            let done = t == until || until.is_empty();
            got.push(norm(&t));
            if done {
                return got;
            }
        }
    };
    out.extend(say(&mut w, "setup", "ready"));
    out.extend(say(&mut w, "calls", ""));
    out.extend(say(&mut w, "sends", "sent"));
    out.extend(say(&mut w, "raws", "raws-done"));
    for (m, a) in [
        ("getClientCountByGroup", serde_json::json!(["g1"])),
        ("getSession", serde_json::json!([id])),
        ("getAllGroupClientIdCount", serde_json::json!([])),
        ("getClientIdListByGroup", serde_json::json!(["g2"])),
        ("getUidByClientId", serde_json::json!([id])),
    ] {
        let r = gateway_client(register, m, a);
        out.push(norm(&r.to_string()));
    }
    out.extend(say(&mut w, "undo", "undone"));
    out.extend(say(&mut w, "after", ""));
    w.send_text("bye");
    out.push(norm(&w.recv_text().unwrap_or_default()));
    out.push(serde_json::json!(w.recv_text().is_none()));
    out
}

#[test]
fn same_script_same_results_as_gatewayworker() {
    if !have_peer("same_script_same_results_as_gatewayworker") {
        return;
    }
    // GatewayWorker's own Register + Gateway.
    let (reg, ws_port, inner) = (free_port(), free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("kefu-gwref-{}", std::process::id()));
    let reference = Php::run(
        "register_gateway.php",
        &[
            ("GW_REGISTER_PORT", reg.to_string()),
            ("GW_WS_PORT", ws_port.to_string()),
            ("GW_INNER_PORT", inner.to_string()),
            ("GW_RUN_DIR", dir.join("ref").to_str().unwrap().to_owned()),
        ],
    );
    let register = format!("127.0.0.1:{reg}");
    let bw = Php::business(&register, &dir, test_events(), "BusinessWorker");
    let want = scenario(&format!("127.0.0.1:{ws_port}"), &register);
    drop(bw);
    drop(reference);

    // kefu as both.
    let (reg, inner) = (free_port(), free_port());
    let s = Instance::new("gatewayworker", 1, &["websocket"])
        .config(&config(reg, inner, ""))
        .start();
    let register = format!("127.0.0.1:{reg}");
    let _bw = Php::business(&register, &s.dir, test_events(), "BusinessWorker");
    let got = scenario(&s.addr("websocket"), &register);
    // The raw sends arrived as the frames PHP built (the transcripts are compared below too).
    for m in ["raw-one", "raw-current", "raw-uid", "raw-group", "raw-list"] {
        assert!(got.contains(&serde_json::json!(m)), "{m} not in {got:#?}");
    }
    assert_eq!(
        got.len(),
        want.len(),
        "kefu {got:#?}\nGatewayWorker {want:#?}"
    );
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "kefu {got:#?}\nGatewayWorker {want:#?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn killed_business_worker_hands_its_clients_to_another() {
    if !have_peer("killed_business_worker_hands_its_clients_to_another") {
        return;
    }
    let (reg, inner) = (free_port(), free_port());
    let s = Instance::new("gatewayworker", 1, &["text"])
        .config(&config(reg, inner, ""))
        .start();
    let register = format!("127.0.0.1:{reg}");
    let mut one = Php::business(&register, &s.dir, test_events(), "One");
    let _two = Php::business(&register, &s.dir, test_events(), "Two");
    // Least connections spreads clients over both once both are linked: connect until both
    // names answer.
    let mut clients = Vec::new();
    let ok = common::wait_until(Duration::from_secs(20), || {
        let (mut c, _) = text_client(&s.addr("text"));
        let who = say(&mut c, "who");
        clients.push((c, who));
        clients.iter().any(|(_, w)| w == "One") && clients.iter().any(|(_, w)| w == "Two")
    });
    assert!(ok, "both BusinessWorkers serve clients");
    // Stickiness: each client keeps its BusinessWorker.
    for (c, who) in &mut clients {
        assert_eq!(say(c, "who"), *who);
    }
    one.kill();
    // Every client, One's included, is now served by Two; none was closed by kefu. A message
    // kefu handed to One just before it died is lost with it (as with GatewayWorker), so a
    // client may have to ask twice.
    for (c, _) in &mut clients {
        let got = wait_for(Duration::from_secs(15), || {
            let r = try_say(c, "who")?;
            (r == "Two").then_some(r)
        });
        assert_eq!(got.as_deref(), Some("Two"));
    }
}

#[test]
fn two_kefu_instances_one_register() {
    if !have_peer("two_kefu_instances_one_register") {
        return;
    }
    // Instance A is the Register; B registers its inner port there, as a second
    // GatewayWorker gateway machine would.
    let (reg, inner_a, inner_b) = (free_port(), free_port(), free_port());
    let a = Instance::new("gatewayworker", 1, &["text"])
        .config(&config(reg, inner_a, ""))
        .start();
    let b = Instance::new("gatewayworker", 1, &["text"])
        .config(&format!(
            "[gatewayworker]\nlan_ip = \"127.0.0.1\"\nstart_port = {inner_b}\n\
             register_address = [\"127.0.0.1:{reg}\"]\n"
        ))
        .start();
    let register = format!("127.0.0.1:{reg}");
    let _bw = Php::business(&register, &a.dir, test_events(), "BusinessWorker");
    let (mut on_a, _) = text_client(&a.addr("text"));
    assert_eq!(say(&mut on_a, "setup"), "ready");
    // The BusinessWorker links to B as soon as the Register lists it.
    let (mut on_b, id_b) = text_client(&b.addr("text"));
    assert_eq!(
        u16::from_str_radix(&id_b[8..12], 16).unwrap(),
        inner_b,
        "{id_b}"
    );
    // From Events.php on B's client: sendToUid / sendToGroup / sendToAll reach A's client.
    on_b.get_mut().write_all(b"sends\n").unwrap();
    assert_eq!(hear(&mut on_a), "to-uid");
    assert_eq!(hear(&mut on_a), "to-group");
    // Excluded there is B's client, not A's.
    assert_eq!(hear(&mut on_a), "not-me");
    assert_eq!(hear(&mut on_a), "to-all");
    assert_eq!(hear(&mut on_b), "to-all");
    // A raw send from Events.php keeps the bytes PHP gave: one "\n", not two.
    assert_eq!(say(&mut on_a, "rawtext"), "raw-line");
    assert_eq!(hear(&mut on_a), "after-raw");
    // And from GatewayClient (sendToGroup's $raw), then a plain send after it.
    gateway_client(
        &register,
        "sendToGroup",
        serde_json::json!(["g1", "raw-from-client\n", null, true]),
    );
    gateway_client(&register, "sendToUid", serde_json::json!(["u1", "plain"]));
    // Two GatewayClient processes, two connections: either may be read first.
    let mut two = [hear(&mut on_a), hear(&mut on_a)];
    two.sort();
    assert_eq!(two, ["plain", "raw-from-client"]);
    // From GatewayClient: the uid on A, counted across both instances.
    gateway_client(
        &register,
        "sendToUid",
        serde_json::json!(["u1", "via client"]),
    );
    assert_eq!(hear(&mut on_a), "via client");
    let r = gateway_client(&register, "getAllClientIdCount", serde_json::json!([]));
    assert_eq!(r["result"], 2);
}
