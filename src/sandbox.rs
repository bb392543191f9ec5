//! The Docker sandbox: builds the candidate's image, runs it in a locked-down container on a network with no
//! egress, captures its logs, and removes everything it made on every exit path.
//!
//! Cleanup has three layers, as in testcontainers: explicit async teardown ([`Container::stop`],
//! [`Sandbox::finish`]), a blocking sweep from a `Drop` guard for panics and early returns ([`SweepGuard`]), and
//! labels on everything so `proctor clean` can remove whatever a killed process left behind.

mod build;
mod container;
pub mod context;
mod gate;

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, RemoveVolumeOptionsBuilder,
};
use tokio::sync::OnceCell;

pub use build::{BuildLimits, BuildNetwork, BuildOptions, DEFAULT_BUILD_MEMORY, MAX_BUILD_MEMORY};
pub use container::{Container, ImageFacts, Slot};

/// Every container, network and image proctor makes carries this label (value `1`).
pub const MANAGED_LABEL: &str = "dev.proctor.managed";
/// ... and this one, with the run id.
pub const RUN_LABEL: &str = "dev.proctor.run";
/// How many containers a run creates and starts at once. Measured on two cores with the 25-challenge catalog: all
/// at once, the last container answered after ~4 s and the longest challenge's after ~2 s; two at a time, the
/// longest first, it answers after ~0.8 s and the catalog takes 19.4 s instead of 21.5 s (one at a time: 21 s,
/// restarts queue).
const START_AT_ONCE: usize = 2;

/// How probes reach the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// An internal bridge network (no egress); probes use the container's address on it. Linux engines.
    Internal,
    /// A normal bridge network with the port published (see [`published_host`]): for engines whose container
    /// addresses are not routable from the host (Docker Desktop, remote engines). Egress is not blocked.
    Published,
}

/// Where published ports are reached: the engine's machine when `DOCKER_HOST` names another one over TCP (the
/// ports are then published on all of its addresses, since proctor cannot know which of them reaches this
/// one), else 127.0.0.1 (a local socket, Docker Desktop, or an engine tunnelled to a port of this machine).
/// `None` for 127.0.0.1.
pub fn published_host(docker_host: &str) -> Option<String> {
    let url = url::Url::parse(docker_host).ok()?;
    if !["tcp", "http", "https"].contains(&url.scheme()) {
        return None;
    }
    let host = url.host()?;
    let loopback = match &host {
        // `tcp://` is not a special scheme: its IPv4 hosts come as names.
        url::Host::Domain(name) => match name.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => name.eq_ignore_ascii_case("localhost"),
        },
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    (!loopback).then(|| match host {
        url::Host::Ipv6(ip) => format!("[{ip}]"),
        other => other.to_string(),
    })
}

