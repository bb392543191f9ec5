//! The live progress reporter on stderr: notices, a spinner while an image builds, then one bar over every probe
//! of the run. Bars are drawn only when stderr is a terminal; notices are always written.

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
}

impl Progress {
    /// A reporter for `total` probes; bars are drawn only when `visible` (stderr is a terminal).
    pub fn new(total: u64, visible: bool) -> Self {
        Self {
            total,
            visible,
            bar: None,
            spinner: None,
            not_passed: 0,
        }
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
                self.spinner = Some(self.new_bar(None, "{spinner} [{elapsed}] building the image · {wide_msg}"));
            }
            Event::BuildOutput { line } => {
                if let Some(spinner) = &self.spinner {
                    spinner.set_message(neutral::terminal(line).into_owned());
                }
            }
            Event::BuildFinished => {
                if let Some(spinner) = self.spinner.take() {
                    spinner.finish_and_clear();
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
            Event::ChallengeFinished { unrun, .. } => self.bar().inc(*unrun as u64),
            Event::RunFinished { .. } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
            }
        }
    }
}
