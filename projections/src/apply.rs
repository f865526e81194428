//! How one event changes one record: the single fold that incremental maintenance, rebuilds
//! and every test oracle share, so they cannot disagree.

use ledger::{Event, EventKind, Subject, Timestamp};
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
    let mut state = prev.cloned();
    fold_into(&mut state, &Change::of(e, subject)).map_err(err)?;
    Ok(Some(match (state, prev) {
        (Some(r), _) => Effect::Put(r),
        (None, Some(last)) => Effect::Delete(last.clone()),
        // fold_into refuses to delete what is not live.
        (None, None) => return Err(err("deletes a record that is not live".into())),
    }))
}

/// One data-changing event, as the fold reads it (from the log or from a stored version).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Change<'a> {
    pub(crate) kind: EventKind,
    pub(crate) seq: u64,
    pub(crate) at: Timestamp,
    pub(crate) class: &'a str,
    pub(crate) object_id: &'a str,
    /// The payload's JSON text (`None` once lawfully removed).
    pub(crate) payload: Option<&'a [u8]>,
}

impl<'a> Change<'a> {
    /// The change event `e` makes to `subject`.
    pub(crate) fn of(e: &'a Event, subject: &'a Subject) -> Self {
        Change {
            kind: e.kind,
            seq: e.seq,
            at: e.recorded_at,
            class: &subject.class,
            object_id: &subject.object_id,
            payload: e.payload.as_deref(),
        }
    }
}

/// Folds a data-changing event into its subject's state, in place (`None`: not live). The
/// one fold that [`apply`], the projection store's versions and every read share.
pub(crate) fn fold_into(state: &mut Option<Record>, c: &Change<'_>) -> Result<(), String> {
    if !changes_data(c.kind) {
        return Ok(());
    }
    let name = || format!("{} {}", c.class, c.object_id);
    if c.kind.deletes_subject() {
        if state.take().is_none() {
            return Err(format!("deletes {}, which is not live", name()));
        }
        return Ok(());
    }
    match c.kind {
        EventKind::RecordCreated | EventKind::UserCreated => {
            if state.is_some() {
                return Err(format!("creates {}, which exists", name()));
            }
            let mut payload = payload_object(c.payload)?;
            let fields = match payload.remove("fields") {
                Some(Value::Object(m)) => m,
                None => Map::new(),
                Some(_) => return Err("\"fields\" is not an object".into()),
            };
            *state = Some(Record {
                object_id: c.object_id.to_string(),
                created_at: c.at,
                updated_at: c.at,
                created_seq: c.seq,
                updated_seq: c.seq,
                fields,
            });
            Ok(())
        }
        _ => {
            let Some(r) = state.as_mut() else {
                return Err(format!("updates {}, which is not live", name()));
            };
            let mut payload = payload_object(c.payload)?;
            if let Some(set) = payload.remove("set") {
                let Value::Object(set) = set else {
                    return Err("\"set\" is not an object".into());
                };
                for (k, v) in set {
                    r.fields.insert(k, v);
                }
            }
            if let Some(unset) = payload.get("unset") {
                let unset = unset
                    .as_array()
                    .ok_or_else(|| "\"unset\" is not an array".to_string())?;
                for k in unset {
                    let k = k
                        .as_str()
                        .ok_or_else(|| "\"unset\" holds a non-string".to_string())?;
                    r.fields.remove(k);
                }
            }
            r.updated_at = c.at;
            r.updated_seq = c.seq;
            Ok(())
        }
    }
}

/// Whether [`fold_into`] would accept change `c` on a record that is (`live`) or is not
/// live, with the same error, without building the record: the payload is read without
/// keeping any value. What a rebuild checks each event with before it folds whole
/// histories (`page::push_unfolded`).
#[cfg(test)]
pub(crate) fn check_change(live: bool, c: &Change<'_>) -> Result<(), String> {
    check_liveness(live, c)?;
    check_payload(c.kind, c.payload)
}

/// The part of [`check_change`] that depends on the record: whether it may be created,
/// updated or deleted.
pub(crate) fn check_liveness(live: bool, c: &Change<'_>) -> Result<(), String> {
    if !changes_data(c.kind) {
        return Ok(());
    }
    let name = || format!("{} {}", c.class, c.object_id);
    if c.kind.deletes_subject() {
        return if live {
            Ok(())
        } else {
            Err(format!("deletes {}, which is not live", name()))
        };
    }
    let create = matches!(c.kind, EventKind::RecordCreated | EventKind::UserCreated);
    if create && live {
        return Err(format!("creates {}, which exists", name()));
    }
    if !create && !live {
        return Err(format!("updates {}, which is not live", name()));
    }
    Ok(())
}

