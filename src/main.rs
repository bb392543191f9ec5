//! The `proctor` binary: parses the command line, converts it to a session, runs it, maps the result to an exit
//! code. Everything else lives in the library.

mod cli;
mod commands;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use cli::{Cli, ColorChoice, Command, GradeArgs};
use proctor::catalog::{self, LoadError};
use proctor::event::{Events, Reporter};
use proctor::report::{TerminalReporter, brief};
use proctor::spec::Challenge;
use proctor::target::Target;
use proctor::{exit, neutral, session};

/// Writes a line to stderr; a closed or broken stderr is not worth a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Writes text to stdout and returns the exit code: a closed pipe ends quietly (as `head` expects).
fn emit(text: &str) -> u8 {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => exit::OK,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            say!("error: failed to write to standard output: {e}");
            exit::USAGE
        }
    }
}

fn usage(message: &str) -> u8 {
    say!("error: {message}");
    exit::USAGE
}

fn main() -> ExitCode {
    proctor::signals::ensure_standard_fds();
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
        Err(e) => return ExitCode::from(usage(&format!("failed to start the async runtime: {e}"))),
    };
    let code = runtime.block_on(dispatch(cli.command, color));
    // Anything still running (a service that ignored SIGTERM) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    ExitCode::from(code)
}

async fn dispatch(command: Command, color: bool) -> u8 {
    match command {
        Command::List { format } => match catalog::challenges() {
            Ok(challenges) if format == cli::ListFormat::Json => emit(&format!("{}\n", brief::json_list(&challenges))),
            Ok(challenges) => emit(&neutral::terminal(&brief::table(&challenges))),
            Err(errors) => print_spec_errors(&errors, color),
        },
        Command::Show { challenge } => match load(std::slice::from_ref(&challenge), color) {
            Ok(challenges) if challenges.len() == 1 => show(&challenges[0], color),
            Ok(_) => usage("show takes one challenge"),
            Err(code) => code,
        },
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "proctor",
                &mut script,
            );
            emit(&String::from_utf8_lossy(&script))
        }
        Command::Man { out_dir: Some(dir) } => {
            match clap_mangen::generate_to(<Cli as clap::CommandFactory>::command(), &dir) {
                Ok(()) => exit::OK,
                Err(e) => usage(&format!("failed to write the man pages into {}: {e}", dir.display())),
            }
        }
        Command::Man { out_dir: None } => {
            let mut page = Vec::new();
            match clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut page) {
                Ok(()) => emit(&String::from_utf8_lossy(&page)),
                Err(e) => usage(&format!("failed to render the man page: {e}")),
            }
        }
        Command::Schema { report: true } => emit(&proctor::outcome::json_schema()),
        Command::Schema { report: false } => emit(&proctor::spec::json_schema()),
        Command::Reference { port, host, defects } => commands::serve_reference(host, port, &defects).await,
        Command::Validate { paths } => {
            let names = if paths.is_empty() { catalog::ids() } else { paths };
            match load(&names, color) {
                Ok(c) => emit(&format!(
                    "ok: {} challenge(s), {} probe(s)\n",
                    c.len(),
                    c.iter().map(|c| c.spec.probes.len()).sum::<usize>()
                )),
                Err(code) => code,
            }
        }
        Command::Run(args) => match args.target() {
            Ok(target) if args.watch.is_some() => {
                if !matches!(target, Target::Command(_) | Target::Url(_)) {
                    return usage("--watch works with --cmd or --url (a container is rebuilt by running again)");
                }
                let watched = args.watch.clone().unwrap_or_default();
                let ports = args.server_port.into_iter().collect();
                watch(&args.challenges, target, &watched, args.grade, ports, color).await
            }
            Ok(target) => {
                let ports = args.server_port.into_iter().collect();
                grade(&args.challenges, target, args.grade, ports, color).await
            }
            Err(message) => usage(&message),
        },
        Command::Clean { run } => commands::clean(run.as_deref()).await,
        Command::Grade(args) => grade_batch(*args, color).await,
        Command::Merge { leaderboards, out } => match proctor::batch::merge(&leaderboards, &out) {
            Ok(board) => emit(&neutral::terminal(&board.table())),
            Err(message) => usage(&message),
        },
        Command::Demo(args) if args.list_defects => emit(
            &proctor_reference::DEFECTS
                .iter()
                .map(|(name, what)| format!("{name:22} {what}\n"))
                .collect::<String>(),
        ),
        Command::Demo(args) => {
            if let Err(e) = proctor_reference::Config::new(Default::default(), &args.defects) {
                return usage(&e.to_string());
            }
            let names = if args.challenges.is_empty() {
                catalog::ids()
            } else {
                args.challenges
            };
            grade(
                &names,
                Target::Reference(args.defects),
                args.grade,
                Default::default(),
                color,
            )
            .await
        }
    }
}

