//! The command line: clap definitions, turned into validated library configuration before anything runs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use proctor::report::FileReporter;
use proctor::sandbox::{BuildLimits, BuildNetwork, NetworkMode};
use proctor::session::Options;
use proctor::spec::model::Limits;
use proctor::spec::types::ByteSize;
use proctor::target::{DockerOptions, DockerSource, Target};

/// The exit codes, as `--help` shows them (one text for the short and the long help).
macro_rules! exit_codes {
    () => {
        "Exit codes:
  0    every challenge reached its pass mark
  1    a challenge scored below its pass mark
  2    usage error or invalid challenge spec
  3    the service could not be started or reached
  4    a probe could not run (proctor's or the environment's fault): the grade is incomplete
  130  interrupted (Ctrl-C, SIGTERM or SIGHUP)"
    };
}

const EXIT_CODES: &str = exit_codes!();

/// The exit codes of `grade`: a submission's verdict is in the leaderboard, not in the exit code.
const BATCH_EXIT_CODES: &str = "Exit codes:
  0    every submission was graded or skipped (whatever its verdict: see the leaderboard)
  2    usage error, invalid challenge spec, or no submissions found
  3    the output folder could not be written
  130  interrupted (Ctrl-C, SIGTERM or SIGHUP)";

/// Grades hands-on backend challenges with HTTP conformance probes.
#[derive(Debug, Parser)]
#[command(name = "proctor", version, about, long_about = None, after_help = EXIT_CODES)]
#[command(after_long_help = concat!(
    "Quick start:\n",
    "  proctor list                                   the challenges and their interview questions\n",
    "  proctor show rate-limiter                      the brief: what to build and how it is graded\n",
    "  proctor run rate-limiter --url http://127.0.0.1:3000\n",
    "  proctor run rate-limiter --cmd './server'      start it for me (PORT and env set), grade, stop\n",
    "  proctor demo                                   grade the bundled reference service\n\n",
    exit_codes!()
))]
pub struct Cli {
    /// When to colour output: auto (a terminal without NO_COLOR), always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal unless NO_COLOR is set.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// `list --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// Aligned columns.
    Table,
    /// A JSON array.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the catalog: id, interview question, title, tags, probes and points.
    List {
        /// `table` for people, `json` for scripts (an array of objects with the same fields).
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// Show a challenge's brief: what to build, the API contract, the env vars, how it is graded.
    Show {
        /// A catalog id or a spec file.
        challenge: String,
    },
    /// Grade a service against challenges.
    #[command(after_help = EXIT_CODES)]
    Run(Box<RunArgs>),
    /// Grade a folder of submissions in the Docker sandbox, several at once, into per-submission reports (every
    /// format, and candidate-facing copies with hidden probes redacted) and a leaderboard (table, CSV, JSON,
    /// HTML index). A rerun skips submissions already graded with the same inputs.
    #[command(
        after_help = BATCH_EXIT_CODES,
        mut_arg("jobs", |a| a.help("How many submissions to grade at once, at most, 1 to 256 (default: one per CPU of the Docker engine)")),
    )]
    Grade(Box<BatchArgs>),
    /// Join the leaderboards of partitions (`grade --partition`) into one: leaderboard.json, .csv and index.html.
    Merge {
        /// The partitions' leaderboard.json files.
        #[arg(required = true)]
        leaderboards: Vec<PathBuf>,
        /// Where the merged leaderboard goes.
        #[arg(long, value_name = "DIR", default_value = "proctor-results")]
        out: PathBuf,
    },
    /// Grade the bundled reference service against the catalog (no Docker, nothing to install).
    #[command(after_help = EXIT_CODES)]
    Demo(DemoArgs),
    /// Check spec files and report every problem with file, line, column and field.
    Validate {
        /// Spec files or folders (default: the embedded catalog).
        paths: Vec<String>,
    },
    /// Print the JSON Schema of the spec format (for editor completion), or of the JSON report.
    Schema {
        /// Print the schema of the JSON report (`--report json=...`) instead.
        #[arg(long)]
        report: bool,
    },
    /// Remove every container, network and image proctor made (all carry the label dev.proctor.managed=1).
    /// Do not run it while a Docker run is in progress: it would remove that run's containers too.
    Clean {
        /// Only remove what one run made (its id is in the JSON report and in --keep's output).
        #[arg(long)]
        run: Option<String>,
    },
    /// Print a shell completion script: `proctor completions bash > ~/.local/share/bash-completion/completions/proctor`
    /// (zsh: a file `_proctor` in a folder of $fpath; fish: ~/.config/fish/completions/proctor.fish).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `proctor man > ~/.local/share/man/man1/proctor.1`, then `man proctor`; or write
    /// every page (proctor.1, proctor-run.1, …) with `--out-dir`.
    Man {
        /// Write proctor.1 and one page per subcommand into this folder instead of printing proctor.1.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Serve the bundled reference service, to try a challenge's endpoints by hand or as a `--cmd` target.
    Reference {
        /// Port to listen on (default: $PORT, else 8080).
        #[arg(long, env = "PORT", default_value_t = 8080)]
        port: u16,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// Defects to switch on, comma-separated (see `proctor demo --list-defects`).
        #[arg(long, env = "REFERENCE_DEFECTS", default_value = "")]
        defects: String,
    },
}

