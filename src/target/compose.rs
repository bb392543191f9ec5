//! A Compose project in the Docker sandbox: the submission's services (an API and its database, say), brought up
//! with the Compose tool the user has, once per challenge, as a project of the run's own.
//!
//! proctor never edits the candidate's files. It reads the project through `compose config` (so `.env`, override
//! files and `extends` apply as they would for the candidate), builds the services that have a `build` itself
//! (with the build limits of `--path`), and writes a hardened copy of the project into a folder of its own:
//! every service gets the hardening and limits of a single-container run (read-only root, no capabilities,
//! no-new-privileges, init, memory, CPU and pids limits, bounded logs), proctor's labels, and the run's network
//! as its only network; published ports, host namespaces, devices and host paths outside the project are
//! removed or refused. The graded service gets the challenge's env, `PORT` and `DATA_DIR`, and runs as
//! `service.replicas` replicas, each addressed directly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::{Instance, Launch, Spawned, TargetError};
use crate::limits::{self, Resolved};
use crate::sandbox::Sandbox;
use crate::spec::Challenge;
use crate::spec::model::Limits;

/// The longest `compose config`, `up` or `down` may take.
const COMPOSE_TIMEOUT: Duration = Duration::from_secs(180);
/// The most output kept from one Compose command.
const MAX_OUTPUT: usize = 64 << 10;
/// The file names Compose looks for, in its order.
pub const PROJECT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// The Compose tool on this machine: the `docker compose` plugin, or the standalone `docker-compose`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    /// The program and the arguments before Compose's own: `docker compose` or `docker-compose`.
    pub command: Vec<String>,
}

impl Tool {
    /// The plugin if it answers, else `docker-compose`; an error naming both when neither does.
    pub async fn detect() -> Result<Self, TargetError> {
        for command in [vec!["docker", "compose"], vec!["docker-compose"]] {
            let command: Vec<String> = command.into_iter().map(str::to_string).collect();
            let tool = Tool { command };
            if tool.run(None, &["version"], Duration::from_secs(20)).await.is_ok() {
                return Ok(tool);
            }
        }
        Err(TargetError::Compose(
            "neither the Compose plugin (`docker compose`) nor `docker-compose` is installed: install one \
             (Debian: apt install docker-compose-plugin, or docker-compose)"
                .to_string(),
        ))
    }

    /// Runs the tool in `dir` with `args`; its output (the last 64 KiB), or why it failed with that output.
    async fn run(&self, dir: Option<&Path>, args: &[&str], timeout: Duration) -> Result<String, String> {
        let mut command = tokio::process::Command::new(&self.command[0]);
        // Compose fills `${VARIABLES}` and valueless `environment` entries from its own environment: it gets
        // only what it needs to find the engine, never proctor's (a CI job's tokens).
        command.env_clear();
        for (name, value) in std::env::vars_os() {
            let text = name.to_string_lossy();
            let needed = matches!(text.as_ref(), "PATH" | "HOME" | "LANG" | "LC_ALL" | "TMPDIR");
            if needed || text.starts_with("DOCKER_") {
                command.env(&name, value);
            }
        }
        command
            .args(&self.command[1..])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("could not run {}: {e}", self.command.join(" ")))?;
        let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => return Err(format!("{} failed: {e}", self.command.join(" "))),
            Err(_) => {
                return Err(format!(
                    "{} {} did not finish within {} s",
                    self.command.join(" "),
                    args.first().unwrap_or(&""),
                    timeout.as_secs()
                ));
            }
        };
        let tail = |bytes: &[u8]| {
            let text = String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(MAX_OUTPUT)..]).to_string();
            crate::logs::strip_control(&text)
        };
        if output.status.success() {
            Ok(tail(&output.stdout))
        } else {
            let said = format!("{}{}", tail(&output.stdout), tail(&output.stderr));
            Err(format!(
                "`{} {}` failed ({}): {}",
                self.command.join(" "),
                args.join(" "),
                output.status,
                said.trim()
            ))
        }
    }
}

/// The project as `compose config` resolved it.
#[derive(Debug, Clone)]
pub struct Project {
    /// The folder it was read from.
    pub dir: PathBuf,
    /// The resolved configuration.
    pub config: Mapping,
}

impl Project {
    /// Reads the project in `dir` through `compose config`.
    pub async fn load(tool: &Tool, dir: &Path) -> Result<Self, TargetError> {
        let dir = dir
            .canonicalize()
            .map_err(|e| TargetError::Compose(format!("cannot open {}: {e}", dir.display())))?;
        if !PROJECT_FILES.iter().any(|name| dir.join(name).is_file()) {
            return Err(TargetError::Compose(format!(
                "{} has no Compose file ({})",
                dir.display(),
                PROJECT_FILES.join(", ")
            )));
        }
        let text = tool
            .run(Some(&dir), &["config"], COMPOSE_TIMEOUT)
            .await
            .map_err(TargetError::Compose)?;
        let config: Mapping = serde_yaml::from_str(&text)
            .map_err(|e| TargetError::Compose(format!("`compose config` printed what proctor cannot read: {e}")))?;
        Ok(Self { dir, config })
    }

