//! Time expressions: what "last Tuesday" or "2026-11-17" means, relative to a given now and
//! IANA time zone.
//!
//! This module owns the parsing of the user-facing time expressions of SPEC §4 (RFC 3339,
//! local date-times, dates, `now`, `today`, `yesterday`, `last <weekday>`, `N <unit>s ago`)
//! into a [`When`], and the calendar-day arithmetic behind them: a [`Day`] is a local date in a
//! zone together with its exact UTC bounds `[start, end)`, correct across daylight-saving
//! changes, odd offsets (+05:30, +12:45) and the rare zones whose clocks skip midnight.
//!
//! Nothing here reads the wall clock: "now" is always passed in, so tests pin it.

use std::fmt;

use chrono::{
    DateTime, Datelike, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta,
    TimeZone, Utc, Weekday,
};
use ledger::Timestamp;

pub use chrono_tz::Tz;

/// The accepted forms, as listed in [`WhenError::Unrecognized`] messages.
pub const ACCEPTED: &str = "RFC 3339 (2026-11-17T09:30:00Z), a date (2026-11-17), \
     a local time (2026-11-17T09:30), now, today, yesterday, last <weekday>, \
     or N seconds|minutes|hours|days|weeks ago";

/// The largest `N` accepted in `N <unit>s ago`.
pub const MAX_AGO: u64 = 100_000;

const MICROS_PER_SECOND: i64 = 1_000_000;

/// Why a time expression or zone name was rejected. Every message names the offending input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhenError {
    /// The expression is none of the accepted forms.
    #[error("unrecognised time \"{input}\": use {accepted}")]
    Unrecognized {
        /// The expression as given (trimmed).
        input: String,
        /// The accepted forms ([`ACCEPTED`]).
        accepted: &'static str,
    },
    /// The zone name is not an IANA time zone.
    #[error("unknown time zone \"{0}\": use an IANA name such as Europe/Berlin or UTC")]
    UnknownZone(String),
    /// A date-shaped expression that names no calendar day (`2026-02-30`, `2026-13-01`).
    #[error("invalid date \"{input}\": no such calendar day")]
    InvalidDate {
        /// The expression as given (trimmed).
        input: String,
    },
    /// A date-time-shaped expression whose time of day or UTC offset does not exist
    /// (`2026-11-17T25:00`, `...+24:00`).
    #[error(
        "invalid time \"{input}\": no such time of day or UTC offset \
         (hours 00-23, minutes and seconds 00-59)"
    )]
    InvalidTime {
        /// The expression as given (trimmed).
        input: String,
    },
    /// A local date-time the zone's clocks skipped (a daylight-saving gap).
    #[error(
        "local time \"{input}\" does not exist in {tz}: the clocks skipped it \
         (daylight-saving change); give an offset or a time outside the gap"
    )]
    NonexistentLocalTime {
        /// The expression as given (trimmed).
        input: String,
        /// The zone it was interpreted in.
        tz: Tz,
    },
    /// The expression denotes a time outside the representable range, or `N` in
    /// `N <unit>s ago` exceeds [`MAX_AGO`].
    #[error("time \"{input}\" is out of range: {reason}")]
    OutOfRange {
        /// The expression (or date) as given.
        input: String,
        /// What limit was exceeded.
        reason: &'static str,
    },
}

/// Parses an IANA zone name ("Europe/Berlin", "UTC"); surrounding whitespace is ignored and
/// an exact-case match is preferred, but case is not required. The error names the input.
pub fn parse_tz(name: &str) -> Result<Tz, WhenError> {
    let trimmed = name.trim();
    if let Ok(tz) = trimmed.parse::<Tz>() {
        return Ok(tz);
    }
    chrono_tz::TZ_VARIANTS
        .iter()
        .copied()
        .find(|tz| !trimmed.is_empty() && tz.name().eq_ignore_ascii_case(trimmed))
        .ok_or_else(|| WhenError::UnknownZone(name.to_string()))
}

