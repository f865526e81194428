//! Reads over the projections: one record or a Parse query, now or as of a past point of
//! the chain. Every answer carries the sequence number it reflects. Past reads use each
//! record's version index (`V` entries) and a time → sequence binary search over the
//! log; nothing is replayed.

use ledger::schema::ClassDef;
use ledger::Timestamp;
use serde_json::{Map, Value};

use rayon::prelude::*;

use crate::layout;
use crate::page::{self, Rec};
use crate::projector::{
    load_live, with_record, AppState, ClassTree, ProjectionError, Projections, Result,
};
use crate::query::{OrderIndex, Query, QueryOutput, QueryParams};
use crate::record::Record;

/// Which state of the records a read sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// The current view (after catching up with the durable head).
    Now,
    /// As the records stood right after event `seq` (repeatable exactly).
    Seq(u64),
    /// As the records stood at an instant: after the last event recorded at or before it.
    Time(Timestamp),
}

/// A value and the sequence number of the log it reflects.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Every event up to this one, and none after, is reflected.
    pub seq: u64,
}

/// The answer to a query: Parse objects (with `keys` and `include` applied), the count of
/// all matches when asked, and the sequence number it reflects.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The objects, in order.
    pub results: Vec<Map<String, Value>>,
    /// The number of matches (ignoring limit and skip), when the query asked for it.
    pub count: Option<u64>,
    /// The sequence number the answer reflects.
    pub seq: u64,
}

/// Deepest include path followed (`a.b.c`).
const MAX_INCLUDE_DEPTH: usize = 3;
/// Records an index walk may fetch before the query scans the class instead (plus
/// [`INDEX_BUDGET_PER_RESULT`] per result asked for): a walk that finds few matches costs
/// a point read per record, a scan a sequential read.
const INDEX_BUDGET: usize = 2048;
/// See [`INDEX_BUDGET`].
const INDEX_BUDGET_PER_RESULT: usize = 8;

impl Projections {
    /// Resolves `at` to a sequence number of `app` (0 = before the first event).
    pub fn resolve(&self, app: &str, at: At) -> Result<u64> {
        let head = self
            .ledger
            .head(app)
            .ok_or_else(|| ProjectionError::UnknownApp(app.to_string()))?
            .seq;
        match at {
            At::Now => Ok(head),
            At::Seq(s) if s > head => Err(ProjectionError::BeyondHead {
                app: app.into(),
                seq: s,
                head,
            }),
            At::Seq(s) => Ok(s),
            At::Time(t) => Ok(self.ledger.seq_at(app, t)?),
        }
    }

    /// The class's definition in the app's current schema.
    pub(crate) fn class_def(&self, app: &str, class: &str) -> Result<ClassDef> {
        let schema = self
            .ledger
            .schema(app)
            .ok_or_else(|| ProjectionError::UnknownApp(app.to_string()))?;
        schema
            .class(class)
            .cloned()
            .ok_or_else(|| ProjectionError::UnknownClass {
                app: app.into(),
                class: class.into(),
            })
    }

    /// Checks an objectId given by a caller: one that no record can have is refused
    /// rather than looked up (its bytes could otherwise reach into another record's keys).
    pub(crate) fn check_object_id(object_id: &str) -> Result<()> {
        if ledger::schema::validate::is_valid_object_id(object_id) {
            Ok(())
        } else {
            Err(ProjectionError::BadObjectId(object_id.to_string()))
        }
    }

    /// Runs `f` on the app's state once its projections reflect at least `seq`.
    pub(crate) fn with_state<R>(
        &self,
        app: &str,
        seq: u64,
        f: impl FnOnce(&AppState) -> Result<R>,
    ) -> Result<R> {
        let ap = self.app(app)?;
        if ap.read().applied < seq {
            self.sync(app)?;
        }
        let st = ap.read();
        f(&st)
    }

    /// One record as it stands at `at` (`None` if it did not exist then, or was deleted).
    pub fn get(
        &self,
        app: &str,
        class: &str,
        object_id: &str,
        at: At,
    ) -> Result<Versioned<Option<Record>>> {
        self.class_def(app, class)?;
        Self::check_object_id(object_id)?;
        let seq = self.resolve(app, at)?;
        self.with_state(app, seq, |st| record_in(st, app, class, object_id, at, seq))
    }

