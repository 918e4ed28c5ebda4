//! `echo`: per-connection window of W in-flight messages (or a fixed total rate); every
//! message carries its sequence number and send time so each round trip is timed.

use crate::conn::{Batch, Event, Kind, Net};
use crate::runner::{self, LoadError, Phase, SetupTally, Shared, Tracker, Window};
use crate::stats::{self, round1, LatencySummary};
use crate::{check_connections, check_rate, check_seconds, Common, Outcome};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Payload encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Payload {
    /// `"<seq>:<send_us>:"` then 'x' padding (text frames / lines).
    Text,
    /// 8-byte LE seq, 8-byte LE send time, then a byte pattern (binary frames; WebSocket only).
    Binary,
}

/// Options of the `echo` scenario.
#[derive(Args, Debug)]
pub struct EchoArgs {
    #[command(flatten)]
    common: Common,
    /// Connections.
    #[arg(short = 'c', long, default_value_t = 100)]
    conns: usize,
    /// Message size in bytes (a minimum: the header is never truncated).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Messages in flight per connection (1 = ping-pong); a cap when --rate is given.
    #[arg(long)]
    window: Option<u32>,
    /// Fixed total send rate (messages/s) instead of closed-loop windows.
    #[arg(long)]
    rate: Option<f64>,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unmeasured seconds of traffic before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Payload encoding.
    #[arg(long, value_enum, default_value_t = Payload::Text)]
    payload: Payload,
    /// Connection attempts per second during setup.
    #[arg(long, default_value_t = 2000.0)]
    connect_rate: f64,
}

/// Writes message `seq` stamped `ts` into `buf`, padded to `size`.
fn encode(buf: &mut Vec<u8>, kind: Payload, seq: u64, ts: u64, size: usize) {
    buf.clear();
    match kind {
        Payload::Text => {
            push_decimal(buf, seq);
            buf.push(b':');
            push_decimal(buf, ts);
            buf.push(b':');
            let pad = size.saturating_sub(buf.len());
            buf.resize(buf.len() + pad, b'x');
        }
        Payload::Binary => {
            buf.extend_from_slice(&seq.to_le_bytes());
            buf.extend_from_slice(&ts.to_le_bytes());
            buf.extend((16..size.max(16)).map(|i| i as u8));
        }
    }
}

/// Parses and fully verifies an echoed message; `None` on any deviation.
fn decode(p: &[u8], kind: Payload, size: usize) -> Option<(u64, u64)> {
    match kind {
        Payload::Text => {
            let a = p.iter().position(|&b| b == b':')?;
            let b = a + 1 + p[a + 1..].iter().position(|&b| b == b':')?;
            let seq = parse_decimal(&p[..a])?;
            let ts = parse_decimal(&p[a + 1..b])?;
            let pad = &p[b + 1..];
            let header = b + 1;
            let ok_len = p.len() == size.max(header);
            (ok_len && all_x(pad)).then_some((seq, ts))
        }
        Payload::Binary => {
            if p.len() != size.max(16) {
                return None;
            }
            let seq = u64::from_le_bytes(p[0..8].try_into().ok()?);
            let ts = u64::from_le_bytes(p[8..16].try_into().ok()?);
            p[16..]
                .iter()
                .enumerate()
                .all(|(i, &b)| b == (i + 16) as u8)
                .then_some((seq, ts))
        }
    }
}

/// Appends `n` in decimal: the generator formats two numbers per message, and `write!`'s
/// formatting machinery was a tenth of its user time at a million messages per second.
fn push_decimal(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Whether every byte is the padding byte `x`, eight at a time without an early exit so the
/// check vectorises (it ran byte by byte on every echoed message).
fn all_x(pad: &[u8]) -> bool {
    const X8: u64 = u64::from_ne_bytes([b'x'; 8]);
    let words = pad.chunks_exact(8);
    let tail = words.remainder().iter().all(|&b| b == b'x');
    let diff = words.fold(0u64, |acc, w| {
        acc | (u64::from_ne_bytes(w.try_into().unwrap_or([0; 8])) ^ X8)
    });
    diff == 0 && tail
}

/// A decimal u64 of 1-19 ASCII digits, nothing else; `None` otherwise (never overflows).
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        let d = b.wrapping_sub(b'0');
        (d <= 9).then(|| n * 10 + u64::from(d))
    })
}

