//! Running one probe: its steps in order, stopping at the first that fails.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::burst;
use super::vars::Vars;
use crate::expect::{self, Check, Response, clip};
use crate::http::{Http, NoResponse, Prepared, prepare};
use crate::outcome::{Blame, CaptureFrom, CaptureRecord, ProbeReport, ResponseRecord, StepKind, StepReport, Verdict};
use crate::spec::jwt::VarSpec;
use crate::spec::model::{ProbeSpec, RequestSpec, StepSpec, WaitSpec, WalkSpec, WalkTotals};
use crate::spec::template;
use crate::spec::types::parse_duration;

/// What a probe runs against.
pub struct Context<'a> {
    /// The HTTP client.
    pub http: &'a Http,
    /// The service's base URL (as it was when the probe started).
    pub base: &'a Url,
    /// The running service: logs, whether it exited, restart.
    pub service: &'a tokio::sync::Mutex<crate::target::Service>,
    /// The per-request timeout.
    pub timeout: Duration,
    /// Cancelled on Ctrl-C.
    pub cancel: &'a CancellationToken,
}

/// The most a walk may collect, in bytes of JSON, before it fails: bounds memory against endless fat pages.
const MAX_COLLECTED_BYTES: usize = 16 << 20;

/// The most request body bytes one burst may hold at once.
const MAX_BURST_BODY_BYTES: usize = 64 << 20;

/// How a step ended: passed, or not and whose fault that is (the verdict follows from the blame, in one place).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Passed,
    NotPassed(Blame),
}

/// The service did not behave: the step failed.
const FAILED: Ending = Ending::NotPassed(Blame::Service);
/// proctor could not run the step: it errored.
const ERRORED: Ending = Ending::NotPassed(Blame::Proctor);

/// A request step's label: its name if it has one, then the method and the target (rendered once the request is
/// prepared, the template before), then what kind of step it is.
fn label(step: &StepSpec, request: &RequestSpec, target: &str, suffix: &str) -> String {
    match &step.name {
        Some(name) => format!("{name}: {} {target}{suffix}", request.method),
        None => format!("{} {target}{suffix}", request.method),
    }
}

/// Runs a probe; never panics on anything the service sends.
pub async fn run(probe: &ProbeSpec, vars: &mut Vars, ctx: &Context<'_>) -> ProbeReport {
    let started = Instant::now();
    let mut steps = Vec::new();
    let mut verdict = Verdict::Passed;
    let mut message = None;
    let mut tokens: std::collections::HashMap<&str, crate::spec::jwt::JwtSpec> = std::collections::HashMap::new();
    for (name, value) in &probe.vars {
        let filled = match value {
            VarSpec::Text(text) => template::render(text, |n| vars.lookup(n)).unwrap_or_default(),
            VarSpec::Jwt(jwt) => {
                // Validation made sure a base names an earlier token.
                let spec = jwt.resolve(&tokens).unwrap_or_else(|| (**jwt).clone());
                let token = crate::spec::jwt::mint(&spec, &mut |n| vars.lookup(n)).unwrap_or_default();
                tokens.insert(name, spec);
                token
            }
        };
        vars.set(name, filled);
    }
    for (i, step) in probe.steps.iter().enumerate() {
        let step_started = Instant::now();
        let outcome = tokio::select! {
            () = ctx.cancel.cancelled() => None,
            outcome = run_step(i + 1, step, vars, ctx) => Some(outcome),
        };
        let Some((mut report, ending)) = outcome else {
            verdict = Verdict::Skipped;
            message = Some("interrupted".to_string());
            break;
        };
        report.duration_ms = step_started.elapsed().as_millis() as u64;
        let summary = summarize(&report);
        steps.push(report);
        if let Ending::NotPassed(blame) = ending {
            verdict = blame.verdict();
            message = Some(summary);
            break;
        }
    }
    ProbeReport::new(probe, verdict, message, started.elapsed().as_millis() as u64, steps)
}

