//! A bounded append load for profiling: `cargo run --release -p benches --example
//! append_load -- CLIENTS EVENTS [pipelined]`. With `pipelined`, one thread keeps CLIENTS
//! appends in flight (submit, then await the oldest) instead of CLIENTS blocking threads.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let events: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let pipelined = args.next().as_deref() == Some("pipelined");
    let (l, _dir, approver) = benches::sled_ledger();
    let start = std::time::Instant::now();
    if pipelined {
        benches::append_in_flight(&l, &approver, clients, events);
    } else {
        benches::append_concurrently(&l, &approver, clients, events);
    }
    let secs = start.elapsed().as_secs_f64();
    let mode = if pipelined {
        "in flight (one thread)"
    } else {
        "blocking clients"
    };
    println!(
        "{clients} {mode}, {events} durable appends in {secs:.2} s: {:.0} events/s",
        events as f64 / secs
    );
}
