//! Signals enter the master through a self-pipe registered with its poll (signal-hook's
//! `SignalDelivery`): the handler only writes a byte; the loop drains, then acts.
//!
//! Mapping (Workerman's): SIGINT/SIGTERM/SIGHUP = stop, SIGQUIT = graceful stop,
//! SIGUSR1 = reload, SIGUSR2 = graceful reload, SIGCHLD = reap.

use signal_hook::consts::signal::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::SignalOnly;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

/// What a signal asks the master to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignalEvent {
    /// Stop everything (`graceful`: let connections drain).
    Stop {
        /// Drain instead of closing.
        graceful: bool,
    },
    /// Replace workers one by one.
    Reload {
        /// Old workers drain.
        graceful: bool,
    },
    /// One or more children changed state: reap them.
    Child,
}

/// The signals the master handles.
pub(crate) const HANDLED: [i32; 7] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD];

/// Map a signal number to its intent.
pub(crate) fn classify(sig: i32) -> Option<SignalEvent> {
    match sig {
        SIGINT | SIGTERM | SIGHUP => Some(SignalEvent::Stop { graceful: false }),
        SIGQUIT => Some(SignalEvent::Stop { graceful: true }),
        SIGUSR1 => Some(SignalEvent::Reload { graceful: false }),
        SIGUSR2 => Some(SignalEvent::Reload { graceful: true }),
        SIGCHLD => Some(SignalEvent::Child),
        _ => None,
    }
}

/// The installed handlers plus the read end of their pipe.
pub(crate) struct Signals {
    delivery: SignalDelivery<UnixStream, SignalOnly>,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals")
            .field("fd", &self.delivery.get_read().as_raw_fd())
            .finish()
    }
}

impl Signals {
    /// Install handlers for [`HANDLED`].
    pub(crate) fn install() -> io::Result<Signals> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let delivery = SignalDelivery::with_pipe(read, write, SignalOnly, HANDLED)?;
        Ok(Signals { delivery })
    }

    /// The fd to register for readability.
    pub(crate) fn fd(&self) -> RawFd {
        self.delivery.get_read().as_raw_fd()
    }

    /// Drain the pipe first, then return the intents (draining after acting could lose a signal).
    pub(crate) fn drain(&mut self) -> Vec<(i32, SignalEvent)> {
        self.delivery
            .pending()
            .filter_map(|s| classify(s).map(|e| (s, e)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workerman_mapping() {
        assert_eq!(
            classify(SIGINT),
            Some(SignalEvent::Stop { graceful: false })
        );
        assert_eq!(
            classify(SIGQUIT),
            Some(SignalEvent::Stop { graceful: true })
        );
        assert_eq!(
            classify(SIGUSR1),
            Some(SignalEvent::Reload { graceful: false })
        );
        assert_eq!(
            classify(SIGUSR2),
            Some(SignalEvent::Reload { graceful: true })
        );
        assert_eq!(classify(SIGCHLD), Some(SignalEvent::Child));
        assert_eq!(classify(libc::SIGWINCH), None);
    }
}
