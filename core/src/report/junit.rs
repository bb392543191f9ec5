//! JUnit XML: one testsuite per challenge, one testcase per probe. A failed probe is a `<failure>`, a probe
//! that could not run — or whose service could not be started — is an `<error>`, a probe not run because the run
//! was interrupted is `<skipped>`. The output follows the Jenkins xunit plugin's JUnit schema (junit-10.xsd),
//! which CI dashboards validate against.

use std::io::{self, Write};
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{failure_lines, reproduce};
use crate::neutral::xml;
use crate::outcome::{RunReport, Verdict};

/// Writes the JUnit report.
pub fn write(report: &RunReport, out: &mut dyn Write) -> io::Result<()> {
    let mut junit = Report::new("proctor");
    junit.set_time(Duration::from_millis(report.duration_ms));
    for c in &report.challenges {
        let mut suite = TestSuite::new(xml(&c.id).as_ref());
        suite.set_time(Duration::from_millis(c.duration_ms));
        suite.add_property((
            "score",
            format!("{}/{} ({}%)", c.score.earned, c.score.total, c.score.percent).as_str(),
        ));
        suite.add_property(("pass-mark", format!("{}%", c.threshold).as_str()));
        suite.add_property(("seed", report.seed.to_string().as_str()));
        if let Some(logs) = &c.logs {
            suite.set_system_out(xml(logs).as_ref());
        }
        for probe in &c.probes {
            let mut description = failure_lines(probe).join("\n");
            if !probe.why.is_empty() {
                description.push_str(&format!("\nwhy: {}", probe.why.trim()));
            }
            if !probe.hint.is_empty() {
                description.push_str(&format!("\nhint: {}", probe.hint.trim()));
            }
            let replay = reproduce(probe);
            if !replay.is_empty() {
                description.push_str(&format!(
                    "\nreplay (set {}= to your service's base URL):\n{}",
                    super::curl::BASE,
                    replay.join("\n")
                ));
            }
            let message = match (&c.target_error, probe.verdict) {
                // A service that never started failed every probe it was meant to answer: CI must not see green.
                (Some(error), Verdict::Skipped) => format!("the service could not be graded: {error}"),
                _ => probe.message.clone().unwrap_or_default(),
            };
            let (message, description) = (xml(&message), xml(description.trim()));
            // A service that never started is an error on every probe, not a skip: CI must not show it green.
            let status = match (probe.verdict, &c.target_error) {
                (Verdict::Passed, _) => TestCaseStatus::success(),
                (Verdict::Skipped, None) | (Verdict::NotApplicable, _) => {
                    let mut status = TestCaseStatus::skipped();
                    status.set_message(message.as_ref());
                    status
                }
                (verdict, _) => {
                    let kind = if verdict == Verdict::Failed {
                        NonSuccessKind::Failure
                    } else {
                        NonSuccessKind::Error
                    };
                    let mut status = TestCaseStatus::non_success(kind);
                    status
                        .set_message(message.as_ref())
                        .set_description(description.as_ref());
                    status
                }
            };
            let mut case = TestCase::new(xml(&format!("{} — {}", probe.id, probe.title)).as_ref(), status);
            case.set_classname(xml(&format!("{}.{}", c.id, probe.category)).as_ref());
            case.set_time(Duration::from_millis(probe.duration_ms));
            suite.add_test_case(case);
        }
        junit.add_test_suite(suite);
    }
    let text = junit.to_string().map_err(io::Error::other)?;
    // junit-10.xsd allows name, time, tests, failures and errors on <testsuites>, not `skipped` (each
    // <testsuite> still carries its own count).
    let text = match text.split_once('\n') {
        Some((declaration, rest)) if rest.starts_with("<testsuites") => {
            let (first, tail) = rest.split_once('\n').unwrap_or((rest, ""));
            let first = without_skipped(first);
            format!("{declaration}\n{first}\n{tail}")
        }
        _ => text,
    };
    out.write_all(text.as_bytes())?;
    writeln!(out)
}

/// The `<testsuites>` start tag without its `skipped="N"` attribute.
fn without_skipped(tag: &str) -> String {
    match tag.find(" skipped=\"") {
        Some(start) => {
            let after = &tag[start + " skipped=\"".len()..];
            let end = after.find('"').map_or(after.len(), |i| i + 1);
            format!("{}{}", &tag[..start], &after[end..])
        }
        None => tag.to_string(),
    }
}
