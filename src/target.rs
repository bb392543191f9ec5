//! Targets: where the service under test runs (a URL, a local process, the bundled reference) and its lifecycle.
//!
//! A [`Target`] describes how to get a service; [`start`] turns it into an [`Endpoint`] that owns the running
//! service until [`Endpoint::stop`] (or its `Drop`, as a fallback) ends it.

pub mod process;
pub mod ready;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use url::Url;

use crate::limits;
use crate::sandbox::{Container, NetworkMode, Sandbox, SandboxError};
use crate::spec::Challenge;
use crate::spec::model::Limits;
use process::ServiceProcess;

/// How to reach or start the service under test.
#[derive(Debug, Clone)]
pub enum Target {
    /// A service that is already running.
    Url(Url),
    /// A shell command that starts the service; it gets `PORT` and the challenge's env.
    Command(String),
    /// The bundled reference service, in-process, with these defects switched on (comma-separated).
    Reference(String),
    /// A container from an image, in the Docker sandbox (one fresh container per challenge).
    Container(ContainerTarget),
}

/// A Docker image to run, and how.
#[derive(Debug, Clone)]
pub struct ContainerTarget {
    /// The run's sandbox.
    pub sandbox: Arc<Sandbox>,
    /// The image reference (built from `--path`, or given with `--image`).
    pub image: String,
    /// Limits from the command line (over the spec's, over the defaults).
    pub limits: Limits,
}

impl Target {
    /// Whether several challenges may run against this target at once (each gets its own service).
    pub fn isolated(&self) -> bool {
        !matches!(self, Target::Url(_))
    }

    /// A one-line description for reports.
    pub fn describe(&self) -> String {
        match self {
            Target::Url(url) => crate::http::redacted(url),
            Target::Command(cmd) => format!("command: {cmd}"),
            Target::Reference(defects) if defects.is_empty() => "reference service".to_string(),
            Target::Reference(defects) => format!("reference service with defects: {defects}"),
            Target::Container(c) => match c.sandbox.mode() {
                NetworkMode::Internal => format!("container from {} on an internal network (no egress)", c.image),
                NetworkMode::Published => format!(
                    "container from {} with its port published on 127.0.0.1 (egress is NOT blocked in this mode)",
                    c.image
                ),
            },
        }
    }
}

/// Why a target could not be started or reached.
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
}

/// A running (or reachable) service.
#[derive(Debug)]
pub struct Endpoint {
    /// Where probes send requests.
    pub base_url: Url,
    /// The network device probes must bind to (a sandbox network's bridge), if any.
    pub interface: Option<String>,
    running: Running,
}

#[derive(Debug)]
enum Running {
    External,
    Process(Box<ServiceProcess>),
    Reference(tokio::task::JoinHandle<()>),
    Container(Box<Container>),
}

impl Endpoint {
    /// The tail of the service's output, when proctor started it.
    pub fn logs(&self) -> Option<String> {
        match &self.running {
            Running::Process(p) => Some(p.logs.tail(200)),
            Running::Container(c) => Some(c.logs.tail(200)),
            _ => None,
        }
    }

    /// `Some(how it ended)` when a service proctor started is no longer running (exited, OOM-killed).
    pub async fn gone(&mut self) -> Option<String> {
        match &mut self.running {
            Running::Process(process) => process.exited(),
            Running::Container(container) => container.exited().await,
            Running::External | Running::Reference(_) => None,
        }
    }

    /// Stops whatever proctor started.
    pub async fn stop(self) {
        match self.running {
            Running::External => {}
            Running::Process(process) => process.stop(Duration::from_secs(5)).await,
            Running::Reference(task) => {
                task.abort();
                let _ = task.await;
            }
            Running::Container(container) => container.stop().await,
        }
    }
}

