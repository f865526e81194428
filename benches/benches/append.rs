//! Durable signed appends, in process, group-committed (SPEC §8: ≥ 25,000 events/s):
//! 1, 64 and 256 client threads each waiting for its own acknowledgement, and one thread
//! keeping 1,024 appends in flight. Every append is acknowledged only after its group's
//! files are fdatasync'd and sled's flush and fsync.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn appends(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_durable");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(3));
    for clients in [1usize, 64, 256] {
        let (l, _dir, approver) = benches::sled_ledger();
        let batch: u64 = if clients == 1 { 500 } else { 20_000 };
        g.throughput(Throughput::Elements(batch));
        g.bench_function(format!("{clients}_clients"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    benches::append_concurrently(&l, &approver, clients, batch);
                }
                start.elapsed()
            })
        });
    }
    // One thread keeping 1,024 appends in flight (an async caller, as the server's tasks
    // are): group commit without a blocked thread per request.
    let (l, _dir, approver) = benches::sled_ledger();
    let batch = 20_000;
    g.throughput(Throughput::Elements(batch));
    g.bench_function("1024_in_flight", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                benches::append_in_flight(&l, &approver, 1024, batch);
            }
            start.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, appends);
criterion_main!(benches);
