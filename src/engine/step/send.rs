//! A request step: one request, or the same request repeated in sequence; each response is checked, the last
//! one's captures set variables.

use super::{Ending, FAILED, label, record, step_report};
use crate::engine::probe::Context;
use crate::expect;
use crate::http::prepare;
use crate::outcome::{StepKind, StepReport};
use crate::spec::plan::Send;
use crate::vars::Vars;

pub(super) async fn run(
    number: usize,
    name: Option<&str>,
    send: &Send,
    vars: &mut Vars,
    ctx: &Context<'_>,
) -> (StepReport, Ending) {
    let request = &send.request;
    let times = send.repeat.unwrap_or(1) as usize;
    let mut suffix = if times > 1 {
        format!(" (× {times})")
    } else {
        String::new()
    };
    suffix.push_str(&super::restart::of_replica(request.replica));
    let kind = match send.repeat {
        Some(times) => StepKind::Repeat { times },
        None => StepKind::Request,
    };
    let mut report = step_report(number, label(name, &request.method, &request.path, &suffix), kind);
    let mut elapsed = Vec::with_capacity(if send.timing.is_some() { times } else { 0 });
    for i in 0..times {
        vars.index = send.repeat.map(|_| i);
        let prepared = prepare(request, vars, &ctx.base_for(request, None));
        vars.index = None;
        let prepared = match prepared {
            Ok(mut p) => {
                if let Some(spec) = &send.sign {
                    sign(&mut p, spec, vars);
                }
                p
            }
            Err(e) => {
                report.error = Some(e);
                return (report, FAILED);
            }
        };
        if i == 0 {
            report.label = label(name, &request.method, &prepared.target(), &suffix);
        }
        report.request = Some(prepared.record());
        let response = match ctx.http.send(&prepared).await {
            Ok(r) => r,
            Err(no) => {
                report.error = Some(if times > 1 {
                    format!("request {} of {times}: {}", i + 1, no.message)
                } else {
                    no.message
                });
                return (report, Ending::NotPassed(no.blame));
            }
        };
        if send.timing.is_some() {
            elapsed.push(response.elapsed);
        }
        vars.absorb_cookies(&response);
        report.response = Some(record(&response));
        report.checks = expect::evaluate(&send.expect, &response, &mut |n| vars.lookup(n));
        if report.checks.iter().any(|c| !c.passed) {
            if times > 1 {
                report.error = Some(format!("request {} of {times} did not meet the expectations", i + 1));
            }
            return (report, FAILED);
        }
        if i + 1 == times
            && let Err(e) = super::capture_all(&send.captures, &response, vars, &mut report)
        {
            report.error = Some(e);
            return (report, FAILED);
        }
    }
    if let Some(timing) = &send.timing
        && !timed(timing, &elapsed, vars, &mut report)
    {
        return (report, FAILED);
    }
    report.passed = true;
    (report, Ending::Passed)
}

/// Records the fastest response time of the repeats, and checks it against a recorded one; false when the check
/// fails. The fastest, not the median: load from elsewhere on the machine (a CI runner's other jobs) only adds time,
/// so the fastest of many repeats is what the service's own work costs, while a scan of a grown table slows every
/// one of them.
fn timed(
    timing: &crate::spec::model::TimingSpec,
    elapsed: &[std::time::Duration],
    vars: &mut Vars,
    report: &mut StepReport,
) -> bool {
    let fastest_ms = elapsed.iter().min().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let seen = format!("{fastest_ms:.1} ms (the fastest of {})", elapsed.len());
    if let Some(bound) = &timing.at_most {
        let recorded: f64 = vars.lookup(&bound.of).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let plus_ms = bound.plus.map_or(0.0, |d| d.0.as_secs_f64() * 1000.0);
        let limit = bound.factor * recorded + plus_ms;
        let passed = fastest_ms <= limit;
        report.checks.push(crate::expect::Check::new(
            "fastest response time",
            format!(
                "at most {limit:.1} ms ({} × {recorded:.1} ms, the fastest of `{}`, + {plus_ms:.0} ms)",
                bound.factor, bound.of
            ),
            seen.clone(),
            passed,
        ));
        if !passed {
            return false;
        }
    }
    if let Some(name) = &timing.record {
        vars.set(name, format!("{fastest_ms:.3}"));
        report.checks.push(crate::expect::Check::new(
            "fastest response time",
            format!("recorded as `{name}`"),
            seen,
            true,
        ));
    }
    true
}

/// Adds Standard Webhooks headers: the id (fresh unless given), the timestamp (now, or dated as asked) and the
/// signatures (extra ones first) over the body sent, or over `signed_body` when the spec tampers.
fn sign(prepared: &mut crate::http::Prepared, spec: &crate::spec::model::SignSpec, vars: &mut Vars) {
    let secret = vars.render(&spec.secret);
    let id = match &spec.id {
        Some(id) => vars.render(id),
        None => format!("msg_{}", vars.lookup("random").unwrap_or_default()),
    };
    let now = crate::types::unix_seconds(std::time::SystemTime::now());
    let timestamp = (now - spec.age.map_or(0, |d| d.0.as_secs()) + spec.ahead.map_or(0, |d| d.0.as_secs())).to_string();
    let signed = match &spec.signed_body {
        Some(body) => vars.render(body).into_bytes(),
        None => prepared.body.as_ref().map(|b| b.to_vec()).unwrap_or_default(),
    };
    let mut signatures: Vec<String> = spec.extra.iter().map(|s| vars.render(s)).collect();
    signatures.push(crate::webhook::sign(&secret, &id, &timestamp, &signed));
    for (name, value) in [
        ("webhook-id", id),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", signatures.join(" ")),
    ] {
        if !spec.omit.iter().any(|o| o.eq_ignore_ascii_case(name)) {
            prepared.headers.push((name.to_string(), value));
        }
    }
}