    /// The services, by name.
    pub fn services(&self) -> Vec<String> {
        self.config
            .get("services")
            .and_then(Value::as_mapping)
            .map(|services| services.keys().filter_map(|k| k.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }

    /// The services proctor builds: name, context folder.
    pub fn builds(&self) -> Result<Vec<(String, PathBuf)>, TargetError> {
        let mut builds = Vec::new();
        let Some(services) = self.config.get("services").and_then(Value::as_mapping) else {
            return Ok(builds);
        };
        for (name, service) in services {
            let name = name.as_str().unwrap_or_default().to_string();
            let Some(build) = service.get("build") else { continue };
            let (context, dockerfile) = match build {
                Value::String(context) => (context.clone(), None),
                _ => (
                    build.get("context").and_then(Value::as_str).unwrap_or(".").to_string(),
                    build.get("dockerfile").and_then(Value::as_str),
                ),
            };
            if build.get("dockerfile_inline").is_some() || dockerfile.is_some_and(|f| f != "Dockerfile") {
                return Err(TargetError::Compose(format!(
                    "service `{name}` builds from `{}`: proctor builds a service from the `Dockerfile` at the root \
                     of its build context",
                    dockerfile.unwrap_or("dockerfile_inline")
                )));
            }
            let context = self.inside(&name, &context)?;
            builds.push((name, context));
        }
        Ok(builds)
    }

    /// A path of the project, refused when it leads outside the project's folder.
    fn inside(&self, service: &str, path: &str) -> Result<PathBuf, TargetError> {
        let joined = self.dir.join(path);
        let resolved = joined
            .canonicalize()
            .map_err(|e| TargetError::Compose(format!("service `{service}` names {}: {e}", joined.display())))?;
        if resolved.starts_with(&self.dir) {
            Ok(resolved)
        } else {
            Err(TargetError::Compose(format!(
                "service `{service}` uses {}, outside the project folder {}: proctor only gives services what is \
                 inside the submission",
                resolved.display(),
                self.dir.display()
            )))
        }
    }
}

/// How proctor runs the project for one challenge.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    /// The service graded.
    pub service: &'a str,
    /// How many replicas of it.
    pub replicas: u32,
    /// Its env (the challenge's, `PORT`, ...).
    pub env: &'a [(String, String)],
    /// The folder of `service.data` and its volume's name, if any.
    pub data: Option<&'a str>,
    /// The run's network.
    pub network: &'a str,
    /// The labels of every container and volume.
    pub labels: &'a HashMap<String, String>,
    /// The limits of each container (a service's own lower limits are kept).
    pub limits: Resolved,
    /// Images built for services, by service.
    pub images: &'a HashMap<String, String>,
    /// Publish the graded port on 127.0.0.1 (remote engines).
    pub publish: Option<u16>,
    /// The most the limits of all containers may add up to.
    pub budget: Budget,
}

/// A cap on the sum of the limits of every container of a project, as Rinha de Backend sets one.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budget {
    /// Memory, in bytes.
    pub memory: Option<u64>,
    /// CPUs.
    pub cpus: Option<f64>,
}

/// Keys of a service kept as the project wrote them: nothing in them reaches past the sandbox.
const KEPT: [&str; 22] = [
    "image",
    "command",
    "entrypoint",
    "environment",
    "working_dir",
    "user",
    "healthcheck",
    "depends_on",
    "expose",
    "hostname",
    "domainname",
    "stop_signal",
    "stop_grace_period",
    "tty",
    "stdin_open",
    "labels",
    "tmpfs",
    "volumes",
    "extra_hosts",
    "links",
    "shm_size",
    "platform",
];

/// Keys of a service dropped: proctor's hardening, limits, network and build take their place, and privileges
/// the project asks for are simply not given.
const DROPPED: [&str; 31] = [
    "build",
    "ports",
    "networks",
    "network_mode",
    "restart",
    "deploy",
    "container_name",
    "scale",
    "profiles",
    "pull_policy",
    "mem_limit",
    "memswap_limit",
    "mem_reservation",
    "mem_swappiness",
    "cpus",
    "cpu_shares",
    "cpu_quota",
    "cpu_period",
    "cpu_count",
    "cpu_percent",
    "cpuset",
    "pids_limit",
    "ulimits",
    "logging",
    "security_opt",
    "cap_add",
    "cap_drop",
    "privileged",
    "read_only",
    "init",
    "dns",
];

