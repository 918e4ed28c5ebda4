//! A business's working hours: a week of opening spans in the business's own time zone
//! (an IANA name, DST included, from jiff's bundled zone database), and whether it is open at
//! a given instant. Outside them the visitor page shows the offline message and the
//! leave-a-message form, as it does when no agent is online (docs/web.md).
//!
//! Pure: parsing and computing only, no I/O (the store keeps the validated form as JSON).

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Most opening spans in one day.
pub(crate) const MAX_SPANS: usize = 4;
/// Longest time zone name accepted.
const MAX_TZ: usize = 64;
/// Minutes in a day; a span may end at 24:00.
const DAY: u16 = 24 * 60;

/// Why working hours were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HoursError {
    /// Not a time zone of the database.
    Zone,
    /// Not exactly seven days (Monday first).
    Days,
    /// More than [`MAX_SPANS`] spans in a day.
    Spans,
    /// A time that is not `HH:MM` between 00:00 and 24:00.
    Time,
    /// A span that does not open before it closes.
    Order,
}

impl HoursError {
    /// The client's message.
    pub(crate) fn msg(self) -> &'static str {
        match self {
            HoursError::Zone => "tz: an IANA time zone name such as Asia/Shanghai",
            HoursError::Days => "days: seven lists of spans, Monday first",
            HoursError::Spans => "days: at most 4 spans a day",
            HoursError::Time => "a time is HH:MM, 00:00 to 24:00",
            HoursError::Order => "a span opens before it closes (split spans over midnight)",
        }
    }
}

/// A week of working hours.
#[derive(Debug, Clone)]
pub(crate) struct Week {
    /// Zone name as given.
    pub(crate) tz_name: String,
    tz: TimeZone,
    /// Per day (Monday first): `[open, close)` in minutes after local midnight.
    days: [Vec<(u16, u16)>; 7],
}

/// How a week is stored: zone name, and the spans in minutes.
#[derive(Serialize, Deserialize)]
struct Stored(Vec<Vec<(u16, u16)>>);

/// The answer of `GET /api/hours`: spans as `HH:MM` pairs.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct WeekOut {
    /// Zone name.
    pub(crate) tz: String,
    /// Seven days, Monday first, of `[open, close]`.
    pub(crate) days: Vec<Vec<[String; 2]>>,
}

/// Whether a business is open now, and when that next changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Status {
    /// Inside working hours (always, when none are set).
    pub(crate) open: bool,
    /// When `open` next flips, ms (None: never, as far as a week shows).
    pub(crate) next_change: Option<i64>,
}

fn minutes(t: &str) -> Result<u16, HoursError> {
    let b = t.as_bytes();
    if b.len() != 5
        || b[2] != b':'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 2 || c.is_ascii_digit())
    {
        return Err(HoursError::Time);
    }
    let h = u16::from(b[0] - b'0') * 10 + u16::from(b[1] - b'0');
    let m = u16::from(b[3] - b'0') * 10 + u16::from(b[4] - b'0');
    if m > 59 || h * 60 + m > DAY {
        return Err(HoursError::Time);
    }
    Ok(h * 60 + m)
}

