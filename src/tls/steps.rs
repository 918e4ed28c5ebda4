//! One step of a session's read loop (`session.rs`), per engine: rustls' state machine over
//! the input, or our record layer opening one record; each step says how many records it
//! worked through that gave no data, which a read may take only [`DATALESS_RECORDS`] of.

use super::record::{self, Inbound, RecordLayer};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::ConnectionState;

/// What one [`super::session::TlsSession::read`] gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Got {
    /// This many decrypted bytes; fewer than the buffer holds means the socket is drained,
    /// none the end of the stream.
    Bytes(usize),
    /// This many decrypted bytes (maybe none), and the read stopped at its budget of
    /// ciphertext or of records without data: the socket may hold more, to be read in a
    /// later turn.
    Spent(usize),
}

/// Records without data (empty ones, key updates, warning alerts) one read works through at
/// most: rustls allows 32 in a row between two records of data, and a key update costs new
/// keys both ways (some 10-30 us each on the shared test machine), so a flood of them would
/// otherwise make one read of the worker's TLS scratch take tens of milliseconds.
pub(super) const DATALESS_RECORDS: usize = 32;

/// Where the first complete TLS records of `input` end, at most `max` of them (and at most
/// [`DATALESS_RECORDS`]): `(ends, how many)`. Read from the record headers alone, before
/// anything is decrypted in place.
fn record_ends(input: &[u8], max: usize) -> ([usize; DATALESS_RECORDS], usize) {
    let mut ends = [0; DATALESS_RECORDS];
    let (mut n, mut pos) = (0, 0);
    while n < max.min(DATALESS_RECORDS) && pos + 5 <= input.len() {
        let len = usize::from(u16::from_be_bytes([input[pos + 3], input[pos + 4]]));
        if pos + 5 + len > input.len() {
            break;
        }
        pos += 5 + len;
        ends[n] = pos;
        n += 1;
    }
    (ends, n)
}

/// What one step did: what next, how many input bytes it is done with, and how many of the
/// records in them gave no data.
pub(super) struct Step {
    pub(super) next: Next,
    pub(super) used: usize,
    pub(super) dataless: usize,
}

/// What one step asks for next.
pub(super) enum Next {
    /// Process again (a record was decrypted or handshake bytes were queued).
    Again,
    /// The input holds no complete record: read the socket.
    Input,
    /// The peer closed the session cleanly.
    Closed,
    /// The peer changed its keys (our record layer only).
    Rekeyed,
    /// A TLS error.
    Fail(Failure),
}

/// Why a session ended.
#[derive(Debug)]
pub(super) enum Failure {
    /// rustls' error.
    Tls(rustls::Error),
    /// Our record layer's.
    Record(record::RecordError),
    /// A record our layer cannot carry on from.
    Refused(record::Refusal),
    /// rustls panicked on this session's input (see [`guarded`]).
    Panicked,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Tls(e) => write!(f, "{e}"),
            Failure::Record(e) => write!(f, "{e}"),
            Failure::Refused(r) => write!(f, "{r}"),
            Failure::Panicked => f.write_str("rustls panicked on this input; session dropped"),
        }
    }
}

impl Failure {
    /// The fatal alert our record layer sends for it (rustls queues its own).
    pub(super) fn alert(&self) -> u8 {
        match self {
            Failure::Record(r) => r.alert(),
            // unexpected_message
            Failure::Refused(_) | Failure::Tls(_) | Failure::Panicked => 10,
        }
    }
}

/// Copy one record's plaintext into `buf` from `filled` on; what does not fit goes to `plain`.
fn hand_out(payload: &[u8], buf: &mut [u8], filled: &mut usize, plain: &mut Vec<u8>) {
    let n = payload.len().min(buf.len() - *filled);
    buf[*filled..*filled + n].copy_from_slice(&payload[..n]);
    *filled += n;
    // Only when `buf` is smaller than a record.
    plain.extend_from_slice(&payload[n..]);
}

/// Where the complete TLS records of `input` from `from` on end (`from` itself if none).
fn complete_end(input: &[u8], from: usize) -> usize {
    let mut pos = from;
    while pos + 5 <= input.len() {
        let len = usize::from(u16::from_be_bytes([input[pos + 3], input[pos + 4]]));
        if pos + 5 + len > input.len() {
            break;
        }
        pos += 5 + len;
    }
    pos
}

/// Run a call into rustls so that a panic in it ends only this session. rustls' unbuffered
/// API can be driven into a slice-index panic by input a peer crafts (empty handshake records
/// in a certain order; our `tls_session` fuzz target finds one within minutes), and a panic
/// in the worker's loop would drop every connection of the worker. After `Err`, the caller
/// must never call into that rustls connection again: its state is not trusted.
pub(super) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, Failure> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| Failure::Panicked)
}

