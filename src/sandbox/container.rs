//! One hardened container running the service under test for one challenge.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, HostConfigLogConfig, Mount, MountType, NetworkingConfig,
    PortBinding, ResourcesUlimits, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures::StreamExt;
use url::Url;

use super::{NetworkMode, Sandbox, SandboxError, not_found};
use crate::limits::{self, Resolved};
use crate::logs::LogBuffer;
use crate::spec::Challenge;

/// A running container. [`Container::stop`] removes it (unless the run keeps its resources).
#[derive(Debug)]
pub struct Container {
    docker: Docker,
    /// The container's name.
    pub name: String,
    /// Where probes reach the service; `None` when it exited before it got an address.
    pub base_url: Option<Url>,
    /// Where its plain-HTTP listener answers (a service with `service.tls`).
    pub plain_url: Option<Url>,
    /// The container's output (the last MiB, control sequences stripped when read).
    pub logs: LogBuffer,
    /// Left in place when stopped: `--keep`, or a Compose project's container (it goes with the project).
    keep: bool,
    log_task: tokio::task::JoinHandle<()>,
}

/// What an image's configuration says, for the image checks of a spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFacts {
    /// `USER` (empty: root).
    pub user: String,
    /// `HEALTHCHECK`'s test (empty, or `["NONE"]`: none).
    pub healthcheck: Vec<String>,
    /// `ENTRYPOINT`.
    pub entrypoint: Vec<String>,
    /// `CMD`.
    pub cmd: Vec<String>,
    /// `ENV`, as `NAME=value`.
    pub env: Vec<String>,
    /// The image's size in bytes.
    pub size: u64,
}

/// Which instance of a challenge's service a container is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Slot {
    /// Which replica (from 0).
    pub replica: u32,
    /// How many instances of that replica came before (restarts, start attempts).
    pub generation: u32,
}

impl Sandbox {
    /// Reads an image's configuration.
    pub async fn image_facts(&self, image: &str) -> Result<ImageFacts, SandboxError> {
        let inspect = self.docker.inspect_image(image).await.map_err(SandboxError::Inspect)?;
        let config = inspect.config.unwrap_or_default();
        Ok(ImageFacts {
            user: config.user.unwrap_or_default(),
            healthcheck: config.healthcheck.and_then(|h| h.test).unwrap_or_default(),
            entrypoint: config.entrypoint.unwrap_or_default(),
            cmd: config.cmd.unwrap_or_default(),
            env: config.env.unwrap_or_default(),
            size: inspect.size.and_then(|s| u64::try_from(s).ok()).unwrap_or_default(),
        })
    }

