//! Targets: where the service under test runs and its lifecycle, split as testcontainers does.
//!
//! - [`Target`] is a data-only description (what the command line asked for).
//! - A [`Launcher`] is a target made live for a run (the Docker sandbox connected, the image built): it starts
//!   one service per challenge. One file per kind: [`url`], [`process`], [`reference`], [`container`].
//! - A [`Service`] is the running-service handle probes reach through their context: base URL, logs, whether it
//!   has exited, restart, stop. Readiness and failure teardown are written once, here.

pub mod compose;
pub mod container;
pub mod process;
pub mod ready;
pub mod reference;
pub mod url;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::logs::LogBuffer;
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
    /// A service of the Compose project in a folder.
    Compose {
        /// The project's folder.
        dir: PathBuf,
        /// The service graded (may be omitted when the project has one service).
        service: Option<String>,
        /// What the limits of all its containers may add up to.
        budget: compose::Budget,
    },
}

impl DockerSource {
    /// A short description for reports.
    pub fn describe(&self) -> String {
        match self {
            DockerSource::Image(image) => format!("container from {image}"),
            DockerSource::Build(dir) => format!("image built from {}", dir.display()),
            DockerSource::Compose { dir, .. } => format!("Compose project in {}", dir.display()),
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
    /// The run's TLS certificates could not be made.
    #[error("{0}")]
    Tls(String),
    /// A Compose tool or project failed.
    #[error("the Compose project could not be run: {0}")]
    Compose(String),
    /// The data folder of a process could not be made.
    #[error("failed to create the service's data folder")]
    DataDir(#[source] std::io::Error),
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
    /// A service of a Compose project in the Docker sandbox.
    Compose(Box<compose::ComposeLauncher>),
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
            Launcher::Compose(l) => l.describe(),
        }
    }

    /// What a challenge's service leaves behind once its instances are stopped goes: a Compose project is taken
    /// down.
    pub async fn release(&self, challenge: &Challenge) {
        if let Launcher::Compose(l) = self {
            l.release(challenge).await;
        }
    }

    /// The network device probes must bind to (a sandbox network's bridge), if any.
    fn interface(&self) -> Option<String> {
        match self {
            Launcher::Container(l) => l.interface(),
            Launcher::Compose(l) => l.sandbox.probe_interface(),
            _ => None,
        }
    }

    /// Where servers proctor hosts listen so that this target's services reach them: 127.0.0.1 for a local
    /// process or the reference, the run network's gateway for a container; `None` for a service that is already
    /// running (its env is not proctor's to set, so it cannot be told where they are).
    pub async fn server_host(&self) -> Result<Option<std::net::IpAddr>, TargetError> {
        match self {
            Launcher::Url(_) => Ok(None),
            Launcher::Process(_) | Launcher::Reference(_) => Ok(Some(std::net::Ipv4Addr::LOCALHOST.into())),
            Launcher::Container(l) => l.sandbox.gateway().await.map(Some).map_err(TargetError::Sandbox),
            Launcher::Compose(l) => l.sandbox.gateway().await.map(Some).map_err(TargetError::Sandbox),
        }
    }

    /// Starts one instance (not waiting for readiness).
    async fn spawn(&self, launch: &Launch<'_>) -> Result<Spawned, TargetError> {
        match self {
            Launcher::Url(l) => Ok(l.spawn()),
            Launcher::Process(l) => l.spawn(launch),
            Launcher::Reference(l) => l.spawn(launch).await,
            Launcher::Container(l) => l.spawn(launch).await,
            Launcher::Compose(l) => l.spawn(launch).await,
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

/// How to start one instance of a challenge's service.
struct Launch<'a> {
    challenge: &'a Challenge,
    /// The env (the challenge's, possibly changed by a step), without `PORT` and `DATA_DIR`.
    env: Vec<(String, String)>,
    /// Variables a step removed: a local process must not inherit them from proctor's own environment either.
    removed: Vec<String>,
    /// Counts the instances of the service: each container has its own name.
    generation: u32,
    /// Which replica this is (from 0): each replica's containers have their own names.
    replica: u32,
    /// The port an earlier instance had, to keep (a process or the reference).
    port: Option<u16>,
    /// The plain-HTTP port an earlier instance had (a service with `service.tls`).
    http_port: Option<u16>,
    /// The data folder of a process or the reference, if the challenge has one.
    data_dir: Option<&'a std::path::Path>,
    /// Where the instance's output goes.
    logs: LogBuffer,
}

impl Launch<'_> {
    /// The plain-HTTP port of a local process or the reference: `None` without `service.tls`, else the earlier
    /// instance's or a free one.
    fn local_http_port(&self) -> Result<Option<u16>, TargetError> {
        match self.challenge.spec.service.tls {
            Some(_) => port_or_free(self.http_port).map(Some),
            None => Ok(None),
        }
    }

    /// The env of a local process or the reference: the service's, then `PORT`, `HTTP_PORT` and `DATA_DIR`.
    fn local_env(&self, port: u16, http_port: Option<u16>) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        env.push(("PORT".to_string(), port.to_string()));
        if let Some(http_port) = http_port {
            env.push(("HTTP_PORT".to_string(), http_port.to_string()));
        }
        if let Some(dir) = self.data_dir {
            env.push(("DATA_DIR".to_string(), dir.display().to_string()));
        }
        env
    }
}

/// One started instance, before readiness: where it should answer (`None`: it exited before it had an address).
struct Spawned {
    base_url: Option<::url::Url>,
    /// Where its plain-HTTP listener answers (a service with `service.tls`).
    plain_url: Option<::url::Url>,
    instance: Instance,
}

/// A running instance of one kind.
#[derive(Debug)]
enum Instance {
    External,
    Process(Box<process::ServiceProcess>),
    Reference(reference::ReferenceTask),
    Container(Box<crate::sandbox::Container>),
    /// Stopped by a step; started again before anything else needs it.
    Gone,
}

impl Instance {
    async fn exited(&mut self) -> Option<String> {
        match self {
            Instance::Process(process) => process.exited(),
            Instance::Container(container) => container.exited().await,
            Instance::Reference(task) => task.exited(),
            Instance::Gone => Some("was stopped".to_string()),
            Instance::External => None,
        }
    }

