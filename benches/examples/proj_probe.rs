//! A probe of the projections on the generated bench log (`target/bench-data/`, made by
//! `cargo bench --bench projections`): times one operation, for `perf record`.
//!
//! `cargo run --release -p benches --example proj_probe -- <events> <op> [repeat]`, op one
//! of `rebuild`, `class_at`, `query`, `sync` (catch up a fresh projection store).

#![allow(clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ledger::Ledger;
use projections::query::QueryParams;
use projections::{At, Projections};
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let op = args.next().unwrap_or_else(|| "rebuild".into());
    let repeat: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/bench-data")
        .join(format!("log-{events}-seed1"));
    if op == "pages" {
        // The store's entries and bytes per tree (the store must not be open elsewhere).
        let db = sled::open(dir.join("projections")).expect("store");
        for name in db.tree_names() {
            let t = db.open_tree(&name).expect("tree");
            let (mut n, mut bytes) = (0u64, 0u64);
            for kv in t.iter() {
                let (k, v) = kv.expect("entry");
                n += 1;
                bytes += (k.len() + v.len()) as u64;
            }
            eprintln!(
                "{}: {n} entries, {bytes} bytes",
                String::from_utf8_lossy(&name)
            );
        }
        return;
    }
    let ledger = Arc::new(Ledger::open_dir(&dir.join("ledger")).expect("open"));
    let tmp = tempfile::tempdir_in(dir.parent().expect("parent")).expect("tmp");
    let p = if op == "sync" {
        Projections::open_dir(ledger.clone(), tmp.path()).expect("projections")
    } else {
        Projections::open_dir(ledger.clone(), &dir.join("projections")).expect("projections")
    };
    if op != "sync" {
        let t = Instant::now();
        for app in ledger.apps() {
            p.sync(&app).expect("sync");
        }
        eprintln!("caught up in {:.2} s", t.elapsed().as_secs_f64());
    }
    let head = ledger.head("gxp").expect("head");
    let past = ledger
        .event("gxp", head.seq * 95 / 100)
        .expect("read")
        .expect("event")
        .recorded_at;
    for _ in 0..repeat {
        let t = Instant::now();
        let cpu0 = cpu_seconds();
        let what = match op.as_str() {
            "rebuild" => {
                let s = p.rebuild("gxp", None).expect("rebuild");
                format!(
                    "{} events, {} versions, {} records",
                    s.events, s.versions, s.records
                )
            }
            "class_at" => {
                let v = p
                    .class_at("gxp", "ValidationLog", At::Time(past))
                    .expect("class_at");
                format!("{} records", v.value.len())
            }
            "query" => {
                let params = QueryParams {
                    where_: Some(json!({"result": "Pass"})),
                    order: Some("-executedAt".into()),
                    limit: Some(10),
                    ..QueryParams::default()
                };
                let rss0 = rss_kb();
                let a = p
                    .find("gxp", "ValidationLog", &params, At::Now)
                    .expect("find");
                format!(
                    "{} results; RSS {} kB → {} kB",
                    a.results.len(),
                    rss0,
                    rss_kb()
                )
            }
            "sync" => {
                let mut n = 0;
                for app in ledger.apps() {
                    n += p.sync(&app).expect("sync");
                }
                p.flush().expect("flush");
                format!("{n} events; store {} bytes on disk", disk(tmp.path()))
            }
            "scan" | "scanjson" | "scanraw" => {
                let mut n = 0u64;
                let mut bytes = 0usize;
                if op == "scanraw" {
                    for r in ledger.store().scan("gxp", 1) {
                        let (_, b) = r.expect("raw");
                        bytes += b.len();
                        n += 1;
                    }
                } else {
                    for e in ledger.events("gxp", 1, head.seq).expect("events") {
                        let e = e.expect("event");
                        if op == "scanjson" {
                            if let Some(Ok(v)) = e.payload_json() {
                                bytes += v.as_object().map_or(0, |m| m.len());
                            }
                        }
                        bytes += e.payload.as_ref().map_or(0, |p| p.len());
                        n += 1;
                    }
                }
                format!("{n} events, {bytes} payload bytes")
            }
            "export" => {
                struct Count(u64);
                impl std::io::Write for Count {
                    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                        self.0 += b.len() as u64;
                        Ok(b.len())
                    }
                    fn flush(&mut self) -> std::io::Result<()> {
                        Ok(())
                    }
                }
                let mut c = Count(0);
                let n = ledger.export(&ledger.apps(), &mut c).expect("export");
                format!("{n} events exported, {} bytes", c.0)
            }
            other => panic!("unknown op {other}"),
        };
        let s = t.elapsed().as_secs_f64();
        eprintln!(
            "{op}: {what} in {:.3} s (cpu {:.2} s)",
            s,
            cpu_seconds() - cpu0
        );
    }
}

/// User + system CPU time of this process so far (from /proc, 10 ms ticks).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// Bytes of the files under `p`.
fn disk(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|d| {
            d.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => disk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Resident set size of this process, kB.
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
