//! The `audit-ledger` command end to end on a real data directory.

mod process;

use std::process::Command;

use process::{add_user, bin, free_port, http};

#[test]
fn init_verify_export_keys_and_a_clear_error_for_a_locked_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf8");
    let out = bin().args(["--data-dir", d, "init"]).output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("gxp, hipaa, iso14001, iso9001, training")
    );

    let out = bin()
        .args(["--data-dir", d, "verify"])
        .output()
        .expect("run");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches(": OK, 2 events verified")
            .count(),
        5
    );

    let export = dir.path().join("gxp.ndjson");
    let out = bin()
        .args([
            "--data-dir",
            d,
            "export",
            "gxp",
            "--out",
            export.to_str().expect("utf8"),
        ])
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = std::fs::read_to_string(&export).expect("export");
    let reports = ledger::export::verify_export(text.as_bytes(), ledger::VerifyMode::Full, None)
        .expect("parse");
    assert!(reports[0].ok());

    let out = bin().args(["--data-dir", d, "keys"]).output().expect("run");
    let keys = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        keys.lines().count(),
        6,
        "a header and one key per app:\n{keys}"
    );
    let gxp: Vec<&str> = keys
        .lines()
        .find(|l| l.starts_with("gxp\t"))
        .expect("gxp")
        .split('\t')
        .collect();
    assert_eq!((gxp[3], gxp[4]), ("1", "active"));
    assert_eq!(gxp[2].len(), 64);

    let out = bin()
        .args(["--data-dir", d, "verify", "nope"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no app named \"nope\""));

    // While another process holds the directory, a clear error, not a hang.
    let holder = ledger::Ledger::open_dir(dir.path()).expect("hold");
    let out = bin().args(["--data-dir", d, "apps"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use by another process"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(holder);
}

#[test]
fn serve_answers_health_and_metrics_and_stops_cleanly_on_sigterm_keeping_acknowledged_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf8");
    // The first admin, as docs/API.md says a deployment creates it.
    let added = add_user(d, "gxp", "alice", "admin", "a-long-admin-password");
    assert!(added.contains("created alice (admin) in gxp"), "{added}");

    let port = free_port();
    let mut server = bin()
        .args([
            "--data-dir",
            d,
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--checkpoint-every",
            "1",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn server");
    let mut ready = false;
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ready, "the server did not listen");
    let (status, body) = http(port, "GET", "/health", &[], "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    // The projection catch-up runs on its own thread, below the request path's priority.
    #[cfg(target_os = "linux")]
    assert_eq!(thread_nice(server.id(), "projection-sync"), Some(10));
    let app = [
        ("X-Parse-Application-Id", "gxp"),
        ("Content-Type", "application/json"),
    ];
    let (status, body) = http(
        port,
        "POST",
        "/parse/login",
        &app,
        r#"{"username":"alice","password":"a-long-admin-password"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let token: serde_json::Value = serde_json::from_str(&body).expect("json");
    let token = token["sessionToken"].as_str().expect("token").to_string();
    let mut headers = app.to_vec();
    headers.push(("X-Parse-Session-Token", &token));
    let (status, body) = http(
        port,
        "POST",
        "/parse/classes/SystemAudit",
        &headers,
        r#"{"entityType":"Server","entityId":"s1","action":"start","actor":{"__type":"Pointer","className":"_User","objectId":"missing"},"occurredAt":{"__type":"Date","iso":"2026-11-23T00:00:00.000Z"}}"#,
    );
    assert_eq!(status, 400, "a pointer to nobody: {body}");
    // The schedule signs a checkpoint of the grown log (listing makes none itself).
    let bearer = format!("Bearer {token}");
    let mut sizes = Vec::new();
    for _ in 0..50 {
        let (status, body) = http(
            port,
            "GET",
            "/ledger/gxp/checkpoints",
            &[("Authorization", &bearer)],
            "",
        );
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        sizes = v["checkpoints"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|c| c["size"].as_u64())
            .collect();
        if sizes.last().is_some_and(|s| *s >= 4) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        sizes.last().is_some_and(|s| *s >= 4),
        "no periodic checkpoint: {sizes:?}"
    );
    let (status, metrics) = http(port, "GET", "/metrics", &[], "");
    assert_eq!(status, 200);
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    assert!(metrics.contains("ledger_appends_total"), "{metrics}");

    let pid = server.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = server.wait().expect("wait");
    assert!(status.success(), "exit status {status:?}");
    // Everything acknowledged is there and verifies.
    let out = bin()
        .args(["--data-dir", d, "verify", "gxp"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = bin().args(["--data-dir", d, "apps"]).output().expect("run");
    // genesis, schema, alice, her login, a refused create writes nothing.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("gxp\t4 events"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The nice value of process `pid`'s thread named `name` (from `/proc`), if it has one.
#[cfg(target_os = "linux")]
fn thread_nice(pid: u32, name: &str) -> Option<i64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    tasks.flatten().find_map(|t| {
        let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
        if comm.trim_end() != name {
            return None;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
        // Fields after the parenthesised name, from the third (state) on; nice is the 19th.
        let rest = &stat[stat.rfind(')')? + 1..];
        rest.split_whitespace().nth(16)?.parse().ok()
    })
}
