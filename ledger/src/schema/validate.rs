//! Checks record values against a class, in Parse's JSON encodings, and normalises them.
//! Every error names the class, the field, and what was expected and given.

use serde_json::{Map, Value};

use super::types::{AppSchema, ClassDef, FieldDef, FieldType, SYSTEM_FIELDS};
use crate::time::Timestamp;

/// Why record values were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The class is not in the app's schema.
    #[error("class {class} does not exist")]
    UnknownClass {
        /// The class.
        class: String,
    },
    /// The field is not in the class.
    #[error("{class}.{field}: no such field")]
    UnknownField {
        /// The class.
        class: String,
        /// The field.
        field: String,
    },
    /// A value of the wrong type.
    #[error("{class}.{field}: expected {expected}, given {given}")]
    WrongType {
        /// The class.
        class: String,
        /// The field.
        field: String,
        /// The field's type.
        expected: String,
        /// What the value is.
        given: String,
    },
    /// A required field is missing (or null).
    #[error("{class}.{field}: required field is missing")]
    MissingRequired {
        /// The class.
        class: String,
        /// The field.
        field: String,
    },
    /// An update would unset a required field.
    #[error("{class}.{field}: a required field cannot be removed")]
    RequiredUnset {
        /// The class.
        class: String,
        /// The field.
        field: String,
    },
    /// A malformed Pointer.
    #[error("{class}.{field}: bad pointer: {why}")]
    BadPointer {
        /// The class.
        class: String,
        /// The field.
        field: String,
        /// What is wrong.
        why: String,
    },
    /// A Date whose `iso` is not RFC 3339.
    #[error(
        "{class}.{field}: bad date {value:?} (expected RFC 3339, e.g. 2026-11-17T09:30:00.000Z)"
    )]
    BadDate {
        /// The class.
        class: String,
        /// The field.
        field: String,
        /// The text given.
        value: String,
    },
    /// A malformed File.
    #[error("{class}.{field}: bad file: {why}")]
    BadFile {
        /// The class.
        class: String,
        /// The field.
        field: String,
        /// What is wrong.
        why: String,
    },
    /// A system field a writer may not set.
    #[error("{class}.{field}: set by the server, not by a writer")]
    ReservedField {
        /// The class.
        class: String,
        /// The field.
        field: String,
    },
    /// A secret (password) value, which never enters the ledger.
    #[error("{class}.{field}: secret values are never written to the ledger")]
    SecretField {
        /// The class.
        class: String,
        /// The field.
        field: String,
    },
    /// An update that changes nothing.
    #[error("{class}: an update must change at least one field")]
    EmptyUpdate {
        /// The class.
        class: String,
    },
}

/// Whether `id` is a valid objectId: 1 to 64 of `[A-Za-z0-9_-]`.
pub fn is_valid_object_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A short description of what a JSON value is, for error messages.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "Boolean".into(),
        Value::Number(_) => "Number".into(),
        Value::String(_) => "String".into(),
        Value::Array(_) => "Array".into(),
        Value::Object(m) => match (m.get("__type"), m.get("__op")) {
            (Some(Value::String(t)), _) => t.clone(),
            (_, Some(Value::String(op))) => format!("operation {op}"),
            _ => "Object".into(),
        },
    }
}

fn class_def<'a>(schema: &'a AppSchema, class: &str) -> Result<&'a ClassDef, ValidationError> {
    schema
        .class(class)
        .ok_or_else(|| ValidationError::UnknownClass {
            class: class.into(),
        })
}

fn field_def<'a>(c: &'a ClassDef, field: &str) -> Result<&'a FieldDef, ValidationError> {
    if SYSTEM_FIELDS.contains(&field) {
        return Err(ValidationError::ReservedField {
            class: c.name.clone(),
            field: field.into(),
        });
    }
    let def = c
        .fields
        .get(field)
        .ok_or_else(|| ValidationError::UnknownField {
            class: c.name.clone(),
            field: field.into(),
        })?;
    if def.secret {
        return Err(ValidationError::SecretField {
            class: c.name.clone(),
            field: field.into(),
        });
    }
    Ok(def)
}

/// Checks the fields of a new record; returns them normalised (nulls dropped, dates in
/// canonical form). Every required field must be present.
pub fn check_create(
    schema: &AppSchema,
    class: &str,
    fields: &Map<String, Value>,
) -> Result<Map<String, Value>, ValidationError> {
    let c = class_def(schema, class)?;
    let mut out = Map::new();
    for (name, v) in fields {
        if name == "ACL" {
            out.insert(name.clone(), check_acl(c, v)?);
            continue;
        }
        let def = field_def(c, name)?;
        if v.is_null() {
            continue;
        }
        out.insert(name.clone(), check_value(c, name, &def.field_type, v)?);
    }
    for (name, def) in &c.fields {
        if def.required && !def.secret && !out.contains_key(name) {
            return Err(ValidationError::MissingRequired {
                class: c.name.clone(),
                field: name.clone(),
            });
        }
    }
    Ok(out)
}