/// Loads challenges named by ids, files or folders; prints every spec error.
fn load(names: &[String], color: bool) -> Result<Vec<Challenge>, u8> {
    match catalog::load_named(names) {
        Ok(challenges) => Ok(challenges),
        Err(LoadError::Source(e)) => Err(usage(&proctor::engine::error_chain(&e))),
        Err(LoadError::Specs(errors)) => Err(print_spec_errors(&errors, color)),
    }
}

/// Loads challenges (as [`load`]) and keeps the probes `--probe` selects.
fn load_probes(names: &[String], probes: &[String], color: bool) -> Result<Vec<Challenge>, u8> {
    proctor::spec::select_probes(load(names, color)?, probes).map_err(|message| usage(&message))
}

fn print_spec_errors(errors: &[proctor::spec::SpecError], color: bool) -> u8 {
    let mut stderr = std::io::stderr().lock();
    for error in errors {
        let _ = write!(stderr, "{}", error.render(color && std::io::stderr().is_terminal()));
    }
    let plural = if errors.len() == 1 { "" } else { "s" };
    let _ = writeln!(stderr, "error: {} problem{plural} in the spec files", errors.len());
    exit::USAGE
}

fn show(challenge: &Challenge, color: bool) -> u8 {
    // A spec may come from anyone: its text reaches the terminal without control characters.
    let text = neutral::terminal(&brief::markdown(challenge)).into_owned();
    if color && std::io::stdout().is_terminal() {
        emit(
            &termimad::MadSkin::default()
                .term_text(&brief::join_continuations(&text))
                .to_string(),
        )
    } else {
        emit(&text)
    }
}

async fn grade(
    names: &[String],
    target: Target,
    args: GradeArgs,
    server_ports: std::collections::BTreeMap<String, u16>,
    color: bool,
) -> u8 {
    let challenges = match load_probes(names, &args.probe, color) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut reporters: Vec<Box<dyn Reporter>> = match cli::report_files(&args.report) {
        Ok(files) => files,
        Err(e) => return usage(&e),
    };
    let total = challenges.iter().map(|c| c.spec.probes.len() as u64).sum();
    let stdout_report = cli::report_to_stdout(&args.report);
    let progress = proctor::progress::Progress::new(total, std::io::stderr().is_terminal(), args.quiet);
    reporters.insert(0, Box::new(progress));
    if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
        let summary = std::env::var_os("GITHUB_STEP_SUMMARY")
            .filter(|p| !p.is_empty())
            .map(Into::into);
        reporters.push(Box::new(proctor::report::github::GithubReporter {
            to_stderr: stdout_report,
            summary,
        }));
    }
    if !args.quiet {
        let to_stderr = stdout_report;
        let color = color
            && if to_stderr {
                std::io::stderr().is_terminal()
            } else {
                true
            };
        reporters.insert(1, Box::new(TerminalReporter { color, to_stderr }));
    }
    let options = proctor::session::Options {
        server_ports,
        ..args.options()
    };
    let cancel = CancellationToken::new();
    tokio::spawn(proctor::signals::watch(cancel.clone()));
    let report = session::run(&challenges, target, &options, &Events::new(reporters), &cancel).await;
    exit::for_run(&report)
}

