//! Every report format, snapshotted from a real run of the reference with two defects (timings, ports and
//! dates redacted).

use proctor::outcome::RunReport;
use proctor::report::{self, Format};
use proctor::target::Target;

use crate::support::{catalog, grade};

async fn sample() -> RunReport {
    let challenges = [catalog("http-caching"), catalog("rest-resource")];
    let mut report = grade(&challenges, Target::Reference("304-bare,location-wrong".into())).await;
    report.started_at = "2026-01-01T00:00:00Z".into();
    report.duration_ms = 1234;
    for c in &mut report.challenges {
        c.duration_ms = 100;
        for p in &mut c.probes {
            p.duration_ms = 10;
            for s in &mut p.steps {
                s.duration_ms = 1;
                if let Some(r) = s.response.as_mut() {
                    r.elapsed_ms = 1;
                }
            }
        }
    }
    report
}

fn render(format: Format, report: &RunReport) -> String {
    let mut out = Vec::new();
    format.write(report, &mut out).expect("writes");
    String::from_utf8(out).expect("UTF-8")
}

macro_rules! redacted {
    ($body:block) => {
        insta::with_settings!({filters => vec![
            (r"127\.0\.0\.1:\d+", "127.0.0.1:PORT"),
            (r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", "DATE"),
            (r#""proctor_version": "[^"]+""#, r#""proctor_version": "VERSION""#),
        ]}, $body)
    };
}

#[tokio::test]
async fn terminal_report() {
    let report = sample().await;
    let mut out = Vec::new();
    report::terminal::write(&report, &mut out, false).expect("writes");
    redacted!({ insta::assert_snapshot!(String::from_utf8_lossy(&out)) });
}

#[tokio::test]
async fn json_report() {
    let report = sample().await;
    let text = render(Format::Json, &report);
    let value: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(value["format_version"], 1);
    let schema: serde_json::Value = serde_json::from_str(&proctor::outcome::json_schema()).expect("schema");
    assert!(
        jsonschema::is_valid(&schema, &value),
        "the report matches its published schema"
    );
    redacted!({ insta::assert_snapshot!(text) });
}

#[tokio::test]
async fn junit_report() {
    let report = sample().await;
    redacted!({ insta::assert_snapshot!(render(Format::Junit, &report)) });
}

#[tokio::test]
async fn markdown_report() {
    let report = sample().await;
    redacted!({ insta::assert_snapshot!(render(Format::Markdown, &report)) });
}

#[tokio::test]
async fn junit_tells_failures_from_errors_and_skips() {
    let mut report = sample().await;
    let probes = &mut report.challenges[0].probes;
    probes[0].verdict = proctor::outcome::Verdict::Errored;
    probes[0].message = Some("could not open connections".into());
    probes[1].verdict = proctor::outcome::Verdict::Skipped;
    let xml = render(Format::Junit, &report);
    assert_eq!(xml.matches("<failure").count(), 2, "{xml}");
    assert_eq!(xml.matches("<error").count(), 1);
    assert_eq!(xml.matches("<skipped").count(), 1);
}

#[tokio::test]
async fn hidden_probes_can_be_redacted_for_candidates() {
    let mut report = sample().await;
    report.challenges[0].probes[2].hidden = true;
    let secret_id = report.challenges[0].probes[2].id.clone();
    let redacted = report::redact_hidden(&report);
    let probe = &redacted.challenges[0].probes[2];
    assert_eq!(
        (probe.id.as_str(), probe.title.as_str(), probe.steps.len()),
        ("hidden-1", "hidden probe", 0)
    );
    assert_eq!(probe.verdict, report.challenges[0].probes[2].verdict);
    assert!(!render(Format::Markdown, &redacted).contains(&secret_id));
}
