//! JUnit XML: one testsuite per challenge, one testcase per probe. A failed probe is a `<failure>`, a probe
//! that could not run is an `<error>`, an unrun probe is `<skipped>`.

use std::io::{self, Write};
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{failure_lines, reproduce};
use crate::outcome::{RunReport, Verdict};

/// Writes the JUnit report.
pub fn write(report: &RunReport, out: &mut dyn Write) -> io::Result<()> {
    let mut junit = Report::new("proctor");
    junit.set_time(Duration::from_millis(report.duration_ms));
    for c in &report.challenges {
        let mut suite = TestSuite::new(c.id.as_str());
        suite.set_time(Duration::from_millis(c.duration_ms));
        suite.add_property((
            "score",
            format!("{}/{} ({}%)", c.score.earned, c.score.total, c.score.percent).as_str(),
        ));
        suite.add_property(("pass-mark", format!("{}%", c.threshold).as_str()));
        suite.add_property(("seed", report.seed.to_string().as_str()));
        if let Some(logs) = &c.logs {
            suite.set_system_out_lossy(logs.as_bytes());
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
            let message = probe.message.clone().unwrap_or_default();
            let status = match probe.verdict {
                Verdict::Passed => TestCaseStatus::success(),
                Verdict::Failed | Verdict::Errored => {
                    let kind = if probe.verdict == Verdict::Failed {
                        NonSuccessKind::Failure
                    } else {
                        NonSuccessKind::Error
                    };
                    let mut status = TestCaseStatus::non_success(kind);
                    status.set_message(message.as_str()).set_description(description.trim());
                    status
                }
                Verdict::Skipped => {
                    let mut status = TestCaseStatus::skipped();
                    status.set_message(message.as_str());
                    status
                }
            };
            let mut case = TestCase::new(format!("{} — {}", probe.id, probe.title).as_str(), status);
            case.set_classname(format!("{}.{}", c.id, probe.category).as_str());
            case.set_time(Duration::from_millis(probe.duration_ms));
            suite.add_test_case(case);
        }
        junit.add_test_suite(suite);
    }
    junit.serialize(&mut *out).map_err(io::Error::other)?;
    writeln!(out)
}
