//! An image step: the configuration of the image a container runs from — a non-root user, a declared health
//! check, an exec-form entrypoint (signals reach the program), no secret baked into its env, a size bound. For a
//! target that is not a container there is no image: the probe is not applicable, and left out of the score.

use super::{ERRORED, Ending, FAILED, step_report};
use crate::engine::probe::Context;
use crate::expect::{Check, clip};
use crate::outcome::{StepKind, StepReport};
use crate::sandbox::ImageFacts;
use crate::spec::model::ImageSpec;

pub(super) async fn run(number: usize, spec: &ImageSpec, ctx: &Context<'_>) -> (StepReport, Ending) {
    let mut report = step_report(number, "the service's image".into(), StepKind::Image);
    let facts = match ctx.service.lock().await.image().await {
        None => {
            report.error = Some("only a container has an image to inspect (--path or --image)".into());
            return (report, Ending::NotApplicable);
        }
        Some(Err(error)) => {
            report.error = Some(crate::engine::error_chain(&error));
            return (report, ERRORED);
        }
        Some(Ok(facts)) => facts,
    };
    report.checks = checks(spec, &facts);
    report.passed = report.checks.iter().all(|c| c.passed);
    let ending = if report.passed { Ending::Passed } else { FAILED };
    (report, ending)
}

/// Whether a user runs as root: none set, `root`, or uid 0 (with or without a group).
fn is_root(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or_default().trim();
    name.is_empty() || name == "root" || name == "0"
}

/// The program the container starts, and whether a shell runs it (`/bin/sh -c ...`, the shell form).
fn started_by_shell(facts: &ImageFacts) -> bool {
    let command = if facts.entrypoint.is_empty() {
        &facts.cmd
    } else {
        &facts.entrypoint
    };
    let shell = command
        .first()
        .map(|program| program.rsplit('/').next().unwrap_or_default());
    matches!(shell, Some("sh" | "bash" | "ash" | "dash")) && command.get(1).is_some_and(|arg| arg == "-c")
}

/// The names of baked-in variables that look like secrets and have a value.
fn secret_env(facts: &ImageFacts) -> Vec<String> {
    const MARKERS: [&str; 6] = ["SECRET", "PASSWORD", "PASSWD", "TOKEN", "API_KEY", "PRIVATE_KEY"];
    facts
        .env
        .iter()
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, value)| {
            let upper = name.to_ascii_uppercase();
            !value.is_empty() && MARKERS.iter().any(|m| upper.contains(m))
        })
        .map(|(name, _)| name.to_string())
        .collect()
}

fn checks(spec: &ImageSpec, facts: &ImageFacts) -> Vec<Check> {
    let mut checks = Vec::new();
    if spec.non_root {
        checks.push(Check {
            what: "image user".into(),
            expected: "a user other than root (USER)".into(),
            actual: if facts.user.is_empty() {
                "no USER: root".into()
            } else {
                clip(&facts.user, 80)
            },
            passed: !is_root(&facts.user),
        });
    }
    if spec.healthcheck {
        let declared = !facts.healthcheck.is_empty() && facts.healthcheck.first().is_some_and(|t| t != "NONE");
        checks.push(Check {
            what: "image health check".into(),
            expected: "a HEALTHCHECK".into(),
            actual: if declared {
                clip(&facts.healthcheck.join(" "), 120)
            } else {
                "none".into()
            },
            passed: declared,
        });
    }
    if spec.exec_form {
        let command = if facts.entrypoint.is_empty() {
            &facts.cmd
        } else {
            &facts.entrypoint
        };
        checks.push(Check {
            what: "image entrypoint".into(),
            expected: "exec form: the program itself, not /bin/sh -c".into(),
            actual: clip(&serde_json::to_string(command).unwrap_or_default(), 120),
            passed: !command.is_empty() && !started_by_shell(facts),
        });
    }
    if spec.no_secret_env {
        let found = secret_env(facts);
        checks.push(Check {
            what: "image env".into(),
            expected: "no secret baked in".into(),
            actual: if found.is_empty() {
                "none".into()
            } else {
                format!("a value for {}", found.join(", "))
            },
            passed: found.is_empty(),
        });
    }
    if let Some(max) = spec.max_size {
        checks.push(Check {
            what: "image size".into(),
            expected: format!("at most {} MiB", max.0 >> 20),
            actual: format!("{:.1} MiB", facts.size as f64 / (1 << 20) as f64),
            passed: facts.size <= max.0,
        });
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(entrypoint: &[&str], cmd: &[&str]) -> ImageFacts {
        ImageFacts {
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn tells_the_shell_form_from_the_exec_form() {
        assert!(started_by_shell(&facts(&[], &["/bin/sh", "-c", "node server.js"])));
        assert!(started_by_shell(&facts(&["sh", "-c", "exec app"], &[])));
        assert!(!started_by_shell(&facts(&["/app"], &["--port", "8080"])));
        assert!(!started_by_shell(&facts(&[], &["python", "app.py"])));
        assert!(
            !started_by_shell(&facts(&["/bin/sh"], &["-c", "x"])),
            "an entrypoint shell without -c of its own"
        );
    }

    #[test]
    fn root_is_an_empty_user_root_or_uid_0() {
        for user in ["", "root", "0", "0:0", "root:root"] {
            assert!(is_root(user), "{user}");
        }
        for user in ["65534", "app", "1000:1000", "nobody"] {
            assert!(!is_root(user), "{user}");
        }
    }

    #[test]
    fn secrets_are_named_variables_with_values() {
        let f = ImageFacts {
            env: vec![
                "PATH=/usr/bin".into(),
                "DB_PASSWORD=hunter2".into(),
                "API_KEY=".into(),
                "github_token=x".into(),
            ],
            ..Default::default()
        };
        assert_eq!(secret_env(&f), ["DB_PASSWORD", "github_token"]);
    }
}
