//! Reading a secret from the terminal without echo (termios), for `kefu agent add|passwd`.

use std::io::{self, BufRead, Write};
use std::os::fd::AsRawFd;

/// Whether stdin is a terminal.
pub(crate) fn stdin_is_tty() -> bool {
    // SAFETY: isatty(3) only inspects the fd number; an invalid fd yields 0, not UB.
    unsafe { libc::isatty(io::stdin().as_raw_fd()) == 1 }
}

/// Restores the saved terminal attributes when dropped (also on a panic or an early return).
struct EchoOff {
    fd: i32,
    saved: libc::termios,
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // Best effort: nothing better to do if the terminal went away.
        let _ = syscall!(tcsetattr(self.fd, libc::TCSANOW, &self.saved));
    }
}

fn echo_off(fd: i32) -> io::Result<EchoOff> {
    // SAFETY: termios is plain old data; all-zero is a valid value for tcgetattr to fill in.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    syscall!(tcgetattr(fd, &mut t))?;
    let guard = EchoOff { fd, saved: t };
    // Keep ECHONL so the user still sees the line end after typing.
    t.c_lflag &= !libc::ECHO;
    t.c_lflag |= libc::ECHONL;
    syscall!(tcsetattr(fd, libc::TCSANOW, &t))?;
    Ok(guard)
}

/// Print `prompt` on stderr and read one line from the terminal on stdin without echoing it.
/// The trailing newline is removed.
pub(crate) fn read_secret_line(prompt: &str) -> io::Result<String> {
    let stdin = io::stdin();
    let _guard = echo_off(stdin.as_raw_fd())?;
    let mut err = io::stderr();
    err.write_all(prompt.as_bytes())?;
    err.flush()?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
