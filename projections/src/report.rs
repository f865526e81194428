//! What happened: a record's history, every event of a calendar day grouped by record, and
//! what changed in a class between two points. Each event is shown with its actor, time,
//! reason, and the before → after of every field it changed, read from the projections'
//! version index (the event's own version and the one before it), never by replaying.

use std::collections::{BTreeMap, BTreeSet};

use ledger::{Actor, Event, EventKind, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::projector::{AppState, ProjectionError, Projections, Result};
use crate::read::{record_at, version_state, At};
use crate::record::Record;
use crate::when::Day;

/// One field's change: absent before (created, set) or after (unset, deleted) is `None`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The field.
    pub field: String,
    /// Its value before.
    pub before: Option<Value>,
    /// Its value after.
    pub after: Option<Value>,
}

/// One event, as a report shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventEntry {
    /// Its sequence number.
    pub seq: u64,
    /// When it was recorded.
    pub recorded_at: Timestamp,
    /// Who caused it (name and role at the time).
    pub actor: Actor,
    /// Its kind, serialised by its name (`record.updated`…).
    #[serde(serialize_with = "kind_name", deserialize_with = "kind_from_name")]
    pub kind: EventKind,
    /// The reason given, if any.
    pub reason: Option<String>,
    /// The class of its subject, if it has one.
    pub class: Option<String>,
    /// The objectId of its subject, if it has one.
    pub object_id: Option<String>,
    /// For data changes: each changed field, before → after, by field name.
    pub changes: Vec<FieldChange>,
    /// For other kinds: the payload (a signature's meaning and printed name, a login
    /// failure's username…); `None` for data changes and removed payloads.
    pub detail: Option<Value>,
    /// The event's hash, hex.
    pub hash: String,
}

fn kind_name<S: serde::Serializer>(kind: &EventKind, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(kind.name())
}

fn kind_from_name<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<EventKind, D::Error> {
    let name = String::deserialize(d)?;
    EventKind::from_name(&name)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown event kind {name:?}")))
}

/// A record's full history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// The class.
    pub class: String,
    /// The record.
    pub object_id: String,
    /// Every event about it, in order.
    pub events: Vec<EventEntry>,
    /// The sequence number the history reflects.
    pub seq: u64,
}

/// The events of one record (or of no record) within a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordEvents {
    /// The class, or `None` for events without a subject (failed logins…).
    pub class: Option<String>,
    /// The record, or `None`.
    pub object_id: Option<String>,
    /// Its events, in order.
    pub events: Vec<EventEntry>,
}

/// Counts for a report's summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Events in the report.
    pub events: u64,
    /// Events per class (`-` for events without a subject) and kind.
    pub by_class_and_kind: BTreeMap<String, BTreeMap<String, u64>>,
    /// Events per actor (`username (role)`).
    pub by_actor: BTreeMap<String, u64>,
}

/// Everything recorded in one calendar day of a time zone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DayReport {
    /// The app.
    pub app: String,
    /// The day, e.g. `2026-11-17`.
    pub date: String,
    /// Its time zone.
    pub tz: String,
    /// Its first instant (UTC).
    pub start: Timestamp,
    /// The first instant of the next day (UTC).
    pub end: Timestamp,
    /// The first and last sequence numbers in the day (`None` if nothing happened).
    pub seq_range: Option<(u64, u64)>,
    /// Counts first.
    pub summary: Summary,
    /// The events, grouped by record, groups in order of their first event.
    pub records: Vec<RecordEvents>,
}

/// How a record changed between two points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Absent at the first point, present at the second.
    Created,
    /// Present at both, changed in between.
    Updated,
    /// Present at the first point, deleted by the second.
    Deleted,
    /// Created and deleted in between.
    CreatedAndDeleted,
}

impl ChangeKind {
    /// The name reports show (as serialised: `created`, `created_and_deleted`…).
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Deleted => "deleted",
            ChangeKind::CreatedAndDeleted => "created_and_deleted",
        }
    }
}

/// One record's change between two points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordDiff {
    /// The class.
    pub class: String,
    /// The record.
    pub object_id: String,
    /// How it changed.
    pub kind: ChangeKind,
    /// Each changed field, first point → second point.
    pub changes: Vec<FieldChange>,
    /// The events in between that changed it.
    pub seqs: Vec<u64>,
}

/// What changed between two points of an app's chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Diff {
    /// The first point (exclusive).
    pub from_seq: u64,
    /// The second point (inclusive).
    pub to_seq: u64,
    /// The changed records, by class then objectId.
    pub records: Vec<RecordDiff>,
}

/// Field changes from `before` to `after`, by field name.
pub fn field_changes(before: Option<&Record>, after: Option<&Record>) -> Vec<FieldChange> {
    let empty = Map::new();
    let b = before.map_or(&empty, |r| &r.fields);
    let a = after.map_or(&empty, |r| &r.fields);
    let names: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    names
        .into_iter()
        .filter(|n| b.get(*n) != a.get(*n))
        .map(|n| FieldChange {
            field: n.clone(),
            before: b.get(n).cloned(),
            after: a.get(n).cloned(),
        })
        .collect()
}

impl Projections {
    /// Shows event `e`: actor, time, reason, and before → after for data changes.
    fn entry(&self, app: &str, st: &AppState, e: Event) -> Result<EventEntry> {
        let data = crate::apply::changed_class(&e).is_some();
        let (changes, detail) = if data {
            let (before, after) = around(app, st, &e)?;
            (field_changes(before.as_ref(), after.as_ref()), None)
        } else {
            (Vec::new(), e.payload_json().and_then(|r| r.ok()))
        };
        let (class, object_id) = match e.subject {
            Some(s) => (Some(s.class), Some(s.object_id)),
            None => (None, None),
        };
        Ok(EventEntry {
            seq: e.seq,
            recorded_at: e.recorded_at,
            actor: e.actor,
            kind: e.kind,
            reason: e.reason,
            class,
            object_id,
            changes,
            detail,
            hash: hex::encode(e.hash),
        })
    }

