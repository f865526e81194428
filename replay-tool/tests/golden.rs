//! `at`, `day`, `diff`, `history`, `keys` and `verify` on the golden log give exactly the
//! outputs committed in fixtures/golden/replay, in table, JSON, CSV and HTML. The golden
//! files were read and checked by hand when written (and `oracle.rs` checks the same
//! answers against an independent fold of the export); rewrite them deliberately with
//! `UPDATE_GOLDEN=1 cargo test -p replay-tool --test golden`.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

/// Every run pins "now", so relative expressions and the HTML's date are repeatable.
const NOW: &str = "2026-09-04T12:00:00Z";

/// A ValidationLog of the golden log that was updated and signed.
const RECORD: &str = "xfdiwaWlae";

#[test]
fn the_golden_log_is_what_the_generator_makes() {
    let committed = std::fs::read(golden_log()).expect("fixtures/golden/replay/log.ndjson");
    assert!(
        committed == generated_export(),
        "the generator no longer makes the committed golden log: if that is intended, rewrite it with UPDATE_GOLDEN=1"
    );
}

#[test]
fn golden_outputs() {
    let log = golden_log();
    assert!(log.exists());
    let at = [
        "--app",
        "gxp",
        "at",
        "2026-09-02T12:00:00Z",
        "--class",
        "ValidationLog",
    ];
    let day = ["--app", "gxp", "--tz", "Europe/Berlin", "day", "2026-09-02"];
    let diff = [
        "--app",
        "gxp",
        "diff",
        "2026-09-01T12:00:00Z",
        "2026-09-02T12:00:00Z",
    ];
    let history = ["--app", "gxp", "history", "ValidationLog", RECORD];
    let mut cases: Vec<(String, Vec<&str>)> = Vec::new();
    for (name, args) in [
        ("at", &at[..]),
        ("day", &day[..]),
        ("diff", &diff[..]),
        ("history", &history[..]),
    ] {
        for (ext, format) in [("txt", "table"), ("json", "json"), ("csv", "csv")] {
            let mut a = vec!["--format", format];
            a.extend_from_slice(args);
            cases.push((format!("{name}.{ext}"), a));
        }
    }
    cases.push((
        "at.html".into(),
        [&["--format", "html"][..], &at[..]].concat(),
    ));
    cases.push((
        "day.html".into(),
        [&["--format", "html"][..], &day[..]].concat(),
    ));
    cases.push((
        "at-where.json".into(),
        vec![
            "--format",
            "json",
            "--app",
            "gxp",
            "at",
            "2026-09-03",
            "--class",
            "ValidationLog",
            "--where",
            r#"{"result": {"$in": ["Fail", "Pass with deviations"]}}"#,
        ],
    ));
    // Relative to the pinned now: yesterday is 2026-09-03.
    cases.push((
        "day-yesterday-iso9001.csv".into(),
        vec!["--format", "csv", "--app", "iso9001", "day", "yesterday"],
    ));
    cases.push(("keys.txt".into(), vec!["keys"]));
    cases.push(("verify.json".into(), vec!["--format", "json", "verify"]));
    cases.push(("verify.txt".into(), vec!["verify"]));

    let dir = golden_dir();
    let mut mismatched = Vec::new();
    for (file, args) in &cases {
        let mut full = vec!["--export", "log.ndjson", "--now", NOW];
        full.extend_from_slice(args);
        let out = replay_ok(&dir, &full);
        let path = dir.join(file);
        if updating() {
            std::fs::write(&path, &out).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!(
                "{} is missing: write it with UPDATE_GOLDEN=1",
                path.display()
            )
        });
        if want != out {
            mismatched.push(format!("{file} (ledger-replay {})", full.join(" ")));
        }
    }
    assert!(
        mismatched.is_empty(),
        "outputs differ from the golden files: {mismatched:#?}"
    );
}