/// Options shared by `run` and `demo`.
#[derive(Debug, Args)]
pub struct GradeArgs {
    /// Seed for every generated value (unique keys, UUIDs); printed in the report so a run can be repeated.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Pass mark in percent for every challenge, overriding the specs'.
    #[arg(long, value_name = "PERCENT", value_parser = percent)]
    pub min_score: Option<f64>,
    /// How many challenges to grade at once, 1 to 256 (default: all for --cmd/demo, 1 for --url).
    #[arg(long, short = 'j', value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: Option<u16>,
    /// Write a report: json=PATH, junit=PATH, markdown=PATH or html=PATH (repeatable); PATH `-` is standard output (then the
    /// terminal report goes to stderr, so stdout holds only that report).
    #[arg(long, value_name = "FORMAT=PATH")]
    pub report: Vec<String>,
    /// Per-request timeout, overriding the specs' (e.g. 5s; 10ms to 10m).
    #[arg(long, value_parser = timeout)]
    pub request_timeout: Option<Duration>,
    /// How long the service may take to become ready, overriding the specs' (e.g. 60s; 10ms to 10m).
    #[arg(long, value_parser = timeout)]
    pub start_timeout: Option<Duration>,
    /// Largest response body read before the response counts as too big, e.g. 4MiB or 65536.
    #[arg(long, value_parser = body_size, default_value = "4MiB")]
    pub max_body: usize,
    /// Run only the probes whose id matches (repeatable; globs such as 'rejects-*' or 'jwt-auth/rejects-*').
    /// The score then covers those probes only.
    #[arg(long, value_name = "ID")]
    pub probe: Vec<String>,
    /// Replace hidden probes' details with "hidden probe" in every report (for candidate-facing output).
    #[arg(long)]
    pub redact_hidden: bool,
    /// Print no progress and no terminal report (errors and warnings still go to stderr; --report files are
    /// written; the exit code tells the verdict).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

impl GradeArgs {
    /// The session options these flags ask for.
    pub fn options(&self) -> Options {
        Options {
            seed: self.seed.unwrap_or_else(rand::random),
            jobs: self.jobs.map(usize::from),
            min_score: self.min_score,
            start_timeout: self.start_timeout,
            request_timeout: self.request_timeout,
            max_body: self.max_body,
            probe_filter: self.probe.clone(),
            redact_hidden: self.redact_hidden,
            ..Options::new()
        }
    }
}

/// `proctor run`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true)))]
pub struct RunArgs {
    /// Catalog ids, spec files or folders of spec files.
    #[arg(required = true)]
    pub challenges: Vec<String>,
    /// Base URL of a service that is already running.
    #[arg(long, group = "target", help_heading = "Target (one of)")]
    pub url: Option<url::Url>,
    /// Shell command that starts the service; it gets PORT and the challenge's env, and its whole process
    /// group is stopped afterwards.
    #[arg(long, group = "target", help_heading = "Target (one of)")]
    pub cmd: Option<String>,
    /// Submission folder with a Dockerfile: build it and grade it in the Docker sandbox.
    #[arg(long, group = "target", help_heading = "Target (one of)")]
    pub path: Option<PathBuf>,
    /// Docker image to grade in the sandbox (must be on the engine already).
    #[arg(long, group = "target", help_heading = "Target (one of)")]
    pub image: Option<String>,
    /// Submission folder with a Compose project (compose.yaml or docker-compose.yml): bring it up with the
    /// Compose tool (the `docker compose` plugin or `docker-compose`), hardened, in the Docker sandbox, and grade
    /// one of its services (--service).
    #[arg(long, group = "target", help_heading = "Target (one of)")]
    pub compose: Option<PathBuf>,
    /// With --compose: the service to grade (needed when the project has several); it listens on the spec's port.
    #[arg(long, value_name = "NAME", requires = "compose", help_heading = "Target (one of)")]
    pub service: Option<String>,
    /// With --compose: the most memory the limits of all the project's containers may add up to (e.g. 350MiB,
    /// as Rinha de Backend allows); a project over it is refused, with what each service takes.
    #[arg(long, value_name = "SIZE", value_parser = bytes, requires = "compose", help_heading = "Target (one of)")]
    pub budget_memory: Option<u64>,
    /// With --compose: the most CPUs the limits of all the project's containers may add up to (e.g. 1.5).
    #[arg(long, value_name = "CPUS", requires = "compose", help_heading = "Target (one of)")]
    pub budget_cpus: Option<f64>,
    /// Listen with proctor's server NAME (a challenge's upstream or webhook receiver) on 127.0.0.1:PORT
    /// (repeatable); needed with --url, where the service must be started knowing the servers' addresses.
    #[arg(long, value_name = "NAME=PORT", value_parser = server_port)]
    pub server_port: Vec<(String, u16)>,
    /// With --cmd or --url: grade again whenever a file below PATH changes (default: the current folder),
    /// showing only what changed since the previous run (newly passing, newly failing); with --url, Enter
    /// grades again too. --cmd starts the service afresh each time. Ctrl-C ends it.
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = ".")]
    pub watch: Option<PathBuf>,
    /// Docker sandbox options.
    #[command(flatten)]
    pub docker: DockerArgs,
    /// Options shared with demo.
    #[command(flatten)]
    pub grade: GradeArgs,
}