    /// The exit code once the instance has ended (a signal `n` counts as `128 + n`, as shells report it).
    async fn exit_code(&mut self) -> Option<i32> {
        match self {
            Instance::Process(process) => process.exit_code(),
            Instance::Container(container) => container.exit_code().await,
            Instance::Reference(task) => task.exit_code(),
            Instance::External | Instance::Gone => None,
        }
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL; the exit code and the time from SIGTERM to the end (the
    /// removal of a container not counted), and the instance is removed.
    async fn terminate(self, grace: Duration) -> (Option<i32>, Duration) {
        let started = std::time::Instant::now();
        match self {
            Instance::External | Instance::Gone => (None, Duration::ZERO),
            Instance::Process(process) => (process.terminate(grace).await, started.elapsed()),
            Instance::Reference(task) => (task.terminate(grace).await, started.elapsed()),
            Instance::Container(container) => {
                let code = container.terminate(grace).await;
                let after = started.elapsed();
                container.stop().await;
                (code, after)
            }
        }
    }

    async fn stop(self, grace: Duration) {
        match self {
            Instance::External | Instance::Gone => {}
            Instance::Process(process) => process.stop(grace).await,
            Instance::Reference(task) => task.stop().await,
            Instance::Container(container) => container.stop().await,
        }
    }
}

/// How a stopped service ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    /// Its exit code (`128 + n` for signal `n`), if one could be read.
    pub exit_code: Option<i32>,
    /// From SIGTERM to the end.
    pub after: Duration,
}

/// How an instance started with other env ended, or that it did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Its exit code, if it exited within the time allowed.
    pub exit_code: Option<i32>,
    /// How it ended, in words (`None`: still running when time was up, so it was stopped).
    pub ended: Option<String>,
    /// How long it ran.
    pub after: Duration,
    /// What it wrote.
    pub output: String,
    /// It answered its readiness check: it started although it should have refused.
    pub ready: bool,
}

/// The longest proctor waits for a `--url` service to answer its readiness check (unless `--start-timeout`).
pub const URL_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The line written into a service's output where it was restarted (not the service's own output).
pub const RESTART_MARKER: &str = "--- restarted ---";

