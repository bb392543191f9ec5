//! Reports: the final [`RunReport`] rendered for a terminal, as JSON, JUnit XML or Markdown. Pure: every
//! writer takes any `io::Write`.

pub mod brief;
pub mod curl;
pub mod github;
pub mod html;
pub mod junit;
pub mod leaderboard;
pub mod markdown;
pub mod terminal;

use std::io::{self, Write as _};

use crate::outcome::{ProbeReport, RunReport, Verdict};

/// The report formats `--report` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The JSON report (format version [`crate::outcome::FORMAT_VERSION`]).
    Json,
    /// JUnit XML: one testsuite per challenge, one testcase per probe.
    Junit,
    /// Markdown, fit for a GitHub step summary.
    Markdown,
    /// One self-contained HTML page.
    Html,
}

impl Format {
    /// Parses `json`, `junit`, `markdown` (also `md`) or `html`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "json" => Some(Format::Json),
            "junit" | "xml" => Some(Format::Junit),
            "markdown" | "md" => Some(Format::Markdown),
            "html" => Some(Format::Html),
            _ => None,
        }
    }

    /// Writes the report in this format.
    pub fn write(self, report: &RunReport, out: &mut dyn io::Write) -> io::Result<()> {
        match self {
            Format::Json => {
                serde_json::to_writer_pretty(&mut *out, report)?;
                writeln!(out)
            }
            Format::Junit => junit::write(report, out),
            Format::Markdown => markdown::write(report, out),
            Format::Html => html::write(report, out),
        }
    }
}

/// A copy of the report where hidden probes show only their verdict and points (candidate-facing reports).
pub fn redact_hidden(report: &RunReport) -> RunReport {
    let mut redacted = report.clone();
    for challenge in &mut redacted.challenges {
        for (n, probe) in challenge.probes.iter_mut().filter(|p| p.hidden).enumerate() {
            probe.id = format!("hidden-{}", n + 1);
            probe.title = "hidden probe".to_string();
            probe.why = String::new();
            probe.hint = String::new();
            probe.message = probe.message.as_ref().map(|_| "details are hidden".to_string());
            probe.steps.clear();
        }
    }
    redacted
}

/// The symbol of a verdict.
pub fn mark(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Passed => "✓",
        Verdict::Failed => "✗",
        Verdict::Errored => "!",
        Verdict::Skipped => "-",
        Verdict::NotApplicable => "○",
    }
}

/// What went wrong in a probe, line by line: the failing step, its failed checks (expected vs actual) or its
/// error. Empty for a passed probe.
pub fn failure_lines(probe: &ProbeReport) -> Vec<String> {
    if probe.verdict == Verdict::Passed {
        return Vec::new();
    }
    let Some(step) = probe.steps.iter().find(|s| !s.passed) else {
        return probe.message.iter().cloned().collect();
    };
    let mut lines = vec![format!("step {}: {}", step.number, step.label)];
    for check in step.checks.iter().filter(|c| !c.passed) {
        lines.push(format!(
            "{}: expected {}, got {}",
            check.what, check.expected, check.actual
        ));
    }
    if let Some(error) = &step.error {
        lines.push(error.clone());
    }
    lines
}

/// Shell lines that replay a failed probe against the service at `$BASE`: every step up to the failing one.
/// Empty when the probe passed or sent nothing.
pub fn reproduce(probe: &ProbeReport) -> Vec<String> {
    if probe.verdict == Verdict::Passed || probe.steps.iter().all(|s| s.request.is_none()) {
        return Vec::new();
    }
    curl::replay(&probe.steps)
}

/// Writes one report file when the run finishes. A destination that fails costs that report only, never the
/// others or the verdict: the error goes to stderr.
#[derive(Debug)]
pub struct FileReporter {
    /// The format.
    pub format: Format,
    /// Where.
    pub path: std::path::PathBuf,
}

impl FileReporter {
    /// Whether the report goes to standard output (`--report json=-`).
    pub fn to_stdout(&self) -> bool {
        self.path.as_os_str() == "-"
    }

    /// Where the report goes, for messages.
    pub fn describe(&self) -> String {
        if self.to_stdout() {
            "to standard output".to_string()
        } else {
            self.path.display().to_string()
        }
    }
}

impl crate::event::Reporter for FileReporter {
    fn report(&mut self, event: &crate::event::Event) {
        let crate::event::Event::RunFinished { report } = event else {
            return;
        };
        let written = if self.to_stdout() {
            let mut out = io::stdout().lock();
            match self.format.write(report, &mut out).and_then(|()| out.flush()) {
                // A reader that went away (`| head`) is not an error.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                other => other,
            }
        } else {
            std::fs::File::create(&self.path).and_then(|file| {
                let mut file = io::BufWriter::new(file);
                self.format.write(report, &mut file)?;
                file.flush()
            })
        };
        if let Err(e) = written {
            let _ = writeln!(
                io::stderr(),
                "error: failed to write the report {}: {e}",
                self.describe()
            );
        }
    }
}

/// Prints the terminal report when the run finishes: to stdout, or to stderr when stdout carries a report.
#[derive(Debug)]
pub struct TerminalReporter {
    /// Colour on.
    pub color: bool,
    /// Print to stderr (stdout is reserved for `--report FORMAT=-`).
    pub to_stderr: bool,
}

impl crate::event::Reporter for TerminalReporter {
    fn report(&mut self, event: &crate::event::Event) {
        if let crate::event::Event::RunFinished { report } = event
            && let Err(e) = if self.to_stderr {
                terminal::write(report, &mut io::stderr().lock(), self.color)
            } else {
                terminal::write(report, &mut io::stdout().lock(), self.color)
            }
        {
            let _ = writeln!(io::stderr(), "error: failed to print the report: {e}");
        }
    }
}
