//! The errors a Parse query can be refused with, each naming the field, operator or value
//! at fault, and the Parse error code the REST layer answers with.

/// Parse's `INVALID_QUERY`.
pub const INVALID_QUERY: u16 = 102;
/// Parse's `INVALID_KEY_NAME`.
pub const INVALID_KEY_NAME: u16 = 105;
/// Parse's `INVALID_JSON`.
pub const INVALID_JSON: u16 = 107;

/// Why a query was refused. Evaluating a parsed query never fails; every check happens in
/// [`Query::parse`](super::Query::parse).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// `where` is not a JSON object (nor a string holding one).
    #[error("where must be a JSON object, given {given}")]
    InvalidJson {
        /// What was given (JSON text, shortened).
        given: Box<str>,
    },
    /// An operator this server does not know (`$near`, `$foo`…), or a `$` key at the top
    /// level of `where` other than `$or`, `$and` and `$nor`.
    #[error("unknown operator {op} on field {field}")]
    UnknownOperator {
        /// The field (`where` for the top level).
        field: Box<str>,
        /// The operator.
        op: Box<str>,
    },
    /// A field the class does not have (secret fields count as unknown).
    #[error("{class} has no field {field:?}")]
    UnknownField {
        /// The class.
        class: Box<str>,
        /// The field named by the query.
        field: Box<str>,
    },
    /// An operand of the wrong type for the field.
    #[error("{class}.{field} is {} {field_type}: {op} needs {expected}, given {given}", article(.field_type))]
    WrongType {
        /// The class.
        class: Box<str>,
        /// The field.
        field: Box<str>,
        /// The field's type (`Date`, `Pointer<_User>`…).
        field_type: Box<str>,
        /// The operator (`equality` for a plain value).
        op: Box<str>,
        /// What the operator needs.
        expected: Box<str>,
        /// What was given (JSON text, shortened).
        given: Box<str>,
    },
    /// An operator that does not apply to the field's type (`$lt` on a Pointer, `$regex`
    /// on a Number, `$all` on a String…).
    #[error("{class}.{field} is {} {field_type}: {op} does not apply to it", article(.field_type))]
    NotApplicable {
        /// The class.
        class: Box<str>,
        /// The field.
        field: Box<str>,
        /// The field's type.
        field_type: Box<str>,
        /// The operator.
        op: Box<str>,
    },
    /// A malformed operator argument (`$in` not an array, `$exists` not a boolean…).
    #[error("bad {op} on field {field}: {why}")]
    BadOperand {
        /// The field.
        field: Box<str>,
        /// The operator.
        op: Box<str>,
        /// What is wrong.
        why: Box<str>,
    },
    /// A `$regex` the regex engine refused (its own message), or one too large.
    #[error("bad $regex {pattern:?} on field {field}: {why}")]
    BadRegex {
        /// The field.
        field: Box<str>,
        /// The pattern.
        pattern: Box<str>,
        /// The engine's message.
        why: Box<str>,
    },
    /// `$options` other than a string of `i`, `m`, `s` and `x`.
    #[error("bad $options {options} on field {field}: only i, m, s and x are allowed")]
    BadRegexOptions {
        /// The field.
        field: Box<str>,
        /// What was given (JSON text, shortened).
        options: Box<str>,
    },
    /// A malformed `$or`, `$and` or `$nor`.
    #[error("bad {op}: {why}")]
    BadLogical {
        /// The operator.
        op: Box<str>,
        /// What is wrong.
        why: Box<str>,
    },
    /// `limit` outside 0 to [`MAX_LIMIT`](super::MAX_LIMIT).
    #[error("limit {given} is out of range (0 to {max})", max = super::MAX_LIMIT)]
    LimitOutOfRange {
        /// The limit given.
        given: i64,
    },
    /// `skip` outside 0 to [`MAX_SKIP`](super::MAX_SKIP).
    #[error("skip {given} is out of range (0 to {max})", max = super::MAX_SKIP)]
    SkipOutOfRange {
        /// The skip given.
        given: i64,
    },
    /// An `order` entry naming an unknown field or one that cannot be sorted on.
    #[error("cannot order by {field:?}: {why}")]
    BadOrder {
        /// The field as written (without its `-`).
        field: Box<str>,
        /// Why.
        why: Box<str>,
    },
    /// A `keys` or `include` entry naming an unknown field or malformed.
    #[error("invalid name {key:?} in {param}: {why}")]
    BadKey {
        /// `keys` or `include`.
        param: &'static str,
        /// The entry.
        key: Box<str>,
        /// Why.
        why: Box<str>,
    },
    /// An `include` path whose first field is not a Pointer.
    #[error("cannot include {path:?}: {class}.{field} is {} {field_type}, not a Pointer", article(.field_type))]
    IncludeNotPointer {
        /// The include path.
        path: Box<str>,
        /// The class.
        class: Box<str>,
        /// Its first field.
        field: Box<str>,
        /// That field's type.
        field_type: Box<str>,
    },
}

impl QueryError {
    /// The Parse error code for this error: 107 `INVALID_JSON` for a `where` that is not
    /// an object, 105 `INVALID_KEY_NAME` for bad `order`, `keys` and `include` names, and
    /// 102 `INVALID_QUERY` for everything else.
    pub fn code(&self) -> u16 {
        match self {
            QueryError::InvalidJson { .. } => INVALID_JSON,
            QueryError::BadOrder { .. } | QueryError::BadKey { .. } => INVALID_KEY_NAME,
            QueryError::UnknownOperator { .. }
            | QueryError::UnknownField { .. }
            | QueryError::WrongType { .. }
            | QueryError::NotApplicable { .. }
            | QueryError::BadOperand { .. }
            | QueryError::BadRegex { .. }
            | QueryError::BadRegexOptions { .. }
            | QueryError::BadLogical { .. }
            | QueryError::LimitOutOfRange { .. }
            | QueryError::SkipOutOfRange { .. }
            | QueryError::IncludeNotPointer { .. } => INVALID_QUERY,
        }
    }
}

/// "a" or "an" before a type name.
fn article(type_name: &str) -> &'static str {
    match type_name.as_bytes().first() {
        Some(b'A' | b'E' | b'I' | b'O' | b'U') => "an",
        _ => "a",
    }
}

/// A value as JSON text for an error message, shortened to about 80 characters.
pub(super) fn show(v: &serde_json::Value) -> Box<str> {
    const MAX: usize = 80;
    let text = v.to_string();
    if text.len() <= MAX {
        return text.into();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end]).into()
}
