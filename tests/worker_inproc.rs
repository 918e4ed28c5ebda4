//! The worker loop driven in-process (no master): readiness, status over the control
//! channel, panic isolation, idle timeouts and stop orders.

mod common;

use common::free_port;
use common::ws::Ws;
use kefu::api::{App, ClientId, Ctx, Payload};
use kefu::config::{Config, Overrides};
use kefu::ipc::{self, LineBuf, MasterMsg, WorkerMsg};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Echoes, but panics on the message "boom".
struct Fragile;

impl App for Fragile {
    fn on_message(&mut self, cx: &mut Ctx<'_>, id: ClientId, msg: Payload<'_>) {
        if msg.bytes() == b"boom" {
            panic!("app bug on purpose");
        }
        cx.send_to_client(id, msg);
    }
}

struct Harness {
    ctl: UnixStream,
    lines: LineBuf,
    port: u16,
    thread: Option<std::thread::JoinHandle<i32>>,
}

impl Harness {
    fn start(app: fn() -> Box<dyn App>, toml: &str) -> Harness {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("kefu-inproc-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("k.toml");
        std::fs::write(&p, toml).unwrap();
        let ov = Overrides {
            listen: vec![format!("websocket://127.0.0.1:{port}")],
            ..Default::default()
        };
        let cfg = Config::load(Some(&p), &ov).unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        let thread =
            std::thread::spawn(move || kefu::worker::run(cfg, app(), 0, 1, b, Vec::new(), None));
        a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut h = Harness {
            ctl: a,
            lines: LineBuf::default(),
            port,
            thread: Some(thread),
        };
        match h.recv() {
            WorkerMsg::Ready { listeners, .. } => assert_eq!(listeners.len(), 1),
            m => panic!("expected ready, got {m:?}"),
        }
        h
    }

    fn recv(&mut self) -> WorkerMsg {
        loop {
            if let Some(m) = self.lines.next_msg::<WorkerMsg>().unwrap() {
                return m;
            }
            let mut b = [0u8; 65536];
            let n = self.ctl.read(&mut b).unwrap();
            assert!(n > 0, "worker closed control channel");
            self.lines.extend(&b[..n]);
        }
    }

    fn send(&mut self, m: &MasterMsg) {
        self.ctl.write_all(&ipc::encode(m)).unwrap();
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn stop(mut self, graceful: bool) -> i32 {
        self.send(&MasterMsg::Stop {
            graceful,
            restart: true,
        });
        self.thread.take().unwrap().join().unwrap()
    }
}

#[test]
fn panic_closes_only_that_connection() {
    let mut h = Harness::start(|| Box::new(Fragile), "");
    let mut a = Ws::connect(&h.addr(), "/");
    let mut b = Ws::connect(&h.addr(), "/");
    a.send_text("boom");
    assert!(a.recv_frame().is_none(), "the panicking client is dropped");
    b.send_text("still alive");
    assert_eq!(b.recv_text().unwrap(), "still alive");
    h.send(&MasterMsg::Status { req: 1 });
    match h.recv() {
        WorkerMsg::Status { req: 1, status } => {
            assert_eq!(status.connections, 1);
            assert!(status.total_request >= 2);
        }
        m => panic!("{m:?}"),
    }
    // A fast stop during a reload closes WebSocket clients with 1012.
    let stopper = std::thread::spawn(move || h.stop(false));
    assert_eq!(b.recv_close_code(), Some(1012));
    drop(b);
    assert_eq!(stopper.join().unwrap(), 0);
}

#[test]
fn connections_report_and_idle_timeout() {
    let mut h = Harness::start(|| Box::new(Fragile), "[limits]\nidle_timeout = 0.5\n");
    let mut a = Ws::connect(&h.addr(), "/");
    a.send_text("x");
    assert_eq!(a.recv_text().unwrap(), "x");
    h.send(&MasterMsg::Connections { req: 9 });
    match h.recv() {
        WorkerMsg::Connections { req: 9, conns } => {
            assert_eq!(conns.len(), 1);
            assert_eq!(conns[0].protocol, "websocket");
            assert_eq!(conns[0].state, "ESTABLISHED");
            assert!(conns[0].bytes_read > 0 && conns[0].bytes_written > 0);
        }
        m => panic!("{m:?}"),
    }
    // Silent for longer than idle_timeout: closed with 1001.
    assert_eq!(a.recv_close_code(), Some(1001));
    h.stop(true);
}

#[test]
fn handshake_timeout_frees_the_slot() {
    let h = Harness::start(|| Box::new(Fragile), "[limits]\nhandshake_timeout = 0.3\n");
    let mut c = std::net::TcpStream::connect(h.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let mut b = [0u8; 16];
    // The server hangs up on the slow client (EOF or reset), long before our 5 s timeout.
    let t0 = std::time::Instant::now();
    let r = c.read(&mut b);
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(4));
    h.stop(false);
}