/// The part of [`check_change`] that depends on the event alone: its payload's shape.
pub(crate) fn check_payload(kind: EventKind, payload: Option<&[u8]>) -> Result<(), String> {
    if !changes_data(kind) || kind.deletes_subject() {
        return Ok(());
    }
    let create = matches!(kind, EventKind::RecordCreated | EventKind::UserCreated);
    let Some(payload) = payload else {
        return Ok(());
    };
    let shape = match serde_json::from_slice::<shape::Payload>(payload) {
        Ok(shape::Payload::Object(s)) => s,
        Ok(shape::Payload::Other) => return Err("payload is not a JSON object".into()),
        Err(x) => return Err(format!("payload is not JSON: {x}")),
    };
    if create {
        if shape.fields == Some(false) {
            return Err("\"fields\" is not an object".into());
        }
    } else {
        if shape.set == Some(false) {
            return Err("\"set\" is not an object".into());
        }
        match shape.unset {
            Some(shape::Unset::NotArray) => return Err("\"unset\" is not an array".into()),
            Some(shape::Unset::NonString) => return Err("\"unset\" holds a non-string".into()),
            _ => {}
        }
    }
    Ok(())
}

/// The shape of a payload, read without keeping values: what [`check_change`] needs.
mod shape {
    use std::fmt;

    use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

    /// A payload: an object (with the shape of the members a fold reads) or not.
    pub(super) enum Payload {
        Object(Shape),
        Other,
    }

    /// For each member a fold reads, whether its last occurrence has the type it needs.
    #[derive(Default)]
    pub(super) struct Shape {
        pub(super) fields: Option<bool>,
        pub(super) set: Option<bool>,
        pub(super) unset: Option<Unset>,
    }

    /// What `unset` holds.
    pub(super) enum Unset {
        Strings,
        NotArray,
        NonString,
    }

    /// Any JSON value: whether it is an object.
    struct IsObject(bool);
    /// Any JSON value: whether it is an array of strings.
    struct StringsShape(Unset);

