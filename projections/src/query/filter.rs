//! The `where` clause: parsing Parse's JSON constraints against a class into a compiled
//! filter (operands typed, Dates parsed, regexes built, once), and evaluating it against a
//! record without allocating.

use std::collections::HashSet;

use ledger::schema::prompt::canonical_class_name;
use ledger::schema::{ClassDef, FieldType};
use regex::{Regex, RegexBuilder};
use serde_json::{json, Map, Value};

use super::error::{show, QueryError};
use super::fields::{resolve, FieldRef};
use super::value::{date_json, parse_iso, str_of, type_is, Num, Operand, Val};
use crate::record::Record;

/// How deep `$or`/`$and`/`$nor` may nest.
const MAX_DEPTH: usize = 16;
/// The compiled size limit of a `$regex`.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A compiled `where`.
#[derive(Debug, Clone)]
pub(super) enum Filter {
    /// All must match (a `where` object, or `$and`).
    And(Vec<Filter>),
    /// One must match.
    Or(Vec<Filter>),
    /// None may match.
    Nor(Vec<Filter>),
    /// The constraints on one field.
    Field(FieldFilter),
}

/// The constraints on one field (all must hold).
#[derive(Debug, Clone)]
pub(super) struct FieldFilter {
    field: FieldRef,
    /// Whether the field is an Array (equality means "contains").
    array: bool,
    conds: Vec<Cond>,
    /// The normalised value a plain/`$eq` equality requires (not for Arrays or null).
    eq: Option<Value>,
}

#[derive(Debug, Clone)]
enum Cond {
    Eq(Operand),
    Ne(Operand),
    Cmp(CmpOp, Operand),
    In(InList),
    Nin(InList),
    Exists(bool),
    Regex(Regex),
    All(Vec<Operand>),
}

#[derive(Debug, Clone, Copy)]
enum CmpOp {
    Lt,
    Lte,
    Gt,
    Gte,
}

/// The operands of `$in`/`$nin`; strings in a hash set.
#[derive(Debug, Clone)]
struct InList {
    strs: HashSet<String>,
    others: Vec<Operand>,
}

impl InList {
    fn new(ops: Vec<Operand>) -> Self {
        let mut strs = HashSet::new();
        let mut others = Vec::new();
        for o in ops {
            match o {
                Operand::Str(s) => {
                    strs.insert(s);
                }
                o => others.push(o),
            }
        }
        InList { strs, others }
    }

    fn contains(&self, v: &Val<'_>) -> bool {
        let s = match v {
            Val::Str(s) => Some(*s),
            Val::Json(Value::String(s)) => Some(s.as_str()),
            _ => None,
        };
        if let Some(s) = s {
            if self.strs.contains(s) {
                return true;
            }
        }
        self.others.iter().any(|o| o.matches(v))
    }
}

impl Filter {
    /// Whether the record matches.
    pub(super) fn matches(&self, r: &Record) -> bool {
        match self {
            Filter::And(fs) => fs.iter().all(|f| f.matches(r)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(r)),
            Filter::Nor(fs) => !fs.iter().any(|f| f.matches(r)),
            Filter::Field(ff) => ff.matches(r),
        }
    }

    /// Every conjunctive plain/`$eq` constraint: each field and the value it requires.
    pub(super) fn equalities(&self) -> Vec<(&FieldRef, &Value)> {
        match self {
            Filter::And(fs) => fs.iter().flat_map(Filter::equalities).collect(),
            Filter::Field(ff) => ff.eq.as_ref().map(|v| (&ff.field, v)).into_iter().collect(),
            _ => Vec::new(),
        }
    }

    /// The value a conjunctive plain/`$eq` constraint requires of `field`.
    pub(super) fn equality_on(&self, field: &str) -> Option<&Value> {
        match self {
            Filter::And(fs) => fs.iter().find_map(|f| f.equality_on(field)),
            Filter::Field(ff) if ff.field.name() == field => ff.eq.as_ref(),
            _ => None,
        }
    }
}

impl FieldFilter {
    fn matches(&self, r: &Record) -> bool {
        let v = self.field.get(r);
        self.conds.iter().all(|c| c.holds(&v, self.array))
    }
}

