//! Fuzzes the time expressions of SPEC §4 (`projections::when::parse`) and zone names
//! (`projections::when::parse_tz`) with arbitrary strings, as `?at=…&tz=…` and the
//! replay tool's `--at`/`--tz` receive them.
//!
//! Input: the first byte picks a zone (UTC, Europe/Berlin, America/New_York,
//! Asia/Kolkata +05:30, Pacific/Chatham +12:45/+13:45, Pacific/Apia (skipped a whole day),
//! America/Santiago (DST at midnight), Australia/Lord_Howe (30-minute DST)); the rest, if
//! UTF-8, is the expression, evaluated at a fixed now (2026-11-17T09:30:00Z) and also given
//! to `parse_tz` as a zone name.
//!
//! Properties: neither panics; a parsed expression's instant and day (in the zone it was
//! parsed in) exist without panicking; that day does not end before it starts, contains its
//! own close unless empty, and contains the instant when the expression named an instant.
#![no_main]

use ledger::Timestamp;
use libfuzzer_sys::fuzz_target;
use projections::when::{parse, parse_tz, Day, Tz, When};

/// 2026-11-17T09:30:00Z, a Tuesday.
const NOW: Timestamp = Timestamp(1_794_907_800_000_000);

const ZONES: [Tz; 8] = [
    Tz::UTC,
    Tz::Europe__Berlin,
    Tz::America__New_York,
    Tz::Asia__Kolkata,
    Tz::Pacific__Chatham,
    Tz::Pacific__Apia,
    Tz::America__Santiago,
    Tz::Australia__Lord_Howe,
];

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(expr) = std::str::from_utf8(rest) else {
        return;
    };
    let tz = ZONES[usize::from(first) % ZONES.len()];

    if let Ok(zone) = parse_tz(expr) {
        let _ = Day::containing(NOW, zone);
    }

    let Ok(when) = parse(expr, NOW, tz) else {
        return;
    };
    let _ = when.to_string();
    let instant = when.instant();
    if let Ok(day) = when.day(tz) {
        let _ = day.to_string();
        // A day is empty only where a zone skipped the whole date (Pacific/Apia 2011-12-30).
        assert!(day.start <= day.end, "{day} ends before it starts");
        if day.len_micros() > 0 {
            assert!(
                day.contains(day.close()),
                "{day} does not contain its close"
            );
        }
        if let When::Instant(t) = when {
            assert!(day.contains(t), "{day} does not contain {t}");
        }
    }
    let _ = Day::containing(instant, tz);
});
