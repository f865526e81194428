//! An event's bytes changed in the store behind the ledger's back (in its segment file,
//! with no server running): `ledger-replay verify` names that event, and the server, started on
//! the altered directory, reports the chain as failing at that event instead of vouching
//! for it.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::Value;

#[test]
fn an_event_altered_in_the_store_is_named_by_the_tool_and_the_server() {
    let dir = data_dir();
    let d = dir.path().to_str().unwrap();
    // Alter the first gxp event whose payload says "Pass": its payload no longer matches
    // the digest the hash commits to.
    let target = {
        let store = ledger::store::SledStore::open(&dir.path().join("store")).unwrap();
        let mut found = None;
        for seq in 1..=200 {
            use ledger::store::Store;
            let Some(bytes) = store.event("gxp", seq).unwrap() else {
                break;
            };
            let e = ledger::stored::decode(&bytes).unwrap();
            let Some(p) = &e.payload else { continue };
            if String::from_utf8_lossy(p).contains("\"Pass\"") {
                // Rewritten in place in the app's segment file (same length).
                store
                    .tamper_event("gxp", seq, |bytes| {
                        let mut e = ledger::stored::decode(bytes).unwrap();
                        let text = String::from_utf8(e.payload.take().unwrap()).unwrap();
                        e.payload = Some(text.replace("\"Pass\"", "\"Fail\"").into_bytes());
                        *bytes = ledger::stored::encode(&e).unwrap();
                    })
                    .unwrap();
                found = Some(seq);
                break;
            }
        }
        found.expect("an event with a Pass")
    };

    let out = replay(&golden_dir(), &["--data-dir", d, "--app", "gxp", "verify"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("app gxp: event {target}:")),
        "{stderr}"
    );
    assert!(stderr.contains("digest"), "{stderr}");
    // The other apps are untouched and verify.
    let out = replay(
        &golden_dir(),
        &["--data-dir", d, "--app", "hipaa", "verify"],
    );
    assert!(out.status.success());

    // The server on the altered directory says where the chain fails.
    let server = start(dir.path());
    let url = format!("http://{}", server.addr);
    let work = tempfile::tempdir().unwrap();
    // Through --server, `verify` checks the downloaded export here, and names the event.
    let out = replay(
        work.path(),
        &[
            "--server",
            &url,
            "--user",
            "auditor",
            "--password",
            PASSWORD,
            "--app",
            "gxp",
            "verify",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("app gxp: event {target}:")),
        "{stderr}"
    );
    // The server's own verification route says the same.
    let token: Value = ureq_login(&url);
    let body: Value = ureq::get(&format!("{url}/ledger/gxp/verify"))
        .set(
            "Authorization",
            &format!("Bearer {}", token.as_str().unwrap()),
        )
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(body["ok"], false, "{body}");
    assert_eq!(body["failure"]["seq"], target, "{body}");
    assert!(
        body["failure"]["why"].as_str().unwrap().contains("digest"),
        "{body}"
    );
}

fn ureq_login(url: &str) -> Value {
    let v: Value = ureq::post(&format!("{url}/parse/login"))
        .set("X-Parse-Application-Id", "gxp")
        .send_json(serde_json::json!({"username": "auditor", "password": PASSWORD}))
        .unwrap()
        .into_json()
        .unwrap();
    v["sessionToken"].clone()
}
