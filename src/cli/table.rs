//! Text rendering for `kefu status`, `kefu connections` and the start banner, in Workerman's
//! layout. Pure: data in, `String` out (the figures that need the clock or /proc are passed in).

use crate::ipc::{ConnInfo, MasterStatus, WorkerStatus};
use std::collections::HashMap;
use std::fmt::Write;

/// Width of the dashed separator lines (Workerman's status is 121 columns wide).
const LINE_WIDTH: usize = 121;

/// `-----TITLE-----` centred-ish like Workerman: 51 dashes, the title, dashes to [`LINE_WIDTH`].
pub(crate) fn separator(title: &str) -> String {
    let left = 51;
    let right = LINE_WIDTH.saturating_sub(left + title.len());
    format!("{}{title}{}", "-".repeat(left), "-".repeat(right))
}

/// Left-align `s` in `width` columns (always at least one space after it, like str_pad + gap).
fn pad(s: &str, width: usize) -> String {
    if s.len() >= width {
        format!("{s} ")
    } else {
        format!("{s:<width$}")
    }
}

/// Bytes as MiB the way Workerman prints memory: two decimals, trailing zeros dropped (`1.1M`).
pub(crate) fn mem_mb(bytes: u64) -> String {
    let s = format!("{:.2}", bytes as f64 / (1024.0 * 1024.0));
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}M")
}

/// Byte counts as `B/KB/MB/GB/TB` with one decimal (`connections` table).
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1}{}", UNITS[u])
}

/// `run D days H hours` from a duration in seconds.
pub(crate) fn uptime(secs: u64) -> String {
    format!(
        "run {} days {} hours",
        secs / 86_400,
        (secs % 86_400) / 3600
    )
}

/// Figures `status` takes from outside the master's reply.
#[derive(Debug, Clone, Default)]
pub(crate) struct StatusContext {
    /// Now, Unix seconds.
    pub now: u64,
    /// `/proc/loadavg`'s first three fields, as `a, b, c`.
    pub load_average: String,
    /// Kernel release.
    pub kernel: String,
    /// Previous `total_request` per pid (live mode), for qps.
    pub previous: Option<HashMap<u32, u64>>,
    /// Seconds since the previous sample.
    pub interval: f64,
}

struct Cols {
    listen: usize,
    name: usize,
}

fn columns(workers: &[WorkerStatus]) -> Cols {
    let listen = workers
        .iter()
        .map(|w| w.listening.len())
        .max()
        .unwrap_or(0)
        .max(24)
        + 3;
    let name = workers
        .iter()
        .map(|w| w.name.len())
        .max()
        .unwrap_or(0)
        .max(18)
        + 5;
    Cols { listen, name }
}

fn busy(w: &WorkerStatus) -> bool {
    w.state == "busy"
}

