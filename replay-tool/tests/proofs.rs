//! `prove` writes proof files that `check-proof` checks offline with the app's key alone:
//! inclusion of one event, of a record's whole history, and consistency between two
//! checkpoints. Altered events, altered paths, wrong keys and rewritten logs fail.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use ledger::{Actor, AppendRequest, Command, Ledger, LedgerConfig, ManualClock, Timestamp};
use serde_json::{json, Value};

fn check(dir: &Path, file: &str, key: &str, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["check-proof", file, "--key", key];
    args.extend_from_slice(extra);
    let out = replay(dir, &args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn edit(dir: &Path, from: &str, to: &str, f: impl FnOnce(&mut Value)) {
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(from)).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(dir.join(to), v.to_string()).unwrap();
}

#[test]
fn proofs_from_a_data_directory_check_offline() {
    let dir = data_dir();
    // The server signs checkpoints as it runs; here the test does, then lets go.
    let (key, size) = {
        let l = Ledger::open_dir(dir.path()).unwrap();
        let cp = l.checkpoint("gxp").unwrap();
        let key = l.public_keys("gxp").unwrap()[0].public_key.clone();
        (key, cp.size())
    };
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let d = dir.path().to_str().unwrap();
    let prove = |args: &[&str]| {
        let mut full = vec!["--data-dir", d, "--app", "gxp", "prove"];
        full.extend_from_slice(args);
        replay_ok(w, &full)
    };

    prove(&["inclusion", "40", "-o", "inc.json"]);
    let (code, text) = check(w, "inc.json", &key, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("event 40 (record.signed") && text.contains(&format!("log of {size} events")),
        "{text}"
    );

    // The event's content altered: its hash no longer matches.
    edit(w, "inc.json", "bad-event.json", |v| {
        let p = v["event"]["payload"]
            .as_str()
            .unwrap()
            .replace("approval", "review");
        v["event"]["payload"] = json!(p);
    });
    let (code, text) = check(w, "bad-event.json", &key, &[]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("event 40") && text.contains("altered"),
        "{text}"
    );
    // A path hash altered.
    edit(w, "inc.json", "bad-path.json", |v| {
        v["path"][0] = json!("00".repeat(32));
    });
    let (code, text) = check(w, "bad-path.json", &key, &[]);
    assert_eq!(code, 1, "{text}");
    // Another key.
    let other = "11".repeat(32);
    let (code, text) = check(w, "inc.json", &other, &[]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("not signed"), "{text}");

    // A record's whole history.
    prove(&["record", "ValidationLog", "xfdiwaWlae", "-o", "rec.json"]);
    let (code, text) = check(w, "rec.json", &key, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("5 events of ValidationLog xfdiwaWlae"),
        "{text}"
    );
    edit(w, "rec.json", "rec-swapped.json", |v| {
        let events = v["events"].as_array_mut().unwrap();
        let first = events[0]["event"].clone();
        events[0]["event"] = events[1]["event"].clone();
        events[1]["event"] = first;
    });
    let (code, text) = check(w, "rec-swapped.json", &key, &[]);
    assert_eq!(code, 1, "{text}");

    // Bad inputs: named, exit 2.
    for (args, needle) in [
        (vec!["--data-dir", d, "prove", "inclusion", "1"], "--app"),
        (
            vec![
                "--data-dir",
                d,
                "--app",
                "gxp",
                "prove",
                "inclusion",
                "999999",
            ],
            "999999",
        ),
        (vec!["check-proof", "nope.json", "--key", &key], "nope.json"),
        (vec!["check-proof", "inc.json", "--key", "zz"], "--key"),
    ] {
        let out = replay(w, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// An in-memory gxp log on a fixed key: genesis and schema, then `names` users.
fn log_with(names: &[&str]) -> Ledger {
    let clock = Arc::new(ManualClock::new(Timestamp(1_788_242_400_000_000)));
    let l = Ledger::open(LedgerConfig::in_memory([5; 32], clock.clone())).unwrap();
    l.ensure_builtin_apps().unwrap();
    for n in names {
        clock.advance(1_000_000);
        l.append(AppendRequest {
            app: "gxp".into(),
            actor: Actor::system(),
            idempotency_key: None,
            reason: None,
            command: Command::CreateRecord {
                class: "_User".into(),
                object_id: Some(format!("id-{n}")),
                fields: json!({"username": n}).as_object().unwrap().clone(),
            },
        })
        .unwrap();
    }
    l
}

#[test]
fn a_rewritten_log_fails_consistency_with_a_kept_checkpoint() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // Last quarter: the inspector kept a checkpoint of 4 events (genesis, schema, 2 users).
    let kept = log_with(&["ann", "bob"]).checkpoint("gxp").unwrap();
    assert_eq!(kept.size(), 4);
    std::fs::write(w.join("kept.txt"), kept.text()).unwrap();
    // Today: the honest log grew; a rewritten one changed event 4 and grew the same.
    for (name, users, holds) in [
        ("honest", ["ann", "bob", "cy", "dee"], true),
        ("rewritten", ["ann", "bobby", "cy", "dee"], false),
    ] {
        let l = log_with(&users);
        let key = l.public_keys("gxp").unwrap()[0].public_key.clone();
        let cp = l.checkpoint("gxp").unwrap();
        let mut export = Vec::new();
        l.export(&["gxp".to_string()], &mut export).unwrap();
        std::fs::write(w.join(format!("{name}.ndjson")), export).unwrap();
        std::fs::write(w.join(format!("{name}.txt")), cp.text()).unwrap();
        let file = format!("{name}-consistency.json");
        replay_ok(
            w,
            &[
                "--export",
                &format!("{name}.ndjson"),
                "--app",
                "gxp",
                "prove",
                "consistency",
                "4",
                "--checkpoint",
                &format!("{name}.txt"),
                "-o",
                &file,
            ],
        );
        let (code, text) = check(w, &file, &key, &["--old-checkpoint", "kept.txt"]);
        if holds {
            assert_eq!(code, 0, "{name}: {text}");
            assert!(text.contains("extends the log of 4 events"), "{text}");
        } else {
            assert_eq!(code, 1, "{name}: {text}");
            // Both checkpoints are genuine: it is the proof that fails.
            assert!(
                text.contains("does NOT hold") && !text.contains("checkpoint:"),
                "{text}"
            );
            eprintln!("{name}: {text}");
        }
        // The checkpoint given must be the export's own log at that size.
        let inc = format!("{name}-inclusion.json");
        replay_ok(
            w,
            &[
                "--export",
                &format!("{name}.ndjson"),
                "--app",
                "gxp",
                "prove",
                "inclusion",
                "4",
                "--checkpoint",
                &format!("{name}.txt"),
                "-o",
                &inc,
            ],
        );
        assert_eq!(
            check(w, &inc, &key, &[]).0,
            0,
            "{name}: event 4 is in its own log"
        );
    }
}
