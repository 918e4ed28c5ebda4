//! The desk's field checks: what a caller may send, bounded before any SQL runs.

/// Longest canned shortcut, characters.
const MAX_SHORTCUT: usize = 32;
/// Longest rating comment, characters.
pub(super) const MAX_COMMENT: usize = 500;
/// Longest contact (an email address or a phone number), characters.
const MAX_CONTACT: usize = 100;
/// Longest name a visitor gives with an offline message, characters.
pub(super) const MAX_NAME: usize = 64;

/// A text field: trimmed, 1..=max characters, no control characters but line breaks.
pub(super) fn text_field(
    s: &str,
    max: usize,
    what: &'static str,
) -> std::result::Result<String, &'static str> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > max {
        return Err(what);
    }
    if t.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(what);
    }
    Ok(t.to_string())
}

pub(super) fn shortcut(s: &str) -> std::result::Result<String, &'static str> {
    let ok = !s.is_empty()
        && s.chars().count() <= MAX_SHORTCUT
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(s.to_string())
    } else {
        Err("shortcut: 1..32 letters, digits, _ - . (no spaces)")
    }
}

/// An email address or a phone number, loosely: what a person can be reached at.
pub(super) fn contact(s: &str) -> std::result::Result<String, &'static str> {
    const MSG: &str = "contact: an email address or a phone number";
    let c = s.trim();
    if c.is_empty() || c.chars().count() > MAX_CONTACT || c.chars().any(char::is_control) {
        return Err(MSG);
    }
    let email = match c.split_once('@') {
        Some((user, host)) => {
            !user.is_empty()
                && host.contains('.')
                && !host.starts_with('.')
                && !host.ends_with('.')
                && !c.chars().any(char::is_whitespace)
                && !host.contains('@')
        }
        None => false,
    };
    let digits = c.chars().filter(char::is_ascii_digit).count();
    let phone = (5..=20).contains(&digits)
        && c.chars()
            .all(|ch| ch.is_ascii_digit() || matches!(ch, '+' | '-' | ' ' | '(' | ')'));
    if email || phone {
        Ok(c.to_string())
    } else {
        Err(MSG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_and_shortcuts() {
        for ok in [
            "a@b.co",
            "张三@例子.中国",
            "+86 138-0013-8000",
            "(010) 1234 5678",
        ] {
            assert!(contact(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a@b",
            "@b.co",
            "a b@c.de",
            "1234",
            "call me",
            "a@.co",
            "x\u{0}@y.z",
            &"9".repeat(101),
        ] {
            assert!(contact(bad).is_err(), "{bad:?}");
        }
        assert!(shortcut("hi").is_ok() && shortcut("退款-1").is_ok());
        for bad in ["", "a b", "/x", "<b>", &"x".repeat(33)] {
            assert!(shortcut(bad).is_err(), "{bad:?}");
        }
        assert!(text_field(" x ", 5, "e").is_ok());
        assert!(text_field("   ", 5, "e").is_err());
        assert!(text_field("abcdef", 5, "e").is_err());
        assert!(text_field("a\u{7}b", 5, "e").is_err());
    }
}
