//! Heartbeats with GatewayWorker's meaning: ping_data to idle clients, silent ones closed
//! after limit × interval (their on_close runs), clients that answer stay; pong frames count.

mod common;

use common::http::{api_config, Http};
use common::ws::Ws;
use common::Instance;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const PING: &str = r#"{"type":"ping"}"#;

fn start(ws_ping: bool) -> Instance {
    Instance::new("bridge", 1, &["websocket", "text", "api"])
        .config(&format!(
            "{}ping_interval = 0.2\nping_not_response_limit = 2\nping_data = '{PING}'\nws_ping = {ws_ping}\n",
            api_config()
        ))
        .start()
}

fn count(s: &Instance) -> u64 {
    let mut h = Http::connect(&s.addr("api"));
    h.ok("get_all_client_id_count", json!({})).as_u64().unwrap()
}

#[test]
fn idle_ws_client_is_pinged_then_closed() {
    let s = start(false);
    let mut ws = Ws::connect(&s.addr("websocket"), "/");
    ws.recv_json_type("init");
    let t0 = Instant::now();
    // Never answer: first the ping data, after about an interval...
    assert_eq!(ws.recv_text().as_deref(), Some(PING));
    let first = t0.elapsed();
    assert!(
        first >= Duration::from_millis(150),
        "pinged too early: {first:?}"
    );
    // ...then closed after about limit × interval of silence (1001 going away).
    assert_eq!(ws.recv_close_code(), Some(1001));
    let closed = t0.elapsed();
    assert!(
        closed >= Duration::from_millis(350) && closed < Duration::from_secs(2),
        "closed after {closed:?}"
    );
    // on_close ran: the client left the registry.
    assert!(common::wait_until(Duration::from_secs(2), || count(&s) == 0));
}

#[test]
fn answering_clients_stay() {
    let s = start(false);
    let mut ws = Ws::connect(&s.addr("websocket"), "/");
    ws.recv_json_type("init");
    let t0 = Instant::now();
    let mut pings = 0;
    while t0.elapsed() < Duration::from_millis(1500) {
        let m = ws.recv_text().expect("connection kept while answering");
        assert_eq!(m, PING);
        pings += 1;
        ws.send_text("pong");
    }
    // About one ping per interval (0.2 s) while idle between them, not one per tick.
    assert!((4..=9).contains(&pings), "{pings} pings in 1.5 s");
    assert_eq!(count(&s), 1);
}

#[test]
fn ws_ping_frames_and_pongs_count_as_activity() {
    let s = start(true);
    let mut ws = Ws::connect(&s.addr("websocket"), "/");
    ws.recv_json_type("init");
    let t0 = Instant::now();
    let mut ping_frames = 0;
    // Answer only the WebSocket pings (as browsers do), never send a message.
    while t0.elapsed() < Duration::from_millis(1200) {
        let f = ws.recv_frame().expect("kept alive by pong frames");
        match f.opcode {
            9 => {
                ping_frames += 1;
                ws.send_frame(true, 10, &f.payload);
            }
            1 => assert_eq!(f.payload, PING.as_bytes()),
            op => panic!("unexpected frame {op}"),
        }
    }
    assert!(ping_frames >= 3, "{ping_frames} ping frames");
    assert_eq!(count(&s), 1);
}

#[test]
fn text_clients_too() {
    let s = start(false);
    let quiet = TcpStream::connect(s.addr("text")).unwrap();
    quiet
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut quiet = BufReader::new(quiet);
    let chatty = TcpStream::connect(s.addr("text")).unwrap();
    chatty
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut chatty_w = chatty.try_clone().unwrap();
    let mut chatty = BufReader::new(chatty);
    let mut line = String::new();
    quiet.read_line(&mut line).unwrap();
    assert!(line.contains("\"init\""));
    line.clear();
    chatty.read_line(&mut line).unwrap();
    assert!(line.contains("\"init\""));
    let t0 = Instant::now();
    let mut quiet_lines = Vec::new();
    let mut buf = String::new();
    loop {
        buf.clear();
        match quiet.read_line(&mut buf) {
            Ok(0) => break,
            Ok(_) => quiet_lines.push(buf.trim_end().to_string()),
            Err(e) => panic!("quiet text client was never closed: {e}"),
        }
        // Keep the chatty one busy meanwhile.
        use std::io::Write;
        let _ = chatty_w.write_all(b"here\n");
    }
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert!(quiet_lines.iter().any(|l| l == PING), "{quiet_lines:?}");
    // The chatty client is still connected.
    use std::io::Write;
    chatty_w.write_all(b"still here\n").unwrap();
    assert!(common::wait_until(Duration::from_secs(2), || count(&s) == 1));
    // And stays while it answers: each ping it gets is a heartbeat tick that found it idle
    // for an interval and pinged it instead of closing it. Three answered pings span more
    // than the limit × interval (0.4 s) a silent client survives.
    for _ in 0..3 {
        line.clear();
        chatty
            .read_line(&mut line)
            .expect("chatty text client was closed");
        assert_eq!(line.trim_end(), PING);
        chatty_w.write_all(b"x\n").unwrap();
    }
    assert_eq!(count(&s), 1);
}