/// The longest proctor waits for a `--url` service to answer its readiness check (unless `--start-timeout`).
pub const URL_READY_TIMEOUT: Duration = Duration::from_secs(10);

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// Starts (or reaches) the target for one challenge and waits until it is ready.
///
/// On failure, the second value is the tail of the service's output, when there is one.
pub async fn start(
    target: &Target,
    challenge: &Challenge,
    start_timeout: Option<Duration>,
) -> Result<Endpoint, (TargetError, Option<String>)> {
    let service = &challenge.spec.service;
    // Readiness requests go where the probes will go: for a sandboxed target, through the run network's bridge.
    let interface = match target {
        Target::Container(c) => c.sandbox.probe_interface(),
        _ => None,
    };
    let client = &crate::http::build_client(Duration::from_secs(5), interface.as_deref())
        .map_err(|e| (TargetError::Client(e.to_string()), None))?;
    // A URL is expected to be up already: wait less for it than for a service proctor starts itself.
    let default = match target {
        Target::Url(_) => service.start_timeout.0.min(URL_READY_TIMEOUT),
        _ => service.start_timeout.0,
    };
    let timeout = start_timeout.unwrap_or(default);
    let deadline = Instant::now() + timeout;
    match target {
        Target::Url(url) => {
            let ready =
                ready::wait_until_ready(&service.ready, url, client, deadline, || std::future::ready(None)).await;
            ready.map_err(|reason| {
                (
                    TargetError::NotReady {
                        url: crate::http::redacted(url),
                        timeout,
                        reason,
                    },
                    None,
                )
            })?;
            Ok(Endpoint {
                base_url: url.clone(),
                interface: None,
                running: Running::External,
            })
        }
        Target::Command(command) => {
            let port = free_port().map_err(|e| (TargetError::Port(e), None))?;
            let mut env: Vec<(String, String)> = service.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            env.push(("PORT".to_string(), port.to_string()));
            let mut process = ServiceProcess::spawn(command, &env).map_err(|source| {
                (
                    TargetError::Spawn {
                        command: command.clone(),
                        source,
                    },
                    None,
                )
            })?;
            let base_url = local_url(port);
            let result = ready::wait_until_ready(&service.ready, &base_url, client, deadline, || {
                std::future::ready(process.exited())
            })
            .await;
            match result {
                Ok(()) => Ok(Endpoint {
                    base_url,
                    interface: None,
                    running: Running::Process(Box::new(process)),
                }),
                Err(reason) => {
                    let exited = process.exited();
                    // Give the reader tasks a moment to collect the last output.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let logs = Some(process.logs.tail(30));
                    process.stop(Duration::from_secs(2)).await;
                    let error = match exited {
                        Some(reason) => TargetError::Exited { reason },
                        None => TargetError::NotReady {
                            url: base_url.to_string(),
                            timeout,
                            reason,
                        },
                    };
                    Err((error, logs))
                }
            }
        }
        Target::Container(target) => {
            let resolved = limits::resolve(&service.limits, &target.limits);
            let container = target
                .sandbox
                .start(&target.image, challenge, resolved)
                .await
                .map_err(|e| (e.into(), None))?;
            let result = match container.base_url.clone() {
                Some(url) => {
                    match ready::wait_until_ready(&service.ready, &url, client, deadline, || container.exited()).await {
                        Ok(()) => Ok(url),
                        Err(reason) => Err((reason, Some(url))),
                    }
                }
                None => Err(("stopped at once".to_string(), None)),
            };
            match result {
                Ok(base_url) => Ok(Endpoint {
                    base_url,
                    interface,
                    running: Running::Container(Box::new(container)),
                }),
                Err((reason, url)) => {
                    let exited = container.exited().await;
                    // Give the log stream a moment to deliver the last lines.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let logs = Some(container.logs.tail(30));
                    container.stop().await;
                    let error = match (exited, url) {
                        (Some(how), _) => TargetError::Exited { reason: how },
                        (None, Some(url)) => TargetError::NotReady {
                            url: url.to_string(),
                            timeout,
                            reason,
                        },
                        (None, None) => TargetError::Exited { reason },
                    };
                    Err((error, logs))
                }
            }
        }
        Target::Reference(defects) => {
            let env: BTreeMap<String, String> = service.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let config = proctor_reference::Config::new(env, defects)
                .map_err(|e| (TargetError::Reference(e.to_string()), None))?;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(|e| (TargetError::Port(e), None))?;
            let port = listener.local_addr().map_err(|e| (TargetError::Port(e), None))?.port();
            let task = tokio::spawn(async move {
                let _ = proctor_reference::serve(listener, config).await;
            });
            Ok(Endpoint {
                base_url: local_url(port),
                interface: None,
                running: Running::Reference(task),
            })
        }
    }
}

fn local_url(port: u16) -> Url {
    Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap_or_else(|_| unreachable!("a loopback URL always parses"))
}
