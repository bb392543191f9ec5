//! A restart step: stop the service gracefully, start it again with the same data (and the env changed as the
//! step says), wait until it is ready.

use super::{ERRORED, Ending, FAILED, step_report};
use crate::engine::error_chain;
use crate::engine::probe::Context;
use crate::outcome::{StepKind, StepReport};
use crate::spec::model::RestartSpec;
use crate::target::{EnvChanges, TargetError};
use crate::vars::Vars;

pub(super) async fn run(number: usize, spec: &RestartSpec, vars: &mut Vars, ctx: &Context<'_>) -> (StepReport, Ending) {
    if let Some(name) = &spec.service {
        return restart_dependency(number, name, ctx).await;
    }
    let changes = render_changes(&spec.env, vars);
    let mut report = step_report(
        number,
        format!("restart the service{}{}", of_replica(spec.replica), describe(&changes)),
        StepKind::Restart,
    );
    let mut service = ctx.service(spec.replica).lock().await;
    match service.restart(&changes).await {
        Ok(()) => {
            for (name, value) in &changes {
                vars.set_env(name, value.clone());
            }
            ctx.set_base(spec.replica, service.base_url().clone(), service.plain_url().cloned());
            report.passed = true;
            (report, Ending::Passed)
        }
        Err((error @ TargetError::Unsupported { .. }, _)) => {
            report.error = Some(error.to_string());
            (report, ERRORED)
        }
        Err((error, output)) => {
            let output = output
                .filter(|o| !o.trim().is_empty())
                .map(|o| format!("; its last output:\n{o}"))
                .unwrap_or_default();
            report.error = Some(format!(
                "the service did not come back after the restart: {}{output}",
                error_chain(&error)
            ));
            (report, FAILED)
        }
    }
}

/// Restarts another service of the submission's Compose project; not applicable to other targets.
async fn restart_dependency(number: usize, name: &str, ctx: &Context<'_>) -> (StepReport, Ending) {
    let mut report = step_report(
        number,
        format!("restart service `{name}` of the project"),
        StepKind::Restart,
    );
    match ctx.service(None).lock().await.restart_dependency(name).await {
        Ok(()) => {
            report.passed = true;
            (report, Ending::Passed)
        }
        Err(error @ TargetError::Unsupported { .. }) => {
            report.error = Some(error.to_string());
            (report, Ending::NotApplicable)
        }
        Err(error) => {
            report.error = Some(error_chain(&error));
            (report, ERRORED)
        }
    }
}

/// The step's env changes with their placeholders filled in.
pub(super) fn render_changes(changes: &EnvChanges, vars: &mut Vars) -> EnvChanges {
    changes
        .iter()
        .map(|(name, value)| {
            let value = value.as_ref().map(|v| vars.render(v));
            (name.clone(), value)
        })
        .collect()
}

/// ` (replica N)`, or nothing.
pub(super) fn of_replica(replica: Option<u32>) -> String {
    replica.map(|n| format!(" (replica {n})")).unwrap_or_default()
}

/// ` with A=1, B removed`, or nothing.
pub(super) fn describe(changes: &EnvChanges) -> String {
    if changes.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = changes
        .iter()
        .map(|(name, value)| match value {
            Some(value) => format!("{name}={}", crate::expect::clip(value, 40)),
            None => format!("{name} removed"),
        })
        .collect();
    format!(" with {}", parts.join(", "))
}
