//! The live progress reporter on stderr: notices, a spinner while an image builds, then one bar over every probe
//! of the run. Bars are drawn only when stderr is a terminal; without one (a CI log), each build step and each
//! finished challenge is one plain line instead, so the log shows life. Notices are always written; `--quiet`
//! leaves only them.

use std::io::Write as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::event::{Event, Reporter};
use crate::neutral;
use crate::outcome::Verdict;

/// Draws progress for a run of `total` probes.
#[derive(Debug)]
pub struct Progress {
    total: u64,
    visible: bool,
    bar: Option<ProgressBar>,
    spinner: Option<ProgressBar>,
    not_passed: u64,
    quiet: bool,
    build_started: Option<std::time::Instant>,
}

impl Progress {
    /// A reporter for `total` probes; bars are drawn only when `visible` (stderr is a terminal), plain lines
    /// otherwise, and neither when `quiet`.
    pub fn new(total: u64, visible: bool, quiet: bool) -> Self {
        Self {
            total,
            visible: visible && !quiet,
            bar: None,
            spinner: None,
            not_passed: 0,
            quiet,
            build_started: None,
        }
    }

    /// Whether progress is written as plain lines (no terminal, not quiet).
    fn plain(&self) -> bool {
        !self.visible && !self.quiet
    }

    fn draw_target(&self) -> ProgressDrawTarget {
        if self.visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        }
    }

    fn new_bar(&self, len: Option<u64>, template: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(len, self.draw_target());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    fn bar(&mut self) -> &ProgressBar {
        if self.bar.is_none() {
            self.bar = Some(self.new_bar(
                Some(self.total),
                "{spinner} [{elapsed}] {bar:30} {pos}/{len} probes · {msg}",
            ));
        }
        self.bar.get_or_insert_with(ProgressBar::hidden)
    }
}

impl Reporter for Progress {
    fn report(&mut self, event: &Event) {
        match event {
            Event::Notice { message } => {
                let text = neutral::terminal(message);
                let print = || {
                    let _ = writeln!(std::io::stderr(), "{text}");
                };
                match self.bar.as_ref().or(self.spinner.as_ref()) {
                    Some(bar) => bar.suspend(print),
                    None => print(),
                }
            }
            Event::BuildStarted => {
                self.build_started = Some(std::time::Instant::now());
                if self.plain() {
                    line("building the image");
                }
                self.spinner = Some(self.new_bar(None, "{spinner} [{elapsed}] building the image · {wide_msg}"));
            }
            Event::BuildOutput { line: text } => {
                if let Some(spinner) = &self.spinner {
                    spinner.set_message(neutral::terminal(text).into_owned());
                }
                // The steps of the build, not every line a step prints (a package install prints thousands).
                if self.plain() && (text.starts_with("Step ") || text.starts_with("#")) {
                    line(&format!("build: {}", neutral::terminal(text.trim_end())));
                }
            }
            Event::BuildFinished => {
                if let Some(spinner) = self.spinner.take() {
                    spinner.finish_and_clear();
                }
                if self.plain()
                    && let Some(started) = self.build_started.take()
                {
                    line(&format!(
                        "build finished after {:.1} s",
                        started.elapsed().as_secs_f64()
                    ));
                }
            }
            Event::ChallengeStarted { id, .. } => self.bar().set_message(format!("starting {id}")),
            Event::TargetReady { id } => self.bar().set_message(format!("grading {id}")),
            Event::ProbeFinished { challenge, report } => {
                if report.verdict != Verdict::Passed {
                    self.not_passed += 1;
                }
                let message = format!("{challenge}/{} · {} not passed", report.id, self.not_passed);
                let bar = self.bar();
                bar.inc(1);
                bar.set_message(message);
            }
            Event::ChallengeFinished { report, unrun } => {
                self.bar().inc(*unrun as u64);
                if self.plain() {
                    line(&challenge_line(report));
                }
            }
            Event::RunFinished { .. } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
            }
        }
    }
}

/// One line on stderr (a closed stderr is not worth a panic).
fn line(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// `rate-limiter: 24/26 points (92.3%), NOT PASSED (pass mark 100%) in 3.2 s`.
fn challenge_line(report: &crate::outcome::ChallengeReport) -> String {
    let score = &report.score;
    let verdict = match (&report.target_error, score.passed) {
        (Some(_), _) => "the service could not be started or reached".to_string(),
        (None, true) => "passed".to_string(),
        (None, false) => format!("NOT PASSED (pass mark {}%)", report.threshold),
    };
    format!(
        "{}: {}/{} points ({:.1}%), {verdict} in {:.1} s",
        neutral::terminal(&report.id),
        score.earned,
        score.total,
        score.percent,
        report.duration_ms as f64 / 1000.0
    )
}
