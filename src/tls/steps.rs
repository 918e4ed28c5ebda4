//! One step of a session's read loop (`session.rs`), per engine: rustls' state machine over
//! the input, or our record layer opening one record.

use super::record::{self, Inbound, RecordLayer};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::ConnectionState;

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
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Tls(e) => write!(f, "{e}"),
            Failure::Record(e) => write!(f, "{e}"),
            Failure::Refused(r) => write!(f, "{r}"),
        }
    }
}

impl Failure {
    /// The fatal alert our record layer sends for it (rustls queues its own).
    pub(super) fn alert(&self) -> u8 {
        match self {
            Failure::Record(r) => r.alert(),
            // unexpected_message
            Failure::Refused(_) | Failure::Tls(_) => 10,
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

/// rustls over `input`: what next, and how many input bytes it is done with.
pub(super) fn rustls_step(
    conn: &mut UnbufferedServerConnection,
    input: &mut [u8],
    buf: &mut [u8],
    filled: &mut usize,
    plain: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> (Next, usize) {
    let status = conn.process_tls_records(input);
    let next = match status.state {
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
                    Some(Ok(rec)) => hand_out(rec.payload, buf, filled, plain),
                }
            }
            next
        }
        Ok(ConnectionState::EncodeTlsData(mut e)) => {
            match super::session::append(out, 1024, |b| e.encode(b), super::session::encode_need) {
                Ok(_) => Next::Again,
                Err(e) => Next::Fail(Failure::Tls(rustls::Error::General(e.to_string()))),
            }
        }
        Ok(ConnectionState::TransmitTlsData(t)) => {
            // The bytes are in `out`, which the flush sends: rustls is done with them.
            t.done();
            Next::Again
        }
        Ok(ConnectionState::BlockedHandshake) | Ok(ConnectionState::WriteTraffic(_)) => Next::Input,
        Ok(ConnectionState::PeerClosed) | Ok(ConnectionState::Closed) => Next::Closed,
        // Early data is not enabled, and future states are not understood.
        Ok(_) => Next::Fail(Failure::Tls(rustls::Error::General(
            "unexpected TLS state".into(),
        ))),
    };
    (next, status.discard)
}

/// Our record layer opens the record at the front of `input`: what next, and how many input
/// bytes it took.
pub(super) fn records_step(
    layer: &mut RecordLayer,
    input: &mut [u8],
    buf: &mut [u8],
    filled: &mut usize,
    plain: &mut Vec<u8>,
) -> (Next, usize) {
    let opened = match layer.open(input) {
        Ok(None) => return (Next::Input, 0),
        Ok(Some(o)) => o,
        Err(e) => return (Next::Fail(Failure::Record(e)), 0),
    };
    let payload = &input[opened.plain.clone()];
    let next = match record::classify(layer.version(), opened.kind, payload) {
        Inbound::Data => {
            hand_out(payload, buf, filled, plain);
            Next::Again
        }
        Inbound::CloseNotify => Next::Closed,
        Inbound::KeyUpdate => Next::Rekeyed,
        Inbound::Refused(r) => Next::Fail(Failure::Refused(r)),
    };
    (next, opened.used)
}
