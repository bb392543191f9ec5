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
    (
        "httpdate",
        "the current time as an HTTP date (IMF-fixdate), e.g. for If-Modified-Since",
    ),
    (
        "index",
        "inside `repeat` or `burst`: the 0-based number of the request; inside a body's `$each`: the item's",
    ),
    (
        "filler.N",
        "N copies of the letter x, for oversized bodies (N up to 16 MiB)",
    ),
    (
        "tamper.NAME",
        "the variable NAME with one value inside it changed but its format kept: in the first `.`-separated \
         part that is base64 (or base64url) of bytes with a digit, the last such digit is changed and the part \
         re-encoded the same way; otherwise the first digit (or letter) of NAME is changed. An unsigned cursor \
         stays decodable and names another position; a signed or looked-up one must be refused",
    ),
];

/// The variable a `tamper.NAME` placeholder changes.
pub fn tamper_target(name: &str) -> Option<&str> {
    name.strip_prefix("tamper.").filter(|n| !n.is_empty())
}

/// `value` with one value inside it changed, its format kept (see the `tamper.NAME` builtin). Each `.`-separated
/// part is tried in order: the first that is base64 (or base64url) of bytes with an ASCII digit gets its last such
/// digit changed and is re-encoded the same way. Otherwise the first digit (or letter) of the value changes — the
/// first, because the last character of base64 may carry unused bits that a lenient decoder ignores.
pub fn tamper(value: &str) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let mut parts: Vec<String> = value.split('.').map(str::to_string).collect();
    for part in &mut parts {
        let engine = match (part.contains(['-', '_']), part.ends_with('=')) {
            (true, true) => &URL_SAFE,
            (true, false) => &URL_SAFE_NO_PAD,
            (false, true) => &STANDARD,
            (false, false) => &STANDARD_NO_PAD,
        };
        if let Ok(mut decoded) = engine.decode(part.as_bytes())
            && let Some(at) = decoded.iter().rposition(u8::is_ascii_digit)
        {
            decoded[at] = next_in_class(decoded[at]);
            *part = engine.encode(decoded);
            return parts.join(".");
        }
    }
    let mut bytes = value.as_bytes().to_vec();
    let at = bytes
        .iter()
        .position(u8::is_ascii_digit)
        .or_else(|| bytes.iter().position(u8::is_ascii_alphabetic));
    match at {
        Some(at) => {
            bytes[at] = next_in_class(bytes[at]);
            // Only an ASCII byte was replaced by another, so the text is still UTF-8.
            String::from_utf8(bytes).unwrap_or_else(|_| format!("{value}0"))
        }
        None => format!("{value}0"),
    }
}

/// The next character of the same kind: `3` → `4`, `9` → `0`, `a` → `b`, `Z` → `A`.
fn next_in_class(c: u8) -> u8 {
    match c {
        b'9' => b'0',
        b'z' => b'a',
        b'Z' => b'A',
        c if c.is_ascii_alphanumeric() => c + 1,
        c => c,
    }
}

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

/// Looks up variables for placeholders.
pub type Lookup<'a> = dyn FnMut(&str) -> Option<String> + 'a;

/// Renders `text`, marking an undefined placeholder in the result (`<...>`) rather than failing: for expected
/// values in reports, where validation already made sure every name is defined.
pub fn fill(text: &str, lookup: &mut Lookup<'_>) -> String {
    render(text, lookup).unwrap_or_else(|e| format!("<{e}>"))
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

/// The most items one `$repeat` of a request body may generate.
pub const MAX_BODY_REPEAT: u64 = 1_000_000;

/// The largest body a `$repeat` may make (estimated from its first item).
pub const MAX_REPEAT_BYTES: u64 = 64 * 1024 * 1024;

/// A typed form inside a request's JSON body: `{$int: "{{index}}"}` is the number the text renders to, and
/// `{$repeat: N, $each: <template>}` is an array of N items, each rendered with `{{index}}` set to its 0-based
/// position (the innermost `$repeat` wins).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BodyForm<'a> {
    /// `{$int: "<text>"}`.
    Int(&'a serde_json::Value),
    /// `{$repeat: N, $each: <template>}`.
    Repeat(&'a serde_json::Value, &'a serde_json::Value),
}

impl<'a> BodyForm<'a> {
    /// The typed form an object is, when its keys are exactly `$int`, or `$repeat` and `$each`.
    pub fn of(map: &'a serde_json::Map<String, serde_json::Value>) -> Option<Self> {
        match (map.len(), map.get("$int"), map.get("$repeat"), map.get("$each")) {
            (1, Some(text), _, _) => Some(Self::Int(text)),
            (2, _, Some(count), Some(each)) => Some(Self::Repeat(count, each)),
            _ => None,
        }
    }
}

/// Whether a request's JSON body holds a `$repeat` anywhere (rendering it may then take a while).
pub fn has_repeat(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Array(items) => items.iter().any(has_repeat),
        serde_json::Value::Object(map) => {
            matches!(BodyForm::of(map), Some(BodyForm::Repeat(..))) || map.values().any(has_repeat)
        }
        _ => false,
    }
}

/// Renders a request's JSON body as JSON text: placeholders in every string (keys included) and the typed forms
/// of [`BodyForm`], written straight into the text (a `$repeat` of 200,000 items never exists as a value tree).
/// The error says what is wrong (an undefined variable, a `$int` that is not a whole number, a body too big).
pub fn render_body(
    value: &serde_json::Value,
    lookup: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    write_body(value, lookup, &mut out)?;
    Ok(out)
}

fn write_text(text: &str, out: &mut String) {
    out.push_str(&serde_json::Value::String(text.to_string()).to_string());
}

