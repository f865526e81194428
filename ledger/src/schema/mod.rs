//! The schema registry: each app's classes and fields, how a schema changes (always as an
//! event), and how record values are checked against it.
//!
//! - [`types`]: field types, field and class definitions, and the app schema with its
//!   change rules; its JSON form is Parse's (`{"className", "fields": {…}}`).
//! - [`prompt`]: reads the seeds' "Schema:" prompt blocks (the authoritative templates).
//! - [`import`]: reads a Parse schema document (`{"classes": […]}`) as-is.
//! - [`templates`]: the five built-in apps.
//! - [`validate`]: checks record values, naming class, field, expected and given type.

pub mod import;
pub mod prompt;
pub mod templates;
mod types;
pub mod validate;

pub use types::{
    AppSchema, ClassDef, FieldDef, FieldType, SchemaChange, SchemaError, SYSTEM_FIELDS, USER_CLASS,
};
