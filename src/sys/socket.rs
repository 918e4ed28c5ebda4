//! Listening sockets with SO_REUSEPORT, so every worker binds the same port and the kernel
//! spreads incoming connections over them.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Backlog for listen(2); the kernel caps it at net.core.somaxconn.
const BACKLOG: i32 = 65_535;

/// Create a non-blocking, close-on-exec TCP listener bound to `addr`.
/// With `reuseport` every worker may bind the same address; without it, binding fails with
/// EADDRINUSE if anyone holds the port (the master uses that to check a port before spawning).
pub(crate) fn bind_listener(addr: SocketAddr, reuseport: bool) -> io::Result<TcpListener> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let fd = syscall!(socket(
        family,
        libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        0
    ))?;
    // SAFETY: socket(2) just returned this fd and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if reuseport {
        set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    if let SocketAddr::V6(_) = addr {
        // Keep IPv6 listeners IPv6-only so `0.0.0.0:p` and `[::]:p` can be bound side by side.
        set_int_opt(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    }
    let (storage, len) = sockaddr(addr);
    syscall!(bind(
        fd.as_raw_fd(),
        &storage as *const libc::sockaddr_storage as *const libc::sockaddr,
        len
    ))?;
    syscall!(listen(fd.as_raw_fd(), BACKLOG))?;
    Ok(TcpListener::from(fd))
}

/// The uid of the process at the other end of a connected unix socket (SO_PEERCRED: the
/// credentials the kernel recorded at connect time, which the peer cannot forge).
pub(crate) fn peer_uid(fd: &impl AsRawFd) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    syscall!(getsockopt(
        fd.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_PEERCRED,
        &mut cred as *mut libc::ucred as *mut libc::c_void,
        &mut len
    ))?;
    Ok(cred.uid)
}

/// Ask for a send buffer of `bytes` (the kernel caps it at `net.core.wmem_max`). On a unix
/// stream socket it bounds what is in flight toward the peer, so a bulk transfer wakes the
/// reader and the writer that many times less often.
pub(crate) fn set_send_buffer(fd: &impl AsRawFd, bytes: usize) -> io::Result<()> {
    let bytes = i32::try_from(bytes).unwrap_or(i32::MAX);
    set_int_opt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, bytes)
}

fn set_int_opt(fd: &impl AsRawFd, level: i32, name: i32, val: i32) -> io::Result<()> {
    syscall!(setsockopt(
        fd.as_raw_fd(),
        level,
        name,
        &val as *const i32 as *const libc::c_void,
        std::mem::size_of::<i32>() as libc::socklen_t
    ))
    .map(|_| ())
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in6.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuseport_allows_two_binds() {
        let a = bind_listener("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let addr = a.local_addr().unwrap();
        let b = bind_listener(addr, true).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
        let e = bind_listener(addr, false).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE));
    }

    #[test]
    fn peer_uid_is_ours() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(peer_uid(&a).unwrap(), crate::sys::process::euid());
    }
}
