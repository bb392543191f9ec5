//! The `proctor` binary: parses the command line, runs the library, maps the result to an exit code.

mod cli;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use cli::{Cli, ColorChoice, Command, GradeArgs};
use std::sync::Arc;

use proctor::engine::{self, RunConfig};
use proctor::exit;
use proctor::logs::LogBuffer;
use proctor::neutral;
use proctor::outcome::RunReport;
use proctor::sandbox::{BuildOptions, NetworkMode, Sandbox, SweepGuard};
use proctor::spec::model::Limits;
use proctor::spec::types::ByteSize;
use proctor::spec::{self, Challenge, SpecError};
use proctor::target::ContainerTarget;
use proctor::target::Target;

/// Writes a line to stderr; a closed or broken stderr is not worth a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Writes text to stdout; `Err(code)` when it cannot (a closed pipe ends quietly, as `head` expects).
fn emit(text: &str) -> Result<(), u8> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(exit::OK),
        Err(e) => {
            say!("error: failed to write to standard output: {e}");
            Err(exit::USAGE)
        }
    }
}

/// Makes sure file descriptors 0, 1 and 2 are open (on /dev/null if they were closed), so that nothing proctor
/// writes or starts can fail or panic on a missing descriptor, and no file it opens takes their numbers.
fn ensure_standard_fds() {
    use std::os::fd::AsRawFd as _;
    for fd in 0..=2 {
        // SAFETY: F_GETFD only asks whether the descriptor number is open; it touches no memory.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1 {
            continue;
        }
        let Ok(null) = std::fs::OpenOptions::new()
            .read(fd == 0)
            .write(fd != 0)
            .open("/dev/null")
        else {
            continue;
        };
        if null.as_raw_fd() == fd {
            // open() took the lowest free number, which was this one: keep it.
            std::mem::forget(null);
            continue;
        }
        // SAFETY: dup2 onto a descriptor number that is not open; `null` stays owned and is closed on drop.
        unsafe { libc::dup2(null.as_raw_fd(), fd) };
    }
}

fn main() -> ExitCode {
    ensure_standard_fds();
    proctor::target::process::adopt_orphans();
    let cli = Cli::parse();
    let color = match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    console::set_colors_enabled(color);
    console::set_colors_enabled_stderr(color && std::io::stderr().is_terminal());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            say!("error: failed to start the async runtime: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let code = runtime.block_on(dispatch(cli.command, color));
    // Anything still running (a service that ignored SIGTERM) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    ExitCode::from(code)
}

async fn dispatch(command: Command, color: bool) -> u8 {
    match command {
        Command::List => list(),
        Command::Show { challenge } => show(&challenge, color),
        Command::Schema { report } => {
            let schema = if report {
                proctor::outcome::json_schema()
            } else {
                spec::json_schema()
            };
            emit(&schema).err().unwrap_or(exit::OK)
        }
        Command::Reference { port, host, defects } => serve_reference(host, port, &defects).await,
        Command::Validate { paths } => validate(&paths, color),
        Command::Run(args) => {
            let target = match (args.url, args.cmd, args.path, args.image) {
                (Some(url), ..) if !matches!(url.scheme(), "http" | "https") => {
                    return usage(&format!(
                        "--url {}: only http:// and https:// services can be graded",
                        proctor::http::redacted(&url)
                    ));
                }
                (Some(url), ..) if url.query().is_some() || url.fragment().is_some() => {
                    return usage(
                        "--url takes a base URL (scheme, host, port and an optional path), without ?query or #fragment",
                    );
                }
                (Some(url), ..) => Plan::Ready(Target::Url(url)),
                (_, Some(cmd), ..) => Plan::Ready(Target::Command(cmd)),
                (_, _, Some(path), _) if !path.is_dir() => {
                    return usage(&format!("--path {}: no such folder", path.display()));
                }
                (_, _, Some(path), _) => Plan::Docker(DockerSource::Build(path), args.docker),
                (_, _, _, Some(image)) => Plan::Docker(DockerSource::Image(image), args.docker),
                _ => return usage("give one of --url, --cmd, --path or --image"),
            };
            grade(&args.challenges, target, args.grade, color).await
        }
        Command::Clean { run } => clean(run.as_deref()).await,
        Command::Demo(args) => {
            if args.list_defects {
                let lines: String = proctor_reference::DEFECTS
                    .iter()
                    .map(|(name, what)| format!("{name:22} {what}\n"))
                    .collect();
                return emit(&lines).err().unwrap_or(exit::OK);
            }
            let challenges = if args.challenges.is_empty() {
                proctor::catalog::sources().into_iter().map(|s| s.id).collect()
            } else {
                args.challenges
            };
            if let Err(e) = proctor_reference::Config::new(Default::default(), &args.defects) {
                return usage(&e.to_string());
            }
            grade(
                &challenges,
                Plan::Ready(Target::Reference(args.defects)),
                args.grade,
                color,
            )
            .await
        }
    }
}

/// Serves the reference service until Ctrl-C or SIGTERM; its env is proctor's own environment.
async fn serve_reference(host: std::net::IpAddr, port: u16, defects: &str) -> u8 {
    let config = match proctor_reference::Config::new(std::env::vars().collect(), defects) {
        Ok(config) => config,
        Err(e) => return usage(&e.to_string()),
    };
    let listener = match tokio::net::TcpListener::bind((host, port)).await {
        Ok(listener) => listener,
        Err(e) => {
            say!("error: failed to listen on {host}:{port}: {e}");
            return exit::TARGET;
        }
    };
    if let Err(code) = emit(&format!("reference service listening on http://{host}:{port}\n")) {
        return code;
    }
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return exit::TARGET;
    };
    tokio::select! {
        result = proctor_reference::serve(listener, config) => {
            if let Err(e) = result {
                say!("error: the reference service stopped: {e}");
                return exit::TARGET;
            }
            exit::OK
        }
        _ = interrupt.recv() => exit::OK,
        _ = terminate.recv() => exit::OK,
    }
}

