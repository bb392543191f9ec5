//! JSON body checks: RFC 9535 JSONPath selections and JSON Schema validation.

use serde_json::Value;

use super::{Check, Expect, Lookup, PathExpr, Response, clip, compare};
use crate::spec::model::{JsonCheck, JsonType};
use crate::spec::template;

pub(super) fn checks(expect: &Expect, response: &Response, lookup: &mut Lookup<'_>, out: &mut Vec<Check>) {
    let body: Value = match serde_json::from_slice(&response.body) {
        Ok(body) => body,
        Err(e) => {
            let actual = if response.body.is_empty() {
                "empty body".to_string()
            } else {
                format!("{} ({e})", clip(&response.text(), 200))
            };
            out.push(Check::new("body is JSON", "a JSON document", actual, false));
            return;
        }
    };
    for (check, path) in expect.spec.json.iter().zip(&expect.paths) {
        path_checks(check, path, &body, lookup, out);
    }
    if let Some(schema) = &expect.schema {
        let what = "body matches the JSON Schema";
        match schema {
            Ok(validator) => {
                let errors: Vec<String> = validator
                    .iter_errors(&body)
                    .take(3)
                    .map(|e| format!("{} at {}", e, e.instance_path()))
                    .collect();
                let actual = if errors.is_empty() {
                    "valid".to_string()
                } else {
                    errors.join("; ")
                };
                out.push(Check::new(what, "valid", actual, errors.is_empty()));
            }
            Err(e) => out.push(Check::new(
                what,
                "valid",
                format!("the schema does not compile: {e}"),
                false,
            )),
        }
    }
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(value: &Value, kind: JsonType) -> bool {
    match kind {
        JsonType::Number => value.is_number(),
        JsonType::Integer => value.as_f64().is_some_and(|n| n.fract() == 0.0),
        _ => type_of(value) == format!("{kind:?}").to_lowercase(),
    }
}

/// JSON equality where numbers compare by value (1 equals 1.0).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

fn show(value: &Value) -> String {
    clip(&value.to_string(), 200)
}

fn path_checks(check: &JsonCheck, path: &PathExpr, body: &Value, lookup: &mut Lookup<'_>, out: &mut Vec<Check>) {
    let (path, path_text) = match path.resolve(lookup) {
        Ok(resolved) => resolved,
        Err((path_text, e)) => {
            out.push(Check::new(format!("json {path_text}"), "a valid JSONPath", e, false));
            return;
        }
    };
    let nodes = path.query(body).all();
    let selected = || match nodes.len() {
        0 => "nothing".to_string(),
        1 => show(nodes[0]),
        n => format!("{n} nodes"),
    };
    if let Some(exists) = check.exists {
        let expected = if exists { "selects something" } else { "selects nothing" };
        out.push(Check::new(
            format!("json {path_text}"),
            expected,
            selected(),
            nodes.is_empty() != exists,
        ));
    }
    if let Some(count) = check.count {
        out.push(Check::new(
            format!("json {path_text} count"),
            count.to_string(),
            nodes.len().to_string(),
            nodes.len() == count as usize,
        ));
    }
    let mut value_check = |what: &str, expected: String, test: &dyn Fn(&Value) -> bool| {
        let what = format!("json {path_text} {what}");
        match nodes.as_slice() {
            [node] => out.push(Check::new(what, expected, show(node), test(node))),
            _ => out.push(Check::new(
                what,
                expected,
                format!("the path selected {}", selected()),
                false,
            )),
        }
    };
    if let Some(equals) = &check.equals {
        let expected = template::render_json(equals, lookup).unwrap_or_else(|e| Value::String(format!("<{e}>")));
        value_check("equals", show(&expected), &|v| json_equal(v, &expected));
    }
    if let Some(kind) = check.kind {
        let name = format!("{kind:?}").to_lowercase();
        value_check("type", name, &|v| has_type(v, kind));
    }
    if let Some(length) = check.length {
        let len = |v: &Value| match v {
            Value::String(s) => Some(s.chars().count()),
            Value::Array(a) => Some(a.len()),
            Value::Object(o) => Some(o.len()),
            _ => None,
        };
        value_check("length", format!("length {length}"), &|v| {
            len(v) == Some(length as usize)
        });
    }
    for (op, bound) in [(">", check.gt), (">=", check.gte), ("<", check.lt), ("<=", check.lte)] {
        if let Some(bound) = bound {
            value_check(op, format!("a number {op} {bound}"), &|v| {
                v.as_f64().is_some_and(|n| compare(n, op, bound))
            });
        }
    }
    if let Some(pattern) = &check.matches {
        value_check("matches", format!("/{}/", pattern.0.as_str()), &|v| {
            v.as_str().is_some_and(|s| pattern.0.is_match(s))
        });
    }
}
