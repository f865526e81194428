//! A bounded append load for profiling: `cargo run --release -p benches --example
//! append_load -- CLIENTS EVENTS`. Prints events/s.

fn main() {
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let events: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let (l, _dir, approver) = benches::sled_ledger();
    let start = std::time::Instant::now();
    benches::append_concurrently(&l, &approver, clients, events);
    let secs = start.elapsed().as_secs_f64();
    println!("{clients} clients, {events} durable appends in {secs:.2} s: {:.0} events/s", events as f64 / secs);
}