impl Cond {
    fn holds(&self, v: &Val<'_>, array: bool) -> bool {
        match self {
            Cond::Eq(o) => equals(o, v, array),
            Cond::Ne(o) => !equals(o, v, array),
            Cond::Cmp(op, o) => o.cmp_val(v).is_some_and(|ord| op.holds(ord)),
            Cond::In(l) => in_list(l, v, array),
            Cond::Nin(l) => !in_list(l, v, array),
            Cond::Exists(b) => !matches!(v, Val::Missing | Val::Json(Value::Null)) == *b,
            Cond::Regex(re) => match v {
                Val::Str(s) => re.is_match(s),
                Val::Json(Value::String(s)) => re.is_match(s),
                _ => false,
            },
            // As in MongoDB, an empty `$all` matches nothing.
            Cond::All(ops) => match v {
                Val::Json(Value::Array(items)) => {
                    !ops.is_empty()
                        && ops
                            .iter()
                            .all(|o| items.iter().any(|it| o.matches(&Val::Json(it))))
                }
                _ => false,
            },
        }
    }
}

impl CmpOp {
    fn holds(self, ord: std::cmp::Ordering) -> bool {
        match self {
            CmpOp::Lt => ord.is_lt(),
            CmpOp::Lte => ord.is_le(),
            CmpOp::Gt => ord.is_gt(),
            CmpOp::Gte => ord.is_ge(),
        }
    }
}

/// Equality, where an Array matches an operand equal to the whole array or to any element.
fn equals(o: &Operand, v: &Val<'_>, array: bool) -> bool {
    if array {
        if let Val::Json(Value::Array(items)) = v {
            return o.matches(v) || items.iter().any(|it| o.matches(&Val::Json(it)));
        }
    }
    o.matches(v)
}

/// `$in`, where an Array matches when any element (or the whole array) is in the list.
fn in_list(l: &InList, v: &Val<'_>, array: bool) -> bool {
    if array {
        if let Val::Json(Value::Array(items)) = v {
            return l.contains(v) || items.iter().any(|it| l.contains(&Val::Json(it)));
        }
    }
    l.contains(v)
}

/// Parses a `where` (a JSON object, or a string holding one).
pub(super) fn parse_where(class: &ClassDef, v: &Value) -> Result<Filter, QueryError> {
    let invalid = || QueryError::InvalidJson { given: show(v) };
    match v {
        Value::Object(m) => parse_object(class, m, 0),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => parse_object(class, &m, 0),
            _ => Err(invalid()),
        },
        _ => Err(invalid()),
    }
}

fn parse_object(
    class: &ClassDef,
    m: &Map<String, Value>,
    depth: usize,
) -> Result<Filter, QueryError> {
    let mut parts = Vec::with_capacity(m.len());
    for (k, v) in m {
        match k.as_str() {
            "$or" => parts.push(Filter::Or(logical(class, k, v, depth)?)),
            "$and" => parts.push(Filter::And(logical(class, k, v, depth)?)),
            "$nor" => parts.push(Filter::Nor(logical(class, k, v, depth)?)),
            _ if k.starts_with('$') => {
                return Err(QueryError::UnknownOperator {
                    field: "where".into(),
                    op: k.as_str().into(),
                })
            }
            _ => {
                let (field, ty) = resolve(class, k).ok_or_else(|| QueryError::UnknownField {
                    class: class.name.as_str().into(),
                    field: k.as_str().into(),
                })?;
                let site = Site { class, name: k, ty };
                parts.push(Filter::Field(site.parse(field, v)?));
            }
        }
    }
    Ok(match parts.len() {
        1 => parts.pop().unwrap_or(Filter::And(Vec::new())),
        _ => Filter::And(parts),
    })
}

fn logical(class: &ClassDef, op: &str, v: &Value, depth: usize) -> Result<Vec<Filter>, QueryError> {
    let bad = |why: String| QueryError::BadLogical {
        op: op.into(),
        why: why.into(),
    };
    if depth >= MAX_DEPTH {
        return Err(bad(format!("nested more than {MAX_DEPTH} deep")));
    }
    let items = v.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
        bad(format!(
            "needs a non-empty array of queries, given {}",
            show(v)
        ))
    })?;
    items
        .iter()
        .map(|item| match item {
            Value::Object(m) => parse_object(class, m, depth + 1),
            other => Err(bad(format!(
                "needs an array of query objects, given an element {}",
                show(other)
            ))),
        })
        .collect()
}

/// One field's constraint being parsed.
struct Site<'a> {
    class: &'a ClassDef,
    name: &'a str,
    ty: &'a FieldType,
}

