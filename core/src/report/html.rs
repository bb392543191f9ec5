//! The HTML report: one self-contained file (inline CSS, no script, no external asset) with the summary, each
//! challenge and each probe, and for every failure the expected and actual values, why, the hint, the failing
//! exchange and the replay script. Details are `<details>` elements: readable and foldable without JavaScript.
//! Every text that came from a service or a spec is escaped.

use std::io::{self, Write};

use super::{failure_lines, mark, reproduce};
use crate::outcome::{ChallengeReport, ProbeReport, RunReport, StepReport, Verdict};

/// Text as HTML: `&`, `<`, `>`, quotes escaped, control characters shown (never interpreted).
pub fn escape(text: &str) -> String {
    let shown = crate::neutral::terminal(text);
    let mut out = String::with_capacity(shown.len());
    for c in shown.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#222}\
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}\
th{background:#f4f4f4}.pass{color:#176f2c}.fail{color:#b3261e}.warn{color:#8a5a00}.muted{color:#666}\
details{margin:.3rem 0;border:1px solid #ddd;border-radius:4px;padding:.3rem .6rem}summary{cursor:pointer}\
pre{background:#f6f8fa;padding:.6rem;overflow:auto;white-space:pre-wrap;word-break:break-all;font-size:13px}\
h2{margin-top:2rem;border-bottom:1px solid #ddd}";

/// Writes the HTML report.
pub fn write(report: &RunReport, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>proctor report</title><style>{STYLE}</style></head><body>"
    )?;
    writeln!(out, "<h1>proctor report</h1>")?;
    let (earned, total) = report.points();
    writeln!(
        out,
        "<p>{} challenge(s), {earned}/{total} points · seed <code>{}</code> (rerun with <code>--seed {}</code>) · \
         run <code>{}</code> · {} · proctor {}</p>",
        report.challenges.len(),
        report.seed,
        report.seed,
        escape(&report.run_id),
        escape(&report.started_at),
        escape(&report.proctor_version)
    )?;
    if report.interrupted {
        writeln!(
            out,
            "<p class=\"warn\"><strong>Interrupted:</strong> unfinished probes were skipped.</p>"
        )?;
    }
    writeln!(
        out,
        "<table><tr><th>challenge</th><th>score</th><th>pass mark</th><th>result</th></tr>"
    )?;
    for c in &report.challenges {
        writeln!(
            out,
            "<tr><td><a href=\"#{}\">{}</a></td><td>{}/{} ({}%)</td><td>{}%</td><td>{}</td></tr>",
            anchor(&c.id),
            escape(&c.id),
            c.score.earned,
            c.score.total,
            c.score.percent,
            c.threshold,
            result(c)
        )?;
    }
    writeln!(out, "</table>")?;
    if let Some(log) = report.build_log.as_deref().filter(|l| !l.trim().is_empty()) {
        writeln!(
            out,
            "<details><summary>image build output</summary><pre>{}</pre></details>",
            escape(log)
        )?;
    }
    for c in &report.challenges {
        challenge(c, out)?;
    }
    writeln!(out, "</body></html>")
}

fn anchor(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect()
}

fn result(c: &ChallengeReport) -> &'static str {
    match (&c.target_error, c.score.passed) {
        (Some(_), _) => "<span class=\"warn\">not graded</span>",
        (None, true) => "<span class=\"pass\">passed</span>",
        (None, false) => "<span class=\"fail\">not passed</span>",
    }
}

fn challenge(c: &ChallengeReport, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "<h2 id=\"{}\">{} — {}</h2>",
        anchor(&c.id),
        escape(&c.id),
        escape(&c.title)
    )?;
    writeln!(
        out,
        "<p>Question {}: {}<br><span class=\"muted\">{}</span></p>",
        c.question.number,
        escape(c.question.text.trim()),
        escape(&c.target)
    )?;
    if let Some(error) = &c.target_error {
        writeln!(
            out,
            "<p class=\"warn\"><strong>Could not grade:</strong> {}</p>",
            escape(error)
        )?;
        if let Some(logs) = c.logs.as_deref().filter(|l| !l.trim().is_empty()) {
            writeln!(
                out,
                "<details open><summary>last output</summary><pre>{}</pre></details>",
                escape(logs)
            )?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "<p>score {}/{} ({}%), pass mark {}% — {}</p>",
        c.score.earned,
        c.score.total,
        c.score.percent,
        c.threshold,
        result(c)
    )?;
    let categories: Vec<String> = c
        .score
        .categories
        .iter()
        .map(|k| format!("{} {}/{}", escape(&k.name), k.earned, k.total))
        .collect();
    writeln!(out, "<p class=\"muted\">by category: {}</p>", categories.join(" · "))?;
    for p in &c.probes {
        probe(p, out)?;
    }
    Ok(())
}

fn probe(p: &ProbeReport, out: &mut dyn Write) -> io::Result<()> {
    let (class, points) = match p.verdict {
        Verdict::Passed => ("pass", format!("{}/{}", p.earned(), p.points)),
        Verdict::Failed => ("fail", format!("{}/{}", p.earned(), p.points)),
        Verdict::Errored | Verdict::Skipped => ("warn", format!("{}/{}", p.earned(), p.points)),
        Verdict::NotApplicable => ("muted", "n/a".to_string()),
    };
    let open = if matches!(p.verdict, Verdict::Failed | Verdict::Errored) {
        " open"
    } else {
        ""
    };
    writeln!(
        out,
        "<details{open}><summary><span class=\"{class}\">{}</span> <strong>{}</strong> — {} \
         <span class=\"muted\">({}, {points})</span></summary>",
        mark(p.verdict),
        escape(&p.id),
        escape(&p.title),
        escape(&p.category)
    )?;
    let failure = failure_lines(p);
    if !failure.is_empty() {
        writeln!(out, "<pre class=\"{class}\">{}</pre>", escape(&failure.join("\n")))?;
    }
    if let Some(step) = p.steps.iter().find(|s| !s.passed) {
        checks(step, out)?;
        exchange(step, out)?;
    }
    if !p.why.is_empty() {
        writeln!(out, "<p><strong>why:</strong> {}</p>", escape(p.why.trim()))?;
    }
    if !p.hint.is_empty() && p.verdict != Verdict::Passed {
        writeln!(out, "<p><strong>hint:</strong> {}</p>", escape(p.hint.trim()))?;
    }
    let replay = reproduce(p);
    if !replay.is_empty() {
        writeln!(
            out,
            "<details><summary>replay (set {} to your service's base URL)</summary><pre>{}</pre></details>",
            super::curl::BASE,
            escape(&replay.join("\n"))
        )?;
    }
    if !p.steps.is_empty() {
        writeln!(out, "<details><summary>steps</summary><ol>")?;
        for step in &p.steps {
            let state = if step.passed { "pass" } else { "fail" };
            writeln!(
                out,
                "<li><span class=\"{state}\">{}</span> {} <span class=\"muted\">{} ms</span></li>",
                if step.passed { "✓" } else { "✗" },
                escape(&step.label),
                step.duration_ms
            )?;
        }
        writeln!(out, "</ol></details>")?;
    }
    writeln!(out, "</details>")
}

/// A failing step's checks: what was checked, expected, got.
fn checks(step: &StepReport, out: &mut dyn Write) -> io::Result<()> {
    if step.checks.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "<table><tr><th></th><th>check</th><th>expected</th><th>got</th></tr>"
    )?;
    for check in &step.checks {
        let (class, sign) = if check.passed { ("pass", "✓") } else { ("fail", "✗") };
        writeln!(
            out,
            "<tr><td class=\"{class}\">{sign}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&check.what),
            escape(&check.expected),
            escape(&check.actual)
        )?;
    }
    writeln!(out, "</table>")
}

/// The request and response of a failing step, as HTTP reads.
fn exchange(step: &StepReport, out: &mut dyn Write) -> io::Result<()> {
    let mut text = String::new();
    if let Some(request) = &step.request {
        text.push_str(&format!("{} {}\n", request.method, request.url));
        for (name, value) in &request.headers {
            text.push_str(&format!("{name}: {value}\n"));
        }
        if let Some(body) = &request.body {
            text.push_str(&format!("\n{body}\n"));
        }
    }
    if let Some(response) = &step.response {
        text.push_str(&format!("\n← {} ({} ms)\n", response.status, response.elapsed_ms));
        for (name, value) in &response.headers {
            text.push_str(&format!("{name}: {value}\n"));
        }
        if !response.body.is_empty() {
            text.push_str(&format!("\n{}\n", response.body));
        }
    }
    if !text.is_empty() {
        writeln!(
            out,
            "<details><summary>request and response</summary><pre>{}</pre></details>",
            escape(&text)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_control_characters_are_shown_not_run() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\"\u{1b}[2J"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;\\x1b[2J"
        );
        assert_eq!(anchor("rate limiter\"><x"), "rate_limiter___x");
    }
}
