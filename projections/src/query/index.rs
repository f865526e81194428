//! Ordered indexes over a class's live records, held in memory, and the plan that answers
//! a `where` + `order` + `limit` query by walking one instead of scanning the class.
//!
//! An [`OrderIndex`] lists every live record of a class (records without a value for the
//! field included) by its sort key for one field, in the query language's total order
//! (the `SortKey` order), objectId breaking ties. An index may first group the records by
//! their value of an equality field (a String or Boolean the query's `where` pins, such
//! as `status = "Fail"`): the walk then visits only that group, so a selective equality
//! does not make it wade through every other record. [`Query::run_indexed`] walks the
//! index of a query's first `order` field (in the group of its equality, if the index has
//! one) in the query's direction, fetches the records it meets, keeps those matching
//! `where`, sorts each run of records sharing the first key by the remaining keys (with
//! one order key a run is already in the ties' order, objectId, and is read no further
//! than needed), and stops once `skip + limit` matches are complete: the result is
//! exactly what [`Query::run`] gives over the whole class. The projector builds indexes on
//! first use and keeps them in step with each applied chunk (see `read.rs`, `projector.rs`).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::fields::FieldRef;
use super::order::{field_key, OwnedKey};
use super::value::{SortKey, Val};
use super::{Query, QueryOutput};
use crate::record::Record;

/// What an index is over: the field it orders by, and the equality field (if any) whose
/// value groups the records first.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct IndexField {
    eq: Option<FieldRef>,
    order: FieldRef,
}

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

/// A group's key: a record's sort key for the equality field (`Missing` for an index
/// without one).
#[derive(Debug, Clone)]
struct GroupKey(OwnedKey);

impl PartialEq for GroupKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for GroupKey {}

impl PartialOrd for GroupKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for GroupKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.view().cmp(&other.0.view())
    }
}

/// Every live record of a class, grouped by its value of the equality field (one group
/// if none), each group ordered by its sort key for the order field.
#[derive(Debug, Clone)]
pub(crate) struct OrderIndex {
    field: IndexField,
    groups: BTreeMap<GroupKey, BTreeSet<Entry>>,
}

impl OrderIndex {
    fn group_of(field: &IndexField, r: &Record) -> GroupKey {
        GroupKey(match &field.eq {
            Some(f) => OwnedKey::of(field_key(f, r)),
            None => OwnedKey::Missing,
        })
    }

    /// Builds the index of `field` over `records` (a class's live records); stops at the
    /// first error.
    pub(crate) fn build<E>(
        field: &IndexField,
        records: impl IntoIterator<Item = Result<Record, E>>,
    ) -> Result<OrderIndex, E> {
        let mut index = OrderIndex {
            field: field.clone(),
            groups: BTreeMap::new(),
        };
        for r in records {
            index.update(None, Some(&r?));
        }
        Ok(index)
    }

    /// Records that record `id` went from `old` to `new` (`None`: not live).
    pub(crate) fn update(&mut self, old: Option<&Record>, new: Option<&Record>) {
        if let Some(old) = old {
            let g = Self::group_of(&self.field, old);
            if let Some(set) = self.groups.get_mut(&g) {
                set.remove(&Entry::of(&self.field.order, old));
                if set.is_empty() {
                    self.groups.remove(&g);
                }
            }
        }
        if let Some(new) = new {
            self.groups
                .entry(Self::group_of(&self.field, new))
                .or_default()
                .insert(Entry::of(&self.field.order, new));
        }
    }
}