/// `proctor grade`: every submission graded into the output folder, a line on stderr as each finishes, the
/// leaderboard's table on stdout at the end.
async fn grade_batch(args: cli::BatchArgs, color: bool) -> u8 {
    let challenges = match load_probes(&args.challenges, &args.grade.probe, color) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let budget = match cli::budget(args.budget_memory, args.budget_cpus, "--budget-cpus") {
        Ok(budget) => budget,
        Err(message) => return usage(&message),
    };
    let mut submissions = match proctor::batch::discover(&args.submissions, args.service.as_deref(), budget) {
        Ok(found) => found,
        Err(message) => return usage(&message),
    };
    if let Some((index, count)) = args.partition {
        submissions = proctor::batch::partition(submissions, index, count);
    }
    if submissions.is_empty() {
        return usage(&format!("no submissions in {}", args.submissions.display()));
    }
    let docker = match args.docker.options() {
        Ok(docker) => docker,
        Err(message) => return usage(&message),
    };
    let batch_budget = match cli::budget(args.max_memory, args.max_cpus, "--max-cpus") {
        Ok(budget) => budget,
        Err(message) => return usage(&message),
    };
    let jobs = match args.grade.jobs {
        Some(jobs) => usize::from(jobs),
        // One submission per CPU of the engine: the engine's own CPU is what bounds a batch (bench/RESULTS.md),
        // and a starved machine makes timing probes fail correct services.
        None => proctor::sandbox::engine_cpus().await.unwrap_or(2).clamp(1, 64),
    };
    let options = proctor::batch::BatchOptions {
        out: args.out.clone(),
        jobs,
        budget: batch_budget,
        force: args.force,
        docker,
        session: proctor::session::Options {
            jobs: None,
            ..args.grade.options()
        },
    };
    let quiet = args.grade.quiet;
    let total = submissions.len();
    let finished = std::sync::atomic::AtomicUsize::new(0);
    let done = |graded: &proctor::batch::Graded| {
        let n = finished.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if quiet {
            return;
        }
        let e = &graded.entry;
        let how = if graded.skipped {
            "unchanged, not graded again"
        } else {
            e.verdict.as_str()
        };
        let line = format!(
            "[{n}/{total}] {}: {:.1}% ({}/{}), {how}, {:.1} s{}",
            e.submission,
            e.percent,
            e.earned,
            e.total,
            e.duration_ms as f64 / 1000.0,
            e.error
                .as_deref()
                .map(|m| format!(" — {}", proctor::expect::clip(m, 120)))
                .unwrap_or_default()
        );
        say!("{}", neutral::terminal(&line));
    };
    let cancel = CancellationToken::new();
    tokio::spawn(proctor::signals::watch(cancel.clone()));
    match proctor::batch::run(&challenges, submissions, &options, &done, &cancel).await {
        Ok(board) => {
            if !quiet {
                say!(
                    "leaderboard: {} (also leaderboard.csv, leaderboard.json)",
                    args.out.join("index.html").display()
                );
            }
            let code = emit(&neutral::terminal(&board.table()));
            if cancel.is_cancelled() {
                proctor::exit::INTERRUPTED
            } else {
                code
            }
        }
        Err(e) => {
            say!("error: cannot write the results into {}: {e}", args.out.display());
            proctor::exit::TARGET
        }
    }
}

/// `run --watch`: grades, then again whenever a file below `watched` changes (or, for a `--url` service, when
/// Enter is pressed), printing the whole report the first time and only what changed afterwards.
async fn watch(
    names: &[String],
    target: Target,
    watched: &std::path::Path,
    args: GradeArgs,
    server_ports: std::collections::BTreeMap<String, u16>,
    color: bool,
) -> u8 {
    let challenges = match load_probes(names, &args.probe, color) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !watched.exists() {
        return usage(&format!("--watch {}: no such file or folder", watched.display()));
    }
    let cancel = CancellationToken::new();
    tokio::spawn(proctor::signals::watch(cancel.clone()));
    // Enter on standard input asks for another run (the way to rerun a --url service after a deploy).
    let (enter, mut entered) = tokio::sync::mpsc::unbounded_channel::<()>();
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            line.clear();
            if enter.send(()).is_err() {
                return;
            }
        }
    });
    let total = challenges.iter().map(|c| c.spec.probes.len() as u64).sum();
    let mut previous: Option<proctor::outcome::RunReport> = None;
    let mut files = proctor::watch::snapshot(watched);
    loop {
        let mut reporters: Vec<Box<dyn Reporter>> = match cli::report_files(&args.report) {
            Ok(files) => files,
            Err(e) => return usage(&e),
        };
        reporters.insert(
            0,
            Box::new(proctor::progress::Progress::new(
                total,
                std::io::stderr().is_terminal(),
                args.quiet,
            )),
        );
        if previous.is_none() && !args.quiet {
            reporters.insert(
                1,
                Box::new(TerminalReporter {
                    color,
                    to_stderr: false,
                }),
            );
        }
        let options = proctor::session::Options {
            server_ports: server_ports.clone(),
            ..args.options()
        };
        let report = session::run(&challenges, target.clone(), &options, &Events::new(reporters), &cancel).await;
        if cancel.is_cancelled() {
            return proctor::exit::INTERRUPTED;
        }
        if let Some(before) = &previous {
            emit(&neutral::terminal(&proctor::watch::changes(before, &report)));
        }
        previous = Some(report);
        say!(
            "watching {} for changes (Ctrl-C ends; Enter grades again)",
            watched.display()
        );
        // Wait for a change that has settled: files written in a burst (a save, a checkout) make one run.
        loop {
            tokio::select! {
                () = cancel.cancelled() => return proctor::exit::INTERRUPTED,
                Some(()) = entered.recv() => break,
                () = tokio::time::sleep(std::time::Duration::from_millis(400)) => {}
            }
            let now = proctor::watch::snapshot(watched);
            if now != files {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                files = proctor::watch::snapshot(watched);
                break;
            }
        }
    }
}
