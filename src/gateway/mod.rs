//! The gateway: cluster-wide client ids, groups, uids and sessions, and sends that reach any
//! client from any worker (GatewayWorker's API, without its blocking round trips).
//!
//! This layer is the gateway's data only: `client_id` names connections and clients,
//! `registry` is the replicated index of who is online with which uid, groups and session
//! (`changes`: which of its clients changed while a reload copies it ahead), and
//! `bus` is the links between workers with their codec. It knows nothing of the worker loop or
//! of apps; the worker's state (`crate::state`) applies it, the app API (`crate::api`) calls it.

pub mod bus;
pub mod changes;
pub mod client_id;
pub mod gw_id;
pub mod registry;

use std::fmt;

/// Longest group id or uid accepted, in bytes.
pub const MAX_NAME: usize = 256;
/// Largest session, serialized, in bytes (sessions are replicated to every worker).
pub const MAX_SESSION: usize = 64 * 1024;
/// Most groups one client may join.
pub const MAX_GROUPS_PER_CLIENT: usize = 1024;

/// Why a gateway call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiError {
    /// Empty or overlong group id.
    BadGroup,
    /// Empty or overlong uid.
    BadUid,
    /// The client id is malformed.
    BadClientId,
    /// No such client online.
    NotOnline,
    /// Session over [`MAX_SESSION`] bytes.
    SessionTooLarge,
    /// The client is in too many groups.
    TooManyGroups,
}

impl ApiError {
    /// Stable machine-readable code for JSON answers.
    pub fn code(self) -> &'static str {
        match self {
            ApiError::BadGroup => "bad_group",
            ApiError::BadUid => "bad_uid",
            ApiError::BadClientId => "bad_client_id",
            ApiError::NotOnline => "not_online",
            ApiError::SessionTooLarge => "session_too_large",
            ApiError::TooManyGroups => "too_many_groups",
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ApiError::BadGroup => "group id must be 1..256 bytes",
            ApiError::BadUid => "uid must be 1..256 bytes",
            ApiError::BadClientId => "malformed client_id",
            ApiError::NotOnline => "client is not online",
            ApiError::SessionTooLarge => "session larger than 64 KiB",
            ApiError::TooManyGroups => "client is in too many groups",
        };
        f.write_str(s)
    }
}

impl std::error::Error for ApiError {}

/// Check a group id.
pub fn check_group(g: &str) -> Result<(), ApiError> {
    if g.is_empty() || g.len() > MAX_NAME {
        return Err(ApiError::BadGroup);
    }
    Ok(())
}

/// Check a uid.
pub fn check_uid(u: &str) -> Result<(), ApiError> {
    if u.is_empty() || u.len() > MAX_NAME {
        return Err(ApiError::BadUid);
    }
    Ok(())
}
