//! The server killed with SIGKILL in the middle of a create load, three times on the same
//! data directory: every create that was answered 201 is there after the restart, the
//! chain verifies, and the served projections equal a rebuild from the log.

mod process;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use process::{
    add_user, assert_verifies_and_projections_equal_rebuild, bin, free_port, http, login, try_http,
    wait_listening,
};

const PASSWORD: &str = "a-long-loader-password";
const CLIENTS: usize = 6;

fn body(n: usize) -> String {
    format!(
        r#"{{"protocolId":"PQ-{n}","testedSystem":"LIMS","result":"Pass","executedAt":{{"__type":"Date","iso":"2026-11-20T10:00:00.000Z"}}}}"#
    )
}

fn serve(d: &str, port: u16) -> std::process::Child {
    bin()
        .args([
            "--data-dir",
            d,
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--checkpoint-every",
            "0",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn server")
}

#[test]
fn acknowledged_creates_survive_kill_9_of_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf8");
    add_user(d, "gxp", "loader", "manager", PASSWORD);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    for round in 0..3u64 {
        let port = free_port();
        let mut server = serve(d, port);
        wait_listening(port);
        let token = login(port, "gxp", "loader", PASSWORD);
        let stop = Arc::new(AtomicBool::new(false));
        let before = acked.lock().expect("lock").len();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (token, stop, acked) = (token.clone(), stop.clone(), acked.clone());
                std::thread::spawn(move || {
                    let headers = [
                        ("X-Parse-Application-Id", "gxp"),
                        ("X-Parse-Session-Token", token.as_str()),
                        ("Content-Type", "application/json"),
                    ];
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        match try_http(
                            port,
                            "POST",
                            "/parse/classes/ValidationLog",
                            &headers,
                            &body(c * 1_000_000 + n),
                        ) {
                            Ok((201, b)) => {
                                let v: serde_json::Value = serde_json::from_str(&b).expect("json");
                                let id = v["objectId"].as_str().expect("objectId").to_string();
                                acked.lock().expect("lock").push(id);
                            }
                            Ok((status, b)) => {
                                // Answered but not created: only a dying server may do that.
                                assert!(status == 0 || status >= 500, "unexpected {status}: {b}");
                            }
                            Err(_) => break, // the server is gone
                        }
                    }
                })
            })
            .collect();
        // Kill at a different moment each round, with writes in flight.
        std::thread::sleep(Duration::from_millis(400 + 300 * round));
        server.kill().expect("SIGKILL");
        server.wait().expect("wait");
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().expect("client");
        }
        let now = acked.lock().expect("lock").len();
        assert!(
            now > before,
            "round {round}: the load made no create before the kill"
        );
    }
    let acked = acked.lock().expect("lock").clone();

    // Restarted: every acknowledged create is there.
    let port = free_port();
    let mut server = serve(d, port);
    wait_listening(port);
    let token = login(port, "gxp", "loader", PASSWORD);
    let headers = [
        ("X-Parse-Application-Id", "gxp"),
        ("X-Parse-Session-Token", token.as_str()),
    ];
    for id in &acked {
        let (status, b) = http(
            port,
            "GET",
            &format!("/parse/classes/ValidationLog/{id}"),
            &headers,
            "",
        );
        assert_eq!(status, 200, "acknowledged {id} is lost: {b}");
    }
    let (_, b) = http(
        port,
        "GET",
        "/parse/classes/ValidationLog?limit=0&count=1",
        &headers,
        "",
    );
    let count = serde_json::from_str::<serde_json::Value>(&b).expect("json")["count"]
        .as_u64()
        .expect("count");
    assert!(
        count >= acked.len() as u64,
        "{count} records, {} acknowledged",
        acked.len()
    );
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(stopped.success());
    assert!(
        server.wait().expect("wait").success(),
        "a clean stop after SIGTERM"
    );

    // The chain verifies, and the projections the server kept (caught up) equal a
    // rebuild from the log.
    assert_verifies_and_projections_equal_rebuild(dir.path());
    eprintln!(
        "{} acknowledged creates over 3 kills, all present",
        acked.len()
    );
}
