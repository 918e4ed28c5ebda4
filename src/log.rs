//! Minimal logger: `YYYY-MM-DD HH:MM:SS pid:N LEVEL message` lines on stderr.
//!
//! In daemon mode the master points stderr at the log file, and workers inherit it, so every
//! process of one instance writes to the same file. Each line is written with one `write`
//! call, so lines from different processes do not interleave.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Format a Unix time (seconds) as `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Write one log line (used by the macros).
pub fn write_line(level: &str, args: std::fmt::Arguments<'_>) {
    let line = format!(
        "{} pid:{} {level} {args}\n",
        format_utc(now_secs()),
        std::process::id()
    );
    // A full disk or closed stderr must not take the server down: logging is best effort.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Whether DEBUG lines are written: `KEFU_LOG=debug` in the environment (workers inherit it),
/// read once per process.
pub fn debug_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("KEFU_LOG").is_ok_and(|v| v.eq_ignore_ascii_case("debug")))
}

/// Log at DEBUG level (only with `KEFU_LOG=debug`): events a peer causes at will, such as a
/// failed TLS handshake, that are worth a line when investigating and noise otherwise.
#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => {
        if $crate::log::debug_enabled() {
            $crate::log::write_line("DEBUG", format_args!($($t)*))
        }
    };
}

/// Log at INFO level.
#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::log::write_line("INFO", format_args!($($t)*)) };
}

/// Log at WARN level.
#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::log::write_line("WARN", format_args!($($t)*)) };
}

/// Log at ERROR level.
#[macro_export]
macro_rules! error {
    ($($t:tt)*) => { $crate::log::write_line("ERROR", format_args!($($t)*)) };
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_format() {
        assert_eq!(super::format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::format_utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(super::format_utc(951_782_400), "2000-02-29 00:00:00");
    }
}