/// Checks an update: `set` (a null value means unset) and `unset`. Returns the normalised
/// values to set and the sorted fields to unset.
pub fn check_update(
    schema: &AppSchema,
    class: &str,
    set: &Map<String, Value>,
    unset: &[String],
) -> Result<(Map<String, Value>, Vec<String>), ValidationError> {
    let c = class_def(schema, class)?;
    let mut out = Map::new();
    let mut removed: Vec<String> = Vec::new();
    let mut remove = |name: &str, def: &FieldDef| {
        if def.required {
            return Err(ValidationError::RequiredUnset {
                class: c.name.clone(),
                field: name.into(),
            });
        }
        removed.push(name.to_string());
        Ok(())
    };
    for (name, v) in set {
        if name == "ACL" {
            out.insert(name.clone(), check_acl(c, v)?);
            continue;
        }
        let def = field_def(c, name)?;
        if v.is_null() {
            remove(name, def)?;
        } else {
            out.insert(name.clone(), check_value(c, name, &def.field_type, v)?);
        }
    }
    for name in unset {
        let def = field_def(c, name)?;
        remove(name, def)?;
    }
    removed.sort();
    removed.dedup();
    if out.is_empty() && removed.is_empty() {
        return Err(ValidationError::EmptyUpdate {
            class: c.name.clone(),
        });
    }
    Ok((out, removed))
}

/// The pointers among already-checked fields: (field, target class, objectId).
pub fn pointers(fields: &Map<String, Value>) -> impl Iterator<Item = (&str, &str, &str)> {
    fields.iter().filter_map(|(name, v)| {
        let m = v.as_object()?;
        if m.get("__type")?.as_str()? != "Pointer" {
            return None;
        }
        Some((
            name.as_str(),
            m.get("className")?.as_str()?,
            m.get("objectId")?.as_str()?,
        ))
    })
}

fn check_acl(c: &ClassDef, v: &Value) -> Result<Value, ValidationError> {
    if v.is_object() {
        Ok(v.clone())
    } else {
        Err(ValidationError::WrongType {
            class: c.name.clone(),
            field: "ACL".into(),
            expected: "Object".into(),
            given: describe(v),
        })
    }
}