fn hhmm(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

fn zone(name: &str) -> Result<TimeZone, HoursError> {
    if name.is_empty() || name.len() > MAX_TZ {
        return Err(HoursError::Zone);
    }
    TimeZone::get(name).map_err(|_| HoursError::Zone)
}

impl Week {
    /// A week from its request form (seven days, Monday first, of `["HH:MM", "HH:MM"]`).
    pub(crate) fn parse(tz: &str, days: &[Vec<[String; 2]>]) -> Result<Week, HoursError> {
        let zone = zone(tz)?;
        if days.len() != 7 {
            return Err(HoursError::Days);
        }
        let mut out: [Vec<(u16, u16)>; 7] = Default::default();
        for (d, spans) in days.iter().enumerate() {
            if spans.len() > MAX_SPANS {
                return Err(HoursError::Spans);
            }
            for [a, b] in spans {
                let (a, b) = (minutes(a)?, minutes(b)?);
                if a >= b {
                    return Err(HoursError::Order);
                }
                out[d].push((a, b));
            }
            out[d].sort_unstable();
        }
        Ok(Week {
            tz_name: tz.to_string(),
            tz: zone,
            days: out,
        })
    }

    /// A week as the store keeps it (None if it no longer reads, e.g. a zone dropped from
    /// the database: then the business counts as always open).
    pub(crate) fn from_stored(tz: &str, json: &str) -> Option<Week> {
        let Stored(days) = serde_json::from_str(json).ok()?;
        let days: Vec<Vec<[String; 2]>> = days
            .into_iter()
            .map(|d| d.into_iter().map(|(a, b)| [hhmm(a), hhmm(b)]).collect())
            .collect();
        Week::parse(tz, &days).ok()
    }

    /// The spans as the store keeps them.
    pub(crate) fn to_stored(&self) -> String {
        serde_json::to_string(&Stored(self.days.to_vec())).unwrap_or_default()
    }

    /// The week as clients see it.
    pub(crate) fn out(&self) -> WeekOut {
        WeekOut {
            tz: self.tz_name.clone(),
            days: self
                .days
                .iter()
                .map(|d| d.iter().map(|&(a, b)| [hhmm(a), hhmm(b)]).collect())
                .collect(),
        }
    }

    /// Open at minute `m` (0..=1440, 1440 being the next day's midnight) of weekday `d`.
    fn open_at(&self, d: usize, m: u16) -> bool {
        let (d, m) = if m >= DAY { ((d + 1) % 7, 0) } else { (d, m) };
        self.days[d].iter().any(|&(a, b)| a <= m && m < b)
    }

    /// Whether it is open at `now_ms`, and when that changes next.
    pub(crate) fn status(&self, now_ms: i64) -> Status {
        let Ok(ts) = Timestamp::from_millisecond(now_ms) else {
            return Status {
                open: true,
                next_change: None,
            };
        };
        let local = ts.to_zoned(self.tz.clone());
        let day = local.weekday().to_monday_zero_offset() as usize;
        let minute = (local.hour() as u16) * 60 + local.minute() as u16;
        let open = self.open_at(day, minute);
        let next_change = (0..8).find_map(|k| {
            let d = (day + k) % 7;
            let mut bounds: Vec<u16> = self.days[d].iter().flat_map(|&(a, b)| [a, b]).collect();
            bounds.push(0);
            bounds.sort_unstable();
            bounds
                .into_iter()
                .filter(|&b| k > 0 || b > minute)
                .find(|&b| self.open_at(d, b) != open)
                .and_then(|b| self.instant(local.date(), k, b))
        });
        Status { open, next_change }
    }

    /// The instant of minute `m` of the day `k` days after `date`, in the business's zone.
    fn instant(&self, date: Date, k: usize, m: u16) -> Option<i64> {
        let mut date = date;
        for _ in 0..k + usize::from(m >= DAY) {
            date = date.tomorrow().ok()?;
        }
        let m = m % DAY;
        let dt = date.at((m / 60) as i8, (m % 60) as i8, 0, 0);
        Some(
            dt.to_zoned(self.tz.clone())
                .ok()?
                .timestamp()
                .as_millisecond(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(spec: &[&[(&str, &str)]]) -> Vec<Vec<[String; 2]>> {
        spec.iter()
            .map(|d| {
                d.iter()
                    .map(|(a, b)| [a.to_string(), b.to_string()])
                    .collect()
            })
            .collect()
    }

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn weekdays_nine_to_six_in_shanghai() {
        let nine = &[("09:00", "18:00")][..];
        let w = Week::parse(
            "Asia/Shanghai",
            &days(&[nine, nine, nine, nine, nine, &[], &[]]),
        )
        .unwrap();
        // Monday 2026-11-30 10:00 in Shanghai is 02:00 UTC.
        let s = w.status(ms("2026-11-30T02:00:00Z"));
        assert_eq!(
            s,
            Status {
                open: true,
                next_change: Some(ms("2026-11-30T10:00:00Z"))
            }
        );
        // Friday evening: closed until Monday 09:00 local.
        let s = w.status(ms("2026-12-04T12:00:00Z"));
        assert_eq!(
            s,
            Status {
                open: false,
                next_change: Some(ms("2026-12-07T01:00:00Z"))
            }
        );
        // The stored form reads back the same.
        let back = Week::from_stored("Asia/Shanghai", &w.to_stored()).unwrap();
        assert_eq!(back.out(), w.out());
    }

    #[test]
    fn daylight_saving_moves_the_opening_instant() {
        let d = &[("09:00", "17:00")][..];
        let w = Week::parse("Europe/Berlin", &days(&[d, d, d, d, d, d, d])).unwrap();
        // 09:00 in Berlin: 07:00 UTC in summer, 08:00 UTC in winter.
        assert!(w.status(ms("2026-07-01T07:30:00Z")).open);
        assert!(!w.status(ms("2026-12-01T07:30:00Z")).open);
        assert_eq!(
            w.status(ms("2026-12-01T07:30:00Z")).next_change,
            Some(ms("2026-12-01T08:00:00Z"))
        );
    }

    #[test]
    fn all_day_and_never() {
        let all = &[("00:00", "24:00")][..];
        let w = Week::parse("UTC", &days(&[all, all, all, all, all, all, all])).unwrap();
        assert_eq!(
            w.status(0),
            Status {
                open: true,
                next_change: None
            }
        );
        let w = Week::parse("UTC", &days(&[&[], &[], &[], &[], &[], &[], &[]])).unwrap();
        assert_eq!(
            w.status(0),
            Status {
                open: false,
                next_change: None
            }
        );
    }

    #[test]
    fn hostile_input_is_refused() {
        let ok = &[("09:00", "18:00")][..];
        let week = days(&[ok, ok, ok, ok, ok, ok, ok]);
        assert_eq!(
            Week::parse("Mars/Olympus", &week).unwrap_err(),
            HoursError::Zone
        );
        assert_eq!(Week::parse("", &week).unwrap_err(), HoursError::Zone);
        assert_eq!(
            Week::parse(&"A".repeat(4096), &week).unwrap_err(),
            HoursError::Zone
        );
        assert_eq!(
            Week::parse("../../etc/passwd", &week).unwrap_err(),
            HoursError::Zone
        );
        assert_eq!(
            Week::parse("UTC", &week[..6]).unwrap_err(),
            HoursError::Days
        );
        for bad in ["9:00", "24:01", "12:60", "１２:00", "ab:cd", "12-00", ""] {
            let d = days(&[&[(bad, "18:00")], ok, ok, ok, ok, ok, ok]);
            assert_eq!(
                Week::parse("UTC", &d).unwrap_err(),
                HoursError::Time,
                "{bad}"
            );
        }
        let d = days(&[&[("18:00", "09:00")], ok, ok, ok, ok, ok, ok]);
        assert_eq!(Week::parse("UTC", &d).unwrap_err(), HoursError::Order);
        let five = &[("01:00", "02:00"); 5][..];
        let d = days(&[five, ok, ok, ok, ok, ok, ok]);
        assert_eq!(Week::parse("UTC", &d).unwrap_err(), HoursError::Spans);
    }
}
