//! The `order` parameter: parsing `-score,title` against a class, and the total order of
//! records it defines (missing values first ascending, objectId ascending as the last
//! tie-break).

use std::cmp::Ordering;

use ledger::schema::{ClassDef, FieldType};

use super::error::QueryError;
use super::fields::{resolve, FieldRef};
use super::value::{Num, SortKey};
use crate::record::{Record, CREATED_AT};

/// One sort key.
#[derive(Debug, Clone)]
pub(super) struct OrderKey {
    pub(super) field: FieldRef,
    pub(super) desc: bool,
}

/// The sort keys as (name, descending) and compiled.
pub(super) type ParsedOrder = (Vec<(String, bool)>, Vec<OrderKey>);

/// Parses `order`; absent or blank means `createdAt`. Returns the keys as names (with
/// their descending flag) and compiled.
pub(super) fn parse_order(
    class: &ClassDef,
    order: Option<&str>,
) -> Result<ParsedOrder, QueryError> {
    let text = order.map(str::trim).filter(|s| !s.is_empty());
    let Some(text) = text else {
        return Ok((
            vec![(CREATED_AT.to_string(), false)],
            vec![OrderKey {
                field: FieldRef::CreatedAt,
                desc: false,
            }],
        ));
    };
    let mut names = Vec::new();
    let mut keys = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let (name, desc) = match part.strip_prefix('-') {
            Some(rest) => (rest.trim(), true),
            None => (part, false),
        };
        let bad = |why: &str| QueryError::BadOrder {
            field: name.into(),
            why: why.into(),
        };
        if name.is_empty() {
            return Err(bad("empty field name in order"));
        }
        let (field, ty) = resolve(class, name).ok_or_else(|| QueryError::BadOrder {
            field: name.into(),
            why: format!("{} has no such field", class.name).into(),
        })?;
        if matches!(
            ty,
            FieldType::Object | FieldType::Array { .. } | FieldType::File
        ) {
            return Err(QueryError::BadOrder {
                field: name.into(),
                why: format!(
                    "{}.{name} is of type {ty}, which cannot be sorted on",
                    class.name
                )
                .into(),
            });
        }
        if names.iter().any(|(n, _): &(String, bool)| n == name) {
            continue;
        }
        names.push((name.to_string(), desc));
        keys.push(OrderKey { field, desc });
    }
    Ok((names, keys))
}

/// A record's sort key for one order key.
#[inline]
fn key_of<'r>(k: &OrderKey, r: &'r Record) -> SortKey<'r> {
    field_key(&k.field, r)
}

/// A record's sort key for a field.
#[inline]
pub(super) fn field_key<'r>(field: &FieldRef, r: &'r Record) -> SortKey<'r> {
    match field {
        FieldRef::CreatedAt => SortKey::Date(r.created_at.0),
        FieldRef::UpdatedAt => SortKey::Date(r.updated_at.0),
        FieldRef::ObjectId => SortKey::Str(&r.object_id),
        f => SortKey::of(f.get(r)),
    }
}

/// Compares two records by the keys, then by objectId ascending.
#[inline]
pub(super) fn compare(keys: &[OrderKey], a: &Record, b: &Record) -> Ordering {
    for k in keys {
        let o = key_of(k, a).cmp(&key_of(k, b));
        let o = if k.desc { o.reverse() } else { o };
        if o.is_ne() {
            return o;
        }
    }
    a.object_id.cmp(&b.object_id)
}

/// One record's sort keys, extracted once and owned: the bounded heap keeps its worst
/// entry's so that each candidate reads only its own values.
#[derive(Debug)]
pub(super) struct CachedKey {
    keys: Vec<OwnedKey>,
    object_id: String,
}

/// A sort key, owned.
#[derive(Debug, Clone)]
pub(super) enum OwnedKey {
    Missing,
    Num(Num),
    Str(Box<str>),
    Pointer(Box<str>, Box<str>),
    Object,
    Array,
    Bool(bool),
    Date(i64),
}

impl OwnedKey {
    /// Owns a sort key.
    pub(super) fn of(k: SortKey<'_>) -> Self {
        match k {
            SortKey::Missing => OwnedKey::Missing,
            SortKey::Num(n) => OwnedKey::Num(n),
            SortKey::Str(s) => OwnedKey::Str(s.into()),
            SortKey::Pointer(c, id) => OwnedKey::Pointer(c.into(), id.into()),
            SortKey::Object => OwnedKey::Object,
            SortKey::Array => OwnedKey::Array,
            SortKey::Bool(b) => OwnedKey::Bool(b),
            SortKey::Date(t) => OwnedKey::Date(t),
        }
    }

    /// The sort key it holds.
    pub(super) fn view(&self) -> SortKey<'_> {
        match self {
            OwnedKey::Missing => SortKey::Missing,
            OwnedKey::Num(n) => SortKey::Num(*n),
            OwnedKey::Str(s) => SortKey::Str(s),
            OwnedKey::Pointer(c, id) => SortKey::Pointer(c, id),
            OwnedKey::Object => SortKey::Object,
            OwnedKey::Array => SortKey::Array,
            OwnedKey::Bool(b) => SortKey::Bool(*b),
            OwnedKey::Date(t) => SortKey::Date(*t),
        }
    }
}

/// Extracts a record's sort keys.
pub(super) fn cache(keys: &[OrderKey], r: &Record) -> CachedKey {
    CachedKey {
        keys: keys.iter().map(|k| OwnedKey::of(key_of(k, r))).collect(),
        object_id: r.object_id.clone(),
    }
}

/// [`compare`] against extracted keys: the same order.
#[inline]
pub(super) fn compare_cached(keys: &[OrderKey], a: &Record, b: &CachedKey) -> Ordering {
    for (k, bk) in keys.iter().zip(&b.keys) {
        let o = key_of(k, a).cmp(&bk.view());
        let o = if k.desc { o.reverse() } else { o };
        if o.is_ne() {
            return o;
        }
    }
    a.object_id.as_str().cmp(b.object_id.as_str())
}
