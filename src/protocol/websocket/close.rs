//! WebSocket close status codes (RFC 6455 §7.4) and their validity when received. No I/O here.

/// 1000: normal closure.
pub const NORMAL: u16 = 1000;
/// 1001: endpoint going away (server shutdown, page navigation).
pub const GOING_AWAY: u16 = 1001;
/// 1002: protocol error.
pub const PROTOCOL_ERROR: u16 = 1002;
/// 1003: data type the endpoint cannot accept.
pub const UNSUPPORTED: u16 = 1003;
/// 1007: payload inconsistent with the message type (e.g. bad UTF-8 in text).
pub const INVALID_DATA: u16 = 1007;
/// 1008: policy violation.
pub const POLICY: u16 = 1008;
/// 1009: message too big to process.
pub const TOO_BIG: u16 = 1009;
/// 1011: unexpected server condition.
pub const INTERNAL: u16 = 1011;
/// 1012: service restart (IANA registry).
pub const SERVICE_RESTART: u16 = 1012;

/// Whether a peer may send `code` in a Close frame (RFC 6455 §7.4.1, §7.4.2, IANA registry).
pub fn is_valid_close_code(code: u16) -> bool {
    match code {
        // 1004 is reserved; 1005, 1006 and 1015 must never appear on the wire (§7.4.1).
        1000..=1003 => true,
        // 1007-1011 from §7.4.1; 1012-1014 registered later with IANA.
        1007..=1014 => true,
        // 3000-3999 registered by libraries/frameworks, 4000-4999 private use (§7.4.2).
        3000..=4999 => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_codes() {
        let valid = [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ];
        let invalid = [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ];
        for c in valid {
            assert!(is_valid_close_code(c), "{c}");
        }
        for c in invalid {
            assert!(!is_valid_close_code(c), "{c}");
        }
        for c in [
            NORMAL,
            GOING_AWAY,
            PROTOCOL_ERROR,
            UNSUPPORTED,
            INVALID_DATA,
            POLICY,
            TOO_BIG,
            INTERNAL,
            SERVICE_RESTART,
        ] {
            assert!(is_valid_close_code(c));
        }
    }
}