/// Errors of Docker operations: one variant per operation, each saying what to do next.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// No engine answered.
    #[error(
        "failed to reach Docker: is it running? Start the daemon (or Docker Desktop), or set DOCKER_HOST to the engine's address"
    )]
    Connect(#[source] bollard::errors::Error),
    /// The build context could not be made.
    #[error("failed to prepare the build context")]
    Context(#[source] context::ContextError),
    /// The build failed.
    #[error("the image build failed at {step}: {message}")]
    Build {
        /// The Dockerfile step that failed.
        step: String,
        /// The engine's error.
        message: String,
    },
    /// The build took too long.
    #[error("the image build did not finish within {} s (--build-timeout)", .0.as_secs_f64())]
    BuildTimeout(Duration),
    /// The engine refused the build, or its stream broke.
    #[error("the Docker engine did not build the image")]
    BuildStream(#[source] bollard::errors::Error),
    /// The image does not exist on the engine.
    #[error("image `{0}` is not on this Docker engine: build it, pull it, or use --path to have proctor build it")]
    NoImage(String),
    /// Network creation failed.
    #[error("failed to create the sandbox network")]
    CreateNetwork(#[source] bollard::errors::Error),
    /// Container creation failed.
    #[error("failed to create the container")]
    CreateContainer(#[source] bollard::errors::Error),
    /// Container start failed.
    #[error("failed to start the container")]
    StartContainer(#[source] bollard::errors::Error),
    /// Container inspection failed.
    #[error("failed to inspect the container")]
    Inspect(#[source] bollard::errors::Error),
    /// The container has no address to reach it at.
    #[error("the container has no address on the sandbox network")]
    NoAddress,
}

/// A connection to Docker for one run: its id labels everything it makes.
#[derive(Debug)]
pub struct Sandbox {
    docker: Docker,
    run_id: String,
    mode: NetworkMode,
    network: OnceCell<String>,
    /// Where published ports are reached, when not on 127.0.0.1 (see [`published_host`]).
    published: Option<String>,
    keep: bool,
    /// Containers being created and started (see [`Sandbox::start`]).
    starting: gate::PriorityGate,
}

/// What a sweep removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Containers removed.
    pub containers: usize,
    /// Networks removed.
    pub networks: usize,
    /// Images removed.
    pub images: usize,
    /// Volumes removed (a challenge's data folder).
    pub volumes: usize,
    /// What could not be removed, each with the engine's reason: `network proctor-1a2b3c4d: …`.
    pub left: Vec<String>,
}

/// Connects with `DOCKER_HOST` or the default socket and negotiates the API version.
pub async fn connect() -> Result<Docker, SandboxError> {
    let docker = Docker::connect_with_defaults().map_err(SandboxError::Connect)?;
    let docker = docker.negotiate_version().await.map_err(SandboxError::Connect)?;
    docker.ping().await.map_err(SandboxError::Connect)?;
    Ok(docker)
}

/// The network mode `auto` picks: internal where container addresses are routable (a local Linux engine on a
/// Unix socket), published otherwise.
pub fn auto_mode() -> NetworkMode {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    let local = host.is_empty() || host.starts_with("unix://");
    if cfg!(target_os = "linux") && local {
        NetworkMode::Internal
    } else {
        NetworkMode::Published
    }
}

fn label_filter(run: Option<&str>) -> HashMap<String, Vec<String>> {
    let label = match run {
        Some(run) => format!("{RUN_LABEL}={run}"),
        None => format!("{MANAGED_LABEL}=1"),
    };
    HashMap::from([("label".to_string(), vec![label])])
}

/// The ids of everything labelled as proctor's (of one run, or all of them).
#[derive(Debug, Default)]
struct Labelled {
    containers: Vec<String>,
    /// Ids and names.
    networks: Vec<(String, String)>,
    images: Vec<String>,
    volumes: Vec<String>,
}

impl Labelled {
    fn count(&self) -> usize {
        self.containers.len() + self.networks.len() + self.images.len() + self.volumes.len()
    }
}

async fn labelled(docker: &Docker, run: Option<&str>) -> Result<Labelled, bollard::errors::Error> {
    let filters = label_filter(run);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await?;
    let networks = docker
        .list_networks(Some(ListNetworksOptionsBuilder::default().filters(&filters).build()))
        .await?;
    let images = docker
        .list_images(Some(
            ListImagesOptionsBuilder::default().all(true).filters(&filters).build(),
        ))
        .await?;
    let volumes = docker
        .list_volumes(Some(ListVolumesOptionsBuilder::default().filters(&filters).build()))
        .await?;
    Ok(Labelled {
        containers: containers.into_iter().filter_map(|c| c.id).collect(),
        networks: networks
            .into_iter()
            .filter_map(|n| Some((n.id?, n.name.unwrap_or_default())))
            .collect(),
        images: images.into_iter().map(|i| i.id).collect(),
        volumes: volumes
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect(),
    })
}

/// How many CPUs the engine has; `None` when it cannot be asked (each submission's run then says why).
pub async fn engine_cpus() -> Option<usize> {
    let docker = connect().await.ok()?;
    let info = tokio::time::timeout(Duration::from_secs(10), docker.info())
        .await
        .ok()?
        .ok()?;
    info.ncpu.and_then(|n| usize::try_from(n).ok()).filter(|&n| n > 0)
}

/// Removes every container, network and image labelled as proctor's (of one run, or all of them).
pub async fn sweep(docker: &Docker, run: Option<&str>) -> Swept {
    let found = match labelled(docker, run).await {
        Ok(found) => found,
        Err(e) => {
            return Swept {
                left: vec![format!("what carries proctor's label (listing it failed: {e})")],
                ..Swept::default()
            };
        }
    };
    let mut swept = Swept::default();
    for id in &found.containers {
        let remove = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        let removed = docker.remove_container(id, Some(remove)).await;
        tally(removed, &mut swept.containers, &mut swept.left, || {
            format!("container {}", short(id))
        });
    }
    for (id, name) in &found.networks {
        let removed = docker.remove_network(id).await;
        tally(removed, &mut swept.networks, &mut swept.left, || {
            format!("network {name}")
        });
    }
    for id in &found.images {
        let remove = RemoveImageOptionsBuilder::default().force(true).build();
        let removed = docker.remove_image(id, Some(remove), None).await.map(drop);
        tally(removed, &mut swept.images, &mut swept.left, || {
            format!("image {}", short(id))
        });
    }
    // Volumes last: a volume in use by a container cannot go before the container.
    for name in &found.volumes {
        let remove = RemoveVolumeOptionsBuilder::default().force(true).build();
        let removed = docker.remove_volume(name, Some(remove)).await;
        tally(removed, &mut swept.volumes, &mut swept.left, || {
            format!("volume {name}")
        });
    }
    swept
}

/// Counts one removal, or keeps what the engine refused, with its reason, in `left`. Not found is neither: gone
/// already (an image's parent layers go with it; another task of the run removed it first).
fn tally(
    removed: Result<(), bollard::errors::Error>,
    count: &mut usize,
    left: &mut Vec<String>,
    what: impl FnOnce() -> String,
) {
    match removed {
        Ok(()) => *count += 1,
        Err(e) if not_found(&e) => {}
        Err(e) => left.push(format!("{}: {}", what(), engine_reason(&e))),
    }
}

fn not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }
    )
}

/// An id as `docker ps` shows it.
fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.get(..12).unwrap_or(id)
}

/// The engine's own words for a refusal, else the error.
fn engine_reason(error: &bollard::errors::Error) -> String {
    match error {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Sweeps a run until nothing of it is left, retrying for up to `patience`: another task of the same run may be
/// removing (or, after an interrupted build, still committing) something at the same moment.
pub async fn sweep_run(docker: &Docker, run: &str, patience: Duration) -> Swept {
    let deadline = tokio::time::Instant::now() + patience;
    let mut total = Swept::default();
    loop {
        let swept = sweep(docker, Some(run)).await;
        total.containers += swept.containers;
        total.networks += swept.networks;
        total.images += swept.images;
        total.volumes += swept.volumes;
        let left = labelled(docker, Some(run)).await.map_or(1, |l| l.count());
        if left == 0 {
            return total;
        }
        if tokio::time::Instant::now() >= deadline {
            // What the last attempt could not remove (empty if it was made meanwhile: the next sweep has it).
            total.left = swept.left;
            return total;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The runs of this process whose Docker resources may exist (not kept with `--keep`): what a forced exit sweeps.
static OPEN_RUNS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn open_runs() -> std::sync::MutexGuard<'static, Vec<String>> {
    OPEN_RUNS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The runs of this process whose Docker resources may exist.
pub fn open_run_ids() -> Vec<String> {
    open_runs().clone()
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        open_runs().retain(|run| run != &self.run_id);
    }
}

impl Sandbox {
    /// Connects for a run.
    pub async fn connect(run_id: &str, mode: NetworkMode, keep: bool) -> Result<Self, SandboxError> {
        let docker = connect().await?;
        if !keep {
            open_runs().push(run_id.to_string());
        }
        Ok(Self {
            docker,
            run_id: run_id.to_string(),
            mode,
            network: OnceCell::new(),
            published: published_host(&std::env::var("DOCKER_HOST").unwrap_or_default()),
            keep,
            starting: gate::PriorityGate::new(START_AT_ONCE),
        })
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// How probes reach containers.
    pub fn mode(&self) -> NetworkMode {
        self.mode
    }

    /// The host published ports are reached on: 127.0.0.1, or the remote engine's machine.
    pub fn published_host(&self) -> &str {
        self.published.as_deref().unwrap_or("127.0.0.1")
    }

    /// The host-side device of the run's network (at most 15 characters, as Linux requires).
    fn bridge_name(&self) -> String {
        let id: String = self
            .run_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(11)
            .collect();
        format!("prx-{id}")
    }

    /// The device probes must bind to: the run network's bridge on an internal network, so that no request can
    /// leave through another route even if the network disappears mid-run. `None` when probes go to 127.0.0.1.
    pub fn probe_interface(&self) -> Option<String> {
        (self.mode == NetworkMode::Internal).then(|| self.bridge_name())
    }

    /// Whether containers, networks and images are kept after the run.
    pub fn keep(&self) -> bool {
        self.keep
    }

    /// The labels of everything the run makes.
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (MANAGED_LABEL.to_string(), "1".to_string()),
            (RUN_LABEL.to_string(), self.run_id.clone()),
        ])
    }

    /// The name of the run's network.
    pub fn network_name(&self) -> String {
        format!("proctor-{}", self.run_id)
    }

    /// The graded service's containers of a Compose project, in the order of their numbers (replica 1 first).
    pub async fn compose_containers(&self, project: &str, service: &str) -> Result<Vec<String>, SandboxError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("com.docker.compose.project={project}"),
                format!("com.docker.compose.service={service}"),
                format!("{RUN_LABEL}={}", self.run_id),
            ],
        )]);
        let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let mut found: Vec<(u64, String)> = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(SandboxError::Inspect)?
            .into_iter()
            .filter_map(|c| {
                let number = c
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("com.docker.compose.container-number"))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                Some((number, c.id?))
            })
            .collect();
        found.sort();
        Ok(found.into_iter().map(|(_, id)| id).collect())
    }

    /// The run's network, created on first use: internal (no egress) unless the mode is `Published`.
    pub(crate) async fn network(&self) -> Result<&str, SandboxError> {
        let id = self
            .network
            .get_or_try_init(|| async {
                let request = bollard::models::NetworkCreateRequest {
                    name: self.network_name(),
                    driver: Some("bridge".to_string()),
                    internal: Some(self.mode == NetworkMode::Internal),
                    labels: Some(self.labels()),
                    options: Some(HashMap::from([(
                        "com.docker.network.bridge.name".to_string(),
                        self.bridge_name(),
                    )])),
                    ..Default::default()
                };
                let created = self
                    .docker
                    .create_network(request)
                    .await
                    .map_err(SandboxError::CreateNetwork)?;
                Ok::<_, SandboxError>(created.id)
            })
            .await?;
        Ok(id.as_str())
    }

    /// The address of the run network's gateway: the host as containers see it. Listeners proctor binds there
    /// (webhook receivers, mock upstreams) are reachable from the sandbox even on an internal network.
    pub async fn gateway(&self) -> Result<std::net::IpAddr, SandboxError> {
        let id = self.network().await?;
        let options = bollard::query_parameters::InspectNetworkOptionsBuilder::default().build();
        let network = self
            .docker
            .inspect_network(id, Some(options))
            .await
            .map_err(SandboxError::CreateNetwork)?;
        network
            .ipam
            .and_then(|ipam| ipam.config)
            .unwrap_or_default()
            .into_iter()
            .find_map(|config| config.gateway.and_then(|g| g.parse().ok()))
            .ok_or(SandboxError::NoAddress)
    }

    /// Removes what this run made, unless `--keep` asked to keep it.
    pub async fn finish(&self) -> Swept {
        if self.keep {
            Swept::default()
        } else {
            sweep_run(&self.docker, &self.run_id, Duration::from_secs(10)).await
        }
    }
}

