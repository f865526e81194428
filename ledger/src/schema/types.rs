//! Field types, class and app definitions, and the rules a schema change must follow.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Map, Value};

/// The built-in user class.
pub const USER_CLASS: &str = "_User";

/// Fields every class has, set by the ledger, never by a writer.
pub const SYSTEM_FIELDS: &[&str] = &["objectId", "createdAt", "updatedAt"];

/// A field's type (Parse's names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// UTF-8 text.
    String,
    /// A finite JSON number.
    Number,
    /// true or false.
    Boolean,
    /// `{"__type": "Date", "iso": RFC 3339}`.
    Date,
    /// `{"__type": "Pointer", "className": target, "objectId": id}`.
    Pointer {
        /// The class pointed to.
        target_class: String,
    },
    /// `{"__type": "File", "name", "url", "hash"}`: the bytes live outside the chain,
    /// their blake3 hash inside it.
    File,
    /// A JSON array, optionally of one inner type.
    Array {
        /// Parse's `innerType`, if declared.
        inner: Option<Box<FieldType>>,
    },
    /// A JSON object.
    Object,
}

impl FieldType {
    /// Parse's name of the type (`"Pointer"`, `"Date"`…).
    pub fn name(&self) -> &'static str {
        match self {
            FieldType::String => "String",
            FieldType::Number => "Number",
            FieldType::Boolean => "Boolean",
            FieldType::Date => "Date",
            FieldType::Pointer { .. } => "Pointer",
            FieldType::File => "File",
            FieldType::Array { .. } => "Array",
            FieldType::Object => "Object",
        }
    }

    /// The type with this Parse name (Pointer needs its target separately).
    pub fn from_name(name: &str, target_class: Option<&str>) -> Result<Self, SchemaError> {
        Ok(match name {
            "String" => FieldType::String,
            "Number" => FieldType::Number,
            "Boolean" => FieldType::Boolean,
            "Date" => FieldType::Date,
            "File" => FieldType::File,
            "Array" => FieldType::Array { inner: None },
            "Object" => FieldType::Object,
            "Pointer" => FieldType::Pointer {
                target_class: target_class
                    .ok_or_else(|| SchemaError::Invalid("a Pointer needs a targetClass".into()))?
                    .to_string(),
            },
            other => return Err(SchemaError::UnknownType(other.to_string())),
        })
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldType::Pointer { target_class } => write!(f, "Pointer<{target_class}>"),
            FieldType::Array { inner: Some(t) } => write!(f, "Array<{t}>"),
            other => f.write_str(other.name()),
        }
    }
}

/// One field of a class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDef {
    /// Its type.
    pub field_type: FieldType,
    /// Whether a record must have it.
    pub required: bool,
    /// Declared unique (recorded here; enforced where current values are known).
    pub unique: bool,
    /// A write-only secret (a password): its values never enter the ledger.
    pub secret: bool,
}

impl FieldDef {
    /// An optional, non-unique, non-secret field.
    pub fn new(field_type: FieldType) -> Self {
        FieldDef {
            field_type,
            required: false,
            unique: false,
            secret: false,
        }
    }

    /// The same field, required.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Parse's JSON form: `{"type", "targetClass"?, "innerType"?, "required", "unique"?, "secret"?}`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), json!(self.field_type.name()));
        match &self.field_type {
            FieldType::Pointer { target_class } => {
                m.insert("targetClass".into(), json!(target_class));
            }
            FieldType::Array { inner: Some(t) } => {
                m.insert("innerType".into(), json!(t.name()));
            }
            _ => {}
        }
        m.insert("required".into(), json!(self.required));
        if self.unique {
            m.insert("unique".into(), json!(true));
        }
        if self.secret {
            m.insert("secret".into(), json!(true));
        }
        Value::Object(m)
    }

    /// Reads the JSON form; unknown attributes other than Parse's own are refused.
    pub fn from_json(class: &str, field: &str, v: &Value) -> Result<Self, SchemaError> {
        let bad = |why: &str| SchemaError::Invalid(format!("{class}.{field}: {why}"));
        let m = v
            .as_object()
            .ok_or_else(|| bad("a field definition must be an object"))?;
        for k in m.keys() {
            if !matches!(
                k.as_str(),
                "type"
                    | "targetClass"
                    | "innerType"
                    | "required"
                    | "unique"
                    | "secret"
                    | "defaultValue"
            ) {
                return Err(bad(&format!("unknown attribute {k:?}")));
            }
        }
        let type_name = m
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("\"type\" must be a string"))?;
        let target = match m.get("targetClass") {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(bad("\"targetClass\" must be a string")),
        };
        let mut field_type = FieldType::from_name(type_name, target)?;
        if let FieldType::Array { inner } = &mut field_type {
            if let Some(it) = m.get("innerType") {
                let it = it
                    .as_str()
                    .ok_or_else(|| bad("\"innerType\" must be a string"))?;
                let t = FieldType::from_name(it, None)?;
                if matches!(t, FieldType::Array { .. } | FieldType::Pointer { .. }) {
                    return Err(bad("innerType must be a scalar type"));
                }
                *inner = Some(Box::new(t));
            }
        }
        let flag = |name: &str| -> Result<bool, SchemaError> {
            match m.get(name) {
                None => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(bad(&format!("{name:?} must be true or false"))),
            }
        };
        Ok(FieldDef {
            field_type,
            required: flag("required")?,
            unique: flag("unique")?,
            secret: flag("secret")?,
        })
    }
}