/// The whole `kefu status` screen.
pub(crate) fn status(s: &MasterStatus, ctx: &StatusContext) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}", separator("GLOBAL STATUS"));
    let _ = writeln!(
        o,
        "{}{}Linux/{}",
        pad(&s.version, 24),
        pad(&format!("app/{}", s.app), 30),
        ctx.kernel
    );
    let _ = writeln!(
        o,
        "start time:{}   {}   load average: {}",
        crate::log::format_utc(s.start_time),
        uptime(ctx.now.saturating_sub(s.start_time)),
        ctx.load_average
    );
    let _ = writeln!(
        o,
        "{} workers    {} processes",
        s.worker_count,
        s.workers.len()
    );
    let _ = writeln!(
        o,
        "{}{}{}exit_count",
        pad("name", 23),
        pad("event-loop", 15),
        pad("exit_status", 16)
    );
    for e in &s.exits {
        let _ = writeln!(
            o,
            "{}{}{}{}",
            pad(&e.name, 23),
            pad("epoll", 15),
            pad(&e.status.to_string(), 16),
            e.count
        );
    }
    let cols = columns(&s.workers);
    let _ = writeln!(o, "{}", separator("PROCESS STATUS"));
    let _ = writeln!(
        o,
        "pid\t{}{}{}{}{}{}{}{}status",
        pad("memory", 8),
        pad("listening", cols.listen),
        pad("name", cols.name),
        pad("connections", 12),
        pad("send_fail", 10),
        pad("timers", 8),
        pad("total_request", 14),
        pad("qps", 7)
    );
    let (mut mem, mut conns, mut fails, mut timers, mut reqs, mut qps_sum) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    for w in &s.workers {
        if busy(w) {
            let _ = writeln!(
                o,
                "{}\t{}{}{}{}{}{}{}{}[busy]",
                w.pid,
                pad("N/A", 8),
                pad(&w.listening, cols.listen),
                pad(&w.name, cols.name),
                pad("N/A", 12),
                pad("N/A", 10),
                pad("N/A", 8),
                pad("N/A", 14),
                pad("N/A", 7)
            );
            continue;
        }
        let qps = match &ctx.previous {
            Some(prev) => prev
                .get(&w.pid)
                .map(|&p| {
                    (w.total_request.saturating_sub(p) as f64 / ctx.interval.max(0.001)).round()
                        as u64
                })
                .unwrap_or(0),
            None => 0,
        };
        mem += w.memory;
        conns += w.connections;
        fails += w.send_fail;
        timers += w.timers;
        reqs += w.total_request;
        qps_sum += qps;
        let _ = writeln!(
            o,
            "{}\t{}{}{}{}{}{}{}{}[{}]",
            w.pid,
            pad(&mem_mb(w.memory), 8),
            pad(&w.listening, cols.listen),
            pad(&w.name, cols.name),
            pad(&w.connections.to_string(), 12),
            pad(&w.send_fail.to_string(), 10),
            pad(&w.timers.to_string(), 8),
            pad(&w.total_request.to_string(), 14),
            pad(&qps.to_string(), 7),
            w.state
        );
    }
    let _ = writeln!(o, "{}", separator("PROCESS STATUS"));
    let total_mem = format!("{}M", (mem as f64 / (1024.0 * 1024.0)).round() as u64);
    let _ = writeln!(
        o,
        "Summary\t{}{}{}{}{}{}{}{}[Summary]",
        pad(&total_mem, 8),
        pad("-", cols.listen),
        pad("-", cols.name),
        pad(&conns.to_string(), 12),
        pad(&fails.to_string(), 10),
        pad(&timers.to_string(), 8),
        pad(&reqs.to_string(), 14),
        pad(&qps_sum.to_string(), 7)
    );
    if let Some(c) = &s.cluster {
        cluster(&mut o, c);
    }
    o
}

/// The cluster part of `kefu status`: this node, then every other node it knows.
fn cluster(o: &mut String, c: &crate::ipc::ClusterView) {
    let _ = writeln!(o, "{}", separator("CLUSTER"));
    let _ = writeln!(
        o,
        "{}{}{}lease",
        pad("node", 8),
        pad("name", 16),
        pad("workers", 10)
    );
    let redis = if c.redis_up { "redis up" } else { "REDIS DOWN" };
    let _ = writeln!(
        o,
        "{}{}{}this node, {redis}, {} links to other nodes' workers",
        pad(&c.node.to_string(), 8),
        pad(&c.name, 16),
        pad("-", 10),
        c.links
    );
    for n in &c.nodes {
        let _ = writeln!(
            o,
            "{}{}{}seen {} ms ago",
            pad(&n.node.to_string(), 8),
            pad(&n.name, 16),
            pad(&n.workers.len().to_string(), 10),
            n.seen_ms_ago
        );
    }
}

