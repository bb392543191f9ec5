//! Small value types of the spec format that parse themselves: durations, percentages, status matchers, regexes.
//!
//! Each one is deserialized by a visitor (never `#[serde(untagged)]`), so a bad value fails with serde's own
//! error, which carries the line and column, and each one describes itself to the JSON Schema by hand.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration written as `500ms`, `2s`, `1.5s` or `1m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

/// The Unix time of `at`, in whole seconds (0 before 1970).
pub fn unix_seconds(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Parses `500ms`, `2s`, `1.5s`, `1m`; `None` when the text is not such a duration.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let simple = if let Some(n) = text.strip_suffix("ms") {
        Some((n, 1.0))
    } else if let Some(n) = text.strip_suffix('s') {
        Some((n, 1000.0))
    } else {
        text.strip_suffix('m').map(|n| (n, 60_000.0))
    };
    // Decimal amounts of one unit (`1.5s`) here; compound forms (`1m30s`, `2h`) through humantime.
    if let Some((number, unit_ms)) = simple
        && let Ok(value) = number.trim().parse::<f64>()
    {
        return (value.is_finite() && value >= 0.0 && value * unit_ms < 1e12)
            .then(|| Duration::from_micros((value * unit_ms * 1000.0) as u64));
    }
    humantime::parse_duration(text)
        .ok()
        .filter(|d| d.as_secs() < 1_000_000_000)
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text).map(Dur).ok_or_else(|| {
            de::Error::custom(format!(
                "invalid duration `{text}`: write it like 500ms, 2.5s, 1m or 1m30s"
            ))
        })
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{}ms", self.0.as_millis()))
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^([0-9]+(\\.[0-9]+)?(ms|s|m)|([0-9]+ ?[a-z]+ ?)+)$",
            "description": "A duration such as 500ms, 2.5s, 1m or 1m30s."
        })
    }
}

/// A pass threshold: `80%` or `80`, between 0 and 100.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(pub f64);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Percent;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a percentage such as 80% or 80")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Percent, E> {
                self.visit_f64(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Percent, E> {
                self.visit_f64(v as f64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Percent, E> {
                if (0.0..=100.0).contains(&v) {
                    Ok(Percent(v))
                } else {
                    Err(E::custom(format!("pass threshold {v} is outside 0..=100")))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Percent, E> {
                let number = v.trim().trim_end_matches('%').trim();
                match number.parse::<f64>() {
                    Ok(n) => self.visit_f64(n),
                    Err(_) => Err(E::custom(format!("invalid percentage `{v}`: write it like 80%"))),
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl JsonSchema for Percent {
    fn schema_name() -> Cow<'static, str> {
        "Percent".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A percentage such as 80% or 80.",
            "oneOf": [
                { "type": "number", "minimum": 0, "maximum": 100 },
                { "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?%$" }
            ]
        })
    }
}

/// The status a response must have: one code, one of several, or a class such as `2xx`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusSpec {
    /// Exactly this code.
    Exact(u16),
    /// Any of these codes.
    OneOf(Vec<u16>),
    /// Any code of this class (the hundreds digit, 1 to 5).
    Class(u16),
}

impl StatusSpec {
    /// Whether `code` satisfies this expectation.
    pub fn matches(&self, code: u16) -> bool {
        match self {
            StatusSpec::Exact(c) => *c == code,
            StatusSpec::OneOf(codes) => codes.contains(&code),
            StatusSpec::Class(class) => code / 100 == *class,
        }
    }

    /// Whether every status this expectation admits is one that never carries content (1xx, 204, 304).
    pub fn forbids_content(&self) -> bool {
        let no_content = |c: u16| c / 100 == 1 || c == 204 || c == 304;
        match self {
            StatusSpec::Exact(c) => no_content(*c),
            StatusSpec::OneOf(codes) => !codes.is_empty() && codes.iter().all(|c| no_content(*c)),
            StatusSpec::Class(class) => *class == 1,
        }
    }
}

impl fmt::Display for StatusSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusSpec::Exact(c) => write!(f, "{c}"),
            StatusSpec::OneOf(codes) => {
                let list: Vec<String> = codes.iter().map(u16::to_string).collect();
                write!(f, "one of {}", list.join(", "))
            }
            StatusSpec::Class(class) => write!(f, "{class}xx"),
        }
    }
}

fn status_code<E: de::Error>(v: u64) -> Result<u16, E> {
    if (100..=599).contains(&v) {
        Ok(v as u16)
    } else {
        Err(E::custom(format!("status {v} is not an HTTP status code (100 to 599)")))
    }
}

