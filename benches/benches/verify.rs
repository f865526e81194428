//! Verification of a stored chain (SPEC §8: full ≥ 60,000 events/s on 2 cores; hashes and
//! links only ≥ 1,000,000 events/s), and of the same chain as an NDJSON export.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ledger::{VerifyMode, VerifyPolicy};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Events in the chain under test (plus the app's genesis, schema and one user).
const EVENTS: u64 = 200_000;

fn verification(c: &mut Criterion) {
    let (l, _dir, approver) = benches::sled_ledger();
    benches::append_concurrently(&l, &approver, 256, EVENTS);
    let head = l.head("gxp").expect("head").seq;
    let mut export = Vec::new();
    l.export(&["gxp".to_string()], &mut export).expect("export");

    let mut g = c.benchmark_group("verify");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    g.throughput(Throughput::Elements(head));
    for (name, mode) in [
        ("store_full", VerifyMode::Full),
        ("store_links_only", VerifyMode::LinksOnly),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let r = l
                    .verify("gxp", mode, VerifyPolicy::default())
                    .expect("verify");
                assert!(r.ok() && r.verified == head);
            })
        });
    }
    for (name, mode) in [
        ("export_full", VerifyMode::Full),
        ("export_links_only", VerifyMode::LinksOnly),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let r =
                    ledger::export::verify_export(export.as_slice(), mode, None).expect("parse");
                assert!(r[0].ok() && r[0].verified == head);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
