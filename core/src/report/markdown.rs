//! The Markdown report: a summary table, then per challenge its probes and every failure in detail. Fits a
//! GitHub step summary (`--report markdown=$GITHUB_STEP_SUMMARY`).

use std::io::{self, Write};

use super::{failure_lines, mark, reproduce};
use crate::neutral::code_block;
use crate::outcome::{RunReport, Verdict};

/// A table cell, a heading or a list item: one line, nothing that could become markup.
fn cell(text: &str) -> String {
    crate::neutral::markdown(text)
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
            cell(&c.id),
            c.score.earned,
            c.score.total,
            c.score.percent,
            c.threshold
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
            "\n<details><summary>image build output</summary>\n\n{}\n</details>",
            code_block(log, "")
        )?;
    }
    for c in &report.challenges {
        writeln!(out, "\n## {} — {}\n", cell(&c.id), cell(&c.title))?;
        writeln!(
            out,
            "Question {}: {}\n",
            c.question.number,
            cell(c.question.text.trim())
        )?;
        if let Some(error) = &c.target_error {
            writeln!(out, "**Could not grade:** {}\n", cell(error))?;
            if let Some(logs) = c.logs.as_deref().filter(|l| !l.trim().is_empty()) {
                writeln!(
                    out,
                    "<details><summary>last output</summary>\n\n{}\n</details>",
                    code_block(logs, "")
                )?;
            }
            continue;
        }
        writeln!(out, "| | probe | category | points |")?;
        writeln!(out, "|---|---|---|---|")?;
        for probe in &c.probes {
            let points = match probe.verdict {
                Verdict::NotApplicable => "n/a".to_string(),
                _ => format!("{}/{}", probe.earned(), probe.points),
            };
            writeln!(
                out,
                "| {} | {} — {} | {} | {points} |",
                mark(probe.verdict),
                cell(&probe.id),
                cell(&probe.title),
                cell(&probe.category),
            )?;
        }
        for probe in c
            .probes
            .iter()
            .filter(|p| matches!(p.verdict, Verdict::Failed | Verdict::Errored))
        {
            writeln!(out, "\n### {} {}\n", mark(probe.verdict), cell(&probe.id))?;
            writeln!(out, "{}\n", cell(&probe.title))?;
            writeln!(out, "{}\n", code_block(&failure_lines(probe).join("\n"), ""))?;
            if !probe.why.is_empty() {
                writeln!(out, "- **why:** {}", cell(probe.why.trim()))?;
            }
            if !probe.hint.is_empty() {
                writeln!(out, "- **hint:** {}", cell(probe.hint.trim()))?;
            }
            let replay = reproduce(probe);
            if !replay.is_empty() {
                writeln!(
                    out,
                    "- **replay** (set `{}` to your service's base URL):\n",
                    super::curl::BASE
                )?;
                writeln!(out, "{}", code_block(&replay.join("\n"), "sh"))?;
            }
        }
    }
    Ok(())
}
