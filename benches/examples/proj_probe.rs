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
    let ledger = Arc::new(Ledger::open_dir(&dir.join("ledger")).expect("open"));
    let tmp;
    let p = if op == "sync" {
        tmp = tempfile::tempdir_in(dir.parent().expect("parent")).expect("tmp");
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
                let a = p
                    .find("gxp", "ValidationLog", &params, At::Now)
                    .expect("find");
                format!("{} results", a.results.len())
            }
            "sync" => {
                let mut n = 0;
                for app in ledger.apps() {
                    n += p.sync(&app).expect("sync");
                }
                format!("{n} events")
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
