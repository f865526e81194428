//! `verify` on the golden export exits 0; on copies tampered in each way an attacker
//! could try it exits 1 and names the first bad event of the right app.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;
use ledger::{Ledger, LedgerConfig, ManualClock, Timestamp};
use serde_json::Value;

fn lines() -> Vec<String> {
    std::fs::read_to_string(golden_log())
        .expect("golden log")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The index of app `app`'s event `seq`.
fn find(lines: &[String], app: &str, seq: u64) -> usize {
    lines
        .iter()
        .position(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["type"] == "event" && v["app"] == app && v["seq"] == seq
        })
        .unwrap_or_else(|| panic!("{app} event {seq}"))
}

fn field(line: &str, name: &str) -> String {
    let v: Value = serde_json::from_str(line).unwrap();
    v[name].as_str().unwrap().to_string()
}

/// Runs `verify` on `lines` written to a file; returns (exit code, stderr).
fn verify(dir: &Path, lines: &[String], extra: &[&str]) -> (i32, String) {
    let path = dir.join("copy.ndjson");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let mut args = vec!["--export", "copy.ndjson", "verify"];
    args.extend_from_slice(extra);
    let out = replay(dir, &args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn expect_failure(dir: &Path, what: &str, lines: &[String], extra: &[&str], event: &str) {
    let (code, stderr) = verify(dir, lines, extra);
    assert_eq!(code, 1, "{what}: exit {code}, stderr: {stderr}");
    assert!(
        stderr.contains(event),
        "{what}: expected {event:?} in: {stderr}"
    );
}

#[test]
fn good_and_tampered_exports() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = lines();
    assert_eq!(verify(d, &good, &[]).0, 0, "the golden export verifies");

    // A changed field: a created record's result, Pass → Fail.
    let i = good
        .iter()
        .position(|l| l.contains(r#"\"result\":\"Pass\""#) && l.contains(r#""app":"gxp""#))
        .expect("a Pass");
    let seq = serde_json::from_str::<Value>(&good[i]).unwrap()["seq"].clone();
    let mut t = good.clone();
    t[i] = t[i].replace(r#"\"result\":\"Pass\""#, r#"\"result\":\"Fail\""#);
    expect_failure(
        d,
        "changed field",
        &t,
        &[],
        &format!("app gxp: event {seq}:"),
    );

    // A removed event.
    let mut t = good.clone();
    t.remove(find(&good, "gxp", 10));
    expect_failure(d, "removed event", &t, &[], "app gxp: event 10:");

    // The last event removed (and the section's head left as it was).
    let mut t = good.clone();
    let head = serde_json::from_str::<Value>(&good[find(&good, "gxp", 1) - 1]).unwrap()["head_seq"]
        .as_u64()
        .unwrap();
    t.remove(find(&good, "gxp", head));
    expect_failure(d, "cut tail", &t, &[], &format!("app gxp: event {head}:"));

    // Two events swapped.
    let mut t = good.clone();
    t.swap(find(&good, "gxp", 10), find(&good, "gxp", 11));
    expect_failure(d, "reordered events", &t, &[], "app gxp: event 10:");

    // Two events' signatures swapped.
    let (a, b) = (find(&good, "hipaa", 20), find(&good, "hipaa", 21));
    let (sa, sb) = (field(&good[a], "signature"), field(&good[b], "signature"));
    let mut t = good.clone();
    t[a] = t[a].replace(&sa, &sb);
    t[b] = t[b].replace(&sb, &sa);
    expect_failure(d, "swapped signatures", &t, &[], "app hipaa: event 20:");

    // A forged key: gxp's section publishes hipaa's key instead of its own.
    let app_line = |app: &str| {
        good.iter()
            .position(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["type"] == "app" && v["app"] == app
            })
            .unwrap()
    };
    let key = |i: usize| {
        let v: Value = serde_json::from_str(&good[i]).unwrap();
        (
            v["keys"][0]["key_id"].as_str().unwrap().to_string(),
            v["keys"][0]["public_key"].as_str().unwrap().to_string(),
        )
    };
    let (gxp_id, gxp_pk) = key(app_line("gxp"));
    let (hipaa_id, hipaa_pk) = key(app_line("hipaa"));
    let mut t = good.clone();
    let g = app_line("gxp");
    t[g] = t[g].replace(&gxp_id, &hipaa_id).replace(&gxp_pk, &hipaa_pk);
    expect_failure(d, "forged published key", &t, &[], "app gxp: event 1:");

    // Pinning the genesis key: the golden export passes with its own key, a log signed
    // with another key (a forger's whole re-signed copy) does not.
    assert_eq!(
        verify(d, &good, &["--app", "gxp", "--trusted-key", &gxp_pk]).0,
        0,
        "the pinned key is the genesis key"
    );
    let clock = std::sync::Arc::new(ManualClock::new(Timestamp(1_788_242_400_000_000)));
    let forger = Ledger::open(LedgerConfig::in_memory([42; 32], clock)).unwrap();
    forger.ensure_builtin_apps().unwrap();
    let mut forged = Vec::new();
    forger.export(&["gxp".to_string()], &mut forged).unwrap();
    let forged: Vec<String> = String::from_utf8(forged)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        verify(d, &forged, &[]).0,
        0,
        "a forger's log verifies on its own"
    );
    expect_failure(
        d,
        "re-signed with another key",
        &forged,
        &["--trusted-key", &gxp_pk],
        "app gxp: event 1:",
    );

    // Not an export at all: an error (exit 2) naming the line, not a verification result.
    let mut t = good.clone();
    t.insert(3, "this is not JSON".into());
    let (code, stderr) = verify(d, &t, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("line 4"), "{stderr}");
}