/// A calendar day in a zone, with its bounds as UTC instants: `[start, end)`.
///
/// `start` is the first instant whose local date is `date` (local midnight, or the first
/// existing local time after it when the clocks skip midnight); `end` is the start of the next
/// day. A day is therefore 23 or 25 hours long across daylight-saving changes, and is empty
/// (`start == end`) in the rare case that a zone skipped the whole date (Pacific/Apia,
/// 2011-12-30).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Day {
    /// The local calendar date.
    pub date: NaiveDate,
    /// The zone the date is local to.
    pub tz: Tz,
    /// The first instant of the day (inclusive).
    pub start: Timestamp,
    /// The first instant of the next day (exclusive).
    pub end: Timestamp,
}

impl Day {
    /// The day `date` in `tz`, with its UTC bounds.
    pub fn new(date: NaiveDate, tz: Tz) -> Result<Day, WhenError> {
        let out_of_range = || WhenError::OutOfRange {
            input: format!("{date} ({tz})"),
            reason: "the day's bounds are not representable",
        };
        let next = date.succ_opt().ok_or_else(out_of_range)?;
        let start = start_of(date, tz).ok_or_else(out_of_range)?;
        let end = start_of(next, tz).ok_or_else(out_of_range)?;
        Ok(Day {
            date,
            tz,
            start,
            end,
        })
    }

    /// The calendar day in `tz` containing the instant `t`.
    pub fn containing(t: Timestamp, tz: Tz) -> Result<Day, WhenError> {
        let out_of_range = || WhenError::OutOfRange {
            input: t.to_rfc3339(),
            reason: "the instant has no calendar day",
        };
        let utc = t.to_datetime().ok_or_else(out_of_range)?;
        let mut day = Day::new(utc.with_timezone(&tz).date_naive(), tz)?;
        // The local date of `t` names its day, except where a zone's clocks went back across
        // midnight and the local date briefly repeated an earlier one: the bounds decide.
        for _ in 0..4 {
            if day.contains(t) {
                return Ok(day);
            }
            let date = if t < day.start {
                day.date.pred_opt()
            } else {
                day.date.succ_opt()
            };
            day = Day::new(date.ok_or_else(out_of_range)?, tz)?;
        }
        if day.contains(t) {
            Ok(day)
        } else {
            Err(out_of_range())
        }
    }

    /// Whether `t` falls within the day: `start <= t < end`.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }

    /// The day's length in microseconds (`end - start`; 23 or 25 hours across DST changes).
    pub fn len_micros(&self) -> i64 {
        self.end.0.saturating_sub(self.start.0)
    }

    /// The last instant of the day (`end - 1µs`): the records "at the close of the day".
    pub fn close(&self) -> Timestamp {
        Timestamp(self.end.0.saturating_sub(1))
    }
}

impl fmt::Display for Day {
    /// `2026-11-17 (Europe/Berlin)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.date, self.tz.name())
    }
}

/// What an expression denotes: an exact instant, or a whole calendar day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum When {
    /// An exact instant (`now`, RFC 3339, a local date-time, `N <unit>s ago`).
    Instant(Timestamp),
    /// A whole calendar day (`2026-11-17`, `today`, `yesterday`, `last <weekday>`).
    Day(Day),
}

impl When {
    /// The instant a point-in-time read uses: an instant itself; for a day, the end of the day
    /// (its last microsecond, `end - 1µs`), i.e. "as the records stood at the close of that
    /// day".
    pub fn instant(&self) -> Timestamp {
        match self {
            When::Instant(t) => *t,
            When::Day(day) => day.close(),
        }
    }

    /// The day an expression names: a day itself (whatever `tz` is); for an instant, the
    /// calendar day in `tz` containing it.
    pub fn day(&self, tz: Tz) -> Result<Day, WhenError> {
        match self {
            When::Instant(t) => Day::containing(*t, tz),
            When::Day(day) => Ok(*day),
        }
    }
}

impl fmt::Display for When {
    /// An instant as RFC 3339 UTC with microseconds; a day as `2026-11-17 (Europe/Berlin)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            When::Instant(t) => write!(f, "{t}"),
            When::Day(day) => write!(f, "{day}"),
        }
    }
}