/// A class: its name and fields (system fields are implicit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassDef {
    /// The class name.
    pub name: String,
    /// Its fields by name.
    pub fields: BTreeMap<String, FieldDef>,
}

impl ClassDef {
    /// Parse's JSON form `{"className", "fields"}`.
    pub fn to_json(&self) -> Value {
        let fields: Map<String, Value> = self
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        json!({"className": self.name, "fields": fields})
    }

    /// Reads the JSON form written by [`ClassDef::to_json`].
    pub fn from_json(v: &Value) -> Result<Self, SchemaError> {
        let name = v
            .get("className")
            .and_then(Value::as_str)
            .ok_or_else(|| SchemaError::Invalid("a class needs a \"className\" string".into()))?;
        let fields_v = v.get("fields").and_then(Value::as_object).ok_or_else(|| {
            SchemaError::Invalid(format!("class {name}: \"fields\" must be an object"))
        })?;
        let mut fields = BTreeMap::new();
        for (f, d) in fields_v {
            fields.insert(f.clone(), FieldDef::from_json(name, f, d)?);
        }
        Ok(ClassDef {
            name: name.to_string(),
            fields,
        })
    }
}

/// A change to an app's schema. Each is one `schema.changed` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaChange {
    /// Defines a new app's classes at once (a template or an imported Parse document).
    Define {
        /// Where it came from (`template:gxp`, `import`…).
        source: String,
        /// The classes.
        classes: Vec<ClassDef>,
    },
    /// Adds a class.
    AddClass(ClassDef),
    /// Adds a field to a class.
    AddField {
        /// The class.
        class: String,
        /// The new field's name.
        field: String,
        /// Its definition.
        def: FieldDef,
    },
    /// Removes a field from a class (its values stay in history).
    RemoveField {
        /// The class.
        class: String,
        /// The field.
        field: String,
    },
}

impl SchemaChange {
    /// The `schema.changed` payload.
    pub fn to_json(&self) -> Value {
        match self {
            SchemaChange::Define { source, classes } => json!({
                "op": "define",
                "source": source,
                "classes": classes.iter().map(ClassDef::to_json).collect::<Vec<_>>(),
            }),
            SchemaChange::AddClass(c) => json!({"op": "add_class", "class": c.to_json()}),
            SchemaChange::AddField { class, field, def } => json!({
                "op": "add_field", "className": class, "field": field, "definition": def.to_json()
            }),
            SchemaChange::RemoveField { class, field } => {
                json!({"op": "remove_field", "className": class, "field": field})
            }
        }
    }

    /// Reads a `schema.changed` payload.
    pub fn from_json(v: &Value) -> Result<Self, SchemaError> {
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    SchemaError::Invalid(format!("schema change: {k:?} must be a string"))
                })
        };
        match v.get("op").and_then(Value::as_str) {
            Some("define") => {
                let classes = v
                    .get("classes")
                    .and_then(Value::as_array)
                    .ok_or_else(|| {
                        SchemaError::Invalid("define: \"classes\" must be an array".into())
                    })?
                    .iter()
                    .map(ClassDef::from_json)
                    .collect::<Result<_, _>>()?;
                Ok(SchemaChange::Define {
                    source: s("source")?,
                    classes,
                })
            }
            Some("add_class") => Ok(SchemaChange::AddClass(ClassDef::from_json(
                v.get("class").unwrap_or(&Value::Null),
            )?)),
            Some("add_field") => {
                let class = s("className")?;
                let field = s("field")?;
                let def = FieldDef::from_json(
                    &class,
                    &field,
                    v.get("definition").unwrap_or(&Value::Null),
                )?;
                Ok(SchemaChange::AddField { class, field, def })
            }
            Some("remove_field") => Ok(SchemaChange::RemoveField {
                class: s("className")?,
                field: s("field")?,
            }),
            _ => Err(SchemaError::Invalid("schema change: unknown \"op\"".into())),
        }
    }
}

