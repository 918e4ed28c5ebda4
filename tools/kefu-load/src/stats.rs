//! Latency histograms and CPU/memory sampling of this process and the server's process tree.

use crate::sys;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::HashMap;
use std::fs;
use std::time::{Duration, Instant};

/// New microsecond histogram covering 1 µs .. 1 h at 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid")
}

/// Records `us`, clamping into the histogram's range so outliers are never dropped.
pub fn record(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.max(1));
}

/// Percentile summary of a microsecond histogram.
#[derive(Debug, Serialize, Default)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Smallest sample.
    pub min: u64,
    /// Mean, rounded.
    pub mean: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
}

impl LatencySummary {
    /// Summarises `h` (all zeros if empty).
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            min: h.min(),
            mean: h.mean().round() as u64,
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// This process's CPU use over a window.
#[derive(Debug, Serialize)]
pub struct CpuReport {
    /// User CPU seconds.
    pub user_s: f64,
    /// System CPU seconds.
    pub sys_s: f64,
    /// (user + sys) / wall, in percent of one core; near 100 × threads means saturated.
    pub pct_of_one_core: f64,
}

/// Snapshot of this process's CPU counters.
#[derive(Clone, Copy)]
pub struct OwnCpu {
    user: Duration,
    sys: Duration,
    at: Instant,
}

impl OwnCpu {
    /// Takes a snapshot now.
    pub fn now() -> OwnCpu {
        let (user, sys) = sys::own_cpu();
        OwnCpu {
            user,
            sys,
            at: Instant::now(),
        }
    }

    /// CPU used between `self` and a later snapshot.
    pub fn since(&self, later: &OwnCpu) -> CpuReport {
        let user = (later.user.saturating_sub(self.user)).as_secs_f64();
        let sys = (later.sys.saturating_sub(self.sys)).as_secs_f64();
        let wall = (later.at - self.at).as_secs_f64().max(1e-9);
        CpuReport {
            user_s: round3(user),
            sys_s: round3(sys),
            pct_of_one_core: round1((user + sys) / wall * 100.0),
        }
    }
}

/// Rounds to 3 decimals for compact JSON.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Rounds to 1 decimal for compact JSON.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// One reading of the server process tree.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct TreeSample {
    /// Processes in the tree (root plus descendants).
    pub processes: usize,
    /// utime + stime of all of them, in seconds.
    pub cpu_s: f64,
    /// utime alone (user space), in seconds; the rest of `cpu_s` is the kernel's.
    pub user_s: f64,
    /// Summed RSS in KiB.
    pub rss_kb: u64,
    /// Summed PSS in KiB (shared pages split between sharers, so not double counted).
    pub pss_kb: u64,
}

/// Reads CPU and memory of `root` and all its descendants from /proc.
pub fn sample_tree(root: u32) -> Option<TreeSample> {
    let pids = tree_pids(root)?;
    let ticks = sys::clock_ticks() as f64;
    let mut s = TreeSample {
        processes: pids.len(),
        ..TreeSample::default()
    };
    for pid in pids {
        if let Some(st) = read_stat(pid) {
            s.cpu_s += (st.utime + st.stime) as f64 / ticks;
            s.user_s += st.utime as f64 / ticks;
        }
        let (rss, pss) = read_smaps_rollup(pid);
        s.rss_kb += rss;
        s.pss_kb += pss;
    }
    s.cpu_s = round3(s.cpu_s);
    s.user_s = round3(s.user_s);
    Some(s)
}

struct Stat {
    ppid: u32,
    utime: u64,
    stime: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses /proc/<pid>/stat; the command name may hold spaces and parens, so split after the last ')'.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    Some(Stat {
        ppid: f.get(1)?.parse().ok()?,
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
    })
}

fn read_smaps_rollup(pid: u32) -> (u64, u64) {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
        return (0, 0);
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("Rss:"), field("Pss:"))
}

/// `root` plus every descendant, found through the ppid of every /proc entry.
pub fn tree_pids(root: u32) -> Option<Vec<u32>> {
    read_stat(root)?;
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(st) = read_stat(pid) {
            children.entry(st.ppid).or_default().push(pid);
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i]) {
            out.extend(kids.iter().copied().filter(|k| *k != root));
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_name() {
        let line = "1234 (my (weird) name) S 77 1 1 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 1 0";
        let st = parse_stat(line).unwrap();
        assert_eq!((st.ppid, st.utime, st.stime), (77, 250, 31));
    }

    #[test]
    fn samples_self() {
        let s = sample_tree(std::process::id()).unwrap();
        assert!(s.processes >= 1);
        assert!(s.rss_kb > 0);
    }

    #[test]
    fn summary_percentiles() {
        let mut h = new_hist();
        for v in 1..=1000 {
            record(&mut h, v);
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 1000);
        assert!((495..=505).contains(&s.p50));
        assert_eq!(s.max, 1000);
    }
}
