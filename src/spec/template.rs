//! `{{name}}` placeholders: finding them (for validation) and replacing them (at run time).

use std::fmt;

/// The variables every probe has without defining them.
pub const BUILTINS: &[(&str, &str)] = &[
    (
        "unique",
        "a value unique to this probe in this run (stable within the probe)",
    ),
    (
        "uuid",
        "a fresh random UUID (v4 format) each time it is used, from the run's seed",
    ),
    (
        "random",
        "a fresh random 16-hex-digit value each time it is used, from the run's seed",
    ),
    ("seed", "the run's seed"),
    (
        "now",
        "the current Unix time in seconds; `now+600` and `now-600` add or subtract seconds",
    ),
    ("index", "inside `repeat` or `burst`: the 0-based number of the request"),
    (
        "filler.N",
        "N copies of the letter x, for oversized bodies (N up to 16 MiB)",
    ),
];

/// The offset of a `now+N` / `now-N` placeholder, in seconds.
pub fn now_offset(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("now")?;
    let (sign, digits) = match rest.as_bytes().first()? {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => return None,
    };
    digits
        .parse::<i64>()
        .ok()
        .filter(|n| *n <= 100 * 365 * 86_400)
        .map(|n| sign * n)
}

/// The largest `{{filler.N}}`.
pub const MAX_FILLER: usize = 16 << 20;

/// The N of a `filler.N` placeholder, if the name is one and N is within bounds.
pub fn filler_size(name: &str) -> Option<usize> {
    let n: usize = name.strip_prefix("filler.")?.parse().ok()?;
    (n <= MAX_FILLER).then_some(n)
}

/// A placeholder named a variable that does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undefined(pub String);

impl fmt::Display for Undefined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "undefined variable `{}`", self.0)
    }
}

/// The names of the placeholders in `text`, in order (`{{ name }}` and `{{name}}` alike).
pub fn placeholders(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        names.push(after[..end].trim());
        rest = &after[end + 2..];
    }
    names
}

/// Replaces every placeholder with `lookup(name)`; the first unknown name is an error.
pub fn render(text: &str, mut lookup: impl FnMut(&str) -> Option<String>) -> Result<String, Undefined> {
    if !text.contains("{{") {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push_str(&rest[..start]);
        let name = after[..end].trim();
        out.push_str(&lookup(name).ok_or_else(|| Undefined(name.to_string()))?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces placeholders in every string of a JSON value (keys included).
pub fn render_json(
    value: &serde_json::Value,
    lookup: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<serde_json::Value, Undefined> {
    use serde_json::Value;
    Ok(match value {
        Value::String(s) => Value::String(render(s, &mut *lookup)?),
        Value::Array(items) => Value::Array(items.iter().map(|v| render_json(v, lookup)).collect::<Result<_, _>>()?),
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (k, v) in map {
                out.insert(render(k, &mut *lookup)?, render_json(v, lookup)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// Every string inside a JSON value, for finding placeholders.
pub fn json_strings(value: &serde_json::Value) -> Vec<&str> {
    use serde_json::Value;
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().flat_map(json_strings).collect(),
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| std::iter::once(k.as_str()).chain(json_strings(v)))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_placeholders_with_and_without_spaces() {
        assert_eq!(
            placeholders("/items/{{id}}?k={{ env.KEY }}&x={{"),
            vec!["id", "env.KEY"]
        );
    }

    #[test]
    fn renders_known_names_and_reports_the_first_unknown() {
        let lookup = |name: &str| (name == "id").then(|| "42".to_string());
        assert_eq!(render("/items/{{ id }}/x", lookup), Ok("/items/42/x".to_string()));
        assert_eq!(render("{{id}}{{nope}}", lookup), Err(Undefined("nope".to_string())));
        assert_eq!(render("no placeholders", lookup), Ok("no placeholders".to_string()));
    }

    #[test]
    fn renders_inside_json_strings_only() {
        let value = serde_json::json!({"name": "{{id}}", "n": 1, "list": ["a-{{id}}"]});
        let mut lookup = |name: &str| (name == "id").then(|| "7".to_string());
        let out = render_json(&value, &mut lookup).expect("renders");
        assert_eq!(out, serde_json::json!({"name": "7", "n": 1, "list": ["a-7"]}));
    }
}
