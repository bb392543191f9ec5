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
    let suffix = if times > 1 {
        format!(" (× {times})")
    } else {
        String::new()
    };
    let kind = match send.repeat {
        Some(times) => StepKind::Repeat { times },
        None => StepKind::Request,
    };
    let mut report = step_report(number, label(name, &request.method, &request.path, &suffix), kind);
    for i in 0..times {
        vars.index = send.repeat.map(|_| i);
        let prepared = prepare(request, vars, &ctx.base());
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
    report.passed = true;
    (report, Ending::Passed)
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
        None => prepared.body.clone().unwrap_or_default(),
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
