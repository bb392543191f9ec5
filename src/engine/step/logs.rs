//! A logs step: what the service wrote since the probe began, polled until the checks hold or time is up
//! (output may be buffered), checked for text it must contain, text it must never contain, and JSON lines.

use std::time::Duration;

use tokio::time::Instant;

use super::{ERRORED, Ending, FAILED, step_report};
use crate::engine::probe::Context;
use crate::expect::{Check, clip};
use crate::outcome::{StepKind, StepReport};
use crate::spec::model::LogsSpec;
use crate::vars::Vars;

/// How long to wait for output by default.
const DEFAULT_WITHIN: Duration = Duration::from_secs(2);

pub(super) async fn run(number: usize, spec: &LogsSpec, vars: &mut Vars, ctx: &Context<'_>) -> (StepReport, Ending) {
    let mut report = step_report(
        number,
        "the service's output since the probe began".into(),
        StepKind::Logs,
    );
    let contains: Vec<String> = spec.contains.iter().map(|t| vars.render(t)).collect();
    let excludes: Vec<String> = spec.excludes.iter().map(|t| vars.render(t)).collect();
    let deadline = Instant::now() + spec.within.map_or(DEFAULT_WITHIN, |d| d.0);
    // Text that must appear ends the wait as soon as it has; text that must not appear, and an exact number of
    // lines, are looked for until the end of the wait (a late flush must not hide a line too many).
    let checks = loop {
        let output = ctx
            .service(spec.replica)
            .lock()
            .await
            .output_since(ctx.output_mark(spec.replica));
        let Some(output) = output else {
            report.error = Some(
                "proctor does not see the output of a service it did not start: grade this challenge with --cmd, \
                 --path or --image"
                    .into(),
            );
            return (report, ERRORED);
        };
        // The line proctor writes where the service was restarted is not the service's output.
        let output: String = output
            .lines()
            .filter(|line| *line != crate::target::RESTART_MARKER)
            .map(|line| format!("{line}\n"))
            .collect();
        let checks = checks(spec, &contains, &excludes, &output);
        let settled =
            !contains.is_empty() && excludes.is_empty() && spec.lines.is_none() && checks.iter().all(|c| c.passed);
        if settled || Instant::now() >= deadline {
            break checks;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    report.checks = checks;
    report.passed = report.checks.iter().all(|c| c.passed);
    let ending = if report.passed { Ending::Passed } else { FAILED };
    (report, ending)
}

fn checks(spec: &LogsSpec, contains: &[String], excludes: &[String], output: &str) -> Vec<Check> {
    let shown = || {
        if output.trim().is_empty() {
            "no output".to_string()
        } else {
            clip(output.trim(), 300)
        }
    };
    let mut checks = Vec::new();
    for text in contains {
        checks.push(Check {
            what: "output contains".into(),
            expected: format!("`{}`", clip(text, 80)),
            actual: shown(),
            passed: output.contains(text.as_str()),
        });
    }
    for text in excludes {
        let line = output.lines().position(|l| l.contains(text.as_str()));
        checks.push(Check {
            what: "output never contains".into(),
            expected: format!("no `{}`", clip(text, 80)),
            actual: match line {
                Some(n) => format!("found on line {} of the output", n + 1),
                None => "not found".to_string(),
            },
            passed: line.is_none(),
        });
    }
    if let Some(expected) = spec.lines {
        let count = output.lines().filter(|l| !l.trim().is_empty()).count();
        checks.push(Check {
            what: "output lines".into(),
            expected: expected.to_string(),
            actual: format!("{count}: {}", shown()),
            passed: count == expected as usize,
        });
    }
    if let Some(fields) = &spec.json_lines {
        let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
        let bad =
            lines
                .iter()
                .enumerate()
                .find_map(|(n, line)| match serde_json::from_str::<serde_json::Value>(line) {
                    Ok(serde_json::Value::Object(object)) => fields
                        .iter()
                        .find(|f| !object.contains_key(f.as_str()))
                        .map(|f| format!("line {} has no `{f}`: {}", n + 1, clip(line, 200))),
                    _ => Some(format!("line {} is not a JSON object: {}", n + 1, clip(line, 200))),
                });
        checks.push(Check {
            what: "output lines are JSON".into(),
            expected: format!("every line a JSON object with {}", fields.join(", ")),
            actual: match (&bad, lines.len()) {
                (Some(bad), _) => bad.clone(),
                (None, 0) => "no lines".to_string(),
                (None, n) => format!("all {n} lines"),
            },
            passed: bad.is_none() && !lines.is_empty(),
        });
    }
    checks
}
