//! Field names as a query uses them: resolving a name against the class (system fields,
//! then the class's own fields, secrets excluded) and reading a record's value for it
//! without allocating.

use ledger::schema::{ClassDef, FieldType};

use super::value::Val;
use crate::record::{Record, CREATED_AT, OBJECT_ID, UPDATED_AT};

static STRING: FieldType = FieldType::String;
static DATE: FieldType = FieldType::Date;

/// A resolved field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum FieldRef {
    /// `objectId`.
    ObjectId,
    /// `createdAt`.
    CreatedAt,
    /// `updatedAt`.
    UpdatedAt,
    /// One of the class's own fields.
    Field(String),
}

impl FieldRef {
    /// The field's name.
    pub(super) fn name(&self) -> &str {
        match self {
            FieldRef::ObjectId => OBJECT_ID,
            FieldRef::CreatedAt => CREATED_AT,
            FieldRef::UpdatedAt => UPDATED_AT,
            FieldRef::Field(f) => f,
        }
    }

    /// The record's value for the field.
    #[inline]
    pub(super) fn get<'r>(&self, r: &'r Record) -> Val<'r> {
        match self {
            FieldRef::ObjectId => Val::Str(&r.object_id),
            FieldRef::CreatedAt => Val::Date(r.created_at.0),
            FieldRef::UpdatedAt => Val::Date(r.updated_at.0),
            FieldRef::Field(f) => r.fields.get(f).map_or(Val::Missing, Val::Json),
        }
    }
}

/// The field `name` of `class` and its type (`objectId` is a String, `createdAt` and
/// `updatedAt` are Dates); `None` for unknown and secret fields.
pub(super) fn resolve<'c>(class: &'c ClassDef, name: &str) -> Option<(FieldRef, &'c FieldType)> {
    match name {
        OBJECT_ID => Some((FieldRef::ObjectId, &STRING)),
        CREATED_AT => Some((FieldRef::CreatedAt, &DATE)),
        UPDATED_AT => Some((FieldRef::UpdatedAt, &DATE)),
        _ => class
            .fields
            .get(name)
            .filter(|d| !d.secret)
            .map(|d| (FieldRef::Field(name.to_string()), &d.field_type)),
    }
}
