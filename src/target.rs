//! Targets: where the service under test runs and its lifecycle, split as testcontainers does.
//!
//! - [`Target`] is a data-only description (what the command line asked for).
//! - A [`Launcher`] is a target made live for a run (the Docker sandbox connected, the image built): it starts
//!   one service per challenge. One file per kind: [`url`], [`process`], [`reference`], [`container`].
//! - A [`Service`] is the running-service handle probes reach through their context: base URL, logs, whether it
//!   has exited, restart, stop. Readiness and failure teardown are written once, here.

pub mod container;
pub mod process;
pub mod ready;
pub mod reference;
pub mod url;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::sandbox::{BuildLimits, NetworkMode, SandboxError};
use crate::spec::Challenge;
use crate::spec::model::Limits;

/// How to reach or start the service under test: a description only, nothing running.
#[derive(Debug, Clone)]
pub enum Target {
    /// A service that is already running.
    Url(::url::Url),
    /// A shell command that starts the service; it gets `PORT` and the challenge's env.
    Command(String),
    /// The bundled reference service, in-process, with these defects switched on (comma-separated).
    Reference(String),
    /// A container in the Docker sandbox (one fresh container per challenge).
    Docker {
        /// Its image.
        source: DockerSource,
        /// How to build and run it.
        docker: DockerOptions,
    },
}

/// Where a container's image comes from.
#[derive(Debug, Clone)]
pub enum DockerSource {
    /// An image the engine already has.
    Image(String),
    /// Built from a folder with a Dockerfile.
    Build(PathBuf),
}

impl DockerSource {
    /// A short description for reports.
    pub fn describe(&self) -> String {
        match self {
            DockerSource::Image(image) => format!("container from {image}"),
            DockerSource::Build(dir) => format!("image built from {}", dir.display()),
        }
    }
}

/// How the Docker sandbox builds and runs a submission.
#[derive(Debug, Clone)]
pub struct DockerOptions {
    /// How probes reach containers; `None` picks by where the engine is (see [`crate::sandbox::auto_mode`]).
    pub network: Option<NetworkMode>,
    /// Keep containers, network and image after the run for inspection.
    pub keep: bool,
    /// Container limits from the command line (over the spec's, over the defaults).
    pub limits: Limits,
    /// The longest a build may take.
    pub build_timeout: Duration,
    /// The largest build context sent, in bytes.
    pub max_context: u64,
    /// The build's own limits.
    pub build_limits: BuildLimits,
}

/// Why a target could not be started, reached or restarted.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The command could not be spawned.
    #[error("failed to start `{command}`")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The process exited before it was ready.
    #[error("the service {reason} before it was ready")]
    Exited {
        /// How it ended.
        reason: String,
    },
    /// Never ready within the timeout.
    #[error("the service at {url} was not ready within {} s: {reason}", timeout.as_secs_f64())]
    NotReady {
        /// Base URL (passwords redacted).
        url: String,
        /// The timeout.
        timeout: Duration,
        /// The last error.
        reason: String,
    },
    /// A local port could not be found.
    #[error("failed to find a free local port")]
    Port(#[source] std::io::Error),
    /// The reference service refused its configuration.
    #[error("failed to configure the reference service: {0}")]
    Reference(String),
    /// A Docker operation failed.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The HTTP client could not be built.
    #[error("failed to build the HTTP client: {0}")]
    Client(String),
    /// The target cannot do what the spec asks of it (restart a service proctor did not start, ...).
    #[error("{action} is not possible for {target}: proctor did not start that service")]
    Unsupported {
        /// What was asked.
        action: &'static str,
        /// The target, described.
        target: String,
    },
}

/// A target made live for a run: starts one service per challenge.
#[derive(Debug)]
pub enum Launcher {
    /// A service that is already running.
    Url(url::UrlLauncher),
    /// A local process.
    Process(process::ProcessLauncher),
    /// The in-process reference service.
    Reference(reference::ReferenceLauncher),
    /// A container in the Docker sandbox.
    Container(container::ContainerLauncher),
}

impl Launcher {
    /// Whether several challenges may run against this target at once (each gets its own service).
    pub fn isolated(&self) -> bool {
        !matches!(self, Launcher::Url(_))
    }

