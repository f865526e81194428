//! Values as a query sees them: a record's value for one field (borrowed, no allocation),
//! pre-typed query operands, exact mixed integer/float comparison, fast Date decoding and
//! the total order used for sorting.

use std::cmp::Ordering;

use ledger::Timestamp;
use serde_json::{Map, Number, Value};

/// A record's value for one field, borrowed from the record.
#[derive(Debug, Clone, Copy)]
pub(super) enum Val<'a> {
    /// The record has no value for the field.
    Missing,
    /// `objectId`.
    Str(&'a str),
    /// `createdAt` / `updatedAt`, in µs.
    Date(i64),
    /// A stored field value, in Parse's JSON encoding.
    Json(&'a Value),
}

/// A JSON number, compared exactly whether integral or not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Num {
    /// An integer (i64 or u64).
    Int(i128),
    /// Anything else.
    Float(f64),
}

impl Num {
    /// The number as a comparable value.
    pub(super) fn of(n: &Number) -> Num {
        if let Some(i) = n.as_i64() {
            Num::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Num::Int(i128::from(u))
        } else {
            Num::Float(n.as_f64().unwrap_or(0.0))
        }
    }

    /// Numeric order (1 == 1.0).
    pub(super) fn cmp(self, other: Num) -> Ordering {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a.cmp(&b),
            (Num::Float(a), Num::Float(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
            (Num::Int(a), Num::Float(b)) => int_float(a, b),
            (Num::Float(a), Num::Int(b)) => int_float(b, a).reverse(),
        }
    }
}

/// Compares an integer with a float exactly (no rounding of large integers).
fn int_float(i: i128, f: f64) -> Ordering {
    if f.is_nan() {
        return Ordering::Equal;
    }
    // 2^127, exactly representable.
    let lim = i128::MAX as f64;
    if f >= lim {
        return Ordering::Less;
    }
    if f < -lim {
        return Ordering::Greater;
    }
    let t = f.trunc();
    // |t| < 2^127 and t is integral, so the cast is exact.
    let ti = t as i128;
    match i.cmp(&ti) {
        Ordering::Equal if f > t => Ordering::Less,
        Ordering::Equal if f < t => Ordering::Greater,
        o => o,
    }
}

/// A query operand, typed and normalised once at parse time.
#[derive(Debug, Clone)]
pub(super) enum Operand {
    /// `null`: matches a missing value.
    Null,
    /// A string.
    Str(String),
    /// A number.
    Num(Num),
    /// A boolean.
    Bool(bool),
    /// A Date, as µs since the epoch.
    Date(i64),
    /// A Pointer (className canonical).
    Pointer {
        /// Its className.
        class: String,
        /// Its objectId.
        id: String,
    },
    /// A File, compared by name.
    File {
        /// Its name.
        name: String,
    },
    /// Any other JSON (an Object, or a whole Array), compared structurally.
    Json(Value),
}

impl Operand {
    /// Whether the value equals the operand (Dates by instant, Numbers numerically,
    /// Pointers by className and objectId, Files by name).
    pub(super) fn matches(&self, v: &Val<'_>) -> bool {
        match (self, v) {
            (Operand::Null, Val::Missing | Val::Json(Value::Null)) => true,
            (Operand::Str(s), Val::Str(x)) => s == x,
            (Operand::Str(s), Val::Json(Value::String(x))) => s == x,
            (Operand::Num(n), Val::Json(Value::Number(x))) => n.cmp(Num::of(x)).is_eq(),
            (Operand::Bool(b), Val::Json(Value::Bool(x))) => b == x,
            (Operand::Date(t), Val::Date(x)) => t == x,
            (Operand::Date(t), Val::Json(j)) => stored_date(j) == Some(*t),
            (Operand::Pointer { class, id }, Val::Json(Value::Object(m))) => {
                type_is(m, "Pointer")
                    && str_of(m, "objectId") == Some(id.as_str())
                    && str_of(m, "className") == Some(class.as_str())
            }
            (Operand::File { name }, Val::Json(Value::Object(m))) => {
                type_is(m, "File") && str_of(m, "name") == Some(name.as_str())
            }
            (Operand::Json(j), Val::Json(x)) => j == *x,
            _ => false,
        }
    }

