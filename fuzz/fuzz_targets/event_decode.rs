//! Fuzzes the decoder of the stored form of events (`ledger::stored::decode`, i.e.
//! `ledger::codec::decode`: a version byte, then postcard) with arbitrary bytes, as read
//! back from a damaged or hostile store.
//!
//! Input: any bytes (seeds: the stored encodings of the events of
//! `fixtures/vectors/export.ndjson`, one of each kind, and of three events of
//! `fixtures/golden/replay/log.ndjson` with a reason or another kind).
//!
//! Properties: decoding never panics; whatever decodes re-encodes (`encode`) and that
//! encoding decodes to the same event (the bytes themselves need not come back: the
//! stored form is not promised to be canonical); its export line
//! (`ledger::export::event_line`) parses back (`parse_event_line`) to the same event
//! whenever the payload is UTF-8 (the export writes payloads as text, so it is lossless
//! then).
#![no_main]

use ledger::export::{event_line, parse_event_line};
use ledger::stored::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = decode(data) else {
        return;
    };
    let bytes = encode(&event).expect("a decoded event encodes");
    let again = decode(&bytes).expect("an encoded event decodes");
    assert_eq!(again, event, "encode/decode round trip changed the event");

    let utf8_payload = event
        .payload
        .as_deref()
        .is_none_or(|p| std::str::from_utf8(p).is_ok());
    if utf8_payload {
        let line = event_line(&event);
        let parsed = parse_event_line(&line)
            .unwrap_or_else(|e| panic!("its own export line does not parse: {e}\n{line}"));
        assert_eq!(parsed, event, "export line round trip changed the event");
    }
});
