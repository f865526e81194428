//! A probe of the projections' incremental path at a server's pace: appends `n` events
//! (ValidationLog creates, and updates of earlier records) to an in-memory ledger in groups
//! of `group`, and syncs the projections (in a temporary sled store) after each group.
//! Prints the time spent in `sync` per event.
//!
//! `cargo run --release -p benches --example proj_incremental -- [n] [group]`

#![allow(clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger::{AppendRequest, Command, Ledger, LedgerConfig, ManualClock, Timestamp};
use projections::Projections;
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let group: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let clock = Arc::new(ManualClock::new(Timestamp(1_795_435_200_000_000)));
    let ledger =
        Arc::new(Ledger::open(LedgerConfig::in_memory([7; 32], clock.clone())).expect("ledger"));
    ledger.ensure_builtin_apps().expect("apps");
    let p = Projections::temporary(ledger.clone()).expect("projections");
    let approver = ledger
        .append(benches::create_request(
            "_User",
            json!({"username": "probe.manager", "role": "manager"}),
        ))
        .expect("user")
        .event
        .subject
        .expect("subject")
        .object_id;
    let mut ids: Vec<String> = Vec::new();
    let mut in_sync = Duration::ZERO;
    let mut appended = 0u64;
    while appended < n {
        let pending: Vec<_> = (0..group)
            .map(|i| {
                let k = appended + i;
                if k % 3 == 2 && !ids.is_empty() {
                    let id = ids[(k as usize * 7919) % ids.len()].clone();
                    ledger.submit(AppendRequest {
                        command: Command::UpdateRecord {
                            class: "ValidationLog".into(),
                            object_id: id,
                            set: json!({"result": format!("r{k}")})
                                .as_object()
                                .cloned()
                                .unwrap_or_default(),
                            unset: vec![],
                        },
                        ..benches::validation_log(&approver, k)
                    })
                } else {
                    ledger.submit(benches::validation_log(&approver, k))
                }
            })
            .collect();
        for a in pending {
            let a = a.wait().expect("append");
            if a.event.kind == ledger::EventKind::RecordCreated {
                ids.extend(a.event.subject.map(|s| s.object_id));
            }
        }
        appended += group;
        clock.advance(1_000);
        let t = Instant::now();
        p.sync("gxp").expect("sync");
        in_sync += t.elapsed();
    }
    println!(
        "{appended} events in groups of {group}: sync {:.1} µs per event ({:.0} events/s), {} records",
        in_sync.as_secs_f64() * 1e6 / appended as f64,
        appended as f64 / in_sync.as_secs_f64(),
        ids.len()
    );
}
