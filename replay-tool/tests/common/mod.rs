//! Shared by the replay tool's tests: the golden log (a deterministic generated log,
//! committed under fixtures/golden/replay as the auditor's export), and running the
//! `ledger-replay` binary.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use std::net::SocketAddr;

use api::accounts::{create_user, NewUser};
use api::{PasswordCost, Server, ServerConfig};
use fixtures::generate::{generate, GenConfig};
use ledger::{Actor, Ledger, LedgerConfig, ManualClock};
use serde_json::json;

/// The password of the accounts [`start`] adds.
pub const PASSWORD: &str = "auditor-password-1";

/// The golden files' folder.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/golden/replay")
}

/// The generation behind the golden log: 3 days, 400 events, seed 11.
pub fn golden_config() -> GenConfig {
    GenConfig::new(11, 400, 3)
}

/// Generates the golden log into `ledger` (opened on `clock`).
pub fn fill(ledger: &Ledger, clock: &ManualClock) {
    generate(ledger, clock, &golden_config()).expect("generate");
}

/// The golden log, generated in memory and exported.
pub fn generated_export() -> Vec<u8> {
    let cfg = golden_config();
    let clock = Arc::new(ManualClock::new(cfg.start));
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&cfg.seed.to_le_bytes());
    let ledger = Ledger::open(LedgerConfig::in_memory(seed, clock.clone())).expect("open");
    fill(&ledger, &clock);
    let mut out = Vec::new();
    ledger.export(&ledger.apps(), &mut out).expect("export");
    out
}

/// Whether golden files are to be rewritten (`UPDATE_GOLDEN=1`) instead of compared.
pub fn updating() -> bool {
    std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1")
}

/// The golden log's path, (re)written first when updating.
pub fn golden_log() -> PathBuf {
    let path = golden_dir().join("log.ndjson");
    if updating() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, generated_export()).unwrap();
    }
    path
}

/// Runs `ledger-replay` with `args` in `cwd`.
pub fn replay(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ledger-replay"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run ledger-replay")
}

/// Runs it and expects success; returns standard output.
pub fn replay_ok(cwd: &Path, args: &[&str]) -> String {
    let out = replay(cwd, args);
    assert!(
        out.status.success(),
        "ledger-replay {args:?} failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// The golden log's content written into a data directory (its own keys: the same
/// records, not the same signatures).
pub fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cfg = golden_config();
    let clock = Arc::new(ManualClock::new(cfg.start));
    let mut config = LedgerConfig::in_dir(dir.path()).unwrap();
    config.clock = clock.clone();
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&cfg.seed.to_le_bytes());
    config.seed = Some(seed);
    let ledger = Ledger::open(config).unwrap();
    fill(&ledger, &clock);
    ledger.close();
    dir
}

/// A server on loopback over a data directory, with an `auditor` and an `operator`
/// (field_staff) account in every app; stopped when dropped.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn start(dir: &std::path::Path) -> Running {
    let mut config = ServerConfig::new(dir);
    config.password_cost = PasswordCost::for_tests();
    config.checkpoint_interval = None;
    let server = Server::open(config).expect("server");
    for app in ["gxp", "hipaa", "iso14001", "iso9001", "training"] {
        for (name, role) in [("auditor", "auditor"), ("operator", "field_staff")] {
            create_user(
                server.state(),
                app,
                Some(Actor::system()),
                None,
                NewUser {
                    username: name.into(),
                    password: PASSWORD.into(),
                    fields: json!({"role": role}).as_object().unwrap().clone(),
                },
            )
            .expect("user");
        }
    }
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            server
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
    });
    let addr = addr_rx.recv().unwrap();
    Running {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    }
}