fn usage(message: &str) -> u8 {
    say!("error: {message}");
    exit::USAGE
}

/// Loads challenges named by ids, files or folders; prints every spec error.
fn load(args: &[String], color: bool) -> Result<Vec<Challenge>, u8> {
    let sources = spec::resolve(args, &proctor::catalog::sources()).map_err(|e| usage(&engine::error_chain(&e)))?;
    let mut challenges = Vec::new();
    let mut errors: Vec<SpecError> = Vec::new();
    for source in &sources {
        match spec::load(source) {
            Ok(challenge) => challenges.push(challenge),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        return Ok(challenges);
    }
    let mut stderr = std::io::stderr().lock();
    for error in &errors {
        let _ = write!(stderr, "{}", error.render(color && std::io::stderr().is_terminal()));
    }
    let _ = writeln!(
        stderr,
        "error: {} problem{} in the spec files",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    Err(exit::USAGE)
}

fn list() -> u8 {
    let challenges = match proctor::catalog::challenges() {
        Ok(c) => c,
        Err(errors) => {
            for e in errors {
                say!("{e}");
            }
            return exit::USAGE;
        }
    };
    let width = challenges.iter().map(|c| c.id.len()).max().unwrap_or(2).max(2);
    let mut text = format!(
        "{:width$}  {:>3}  {:6}  {:6}  title [tags]\n",
        "id", "Q", "probes", "points"
    );
    for c in &challenges {
        text.push_str(&format!(
            "{:width$}  {:>3}  {:>6}  {:>6}  {} [{}]\n",
            c.id,
            c.spec.question.number,
            c.spec.probes.len(),
            c.points(),
            c.spec.title,
            c.spec.tags.join(", ")
        ));
    }
    emit(&neutral::terminal(&text)).err().unwrap_or(exit::OK)
}

fn show(name: &str, color: bool) -> u8 {
    let challenge = match load(&[name.to_string()], color) {
        Ok(mut c) if c.len() == 1 => c.remove(0),
        Ok(_) => return usage("show takes one challenge"),
        Err(code) => return code,
    };
    let s = &challenge.spec;
    let mut text = format!("# {} — {}\n\n", challenge.id, s.title);
    text.push_str(&format!(
        "*Interview question {}:* {}\n\n",
        s.question.number,
        s.question.text.trim()
    ));
    text.push_str(s.brief.trim_end());
    text.push_str("\n\n## Rules\n\nEach rule is checked by the probes listed under it.\n\n");
    for rule in &s.rules {
        let probes: Vec<&str> = s
            .probes
            .iter()
            .filter(|p| p.rules.contains(&rule.id))
            .map(|p| match p.visibility {
                spec::model::Visibility::Public => p.id.as_str(),
                spec::model::Visibility::Hidden => "a hidden probe",
            })
            .collect();
        text.push_str(&format!(
            "- **`{}`** — {}\n  *probes:* {}\n",
            rule.id,
            rule.text.trim(),
            probes.join(", ")
        ));
    }
    text.push_str("\n## How it is graded\n\n");
    if !s.service.env.is_empty() {
        let env: Vec<String> = s.service.env.iter().map(|(k, v)| format!("`{k}={v}`")).collect();
        text.push_str(&format!("Started with `PORT` and {}.\n\n", env.join(", ")));
    }
    let ready = match &s.service.ready.http {
        Some(path) => format!("`GET {path}` answers"),
        None => "the port accepts connections".to_string(),
    };
    text.push_str(&format!("Grading starts once {ready}. Pass mark: {}%.\n\n", s.pass.0));
    for probe in &s.probes {
        if probe.visibility == spec::model::Visibility::Public {
            text.push_str(&format!(
                "- **{}** ({} pt, rules {}): {}\n",
                probe.id,
                probe.points,
                probe.rules.join(", "),
                probe.title
            ));
        }
    }
    let hidden = s
        .probes
        .iter()
        .filter(|p| p.visibility == spec::model::Visibility::Hidden)
        .count();
    if hidden > 0 {
        text.push_str(&format!("- and {hidden} hidden probe(s)\n"));
    }
    // A spec may come from anyone: its text reaches the terminal without control characters.
    let text = neutral::terminal(&text);
    let rendered = if color && std::io::stdout().is_terminal() {
        termimad::MadSkin::default()
            .term_text(&join_continuations(&text))
            .to_string()
    } else {
        text.into_owned()
    };
    emit(&rendered).err().unwrap_or(exit::OK)
}

/// Joins the indented continuation lines of list items onto the item, since termimad renders each source line
/// on its own; code fences are left alone.
fn join_continuations(markdown: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut in_code = false;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            in_code = !in_code;
        }
        let continuation = !in_code
            && line.starts_with(' ')
            && !trimmed.is_empty()
            && !trimmed.starts_with(['-', '*', '|', '`'])
            && lines
                .last()
                .is_some_and(|prev| !prev.trim().is_empty() && !prev.trim_start().starts_with("```"));
        match lines.last_mut() {
            Some(prev) if continuation => {
                prev.push(' ');
                prev.push_str(trimmed);
            }
            _ => lines.push(line.to_string()),
        }
    }
    lines.join("\n")
}

