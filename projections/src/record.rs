//! A record as a projection holds it: a Parse object (objectId, createdAt, updatedAt and its
//! fields in Parse's JSON encodings) plus the sequence numbers of its first and latest
//! versions, so every read can say which event it reflects.

use std::borrow::Cow;

use ledger::Timestamp;
use serde_json::{json, Map, Value};

/// One record's state after some event of its history.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The record's objectId.
    pub object_id: String,
    /// When its creation was recorded.
    pub created_at: Timestamp,
    /// When its latest change was recorded.
    pub updated_at: Timestamp,
    /// The sequence number of its creation.
    pub created_seq: u64,
    /// The sequence number of its latest change (the version a signature signs).
    pub updated_seq: u64,
    /// Its fields (system fields excluded), in Parse's JSON encodings, as the ledger
    /// recorded them.
    pub fields: Map<String, Value>,
}

/// The system fields a query may name besides a class's own fields.
pub const OBJECT_ID: &str = "objectId";
/// See [`OBJECT_ID`].
pub const CREATED_AT: &str = "createdAt";
/// See [`OBJECT_ID`].
pub const UPDATED_AT: &str = "updatedAt";

/// A record's value for a field, system fields included: `objectId` as a string,
/// `createdAt`/`updatedAt` as Parse Dates. Borrowed when the record holds it.
pub fn field_value<'a>(record: &'a Record, field: &str) -> Option<Cow<'a, Value>> {
    match field {
        OBJECT_ID => Some(Cow::Owned(Value::String(record.object_id.clone()))),
        CREATED_AT => Some(Cow::Owned(date_json(record.created_at))),
        UPDATED_AT => Some(Cow::Owned(date_json(record.updated_at))),
        _ => record.fields.get(field).map(Cow::Borrowed),
    }
}

/// A Parse Date: `{"__type": "Date", "iso": "…Z"}` with microseconds.
pub fn date_json(t: Timestamp) -> Value {
    json!({"__type": "Date", "iso": t.to_rfc3339()})
}

impl Record {
    /// The record as a Parse REST object: its fields, then `objectId`, `createdAt` and
    /// `updatedAt` (ISO strings, as Parse sends them).
    pub fn to_parse_json(&self) -> Map<String, Value> {
        self.clone().into_parse_json()
    }

    /// [`Record::to_parse_json`], consuming the record (no copy of its fields).
    pub fn into_parse_json(self) -> Map<String, Value> {
        let mut m = self.fields;
        m.insert(OBJECT_ID.into(), Value::String(self.object_id));
        m.insert(
            CREATED_AT.into(),
            Value::String(self.created_at.to_rfc3339()),
        );
        m.insert(
            UPDATED_AT.into(),
            Value::String(self.updated_at.to_rfc3339()),
        );
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_values() {
        let r = Record {
            object_id: "abc".into(),
            created_at: Timestamp(1),
            updated_at: Timestamp(2),
            created_seq: 3,
            updated_seq: 4,
            fields: json!({"a": 1, "b": {"__type": "Date", "iso": "2026-11-17T09:30:00.000000Z"}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        };
        assert_eq!(field_value(&r, "objectId").as_deref(), Some(&json!("abc")));
        assert_eq!(field_value(&r, "a").as_deref(), Some(&json!(1)));
        assert!(field_value(&r, "zzz").is_none());
    }
}
