//! Running the real `audit-ledger` binary in tests: the command, a free loopback port,
//! one HTTP/1.1 request over a plain socket, an account added as an operator would, and
//! the checks of a data directory after its server stopped.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// The `audit-ledger` command.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_audit-ledger"))
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Waits (at most 30 s) until something listens on `port`.
pub fn wait_listening(port: u16) {
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on port {port}");
}

/// One HTTP/1.1 request; (status, body), or the I/O error (a server that died).
pub fn try_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// [`try_http`] on a server that must be up.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    try_http(port, method, path, headers, body).expect("HTTP request")
}

/// Adds an account with `audit-ledger user add` (the password on stdin); returns stdout.
pub fn add_user(data_dir: &str, app: &str, username: &str, role: &str, password: &str) -> String {
    let mut add = bin()
        .args([
            "--data-dir",
            data_dir,
            "user",
            "add",
            "--app",
            app,
            "--username",
            username,
            "--role",
            role,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        let mut stdin = add.stdin.take().expect("stdin");
        stdin
            .write_all(format!("{password}\n").as_bytes())
            .expect("write");
    }
    let out = add.wait_with_output().expect("wait");
    assert!(out.status.success(), "user add failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Logs in; the session token.
pub fn login(port: u16, app: &str, username: &str, password: &str) -> String {
    let (status, body) = http(
        port,
        "POST",
        "/parse/login",
        &[
            ("X-Parse-Application-Id", app),
            ("Content-Type", "application/json"),
        ],
        &format!(r#"{{"username":"{username}","password":"{password}"}}"#),
    );
    assert_eq!(status, 200, "login {username}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["sessionToken"].as_str().expect("token").to_string()
}

/// After its server stopped: `audit-ledger verify` passes on `data_dir`, and the
/// projections the server kept (ValidationLog and _User of gxp) equal a rebuild from the
/// log.
pub fn assert_verifies_and_projections_equal_rebuild(data_dir: &Path) {
    let out = bin()
        .arg("--data-dir")
        .arg(data_dir)
        .arg("verify")
        .output()
        .expect("verify");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let store = ledger::store::SledStore::open(&data_dir.join("store")).expect("store");
    let ledger = Arc::new(ledger::Ledger::open_read_only(Arc::new(store)).expect("ledger"));
    let served = projections::Projections::open_dir(ledger.clone(), &data_dir.join("projections"))
        .expect("served");
    let fresh = projections::Projections::temporary(ledger).expect("fresh");
    fresh.rebuild("gxp", None).expect("rebuild");
    for class in ["ValidationLog", "_User"] {
        let a = served
            .class_at("gxp", class, projections::At::Now)
            .expect("served")
            .value;
        let b = fresh
            .class_at("gxp", class, projections::At::Now)
            .expect("fresh")
            .value;
        assert_eq!(a.len(), b.len(), "{class}");
        assert!(
            a == b,
            "{class}: the served projection differs from a rebuild"
        );
    }
}