fn validate(paths: &[String], color: bool) -> u8 {
    let args: Vec<String> = if paths.is_empty() {
        proctor::catalog::sources().into_iter().map(|s| s.id).collect()
    } else {
        paths.to_vec()
    };
    match load(&args, color) {
        Ok(challenges) => {
            let probes: usize = challenges.iter().map(|c| c.spec.probes.len()).sum();
            emit(&format!("ok: {} challenge(s), {probes} probe(s)\n", challenges.len()))
                .err()
                .unwrap_or(exit::OK)
        }
        Err(code) => code,
    }
}

/// What to grade: a target ready to use, or an image to build or run in the Docker sandbox first.
enum Plan {
    Ready(Target),
    Docker(DockerSource, cli::DockerArgs),
}

enum DockerSource {
    Build(std::path::PathBuf),
    Image(String),
}

async fn grade(args: &[String], plan: Plan, options: GradeArgs, color: bool) -> u8 {
    let challenges = match load(args, color).map(|c| spec::select_probes(c, &options.probe)) {
        Ok(Ok(c)) => c,
        Ok(Err(message)) => return usage(&message),
        Err(code) => return code,
    };
    let reports = match cli::report_targets(&options.report) {
        Ok(r) => r,
        Err(e) => return usage(&e),
    };
    let cancel = CancellationToken::new();
    let run_id = format!("{:08x}", rand::random::<u32>());
    let mut config = RunConfig {
        target: Target::Reference(String::new()),
        jobs: 1,
        seed: options.seed.unwrap_or_else(rand::random),
        run_id: run_id.clone(),
        min_score: options.min_score,
        start_timeout: options.start_timeout,
        request_timeout: options.request_timeout,
        max_body: options.max_body,
    };
    let (target, sandbox) = match plan {
        Plan::Ready(target) => {
            tokio::spawn(watch_signals(cancel.clone(), None));
            (target, None)
        }
        Plan::Docker(source, docker) => {
            let limits = Limits {
                memory: docker.memory.map(ByteSize),
                cpus: docker.cpus,
                pids: docker.pids,
            };
            if let Some((field, message)) = proctor::limits::check(&limits).into_iter().next() {
                return usage(&format!("--{field}: {message}"));
            }
            // Printed before anything is built, so that even after a SIGKILL there is an id to clean up by.
            say!(
                "run {run_id}: its containers, networks and images carry the label dev.proctor.run={run_id} (proctor clean --run {run_id})"
            );
            tokio::spawn(watch_signals(cancel.clone(), (!docker.keep).then(|| run_id.clone())));
            let described = match &source {
                DockerSource::Build(dir) => format!("image built from {}", dir.display()),
                DockerSource::Image(image) => format!("container from {image}"),
            };
            match prepare_docker(&run_id, source, &docker, limits, &cancel).await {
                Ok((target, sandbox)) => (target, Some(sandbox)),
                Err((reason, logs)) => {
                    let mut report =
                        engine::not_graded(&challenges, &config, &described, &reason, logs, cancel.is_cancelled());
                    report.probe_filter = options.probe.clone();
                    return finish_report(&report, &reports, &options, color);
                }
            }
        }
    };
    config.jobs = options
        .jobs
        .map_or(if target.isolated() { challenges.len() } else { 1 }, usize::from);
    config.target = target;
    let mut guard = sandbox.as_ref().map(|(s, _)| SweepGuard::new(s.run_id()));
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let total: usize = challenges.iter().map(|c| c.spec.probes.len()).sum();
    let display = tokio::spawn(proctor::progress::display(
        receiver,
        total as u64,
        std::io::stderr().is_terminal(),
    ));
    let mut report = engine::run(&challenges, &config, &sender, &cancel).await;
    // Every service is stopped now: whatever a service left behind (a daemon that escaped its process group)
    // and was reparented to proctor goes too.
    proctor::target::process::kill_orphans();
    drop(sender);
    let _ = display.await;
    report.probe_filter = options.probe.clone();
    if let Some((sandbox, built)) = &sandbox {
        report.build_log = built.as_ref().map(|(_, log)| log.clone());
        if sandbox.keep() {
            print_kept(sandbox, &challenges, built.as_ref().map(|(tag, _)| tag.as_str()));
        } else {
            sandbox.finish().await;
        }
    }
    if let Some(guard) = guard.as_mut() {
        guard.disarm();
    }
    finish_report(&report, &reports, &options, color)
}

