//! Shared set-up for audit-ledger's criterion benchmarks (`benches/benches/`): a ledger on
//! the real embedded store (sled in a temporary directory, fsync on), and realistic records.

#![allow(clippy::expect_used, missing_docs)]

use std::sync::Arc;

use ledger::{Actor, AppendRequest, Command, Ledger};
use serde_json::{json, Map, Value};

/// A ledger on sled in a fresh temporary directory, with the five built-in apps and one
/// user in `gxp`; returns the ledger, the directory guard and the user's objectId.
pub fn sled_ledger() -> (Arc<Ledger>, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = Ledger::open_dir(dir.path()).expect("open");
    l.ensure_builtin_apps().expect("apps");
    let u = l
        .append(create_request(
            "_User",
            json!({"username": "bench.manager", "role": "manager", "email": "bench@example.com"}),
        ))
        .expect("user");
    let id = u.event.subject.expect("subject").object_id;
    (Arc::new(l), dir, id)
}

pub fn actor() -> Actor {
    Actor {
        user_id: "bench-user".into(),
        username: "bench.manager".into(),
        role: "manager".into(),
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub fn create_request(class: &str, fields: Value) -> AppendRequest {
    AppendRequest {
        app: "gxp".into(),
        actor: actor(),
        idempotency_key: None,
        reason: None,
        command: Command::CreateRecord {
            class: class.into(),
            object_id: None,
            fields: obj(fields),
        },
    }
}

/// A realistic ValidationLog (about 300 bytes of payload).
pub fn validation_log(approver: &str, n: u64) -> AppendRequest {
    create_request(
        "ValidationLog",
        json!({
            "protocolId": format!("VP-2026-{n:06}"),
            "testedSystem": "LIMS 4.2 / chromatography data system",
            "result": if n % 7 == 0 { "fail" } else { "pass" },
            "executedAt": {"__type": "Date", "iso": "2026-11-17T09:30:00.000Z"},
            "approvedBy": {"__type": "Pointer", "className": "_User", "objectId": approver},
            "evidenceUrl": format!("https://files.example.com/evidence/VP-2026-{n:06}.pdf"),
        }),
    )
}

/// Appends `n` records from `clients` threads, each waiting for its own acknowledgement
/// (durable) before sending the next: `clients` concurrent clients.
pub fn append_concurrently(l: &Arc<Ledger>, approver: &str, clients: usize, n: u64) {
    let per = n.div_ceil(clients as u64);
    std::thread::scope(|s| {
        for c in 0..clients as u64 {
            let l = l.clone();
            s.spawn(move || {
                for i in 0..per {
                    l.append(validation_log(approver, c * per + i))
                        .expect("append");
                }
            });
        }
    });
}

/// Appends `n` records from one thread that keeps `in_flight` appends submitted and waits
/// for the oldest before submitting the next (as an async caller such as the server does:
/// no thread per request). Each is acknowledged only once durable.
pub fn append_in_flight(l: &Ledger, approver: &str, in_flight: usize, n: u64) {
    let mut waiting = std::collections::VecDeque::with_capacity(in_flight);
    for i in 0..n {
        if waiting.len() == in_flight {
            if let Some(p) = waiting.pop_front() {
                ledger::Pending::wait(p).expect("append");
            }
        }
        waiting.push_back(l.submit(validation_log(approver, i)));
    }
    for p in waiting {
        p.wait().expect("append");
    }
}

/// The probes' set-up: a sled ledger whose `gxp` chain holds `events` records (from the
/// first command-line argument, default 100,000), appended by 256 concurrent clients.
pub fn chain_from_args() -> (Arc<Ledger>, tempfile::TempDir, u64) {
    let events: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let (l, dir, approver) = sled_ledger();
    append_concurrently(&l, &approver, 256, events);
    (l, dir, events)
}

/// A sled database in `dir` configured as the ledger configures it, with one tree and the
/// data file the ledger fsyncs: for the cost probes.
pub fn raw_sled(dir: &std::path::Path) -> (sled::Db, sled::Tree, std::fs::File) {
    let db = sled::Config::new()
        .path(dir)
        .mode(sled::Mode::HighThroughput)
        .flush_every_ms(None)
        .open()
        .expect("open");
    let tree = db.open_tree("t").expect("tree");
    let file = std::fs::File::open(dir.join("db")).expect("db file");
    (db, tree, file)
}