#[derive(Default, Clone)]
struct ConnState {
    open: bool,
    next_seq: u64,
    expect_seq: u64,
    inflight: u32,
}

struct ThreadOut {
    tally: SetupTally,
    hist: Histogram<u64>,
    sent: u64,
    received_in_run: u64,
    received: u64,
    mismatches: u64,
    unanswered: u64,
    backpressured: u64,
    tracker: Tracker,
}

/// Runs the scenario.
pub fn run(a: &EchoArgs) -> Result<Outcome, LoadError> {
    let target = a.common.target()?;
    check_connections(a.conns)?;
    let duration = check_seconds("duration", a.duration)?;
    let warmup = check_seconds("warmup", a.warmup)?;
    let connect_rate = check_rate("connect-rate", a.connect_rate)?;
    let rate = a.rate.map(|r| check_rate("rate", r)).transpose()?;
    if a.size > 16 * 1024 * 1024 {
        return Err(LoadError::Usage("--size must be at most 16 MiB".into()));
    }
    if a.payload == Payload::Binary && !target.is_ws() {
        return Err(LoadError::Usage(
            "binary payloads need a ws:// target".into(),
        ));
    }
    // Closed loop defaults to ping-pong; a paced run needs room for the server to lag a bit.
    let window = a
        .window
        .unwrap_or(if rate.is_some() { 64 } else { 1 })
        .max(1);
    let server_pid = a.common.server_pid()?;
    let throttle = a.common.throttle()?;
    let threads = a.common.threads.min(a.conns);
    let shared = Shared::new(a.conns);
    let limit = a.common.setup_limit();
    let kind = match a.payload {
        Payload::Text => Kind::Text,
        Payload::Binary => Kind::Binary,
    };
    let setup_budget =
        Duration::from_secs_f64(a.conns as f64 / connect_rate) + limit + Duration::from_secs(5);

    let worker = |t: usize| -> Result<ThreadOut, LoadError> {
        let mut net = Net::new(target.clone(), t as u64)?;
        let mut launcher = runner::Launcher::new(
            runner::owned(t, threads, a.conns),
            connect_rate / threads as f64,
        );
        let mut out = ThreadOut {
            tally: SetupTally::default(),
            hist: stats::new_hist(),
            sent: 0,
            received_in_run: 0,
            received: 0,
            mismatches: 0,
            unanswered: 0,
            backpressured: 0,
            tracker: Tracker::default(),
        };
        let mut st: Vec<ConnState> = Vec::new();
        let mut open_ids: Vec<usize> = Vec::new();
        let mut rr = 0usize;
        let mut batch = Batch::default();
        let mut buf = Vec::with_capacity(a.size.max(64));
        let mut last_expire = Instant::now();
        let mut sending = false;
        let mut run_start_us = u64::MAX;
        let mut pace_start = Instant::now();
        let mut paced_sent = 0u64;
        let thread_rate = rate.map(|r| r / threads as f64);

        // Queues one message on `id` if its window and backlog allow.
        let send_one = |net: &mut Net,
                        st: &mut [ConnState],
                        id: usize,
                        now_us: u64,
                        out: &mut ThreadOut,
                        buf: &mut Vec<u8>|
         -> bool {
            let c = &mut st[id];
            if !c.open || c.inflight >= window {
                return false;
            }
            encode(buf, a.payload, c.next_seq, now_us, a.size);
            if net.send(id, kind, buf) {
                c.next_seq += 1;
                c.inflight += 1;
                out.sent += 1;
                out.tracker.expect(1);
                true
            } else {
                out.backpressured += 1;
                false
            }
        };

        loop {
            let phase = shared.phase();
            if phase == Phase::Stop {
                break;
            }
            launcher.step(&mut net, &mut out.tally, &shared);
            if st.len() < launcher.local_to_global.len() {
                st.resize(launcher.local_to_global.len(), ConnState::default());
            }
            let may_send = matches!(phase, Phase::Warmup | Phase::Run);
            // One clock read stamps a whole turn's sends: they leave together at the next flush,
            // so a per-message read (a tenth of the generator's user time) added no precision,
            // and a stamp taken early only makes round trips look longer, never shorter.
            let mut now_us = shared.now_us();
            if phase == Phase::Run && run_start_us == u64::MAX {
                run_start_us = now_us;
            }
            if may_send && !sending {
                sending = true;
                pace_start = Instant::now();
                if thread_rate.is_none() {
                    for &id in &open_ids {
                        while send_one(&mut net, &mut st, id, now_us, &mut out, &mut buf) {}
                    }
                }
            }
            if let (Some(r), true) = (thread_rate, may_send) {
                let due = (pace_start.elapsed().as_secs_f64() * r) as u64;
                let mut misses = 0;
                while paced_sent < due && !open_ids.is_empty() && misses < open_ids.len() {
                    rr = (rr + 1) % open_ids.len();
                    if send_one(&mut net, &mut st, open_ids[rr], now_us, &mut out, &mut buf) {
                        paced_sent += 1;
                        misses = 0;
                    } else {
                        misses += 1;
                    }
                }
                // Every connection is at its window: skip the backlog rather than burst later.
                if misses >= open_ids.len() && !open_ids.is_empty() {
                    paced_sent = due;
                }
            }
            batch.clear();
            if last_expire.elapsed() >= Duration::from_millis(100) {
                net.expire_setup(limit, &mut batch);
                last_expire = Instant::now();
            }
            let idle = if thread_rate.is_some() && may_send {
                Duration::from_millis(1)
            } else {
                Duration::from_millis(10)
            };
            net.poll(Some(launcher.timeout(idle)), &mut batch)?;
            now_us = shared.now_us();
            let mut got = 0u64;
            for ev in &batch.events {
                match *ev {
                    Event::Open { id, setup_us } => {
                        out.tally.open(setup_us);
                        shared.ready.fetch_add(1, Ordering::Relaxed);
                        st[id].open = true;
                        open_ids.push(id);
                        if sending && thread_rate.is_none() {
                            while send_one(&mut net, &mut st, id, now_us, &mut out, &mut buf) {}
                        }
                    }
                    Event::Message {
                        id,
                        kind: got_kind,
                        start,
                        end,
                        at,
                    } => {
                        got += 1;
                        let c = &mut st[id];
                        match decode(batch.payload(start, end), a.payload, a.size) {
                            Some((seq, ts))
                                if seq == c.expect_seq && c.inflight > 0 && got_kind == kind =>
                            {
                                c.expect_seq += 1;
                                c.inflight -= 1;
                                out.tracker.deliver();
                                if ts >= run_start_us {
                                    stats::record(
                                        &mut out.hist,
                                        shared.us_at(at).saturating_sub(ts),
                                    );
                                }
                            }
                            _ => out.mismatches += 1,
                        }
                        if phase == Phase::Run {
                            out.received_in_run += 1;
                        }
                        if may_send && thread_rate.is_none() {
                            while send_one(&mut net, &mut st, id, now_us, &mut out, &mut buf) {}
                        }
                    }
                    Event::Closed {
                        id,
                        was_open,
                        ref reason,
                    } => {
                        out.tally.closed(was_open, reason, &shared);
                        if let Some(c) = st.get_mut(id) {
                            c.open = false;
                            out.unanswered += c.inflight as u64;
                            c.inflight = 0;
                        }
                        open_ids.retain(|&x| x != id);
                        rr = 0;
                    }
                }
            }
            out.tracker.publish(&shared);
            out.received += got;
            if got > 0 {
                shared.received.fetch_add(got, Ordering::Relaxed);
            }
        }
        out.unanswered += st.iter().map(|c| c.inflight as u64).sum::<u64>();
        Ok(out)
    };

    let main = || {
        let complete = runner::wait_setup(&shared, a.conns, setup_budget, "connections");
        if !complete {
            return (complete, None);
        }
        if !warmup.is_zero() {
            runner::hold_phase(&shared, Phase::Warmup, warmup);
        }
        let window = match Window::start_throttled(server_pid, throttle) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("[run] {e}");
                return (false, None);
            }
        };
        runner::hold_phase(&shared, Phase::Run, duration);
        let measured = window.finish();
        // Let in-flight messages come back so "unanswered" means lost.
        runner::window_cmd("stop");
        runner::drain(&shared, Duration::from_secs(10));
        (complete, Some(measured))
    };

    let (outs, (complete, measured)) = runner::run_threads(threads, &shared, worker, main)?;
    let mut tally = SetupTally::default();
    let mut hist = stats::new_hist();
    let (mut sent, mut recv_run, mut recv, mut mism, mut unans, mut bp) = (0, 0, 0, 0, 0, 0);
    for o in outs {
        tally.merge(o.tally);
        let _ = hist.add(&o.hist);
        sent += o.sent;
        recv_run += o.received_in_run;
        recv += o.received;
        mism += o.mismatches;
        unans += o.unanswered;
        bp += o.backpressured;
    }
    let conns = tally.report();
    let (wall, gen_cpu, server) = match measured {
        Some((w, g, s)) => (w, Some(g), s),
        None => (0.0, None, None),
    };
    let msgs_per_s = if wall > 0.0 {
        recv_run as f64 / wall
    } else {
        0.0
    };
    let per_server_cpu = server
        .as_ref()
        .filter(|s| s.cpu_s > 0.0)
        .map(|s| round1(recv_run as f64 / s.cpu_s));
    let ok = complete && mism == 0 && unans == 0 && conns.failed == 0 && conns.dropped == 0;
    Ok(Outcome {
        ok,
        json: json!({
            "scenario": "echo",
            "url": target.url,
            "threads": threads,
            "conns": a.conns,
            "size": a.size,
            "payload": format!("{:?}", a.payload).to_lowercase(),
            "window": window,
            "rate_target": rate,
            "duration_s": wall,
            "warmup_s": a.warmup,
            "complete": complete,
            "msgs_per_s": round1(msgs_per_s),
            "msgs_per_server_cpu_s": per_server_cpu,
            "sent": sent,
            "received": recv,
            "received_in_run": recv_run,
            "latency_us": LatencySummary::of(&hist),
            "errors": conns.failed + conns.dropped,
            "mismatches": mism,
            "unanswered": unans,
            "backpressured": bp,
            "connections": conns,
            "generator_cpu": gen_cpu,
            "server": server,
            "ok": ok,
        }),
    })
}

