//! The probe engine: starts each challenge's target, runs its probes in order, scores it; challenges run
//! concurrently where the target allows.

mod link;
pub mod probe;
mod step;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use crate::http::describe_error;

use crate::event::{Event, Events};
use crate::outcome::{ChallengeReport, ProbeReport, Verdict};
use crate::score::score;
use crate::spec::Challenge;
use crate::spec::plan::Action;
use crate::target::{Launcher, Service};

/// A validated run configuration: everything the engine needs, nothing about the command line.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Starts the service for each challenge.
    pub launcher: Arc<Launcher>,
    /// How many challenges run at once (1 for a shared `--url` target unless asked otherwise).
    pub jobs: usize,
    /// The seed of every random value.
    pub seed: u64,
    /// The run's id (labels Docker resources).
    pub run_id: String,
    /// Overrides every challenge's pass threshold (percent).
    pub min_score: Option<f64>,
    /// Overrides every challenge's start timeout.
    pub start_timeout: Option<Duration>,
    /// Overrides every challenge's request timeout.
    pub request_timeout: Option<Duration>,
    /// The largest response body read, in bytes.
    pub max_body: usize,
    /// Fixed ports for the servers proctor hosts, by name.
    pub server_ports: std::collections::BTreeMap<String, u16>,
}

/// The default cap on response bodies: 4 MiB.
pub const DEFAULT_MAX_BODY: usize = 4 << 20;

/// Grades every challenge and returns their reports, in order. Cancelling stops between steps and tears targets
/// down.
pub async fn run(
    challenges: &[Challenge],
    config: &RunConfig,
    events: &Events,
    cancel: &CancellationToken,
) -> Vec<ChallengeReport> {
    let jobs = config.jobs.max(1);
    let semaphore = Arc::new(Semaphore::new(jobs));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, challenge) in challenges.iter().enumerate() {
        let (challenge, config, events, cancel, semaphore) = (
            challenge.clone(),
            config.clone(),
            events.clone(),
            cancel.clone(),
            Arc::clone(&semaphore),
        );
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            (index, run_challenge(&challenge, &config, &events, &cancel).await)
        });
    }
    let mut reports: Vec<Option<ChallengeReport>> = challenges.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, report)) => reports[index] = Some(report),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {}
        }
    }
    reports.into_iter().flatten().collect()
}

pub(crate) fn blank_report(challenge: &Challenge, min_score: Option<f64>, target: &str) -> ChallengeReport {
    let spec = &challenge.spec;
    ChallengeReport {
        id: challenge.id.clone(),
        title: spec.title.clone(),
        question: spec.question.clone(),
        origin: challenge.origin.clone(),
        target: target.to_string(),
        threshold: min_score.unwrap_or(spec.pass.0),
        target_error: None,
        score: Default::default(),
        probes: Vec::new(),
        logs: None,
        duration_ms: 0,
    }
}