/// Parses a time expression relative to `now` in zone `tz`.
///
/// Accepted forms (case-insensitive, surrounding whitespace ignored):
/// - `now` → [`When::Instant`]`(now)`;
/// - RFC 3339 with `Z` or an offset (`2026-11-17T09:30:00Z`,
///   `2026-11-17T09:30:00.123456+01:00`; digits past microseconds are truncated) → an instant;
/// - a local date-time `2026-11-17T09:30[:00[.ffffff]]` (or with a space for `T`) → the instant
///   it names in `tz`; a time skipped by a DST gap is an error, an ambiguous time in a DST fold
///   is the earlier instant;
/// - `YYYY-MM-DD` → that [`When::Day`] in `tz`;
/// - `today`, `yesterday` → the day (in `tz`) of `now`, or the one before;
/// - `last monday` … `last sunday` (or `last mon` … `last sun`) → the most recent such day
///   strictly before today in `tz` (on a Tuesday, `last tuesday` is 7 days ago);
/// - `N second|minute|hour|day|week[s] ago`, `0 <= N <=` [`MAX_AGO`] → the instant
///   `now - N·unit` in exact durations (a day is 24 hours here).
///
/// Anything else is [`WhenError::Unrecognized`], listing the accepted forms.
pub fn parse(expr: &str, now: Timestamp, tz: Tz) -> Result<When, WhenError> {
    let input = expr.trim();
    let lower = input.to_ascii_lowercase();
    let unrecognized = || WhenError::Unrecognized {
        input: input.to_string(),
        accepted: ACCEPTED,
    };
    let words: Vec<&str> = lower.split_whitespace().collect();
    match words.as_slice() {
        ["now"] => Ok(When::Instant(now)),
        ["today"] => Ok(When::Day(today(input, now, tz)?)),
        ["yesterday"] => {
            let today = today(input, now, tz)?;
            let date = today.date.pred_opt().ok_or_else(|| out_of_range(input))?;
            Ok(When::Day(Day::new(date, tz)?))
        }
        ["last", name] => {
            let weekday = parse_weekday(name).ok_or_else(unrecognized)?;
            let today = today(input, now, tz)?;
            let back = (today.date.weekday().days_since(weekday) + 6) % 7 + 1;
            let date = today
                .date
                .checked_sub_days(chrono::Days::new(u64::from(back)))
                .ok_or_else(|| out_of_range(input))?;
            Ok(When::Day(Day::new(date, tz)?))
        }
        [n, unit, "ago"] if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            let unit_micros = unit_micros(unit).ok_or_else(unrecognized)?;
            let too_many = || WhenError::OutOfRange {
                input: input.to_string(),
                reason: "N in \"N <unit>s ago\" may be at most 100000",
            };
            let n: u64 = n.parse().map_err(|_| too_many())?;
            if n > MAX_AGO {
                return Err(too_many());
            }
            let back = i64::try_from(n)
                .ok()
                .and_then(|n| n.checked_mul(unit_micros))
                .ok_or_else(too_many)?;
            let t = now
                .0
                .checked_sub(back)
                .map(Timestamp)
                .filter(|t| t.to_datetime().is_some())
                .ok_or_else(|| out_of_range(input))?;
            Ok(When::Instant(t))
        }
        _ => parse_date_or_time(input, tz)?.ok_or_else(unrecognized),
    }
}

fn out_of_range(input: &str) -> WhenError {
    WhenError::OutOfRange {
        input: input.to_string(),
        reason: "it is outside the representable range of times",
    }
}

/// The day of `now` in `tz`.
fn today(input: &str, now: Timestamp, tz: Tz) -> Result<Day, WhenError> {
    let now = now.to_datetime().ok_or_else(|| out_of_range(input))?;
    Day::new(now.with_timezone(&tz).date_naive(), tz)
}

fn parse_weekday(name: &str) -> Option<Weekday> {
    Some(match name {
        "monday" | "mon" => Weekday::Mon,
        "tuesday" | "tue" => Weekday::Tue,
        "wednesday" | "wed" => Weekday::Wed,
        "thursday" | "thu" => Weekday::Thu,
        "friday" | "fri" => Weekday::Fri,
        "saturday" | "sat" => Weekday::Sat,
        "sunday" | "sun" => Weekday::Sun,
        _ => return None,
    })
}

fn unit_micros(unit: &str) -> Option<i64> {
    let seconds = match unit.strip_suffix('s').unwrap_or(unit) {
        "second" => 1,
        "minute" => 60,
        "hour" => 60 * 60,
        "day" => 24 * 60 * 60,
        "week" => 7 * 24 * 60 * 60,
        _ => return None,
    };
    Some(seconds * MICROS_PER_SECOND)
}