    macro_rules! any_value_visitor {
        ($name:ident, $other:expr, $str:expr, $map:expr, $seq:expr) => {
            impl<'de> Deserialize<'de> for $name {
                fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    struct V;
                    impl<'de> Visitor<'de> for V {
                        type Value = $name;
                        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                            f.write_str("any JSON value")
                        }
                        fn visit_bool<E>(self, _: bool) -> Result<$name, E> {
                            Ok($other)
                        }
                        fn visit_i64<E>(self, _: i64) -> Result<$name, E> {
                            Ok($other)
                        }
                        fn visit_u64<E>(self, _: u64) -> Result<$name, E> {
                            Ok($other)
                        }
                        fn visit_f64<E>(self, _: f64) -> Result<$name, E> {
                            Ok($other)
                        }
                        fn visit_str<E>(self, _: &str) -> Result<$name, E> {
                            Ok($str)
                        }
                        fn visit_unit<E>(self) -> Result<$name, E> {
                            Ok($other)
                        }
                        fn visit_none<E>(self) -> Result<$name, E> {
                            Ok($other)
                        }
                        fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<$name, A::Error> {
                            $map(m)
                        }
                        fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<$name, A::Error> {
                            $seq(s)
                        }
                    }
                    d.deserialize_any(V)
                }
            }
        };
    }

    fn skip_map<'de, A: MapAccess<'de>>(mut m: A) -> Result<(), A::Error> {
        while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn skip_seq<'de, A: SeqAccess<'de>>(mut s: A) -> Result<(), A::Error> {
        while s.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    any_value_visitor!(
        IsObject,
        IsObject(false),
        IsObject(false),
        |m| skip_map(m).map(|()| IsObject(true)),
        |s| skip_seq(s).map(|()| IsObject(false))
    );

    any_value_visitor!(
        StringsShape,
        StringsShape(Unset::NotArray),
        StringsShape(Unset::NotArray),
        |m| skip_map(m).map(|()| StringsShape(Unset::NotArray)),
        |mut s: A| {
            let mut all = true;
            while let Some(e) = s.next_element::<IsString>()? {
                all &= e.0;
            }
            Ok(StringsShape(if all {
                Unset::Strings
            } else {
                Unset::NonString
            }))
        }
    );

    /// Any JSON value: whether it is a string.
    struct IsString(bool);

    any_value_visitor!(
        IsString,
        IsString(false),
        IsString(true),
        |m| skip_map(m).map(|()| IsString(false)),
        |s| skip_seq(s).map(|()| IsString(false))
    );

    /// A payload member's name, as far as a fold cares (read without allocating).
    enum Key {
        Fields,
        Set,
        Unset,
        Other,
    }

    impl<'de> Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Key;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a member name")
                }
                fn visit_str<E>(self, k: &str) -> Result<Key, E> {
                    Ok(match k {
                        "fields" => Key::Fields,
                        "set" => Key::Set,
                        "unset" => Key::Unset,
                        _ => Key::Other,
                    })
                }
            }
            d.deserialize_str(V)
        }
    }

    impl<'de> Deserialize<'de> for Payload {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Payload;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_bool<E>(self, _: bool) -> Result<Payload, E> {
                    Ok(Payload::Other)
                }
                fn visit_i64<E>(self, _: i64) -> Result<Payload, E> {
                    Ok(Payload::Other)
                }
                fn visit_u64<E>(self, _: u64) -> Result<Payload, E> {
                    Ok(Payload::Other)
                }
                fn visit_f64<E>(self, _: f64) -> Result<Payload, E> {
                    Ok(Payload::Other)
                }
                fn visit_str<E>(self, _: &str) -> Result<Payload, E> {
                    Ok(Payload::Other)
                }
                fn visit_unit<E>(self) -> Result<Payload, E> {
                    Ok(Payload::Other)
                }
                fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<Payload, A::Error> {
                    skip_seq(s).map(|()| Payload::Other)
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Payload, A::Error> {
                    let mut shape = Shape::default();
                    while let Some(key) = m.next_key::<Key>()? {
                        match key {
                            Key::Fields => shape.fields = Some(m.next_value::<IsObject>()?.0),
                            Key::Set => shape.set = Some(m.next_value::<IsObject>()?.0),
                            Key::Unset => shape.unset = Some(m.next_value::<StringsShape>()?.0),
                            Key::Other => {
                                m.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                    Ok(Payload::Object(shape))
                }
            }
            d.deserialize_any(V)
        }
    }
}

/// The payload as a JSON object. A lawfully removed payload reads as `{}`: the record's
/// fields from that event are gone, which is what the removal means.
fn payload_object(payload: Option<&[u8]>) -> Result<Map<String, Value>, String> {
    match payload.map(serde_json::from_slice::<Value>) {
        None => Ok(Map::new()),
        Some(Ok(Value::Object(m))) => Ok(m),
        Some(Ok(_)) => Err("payload is not a JSON object".into()),
        Some(Err(x)) => Err(format!("payload is not JSON: {x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::{Actor, KeyId};
    use proptest::prelude::*;
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

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "[a-z\\\\\"]{0,4}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::vec(
                    (
                        prop_oneof![
                            Just("fields".to_string()),
                            Just("set".to_string()),
                            Just("unset".to_string()),
                            "[a-z]{1,3}"
                        ],
                        inner
                    ),
                    0..4
                )
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// Payload texts: JSON (often shaped like a real payload, with duplicate and escaped
    /// member names now and then), or bytes that are not JSON.
    fn payload() -> impl Strategy<Value = Option<Vec<u8>>> {
        let member = prop_oneof![
            Just("\"fields\"".to_string()),
            Just("\"set\"".to_string()),
            Just("\"unset\"".to_string()),
            Just("\"s\\u0065t\"".to_string()),
            Just("\"x\"".to_string()),
        ];
        let text = proptest::collection::vec((member, any_json()), 0..4).prop_map(|kv| {
            let body: Vec<String> = kv.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("{{{}}}", body.join(","))
        });
        let names = proptest::collection::vec(
            prop_oneof![4 => "[a-z]{1,3}".prop_map(Value::from), 1 => any_json()],
            0..3,
        );
        let shaped = (
            proptest::option::of(any_json()),
            proptest::option::of(prop_oneof![names.prop_map(Value::from), any_json()]),
            proptest::option::of(any_json()),
        )
            .prop_map(|(set, unset, fields)| {
                let mut m = Map::new();
                let set = set.map(|v| {
                    if v.is_array() {
                        Value::Object(Map::new())
                    } else {
                        v
                    }
                });
                for (k, v) in [("set", set), ("unset", unset), ("fields", fields)] {
                    if let Some(v) = v {
                        m.insert(k.into(), v);
                    }
                }
                Value::Object(m).to_string().into_bytes()
            });
        proptest::option::of(prop_oneof![
            4 => shaped,
            4 => text.prop_map(String::into_bytes),
            1 => any_json().prop_map(|v| v.to_string().into_bytes()),
            1 => proptest::collection::vec(any::<u8>(), 0..12),
            1 => "\\{\"set\": \\{\\}[,x ]{0,2}".prop_map(String::into_bytes),
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        #[test]
        fn check_change_agrees_with_the_fold(
            live in any::<bool>(),
            kind in prop_oneof![
                Just(EventKind::RecordCreated),
                Just(EventKind::UserCreated),
                Just(EventKind::RecordUpdated),
                Just(EventKind::UserUpdated),
                Just(EventKind::RecordDeleted),
            ],
            payload in payload(),
        ) {
            let c = Change {
                kind,
                seq: 5,
                at: Timestamp(50),
                class: "C",
                object_id: "o1",
                payload: payload.as_deref(),
            };
            let mut state = live.then(|| Record {
                object_id: "o1".into(),
                created_at: Timestamp(1),
                updated_at: Timestamp(1),
                created_seq: 1,
                updated_seq: 1,
                fields: Map::new(),
            });
            let folded = fold_into(&mut state, &c);
            prop_assert_eq!(check_change(live, &c), folded);
        }
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
