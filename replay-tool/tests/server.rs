//! `--server` mode against a real server on loopback, holding the golden log's content:
//! the same answers as offline mode on an export of the same log; verification is done
//! here on the downloaded export; a user without an audit role is refused by the server.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::Value;

const NOW: &str = "2026-09-04T12:00:00Z";

#[test]
fn server_mode_answers_as_offline_mode() {
    let dir = data_dir();
    let server = start(dir.path());
    let url = format!("http://{}", server.addr);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let remote = |args: &[&str]| {
        let mut full = vec![
            "--server",
            &url,
            "--user",
            "auditor",
            "--password",
            PASSWORD,
            "--now",
            NOW,
        ];
        full.extend_from_slice(args);
        replay_ok(w, &full)
    };
    let offline = |args: &[&str]| {
        let mut full = vec!["--export", "copy.ndjson", "--now", NOW];
        full.extend_from_slice(args);
        replay_ok(w, &full)
    };
    remote(&["export", "--output", "copy.ndjson"]);
    let copy = std::fs::read_to_string(w.join("copy.ndjson")).unwrap();
    assert!(copy.lines().count() > 400, "the export holds the log");

    let cases: Vec<Vec<&str>> = vec![
        vec![
            "--format",
            "json",
            "--app",
            "gxp",
            "at",
            "2026-09-02T12:00:00Z",
            "--class",
            "ValidationLog",
        ],
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
        vec![
            "--format",
            "csv",
            "--app",
            "hipaa",
            "at",
            "2026-09-03T08:00",
        ],
        vec![
            "--format",
            "json",
            "--app",
            "gxp",
            "--tz",
            "Europe/Berlin",
            "day",
            "2026-09-02",
        ],
        vec![
            "--format",
            "csv",
            "--tz",
            "America/New_York",
            "day",
            "2026-09-01",
        ],
        vec![
            "--format",
            "json",
            "--app",
            "iso9001",
            "diff",
            "2026-09-01T12:00:00Z",
            "2026-09-02T12:00:00Z",
        ],
        vec![
            "--format",
            "json",
            "--app",
            "gxp",
            "history",
            "ValidationLog",
            "xfdiwaWlae",
        ],
        vec!["--format", "json", "keys"],
    ];
    for args in &cases {
        let (mut r, mut o) = (remote(args), offline(args));
        if args.contains(&"history") {
            // A history reflects the head when it is read: the server's has grown since
            // the export by the tool's own logins.
            let strip = |s: &str| {
                let mut v: Value = serde_json::from_str(s).unwrap();
                v[0]["seq"] = Value::Null;
                v.to_string()
            };
            (r, o) = (strip(&r), strip(&o));
        }
        assert!(r.len() > 100, "{args:?}: {r}");
        assert!(
            r == o,
            "{args:?}: the server's answer differs from the export's:\n{r}\n---\n{o}"
        );
    }

    // Verification happens here, on the export the server sends.
    let v: Value = serde_json::from_str(&remote(&["--format", "json", "verify"])).unwrap();
    let reports = v.as_array().unwrap();
    assert_eq!(reports.len(), 5);
    for r in reports {
        assert!(r["failure"].is_null(), "{r}");
        assert!(r["verified"].as_u64().unwrap() > 50, "{r}");
    }

    // Paging: classes many pages long come back whole and at one point.
    for (class, filter) in [
        ("ValidationLog", None),
        ("ValidationLog", Some(r#"{"result": {"$ne": "Pass"}}"#)),
        ("SystemAudit", None),
    ] {
        let mut args = vec![
            "--format",
            "json",
            "--app",
            "gxp",
            "at",
            "2026-09-03T12:00:00Z",
            "--class",
            class,
        ];
        if let Some(f) = filter {
            args.extend(["--where", f]);
        }
        let whole = offline(&args);
        let n = serde_json::from_str::<Value>(&whole).unwrap()[0]["classes"][0]["records"]
            .as_array()
            .unwrap()
            .len();
        assert!(n > 2, "{class}: {n} records make several pages of 2");
        args.extend(["--page-size", "2"]);
        assert!(
            remote(&args) == whole,
            "{class} {filter:?} read in pages of 2"
        );
    }

    // A proof from the server, checked offline with the key the export declares.
    let keys: Value =
        serde_json::from_str(&offline(&["--format", "json", "--app", "gxp", "keys"])).unwrap();
    let key = keys[0]["public_key"].as_str().unwrap().to_string();
    remote(&[
        "--app",
        "gxp",
        "prove",
        "record",
        "ValidationLog",
        "xfdiwaWlae",
        "-o",
        "rec.json",
    ]);
    let checked = replay_ok(w, &["check-proof", "rec.json", "--key", &key]);
    assert!(
        checked.contains("proof holds") && checked.contains("5 events"),
        "{checked}"
    );

    // A user without an audit role, and a wrong password: the server's refusal, exit 2.
    for (user, password, needle) in [("operator", PASSWORD, "403"), ("auditor", "wrong", "101")] {
        let out = replay(
            w,
            &[
                "--server",
                &url,
                "--user",
                user,
                "--password",
                password,
                "--app",
                "gxp",
                "day",
                "2026-09-02",
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{user}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{user}: expected {needle} in {stderr}"
        );
    }
}
