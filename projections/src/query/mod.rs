//! Parse queries over a projection: the query language of the Parse REST API
//! (`GET /classes/{class}?where=…&order=…&limit=…&skip=…&keys=…&include=…&count=1`),
//! parsed and type-checked against a class once into a [`Query`], then evaluated against
//! [`Record`]s without errors, panics or per-record allocation.
//!
//! - `where`: field constraints (plain equality, `$eq`, `$ne`, `$lt`, `$lte`, `$gt`,
//!   `$gte`, `$in`, `$nin`, `$exists`, `$regex`/`$options`, `$all`) on the class's fields
//!   and on `objectId`, `createdAt` and `updatedAt`, combined with `$or`, `$and`, `$nor`.
//! - `order`: comma-separated fields, `-field` descending; missing values sort first
//!   ascending; objectId ascending always breaks ties. Default `createdAt`.
//! - `limit` (default 100, 0 to 10 000), `skip` (0 to 1 000 000), `count`.
//! - `keys` restricts the returned fields; `include` names Pointer fields to expand (the
//!   expansion itself is the caller's).
//!
//! Submodules: `error` (refusals and their Parse codes), `fields` (name resolution),
//! `value` (operands, comparison, Date decoding), `filter` (`where`), `order` (`order`),
//! `index` (ordered in-memory indexes and the plan that walks them).

mod error;
mod fields;
mod filter;
mod index;
mod order;
mod value;

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap};

use ledger::schema::{ClassDef, FieldType};
use serde_json::{Map, Value};

pub use error::{QueryError, INVALID_JSON, INVALID_KEY_NAME, INVALID_QUERY};
pub(crate) use index::{IndexField, OrderIndex};

use crate::record::{Record, CREATED_AT, OBJECT_ID, UPDATED_AT};
use fields::resolve;
use filter::Filter;
use order::OrderKey;

/// The number of results when `limit` is not given (Parse's default).
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `limit` accepted.
pub const MAX_LIMIT: usize = 10_000;
/// The largest `skip` accepted.
pub const MAX_SKIP: usize = 1_000_000;

/// A query's parameters as the REST layer received them (each already decoded from the URL;
/// `where_` already parsed as JSON, or the raw text as a JSON string).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryParams {
    /// `where`: a JSON object of constraints.
    pub where_: Option<Value>,
    /// `order`: comma-separated field names, `-name` for descending.
    pub order: Option<String>,
    /// `limit`: how many results at most (default [`DEFAULT_LIMIT`]).
    pub limit: Option<i64>,
    /// `skip`: how many sorted matches to pass over first.
    pub skip: Option<i64>,
    /// `keys`: comma-separated fields to return (system fields are always returned).
    pub keys: Option<String>,
    /// `include`: comma-separated (dotted) paths of Pointer fields to expand.
    pub include: Option<String>,
    /// `count=1`: also count all matches.
    pub count: bool,
}

/// What [`Query::run`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryOutput {
    /// The matching records, sorted, after `skip`, at most `limit` of them.
    pub results: Vec<Record>,
    /// The number of all matches (before `skip` and `limit`), when `count` was asked.
    pub count: Option<u64>,
}

/// A parsed, type-checked query over one class.
#[derive(Debug, Clone)]
pub struct Query {
    class: String,
    filter: Filter,
    order: Vec<(String, bool)>,
    order_keys: Vec<OrderKey>,
    limit: usize,
    skip: usize,
    count: bool,
    keys: Option<Vec<String>>,
    key_set: Option<BTreeSet<String>>,
    include: Vec<String>,
}

