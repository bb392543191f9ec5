//! The Markdown report: a summary table, then per challenge its probes and every failure in detail. Fits a
//! GitHub step summary (`--report markdown=$GITHUB_STEP_SUMMARY`).

use std::io::{self, Write};

use super::{failure_lines, mark, reproduce};
use crate::outcome::{RunReport, Verdict};

/// A code fence longer than any run of backticks in `text`, so the text cannot close it.
fn fence(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// Escapes text for a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Writes the Markdown report.
pub fn write(report: &RunReport, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "# proctor report\n")?;
    writeln!(out, "| challenge | score | pass mark | result |")?;
    writeln!(out, "|---|---|---|---|")?;
    for c in &report.challenges {
        let result = match (&c.target_error, c.score.passed) {
            (Some(_), _) => "⚠️ not graded",
            (None, true) => "✅ passed",
            (None, false) => "❌ not passed",
        };
        writeln!(
            out,
            "| {} | {}/{} ({}%) | {}% | {result} |",
            c.id, c.score.earned, c.score.total, c.score.percent, c.threshold
        )?;
    }
    writeln!(
        out,
        "\nSeed `{}` (rerun with `--seed {}` to reproduce every generated value).",
        report.seed, report.seed
    )?;
    if report.interrupted {
        writeln!(out, "\n> **Interrupted**: unfinished probes were skipped.")?;
    }
    if let Some(log) = report.build_log.as_deref().filter(|l| !l.trim().is_empty()) {
        writeln!(
            out,
            "\n<details><summary>image build output</summary>\n\n```\n{}\n```\n</details>",
            log.trim_end()
        )?;
    }
    for c in &report.challenges {
        writeln!(out, "\n## {} — {}\n", c.id, c.title)?;
        writeln!(out, "Question {}: {}\n", c.question.number, c.question.text.trim())?;
        if let Some(error) = &c.target_error {
            writeln!(out, "**Could not grade:** {}\n", cell(error))?;
            if let Some(logs) = c.logs.as_deref().filter(|l| !l.trim().is_empty()) {
                writeln!(
                    out,
                    "<details><summary>last output</summary>\n\n```\n{}\n```\n</details>",
                    logs.trim_end()
                )?;
            }
            continue;
        }
        writeln!(out, "| | probe | category | points |")?;
        writeln!(out, "|---|---|---|---|")?;
        for probe in &c.probes {
            let earned = probe.earned();
            writeln!(
                out,
                "| {} | {} — {} | {} | {earned}/{} |",
                mark(probe.verdict),
                probe.id,
                cell(&probe.title),
                probe.category,
                probe.points
            )?;
        }
        for probe in c
            .probes
            .iter()
            .filter(|p| matches!(p.verdict, Verdict::Failed | Verdict::Errored))
        {
            writeln!(out, "\n### {} {}\n", mark(probe.verdict), probe.id)?;
            writeln!(out, "{}\n", probe.title)?;
            writeln!(out, "```")?;
            for line in failure_lines(probe) {
                writeln!(out, "{line}")?;
            }
            writeln!(out, "```\n")?;
            if !probe.why.is_empty() {
                writeln!(out, "- **why:** {}", probe.why.trim())?;
            }
            if !probe.hint.is_empty() {
                writeln!(out, "- **hint:** {}", probe.hint.trim())?;
            }
            let replay = reproduce(probe);
            if !replay.is_empty() {
                writeln!(
                    out,
                    "- **replay** (set `{}` to your service's base URL):\n",
                    super::curl::BASE
                )?;
                let script = replay.join("\n");
                let fence = fence(&script);
                writeln!(out, "{fence}sh\n{script}\n{fence}")?;
            }
        }
    }
    Ok(())
}