impl Site<'_> {
    fn is_array(&self) -> bool {
        matches!(self.ty, FieldType::Array { .. })
    }

    /// The type operands of equality must have: the field's, or an Array's inner type
    /// (`None`: any).
    fn elem(&self) -> Option<&FieldType> {
        match self.ty {
            FieldType::Array { inner } => inner.as_deref(),
            t => Some(t),
        }
    }

    fn wrong(&self, op: &str, want: Option<&FieldType>, given: &Value) -> QueryError {
        QueryError::WrongType {
            class: self.class.name.as_str().into(),
            field: self.name.into(),
            field_type: self.ty.to_string().into(),
            op: op.into(),
            expected: expected(want).into(),
            given: show(given),
        }
    }

    fn not_applicable(&self, op: &str) -> QueryError {
        QueryError::NotApplicable {
            class: self.class.name.as_str().into(),
            field: self.name.into(),
            field_type: self.ty.to_string().into(),
            op: op.into(),
        }
    }

    fn bad(&self, op: &str, why: String) -> QueryError {
        QueryError::BadOperand {
            field: self.name.into(),
            op: op.into(),
            why: why.into(),
        }
    }

    /// An operand for equality, `$ne`, `$in`, `$nin`: null, a whole array for an Array
    /// field, or a value of the element type.
    fn eq_operand(&self, op: &str, v: &Value) -> Result<Operand, QueryError> {
        if v.is_null() {
            return Ok(Operand::Null);
        }
        if self.is_array() && v.is_array() {
            return Ok(Operand::Json(v.clone()));
        }
        self.typed(op, v)
    }

    /// An operand of the element type (never null).
    fn typed(&self, op: &str, v: &Value) -> Result<Operand, QueryError> {
        let want = self.elem();
        typed_value(want, v).ok_or_else(|| self.wrong(op, want, v))
    }

    fn parse(&self, field: FieldRef, v: &Value) -> Result<FieldFilter, QueryError> {
        let array = self.is_array();
        let mut out = FieldFilter {
            field,
            array,
            conds: Vec::new(),
            eq: None,
        };
        let ops = match v {
            Value::Object(m) if m.keys().any(|k| k.starts_with('$')) => m,
            _ => {
                let o = self.eq_operand("equality", v)?;
                out.set_eq(&o, v);
                out.conds.push(Cond::Eq(o));
                return Ok(out);
            }
        };
        if let Some(k) = ops.keys().find(|k| !k.starts_with('$')) {
            return Err(self.bad(k, "plain keys cannot be mixed with $ operators".into()));
        }
        for (op, arg) in ops {
            let cond = match op.as_str() {
                "$eq" => {
                    let o = self.eq_operand(op, arg)?;
                    out.set_eq(&o, arg);
                    Cond::Eq(o)
                }
                "$ne" => Cond::Ne(self.eq_operand(op, arg)?),
                "$lt" | "$lte" | "$gt" | "$gte" => {
                    if !matches!(
                        self.ty,
                        FieldType::String
                            | FieldType::Number
                            | FieldType::Boolean
                            | FieldType::Date
                    ) {
                        return Err(self.not_applicable(op));
                    }
                    let cmp = match op.as_str() {
                        "$lt" => CmpOp::Lt,
                        "$lte" => CmpOp::Lte,
                        "$gt" => CmpOp::Gt,
                        _ => CmpOp::Gte,
                    };
                    Cond::Cmp(cmp, self.typed(op, arg)?)
                }
                "$in" | "$nin" => {
                    let items = arg.as_array().ok_or_else(|| {
                        self.bad(op, format!("needs an array, given {}", show(arg)))
                    })?;
                    let ops = items
                        .iter()
                        .map(|x| self.eq_operand(op, x))
                        .collect::<Result<Vec<_>, _>>()?;
                    if op == "$in" {
                        Cond::In(InList::new(ops))
                    } else {
                        Cond::Nin(InList::new(ops))
                    }
                }
                "$exists" => match arg {
                    Value::Bool(b) => Cond::Exists(*b),
                    _ => {
                        return Err(
                            self.bad(op, format!("needs true or false, given {}", show(arg)))
                        )
                    }
                },
                "$regex" => Cond::Regex(self.regex(arg, ops.get("$options"))?),
                "$options" => {
                    if !ops.contains_key("$regex") {
                        return Err(self.bad(op, "is only allowed with $regex".into()));
                    }
                    continue;
                }
                "$all" => {
                    if !array {
                        return Err(self.not_applicable(op));
                    }
                    let items = arg.as_array().ok_or_else(|| {
                        self.bad(op, format!("needs an array, given {}", show(arg)))
                    })?;
                    let ops = items
                        .iter()
                        .map(|x| {
                            if x.is_array() {
                                Ok(Operand::Json(x.clone()))
                            } else {
                                self.typed(op, x)
                            }
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    Cond::All(ops)
                }
                _ => {
                    return Err(QueryError::UnknownOperator {
                        field: self.name.into(),
                        op: op.as_str().into(),
                    })
                }
            };
            out.conds.push(cond);
        }
        Ok(out)
    }

    fn regex(&self, pattern: &Value, options: Option<&Value>) -> Result<Regex, QueryError> {
        if !matches!(self.ty, FieldType::String) {
            return Err(self.not_applicable("$regex"));
        }
        let pattern = pattern.as_str().ok_or_else(|| {
            self.bad(
                "$regex",
                format!("needs a string pattern, given {}", show(pattern)),
            )
        })?;
        let mut b = RegexBuilder::new(pattern);
        b.size_limit(REGEX_SIZE_LIMIT);
        if let Some(o) = options {
            let bad_options = || QueryError::BadRegexOptions {
                field: self.name.into(),
                options: show(o),
            };
            let text = o.as_str().ok_or_else(bad_options)?;
            for c in text.chars() {
                match c {
                    'i' => b.case_insensitive(true),
                    'm' => b.multi_line(true),
                    's' => b.dot_matches_new_line(true),
                    'x' => b.ignore_whitespace(true),
                    _ => return Err(bad_options()),
                };
            }
        }
        b.build().map_err(|e| QueryError::BadRegex {
            field: self.name.into(),
            pattern: pattern.into(),
            why: e.to_string().into(),
        })
    }
}

impl FieldFilter {
    /// Records the first non-null equality of a non-Array field, normalised.
    fn set_eq(&mut self, o: &Operand, given: &Value) {
        if self.array || self.eq.is_some() {
            return;
        }
        self.eq = match o {
            Operand::Null => None,
            Operand::Date(t) => Some(date_json(*t)),
            Operand::Pointer { class, id } => {
                Some(json!({"__type": "Pointer", "className": class, "objectId": id}))
            }
            _ => Some(given.clone()),
        };
    }
}

/// What an operand of type `want` looks like, for error messages.
fn expected(want: Option<&FieldType>) -> String {
    match want {
        None => "a valid Parse value".into(),
        Some(FieldType::Pointer { target_class }) => format!(
            "a Pointer to {target_class} ({{\"__type\":\"Pointer\",\"className\":\"{target_class}\",\"objectId\":…}})"
        ),
        Some(t @ (FieldType::Array { .. } | FieldType::Object)) => format!("an {}", t.name()),
        Some(t) => format!("a {}", t.name()),
    }
}

/// The operand `v` as a value of type `want` (`None`: inferred), or `None` if it is not one.
fn typed_value(want: Option<&FieldType>, v: &Value) -> Option<Operand> {
    let Some(t) = want else {
        return inferred(v);
    };
    match (t, v) {
        (FieldType::String, Value::String(s)) => Some(Operand::Str(s.clone())),
        (FieldType::Number, Value::Number(n)) => Some(Operand::Num(Num::of(n))),
        (FieldType::Boolean, Value::Bool(b)) => Some(Operand::Bool(*b)),
        (FieldType::Date, _) => date_operand(v),
        (FieldType::Pointer { target_class }, _) => pointer_operand(v)
            .filter(|p| matches!(p, Operand::Pointer { class, .. } if class == target_class)),
        (FieldType::File, _) => file_operand(v),
        (FieldType::Object, Value::Object(m)) if !m.contains_key("__type") => {
            Some(Operand::Json(v.clone()))
        }
        (FieldType::Array { .. }, Value::Array(_)) => Some(Operand::Json(v.clone())),
        _ => None,
    }
}

fn inferred(v: &Value) -> Option<Operand> {
    match v {
        Value::Null => Some(Operand::Null),
        Value::String(s) => Some(Operand::Str(s.clone())),
        Value::Number(n) => Some(Operand::Num(Num::of(n))),
        Value::Bool(b) => Some(Operand::Bool(*b)),
        Value::Array(_) => Some(Operand::Json(v.clone())),
        Value::Object(m) => match str_of(m, "__type") {
            Some("Date") => date_operand(v),
            Some("Pointer") => pointer_operand(v),
            Some("File") => file_operand(v),
            _ => Some(Operand::Json(v.clone())),
        },
    }
}

fn date_operand(v: &Value) -> Option<Operand> {
    let m = v.as_object()?;
    if !type_is(m, "Date") {
        return None;
    }
    parse_iso(str_of(m, "iso")?).map(Operand::Date)
}

fn pointer_operand(v: &Value) -> Option<Operand> {
    let m = v.as_object()?;
    if !type_is(m, "Pointer") {
        return None;
    }
    Some(Operand::Pointer {
        class: canonical_class_name(str_of(m, "className")?).to_string(),
        id: str_of(m, "objectId")?.to_string(),
    })
}

fn file_operand(v: &Value) -> Option<Operand> {
    let m = v.as_object()?;
    if !type_is(m, "File") {
        return None;
    }
    Some(Operand::File {
        name: str_of(m, "name")?.to_string(),
    })
}