    /// One record as of the projections' applied point, for a caller that must not wait
    /// (an async runtime): `Ok(None)` if that point does not reflect `at_least` yet, or if
    /// the app's state is being written just now (a reader would wait for the writer).
    pub fn try_get_applied(
        &self,
        app: &str,
        class: &str,
        object_id: &str,
        at_least: u64,
    ) -> Result<Option<Versioned<Option<Record>>>> {
        self.class_def(app, class)?;
        Self::check_object_id(object_id)?;
        let ap = self.app(app)?;
        let st = match ap.state.try_read() {
            Ok(st) => st,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
        };
        if st.applied < at_least {
            return Ok(None);
        }
        let applied = st.applied;
        record_in(&st, app, class, object_id, At::Seq(applied), applied).map(Some)
    }

    /// A Parse query over a class as it stands at `at`.
    pub fn find(&self, app: &str, class: &str, params: &QueryParams, at: At) -> Result<Answer> {
        let def = self.class_def(app, class)?;
        let query = Query::parse(&def, params)?;
        let seq = self.resolve(app, at)?;
        self.with_state(app, seq, |st| {
            let seq = if at == At::Now { st.applied } else { seq };
            let mut failure = None;
            let out = match (st.classes.get(class), at) {
                (None, _) => query.run(std::iter::empty()),
                (Some(t), At::Now) => match indexed(app, class, st, t, &query)? {
                    Some(out) => out,
                    None => query.run(Failing::new(live_records(app, class, t), &mut failure)),
                },
                (Some(t), _) => {
                    query.run(Failing::new(records_at(app, class, t, seq), &mut failure))
                }
            };
            if let Some(e) = failure {
                return Err(e);
            }
            let mut results = Vec::with_capacity(out.results.len());
            for r in &out.results {
                let mut obj = query.project(r);
                for path in query.include() {
                    let parts: Vec<&str> = path.split('.').take(MAX_INCLUDE_DEPTH).collect();
                    self.include(app, st, &mut obj, &parts, at, seq)?;
                }
                results.push(obj);
            }
            Ok(Answer {
                results,
                count: out.count,
                seq,
            })
        })
    }

    /// Every record of a class as it stood after event `seq`, in objectId order.
    pub fn class_at(&self, app: &str, class: &str, at: At) -> Result<Versioned<Vec<Record>>> {
        self.class_def(app, class)?;
        let seq = self.resolve(app, at)?;
        self.with_state(app, seq, |st| {
            let Some(t) = st.classes.get(class) else {
                return Ok(Versioned {
                    value: Vec::new(),
                    seq,
                });
            };
            let value = if at == At::Now {
                collect_records(app, class, t, |r| r.live(class))?
            } else {
                collect_records(app, class, t, |r| r.state_as_of(class, seq))?
            };
            let seq = if at == At::Now { st.applied } else { seq };
            Ok(Versioned { value, seq })
        })
    }