/// Why a schema or a schema change was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// A type name that is not one of Parse's field types.
    #[error("unknown field type {0:?} (expected String, Number, Boolean, Date, Pointer, File, Array or Object)")]
    UnknownType(String),
    /// A class name already in use.
    #[error("class {0} already exists")]
    ClassExists(String),
    /// A class that does not exist.
    #[error("class {0} does not exist")]
    UnknownClass(String),
    /// A field that already exists.
    #[error("field {class}.{field} already exists")]
    FieldExists {
        /// The class.
        class: String,
        /// The field.
        field: String,
    },
    /// A field that does not exist.
    #[error("field {class}.{field} does not exist")]
    UnknownField {
        /// The class.
        class: String,
        /// The field.
        field: String,
    },
    /// A class or field name that breaks the naming rules, or a reserved name.
    #[error("invalid name {name:?}: {why}")]
    BadName {
        /// The name.
        name: String,
        /// Why.
        why: String,
    },
    /// A pointer to a class the schema does not have.
    #[error("{class}.{field} points to class {target}, which does not exist")]
    DanglingPointer {
        /// The class.
        class: String,
        /// The field.
        field: String,
        /// The missing target class.
        target: String,
    },
    /// Anything else malformed.
    #[error("invalid schema: {0}")]
    Invalid(String),
}

/// An app's schema at one point of its chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppSchema {
    /// Classes by name.
    pub classes: BTreeMap<String, ClassDef>,
}

fn check_name(name: &str, allow_system: bool) -> Result<(), SchemaError> {
    let bad = |why: &str| SchemaError::BadName {
        name: name.to_string(),
        why: why.to_string(),
    };
    if name.is_empty() || name.len() > 128 {
        return Err(bad("must be 1 to 128 characters"));
    }
    let mut chars = name.chars();
    let first = chars.next().unwrap_or('0');
    let first_ok = first.is_ascii_alphabetic() || (allow_system && first == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(bad(
            "must start with a letter and hold only letters, digits and _",
        ));
    }
    Ok(())
}

/// A field definition as the schema keeps it: an Array's inner type must be a scalar, and
/// a field named `password` is always a write-only secret, however it was declared.
fn normalized(class: &str, field: &str, def: &FieldDef) -> Result<FieldDef, SchemaError> {
    if let FieldType::Array { inner: Some(t) } = &def.field_type {
        if matches!(**t, FieldType::Array { .. } | FieldType::Pointer { .. }) {
            return Err(SchemaError::Invalid(format!(
                "{class}.{field}: an Array's innerType must be a scalar type, not {t}"
            )));
        }
    }
    let mut def = def.clone();
    if field == "password" {
        def.secret = true;
    }
    Ok(def)
}

fn check_field_name(class: &str, field: &str) -> Result<(), SchemaError> {
    check_name(field, false)?;
    if SYSTEM_FIELDS.contains(&field) || field == "ACL" {
        return Err(SchemaError::BadName {
            name: format!("{class}.{field}"),
            why: "reserved for the system".into(),
        });
    }
    Ok(())
}

impl AppSchema {
    /// The class named `name`.
    pub fn class(&self, name: &str) -> Option<&ClassDef> {
        self.classes.get(name)
    }

    /// The schema as Parse's document `{"classes": [...]}`.
    pub fn to_json(&self) -> Value {
        json!({"classes": self.classes.values().map(ClassDef::to_json).collect::<Vec<_>>()})
    }