    /// A record's full history: every event about it, each with its changes.
    pub fn history(&self, app: &str, class: &str, object_id: &str) -> Result<History> {
        self.class_def(app, class)?;
        Self::check_object_id(object_id)?;
        let seq = self.resolve(app, At::Now)?;
        let versions = self.ledger.versions(app, class, object_id)?;
        let events = self.with_state(app, seq, |st| {
            let mut events = Vec::new();
            for (s, _) in versions.into_iter().take_while(|(s, _)| *s <= seq) {
                let e = self
                    .ledger
                    .event(app, s)?
                    .ok_or(ProjectionError::BeyondHead {
                        app: app.into(),
                        seq: s,
                        head: seq,
                    })?;
                events.push(self.entry(app, st, e)?);
            }
            Ok(events)
        })?;
        Ok(History {
            class: class.into(),
            object_id: object_id.into(),
            events,
            seq,
        })
    }

    /// Every event recorded in `day`, grouped by record, with a summary.
    pub fn day(&self, app: &str, day: &Day) -> Result<DayReport> {
        let first = self.ledger.seq_at(app, Timestamp(day.start.0 - 1))? + 1;
        let last = self.ledger.seq_at(app, Timestamp(day.end.0 - 1))?;
        let mut summary = Summary::default();
        let mut groups: Vec<RecordEvents> = Vec::new();
        let mut index: BTreeMap<(Option<String>, Option<String>), usize> = BTreeMap::new();
        let entries = if first <= last {
            self.with_state(app, last, |st| {
                self.ledger
                    .events(app, first, last)?
                    .map(|e| self.entry(app, st, e?))
                    .collect::<Result<Vec<_>>>()
            })?
        } else {
            Vec::new()
        };
        for entry in entries {
            summary.events += 1;
            *summary
                .by_class_and_kind
                .entry(entry.class.clone().unwrap_or_else(|| "-".into()))
                .or_default()
                .entry(entry.kind.name().to_string())
                .or_default() += 1;
            *summary
                .by_actor
                .entry(format!("{} ({})", entry.actor.username, entry.actor.role))
                .or_default() += 1;
            let key = (entry.class.clone(), entry.object_id.clone());
            let i = *index.entry(key).or_insert_with(|| {
                groups.push(RecordEvents {
                    class: entry.class.clone(),
                    object_id: entry.object_id.clone(),
                    events: Vec::new(),
                });
                groups.len() - 1
            });
            if let Some(g) = groups.get_mut(i) {
                g.events.push(entry);
            }
        }
        Ok(DayReport {
            app: app.into(),
            date: day.date.to_string(),
            tz: day.tz.name().to_string(),
            start: day.start,
            end: day.end,
            seq_range: (first <= last).then_some((first, last)),
            summary,
            records: groups,
        })
    }

    /// What changed in `class` (every class when `None`) after `from` up to `to`.
    pub fn diff(&self, app: &str, class: Option<&str>, from: At, to: At) -> Result<Diff> {
        if let Some(c) = class {
            self.class_def(app, c)?;
        }
        let (s1, s2) = (self.resolve(app, from)?, self.resolve(app, to)?);
        let (s1, s2) = (s1.min(s2), s1.max(s2));
        let mut touched: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
        if s1 < s2 {
            for e in self.ledger.events(app, s1 + 1, s2)? {
                let e = e?;
                let Some(c) = crate::apply::changed_class(&e) else {
                    continue;
                };
                if class.is_some_and(|want| want != c) {
                    continue;
                }
                if let Some(s) = &e.subject {
                    touched
                        .entry((s.class.clone(), s.object_id.clone()))
                        .or_default()
                        .push(e.seq);
                }
            }
        }
        let records = self.with_state(app, s2, |st| {
            let mut records = Vec::new();
            for ((c, id), seqs) in touched {
                let Some(t) = st.classes.get(&c) else {
                    continue;
                };
                let before = record_at(app, &c, t, &id, s1)?;
                let after = record_at(app, &c, t, &id, s2)?;
                let kind = match (&before, &after) {
                    (None, Some(_)) => ChangeKind::Created,
                    (Some(_), None) => ChangeKind::Deleted,
                    (Some(_), Some(_)) => ChangeKind::Updated,
                    (None, None) => ChangeKind::CreatedAndDeleted,
                };
                records.push(RecordDiff {
                    changes: field_changes(before.as_ref(), after.as_ref()),
                    class: c,
                    object_id: id,
                    kind,
                    seqs,
                });
            }
            Ok(records)
        })?;
        Ok(Diff {
            from_seq: s1,
            to_seq: s2,
            records,
        })
    }
}

/// The subject's state just before and just after data-changing event `e` (`None`
/// after a deletion). `st` reflects at least event `e`.
fn around(app: &str, st: &AppState, e: &Event) -> Result<(Option<Record>, Option<Record>)> {
    let Some(s) = &e.subject else {
        return Ok((None, None));
    };
    let Some(t) = st.classes.get(&s.class) else {
        return Ok((None, None));
    };
    let before = record_at(app, &s.class, t, &s.object_id, e.seq - 1)?;
    let after = version_state(app, &s.class, t, &s.object_id, e.seq)?;
    Ok((before, after))
}
