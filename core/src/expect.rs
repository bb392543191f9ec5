//! Evaluating expectations against a response: pure functions from (spec, response) to checks.
//!
//! Every expectation of a step is evaluated, never stopping at the first failure, and each [`Check`] records
//! what was expected and what came back, so a report can explain the failure without the spec at hand.

mod capture;
pub mod cookies;
mod json;
mod metrics;

use std::time::Duration;

use serde::Serialize;

pub use crate::spec::plan::{Capture, Expect, PathExpr};
pub use capture::capture;

use crate::spec::model::{BodyCheck, HeaderCheck};
pub use crate::spec::template::Lookup;
use crate::spec::template::fill;

/// A response as the checks see it.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header field lines in order, names as received.
    pub headers: Vec<(String, String)>,
    /// The body, up to the size cap.
    pub body: Vec<u8>,
    /// Whether the body went past the cap and was cut off.
    pub truncated: bool,
    /// The cap that applied, in bytes.
    pub body_limit: usize,
    /// Time from sending the request to the end of the body.
    pub elapsed: Duration,
    /// Why a body proctor asked to be compressed could not be decoded (the body is then as received).
    pub decoding_error: Option<String>,
}

impl Response {
    /// Every value of a header (case-insensitive name), in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The header's field lines joined with `, ` (RFC 9110 §5.3), or `None` when absent.
    pub fn header(&self, name: &str) -> Option<String> {
        let values = self.header_values(name);
        (!values.is_empty()).then(|| values.join(", "))
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// The outcome of one expectation.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Check {
    /// What was checked, e.g. `status`, `header ETag matches`, `json $.id equals`.
    pub what: String,
    /// What the spec expected, in words.
    pub expected: String,
    /// What came back.
    pub actual: String,
    /// Whether it passed.
    pub passed: bool,
}

impl Check {
    /// A check: what, expected, actual, passed.
    pub fn new(what: impl Into<String>, expected: impl Into<String>, actual: impl Into<String>, passed: bool) -> Self {
        Self {
            what: what.into(),
            expected: expected.into(),
            actual: actual.into(),
            passed,
        }
    }
}

/// Shortens text for a report line.
pub fn clip(text: &str, max: usize) -> String {
    let text = text.trim_end();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}… ({} bytes)", text.len())
}

/// Evaluates every expectation of `expect` (except burst `statuses`) against one response.
pub fn evaluate(compiled: &Expect, response: &Response, lookup: &mut Lookup<'_>) -> Vec<Check> {
    let expect = &compiled.spec;
    let mut checks = Vec::new();
    if response.truncated {
        checks.push(Check::new(
            "body size",
            format!("at most {} bytes", response.body_limit),
            format!("more than {} bytes (stopped reading)", response.body_limit),
            false,
        ));
    }
    if let Some(error) = &response.decoding_error {
        checks.push(Check::new(
            "content decoding",
            "a body that decodes",
            error.clone(),
            false,
        ));
    }
    if let Some(status) = &expect.status {
        checks.push(Check::new(
            "status",
            status.to_string(),
            status_text(response.status),
            status.matches(response.status),
        ));
    }
    for (name, check) in &expect.headers {
        header_checks(name, check, response, lookup, &mut checks);
    }
    if !expect.json.is_empty() || expect.schema.is_some() {
        json::checks(compiled, response, lookup, &mut checks);
    }
    if let Some(body) = &expect.body {
        body_checks(body, response, lookup, &mut checks);
    }
    if !expect.metrics.is_empty() {
        metrics::checks(&expect.metrics, response, lookup, &mut checks);
    }
    for (name, check) in &expect.cookies {
        cookies::checks(name, check, response, lookup, &mut checks);
    }
    if let Some(media) = &expect.content_type {
        let actual = response.header("content-type");
        let got = actual
            .as_deref()
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        let passed = got.as_deref() == Some(media.to_ascii_lowercase().as_str());
        checks.push(Check::new(
            "content type",
            media.clone(),
            actual.unwrap_or_else(|| "no Content-Type".into()),
            passed,
        ));
    }
    if let Some(max) = &expect.max_time {
        checks.push(Check::new(
            "response time",
            format!("at most {} ms", max.0.as_millis()),
            format!("{} ms", response.elapsed.as_millis()),
            response.elapsed <= max.0,
        ));
    }
    checks
}

/// `201 Created`.
pub fn status_text(code: u16) -> String {
    match http::StatusCode::from_u16(code).ok().and_then(|s| s.canonical_reason()) {
        Some(reason) => format!("{code} {reason}"),
        None => code.to_string(),
    }
}

