//! Passing file descriptors over unix sockets (SCM_RIGHTS): how the master hands each pair of
//! workers the two ends of their bus link, and how a retiring worker hands its connections to
//! its successor at a reload (many per message).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Most descriptors in one message: Linux's `SCM_MAX_FD` (253). A sender batching more
/// splits them over several messages; a receiver always has room for this many, so the
/// kernel never truncates (and closes) descriptors it could not deliver.
pub(crate) const MAX_FDS: usize = 253;

/// Send `data` with `fd` attached to its first byte; returns bytes sent (the caller sends the
/// rest, if any, as plain bytes).
pub(crate) fn send_with_fd(sock: &impl AsRawFd, data: &[u8], fd: RawFd) -> io::Result<usize> {
    send_with_fds(sock, data, &[fd])
}

/// Send `data` with up to [`MAX_FDS`] descriptors attached to its first byte; returns bytes
/// sent (the caller sends the rest, if any, as plain bytes). More than [`MAX_FDS`] is refused
/// with `InvalidInput` before anything is sent.
pub(crate) fn send_with_fds(sock: &impl AsRawFd, data: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    if fds.len() > MAX_FDS || data.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "descriptors need 1..=253 of them and at least one byte to ride on",
        ));
    }
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let fd_bytes = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: msghdr is plain old data; all-zero is valid and every used field is set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `space` bytes, enough for one header with `fds.len()`
        // descriptors; CMSG_DATA is written within that header's data (unaligned writes).
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
            let data = libc::CMSG_DATA(cmsg) as *mut RawFd;
            for (i, fd) in fds.iter().enumerate() {
                std::ptr::write_unaligned(data.add(i), *fd);
            }
        }
    }
    loop {
        // SAFETY: msg and everything it points to live until the call returns.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receive bytes into `buf`, appending any descriptors that came with them to `fds`
/// (close-on-exec). Returns bytes read (0 = EOF). Room is made for [`MAX_FDS`] descriptors,
/// the most one message can carry.
pub(crate) fn recv_with_fds(
    sock: &impl AsRawFd,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space =
        unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: msghdr is plain old data; all-zero is valid and every used field is set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    let n = loop {
        // SAFETY: msg points at live buffers of the sizes given.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    // SAFETY: the kernel filled msg_control; the CMSG_* macros walk it within msg_controllen,
    // and each SCM_RIGHTS descriptor is new in this process and owned by nobody else.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg) as *const RawFd;
                let len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        // Cannot happen with room for MAX_FDS; if it did, descriptors were lost on the way.
        return Err(io::Error::other("descriptors truncated (MSG_CTRUNC)"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn an_fd_crosses_a_socket() {
        let (a, b) = UnixStream::pair().unwrap();
        let (p, q) = UnixStream::pair().unwrap();
        assert_eq!(send_with_fd(&a, b"peer\n", p.as_raw_fd()).unwrap(), 5);
        drop(p);
        let mut buf = [0u8; 16];
        let mut fds = Vec::new();
        let n = recv_with_fds(&b, &mut buf, &mut fds).unwrap();
        assert_eq!(&buf[..n], b"peer\n");
        assert_eq!(fds.len(), 1);
        let mut got = UnixStream::from(fds.pop().unwrap());
        got.write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        let mut q = q;
        q.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"x");
    }

    #[test]
    fn a_full_batch_crosses_in_order_and_too_many_is_refused() {
        let (a, b) = UnixStream::pair().unwrap();
        let pairs: Vec<(UnixStream, UnixStream)> =
            (0..MAX_FDS).map(|_| UnixStream::pair().unwrap()).collect();
        let raw: Vec<RawFd> = pairs.iter().map(|(x, _)| x.as_raw_fd()).collect();
        // Two batches back to back: the receiver must not mix them.
        assert_eq!(send_with_fds(&a, b"1", &raw).unwrap(), 1);
        assert_eq!(send_with_fds(&a, b"2", &raw[..3]).unwrap(), 1);
        let mut buf = [0u8; 8];
        let mut fds = Vec::new();
        assert_eq!(recv_with_fds(&b, &mut buf, &mut fds).unwrap(), 1);
        assert_eq!(fds.len(), MAX_FDS);
        assert_eq!(recv_with_fds(&b, &mut buf, &mut fds).unwrap(), 1);
        assert_eq!(fds.len(), MAX_FDS + 3);
        // The i-th received descriptor is the i-th sent: write through it, read at its peer.
        for (i, fd) in fds.into_iter().take(MAX_FDS).enumerate() {
            let mut s = UnixStream::from(fd);
            s.write_all(&[i as u8]).unwrap();
            let mut one = [0u8; 1];
            let mut peer = &pairs[i].1;
            peer.read_exact(&mut one).unwrap();
            assert_eq!(one[0], i as u8);
        }
        let too_many = vec![raw[0]; MAX_FDS + 1];
        let e = send_with_fds(&a, b"x", &too_many).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