/// How long a stopped service gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A running (or reachable) service: the handle probes reach through their context.
#[derive(Debug)]
pub struct Service {
    launcher: Arc<Launcher>,
    challenge: Challenge,
    start_timeout: Option<Duration>,
    base_url: ::url::Url,
    /// Where the plain-HTTP listener of a service with `service.tls` answers.
    plain_url: Option<::url::Url>,
    /// The run's TLS authority and the service's certificate (a service with `service.tls`).
    tls: Option<Arc<crate::tls::RunTls>>,
    /// The address behind [`crate::tls::SERVICE_NAME`] (a service with `service.tls`).
    tls_ip: Option<std::net::IpAddr>,
    interface: Option<String>,
    instance: Instance,
    generation: u32,
    /// Which replica of the service this is, from 0 (a service with `service.replicas`).
    replica: u32,
    /// The env the service runs with now (the challenge's, as changed by restarts).
    env: indexmap::IndexMap<String, String>,
    /// Variables restarts removed.
    removed: std::collections::BTreeSet<String>,
    /// The output of every instance, in order.
    logs: LogBuffer,
    /// The data folder of a process or the reference (a container's is a volume), shared by the replicas.
    data_dir: Option<Arc<DataDir>>,
}

/// A temporary data folder, removed when dropped.
#[derive(Debug)]
struct DataDir(std::path::PathBuf);

impl DataDir {
    /// The data folder a process or the reference needs (`service.data`; a container's is a volume).
    fn for_target(challenge: &Challenge, launcher: &Launcher) -> Result<Option<Arc<Self>>, TargetError> {
        match (&challenge.spec.service.data, launcher) {
            (Some(_), Launcher::Process(_) | Launcher::Reference(_)) => Ok(Some(Arc::new(Self::create(challenge)?))),
            _ => Ok(None),
        }
    }