fn list_members(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|m| !m.is_empty())
}

fn header_checks(name: &str, check: &HeaderCheck, response: &Response, lookup: &mut Lookup<'_>, out: &mut Vec<Check>) {
    let value = response.header(name);
    let shown = || value.clone().map_or_else(|| "absent".to_string(), |v| clip(&v, 200));
    if let Some(exists) = check.exists {
        let expected = if exists { "present" } else { "absent" };
        out.push(Check::new(
            format!("header {name}"),
            expected,
            shown(),
            value.is_some() == exists,
        ));
    }
    if let Some(count) = check.count {
        let actual = response.header_values(name).len();
        out.push(Check::new(
            format!("header {name} field lines"),
            count.to_string(),
            actual.to_string(),
            actual == count as usize,
        ));
    }
    if let Some(equals) = &check.equals {
        let expected = fill(equals, lookup);
        let passed = value.as_deref() == Some(expected.as_str());
        out.push(Check::new(format!("header {name} equals"), expected, shown(), passed));
    }
    if let Some(pattern) = &check.matches {
        let passed = value.as_deref().is_some_and(|v| pattern.0.is_match(v));
        out.push(Check::new(
            format!("header {name} matches"),
            format!("/{}/", pattern.0.as_str()),
            shown(),
            passed,
        ));
    }
    if let Some(pattern) = &check.not_matches {
        let passed = !value.as_deref().is_some_and(|v| pattern.0.is_match(v));
        out.push(Check::new(
            format!("header {name} does not match"),
            format!("no match for /{}/", pattern.0.as_str()),
            shown(),
            passed,
        ));
    }
    for (member, wanted) in [(&check.contains, true), (&check.excludes, false)] {
        if let Some(member) = member {
            let member = fill(member, lookup);
            let found = value
                .as_deref()
                .is_some_and(|v| list_members(v).any(|m| m.eq_ignore_ascii_case(&member)));
            let (what, expected) = if wanted {
                ("contains", "a list with")
            } else {
                ("excludes", "a list without")
            };
            out.push(Check::new(
                format!("header {name} {what}"),
                format!("{expected} {member}"),
                shown(),
                found == wanted,
            ));
        }
    }
    if let Some(distinct) = check.distinct {
        let mut seen = std::collections::BTreeSet::new();
        let repeated: Vec<&str> = value
            .as_deref()
            .map(|v| list_members(v).filter(|m| !seen.insert(m.to_string())).collect())
            .unwrap_or_default();
        let mut actual = shown();
        if !repeated.is_empty() {
            actual.push_str(&format!(" (repeated: {})", repeated.join(", ")));
        }
        out.push(Check::new(
            format!("header {name} members distinct"),
            if distinct {
                "no member twice"
            } else {
                "some member twice"
            },
            actual,
            repeated.is_empty() == distinct,
        ));
    }
    if let Some(members) = &check.members {
        use std::collections::BTreeSet;
        let expected: BTreeSet<String> = members.iter().map(|m| fill(m, lookup).to_ascii_uppercase()).collect();
        let actual: BTreeSet<String> = value
            .as_deref()
            .map(|v| list_members(v).map(str::to_ascii_uppercase).collect())
            .unwrap_or_default();
        let passed = value.is_some() && actual == expected;
        let mut shown_actual = shown();
        for (label, difference) in [
            ("missing", expected.difference(&actual)),
            ("not expected", actual.difference(&expected)),
        ] {
            let names: Vec<&str> = difference.map(String::as_str).collect();
            if value.is_some() && !names.is_empty() {
                shown_actual.push_str(&format!(" ({label}: {})", names.join(", ")));
            }
        }
        let listed: Vec<&str> = expected.iter().map(String::as_str).collect();
        out.push(Check::new(
            format!("header {name} members"),
            format!("exactly {{{}}}", listed.join(", ")),
            shown_actual,
            passed,
        ));
    }
    let number = value.as_deref().and_then(|v| v.trim().parse::<f64>().ok());
    for (op, bound) in [(">", check.gt), (">=", check.gte), ("<", check.lt), ("<=", check.lte)] {
        if let Some(bound) = bound {
            let passed = number.is_some_and(|n| compare(n, op, bound));
            let actual = match (&value, number) {
                (None, _) => "absent".to_string(),
                (Some(_), Some(n)) => n.to_string(),
                (Some(v), None) => format!("{} (not a number)", clip(v, 100)),
            };
            out.push(Check::new(
                format!("header {name} {op} {bound}"),
                format!("a number {op} {bound}"),
                actual,
                passed,
            ));
        }
    }
}

