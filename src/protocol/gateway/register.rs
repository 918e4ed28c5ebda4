//! The Register's protocol: one JSON object a line (Workerman's `text://`), tagged by `event`.
//!
//! Gateways announce their inner address (`gateway_connect`), BusinessWorkers and GatewayClient
//! ask for the list (`worker_connect`) and get `broadcast_addresses` now and whenever it
//! changes; `ping` keeps a link through idle firewalls.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest accepted `host:port`.
pub const MAX_ADDRESS: usize = 262;

/// A message on a Register link, either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RegisterMsg {
    /// A gateway's inner address.
    GatewayConnect {
        /// `host:port` BusinessWorkers connect to.
        address: String,
        /// Must equal the Register's.
        #[serde(default)]
        secret_key: String,
    },
    /// A BusinessWorker or GatewayClient wants the gateway addresses.
    WorkerConnect {
        /// Must equal the Register's.
        #[serde(default)]
        secret_key: String,
    },
    /// Keep-alive.
    Ping,
    /// The gateway addresses (Register -> workers).
    BroadcastAddresses {
        /// Unique `host:port` list.
        addresses: Vec<String>,
    },
}

/// Why a line is not a Register message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    /// Not JSON, no known `event`, or a field of the wrong type.
    BadJson,
    /// A gateway address that is empty, too long or not `host:port`.
    BadAddress,
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RegisterError::BadJson => "not a Register message",
            RegisterError::BadAddress => "bad gateway address",
        })
    }
}

impl std::error::Error for RegisterError {}

/// The message of one line (terminator already removed).
pub fn decode(line: &[u8]) -> Result<RegisterMsg, RegisterError> {
    let msg: RegisterMsg = serde_json::from_slice(line).map_err(|_| RegisterError::BadJson)?;
    match &msg {
        RegisterMsg::GatewayConnect { address, .. } if !valid_address(address) => {
            Err(RegisterError::BadAddress)
        }
        RegisterMsg::BroadcastAddresses { addresses }
            if !addresses.iter().all(|a| valid_address(a)) =>
        {
            Err(RegisterError::BadAddress)
        }
        _ => Ok(msg),
    }
}

/// Appends one line.
pub fn encode(out: &mut Vec<u8>, msg: &RegisterMsg) {
    // Serializing these plain structs cannot fail.
    if serde_json::to_writer(&mut *out, msg).is_ok() {
        out.push(b'\n');
    }
}

/// `host:port` with a host of letters, digits, `.`, `-` (a name or IPv4) and a port 1-65535.
pub fn valid_address(a: &str) -> bool {
    let Some((host, port)) = a.rsplit_once(':') else {
        return false;
    };
    a.len() <= MAX_ADDRESS
        && !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && matches!(port.parse::<u16>(), Ok(p) if p != 0)
        && !port.starts_with('+')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_as_gatewayworker_writes_them() {
        // Gateway::registerAddress() and BusinessWorker::connectToRegister() build these by
        // string concatenation.
        assert_eq!(
            decode(br#"{"event":"gateway_connect", "address":"127.0.0.1:2300", "secret_key":""}"#),
            Ok(RegisterMsg::GatewayConnect {
                address: "127.0.0.1:2300".into(),
                secret_key: String::new()
            })
        );
        assert_eq!(
            decode(br#"{"event":"worker_connect","secret_key":"k"}"#),
            Ok(RegisterMsg::WorkerConnect {
                secret_key: "k".into()
            })
        );
        assert_eq!(
            decode(br#"{"event":"worker_connect"}"#),
            Ok(RegisterMsg::WorkerConnect {
                secret_key: String::new()
            })
        );
        assert_eq!(decode(br#"{"event":"ping"}"#), Ok(RegisterMsg::Ping));
    }

    #[test]
    fn broadcast_is_what_business_worker_reads() {
        let mut out = Vec::new();
        encode(
            &mut out,
            &RegisterMsg::BroadcastAddresses {
                addresses: vec!["127.0.0.1:2300".into(), "10.0.0.2:2301".into()],
            },
        );
        assert_eq!(
            out,
            b"{\"event\":\"broadcast_addresses\",\"addresses\":[\"127.0.0.1:2300\",\"10.0.0.2:2301\"]}\n"
        );
        assert!(decode(&out[..out.len() - 1]).is_ok());
    }

    #[test]
    fn bad_lines() {
        assert_eq!(decode(b""), Err(RegisterError::BadJson));
        assert_eq!(decode(b"{}"), Err(RegisterError::BadJson));
        assert_eq!(decode(br#"{"event":"nope"}"#), Err(RegisterError::BadJson));
        assert_eq!(
            decode(br#"{"event":"worker_connect","secret_key":5}"#),
            Err(RegisterError::BadJson)
        );
        for a in [
            "",
            "host",
            "host:0",
            "host:65536",
            ":80",
            "a b:80",
            "h:+80",
            "h:80\n",
        ] {
            let line = serde_json::json!({"event":"gateway_connect","address":a}).to_string();
            assert_eq!(
                decode(line.as_bytes()),
                Err(RegisterError::BadAddress),
                "{a:?}"
            );
        }
        let long = format!("{}:80", "a".repeat(MAX_ADDRESS));
        assert!(!valid_address(&long));
        assert!(valid_address("gw-1.lan:2300"));
    }
}