impl RunArgs {
    /// The target these flags describe, checked.
    pub fn target(&self) -> Result<Target, String> {
        let source = match (&self.url, &self.cmd, &self.path, &self.image) {
            _ if self.compose.as_ref().is_some_and(|dir| !dir.is_dir()) => {
                let dir = self
                    .compose
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default();
                return Err(format!("--compose {dir}: no such folder"));
            }
            _ if self.compose.is_some() => DockerSource::Compose {
                dir: self.compose.clone().unwrap_or_default(),
                service: self.service.clone(),
                budget: budget(self.budget_memory, self.budget_cpus, "--budget-cpus")?,
            },
            (Some(url), ..) if !matches!(url.scheme(), "http" | "https") => {
                return Err(format!(
                    "--url {}: only http:// and https:// services can be graded",
                    proctor::http::redacted(url)
                ));
            }
            (Some(url), ..) if url.query().is_some() || url.fragment().is_some() => {
                return Err(
                    "--url takes a base URL (scheme, host, port and an optional path), without ?query or #fragment"
                        .into(),
                );
            }
            (Some(url), ..) => return Ok(Target::Url(url.clone())),
            (_, Some(cmd), ..) => return Ok(Target::Command(cmd.clone())),
            (_, _, Some(path), _) if !path.is_dir() => {
                return Err(format!("--path {}: no such folder", path.display()));
            }
            (_, _, Some(path), _) => DockerSource::Build(path.clone()),
            (_, _, _, Some(image)) => DockerSource::Image(image.clone()),
            _ => return Err("give one of --url, --cmd, --path, --image or --compose".into()),
        };
        let docker = self.docker.options()?;
        Ok(Target::Docker { source, docker })
    }
}

