//! GitHub Actions: an annotation per probe that did not pass (`::error` for a failure, `::warning` for a probe
//! that could not run), the Markdown report appended to the job's step summary, and a `Points X/Y` line as GitHub
//! Classroom's autograding reads it. Switched on when `GITHUB_ACTIONS=true`.

use std::io::{self, Write};

use crate::outcome::{RunReport, Verdict};

/// Annotations and the points line for a finished run, one command per line.
pub fn commands(report: &RunReport) -> Vec<String> {
    let mut lines = Vec::new();
    for challenge in &report.challenges {
        if let Some(error) = &challenge.target_error {
            lines.push(format!(
                "::error title={}::{}",
                property(&format!("{}: the service could not be graded", challenge.id)),
                data(error)
            ));
            continue;
        }
        for probe in &challenge.probes {
            let level = match probe.verdict {
                Verdict::Failed => "error",
                Verdict::Errored => "warning",
                Verdict::Passed | Verdict::Skipped | Verdict::NotApplicable => continue,
            };
            let mut message = super::failure_lines(probe).join("\n");
            if !probe.why.is_empty() {
                message.push_str(&format!("\nwhy: {}", probe.why.trim()));
            }
            if !probe.hint.is_empty() {
                message.push_str(&format!("\nhint: {}", probe.hint.trim()));
            }
            lines.push(format!(
                "::{level} title={}::{}",
                property(&format!("{}/{} — {}", challenge.id, probe.id, probe.title)),
                data(&message)
            ));
        }
    }
    let (earned, total) = report.points();
    lines.push(format!("Points {earned}/{total}"));
    lines
}

/// Appends the Markdown report to the step summary file (never truncating what earlier steps wrote).
pub fn append_summary(report: &RunReport, path: &std::path::Path) -> io::Result<()> {
    let file = std::fs::OpenOptions::new().append(true).create(true).open(path)?;
    let mut out = io::BufWriter::new(file);
    writeln!(out)?;
    super::markdown::write(report, &mut out)?;
    out.flush()
}

/// A workflow command's message: `%`, CR and LF escaped (so untrusted text can never start a command of its own),
/// and other control characters shown, not sent.
pub fn data(text: &str) -> String {
    crate::neutral::terminal(&text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")).into_owned()
}

/// A workflow command's property value: as [`data`], with `:` and `,` escaped too.
pub fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

/// Writes the commands to `out` and the summary to `$GITHUB_STEP_SUMMARY` (when set).
#[derive(Debug)]
pub struct GithubReporter {
    /// Write the commands to stderr (stdout carries a report).
    pub to_stderr: bool,
    /// The step summary file.
    pub summary: Option<std::path::PathBuf>,
}

impl crate::event::Reporter for GithubReporter {
    fn report(&mut self, event: &crate::event::Event) {
        let crate::event::Event::RunFinished { report } = event else {
            return;
        };
        let text: String = commands(report).iter().map(|l| format!("{l}\n")).collect();
        let _ = if self.to_stderr {
            io::stderr().lock().write_all(text.as_bytes())
        } else {
            io::stdout().lock().write_all(text.as_bytes())
        };
        if let Some(path) = &self.summary
            && let Err(e) = append_summary(report, path)
        {
            let _ = writeln!(io::stderr(), "error: failed to append to {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_cannot_start_a_command_of_its_own() {
        let hostile = "got 500\n::add-mask::secret\r\n%0A::stop-commands::x\u{1b}[31m";
        let escaped = data(hostile);
        assert!(
            !escaped.contains('\n') && !escaped.contains('\r') && !escaped.contains('\u{1b}'),
            "{escaped}"
        );
        assert_eq!(
            escaped,
            "got 500%0A::add-mask::secret%0D%0A%250A::stop-commands::x\\x1b[31m"
        );
        assert_eq!(property("a/b: c, d"), "a/b%3A c%2C d");
    }
}
