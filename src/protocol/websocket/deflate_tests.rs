use super::*;
use proptest::prelude::*;

fn chat_json(n: usize) -> Vec<u8> {
    let mut s = String::from("[");
    for i in 0..n {
        s.push_str(&format!(
            r#"{{"type":"msg","conv":"c-{i}","from":"agent-7","text":"您好，请问有什么可以帮您？ order #{i}","ts":17000000{i:02}}},"#
        ));
    }
    s.push(']');
    s.into_bytes()
}

#[test]
fn roundtrip_every_window() {
    let msg = chat_json(200);
    let mut inf = Inflater::new();
    for bits in 9..=15 {
        let mut d = Deflater::new(6, bits);
        assert_eq!(d.window_bits(), bits);
        let mut out = Vec::new();
        assert!(d.deflate(&msg, &mut out));
        assert!(out.len() < msg.len() / 4, "bits {bits}: {}", out.len());
        assert!(!out.ends_with(&TAIL));
        assert_eq!(inf.inflate(&out, msg.len()).unwrap(), &msg[..]);
        // The same compressor again gives the same bytes: no context is carried over.
        let mut again = Vec::new();
        assert!(d.deflate(&msg, &mut again));
        assert_eq!(again, out);
    }
}

#[test]
fn rfc7692_examples() {
    // §7.2.3.1: "Hello" compressed, one of the two valid encodings shown.
    let mut inf = Inflater::new();
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    assert_eq!(inf.inflate(&hello, 100).unwrap(), b"Hello");
    // §7.2.3.3: a stored (uncompressed) block.
    let stored = [
        0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    assert_eq!(inf.inflate(&stored, 100).unwrap(), b"Hello");
    // §7.2.3.4: a message ending in a final block, then nothing.
    let fin = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    assert_eq!(inf.inflate(&fin, 100).unwrap(), b"Hello");
    // Our own "Hello" inflates the same.
    let mut out = Vec::new();
    assert!(Deflater::new(6, 15).deflate(b"Hello", &mut out));
    assert_eq!(inf.inflate(&out, 5).unwrap(), b"Hello");
}

#[test]
fn exact_limit_passes_one_more_byte_fails() {
    let msg = vec![b'a'; 10_000];
    let mut out = Vec::new();
    assert!(Deflater::new(6, 15).deflate(&msg, &mut out));
    let mut inf = Inflater::new();
    assert_eq!(inf.inflate(&out, 10_000).unwrap().len(), 10_000);
    assert_eq!(inf.inflate(&out, 9_999), Err(InflateError::TooBig));
    // The inflater is usable after an error.
    assert_eq!(inf.inflate(&out, 10_000).unwrap().len(), 10_000);
}

#[test]
fn bomb_never_allocates_past_the_limit() {
    // 64 MiB of zeros compress to about 64 KiB.
    let big = vec![0u8; 64 << 20];
    let mut bomb = Vec::new();
    assert!(Deflater::new(9, 15).deflate(&big, &mut bomb));
    drop(big);
    assert!(bomb.len() < 128 * 1024, "{}", bomb.len());
    let mut inf = Inflater::new();
    let limit = 1 << 20;
    assert_eq!(inf.inflate(&bomb, limit), Err(InflateError::TooBig));
    assert!(inf.out.capacity() <= limit + 1, "{}", inf.out.capacity());
    // A large buffer is not kept for the next message.
    let _ = inf.inflate(b"\x02\x00", limit);
    assert!(inf.out.capacity() <= KEEP_CAPACITY);
}

#[test]
fn corrupt_input_is_an_error() {
    let mut inf = Inflater::new();
    // BTYPE=11 is reserved.
    assert_eq!(
        inf.inflate(&[0xff, 0xff, 0xff], 100),
        Err(InflateError::Corrupt)
    );
    // Stored block whose length check fails.
    assert_eq!(
        inf.inflate(&[0x00, 0x05, 0x00, 0x00, 0x00, b'x'], 100),
        Err(InflateError::Corrupt)
    );
    // Still usable.
    assert_eq!(
        inf.inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 10)
            .unwrap(),
        b"Hello"
    );
}

#[test]
fn a_window_of_eight_is_raised_to_nine() {
    assert_eq!(Deflater::new(6, 8).window_bits(), 9);
}

proptest! {
    /// Whatever the message and window, inflate(deflate(m)) == m, within the limit.
    #[test]
    fn roundtrip(msg in proptest::collection::vec(any::<u8>(), 0..4000), bits in 9u8..=15, level in 0u32..=9) {
        let mut out = Vec::new();
        prop_assert!(Deflater::new(level, bits).deflate(&msg, &mut out));
        let mut inf = Inflater::new();
        prop_assert_eq!(inf.inflate(&out, msg.len()).unwrap(), &msg[..]);
        if !msg.is_empty() {
            prop_assert_eq!(inf.inflate(&out, msg.len() - 1), Err(InflateError::TooBig));
        }
    }

    /// Arbitrary bytes inflate or fail cleanly, never past the limit.
    #[test]
    fn arbitrary_input(data in proptest::collection::vec(any::<u8>(), 0..600), limit in 0usize..5000) {
        let mut inf = Inflater::new();
        if let Ok(out) = inf.inflate(&data, limit) {
            prop_assert!(out.len() <= limit);
        }
    }
}
