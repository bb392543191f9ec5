//! A grading session: one call takes challenges, a target description, options, reporters and a cancellation
//! token, and returns the run report. It owns everything between: Docker preparation (connect, build), the
//! sweep guard, the engine run, teardown, build logs and the events reporters see.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::engine::{self, RunConfig, error_chain};
use crate::event::{Event, Events};
use crate::logs::LogBuffer;
use crate::outcome::{FORMAT_VERSION, RunReport};
use crate::sandbox::{BuildOptions, Sandbox, SweepGuard};
use crate::spec::Challenge;
use crate::target::container::ContainerLauncher;
use crate::target::process::ProcessLauncher;
use crate::target::reference::ReferenceLauncher;
use crate::target::url::UrlLauncher;
use crate::target::{DockerOptions, DockerSource, Launcher, Target};

/// How to grade, apart from what and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// The seed of every random value.
    pub seed: u64,
    /// The run's id (labels Docker resources; names it in reports).
    pub run_id: String,
    /// How many challenges run at once; `None`: all at once when each gets its own service, else one.
    pub jobs: Option<usize>,
    /// Overrides every challenge's pass threshold (percent).
    pub min_score: Option<f64>,
    /// Overrides every challenge's start timeout.
    pub start_timeout: Option<Duration>,
    /// Overrides every challenge's request timeout.
    pub request_timeout: Option<Duration>,
    /// The largest response body read, in bytes.
    pub max_body: usize,
    /// The `--probe` patterns the challenges were filtered with (recorded in the report).
    pub probe_filter: Vec<String>,
    /// Reporters see hidden probes redacted (the returned report keeps them).
    pub redact_hidden: bool,
    /// Fixed ports for the servers proctor hosts, by name (others get a free port); with them, a service that
    /// is already running can be pointed at the servers before the run.
    pub server_ports: std::collections::BTreeMap<String, u16>,
}

