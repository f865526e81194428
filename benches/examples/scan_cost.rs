//! Splits the cost of links-only verification of a store: raw sled scan, postcard decode,
//! event hash. `cargo run --release -p benches --example scan_cost -- EVENTS`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let (l, _dir, _events) = benches::chain_from_args();
    let store = l.store();
    let t = std::time::Instant::now();
    let raw: Vec<(u64, Vec<u8>)> = store.scan("gxp", 1).map(|r| r.expect("scan")).collect();
    let scan = t.elapsed().as_secs_f64();
    let n = raw.len() as f64;
    let t = std::time::Instant::now();
    let decoded: Vec<ledger::Event> = raw
        .iter()
        .map(|(_, b)| ledger::stored::decode(b).expect("decode"))
        .collect();
    let decode = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let mut x = 0u8;
    for e in &decoded {
        x ^= ledger::canonical::event_hash(e)[0];
        if let Some(p) = &e.payload {
            x ^= ledger::canonical::payload_digest(p)[0];
        }
    }
    let hash = t.elapsed().as_secs_f64();
    println!(
        "{x} per event: scan {:.2} us, decode {:.2} us, hash+digest {:.2} us",
        scan / n * 1e6,
        decode / n * 1e6,
        hash / n * 1e6
    );
}
