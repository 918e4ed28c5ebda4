//! Abuse limits kept on the loop (per worker, in memory): token buckets per client IP, token
//! or business key, exponential back-off after failed logins, and a gate that keeps warnings
//! from flooding the log. Every table is capped ([`KefuConfig::limit_table_entries`]) and
//! evicts when full, so an attacker with many addresses cannot grow it without bound.

use crate::api::{deadline_in, instant_ago, ms_since, ms_until};
use crate::config::{KefuConfig, Rate};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// What a request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// New visitors from one IP.
    VisitorNew,
    /// New conversations from one IP.
    ConvNew,
    /// Visitor messages from one IP.
    VisitorMsg,
    /// Uploads of one token.
    UploadToken,
    /// Uploads from one IP.
    UploadIp,
    /// Upload bytes of one business per day.
    UploadBusiness,
    /// Failed logins from one IP or on one account.
    Login,
}

impl Limit {
    /// What clients are told.
    pub(crate) fn msg(self) -> &'static str {
        match self {
            Limit::VisitorNew => "too many new visitors from your address; retry later",
            Limit::ConvNew => "too many new conversations from your address; retry later",
            Limit::VisitorMsg => "too many messages from your address; slow down",
            Limit::UploadToken | Limit::UploadIp => "too many uploads; retry later",
            Limit::UploadBusiness => "this business has reached its daily upload quota",
            Limit::Login => "too many failed logins; retry later",
        }
    }
}

/// A refusal by a limit: which one, and when a retry may pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limited {
    /// The limit.
    pub(crate) limit: Limit,
    /// Wait at least this long.
    pub(crate) retry: Duration,
}

impl Limited {
    /// Whole seconds to wait (at least 1), for `Retry-After` and `retry_after`.
    pub(crate) fn retry_secs(&self) -> u64 {
        (self.retry.as_secs() + u64::from(self.retry.subsec_nanos() > 0)).max(1)
    }
}

/// The key of a client address: IPv6 clients by their /64 (one subscriber's usual
/// allocation, which an attacker gets for free), everything else as written.
pub(crate) fn ip_key(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(a)) if a.to_ipv4_mapped().is_none() => {
            let s = a.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(IpAddr::V6(a)) => a
            .to_ipv4_mapped()
            .map(|v| v.to_string())
            .unwrap_or_default(),
        _ => ip.to_string(),
    }
}

/// Drop entries (some) when a table is at `cap` before inserting a new key: first every entry
/// that `idle` says carries no state (at most once a second, since it walks the table), then,
/// if still full, an arbitrary one. Evicting a live entry only forgets a client's spending:
/// the memory bound matters more.
fn make_room<V>(
    map: &mut HashMap<String, V>,
    cap: usize,
    swept: &mut Instant,
    now: Instant,
    idle: impl Fn(&V) -> bool,
) {
    if map.len() < cap {
        return;
    }
    if now.saturating_duration_since(*swept) >= Duration::from_secs(1) {
        *swept = now;
        map.retain(|_, v| !idle(v));
    }
    if map.len() >= cap {
        if let Some(k) = map.keys().next().cloned() {
            map.remove(&k);
        }
    }
}

/// A token bucket crossing a reload: key, tokens, milliseconds since it was last spent.
pub(crate) type CarriedBucket = (String, f64, u64);
/// Failures crossing a reload: key, count, milliseconds since the last, milliseconds locked.
pub(crate) type CarriedFails = (String, u32, u64, u64);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key, all with one rate.
#[derive(Debug)]
pub(crate) struct RateTable {
    per_sec: f64,
    burst: f64,
    cap: usize,
    map: HashMap<String, Bucket>,
    swept: Instant,
}

impl RateTable {
    /// A table for `rate` holding at most `cap` keys.
    pub(crate) fn new(rate: Rate, cap: usize, now: Instant) -> RateTable {
        RateTable {
            per_sec: rate.per_min / 60.0,
            burst: rate.burst.max(1.0),
            cap,
            map: HashMap::new(),
            swept: now,
        }
    }

