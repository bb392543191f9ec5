//! A start step: another instance with changed env must refuse to start, exiting non-zero within a bound and
//! saying why in its output. The service under test keeps running.

use std::time::Duration;

use super::restart::{describe, render_changes};
use super::{ERRORED, Ending, FAILED, step_report};
use crate::engine::probe::Context;
use crate::expect::{Check, clip};
use crate::outcome::{StepKind, StepReport};
use crate::spec::model::StartSpec;
use crate::vars::Vars;

/// How long the instance may take to exit by default.
const DEFAULT_WITHIN: Duration = Duration::from_secs(10);

pub(super) async fn run(number: usize, spec: &StartSpec, vars: &mut Vars, ctx: &Context<'_>) -> (StepReport, Ending) {
    let changes = render_changes(&spec.env, vars);
    let within = spec.within.map_or(DEFAULT_WITHIN, |d| d.0);
    let mut report = step_report(
        number,
        format!("start another instance{}", describe(&changes)),
        StepKind::Start,
    );
    let attempt = ctx.service(None).lock().await.attempt(&changes, within).await;
    let attempt = match attempt {
        Ok(attempt) => attempt,
        Err(error) => {
            report.error = Some(error.to_string());
            return (report, ERRORED);
        }
    };
    report.checks.push(Check {
        what: "refuses to start".into(),
        expected: format!("exits with a non-zero status within {} ms", within.as_millis()),
        actual: match (&attempt.ended, attempt.ready) {
            (_, true) => format!(
                "answered its readiness check after {} ms: it started",
                attempt.after.as_millis()
            ),
            (Some(how), false) => format!("{how} after {} ms", attempt.after.as_millis()),
            (None, false) => format!("still running after {} ms", attempt.after.as_millis()),
        },
        passed: !attempt.ready && attempt.exit_code.is_some_and(|c| c != 0),
    });
    for text in &spec.output_contains {
        let text = vars.render(text);
        report.checks.push(Check {
            what: "its output says why".into(),
            expected: format!("mentions `{text}`"),
            actual: if attempt.output.trim().is_empty() {
                "no output".to_string()
            } else {
                clip(attempt.output.trim(), 300)
            },
            passed: attempt.output.contains(&text),
        });
    }
    report.passed = report.checks.iter().all(|c| c.passed);
    let ending = if report.passed { Ending::Passed } else { FAILED };
    (report, ending)
}
