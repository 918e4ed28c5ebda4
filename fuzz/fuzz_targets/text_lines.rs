//! Fuzz the `\n` line codec with a sliding window fed in chunks, against a naive splitter.
#![no_main]

use kefu::protocol::text::LineCodec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let max_line = usize::from(first);
    let chunk = usize::from(first % 7) + 1;
    let mut codec = LineCodec::new(max_line);
    let mut buf = Vec::new();
    let mut got = Vec::new();
    let mut failed = false;
    'outer: for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        let mut pos = 0;
        loop {
            match codec.decode(&buf[pos..]) {
                Ok(Some((line, n))) => {
                    got.push(line.to_vec());
                    pos += n;
                }
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break 'outer;
                }
            }
        }
        buf.drain(..pos);
    }
    // Naive reference: complete lines, each stripped of one `\r`.
    let mut want = Vec::new();
    let mut parts: Vec<&[u8]> = rest.split(|&b| b == b'\n').collect();
    parts.pop(); // the unterminated tail
    for p in parts {
        let l = p.strip_suffix(b"\r").unwrap_or(p);
        if l.len() > max_line {
            assert!(failed, "long line accepted");
            break;
        }
        want.push(l.to_vec());
    }
    if failed {
        assert!(got.len() <= want.len());
        assert_eq!(&want[..got.len()], &got[..]);
    } else {
        assert_eq!(want, got);
    }
});