/// Sweeps a run's resources when dropped without [`SweepGuard::disarm`]: the fallback for panics and early
/// returns. It blocks on a fresh connection in a thread of its own, since no async runtime can be assumed.
#[derive(Debug)]
pub struct SweepGuard {
    run_id: Option<String>,
}

impl SweepGuard {
    /// Arms a guard for a run.
    pub fn new(run_id: &str) -> Self {
        Self {
            run_id: Some(run_id.to_string()),
        }
    }

    /// The run was cleaned up (or is kept) explicitly.
    pub fn disarm(&mut self) {
        self.run_id = None;
    }
}

impl Drop for SweepGuard {
    fn drop(&mut self) {
        if let Some(run) = self.run_id.take() {
            sweep_blocking(&run);
        }
    }
}

/// Sweeps one run's resources from synchronous code (a `Drop`), waiting at most 20 s.
pub fn sweep_blocking(run: &str) {
    sweep_runs_blocking(&[run.to_string()]);
}

/// Sweeps runs side by side from synchronous code (a `Drop`; a forced exit, where `grade` may have several
/// open), waiting at most 20 s in all.
pub fn sweep_runs_blocking(runs: &[String]) {
    let runs = runs.to_vec();
    let worker = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        runtime.block_on(async {
            let attempt = async {
                if let Ok(docker) = connect().await {
                    let sweeps = runs.iter().map(|run| sweep_run(&docker, run, Duration::from_secs(10)));
                    futures::future::join_all(sweeps).await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(20), attempt).await;
        });
    });
    let _ = worker.join();
}

#[cfg(test)]
mod tests {
    use super::published_host;

    #[test]
    fn published_ports_are_reached_on_the_remote_engines_machine_else_on_loopback() {
        assert_eq!(published_host(""), None);
        assert_eq!(published_host("unix:///var/run/docker.sock"), None);
        assert_eq!(published_host("tcp://127.0.0.1:2375"), None);
        assert_eq!(published_host("tcp://localhost:2375"), None);
        assert_eq!(published_host("tcp://[::1]:2375"), None);
        assert_eq!(published_host("tcp://10.1.2.3:2376").as_deref(), Some("10.1.2.3"));
        assert_eq!(published_host("tcp://[fd00::5]:2376").as_deref(), Some("[fd00::5]"));
        assert_eq!(
            published_host("https://builder.example:2376").as_deref(),
            Some("builder.example")
        );
    }
}
