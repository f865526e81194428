//! The `audit-ledger` command end to end on a real data directory.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_audit-ledger"))
}

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
