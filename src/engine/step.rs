//! Running one compiled step: the shared vocabulary (how a step ends, its label, its report), and the dispatch to
//! the runner of its kind, one file each.

mod burst;
mod calls;
mod handshake;
mod image;
mod logs;
mod poll;
mod restart;
mod send;
mod serve;
mod start;
mod stop;
mod wait;
mod walk;

use crate::expect::{Response, clip};
use crate::outcome::{Blame, CaptureFrom, CaptureRecord, ResponseRecord, StepKind, StepReport};
use crate::spec::plan::{Action, Step};
use crate::vars::Vars;

use super::probe::Context;

/// How a step ended: passed, or not and whose fault that is (the verdict follows from the blame, in one place).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    Passed,
    NotPassed(Blame),
    /// The step checks what this target does not have: the probe is not applicable.
    NotApplicable,
}

/// The service did not behave: the step failed.
const FAILED: Ending = Ending::NotPassed(Blame::Service);
/// proctor could not run the step: it errored.
const ERRORED: Ending = Ending::NotPassed(Blame::Proctor);

/// Runs one step.
pub(super) async fn run(number: usize, step: &Step, vars: &mut Vars, ctx: &Context<'_>) -> (StepReport, Ending) {
    match &step.action {
        Action::Send(send) => send::run(number, step.name.as_deref(), send, vars, ctx).await,
        Action::Burst(burst) => burst::run(number, step.name.as_deref(), burst, vars, ctx).await,
        Action::Walk(walk) => walk::run(number, step.name.as_deref(), walk, vars, ctx).await,
        Action::Poll(poll) => poll::run(number, step.name.as_deref(), poll, vars, ctx).await,
        Action::Wait(wait) => wait::run(number, wait, vars).await,
        Action::Restart(restart) => restart::run(number, restart, vars, ctx).await,
        Action::Stop(stop) => stop::run(number, stop, vars, ctx).await,
        Action::Start(start) => start::run(number, start, vars, ctx).await,
        Action::Logs(logs) => logs::run(number, logs, vars, ctx).await,
        Action::Image(image) => image::run(number, image, ctx).await,
        Action::Serve(serve) => serve::run(number, serve, vars, ctx).await,
        Action::Calls(calls) => calls::run(number, calls, vars, ctx).await,
        Action::Handshake(handshake) => handshake::run(number, handshake, ctx).await,
    }
}

/// A request step's label: its name if it has one, then the method and the target (rendered once the request is
/// prepared, the template before), then what kind of step it is.
fn label(name: Option<&str>, method: &str, target: &str, suffix: &str) -> String {
    match name {
        Some(name) => format!("{name}: {method} {target}{suffix}"),
        None => format!("{method} {target}{suffix}"),
    }
}

fn step_report(number: usize, label: String, kind: StepKind) -> StepReport {
    StepReport {
        number,
        label,
        kind,
        captures: Vec::new(),
        request: None,
        response: None,
        checks: Vec::new(),
        error: None,
        passed: false,
        duration_ms: 0,
    }
}

fn record(response: &Response) -> ResponseRecord {
    ResponseRecord {
        status: response.status,
        headers: response.headers.clone(),
        body: clip(&response.text(), 2000),
        elapsed_ms: response.elapsed.as_millis() as u64,
    }
}

/// Takes every capture from a response into the variables (recorded in the report), in order; the error names
/// the first that could not be taken.
fn capture_all(
    captures: &[crate::spec::plan::Capture],
    response: &Response,
    vars: &mut Vars,
    report: &mut StepReport,
) -> Result<(), String> {
    for capture in captures {
        let (name, spec) = (&capture.name, &capture.spec);
        let value = crate::expect::capture(capture, response, &mut |n| vars.lookup(n))
            .map_err(|e| format!("could not capture `{name}`: {e}"))?;
        let from = match (&spec.json, &spec.header, &spec.regex, &spec.cookie) {
            (_, _, _, Some(cookie)) => CaptureFrom::Cookie { name: cookie.clone() },
            (Some(path), _, None, _) => CaptureFrom::Json { path: path.clone() },
            (None, Some(header), None, _) => CaptureFrom::Header { name: header.clone() },
            _ => CaptureFrom::Regex,
        };
        report.captures.push(CaptureRecord {
            name: name.clone(),
            from,
            value: value.clone(),
        });
        vars.set(name, value);
    }
    Ok(())
}