/// The hardened project, as the text of a Compose file (format 2.4, which both Compose tools read; the
/// restart policy is the default, `no`).
pub fn harden(project: &Project, plan: &Plan<'_>) -> Result<String, TargetError> {
    let config = &project.config;
    for key in ["secrets", "configs"] {
        if config.get(key).is_some() {
            return Err(TargetError::Compose(format!(
                "the project declares `{key}`, which are files of the host: proctor cannot give them to services \
                 (pass the values in `environment`)"
            )));
        }
    }
    let services = config
        .get("services")
        .and_then(Value::as_mapping)
        .cloned()
        .unwrap_or_default();
    let declared: Vec<String> = config
        .get("volumes")
        .and_then(Value::as_mapping)
        .map(|volumes| volumes.keys().filter_map(|k| k.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if !services.contains_key(plan.service) {
        return Err(TargetError::Compose(format!(
            "the project has no service `{}` (it has {})",
            plan.service,
            project.services().join(", ")
        )));
    }
    let mut hardened = Mapping::new();
    // Each service's limits times its containers, for the budget.
    let mut spent: Vec<(String, u32, u64, f64)> = Vec::new();
    for (name, service) in services {
        let name = name.as_str().unwrap_or_default().to_string();
        let mut service = service.as_mapping().cloned().unwrap_or_default();
        let own = own_limits(&service);
        for key in DROPPED {
            service.remove(key);
        }
        // Anything else (devices, host namespaces, the API socket, hooks, GPUs, OOM settings, ...) is refused:
        // proctor gives a service only what it knows to be harmless.
        if let Some(key) = service
            .keys()
            .filter_map(Value::as_str)
            .find(|key| !KEPT.contains(key) && !key.starts_with("x-"))
        {
            return Err(TargetError::Compose(format!(
                "service `{name}` uses `{key}`, which proctor does not give services in its sandbox"
            )));
        }
        if let Some(Value::Mapping(env)) = service.get("environment")
            && let Some((key, _)) = env.iter().find(|(_, value)| value.is_null())
        {
            // A name without a value takes the value of Compose's own environment: proctor's, not the project's.
            return Err(TargetError::Compose(format!(
                "service `{name}` passes `{}` without a value: give it one in the project",
                key.as_str().unwrap_or_default()
            )));
        }
        if let Some(image) = plan.images.get(&name) {
            service.insert("image".into(), image.as_str().into());
        }
        if service.get("image").is_none() {
            return Err(TargetError::Compose(format!(
                "service `{name}` has neither an image nor a build"
            )));
        }
        let mut volumes = Vec::new();
        for volume in service
            .remove("volumes")
            .and_then(|v| v.as_sequence().cloned())
            .unwrap_or_default()
        {
            volumes.push(mount(project, &name, &volume, &declared)?);
        }
        let graded = name == plan.service;
        if graded {
            let mut env = environment(service.remove("environment"));
            for (key, value) in plan.env {
                env.insert(key.as_str().into(), escaped(value).into());
            }
            if let Some(path) = plan.data {
                env.insert("DATA_DIR".into(), escaped(path).into());
                volumes.push(long_mount("volume", "proctor-data", path, false));
            }
            service.insert("environment".into(), Value::Mapping(env));
            service.insert("scale".into(), u64::from(plan.replicas.max(1)).into());
            if let Some(port) = plan.publish {
                service.insert("ports".into(), vec![Value::from(format!("127.0.0.1::{port}"))].into());
            }
        }
        if !volumes.is_empty() {
            service.insert("volumes".into(), volumes.into());
        }
        let memory = own.0.map_or(plan.limits.memory, |m| m.min(plan.limits.memory));
        let cpus = own.1.map_or(plan.limits.cpus, |c| c.min(plan.limits.cpus));
        spent.push((
            name.clone(),
            if graded { plan.replicas.max(1) } else { 1 },
            memory,
            cpus,
        ));
        let mut labels = labels_of(service.remove("labels"));
        // proctor's labels, and Compose's own, are not the project's to set.
        labels.retain(|key, _| {
            key.as_str()
                .is_some_and(|k| !k.starts_with("dev.proctor.") && !k.starts_with("com.docker.compose."))
        });
        for (key, value) in plan.labels {
            labels.insert(key.as_str().into(), value.as_str().into());
        }
        let mut tmpfs: Vec<Value> = match service.remove("tmpfs") {
            Some(Value::Sequence(list)) => list,
            Some(Value::String(one)) => vec![one.into()],
            _ => Vec::new(),
        };
        if !tmpfs
            .iter()
            .any(|t| t.as_str().is_some_and(|t| t == "/tmp" || t.starts_with("/tmp:")))
        {
            tmpfs.push(format!("/tmp:{}", limits::TMPFS).into());
        }
        let fields: [(&str, Value); 13] = [
            ("labels", Value::Mapping(labels)),
            ("read_only", true.into()),
            ("tmpfs", tmpfs.into()),
            ("cap_drop", vec![Value::from("ALL")].into()),
            ("security_opt", vec![Value::from("no-new-privileges:true")].into()),
            ("init", true.into()),
            ("privileged", false.into()),
            ("mem_limit", memory.into()),
            ("memswap_limit", memory.into()),
            ("cpus", cpus.into()),
            ("pids_limit", u64::from(plan.limits.pids).into()),
            (
                "ulimits",
                serde_yaml::from_str(&format!("{{ nofile: {{ soft: {0}, hard: {0} }} }}", limits::NOFILE))
                    .unwrap_or(Value::Null),
            ),
            (
                "logging",
                serde_yaml::from_str("{ driver: json-file, options: { max-size: 10m, max-file: '1' } }")
                    .unwrap_or(Value::Null),
            ),
        ];
        for (key, value) in fields {
            service.insert(key.into(), value);
        }
        hardened.insert(name.into(), Value::Mapping(service));
    }
    check_budget(&spent, plan.budget)?;
    let mut volumes = Mapping::new();
    let labels: Mapping = plan
        .labels
        .iter()
        .map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str())))
        .collect();
    // Every named volume is a fresh, labelled one of the project: no external volumes, no driver options (a
    // `local` volume with `o: bind` is a host path in disguise).
    let data = plan.data.map(|_| "proctor-data".to_string());
    for name in declared.iter().chain(&data) {
        let mut volume = Mapping::new();
        volume.insert("labels".into(), Value::Mapping(labels.clone()));
        volumes.insert(name.as_str().into(), Value::Mapping(volume));
    }
    let mut file = Mapping::new();
    file.insert("version".into(), "2.4".into());
    file.insert("services".into(), Value::Mapping(hardened));
    let network: Value = serde_yaml::from_str(&format!(
        "{{ default: {{ external: true, name: {} }} }}",
        serde_json::to_string(plan.network).unwrap_or_default()
    ))
    .unwrap_or(Value::Null);
    file.insert("networks".into(), network);
    if !volumes.is_empty() {
        file.insert("volumes".into(), Value::Mapping(volumes));
    }
    // Written as JSON (which is YAML): every string quoted, so that no YAML 1.1 reader (docker-compose v1)
    // takes a `no` or an `on` for a boolean.
    serde_json::to_value(Value::Mapping(file))
        .and_then(|json| serde_json::to_string_pretty(&json))
        .map_err(|e| TargetError::Compose(e.to_string()))
}

