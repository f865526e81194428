//! Reads a Parse schema document (`{"classes": [{"className", "fields": {…}}]}`), as the
//! seeds' "Schema JSON" blocks give it, into class definitions for a new app.
//!
//! Rules, so a document imports as-is: `User` is Back4app's name for the built-in `_User`
//! (its fields extend the built-in ones, and `targetClass: "User"` points to `_User`);
//! the system fields `objectId`, `createdAt`, `updatedAt` and `ACL` may be listed and are
//! skipped if their types are Parse's; a field named `password` is a write-only secret
//! whose values never enter the ledger; class-level keys Parse documents carry
//! (`classLevelPermissions`, `indexes`) are accepted and not interpreted here.

use serde_json::Value;

use super::prompt::{builtin_user, canonical_class_name};
use super::types::{ClassDef, FieldDef, FieldType, SchemaError, USER_CLASS};

fn bad(why: String) -> SchemaError {
    SchemaError::Invalid(format!("Parse schema document: {why}"))
}

/// Reads the document. The built-in `_User` is always part of the result.
pub fn parse_document(doc: &Value) -> Result<Vec<ClassDef>, SchemaError> {
    let classes = doc
        .get("classes")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("\"classes\" must be an array".into()))?;
    let mut out: Vec<ClassDef> = Vec::new();
    for c in classes {
        let obj = c
            .as_object()
            .ok_or_else(|| bad("each class must be an object".into()))?;
        for k in obj.keys() {
            if !matches!(
                k.as_str(),
                "className" | "fields" | "classLevelPermissions" | "indexes"
            ) {
                return Err(bad(format!("unknown class attribute {k:?}")));
            }
        }
        let raw_name = obj
            .get("className")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("a class needs a \"className\" string".into()))?;
        let name = canonical_class_name(raw_name);
        if out.iter().any(|k| k.name == name) {
            return Err(SchemaError::ClassExists(name.to_string()));
        }
        let mut class = if name == USER_CLASS {
            builtin_user()
        } else {
            ClassDef {
                name: name.to_string(),
                fields: Default::default(),
            }
        };
        let fields = obj
            .get("fields")
            .and_then(Value::as_object)
            .ok_or_else(|| bad(format!("class {raw_name}: \"fields\" must be an object")))?;
        for (fname, fdef) in fields {
            let mut def = FieldDef::from_json(name, fname, fdef)?;
            if let Some(expected) = system_field_type(fname) {
                if def.field_type.name() != expected {
                    return Err(bad(format!(
                        "{raw_name}.{fname} is a system field of type {expected}, not {}",
                        def.field_type.name()
                    )));
                }
                continue;
            }
            if let FieldType::Pointer { target_class } = &mut def.field_type {
                *target_class = canonical_class_name(target_class).to_string();
            }
            if fname == "password" {
                def.secret = true;
            }
            class.fields.insert(fname.clone(), def);
        }
        out.push(class);
    }
    if !out.iter().any(|c| c.name == USER_CLASS) {
        out.insert(0, builtin_user());
    }
    Ok(out)
}

fn system_field_type(name: &str) -> Option<&'static str> {
    match name {
        "objectId" => Some("String"),
        "createdAt" | "updatedAt" => Some("Date"),
        "ACL" => Some("Object"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(doc: serde_json::Value) -> String {
        parse_document(&doc)
            .expect_err("must be refused")
            .to_string()
    }

    #[test]
    fn user_is_the_builtin_and_password_is_a_secret() {
        let classes = parse_document(&json!({"classes": [
            {"className": "User", "fields": {"objectId": {"type": "String"}, "role": {"type": "String", "required": true}, "password": {"type": "String", "required": true}}},
            {"className": "Log", "fields": {"by": {"type": "Pointer", "targetClass": "User", "required": true}}}
        ]}))
        .expect("imports");
        let user = classes
            .iter()
            .find(|c| c.name == USER_CLASS)
            .expect("_User");
        assert!(user.fields["password"].secret && user.fields["role"].required);
        let log = classes.iter().find(|c| c.name == "Log").expect("Log");
        assert_eq!(
            log.fields["by"].field_type,
            FieldType::Pointer {
                target_class: USER_CLASS.into()
            }
        );
    }

    #[test]
    fn malformed_documents_are_refused_with_the_reason() {
        assert!(err(json!({"klasses": []})).contains("\"classes\" must be an array"));
        assert!(
            err(json!({"classes": [{"className": "A", "fields": {"x": {"type": "Strng"}}}]}))
                .contains("Strng")
        );
        assert!(err(json!({"classes": [{"className": "A", "fields": {"x": {"type": "String", "colour": 1}}}]})).contains("colour"));
        assert!(err(
            json!({"classes": [{"className": "A", "fields": {"createdAt": {"type": "String"}}}]})
        )
        .contains("system field"));
        assert!(err(
            json!({"classes": [{"className": "A", "fields": {}}, {"className": "A", "fields": {}}]})
        )
        .contains("already exists"));
        assert!(err(
            json!({"classes": [{"className": "A", "fields": {"p": {"type": "Pointer"}}}]})
        )
        .contains("targetClass"));
        assert!(
            err(json!({"classes": [{"className": "A", "flavour": 1, "fields": {}}]}))
                .contains("flavour")
        );
        assert!(err(json!({"classes": [{"className": "A", "fields": {"r": {"type": "String", "required": "yes"}}}]})).contains("required"));
    }
}