impl Options {
    /// Defaults: a random seed and run id, every challenge at once, the default body cap.
    pub fn new() -> Self {
        Self {
            seed: rand::random(),
            run_id: new_run_id(),
            jobs: None,
            min_score: None,
            start_timeout: None,
            request_timeout: None,
            max_body: engine::DEFAULT_MAX_BODY,
            probe_filter: Vec::new(),
            redact_hidden: false,
            server_ports: Default::default(),
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self::new()
    }
}

/// A fresh run id: 8 hex digits.
/// A fresh run id: eight hex digits.
pub fn new_run_id() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Grades `challenges` against `target`. Every service and Docker resource of the run is gone when it returns
/// (unless `keep` asked otherwise), whichever way it ends; cancelling stops between steps and still reports.
pub async fn run(
    challenges: &[Challenge],
    target: Target,
    options: &Options,
    events: &Events,
    cancel: &CancellationToken,
) -> RunReport {
    let started = Instant::now();
    let started_at = engine::now_rfc3339();
    let mut guard = None;
    let mut docker = None;
    let launcher = match target {
        Target::Url(url) => Launcher::Url(UrlLauncher { url }),
        Target::Command(command) => Launcher::Process(ProcessLauncher { command }),
        Target::Reference(defects) => Launcher::Reference(ReferenceLauncher { defects }),
        Target::Docker { source, docker: opts } => {
            let described = source.describe();
            match prepare_docker(options, source, &opts, events, cancel, &mut guard).await {
                Ok((launcher, sandbox, built)) => {
                    docker = Some((sandbox, built));
                    launcher
                }
                Err((reason, logs)) => {
                    // prepare_docker already removed whatever it made.
                    if let Some(guard) = guard.as_mut() {
                        guard.disarm();
                    }
                    let reports = not_graded(challenges, options, &described, &reason, logs, events);
                    return finished(reports, None, (started_at, started), options, events, cancel);
                }
            }
        }
    };
    let compose = matches!(launcher, Launcher::Compose(_));
    let launcher = Arc::new(launcher);
    let config = RunConfig {
        jobs: options
            .jobs
            .unwrap_or(if launcher.isolated() { challenges.len() } else { 1 }),
        launcher,
        seed: options.seed,
        run_id: options.run_id.clone(),
        min_score: options.min_score,
        start_timeout: options.start_timeout,
        request_timeout: options.request_timeout,
        max_body: options.max_body,
        server_ports: options.server_ports.clone(),
    };
    let reports = engine::run(challenges, &config, events, cancel).await;
    drop(config);
    let mut build_log = None;
    // Every service is stopped now: whatever a service left behind (a daemon that escaped its process group)
    // and was reparented to proctor goes too.
    crate::target::process::kill_orphans();
    if let Some((sandbox, built)) = docker {
        build_log = built.as_ref().map(|(_, log)| log.clone());
        if sandbox.keep() {
            events.send(Event::Notice {
                message: kept(
                    &sandbox,
                    challenges,
                    built.as_ref().map(|(tag, _)| tag.as_str()),
                    compose,
                ),
            });
        } else {
            finish(&sandbox, events).await;
        }
    }
    if let Some(guard) = guard.as_mut() {
        guard.disarm();
    }
    finished(reports, build_log, (started_at, started), options, events, cancel)
}

/// The run's report, built here only: sent to the reporters (redacted when asked) and returned.
fn finished(
    challenges: Vec<crate::outcome::ChallengeReport>,
    build_log: Option<String>,
    (started_at, started): (String, Instant),
    options: &Options,
    events: &Events,
    cancel: &CancellationToken,
) -> RunReport {
    let report = RunReport {
        format_version: FORMAT_VERSION,
        proctor_version: env!("CARGO_PKG_VERSION").to_string(),
        seed: options.seed,
        run_id: options.run_id.clone(),
        started_at,
        duration_ms: started.elapsed().as_millis() as u64,
        interrupted: cancel.is_cancelled(),
        challenges,
        build_log,
        probe_filter: options.probe_filter.clone(),
    };
    let shown = if options.redact_hidden {
        crate::report::redact_hidden(&report)
    } else {
        report.clone()
    };
    events.send(Event::RunFinished {
        report: Box::new(shown),
    });
    report
}

/// The reports of challenges that could not be graded at all (Docker unreachable, the image build failed, ...).
fn not_graded(
    challenges: &[Challenge],
    options: &Options,
    target: &str,
    reason: &str,
    logs: Option<String>,
    events: &Events,
) -> Vec<crate::outcome::ChallengeReport> {
    challenges
        .iter()
        .map(|challenge| {
            let mut report = engine::blank_report(challenge, options.min_score, target);
            report.logs = logs.clone();
            engine::finish(report, Some(reason.to_string()), challenge, events, Instant::now())
        })
        .collect()
}

/// The sandbox and, after a build, the image tag and the tail of the build output.
type Prepared = (Launcher, Arc<Sandbox>, Option<(String, String)>);

/// Connects to Docker, builds the submission if asked, and returns the container
/// launcher. On failure: the reason and the build output; nothing of the run is left.
async fn prepare_docker(
    options: &Options,
    source: DockerSource,
    docker: &DockerOptions,
    events: &Events,
    cancel: &CancellationToken,
    guard: &mut Option<SweepGuard>,
) -> Result<Prepared, (String, Option<String>)> {
    let run_id = &options.run_id;
    // Said before anything is built, so that even after a SIGKILL there is an id to clean up by.
    events.send(Event::Notice {
        message: format!(
            "run {run_id}: its containers, networks and images carry the label dev.proctor.run={run_id} (proctor clean --run {run_id})"
        ),
    });
    let mode = docker.network.unwrap_or_else(crate::sandbox::auto_mode);
    let connect = tokio::select! {
        () = cancel.cancelled() => return Err(("interrupted while connecting to Docker".to_string(), None)),
        result = Sandbox::connect(run_id, mode, docker.keep) => result,
    };
    let sandbox = Arc::new(connect.map_err(|e| (error_chain(&e), None))?);
    if !docker.keep {
        *guard = Some(SweepGuard::new(run_id));
    }
    let launcher = match source {
        DockerSource::Image(image) => Launcher::Container(ContainerLauncher {
            sandbox: Arc::clone(&sandbox),
            image,
            limits: docker.limits,
        }),
        DockerSource::Build(dir) => {
            let (image, log) = build(&sandbox, dir, None, docker, events, cancel).await?;
            let launcher = Launcher::Container(ContainerLauncher {
                sandbox: Arc::clone(&sandbox),
                image: image.clone(),
                limits: docker.limits,
            });
            return Ok((launcher, sandbox, Some((image, log))));
        }
        DockerSource::Compose { dir, service, budget } => {
            return prepare_compose(&sandbox, (&dir, service, budget), docker, events, cancel)
                .await
                .map(|(launcher, built)| (launcher, sandbox, built));
        }
    };
    Ok((launcher, sandbox, None))
}

/// Reads a Compose project, picks the graded service and builds the services that have a `build`; the launcher,
/// and the graded service's image with the tail of the build output, when proctor built it.
async fn prepare_compose(
    sandbox: &Arc<Sandbox>,
    (dir, service, budget): (&std::path::Path, Option<String>, crate::target::compose::Budget),
    docker: &DockerOptions,
    events: &Events,
    cancel: &CancellationToken,
) -> Result<(Launcher, Option<(String, String)>), (String, Option<String>)> {
    use crate::target::compose::{ComposeLauncher, Project, Tool};
    let failed = |e: crate::target::TargetError| (error_chain(&e), None);
    let loaded = tokio::select! {
        () = cancel.cancelled() => return Err(("interrupted while reading the Compose project".to_string(), None)),
        loaded = async {
            let tool = Tool::detect().await?;
            let project = Project::load(&tool, dir).await?;
            Ok::<_, crate::target::TargetError>((tool, project))
        } => loaded,
    };
    let (tool, project) = loaded.map_err(failed)?;
    let services = project.services();
    let service = match service {
        Some(service) if services.contains(&service) => service,
        Some(service) => {
            return Err((
                format!(
                    "the Compose project has no service `{service}` (it has {})",
                    services.join(", ")
                ),
                None,
            ));
        }
        None if services.len() == 1 => services[0].clone(),
        None => {
            return Err((
                format!(
                    "the Compose project has several services ({}): name the one to grade with --service",
                    services.join(", ")
                ),
                None,
            ));
        }
    };
    let mut images = std::collections::HashMap::new();
    let mut logs = Vec::new();
    for (name, context) in project.builds().map_err(failed)? {
        let tag = format!("proctor-{}:service-{name}", sandbox.run_id());
        let (image, log) = build(sandbox, context, Some(tag), docker, events, cancel).await?;
        logs.push(format!("--- {name} ---\n{log}"));
        images.insert(name, image);
    }
    let built = images.get(&service).cloned().map(|image| (image, logs.join("\n")));
    let launcher = ComposeLauncher::new(
        Arc::clone(sandbox),
        tool,
        project,
        service,
        images,
        docker.limits,
        budget,
    );
    Ok((Launcher::Compose(Box::new(launcher)), built))
}

/// Builds an image from a folder with the build limits: its tag and the tail of the build output. On failure:
/// the reason and the output, and nothing of the build is left.
async fn build(
    sandbox: &Sandbox,
    dir: std::path::PathBuf,
    tag: Option<String>,
    docker: &DockerOptions,
    events: &Events,
    cancel: &CancellationToken,
) -> Result<(String, String), (String, Option<String>)> {
    let build = BuildOptions {
        dir,
        max_context: docker.max_context,
        timeout: docker.build_timeout,
        limits: docker.build_limits,
        tag,
    };
    let log = LogBuffer::new(1 << 20);
    events.send(Event::BuildStarted);
    let mut on_line = |line: &str| {
        events.send(Event::BuildOutput {
            line: line.trim().to_string(),
        })
    };
    let built = tokio::select! {
        () = cancel.cancelled() => Err(None),
        result = sandbox.build(&build, &log, &mut on_line) => result.map_err(Some),
    };
    events.send(Event::BuildFinished);
    match built {
        Ok(tag) => Ok((tag, log.tail(200))),
        Err(error) => {
            if !docker.keep {
                finish(sandbox, events).await;
                if error.is_none() {
                    // An interrupted build may still commit a layer or two after the connection closes (later on
                    // a loaded engine): sweep until two sweeps in a row find nothing, for at most about 5 s.
                    let mut quiet = 0;
                    for _ in 0..7 {
                        tokio::time::sleep(Duration::from_millis(700)).await;
                        let swept = sandbox.finish().await;
                        quiet = if swept.images + swept.containers == 0 {
                            quiet + 1
                        } else {
                            0
                        };
                        if quiet == 2 {
                            break;
                        }
                    }
                }
            }
            let reason = match error {
                Some(e) => error_chain(&e),
                None => "interrupted while building the image".to_string(),
            };
            Err((reason, Some(log.tail(30))))
        }
    }
}

/// Removes what the run made; says what the engine would not remove, rather than leaving it unsaid.
async fn finish(sandbox: &Sandbox, events: &Events) {
    let swept = sandbox.finish().await;
    if !swept.left.is_empty() {
        let run = sandbox.run_id();
        let mut lines = vec![format!("the engine would not remove what run {run} made:")];
        lines.extend(swept.left.iter().map(|what| format!("  {what}")));
        lines.push(format!(
            "try again with: proctor clean --run {run} (a network the engine still counts endpoints on, with no \
             container left, goes only when the Docker daemon restarts)"
        ));
        events.send(Event::Notice {
            message: lines.join("\n"),
        });
    }
}

/// `--keep`: what was kept and how to look at it.
fn kept(sandbox: &Sandbox, challenges: &[Challenge], built: Option<&str>, compose: bool) -> String {
    let run = sandbox.run_id();
    let mut lines = vec![format!("kept for inspection (run {run}):")];
    for challenge in challenges {
        let name = format!("proctor-{run}-{}", challenge.id);
        lines.push(if compose {
            format!(
                "  Compose project {name}: docker ps -a --filter label=com.docker.compose.project={name} · docker logs CONTAINER"
            )
        } else {
            format!(
                "  container {name}: docker logs {name} · docker inspect {name} · docker exec -it {name} sh (if the image has a shell)"
            )
        });
    }
    lines.push(format!("  network proctor-{run}"));
    if let Some(tag) = built {
        lines.push(format!("  image {tag}"));
    }
    lines.push(format!("remove them with: proctor clean --run {run}"));
    lines.join("\n")
}