impl DockerArgs {
    /// The sandbox options these flags ask for, checked.
    pub fn options(&self) -> Result<DockerOptions, String> {
        let d = self;
        let limits = Limits {
            memory: d.memory.map(ByteSize),
            cpus: d.cpus,
            pids: d.pids,
        };
        if let Some((field, message)) = proctor::limits::check(&limits).into_iter().next() {
            return Err(format!("--{field}: {message}"));
        }
        Ok(DockerOptions {
            network: match d.docker_network {
                NetworkChoice::Auto => None,
                NetworkChoice::Internal => Some(NetworkMode::Internal),
                NetworkChoice::Published => Some(NetworkMode::Published),
            },
            keep: d.keep,
            limits,
            build_timeout: d.build_timeout,
            max_context: d.max_context,
            build_limits: BuildLimits {
                memory: d.build_memory,
                cpus: d.build_cpus,
                network: match d.build_network {
                    BuildNetworkChoice::Bridge => BuildNetwork::Bridge,
                    BuildNetworkChoice::None => BuildNetwork::None,
                },
            },
        })
    }
}

/// `proctor grade`: a folder of submissions.
#[derive(Debug, Args)]
pub struct BatchArgs {
    /// Catalog ids, spec files or folders of spec files.
    #[arg(required = true)]
    pub challenges: Vec<String>,
    /// A folder with one subfolder per submission (a Dockerfile, or a Compose project), or a file listing one
    /// image per line (`NAME IMAGE`, or just `IMAGE`).
    #[arg(long, value_name = "PATH")]
    pub submissions: PathBuf,
    /// Where the per-submission reports and the leaderboard go.
    #[arg(long, value_name = "DIR", default_value = "proctor-results")]
    pub out: PathBuf,
    /// Grade only partition I of N (the i-th submission in name order goes to partition i mod N, as nextest's
    /// `--partition count:I/N`); `proctor merge` joins the partitions' leaderboards.
    #[arg(long, value_name = "I/N", value_parser = partition)]
    pub partition: Option<(usize, usize)>,
    /// Grade again submissions already graded with the same inputs (by default they are skipped).
    #[arg(long)]
    pub force: bool,
    /// For Compose submissions: the service to grade.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// For Compose submissions: the most memory the limits of all a project's containers may add up to.
    #[arg(long, value_name = "SIZE", value_parser = bytes)]
    pub budget_memory: Option<u64>,
    /// For Compose submissions: the most CPUs the limits of all a project's containers may add up to.
    #[arg(long, value_name = "CPUS")]
    pub budget_cpus: Option<f64>,
    /// The most memory the submissions graded at once may take together, as the sum of their containers'
    /// memory limits (e.g. 16GiB; a submission over it is graded alone). By default only --jobs bounds them.
    #[arg(long, value_name = "SIZE", value_parser = bytes)]
    pub max_memory: Option<u64>,
    /// The most CPUs the submissions graded at once may take together, as the sum of their containers' CPU
    /// limits (a submission over it is graded alone). By default only --jobs bounds them.
    #[arg(long, value_name = "CPUS")]
    pub max_cpus: Option<f64>,
    /// Docker sandbox options, for every submission.
    #[command(flatten)]
    pub docker: DockerArgs,
    /// Options shared with run (`--jobs` counts submissions; `--report` does not apply: every format is written
    /// into --out).
    #[command(flatten)]
    pub grade: GradeArgs,
}

/// A budget from a memory and a CPU flag (`--budget-*` of a Compose project, `--max-*` of a batch), checked;
/// `cpus_flag` names the CPU flag in the error.
pub fn budget(
    memory: Option<u64>,
    cpus: Option<f64>,
    cpus_flag: &str,
) -> Result<proctor::target::compose::Budget, String> {
    if cpus.is_some_and(|c| !(c > 0.0 && c <= 1024.0)) {
        return Err(format!("{cpus_flag}: a number of CPUs greater than 0"));
    }
    Ok(proctor::target::compose::Budget { memory, cpus })
}

