//! The probe engine: starts each challenge's target, runs its probes in order, scores it; challenges run
//! concurrently where the target allows.

mod burst;
mod link;
pub mod probe;
pub mod vars;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use crate::http::describe_error;

use crate::event::Event;

/// Where the engine sends events; a closed receiver is ignored.
pub type EventSender = tokio::sync::mpsc::UnboundedSender<Event>;
use crate::outcome::{ChallengeReport, FORMAT_VERSION, ProbeReport, RunReport, Verdict};
use crate::score::score;
use crate::spec::Challenge;
use crate::target::{self, Target};

/// A validated run configuration: everything the engine needs, nothing about the command line.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Where the service is.
    pub target: Target,
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
}

/// The default cap on response bodies: 4 MiB.
pub const DEFAULT_MAX_BODY: usize = 4 << 20;

/// Grades every challenge and returns the full report. Cancelling stops between steps and tears targets down.
pub async fn run(
    challenges: &[Challenge],
    config: &RunConfig,
    events: &EventSender,
    cancel: &CancellationToken,
) -> RunReport {
    let started_at = now_rfc3339();
    let started = Instant::now();
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
    RunReport {
        format_version: FORMAT_VERSION,
        proctor_version: env!("CARGO_PKG_VERSION").to_string(),
        seed: config.seed,
        run_id: config.run_id.clone(),
        started_at,
        duration_ms: started.elapsed().as_millis() as u64,
        interrupted: cancel.is_cancelled(),
        challenges: reports.into_iter().flatten().collect(),
        build_log: None,
        probe_filter: Vec::new(),
    }
}

/// A report for challenges that could not be graded at all (Docker unreachable, the image build failed, ...).
pub fn not_graded(
    challenges: &[Challenge],
    config: &RunConfig,
    target: &str,
    reason: &str,
    logs: Option<String>,
    interrupted: bool,
) -> RunReport {
    let (events, _) = tokio::sync::mpsc::unbounded_channel();
    let reports = challenges
        .iter()
        .map(|challenge| {
            let mut report = blank_report(challenge, config);
            report.target = target.to_string();
            report.logs = logs.clone();
            finish(report, Some(reason.to_string()), challenge, &events, Instant::now())
        })
        .collect();
    RunReport {
        format_version: FORMAT_VERSION,
        proctor_version: env!("CARGO_PKG_VERSION").to_string(),
        seed: config.seed,
        run_id: config.run_id.clone(),
        started_at: now_rfc3339(),
        duration_ms: 0,
        interrupted,
        challenges: reports,
        build_log: None,
        probe_filter: Vec::new(),
    }
}

fn blank_report(challenge: &Challenge, config: &RunConfig) -> ChallengeReport {
    let spec = &challenge.spec;
    ChallengeReport {
        id: challenge.id.clone(),
        title: spec.title.clone(),
        question: spec.question.clone(),
        origin: challenge.origin.clone(),
        target: config.target.describe(),
        threshold: config.min_score.unwrap_or(spec.pass.0),
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
    events: &EventSender,
    cancel: &CancellationToken,
) -> ChallengeReport {
    let started = Instant::now();
    let spec = &challenge.spec;
    let _ = events.send(Event::ChallengeStarted {
        id: challenge.id.clone(),
        probes: spec.probes.len(),
    });
    let timeout = config.request_timeout.unwrap_or(spec.service.request_timeout.0);
    let mut report = blank_report(challenge, config);
    let started_target = tokio::select! {
        () = cancel.cancelled() => Err((None, None)),
        result = target::start(&config.target, challenge, config.start_timeout) => {
            result.map_err(|(error, logs)| (Some(error), logs))
        }
    };
    let mut endpoint = match started_target {
        Ok(endpoint) => endpoint,
        Err((error, logs)) => {
            report.logs = logs;
            let message = match error {
                Some(e) => error_chain(&e),
                None => "interrupted before the service was ready".to_string(),
            };
            return finish(report, Some(message), challenge, events, started);
        }
    };
    // A target on a network proctor created gets a client bound to that network's device.
    let http = match crate::http::Http::new(timeout, config.max_body, endpoint.interface.clone()) {
        Ok(http) => http,
        Err(e) => {
            endpoint.stop().await;
            return finish(
                report,
                Some(format!("failed to build the HTTP client: {e}")),
                challenge,
                events,
                started,
            );
        }
    };
    let _ = events.send(Event::TargetReady {
        id: challenge.id.clone(),
    });
    let base = endpoint.base_url.clone();
    let ctx = probe::Context {
        http: &http,
        base: &base,
        timeout,
        cancel,
    };
    let mut gone: Option<String> = None;
    // `{{env.PORT}}` is the port the service was actually given (a free one for --cmd, the URL's for --url).
    let mut env = spec.service.env.clone();
    if let Some(port) = endpoint.base_url.port_or_known_default() {
        env.insert("PORT".to_string(), port.to_string());
    }
    for probe_spec in &spec.probes {
        let mut result = if cancel.is_cancelled() {
            skipped(probe_spec, "interrupted")
        } else {
            let mut vars = vars::Vars::new(config.seed, &config.run_id, &challenge.id, &probe_spec.id, env.clone());
            probe::run(probe_spec, &mut vars, &ctx).await
        };
        // A probe that did not pass may have killed the service (or the kernel did): say so, instead of leaving
        // every later probe with a bare connection error.
        if result.verdict != Verdict::Passed {
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
                gone = endpoint.gone().await;
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
        let _ = events.send(Event::ProbeFinished {
            challenge: challenge.id.clone(),
            probe: result.id.clone(),
            verdict: result.verdict,
        });
        report.probes.push(result);
    }
    report.logs = endpoint.logs();
    endpoint.stop().await;
    finish(report, None, challenge, events, started)
}

fn finish(
    mut report: ChallengeReport,
    target_error: Option<String>,
    challenge: &Challenge,
    events: &EventSender,
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
    let _ = events.send(Event::ChallengeFinished {
        id: report.id.clone(),
        score: report.score.clone(),
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

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
