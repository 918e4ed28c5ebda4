//! The listening sockets the master binds for the workers, and the checks run before it
//! binds them (ports free, certificates usable).

use crate::config::{Config, ListenSpec, Scheme};
use std::fmt;
use std::io;

/// Why the master could not start.
#[derive(Debug)]
pub(crate) enum MasterError {
    /// A system call failed while setting up.
    Io(&'static str, io::Error),
    /// A listener's port is taken.
    PortInUse(String),
    /// A listener could not be bound for another reason.
    Bind(String, io::Error),
    /// A TLS listener's certificate or key cannot be used.
    Tls(String, Box<crate::tls::TlsError>),
}

impl fmt::Display for MasterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MasterError::Io(what, e) => write!(f, "{what}: {e}"),
            MasterError::PortInUse(l) => write!(f, "port in use: {l}"),
            MasterError::Bind(l, e) => write!(f, "cannot listen on {l}: {e}"),
            MasterError::Tls(l, e) => write!(f, "certificate of {l}: {e}"),
        }
    }
}

impl std::error::Error for MasterError {}

/// One slot's listening sockets, by listen URL.
pub(super) type SlotSockets = Vec<(String, std::net::TcpListener)>;

/// One worker slot's listening sockets, one per listener of the config (SO_REUSEPORT: the
/// kernel spreads new connections over the slots).
pub(super) fn bind_slot(cfg: &Config) -> Result<SlotSockets, MasterError> {
    cfg.listen
        .iter()
        .map(|l| {
            crate::sys::socket::bind_listener(l.addr, true)
                .map(|sock| (l.to_string(), sock))
                .map_err(|e| MasterError::Bind(l.to_string(), e))
        })
        .collect()
}

/// Read and check every TLS listener's certificates and keys (`tls`: by listen URL), as the
/// workers will: a bad path, PEM or key fails here with its reason instead of in each worker.
pub(super) fn check_tls(listen: &[ListenSpec]) -> Result<(), MasterError> {
    for l in listen {
        if let Some(files) = &l.certs {
            let http = l.scheme != Scheme::Text;
            crate::tls::Acceptor::load(files, http)
                .map_err(|e| MasterError::Tls(l.to_string(), Box::new(e)))?;
        }
    }
    Ok(())
}

/// Check every listener is free by binding it without SO_REUSEPORT and dropping it.
pub(super) fn check_ports(cfg: &Config) -> Result<(), MasterError> {
    for l in &cfg.listen {
        match crate::sys::socket::bind_listener(l.addr, false) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
                return Err(MasterError::PortInUse(l.to_string()))
            }
            Err(e) => return Err(MasterError::Bind(l.to_string(), e)),
        }
    }
    Ok(())
}