/// `I/N` with 1 ≤ I ≤ N.
fn partition(text: &str) -> Result<(usize, usize), String> {
    let parsed = text
        .split_once('/')
        .and_then(|(i, n)| Some((i.trim().parse::<usize>().ok()?, n.trim().parse::<usize>().ok()?)));
    match parsed {
        Some((i, n)) if (1..=n).contains(&i) => Ok((i, n)),
        _ => Err(format!("`{text}` is not a partition like 1/3 (from 1 to the count)")),
    }
}

/// Options of the Docker sandbox (`--path`, `--image`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Docker sandbox")]
pub struct DockerArgs {
    /// Memory limit of the container (swap is not added), e.g. 256MiB. Default: the spec's, else 512MiB.
    #[arg(long, value_parser = bytes)]
    pub memory: Option<u64>,
    /// CPU limit of the container, e.g. 0.5. Default: the spec's, else 1.
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Process and thread limit of the container. Default: the spec's, else 256.
    #[arg(long)]
    pub pids: Option<u32>,
    /// How probes reach the container: internal (a network with no egress; Linux engines), published (a port
    /// on 127.0.0.1; for Docker Desktop and remote engines; egress is not blocked) or auto.
    #[arg(long, value_enum, default_value_t = NetworkChoice::Auto)]
    pub docker_network: NetworkChoice,
    /// Keep the containers, network and image after the run, and print how to inspect them.
    #[arg(long)]
    pub keep: bool,
    /// Longest the image build may take (--path).
    #[arg(long, value_parser = build_timeout, default_value = "10m")]
    pub build_timeout: Duration,
    /// Largest build context (--path), e.g. 500MiB.
    #[arg(long, value_parser = bytes, default_value = "200MiB")]
    pub max_context: u64,
    /// Memory of each build step (--path; swap is not added), at most 2047MiB.
    #[arg(long, value_parser = build_memory, default_value = "1536MiB")]
    pub build_memory: u64,
    /// CPUs of each build step (--path).
    #[arg(long, value_parser = build_cpus, default_value_t = 1.0)]
    pub build_cpus: f64,
    /// Network of the build's RUN steps (--path): bridge (the default: package installs reach their registries)
    /// or none (no network at all, for submissions that vendor their dependencies).
    #[arg(long, value_enum, default_value_t = BuildNetworkChoice::Bridge)]
    pub build_network: BuildNetworkChoice,
}

/// `--build-network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuildNetworkChoice {
    /// The engine's default bridge.
    Bridge,
    /// No network.
    None,
}

fn build_memory(text: &str) -> Result<u64, String> {
    let size = bytes(text)?;
    if !(64 << 20..=proctor::sandbox::MAX_BUILD_MEMORY).contains(&size) {
        return Err(format!(
            "{size} bytes is outside 64MiB ..= 2047MiB (the build API's limit)"
        ));
    }
    Ok(size)
}

fn build_cpus(text: &str) -> Result<f64, String> {
    let cpus: f64 = text.parse().map_err(|_| format!("`{text}` is not a number of CPUs"))?;
    if !(0.01..=64.0).contains(&cpus) {
        return Err(format!("{cpus} is outside 0.01 ..= 64 CPUs"));
    }
    Ok(cpus)
}

/// `--docker-network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetworkChoice {
    /// internal on a local Linux engine, published otherwise.
    Auto,
    /// An internal network with no egress.
    Internal,
    /// A port published on 127.0.0.1.
    Published,
}

fn body_size(text: &str) -> Result<usize, String> {
    let size = bytes(text)?;
    usize::try_from(size)
        .ok()
        .filter(|n| (1..=1 << 30).contains(n))
        .ok_or_else(|| format!("{size} bytes is outside 1 byte ..= 1GiB"))
}

fn bytes(text: &str) -> Result<u64, String> {
    proctor::spec::types::parse_bytes(text).ok_or_else(|| format!("`{text}` is not a size like 256MiB or 1GiB"))
}