    /// Checks `change` and, if it is valid, applies it. On error nothing changes.
    pub fn apply(&mut self, change: &SchemaChange) -> Result<(), SchemaError> {
        let mut next = self.clone();
        match change {
            SchemaChange::Define { classes, .. } => {
                for c in classes {
                    next.add_class(c)?;
                }
            }
            SchemaChange::AddClass(c) => next.add_class(c)?,
            SchemaChange::AddField { class, field, def } => {
                check_field_name(class, field)?;
                let c = next
                    .classes
                    .get_mut(class)
                    .ok_or_else(|| SchemaError::UnknownClass(class.clone()))?;
                if c.fields.contains_key(field) {
                    return Err(SchemaError::FieldExists {
                        class: class.clone(),
                        field: field.clone(),
                    });
                }
                c.fields
                    .insert(field.clone(), normalized(class, field, def)?);
            }
            SchemaChange::RemoveField { class, field } => {
                let c = next
                    .classes
                    .get_mut(class)
                    .ok_or_else(|| SchemaError::UnknownClass(class.clone()))?;
                if c.fields.remove(field).is_none() {
                    return Err(SchemaError::UnknownField {
                        class: class.clone(),
                        field: field.clone(),
                    });
                }
            }
        }
        next.check_pointers()?;
        *self = next;
        Ok(())
    }

    fn add_class(&mut self, c: &ClassDef) -> Result<(), SchemaError> {
        check_name(&c.name, c.name == USER_CLASS)?;
        if self.classes.contains_key(&c.name) {
            return Err(SchemaError::ClassExists(c.name.clone()));
        }
        let mut class = c.clone();
        for (f, def) in class.fields.iter_mut() {
            check_field_name(&c.name, f)?;
            *def = normalized(&c.name, f, def)?;
        }
        self.classes.insert(c.name.clone(), class);
        Ok(())
    }

    fn check_pointers(&self) -> Result<(), SchemaError> {
        for c in self.classes.values() {
            for (f, d) in &c.fields {
                if let FieldType::Pointer { target_class } = &d.field_type {
                    if !self.classes.contains_key(target_class) {
                        return Err(SchemaError::DanglingPointer {
                            class: c.name.clone(),
                            field: f.clone(),
                            target: target_class.clone(),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, fields: &[(&str, FieldDef)]) -> ClassDef {
        ClassDef {
            name: name.into(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }

    #[test]
    fn changes_round_trip_through_json() {
        let changes = vec![
            SchemaChange::Define {
                source: "test".into(),
                classes: vec![class(
                    "A",
                    &[
                        (
                            "p",
                            FieldDef::new(FieldType::Pointer {
                                target_class: "A".into(),
                            })
                            .required(),
                        ),
                        (
                            "tags",
                            FieldDef::new(FieldType::Array {
                                inner: Some(Box::new(FieldType::String)),
                            }),
                        ),
                    ],
                )],
            },
            SchemaChange::AddField {
                class: "A".into(),
                field: "n".into(),
                def: FieldDef::new(FieldType::Number),
            },
            SchemaChange::RemoveField {
                class: "A".into(),
                field: "n".into(),
            },
        ];
        for c in changes {
            assert_eq!(SchemaChange::from_json(&c.to_json()), Ok(c));
        }
    }

    #[test]
    fn a_refused_change_leaves_the_schema_as_it_was() {
        let mut s = AppSchema::default();
        s.apply(&SchemaChange::AddClass(class(
            "A",
            &[("x", FieldDef::new(FieldType::String))],
        )))
        .expect("add A");
        let before = s.clone();
        let dangling = SchemaChange::AddClass(class(
            "B",
            &[(
                "a",
                FieldDef::new(FieldType::Pointer {
                    target_class: "Nope".into(),
                }),
            )],
        ));
        assert!(matches!(
            s.apply(&dangling),
            Err(SchemaError::DanglingPointer { .. })
        ));
        assert!(matches!(
            s.apply(&SchemaChange::AddField {
                class: "A".into(),
                field: "createdAt".into(),
                def: FieldDef::new(FieldType::Date)
            }),
            Err(SchemaError::BadName { .. })
        ));
        assert!(matches!(
            s.apply(&SchemaChange::AddField {
                class: "A".into(),
                field: "x".into(),
                def: FieldDef::new(FieldType::Date)
            }),
            Err(SchemaError::FieldExists { .. })
        ));
        assert!(matches!(
            s.apply(&SchemaChange::AddClass(class("A", &[]))),
            Err(SchemaError::ClassExists(_))
        ));
        assert!(matches!(
            s.apply(&SchemaChange::AddClass(class("9x", &[]))),
            Err(SchemaError::BadName { .. })
        ));
        assert_eq!(s, before);
    }
}
