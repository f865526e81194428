//! Crash safety of the projections: a child process appends and keeps its projections in
//! step, and is killed with SIGKILL — once right after appends its projections have not
//! caught up with, then at random moments. After reopening, the projections catch up and
//! equal a rebuild from the log, now and as of past points.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger::{Actor, AppendRequest, Command, Ledger};
use projections::{At, Projections, Record};
use serde_json::{json, Map, Value};

const CHILD_ENV: &str = "AUDIT_LEDGER_PROJECTION_CRASH_DIR";
const STALL_ENV: &str = "AUDIT_LEDGER_PROJECTION_CRASH_STALL";

fn open(dir: &Path) -> (Arc<Ledger>, Projections) {
    let l = Arc::new(Ledger::open_dir(&dir.join("ledger")).expect("ledger"));
    l.ensure_builtin_apps().expect("apps");
    let p = Projections::open_dir(l.clone(), &dir.join("projections")).expect("projections");
    (l, p)
}

fn req(command: Command) -> AppendRequest {
    AppendRequest {
        app: "gxp".into(),
        actor: Actor::system(),
        idempotency_key: None,
        reason: Some("crash test".into()),
        command,
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// The child: appends creates, updates and deletes, syncing the projections every few
/// appends (or, when stalled, stops syncing and says so).
#[test]
#[ignore = "the child half of the projection crash test"]
fn projection_crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let stall = std::env::var(STALL_ENV).is_ok();
    let (l, p) = open(Path::new(&dir));
    let user = l
        .append(req(Command::CreateRecord {
            class: "_User".into(),
            object_id: None,
            fields: obj(json!({"username": format!("u{}", l.head("gxp").map_or(0, |h| h.seq))})),
        }))
        .expect("user")
        .event
        .subject
        .expect("subject")
        .object_id;
    let mut live: Vec<String> = Vec::new();
    let mut out = std::io::stdout();
    for i in 0..100_000u64 {
        let a = if i % 3 == 2 && !live.is_empty() {
            let id = live[(i as usize * 7) % live.len()].clone();
            l.append(req(Command::UpdateRecord {
                class: "ValidationLog".into(),
                object_id: id,
                set: obj(json!({"result": format!("r{i}")})),
                unset: vec!["evidenceUrl".into()],
            }))
        } else if i % 11 == 10 && !live.is_empty() {
            let id = live.swap_remove((i as usize) % live.len());
            l.append(req(Command::DeleteRecord {
                class: "ValidationLog".into(),
                object_id: id,
            }))
        } else {
            let a = l.append(req(Command::CreateRecord {
                class: "ValidationLog".into(),
                object_id: None,
                fields: obj(json!({
                    "protocolId": format!("VP-{i}"), "testedSystem": "HPLC-07", "result": "Pass",
                    "executedAt": {"__type": "Date", "iso": "2026-11-17T09:30:00.000Z"},
                    "approvedBy": {"__type": "Pointer", "className": "_User", "objectId": user},
                    "evidenceUrl": "https://evidence.example/1",
                })),
            }));
            if let Ok(a) = &a {
                live.push(a.event.subject.clone().expect("subject").object_id);
            }
            a
        };
        a.expect("append");
        if stall && i == 300 {
            let _ = writeln!(out, "READY {}", p.applied("gxp").unwrap_or(0));
            let _ = out.flush();
            std::thread::sleep(Duration::from_secs(600));
        }
        if stall && i >= 200 {
            continue;
        }
        if i % 5 == 4 {
            let s = p.sync("gxp").expect("sync");
            let _ = writeln!(out, "SYNCED {s}");
            let _ = out.flush();
        }
    }
}

fn view(p: &Projections, at: At) -> Vec<Record> {
    p.class_at("gxp", "ValidationLog", at).expect("read").value
}

/// Reopens, catches up, and checks the projections against a rebuild.
fn check_after_crash(dir: &Path, round: usize) {
    let (l, p) = open(dir);
    let head = l.head("gxp").expect("head").seq;
    let before = p.applied("gxp").expect("applied");
    assert!(before <= head, "round {round}: projection ahead of the log");
    assert_eq!(p.sync("gxp").expect("sync"), head);
    let points = [head / 3, head / 2, head.saturating_sub(5), head];
    let incremental: Vec<_> = points.iter().map(|s| view(&p, At::Seq(*s))).collect();
    let now = view(&p, At::Now);
    p.rebuild("gxp", None).expect("rebuild");
    assert_eq!(
        now,
        view(&p, At::Now),
        "round {round}: current view != rebuild"
    );
    for (s, v) in points.iter().zip(&incremental) {
        assert_eq!(
            *v,
            view(&p, At::Seq(*s)),
            "round {round}: as of {s} != rebuild"
        );
    }
    let users = p.class_at("gxp", "_User", At::Now).expect("users").value;
    assert!(!users.is_empty());
    p.flush().expect("flush");
}

fn spawn_child(dir: &Path, stall: bool) -> std::process::Child {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Process::new(exe);
    cmd.args([
        "projection_crash_child",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, dir)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if stall {
        cmd.env(STALL_ENV, "1");
    }
    cmd.spawn().expect("spawn child")
}

/// Waits for a line starting with `prefix` (bounded), returning it.
fn wait_for(child: &mut std::process::Child, prefix: &str) -> Option<String> {
    let stdout = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let prefix = prefix.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with(&prefix) {
                let _ = tx.send(line);
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(120)).ok()
}

#[test]
fn projections_equal_a_rebuild_after_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");

    // Killed after 100 appends its projections never saw.
    let mut child = spawn_child(dir.path(), true);
    let ready = wait_for(&mut child, "READY").expect("the child got ready");
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let applied: u64 = ready
        .trim_start_matches("READY ")
        .parse()
        .expect("applied seq");
    let (l, p) = open(dir.path());
    assert!(
        p.applied("gxp").expect("applied") <= applied,
        "the projection cannot know more than it applied"
    );
    assert!(l.head("gxp").expect("head").seq >= applied + 100);
    drop(p);
    drop(l);
    check_after_crash(dir.path(), 0);

    // Then at random moments of steady appends and syncs.
    #[allow(clippy::disallowed_methods)] // a seed, not recorded time
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos() as u64)
        });
    println!("crash seed {seed}");
    let mut rng = seed;
    for round in 1..4 {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut child = spawn_child(dir.path(), false);
        let start = Instant::now();
        assert!(wait_for(&mut child, "SYNCED").is_some(), "the child synced");
        std::thread::sleep(Duration::from_millis(50 + (rng >> 33) % 600));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        assert!(start.elapsed() < Duration::from_secs(150));
        check_after_crash(dir.path(), round);
    }
}
