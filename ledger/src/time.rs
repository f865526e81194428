//! Recorded time: a UTC instant in microseconds, and the clock the ledger reads it from.
//!
//! The ledger never reads the wall clock itself: a [`Clock`] is passed in, so tests and
//! test vectors can pin time. Recorded times never decrease along a chain; the appender
//! enforces that, not the clock.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// A UTC instant: microseconds since 1970-01-01T00:00:00Z. This is the exact value hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Microseconds since the Unix epoch.
    pub fn micros(self) -> i64 {
        self.0
    }

    /// The instant as a chrono UTC date-time (`None` only outside chrono's range).
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::<Utc>::from_timestamp_micros(self.0)
    }

    /// From a chrono date-time, truncated to microseconds.
    pub fn from_datetime(t: DateTime<Utc>) -> Self {
        Timestamp(t.timestamp_micros())
    }

    /// RFC 3339 with microseconds and `Z`, e.g. `2026-11-17T09:30:00.000000Z`.
    pub fn to_rfc3339(self) -> String {
        match self.to_datetime() {
            Some(t) => t.to_rfc3339_opts(SecondsFormat::Micros, true),
            None => format!("@{}us", self.0),
        }
    }

    /// Whether `text` is [`Timestamp::to_rfc3339`] of this instant, checked without
    /// building the string for years 1 to 9999 (the export reader checks it on every line).
    pub fn is_rfc3339(self, text: &str) -> bool {
        const DAY_US: i64 = 86_400_000_000;
        let (y, m, d) = civil_from_days(self.0.div_euclid(DAY_US));
        if !(1..=9999).contains(&y) {
            return text == self.to_rfc3339();
        }
        let of_day = self.0.rem_euclid(DAY_US);
        let secs = of_day / 1_000_000;
        // YYYY-MM-DDTHH:MM:SS.ffffffZ
        let mut want = *b"0000-00-00T00:00:00.000000Z";
        for (at, len, n) in [
            (0, 4, y),
            (5, 2, m),
            (8, 2, d),
            (11, 2, secs / 3600),
            (14, 2, secs / 60 % 60),
            (17, 2, secs % 60),
            (20, 6, of_day % 1_000_000),
        ] {
            let mut n = n;
            for digit in want[at..at + len].iter_mut().rev() {
                *digit = b'0' + (n % 10) as u8;
                n /= 10;
            }
        }
        text.as_bytes() == want
    }

    /// Parses RFC 3339 (any offset); sub-microsecond digits are truncated.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| Timestamp::from_datetime(t.with_timezone(&Utc)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// The proleptic Gregorian (year, month, day) of a day counted from 1970-01-01 (H.
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Where recorded time comes from.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The server clock (`SystemTime`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    // The one place the ledger reads the wall clock (clippy.toml forbids it elsewhere).
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(Utc::now())
    }
}

/// A clock that only moves when told to: for tests and test vectors.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock standing at `t`.
    pub fn new(t: Timestamp) -> Self {
        ManualClock(AtomicI64::new(t.0))
    }
    /// Moves the clock to `t` (backwards too: the ledger must cope).
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
    /// Moves the clock forward by `micros`.
    pub fn advance(&self, micros: i64) {
        self.0.fetch_add(micros, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_at_microsecond_precision() {
        let t = Timestamp(1_795_435_200_123_456);
        let s = t.to_rfc3339();
        assert_eq!(s, "2026-11-23T12:00:00.123456Z");
        assert_eq!(Timestamp::parse_rfc3339(&s), Some(t));
        assert_eq!(
            Timestamp::parse_rfc3339("2026-11-23T13:00:00.123456+01:00"),
            Some(t)
        );
        assert_eq!(Timestamp::parse_rfc3339("2026-13-01"), None);
    }

    proptest::proptest! {
        /// The check without a string agrees with comparing to the formatted string, for
        /// instants across (and beyond) years 1 to 9999 and texts one unit apart.
        #[test]
        fn is_rfc3339_agrees_with_the_formatted_text(
            us in -70_000_000_000_000_000i64..300_000_000_000_000_000,
            delta in proptest::sample::select(vec![0i64, 1, -1, 1_000_000, 86_400_000_000]),
        ) {
            let t = Timestamp(us);
            let text = Timestamp(us.saturating_add(delta)).to_rfc3339();
            proptest::prop_assert_eq!(t.is_rfc3339(&text), text == t.to_rfc3339());
            proptest::prop_assert!(t.is_rfc3339(&t.to_rfc3339()));
        }
    }

    #[test]
    fn is_rfc3339_at_the_edges_of_days_and_years() {
        for us in [
            0,
            -1,
            1,
            951_782_400_000_000 - 1,
            253_402_300_799_999_999,
            -62_135_596_800_000_000,
            -62_135_596_800_000_001,
            253_402_300_800_000_000,
        ] {
            let t = Timestamp(us);
            assert!(t.is_rfc3339(&t.to_rfc3339()), "{us}: {}", t.to_rfc3339());
            assert!(!t.is_rfc3339(&Timestamp(us + 1).to_rfc3339()), "{us}");
        }
    }
}
