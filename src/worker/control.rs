//! The worker's end of the master control channel: Ready/Failed announcements, status and
//! connection reports, stop orders, and admin changes for the app.

use crate::config::Config;
use crate::connection::buffer::{Flush, OutBuf};
use crate::gateway::client_id::ConnId;
use crate::ipc::{self, ConnInfo, LineBuf, MasterMsg, WorkerMsg, WorkerStatus};
use crate::state::Core;
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

    /// Handle readiness: write what waits, and read what the master sent (with any
    /// descriptors); false when the master is gone (the worker exits).
    pub(super) fn receive(&mut self, readable: bool) -> bool {
        self.flush();
        if !readable {
            return true;
        }
        let mut buf = [0u8; 4096];
        loop {
            let mut fds = Vec::new();
            let r = crate::sys::fdpass::recv_with_fds(&self.sock, &mut buf, &mut fds);
            self.fds.extend(fds);
            match r {
                Ok(0) => {
                    crate::warn!("master closed the control channel; worker exits");
                    return false;
                }
                Ok(n) => self.inbuf.extend(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// The next whole message received, if any.
    pub(super) fn next_msg(&mut self) -> Result<Option<MasterMsg>, ipc::LineError> {
        self.inbuf.next_msg::<MasterMsg>()
    }

    /// The oldest descriptor received and not yet claimed (a `Peer` message's socket).
    pub(super) fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fds.pop_front()
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

/// This worker's line of `kefu status`.
pub(super) fn status(core: &Core, cfg: &Config, app_name: &str, draining: bool) -> WorkerStatus {
    WorkerStatus {
        pid: std::process::id(),
        worker_id: core.worker_id,
        inc: core.inc,
        memory: rss_bytes(),
        listening: cfg
            .listen
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(" "),
        name: app_name.to_string(),
        connections: core.conns.len() as u64,
        send_fail: core.stats.send_fail,
        timers: core.timers.app_count() as u64,
        total_request: core.stats.total_request,
        state: if draining { "draining" } else { "idle" }.into(),
    }
}

/// This worker's rows of `kefu connections` (at most [`MAX_CONN_ROWS`]).
pub(super) fn connection_rows(core: &Core) -> Vec<ConnInfo> {
    let pid = std::process::id();
    core.conns
        .iter()
        .take(MAX_CONN_ROWS)
        .map(|(slot, c)| ConnInfo {
            pid,
            id: core
                .client_id(ConnId {
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
