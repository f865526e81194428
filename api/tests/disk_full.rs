//! A full disk and a read-only data directory, on a real file system: a small tmpfs the
//! test mounts, fills with a filler file and remounts read-only under a running server.
//!
//! 1. With the free-space reserve (`--min-free-mb`), writes are refused with 503 naming
//!    the directory and the figures before the disk is full, reads go on, `/health` says
//!    why, and writes resume by themselves once space returns.
//! 2. A data directory on a read-only file system: the server refuses to start, saying
//!    so, and starts with everything once it is writable. (Linux refuses to remount a file
//!    system read-only while a process holds files open for writing, so a server never
//!    sees its directory turn read-only under it; the ledger's own check for that case is
//!    tested with a simulated store in ledger/tests/faults.rs.)
//! 3. With no reserve, creates run until the disk is really full: the failure is a clear
//!    503 ("no space left on device"), every later write is refused, and after a restart
//!    with space every acknowledged create is there, the chain verifies and the served
//!    projections equal a rebuild.
//!
//! Mounting needs root (CAP_SYS_ADMIN); where it is not allowed the test says so loudly
//! and does nothing else.

mod process;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use process::{
    add_user, assert_verifies_and_projections_equal_rebuild, bin, free_port, http, login, try_http,
    wait_listening,
};
use serde_json::Value;

const PASSWORD: &str = "a-long-loader-password";
const MIB: u64 = 1024 * 1024;

