//! What `proctor list` and `proctor show` print: the catalog as a table, one challenge's brief with its rules and
//! the probes that check them. Plain text and Markdown; a spec may come from anyone, so the caller neutralises.

use crate::spec::Challenge;
use crate::spec::model::Visibility;

/// The catalog table: id, question, probes, points, title and tags.
pub fn table(challenges: &[Challenge]) -> String {
    let width = challenges.iter().map(|c| c.id.len()).max().unwrap_or(2).max(2);
    let mut text = format!(
        "{:width$}  {:>3}  {:6}  {:6}  title [tags]\n",
        "id", "Q", "probes", "points"
    );
    for c in challenges {
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
    text
}

/// The catalog as JSON for scripts: per challenge its id, question, title, tags, probes and points.
pub fn json_list(challenges: &[Challenge]) -> String {
    let list: Vec<serde_json::Value> = challenges
        .iter()
        .map(|c| {
            serde_json::json!({
                "id": c.id,
                "question": { "number": c.spec.question.number, "text": c.spec.question.text.trim() },
                "title": c.spec.title,
                "tags": c.spec.tags,
                "probes": c.spec.probes.len(),
                "points": c.points(),
            })
        })
        .collect();
    serde_json::to_string_pretty(&list).unwrap_or_else(|_| "[]".to_string())
}

/// A challenge as its candidate reads it (Markdown): the question, the brief, each rule with the probes that
/// check it (hidden ones unnamed), how the service is started and when grading starts.
pub fn markdown(challenge: &Challenge) -> String {
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
                Visibility::Public => p.id.as_str(),
                Visibility::Hidden => "a hidden probe",
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
    for probe in s.probes.iter().filter(|p| p.visibility == Visibility::Public) {
        text.push_str(&format!(
            "- **{}** ({} pt, rules {}): {}\n",
            probe.id,
            probe.points,
            probe.rules.join(", "),
            probe.title
        ));
    }
    let hidden = s.probes.iter().filter(|p| p.visibility == Visibility::Hidden).count();
    if hidden > 0 {
        text.push_str(&format!("- and {hidden} hidden probe(s)\n"));
    }
    text
}

/// Joins the indented continuation lines of list items onto the item, for renderers that take each source line
/// on its own (termimad); code fences are left alone.
pub fn join_continuations(markdown: &str) -> String {
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
