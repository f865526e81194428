//! Projections on a generated log (SPEC §8): a 100,000-record class as of a past instant,
//! one record as of an instant, a where + order + limit 10 query, and a rebuild.
//!
//! The log (1,000,000 events by default; `PROJ_BENCH_EVENTS` to change) is generated once
//! by `fixtures::generate` into `target/bench-data/` and reused by later runs, and so is
//! its projection store (`projections/` beside it; a store of an older layout is cleared
//! on open and caught up again by the first sync, which the set-up times).

#![allow(clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fixtures::generate::{generate, GenConfig};
use ledger::{Ledger, LedgerConfig, ManualClock};
use projections::query::QueryParams;
use projections::{At, Projections};
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const APP: &str = "gxp";
const CLASS: &str = "ValidationLog";

/// The generated log's directory, generating it on first use.
fn log_dir(events: u64) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/bench-data")
        .join(format!("log-{events}-seed1"));
    if dir.join("complete").exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench data dir");
    let cfg = GenConfig::new(1, events, 90);
    let clock = Arc::new(ManualClock::new(cfg.start));
    let mut config = LedgerConfig::in_dir(&dir.join("ledger")).expect("store");
    config.clock = clock.clone();
    config.seed = Some([1; 32]);
    let ledger = Ledger::open(config).expect("ledger");
    let began = Instant::now();
    let stats = generate(&ledger, &clock, &cfg).expect("generate");
    eprintln!(
        "generated {} events in {:.1} s",
        stats.events,
        began.elapsed().as_secs_f64()
    );
    ledger.close();
    std::fs::write(dir.join("complete"), b"").expect("marker");
    dir
}

fn projections(c: &mut Criterion) {
    let events: u64 = std::env::var("PROJ_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = log_dir(events);
    let ledger = Arc::new(Ledger::open_dir(&dir.join("ledger")).expect("open"));
    let p = Projections::open_dir(ledger.clone(), &dir.join("projections")).expect("projections");
    let began = Instant::now();
    let mut total = 0;
    for app in ledger.apps() {
        total += p.sync(&app).expect("sync");
    }
    eprintln!(
        "projections in step with {total} events ({:.1} s)",
        began.elapsed().as_secs_f64()
    );
    let head = ledger.head(APP).expect("head");
    // A past instant: the time of the event at 95% of the app's chain.
    let past = ledger
        .event(APP, head.seq * 95 / 100)
        .expect("read")
        .expect("event")
        .recorded_at;
    let at = At::Time(past);
    let then = p.class_at(APP, CLASS, at).expect("class as of");
    eprintln!(
        "{APP}.{CLASS}: {} records as of {past} (seq {}); {} events in {APP}",
        then.value.len(),
        then.seq,
        head.seq
    );
    let ids: Vec<String> = then
        .value
        .iter()
        .step_by(997)
        .map(|r| r.object_id.clone())
        .collect();

    let mut g = c.benchmark_group("projections");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(then.value.len() as u64));
    g.bench_function("class_as_of_past_instant", |b| {
        b.iter(|| p.class_at(APP, CLASS, at).expect("class as of").value.len())
    });
    // The same class as of an instant half-way along the chain (more records read
    // through their older versions).
    let mid = ledger
        .event(APP, head.seq / 2)
        .expect("read")
        .expect("event")
        .recorded_at;
    let mid_n = p
        .class_at(APP, CLASS, At::Time(mid))
        .expect("class as of")
        .value
        .len();
    eprintln!("{APP}.{CLASS}: {mid_n} records as of {mid}");
    g.throughput(Throughput::Elements(mid_n as u64));
    g.bench_function("class_as_of_mid_instant", |b| {
        b.iter(|| {
            p.class_at(APP, CLASS, At::Time(mid))
                .expect("class as of")
                .value
                .len()
        })
    });
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("one_record_as_of_instant", |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            p.get(APP, CLASS, &ids[i], at).expect("get").value.is_some()
        })
    });
    let params = QueryParams {
        where_: Some(json!({"result": "Pass"})),
        order: Some("-executedAt".into()),
        limit: Some(10),
        ..QueryParams::default()
    };
    // The first query on (class, field) builds the in-memory index it walks: timed once
    // here, not in the samples below (which a long-running server's clients also see).
    let began = Instant::now();
    let first = p.find(APP, CLASS, &params, At::Now).expect("find");
    eprintln!(
        "first where+order+limit query (builds the index of executedAt): {:.1} ms, {} results",
        began.elapsed().as_secs_f64() * 1e3,
        first.results.len()
    );
    g.bench_function("where_order_limit10", |b| {
        b.iter(|| {
            p.find(APP, CLASS, &params, At::Now)
                .expect("find")
                .results
                .len()
        })
    });
    g.throughput(Throughput::Elements(head.seq));
    g.bench_function("rebuild_app", |b| {
        b.iter(|| p.rebuild(APP, None).expect("rebuild").events)
    });
    g.finish();
}

criterion_group!(benches, projections);
criterion_main!(benches);
