//! Brings a data directory's projection store (`DIR/projections`) up to date with a
//! rebuild of every app, as a server leaves it: the set-up of the replay tool's
//! data-directory load runs (benches/load/replay.sh). Prints the time taken.
//!
//! `cargo run --release -p benches --example project_dir -- DIR`

#![allow(clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ledger::store::SledStore;
use ledger::Ledger;
use projections::Projections;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: project_dir DIR"));
    let began = Instant::now();
    let store = SledStore::open(&dir.join("store")).expect("store");
    let ledger = Arc::new(Ledger::open_read_only(Arc::new(store)).expect("ledger"));
    let p = Projections::open_dir(ledger.clone(), &dir.join("projections")).expect("projections");
    let mut events = 0;
    for app in ledger.apps() {
        events += p.rebuild(&app, None).expect("rebuild").events;
    }
    p.flush().expect("flush");
    println!(
        "projected {events} events in {:.1} s",
        began.elapsed().as_secs_f64()
    );
}
