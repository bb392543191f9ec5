//! A walk step: follow the service's pagination (by `Link` or by cursor) from the first page to the last,
//! checking every page and collecting values, then check the walk as a whole.

use super::{ERRORED, Ending, FAILED, label, record, step_report};
use crate::engine::probe::Context;
use crate::expect::{self, Check, Response, clip};
use crate::http::{NoResponse, Prepared, prepare};
use crate::outcome::{StepKind, StepReport};
use crate::spec::model::WalkTotals;
use crate::spec::plan::Walk;
use crate::spec::template;
use crate::vars::Vars;

/// The most a walk may collect, in bytes of JSON, before it fails: bounds memory against endless fat pages.
const MAX_COLLECTED_BYTES: usize = 16 << 20;

pub(super) async fn run(
    number: usize,
    name: Option<&str>,
    walk: &Walk,
    vars: &mut Vars,
    ctx: &Context<'_>,
) -> (StepReport, Ending) {
    let request = &walk.request;
    let mut report = step_report(
        number,
        label(name, &request.method, &request.path, " (walk)"),
        StepKind::Walk,
    );
    let first = match prepare(request, vars, &ctx.base_for(request, None)) {
        Ok(p) => p,
        Err(e) => {
            report.error = Some(e);
            return (report, FAILED);
        }
    };
    report.label = label(name, &request.method, &first.target(), " (walk)");
    let expect = &walk.expect;
    let max_pages = walk.spec.max_pages.unwrap_or(50) as usize;
    let collect = match walk.collect.resolve(&mut |n| vars.lookup(n)) {
        Ok((path, _)) => path.into_owned(),
        Err((text, e)) => {
            report.error = Some(format!("invalid JSONPath {text}: {e}"));
            return (report, ERRORED);
        }
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
            && let Some(insert) = &walk.spec.after_first_page
        {
            let sent = match prepare(insert, vars, &ctx.base_for(insert, None)) {
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
        let next = match next_page(walk, &first, &current, &response, &body, &mut |n| vars.lookup(n)) {
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
    report.label = label(name, &request.method, &first.target(), &walked);
    report.checks = expect::aggregate(&per_page);
    let expected_values = walk.spec.totals.values.as_ref().map(|values| {
        values
            .iter()
            .map(|v| template::render_json(v, &mut |n| vars.lookup(n)).unwrap_or_else(|_| v.clone()))
            .collect::<Vec<_>>()
    });
    report
        .checks
        .extend(walk_totals(&walk.spec.totals, expected_values, pages, &collected));
    report.passed = report.checks.iter().all(|c| c.passed);
    let ending = if report.passed { Ending::Passed } else { FAILED };
    (report, ending)
}

/// The request for the page after `current`, or `None` on the last page.
fn next_page(
    walk: &Walk,
    first: &Prepared,
    current: &Prepared,
    response: &Response,
    body: &serde_json::Value,
    lookup: &mut expect::Lookup<'_>,
) -> Result<Option<Prepared>, String> {
    let next = &walk.spec.next;
    if let Some(relation) = &next.link {
        let Some(target) = crate::engine::link::find(&response.header_values("link"), relation) else {
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
    let Some(cursor) = &walk.cursor else {
        return Err("the walk says neither `link` nor `cursor`".to_string());
    };
    let (path, _) = cursor
        .resolve(lookup)
        .map_err(|(text, e)| format!("invalid JSONPath {text}: {e}"))?;
    let cursor = match path.query(body).all().first() {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::String(s)) if s.is_empty() => return Ok(None),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let param = next.param.as_deref().unwrap_or("cursor");
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