    fn refilled(&self, b: Bucket, now: Instant) -> f64 {
        let dt = now.saturating_duration_since(b.at).as_secs_f64();
        (b.tokens + dt * self.per_sec).min(self.burst)
    }

    /// Spend one token of `key`, or say how long until one is there.
    pub(crate) fn take(&mut self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.per_sec <= 0.0 {
            return Ok(());
        }
        let tokens = match self.map.get(key) {
            Some(b) => self.refilled(*b, now),
            None => {
                let (per_sec, burst) = (self.per_sec, self.burst);
                make_room(&mut self.map, self.cap, &mut self.swept, now, |b| {
                    let dt = now.saturating_duration_since(b.at).as_secs_f64();
                    b.tokens + dt * per_sec >= burst
                });
                self.burst
            }
        };
        if tokens < 1.0 {
            self.map.insert(key.to_string(), Bucket { tokens, at: now });
            return Err(Duration::from_secs_f64((1.0 - tokens) / self.per_sec));
        }
        self.map.insert(
            key.to_string(),
            Bucket {
                tokens: tokens - 1.0,
                at: now,
            },
        );
        Ok(())
    }

    /// How long until `key` has a token (zero if it has one now).
    pub(crate) fn wait(&self, key: &str, now: Instant) -> Duration {
        match self.map.get(key) {
            Some(b) if self.per_sec > 0.0 => {
                let t = self.refilled(*b, now);
                Duration::from_secs_f64(((1.0 - t) / self.per_sec).max(0.0))
            }
            _ => Duration::ZERO,
        }
    }

    /// Give back a token taken for something that did not happen.
    pub(crate) fn refund(&mut self, key: &str) {
        let burst = self.burst;
        if let Some(b) = self.map.get_mut(key) {
            b.tokens = (b.tokens + 1.0).min(burst);
        }
    }

    /// The buckets as they cross a reload: `(key, tokens, ms since last spent)`.
    pub(crate) fn carry(&self, now: Instant) -> Vec<CarriedBucket> {
        self.map
            .iter()
            .map(|(k, b)| (k.clone(), b.tokens, ms_since(b.at, now)))
            .collect()
    }

    /// Take buckets carried from the predecessor (at most the table's cap; odd values are
    /// skipped or clamped, a carried table is never more generous than a full bucket).
    pub(crate) fn restore(&mut self, buckets: Vec<CarriedBucket>, now: Instant) {
        for (k, tokens, ago) in buckets {
            if self.map.len() >= self.cap || !tokens.is_finite() {
                continue;
            }
            let b = Bucket {
                tokens: tokens.clamp(0.0, self.burst),
                at: instant_ago(ago, now),
            };
            self.map.insert(k, b);
        }
    }

    /// Keys held (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

#[derive(Debug, Clone, Copy)]
struct Fails {
    n: u32,
    last: Instant,
    until: Instant,
}

/// Failed attempts by key with exponential back-off: `free` failures pass, then each failure
/// locks the key for 1 s, 2 s, 4 s ... up to `max`. A key with no failure for `max` (and
/// at least 15 minutes) starts over.
#[derive(Debug)]
pub(crate) struct Backoff {
    free: u32,
    max: Duration,
    cap: usize,
    map: HashMap<String, Fails>,
    swept: Instant,
}

impl Backoff {
    /// A table letting `free` failures pass, locking up to `max`, holding at most `cap` keys.
    pub(crate) fn new(free: u32, max: Duration, cap: usize, now: Instant) -> Backoff {
        Backoff {
            free,
            max,
            cap,
            map: HashMap::new(),
            swept: now,
        }
    }

    fn forget_after(&self) -> Duration {
        self.max.max(Duration::from_secs(900))
    }

