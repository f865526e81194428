//! A data directory as the source: the same answers as the export of the same log; a
//! directory held by a running process is refused at once with a clear error (no hang,
//! no torn read); the log is never written.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ledger::Ledger;

const NOW: &str = "2026-09-04T12:00:00Z";

fn export_of(dir: &std::path::Path) -> Vec<u8> {
    let ledger = Ledger::open_dir(dir).unwrap();
    let mut out = Vec::new();
    ledger.export(&ledger.apps(), &mut out).unwrap();
    out
}

#[test]
fn a_data_directory_answers_as_its_export_does() {
    let dir = data_dir();
    let d = dir.path().to_str().unwrap();
    let before = export_of(dir.path());
    for (golden, args) in [
        (
            "at.json",
            vec![
                "--app",
                "gxp",
                "at",
                "2026-09-02T12:00:00Z",
                "--class",
                "ValidationLog",
            ],
        ),
        (
            "diff.json",
            vec![
                "--app",
                "gxp",
                "diff",
                "2026-09-01T12:00:00Z",
                "2026-09-02T12:00:00Z",
            ],
        ),
    ] {
        let mut full = vec!["--data-dir", d, "--now", NOW, "--format", "json"];
        full.extend_from_slice(&args);
        let out = replay_ok(&golden_dir(), &full);
        let want = std::fs::read_to_string(golden_dir().join(golden)).unwrap();
        assert_eq!(out, want, "{golden} from the data directory");
    }
    let verified = replay_ok(
        &golden_dir(),
        &["--data-dir", d, "--format", "json", "verify"],
    );
    let reports: serde_json::Value = serde_json::from_str(&verified).unwrap();
    assert_eq!(reports.as_array().unwrap().len(), 5);
    assert!(reports
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["failure"].is_null() && r["verified"].as_u64() > Some(0)));
    assert_eq!(export_of(dir.path()), before, "the log was not written");
}

#[test]
fn a_directory_held_by_a_server_is_refused_clearly() {
    let dir = data_dir();
    // This process holds the store, as a running server would.
    let held = Ledger::open_dir(dir.path()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ledger-replay"))
        .args(["--data-dir", dir.path().to_str().unwrap(), "verify"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ledger-replay hung on a held data directory");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("is in use by another process") && stderr.contains("--server"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    drop(held);
}

#[test]
fn bad_sources_and_inputs_are_named() {
    let empty = tempfile::tempdir().unwrap();
    let g = golden_dir();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--data-dir", empty.path().to_str().unwrap(), "keys"],
            "is not a data directory",
        ),
        (
            vec!["--export", "no-such-file.ndjson", "keys"],
            "no-such-file.ndjson",
        ),
        (
            vec!["--export", "log.ndjson", "day", "last fortnight"],
            "last fortnight",
        ),
        (
            vec![
                "--export",
                "log.ndjson",
                "--tz",
                "Mars/Olympus",
                "day",
                "today",
            ],
            "Mars/Olympus",
        ),
        (
            vec!["--export", "log.ndjson", "--app", "nope", "keys"],
            "--app \"nope\"",
        ),
        (
            vec!["--export", "log.ndjson", "at", "now", "--where", "{}"],
            "give --class too",
        ),
        (
            vec![
                "--export",
                "log.ndjson",
                "at",
                "now",
                "--class",
                "ValidationLog",
                "--where",
                "{",
            ],
            "is not JSON",
        ),
        (
            vec![
                "--export",
                "log.ndjson",
                "at",
                "now",
                "--class",
                "ValidationLog",
                "--where",
                r#"{"result":{"$bogus":1}}"#,
            ],
            "$bogus",
        ),
        (
            vec!["--export", "log.ndjson", "--format", "html", "keys"],
            "--format html",
        ),
        (
            vec!["--export", "log.ndjson", "diff", "2026-09-03", "2026-09-01"],
            "give the earlier instant first",
        ),
        (
            vec![
                "--export",
                "log.ndjson",
                "--app",
                "gxp",
                "history",
                "ValidationLog",
                "nosuchrec",
            ],
            "no such record",
        ),
        (
            vec!["--export", "log.ndjson", "verify", "--trusted-key", "abc"],
            "--trusted-key",
        ),
        (vec!["--server", "127.0.0.1:1", "keys"], "give a URL"),
        (
            vec!["--server", "http://127.0.0.1:1", "keys"],
            "--user and --password",
        ),
    ];
    for (args, needle) in cases {
        let out = replay(&g, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected {needle:?} in {stderr}"
        );
    }
}
