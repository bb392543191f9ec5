//! A burst step: every request prepared first (bounded in memory), sent over connections released together,
//! each response checked, the status counts compared.

use super::{ERRORED, Ending, FAILED, label, record, step_report};
use crate::engine::probe::Context;
use crate::expect::{self, Check, Response};
use crate::http::{burst as transport, prepare};
use crate::outcome::{StepKind, StepReport};
use crate::spec::plan::Burst;
use crate::vars::Vars;

/// The most request body bytes one burst may hold at once.
const MAX_BURST_BODY_BYTES: usize = 64 << 20;

pub(super) async fn run(
    number: usize,
    name: Option<&str>,
    burst: &Burst,
    vars: &mut Vars,
    ctx: &Context<'_>,
) -> (StepReport, Ending) {
    let (request, count, concurrency) = (&burst.request, burst.count as usize, burst.concurrency as usize);
    let mut report = step_report(
        number,
        label(name, &request.method, &request.path, ""),
        StepKind::Burst {
            count: burst.count,
            concurrency: burst.concurrency,
        },
    );
    let mut prepared = Vec::with_capacity(count);
    let mut body_bytes = 0usize;
    // A burst goes to one replica: its connections are opened to one address.
    let base = ctx.base_for(request, None);
    for i in 0..count {
        vars.index = Some(i);
        let one = prepare(request, vars, &base);
        vars.index = None;
        match one {
            Ok(p) => {
                let size = p.body.as_ref().map_or(0, bytes::Bytes::len);
                body_bytes += size;
                // Requests of a burst are alike: judge by the first before building the others.
                let expected = if i == 0 { size.saturating_mul(count) } else { body_bytes };
                if expected > MAX_BURST_BODY_BYTES {
                    report.error = Some(format!(
                        "the burst's request bodies add up to more than {} MiB; send fewer or smaller ones",
                        MAX_BURST_BODY_BYTES >> 20
                    ));
                    return (report, ERRORED);
                }
                prepared.push(p);
            }
            Err(e) => {
                report.error = Some(e);
                return (report, FAILED);
            }
        }
    }
    if let Some(first) = prepared.first() {
        report.label = label(
            name,
            &request.method,
            &first.target(),
            &format!(" (burst of {count} × {concurrency} at once)"),
        );
        report.request = Some(first.record());
    }
    let answers = match transport::run(prepared, concurrency, ctx.timeout, ctx.http).await {
        Ok(answers) => answers,
        Err(no) => {
            report.error = Some(no.message);
            return (report, Ending::NotPassed(no.blame));
        }
    };
    let expect = &burst.expect;
    let mut per_response: Vec<Vec<Check>> = Vec::new();
    let mut statuses = Vec::with_capacity(answers.len());
    let mut errors = Vec::new();
    for answer in &answers {
        match answer {
            Ok(response) => {
                statuses.push(response.status);
                per_response.push(expect::evaluate(expect, response, &mut |n| vars.lookup(n)));
            }
            Err(e) => {
                statuses.push(0);
                errors.push(e.clone());
            }
        }
    }
    if let Some(statuses_expected) = &expect.spec.statuses {
        report.checks.push(expect::status_counts(statuses_expected, &statuses));
    }
    report.checks.extend(expect::aggregate(&per_response));
    // Show a response that failed a check, or else the first one.
    let responses: Vec<&Response> = answers.iter().filter_map(|a| a.as_ref().ok()).collect();
    let shown = responses
        .iter()
        .zip(&per_response)
        .find(|(_, checks)| checks.iter().any(|c| !c.passed))
        .map(|(r, _)| *r)
        .or_else(|| responses.first().copied());
    if let Some(response) = shown {
        report.response = Some(record(response));
    }
    if !errors.is_empty() {
        report.error = Some(format!(
            "{} of {count} requests got no response: {}",
            errors.len(),
            errors[0]
        ));
        return (report, FAILED);
    }
    report.passed = report.checks.iter().all(|c| c.passed);
    let ending = if report.passed { Ending::Passed } else { FAILED };
    (report, ending)
}