    /// The container configuration for a challenge: hardened, labelled, on the run's network.
    fn container_body(
        &self,
        image: &str,
        challenge: &Challenge,
        limits: Resolved,
        network: &str,
        env: &[(String, String)],
    ) -> ContainerCreateBody {
        let port = challenge.spec.service.port;
        let mut env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.push(format!("PORT={port}"));
        let http_port = challenge.spec.service.tls.as_ref().map(|tls| tls.http_port);
        if let Some(http_port) = http_port {
            env.push(format!("HTTP_PORT={http_port}"));
        }
        // The challenge's data folder: a volume of this run, kept across restarts, removed with the run.
        let mounts = challenge.spec.service.data.as_ref().map(|path| {
            env.push(format!("DATA_DIR={path}"));
            vec![Mount {
                target: Some(path.clone()),
                source: Some(self.volume_name(challenge)),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            }]
        });
        let mut labels = self.labels();
        labels.insert("dev.proctor.challenge".to_string(), challenge.id.clone());
        let published = self.mode == NetworkMode::Published;
        let port_keys: Vec<String> = std::iter::once(port)
            .chain(http_port)
            .map(|p| format!("{p}/tcp"))
            .collect();
        let host_config = HostConfig {
            memory: Some(limits.memory as i64),
            // Swap equal to memory: no swap on top of the limit.
            memory_swap: Some(limits.memory as i64),
            nano_cpus: Some((limits.cpus * 1e9) as i64),
            pids_limit: Some(i64::from(limits.pids)),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([("/tmp".to_string(), limits::TMPFS.to_string())])),
            cap_drop: Some(vec!["ALL".to_string()]),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            init: Some(true),
            privileged: Some(false),
            ulimits: Some(vec![ResourcesUlimits {
                name: Some("nofile".to_string()),
                soft: Some(limits::NOFILE),
                hard: Some(limits::NOFILE),
            }]),
            network_mode: Some(network.to_string()),
            mounts,
            // Bounded on disk too: a service that floods stdout cannot fill the engine's disk.
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".to_string()),
                config: Some(HashMap::from([
                    ("max-size".to_string(), "10m".to_string()),
                    ("max-file".to_string(), "1".to_string()),
                ])),
            }),
            port_bindings: published.then(|| {
                port_keys
                    .iter()
                    .map(|key| {
                        let binding = PortBinding {
                            // On a remote engine, on all its addresses: the one that reaches proctor is unknown.
                            host_ip: Some(
                                if self.published.is_some() {
                                    "0.0.0.0"
                                } else {
                                    "127.0.0.1"
                                }
                                .to_string(),
                            ),
                            host_port: Some(String::new()),
                        };
                        (key.clone(), Some(vec![binding]))
                    })
                    .collect()
            }),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(image.to_string()),
            env: Some(env),
            labels: Some(labels),
            exposed_ports: published.then_some(port_keys),
            host_config: Some(host_config),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(network.to_string(), EndpointSettings::default())])),
            }),
            ..Default::default()
        }
    }

    fn volume_name(&self, challenge: &Challenge) -> String {
        format!("proctor-{}-{}-data", self.run_id, challenge.id)
    }

    /// Creates and starts the container for a challenge with `env` (the challenge's, possibly changed) and finds
    /// the address probes will use. Each instance has its own name: `proctor-<run>-<challenge>`, with `-r2`, `-r3`,
    /// ... for replicas after the first, and `-1`, `-2`, ... for later instances of one (see [`Slot`]).
    pub async fn start(
        &self,
        image: &str,
        challenge: &Challenge,
        limits: Resolved,
        slot: Slot,
        env: &[(String, String)],
        logs: LogBuffer,
    ) -> Result<Container, SandboxError> {
        let network = self.network().await?.to_string();
        let mut name = format!("proctor-{}-{}", self.run_id, challenge.id);
        if slot.replica > 0 {
            name.push_str(&format!("-r{}", slot.replica + 1));
        }
        if slot.generation > 0 {
            name.push_str(&format!("-{}", slot.generation));
        }
        // Asked for many containers at once, the engine creates them slowly and in no particular order: a few at a
        // time, the challenges that pause longest first, the run's longest challenge does not start seconds late.
        let _starting = self.starting.acquire(challenge.planned_pause()).await;
        if challenge.spec.service.data.is_some() {
            // Creating a volume that exists returns it: every instance of the challenge shares the one volume.
            let volume = VolumeCreateRequest {
                name: Some(self.volume_name(challenge)),
                labels: Some(self.labels()),
                ..Default::default()
            };
            self.docker
                .create_volume(volume)
                .await
                .map_err(SandboxError::CreateContainer)?;
        }
        let body = self.container_body(image, challenge, limits, &network, env);
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self.docker.create_container(Some(options), body).await.map_err(|e| {
            if not_found(&e) {
                SandboxError::NoImage(image.to_string())
            } else {
                SandboxError::CreateContainer(e)
            }
        })?;
        // From here on, a failure must still remove the container.
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            self.remove(&name).await;
            return Err(SandboxError::StartContainer(e));
        }
        self.attach(&created.id, name, challenge, true, None, logs).await
    }

    /// Takes over a running container of a Compose project (`again`: started once more after a stop), following
    /// its output from now on. It is not removed when stopped: the project's teardown removes it.
    pub async fn adopt(
        &self,
        id: &str,
        challenge: &Challenge,
        again: bool,
        logs: LogBuffer,
    ) -> Result<Container, SandboxError> {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i32);
        if again {
            self.docker
                .start_container(id, None)
                .await
                .map_err(SandboxError::StartContainer)?;
        }
        let name = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(SandboxError::Inspect)?
            .name
            .unwrap_or_else(|| id.to_string())
            .trim_start_matches('/')
            .to_string();
        // A restarted container's earlier output was read already.
        self.attach(id, name, challenge, false, again.then_some(since), logs)
            .await
    }

    /// Follows a started container's output and finds where probes reach it.
    async fn attach(
        &self,
        id: &str,
        name: String,
        challenge: &Challenge,
        owned: bool,
        since: Option<i32>,
        logs: LogBuffer,
    ) -> Result<Container, SandboxError> {
        let network = self.network().await?.to_string();
        let log_task = tokio::spawn(follow_logs(self.docker.clone(), id.to_string(), since, logs.clone()));
        let mut container = Container {
            docker: self.docker.clone(),
            name,
            base_url: None,
            plain_url: None,
            logs,
            keep: self.keep || !owned,
            log_task,
        };
        let http_port = challenge.spec.service.tls.as_ref().map(|tls| tls.http_port);
        let addresses = match self.address(id, &network, challenge.spec.service.port).await {
            Ok(url) => match http_port {
                Some(port) => self.address(id, &network, port).await.map(|plain| (url, Some(plain))),
                None => Ok((url, None)),
            },
            Err(e) => Err(e),
        };
        match addresses {
            Ok((url, plain)) => {
                container.base_url = Some(url);
                container.plain_url = plain;
            }
            // A container that already exited has no address; the caller reports how it ended.
            Err(_) if container.exited().await.is_some() => {}
            Err(e) => {
                container.stop().await;
                return Err(e);
            }
        }
        Ok(container)
    }

    async fn remove(&self, name: &str) {
        if !self.keep {
            let remove = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
            let _ = self.docker.remove_container(name, Some(remove)).await;
        }
    }

    async fn address(&self, id: &str, network: &str, port: u16) -> Result<Url, SandboxError> {
        let inspect = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(SandboxError::Inspect)?;
        let settings = inspect.network_settings.ok_or(SandboxError::NoAddress)?;
        let address = match self.mode {
            NetworkMode::Internal => {
                let endpoints = settings.networks.unwrap_or_default();
                let endpoint = endpoints.values().find(|e| e.network_id.as_deref() == Some(network));
                let ip = endpoint.and_then(|e| e.ip_address.clone()).filter(|ip| !ip.is_empty());
                format!("{}:{port}", ip.ok_or(SandboxError::NoAddress)?)
            }
            NetworkMode::Published => {
                let ports = settings.ports.unwrap_or_default();
                let binding = ports.get(&format!("{port}/tcp")).cloned().flatten().unwrap_or_default();
                let host_port = binding
                    .into_iter()
                    .find_map(|b| b.host_port)
                    .ok_or(SandboxError::NoAddress)?;
                format!("{}:{host_port}", self.published_host())
            }
        };
        Url::parse(&format!("http://{address}/")).map_err(|_| SandboxError::NoAddress)
    }
}