fn write_body(
    value: &serde_json::Value,
    lookup: &mut dyn FnMut(&str) -> Option<String>,
    out: &mut String,
) -> Result<(), String> {
    use serde_json::Value;
    match value {
        Value::String(s) => write_text(&render(s, &mut *lookup).map_err(|e| e.to_string())?, out),
        Value::Array(items) => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_body(item, lookup, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => match BodyForm::of(map) {
            Some(BodyForm::Int(text)) => {
                let text = text.as_str().ok_or("`$int` takes a text")?;
                let rendered = render(text, &mut *lookup).map_err(|e| e.to_string())?;
                let number: i64 = rendered
                    .trim()
                    .parse()
                    .map_err(|_| format!("`$int` rendered to {rendered:?}, which is not a whole number"))?;
                out.push_str(&number.to_string());
            }
            Some(BodyForm::Repeat(count, each)) => {
                let count = count
                    .as_u64()
                    .filter(|n| *n <= MAX_BODY_REPEAT)
                    .ok_or_else(|| format!("`$repeat` takes a whole number up to {MAX_BODY_REPEAT}"))?;
                out.push('[');
                let start = out.len();
                for index in 0..count {
                    if index > 0 {
                        out.push(',');
                    }
                    let index_text = index.to_string();
                    let mut inner = |name: &str| {
                        if name == "index" {
                            Some(index_text.clone())
                        } else {
                            lookup(name)
                        }
                    };
                    write_body(each, &mut inner, out)?;
                    if index == 0 {
                        let estimate = (out.len() - start + 1) as u64 * count;
                        if estimate > MAX_REPEAT_BYTES {
                            return Err(format!(
                                "`$repeat` would make about {} MiB of JSON; the most is {} MiB",
                                estimate >> 20,
                                MAX_REPEAT_BYTES >> 20
                            ));
                        }
                        out.reserve(estimate as usize);
                    }
                }
                out.push(']');
            }
            None => {
                out.push('{');
                for (n, (k, v)) in map.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    write_text(&render(k, &mut *lookup).map_err(|e| e.to_string())?, out);
                    out.push(':');
                    write_body(v, lookup, out)?;
                }
                out.push('}');
            }
        },
        other => out.push_str(&other.to_string()),
    }
    Ok(())
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

    #[test]
    fn body_templates_make_numbers_and_arrays() {
        let value = serde_json::json!({
            "n": {"$int": "{{id}}"},
            "rows": {"$repeat": 3, "$each": {"isbn": "978-{{index}}", "year": {"$int": "19{{index}}0"}, "by": "{{id}}"}},
            "plain": {"$int": "1", "other": 2},
        });
        let mut lookup = |name: &str| (name == "id").then(|| "7".to_string());
        let out: serde_json::Value =
            serde_json::from_str(&render_body(&value, &mut lookup).expect("renders")).expect("JSON");
        assert_eq!(
            out,
            serde_json::json!({
                "n": 7,
                "rows": [
                    {"isbn": "978-0", "year": 1900, "by": "7"},
                    {"isbn": "978-1", "year": 1910, "by": "7"},
                    {"isbn": "978-2", "year": 1920, "by": "7"},
                ],
                "plain": {"$int": "1", "other": 2},
            })
        );
        let not_a_number = serde_json::json!({"$int": "x{{id}}"});
        assert_eq!(
            render_body(&not_a_number, &mut lookup),
            Err("`$int` rendered to \"x7\", which is not a whole number".to_string())
        );
        let too_many = serde_json::json!({"$repeat": MAX_BODY_REPEAT + 1, "$each": 1});
        assert!(render_body(&too_many, &mut lookup).is_err());
        let too_big = serde_json::json!({"$repeat": 1000, "$each": "x".repeat(100_000)});
        assert_eq!(
            render_body(&too_big, &mut lookup),
            Err("`$repeat` would make about 95 MiB of JSON; the most is 64 MiB".to_string())
        );
        assert_eq!(
            render_body(&serde_json::json!({"$repeat": 0, "$each": 1}), &mut lookup),
            Ok("[]".to_string())
        );
        assert!(has_repeat(&value), "a `$repeat` inside an object");
        assert!(
            has_repeat(&serde_json::json!([1, {"a": [too_many]}])),
            "nested in arrays"
        );
        assert!(!has_repeat(&not_a_number) && !has_repeat(&serde_json::json!({"$repeat": 3, "x": 1})));
    }

    #[test]
    fn tampering_keeps_the_format_and_changes_one_value() {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        // An unsigned cursor: base64url of JSON with a number. It still decodes, to another position.
        let cursor = URL_SAFE_NO_PAD.encode(r#"{"after":"item-0042"}"#);
        let tampered = tamper(&cursor);
        assert_ne!(tampered, cursor);
        let decoded = URL_SAFE_NO_PAD.decode(&tampered).expect("still base64url");
        assert_eq!(decoded, br#"{"after":"item-0043"}"#);
        // Padded standard base64 stays padded standard base64.
        let offset = STANDARD.encode("offset=19");
        assert_eq!(STANDARD.decode(tamper(&offset)).expect("decodes"), b"offset=10");
        // A signed cursor: the payload part changes, the signature is kept (and no longer matches).
        let payload = URL_SAFE_NO_PAD.encode("[1,24]");
        let signed = format!("{payload}.Tz-aQ7Q");
        let tampered = tamper(&signed);
        assert_eq!(tampered, format!("{}.Tz-aQ7Q", URL_SAFE_NO_PAD.encode("[1,25]")));
        // Plain numbers and text without base64 meaning: the first digit or letter changes.
        assert_eq!(tamper("42"), "52");
        assert_eq!(tamper("page.sig"), "qage.sig");
        assert_eq!(tamper("--"), "--0");
    }
}