/// `proctor demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Challenges to grade (default: the whole catalog).
    pub challenges: Vec<String>,
    /// Switch on named defects of the reference service, e.g. etag-unquoted,create-200 (see --list-defects).
    #[arg(long, default_value = "")]
    pub defects: String,
    /// List the reference service's defects and exit.
    #[arg(long)]
    pub list_defects: bool,
    /// Options shared with run.
    #[command(flatten)]
    pub grade: GradeArgs,
}

fn percent(text: &str) -> Result<f64, String> {
    let n: f64 = text
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("`{text}` is not a percentage"))?;
    if (0.0..=100.0).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is outside 0..=100"))
    }
}

/// A request or start timeout: within the bounds a spec may set.
fn timeout(text: &str) -> Result<Duration, String> {
    bounded(text, Duration::from_millis(10), proctor::spec::validate::MAX_DURATION)
}

fn build_timeout(text: &str) -> Result<Duration, String> {
    bounded(text, Duration::from_millis(10), Duration::from_secs(24 * 3600))
}

fn bounded(text: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = duration(text)?;
    if d < min || d > max {
        return Err(format!(
            "{} is outside {} ..= {}",
            humantime::format_duration(d),
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

fn duration(text: &str) -> Result<Duration, String> {
    proctor::spec::types::parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration like 500ms, 5s, 1m or 1m30s"))
}

/// Whether one of the `--report FORMAT=PATH` values sends its report to standard output (`PATH` is `-`).
pub fn report_to_stdout(values: &[String]) -> bool {
    values
        .iter()
        .any(|v| v.split_once('=').is_some_and(|(_, path)| path == "-"))
}

/// Parses every `--report FORMAT=PATH` value into a file reporter, checking before any grading that each
/// destination can be written and that no two reports share one.
pub fn report_files(values: &[String]) -> Result<Vec<Box<dyn proctor::event::Reporter>>, String> {
    let targets = parse_report_targets(values)?;
    if targets.iter().filter(|t| t.to_stdout()).count() > 1 {
        return Err("--report: only one report can go to standard output (`-`)".to_string());
    }
    let mut seen: Vec<PathBuf> = Vec::new();
    for target in targets.iter().filter(|t| !t.to_stdout()) {
        let absolute = std::path::absolute(&target.path).unwrap_or_else(|_| target.path.clone());
        if seen.contains(&absolute) {
            return Err(format!(
                "--report: {} is named for two reports; give each format its own file",
                target.path.display()
            ));
        }
        seen.push(absolute);
        writable(&target.path).map_err(|e| format!("--report {}: {e}", target.path.display()))?;
    }
    Ok(targets
        .into_iter()
        .map(|t| Box::new(t) as Box<dyn proctor::event::Reporter>)
        .collect())
}

/// Whether a report can be written at `path`, found out without truncating an existing file or leaving a new
/// one behind.
fn writable(path: &std::path::Path) -> Result<(), String> {
    if path.is_dir() {
        return Err("is a folder; name a file".into());
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !parent.is_dir() {
        return Err(format!("the folder {} does not exist", parent.display()));
    }
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| format!("cannot be written: {e}"))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

fn parse_report_targets(values: &[String]) -> Result<Vec<FileReporter>, String> {
    values
        .iter()
        .map(|value| {
            let (format, path) = value
                .split_once('=')
                .ok_or_else(|| format!("--report `{value}`: write it as FORMAT=PATH, e.g. junit=report.xml"))?;
            let format = proctor::report::Format::parse(format).ok_or_else(|| {
                format!("--report `{value}`: unknown format `{format}` (json, junit, markdown or html)")
            })?;
            if path.is_empty() {
                return Err(format!("--report `{value}`: the path is empty"));
            }
            Ok(FileReporter {
                format,
                path: PathBuf::from(path),
            })
        })
        .collect()
}

fn server_port(text: &str) -> Result<(String, u16), String> {
    let (name, port) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=PORT"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("`{port}` is not a port from 1 to 65535"))?;
    Ok((name.to_string(), port))
}
