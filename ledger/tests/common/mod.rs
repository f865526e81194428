//! Helpers shared by the ledger's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use ledger::{
    Actor, AppendError, AppendRequest, Appended, Command, Ledger, LedgerConfig, ManualClock,
    Timestamp,
};
use serde_json::{json, Map, Value};

/// 2026-11-23T12:00:00Z.
pub const T0: i64 = 1_795_435_200_000_000;

pub fn mem_ledger() -> (Ledger, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp(T0)));
    let ledger = Ledger::open(LedgerConfig::in_memory([9; 32], clock.clone())).expect("open");
    ledger.ensure_builtin_apps().expect("apps");
    (ledger, clock)
}

pub fn actor() -> Actor {
    Actor {
        user_id: "u-qa".into(),
        username: "qa.lead".into(),
        role: "qa_reviewer".into(),
    }
}

pub fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("a JSON object")
}

pub fn req(app: &str, command: Command) -> AppendRequest {
    AppendRequest {
        app: app.into(),
        actor: actor(),
        idempotency_key: None,
        reason: None,
        command,
    }
}

pub fn create(l: &Ledger, app: &str, class: &str, fields: Value) -> Result<Appended, AppendError> {
    l.append(req(
        app,
        Command::CreateRecord {
            class: class.into(),
            object_id: None,
            fields: obj(fields),
        },
    ))
}

pub fn user(l: &Ledger, app: &str, name: &str) -> String {
    let a = create(
        l,
        app,
        "_User",
        json!({"username": name, "role": "manager"}),
    )
    .expect("user");
    a.event.subject.expect("subject").object_id
}

pub fn date(iso: &str) -> Value {
    json!({"__type": "Date", "iso": iso})
}

pub fn pointer(class: &str, id: &str) -> Value {
    json!({"__type": "Pointer", "className": class, "objectId": id})
}

/// A valid gxp ValidationLog.
pub fn validation_log(approver: &str) -> Value {
    json!({
        "protocolId": "VP-001", "testedSystem": "LIMS", "result": "pass",
        "executedAt": date("2026-11-17T09:30:00Z"),
        "approvedBy": pointer("_User", approver),
    })
}

/// The whole export of an app, as text: what "the log exactly as it was" means.
pub fn export_text(l: &Ledger, app: &str) -> String {
    let mut out = Vec::new();
    l.export(&[app.to_string()], &mut out).expect("export");
    String::from_utf8(out).expect("utf8")
}

/// The head a one-app export text declares on its app line.
pub fn export_head_seq(export: &str) -> u64 {
    export
        .lines()
        .nth(1)
        .and_then(|l| serde_json::from_str::<Value>(l).ok())
        .and_then(|v| v["head_seq"].as_u64())
        .expect("head")
}

/// Cuts one of the store's files to `len` bytes behind its back, then writes `tail` after
/// them (a torn or never finished write).
pub fn cut_file(path: &Path, len: u64, tail: &[u8]) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open");
    f.set_len(len).expect("cut");
    f.write_all_at(tail, len).expect("write");
}

/// Appends `bytes` to one of the store's files behind its back.
pub fn append_file(path: &Path, bytes: &[u8]) {
    let len = std::fs::metadata(path).expect("metadata").len();
    cut_file(path, len, bytes);
}