    /// Whether `key` may try now (else how long until it may).
    pub(crate) fn check(&mut self, key: &str, now: Instant) -> Result<(), Duration> {
        let forget = self.forget_after();
        match self.map.get(key) {
            Some(f) if now.saturating_duration_since(f.last) >= forget => {
                self.map.remove(key);
                Ok(())
            }
            Some(f) if f.until > now => Err(f.until - now),
            _ => Ok(()),
        }
    }

    /// Count a failure of `key` (also counted while the attempt is still running, so that
    /// concurrent attempts are bounded too; [`Backoff::uncount`] takes it back on success).
    pub(crate) fn fail(&mut self, key: &str, now: Instant) {
        if !self.map.contains_key(key) {
            let forget = self.forget_after();
            make_room(&mut self.map, self.cap, &mut self.swept, now, |f| {
                now.saturating_duration_since(f.last) >= forget
            });
        }
        let f = self.map.entry(key.to_string()).or_insert(Fails {
            n: 0,
            last: now,
            until: now,
        });
        f.n = f.n.saturating_add(1);
        f.last = now;
        if f.n > self.free {
            let exp = (f.n - self.free - 1).min(30);
            let lock = Duration::from_secs(1u64 << exp).min(self.max);
            f.until = now + lock;
        }
    }

    /// Take back one counted failure (the attempt succeeded).
    pub(crate) fn uncount(&mut self, key: &str) {
        if let Some(f) = self.map.get_mut(key) {
            f.n = f.n.saturating_sub(1);
        }
    }

    /// Forget `key` altogether (its account logged in).
    pub(crate) fn forgive(&mut self, key: &str) {
        self.map.remove(key);
    }

    /// The failures as they cross a reload: `(key, count, ms since the last, ms locked)`.
    pub(crate) fn carry(&self, now: Instant) -> Vec<CarriedFails> {
        self.map
            .iter()
            .map(|(k, f)| {
                (
                    k.clone(),
                    f.n,
                    ms_since(f.last, now),
                    ms_until(f.until, now),
                )
            })
            .collect()
    }

    /// Take failures carried from the predecessor (at most the table's cap; a lock is never
    /// longer than `max`).
    pub(crate) fn restore(&mut self, fails: Vec<CarriedFails>, now: Instant) {
        let max = self.max.as_millis() as u64;
        for (k, n, ago, locked) in fails {
            if self.map.len() >= self.cap {
                break;
            }
            let f = Fails {
                n,
                last: instant_ago(ago, now),
                until: deadline_in(locked.min(max), now),
            };
            self.map.insert(k, f);
        }
    }
}

/// At most `per_window` log lines per window; the rest are counted and summed up in the next
/// line let through, so a flood of failures costs one line a few seconds, not one per try.
#[derive(Debug)]
pub(crate) struct LogGate {
    per_window: u32,
    window: Duration,
    start: Instant,
    used: u32,
    dropped: u64,
}

impl LogGate {
    /// `per_window` lines per `window`.
    pub(crate) fn new(per_window: u32, window: Duration, now: Instant) -> LogGate {
        LogGate {
            per_window,
            window,
            start: now,
            used: 0,
            dropped: 0,
        }
    }