impl<'de> Deserialize<'de> for StatusSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StatusSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a status code (201), a list of codes ([200, 204]) or a class (\"2xx\")")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusSpec, E> {
                status_code(v).map(StatusSpec::Exact)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusSpec, E> {
                status_code(v.max(0) as u64).map(StatusSpec::Exact)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StatusSpec, E> {
                let lower = v.trim().to_ascii_lowercase();
                if let Some(digit) = lower.strip_suffix("xx") {
                    return match digit.parse::<u16>() {
                        Ok(class @ 1..=5) => Ok(StatusSpec::Class(class)),
                        _ => Err(E::custom(format!(
                            "unknown status class `{v}`: use 1xx, 2xx, 3xx, 4xx or 5xx"
                        ))),
                    };
                }
                match lower.parse::<u64>() {
                    Ok(code) => status_code(code).map(StatusSpec::Exact),
                    Err(_) => Err(E::custom(format!(
                        "invalid status `{v}`: use a code like 201 or a class like 2xx"
                    ))),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StatusSpec, A::Error> {
                let mut codes = Vec::new();
                while let Some(code) = seq.next_element::<u64>()? {
                    codes.push(status_code(code)?);
                }
                if codes.is_empty() {
                    return Err(de::Error::custom("an empty list of statuses can never match"));
                }
                Ok(StatusSpec::OneOf(codes))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl JsonSchema for StatusSpec {
    fn schema_name() -> Cow<'static, str> {
        "Status".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A status code (201), a list of codes ([200, 204]) or a class (\"2xx\").",
            "oneOf": [
                { "type": "integer", "minimum": 100, "maximum": 599 },
                { "type": "array", "items": { "type": "integer", "minimum": 100, "maximum": 599 }, "minItems": 1 },
                { "type": "string", "pattern": "^[1-5]xx$" }
            ]
        })
    }
}

/// A regular expression, compiled when the spec is loaded so a bad pattern is a spec error.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        regex::Regex::new(&text)
            .map(Pattern)
            .map_err(|e| de::Error::custom(format!("invalid regular expression: {e}")))
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

impl JsonSchema for Pattern {
    fn schema_name() -> Cow<'static, str> {
        "Regex".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": "regex", "description": "A regular expression (Rust regex syntax)." })
    }
}

/// A scalar written as a string, number or boolean, kept as its text (header values, query values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl JsonSchema for Text {
    fn schema_name() -> Cow<'static, str> {
        "Text".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "number", "boolean"],
            "description": "Text; {{name}} placeholders are replaced by variables."
        })
    }
}

/// A size in bytes, written as `512MiB`, `1GiB`, `64KiB`, `256m` or a plain number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

/// Parses `512MiB`, `1GiB`, `256m`, `64k`, `1000`; `None` when the text is not such a size.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    let bytes = value * multiplier as f64;
    (0.0..1e15).contains(&bytes).then_some(bytes as u64)
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Text::deserialize(deserializer)?.0;
        parse_bytes(&text)
            .map(ByteSize)
            .ok_or_else(|| de::Error::custom(format!("invalid size `{text}`: write it like 512MiB or 1GiB")))
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size such as 512MiB, 1GiB or a number of bytes.",
            "oneOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?\\s*([kKmMgG]([iI]?[bB])?|[bB])?$" }
            ]
        })
    }
}

/// How many: exactly a number (`9`), at least a number (`"1+"`), or a range (`"1..3"`, both ends included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Exactly this many.
    Exactly(u32),
    /// This many or more.
    AtLeast(u32),
    /// From the first to the second, both included.
    Between(u32, u32),
}

impl Count {
    /// Whether `n` satisfies it.
    pub fn matches(self, n: u32) -> bool {
        match self {
            Count::Exactly(m) => n == m,
            Count::AtLeast(m) => n >= m,
            Count::Between(low, high) => (low..=high).contains(&n),
        }
    }

    /// The least number it allows.
    pub fn least(self) -> u32 {
        match self {
            Count::Exactly(m) | Count::AtLeast(m) | Count::Between(m, _) => m,
        }
    }

    /// Whether more than one number satisfies it.
    pub fn is_open(self) -> bool {
        !matches!(self, Count::Exactly(_))
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Count::Exactly(n) => write!(f, "{n}"),
            Count::AtLeast(n) => write!(f, "{n} or more"),
            Count::Between(low, high) => write!(f, "{low} to {high}"),
        }
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a count such as 9, \"1+\" for at least one, or \"1..3\" for one to three")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                u32::try_from(v)
                    .map(Count::Exactly)
                    .map_err(|_| E::custom("the count is too large"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                u32::try_from(v)
                    .map(Count::Exactly)
                    .map_err(|_| E::custom("a count is not negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Count, E> {
                let wrong = || E::custom(format!("`{v}` is not a count such as 9, \"1+\" or \"1..3\""));
                let number = |text: &str| text.trim().parse::<u32>().map_err(|_| wrong());
                let text = v.trim();
                if let Some(least) = text.strip_suffix('+') {
                    return number(least).map(Count::AtLeast);
                }
                let (low, high) = text.split_once("..").ok_or_else(wrong)?;
                let (low, high) = (number(low)?, number(high)?);
                if low > high {
                    return Err(E::custom(format!("`{v}` is an empty range")));
                }
                Ok(Count::Between(low, high))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl JsonSchema for Count {
    fn schema_name() -> Cow<'static, str> {
        "Count".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A count: exactly a number, at least a number written \"N+\", or a range \"N..M\".",
            "oneOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^[0-9]+\\+$" },
                { "type": "string", "pattern": "^[0-9]+\\.\\.[0-9]+$" }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Count;

    #[test]
    fn counts_are_exact_open_or_ranges() {
        let parse = |yaml: &str| serde_yaml::from_str::<Count>(yaml).map_err(|e| e.to_string());
        assert_eq!(parse("3"), Ok(Count::Exactly(3)));
        assert_eq!(parse("'1+'"), Ok(Count::AtLeast(1)));
        assert_eq!(parse("'1..3'"), Ok(Count::Between(1, 3)));
        assert!(parse("'3..1'").is_err_and(|e| e.contains("empty range")));
        assert!(parse("'many'").is_err());
        let range = Count::Between(1, 3);
        assert!(!range.matches(0) && range.matches(1) && range.matches(3) && !range.matches(4));
        assert_eq!(range.to_string(), "1 to 3");
    }
}