/// The `kefu connections` table.
pub(crate) fn connections(conns: &[ConnInfo], app: &str) -> String {
    let mut o = String::new();
    o.push_str("--------------------------------------------------------------------- WORKERMAN CONNECTION STATUS --------------------------------------------------------------------------------\n");
    // Client ids are 32 hex characters: the column is as wide as the longest (Workerman's
    // 10 for short ones), so the columns after it stay aligned.
    let cid_w = conns
        .iter()
        .map(|c| c.id.len() + 1)
        .max()
        .unwrap_or(0)
        .max(10);
    let _ = writeln!(
        o,
        "PID      Worker          {}Trans   Protocol        ipv4   ipv6   Recv-Q       Send-Q       Bytes-R      Bytes-W       Status         Local Address          Foreign Address",
        pad("CID", cid_w)
    );
    let name: String = app.chars().take(14).collect();
    for c in conns {
        let v6 = c.remote.starts_with('[');
        let _ = writeln!(
            o,
            "{}{}{}{}{}{}{}{}{}{}{} {} {} {}",
            pad(&c.pid.to_string(), 9),
            pad(&name, 16),
            pad(&c.id, cid_w),
            pad("tcp", 8),
            pad(&c.protocol.chars().take(15).collect::<String>(), 16),
            pad(if v6 { "0" } else { "1" }, 7),
            pad(if v6 { "1" } else { "0" }, 7),
            pad(&human_bytes(c.recv_q), 13),
            pad(&human_bytes(c.send_q), 13),
            pad(&human_bytes(c.bytes_read), 13),
            pad(&human_bytes(c.bytes_written), 13),
            pad(&c.state, 14),
            pad(&c.local, 22),
            c.remote
        );
    }
    o
}