/// A tmpfs mounted for the test, unmounted (lazily, in case a process still holds it)
/// when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size_mib: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, mode: &str) {
        let s = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.path())
            .status()
            .expect("mount");
        assert!(s.success(), "remount {mode}");
    }

    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(self.path())
            .output()
            .expect("df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df avail")
    }

    /// Fills the file system until `leave` bytes are free; the filler's path.
    fn fill_leaving(&self, leave: u64) -> PathBuf {
        let filler = self.path().join("filler");
        let size = self.free().saturating_sub(leave);
        let s = Command::new("fallocate")
            .args(["-l", &size.to_string()])
            .arg(&filler)
            .status()
            .expect("fallocate");
        assert!(s.success(), "fallocate");
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn mounted(size_mib: u64) -> Option<Tmpfs> {
    let t = Tmpfs::mount(size_mib);
    if t.is_none() {
        eprintln!(
            "SKIPPED: mounting a tmpfs is not allowed here (needs root); the disk-full and \
             read-only tests did not run"
        );
    }
    t
}

/// A running server, killed if the test fails before stopping it.
struct Server(Option<Child>);

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn serve(d: &Path, port: u16, min_free_mb: u64) -> Server {
    let child = bin()
        .arg("--data-dir")
        .arg(d)
        .args([
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--checkpoint-every",
            "0",
            "--min-free-mb",
            &min_free_mb.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn server");
    Server(Some(child))
}

/// Stops the server with SIGTERM (as an operator would), killing it after 20 s.
fn stop(mut server: Server) {
    let Some(mut server) = server.0.take() else {
        return;
    };
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = server.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = server.kill();
    let _ = server.wait();
}

fn body(n: usize) -> String {
    // About 2 KB a record, so that a few megabytes fill in a few thousand creates.
    format!(
        r#"{{"protocolId":"PQ-{n}-{}","testedSystem":"LIMS","result":"Pass","executedAt":{{"__type":"Date","iso":"2026-11-20T10:00:00.000Z"}}}}"#,
        "x".repeat(2000)
    )
}

fn headers(token: &str) -> [(&'static str, &str); 3] {
    [
        ("X-Parse-Application-Id", "gxp"),
        ("X-Parse-Session-Token", token),
        ("Content-Type", "application/json"),
    ]
}

fn create(port: u16, token: &str, n: usize) -> (u16, String) {
    http(
        port,
        "POST",
        "/parse/classes/ValidationLog",
        &headers(token),
        &body(n),
    )
}

fn health(port: u16) -> Value {
    let (status, b) = http(port, "GET", "/health", &[], "");
    assert_eq!(status, 200, "{b}");
    serde_json::from_str(&b).expect("json")
}

/// A number in the JSON answer to a GET.
fn get_u64(port: u16, token: &str, path: &str, field: &str) -> u64 {
    let (status, b) = http(port, "GET", path, &headers(token), "");
    assert_eq!(status, 200, "{b}");
    serde_json::from_str::<Value>(&b).expect("json")[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {b}"))
}

fn count(port: u16, token: &str) -> u64 {
    get_u64(
        port,
        token,
        "/parse/classes/ValidationLog?limit=0&count=1",
        "count",
    )
}

/// The last event of the chain, as an auditor's verification reports it.
fn head(port: u16, token: &str) -> u64 {
    get_u64(port, token, "/ledger/gxp/verify?mode=links-only", "lastSeq")
}

#[test]
fn below_the_reserve_or_read_only_writes_are_refused_and_resume_when_space_returns() {
    let Some(fs) = mounted(160) else { return };
    let d = fs.path().join("data");
    let ds = d.to_str().expect("utf8");
    add_user(ds, "gxp", "loader", "manager", PASSWORD);
    add_user(ds, "gxp", "inspector", "auditor", PASSWORD);
    let port = free_port();
    let server = serve(&d, port, 32);
    wait_listening(port);
    let token = login(port, "gxp", "loader", PASSWORD);
    let auditor = login(port, "gxp", "inspector", PASSWORD);
    for n in 0..20 {
        assert_eq!(create(port, &token, n).0, 201);
    }
    assert_eq!(health(port)["status"], "ok");
    let seq = head(port, &auditor);

    // 20 MiB left, the reserve is 32: refused before anything is written.
    let filler = fs.fill_leaving(20 * MIB);
    let (status, b) = create(port, &token, 100);
    assert_eq!(status, 503, "{b}");
    assert!(
        b.contains(fs.path().to_str().expect("utf8"))
            && b.contains("below the 32.0 MiB kept in reserve")
            && b.contains("nothing was recorded"),
        "{b}"
    );
    let h = health(port);
    assert_eq!(h["status"], "read_only", "{h}");
    assert!(
        h["writes_refused"]
            .as_str()
            .is_some_and(|w| w.contains("reserve")),
        "{h}"
    );
    assert_eq!(count(port, &token), 20, "reads are still served");
    assert_eq!(head(port, &auditor), seq, "a refused create wrote an event");

    // Space returns: writes resume by themselves.
    std::fs::remove_file(&filler).expect("rm filler");
    assert_eq!(create(port, &token, 101).0, 201);
    assert_eq!(health(port)["status"], "ok");

    assert_eq!(count(port, &token), 21);
    stop(server);
    assert_verifies_and_projections_equal_rebuild(&d);
}

#[test]
fn a_read_only_data_directory_is_refused_at_start_and_served_once_writable() {
    let Some(fs) = mounted(160) else { return };
    let d = fs.path().join("data");
    let ds = d.to_str().expect("utf8");
    add_user(ds, "gxp", "loader", "manager", PASSWORD);
    fs.remount("ro");
    let out = bin()
        .arg("--data-dir")
        .arg(&d)
        .args(["serve", "--bind", &format!("127.0.0.1:{}", free_port())])
        .output()
        .expect("serve");
    assert!(
        !out.status.success(),
        "a server started on a read-only directory"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(ds) && err.contains("read-only file system"),
        "{err}"
    );

    fs.remount("rw");
    let port = free_port();
    let server = serve(&d, port, 0);
    wait_listening(port);
    let token = login(port, "gxp", "loader", PASSWORD);
    assert_eq!(create(port, &token, 1).0, 201);
    stop(server);
}

#[test]
fn a_really_full_disk_loses_nothing_acknowledged_and_a_restart_with_space_recovers() {
    let Some(fs) = mounted(160) else { return };
    let d = fs.path().join("data");
    let ds = d.to_str().expect("utf8");
    add_user(ds, "gxp", "loader", "manager", PASSWORD);
    let port = free_port();
    let server = serve(&d, port, 0);
    wait_listening(port);
    let token = login(port, "gxp", "loader", PASSWORD);
    // A few megabytes left: a few thousand 2 KB creates fill them.
    let filler = fs.fill_leaving(4 * MIB);

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let refusals: Arc<Mutex<Vec<String>>> = Arc::default();
    let full = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(120);
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (token, acked, refusals, full) =
                (token.clone(), acked.clone(), refusals.clone(), full.clone());
            std::thread::spawn(move || {
                // Bounded: 20,000 creates a client, 120 s, or the disk is full.
                for n in 0..20_000 {
                    if full.load(Ordering::Relaxed) || Instant::now() > deadline {
                        return;
                    }
                    match try_http(
                        port,
                        "POST",
                        "/parse/classes/ValidationLog",
                        &headers(&token),
                        &body(c * 100_000 + n),
                    ) {
                        Ok((201, b)) => {
                            let v: Value = serde_json::from_str(&b).expect("json");
                            let id = v["objectId"].as_str().expect("objectId").to_string();
                            acked.lock().expect("lock").push(id);
                        }
                        Ok((status, b)) => {
                            assert_eq!(status, 503, "{b}");
                            refusals.lock().expect("lock").push(b);
                            full.store(true, Ordering::Relaxed);
                        }
                        Err(e) => panic!("the server died on a full disk: {e}"),
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    assert!(full.load(Ordering::Relaxed), "the disk never filled");
    let acked = acked.lock().expect("lock").clone();
    assert!(
        !acked.is_empty(),
        "nothing was created before the disk filled"
    );
    let refusals = refusals.lock().expect("lock").clone();
    assert!(
        refusals
            .iter()
            .any(|b| b.contains("no space left on device")),
        "no refusal names the cause: {refusals:?}"
    );
    // Every later write is refused, with the cause; reads and health still answer.
    let (status, b) = create(port, &token, 999_999);
    assert_eq!(status, 503, "{b}");
    assert!(
        b.contains("restarted") && b.contains("no space left on device"),
        "{b}"
    );
    let h = health(port);
    assert_eq!(h["status"], "read_only", "{h}");
    stop(server);

    // Space returns; a restart serves every acknowledged create.
    std::fs::remove_file(&filler).expect("rm filler");
    let port = free_port();
    let server = serve(&d, port, 0);
    wait_listening(port);
    let token = login(port, "gxp", "loader", PASSWORD);
    for id in &acked {
        let (status, b) = http(
            port,
            "GET",
            &format!("/parse/classes/ValidationLog/{id}"),
            &headers(&token),
            "",
        );
        assert_eq!(status, 200, "acknowledged {id} is lost: {b}");
    }
    assert!(count(port, &token) >= acked.len() as u64);
    assert_eq!(create(port, &token, 1_000_000).0, 201, "writes work again");
    stop(server);
    assert_verifies_and_projections_equal_rebuild(&d);
    eprintln!(
        "{} creates acknowledged before the disk filled, all present after the restart",
        acked.len()
    );
}
