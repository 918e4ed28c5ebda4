//! What an app carries across a reload's hand-over ([`AppState`]): the retiring worker's app
//! writes it in [`App::hand_over`](super::App::hand_over), the successor's app reads it in
//! [`App::take_over`](super::App::take_over). The record is typed by the app (any serde type)
//! and labelled with the app's name and its own version, so a new binary whose app state
//! changed shape says so ([`CarryError`]) instead of misreading it; the connections move
//! either way, only the app's memory is lost then.
//!
//! Time: an `Instant` means nothing to another process, so apps write durations relative to
//! the moment of writing ([`ms_until`], [`ms_since`]) and read them back against theirs
//! ([`deadline_in`], [`instant_ago`]). The hand-over's own few milliseconds are lost on the
//! way, which only makes a carried timer fire that much later and a carried rate that much
//! stricter.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::time::{Duration, Instant};

/// One app's state as it crosses from a retiring worker to its successor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppState {
    /// The app that wrote it (`kefu`, `bridge`...).
    pub app: String,
    /// The version of `data`'s shape, the app's own; bump it when the shape changes.
    pub version: u32,
    /// The state itself.
    pub data: Value,
}

/// Why an app's carried state cannot be read.
#[derive(Debug)]
pub enum CarryError {
    /// Written by another app (the config changed `app` across the reload).
    OtherApp {
        /// The writer.
        found: String,
        /// The reader.
        want: String,
    },
    /// Written in a version of the shape this build does not read.
    Version {
        /// The writer's version.
        found: u32,
        /// The reader's version.
        want: u32,
    },
    /// Not the shape its version promises.
    Shape(serde_json::Error),
}

impl fmt::Display for CarryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CarryError::OtherApp { found, want } => {
                write!(f, "state of app {found:?}, this is {want:?}")
            }
            CarryError::Version { found, want } => {
                write!(f, "state version {found}, this build reads {want}")
            }
            CarryError::Shape(e) => write!(f, "state unreadable: {e}"),
        }
    }
}

impl std::error::Error for CarryError {}

impl AppState {
    /// The state `data` of `app`, shape version `version`.
    pub fn new<T: Serialize>(app: &str, version: u32, data: &T) -> Result<AppState, CarryError> {
        Ok(AppState {
            app: app.to_string(),
            version,
            data: serde_json::to_value(data).map_err(CarryError::Shape)?,
        })
    }

    /// The state, if it is `app`'s in shape version `version`.
    pub fn read<T: DeserializeOwned>(self, app: &str, version: u32) -> Result<T, CarryError> {
        if self.app != app {
            return Err(CarryError::OtherApp {
                found: self.app,
                want: app.to_string(),
            });
        }
        if self.version != version {
            return Err(CarryError::Version {
                found: self.version,
                want: version,
            });
        }
        serde_json::from_value(self.data).map_err(CarryError::Shape)
    }
}

/// Milliseconds from `now` until `deadline` (0 if it passed).
pub fn ms_until(deadline: Instant, now: Instant) -> u64 {
    deadline.saturating_duration_since(now).as_millis() as u64
}

/// Milliseconds from `then` until `now` (0 if `then` is later).
pub fn ms_since(then: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(then).as_millis() as u64
}

/// The deadline `ms` after `now` (a carried value may be anything: capped at a year).
pub fn deadline_in(ms: u64, now: Instant) -> Instant {
    now + Duration::from_millis(ms.min(MAX_CARRIED_MS))
}

/// The instant `ms` before `now` (`now` itself if the clock does not reach back that far).
pub fn instant_ago(ms: u64, now: Instant) -> Instant {
    now.checked_sub(Duration::from_millis(ms.min(MAX_CARRIED_MS)))
        .unwrap_or(now)
}

/// The longest carried duration honoured.
const MAX_CARRIED_MS: u64 = 365 * 24 * 3600 * 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct S {
        a: Vec<(String, u64)>,
    }

    #[test]
    fn state_reads_back_only_as_written() {
        let s = S {
            a: vec![("x".into(), 3)],
        };
        let st = AppState::new("kefu", 2, &s).unwrap();
        let wire = serde_json::to_string(&st).unwrap();
        let back: AppState = serde_json::from_str(&wire).unwrap();
        assert_eq!(back.clone().read::<S>("kefu", 2).unwrap(), s);
        assert!(matches!(
            back.clone().read::<S>("bridge", 2),
            Err(CarryError::OtherApp { .. })
        ));
        assert!(matches!(
            back.clone().read::<S>("kefu", 3),
            Err(CarryError::Version { found: 2, want: 3 })
        ));
        let wrong = AppState {
            data: serde_json::json!({"a": "no"}),
            ..back
        };
        assert!(matches!(
            wrong.read::<S>("kefu", 2),
            Err(CarryError::Shape(_))
        ));
    }

    #[test]
    fn times_cross_as_offsets() {
        let now = Instant::now();
        let later = now + Duration::from_millis(1500);
        assert_eq!(ms_until(later, now), 1500);
        assert_eq!(ms_until(now, later), 0);
        assert_eq!(ms_since(now, later), 1500);
        assert_eq!(deadline_in(1500, now), later);
        assert_eq!(instant_ago(1500, later), now);
        // Hostile values neither panic nor overflow.
        let _ = deadline_in(u64::MAX, now);
        let _ = instant_ago(u64::MAX, now);
    }
}
