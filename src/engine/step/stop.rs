//! A stop step: requests in flight, then SIGTERM; each in-flight request must be answered, and the service must
//! exit with an accepted code within the grace period. The service is started again before the next probe.

use std::time::Duration;

use super::{ERRORED, Ending, FAILED, record, step_report};
use crate::engine::probe::Context;
use crate::expect::{self, Check};
use crate::http::prepare;
use crate::outcome::{StepKind, StepReport};
use crate::spec::plan::Stop;
use crate::vars::Vars;

/// How long the service may take to exit by default.
const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// How long after the in-flight requests the signal goes by default.
const DEFAULT_SIGNAL_AFTER: Duration = Duration::from_millis(200);

pub(super) async fn run(number: usize, stop: &Stop, vars: &mut Vars, ctx: &Context<'_>) -> (StepReport, Ending) {
    let spec = &stop.spec;
    let grace = spec.grace.map_or(DEFAULT_GRACE, |d| d.0);
    let mut prepared = Vec::new();
    let mut label = format!("stop the service{} (SIGTERM)", super::restart::of_replica(spec.replica));
    let mut signal_after = Duration::ZERO;
    if let Some(in_flight) = &spec.in_flight {
        let count = in_flight.count.unwrap_or(1) as usize;
        signal_after = in_flight.signal_after.map_or(DEFAULT_SIGNAL_AFTER, |d| d.0);
        for i in 0..count {
            vars.index = Some(i);
            let one = prepare(
                &in_flight.request,
                vars,
                &ctx.base_for(&in_flight.request, spec.replica),
            );
            vars.index = None;
            match one {
                Ok(p) => prepared.push(p),
                Err(e) => {
                    let mut report = step_report(number, label, StepKind::Stop);
                    report.error = Some(e);
                    return (report, FAILED);
                }
            }
        }
        if let Some(first) = prepared.first() {
            label = format!(
                "stop the service{} (SIGTERM) while {count} × {} {} {} in flight",
                super::restart::of_replica(spec.replica),
                first.method,
                first.target(),
                if count == 1 { "is" } else { "are" }
            );
        }
    }
    let mut report = step_report(number, label, StepKind::Stop);
    report.request = prepared.first().map(|p| p.record());
    let during = match &spec.during {
        Some(during) => match prepare(&during.request, vars, &ctx.base_for(&during.request, spec.replica)) {
            Ok(p) => Some((p, during.after.map_or(Duration::from_millis(300), |d| d.0), during)),
            Err(e) => {
                report.error = Some(e);
                return (report, FAILED);
            }
        },
        None => None,
    };
    let sends = futures::future::join_all(prepared.iter().map(|p| ctx.http.send(p)));
    let signalled = tokio::sync::Notify::new();
    let signal = async {
        tokio::time::sleep(signal_after).await;
        let mut service = ctx.service(spec.replica).lock().await;
        signalled.notify_one();
        service.terminate(grace).await
    };
    // The new request goes `after` the signal (the terminate call holds the service until the end).
    let late = async {
        let (prepared, after, _) = during.as_ref()?;
        signalled.notified().await;
        tokio::time::sleep(*after).await;
        Some(ctx.http.send(prepared).await)
    };
    let (answers, terminated, late) = tokio::join!(sends, signal, late);
    let terminated = match terminated {
        Ok(terminated) => terminated,
        Err(error) => {
            report.error = Some(error.to_string());
            return (report, ERRORED);
        }
    };
    let mut per_response: Vec<Vec<Check>> = Vec::new();
    let mut lost = Vec::new();
    for (i, answer) in answers.iter().enumerate() {
        match answer {
            Ok(response) => {
                report.response.get_or_insert_with(|| record(response));
                per_response.push(expect::evaluate(&stop.in_flight_expect, response, &mut |n| {
                    vars.lookup(n)
                }));
            }
            Err(no) => lost.push(format!("request {}: {}", i + 1, no.message)),
        }
    }
    let must_finish = spec.in_flight.as_ref().and_then(|f| f.must_finish).unwrap_or(true);
    if !answers.is_empty() && must_finish {
        report.checks.push(Check {
            what: "in-flight requests answered".into(),
            expected: format!("all {}", answers.len()),
            actual: if lost.is_empty() {
                format!("all {}", answers.len())
            } else {
                format!("{} of {} dropped ({})", lost.len(), answers.len(), lost.join("; "))
            },
            passed: lost.is_empty(),
        });
        report.checks.extend(expect::aggregate(&per_response));
    }
    if let (Some((prepared, after, spec)), Some(answer)) = (&during, late) {
        let statuses = spec.statuses.clone().unwrap_or_else(|| vec![503]);
        let shown: Vec<String> = statuses.iter().map(u16::to_string).collect();
        let (actual, passed) = match &answer {
            Ok(response) => (
                expect::status_text(response.status),
                statuses.contains(&response.status),
            ),
            Err(no) => (format!("no answer ({})", no.message), true),
        };
        report.checks.push(Check {
            what: format!(
                "{} {} sent {} ms after SIGTERM",
                prepared.method,
                prepared.target(),
                after.as_millis()
            ),
            expected: format!("refused, or {}", shown.join(" or ")),
            actual,
            passed,
        });
    }
    if let Some(allowed) = &spec.exit {
        let allowed_text: Vec<String> = allowed.iter().map(i32::to_string).collect();
        report.checks.push(Check {
            what: "exit status".into(),
            expected: allowed_text.join(" or "),
            actual: match terminated.exit_code {
                Some(137) => format!("137 (killed: it had not exited {} ms after SIGTERM)", grace.as_millis()),
                Some(code) => code.to_string(),
                None => "unknown".to_string(),
            },
            passed: terminated.exit_code.is_some_and(|c| allowed.contains(&c)),
        });
    }
    if let Some(within) = spec.within {
        report.checks.push(Check {
            what: "time to exit after SIGTERM".into(),
            expected: format!("at most {} ms", within.0.as_millis()),
            actual: format!("{} ms", terminated.after.as_millis()),
            passed: terminated.after <= within.0,
        });
    }
    report.passed = report.checks.iter().all(|c| c.passed);
    let ending = if report.passed { Ending::Passed } else { FAILED };
    (report, ending)
}