/// rustls over `input`, given at most `dataless_left` (at least one) records once the
/// handshake is done: rustls works through every record without data it has in one call.
/// `held`: the bytes at the front of `input` rustls has worked through but keeps (records of
/// a handshake message still being joined, which it rereads in place), updated here: rustls
/// resumes after them, so the records counted and the cut start there too, and no slice
/// shorter than them is ever handed to it. `seen`: how much of `input` rustls was shown (past
/// what it discarded), set here: what a write may hand it again without a panic (rustls may
/// resume inside it, e.g. after empty handshake records) and without opening new records.
// The session's buffers, each borrowed on its own: a struct of them would only move the list.
#[allow(clippy::too_many_arguments)]
pub(super) fn rustls_step(
    conn: &mut UnbufferedServerConnection,
    input: &mut [u8],
    held: &mut usize,
    seen: &mut usize,
    buf: &mut [u8],
    filled: &mut usize,
    plain: &mut Vec<u8>,
    out: &mut Vec<u8>,
    dataless_left: usize,
) -> Step {
    let from = (*held).min(input.len());
    let (ends, n) = if conn.is_handshaking() {
        ([0; DATALESS_RECORDS], 0)
    } else {
        record_ends(&input[from..], dataless_left)
    };
    let cut_at = if n > 0 { from + ends[n - 1] } else { from };
    let cut = n > 0 && n == dataless_left && cut_at < input.len();
    let input = if cut { &mut input[..cut_at] } else { input };
    // Read before rustls runs: joining a message moves its pieces over the headers between.
    let complete = if cut {
        cut_at
    } else {
        complete_end(input, cut_at)
    };
    // Records that gave data, of those rustls took.
    let mut popped = 0;
    let status = conn.process_tls_records(input);
    // rustls asks for more input only once it has worked through every complete record.
    let mut all = false;
    let mut next = match status.state {
        Err(e) => Next::Fail(Failure::Tls(e)),
        Ok(ConnectionState::ReadTraffic(mut rt)) => {
            let mut next = Next::Again;
            while *filled < buf.len() {
                match rt.next_record() {
                    None => break,
                    Some(Err(e)) => {
                        next = Next::Fail(Failure::Tls(e));
                        break;
                    }
                    Some(Ok(rec)) => {
                        popped += usize::from(!rec.payload.is_empty());
                        hand_out(rec.payload, buf, filled, plain);
                    }
                }
            }
            next
        }
        Ok(ConnectionState::EncodeTlsData(mut e)) => {
            match super::scratch::append(out, 1024, |b| e.encode(b), super::scratch::encode_need) {
                Ok(_) => Next::Again,
                Err(e) => Next::Fail(Failure::Tls(rustls::Error::General(e.to_string()))),
            }
        }
        Ok(ConnectionState::TransmitTlsData(t)) => {
            // The bytes are in `out`, which the flush sends: rustls is done with them.
            t.done();
            Next::Again
        }
        Ok(ConnectionState::BlockedHandshake) | Ok(ConnectionState::WriteTraffic(_)) => {
            all = true;
            Next::Input
        }
        Ok(ConnectionState::PeerClosed) | Ok(ConnectionState::Closed) => Next::Closed,
        // Early data is not enabled, and future states are not understood.
        Ok(_) => Next::Fail(Failure::Tls(rustls::Error::General(
            "unexpected TLS state".into(),
        ))),
    };
    let used = status.discard;
    *seen = input.len().saturating_sub(used);
    // A handshake message being joined must end at a record's end before any other record
    // (RFC 8446 sec. 5.1) or a key change, so rustls keeps records only when it asks for
    // more input; it stopped earlier (data, records to send) only with none kept.
    *held = if all {
        complete.saturating_sub(used)
    } else {
        0
    };
    let records = if all {
        n
    } else {
        ends[..n].iter().take_while(|&&e| from + e <= used).count()
    };
    if cut && all {
        // The rest of the records are in hand already.
        next = Next::Again;
    }
    Step {
        next,
        used,
        dataless: records.saturating_sub(popped),
    }
}

/// Our record layer opens the record at the front of `input`: what next, and how many input
/// bytes it took (one record without data at most).
pub(super) fn records_step(
    layer: &mut RecordLayer,
    input: &mut [u8],
    buf: &mut [u8],
    filled: &mut usize,
    plain: &mut Vec<u8>,
) -> Step {
    let step = |next, used, dataless| Step {
        next,
        used,
        dataless,
    };
    let opened = match layer.open(input) {
        Ok(None) => return step(Next::Input, 0, 0),
        Ok(Some(o)) => o,
        Err(e) => return step(Next::Fail(Failure::Record(e)), 0, 0),
    };
    let payload = &input[opened.plain.clone()];
    let (next, dataless) = match record::classify(layer.version(), opened.kind, payload) {
        Inbound::Data => match layer.note_data(payload.is_empty()) {
            Ok(()) => {
                hand_out(payload, buf, filled, plain);
                (Next::Again, usize::from(payload.is_empty()))
            }
            Err(r) => (Next::Fail(Failure::Refused(r)), 1),
        },
        Inbound::CloseNotify => (Next::Closed, 1),
        Inbound::KeyUpdate => (Next::Rekeyed, 1),
        Inbound::Refused(r) => (Next::Fail(Failure::Refused(r)), 1),
    };
    step(next, opened.used, dataless)
}

/// Read and drop what a client sends under keys we cannot follow, while its connection
/// closes (as a linger does, so our close reaches it before any reset): `Ok(0)` at the end
/// of the stream, else `WouldBlock`. A few reads per call; a client that keeps sending
/// raises new events.
pub(super) fn discard<S: std::io::Read>(sock: &mut S, cipher: &mut [u8]) -> std::io::Result<Got> {
    for _ in 0..8 {
        match sock.read(cipher) {
            Ok(0) => return Ok(Got::Bytes(0)),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Err(std::io::ErrorKind::WouldBlock.into())
}