impl Query {
    /// The index that can answer this query: over its first `order` field, when the
    /// query asks for at least one result and no count (a count needs every match);
    /// grouped by the first field the `where` pins to a String or Boolean, if any.
    pub(crate) fn index_field(&self) -> Option<IndexField> {
        if self.limit == 0 || self.count {
            return None;
        }
        let order = self.order_keys.first()?.field.clone();
        let eq = self
            .filter
            .equalities()
            .into_iter()
            .find(|(f, v)| **f != order && matches!(v, Value::String(_) | Value::Bool(_)))
            .map(|(f, _)| f.clone());
        Some(IndexField { eq, order })
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
        if index.field.order != first.field || self.limit == 0 || self.count {
            return Ok(None);
        }
        // The group to walk: the one of the equality's value (every record matching the
        // equality is in it; none may be, then the answer is empty), or the only one.
        let group = match &index.field.eq {
            Some(f) => {
                let Some(v) = self
                    .filter
                    .equalities()
                    .into_iter()
                    .find(|(g, _)| *g == f)
                    .map(|(_, v)| v)
                else {
                    return Ok(None);
                };
                index
                    .groups
                    .get(&GroupKey(OwnedKey::of(SortKey::of(Val::Json(v)))))
            }
            None => index.groups.values().next(),
        };
        let Some(group) = group else {
            return Ok(Some(QueryOutput {
                results: Vec::new(),
                count: None,
            }));
        };
        let want = self.skip.saturating_add(self.limit);
        if self.order_keys.len() == 1 {
            return self.walk_one_key(group, first.desc, want, budget, fetch);
        }
        let entries: Box<dyn Iterator<Item = &Entry>> = if first.desc {
            Box::new(group.iter().rev())
        } else {
            Box::new(group.iter())
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

    /// [`Query::run_indexed`] for a query with one order key. Ties are then broken by
    /// objectId ascending, the order in which the index holds each run of equal keys, so
    /// a match is final when it is met and the walk stops at `want` even inside a long
    /// run of equal keys (where the general walk must read the whole run to sort it).
    /// Descending, the keys are walked from the top and each key's run read upwards.
    fn walk_one_key<E>(
        &self,
        group: &BTreeSet<Entry>,
        desc: bool,
        want: usize,
        budget: usize,
        mut fetch: impl FnMut(&str) -> Result<Option<Record>, E>,
    ) -> Result<Option<QueryOutput>, E> {
        let mut out: Vec<Record> = Vec::new();
        let mut fetched = 0usize;
        // Fetches `e`'s record and keeps it if it matches; `Ok(Err(()))`: give up (over the
        // budget, or the index is out of step with the records).
        let mut visit = |e: &Entry, out: &mut Vec<Record>| -> Result<Result<(), ()>, E> {
            fetched += 1;
            if fetched > budget {
                return Ok(Err(()));
            }
            match fetch(&e.id)? {
                Some(r) => {
                    if self.matches(&r) {
                        out.push(r);
                    }
                    Ok(Ok(()))
                }
                None => {
                    debug_assert!(false, "index lists {} but it is not live", e.id);
                    Ok(Err(()))
                }
            }
        };
        if desc {
            let mut from_top = group.iter().rev().peekable();
            'keys: while let Some(last) = from_top.next() {
                let lowest = Entry {
                    key: last.key.clone(),
                    id: "".into(),
                };
                for e in group.range(lowest..=last.clone()) {
                    if out.len() >= want {
                        break 'keys;
                    }
                    if visit(e, &mut out)?.is_err() {
                        return Ok(None);
                    }
                }
                while from_top
                    .next_if(|e| e.key.view().cmp(&last.key.view()).is_eq())
                    .is_some()
                {}
            }
        } else {
            for e in group {
                if out.len() >= want {
                    break;
                }
                if visit(e, &mut out)?.is_err() {
                    return Ok(None);
                }
            }
        }
        let results = out.into_iter().skip(self.skip).take(self.limit).collect();
        Ok(Some(QueryOutput {
            results,
            count: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::convert::Infallible;

    use ledger::schema::ClassDef;
    use ledger::Timestamp;
    use serde_json::json;

    use super::*;
    use crate::query::QueryParams;

    /// `n` records with the same `due` and alternating `ok`, ids in creation order.
    fn tied(n: usize) -> HashMap<String, Record> {
        (0..n)
            .map(|i| {
                let id = format!("id{i:05}");
                let mut fields = serde_json::Map::new();
                fields.insert("due".into(), json!(7));
                fields.insert("ok".into(), json!(i % 2 == 0));
                let r = Record {
                    object_id: id.clone(),
                    created_at: Timestamp(1),
                    updated_at: Timestamp(1),
                    created_seq: i as u64 + 1,
                    updated_seq: i as u64 + 1,
                    fields,
                };
                (id, r)
            })
            .collect()
    }

    #[test]
    fn one_order_key_stops_at_the_limit_inside_a_run_of_ties_either_way() {
        let class = ClassDef::from_json(&json!({"className": "Item", "fields": {
            "due": {"type": "Number"}, "ok": {"type": "Boolean"}}}))
        .expect("class");
        let records = tied(5_000);
        for order in ["due", "-due"] {
            let q = Query::parse(
                &class,
                &QueryParams {
                    where_: Some(json!({"ok": true})),
                    order: Some(order.into()),
                    limit: Some(3),
                    skip: Some(1),
                    ..QueryParams::default()
                },
            )
            .expect("query");
            let field = q.index_field().expect("an index answers it");
            let index =
                OrderIndex::build(&field, records.values().cloned().map(Ok::<_, Infallible>))
                    .expect("index");
            let mut fetched = 0;
            let out = q
                .run_indexed(&index, 100, |id| {
                    fetched += 1;
                    Ok::<_, Infallible>(records.get(id).cloned())
                })
                .expect("infallible")
                .expect("answered by the walk, within its budget");
            let ids: Vec<&str> = out.results.iter().map(|r| r.object_id.as_str()).collect();
            // Ties go by objectId ascending whatever the direction; `ok` pins the even ids.
            assert_eq!(ids, ["id00002", "id00004", "id00006"], "order {order}");
            assert!(fetched <= 4, "order {order}: {fetched} records fetched");
        }
    }
}
