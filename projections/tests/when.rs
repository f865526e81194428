//! Time expressions: every accepted form, day bounds across DST and odd offsets, and the
//! error cases, with now and the zone pinned.

/// Wrapped in `mod when` so that `cargo test -p projections when` selects these tests.
mod when {
    use chrono::{NaiveDate, TimeZone, Utc};
    use ledger::Timestamp;
    use projections::when::{parse, parse_tz, Day, Tz, When, WhenError, ACCEPTED};
    use proptest::prelude::*;

    const HOUR: i64 = 3_600_000_000;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).expect("valid RFC 3339 in test")
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date in test")
    }

    fn day(y: i32, m: u32, d: u32, tz: Tz) -> Day {
        Day::new(date(y, m, d), tz).expect("day in range")
    }

    fn berlin() -> Tz {
        parse_tz("Europe/Berlin").expect("known zone")
    }

    /// Tuesday 2026-11-17 09:30 in Berlin.
    fn now() -> Timestamp {
        ts("2026-11-17T08:30:00Z")
    }

    fn ok(expr: &str, now: Timestamp, tz: Tz) -> When {
        parse(expr, now, tz).unwrap_or_else(|e| panic!("{expr:?} should parse: {e}"))
    }

    fn err(expr: &str, now: Timestamp, tz: Tz) -> WhenError {
        match parse(expr, now, tz) {
            Ok(w) => panic!("{expr:?} should not parse, got {w:?}"),
            Err(e) => e,
        }
    }

    // ---- zones ---------------------------------------------------------------------------------

    #[test]
    fn parse_tz_accepts_iana_names() {
        assert_eq!(parse_tz("Europe/Berlin"), Ok(Tz::Europe__Berlin));
        assert_eq!(parse_tz("UTC"), Ok(Tz::UTC));
        assert_eq!(parse_tz(" Asia/Kolkata "), Ok(Tz::Asia__Kolkata));
        assert_eq!(parse_tz("europe/berlin"), Ok(Tz::Europe__Berlin));
    }

    #[test]
    fn parse_tz_rejects_unknown_names() {
        let e = parse_tz("Mars/Base").expect_err("no such zone");
        assert_eq!(e, WhenError::UnknownZone("Mars/Base".into()));
        assert_eq!(
            e.to_string(),
            "unknown time zone \"Mars/Base\": use an IANA name such as Europe/Berlin or UTC"
        );
        assert!(matches!(parse_tz(""), Err(WhenError::UnknownZone(n)) if n.is_empty()));
        assert!(matches!(parse_tz("+01:00"), Err(WhenError::UnknownZone(_))));
    }

    // ---- accepted forms ------------------------------------------------------------------------

    #[test]
    fn now_is_the_given_instant() {
        assert_eq!(ok("now", now(), berlin()), When::Instant(now()));
        assert_eq!(ok("  NOW\n", now(), berlin()), When::Instant(now()));
    }

    #[test]
    fn rfc3339_with_offset_or_z_is_an_instant() {
        let tz = berlin();
        assert_eq!(
            ok("2026-11-17T09:30:00Z", now(), tz),
            When::Instant(ts("2026-11-17T09:30:00Z"))
        );
        assert_eq!(
            ok("2026-11-17T09:30:00.123456+01:00", now(), tz),
            When::Instant(ts("2026-11-17T08:30:00.123456Z"))
        );
        assert_eq!(
            ok("2026-11-17t09:30:00z", now(), tz),
            When::Instant(ts("2026-11-17T09:30:00Z"))
        );
        assert_eq!(
            ok("2026-11-17 09:30:00-05:00", now(), tz),
            When::Instant(ts("2026-11-17T14:30:00Z"))
        );
        // The zone does not matter when an offset is given.
        assert_eq!(
            ok("2026-11-17T09:30:00Z", now(), Tz::Asia__Kolkata),
            When::Instant(ts("2026-11-17T09:30:00Z"))
        );
    }

    #[test]
    fn local_date_time_is_interpreted_in_the_zone() {
        let tz = berlin();
        let want = When::Instant(ts("2026-11-17T08:30:00Z"));
        assert_eq!(ok("2026-11-17T09:30", now(), tz), want);
        assert_eq!(ok("2026-11-17 09:30", now(), tz), want);
        assert_eq!(ok("2026-11-17T09:30:00", now(), tz), want);
        assert_eq!(
            ok("2026-11-17T09:30:00.000001", now(), tz),
            When::Instant(ts("2026-11-17T08:30:00.000001Z"))
        );
        // Summer time: +02:00.
        assert_eq!(
            ok("2026-07-01T12:00", now(), tz),
            When::Instant(ts("2026-07-01T10:00:00Z"))
        );
        assert_eq!(
            ok("2026-11-17T09:30", now(), Tz::Asia__Kolkata),
            When::Instant(ts("2026-11-17T04:00:00Z"))
        );
    }

    #[test]
    fn ambiguous_local_time_in_a_fold_is_the_earlier_instant() {
        // Berlin 2026-10-25: 03:00 CEST goes back to 02:00 CET, so 02:30 happens twice.
        assert_eq!(
            ok("2026-10-25T02:30", now(), berlin()),
            When::Instant(ts("2026-10-25T00:30:00Z"))
        );
    }

    #[test]
    fn local_time_in_a_spring_gap_is_an_error() {
        // Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST.
        let e = err("2026-03-29T02:30", now(), berlin());
        assert_eq!(
            e,
            WhenError::NonexistentLocalTime {
                input: "2026-03-29T02:30".into(),
                tz: Tz::Europe__Berlin
            }
        );
        let msg = e.to_string();
        assert!(msg.contains("\"2026-03-29T02:30\""), "{msg}");
        assert!(msg.contains("does not exist in Europe/Berlin"), "{msg}");
        // Either side of the gap is fine.
        assert_eq!(
            ok("2026-03-29T01:59:59", now(), berlin()),
            When::Instant(ts("2026-03-29T00:59:59Z"))
        );
        assert_eq!(
            ok("2026-03-29T03:00", now(), berlin()),
            When::Instant(ts("2026-03-29T01:00:00Z"))
        );
    }

    #[test]
    fn a_date_is_that_day_in_the_zone() {
        let tz = berlin();
        let w = ok("2026-11-17", now(), tz);
        assert_eq!(w, When::Day(day(2026, 11, 17, tz)));
        let When::Day(d) = w else { panic!("a day") };
        assert_eq!(d.start, ts("2026-11-16T23:00:00Z"));
        assert_eq!(d.end, ts("2026-11-17T23:00:00Z"));
        assert_eq!(d.to_string(), "2026-11-17 (Europe/Berlin)");
        assert_eq!(w.to_string(), "2026-11-17 (Europe/Berlin)");
    }

    #[test]
    fn today_and_yesterday_are_days_of_now_in_the_zone() {
        let tz = berlin();
        assert_eq!(ok("today", now(), tz), When::Day(day(2026, 11, 17, tz)));
        assert_eq!(ok("Yesterday", now(), tz), When::Day(day(2026, 11, 16, tz)));
    }

    #[test]
    fn yesterday_across_month_and_year_boundaries() {
        let tz = berlin();
        // 2027-01-01 00:30 in Berlin is still 2026-12-31 in UTC.
        let new_year = ts("2026-12-31T23:30:00Z");
        assert_eq!(ok("today", new_year, tz), When::Day(day(2027, 1, 1, tz)));
        assert_eq!(
            ok("yesterday", new_year, tz),
            When::Day(day(2026, 12, 31, tz))
        );
        // In UTC the same instant is a day earlier.
        assert_eq!(
            ok("yesterday", new_year, Tz::UTC),
            When::Day(day(2026, 12, 30, Tz::UTC))
        );
        // Month boundary, in a non-leap year: 2027-03-01 → 2027-02-28.
        let march = ts("2027-03-01T10:00:00Z");
        assert_eq!(ok("yesterday", march, tz), When::Day(day(2027, 2, 28, tz)));
        // ... and in a leap year: 2028-03-01 → 2028-02-29.
        let march = ts("2028-03-01T10:00:00Z");
        assert_eq!(ok("yesterday", march, tz), When::Day(day(2028, 2, 29, tz)));
    }

    #[test]
    fn last_weekday_is_strictly_before_today() {
        let tz = berlin();
        // now() is Tuesday 2026-11-17.
        let cases = [
            ("last monday", date(2026, 11, 16)),
            ("last tuesday", date(2026, 11, 10)),
            ("last wednesday", date(2026, 11, 11)),
            ("last thursday", date(2026, 11, 12)),
            ("last friday", date(2026, 11, 13)),
            ("last saturday", date(2026, 11, 14)),
            ("last sunday", date(2026, 11, 15)),
            ("last mon", date(2026, 11, 16)),
            ("last tue", date(2026, 11, 10)),
            ("last wed", date(2026, 11, 11)),
            ("last thu", date(2026, 11, 12)),
            ("last fri", date(2026, 11, 13)),
            ("last sat", date(2026, 11, 14)),
            ("last sun", date(2026, 11, 15)),
            ("  LAST   Tuesday ", date(2026, 11, 10)),
        ];
        for (expr, want) in cases {
            assert_eq!(
                ok(expr, now(), tz),
                When::Day(Day::new(want, tz).expect("in range")),
                "{expr}"
            );
        }
    }

    #[test]
    fn last_tuesday_near_midnight_in_a_zone_ahead_of_utc() {
        let tokyo = Tz::Asia__Tokyo; // +09:00
                                     // Tuesday 2026-11-17 23:59:59.999999 in Tokyo.
        let tue = ts("2026-11-17T14:59:59.999999Z");
        assert_eq!(
            ok("last tuesday", tue, tokyo),
            When::Day(day(2026, 11, 10, tokyo))
        );
        // One microsecond later it is Wednesday in Tokyo (still Tuesday in UTC).
        let wed = ts("2026-11-17T15:00:00Z");
        assert_eq!(
            ok("last tuesday", wed, tokyo),
            When::Day(day(2026, 11, 17, tokyo))
        );
        assert_eq!(ok("today", wed, tokyo), When::Day(day(2026, 11, 18, tokyo)));

        // Early on Tuesday in Tokyo it is still Monday in UTC.
        let early_tue = ts("2026-11-16T20:00:00Z");
        assert_eq!(
            ok("last tuesday", early_tue, tokyo),
            When::Day(day(2026, 11, 10, tokyo))
        );
        assert_eq!(
            ok("last monday", early_tue, tokyo),
            When::Day(day(2026, 11, 16, tokyo))
        );
        // Early on Wednesday in Auckland (+13:00) it is still Tuesday in UTC.
        let auckland = Tz::Pacific__Auckland;
        let early_wed = ts("2026-11-17T11:30:00Z");
        assert_eq!(
            ok("last tuesday", early_wed, auckland),
            When::Day(day(2026, 11, 17, auckland))
        );
        assert_eq!(
            ok("last tuesday", early_wed, Tz::UTC),
            When::Day(day(2026, 11, 10, Tz::UTC))
        );
    }

    #[test]
    fn n_units_ago_are_exact_durations() {
        let tz = berlin();
        let n = now().0;
        let cases = [
            ("0 seconds ago", 0),
            ("1 second ago", 1_000_000),
            ("90 seconds ago", 90_000_000),
            ("1 minute ago", 60_000_000),
            ("45 minutes ago", 45 * 60_000_000),
            ("1 hour ago", HOUR),
            ("36 hours ago", 36 * HOUR),
            ("1 day ago", 24 * HOUR),
            ("3 days ago", 3 * 24 * HOUR),
            ("1 week ago", 7 * 24 * HOUR),
            ("2 weeks ago", 14 * 24 * HOUR),
            ("3 DAYS AGO", 3 * 24 * HOUR),
            ("  3   days\tago ", 3 * 24 * HOUR),
            ("100000 weeks ago", 100_000 * 7 * 24 * HOUR),
        ];
        for (expr, back) in cases {
            assert_eq!(
                ok(expr, now(), tz),
                When::Instant(Timestamp(n - back)),
                "{expr}"
            );
        }
        // Exact: across the spring DST change 1 day ago is 24 h, not "the same wall time".
        let after_spring = ts("2026-03-29T12:00:00Z");
        assert_eq!(
            ok("1 day ago", after_spring, tz),
            When::Instant(ts("2026-03-28T12:00:00Z"))
        );
    }

    // ---- day bounds ----------------------------------------------------------------------------

    #[test]
    fn berlin_spring_day_is_23_hours() {
        let d = day(2026, 3, 29, berlin());
        assert_eq!(d.start, ts("2026-03-28T23:00:00Z"));
        assert_eq!(d.end, ts("2026-03-29T22:00:00Z"));
        assert_eq!(d.len_micros(), 23 * HOUR);
    }

    #[test]
    fn berlin_autumn_day_is_25_hours() {
        let d = day(2026, 10, 25, berlin());
        assert_eq!(d.start, ts("2026-10-24T22:00:00Z"));
        assert_eq!(d.end, ts("2026-10-25T23:00:00Z"));
        assert_eq!(d.len_micros(), 25 * HOUR);
        // Both readings of the repeated 02:30 are in the day.
        assert!(d.contains(ts("2026-10-25T00:30:00Z")));
        assert!(d.contains(ts("2026-10-25T01:30:00Z")));
    }

    #[test]
    fn kolkata_day_bounds_at_half_hour_offset() {
        let d = day(2026, 11, 17, Tz::Asia__Kolkata);
        assert_eq!(d.start, ts("2026-11-16T18:30:00Z"));
        assert_eq!(d.end, ts("2026-11-17T18:30:00Z"));
        assert_eq!(d.len_micros(), 24 * HOUR);
    }

    #[test]
    fn chatham_day_bounds_at_quarter_hour_offsets() {
        let chatham = Tz::Pacific__Chatham;
        // Southern summer: +13:45.
        let d = day(2026, 11, 17, chatham);
        assert_eq!(d.start, ts("2026-11-16T10:15:00Z"));
        assert_eq!(d.end, ts("2026-11-17T10:15:00Z"));
        // Southern winter: +12:45.
        let d = day(2026, 7, 1, chatham);
        assert_eq!(d.start, ts("2026-06-30T11:15:00Z"));
        assert_eq!(d.end, ts("2026-07-01T11:15:00Z"));
        // DST starts 2026-09-27 at 02:45 local (+12:45 → +13:45): a 23-hour day.
        let d = day(2026, 9, 27, chatham);
        assert_eq!(d.start, ts("2026-09-26T11:15:00Z"));
        assert_eq!(d.end, ts("2026-09-27T10:15:00Z"));
        assert_eq!(d.len_micros(), 23 * HOUR);
    }

    #[test]
    fn santiago_midnight_gap_starts_the_day_at_one() {
        // Chile: on 2024-09-08 at 04:00 UTC, local 00:00 (-04) becomes 01:00 (-03): midnight
        // does not exist, so the day starts at 01:00 local.
        let santiago = parse_tz("America/Santiago").expect("known zone");
        assert!(matches!(
            parse("2024-09-08T00:30", now(), santiago),
            Err(WhenError::NonexistentLocalTime { .. })
        ));
        let d = day(2024, 9, 8, santiago);
        assert_eq!(d.start, ts("2024-09-08T04:00:00Z"));
        assert_eq!(
            d.start
                .to_datetime()
                .map(|t| t.with_timezone(&santiago).to_rfc3339()),
            Some("2024-09-08T01:00:00-03:00".to_string())
        );
        assert_eq!(d.end, ts("2024-09-09T03:00:00Z"));
        assert_eq!(d.len_micros(), 23 * HOUR);
        // The day before is a full 24 hours and ends where this one starts.
        let before = day(2024, 9, 7, santiago);
        assert_eq!(before.start, ts("2024-09-07T04:00:00Z"));
        assert_eq!(before.end, d.start);
        // Autumn: on 2025-04-06 at 03:00 UTC, 00:00 (-03) goes back to 23:00 (-04) on the 5th,
        // so Saturday 2025-04-05 is 25 hours long.
        let sat = day(2025, 4, 5, santiago);
        assert_eq!(sat.start, ts("2025-04-05T03:00:00Z"));
        assert_eq!(sat.end, ts("2025-04-06T04:00:00Z"));
        assert_eq!(sat.len_micros(), 25 * HOUR);
    }

    #[test]
    fn beirut_and_havana_midnight_gaps() {
        // Lebanon: last Sunday of March, 00:00 (+02) → 01:00 (+03).
        let d = day(2026, 3, 29, Tz::Asia__Beirut);
        assert_eq!(d.start, ts("2026-03-28T22:00:00Z"));
        assert_eq!(d.end, ts("2026-03-29T21:00:00Z"));
        // Cuba: second Sunday of March, 00:00 (-05) → 01:00 (-04).
        let d = day(2026, 3, 8, Tz::America__Havana);
        assert_eq!(d.start, ts("2026-03-08T05:00:00Z"));
        assert_eq!(d.end, ts("2026-03-09T04:00:00Z"));
    }

    #[test]
    fn apia_skipped_a_whole_date() {
        // Samoa crossed the date line: 2011-12-29 24:00 (-10) became 2011-12-31 00:00 (+14).
        let apia = Tz::Pacific__Apia;
        let skipped = day(2011, 12, 30, apia);
        let before = day(2011, 12, 29, apia);
        let after = day(2011, 12, 31, apia);
        assert_eq!(skipped.start, ts("2011-12-30T10:00:00Z"));
        assert_eq!(skipped.start, skipped.end, "an empty day");
        assert_eq!(before.end, skipped.start);
        assert_eq!(after.start, skipped.end);
        // Nothing is in the skipped day; its close is the last instant of the 29th.
        let close = When::Day(skipped).instant();
        assert_eq!(close, ts("2011-12-30T09:59:59.999999Z"));
        assert_eq!(When::Instant(close).day(apia), Ok(before));
    }

    #[test]
    fn day_contains_is_half_open() {
        let d = day(2026, 11, 17, berlin());
        assert!(d.contains(d.start));
        assert!(d.contains(Timestamp(d.end.0 - 1)));
        assert!(!d.contains(d.end));
        assert!(!d.contains(Timestamp(d.start.0 - 1)));
    }

    // ---- When ----------------------------------------------------------------------------------

    #[test]
    fn instant_of_a_day_is_its_last_microsecond() {
        let d = day(2026, 11, 17, berlin());
        assert_eq!(When::Day(d).instant(), ts("2026-11-17T22:59:59.999999Z"));
        assert_eq!(When::Day(d).instant(), Timestamp(d.end.0 - 1));
        assert_eq!(When::Instant(now()).instant(), now());
        let spring = day(2026, 3, 29, berlin());
        assert_eq!(
            When::Day(spring).instant(),
            ts("2026-03-29T21:59:59.999999Z")
        );
    }

    #[test]
    fn day_of_an_instant_is_its_local_date() {
        // 23:30 UTC on the 17th is already the 18th in Berlin.
        let t = When::Instant(ts("2026-11-17T23:30:00Z"));
        assert_eq!(t.day(berlin()), Ok(day(2026, 11, 18, berlin())));
        assert_eq!(t.day(Tz::UTC), Ok(day(2026, 11, 17, Tz::UTC)));
        // 17:00 UTC is 22:30 in Kolkata (the 17th), but 19:00 UTC is the 18th there.
        let kolkata = Tz::Asia__Kolkata;
        assert_eq!(
            When::Instant(ts("2026-11-17T17:00:00Z")).day(kolkata),
            Ok(day(2026, 11, 17, kolkata))
        );
        assert_eq!(
            When::Instant(ts("2026-11-17T19:00:00Z")).day(kolkata),
            Ok(day(2026, 11, 18, kolkata))
        );
        // A day stays itself whatever zone is asked for.
        let d = day(2026, 11, 17, berlin());
        assert_eq!(When::Day(d).day(Tz::UTC), Ok(d));
        // Round trip: the close of a day is in that day.
        assert_eq!(When::Instant(When::Day(d).instant()).day(berlin()), Ok(d));
    }

    #[test]
    fn when_displays() {
        assert_eq!(
            When::Instant(ts("2026-11-17T09:30:00Z")).to_string(),
            "2026-11-17T09:30:00.000000Z"
        );
    }

    // ---- errors --------------------------------------------------------------------------------

    fn assert_unrecognized(expr: &str) {
        let e = err(expr, now(), berlin());
        assert_eq!(
            e,
            WhenError::Unrecognized {
                input: expr.trim().to_string(),
                accepted: ACCEPTED
            },
            "{expr:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("unrecognised time \"{}\": use ", expr.trim())),
            "{msg}"
        );
        for form in [
            "RFC 3339",
            "2026-11-17",
            "yesterday",
            "last <weekday>",
            "ago",
        ] {
            assert!(msg.contains(form), "{msg} should list {form}");
        }
    }

    #[test]
    fn unrecognized_expressions() {
        for expr in [
            "",
            "   ",
            "next friday",
            "3 fortnights ago",
            "-3 days ago",
            "3 days",
            "days ago",
            "3.5 days ago",
            "last week",
            "last",
            "tomorrow",
            "now now",
            "2026/11/17",
            "17.11.2026",
            "2026-11-17T09",
            "2026-11-17T09:30:00+0100",
            "2026-11-17T09:30 Europe/Berlin",
            "1e3 days ago",
        ] {
            assert_unrecognized(expr);
        }
    }

    #[test]
    fn next_friday_message_lists_the_accepted_forms() {
        assert_eq!(
            err("next friday", now(), berlin()).to_string(),
            "unrecognised time \"next friday\": use RFC 3339 (2026-11-17T09:30:00Z), a date \
         (2026-11-17), a local time (2026-11-17T09:30), now, today, yesterday, \
         last <weekday>, or N seconds|minutes|hours|days|weeks ago"
        );
    }

    #[test]
    fn too_many_units_ago_is_out_of_range() {
        for expr in [
            "99999999999 days ago",
            "100001 seconds ago",
            "99999999999999999999999999 weeks ago",
        ] {
            let e = err(expr, now(), berlin());
            assert!(
                matches!(&e, WhenError::OutOfRange { input, .. } if input == expr),
                "{expr}: {e:?}"
            );
            assert!(e.to_string().contains(expr), "{e}");
        }
        // Before the representable range of chrono: an error, not a panic or wraparound.
        let e = err("100000 weeks ago", Timestamp(i64::MIN + 1), berlin());
        assert!(matches!(e, WhenError::OutOfRange { .. }), "{e:?}");
    }

    #[test]
    fn invalid_dates_name_the_input() {
        for expr in [
            "2026-02-30",
            "2026-13-01",
            "2026-00-10",
            "2027-02-29",
            "2026-02-30T10:00",
            "2026-02-30T10:00:00Z",
        ] {
            let e = err(expr, now(), berlin());
            assert_eq!(e, WhenError::InvalidDate { input: expr.into() });
            assert_eq!(
                e.to_string(),
                format!("invalid date \"{expr}\": no such calendar day")
            );
        }
    }

    #[test]
    fn invalid_times_name_the_input() {
        for expr in [
            "2026-11-17T24:00",
            "2026-11-17T09:60",
            "2026-11-17T09:30:60Z",
            "2026-11-17T09:30:00+24:00",
            "2026-11-17T09:30:00+01:60",
        ] {
            let e = err(expr, now(), berlin());
            assert_eq!(e, WhenError::InvalidTime { input: expr.into() });
            assert!(e.to_string().contains(&format!("\"{expr}\"")), "{e}");
        }
    }

    #[test]
    fn relative_days_of_an_unrepresentable_now_are_errors() {
        for expr in ["today", "yesterday", "last friday"] {
            let e = err(expr, Timestamp(i64::MAX), berlin());
            assert!(
                matches!(&e, WhenError::OutOfRange { input, .. } if input == expr),
                "{e:?}"
            );
        }
    }

    #[test]
    fn extreme_dates_do_not_panic() {
        for tz in [Tz::UTC, Tz::Asia__Tokyo, Tz::America__Los_Angeles] {
            for d in [
                NaiveDate::MIN,
                NaiveDate::MAX,
                NaiveDate::MIN.succ_opt().expect("in range"),
                NaiveDate::MAX.pred_opt().expect("in range"),
            ] {
                let _ = Day::new(d, tz);
            }
        }
        assert!(Day::new(NaiveDate::MAX, Tz::UTC).is_err());
        let _ = parse("+262143-12-31", now(), Tz::UTC);
        let _ = parse("9999-12-31", now(), Tz::Pacific__Kiritimati);
        let _ = parse("0000-01-01T00:00", now(), Tz::Asia__Tokyo);
        assert!(Day::containing(Timestamp(i64::MAX), Tz::UTC).is_err());
        assert!(When::Instant(Timestamp(i64::MIN)).day(Tz::UTC).is_err());
    }

    // ---- properties ----------------------------------------------------------------------------

    const ZONES: [Tz; 10] = [
        Tz::UTC,
        Tz::Europe__Berlin,
        Tz::Asia__Kolkata,
        Tz::Pacific__Chatham,
        Tz::America__Santiago,
        Tz::America__Havana,
        Tz::Asia__Beirut,
        Tz::Pacific__Apia,
        Tz::Australia__Lord_Howe,
        Tz::America__St_Johns,
    ];

    proptest! {
        #[test]
        fn day_of_an_instant_contains_it(
            // 1850-01-01 .. 2150-01-01
            micros in -3_786_825_600_000_000i64..5_680_281_600_000_000i64,
            zone in 0..ZONES.len(),
        ) {
            let tz = ZONES[zone];
            let t = Timestamp(micros);
            let d = Day::containing(t, tz).expect("in range");
            prop_assert!(d.contains(t), "{d} [{}, {}) should contain {t}", d.start, d.end);
            prop_assert_eq!(When::Instant(t).day(tz), Ok(d));
            let local = Utc.timestamp_micros(micros).single().expect("in range").with_timezone(&tz);
            prop_assert_eq!(d.date, local.date_naive());
        }

        #[test]
        fn consecutive_days_tile_time(
            days in -60_000i32..60_000,
            zone in 0..ZONES.len(),
        ) {
            let tz = ZONES[zone];
            let d = date(2000, 1, 1) + chrono::Duration::days(i64::from(days));
            let today = Day::new(d, tz).expect("in range");
            let next = Day::new(d.succ_opt().expect("in range"), tz).expect("in range");
            prop_assert_eq!(today.end, next.start);
            prop_assert!(today.start <= today.end);
            if today.start < today.end {
                let first = today.start.to_datetime().expect("in range").with_timezone(&tz);
                prop_assert_eq!(first.date_naive(), d);
                let before = Timestamp(today.start.0 - 1).to_datetime().expect("in range");
                prop_assert!(before.with_timezone(&tz).date_naive() < d);
            }
        }
    }
}