    /// How the value compares with the operand (`Some(Less)`: value < operand), for
    /// Strings (byte order), Numbers, Booleans and Dates; `None` when the value is missing
    /// or of another type.
    pub(super) fn cmp_val(&self, v: &Val<'_>) -> Option<Ordering> {
        match (self, v) {
            (Operand::Str(s), Val::Str(x)) => Some(x.as_bytes().cmp(s.as_bytes())),
            (Operand::Str(s), Val::Json(Value::String(x))) => Some(x.as_bytes().cmp(s.as_bytes())),
            (Operand::Num(n), Val::Json(Value::Number(x))) => Some(Num::of(x).cmp(*n)),
            (Operand::Bool(b), Val::Json(Value::Bool(x))) => Some(x.cmp(b)),
            (Operand::Date(t), Val::Date(x)) => Some(x.cmp(t)),
            (Operand::Date(t), Val::Json(j)) => stored_date(j).map(|x| x.cmp(t)),
            _ => None,
        }
    }
}

/// Whether a JSON object has `"__type": t`.
pub(super) fn type_is(m: &Map<String, Value>, t: &str) -> bool {
    str_of(m, "__type") == Some(t)
}

/// A string member of a JSON object.
pub(super) fn str_of<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

/// The instant of a stored Parse Date (`{"__type": "Date", "iso": …}`), in µs.
pub(super) fn stored_date(v: &Value) -> Option<i64> {
    let m = v.as_object()?;
    if !type_is(m, "Date") {
        return None;
    }
    parse_iso(str_of(m, "iso")?)
}

/// Parses RFC 3339 text to µs since the epoch (sub-microsecond digits truncated). The
/// forms the ledger stores (`YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`) take a fast path without
/// allocation; anything else goes through [`Timestamp::parse_rfc3339`].
pub(super) fn parse_iso(s: &str) -> Option<i64> {
    fast_iso(s.as_bytes()).or_else(|| Timestamp::parse_rfc3339(s).map(|t| t.0))
}

fn fast_iso(s: &[u8]) -> Option<i64> {
    if s.len() < 20 || s.len() > 30 {
        return None;
    }
    let digit = |i: usize| -> Option<i64> {
        let c = *s.get(i)?;
        c.is_ascii_digit().then(|| i64::from(c - b'0'))
    };
    let two = |i: usize| -> Option<i64> { Some(digit(i)? * 10 + digit(i + 1)?) };
    if s[4] != b'-' || s[7] != b'-' || s[10] != b'T' || s[13] != b':' || s[16] != b':' {
        return None;
    }
    let year = two(0)? * 100 + two(2)?;
    let (month, day) = (two(5)?, two(8)?);
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if s[i] == b'.' {
        i += 1;
        let start = i;
        while let Some(d) = digit(i) {
            if i - start < 6 {
                micros = micros * 10 + d;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 || n > 9 {
            return None;
        }
        for _ in n..6 {
            micros *= 10;
        }
    }
    if i + 1 != s.len() || s[i] != b'Z' {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(secs * 1_000_000 + micros)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A Date in the form the ledger stores it: milliseconds when the instant is a whole
/// millisecond, microseconds otherwise.
pub(super) fn date_json(t: i64) -> Value {
    let iso = match Timestamp(t).to_datetime() {
        Some(dt) if t % 1000 == 0 => dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        Some(dt) => dt.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        None => Timestamp(t).to_rfc3339(),
    };
    serde_json::json!({"__type": "Date", "iso": iso})
}

/// A value's place in the sort order (MongoDB's: missing/null < numbers < strings <
/// pointers < objects < arrays < booleans < dates).
#[derive(Debug, Clone, Copy)]
pub(super) enum SortKey<'a> {
    Missing,
    Num(Num),
    Str(&'a str),
    Pointer(&'a str, &'a str),
    Object,
    Array,
    Bool(bool),
    Date(i64),
}

impl<'a> SortKey<'a> {
    /// The sort key of a value.
    pub(super) fn of(v: Val<'a>) -> SortKey<'a> {
        match v {
            Val::Missing => SortKey::Missing,
            Val::Str(s) => SortKey::Str(s),
            Val::Date(t) => SortKey::Date(t),
            Val::Json(j) => match j {
                Value::Null => SortKey::Missing,
                Value::Bool(b) => SortKey::Bool(*b),
                Value::Number(n) => SortKey::Num(Num::of(n)),
                Value::String(s) => SortKey::Str(s),
                Value::Array(_) => SortKey::Array,
                Value::Object(m) => match str_of(m, "__type") {
                    Some("Date") => stored_date(j).map_or(SortKey::Object, SortKey::Date),
                    Some("Pointer") => match (str_of(m, "className"), str_of(m, "objectId")) {
                        (Some(c), Some(id)) => SortKey::Pointer(c, id),
                        _ => SortKey::Object,
                    },
                    _ => SortKey::Object,
                },
            },
        }
    }

    fn rank(&self) -> u8 {
        match self {
            SortKey::Missing => 0,
            SortKey::Num(_) => 1,
            SortKey::Str(_) => 2,
            SortKey::Pointer(..) => 3,
            SortKey::Object => 4,
            SortKey::Array => 5,
            SortKey::Bool(_) => 6,
            SortKey::Date(_) => 7,
        }
    }

    /// The total order of sort keys.
    pub(super) fn cmp(&self, other: &SortKey<'_>) -> Ordering {
        match (self, other) {
            (SortKey::Num(a), SortKey::Num(b)) => a.cmp(*b),
            (SortKey::Str(a), SortKey::Str(b)) => a.cmp(b),
            (SortKey::Pointer(ac, ai), SortKey::Pointer(bc, bi)) => (ac, ai).cmp(&(bc, bi)),
            (SortKey::Bool(a), SortKey::Bool(b)) => a.cmp(b),
            (SortKey::Date(a), SortKey::Date(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fast_path_agrees_with_chrono_on_samples() {
        for s in [
            "2026-11-17T09:30:00.000000Z",
            "2026-11-17T09:30:00.000Z",
            "2026-11-17T09:30:00Z",
            "2024-02-29T23:59:59.999999Z",
            "1969-12-31T23:59:59.5Z",
            "1900-03-01T00:00:00.123456789Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
        ] {
            assert_eq!(
                fast_iso(s.as_bytes()),
                Timestamp::parse_rfc3339(s).map(|t| t.0),
                "{s}"
            );
        }
        for bad in [
            "2023-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-17T24:00:00Z",
            "2026-11-17T09:30:00.Z",
            "2026-11-17T09:30:00+01:00",
            "2026-11-17 09:30:00Z",
        ] {
            assert_eq!(fast_iso(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(
            parse_iso("2026-11-17T10:30:00+01:00"),
            parse_iso("2026-11-17T09:30:00Z")
        );
    }

    #[test]
    fn mixed_numbers_compare_exactly() {
        let big = Num::Int(i128::from(i64::MAX));
        assert_eq!(
            big.cmp(Num::Float(9.223_372_036_854_776e18)),
            Ordering::Less
        );
        assert_eq!(Num::Int(1).cmp(Num::Float(1.0)), Ordering::Equal);
        assert_eq!(Num::Int(1).cmp(Num::Float(1.5)), Ordering::Less);
        assert_eq!(Num::Int(-2).cmp(Num::Float(-1.5)), Ordering::Less);
        assert_eq!(Num::Int(-1).cmp(Num::Float(-1.5)), Ordering::Greater);
        assert_eq!(Num::Float(1e300).cmp(Num::Int(5)), Ordering::Greater);
        assert_eq!(Num::Float(-1e300).cmp(Num::Int(5)), Ordering::Less);
    }

    proptest! {
        #[test]
        fn fast_path_agrees_with_chrono(t in -62_135_596_800_000_000i64..253_402_300_799_999_999i64) {
            let ts = Timestamp(t);
            let micros = ts.to_rfc3339();
            prop_assert_eq!(fast_iso(micros.as_bytes()), Some(t));
            let stored = date_json(t);
            let iso = stored["iso"].as_str().unwrap_or_default();
            prop_assert_eq!(parse_iso(iso), Some(t));
        }

        #[test]
        fn int_float_order_is_consistent(i in any::<i64>(), f in -1e20f64..1e20f64) {
            let exact = (i as f64).partial_cmp(&f);
            let ours = Num::Int(i128::from(i)).cmp(Num::Float(f));
            // Where the f64 view of i is exact, both agree.
            if (i as f64) as i128 == i128::from(i) && exact != Some(Ordering::Equal) {
                prop_assert_eq!(Some(ours), exact);
            }
        }
    }
}