/// A run of exactly `n` ASCII digits at the front of `s`, as a number, and the rest.
fn take_digits(s: &[u8], n: usize) -> Option<(u32, &[u8])> {
    let (head, rest) = (s.get(..n)?, s.get(n..)?);
    let mut value = 0u32;
    for &b in head {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(b - b'0');
    }
    Some((value, rest))
}

fn take_byte<'a>(s: &'a [u8], expected: &[u8]) -> Option<(u8, &'a [u8])> {
    match s.split_first() {
        Some((&b, rest)) if expected.contains(&b) => Some((b, rest)),
        _ => None,
    }
}

/// The written fields of a date or date-time expression, before validation.
struct Fields {
    year: i32,
    month: u32,
    day: u32,
    /// Hour, minute, second, nanosecond; `None` for a bare date.
    time: Option<(u32, u32, u32, u32)>,
    /// The UTC offset as (sign, hours, minutes), `Z` being `(1, 0, 0)`; `None` for a local
    /// time.
    offset: Option<(i32, u32, u32)>,
}

/// Splits `YYYY-MM-DD[(T| )hh:mm[:ss[.f{1,9}]][Z|±hh:mm]]`, or `None` if the shape differs.
fn split_fields(input: &str) -> Option<Fields> {
    let s = input.as_bytes();
    let (year, s) = take_digits(s, 4)?;
    let (_, s) = take_byte(s, b"-")?;
    let (month, s) = take_digits(s, 2)?;
    let (_, s) = take_byte(s, b"-")?;
    let (day, s) = take_digits(s, 2)?;
    let year = i32::try_from(year).ok()?;
    if s.is_empty() {
        return Some(Fields {
            year,
            month,
            day,
            time: None,
            offset: None,
        });
    }
    let (_, s) = take_byte(s, b"Tt ")?;
    let (hour, s) = take_digits(s, 2)?;
    let (_, s) = take_byte(s, b":")?;
    let (minute, mut s) = take_digits(s, 2)?;
    let (mut second, mut nano) = (0, 0);
    if let Some((_, rest)) = take_byte(s, b":") {
        let (sec, rest) = take_digits(rest, 2)?;
        second = sec;
        s = rest;
        if let Some((_, rest)) = take_byte(s, b".") {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || digits > 9 {
                return None;
            }
            let (fraction, rest) = take_digits(rest, digits)?;
            nano = fraction * 10u32.pow(9 - digits as u32);
            s = rest;
        }
    }
    let offset = match s.split_first() {
        None => None,
        Some((b'Z' | b'z', [])) => Some((1, 0, 0)),
        Some((&sign @ (b'+' | b'-'), rest)) => {
            let (hours, rest) = take_digits(rest, 2)?;
            let (_, rest) = take_byte(rest, b":")?;
            let (minutes, rest) = take_digits(rest, 2)?;
            if !rest.is_empty() {
                return None;
            }
            Some((if sign == b'+' { 1 } else { -1 }, hours, minutes))
        }
        Some(_) => return None,
    };
    Some(Fields {
        year,
        month,
        day,
        time: Some((hour, minute, second, nano)),
        offset,
    })
}