/// One line for a failed step: its first failed check or its error.
fn summarize(step: &StepReport) -> String {
    if let Some(error) = &step.error {
        return format!("step {} ({}): {error}", step.number, step.label);
    }
    match step.checks.iter().find(|c| !c.passed) {
        Some(c) => format!(
            "step {} ({}): {}: expected {}, got {}",
            step.number, step.label, c.what, c.expected, c.actual
        ),
        None => format!("step {} ({})", step.number, step.label),
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

async fn run_step(number: usize, step: &StepSpec, vars: &mut Vars, ctx: &Context<'_>) -> (StepReport, Ending) {
    if let Some(wait) = &step.wait {
        return wait_step(number, wait, vars).await;
    }
    let Some(request) = &step.request else {
        let mut report = step_report(number, "empty step".into(), StepKind::Request);
        report.error = Some("the step has neither a request nor a wait".into());
        return (report, ERRORED);
    };
    if let Some(walk) = &step.walk {
        let report = step_report(number, label(step, request, &request.path, " (walk)"), StepKind::Walk);
        return walk_step(report, step, request, walk, vars, ctx).await;
    }
    if let Some(burst) = &step.burst {
        let report = step_report(
            number,
            label(step, request, &request.path, ""),
            StepKind::Burst {
                count: burst.count,
                concurrency: burst.concurrency,
            },
        );
        return burst_step(
            report,
            step,
            request,
            burst.count as usize,
            burst.concurrency as usize,
            vars,
            ctx,
        )
        .await;
    }
    let times = step.repeat.unwrap_or(1) as usize;
    let suffix = if times > 1 {
        format!(" (× {times})")
    } else {
        String::new()
    };
    let kind = match step.repeat {
        Some(times) => StepKind::Repeat { times },
        None => StepKind::Request,
    };
    let mut report = step_report(number, label(step, request, &request.path, &suffix), kind);
    for i in 0..times {
        vars.index = step.repeat.map(|_| i);
        let prepared = prepare(request, vars, ctx.base);
        vars.index = None;
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => {
                report.error = Some(e);
                return (report, FAILED);
            }
        };
        if i == 0 {
            report.label = label(step, request, &prepared.target(), &suffix);
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
        report.response = Some(record(&response));
        report.checks = match &step.expect {
            Some(expect) => expect::evaluate(expect, &response, &mut |n| vars.lookup(n)),
            None => expect::evaluate(&Default::default(), &response, &mut |n| vars.lookup(n)),
        };
        if report.checks.iter().any(|c| !c.passed) {
            if times > 1 {
                report.error = Some(format!("request {} of {times} did not meet the expectations", i + 1));
            }
            return (report, FAILED);
        }
        if i + 1 == times {
            for (name, spec) in &step.capture {
                match expect::capture(spec, &response, &mut |n| vars.lookup(n)) {
                    Ok(value) => {
                        let from = match (&spec.json, &spec.header, &spec.regex) {
                            (Some(path), _, None) => CaptureFrom::Json { path: path.clone() },
                            (None, Some(header), None) => CaptureFrom::Header { name: header.clone() },
                            _ => CaptureFrom::Regex,
                        };
                        report.captures.push(CaptureRecord {
                            name: name.clone(),
                            from,
                            value: value.clone(),
                        });
                        vars.set(name, value);
                    }
                    Err(e) => {
                        report.error = Some(format!("could not capture `{name}`: {e}"));
                        return (report, FAILED);
                    }
                }
            }
        }
    }
    report.passed = true;
    (report, Ending::Passed)
}

async fn burst_step(
    mut report: StepReport,
    step: &StepSpec,
    request: &RequestSpec,
    count: usize,
    concurrency: usize,
    vars: &mut Vars,
    ctx: &Context<'_>,
) -> (StepReport, Ending) {
    let mut prepared = Vec::with_capacity(count);
    let mut body_bytes = 0usize;
    for i in 0..count {
        vars.index = Some(i);
        let one = prepare(request, vars, ctx.base);
        vars.index = None;
        match one {
            Ok(p) => {
                let size = p.body.as_ref().map_or(0, Vec::len);
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
            step,
            request,
            &first.target(),
            &format!(" (burst of {count} × {concurrency} at once)"),
        );
        report.request = Some(first.record());
    }
    let answers = match burst::run(prepared, concurrency, ctx.timeout, ctx.http).await {
        Ok(answers) => answers,
        Err(no) => {
            report.error = Some(no.message);
            return (report, Ending::NotPassed(no.blame));
        }
    };
    let default_expect = Default::default();
    let expect = step.expect.as_ref().unwrap_or(&default_expect);
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
    if let Some(statuses_expected) = &expect.statuses {
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

async fn walk_step(
    mut report: StepReport,
    step: &StepSpec,
    request: &RequestSpec,
    walk: &WalkSpec,
    vars: &mut Vars,
    ctx: &Context<'_>,
) -> (StepReport, Ending) {
    let first = match prepare(request, vars, ctx.base) {
        Ok(p) => p,
        Err(e) => {
            report.error = Some(e);
            return (report, FAILED);
        }
    };
    report.label = label(step, request, &first.target(), " (walk)");
    let default_expect = Default::default();
    let expect = step.expect.as_ref().unwrap_or(&default_expect);
    let max_pages = walk.max_pages.unwrap_or(50) as usize;
    let collect =
        serde_json_path::JsonPath::parse(&template::render(&walk.collect, |n| vars.lookup(n)).unwrap_or_default());
    let Ok(collect) = collect else {
        report.error = Some(format!("invalid JSONPath {}", walk.collect));
        return (report, ERRORED);
    };
    let mut collected: Vec<serde_json::Value> = Vec::new();
    let mut collected_bytes = 0usize;
    let mut per_page: Vec<Vec<Check>> = Vec::new();
    let mut pages = 0usize;
    let mut current = first.clone();
    loop {
        pages += 1;
        report.request = Some(current.record());
        let response = match ctx.http.send(&current).await {
            Ok(r) => r,
            Err(no) => {
                report.error = Some(format!("page {pages}: {}", no.message));
                return (report, Ending::NotPassed(no.blame));
            }
        };
        report.response = Some(record(&response));
        report.checks = expect::evaluate(expect, &response, &mut |n| vars.lookup(n));
        if report.checks.iter().any(|c| !c.passed) {
            report.error = Some(format!("page {pages} did not meet the expectations"));
            return (report, FAILED);
        }
        per_page.push(report.checks.clone());
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
        for value in collect.query(&body).all() {
            collected_bytes += value.to_string().len();
            collected.push(value.clone());
        }
        if collected_bytes > MAX_COLLECTED_BYTES {
            report.error = Some(format!(
                "page {pages}: the walk collected more than {} MiB of values; pages this big cannot be graded",
                MAX_COLLECTED_BYTES >> 20
            ));
            return (report, FAILED);
        }
        if pages == 1
            && let Some(insert) = &walk.after_first_page
        {
            let sent = match prepare(insert, vars, ctx.base) {
                Ok(p) => ctx.http.send(&p).await,
                Err(e) => Err(NoResponse::service(e)),
            };
            match sent {
                Ok(r) if r.status / 100 == 2 => {}
                Ok(r) => {
                    report.error = Some(format!(
                        "the request after the first page answered {}",
                        expect::status_text(r.status)
                    ));
                    return (report, FAILED);
                }
                Err(no) => {
                    report.error = Some(format!("the request after the first page failed: {}", no.message));
                    return (report, Ending::NotPassed(no.blame));
                }
            }
        }
        let next = match next_page(walk, &first, &current, &response, &body) {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err(e) => {
                report.error = Some(format!("page {pages}: {e}"));
                return (report, FAILED);
            }
        };
        if pages >= max_pages {
            report.error = Some(format!("the walk did not end within {max_pages} pages"));
            return (report, FAILED);
        }
        current = next;
    }
    let walked = format!(" (walked {pages} page{})", if pages == 1 { "" } else { "s" });
    report.label = label(step, request, &first.target(), &walked);
    report.checks = expect::aggregate(&per_page);
    let expected_values = walk.totals.values.as_ref().map(|values| {
        values
            .iter()
            .map(|v| template::render_json(v, &mut |n| vars.lookup(n)).unwrap_or_else(|_| v.clone()))
            .collect::<Vec<_>>()
    });
    report
        .checks
        .extend(walk_totals(&walk.totals, expected_values, pages, &collected));
    report.passed = report.checks.iter().all(|c| c.passed);
    let ending = if report.passed { Ending::Passed } else { FAILED };
    (report, ending)
}

/// The request for the page after `current`, or `None` on the last page.
fn next_page(
    walk: &WalkSpec,
    first: &Prepared,
    current: &Prepared,
    response: &Response,
    body: &serde_json::Value,
) -> Result<Option<Prepared>, String> {
    if let Some(relation) = &walk.next.link {
        let Some(target) = super::link::find(&response.header_values("link"), relation) else {
            return Ok(None);
        };
        let url = current
            .url
            .join(&target)
            .map_err(|e| format!("the Link target `{target}` is not a URL: {e}"))?;
        if url.origin() != first.url.origin() {
            return Err(format!(
                "refusing to follow a Link outside the service under test: {url}"
            ));
        }
        return Ok(Some(Prepared { url, ..first.clone() }));
    }
    let path = walk.next.cursor.as_deref().unwrap_or("$.next_cursor");
    let path = serde_json_path::JsonPath::parse(path).map_err(|e| format!("invalid JSONPath {path}: {e}"))?;
    let cursor = match path.query(body).all().first() {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::String(s)) if s.is_empty() => return Ok(None),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let param = walk.next.param.as_deref().unwrap_or("cursor");
    let mut url = first.url.clone();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != param)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair(param, &cursor);
    Ok(Some(Prepared { url, ..first.clone() }))
}

/// The checks of a walk's `totals`; `expected_values` are `totals.values` with their placeholders filled in.
fn walk_totals(
    totals: &WalkTotals,
    expected_values: Option<Vec<serde_json::Value>>,
    pages: usize,
    collected: &[serde_json::Value],
) -> Vec<Check> {
    let mut checks = Vec::new();
    if let Some(expected) = totals.pages {
        checks.push(Check {
            what: "pages walked".into(),
            expected: expected.to_string(),
            actual: pages.to_string(),
            passed: pages == expected as usize,
        });
    }
    if let Some(expected) = totals.count {
        checks.push(Check {
            what: "values collected".into(),
            expected: expected.to_string(),
            actual: format!(
                "{} ({})",
                collected.len(),
                clip(&serde_json::Value::from(collected.to_vec()).to_string(), 300)
            ),
            passed: collected.len() == expected as usize,
        });
    }
    if totals.distinct == Some(true) {
        let mut seen = std::collections::HashSet::new();
        let repeated: Vec<String> = collected
            .iter()
            .map(|v| v.to_string())
            .filter(|v| !seen.insert(v.clone()))
            .collect();
        checks.push(Check {
            what: "values collected once".into(),
            expected: "no value twice".into(),
            actual: if repeated.is_empty() {
                "no value twice".into()
            } else {
                format!("seen again ({}): {}", repeated.len(), clip(&repeated.join(", "), 300))
            },
            passed: repeated.is_empty(),
        });
    }
    if let Some(expected) = expected_values {
        checks.push(Check {
            what: "values collected, in order".into(),
            expected: clip(&serde_json::Value::from(expected.clone()).to_string(), 300),
            actual: clip(&serde_json::Value::from(collected.to_vec()).to_string(), 300),
            passed: collected == expected.as_slice(),
        });
    }
    checks
}

async fn wait_step(number: usize, wait: &WaitSpec, vars: &mut Vars) -> (StepReport, Ending) {
    let max = wait.max.map_or(Duration::from_secs(60), |m| m.0);
    let plus = wait.plus.map_or(Duration::ZERO, |p| p.0);
    let base = match (&wait.duration, &wait.seconds) {
        (Some(d), _) => Ok(d.0),
        (None, Some(seconds)) => {
            let text = template::render(&seconds.0, |n| vars.lookup(n)).unwrap_or_default();
            parse_wait(&text)
        }
        (None, None) => Err("the wait has neither `duration` nor `seconds`".to_string()),
    };
    let mut report = step_report(number, "wait".into(), StepKind::Wait { ms: 0 });
    let base = match base {
        Ok(base) => base,
        Err(e) => {
            report.error = Some(e);
            return (report, FAILED);
        }
    };
    report.kind = StepKind::Wait {
        ms: (base + plus).as_millis() as u64,
    };
    let mut why = Vec::new();
    if let (None, Some(seconds)) = (&wait.duration, &wait.seconds) {
        let source = template::placeholders(&seconds.0).join(", ");
        let value = template::render(&seconds.0, |n| vars.lookup(n)).unwrap_or_default();
        why.push(format!("{source} = {}", clip(value.trim(), 40)));
    }
    if !plus.is_zero() {
        why.push(format!("plus {} ms", plus.as_millis()));
    }
    report.label = if why.is_empty() {
        format!("wait {:.2}s", (base + plus).as_secs_f64())
    } else {
        format!("wait {:.2}s ({})", (base + plus).as_secs_f64(), why.join(", "))
    };
    if base > max {
        report.error = Some(format!(
            "the service asked to wait {:.1}s, more than the {:.0}s this probe allows",
            base.as_secs_f64(),
            max.as_secs_f64()
        ));
        return (report, FAILED);
    }
    tokio::time::sleep(base + plus).await;
    report.passed = true;
    (report, Ending::Passed)
}

/// A wait value: integer or decimal seconds, a duration such as `500ms`, or an HTTP date (Retry-After).
fn parse_wait(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        if (0.0..1e9).contains(&seconds) {
            return Ok(Duration::from_secs_f64(seconds));
        }
        return Err(format!("`{text}` is not a usable number of seconds"));
    }
    if let Some(duration) = parse_duration(text) {
        return Ok(duration);
    }
    match httpdate::parse_http_date(text) {
        Ok(date) => Ok(date
            .duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO)),
        Err(_) => Err(format!("`{}` is neither seconds nor an HTTP date", clip(text, 80))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_accept_seconds_durations_and_dates() {
        assert_eq!(parse_wait("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_wait(" 1.5 "), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_wait("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_wait("Wed, 21 Oct 2015 07:28:00 GMT"), Ok(Duration::ZERO));
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        assert!(parse_wait(&soon).is_ok_and(|d| d > Duration::from_secs(25)));
        assert!(parse_wait("-1").is_err());
        assert!(parse_wait("soon").is_err());
    }
}