fn check_value(
    c: &ClassDef,
    field: &str,
    t: &FieldType,
    v: &Value,
) -> Result<Value, ValidationError> {
    let wrong = || ValidationError::WrongType {
        class: c.name.clone(),
        field: field.into(),
        expected: t.to_string(),
        given: describe(v),
    };
    if let Value::Object(m) = v {
        if m.contains_key("__op") {
            return Err(wrong());
        }
    }
    match t {
        FieldType::String => v.is_string().then(|| v.clone()).ok_or_else(wrong),
        FieldType::Number => v.is_number().then(|| v.clone()).ok_or_else(wrong),
        FieldType::Boolean => v.is_boolean().then(|| v.clone()).ok_or_else(wrong),
        FieldType::Object => match v {
            Value::Object(m) if !m.contains_key("__type") => Ok(v.clone()),
            _ => Err(wrong()),
        },
        FieldType::Array { inner } => {
            let items = v.as_array().ok_or_else(wrong)?;
            match inner {
                None => Ok(v.clone()),
                Some(it) => items
                    .iter()
                    .map(|x| check_value(c, field, it, x))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::Array),
            }
        }
        FieldType::Date => {
            if describe(v) != "Date" {
                return Err(wrong());
            }
            let iso = v.get("iso").and_then(Value::as_str).unwrap_or("");
            let t = Timestamp::parse_rfc3339(iso).ok_or_else(|| ValidationError::BadDate {
                class: c.name.clone(),
                field: field.into(),
                value: iso.into(),
            })?;
            let dt = t.to_datetime().ok_or_else(|| ValidationError::BadDate {
                class: c.name.clone(),
                field: field.into(),
                value: iso.into(),
            })?;
            let text = if t.0 % 1000 == 0 {
                dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            } else {
                dt.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            };
            Ok(serde_json::json!({"__type": "Date", "iso": text}))
        }
        FieldType::Pointer { target_class } => {
            if describe(v) != "Pointer" {
                return Err(wrong());
            }
            let bad = |why: String| ValidationError::BadPointer {
                class: c.name.clone(),
                field: field.into(),
                why,
            };
            let class_name = v
                .get("className")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("\"className\" must be a string".into()))?;
            if super::prompt::canonical_class_name(class_name) != target_class {
                return Err(bad(format!(
                    "points to {class_name}, expected {target_class}"
                )));
            }
            let id = v
                .get("objectId")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("\"objectId\" must be a string".into()))?;
            if !is_valid_object_id(id) {
                return Err(bad(format!(
                    "objectId {id:?} is not 1 to 64 of [A-Za-z0-9_-]"
                )));
            }
            Ok(serde_json::json!({"__type": "Pointer", "className": target_class, "objectId": id}))
        }
        FieldType::File => {
            if describe(v) != "File" {
                return Err(wrong());
            }
            let bad = |why: &str| ValidationError::BadFile {
                class: c.name.clone(),
                field: field.into(),
                why: why.into(),
            };
            let name = v
                .get("name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| bad("\"name\" must be a non-empty string"))?;
            let hash = v
                .get("hash")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("\"hash\" (blake3 of the bytes, 64 hex digits) is required"))?;
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad("\"hash\" must be 64 hex digits"));
            }
            let mut out = serde_json::json!({"__type": "File", "name": name, "hash": hash.to_ascii_lowercase()});
            match v.get("url") {
                None | Some(Value::Null) => {}
                Some(Value::String(u)) => out["url"] = Value::String(u.clone()),
                Some(_) => return Err(bad("\"url\" must be a string")),
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{templates::Template, SchemaChange};
    use serde_json::json;

    fn gxp() -> AppSchema {
        let mut s = AppSchema::default();
        let classes = Template::named("gxp")
            .expect("gxp")
            .classes()
            .expect("parse");
        s.apply(&SchemaChange::Define {
            source: "t".into(),
            classes,
        })
        .expect("apply");
        s
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn a_valid_record_is_normalised() {
        let out = check_create(
            &gxp(),
            "ValidationLog",
            &obj(json!({
                "protocolId": "P-1", "testedSystem": "LIMS", "result": "pass",
                "executedAt": {"__type": "Date", "iso": "2026-11-17T10:30:00+01:00"},
                "approvedBy": {"__type": "Pointer", "className": "_User", "objectId": "u1"},
                "evidenceUrl": null
            })),
        )
        .expect("valid");
        assert_eq!(out["executedAt"]["iso"], "2026-11-17T09:30:00.000Z");
        assert!(!out.contains_key("evidenceUrl"));
    }

    #[test]
    fn errors_name_class_field_expected_and_given() {
        let s = gxp();
        let base = json!({"protocolId": "P-1", "testedSystem": "LIMS", "result": "pass",
                          "executedAt": {"__type": "Date", "iso": "2026-11-17T09:30:00Z"}});
        let with = |k: &str, v: Value| {
            let mut m = obj(base.clone());
            m.insert(k.into(), v);
            check_create(&s, "ValidationLog", &m)
        };
        let e = with("protocolId", json!(7)).expect_err("wrong type");
        assert_eq!(
            e.to_string(),
            "ValidationLog.protocolId: expected String, given Number"
        );
        assert!(matches!(
            with("nope", json!(1)),
            Err(ValidationError::UnknownField { .. })
        ));
        assert!(matches!(
            with("executedAt", json!({"__type": "Date", "iso": "yesterday"})),
            Err(ValidationError::BadDate { .. })
        ));
        assert!(matches!(
            with("executedAt", json!("2026-11-17")),
            Err(ValidationError::WrongType { .. })
        ));
        assert!(matches!(
            with(
                "approvedBy",
                json!({"__type": "Pointer", "className": "SystemAudit", "objectId": "x"})
            ),
            Err(ValidationError::BadPointer { .. })
        ));
        assert!(matches!(
            with(
                "approvedBy",
                json!({"__type": "Pointer", "className": "_User", "objectId": "a b"})
            ),
            Err(ValidationError::BadPointer { .. })
        ));
        assert!(matches!(
            with(
                "createdAt",
                json!({"__type": "Date", "iso": "2026-11-17T09:30:00Z"})
            ),
            Err(ValidationError::ReservedField { .. })
        ));
        assert!(matches!(
            with("result", json!({"__op": "Increment", "amount": 1})),
            Err(ValidationError::WrongType { .. })
        ));
        let mut m = obj(base.clone());
        m.remove("result");
        assert_eq!(
            check_create(&s, "ValidationLog", &m),
            Err(ValidationError::MissingRequired {
                class: "ValidationLog".into(),
                field: "result".into()
            })
        );
        assert!(matches!(
            check_create(&s, "Nope", &m),
            Err(ValidationError::UnknownClass { .. })
        ));
        assert!(matches!(
            check_create(
                &s,
                "_User",
                &obj(json!({"username": "a", "password": "hunter2"}))
            ),
            Err(ValidationError::SecretField { .. })
        ));
    }

    #[test]
    fn updates_refuse_removing_required_fields_and_empty_changes() {
        let s = gxp();
        assert!(matches!(
            check_update(&s, "ValidationLog", &obj(json!({"result": null})), &[]),
            Err(ValidationError::RequiredUnset { .. })
        ));
        assert!(matches!(
            check_update(&s, "ValidationLog", &Map::new(), &[]),
            Err(ValidationError::EmptyUpdate { .. })
        ));
        let (set, unset) = check_update(
            &s,
            "ValidationLog",
            &obj(json!({"result": "fail"})),
            &["evidenceUrl".into()],
        )
        .expect("ok");
        assert_eq!(set["result"], "fail");
        assert_eq!(unset, vec!["evidenceUrl".to_string()]);
    }
}
