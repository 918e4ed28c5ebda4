//! The `\n`-delimited text protocol (Workerman's `text://`): line splitting and encoding.
//!
//! No I/O here: the caller owns the buffer and feeds its unconsumed bytes to [`LineCodec::decode`].

use std::fmt;

/// Error from [`LineCodec::decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextError {
    /// A line (or the bytes buffered while waiting for `\n`) exceeds the configured maximum.
    LineTooLong,
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextError::LineTooLong => f.write_str("text line too long"),
        }
    }
}

impl std::error::Error for TextError {}

/// Incremental line splitter that remembers how far it already searched for `\n`.
#[derive(Debug, Clone)]
pub struct LineCodec {
    /// Largest accepted line, excluding the `\r\n` / `\n` terminator.
    max_line: usize,
    /// Bytes at the front of the caller's buffer already known to contain no `\n`; lets a slow
    /// drip of bytes be scanned once in total instead of O(n^2).
    scanned: usize,
}

impl LineCodec {
    /// Codec accepting lines of at most `max_line` bytes (terminator excluded).
    pub fn new(max_line: usize) -> Self {
        LineCodec {
            max_line,
            scanned: 0,
        }
    }

    /// Next line without its `\n` and one trailing `\r`; `consumed` includes the `\n`.
    ///
    /// `Ok(None)` means more bytes are needed. The caller must pass the same unconsumed bytes
    /// (plus new ones) on the next call, or the bytes after `consumed` after a line was returned.
    pub fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(&'a [u8], usize)>, TextError> {
        // If the caller shrank the buffer unexpectedly, rescan rather than skip bytes.
        let start = if self.scanned <= buf.len() {
            self.scanned
        } else {
            0
        };
        let tail = buf.get(start..).unwrap_or_default();
        match tail.iter().position(|&b| b == b'\n') {
            Some(rel) => {
                let nl = start + rel;
                self.scanned = 0;
                let mut line = buf.get(..nl).unwrap_or_default();
                if let Some(stripped) = line.strip_suffix(b"\r") {
                    line = stripped;
                }
                if line.len() > self.max_line {
                    return Err(TextError::LineTooLong);
                }
                Ok(Some((line, nl + 1)))
            }
            None => {
                self.scanned = buf.len();
                // A max-length line may still be followed by `\r` before its `\n` arrives.
                let allowed = if buf.last() == Some(&b'\r') {
                    self.max_line.saturating_add(1)
                } else {
                    self.max_line
                };
                if buf.len() > allowed {
                    return Err(TextError::LineTooLong);
                }
                Ok(None)
            }
        }
    }
}

/// Append `msg` + `\n` to `out`.
pub fn encode(out: &mut Vec<u8>, msg: &[u8]) {
    out.reserve(msg.len() + 1);
    out.extend_from_slice(msg);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Simulates the worker: sliding window over a Vec, drained after each batch.
    fn feed_chunks(codec: &mut LineCodec, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Option<TextError>) {
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            let mut pos = 0;
            loop {
                match codec.decode(&buf[pos..]) {
                    Ok(Some((line, n))) => {
                        lines.push(line.to_vec());
                        pos += n;
                    }
                    Ok(None) => break,
                    Err(e) => return (lines, Some(e)),
                }
            }
            buf.drain(..pos);
        }
        (lines, None)
    }

    #[test]
    fn splits_lines_and_strips_one_cr() {
        let mut c = LineCodec::new(100);
        let buf = b"hello\r\nworld\n\r\r\nrest";
        assert_eq!(c.decode(buf), Ok(Some((&b"hello"[..], 7))));
        assert_eq!(c.decode(&buf[7..]), Ok(Some((&b"world"[..], 6))));
        assert_eq!(c.decode(&buf[13..]), Ok(Some((&b"\r"[..], 3))));
        assert_eq!(c.decode(&buf[16..]), Ok(None));
    }

    #[test]
    fn empty_line() {
        let mut c = LineCodec::new(10);
        assert_eq!(c.decode(b"\n"), Ok(Some((&b""[..], 1))));
        assert_eq!(c.decode(b"\r\n"), Ok(Some((&b""[..], 2))));
        assert_eq!(c.decode(b""), Ok(None));
    }

    #[test]
    fn line_length_limits() {
        type Case = (&'static [u8], Result<Option<usize>, TextError>);
        let cases: &[Case] = &[
            (b"abcd\n", Ok(Some(4))),
            (b"abcd\r\n", Ok(Some(4))),
            (b"abcde\n", Err(TextError::LineTooLong)),
            (b"abcd", Ok(None)),
            (b"abcd\r", Ok(None)),
            (b"abcde", Err(TextError::LineTooLong)),
            (b"abcd\r\r", Err(TextError::LineTooLong)),
        ];
        for (input, want) in cases {
            let mut c = LineCodec::new(4);
            let got = c.decode(input).map(|o| o.map(|(l, _)| l.len()));
            assert_eq!(&got, want, "input {:?}", input);
        }
    }

    #[test]
    fn slow_drip_resumes_scan() {
        let mut c = LineCodec::new(1000);
        let data = b"0123456789abcdef\n";
        for i in 1..data.len() {
            assert_eq!(c.decode(&data[..i]), Ok(None));
            assert_eq!(c.scanned, i);
        }
        assert_eq!(c.decode(data), Ok(Some((&data[..16], 17))));
        assert_eq!(c.scanned, 0);
    }

    #[test]
    fn shrunken_buffer_is_rescanned() {
        let mut c = LineCodec::new(100);
        assert_eq!(c.decode(b"abcdef"), Ok(None));
        assert_eq!(c.decode(b"a\n"), Ok(Some((&b"a"[..], 2))));
    }

    #[test]
    fn encode_appends_newline() {
        let mut out = b"x\n".to_vec();
        encode(&mut out, b"hi");
        assert_eq!(out, b"x\nhi\n");
    }

    proptest! {
        #[test]
        fn split_points_do_not_change_lines(
            lines in proptest::collection::vec(proptest::collection::vec(
                prop_oneof![Just(b'a'), Just(b'\r'), Just(0xe4u8), any::<u8>().prop_filter("no nl", |b| *b != b'\n')], 0..40), 0..12),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
            max_line in 0usize..48,
        ) {
            let mut stream = Vec::new();
            for l in &lines { encode(&mut stream, l); }
            let whole = feed_chunks(&mut LineCodec::new(max_line), &[&stream]);
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            points.push(0);
            points.push(stream.len());
            points.sort_unstable();
            let chunks: Vec<&[u8]> = points.windows(2).map(|w| &stream[w[0]..w[1]]).collect();
            let split = feed_chunks(&mut LineCodec::new(max_line), &chunks);
            let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
            let drip = feed_chunks(&mut LineCodec::new(max_line), &bytewise);
            prop_assert_eq!(&whole, &split);
            prop_assert_eq!(&whole, &drip);
            if whole.1.is_none() {
                let expect: Vec<Vec<u8>> = lines.iter().map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec()).collect();
                prop_assert_eq!(whole.0, expect);
            }
        }
    }
}