    /// Replaces the Pointer at `path` in `obj` by the object it points to (as of the same
    /// point), following dotted paths. Pointers to missing records stay Pointers.
    fn include(
        &self,
        app: &str,
        st: &AppState,
        obj: &mut Map<String, Value>,
        path: &[&str],
        at: At,
        seq: u64,
    ) -> Result<()> {
        let Some((first, rest)) = path.split_first() else {
            return Ok(());
        };
        let Some(v) = obj.get_mut(*first) else {
            return Ok(());
        };
        let pointer = match v.as_object() {
            Some(m) if m.get("__type").and_then(Value::as_str) == Some("Pointer") => m,
            Some(m) if m.get("__type").and_then(Value::as_str) == Some("Object") => {
                if let Some(inner) = v.as_object_mut() {
                    self.include(app, st, inner, rest, at, seq)?;
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        let (Some(class), Some(id)) = (
            pointer.get("className").and_then(Value::as_str),
            pointer.get("objectId").and_then(Value::as_str),
        ) else {
            return Ok(());
        };
        let Some(t) = st.classes.get(class) else {
            return Ok(());
        };
        let target = if at == At::Now {
            load_live(app, class, &t.tree, id)?
        } else {
            record_at(app, class, t, id, seq)?
        };
        let Some(target) = target else {
            return Ok(());
        };
        let mut inner = target.to_parse_json();
        inner.insert("__type".into(), Value::String("Object".into()));
        inner.insert("className".into(), Value::String(class.to_string()));
        self.include(app, st, &mut inner, rest, at, seq)?;
        *v = Value::Object(inner);
        Ok(())
    }
}

/// Answers a query on the current view from the index of its first order field (built
/// on first use), or `None` when it has none or the walk gave up: the caller scans.
fn indexed(
    app: &str,
    class: &str,
    st: &AppState,
    t: &ClassTree,
    query: &Query,
) -> Result<Option<QueryOutput>> {
    let Some(field) = query.index_field() else {
        return Ok(None);
    };
    let budget = INDEX_BUDGET.saturating_add(
        INDEX_BUDGET_PER_RESULT.saturating_mul(query.skip().saturating_add(query.limit())),
    );
    let run = |index: &OrderIndex| {
        query.run_indexed(index, budget, |id| load_live(app, class, &t.tree, id))
    };
    {
        let indexes = st.indexes.read().unwrap_or_else(|p| p.into_inner());
        if let Some(index) = indexes.get(class).and_then(|m| m.get(&field)) {
            return run(index);
        }
    }
    let mut indexes = st.indexes.write().unwrap_or_else(|p| p.into_inner());
    let by_field = indexes.entry(class.to_string()).or_default();
    if !by_field.contains_key(&field) {
        // The state's read lock is held: no chunk is applied while the index is built.
        let index = OrderIndex::build(&field, live_records(app, class, t))?;
        by_field.insert(field.clone(), index);
    }
    match by_field.get(&field) {
        Some(index) => run(index),
        None => Ok(None),
    }
}

fn corrupt(app: &str, class: &str, detail: String) -> ProjectionError {
    ProjectionError::Corrupt {
        app: app.into(),
        class: class.into(),
        detail,
    }
}

/// The live records of a class tree, in objectId order.
fn live_records<'a>(
    app: &'a str,
    class: &'a str,
    t: &'a ClassTree,
) -> impl Iterator<Item = Result<Record>> + 'a {
    page_records(app, class, t, move |r| r.live(class))
}

/// Every record of a class as it stood after event `seq`, in objectId order.
pub(crate) fn records_at<'a>(
    app: &'a str,
    class: &'a str,
    t: &'a ClassTree,
    seq: u64,
) -> impl Iterator<Item = Result<Record>> + 'a {
    page_records(app, class, t, move |r| r.state_as_of(class, seq))
}

/// `state` of every record of a class tree that has one, page by page, in objectId order.
fn page_records<'a>(
    app: &'a str,
    class: &'a str,
    t: &'a ClassTree,
    state: impl Fn(&Rec<'_>) -> std::result::Result<Option<Record>, String> + 'a,
) -> impl Iterator<Item = Result<Record>> + 'a {
    t.tree
        .scan_prefix(layout::PAGE_PREFIX)
        .flat_map(move |kv| match kv {
            Ok((k, v)) => page_states(app, class, &k, &v, &state),
            Err(e) => vec![Err(e.into())],
        })
}

/// `state` of every record of one stored page that has one.
fn page_states(
    app: &str,
    class: &str,
    key: &[u8],
    page: &[u8],
    state: impl Fn(&Rec<'_>) -> std::result::Result<Option<Record>, String>,
) -> Vec<Result<Record>> {
    let recs = match page::decode(page) {
        Ok(recs) => recs,
        Err(d) => return vec![Err(corrupt(app, class, format!("page {key:?}: {d}")))],
    };
    recs.iter()
        .filter_map(|r| {
            state(r)
                .map_err(|d| corrupt(app, class, format!("record {}: {d}", r.id)))
                .transpose()
        })
        .collect()
}

/// [`page_records`] collected, the pages decoded in parallel.
fn collect_records(
    app: &str,
    class: &str,
    t: &ClassTree,
    state: impl Fn(&Rec<'_>) -> std::result::Result<Option<Record>, String> + Sync,
) -> Result<Vec<Record>> {
    let pages: Vec<(sled::IVec, sled::IVec)> = t
        .tree
        .scan_prefix(layout::PAGE_PREFIX)
        .collect::<std::result::Result<_, _>>()?;
    let per_page: Vec<Vec<Result<Record>>> = pages
        .par_iter()
        .map(|(k, v)| page_states(app, class, k, v, &state))
        .collect();
    per_page.into_iter().flatten().collect()
}

/// One record as it stood after event `seq`: its last version at or before `seq`.
pub(crate) fn record_at(
    app: &str,
    class: &str,
    t: &ClassTree,
    object_id: &str,
    seq: u64,
) -> Result<Option<Record>> {
    Ok(with_record(app, class, &t.tree, object_id, |r| {
        r.state_as_of(class, seq)
    })?
    .flatten())
}

/// The state record `object_id` had right after its version made by event `seq`
/// (`None` if that event made no version of it, or deleted it).
pub(crate) fn version_state(
    app: &str,
    class: &str,
    t: &ClassTree,
    object_id: &str,
    seq: u64,
) -> Result<Option<Record>> {
    Ok(with_record(app, class, &t.tree, object_id, |r| {
        match r.versions.binary_search_by(|v| v.seq.cmp(&seq)) {
            Ok(k) => r.state_at(class, k),
            Err(_) => Ok(None),
        }
    })?
    .flatten())
}

/// Adapts a fallible iterator to an infallible one: stops at the first error and keeps it.
struct Failing<'a, I> {
    inner: I,
    failure: &'a mut Option<ProjectionError>,
}

impl<'a, I> Failing<'a, I> {
    fn new(inner: I, failure: &'a mut Option<ProjectionError>) -> Self {
        Failing { inner, failure }
    }
}

impl<I: Iterator<Item = Result<Record>>> Iterator for Failing<'_, I> {
    type Item = Record;
    fn next(&mut self) -> Option<Record> {
        if self.failure.is_some() {
            return None;
        }
        match self.inner.next()? {
            Ok(r) => Some(r),
            Err(e) => {
                *self.failure = Some(e);
                None
            }
        }
    }
}

