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
    let facts = match ctx.service(None).lock().await.image().await {
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

/// Whether a shell runs the program the container starts (`/bin/sh -c ...`, the shell form), looking past an
/// init process in front of it (`tini --`, `dumb-init`).
fn started_by_shell(facts: &ImageFacts) -> bool {
    let mut command: Vec<&str> = facts.entrypoint.iter().chain(&facts.cmd).map(String::as_str).collect();
    let program = |word: &str| word.rsplit('/').next().unwrap_or_default().to_string();
    let init = |word: &&str| matches!(program(word).as_str(), "tini" | "dumb-init" | "docker-init");
    if command.first().is_some_and(init) {
        command.remove(0);
        while command.first().is_some_and(|word| word.starts_with('-')) {
            command.remove(0);
        }
    }
    let shell = command.first().map(|first| program(first));
    matches!(shell.as_deref(), Some("sh" | "bash" | "ash" | "dash" | "zsh"))
        && command
            .get(1)
            .is_some_and(|flags| flags.starts_with('-') && flags.contains('c'))
}

/// The names of baked-in variables that look like secrets and have a value: a word of the name (split at `_`)
/// is SECRET, PASSWORD, PASSWD or TOKEN, or the name has API_KEY or PRIVATE_KEY; `*_FILE` variables (which name
/// a file holding the secret, the recommended practice) are not secrets.
fn secret_env(facts: &ImageFacts) -> Vec<String> {
    const WORDS: [&str; 4] = ["SECRET", "PASSWORD", "PASSWD", "TOKEN"];
    facts
        .env
        .iter()
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, value)| {
            let upper = name.to_ascii_uppercase();
            !value.is_empty()
                && !upper.ends_with("_FILE")
                && (upper.split('_').any(|word| WORDS.contains(&word))
                    || upper.contains("API_KEY")
                    || upper.contains("PRIVATE_KEY"))
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
            started_by_shell(&facts(&["/bin/sh"], &["-c", "x"])),
            "the shell's -c may come from CMD"
        );
        assert!(
            started_by_shell(&facts(&["tini", "--"], &["sh", "-lc", "node server.js"])),
            "behind an init"
        );
        assert!(!started_by_shell(&facts(&["/sbin/tini", "--", "/app"], &[])));
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
                "DB_PASSWORD_FILE=/run/secrets/db".into(),
                "TOKENIZERS_PARALLELISM=false".into(),
            ],
            ..Default::default()
        };
        assert_eq!(secret_env(&f), ["DB_PASSWORD", "github_token"]);
    }
}
