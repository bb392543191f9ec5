//! Running one probe: its steps in order, stopping at the first that fails.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::step::{self, Ending};
use crate::http::Http;
use crate::outcome::{ProbeReport, Verdict};
use crate::spec::jwt::VarSpec;
use crate::spec::model::ProbeSpec;
use crate::spec::plan::ProbePlan;
use crate::vars::Vars;

/// What a probe runs against.
pub struct Context<'a> {
    /// The HTTP client.
    pub http: &'a Http,
    /// The running service: base URL, output, whether it exited, restart, stop.
    pub service: &'a tokio::sync::Mutex<crate::target::Service>,
    /// The service's base URL (changes when a restarted container gets a new address).
    pub base: std::sync::RwLock<Url>,
    /// Where the plain-HTTP listener of a service with `service.tls` answers.
    pub plain: std::sync::RwLock<Option<Url>>,
    /// The service's output mark when the probe began: `logs` steps read what came after it.
    pub output_mark: u64,
    /// The per-request timeout.
    pub timeout: Duration,
    /// Cancelled on Ctrl-C.
    pub cancel: &'a CancellationToken,
    /// The servers proctor hosts for the challenge.
    pub servers: &'a crate::servers::Servers,
}

impl Context<'_> {
    /// The service's base URL now.
    pub fn base(&self) -> Url {
        read(&self.base)
    }

    /// Where a request goes: the plain-HTTP listener for `plain: true`, else the base URL.
    pub fn base_for(&self, request: &crate::spec::model::RequestSpec) -> Url {
        match read(&self.plain) {
            Some(plain) if request.plain => plain,
            _ => self.base(),
        }
    }

    /// Records where the service answers after a restart.
    pub fn set_base(&self, url: Url, plain: Option<Url>) {
        if let Ok(mut base) = self.base.write() {
            *base = url;
        }
        if let Ok(mut old) = self.plain.write() {
            *old = plain;
        }
    }
}

/// A copy of what a lock holds (a poisoned lock still holds a value).
fn read<T: Clone>(lock: &std::sync::RwLock<T>) -> T {
    match lock.read() {
        Ok(value) => value.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// Runs a probe; never panics on anything the service sends.
pub async fn run(probe: &ProbeSpec, plan: &ProbePlan, vars: &mut Vars, ctx: &Context<'_>) -> ProbeReport {
    let started = Instant::now();
    let mut steps = Vec::new();
    let mut verdict = Verdict::Passed;
    let mut message = None;
    let mut tokens: std::collections::HashMap<&str, crate::spec::jwt::JwtSpec> = std::collections::HashMap::new();
    for (name, value) in &probe.vars {
        let filled = match value {
            VarSpec::Text(text) => vars.render(text),
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
    for (i, step) in plan.steps.iter().enumerate() {
        let step_started = Instant::now();
        let outcome = tokio::select! {
            () = ctx.cancel.cancelled() => None,
            outcome = step::run(i + 1, step, vars, ctx) => Some(outcome),
        };
        let Some((mut report, ending)) = outcome else {
            verdict = Verdict::Skipped;
            message = Some("interrupted".to_string());
            break;
        };
        report.duration_ms = step_started.elapsed().as_millis() as u64;
        let summary = report.summary();
        let reason = report.error.clone();
        steps.push(report);
        match ending {
            Ending::Passed => {}
            Ending::NotPassed(blame) => {
                verdict = blame.verdict();
                message = Some(summary);
                break;
            }
            Ending::NotApplicable => {
                verdict = Verdict::NotApplicable;
                message = Some(format!("not applicable: {}", reason.unwrap_or_default()));
                break;
            }
        }
    }
    ProbeReport::new(probe, verdict, message, started.elapsed().as_millis() as u64, steps)
}
