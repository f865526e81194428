//! A probe of sled's ingest cost for the projection store's shapes: `n` values of `size`
//! bytes under random 20-byte keys, into a fresh tree, by the given strategy.
//!
//! `cargo run --release -p benches --example sled_ingest -- <n> <size> <batch|sorted|insert|insert2> [chunk] [mode]`

#![allow(clippy::expect_used, missing_docs)]

use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = a.first().and_then(|s| s.parse().ok()).unwrap_or(300_000);
    let size: usize = a.get(1).and_then(|s| s.parse().ok()).unwrap_or(700);
    let how = a.get(2).cloned().unwrap_or_else(|| "batch".into());
    let chunk: usize = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(8192);
    let mode = a.get(4).cloned().unwrap_or_default();
    let dir = tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")).expect("tmp");
    let mut cfg = sled::Config::new().path(dir.path());
    if mode.contains("ht") {
        cfg = cfg.mode(sled::Mode::HighThroughput);
    }
    if mode.contains("noflush") {
        cfg = cfg.flush_every_ms(None);
    }
    if mode.contains("seg") {
        cfg = cfg.segment_size(8 << 20);
    }
    let db = cfg.open().expect("open");
    let t = db.open_tree("t").expect("tree");
    // Pseudo-random keys: "V" + 10 random alnum + 0 + seq(8).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut keys: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut k = vec![b'V'];
            for _ in 0..10 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                k.push(b'a' + (x % 26) as u8);
            }
            k.push(0);
            k.extend_from_slice(&(i as u64).to_be_bytes());
            k
        })
        .collect();
    if how == "sorted" {
        keys.sort();
    }
    let value = vec![7u8; size];
    let began = Instant::now();
    match how.as_str() {
        "batch" | "sorted" => {
            for c in keys.chunks(chunk) {
                let mut b = sled::Batch::default();
                for k in c {
                    b.insert(k.as_slice(), value.as_slice());
                }
                t.apply_batch(b).expect("batch");
            }
        }
        "insert" => {
            for k in &keys {
                t.insert(k.as_slice(), value.as_slice()).expect("insert");
            }
        }
        "insert2" => {
            let t2 = db.open_tree("t2").expect("tree");
            let (a, b) = keys.split_at(n / 2);
            std::thread::scope(|s| {
                s.spawn(|| {
                    for k in a {
                        t.insert(k.as_slice(), value.as_slice()).expect("insert");
                    }
                });
                s.spawn(|| {
                    for k in b {
                        t2.insert(k.as_slice(), value.as_slice()).expect("insert");
                    }
                });
            });
        }
        other => panic!("{other}"),
    }
    let ins = began.elapsed().as_secs_f64();
    let began = Instant::now();
    let mut m = 0usize;
    for kv in t.iter() {
        m += kv.expect("kv").1.len();
    }
    let scan = began.elapsed().as_secs_f64();
    db.flush().expect("flush");
    let bytes: u64 = walk(dir.path());
    println!(
        "{how} n={n} size={size} chunk={chunk} mode={mode}: insert {:.2} µs each ({ins:.2} s); scan {:.2} µs each ({m} B); disk {:.0} MB",
        ins * 1e6 / n as f64,
        scan * 1e6 / n as f64,
        bytes as f64 / 1e6
    );
}

fn walk(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|d| {
            d.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
