//! The CLI side of the control socket: one request line out, one reply line back.

use crate::ipc::{encode, CliReply, CliRequest};
use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Send `req` to the master listening on `sock` and wait up to `timeout` for its reply.
pub(crate) fn request(
    sock: &Path,
    req: &CliRequest,
    timeout: Option<Duration>,
) -> Result<CliReply, Box<dyn Error>> {
    crate::master::control::check_path(sock)?;
    let mut s = UnixStream::connect(sock)
        .map_err(|e| format!("cannot reach the master at {}: {e}", sock.display()))?;
    s.set_read_timeout(timeout)?;
    s.write_all(&encode(req))?;
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .map_err(|e| format!("no reply from the master: {e}"))?;
    if line.is_empty() {
        return Err("the master closed the control socket without replying".into());
    }
    Ok(serde_json::from_str(&line)?)
}