/// Grades one challenge: start the target, run every probe, stop the target, score.
pub async fn run_challenge(
    challenge: &Challenge,
    config: &RunConfig,
    events: &Events,
    cancel: &CancellationToken,
) -> ChallengeReport {
    let started = Instant::now();
    let spec = &challenge.spec;
    events.send(Event::ChallengeStarted {
        id: challenge.id.clone(),
        probes: spec.probes.len(),
    });
    let timeout = config.request_timeout.unwrap_or(spec.service.request_timeout.0);
    let mut report = blank_report(challenge, config.min_score, &config.launcher.describe());
    let servers = match start_servers(challenge, config).await {
        Ok(servers) => servers,
        Err(message) => return finish(report, Some(message), challenge, events, started),
    };
    let env = spec
        .service
        .env
        .iter()
        .map(|(name, value)| {
            let url = |server: &str| servers.get(server).map(|s| s.url().to_string());
            (name.clone(), crate::servers::fill_urls(value, url))
        })
        .collect();
    let started_target = tokio::select! {
        () = cancel.cancelled() => Err((None, None)),
        result = Service::start_replicas(Arc::clone(&config.launcher), challenge, config.start_timeout, env) => {
            result.map_err(|(error, logs)| (Some(error), logs))
        }
    };
    let replicas = match started_target {
        Ok(replicas) => replicas,
        Err((error, logs)) => {
            report.logs = logs;
            let message = match error {
                Some(e) => error_chain(&e),
                None => "interrupted before the service was ready".to_string(),
            };
            config.launcher.release(challenge).await;
            servers.stop().await;
            return finish(report, Some(message), challenge, events, started);
        }
    };
    // A target on a network proctor created gets a client bound to that network's device.
    let first = &replicas[0];
    let http = match crate::http::Http::new(timeout, config.max_body, first.interface(), first.client_tls().as_ref()) {
        Ok(http) => http,
        Err(e) => {
            stop_all(replicas).await;
            config.launcher.release(challenge).await;
            servers.stop().await;
            return finish(
                report,
                Some(format!("failed to build the HTTP client: {e}")),
                challenge,
                events,
                started,
            );
        }
    };
    events.send(Event::TargetReady {
        id: challenge.id.clone(),
    });
    let replicas: Vec<tokio::sync::Mutex<Service>> = replicas.into_iter().map(tokio::sync::Mutex::new).collect();
    let mut gone: Option<String> = None;
    for (probe_spec, plan) in spec.probes.iter().zip(&challenge.plan) {
        // A step stopped the service (or a replica): it starts again for the next probe (and a failure to is that
        // probe's).
        let mut back = Ok(());
        for replica in &replicas {
            let mut running = replica.lock().await;
            let unchanged = crate::target::EnvChanges::default();
            if running.stopped() && !cancel.is_cancelled() && back.is_ok() {
                back = tokio::select! {
                    () = cancel.cancelled() => Ok(()),
                    restarted = running.restart(&unchanged) => restarted.map(|()| gone = None).map_err(|(e, _)| {
                        format!("the service did not start again after a step stopped it: {}", error_chain(&e))
                    }),
                };
            }
        }
        let mut result = if cancel.is_cancelled() {
            skipped(probe_spec, "interrupted")
        } else if let Err(message) = back {
            ProbeReport::new(probe_spec, Verdict::Failed, Some(message), 0, Vec::new())
        } else {
            let (env, ctx) = {
                let mut bases = Vec::with_capacity(replicas.len());
                let mut output_marks = Vec::with_capacity(replicas.len());
                // A probe that reads the output starts reading where the output of earlier probes has arrived:
                // a container's log stream and a buffered stdout deliver late.
                let reads_output = plan.steps.iter().any(|s| matches!(s.action, Action::Logs(_)));
                for replica in &replicas {
                    let running = replica.lock().await;
                    if reads_output {
                        running
                            .settle_output(Duration::from_millis(150), Duration::from_secs(1))
                            .await;
                    }
                    bases.push((running.base_url().clone(), running.plain_url().cloned()));
                    output_marks.push(running.output_mark());
                }
                let running = replicas[0].lock().await;
                // `{{env.PORT}}` is the port the service was actually given (a free one for --cmd, the URL's for
                // --url, the container's own in Docker); `{{env.NAME}}` follows the env as steps changed it.
                let mut env = running.env().clone();
                if let Some(port) = running.port_given() {
                    env.insert("PORT".to_string(), port.to_string());
                }
                let ctx = probe::Context {
                    http: &http,
                    replicas: &replicas,
                    bases: std::sync::RwLock::new(bases),
                    turn: std::sync::atomic::AtomicUsize::new(0),
                    output_marks,
                    timeout,
                    cancel,
                    servers: &servers,
                };
                (env, ctx)
            };
            let mut vars = crate::vars::Vars::new(config.seed, &config.run_id, &challenge.id, &probe_spec.id, env);
            servers.begin_probe();
            for (name, url) in servers.urls() {
                vars.set(&format!("server.{name}"), url.to_string());
            }
            probe::run(probe_spec, plan, &mut vars, &ctx).await
        };
        // A probe that did not pass may have killed the service (or the kernel did): say so, instead of leaving
        // every later probe with a bare connection error. (A service a step stopped on purpose is not that.)
        if result.verdict != Verdict::Passed && !any_stopped(&replicas).await {
            // A connection that failed may mean the service is dying: give the engine a moment to say so.
            let transport = result.steps.iter().any(|s| {
                s.error
                    .as_deref()
                    .is_some_and(|e| e.contains("connect") || e.contains("valid HTTP"))
            });
            let attempts = if transport { 10 } else { 1 };
            for attempt in 0..attempts {
                if gone.is_some() {
                    break;
                }
                if attempt > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                gone = exited(&replicas).await;
            }
            if let Some(how) = &gone {
                let message = result.message.take().unwrap_or_default();
                result.message = Some(format!("{message} (the service {how})"));
                if let Some(step) = result.steps.iter_mut().rev().find(|s| !s.passed) {
                    let said = step.error.take().map(|e| format!("{e}; ")).unwrap_or_default();
                    step.error = Some(format!("{said}the service {how}"));
                }
            }
        }
        events.send(Event::ProbeFinished {
            challenge: challenge.id.clone(),
            report: Box::new(result.clone()),
        });
        report.probes.push(result);
    }
    let replicas: Vec<Service> = replicas.into_iter().map(tokio::sync::Mutex::into_inner).collect();
    report.logs = logs(&replicas);
    stop_all(replicas).await;
    config.launcher.release(challenge).await;
    servers.stop().await;
    finish(report, None, challenge, events, started)
}

