//! Ordered indexes over a class's live records, held in memory, and the plan that answers
//! a `where` + `order` + `limit` query by walking one instead of scanning the class.
//!
//! An [`OrderIndex`] lists every live record of a class (records without a value for the
//! field included) by its sort key for one field, in the query language's total order
//! (the `SortKey` order), objectId breaking ties. [`Query::run_indexed`] walks the index of
//! a query's first `order` field in the query's direction, fetches the records it meets,
//! keeps those matching `where`, sorts each run of records sharing the first key by the
//! remaining keys, and stops once `skip + limit` matches are complete: the result is
//! exactly what [`Query::run`] gives over the whole class. The projector builds indexes on
//! first use and keeps them in step with each applied chunk (see `read.rs`, `projector.rs`).

use std::cmp::Ordering;
use std::collections::BTreeSet;

use super::fields::FieldRef;
use super::order::{field_key, OwnedKey};
use super::{Query, QueryOutput};
use crate::record::Record;

/// The field an index orders by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct IndexField(FieldRef);

/// One index entry: a record's sort key for the field, and its objectId.
#[derive(Debug, Clone)]
struct Entry {
    key: OwnedKey,
    id: Box<str>,
}

impl Entry {
    fn of(field: &FieldRef, r: &Record) -> Entry {
        Entry {
            key: OwnedKey::of(field_key(field, r)),
            id: r.object_id.as_str().into(),
        }
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key
            .view()
            .cmp(&other.key.view())
            .then_with(|| self.id.cmp(&other.id))
    }
}

/// Every live record of a class, ordered by its sort key for one field.
#[derive(Debug, Clone)]
pub(crate) struct OrderIndex {
    field: IndexField,
    entries: BTreeSet<Entry>,
}

impl OrderIndex {
    /// Builds the index of `field` over `records` (a class's live records); stops at the
    /// first error.
    pub(crate) fn build<E>(
        field: &IndexField,
        records: impl IntoIterator<Item = Result<Record, E>>,
    ) -> Result<OrderIndex, E> {
        let mut entries = BTreeSet::new();
        for r in records {
            entries.insert(Entry::of(&field.0, &r?));
        }
        Ok(OrderIndex {
            field: field.clone(),
            entries,
        })
    }

    /// Records that record `id` went from `old` to `new` (`None`: not live).
    pub(crate) fn update(&mut self, old: Option<&Record>, new: Option<&Record>) {
        if let Some(old) = old {
            self.entries.remove(&Entry::of(&self.field.0, old));
        }
        if let Some(new) = new {
            self.entries.insert(Entry::of(&self.field.0, new));
        }
    }
}

impl Query {
    /// The field whose index can answer this query: its first `order` field, when the
    /// query asks for at least one result and no count (a count needs every match).
    pub(crate) fn index_field(&self) -> Option<IndexField> {
        if self.limit == 0 || self.count {
            return None;
        }
        self.order_keys.first().map(|k| IndexField(k.field.clone()))
    }

    /// Answers the query by walking `index` (the index of [`Query::index_field`], in step
    /// with the records `fetch` reads): the same results as [`Query::run`] over every
    /// record. `None` when more than `budget` records had to be fetched (a selective
    /// `where` on another field): the caller scans instead.
    pub(crate) fn run_indexed<E>(
        &self,
        index: &OrderIndex,
        budget: usize,
        mut fetch: impl FnMut(&str) -> Result<Option<Record>, E>,
    ) -> Result<Option<QueryOutput>, E> {
        let Some(first) = self.order_keys.first() else {
            return Ok(None);
        };
        if index.field.0 != first.field || self.limit == 0 || self.count {
            return Ok(None);
        }
        let want = self.skip.saturating_add(self.limit);
        let entries: Box<dyn Iterator<Item = &Entry>> = if first.desc {
            Box::new(index.entries.iter().rev())
        } else {
            Box::new(index.entries.iter())
        };
        let mut out: Vec<Record> = Vec::new();
        // The matches sharing the current first key; sorted by the whole order once the
        // run ends, since the remaining keys and objectId decide among them.
        let mut run: Vec<Record> = Vec::new();
        let mut run_key: Option<&OwnedKey> = None;
        let mut fetched = 0usize;
        for e in entries {
            if run_key.is_some_and(|k| k.view().cmp(&e.key.view()).is_ne()) {
                run.sort_by(|a, b| self.compare(a, b));
                out.append(&mut run);
                if out.len() >= want {
                    break;
                }
            }
            run_key = Some(&e.key);
            fetched += 1;
            if fetched > budget {
                return Ok(None);
            }
            match fetch(&e.id)? {
                Some(r) if self.matches(&r) => run.push(r),
                Some(_) => {}
                // The index lists a record that is not live: it is out of step; let the
                // caller scan (tests catch this in debug builds).
                None => {
                    debug_assert!(false, "index lists {} but it is not live", e.id);
                    return Ok(None);
                }
            }
        }
        run.sort_by(|a, b| self.compare(a, b));
        out.append(&mut run);
        let results = out.into_iter().skip(self.skip).take(self.limit).collect();
        Ok(Some(QueryOutput {
            results,
            count: None,
        }))
    }
}
