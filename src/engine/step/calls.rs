//! A calls step: what a runner-hosted server received since the probe began (or since the previous calls step
//! on it), waited for until the count is reached or time is up, then watched for `quiet` more, and checked:
//! how many, each one's headers, query, body and signature, values that must stay the same, gaps between them.

use std::time::Duration;

use tokio::time::Instant;

use super::{ERRORED, Ending, FAILED, step_report};
use crate::engine::probe::Context;
use crate::expect::{self, Check, Response, clip};
use crate::outcome::{StepKind, StepReport};
use crate::servers::{Call, call_path_matches};
use crate::spec::plan::Calls;
use crate::vars::Vars;

/// How long to wait for the calls by default.
const DEFAULT_WITHIN: Duration = Duration::from_secs(2);
/// How many calls a report lists.
const LISTED: usize = 12;

pub(super) async fn run(number: usize, calls: &Calls, vars: &mut Vars, ctx: &Context<'_>) -> (StepReport, Ending) {
    let spec = &calls.spec;
    let path = spec.path.as_deref().map(|p| vars.render(p));
    let mut label = format!("calls to server {}", spec.server);
    let filters: Vec<String> = [
        spec.route.as_ref().map(|r| format!("route {r}")),
        match (&spec.method, &path) {
            (Some(m), Some(p)) => Some(format!("{m} {p}")),
            (Some(m), None) => Some(m.clone()),
            (None, Some(p)) => Some(p.clone()),
            (None, None) => None,
        },
    ]
    .into_iter()
    .flatten()
    .collect();
    if !filters.is_empty() {
        label = format!("{label} ({})", filters.join(", "));
    }
    let mut report = step_report(number, label, StepKind::Calls);
    let Some(server) = ctx.servers.get(&spec.server) else {
        report.error = Some(format!("server `{}` is not running", spec.server));
        return (report, ERRORED);
    };
    let selected = |call: &Call| {
        spec.route.as_ref().is_none_or(|r| call.route.as_ref() == Some(r))
            && spec.method.as_ref().is_none_or(|m| *m == call.method)
            && path.as_ref().is_none_or(|p| call_path_matches(p, &call.path))
    };
    // A step with filters has a mark of its own: one checking a route does not hide calls from one checking
    // another (see `Server::take`).
    let filtered = spec.route.is_some() || spec.method.is_some() || path.is_some();
    let filter = filtered.then(|| format!("{:?}|{:?}|{:?}", spec.route, spec.method, path));
    let filter = filter.as_deref();
    let least = spec.count.map_or(0, |c| c.least()) as usize;
    let deadline = Instant::now() + spec.within.map_or(DEFAULT_WITHIN, |d| d.0);
    while server.peek(filter).iter().filter(|c| selected(c)).count() < least && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(quiet) = spec.quiet {
        tokio::time::sleep(quiet.0).await;
    }
    let (all, overflow) = server.take(filter);
    let seen: Vec<&Call> = all.iter().filter(|c| selected(c)).collect();
    let mut checks = Vec::new();
    if overflow > 0 {
        checks.push(Check::new(
            "calls kept",
            format!("at most {}", crate::servers::MAX_CALLS),
            format!("{overflow} more were refused"),
            false,
        ));
    }
    let first = seen.first().map(|c| c.at);
    let listing = || {
        let mut lines: Vec<String> = seen
            .iter()
            .take(LISTED)
            .map(|c| {
                let query = if c.query.is_empty() {
                    String::new()
                } else {
                    format!("?{}", c.query)
                };
                let after = first.map_or(0, |f| c.at.duration_since(f).as_millis());
                clip(
                    &format!("+{after} ms {} {}{query} → {}", c.method, c.path, c.answer),
                    200,
                )
            })
            .collect();
        if seen.len() > LISTED {
            lines.push(format!("… and {} more", seen.len() - LISTED));
        }
        match lines.is_empty() {
            true => "none".to_string(),
            false => format!("{}: {}", seen.len(), lines.join("; ")),
        }
    };
    if let Some(count) = spec.count {
        checks.push(Check::new(
            "calls",
            count.to_string(),
            listing(),
            count.matches(seen.len() as u32),
        ));
    } else {
        checks.push(Check::new("calls", "any number", listing(), true));
    }
    if !seen.is_empty() {
        checks.extend(each(calls, &seen, vars));
    }
    for name in &spec.same {
        let values: Vec<Option<String>> = seen.iter().map(|c| c.request.header(name)).collect();
        let passed = values.iter().all(|v| v.is_some() && *v == values[0]);
        let shown: Vec<String> = values
            .iter()
            .map(|v| v.as_deref().map_or("absent".into(), |v| clip(v, 80)))
            .collect();
        checks.push(Check::new(
            format!("header {name} the same on every call"),
            "one value, present on every call",
            shown.join(", "),
            passed,
        ));
    }
    if !spec.gaps.is_empty() && seen.len() > 1 {
        let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].at.duration_since(w[0].at)).collect();
        let least: Vec<Duration> = (0..gaps.len())
            .map(|i| spec.gaps[i.min(spec.gaps.len() - 1)].0)
            .collect();
        let passed = gaps.iter().zip(&least).all(|(gap, least)| gap >= least);
        let ms = |d: &[Duration]| {
            d.iter()
                .map(|d| format!("{} ms", d.as_millis()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        checks.push(Check::new(
            "gaps between calls",
            format!("at least {}", ms(&least)),
            ms(&gaps),
            passed,
        ));
    }
    report.checks = checks;
    report.passed = report.checks.iter().all(|c| c.passed);
    let ending = if report.passed { Ending::Passed } else { FAILED };
    (report, ending)
}

/// The `each` checks of every call, one line per check for all calls together.
fn each(calls: &Calls, seen: &[&Call], vars: &mut Vars) -> Vec<Check> {
    let Some(spec) = &calls.spec.each else {
        return Vec::new();
    };
    let per_call: Vec<Vec<Check>> = seen
        .iter()
        .map(|call| {
            let mut checks = expect::evaluate(&calls.each, &call.request, &mut |n| vars.lookup(n));
            let query = Response {
                headers: url::form_urlencoded::parse(call.query.as_bytes())
                    .map(|(n, v)| (n.into_owned(), v.into_owned()))
                    .collect(),
                ..Default::default()
            };
            for (name, check) in &spec.query {
                for mut check in expect::header(name, check, &query, &mut |n| vars.lookup(n)) {
                    check.what = check.what.replacen("header ", "query ", 1);
                    checks.push(check);
                }
            }
            // The call's arrival in Unix seconds, to compare its webhook-timestamp with.
            let now = crate::types::unix_seconds(std::time::SystemTime::now() - call.at.elapsed());
            if let Some(within) = spec.timestamp_within {
                let stamp = call.request.header("webhook-timestamp");
                let off = stamp
                    .as_deref()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .map(|s| s.abs_diff(now));
                checks.push(Check::new(
                    "webhook-timestamp",
                    format!("Unix seconds within {} s of the call's arrival", within.0.as_secs()),
                    match (&stamp, off) {
                        (None, _) => "absent".to_string(),
                        (Some(stamp), None) => format!("{} (not Unix seconds)", clip(stamp, 40)),
                        (Some(_), Some(off)) => format!("{off} s from it"),
                    },
                    off.is_some_and(|off| off <= within.0.as_secs()),
                ));
            }
            if let Some(signature) = &spec.signature {
                let secret = vars.render(&signature.secret);
                let tolerance = signature.tolerance.map_or(5, |d| d.0.as_secs());
                let verdict =
                    crate::webhook::verify(&secret, &|n| call.request.header(n), &call.request.body, now, tolerance);
                checks.push(Check::new(
                    "Standard Webhooks signature",
                    "valid, with a fresh timestamp",
                    verdict.as_ref().map_or_else(|e| e.clone(), |()| "valid".to_string()),
                    verdict.is_ok(),
                ));
            }
            checks
        })
        .collect();
    expect::aggregate_over(&per_call, "calls")
}