impl Query {
    /// Parses and checks `params` against `class`. Every operand is typed against its
    /// field, Dates are parsed and regexes compiled here, once.
    pub fn parse(class: &ClassDef, params: &QueryParams) -> Result<Query, QueryError> {
        let filter = match &params.where_ {
            None => Filter::And(Vec::new()),
            Some(w) => filter::parse_where(class, w)?,
        };
        let (order, order_keys) = order::parse_order(class, params.order.as_deref())?;
        let limit = match params.limit {
            None => DEFAULT_LIMIT,
            Some(n) => usize::try_from(n)
                .ok()
                .filter(|n| *n <= MAX_LIMIT)
                .ok_or(QueryError::LimitOutOfRange { given: n })?,
        };
        let skip = match params.skip {
            None => 0,
            Some(n) => usize::try_from(n)
                .ok()
                .filter(|n| *n <= MAX_SKIP)
                .ok_or(QueryError::SkipOutOfRange { given: n })?,
        };
        let keys = params
            .keys
            .as_deref()
            .map(|k| parse_keys(class, k))
            .transpose()?;
        let key_set = keys.as_ref().map(|ks| {
            ks.iter()
                .map(|k| k.split('.').next().unwrap_or(k).to_string())
                .collect()
        });
        let include = match params.include.as_deref() {
            None => Vec::new(),
            Some(s) => parse_include(class, s)?,
        };
        Ok(Query {
            class: class.name.as_str().into(),
            filter,
            order,
            order_keys,
            limit,
            skip,
            count: params.count,
            keys,
            key_set,
            include,
        })
    }

    /// The class queried.
    pub fn class_name(&self) -> &str {
        &self.class
    }

    /// Whether the record satisfies `where`.
    pub fn matches(&self, r: &Record) -> bool {
        self.filter.matches(r)
    }

    /// The order of two records: the `order` keys, then objectId ascending.
    pub fn compare(&self, a: &Record, b: &Record) -> Ordering {
        order::compare(&self.order_keys, a, b)
    }

    /// The record as a Parse REST object, restricted to `keys` when given (`objectId`,
    /// `createdAt` and `updatedAt` are always kept; a dotted key keeps its first field).
    pub fn project(&self, r: &Record) -> Map<String, Value> {
        let mut m = r.to_parse_json();
        if let Some(keep) = &self.key_set {
            m.retain(|k, _| {
                keep.contains(k) || k == OBJECT_ID || k == CREATED_AT || k == UPDATED_AT
            });
        }
        m
    }

    /// How many results at most.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// How many sorted matches to pass over.
    pub fn skip(&self) -> usize {
        self.skip
    }

    /// Whether all matches are to be counted.
    pub fn count(&self) -> bool {
        self.count
    }

    /// The `keys` entries as given (trimmed; dotted ones included), or `None` for all.
    pub fn keys(&self) -> Option<&[String]> {
        self.keys.as_deref()
    }

    /// The `include` paths (dotted, deduplicated; `*` expanded to every Pointer field).
    /// Only their first field is checked (a Pointer of this class); the caller follows
    /// the rest.
    pub fn include(&self) -> &[String] {
        &self.include
    }

    /// The effective sort keys as (field, descending): the `order` given, or `createdAt`
    /// ascending by default. The final objectId tie-break is implicit and not listed.
    pub fn order_fields(&self) -> &[(String, bool)] {
        &self.order
    }

    /// The value a top-level plain or `$eq` equality constraint (directly in `where` or
    /// in a top-level `$and`) requires of `field`, normalised (Dates in the ledger's stored
    /// form, Pointer classNames canonical) — for index lookups. `None` for Array fields
    /// (where equality means "contains") and for `null`.
    pub fn equality_on(&self, field: &str) -> Option<&Value> {
        self.filter.equality_on(field)
    }

    /// Filters, sorts, skips and limits `records`, keeping only the best `skip + limit`
    /// in a bounded heap; counts all matches when `count` was asked.
    pub fn run<I>(&self, records: I) -> QueryOutput
    where
        I: IntoIterator<Item = Record>,
    {
        let (results, count) = self.select(records);
        QueryOutput { results, count }
    }

    /// [`Query::run`] over borrowed records; only the results are cloned.
    pub fn run_ref<'a, I>(&self, records: I) -> QueryOutput
    where
        I: IntoIterator<Item = &'a Record>,
    {
        let (results, count) = self.select(records);
        QueryOutput {
            results: results.into_iter().cloned().collect(),
            count,
        }
    }

