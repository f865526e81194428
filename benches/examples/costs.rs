//! Measures the physical costs behind an append on this machine: an ed25519 signature,
//! sled inserts in batches, and one sled flush + fsync. `cargo run --release -p benches
//! --example costs`.

use std::time::Instant;

/// What each key an event writes costs: the event alone, plus its version-index entry,
/// plus its record-state entry (random objectIds), with a flush and fsync per 64 events.
fn key_costs() {
    let value = vec![7u8; 700];
    for (label, v_on, r_on) in [
        ("E", false, false),
        ("E+V", true, false),
        ("E+V+R", true, true),
    ] {
        let dir = tempfile::tempdir().expect("tmp");
        let (db, tree, file) = benches::raw_sled(dir.path());
        let mut state = 0x2545F4914F6CDD1Du64;
        let n = 40_000u64;
        let (mut write, mut sync) = (0f64, 0f64);
        for chunk in 0..n / 64 {
            let t = Instant::now();
            let mut b = sled::Batch::default();
            for i in 0..64 {
                let seq = chunk * 64 + i;
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let mut k = vec![b'E'];
                k.extend_from_slice(&seq.to_be_bytes());
                b.insert(k, value.clone());
                if v_on {
                    let mut v = format!("VValidationLog\0{state:016x}\0").into_bytes();
                    v.extend_from_slice(&seq.to_be_bytes());
                    b.insert(v, vec![3u8]);
                }
                if r_on {
                    b.insert(
                        format!("RValidationLog\0{state:016x}").into_bytes(),
                        vec![0u8; 9],
                    );
                }
            }
            b.insert(b"H".to_vec(), vec![0u8; 40]);
            tree.apply_batch(b).expect("batch");
            write += t.elapsed().as_secs_f64();
            let t = Instant::now();
            db.flush().expect("flush");
            file.sync_all().expect("fsync");
            sync += t.elapsed().as_secs_f64();
        }
        println!("keys {label:>5}: write {:.1} us/event, flush+fsync {:.1} us/event (groups of 64, 700-byte events)", write * 1e6 / n as f64, sync * 1e6 / n as f64);
    }
}

fn main() {
    key_costs();
    let key = ledger::AppKey::from_seed(&[1; 32]);
    let n = 5000;
    let t = Instant::now();
    for i in 0..n {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&(i as u64).to_be_bytes());
        std::hint::black_box(key.sign_hash(&h));
    }
    println!(
        "ed25519 sign: {:.1} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );

    let dir = tempfile::tempdir().expect("tmp");
    let (db, tree, file) = benches::raw_sled(dir.path());
    let value = vec![7u8; 700];
    for group in [1usize, 8, 64, 512] {
        let rounds = 20_000 / group;
        let (mut write_us, mut flush_us, mut fsync_us) = (0f64, 0f64, 0f64);
        let mut seq = 0u64;
        for _ in 0..rounds {
            let t = Instant::now();
            let mut b = sled::Batch::default();
            for _ in 0..group {
                seq += 1;
                let mut k = vec![b'E'];
                k.extend_from_slice(&seq.to_be_bytes());
                b.insert(k, value.clone());
                let mut v = b"VValidationLog\0abcdefghij\0".to_vec();
                v.extend_from_slice(&seq.to_be_bytes());
                b.insert(v, vec![3u8]);
            }
            b.insert(b"H".to_vec(), vec![0u8; 40]);
            tree.apply_batch(b).expect("batch");
            write_us += t.elapsed().as_secs_f64() * 1e6;
            let t = Instant::now();
            db.flush().expect("flush");
            flush_us += t.elapsed().as_secs_f64() * 1e6;
            let t = Instant::now();
            file.sync_all().expect("fsync");
            fsync_us += t.elapsed().as_secs_f64() * 1e6;
        }
        let r = rounds as f64;
        println!(
            "group of {group:>3}: write {:.1} us/event, flush {:.0} us/group, fsync {:.0} us/group",
            write_us / r / group as f64,
            flush_us / r,
            fsync_us / r
        );
    }
}