/// The start banner (Workerman's WORKERS block), printed once every worker listens.
pub(crate) fn banner(app: &str, workers: usize, listeners: &[String], daemon: bool) -> String {
    let mut o = String::new();
    let width = 98;
    let title = |t: &str| {
        let left = (width - t.len()) / 2;
        format!(
            "{}{t}{}",
            "-".repeat(left),
            "-".repeat(width - left - t.len())
        )
    };
    let _ = writeln!(
        o,
        "kefu start in {} mode",
        if daemon { "DAEMON" } else { "DEBUG" }
    );
    let _ = writeln!(o, "{}", title(" KEFU "));
    let _ = writeln!(
        o,
        "{}Linux/{}",
        pad(&format!("kefu/{}", env!("CARGO_PKG_VERSION")), 24),
        crate::sys::process::kernel_release()
    );
    let _ = writeln!(o, "{}", title(" WORKERS "));
    let lw = listeners.iter().map(|l| l.len()).max().unwrap_or(0).max(24) + 4;
    let _ = writeln!(
        o,
        "{}{}{}{}{}state",
        pad("event-loop", 12),
        pad("proto", 12),
        pad("worker", 16),
        pad("listen", lw),
        pad("count", 12)
    );
    for l in listeners {
        let proto = l.split("://").next().unwrap_or("tcp");
        let _ = writeln!(
            o,
            "{}{}{}{}{} [OK]",
            pad("epoll", 12),
            pad(proto, 12),
            pad(app, 16),
            pad(l, lw),
            pad(&workers.to_string(), 12)
        );
    }
    let _ = writeln!(o, "{}", "-".repeat(width));
    if daemon {
        let _ = writeln!(o, "Start success. Input \"kefu stop\" to stop.");
    } else {
        let _ = writeln!(o, "Press Ctrl+C to stop. Start success.");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::ExitStat;

    fn sample() -> MasterStatus {
        MasterStatus {
            version: "kefu/0.1.0".into(),
            master_pid: 1,
            start_time: 1_700_000_000,
            app: "ChatGateway".into(),
            worker_count: 2,
            phase: "running".into(),
            exits: vec![ExitStat {
                name: "ChatGateway".into(),
                status: 0,
                count: 0,
            }],
            workers: vec![
                WorkerStatus {
                    pid: 18310,
                    worker_id: 0,
                    inc: 0,
                    memory: 1_153_434,
                    listening: "websocket://0.0.0.0:7272".into(),
                    name: "ChatGateway".into(),
                    connections: 8,
                    send_fail: 0,
                    timers: 1,
                    total_request: 31,
                    state: "idle".into(),
                },
                WorkerStatus {
                    pid: 18314,
                    worker_id: 1,
                    listening: "websocket://0.0.0.0:7272".into(),
                    name: "ChatGateway".into(),
                    state: "busy".into(),
                    ..Default::default()
                },
            ],
            cluster: None,
        }
    }

    #[test]
    fn separators_are_workerman_width() {
        assert_eq!(separator("GLOBAL STATUS").len(), 121);
        assert!(separator("PROCESS STATUS").starts_with(&"-".repeat(51)));
    }

    #[test]
    fn status_layout_matches_workerman() {
        let ctx = StatusContext {
            now: 1_700_000_000 + 3 * 3600 + 5,
            load_average: "0.08, 0.03, 0.01".into(),
            kernel: "6.1.0".into(),
            previous: None,
            interval: 1.0,
        };
        let out = status(&sample(), &ctx);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], separator("GLOBAL STATUS"));
        assert_eq!(
            lines[1],
            "kefu/0.1.0              app/ChatGateway               Linux/6.1.0"
        );
        assert_eq!(
            lines[2],
            "start time:2023-11-14 22:13:20   run 0 days 3 hours   load average: 0.08, 0.03, 0.01"
        );
        assert_eq!(lines[3], "2 workers    2 processes");
        assert_eq!(
            lines[4],
            "name                   event-loop     exit_status     exit_count"
        );
        assert_eq!(
            lines[5],
            "ChatGateway            epoll          0               0"
        );
        assert_eq!(lines[6], separator("PROCESS STATUS"));
        // Same column widths as Workerman's 5.2.2 sample output.
        assert_eq!(
            lines[7],
            "pid\tmemory  listening                  name                   connections send_fail timers  total_request qps    status"
        );
        assert_eq!(
            lines[8],
            "18310\t1.1M    websocket://0.0.0.0:7272   ChatGateway            8           0         1       31            0      [idle]"
        );
        assert_eq!(
            lines[9],
            "18314\tN/A     websocket://0.0.0.0:7272   ChatGateway            N/A         N/A       N/A     N/A           N/A    [busy]"
        );
        assert_eq!(lines[10], separator("PROCESS STATUS"));
        assert_eq!(
            lines[11],
            "Summary\t1M      -                          -                      8           0         1       31            0      [Summary]"
        );
    }

    #[test]
    fn qps_is_the_delta_over_the_interval() {
        let mut prev = HashMap::new();
        prev.insert(18310, 11);
        let ctx = StatusContext {
            previous: Some(prev),
            interval: 2.0,
            ..Default::default()
        };
        let out = status(&sample(), &ctx);
        let row = out.lines().find(|l| l.starts_with("18310")).unwrap();
        // (31 - 11) / 2 s = 10.
        assert!(row.contains(" 10     [idle]"), "{row}");
    }

    #[test]
    fn byte_formats() {
        assert_eq!(mem_mb(1024 * 1024), "1M");
        assert_eq!(mem_mb(1_268_777), "1.21M");
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(1229), "1.2KB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0MB");
        assert_eq!(uptime(90_000), "run 1 days 1 hours");
    }

    #[test]
    fn connections_rows() {
        let c = ConnInfo {
            pid: 18310,
            id: "1".into(),
            protocol: "websocket".into(),
            bytes_read: 1229,
            bytes_written: 3482,
            state: "ESTABLISHED".into(),
            local: "127.0.0.1:7272".into(),
            remote: "127.0.0.1:53122".into(),
            ..Default::default()
        };
        let long = ConnInfo {
            id: "0123456789abcdef0123456789abcdef".into(),
            ..c.clone()
        };
        let out = connections(&[long], "ChatGateway");
        let (head, row) = (out.lines().nth(1).unwrap(), out.lines().nth(2).unwrap());
        assert!(
            row.contains("0123456789abcdef0123456789abcdef tcp"),
            "{row}"
        );
        assert_eq!(head.find("Trans"), row.find("tcp"), "{head}\n{row}");
        assert_eq!(
            head.find("Status"),
            row.find("ESTABLISHED"),
            "{head}\n{row}"
        );
        let out = connections(&[c], "ChatGateway");
        let row = out.lines().nth(2).unwrap();
        assert_eq!(
            row,
            "18310    ChatGateway     1         tcp     websocket       1      0      0B           0B           1.2KB        3.4KB         ESTABLISHED    127.0.0.1:7272         127.0.0.1:53122"
        );
    }

    #[test]
    fn banner_lists_each_listener() {
        let b = banner(
            "echo",
            4,
            &[
                "websocket://0.0.0.0:8282".into(),
                "text://0.0.0.0:8283".into(),
            ],
            true,
        );
        assert_eq!(b.matches("[OK]").count(), 2);
        assert!(b.ends_with("Start success. Input \"kefu stop\" to stop.\n"));
    }
}