    fn create(challenge: &Challenge) -> Result<Self, TargetError> {
        let path = std::env::temp_dir().join(format!(
            "proctor-{}-{}-{:08x}",
            std::process::id(),
            challenge.id,
            rand::random::<u32>()
        ));
        std::fs::create_dir(&path).map_err(TargetError::DataDir)?;
        Ok(Self(path))
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub use crate::spec::model::EnvChanges;

impl Service {
    /// Starts (or reaches) the service for one challenge and waits until it is ready.
    ///
    /// On failure, the second value is the tail of the service's output, when there is one.
    pub async fn start(
        launcher: Arc<Launcher>,
        challenge: &Challenge,
        start_timeout: Option<Duration>,
    ) -> Result<Self, (TargetError, Option<String>)> {
        let env = challenge.spec.service.env.clone();
        let data_dir = DataDir::for_target(challenge, &launcher).map_err(|e| (e, None))?;
        Self::start_replica(launcher, challenge, start_timeout, env, 0, data_dir).await
    }

    /// Starts (or reaches) every replica of the service for one challenge (`service.replicas`, one by default),
    /// side by side, with the service's env given (the challenge's, with the URLs of proctor's servers filled
    /// in), and waits until all are ready. The replicas share the data folder. When one fails, the others are
    /// stopped.
    pub async fn start_replicas(
        launcher: Arc<Launcher>,
        challenge: &Challenge,
        start_timeout: Option<Duration>,
        env: indexmap::IndexMap<String, String>,
    ) -> Result<Vec<Self>, (TargetError, Option<String>)> {
        let replicas = challenge.spec.service.replicas.max(1);
        if replicas > 1 && matches!(launcher.as_ref(), Launcher::Url(_)) {
            // One URL is one instance: the replicas must be started, and addressed one by one, by proctor.
            return Err((
                TargetError::Unsupported {
                    action: "running the service as several replicas",
                    target: launcher.describe(),
                },
                None,
            ));
        }
        let data_dir = DataDir::for_target(challenge, &launcher).map_err(|e| (e, None))?;
        let started = futures::future::join_all((0..replicas).map(|replica| {
            let (launcher, env, data_dir) = (Arc::clone(&launcher), env.clone(), data_dir.clone());
            Self::start_replica(launcher, challenge, start_timeout, env, replica, data_dir)
        }))
        .await;
        let mut ready = Vec::new();
        let mut failure = None;
        for result in started {
            match result {
                Ok(service) => ready.push(service),
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        match failure {
            None => Ok(ready),
            Some(error) => {
                futures::future::join_all(ready.into_iter().map(Service::stop)).await;
                Err(error)
            }
        }
    }

    async fn start_replica(
        launcher: Arc<Launcher>,
        challenge: &Challenge,
        start_timeout: Option<Duration>,
        mut env: indexmap::IndexMap<String, String>,
        replica: u32,
        data_dir: Option<Arc<DataDir>>,
    ) -> Result<Self, (TargetError, Option<String>)> {
        let tls = match &challenge.spec.service.tls {
            Some(_) if matches!(launcher.as_ref(), Launcher::Url(_)) => {
                // The service's certificate is made for the run and given in its env: proctor must start it.
                return Err((
                    TargetError::Unsupported {
                        action: "giving the service the run's TLS certificate",
                        target: launcher.describe(),
                    },
                    None,
                ));
            }
            Some(_) => {
                let tls = crate::tls::RunTls::generate().map_err(|e| (TargetError::Tls(e), None))?;
                env.insert("TLS_CERT".to_string(), tls.cert_pem.clone());
                env.insert("TLS_KEY".to_string(), tls.key_pem.clone());
                Some(Arc::new(tls))
            }
            None => None,
        };
        let mut service = Self {
            interface: launcher.interface(),
            launcher,
            challenge: challenge.clone(),
            start_timeout,
            base_url: local_url(0),
            plain_url: None,
            tls,
            tls_ip: None,
            instance: Instance::Gone,
            generation: 0,
            replica,
            env,
            removed: Default::default(),
            logs: LogBuffer::new(1 << 20),
            data_dir,
        };
        let ready = service.ready_instance(None, None).await?;
        service.adopt(ready);
        Ok(service)
    }

    fn launch(
        &self,
        port: Option<u16>,
        http_port: Option<u16>,
        env: &indexmap::IndexMap<String, String>,
        removed: &std::collections::BTreeSet<String>,
        logs: LogBuffer,
    ) -> Launch<'_> {
        Launch {
            challenge: &self.challenge,
            env: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            removed: removed.iter().cloned().collect(),
            generation: self.generation,
            replica: self.replica,
            port,
            http_port,
            data_dir: self.data_dir.as_ref().map(|d| d.0.as_path()),
            logs,
        }
    }

    /// Spawns an instance and waits until it is ready; on failure, tears it down and says why, with its last
    /// output.
    async fn ready_instance(
        &self,
        port: Option<u16>,
        http_port: Option<u16>,
    ) -> Result<Ready, (TargetError, Option<String>)> {
        let launch = self.launch(port, http_port, &self.env, &self.removed, self.logs.clone());
        ready_instance(&self.launcher, &launch, self.start_timeout, self.tls.as_deref()).await
    }

    /// Takes a ready instance's addresses and handle.
    fn adopt(&mut self, ready: Ready) {
        self.base_url = ready.base_url;
        self.plain_url = ready.plain_url;
        self.tls_ip = ready.tls_ip;
        self.instance = ready.instance;
    }

    /// Where probes send requests (for a service with `service.tls`, `https://service.proctor.test:<port>/`).
    pub fn base_url(&self) -> &::url::Url {
        &self.base_url
    }

    /// The port the service was given: a container's own port (whatever port it is published on), else the port
    /// probes reach.
    pub fn port_given(&self) -> Option<u16> {
        match self.launcher.as_ref() {
            Launcher::Container(_) | Launcher::Compose(_) => Some(self.challenge.spec.service.port),
            _ => self.base_url.port_or_known_default(),
        }
    }

    /// Where the plain-HTTP listener of a service with `service.tls` answers.
    pub fn plain_url(&self) -> Option<&::url::Url> {
        self.plain_url.as_ref()
    }

    /// The TLS trust probes need for a service with `service.tls`: the run's authority and the address behind
    /// the service's name.
    pub fn client_tls(&self) -> Option<crate::http::ClientTls> {
        Some(crate::http::ClientTls {
            ca_der: self.tls.as_ref()?.ca_der.clone(),
            ip: self.tls_ip?,
            verify: true,
        })
    }

    /// The run's TLS material (a service with `service.tls`).
    pub fn tls(&self) -> Option<&crate::tls::RunTls> {
        self.tls.as_deref()
    }

    /// The network device probes must bind to (a sandbox network's bridge), if any.
    pub fn interface(&self) -> Option<String> {
        self.interface.clone()
    }

    /// The env the service runs with now.
    pub fn env(&self) -> &indexmap::IndexMap<String, String> {
        &self.env
    }

    /// The tail of the service's output, when proctor started it (across restarts).
    pub fn logs(&self) -> Option<String> {
        let tail = self.logs.tail(200);
        (self.has_output() && !tail.trim().is_empty()).then_some(tail)
    }

    /// Whether proctor sees the service's output (it started it).
    pub fn has_output(&self) -> bool {
        !matches!(self.launcher.as_ref(), Launcher::Url(_))
    }

    /// A mark in the service's output: [`Self::output_since`] reads what it wrote after.
    pub fn output_mark(&self) -> u64 {
        self.logs.mark()
    }

    /// Waits until no new output has arrived for `quiet` (at most `bound`): output written earlier but delivered
    /// late (a container's log stream, a buffered stdout) is then before the next mark.
    pub async fn settle_output(&self, quiet: Duration, bound: Duration) {
        let deadline = std::time::Instant::now() + bound;
        let mut mark = self.logs.mark();
        while std::time::Instant::now() < deadline {
            tokio::time::sleep(quiet).await;
            let now = self.logs.mark();
            if now == mark {
                return;
            }
            mark = now;
        }
    }

    /// What the service wrote after `mark` (`None` when proctor does not see its output).
    pub fn output_since(&self, mark: u64) -> Option<String> {
        self.has_output().then(|| self.logs.since(mark))
    }

    /// `Some(how it ended)` when a service proctor started is no longer running (exited, OOM-killed).
    pub async fn exited(&mut self) -> Option<String> {
        self.instance.exited().await
    }

    /// Whether a step stopped the service (it is started again before anything else needs it).
    pub fn stopped(&self) -> bool {
        matches!(self.instance, Instance::Gone)
    }

    fn unsupported(&self, action: &'static str) -> Option<TargetError> {
        matches!(self.launcher.as_ref(), Launcher::Url(_)).then(|| TargetError::Unsupported {
            action,
            target: self.launcher.describe(),
        })
    }

    /// Stops the service gracefully and starts it again with its env changed by `changes` (and the same data
    /// folder), then waits until it is ready. A process or the reference keeps its port; a container may get a
    /// new address ([`Self::base_url`]).
    pub async fn restart(&mut self, changes: &EnvChanges) -> Result<(), (TargetError, Option<String>)> {
        if let Some(error) = self.unsupported("restarting the service") {
            return Err((error, None));
        }
        if matches!(self.launcher.as_ref(), Launcher::Compose(_)) && !changes.is_empty() {
            // Refused before the instance is stopped: the project's containers keep the env they were made with.
            return Err((
                TargetError::Unsupported {
                    action: "changing the env of a service of a Compose project",
                    target: self.launcher.describe(),
                },
                None,
            ));
        }
        let port = self.base_url.port_or_known_default();
        let http_port = self.plain_url.as_ref().and_then(::url::Url::port_or_known_default);
        // Gracefully, as a deploy would: SIGTERM, then SIGKILL after the grace period (a container included).
        let old = std::mem::replace(&mut self.instance, Instance::Gone);
        let _ = old.terminate(STOP_GRACE).await;
        self.logs.push(format!("\n{RESTART_MARKER}\n").as_bytes());
        apply(&mut self.env, &mut self.removed, changes);
        self.generation += 1;
        let ready = self.ready_instance(port, http_port).await?;
        self.adopt(ready);
        Ok(())
    }

    /// Restarts another service of the submission's Compose project (`docker compose restart`); only a Compose
    /// target has other services.
    pub async fn restart_dependency(&self, name: &str) -> Result<(), TargetError> {
        match self.launcher.as_ref() {
            Launcher::Compose(launcher) => launcher.restart_service(&self.challenge, name).await,
            _ => Err(TargetError::Unsupported {
                action: "restarting another service of a Compose project",
                target: self.launcher.describe(),
            }),
        }
    }

    /// Sends SIGTERM (to PID 1 of a container, to the process group of a process; the in-process reference shuts
    /// down gracefully), gives it `grace` to exit, then kills it. The service stays stopped until
    /// [`Self::restart`].
    pub async fn terminate(&mut self, grace: Duration) -> Result<Terminated, TargetError> {
        if let Some(error) = self.unsupported("stopping the service") {
            return Err(error);
        }
        let old = std::mem::replace(&mut self.instance, Instance::Gone);
        let (exit_code, after) = old.terminate(grace).await;
        Ok(Terminated { exit_code, after })
    }

    /// Starts another instance with the env changed by `changes` (on a port of its own; the service keeps
    /// running) and waits up to `within` for it to exit; it is stopped if it has not.
    pub async fn attempt(&mut self, changes: &EnvChanges, within: Duration) -> Result<Attempt, TargetError> {
        if let Some(error) = self.unsupported("starting the service with other settings") {
            return Err(error);
        }
        if matches!(self.launcher.as_ref(), Launcher::Compose(_)) {
            return Err(TargetError::Unsupported {
                action: "starting another instance of a service of a Compose project with other settings",
                target: self.launcher.describe(),
            });
        }
        let (mut env, mut removed) = (self.env.clone(), self.removed.clone());
        apply(&mut env, &mut removed, changes);
        self.generation += 1;
        let output = LogBuffer::new(1 << 20);
        let launch = self.launch(None, None, &env, &removed, output.clone());
        let started = std::time::Instant::now();
        let (base_url, mut instance, client) = match self.launcher.spawn(&launch).await {
            Ok(spawned) => {
                let (base_url, _, tls) = tls_addresses(spawned.base_url, None, self.tls.as_deref());
                let client = crate::http::build_client(
                    Duration::from_secs(2),
                    self.launcher.interface().as_deref(),
                    tls.as_ref(),
                )
                .map_err(|e| TargetError::Client(e.to_string()))?;
                (base_url, spawned.instance, client)
            }
            // The in-process reference refuses a configuration before it runs: as a process exiting 1 would.
            Err(TargetError::Reference(message)) => {
                return Ok(Attempt {
                    exit_code: Some(1),
                    ended: Some("exited with status 1".to_string()),
                    after: started.elapsed(),
                    output: message,
                    ready: false,
                });
            }
            Err(e) => return Err(e),
        };
        // The bound counts from when the instance runs: the engine's time to create it is not the service's.
        let started = std::time::Instant::now();
        let deadline = started + within;
        let mut ready = false;
        let ended = loop {
            if let Some(how) = instance.exited().await {
                break Some(how);
            }
            // A service that answers has started: no need to wait out the bound to know it did not refuse.
            if let Some(url) = &base_url
                && ready::check_once(&self.challenge.spec.service.ready, url, &client)
                    .await
                    .is_ok()
            {
                ready = true;
                break None;
            }
            if std::time::Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let after = started.elapsed();
        let exit_code = instance.exit_code().await;
        // Give the output readers a moment to deliver the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        instance.stop(Duration::from_secs(2)).await;
        Ok(Attempt {
            exit_code: ended.as_ref().and(exit_code),
            ended,
            after,
            output: output.text(),
            ready,
        })
    }

    /// The configuration of the image the service runs from; `None` when it is not a container.
    pub async fn image(&self) -> Option<Result<crate::sandbox::ImageFacts, TargetError>> {
        match self.launcher.as_ref() {
            Launcher::Container(launcher) => Some(
                launcher
                    .sandbox
                    .image_facts(&launcher.image)
                    .await
                    .map_err(TargetError::Sandbox),
            ),
            Launcher::Compose(launcher) => Some(match launcher.image() {
                Some(image) => launcher.sandbox.image_facts(&image).await.map_err(TargetError::Sandbox),
                None => Err(TargetError::Compose(format!(
                    "service `{}` has no image",
                    launcher.service
                ))),
            }),
            _ => None,
        }
    }

    /// Stops whatever proctor started.
    pub async fn stop(self) {
        self.instance.stop(STOP_GRACE).await;
    }
}

fn apply(
    env: &mut indexmap::IndexMap<String, String>,
    removed: &mut std::collections::BTreeSet<String>,
    changes: &EnvChanges,
) {
    for (name, value) in changes {
        match value {
            Some(value) => {
                env.insert(name.clone(), value.clone());
                removed.remove(name);
            }
            None => {
                env.shift_remove(name);
                removed.insert(name.clone());
            }
        }
    }
}

/// A ready instance: where it answers, and its handle.
struct Ready {
    base_url: ::url::Url,
    plain_url: Option<::url::Url>,
    tls_ip: Option<std::net::IpAddr>,
    instance: Instance,
}

/// For a service with `service.tls`, the spawned addresses as probes use them: `https://service.proctor.test:<port>/`
/// and `http://service.proctor.test:<http port>/`, with the address behind the name and the trust to reach it.
fn tls_addresses(
    base_url: Option<::url::Url>,
    plain_url: Option<::url::Url>,
    tls: Option<&crate::tls::RunTls>,
) -> (Option<::url::Url>, Option<::url::Url>, Option<crate::http::ClientTls>) {
    let Some(tls) = tls else {
        return (base_url, plain_url, None);
    };
    let ip = base_url.as_ref().and_then(|u| match u.host() {
        Some(::url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(::url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        _ => None,
    });
    let named = |url: Option<::url::Url>, scheme: &str| {
        let port = url?.port_or_known_default()?;
        ::url::Url::parse(&format!("{scheme}://{}:{port}/", crate::tls::SERVICE_NAME)).ok()
    };
    // Readiness and start attempts only ask whether the service is up: its certificate is checked by the probes.
    let client = ip.map(|ip| crate::http::ClientTls {
        ca_der: tls.ca_der.clone(),
        ip,
        verify: false,
    });
    (named(base_url, "https"), named(plain_url, "http"), client)
}

/// Spawns an instance and waits until it is ready; on failure, tears it down and says why, with its last output.
async fn ready_instance(
    launcher: &Launcher,
    launch: &Launch<'_>,
    start_timeout: Option<Duration>,
    tls: Option<&crate::tls::RunTls>,
) -> Result<Ready, (TargetError, Option<String>)> {
    let timeout = start_timeout.unwrap_or_else(|| launcher.start_timeout(launch.challenge));
    let mark = launch.logs.mark();
    let Spawned {
        base_url,
        plain_url,
        mut instance,
    } = launcher.spawn(launch).await.map_err(|e| (e, None))?;
    // The start time-out is the service's: it counts from when the instance runs, not while a busy engine
    // creates its container (or other challenges' containers go first).
    let deadline = Instant::now() + timeout;
    let (base_url, plain_url, client_tls) = tls_addresses(base_url, plain_url, tls);
    // Readiness requests go where the probes will go: for a sandboxed target, through the run network's bridge;
    // over TLS, trusting only the run's authority.
    let client = match crate::http::build_client(
        Duration::from_secs(5),
        launcher.interface().as_deref(),
        client_tls.as_ref(),
    ) {
        Ok(client) => client,
        Err(e) => {
            instance.stop(Duration::from_secs(2)).await;
            return Err((TargetError::Client(e.to_string()), None));
        }
    };
    let waited = match &base_url {
        Some(url) => {
            let ready = &launch.challenge.spec.service.ready;
            match ready::wait_until_ready(ready, url, &client, deadline, &mut instance).await {
                Ok(()) => {
                    return Ok(Ready {
                        base_url: url.clone(),
                        plain_url,
                        tls_ip: client_tls.map(|t| t.ip),
                        instance,
                    });
                }
                Err(reason) => reason,
            }
        }
        None => "stopped at once".to_string(),
    };
    let exited = instance.exited().await;
    // Give the output readers a moment to deliver the last lines.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = (!matches!(instance, Instance::External)).then(|| {
        let text = launch.logs.since(mark);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    });
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
