//! Reports as rows of text, a header row first: what CSV files, terminal tables and the
//! printable HTML report show. One row per changed field of an event (one row for an event
//! without field changes), so a spreadsheet filter on `field` finds every change to it.
//! The server's CSV answers and the replay tool share these rows.

use serde_json::{Map, Value};

use crate::report::{DayReport, Diff, EventEntry, FieldChange, History};

/// The columns of an event row.
pub const EVENT_COLUMNS: [&str; 11] = [
    "seq",
    "recorded_at",
    "actor",
    "role",
    "kind",
    "class",
    "object_id",
    "reason",
    "field",
    "before",
    "after",
];

/// The columns of a diff row.
pub const DIFF_COLUMNS: [&str; 7] = [
    "class",
    "object_id",
    "change",
    "field",
    "before",
    "after",
    "seqs",
];

/// A value as a cell: strings bare, Dates by their ISO text, Pointers as
/// `Class:objectId`, anything else as JSON; absent as empty.
pub fn show(v: Option<&Value>) -> String {
    match v {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) if o.get("__type").and_then(Value::as_str) == Some("Date") => o
            .get("iso")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        Some(Value::Object(o)) if o.get("__type").and_then(Value::as_str) == Some("Pointer") => {
            format!(
                "{}:{}",
                o.get("className")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                o.get("objectId")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            )
        }
        Some(v) => v.to_string(),
    }
}

fn header<const N: usize>(columns: [&str; N]) -> Vec<String> {
    columns.iter().map(|s| s.to_string()).collect()
}

/// The changes to show: the real ones, or one placeholder carrying `after` (an event's
/// detail, or nothing).
fn changes_or(changes: &[FieldChange], after: Option<Value>) -> Vec<FieldChange> {
    if changes.is_empty() {
        vec![FieldChange {
            field: String::new(),
            before: None,
            after,
        }]
    } else {
        changes.to_vec()
    }
}

/// The rows of one event (no header).
pub fn event_rows(e: &EventEntry, rows: &mut Vec<Vec<String>>) {
    let base = [
        e.seq.to_string(),
        e.recorded_at.to_rfc3339(),
        e.actor.username.clone(),
        e.actor.role.clone(),
        e.kind.name().to_string(),
        e.class.clone().unwrap_or_default(),
        e.object_id.clone().unwrap_or_default(),
        e.reason.clone().unwrap_or_default(),
    ];
    for c in changes_or(&e.changes, e.detail.clone()) {
        let mut r = base.to_vec();
        r.extend([c.field, show(c.before.as_ref()), show(c.after.as_ref())]);
        rows.push(r);
    }
}

/// A day's events, record by record.
pub fn day_rows(r: &DayReport) -> Vec<Vec<String>> {
    let mut rows = vec![header(EVENT_COLUMNS)];
    for group in &r.records {
        for e in &group.events {
            event_rows(e, &mut rows);
        }
    }
    rows
}

/// A record's history.
pub fn history_rows(h: &History) -> Vec<Vec<String>> {
    let mut rows = vec![header(EVENT_COLUMNS)];
    for e in &h.events {
        event_rows(e, &mut rows);
    }
    rows
}

/// A diff, record by record.
pub fn diff_rows(d: &Diff) -> Vec<Vec<String>> {
    let mut rows = vec![header(DIFF_COLUMNS)];
    for r in &d.records {
        let seqs = r
            .seqs
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        for c in changes_or(&r.changes, None) {
            rows.push(vec![
                r.class.clone(),
                r.object_id.clone(),
                r.kind.name().to_string(),
                c.field,
                show(c.before.as_ref()),
                show(c.after.as_ref()),
                seqs.clone(),
            ]);
        }
    }
    rows
}

/// Parse objects of one class: `objectId`, `createdAt`, `updatedAt`, then every field any
/// of them has, by name; one row per object.
pub fn object_rows(objects: &[&Map<String, Value>]) -> Vec<Vec<String>> {
    const SYSTEM: [&str; 3] = ["objectId", "createdAt", "updatedAt"];
    let fields: std::collections::BTreeSet<&String> = objects
        .iter()
        .flat_map(|o| o.keys())
        .filter(|k| !SYSTEM.contains(&k.as_str()))
        .collect();
    let mut columns: Vec<String> = SYSTEM.iter().map(|s| s.to_string()).collect();
    columns.extend(fields.into_iter().cloned());
    let mut rows = Vec::with_capacity(objects.len() + 1);
    for o in objects {
        rows.push(columns.iter().map(|c| show(o.get(c))).collect());
    }
    rows.insert(0, columns);
    rows
}