    fn select<R, I>(&self, records: I) -> (Vec<R>, Option<u64>)
    where
        R: Borrow<Record>,
        I: IntoIterator<Item = R>,
    {
        if self.limit == 0 && !self.count {
            return (Vec::new(), None);
        }
        let k = if self.limit == 0 {
            0
        } else {
            self.skip.saturating_add(self.limit)
        };
        let mut matched = 0u64;
        let mut heap: BinaryHeap<Entry<'_, R>> = BinaryHeap::with_capacity(k.min(1024));
        // The sort keys of the worst entry kept, once the heap is full.
        let mut worst = None;
        for r in records {
            if !self.matches(r.borrow()) {
                continue;
            }
            matched += 1;
            if k == 0 {
                continue;
            }
            if heap.len() < k {
                heap.push(Entry { q: self, r });
                if heap.len() == k {
                    worst = heap
                        .peek()
                        .map(|e| order::cache(&self.order_keys, e.r.borrow()));
                }
            } else if worst
                .as_ref()
                .is_some_and(|w| order::compare_cached(&self.order_keys, r.borrow(), w).is_lt())
            {
                // Better than the worst kept: it takes its place. (The common case, not
                // better, read only r's own values.)
                if let Some(mut top) = heap.peek_mut() {
                    *top = Entry { q: self, r };
                }
                worst = heap
                    .peek()
                    .map(|e| order::cache(&self.order_keys, e.r.borrow()));
            }
        }
        let results = heap
            .into_sorted_vec()
            .into_iter()
            .skip(self.skip)
            .map(|e| e.r)
            .collect();
        (results, self.count.then_some(matched))
    }
}

/// A heap entry ordered by the query's order.
struct Entry<'q, R> {
    q: &'q Query,
    r: R,
}

impl<R: Borrow<Record>> PartialEq for Entry<'_, R> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl<R: Borrow<Record>> Eq for Entry<'_, R> {}

impl<R: Borrow<Record>> PartialOrd for Entry<'_, R> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<R: Borrow<Record>> Ord for Entry<'_, R> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.q.compare(self.r.borrow(), other.r.borrow())
    }
}

/// Checks one name's first field for `keys`: a system field, `ACL`, or a non-secret field;
/// dotted names only below Pointer and Object fields.
fn parse_keys(class: &ClassDef, text: &str) -> Result<Vec<String>, QueryError> {
    let mut out: Vec<String> = Vec::new();
    for key in text.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        let bad = |why: String| QueryError::BadKey {
            param: "keys",
            key: key.into(),
            why: why.into(),
        };
        let mut segs = key.split('.');
        let first = segs.next().unwrap_or(key);
        if segs.clone().any(str::is_empty) || first.is_empty() {
            return Err(bad("empty segment in dotted name".into()));
        }
        let dotted = key.contains('.');
        if first == "ACL" {
            if dotted {
                return Err(bad("ACL has no sub-keys".into()));
            }
        } else {
            let (_, ty) = resolve(class, first)
                .ok_or_else(|| bad(format!("{} has no field {first:?}", class.name)))?;
            if dotted && !matches!(ty, FieldType::Pointer { .. } | FieldType::Object) {
                return Err(bad(format!(
                    "{}.{first} is of type {ty}; only Pointer and Object fields have sub-keys",
                    class.name
                )));
            }
        }
        if !out.iter().any(|k| k == key) {
            out.push(key.to_string());
        }
    }
    Ok(out)
}

/// Checks `include`: each path's first field must be a Pointer of the class.
fn parse_include(class: &ClassDef, text: &str) -> Result<Vec<String>, QueryError> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |p: String| {
        if !out.contains(&p) {
            out.push(p);
        }
    };
    for path in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if path == "*" {
            for (name, def) in &class.fields {
                if !def.secret && matches!(def.field_type, FieldType::Pointer { .. }) {
                    push(name.clone());
                }
            }
            continue;
        }
        let bad = |why: String| QueryError::BadKey {
            param: "include",
            key: path.into(),
            why: why.into(),
        };
        if path.split('.').any(str::is_empty) {
            return Err(bad("empty segment in dotted path".into()));
        }
        let first = path.split('.').next().unwrap_or(path);
        let (_, ty) = resolve(class, first)
            .ok_or_else(|| bad(format!("{} has no field {first:?}", class.name)))?;
        if !matches!(ty, FieldType::Pointer { .. }) {
            return Err(QueryError::IncludeNotPointer {
                path: path.into(),
                class: class.name.as_str().into(),
                field: first.into(),
                field_type: ty.to_string().into(),
            });
        }
        push(path.to_string());
    }
    Ok(out)
}