    /// A one-line description for reports.
    pub fn describe(&self) -> String {
        match self {
            Launcher::Url(l) => l.describe(),
            Launcher::Process(l) => l.describe(),
            Launcher::Reference(l) => l.describe(),
            Launcher::Container(l) => l.describe(),
        }
    }

    /// The network device probes must bind to (a sandbox network's bridge), if any.
    fn interface(&self) -> Option<String> {
        match self {
            Launcher::Container(l) => l.interface(),
            _ => None,
        }
    }

    /// Starts one instance (not waiting for readiness). `port` asks for the port an earlier instance had.
    async fn spawn(&self, challenge: &Challenge, generation: u32, port: Option<u16>) -> Result<Spawned, TargetError> {
        match self {
            Launcher::Url(l) => Ok(l.spawn()),
            Launcher::Process(l) => l.spawn(challenge, port),
            Launcher::Reference(l) => l.spawn(challenge, port).await,
            Launcher::Container(l) => l.spawn(challenge, generation).await,
        }
    }

    /// How long to wait for readiness by default.
    fn start_timeout(&self, challenge: &Challenge) -> Duration {
        let timeout = challenge.spec.service.start_timeout.0;
        match self {
            // A URL is expected to be up already: wait less for it than for a service proctor starts itself.
            Launcher::Url(_) => timeout.min(URL_READY_TIMEOUT),
            _ => timeout,
        }
    }
}

/// One started instance, before readiness: where it should answer (`None`: it exited before it had an address).
struct Spawned {
    base_url: Option<::url::Url>,
    instance: Instance,
}

/// A running instance of one kind.
#[derive(Debug)]
enum Instance {
    External,
    Process(Box<process::ServiceProcess>),
    Reference(reference::ReferenceTask),
    Container(Box<crate::sandbox::Container>),
}

impl Instance {
    fn logs(&self, lines: usize) -> Option<String> {
        match self {
            Instance::Process(p) => Some(p.logs.tail(lines)),
            Instance::Container(c) => Some(c.logs.tail(lines)),
            Instance::External | Instance::Reference(_) => None,
        }
    }

    async fn exited(&mut self) -> Option<String> {
        match self {
            Instance::Process(process) => process.exited(),
            Instance::Container(container) => container.exited().await,
            Instance::Reference(task) => task.exited(),
            Instance::External => None,
        }
    }

    async fn stop(self, grace: Duration) {
        match self {
            Instance::External => {}
            Instance::Process(process) => process.stop(grace).await,
            Instance::Reference(task) => task.stop().await,
            Instance::Container(container) => container.stop().await,
        }
    }
}

/// The longest proctor waits for a `--url` service to answer its readiness check (unless `--start-timeout`).
pub const URL_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a stopped service gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A running (or reachable) service: the handle probes reach through their context.
#[derive(Debug)]
pub struct Service {
    launcher: Arc<Launcher>,
    challenge: Challenge,
    start_timeout: Option<Duration>,
    base_url: ::url::Url,
    interface: Option<String>,
    instance: Instance,
    generation: u32,
    /// The output of instances before a restart.
    earlier_logs: Vec<String>,
}

impl Service {
    /// Starts (or reaches) the service for one challenge and waits until it is ready.
    ///
    /// On failure, the second value is the tail of the service's output, when there is one.
    pub async fn start(
        launcher: Arc<Launcher>,
        challenge: &Challenge,
        start_timeout: Option<Duration>,
    ) -> Result<Self, (TargetError, Option<String>)> {
        let interface = launcher.interface();
        let (base_url, instance) = ready_instance(&launcher, challenge, start_timeout, 0, None).await?;
        Ok(Self {
            launcher,
            challenge: challenge.clone(),
            start_timeout,
            base_url,
            interface,
            instance,
            generation: 0,
            earlier_logs: Vec::new(),
        })
    }

    /// Where probes send requests.
    pub fn base_url(&self) -> &::url::Url {
        &self.base_url
    }

    /// The network device probes must bind to (a sandbox network's bridge), if any.
    pub fn interface(&self) -> Option<String> {
        self.interface.clone()
    }

