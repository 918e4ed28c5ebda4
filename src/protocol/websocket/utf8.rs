//! Incremental, fail-fast UTF-8 validation for text messages that arrive in pieces
//! (RFC 6455 §8.1: invalid UTF-8 must fail the connection). No I/O here.

use std::fmt;

/// Invalid UTF-8 was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error;

impl fmt::Display for Utf8Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid UTF-8")
    }
}

impl std::error::Error for Utf8Error {}

/// Streaming validator: keeps up to 3 bytes of an incomplete trailing character.
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    pending: [u8; 4],
    /// Bytes used in `pending` (0..=3; a byte keeps the decoder a malloc size class smaller).
    pending_len: u8,
}

/// Encoded length announced by a lead byte that `from_utf8` accepted as a valid prefix.
fn char_width(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

impl Utf8Validator {
    /// Fresh validator with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget any pending partial character.
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }

    /// Validate the next bytes; fails as soon as no valid continuation is possible
    /// (overlongs, surrogates, > U+10FFFF are caught from their second byte).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Utf8Error> {
        let mut rest = bytes;
        let plen = usize::from(self.pending_len);
        if plen > 0 {
            let lead = self.pending.first().copied().unwrap_or(0);
            let need = char_width(lead).saturating_sub(plen);
            let take = need.min(rest.len());
            let mut tmp = [0u8; 4];
            let have = plen + take;
            let (head, tail) = rest.split_at(take);
            tmp.get_mut(..plen)
                .ok_or(Utf8Error)?
                .copy_from_slice(self.pending.get(..plen).ok_or(Utf8Error)?);
            tmp.get_mut(plen..have)
                .ok_or(Utf8Error)?
                .copy_from_slice(head);
            let joined = tmp.get(..have).ok_or(Utf8Error)?;
            match std::str::from_utf8(joined) {
                Ok(_) => self.pending_len = 0,
                // Still a valid prefix of a character: keep waiting.
                Err(e) if e.error_len().is_none() && take < need => {
                    self.pending = tmp;
                    self.pending_len = u8::try_from(have).map_err(|_| Utf8Error)?;
                    return Ok(());
                }
                Err(_) => return Err(Utf8Error),
            }
            rest = tail;
        }
        match std::str::from_utf8(rest) {
            Ok(_) => Ok(()),
            // `error_len() == None` means the input ended inside a character whose bytes so far
            // are a valid prefix (std checks the narrowed second-byte ranges of RFC 3629 §4).
            Err(e) if e.error_len().is_none() => {
                let tail = rest.get(e.valid_up_to()..).ok_or(Utf8Error)?;
                let dst = self.pending.get_mut(..tail.len()).ok_or(Utf8Error)?;
                dst.copy_from_slice(tail);
                self.pending_len = u8::try_from(tail.len()).map_err(|_| Utf8Error)?;
                Ok(())
            }
            Err(_) => Err(Utf8Error),
        }
    }

    /// The bytes of the partial character pending (at most 3), for a hand-over.
    pub fn pending(&self) -> &[u8] {
        self.pending
            .get(..usize::from(self.pending_len))
            .unwrap_or_default()
    }

    /// A validator in the state [`Self::pending`] described; `None` if `pending` is not the
    /// valid start of one character.
    pub fn with_pending(pending: &[u8]) -> Option<Self> {
        let mut v = Self::new();
        if pending.len() > 3
            || v.feed(pending).is_err()
            || usize::from(v.pending_len) != pending.len()
        {
            return None;
        }
        Some(v)
    }

    /// True when no partial character is pending (the text so far ends on a char boundary).
    pub fn is_complete(&self) -> bool {
        self.pending_len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fails_fast_on_known_bad_prefixes() {
        let bad: &[&[u8]] = &[
            &[0x80],
            &[0xC0],
            &[0xC1],
            &[0xF5],
            &[0xFF],
            &[0xE0, 0x80],
            &[0xE0, 0x9F],
            &[0xED, 0xA0],
            &[0xF0, 0x80],
            &[0xF0, 0x8F],
            &[0xF4, 0x90],
            &[0xC2, 0x41],
            &[0xE2, 0x82, 0x41],
            &[0xF0, 0x9F, 0x98, 0x41],
        ];
        for b in bad {
            // Whole, and split byte by byte: the error must appear at the offending byte.
            assert_eq!(Utf8Validator::new().feed(b), Err(Utf8Error), "{b:x?}");
            let mut v = Utf8Validator::new();
            let (last, init) = b.split_last().unwrap();
            for &x in init {
                assert_eq!(v.feed(&[x]), Ok(()), "{b:x?}");
            }
            assert_eq!(v.feed(&[*last]), Err(Utf8Error), "{b:x?}");
        }
    }

    #[test]
    fn good_prefixes_wait() {
        let good: &[&[u8]] = &[
            &[0xC2],
            &[0xE0, 0xA0],
            &[0xED, 0x9F],
            &[0xF0, 0x90, 0x80],
            &[0xF4, 0x8F, 0xBF],
        ];
        for g in good {
            let mut v = Utf8Validator::new();
            assert_eq!(v.feed(g), Ok(()));
            assert!(!v.is_complete());
            v.reset();
            assert!(v.is_complete());
        }
    }

    #[test]
    fn multibyte_split_everywhere() {
        let s = "aé€😀中文κόσμε".as_bytes();
        for i in 0..=s.len() {
            for j in i..=s.len() {
                let mut v = Utf8Validator::new();
                v.feed(&s[..i]).unwrap();
                v.feed(&s[i..j]).unwrap();
                v.feed(&s[j..]).unwrap();
                assert!(v.is_complete());
            }
        }
    }

    proptest! {
        #[test]
        fn agrees_with_std(data in proptest::collection::vec(prop_oneof![any::<u8>(), 0x80u8..0xC0, 0xC2u8..0xF5], 0..64), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6)) {
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
            points.extend([0, data.len()]);
            points.sort_unstable();
            let mut v = Utf8Validator::new();
            let mut ok = true;
            for w in points.windows(2) {
                if v.feed(&data[w[0]..w[1]]).is_err() {
                    ok = false;
                    // Fail-fast: std must also reject the prefix fed so far.
                    let e = std::str::from_utf8(&data[..w[1]]).unwrap_err();
                    prop_assert!(e.error_len().is_some());
                    break;
                }
            }
            let std_ok = std::str::from_utf8(&data).is_ok();
            prop_assert_eq!(ok && v.is_complete(), std_ok);
        }
    }
}