    /// `Some(lines dropped since the last one let through)` if a line may be written now.
    pub(crate) fn allow(&mut self, now: Instant) -> Option<u64> {
        if now.saturating_duration_since(self.start) >= self.window {
            self.start = now;
            self.used = 0;
        }
        if self.used >= self.per_window {
            self.dropped += 1;
            return None;
        }
        self.used += 1;
        Some(std::mem::take(&mut self.dropped))
    }
}

/// Every limit of one worker.
#[derive(Debug)]
pub(crate) struct Limits {
    /// New visitors per IP.
    pub(crate) visitor_new: RateTable,
    /// New conversations per IP.
    pub(crate) conv_new: RateTable,
    /// Visitor messages per IP.
    pub(crate) visitor_msg: RateTable,
    /// Uploads per token subject.
    pub(crate) upload_token: RateTable,
    /// Uploads per IP.
    pub(crate) upload_ip: RateTable,
    /// Failed logins per IP.
    pub(crate) login_ip: Backoff,
    /// Failed logins per account.
    pub(crate) login_account: Backoff,
    /// Login failure warnings.
    pub(crate) login_log: LogGate,
}

impl Limits {
    /// The limits `cfg` asks for.
    pub(crate) fn new(cfg: &KefuConfig, now: Instant) -> Limits {
        let cap = cfg.limit_table_entries;
        Limits {
            visitor_new: RateTable::new(cfg.visitor_new_per_ip, cap, now),
            conv_new: RateTable::new(cfg.conv_new_per_ip, cap, now),
            visitor_msg: RateTable::new(cfg.visitor_msg_per_ip, cap, now),
            upload_token: RateTable::new(cfg.upload_per_token, cap, now),
            upload_ip: RateTable::new(cfg.upload_per_ip, cap, now),
            login_ip: Backoff::new(cfg.login_ip_free_failures, cfg.login_backoff_max, cap, now),
            login_account: Backoff::new(
                cfg.login_account_free_failures,
                cfg.login_backoff_max,
                cap,
                now,
            ),
            login_log: LogGate::new(10, Duration::from_secs(60), now),
        }
    }
}

/// Every limit table of one worker as it crosses a reload (the log gate starts afresh).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct CarriedLimits {
    visitor_new: Vec<CarriedBucket>,
    conv_new: Vec<CarriedBucket>,
    visitor_msg: Vec<CarriedBucket>,
    upload_token: Vec<CarriedBucket>,
    upload_ip: Vec<CarriedBucket>,
    login_ip: Vec<CarriedFails>,
    login_account: Vec<CarriedFails>,
}

impl Limits {
    /// What the successor needs to go on counting where this worker stopped.
    pub(crate) fn carry(&self, now: Instant) -> CarriedLimits {
        CarriedLimits {
            visitor_new: self.visitor_new.carry(now),
            conv_new: self.conv_new.carry(now),
            visitor_msg: self.visitor_msg.carry(now),
            upload_token: self.upload_token.carry(now),
            upload_ip: self.upload_ip.carry(now),
            login_ip: self.login_ip.carry(now),
            login_account: self.login_account.carry(now),
        }
    }

    /// Go on from the predecessor's counts (the tables keep this config's rates and caps).
    pub(crate) fn restore(&mut self, c: CarriedLimits, now: Instant) {
        self.visitor_new.restore(c.visitor_new, now);
        self.conv_new.restore(c.conv_new, now);
        self.visitor_msg.restore(c.visitor_msg, now);
        self.upload_token.restore(c.upload_token, now);
        self.upload_ip.restore(c.upload_ip, now);
        self.login_ip.restore(c.login_ip, now);
        self.login_account.restore(c.login_account, now);
    }
}

