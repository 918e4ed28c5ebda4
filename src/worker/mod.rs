//! STUB: replaced by the real worker.
//!
//! A thread-per-connection stand-in so the master and CLI can be tested before the real mio
//! worker lands: binds every listener with SO_REUSEPORT, reports Ready, echoes `\n` lines,
//! answers Status/Connections, exits on Stop or when the control socket closes.

use crate::config::Config;
use crate::ipc::{encode, ConnInfo, MasterMsg, WorkerMsg, WorkerStatus};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    total_request: AtomicU64,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, ConnInfo>>,
}

/// Run the stub worker; returns the process exit code.
pub fn run(cfg: Config, worker_id: usize, _generation: u32, control: UnixStream) -> i32 {
    let shared = Arc::new(Shared::default());
    let mut listeners = Vec::new();
    for l in &cfg.listen {
        match crate::sys::socket::bind_listener(l.addr, true) {
            Ok(sock) => listeners.push((l.to_string(), sock)),
            Err(e) => {
                let msg = WorkerMsg::Failed {
                    reason: format!("cannot listen on {l}: {e}"),
                };
                let _ = (&control).write_all(&encode(&msg));
                return 1;
            }
        }
    }
    let names: Vec<String> = listeners.iter().map(|(n, _)| n.clone()).collect();
    for (name, sock) in listeners {
        let sh = shared.clone();
        let proto = name.split("://").next().unwrap_or("tcp").to_string();
        std::thread::spawn(move || accept_loop(sock, proto, sh));
    }
    let ready = WorkerMsg::Ready {
        pid: std::process::id(),
        listeners: names.clone(),
    };
    if (&control).write_all(&encode(&ready)).is_err() {
        return 1;
    }
    let reader = match control.try_clone() {
        Ok(r) => BufReader::new(r),
        Err(_) => return 1,
    };
    for line in reader.lines() {
        let Ok(line) = line else { break };
        let Ok(msg) = serde_json::from_str::<MasterMsg>(&line) else {
            continue;
        };
        match msg {
            MasterMsg::Stop { graceful, .. } => {
                shared.stopping.store(true, Ordering::SeqCst);
                if graceful {
                    // Drain: wait for the clients to leave (the master enforces any timeout).
                    while !shared.conns.lock().map(|c| c.is_empty()).unwrap_or(true) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                return 0;
            }
            MasterMsg::Status { req } => {
                let status = WorkerStatus {
                    pid: std::process::id(),
                    worker_id,
                    memory: rss(),
                    listening: names.join(" "),
                    name: cfg.app.clone(),
                    connections: shared.conns.lock().map(|c| c.len() as u64).unwrap_or(0),
                    send_fail: 0,
                    timers: 0,
                    total_request: shared.total_request.load(Ordering::Relaxed),
                    state: "idle".into(),
                };
                let _ = (&control).write_all(&encode(&WorkerMsg::Status { req, status }));
            }
            MasterMsg::Connections { req } => {
                let conns = shared
                    .conns
                    .lock()
                    .map(|c| c.values().cloned().collect())
                    .unwrap_or_default();
                let _ = (&control).write_all(&encode(&WorkerMsg::Connections { req, conns }));
            }
        }
    }
    // Control EOF: the master is gone.
    0
}

fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

fn accept_loop(sock: TcpListener, proto: String, sh: Arc<Shared>) {
    while !sh.stopping.load(Ordering::SeqCst) {
        match sock.accept() {
            Ok((s, peer)) => {
                let _ = s.set_nonblocking(false);
                let id = sh.next_id.fetch_add(1, Ordering::Relaxed) + 1;
                let info = ConnInfo {
                    pid: std::process::id(),
                    id: id.to_string(),
                    protocol: proto.clone(),
                    state: "ESTABLISHED".into(),
                    local: s.local_addr().map(|a| a.to_string()).unwrap_or_default(),
                    remote: peer.to_string(),
                    ..Default::default()
                };
                if let Ok(mut c) = sh.conns.lock() {
                    c.insert(id, info);
                }
                let sh2 = sh.clone();
                std::thread::spawn(move || echo(s, id, sh2));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    // Dropping the listener here closes it: no new connections during a stop.
}

fn echo(s: TcpStream, id: u64, sh: Arc<Shared>) {
    if let Ok(r) = s.try_clone() {
        let mut w = s;
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            sh.total_request.fetch_add(1, Ordering::Relaxed);
            if w.write_all(format!("{line}\n").as_bytes()).is_err() {
                break;
            }
        }
    }
    if let Ok(mut c) = sh.conns.lock() {
        c.remove(&id);
    }
}