/// Refuses a project whose containers' limits add up to more than the budget, saying what each takes.
fn check_budget(spent: &[(String, u32, u64, f64)], budget: Budget) -> Result<(), TargetError> {
    let memory: u64 = spent.iter().map(|(_, n, m, _)| u64::from(*n) * m).sum();
    let cpus: f64 = spent.iter().map(|(_, n, _, c)| f64::from(*n) * c).sum();
    let over_memory = budget.memory.is_some_and(|b| memory > b);
    let over_cpus = budget.cpus.is_some_and(|b| cpus > b + 1e-9);
    if !over_memory && !over_cpus {
        return Ok(());
    }
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    let each: Vec<String> = spent
        .iter()
        .map(|(name, n, m, c)| format!("{name}: {n} × ({:.0} MiB, {c} CPUs)", mib(*m)))
        .collect();
    let allowed = format!(
        "{} MiB and {} CPUs",
        budget.memory.map_or("any".to_string(), |b| format!("{:.0}", mib(b))),
        budget.cpus.map_or("any".to_string(), |c| c.to_string())
    );
    Err(TargetError::Compose(format!(
        "the project's limits add up to {:.0} MiB and {cpus} CPUs, over the budget of {allowed} ({}): give its \
         services lower `deploy.resources.limits`",
        mib(memory),
        each.join(", ")
    )))
}

/// A service's own memory (bytes) and CPU limits, from `deploy.resources.limits` or `mem_limit` and `cpus`.
fn own_limits(service: &Mapping) -> (Option<u64>, Option<f64>) {
    let deployed = service
        .get("deploy")
        .and_then(|d| d.get("resources"))
        .and_then(|r| r.get("limits"));
    let memory = deployed
        .and_then(|l| l.get("memory"))
        .or_else(|| service.get("mem_limit"))
        .and_then(|m| match m {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => crate::types::parse_bytes(s),
            _ => None,
        });
    let cpus = deployed
        .and_then(|l| l.get("cpus"))
        .or_else(|| service.get("cpus"))
        .and_then(|c| match c {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        });
    (memory, cpus)
}