/// `table.take(key)` as a [`Limited`] refusal.
pub(crate) fn take(
    table: &mut RateTable,
    limit: Limit,
    key: &str,
    now: Instant,
) -> Result<(), Limited> {
    table
        .take(key, now)
        .map_err(|retry| Limited { limit, retry })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate_and_says_when() {
        let t0 = Instant::now();
        let mut t = RateTable::new(Rate::new(60.0, 3.0), 100, t0);
        for _ in 0..3 {
            assert!(t.take("a", t0).is_ok());
        }
        let wait = t.take("a", t0).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::from_millis(900));
        assert!(t.take("b", t0).is_ok(), "keys are independent");
        assert!(t.take("a", t0 + Duration::from_secs(1)).is_ok());
        t.refund("a");
        assert!(t.take("a", t0 + Duration::from_secs(1)).is_ok());
        let mut off = RateTable::new(Rate::new(0.0, 0.0), 100, t0);
        assert!((0..1000).all(|_| off.take("a", t0).is_ok()));
    }

    #[test]
    fn tables_cross_a_reload_as_they_were() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(500);
        let mut t = RateTable::new(Rate::new(60.0, 3.0), 100, t0);
        for _ in 0..3 {
            t.take("a", t0).unwrap();
        }
        let mut b = Backoff::new(0, Duration::from_secs(60), 100, t0);
        b.fail("k", t0);
        b.fail("k", t0);
        // Carried at `later`, restored at `later` in another table: same answers.
        let wire = serde_json::to_string(&(t.carry(later), b.carry(later))).unwrap();
        let (tc, bc): (Vec<CarriedBucket>, Vec<CarriedFails>) =
            serde_json::from_str(&wire).unwrap();
        let mut t2 = RateTable::new(Rate::new(60.0, 3.0), 100, later);
        t2.restore(tc, later);
        assert_eq!(t2.wait("a", later), t.wait("a", later));
        let mut b2 = Backoff::new(0, Duration::from_secs(60), 100, later);
        b2.restore(bc, later);
        assert_eq!(b2.check("k", later), b.check("k", later));
        // A carried table never exceeds this config's bounds.
        let mut small = RateTable::new(Rate::new(60.0, 1.0), 1, later);
        small.restore(
            vec![
                ("x".into(), 1e9, 0),
                ("y".into(), f64::NAN, 0),
                ("z".into(), 0.0, 0),
            ],
            later,
        );
        assert_eq!(small.len(), 1);
        assert!(small.take("x", later).is_ok() && small.take("x", later).is_err());
    }

    #[test]
    fn tables_stay_bounded() {
        let t0 = Instant::now();
        let mut t = RateTable::new(Rate::new(1.0, 1.0), 64, t0);
        for i in 0..10_000 {
            let _ = t.take(&format!("10.0.{}.{}", i / 256, i % 256), t0);
        }
        assert!(t.len() <= 64);
        let mut b = Backoff::new(1, Duration::from_secs(60), 64, t0);
        for i in 0..10_000 {
            b.fail(&format!("k{i}"), t0);
        }
        assert!(b.map.len() <= 64);
    }

    #[test]
    fn backoff_doubles_and_resets() {
        let t0 = Instant::now();
        let mut b = Backoff::new(2, Duration::from_secs(8), 100, t0);
        b.fail("x", t0);
        b.fail("x", t0);
        assert!(b.check("x", t0).is_ok(), "free failures pass");
        b.fail("x", t0);
        assert_eq!(b.check("x", t0), Err(Duration::from_secs(1)));
        b.fail("x", t0);
        assert_eq!(b.check("x", t0), Err(Duration::from_secs(2)));
        for _ in 0..10 {
            b.fail("x", t0);
        }
        assert_eq!(b.check("x", t0), Err(Duration::from_secs(8)), "capped");
        assert!(b.check("x", t0 + Duration::from_secs(8)).is_ok());
        b.forgive("x");
        b.fail("x", t0);
        assert!(b.check("x", t0).is_ok());
        assert!(b.check("x", t0 + Duration::from_secs(3600)).is_ok());
    }

    #[test]
    fn log_gate_counts_what_it_drops() {
        let t0 = Instant::now();
        let mut g = LogGate::new(2, Duration::from_secs(60), t0);
        assert_eq!(g.allow(t0), Some(0));
        assert_eq!(g.allow(t0), Some(0));
        assert_eq!(g.allow(t0), None);
        assert_eq!(g.allow(t0), None);
        assert_eq!(g.allow(t0 + Duration::from_secs(60)), Some(2));
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        assert_eq!(
            ip_key("2001:db8:1:2:aaaa::1"),
            ip_key("2001:db8:1:2:bbbb::9")
        );
        assert_ne!(ip_key("2001:db8:1:2::1"), ip_key("2001:db8:1:3::1"));
        assert_eq!(ip_key("::ffff:1.2.3.4"), "1.2.3.4");
        assert_eq!(ip_key("1.2.3.4"), "1.2.3.4");
    }

    #[test]
    fn retry_secs_rounds_up() {
        let l = Limited {
            limit: Limit::Login,
            retry: Duration::from_millis(1200),
        };
        assert_eq!(l.retry_secs(), 2);
    }
}