/// One record of `st` as it stands at `at` (resolved to `seq`).
fn record_in(
    st: &AppState,
    app: &str,
    class: &str,
    object_id: &str,
    at: At,
    seq: u64,
) -> Result<Versioned<Option<Record>>> {
    let (value, seq) = match (at, st.classes.get(class)) {
        (_, None) => (None, if at == At::Now { st.applied } else { seq }),
        (At::Now, Some(t)) => (load_live(app, class, &t.tree, object_id)?, st.applied),
        (_, Some(t)) => (record_at(app, class, t, object_id, seq)?, seq),
    };
    Ok(Versioned { value, seq })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ledger::schema::ClassDef;
    use ledger::{Actor, AppendRequest, Command, Ledger, LedgerConfig, ManualClock, Timestamp};
    use serde_json::json;

    use super::*;

    #[test]
    fn a_read_that_must_not_wait_declines_instead(
    ) -> std::result::Result<(), Box<dyn std::error::Error>> {
        let clock = Arc::new(ManualClock::new(Timestamp(1_795_435_200_000_000)));
        let ledger = Arc::new(Ledger::open(LedgerConfig::in_memory([3; 32], clock))?);
        let item = ClassDef::from_json(&json!({"className": "Item", "fields": {
            "name": {"type": "String", "required": true}}}))?;
        ledger.create_app("t", "test", vec![item])?;
        let p = Projections::temporary(ledger.clone())?;
        let create = |name: &str| {
            ledger.append(AppendRequest {
                app: "t".into(),
                actor: Actor::system(),
                idempotency_key: None,
                reason: None,
                command: Command::CreateRecord {
                    class: "Item".into(),
                    object_id: None,
                    fields: json!({ "name": name })
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                },
            })
        };
        let a = create("first")?;
        let id = a.event.subject.map(|s| s.object_id).unwrap_or_default();
        // Not applied yet: declined, not caught up.
        assert!(p.try_get_applied("t", "Item", &id, a.event.seq)?.is_none());
        p.sync("t")?;
        let read = p.try_get_applied("t", "Item", &id, a.event.seq)?;
        let expected = p.get("t", "Item", &id, At::Seq(a.event.seq))?;
        assert_eq!(read.as_ref(), Some(&expected));
        assert!(read.and_then(|v| v.value).is_some());
        // A later event not applied yet: declined again.
        let b = create("second")?;
        assert!(p.try_get_applied("t", "Item", &id, b.event.seq)?.is_none());
        // While the app's state is being written, declined rather than waiting.
        let ap = p.app("t")?;
        let writing = ap.state.write();
        assert!(p.try_get_applied("t", "Item", &id, a.event.seq)?.is_none());
        drop(writing);
        assert!(p.try_get_applied("t", "Item", &id, a.event.seq)?.is_some());
        // Bad input is still refused by name.
        assert!(p.try_get_applied("t", "Nope", &id, 1).is_err());
        Ok(())
    }
}