/// A date, a local date-time or an RFC 3339 instant; `Ok(None)` if `input` has none of
/// those shapes.
fn parse_date_or_time(input: &str, tz: Tz) -> Result<Option<When>, WhenError> {
    let Some(fields) = split_fields(input) else {
        return Ok(None);
    };
    let date = NaiveDate::from_ymd_opt(fields.year, fields.month, fields.day).ok_or_else(|| {
        WhenError::InvalidDate {
            input: input.to_string(),
        }
    })?;
    let Some((hour, minute, second, nano)) = fields.time else {
        return Ok(Some(When::Day(Day::new(date, tz)?)));
    };
    let invalid_time = || WhenError::InvalidTime {
        input: input.to_string(),
    };
    // No leap seconds: second 60 is rejected, and nanos are always below 1e9.
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nano)
        .filter(|_| second < 60)
        .ok_or_else(invalid_time)?;
    let local = date.and_time(time);
    let utc: DateTime<Utc> = match fields.offset {
        Some((sign, hours, minutes)) => {
            if hours > 23 || minutes > 59 {
                return Err(invalid_time());
            }
            let seconds = i32::try_from(hours * 3600 + minutes * 60).map_err(|_| invalid_time())?;
            let offset = FixedOffset::east_opt(sign * seconds).ok_or_else(invalid_time)?;
            match offset.from_local_datetime(&local) {
                LocalResult::Single(t) => t.with_timezone(&Utc),
                _ => return Err(out_of_range(input)),
            }
        }
        None => match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            LocalResult::Ambiguous(a, b) => a.with_timezone(&Utc).min(b.with_timezone(&Utc)),
            LocalResult::None => {
                return Err(WhenError::NonexistentLocalTime {
                    input: input.to_string(),
                    tz,
                })
            }
        },
    };
    Ok(Some(When::Instant(Timestamp::from_datetime(utc))))
}

/// The earliest instant showing local time `local` in `tz`, if that local time exists.
fn earliest(local: NaiveDateTime, tz: Tz) -> Option<Timestamp> {
    let utc = match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.with_timezone(&Utc).min(b.with_timezone(&Utc)),
        LocalResult::None => return None,
    };
    Some(Timestamp::from_datetime(utc))
}

/// The first instant whose local date is `date` in `tz`: local midnight, or, when the clocks
/// skip midnight, the first local time that exists after it (possibly on a later date, when a
/// whole date was skipped).
fn start_of(date: NaiveDate, tz: Tz) -> Option<Timestamp> {
    let midnight = date.and_time(NaiveTime::MIN);
    if let Some(t) = earliest(midnight, tz) {
        return Some(t);
    }
    // Midnight falls in a gap. Step to the first existing quarter hour (gaps are at most a
    // day long: Pacific/Apia skipped 2011-12-30), then bisect to the second: zone offsets and
    // transitions are whole seconds.
    let step = TimeDelta::minutes(15);
    let mut missing = midnight;
    let mut found = None;
    for _ in 0..(2 * 24 * 4) {
        let next = missing.checked_add_signed(step)?;
        if earliest(next, tz).is_some() {
            found = Some(next);
            break;
        }
        missing = next;
    }
    let mut exists = found?;
    loop {
        let gap = exists.signed_duration_since(missing).num_seconds();
        if gap <= 1 {
            break;
        }
        let mid = missing.checked_add_signed(TimeDelta::seconds(gap / 2))?;
        if earliest(mid, tz).is_some() {
            exists = mid;
        } else {
            missing = mid;
        }
    }
    earliest(exists, tz)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).expect("valid RFC 3339 in test")
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date in test")
    }

    #[test]
    fn fields_split_by_shape() {
        assert!(split_fields("2026-11-17").is_some());
        assert!(split_fields("2026-11-17T09:30").is_some());
        assert!(split_fields("2026-11-17 09:30:00.1+05:30").is_some());
        assert!(split_fields("2026-11-17T09:30:00.").is_none());
        assert!(split_fields("2026-11-17T09:30:00.1234567890Z").is_none());
        assert!(split_fields("2026-11-17T09:30Zx").is_none());
        assert!(split_fields("2026-11-17T9:30").is_none());
        assert!(split_fields("26-11-17").is_none());
    }

    #[test]
    fn fraction_digits_scale_to_nanoseconds() {
        let t = parse("2026-11-17T09:30:00.5Z", Timestamp(0), Tz::UTC).expect("parses");
        assert_eq!(t, When::Instant(ts("2026-11-17T09:30:00.5Z")));
        let t = parse("2026-11-17T09:30:00.123456789Z", Timestamp(0), Tz::UTC).expect("parses");
        assert_eq!(t, When::Instant(ts("2026-11-17T09:30:00.123456Z")));
    }

    #[test]
    fn start_of_finds_gap_end_to_the_second() {
        // Asia/Beirut: 2026-03-29 00:00 +02 jumps to 01:00 +03.
        let beirut = Tz::Asia__Beirut;
        assert_eq!(
            start_of(date(2026, 3, 29), beirut),
            Some(ts("2026-03-28T22:00:00Z"))
        );
    }
}
