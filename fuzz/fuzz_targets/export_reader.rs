//! Fuzzes the readers of the NDJSON export (docs/FORMAT.md §4) with arbitrary bytes, as an
//! auditor's tool receives an export file from elsewhere.
//!
//! Input: any bytes, read as a whole export file (seeds: `fixtures/vectors/export.ndjson`,
//! short valid exports cut from it and from `fixtures/golden/replay/log.ndjson` with their
//! heads adjusted, one of two apps, and damaged copies: a bad signature, a missing event, a
//! truncated line, an empty section, a header naming apps the file lacks).
//!
//! Fed to:
//! - `ledger::export::parse_event_line` and `ledger::export::fast_reader_agrees` for every
//!   line that is UTF-8;
//! - `ledger::export::verify_export`, one input in four with `VerifyMode::Full` (keys and
//!   signatures too), the others with `VerifyMode::LinksOnly`;
//! - `ledger::import::import` into a fresh `ledger::store::MemoryStore`.
//!
//! Properties: none of them panics (a bad file is an `Err` or a failing report); the fast
//! reader of event lines reads every line to what serde_json reads, or declines it; an export
//! that imports reads back from the store: its head is the last event imported, and every
//! imported event is there, in order, and decodes. (That an event line written back parses
//! to the same event is `event_decode`'s property.)
#![no_main]

use std::io::Cursor;

use ledger::export::{fast_reader_agrees, parse_event_line, verify_export};
use ledger::import::import;
use ledger::store::{MemoryStore, Store};
use ledger::stored::decode;
use ledger::VerifyMode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Every line, also those outside any section (which the readers below skip or refuse).
    for line in data.split(|&b| b == b'\n') {
        if let Ok(text) = std::str::from_utf8(line) {
            let _ = parse_event_line(text);
            assert!(
                fast_reader_agrees(text),
                "the fast reader and serde_json read this line differently: {text}"
            );
        }
    }

    // Signature checks are slow here (the curve arithmetic is instrumented too): one input
    // in four (by length) is verified in full, with keys and signatures, the others by
    // places, links and hashes only.
    let mode = if data.len().is_multiple_of(4) {
        VerifyMode::Full
    } else {
        VerifyMode::LinksOnly
    };
    let _ = verify_export(Cursor::new(data), mode, None);

    let store = MemoryStore::new();
    if let Ok(imported) = import(Cursor::new(data), &store) {
        for app in imported {
            let head = store
                .head_record(&app.app)
                .expect("reading an imported head");
            assert_eq!(
                head.map(|(seq, _)| seq),
                (app.events > 0).then_some(app.events),
                "the imported head of {}",
                app.app
            );
            let mut next = 1;
            for item in store.scan(&app.app, 1) {
                let (seq, bytes) = item.expect("reading an imported event");
                assert_eq!(seq, next, "imported events out of order");
                let e = decode(&bytes).expect("an imported event decodes");
                assert_eq!((e.app.as_str(), e.seq), (app.app.as_str(), seq));
                next += 1;
            }
            assert_eq!(next - 1, app.events, "events imported into {}", app.app);
        }
    }
});