/// `environment` as a mapping (Compose accepts a list of `NAME=value` too).
fn environment(value: Option<Value>) -> Mapping {
    match value {
        Some(Value::Mapping(map)) => map,
        Some(Value::Sequence(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(|entry| match entry.split_once('=') {
                Some((k, v)) => (Value::from(k), Value::from(v)),
                None => (Value::from(entry), Value::Null),
            })
            .collect(),
        _ => Mapping::new(),
    }
}

/// `labels` as a mapping (a list of `key=value` too).
fn labels_of(value: Option<Value>) -> Mapping {
    environment(value)
}

/// A value as Compose must be given it: `$` doubled, so that it is not read as a variable.
fn escaped(value: &str) -> String {
    value.replace('$', "$$")
}

/// A mount in Compose's long syntax (which never reads a source as a host path unless `type` says so).
fn long_mount(kind: &str, source: &str, target: &str, read_only: bool) -> Value {
    let mut mount = Mapping::new();
    mount.insert("type".into(), kind.into());
    if !source.is_empty() {
        mount.insert("source".into(), source.into());
    }
    mount.insert("target".into(), target.into());
    if read_only {
        mount.insert("read_only".into(), true.into());
    }
    Value::Mapping(mount)
}

/// One of a service's volumes, as proctor mounts it: a volume the project declares as it is, an anonymous one,
/// a host path inside the project read-only; anything else refused.
fn mount(project: &Project, service: &str, volume: &Value, declared: &[String]) -> Result<Value, TargetError> {
    let (source, target, kind) = match volume {
        Value::String(short) => {
            let mut parts = short.splitn(3, ':');
            let first = parts.next().unwrap_or_default();
            match parts.next() {
                Some(target) => {
                    let bind = first.starts_with(['/', '.', '~']);
                    (
                        Some(first.to_string()),
                        target.to_string(),
                        if bind { "bind" } else { "volume" },
                    )
                }
                // An anonymous volume: `- /var/lib/data`.
                None => (None, first.to_string(), "volume"),
            }
        }
        Value::Mapping(long) => {
            let text = |key: &str| long.get(key).and_then(Value::as_str).map(str::to_string);
            let kind = match text("type").as_deref() {
                Some("bind") => "bind",
                Some("tmpfs") => "tmpfs",
                Some("volume") | None => "volume",
                Some(other) => {
                    return Err(TargetError::Compose(format!(
                        "service `{service}` mounts a `{other}`, which proctor does not give services"
                    )));
                }
            };
            (text("source"), text("target").unwrap_or_default(), kind)
        }
        _ => {
            return Err(TargetError::Compose(format!(
                "service `{service}` has a volume proctor cannot read"
            )));
        }
    };
    if !target.starts_with('/') {
        return Err(TargetError::Compose(format!(
            "service `{service}` mounts at `{target}`, which is not an absolute path in the container"
        )));
    }
    match (kind, source) {
        ("bind", Some(source)) => {
            let inside = project.inside(service, &source)?;
            Ok(long_mount("bind", &inside.display().to_string(), &target, true))
        }
        ("volume", Some(source)) if declared.contains(&source) => Ok(long_mount("volume", &source, &target, false)),
        ("volume", Some(source)) => Err(TargetError::Compose(format!(
            "service `{service}` mounts `{source}`, which is neither a volume the project declares nor a path in it"
        ))),
        ("volume", None) => Ok(long_mount("volume", "", &target, false)),
        ("tmpfs", _) => Ok(long_mount("tmpfs", "", &target, false)),
        _ => Err(TargetError::Compose(format!(
            "service `{service}` has a volume proctor cannot read"
        ))),
    }
}

/// A project brought up for one challenge.
#[derive(Debug)]
struct Up {
    /// The Compose project name.
    name: String,
    /// Where the hardened file is.
    dir: tempfile::TempDir,
    /// The graded service's containers, by replica.
    containers: Vec<String>,
    /// The env the graded service was given.
    env: Vec<(String, String)>,
}

/// Starts a challenge's Compose project and hands out the graded service's containers.
#[derive(Debug)]
pub struct ComposeLauncher {
    /// The run's sandbox.
    pub sandbox: Arc<Sandbox>,
    /// The Compose tool.
    pub tool: Tool,
    /// The project, resolved.
    pub project: Project,
    /// The service graded.
    pub service: String,
    /// Images proctor built, by service.
    pub images: HashMap<String, String>,
    /// Limits from the command line (over the spec's, over the defaults), for each container.
    pub limits: Limits,
    /// What the limits of all the project's containers may add up to.
    pub budget: Budget,
    projects: tokio::sync::Mutex<HashMap<String, Arc<Up>>>,
}

impl ComposeLauncher {
    /// A launcher for `service` of `project`.
    pub fn new(
        sandbox: Arc<Sandbox>,
        tool: Tool,
        project: Project,
        service: String,
        images: HashMap<String, String>,
        limits: Limits,
        budget: Budget,
    ) -> Self {
        Self {
            sandbox,
            tool,
            project,
            service,
            images,
            limits,
            budget,
            projects: Default::default(),
        }
    }

    pub(super) fn describe(&self) -> String {
        format!(
            "service `{}` of the Compose project in {} ({})",
            self.service,
            self.project.dir.display(),
            self.tool.command.join(" ")
        )
    }

    /// The graded service's image: the one proctor built, or the project's.
    pub fn image(&self) -> Option<String> {
        self.images.get(&self.service).cloned().or_else(|| {
            let services = self.project.config.get("services")?;
            Some(services.get(self.service.as_str())?.get("image")?.as_str()?.to_string())
        })
    }

    /// The project of a challenge, brought up on first use.
    async fn up(&self, launch: &Launch<'_>) -> Result<Arc<Up>, TargetError> {
        let challenge = launch.challenge;
        let mut projects = self.projects.lock().await;
        if let Some(up) = projects.get(&challenge.id) {
            return Ok(Arc::clone(up));
        }
        let name = project_name(self.sandbox.run_id(), &challenge.id);
        let spec = &challenge.spec.service;
        let mut env = launch.env.clone();
        env.push(("PORT".to_string(), spec.port.to_string()));
        if let Some(tls) = &spec.tls {
            env.push(("HTTP_PORT".to_string(), tls.http_port.to_string()));
        }
        let mut labels = self.sandbox.labels();
        labels.insert("dev.proctor.challenge".to_string(), challenge.id.clone());
        self.sandbox.network().await?;
        let network = self.sandbox.network_name();
        let plan = Plan {
            service: &self.service,
            replicas: spec.replicas,
            env: &env,
            data: spec.data.as_deref(),
            network: &network,
            labels: &labels,
            limits: limits::resolve(&spec.limits, &self.limits),
            images: &self.images,
            publish: (self.sandbox.mode() == crate::sandbox::NetworkMode::Published).then_some(spec.port),
            budget: self.budget,
        };
        let text = harden(&self.project, &plan)?;
        let dir = tempfile::Builder::new()
            .prefix("proctor-compose-")
            .tempdir()
            .map_err(|e| TargetError::Compose(format!("cannot write the hardened project: {e}")))?;
        let file = dir.path().join("compose.yaml");
        std::fs::write(&file, text)
            .map_err(|e| TargetError::Compose(format!("cannot write {}: {e}", file.display())))?;
        let file = file.display().to_string();
        let started = self
            .tool
            .run(
                Some(dir.path()),
                &["-p", &name, "-f", &file, "up", "-d", "--no-build", "--no-color"],
                COMPOSE_TIMEOUT,
            )
            .await;
        let containers = match started {
            Ok(_) => self
                .sandbox
                .compose_containers(&name, &self.service)
                .await
                .map_err(TargetError::Sandbox),
            Err(message) => Err(TargetError::Compose(message)),
        };
        let up = Up {
            containers: match containers {
                Ok(containers) => containers,
                Err(error) => {
                    let _ = self.down_named(&name, &file).await;
                    return Err(error);
                }
            },
            name,
            dir,
            env: launch.env.clone(),
        };
        let up = Arc::new(up);
        projects.insert(challenge.id.clone(), Arc::clone(&up));
        Ok(up)
    }

    pub(super) async fn spawn(&self, launch: &Launch<'_>) -> Result<Spawned, TargetError> {
        let up = self.up(launch).await?;
        if !launch.removed.is_empty() || launch.env != up.env {
            // The project's containers are created once, with the challenge's env.
            return Err(TargetError::Unsupported {
                action: "changing the env of a service of a Compose project",
                target: self.describe(),
            });
        }
        let id = up.containers.get(launch.replica as usize).ok_or_else(|| {
            TargetError::Compose(format!(
                "the project started {} container(s) of `{}`, not {}",
                up.containers.len(),
                self.service,
                launch.replica + 1
            ))
        })?;
        let container = self
            .sandbox
            .adopt(id, launch.challenge, launch.generation > 0, launch.logs.clone())
            .await?;
        Ok(Spawned {
            base_url: container.base_url.clone(),
            plain_url: container.plain_url.clone(),
            instance: Instance::Container(Box::new(container)),
        })
    }

    /// Takes the challenge's project down: its containers and volumes (the images and the network go with the
    /// run).
    pub(super) async fn release(&self, challenge: &Challenge) {
        let up = self.projects.lock().await.remove(&challenge.id);
        if let Some(up) = up
            && !self.sandbox.keep()
        {
            let file = up.dir.path().join("compose.yaml").display().to_string();
            let _ = self.down_named(&up.name, &file).await;
        }
    }

    /// Restarts another service of a challenge's project (stop, then start, waiting up to 5 s for it to stop).
    pub(super) async fn restart_service(&self, challenge: &Challenge, service: &str) -> Result<(), TargetError> {
        if service == self.service {
            return Err(TargetError::Compose(format!(
                "`{service}` is the service graded: restart it with a `restart` step without `service`"
            )));
        }
        if !self.project.services().iter().any(|s| s == service) {
            return Err(TargetError::Compose(format!(
                "the project has no service `{service}` (it has {})",
                self.project.services().join(", ")
            )));
        }
        let up = self.projects.lock().await.get(&challenge.id).cloned();
        let up = up.ok_or_else(|| TargetError::Compose("the project is not running".to_string()))?;
        let file = up.dir.path().join("compose.yaml").display().to_string();
        self.tool
            .run(
                None,
                &["-p", &up.name, "-f", &file, "restart", "-t", "5", service],
                COMPOSE_TIMEOUT,
            )
            .await
            .map(|_| ())
            .map_err(TargetError::Compose)
    }

    async fn down_named(&self, name: &str, file: &str) -> Result<String, String> {
        self.tool
            .run(
                None,
                &["-p", name, "-f", file, "down", "-v", "--remove-orphans", "-t", "2"],
                COMPOSE_TIMEOUT,
            )
            .await
    }
}

/// A Compose project name of the run for a challenge: lowercase letters, digits, `-` and `_`.
fn project_name(run: &str, challenge: &str) -> String {
    format!("proctor-{run}-{challenge}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(yaml: &str, dir: &Path) -> Project {
        Project {
            dir: dir.to_path_buf(),
            config: serde_yaml::from_str(yaml).expect("yaml"),
        }
    }

    fn plan<'a>(
        env: &'a [(String, String)],
        labels: &'a HashMap<String, String>,
        images: &'a HashMap<String, String>,
    ) -> Plan<'a> {
        Plan {
            service: "api",
            replicas: 2,
            env,
            data: Some("/data"),
            network: "proctor-run1",
            labels,
            limits: Resolved {
                memory: 512 << 20,
                cpus: 1.0,
                pids: 256,
            },
            images,
            publish: None,
            budget: Budget::default(),
        }
    }

    #[test]
    fn every_service_is_hardened_and_only_the_graded_one_gets_the_env_and_replicas() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir(dir.path().join("init")).expect("mkdir");
        let root = dir.path().canonicalize().expect("canonical");
        let yaml = format!(
            r#"
services:
  api:
    build: {{ context: {root} }}
    ports: ["8080:8080"]
    privileged: true
    cap_add: [SYS_ADMIN]
    network_mode: host
    deploy: {{ resources: {{ limits: {{ memory: 128M, cpus: "2" }} }} }}
    environment: [FROM_PROJECT=1]
  db:
    image: store:local
    volumes: ["dbdata:/var/lib/db", "./init:/docker-entrypoint-initdb.d"]
    labels: ["team=x"]
volumes:
  dbdata: {{ external: true }}
"#,
            root = root.display()
        );
        let env = vec![("ORDER_LIMIT".to_string(), "3$".to_string())];
        let labels = HashMap::from([("dev.proctor.run".to_string(), "run1".to_string())]);
        let images = HashMap::from([("api".to_string(), "proctor-run1:api".to_string())]);
        let text = harden(&project(&yaml, &root), &plan(&env, &labels, &images)).expect("hardened");
        let file: Value = serde_yaml::from_str(&text).expect("valid yaml");
        let api = &file["services"]["api"];
        let db = &file["services"]["db"];
        for service in [api, db] {
            for removed in [
                "ports",
                "privileged_mode",
                "cap_add",
                "network_mode",
                "deploy",
                "build",
                "networks",
            ] {
                assert!(service.get(removed).is_none(), "{removed} left in {service:?}");
            }
            assert_eq!(service["read_only"], Value::from(true));
            assert_eq!(service["privileged"], Value::from(false));
            assert_eq!(service["cap_drop"][0], Value::from("ALL"));
            assert_eq!(service["security_opt"][0], Value::from("no-new-privileges:true"));
            assert_eq!(service["labels"]["dev.proctor.run"], Value::from("run1"));
            assert_eq!(service["pids_limit"], Value::from(256));
        }
        // The service's own lower limits stay; proctor's cap the rest.
        assert_eq!(api["mem_limit"], Value::from(128u64 << 20));
        assert_eq!(api["cpus"], Value::from(1.0));
        assert_eq!(db["mem_limit"], Value::from(512u64 << 20));
        assert_eq!(api["image"], Value::from("proctor-run1:api"));
        assert_eq!(api["scale"], Value::from(2));
        assert_eq!(api["environment"]["ORDER_LIMIT"], Value::from("3$$"));
        assert_eq!(api["environment"]["FROM_PROJECT"], Value::from("1"));
        assert_eq!(api["environment"]["DATA_DIR"], Value::from("/data"));
        assert!(db.get("environment").is_none() && db.get("scale").is_none());
        assert_eq!(db["labels"]["team"], Value::from("x"));
        // A host path inside the project is mounted read-only; named volumes are fresh and labelled.
        assert_eq!(db["volumes"][0]["type"], Value::from("volume"));
        assert_eq!(db["volumes"][0]["source"], Value::from("dbdata"));
        assert_eq!(db["volumes"][1]["type"], Value::from("bind"));
        assert_eq!(
            db["volumes"][1]["source"],
            Value::from(root.join("init").display().to_string())
        );
        assert_eq!(db["volumes"][1]["read_only"], Value::from(true));
        assert_eq!(
            file["volumes"]["dbdata"]["labels"]["dev.proctor.run"],
            Value::from("run1")
        );
        assert!(file["volumes"]["dbdata"].get("external").is_none());
        assert!(file["volumes"].get("proctor-data").is_some());
        assert_eq!(file["networks"]["default"]["external"], Value::from(true));
        assert_eq!(file["networks"]["default"]["name"], Value::from("proctor-run1"));
    }

    #[test]
    fn host_paths_outside_the_project_secrets_and_unknown_services_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let root = dir.path().canonicalize().expect("canonical");
        let env = Vec::new();
        let labels = HashMap::new();
        let images = HashMap::new();
        let refused = |yaml: &str| match harden(&project(yaml, &root), &plan(&env, &labels, &images)) {
            Err(TargetError::Compose(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let socket = "services:\n  api:\n    image: x\n    volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]\n";
        assert!(
            refused(socket).contains("outside the project folder"),
            "{}",
            refused(socket)
        );
        let escape = "services:\n  api:\n    image: x\n    volumes: [\"../..:/host\"]\n";
        assert!(refused(escape).contains("outside the project folder"));
        let secrets = "services:\n  api:\n    image: x\nsecrets:\n  key: { file: /etc/shadow }\n";
        assert!(refused(secrets).contains("`secrets`"));
        let other = "services:\n  web:\n    image: x\n";
        assert!(refused(other).contains("no service `api`"));
        // Keys that reach the host are refused by name, not dropped silently.
        for key in [
            "devices: [\"/dev/sda\"]",
            "use_api_socket: true",
            "pid: host",
            "oom_score_adj: -1000",
        ] {
            let yaml = format!("services:\n  api:\n    image: x\n    {key}\n");
            let name = key.split(':').next().unwrap_or_default();
            assert!(refused(&yaml).contains(&format!("uses `{name}`")), "{}", refused(&yaml));
        }
        // A volume source that is no declared volume would be read as a host path by Compose.
        let dots = "services:\n  api:\n    image: x\n    volumes: [{ type: volume, source: \"..\", target: /h }]\nvolumes:\n  other: {}\n";
        assert!(
            refused(dots).contains("neither a volume the project declares"),
            "{}",
            refused(dots)
        );
        // A variable without a value would be filled from proctor's environment.
        let bare = "services:\n  api:\n    image: x\n    environment: { GITHUB_TOKEN: null }\n";
        assert!(refused(bare).contains("passes `GITHUB_TOKEN` without a value"));
    }

    #[test]
    fn a_project_over_its_budget_is_refused_with_what_each_service_takes() {
        let dir = tempfile::tempdir().expect("dir");
        let root = dir.path().canonicalize().expect("canonical");
        let yaml = concat!(
            "services:\n",
            "  api: { image: x, deploy: { resources: { limits: { memory: 100M, cpus: '0.4' } } } }\n",
            "  db: { image: y, mem_limit: 150m, cpus: 0.5 }\n",
        );
        let (env, labels, images) = (Vec::new(), HashMap::new(), HashMap::new());
        let mut plan = plan(&env, &labels, &images);
        // Two api replicas and the database: 350 MiB and 1.3 CPUs, as Rinha de Backend's budget allows.
        plan.budget = Budget {
            memory: Some(350 << 20),
            cpus: Some(1.5),
        };
        assert!(harden(&project(yaml, &root), &plan).is_ok());
        plan.budget.cpus = Some(1.2);
        let Err(TargetError::Compose(message)) = harden(&project(yaml, &root), &plan) else {
            panic!("over the CPU budget");
        };
        assert!(
            message.contains("350 MiB and 1.3 CPUs, over the budget of 350 MiB and 1.2 CPUs"),
            "{message}"
        );
        assert!(
            message.contains("api: 2 × (100 MiB, 0.4 CPUs), db: 1 × (150 MiB, 0.5 CPUs)"),
            "{message}"
        );
        plan.budget = Budget {
            memory: Some(300 << 20),
            cpus: None,
        };
        assert!(harden(&project(yaml, &root), &plan).is_err());
    }

    #[test]
    fn project_names_are_what_compose_accepts() {
        assert_eq!(project_name("Run1", "rate.limiter"), "proctor-run1-rate_limiter");
    }
}
