//! Client-to-server payload (un)masking (RFC 6455 §5.3). No I/O here.

/// XOR `buf` with the 4-byte `mask`, where `offset` payload bytes were already processed
/// before `buf` (so the key phase stays right when unmasking a payload in pieces).
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    // §5.3: octet i of the payload is XORed with mask[i % 4]; rotate so the key starts at
    // buf[0]. Little-endian throughout, so byte j of every word meets key[j % 4] on any host.
    let key = u32::from_le_bytes(mask).rotate_right((offset % 4) as u32 * 8);
    let wide = u128::from(key) * 0x0000_0001_0000_0001_0000_0001_0000_0001;
    // 16 bytes a step: one SSE XOR on x86-64 with no target features assumed.
    let mut chunks = buf.chunks_exact_mut(16);
    for chunk in &mut chunks {
        let mut word = [0u8; 16];
        word.copy_from_slice(chunk);
        let x = u128::from_le_bytes(word) ^ wide;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    // Each chunk is a multiple of 4 bytes, so the tail starts at key phase 0 again.
    let key = key.to_le_bytes();
    for (b, k) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *b ^= k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(buf: &mut [u8], mask: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= mask[(offset + i) % 4];
        }
    }

    #[test]
    fn rfc_hello_example() {
        // RFC 6455 §5.7: masked "Hello".
        let mut p = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut p, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&p, b"Hello");
    }

    #[test]
    fn every_length_and_offset_matches_naive() {
        let mask = [1, 2, 3, 0xff];
        for len in 0..40 {
            for off in 0..8 {
                let src: Vec<u8> = (0..len as u8).collect();
                let mut a = src.clone();
                let mut b = src.clone();
                apply_mask(&mut a, mask, off);
                naive(&mut b, mask, off);
                assert_eq!(a, b, "len {len} off {off}");
            }
        }
    }

    proptest! {
        #[test]
        fn pieces_equal_whole(data in proptest::collection::vec(any::<u8>(), 0..300), mask in any::<[u8; 4]>(), cut in any::<prop::sample::Index>()) {
            let cut = cut.index(data.len() + 1);
            let mut whole = data.clone();
            apply_mask(&mut whole, mask, 0);
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(cut);
            apply_mask(a, mask, 0);
            apply_mask(b, mask, cut);
            prop_assert_eq!(whole, pieces);
        }
    }
}
