//! Reload hands live connections over (issue 14, item 2): on `kefu reload` each old worker
//! gives every established connection (the socket, its protocol state, its unread and unsent
//! bytes, its deadlines) and its gateway state to its slot's successor. Clients see nothing:
//! no close, no 1012, no lost or repeated message, the same client id.

mod common;

use common::ws::Ws;
use common::{alive, Instance, SEC};
use std::io::{Read, Write};
use std::net::TcpStream;

fn echo(c: &mut Ws, msg: &str) {
    c.send_text(msg);
    assert_eq!(c.recv_text().as_deref(), Some(msg), "no echo for {msg}");
}

fn reload(k: &Instance) {
    let out = k.run(&["reload"], 60 * SEC);
    assert!(out.ok(), "{out:?}\n{}", k.log());
}

#[test]
fn websocket_text_and_keep_alive_http_clients_move_to_the_new_worker() {
    let k = Instance::new("echo", 1, &["websocket", "text", "http"]);
    assert!(k.start_detached().ok(), "{}", k.log());
    let before = k.worker_pids();
    let mut ws = Ws::connect(&k.addr("websocket"), "/");
    echo(&mut ws, "before");
    let mut text = TcpStream::connect(k.addr("text")).unwrap();
    text.set_read_timeout(Some(10 * SEC)).unwrap();
    let line = |s: &mut TcpStream, msg: &str| {
        s.write_all(format!("{msg}\n").as_bytes()).unwrap();
        let mut got = vec![0u8; msg.len() + 1];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, format!("{msg}\n").as_bytes());
    };
    line(&mut text, "text before");
    // Half a line and half a WebSocket frame are in flight when the reload comes.
    text.write_all(b"text ha").unwrap();
    let frame = masked_text("split frame");
    ws.sock.write_all(&frame[..5]).unwrap();
    // A keep-alive HTTP connection between two requests.
    let mut http = TcpStream::connect(k.addr("http")).unwrap();
    http.set_read_timeout(Some(10 * SEC)).unwrap();
    let first = get(&mut http);
    assert!(first.starts_with("HTTP/1.1 404"), "{first}");

    reload(&k);
    let after = k.worker_pids();
    assert_ne!(after, before);
    assert!(!alive(before[0]), "the old worker is still there");

    ws.sock.write_all(&frame[5..]).unwrap();
    assert_eq!(ws.recv_text().as_deref(), Some("split frame"));
    echo(&mut ws, "after");
    text.write_all(b"lf over\n").unwrap();
    let mut got = vec![0u8; "text half over\n".len()];
    text.read_exact(&mut got).unwrap();
    assert_eq!(got, b"text half over\n");
    line(&mut text, "text after");
    let second = get(&mut http);
    assert!(second.starts_with("HTTP/1.1 404"), "{second}");
    assert!(k.run(&["stop"], 10 * SEC).ok());
}

/// A client frame (masked) with a text payload.
fn masked_text(s: &str) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut f = vec![0x81, 0x80 | s.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(s.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// One keep-alive GET; returns the head and body.
fn get(s: &mut TcpStream) -> String {
    s.write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&b[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return text;
            }
        }
    }
}