/// Connects to Docker, builds the submission if asked, and returns the container target with the sandbox and,
/// after a build, the image tag and the tail of the build output. On failure: the reason and the build output.
async fn prepare_docker(
    run_id: &str,
    source: DockerSource,
    docker: &cli::DockerArgs,
    limits: Limits,
    cancel: &CancellationToken,
) -> Result<(Target, (Arc<Sandbox>, Option<(String, String)>)), (String, Option<String>)> {
    let mode = match docker.docker_network {
        cli::NetworkChoice::Auto => proctor::sandbox::auto_mode(),
        cli::NetworkChoice::Internal => NetworkMode::Internal,
        cli::NetworkChoice::Published => NetworkMode::Published,
    };
    let sandbox = Sandbox::connect(run_id, mode, docker.keep)
        .await
        .map_err(|e| (engine::error_chain(&e), None))?;
    let sandbox = Arc::new(sandbox);
    let (image, built) = match source {
        DockerSource::Image(image) => (image, None),
        DockerSource::Build(dir) => {
            let options = BuildOptions {
                dir,
                max_context: docker.max_context,
                timeout: docker.build_timeout,
                limits: proctor::sandbox::BuildLimits {
                    memory: docker.build_memory,
                    cpus: docker.build_cpus,
                    network: match docker.build_network {
                        cli::BuildNetworkChoice::Bridge => proctor::sandbox::BuildNetwork::Bridge,
                        cli::BuildNetworkChoice::None => proctor::sandbox::BuildNetwork::None,
                    },
                },
            };
            let log = LogBuffer::new(1 << 20);
            let spinner = build_spinner();
            let mut on_line = |line: &str| spinner.set_message(line.trim().to_string());
            let built = tokio::select! {
                () = cancel.cancelled() => Err(None),
                result = sandbox.build(&options, &log, &mut on_line) => result.map_err(Some),
            };
            spinner.finish_and_clear();
            match built {
                Ok(tag) => (tag.clone(), Some((tag, log.tail(200)))),
                Err(error) => {
                    if !docker.keep {
                        sandbox.finish().await;
                        if error.is_none() {
                            // An interrupted build may still commit a layer or two after the connection closes.
                            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                            sandbox.finish().await;
                        }
                    }
                    let reason = match error {
                        Some(e) => engine::error_chain(&e),
                        None => "interrupted while building the image".to_string(),
                    };
                    return Err((reason, Some(log.tail(30))));
                }
            }
        }
    };
    let target = Target::Container(ContainerTarget {
        sandbox: Arc::clone(&sandbox),
        image,
        limits,
    });
    Ok((target, (sandbox, built)))
}

