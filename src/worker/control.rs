//! The worker's end of the master control channel: Ready/Failed announcements, status and
//! connection reports, stop orders, and admin changes for the app.

use super::{Stopping, Worker};
use crate::connection::buffer::{Flush, OutBuf};
use crate::ipc::{self, ConnInfo, LineBuf, MasterMsg, WorkerMsg, WorkerStatus};
use crate::protocol::websocket::close as ws_close;
use mio::net::UnixStream;
use mio::{Interest, Registry, Token};
use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// At most this many rows per worker in `kefu connections` (keeps the reply bounded).
const MAX_CONN_ROWS: usize = 50_000;

/// The control socket with its buffers.
pub(super) struct Control {
    sock: UnixStream,
    inbuf: LineBuf,
    out: OutBuf,
    /// Descriptors received and not yet claimed by a `Peer` message, in arrival order.
    fds: VecDeque<OwnedFd>,
}

impl Control {
    /// Wrap the inherited socket.
    pub(super) fn new(s: std::os::unix::net::UnixStream) -> io::Result<Control> {
        s.set_nonblocking(true)?;
        Ok(Control {
            sock: UnixStream::from_std(s),
            inbuf: LineBuf::default(),
            out: OutBuf::default(),
            fds: VecDeque::new(),
        })
    }

    /// Register with the poll.
    pub(super) fn register(&mut self, r: &Registry, t: Token) -> io::Result<()> {
        r.register(&mut self.sock, t, Interest::READABLE | Interest::WRITABLE)
    }

    /// Queue a message and write what the socket takes now (the rest on writable).
    pub(super) fn send(&mut self, m: &WorkerMsg) {
        self.out.push(&ipc::encode(m));
        self.flush();
    }

    fn flush(&mut self) {
        // The master reads promptly; if it does not, the message waits for a writable event.
        let _ = self.out.flush_to(&mut self.sock, &[]);
    }

    /// Send before the loop exists (startup failure): wait briefly for the socket.
    pub(super) fn send_blocking(&mut self, m: &WorkerMsg) {
        self.out.push(&ipc::encode(m));
        for _ in 0..100 {
            match self.out.flush_to(&mut self.sock, &[]) {
                Ok((_, Flush::Done)) | Err(_) => return,
                Ok((_, Flush::Blocked)) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

fn rss_bytes() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

impl Worker {
    /// Handle control-socket readiness; returns false when the master is gone (exit now).
    pub(super) fn on_control(&mut self, readable: bool) -> bool {
        self.control.flush();
        if !readable {
            return true;
        }
        let mut buf = [0u8; 4096];
        loop {
            let mut fds = Vec::new();
            let r = crate::sys::fdpass::recv_with_fds(&self.control.sock, &mut buf, &mut fds);
            self.control.fds.extend(fds);
            match r {
                Ok(0) => {
                    crate::warn!("master closed the control channel; worker exits");
                    return false;
                }
                Ok(n) => self.control.inbuf.extend(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        loop {
            match self.control.inbuf.next_msg::<MasterMsg>() {
                Ok(Some(m)) => self.on_master_msg(m),
                Ok(None) => return true,
                Err(e) => {
                    crate::error!("control channel: {e}");
                    return false;
                }
            }
        }
    }

    fn on_master_msg(&mut self, m: MasterMsg) {
        match m {
            MasterMsg::Stop { graceful, restart } => self.stop(graceful, restart),
            MasterMsg::Status { req } => {
                let status = self.status();
                self.control.send(&WorkerMsg::Status { req, status });
            }
            MasterMsg::Connections { req } => {
                let conns = self.connection_rows();
                self.control.send(&WorkerMsg::Connections { req, conns });
            }
            MasterMsg::Admin { event } => {
                super::input::guarded(&mut self.core, None, "on_admin", |cx| {
                    self.app.on_admin(cx, &event)
                });
            }
            MasterMsg::Peer { inc, worker_id } => match self.control.fds.pop_front() {
                Some(fd) => self.add_peer(inc, worker_id, fd),
                None => crate::error!("peer message for worker {worker_id} came without a socket"),
            },
        }
    }

    fn stop(&mut self, graceful: bool, restart: bool) {
        if self.stopping != Stopping::No && graceful {
            return;
        }
        let code = if restart {
            ws_close::SERVICE_RESTART
        } else {
            ws_close::GOING_AWAY
        };
        crate::info!(
            "worker {} stopping ({}{})",
            self.core.worker_id,
            if graceful { "graceful" } else { "fast" },
            if restart { ", reload" } else { "" }
        );
        self.close_listeners();
        // From now on an HTTP answer closes its connection instead of keeping it alive.
        self.core.stopping = Some(code);
        self.close_idle_http();
        let first = self.stopping == Stopping::No;
        if first {
            super::input::guarded(&mut self.core, None, "on_worker_stop", |cx| {
                self.app.on_worker_stop(cx)
            });
        }
        if graceful {
            self.stopping = Stopping::Draining;
            let t = self.cfg.graceful_timeout;
            if !t.is_zero() {
                self.core
                    .timers
                    .schedule(self.core.now + t, crate::state::timer::Due::DrainDeadline);
            }
        } else {
            self.close_all();
        }
    }

    fn status(&self) -> WorkerStatus {
        WorkerStatus {
            pid: std::process::id(),
            worker_id: self.core.worker_id,
            inc: self.core.inc,
            memory: rss_bytes(),
            listening: self
                .cfg
                .listen
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            name: self.app_name.clone(),
            connections: self.core.conns.len() as u64,
            send_fail: self.core.stats.send_fail,
            timers: self.core.timers.app_count() as u64,
            total_request: self.core.stats.total_request,
            state: match self.stopping {
                Stopping::No => "idle",
                _ => "draining",
            }
            .into(),
        }
    }

    fn connection_rows(&self) -> Vec<ConnInfo> {
        let pid = std::process::id();
        self.core
            .conns
            .iter()
            .take(MAX_CONN_ROWS)
            .map(|(slot, c)| ConnInfo {
                pid,
                id: self
                    .core
                    .client_id(crate::gateway::client_id::ConnId {
                        slot: slot as u32,
                        gen: c.gen,
                    })
                    .to_string(),
                protocol: c.protocol_name().into(),
                recv_q: c.in_buf.len() as u64,
                send_q: c.out.len() as u64,
                bytes_read: c.bytes_read,
                bytes_written: c.bytes_written,
                state: c.state_name().into(),
                local: c.stream.local_addr().unwrap_or(c.remote).to_string(),
                remote: c.remote.to_string(),
            })
            .collect()
    }
}