#[test]
fn a_connection_mid_handshake_is_handed_over_as_it_is() {
    let k = Instance::new("echo", 1, &["websocket"]);
    assert!(k.start_detached().ok(), "{}", k.log());
    let mut s = TcpStream::connect(k.addr("websocket")).unwrap();
    s.set_read_timeout(Some(10 * SEC)).unwrap();
    // The old worker has this much of the upgrade request when the reload comes.
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Up")
        .unwrap();
    // Wait until the old worker holds those bytes undecoded (HANDSHAKE with a receive queue).
    let port = s.local_addr().unwrap().port().to_string();
    assert!(
        common::wait_until(10 * SEC, || {
            let out = k.run(&["connections", "--json"], 10 * SEC);
            let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
            v.as_array().into_iter().flatten().any(|c| {
                c["remote"].as_str().is_some_and(|r| r.ends_with(&port))
                    && c["state"] == "HANDSHAKE"
                    && c["recv_q"].as_u64() > Some(0)
            })
        }),
        "the old worker never held the half request"
    );
    let mut other = Ws::connect(&k.addr("websocket"), "/");
    echo(&mut other, "settled");
    reload(&k);
    s.write_all(
        b"grade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "closed mid-handshake");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let mut ws = Ws::from_stream(s);
    echo(&mut ws, "upgraded on the new worker");
    echo(&mut other, "still here");
    assert!(k.run(&["stop"], 10 * SEC).ok());
}

#[test]
fn a_new_binary_that_cannot_read_the_state_closes_with_1012_and_says_why() {
    let k = Instance::echo(1);
    // The server runs from its own copy of the binary, so the "upgrade" below can replace it.
    let bin = k.dir.join("kefu-bin");
    std::fs::copy(common::KEFU, &bin).unwrap();
    let mut args = vec!["start".to_string(), "-d".to_string()];
    args.extend(k.start_args());
    args.extend(["--pid-file".into(), "k.pid".into()]);
    let out = common::run_bin(&bin, &k.dir, &args, 30 * SEC);
    assert!(out.ok(), "{out:?}\n{}", k.log());
    let addr = k.addr("websocket");
    let mut c = Ws::connect(&addr, "/");
    echo(&mut c, "before");
    // The new "binary" reads a hand-over format this one does not write.
    std::fs::remove_file(&bin).unwrap();
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\nKEFU_HANDOVER_FORMAT=999 exec {} \"$@\"\n",
            common::KEFU
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    reload(&k);
    assert_eq!(c.recv_close_code(), Some(1012), "{}", k.log());
    let log = k.log();
    assert!(
        log.contains("the new worker reads hand-over format 999 and this one writes format 5"),
        "{log}"
    );
    assert!(log.contains("starts fresh"), "{log}");
    // The fresh worker serves: a reconnecting client is echoed.
    let mut again = Ws::connect(&addr, "/");
    echo(&mut again, "after");
    assert!(k.run(&["stop"], 10 * SEC).ok());
}

#[test]
fn chat_rooms_and_private_messages_work_after_a_reload_from_every_worker() {
    use serde_json::json;
    let k = Instance::new("chat", 2, &["websocket"]).start();
    let addr = k.addr("websocket");
    let login = |ws: &mut Ws, name: &str| -> String {
        ws.send_text(&json!({"type":"login","client_name":name,"room_id":"r"}).to_string());
        let v = ws.recv_json_type("login");
        v["client_id"].as_str().unwrap().to_owned()
    };
    // Clients until both workers hold some (the client id's first 16 digits name the worker).
    let mut clients: Vec<(Ws, String)> = Vec::new();
    for i in 0..200 {
        let incs: std::collections::BTreeSet<String> =
            clients.iter().map(|(_, id)| id[..16].to_string()).collect();
        if incs.len() == 2 && clients.len() >= 4 {
            break;
        }
        let mut ws = Ws::connect(&addr, "/");
        let id = login(&mut ws, &format!("c{i}"));
        clients.push((ws, id));
    }
    let n = clients.len();
    // Everyone drains the login announcements of those who came after them.
    for (i, (ws, _)) in clients.iter_mut().enumerate() {
        for _ in i + 1..n {
            ws.recv_json_type("login");
        }
    }
    let before = k.worker_pids();
    reload(&k);
    assert!(k.worker_pids().iter().all(|p| !before.contains(p)));
    // Every client speaks to the room and privately to the next one: the room (a group of
    // moved clients on both workers), the names (sessions) and the ids all survived.
    for i in 0..n {
        let next = clients[(i + 1) % n].1.clone();
        let me = clients[i].1.clone();
        let ws = &mut clients[i].0;
        ws.send_text(
            &json!({"type":"say","to_client_id":"all","content":format!("all{i}")}).to_string(),
        );
        for (ws, _) in clients.iter_mut() {
            let m = ws.recv_json_type("say");
            assert_eq!(m["content"], format!("all{i}"));
            assert_eq!(m["from_client_id"], me.as_str());
            assert_eq!(m["from_client_name"], format!("c{i}"));
        }
        let ws = &mut clients[i].0;
        ws.send_text(
            &json!({"type":"say","to_client_id":next,"content":format!("p{i}")}).to_string(),
        );
        let j = (i + 1) % n;
        // workerman-chat's private lines: "to you" for the receiver, "you to NAME" for the
        // sender (no to_client_name given here, so an empty name).
        assert_eq!(
            clients[j].0.recv_json_type("say")["content"],
            format!("<b>对你说: </b>p{i}")
        );
        if j != i {
            assert_eq!(
                clients[i].0.recv_json_type("say")["content"],
                format!("<b>你对说: </b>p{i}")
            );
        }
    }
}

#[test]
fn workers_that_start_fresh_after_a_refused_hand_over_are_linked_to_each_other() {
    use serde_json::json;
    // Three slots hand over at once; every successor is refused and starts fresh, so each
    // must get a bus link to each of the others (once) after the hand-overs are over.
    let k = Instance::new("chat", 3, &["websocket"]);
    let bin = k.dir.join("kefu-bin");
    std::fs::copy(common::KEFU, &bin).unwrap();
    let mut args = vec!["start".to_string(), "-d".to_string()];
    args.extend(k.start_args());
    args.extend(["--pid-file".into(), "k.pid".into()]);
    let out = common::run_bin(&bin, &k.dir, &args, 30 * SEC);
    assert!(out.ok(), "{out:?}\n{}", k.log());
    std::fs::remove_file(&bin).unwrap();
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\nKEFU_HANDOVER_FORMAT=999 exec {} \"$@\"\n",
            common::KEFU
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    reload(&k);
    let log = k.log();
    assert_eq!(log.matches("starts fresh").count(), 3, "{log}");

    let addr = k.addr("websocket");
    let login = |ws: &mut Ws, name: &str| -> String {
        ws.send_text(&json!({"type":"login","client_name":name,"room_id":"r"}).to_string());
        let v = ws.recv_json_type("login");
        v["client_id"].as_str().unwrap().to_owned()
    };
    // Clients until every worker holds some (the first 16 digits of a client id name its
    // worker).
    let mut clients: Vec<(Ws, String)> = Vec::new();
    for i in 0..300 {
        let incs: std::collections::BTreeSet<String> =
            clients.iter().map(|(_, id)| id[..16].to_string()).collect();
        if incs.len() == 3 {
            break;
        }
        let mut ws = Ws::connect(&addr, "/");
        let id = login(&mut ws, &format!("c{i}"));
        clients.push((ws, id));
    }
    let n = clients.len();
    let incs: std::collections::BTreeSet<String> =
        clients.iter().map(|(_, id)| id[..16].to_string()).collect();
    assert_eq!(
        incs.len(),
        3,
        "the kernel never spread {n} clients over 3 workers"
    );
    for (i, (ws, _)) in clients.iter_mut().enumerate() {
        for _ in i + 1..n {
            ws.recv_json_type("login");
        }
    }
    // A room line from each worker reaches the members on every worker, exactly once: the
    // successors are linked in every direction, and to each other only once.
    for i in 0..n {
        let ws = &mut clients[i].0;
        ws.send_text(
            &json!({"type":"say","to_client_id":"all","content":format!("all{i}")}).to_string(),
        );
        for (ws, _) in clients.iter_mut() {
            assert_eq!(ws.recv_json_type("say")["content"], format!("all{i}"));
        }
    }
    // A repeated last line would come before this one.
    clients[0]
        .0
        .send_text(&json!({"type":"say","to_client_id":"all","content":"end"}).to_string());
    for (ws, _) in clients.iter_mut() {
        assert_eq!(ws.recv_json_type("say")["content"], "end");
    }
    assert!(k.run(&["stop"], 10 * SEC).ok());
}
