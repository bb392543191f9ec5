//! Checks on a Prometheus text exposition body (format 0.0.4), parsed with `prom_text_format_parser` (a strict
//! grammar: a line that is neither a comment nor a sample makes the body invalid).

use prom_text_format_parser::{Scrape, Type};

use super::{Check, Lookup, Response, clip};
use crate::spec::model::{MetricCheck, MetricSelector, MetricType};
use crate::spec::template::fill;

/// The body as a scrape, or where it stops being the text format.
fn parse(response: &Response) -> Result<Scrape, String> {
    Scrape::parse(&response.text()).map_err(|e| clip(&format!("{e:?}"), 300))
}

/// The samples of `name` whose labels include `labels` (values filled in): how many, their sum, and the type
/// the metric is declared with.
fn select(scrape: &Scrape, name: &str, labels: &[(String, String)]) -> (usize, f64, Option<Type>) {
    let mut count = 0;
    let mut sum = 0.0;
    let mut kind = None;
    for metric in scrape.metrics.iter().filter(|m| m.name == name) {
        kind = Some(metric.kind);
        for sample in &metric.samples {
            let has = |(k, v): &(String, String)| sample.labels.iter().any(|l| &l.key == k && &l.value == v);
            if labels.iter().all(has) {
                count += 1;
                sum += sample.value.value.parse::<f64>().unwrap_or(f64::NAN);
            }
        }
    }
    (count, sum, kind)
}

fn filled(labels: &indexmap::IndexMap<String, String>, lookup: &mut Lookup<'_>) -> Vec<(String, String)> {
    labels.iter().map(|(k, v)| (k.clone(), fill(v, lookup))).collect()
}

fn describe(name: &str, labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", pairs.join(","))
}

fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        n.to_string()
    }
}

/// Evaluates every metric check.
pub(super) fn checks(metrics: &[MetricCheck], response: &Response, lookup: &mut Lookup<'_>, out: &mut Vec<Check>) {
    let scrape = match parse(response) {
        Ok(scrape) => scrape,
        Err(e) => {
            out.push(Check::new(
                "body is Prometheus text",
                "the text exposition format",
                e,
                false,
            ));
            return;
        }
    };
    for check in metrics {
        let labels = filled(&check.labels, lookup);
        let shown = describe(&check.name, &labels);
        let (count, sum, declared) = select(&scrape, &check.name, &labels);
        let found = if count == 0 {
            "no sample".to_string()
        } else {
            format!("{count} sample(s), sum {}", number(sum))
        };
        if let Some(exists) = check.exists {
            let expected = if exists { "at least one sample" } else { "no sample" };
            out.push(Check::new(
                format!("metric {shown}"),
                expected,
                found.clone(),
                (count > 0) == exists,
            ));
        }
        if let Some(kind) = check.kind {
            let wanted = match kind {
                MetricType::Counter => Type::Counter,
                MetricType::Gauge => Type::Gauge,
                MetricType::Histogram => Type::Histogram,
                MetricType::Summary => Type::Summary,
            };
            let expected = format!("# TYPE {} {wanted}", check.name);
            let actual = match declared {
                None => "no such metric".to_string(),
                Some(Type::Untyped) => "no # TYPE (untyped)".to_string(),
                Some(other) => format!("# TYPE {} {other}", check.name),
            };
            out.push(Check::new(
                format!("metric {} type", check.name),
                expected,
                actual,
                declared == Some(wanted),
            ));
        }
        if let Some(gte) = check.gte {
            out.push(Check::new(
                format!("metric {shown}"),
                format!("at least {}", number(gte)),
                found.clone(),
                count > 0 && sum >= gte,
            ));
        }
        if let Some(increase) = &check.increase {
            let from = fill(&increase.from, lookup).trim().parse::<f64>().unwrap_or(0.0);
            let rise = sum - from;
            out.push(Check::new(
                format!("metric {shown} increase"),
                format!("at least +{} (from {})", number(increase.at_least), number(from)),
                format!("+{} (now {})", number(rise), number(sum)),
                rise >= increase.at_least,
            ));
        }
    }
}

/// The sum of a metric's samples, for a capture: `0` when the body has none yet.
pub fn value(selector: &MetricSelector, response: &Response, lookup: &mut Lookup<'_>) -> Result<String, String> {
    let scrape = parse(response).map_err(|e| format!("the body is not Prometheus text: {e}"))?;
    let labels = filled(&selector.labels, lookup);
    let (_, sum, _) = select(&scrape, &selector.name, &labels);
    Ok(number(sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body: &str) -> Response {
        Response {
            status: 200,
            body: body.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    const TEXT: &str = "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\nhttp_requests_total{method=\"GET\",route=\"/items/{id}\",status=\"200\"} 7\nhttp_requests_total{method=\"GET\",route=\"/items/{id}\",status=\"404\"} 2\nup 1\n";

    fn run(yaml: &str, body: &str) -> Vec<Check> {
        let check: MetricCheck = serde_yaml::from_str(yaml).expect("parses");
        let mut out = Vec::new();
        checks(
            &[check],
            &response(body),
            &mut |n| (n == "before").then(|| "4".to_string()),
            &mut out,
        );
        out
    }

    #[test]
    fn sums_the_samples_whose_labels_match_and_checks_types_and_increases() {
        let all = run("{ name: http_requests_total, type: counter, gte: 9 }", TEXT);
        assert!(all.iter().all(|c| c.passed), "{all:?}");
        let ok = run(
            "{ name: http_requests_total, labels: { status: \"200\" }, increase: { from: \"{{before}}\", at_least: 3 } }",
            TEXT,
        );
        assert!(ok[0].passed, "{ok:?}");
        let short = run(
            "{ name: http_requests_total, labels: { status: \"200\" }, increase: { from: \"{{before}}\", at_least: 4 } }",
            TEXT,
        );
        assert!(!short[0].passed);
        assert!(!run("{ name: up, type: counter }", TEXT)[0].passed, "up is untyped");
        assert!(
            run(
                "{ name: http_requests_total, labels: { route: /items/42 }, exists: false }",
                TEXT
            )[0]
            .passed
        );
    }

    #[test]
    fn a_body_that_is_not_the_text_format_fails_once() {
        let out = run("{ name: up, exists: true }", "{\"up\": 1}");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].what, "body is Prometheus text");
        assert!(!out[0].passed);
    }
}
