//! The internal (storage) encoding of an event: postcard, versioned by a leading byte.
//! Internal only: the public contract is the canonical hash input and the export format.

use crate::event::Event;

/// The version byte of the current stored form.
const STORED_V1: u8 = 1;

/// Encodes an event for storage.
pub fn encode(e: &Event) -> Vec<u8> {
    let out = vec![STORED_V1];
    // postcard to an extendable Vec cannot fail for these types; fall back to an empty
    // body (which decodes as corrupt, loudly) rather than panic.
    match postcard::to_extend(e, out) {
        Ok(v) => v,
        Err(_) => vec![STORED_V1],
    }
}

/// Decodes stored bytes; any trailing byte, unknown version or malformed field is an error.
pub fn decode(bytes: &[u8]) -> Result<Event, String> {
    let (&version, body) = bytes.split_first().ok_or("empty record")?;
    if version != STORED_V1 {
        return Err(format!("unknown stored-event version {version}"));
    }
    let (event, rest): (Event, &[u8]) =
        postcard::take_from_bytes(body).map_err(|e| format!("undecodable event record: {e}"))?;
    if !rest.is_empty() {
        return Err(format!(
            "{} trailing bytes after the event record",
            rest.len()
        ));
    }
    Ok(event)
}
