//! The report printed at the end of a run: per challenge a table of probes, then every failure explained.

use std::io::{self, Write};

use console::Style;

use super::{failure_lines, mark, reproduce};
use crate::neutral::terminal as safe;
use crate::outcome::{ChallengeReport, RunReport, Verdict};

/// Colours, or none.
struct Palette {
    good: Style,
    bad: Style,
    warn: Style,
    dim: Style,
    bold: Style,
}

impl Palette {
    fn new(color: bool) -> Self {
        let style = |s: Style| s.force_styling(color);
        Self {
            good: style(Style::new().green()),
            bad: style(Style::new().red()),
            warn: style(Style::new().yellow()),
            dim: style(Style::new().dim()),
            bold: style(Style::new().bold()),
        }
    }

    fn verdict(&self, verdict: Verdict) -> &Style {
        match verdict {
            Verdict::Passed => &self.good,
            Verdict::Failed => &self.bad,
            Verdict::Errored | Verdict::Skipped => &self.warn,
            Verdict::NotApplicable => &self.dim,
        }
    }
}

/// Writes the whole report. `color` is decided by the caller (terminal, NO_COLOR).
pub fn write(report: &RunReport, out: &mut dyn Write, color: bool) -> io::Result<()> {
    let p = Palette::new(color);
    for challenge in &report.challenges {
        write_challenge(challenge, out, &p)?;
    }
    let passed = report.challenges.iter().filter(|c| c.score.passed).count();
    let total = report.challenges.len();
    let line = format!(
        "{total} challenge{} graded: {passed} passed, {} not passed · seed {} · {:.1}s",
        if total == 1 { "" } else { "s" },
        total - passed,
        report.seed,
        report.duration_ms as f64 / 1000.0
    );
    let style = if passed == total { &p.good } else { &p.bad };
    writeln!(out, "{}", style.apply_to(line))?;
    if report.interrupted {
        writeln!(
            out,
            "{}",
            p.warn.apply_to("interrupted: unfinished probes were skipped")
        )?;
    }
    if !report.probe_filter.is_empty() {
        writeln!(
            out,
            "{}",
            p.warn.apply_to(format!(
                "partial run: only probes matching {} (scores cover those probes only)",
                report.probe_filter.join(", ")
            ))
        )?;
    }
    Ok(())
}

fn write_challenge(c: &ChallengeReport, out: &mut dyn Write, p: &Palette) -> io::Result<()> {
    writeln!(
        out,
        "{} {}",
        p.bold.apply_to(safe(&c.id)),
        p.dim
            .apply_to(format!("— {} (question {})", safe(&c.title), c.question.number))
    )?;
    writeln!(out, "{}", p.dim.apply_to(format!("  target: {}", safe(&c.target))))?;
    if let Some(error) = &c.target_error {
        writeln!(out, "  {} {}", p.bad.apply_to("could not grade:"), safe(error))?;
        if let Some(logs) = c.logs.as_deref().filter(|l| !l.trim().is_empty()) {
            writeln!(out, "  last output:")?;
            for line in logs.lines() {
                writeln!(out, "    {}", p.dim.apply_to(safe(line)))?;
            }
        }
        writeln!(out)?;
        return Ok(());
    }
    let id_width = c.probes.iter().map(|pr| pr.id.len()).max().unwrap_or(0);
    let category_width = c.probes.iter().map(|pr| pr.category.len()).max().unwrap_or(0);
    for probe in &c.probes {
        let points = match probe.verdict {
            Verdict::NotApplicable => " n/a ".to_string(),
            _ => format!("{:>2}/{:<2}", probe.earned(), probe.points),
        };
        let title = match (probe.verdict, &probe.message) {
            (Verdict::NotApplicable, Some(why)) => format!("{} ({why})", probe.title),
            _ => probe.title.clone(),
        };
        writeln!(
            out,
            "  {} {:id_width$}  {:category_width$}  {points}  {}",
            p.verdict(probe.verdict).apply_to(mark(probe.verdict)),
            safe(&probe.id),
            p.dim.apply_to(safe(&probe.category)),
            safe(&title),
        )?;
    }
    let s = &c.score;
    let verdict = if s.passed {
        p.good.apply_to("PASSED")
    } else {
        p.bad.apply_to("NOT PASSED")
    };
    writeln!(
        out,
        "  score {}/{} ({}%), pass mark {}% — {verdict}",
        s.earned, s.total, s.percent, c.threshold
    )?;
    let categories: Vec<String> = s
        .categories
        .iter()
        .map(|k| format!("{} {}/{}", k.name, k.earned, k.total))
        .collect();
    writeln!(
        out,
        "  {}",
        p.dim.apply_to(format!("by category: {}", categories.join(" · ")))
    )?;
    for probe in c
        .probes
        .iter()
        .filter(|pr| matches!(pr.verdict, Verdict::Failed | Verdict::Errored))
    {
        writeln!(out)?;
        let kind = if probe.verdict == Verdict::Errored {
            "could not run"
        } else {
            "failed"
        };
        writeln!(
            out,
            "  {} {} {}",
            p.verdict(probe.verdict)
                .apply_to(format!("{} {}", mark(probe.verdict), safe(&probe.id))),
            p.dim.apply_to(kind),
            safe(&probe.title)
        )?;
        for line in failure_lines(probe) {
            writeln!(out, "      {}", safe(&line))?;
        }
        if !probe.why.is_empty() {
            writeln!(out, "    {} {}", p.bold.apply_to("why: "), safe(probe.why.trim()))?;
        }
        if !probe.hint.is_empty() {
            writeln!(out, "    {} {}", p.bold.apply_to("hint:"), safe(probe.hint.trim()))?;
        }
        let replay = reproduce(probe);
        if !replay.is_empty() {
            writeln!(
                out,
                "    {} {}",
                p.bold.apply_to("replay:"),
                p.dim.apply_to(format!(
                    "(set {}=<your service's base URL>, then paste)",
                    super::curl::BASE
                ))
            )?;
            for line in replay {
                writeln!(out, "      {}", safe(&line))?;
            }
        }
    }
    writeln!(out)
}
