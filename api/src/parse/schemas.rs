//! `/schemas` and `/schemas/{class}`: the app's schema in Parse's form (every role may
//! read it); adding a class or fields (admins only), each a `schema.changed` event.
//! Classes and fields are never dropped over the Parse surface: history keeps them.

use axum::http::StatusCode;
use ledger::schema::{ClassDef, FieldDef, SchemaChange};
use ledger::Command;
use serde_json::{json, Map, Value};

use super::request::ParseRequest;
use super::Reply;
use crate::auth::permissions::{rules, Op, Role, Roles};
use crate::auth::Caller;
use crate::error::{code, ApiError, ApiResult};
use crate::state::State;

fn roles_json(r: Roles) -> Value {
    let m: Map<String, Value> = r
        .names()
        .into_iter()
        .map(|n| (format!("role:{n}"), Value::Bool(true)))
        .collect();
    Value::Object(m)
}

/// A class in Parse's schema form, with its role permissions as class-level permissions.
pub fn class_json(app: &str, c: &ClassDef) -> Value {
    let mut fields = Map::new();
    fields.insert("objectId".into(), json!({"type": "String"}));
    fields.insert("createdAt".into(), json!({"type": "Date"}));
    fields.insert("updatedAt".into(), json!({"type": "Date"}));
    if let Some(Value::Object(own)) = c.to_json().get("fields") {
        for (k, v) in own {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("secret");
            }
            fields.insert(k.clone(), v);
        }
    }
    let r = rules(app, &c.name);
    json!({
        "className": c.name,
        "fields": fields,
        "classLevelPermissions": {
            "find": roles_json(r.read),
            "get": roles_json(r.read),
            "count": roles_json(r.read),
            "create": roles_json(r.create),
            "update": roles_json(r.update),
            "delete": roles_json(r.delete),
            "addField": roles_json(Roles::of(&[Role::Admin])),
        },
    })
}

fn admin_only(state: &State, caller: &Caller, class: &str) -> ApiResult<()> {
    if caller.role == Some(Role::Admin) {
        return Ok(());
    }
    state.record_denial(caller, "change schema", Some(class), None);
    Err(ApiError::forbidden(
        "only an admin may change the schema (allowed: admin)",
    ))
}

/// `GET /schemas`.
pub fn list(state: &State, caller: &Caller) -> ApiResult<Reply> {
    let schema = state
        .ledger
        .schema(&caller.app)
        .ok_or_else(|| crate::error::unknown_app(&caller.app))?;
    let results: Vec<Value> = schema
        .classes
        .values()
        .map(|c| class_json(&caller.app, c))
        .collect();
    Ok(Reply::new(StatusCode::OK, json!({ "results": results })))
}

/// `GET /schemas/{class}`.
pub fn get(state: &State, caller: &Caller, class: &str) -> ApiResult<Reply> {
    let c = state.class_def(&caller.app, class)?;
    Ok(Reply::new(StatusCode::OK, class_json(&caller.app, &c)))
}

fn field_defs(class: &str, data: &Map<String, Value>) -> ApiResult<Vec<(String, FieldDef)>> {
    let Some(fields) = data.get("fields") else {
        return Ok(Vec::new());
    };
    let fields = fields.as_object().ok_or_else(|| {
        ApiError::bad(
            code::INVALID_JSON,
            "fields: must be an object of field definitions",
        )
    })?;
    let mut out = Vec::new();
    for (name, def) in fields {
        if def.get("__op").and_then(Value::as_str) == Some("Delete") {
            return Err(ApiError::forbidden(format!(
                "{class}.{name}: fields are never dropped from an audit ledger's schema (their history stays readable)"
            )));
        }
        out.push((name.clone(), FieldDef::from_json(class, name, def)?));
    }
    Ok(out)
}

/// `POST /schemas/{class}`: adds a class (admin).
pub fn create(state: &State, caller: &Caller, req: &ParseRequest, class: &str) -> ApiResult<Reply> {
    admin_only(state, caller, class)?;
    if let Some(name) = req.data.get("className").and_then(Value::as_str) {
        if name != class {
            return Err(ApiError::bad(
                code::INVALID_CLASS_NAME,
                format!("className: {name:?} does not match the path's class {class:?}"),
            ));
        }
    }
    let def = ClassDef {
        name: class.to_string(),
        fields: field_defs(class, &req.data)?.into_iter().collect(),
    };
    let a = state.append(
        &caller.app,
        caller.actor(),
        req.request_id.clone(),
        req.reason.clone(),
        Command::ChangeSchema(SchemaChange::AddClass(def)),
    )?;
    let c = state.class_def(&caller.app, class)?;
    Ok(Reply::new(StatusCode::CREATED, class_json(&caller.app, &c)).seq(a.event.seq))
}

/// `PUT /schemas/{class}`: adds fields (admin); each field is one `schema.changed` event.
pub fn update(state: &State, caller: &Caller, req: &ParseRequest, class: &str) -> ApiResult<Reply> {
    admin_only(state, caller, class)?;
    state.class_def(&caller.app, class)?;
    let mut seq = None;
    for (field, def) in field_defs(class, &req.data)? {
        let a = state.append(
            &caller.app,
            caller.actor(),
            None,
            req.reason.clone(),
            Command::ChangeSchema(SchemaChange::AddField {
                class: class.to_string(),
                field,
                def,
            }),
        )?;
        seq = Some(a.event.seq);
    }
    let c = state.class_def(&caller.app, class)?;
    let mut reply = Reply::new(StatusCode::OK, class_json(&caller.app, &c));
    if let Some(s) = seq {
        reply = reply.seq(s);
    }
    Ok(reply)
}

/// `DELETE /schemas/{class}`: refused, always.
pub fn delete(state: &State, caller: &Caller, class: &str) -> ApiResult<Reply> {
    state.record_denial(caller, Op::Delete.name(), Some(class), None);
    Err(ApiError::forbidden(format!(
        "{class}: classes are never deleted from an audit ledger (their history stays readable)"
    )))
}