fn build_spinner() -> indicatif::ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        indicatif::ProgressDrawTarget::hidden()
    };
    let spinner = indicatif::ProgressBar::with_draw_target(None, target);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} [{elapsed}] building the image · {wide_msg}")
    {
        spinner.set_style(style);
    }
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    spinner
}

/// `--keep`: say what was kept and how to look at it.
fn print_kept(sandbox: &Sandbox, challenges: &[Challenge], built: Option<&str>) {
    say!("kept for inspection (run {}):", sandbox.run_id());
    for challenge in challenges {
        let name = format!("proctor-{}-{}", sandbox.run_id(), challenge.id);
        say!(
            "  container {name}: docker logs {name} · docker inspect {name} · docker exec -it {name} sh (if the image has a shell)"
        );
    }
    say!("  network proctor-{}", sandbox.run_id());
    if let Some(tag) = built {
        say!("  image {tag}");
    }
    say!("remove them with: proctor clean --run {}", sandbox.run_id());
}

/// Prints the terminal report, writes the file reports, returns the exit code.
fn finish_report(report: &RunReport, reports: &[cli::ReportTarget], options: &GradeArgs, color: bool) -> u8 {
    let redacted;
    let report = if options.redact_hidden {
        redacted = proctor::report::redact_hidden(report);
        &redacted
    } else {
        report
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = proctor::report::terminal::write(report, &mut stdout, color) {
        say!("error: failed to print the report: {e}");
    }
    // The destinations were checked before grading; one that still fails now costs that report only, never the
    // others or the verdict.
    let code = exit::for_run(report);
    for target in reports {
        let written = std::fs::File::create(&target.path).and_then(|file| {
            let mut file = std::io::BufWriter::new(file);
            target.format.write(report, &mut file)?;
            file.flush()
        });
        if let Err(e) = written {
            say!("error: failed to write the report {}: {e}", target.path.display());
        }
    }
    code
}

/// `proctor clean`: removes everything labelled as proctor's (of one run, or all).
async fn clean(run: Option<&str>) -> u8 {
    match proctor::sandbox::connect().await {
        Ok(docker) => {
            let swept = proctor::sandbox::sweep(&docker, run).await;
            emit(&format!(
                "removed {} container(s), {} network(s), {} image(s)\n",
                swept.containers, swept.networks, swept.images
            ))
            .err()
            .unwrap_or(exit::OK)
        }
        Err(e) => {
            say!("error: {}", engine::error_chain(&e));
            exit::TARGET
        }
    }
}

/// First Ctrl-C or SIGTERM: cancel and tear down. Second: kill what proctor started and exit at once.
async fn watch_signals(cancel: CancellationToken, docker_run: Option<String>) {
    use tokio::signal::unix::{SignalKind, signal};
    // A closed terminal or SSH session (SIGHUP) ends the run like Ctrl-C or SIGTERM: cleanly, with reports.
    let (Ok(mut interrupt), Ok(mut terminate), Ok(mut hangup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    for round in 0..2 {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
            _ = hangup.recv() => {}
        }
        if round == 0 {
            say!("\ninterrupted: stopping the service and writing reports (Ctrl-C again to force)");
            cancel.cancel();
        }
    }
    proctor::target::process::kill_all_now();
    if let Some(run) = docker_run {
        say!("forced: removing this run's containers and network");
        proctor::sandbox::sweep_blocking(&run);
    }
    std::process::exit(i32::from(exit::INTERRUPTED));
}