/// `n op bound` for the four comparison operators.
pub(crate) fn compare(n: f64, op: &str, bound: f64) -> bool {
    match op {
        ">" => n > bound,
        ">=" => n >= bound,
        "<" => n < bound,
        _ => n <= bound,
    }
}

fn body_checks(check: &BodyCheck, response: &Response, lookup: &mut Lookup<'_>, out: &mut Vec<Check>) {
    let text = response.text();
    let shown = || {
        if text.is_empty() {
            "empty".to_string()
        } else {
            clip(&text, 300)
        }
    };
    if let Some(empty) = check.empty {
        let expected = if empty { "empty" } else { "not empty" };
        out.push(Check::new("body", expected, shown(), response.body.is_empty() == empty));
    }
    if let Some(equals) = &check.equals {
        let expected = fill(equals, lookup);
        out.push(Check::new(
            "body equals",
            clip(&expected, 300),
            shown(),
            text == expected.as_str(),
        ));
    }
    if let Some(contains) = &check.contains {
        let needle = fill(contains, lookup);
        out.push(Check::new(
            "body contains",
            format!("{needle:?}"),
            shown(),
            text.contains(&needle),
        ));
    }
    if let Some(pattern) = &check.matches {
        out.push(Check::new(
            "body matches",
            format!("/{}/", pattern.0.as_str()),
            shown(),
            pattern.0.is_match(&text),
        ));
    }
    if let Some(pattern) = &check.not_matches {
        let found = pattern.0.find(&text);
        let actual = found.map_or_else(
            || "no match".to_string(),
            |m| format!("found {:?}", clip(m.as_str(), 120)),
        );
        out.push(Check::new(
            "body does not match",
            format!("no /{}/", pattern.0.as_str()),
            actual,
            found.is_none(),
        ));
    }
}

/// The checks of one header (or, given a response whose headers are query parameters, of one parameter).
pub fn header(name: &str, check: &HeaderCheck, response: &Response, lookup: &mut Lookup<'_>) -> Vec<Check> {
    let mut out = Vec::new();
    header_checks(name, check, response, lookup, &mut out);
    out
}

/// Combines the checks of many responses (a burst) into one check per expectation.
pub fn aggregate(per_response: &[Vec<Check>]) -> Vec<Check> {
    aggregate_over(per_response, "responses")
}

/// Combines the checks of many responses or calls (`noun`) into one check per expectation.
pub fn aggregate_over(per_response: &[Vec<Check>], noun: &str) -> Vec<Check> {
    let Some(first) = per_response.first() else {
        return Vec::new();
    };
    let total = per_response.len();
    first
        .iter()
        .enumerate()
        .map(|(i, check)| {
            let failing: Vec<&Check> = per_response
                .iter()
                .filter_map(|c| c.get(i))
                .filter(|c| !c.passed)
                .collect();
            match failing.first() {
                None => Check::new(
                    &check.what,
                    &check.expected,
                    format!("{} (all {total} {noun})", check.actual),
                    true,
                ),
                Some(bad) => Check::new(
                    &check.what,
                    format!("{} (every {})", check.expected, noun.trim_end_matches('s')),
                    format!("{} ({} of {total} {noun} failed)", bad.actual, failing.len()),
                    false,
                ),
            }
        })
        .collect()
}

/// The burst `statuses` check: exact counts per status.
pub fn status_counts(expected: &indexmap::IndexMap<u16, crate::types::Count>, statuses: &[u16]) -> Check {
    let mut actual: std::collections::BTreeMap<u16, u32> = std::collections::BTreeMap::new();
    for s in statuses {
        *actual.entry(*s).or_default() += 1;
    }
    let passed = expected
        .iter()
        .all(|(code, n)| n.matches(actual.get(code).copied().unwrap_or(0)))
        && actual.keys().all(|code| expected.contains_key(code));
    let show = |pairs: Vec<(u16, String)>| {
        pairs
            .iter()
            .map(|(c, n)| format!("{n} × {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Check::new(
        "statuses",
        show(expected.iter().map(|(c, n)| (*c, n.to_string())).collect()),
        show(actual.into_iter().map(|(c, n)| (c, n.to_string())).collect()),
        passed,
    )
}

#[cfg(test)]
mod tests;
