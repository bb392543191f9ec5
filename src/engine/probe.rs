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
    /// The running service, one handle per replica (one unless `service.replicas`): base URL, output, whether it
    /// exited, restart, stop.
    pub replicas: &'a [tokio::sync::Mutex<crate::target::Service>],
    /// Each replica's base URL (changes when a restarted container gets a new address), and where the
    /// plain-HTTP listener of a service with `service.tls` answers.
    pub bases: std::sync::RwLock<Vec<(Url, Option<Url>)>>,
    /// Counts requests that name no replica: they go to the replicas in turn.
    pub turn: std::sync::atomic::AtomicUsize,
    /// Each replica's output mark when the probe began: `logs` steps read what came after it.
    pub output_marks: Vec<u64>,
    /// The per-request timeout.
    pub timeout: Duration,
    /// Cancelled on Ctrl-C.
    pub cancel: &'a CancellationToken,
    /// The servers proctor hosts for the challenge.
    pub servers: &'a crate::servers::Servers,
}

impl Context<'_> {
    /// The index of a replica a step names (from 1), the first when it names none.
    fn index(&self, replica: Option<u32>) -> usize {
        let last = self.replicas.len().saturating_sub(1);
        replica.map_or(0, |n| (n as usize).saturating_sub(1).min(last))
    }

    /// The replica a step names (from 1; validation made sure it exists), the first when it names none.
    pub fn service(&self, replica: Option<u32>) -> &tokio::sync::Mutex<crate::target::Service> {
        &self.replicas[self.index(replica)]
    }

    /// Where the output of a replica had arrived when the probe began.
    pub fn output_mark(&self, replica: Option<u32>) -> u64 {
        self.output_marks.get(self.index(replica)).copied().unwrap_or(0)
    }

    /// Where a request goes: to the replica it names, else to `fallback`, else to the next replica in turn; there
    /// to the plain-HTTP listener for `plain: true`, else to the base URL.
    pub fn base_for(&self, request: &crate::spec::model::RequestSpec, fallback: Option<u32>) -> Url {
        let bases = read(&self.bases);
        let index = match request.replica.or(fallback) {
            Some(_) => self.index(request.replica.or(fallback)),
            None => self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % bases.len().max(1),
        };
        match bases.get(index) {
            Some((_, Some(plain))) if request.plain => plain.clone(),
            Some((base, _)) => base.clone(),
            None => Url::parse("http://127.0.0.1:0/").unwrap_or_else(|_| unreachable!("a loopback URL parses")),
        }
    }

    /// Records where a replica answers after a restart.
    pub fn set_base(&self, replica: Option<u32>, url: Url, plain: Option<Url>) {
        let index = self.index(replica);
        let mut bases = match self.bases.write() {
            Ok(bases) => bases,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(slot) = bases.get_mut(index) {
            *slot = (url, plain);
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
