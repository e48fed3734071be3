//! Business time: the bank's business day and as-of windows.
//!
//! The business day lives in a configured time zone (Asia/Shanghai by
//! default). "As of D" means every event with a timestamp before D+1 00:00
//! business time; an N-day window as of D covers business days D−N+1 … D.
//!
//! ```
//! use cdp_core::time::{BusinessCalendar, parse_timestamp};
//! use chrono::NaiveDate;
//!
//! let cal = BusinessCalendar::default();
//! // 00:30 in Shanghai on 16 Jan is 16:30 UTC on 15 Jan: business day 16 Jan.
//! let ts = parse_timestamp("2026-01-15T16:30:00Z").unwrap();
//! assert_eq!(cal.business_date(ts), NaiveDate::from_ymd_opt(2026, 1, 16).unwrap());
//! ```

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::error::{Error, Result};

/// The default business time zone.
pub const DEFAULT_TIMEZONE: &str = "Asia/Shanghai";

/// Maps instants to business days and business days to instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusinessCalendar {
    tz: Tz,
}

impl Default for BusinessCalendar {
    fn default() -> Self {
        Self {
            tz: chrono_tz::Asia::Shanghai,
        }
    }
}

/// An as-of window: business days `first_day ..= last_day`, which is the
/// half-open instant range `start .. end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First business day inside the window.
    pub first_day: NaiveDate,
    /// Last business day inside the window (the as-of date).
    pub last_day: NaiveDate,
    /// First instant inside the window.
    pub start: DateTime<Utc>,
    /// First instant after the window.
    pub end: DateTime<Utc>,
}

impl Window {
    /// True when `ts` falls inside the window.
    pub fn contains(&self, ts: DateTime<Utc>) -> bool {
        self.start <= ts && ts < self.end
    }
}

impl BusinessCalendar {
    /// A calendar in the IANA time zone `name`.
    pub fn new(name: &str) -> Result<Self> {
        let tz = name
            .parse::<Tz>()
            .map_err(|_| Error::TimeZone { name: name.into() })?;
        Ok(Self { tz })
    }

    /// The time zone's IANA name.
    pub fn timezone(&self) -> &'static str {
        self.tz.name()
    }

    /// The business day an instant belongs to.
    pub fn business_date(&self, ts: DateTime<Utc>) -> NaiveDate {
        ts.with_timezone(&self.tz).date_naive()
    }

    /// The first instant of business day `day` (local midnight; where a
    /// daylight-saving change skips midnight, the first local time that exists).
    pub fn day_start(&self, day: NaiveDate) -> DateTime<Utc> {
        let mut local = day.and_hms_opt(0, 0, 0).expect("midnight exists");
        loop {
            if let Some(t) = self.tz.from_local_datetime(&local).earliest() {
                return t.with_timezone(&Utc);
            }
            local += chrono::Duration::minutes(15);
        }
    }

    /// The as-of cutoff: the first instant *not* visible as of `as_of`
    /// (D+1 00:00 business time).
    pub fn as_of_cutoff(&self, as_of: NaiveDate) -> DateTime<Utc> {
        self.day_start(as_of + Days::new(1))
    }

    /// The `days`-day window ending on `as_of` (`days` ≥ 1).
    pub fn window(&self, as_of: NaiveDate, days: u32) -> Window {
        let days = days.max(1);
        let first_day = as_of - Days::new(u64::from(days - 1));
        Window {
            first_day,
            last_day: as_of,
            start: self.day_start(first_day),
            end: self.as_of_cutoff(as_of),
        }
    }
}

/// Parses an RFC 3339 timestamp that carries an offset (`Z` or `±hh:mm`).
pub fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc))
}

/// Parses a `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Result<NaiveDate> {
    let well_formed = s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-';
    well_formed
        .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| Error::Date { value: s.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }
    fn t(s: &str) -> DateTime<Utc> {
        parse_timestamp(s).unwrap()
    }

    #[test]
    fn midnight_in_shanghai_is_1600_utc() {
        let cal = BusinessCalendar::default();
        assert_eq!(cal.day_start(d("2026-01-16")), t("2026-01-15T16:00:00Z"));
        assert_eq!(cal.as_of_cutoff(d("2026-01-15")), t("2026-01-15T16:00:00Z"));
    }

    #[test]
    fn z_and_offset_around_midnight_bucket_by_business_day() {
        let cal = BusinessCalendar::default();
        let cases = [
            ("2026-01-15T23:59:59+08:00", "2026-01-15"),
            ("2026-01-15T15:59:59Z", "2026-01-15"),
            ("2026-01-16T00:00:00+08:00", "2026-01-16"),
            ("2026-01-15T16:00:00Z", "2026-01-16"),
            ("2026-01-15T16:30:00Z", "2026-01-16"),
            ("2026-01-16T01:30:00+09:00", "2026-01-16"),
            ("2026-01-15T11:30:00-05:00", "2026-01-16"),
        ];
        for (ts, day) in cases {
            assert_eq!(cal.business_date(t(ts)), d(day), "{ts}");
        }
    }

    #[test]
    fn window_covers_n_business_days_ending_on_as_of() {
        let cal = BusinessCalendar::default();
        let w = cal.window(d("2026-01-30"), 30);
        assert_eq!(w.first_day, d("2026-01-01"));
        assert_eq!(w.start, t("2025-12-31T16:00:00Z"));
        assert_eq!(w.end, t("2026-01-30T16:00:00Z"));
        assert!(w.contains(t("2026-01-01T00:00:00+08:00")));
        assert!(!w.contains(t("2025-12-31T23:59:59+08:00")));
        assert!(w.contains(t("2026-01-30T23:59:59+08:00")));
        assert!(!w.contains(t("2026-01-31T00:00:00+08:00")));
        assert_eq!(cal.window(d("2026-01-30"), 1).first_day, d("2026-01-30"));
    }

    #[test]
    fn other_zones_and_dst() {
        let ny = BusinessCalendar::new("America/New_York").unwrap();
        // 2026-03-08: clocks jump from 02:00 to 03:00; midnight still exists.
        assert_eq!(ny.day_start(d("2026-03-08")), t("2026-03-08T05:00:00Z"));
        assert_eq!(ny.day_start(d("2026-03-09")), t("2026-03-09T04:00:00Z"));
        assert!(BusinessCalendar::new("Mars/Olympus").is_err());
    }

    #[test]
    fn timestamps_need_an_offset_and_dates_a_strict_shape() {
        assert!(parse_timestamp("2026-01-05 10:00:00").is_err());
        assert!(parse_timestamp("2026-01-05T10:00:00").is_err());
        assert!(parse_timestamp("2026-13-05T10:00:00Z").is_err());
        assert!(parse_date("2026-02-30").is_err());
        assert!(parse_date("2026/01/05").is_err());
        assert!(parse_date("2026-1-5").is_err());
        assert_eq!(parse_date("2024-02-29").unwrap(), d("2024-02-29"));
    }
}
