//! `kefu connections` against a live instance: two WebSocket clients and one text client on two
//! workers show up with their protocol, state, byte counters and both addresses, in JSON and in
//! Workerman's table.

mod common;

use common::ws::Ws;
use common::Instance;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

const SEC: Duration = Duration::from_secs(1);

#[test]
fn connections_lists_every_client_with_protocol_state_bytes_and_addresses() {
    let k = Instance::echo(2);
    let out = k.start_detached();
    assert!(out.ok(), "start failed: {out:?}\n{}", k.log());
    let workers = k.worker_pids();
    assert_eq!(workers.len(), 2);

    // Every client echoes once, so each connection has read and written bytes.
    let ws_addr = format!("127.0.0.1:{}", k.port("websocket"));
    let mut ws: Vec<Ws> = (0..2).map(|_| Ws::connect(&ws_addr, "/")).collect();
    for (i, c) in ws.iter_mut().enumerate() {
        let msg = format!("hello {i}");
        c.send_text(&msg);
        assert_eq!(c.recv_text().as_deref(), Some(msg.as_str()));
    }
    let mut text = TcpStream::connect(("127.0.0.1", k.port("text"))).unwrap();
    text.set_read_timeout(Some(10 * SEC)).unwrap();
    text.write_all(b"line\n").unwrap();
    let mut line = String::new();
    BufReader::new(&text).read_line(&mut line).unwrap();
    assert_eq!(line, "line\n");

    let clients: Vec<(&str, &TcpStream)> = ws
        .iter()
        .map(|c| ("websocket", &c.sock))
        .chain([("text", &text)])
        .collect();

    let out = k.run(&["connections", "--json"], 10 * SEC);
    assert!(out.ok(), "{out:?}\n{}", k.log());
    let conns: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("json");
    let conns = conns.as_array().expect("array of connections");
    assert_eq!(conns.len(), 3, "{conns:#?}");
    for (protocol, sock) in &clients {
        // The server's remote is our local address and vice versa.
        let ours = sock.local_addr().unwrap().to_string();
        let theirs = sock.peer_addr().unwrap().to_string();
        let c = conns
            .iter()
            .find(|c| c["remote"] == ours.as_str())
            .unwrap_or_else(|| panic!("no connection from {ours}: {conns:#?}"));
        assert_eq!(c["local"], theirs.as_str(), "{c}");
        assert_eq!(c["protocol"], *protocol, "{c}");
        assert_eq!(c["state"], "ESTABLISHED", "{c}");
        assert!(c["bytes_read"].as_u64().unwrap() > 0, "{c}");
        assert!(c["bytes_written"].as_u64().unwrap() > 0, "{c}");
        let pid = c["pid"].as_i64().unwrap() as i32;
        assert!(
            workers.contains(&pid),
            "pid {pid} is not a worker {workers:?}"
        );
    }

    let table = k.run(&["connections"], 10 * SEC);
    assert!(table.ok(), "{table:?}");
    let mut lines = table.stdout.lines();
    assert!(lines
        .next()
        .is_some_and(|l| l.contains(" WORKERMAN CONNECTION STATUS ")));
    let header = lines.next().unwrap_or_default();
    let cols: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        cols,
        [
            "PID", "Worker", "CID", "Trans", "Protocol", "ipv4", "ipv6", "Recv-Q", "Send-Q",
            "Bytes-R", "Bytes-W", "Status", "Local", "Address", "Foreign", "Address"
        ],
        "{header}"
    );
    for (protocol, sock) in &clients {
        let ours = sock.local_addr().unwrap().to_string();
        let row = table
            .stdout
            .lines()
            .find(|l| l.ends_with(&ours))
            .unwrap_or_else(|| panic!("no row for {ours}:\n{}", table.stdout));
        assert!(
            row.contains(protocol) && row.contains("ESTABLISHED"),
            "{row}"
        );
    }
    assert!(k.run(&["stop"], 10 * SEC).ok());
}

/// A keep-alive HTTP connection that has been answered and waits for its next request is
/// `IDLE` (it was shown as `HANDSHAKE`); the table prints whole 32-character client ids with
/// the columns after them still aligned.
#[test]
fn an_answered_keep_alive_connection_is_idle_and_ids_fit_their_column() {
    let k = Instance::new("echo", 1, &["http"]);
    let out = k.start_detached();
    assert!(out.ok(), "start failed: {out:?}\n{}", k.log());
    let mut s = TcpStream::connect(k.addr("http")).unwrap();
    s.set_read_timeout(Some(10 * SEC)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut len = 0usize;
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
        if l == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; len];
    std::io::Read::read_exact(&mut r, &mut body).unwrap();
    let ours = s.local_addr().unwrap().to_string();

    let out = k.run(&["connections", "--json"], 10 * SEC);
    assert!(out.ok(), "{out:?}");
    let conns: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("json");
    let c = conns
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["remote"] == ours.as_str())
        .unwrap_or_else(|| panic!("no connection from {ours}: {conns:#?}"))
        .clone();
    assert_eq!(c["state"], "IDLE", "{c}");
    let id = c["id"].as_str().unwrap().to_string();

    let table = k.run(&["connections"], 10 * SEC);
    let header = table.stdout.lines().nth(1).unwrap();
    let row = table
        .stdout
        .lines()
        .find(|l| l.ends_with(&ours))
        .unwrap_or_else(|| panic!("no row for {ours}:\n{}", table.stdout));
    assert!(row.contains(&format!("{id} ")), "{row}");
    assert_eq!(header.find("Status"), row.find("IDLE"), "{header}\n{row}");
    drop(s);
    assert!(k.run(&["stop"], 10 * SEC).ok());
}
