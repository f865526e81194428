//! How one event changes one record: the single fold that incremental maintenance, rebuilds
//! and every test oracle share, so they cannot disagree.

use ledger::{Event, EventKind};
use serde_json::{Map, Value};

use crate::record::Record;

/// What an event does to its subject's state in a projection.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// The record now has this state (created or updated).
    Put(Record),
    /// The record was deleted; this was its last state.
    Delete(Record),
}

impl Effect {
    /// The record state the effect leaves (for a deletion: the state it had).
    pub fn record(&self) -> &Record {
        match self {
            Effect::Put(r) | Effect::Delete(r) => r,
        }
    }

    /// Whether the effect deletes the record.
    pub fn is_delete(&self) -> bool {
        matches!(self, Effect::Delete(_))
    }
}

/// Why an event could not be folded: the log contradicts itself, which verification of
/// the chain and the ledger's own checks rule out unless the store was altered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {seq}: {detail}")]
pub struct ApplyError {
    /// The event.
    pub seq: u64,
    /// What is wrong.
    pub detail: String,
}

/// The class an event changes, if it changes a record's data (created, updated, deleted;
/// `_User` records included).
pub fn changed_class(e: &Event) -> Option<&str> {
    if !changes_data(e.kind) {
        return None;
    }
    e.subject.as_ref().map(|s| s.class.as_str())
}

fn changes_data(kind: EventKind) -> bool {
    kind.is_data_change() || kind.deletes_subject()
}

/// Folds event `e` into `prev`, the subject's state before it (`None` if it had none).
/// Returns `None` for events that do not change record data.
pub fn apply(prev: Option<&Record>, e: &Event) -> Result<Option<Effect>, ApplyError> {
    if !changes_data(e.kind) {
        return Ok(None);
    }
    let err = |detail: String| ApplyError { seq: e.seq, detail };
    let subject = e
        .subject
        .as_ref()
        .ok_or_else(|| err(format!("{} without a subject", e.kind)))?;
    let name = || format!("{} {}", subject.class, subject.object_id);
    if e.kind.deletes_subject() {
        let last = prev.ok_or_else(|| err(format!("deletes {}, which is not live", name())))?;
        return Ok(Some(Effect::Delete(last.clone())));
    }
    let payload = payload_object(e).map_err(err)?;
    match e.kind {
        EventKind::RecordCreated | EventKind::UserCreated => {
            if prev.is_some() {
                return Err(err(format!("creates {}, which exists", name())));
            }
            let fields = match payload.get("fields") {
                Some(Value::Object(m)) => m.clone(),
                None => Map::new(),
                Some(_) => return Err(err("\"fields\" is not an object".into())),
            };
            Ok(Some(Effect::Put(Record {
                object_id: subject.object_id.clone(),
                created_at: e.recorded_at,
                updated_at: e.recorded_at,
                created_seq: e.seq,
                updated_seq: e.seq,
                fields,
            })))
        }
        _ => {
            let mut r = prev
                .ok_or_else(|| err(format!("updates {}, which is not live", name())))?
                .clone();
            if let Some(set) = payload.get("set") {
                let set = set
                    .as_object()
                    .ok_or_else(|| err("\"set\" is not an object".into()))?;
                for (k, v) in set {
                    r.fields.insert(k.clone(), v.clone());
                }
            }
            if let Some(unset) = payload.get("unset") {
                let unset = unset
                    .as_array()
                    .ok_or_else(|| err("\"unset\" is not an array".into()))?;
                for k in unset {
                    let k = k
                        .as_str()
                        .ok_or_else(|| err("\"unset\" holds a non-string".into()))?;
                    r.fields.remove(k);
                }
            }
            r.updated_at = e.recorded_at;
            r.updated_seq = e.seq;
            Ok(Some(Effect::Put(r)))
        }
    }
}

/// The payload as a JSON object. A lawfully removed payload reads as `{}`: the record's
/// fields from that event are gone, which is what the removal means.
fn payload_object(e: &Event) -> Result<Map<String, Value>, String> {
    match e.payload_json() {
        None => Ok(Map::new()),
        Some(Ok(Value::Object(m))) => Ok(m),
        Some(Ok(_)) => Err("payload is not a JSON object".into()),
        Some(Err(x)) => Err(format!("payload is not JSON: {x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::{Actor, KeyId, Subject, Timestamp};
    use serde_json::json;

    fn event(seq: u64, kind: EventKind, payload: Value) -> Event {
        Event {
            app: "a".into(),
            seq,
            id: [0; 16],
            recorded_at: Timestamp(seq as i64 * 10),
            actor: Actor::system(),
            idempotency_key: None,
            reason: None,
            kind,
            subject: Some(Subject {
                class: "C".into(),
                object_id: "o1".into(),
            }),
            payload: Some(payload.to_string().into_bytes()),
            payload_digest: [0; 32],
            prev_hash: [0; 32],
            key_id: KeyId([0; 8]),
            hash: [0; 32],
            signature: [0; 64],
        }
    }

    #[test]
    fn create_update_delete_fold() {
        let c = apply(
            None,
            &event(
                1,
                EventKind::RecordCreated,
                json!({"fields": {"a": 1, "b": 2}}),
            ),
        );
        let Ok(Some(Effect::Put(r))) = c else {
            panic!("{c:?}")
        };
        assert_eq!(
            r.fields,
            *json!({"a": 1, "b": 2}).as_object().expect("object")
        );
        let u = apply(
            Some(&r),
            &event(
                2,
                EventKind::RecordUpdated,
                json!({"set": {"a": 5}, "unset": ["b"]}),
            ),
        );
        let Ok(Some(Effect::Put(r2))) = u else {
            panic!("{u:?}")
        };
        assert_eq!(r2.fields, *json!({"a": 5}).as_object().expect("object"));
        assert_eq!((r2.created_seq, r2.updated_seq), (1, 2));
        assert_eq!(
            (r2.created_at, r2.updated_at),
            (Timestamp(10), Timestamp(20))
        );
        let d = apply(Some(&r2), &event(3, EventKind::RecordDeleted, json!({})));
        assert_eq!(d, Ok(Some(Effect::Delete(r2.clone()))));
        let s = apply(Some(&r2), &event(4, EventKind::RecordSigned, json!({})));
        assert_eq!(s, Ok(None));
    }

    #[test]
    fn contradictions_are_errors_naming_the_event() {
        let e = apply(
            None,
            &event(7, EventKind::RecordUpdated, json!({"set": {}})),
        );
        assert!(matches!(&e, Err(ApplyError { seq: 7, detail }) if detail.contains("C o1")));
        let e = apply(None, &event(8, EventKind::RecordDeleted, json!({})));
        assert!(matches!(e, Err(ApplyError { seq: 8, .. })));
        let e = apply(None, &event(9, EventKind::RecordCreated, json!([1])));
        assert!(matches!(e, Err(ApplyError { seq: 9, .. })));
    }
}
