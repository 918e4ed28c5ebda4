//! Rate limit for warnings a peer can trigger at will.

use std::time::{Duration, Instant};

/// Shortest time between two warnings of a kind a flood repeats.
const QUIET_PERIOD: Duration = Duration::from_secs(10);

/// One log line per [`QUIET_PERIOD`], with the number of repeats left out, so a flood cannot
/// fill the disk with log lines.
#[derive(Debug, Default)]
pub(super) struct Quiet {
    last: Option<Instant>,
    suppressed: u64,
}

impl Quiet {
    /// Whether to log now; `Some(n)` with the number of warnings left out since the last one.
    pub(super) fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < QUIET_PERIOD => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}
