//! Reads a seed's "Schema:" prompt block — the authoritative form of a built-in app — into
//! class definitions.
//!
//! The block lists numbered classes: `2. ComplianceLog: title (String, required), owner
//! (Pointer to User, required), dueDate (Date); objectId, createdAt, updatedAt (system).`
//! A class marked `(use Back4app built-in)` is the built-in `_User`; its bare field names
//! extend the built-in user fields. `User` and `_User` as pointer targets both mean `_User`.

use std::collections::BTreeMap;

use regex::Regex;

use super::types::{ClassDef, FieldDef, FieldType, SchemaError, USER_CLASS};

/// The built-in `_User` fields: username (required), email, password (a write-only secret),
/// role, emailVerified.
pub fn builtin_user() -> ClassDef {
    let mut fields = BTreeMap::new();
    fields.insert(
        "username".into(),
        FieldDef::new(FieldType::String).required(),
    );
    fields.insert("email".into(), FieldDef::new(FieldType::String));
    let mut password = FieldDef::new(FieldType::String);
    password.secret = true;
    fields.insert("password".into(), password);
    fields.insert("role".into(), FieldDef::new(FieldType::String));
    fields.insert("emailVerified".into(), FieldDef::new(FieldType::Boolean));
    ClassDef {
        name: USER_CLASS.into(),
        fields,
    }
}

/// `User` (Back4app's name for the built-in) and `_User` both mean `_User`.
pub fn canonical_class_name(name: &str) -> &str {
    if name == "User" {
        USER_CLASS
    } else {
        name
    }
}

fn err(why: String) -> SchemaError {
    SchemaError::Invalid(format!("prompt schema: {why}"))
}

/// Parses a "Schema:" block (from `Schema:` up to, not including, `Security:`). The
/// built-in `_User` is always part of the result.
pub fn parse(block: &str) -> Result<Vec<ClassDef>, SchemaError> {
    let text = block.split_whitespace().collect::<Vec<_>>().join(" ");
    let body = text
        .strip_prefix("Schema:")
        .ok_or_else(|| err("the block must start with \"Schema:\"".into()))?;
    let entry_start = Regex::new(r"(?:^|\s)\d+\.\s").map_err(|e| err(e.to_string()))?;
    let starts: Vec<(usize, usize)> = entry_start
        .find_iter(body)
        .map(|m| (m.start(), m.end()))
        .collect();
    if starts.is_empty() {
        return Err(err("no numbered classes found".into()));
    }
    let mut classes: Vec<ClassDef> = Vec::new();
    let mut saw_user = false;
    for (i, &(_, content_start)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(body.len(), |&(s, _)| s);
        let entry = body[content_start..end].trim().trim_end_matches('.');
        let class = parse_entry(entry)?;
        if class.name == USER_CLASS {
            saw_user = true;
        }
        classes.push(class);
    }
    if !saw_user {
        classes.insert(0, builtin_user());
    }
    Ok(classes)
}

fn parse_entry(entry: &str) -> Result<ClassDef, SchemaError> {
    let (head, rest) = entry
        .split_once(':')
        .ok_or_else(|| err(format!("entry {entry:?} has no \"Name:\"")))?;
    let head = head.trim();
    let (name, builtin) = match head.strip_suffix("(use Back4app built-in)") {
        Some(n) => (n.trim(), true),
        None => (head, false),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(err(format!("bad class name {name:?}")));
    }
    // Fields come before ';' — what follows lists the system fields.
    let (fields_part, system_part) = match rest.split_once(';') {
        Some((f, s)) => (f, Some(s.trim())),
        None => (rest, None),
    };
    if let Some(s) = system_part {
        if s != "objectId, createdAt, updatedAt (system)" {
            return Err(err(format!("{name}: unexpected system field list {s:?}")));
        }
    }
    let mut class = if builtin {
        if canonical_class_name(name) != USER_CLASS {
            return Err(err(format!("{name} is marked built-in but is not User")));
        }
        builtin_user()
    } else {
        ClassDef {
            name: canonical_class_name(name).to_string(),
            fields: BTreeMap::new(),
        }
    };
    for item in split_top_level(fields_part) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (field, def) = parse_field(&class.name, item, builtin)?;
        class.fields.insert(field, def);
    }
    Ok(class)
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_field(class: &str, item: &str, builtin: bool) -> Result<(String, FieldDef), SchemaError> {
    let Some(open) = item.find('(') else {
        // A bare name: only the built-in user lists fields this way.
        let user = builtin_user();
        return match (builtin, user.fields.get(item)) {
            (true, Some(def)) => Ok((item.to_string(), def.clone())),
            _ => Err(err(format!("{class}: field {item:?} has no type"))),
        };
    };
    let name = item[..open].trim();
    let spec = item[open + 1..]
        .strip_suffix(')')
        .ok_or_else(|| err(format!("{class}.{name}: unclosed type")))?;
    let mut parts = spec.split(',').map(str::trim);
    let type_text = parts.next().unwrap_or("");
    let field_type = match type_text.strip_prefix("Pointer to ") {
        Some(target) => FieldType::Pointer {
            target_class: canonical_class_name(target.trim()).to_string(),
        },
        None => FieldType::from_name(type_text, None)?,
    };
    let mut def = FieldDef::new(field_type);
    for attr in parts {
        match attr {
            "required" => def.required = true,
            "optional" => def.required = false,
            "unique" => def.unique = true,
            other => return Err(err(format!("{class}.{name}: unknown attribute {other:?}"))),
        }
    }
    Ok((name.to_string(), def))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_types_attributes_and_pointer_targets() {
        let classes = parse(
            "Schema:\n1. User (use Back4app built-in): username, email, password; objectId, createdAt, updatedAt (system).\n\
             2. Doc: title (String, required), owner (Pointer to User, required), due (Date, optional), code (String, required, unique), n (Number); objectId, createdAt, updatedAt (system).",
        )
        .expect("parse");
        assert_eq!(classes.len(), 2);
        let doc = &classes[1];
        assert_eq!(doc.name, "Doc");
        assert!(doc.fields["title"].required);
        assert_eq!(
            doc.fields["owner"].field_type,
            FieldType::Pointer {
                target_class: "_User".into()
            }
        );
        assert!(!doc.fields["due"].required);
        assert!(doc.fields["code"].unique && doc.fields["code"].required);
        assert_eq!(doc.fields["n"].field_type, FieldType::Number);
        assert!(classes[0].fields["password"].secret);
    }

    #[test]
    fn refuses_unknown_types_and_attributes() {
        assert!(parse("Schema: 1. A: x (Strin, required).").is_err());
        assert!(parse("Schema: 1. A: x (String, mandatory).").is_err());
        assert!(parse("Schema: 1. A: x.").is_err());
        assert!(parse("no schema here").is_err());
    }
}