impl EchoArgs {
    /// The options every scenario takes.
    pub fn common(&self) -> &Common {
        &self.common
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_text_and_binary() {
        let mut b = Vec::new();
        for kind in [Payload::Text, Payload::Binary] {
            encode(&mut b, kind, 42, 123_456, 64);
            assert_eq!(b.len(), 64);
            assert_eq!(decode(&b, kind, 64), Some((42, 123_456)));
            b[40] ^= 1;
            assert_eq!(decode(&b, kind, 64), None);
        }
        encode(&mut b, Payload::Text, 7, 9, 2);
        assert_eq!(b, b"7:9:");
        assert_eq!(decode(&b, Payload::Text, 2), Some((7, 9)));
    }

    #[test]
    fn decimals_roundtrip_and_reject_what_is_not_one() {
        for n in [
            0,
            9,
            10,
            99_999,
            u64::from(u32::MAX),
            999_999_999_999_999_999,
        ] {
            let mut b = Vec::new();
            push_decimal(&mut b, n);
            assert_eq!(b, n.to_string().as_bytes());
            assert_eq!(parse_decimal(&b), Some(n));
        }
        for bad in [
            &b""[..],
            b"-1",
            b"1x",
            b" 1",
            b"12345678901234567890",
            b"1:",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
        assert_eq!(decode(b"1:2", Payload::Text, 3), None, "no second colon");
        assert_eq!(decode(b"a:2:", Payload::Text, 4), None);
        for len in 0..40 {
            let mut pad = vec![b'x'; len];
            assert!(all_x(&pad));
            for i in 0..len {
                pad[i] = b'y';
                assert!(!all_x(&pad), "len {len} bad at {i}");
                pad[i] = b'x';
            }
        }
    }
}