/// Stops every replica, side by side.
async fn stop_all(replicas: Vec<Service>) {
    futures::future::join_all(replicas.into_iter().map(Service::stop)).await;
}

/// Whether a step stopped a replica (it starts again before the next probe).
async fn any_stopped(replicas: &[tokio::sync::Mutex<Service>]) -> bool {
    for replica in replicas {
        if replica.lock().await.stopped() {
            return true;
        }
    }
    false
}

/// How a replica that is no longer running ended (`replica N ...` when there are several).
async fn exited(replicas: &[tokio::sync::Mutex<Service>]) -> Option<String> {
    for (i, replica) in replicas.iter().enumerate() {
        if let Some(how) = replica.lock().await.exited().await {
            return Some(match replicas.len() {
                1 => how,
                _ => format!("(replica {}) {how}", i + 1),
            });
        }
    }
    None
}

/// The tail of the output of each replica, under a heading per replica when there are several.
fn logs(replicas: &[Service]) -> Option<String> {
    if let [only] = replicas {
        return only.logs();
    }
    let parts: Vec<String> = replicas
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.logs().map(|text| format!("--- replica {} ---\n{text}", i + 1)))
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n"))
}

/// Starts the servers a challenge declares where its service will reach them; the error says why they cannot
/// be. A service that is already running can only be pointed at them when their ports are fixed beforehand
/// (`--server-port`): the error then says which flags and which env it needs.
async fn start_servers(challenge: &Challenge, config: &RunConfig) -> Result<crate::servers::Servers, String> {
    let specs = &challenge.spec.servers;
    if specs.is_empty() {
        return Ok(crate::servers::Servers::default());
    }
    let ports = &config.server_ports;
    let host = match config.launcher.server_host().await {
        Ok(Some(host)) => host,
        Ok(None) if specs.keys().all(|name| ports.contains_key(name)) => std::net::Ipv4Addr::LOCALHOST.into(),
        Ok(None) => {
            let flags: Vec<String> = specs.keys().map(|name| format!("--server-port {name}=PORT")).collect();
            let env: Vec<String> = challenge
                .spec
                .service
                .env
                .iter()
                .filter(|(_, value)| value.contains("{{server."))
                .map(|(name, value)| {
                    let placeholder = |_: &str| Some("http://127.0.0.1:PORT".to_string());
                    format!("{name}={}", crate::servers::fill_urls(value, placeholder))
                })
                .collect();
            return Err(format!(
                "this challenge needs servers proctor hosts ({}), whose addresses the service gets in its env; a \
                 service that is already running must be started with them: pick free ports, start it with {}, \
                 and pass {} (or grade it with --cmd, --path or --image)",
                specs.keys().cloned().collect::<Vec<_>>().join(", "),
                env.join(" "),
                flags.join(" ")
            ));
        }
        Err(e) => {
            return Err(format!(
                "failed to find where the servers should listen: {}",
                error_chain(&e)
            ));
        }
    };
    crate::servers::Servers::start(specs, host, ports).await.map_err(|e| {
        let mut message = error_chain(&e);
        if !host.is_loopback() {
            message.push_str(" (servers listen on the run network's gateway, which needs a local Docker engine)");
        }
        message
    })
}

pub(crate) fn finish(
    mut report: ChallengeReport,
    target_error: Option<String>,
    challenge: &Challenge,
    events: &Events,
    started: Instant,
) -> ChallengeReport {
    let unrun = if target_error.is_some() {
        challenge.spec.probes.len()
    } else {
        0
    };
    if target_error.is_some() {
        report.probes = challenge
            .spec
            .probes
            .iter()
            .map(|p| skipped(p, "the service could not be started or reached"))
            .collect();
    }
    report.score = score(&report.probes, report.threshold, target_error.is_none());
    report.target_error = target_error;
    report.duration_ms = started.elapsed().as_millis() as u64;
    events.send(Event::ChallengeFinished {
        report: Box::new(report.clone()),
        unrun,
    });
    report
}

fn skipped(probe: &crate::spec::model::ProbeSpec, why: &str) -> ProbeReport {
    ProbeReport::new(probe, Verdict::Skipped, Some(why.to_string()), 0, Vec::new())
}

/// An error and its sources as one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