    /// The tail of the service's output, when proctor started it (across restarts).
    pub fn logs(&self) -> Option<String> {
        let current = self.instance.logs(200)?;
        let mut parts = self.earlier_logs.clone();
        parts.push(current);
        Some(parts.join("\n--- restarted ---\n"))
    }

    /// `Some(how it ended)` when a service proctor started is no longer running (exited, OOM-killed).
    pub async fn exited(&mut self) -> Option<String> {
        self.instance.exited().await
    }

    /// Stops the service gracefully and starts it again with the same configuration, then waits until it is
    /// ready. A process or the reference keeps its port; a container may get a new address ([`Self::base_url`]).
    pub async fn restart(&mut self) -> Result<(), (TargetError, Option<String>)> {
        if matches!(self.instance, Instance::External) {
            return Err((
                TargetError::Unsupported {
                    action: "restarting the service",
                    target: self.launcher.describe(),
                },
                None,
            ));
        }
        let port = self.base_url.port_or_known_default();
        let old = std::mem::replace(&mut self.instance, Instance::External);
        if let Some(logs) = old.logs(200) {
            self.earlier_logs.push(logs);
        }
        old.stop(STOP_GRACE).await;
        self.generation += 1;
        let (base_url, instance) = ready_instance(
            &self.launcher,
            &self.challenge,
            self.start_timeout,
            self.generation,
            port,
        )
        .await?;
        self.base_url = base_url;
        self.instance = instance;
        Ok(())
    }

    /// Stops whatever proctor started.
    pub async fn stop(self) {
        self.instance.stop(STOP_GRACE).await;
    }
}

/// Spawns an instance and waits until it is ready; on failure, tears it down and says why, with its last output.
async fn ready_instance(
    launcher: &Launcher,
    challenge: &Challenge,
    start_timeout: Option<Duration>,
    generation: u32,
    port: Option<u16>,
) -> Result<(::url::Url, Instance), (TargetError, Option<String>)> {
    // Readiness requests go where the probes will go: for a sandboxed target, through the run network's bridge.
    let client = crate::http::build_client(Duration::from_secs(5), launcher.interface().as_deref())
        .map_err(|e| (TargetError::Client(e.to_string()), None))?;
    let timeout = start_timeout.unwrap_or_else(|| launcher.start_timeout(challenge));
    let deadline = Instant::now() + timeout;
    let Spawned { base_url, mut instance } = launcher
        .spawn(challenge, generation, port)
        .await
        .map_err(|e| (e, None))?;
    let waited = match &base_url {
        Some(url) => {
            let ready = &challenge.spec.service.ready;
            match ready::wait_until_ready(ready, url, &client, deadline, &mut instance).await {
                Ok(()) => return Ok((url.clone(), instance)),
                Err(reason) => reason,
            }
        }
        None => "stopped at once".to_string(),
    };
    let exited = instance.exited().await;
    // Give the output readers a moment to deliver the last lines.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = instance.logs(30);
    instance.stop(Duration::from_secs(2)).await;
    let error = match (exited, base_url) {
        (Some(how), _) => TargetError::Exited { reason: how },
        (None, Some(url)) => TargetError::NotReady {
            url: crate::http::redacted(&url),
            timeout,
            reason: waited,
        },
        (None, None) => TargetError::Exited { reason: waited },
    };
    Err((error, logs))
}

/// `http://127.0.0.1:<port>/`.
fn local_url(port: u16) -> ::url::Url {
    ::url::Url::parse(&format!("http://127.0.0.1:{port}/"))
        .unwrap_or_else(|_| unreachable!("a loopback URL always parses"))
}

/// A free local port (for a process or the reference), or the one asked for.
fn port_or_free(port: Option<u16>) -> Result<u16, TargetError> {
    match port {
        Some(port) => Ok(port),
        None => Ok(std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map_err(TargetError::Port)?
            .port()),
    }
}

/// The challenge's env with `PORT`.
fn service_env(challenge: &Challenge, port: u16) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = challenge
        .spec
        .service
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.push(("PORT".to_string(), port.to_string()));
    env
}
