//! The internal (storage) encoding of an event: postcard, versioned by a leading byte.
//! Internal only: the public contract is the canonical hash input and the export format.

use serde::Deserialize;

use crate::canonical::Fields;
use crate::event::{Event, EventKind, Hash32, KeyId};
use crate::time::Timestamp;
use crate::verify::Summary;

/// The version byte of the current stored form.
const STORED_V1: u8 = 1;

/// Encodes an event for storage.
pub fn encode(e: &Event) -> Result<Vec<u8>, String> {
    postcard::to_extend(e, vec![STORED_V1])
        .map_err(|err| format!("cannot encode event {}: {err}", e.seq))
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

/// A stored event read in place: strings and payload borrow from the stored bytes. Same
/// field order and encoding as [`Event`], so it decodes the same bytes.
#[derive(Deserialize)]
struct EventRef<'a> {
    app: &'a str,
    seq: u64,
    id: [u8; 16],
    recorded_at: Timestamp,
    #[serde(borrow)]
    actor: ActorRef<'a>,
    idempotency_key: Option<&'a str>,
    reason: Option<&'a str>,
    kind: EventKind,
    #[serde(borrow)]
    subject: Option<SubjectRef<'a>>,
    payload: Option<&'a [u8]>,
    payload_digest: Hash32,
    prev_hash: Hash32,
    key_id: KeyId,
    hash: Hash32,
    signature: &'a [u8],
}

#[derive(Deserialize)]
struct ActorRef<'a> {
    user_id: &'a str,
    username: &'a str,
    role: &'a str,
}

#[derive(Deserialize)]
struct SubjectRef<'a> {
    class: &'a str,
    object_id: &'a str,
}

/// Reads stored bytes straight into a verification summary, without copying strings.
pub(crate) fn summarize(app: &str, bytes: &[u8]) -> Result<Summary, String> {
    let (&version, body) = bytes.split_first().ok_or("empty record")?;
    if version != STORED_V1 {
        return Err(format!("unknown stored-event version {version}"));
    }
    let (e, rest): (EventRef<'_>, &[u8]) =
        postcard::take_from_bytes(body).map_err(|e| format!("undecodable event record: {e}"))?;
    if !rest.is_empty() {
        return Err(format!(
            "{} trailing bytes after the event record",
            rest.len()
        ));
    }
    let signature: [u8; 64] = e
        .signature
        .try_into()
        .map_err(|_| format!("a signature of {} bytes", e.signature.len()))?;
    let fields = Fields {
        app: e.app,
        seq: e.seq,
        id: &e.id,
        recorded_at: e.recorded_at.0,
        actor: (e.actor.user_id, e.actor.username, e.actor.role),
        idempotency_key: e.idempotency_key,
        reason: e.reason,
        kind: e.kind.name(),
        subject: e.subject.as_ref().map(|s| (s.class, s.object_id)),
        payload_digest: &e.payload_digest,
        prev_hash: &e.prev_hash,
        key_id: &e.key_id.0,
    };
    Ok(Summary::new(
        app, fields, e.kind, e.payload, e.hash, signature,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_borrowed_view_reads_what_the_owned_form_wrote() {
        let ledger = {
            let clock = std::sync::Arc::new(crate::ManualClock::new(Timestamp(0)));
            crate::Ledger::open(crate::LedgerConfig::in_memory([2; 32], clock)).expect("open")
        };
        ledger.ensure_builtin_apps().expect("apps");
        for r in ledger.store().scan("gxp", 1) {
            let (_, bytes) = r.expect("scan");
            let owned = decode(&bytes).expect("decode");
            let viewed = summarize("gxp", &bytes).expect("summarize");
            let direct = Summary::of_event("gxp", &owned);
            assert_eq!(format!("{viewed:?}"), format!("{direct:?}"));
            assert_eq!(viewed.computed, owned.hash);
        }
    }
}
