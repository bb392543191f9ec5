//! A poll step: the same request until a response meets `until` or the deadline passes; every response must
//! meet `expect`, a value declared forward-only must never go back, and the last response's captures set
//! variables.

use std::time::Duration;

use tokio::time::Instant;

use super::{Ending, FAILED, label, record, step_report};
use crate::engine::probe::Context;
use crate::expect::{self, Check, clip};
use crate::http::prepare;
use crate::outcome::{StepKind, StepReport};
use crate::spec::plan::Poll;
use crate::vars::Vars;

/// The pause between requests by default.
const DEFAULT_EVERY: Duration = Duration::from_millis(100);
/// How long to poll by default.
const DEFAULT_WITHIN: Duration = Duration::from_secs(10);

pub(super) async fn run(
    number: usize,
    name: Option<&str>,
    poll: &Poll,
    vars: &mut Vars,
    ctx: &Context<'_>,
) -> (StepReport, Ending) {
    let request = &poll.request;
    let mut report = step_report(
        number,
        label(name, &request.method, &request.path, " (polled)"),
        StepKind::Poll { requests: 0 },
    );
    let every = poll.spec.every.map_or(DEFAULT_EVERY, |d| d.0);
    let within = poll.spec.within.map_or(DEFAULT_WITHIN, |d| d.0);
    let deadline = Instant::now() + within;
    // The forward-only value: its position in `order` so far, and the values seen, for the report.
    let mut position: Option<usize> = None;
    let mut seen: Vec<String> = Vec::new();
    let mut requests = 0u32;
    loop {
        let prepared = match prepare(request, vars, &ctx.base_for(request, None)) {
            Ok(p) => p,
            Err(e) => {
                report.error = Some(e);
                return (report, FAILED);
            }
        };
        if requests == 0 {
            report.label = label(name, &request.method, &prepared.target(), " (polled)");
        }
        report.request = Some(prepared.record());
        requests += 1;
        report.kind = StepKind::Poll { requests };
        let response = match ctx.http.send(&prepared).await {
            Ok(r) => r,
            Err(no) => {
                report.error = Some(format!("request {requests}: {}", no.message));
                return (report, Ending::NotPassed(no.blame));
            }
        };
        vars.absorb_cookies(&response);
        report.response = Some(record(&response));
        let mut checks = expect::evaluate(&poll.expect, &response, &mut |n| vars.lookup(n));
        if let (Some(forward), Some(path)) = (&poll.spec.forward, &poll.forward) {
            let check = forward_check(forward, path, &response, vars, &mut position, &mut seen);
            checks.push(check);
        }
        if checks.iter().any(|c| !c.passed) {
            report.checks = checks;
            report.error = Some(format!("response {requests} did not meet the expectations"));
            return (report, FAILED);
        }
        let until = expect::evaluate(&poll.until, &response, &mut |n| vars.lookup(n));
        if until.iter().all(|c| c.passed) {
            report.checks = checks;
            report.checks.extend(until.into_iter().map(|mut c| {
                c.what = format!("until: {}", c.what);
                c
            }));
            if let Err(e) = super::capture_all(&poll.captures, &response, vars, &mut report) {
                report.error = Some(e);
                return (report, FAILED);
            }
            report.passed = true;
            return (report, Ending::Passed);
        }
        if Instant::now() + every > deadline {
            report.checks = checks;
            report.checks.extend(until.into_iter().map(|mut c| {
                c.what = format!("until (after {requests} requests in {} ms)", within.as_millis());
                c
            }));
            report.error = Some(format!(
                "the condition did not hold within {} ms ({requests} requests)",
                within.as_millis()
            ));
            return (report, FAILED);
        }
        tokio::time::sleep(every).await;
    }
}

/// Checks that the forward-only value is one of `order` and not before the last one seen.
fn forward_check(
    forward: &crate::spec::model::ForwardSpec,
    path: &crate::spec::plan::PathExpr,
    response: &crate::expect::Response,
    vars: &mut Vars,
    position: &mut Option<usize>,
    seen: &mut Vec<String>,
) -> Check {
    let order: Vec<String> = forward.order.iter().map(|v| v.to_string()).collect();
    let what = format!("{} only moves forward", forward.path);
    let expected = format!("in the order {}", order.join(" → "));
    let value = serde_json::from_slice::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|body| {
            let (path, _) = path.resolve(&mut |n| vars.lookup(n)).ok()?;
            path.query(&body).exactly_one().ok().cloned()
        });
    let Some(value) = value else {
        return Check::new(what, expected, format!("no single value at {}", forward.path), false);
    };
    let text = value.to_string();
    seen.push(clip(&text, 40));
    let shown = match seen.len() {
        n if n > 12 => format!("… {}", seen[n - 12..].join(" → ")),
        _ => seen.join(" → "),
    };
    match forward.order.iter().position(|v| *v == value) {
        None => Check::new(
            what,
            expected,
            format!("{shown} ({} is not in the order)", clip(&text, 40)),
            false,
        ),
        Some(index) if position.is_some_and(|p| index < p) => {
            Check::new(what, expected, format!("{shown} (went back)"), false)
        }
        Some(index) => {
            *position = Some(index);
            Check::new(what, expected, shown, true)
        }
    }
}