async fn follow_logs(docker: Docker, id: String, since: Option<i32>, logs: LogBuffer) {
    let options = LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .since(since.unwrap_or(0))
        .build();
    let mut stream = docker.logs(&id, Some(options));
    while let Some(Ok(output)) = stream.next().await {
        logs.push(&output.into_bytes());
    }
}

impl Container {
    /// The container's state once it has stopped (`None` while it runs, or when it cannot be inspected).
    async fn stopped_state(&self) -> Option<bollard::models::ContainerState> {
        let inspect = self
            .docker
            .inspect_container(&self.name, None::<InspectContainerOptions>)
            .await
            .ok()?;
        inspect.state.filter(|state| !state.running.unwrap_or(false))
    }

    /// `Some(description)` once the container has stopped: its exit status, or that it was OOM-killed.
    pub async fn exited(&self) -> Option<String> {
        let state = self.stopped_state().await?;
        if state.oom_killed.unwrap_or(false) {
            return Some("was killed for exceeding its memory limit (OOMKilled)".to_string());
        }
        match state.exit_code {
            Some(137) => Some("was killed (exit status 137: SIGKILL, often the memory limit)".to_string()),
            Some(code) => Some(format!("exited with status {code}")),
            None => Some("stopped".to_string()),
        }
    }

    /// Sends SIGTERM to PID 1 (the engine's stop, which sends SIGKILL after `grace`, rounded up to whole
    /// seconds) and returns the exit code, without removing the container. A container the engine could not stop
    /// is killed, and counts as killed (137).
    pub async fn terminate(&self, grace: std::time::Duration) -> Option<i32> {
        let t = i32::try_from(grace.as_millis().div_ceil(1000).max(1)).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::default().t(t).build();
        let _ = self.docker.stop_container(&self.name, Some(options)).await;
        if self.exit_code().await.is_none() {
            let _ = self
                .docker
                .kill_container(&self.name, None::<bollard::query_parameters::KillContainerOptions>)
                .await;
            return Some(137);
        }
        self.exit_code().await
    }

    /// The exit code once the container has stopped.
    pub async fn exit_code(&self) -> Option<i32> {
        self.stopped_state()
            .await?
            .exit_code
            .and_then(|c| i32::try_from(c).ok())
    }

    /// Removes the container (kept with `--keep`).
    pub async fn stop(self) {
        if !self.keep {
            let remove = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
            let _ = self.docker.remove_container(&self.name, Some(remove)).await;
        }
        self.log_task.abort();
    }
}
