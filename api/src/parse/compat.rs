//! Small translations between the server's forms and what Parse clients expect:
//! `createdAt`/`updatedAt` with exactly three fractional digits (the Parse JS SDK reads
//! the digits after the point as milliseconds), and `$regex` patterns quoted with
//! `\Q…\E` (what the SDK's `startsWith`/`contains`/`endsWith` send, which the `regex` crate
//! does not know) rewritten to escaped literals.

use ledger::Timestamp;
use serde_json::{Map, Value};

/// A timestamp as Parse writes `createdAt`: `2026-11-17T09:30:00.123Z`.
pub fn parse_date(t: Timestamp) -> String {
    match t.to_datetime() {
        Some(d) => d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => t.to_rfc3339(),
    }
}

/// Rewrites an RFC 3339 `createdAt`/`updatedAt` string to Parse's millisecond form.
fn fix_date(v: &mut Value) {
    if let Some(s) = v.as_str() {
        if let Some(t) = Timestamp::parse_rfc3339(s) {
            *v = Value::String(parse_date(t));
        }
    }
}

/// Puts an object's system dates (and those of included objects) in Parse's form.
pub fn parse_object(obj: &mut Map<String, Value>) {
    for k in ["createdAt", "updatedAt"] {
        if let Some(v) = obj.get_mut(k) {
            fix_date(v);
        }
    }
    for v in obj.values_mut() {
        if let Value::Object(inner) = v {
            if inner.get("__type").and_then(Value::as_str) == Some("Object") {
                parse_object(inner);
            }
        }
    }
}

/// Rewrites every `\Q…\E` span of every `$regex` in a `where` to an escaped literal.
pub fn rewrite_quoted_regexes(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (k, inner) in o.iter_mut() {
                if k == "$regex" {
                    if let Value::String(p) = inner {
                        *p = unquote(p);
                    }
                } else {
                    rewrite_quoted_regexes(inner);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(rewrite_quoted_regexes),
        _ => {}
    }
}

/// `^\Qa.b\E` → `^a\.b`. An unterminated `\Q` quotes to the end (as in PCRE).
fn unquote(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut rest = p;
    while let Some(i) = rest.find("\\Q") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find("\\E") {
            Some(j) => {
                out.push_str(&regex::escape(&after[..j]));
                rest = &after[j + 2..];
            }
            None => {
                out.push_str(&regex::escape(after));
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sdk_quoted_patterns_become_literals() {
        assert_eq!(unquote("^\\QIQ-1.2\\E"), "^IQ\\-1\\.2");
        assert_eq!(unquote("\\Qa+b\\E$"), "a\\+b$");
        assert_eq!(unquote("x\\Q(y"), "x\\(y");
        assert_eq!(unquote("plain.*"), "plain.*");
        let mut w = json!({"$or": [{"title": {"$regex": "\\Q.\\E", "$options": "i"}}]});
        rewrite_quoted_regexes(&mut w);
        assert_eq!(
            w,
            json!({"$or": [{"title": {"$regex": "\\.", "$options": "i"}}]})
        );
    }

    #[test]
    fn dates_have_milliseconds() {
        let t = Timestamp::parse_rfc3339("2026-11-17T09:30:00.123456Z").unwrap_or(Timestamp(0));
        assert_eq!(parse_date(t), "2026-11-17T09:30:00.123Z");
        let mut o = json!({"createdAt": "2026-11-17T09:30:00.000000Z",
            "owner": {"__type": "Object", "updatedAt": "2026-11-17T09:30:00.5Z"}});
        if let Value::Object(m) = &mut o {
            parse_object(m);
        }
        assert_eq!(o["createdAt"], "2026-11-17T09:30:00.000Z");
        assert_eq!(o["owner"]["updatedAt"], "2026-11-17T09:30:00.500Z");
    }
}
