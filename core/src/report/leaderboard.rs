//! The leaderboard of a batch of submissions (`proctor grade --submissions`): one entry per submission, ranked,
//! rendered as a terminal table, CSV, JSON and the HTML index page. Pure. Submission names come from folder
//! names someone else chose: every renderer neutralises them (terminal control characters, CSV formulas, HTML).

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::outcome::RunReport;

/// The version of the leaderboard's JSON format.
pub const LEADERBOARD_VERSION: u32 = 1;

/// Every submission's result, best first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    /// [`LEADERBOARD_VERSION`].
    pub format_version: u32,
    /// The challenges graded, in order.
    pub challenges: Vec<String>,
    /// One entry per submission, ranked.
    pub entries: Vec<Entry>,
}

/// One submission's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// 1 for the best; equal scores share a rank.
    pub rank: u32,
    /// The submission's name (its folder's, or the name given to its image).
    pub submission: String,
    /// Points earned over all challenges.
    pub earned: u32,
    /// Points available.
    pub total: u32,
    /// earned / total in percent.
    pub percent: f64,
    /// `passed` (every challenge passed), `not passed`, or `not graded` (it did not build or start).
    pub verdict: String,
    /// Points per category, in order of first appearance: (category, earned, total).
    pub categories: Vec<(String, u32, u32)>,
    /// Why it could not be graded (a build or start error), the first one.
    pub error: Option<String>,
    /// Wall time of its grading.
    pub duration_ms: u64,
    /// Where its reports are, relative to the leaderboard.
    pub reports: String,
}

impl Entry {
    /// The entry of a submission graded in `report`, whose reports are in the folder `reports`.
    pub fn from_run(submission: &str, report: &RunReport, reports: &str) -> Self {
        let (earned, total) = report.points();
        let mut categories: Vec<(String, u32, u32)> = Vec::new();
        for challenge in &report.challenges {
            for category in &challenge.score.categories {
                match categories.iter_mut().find(|(name, ..)| *name == category.name) {
                    Some((_, e, t)) => {
                        *e += category.earned;
                        *t += category.total;
                    }
                    None => categories.push((category.name.clone(), category.earned, category.total)),
                }
            }
        }
        let error = report.challenges.iter().find_map(|c| c.target_error.clone());
        let verdict = if report.challenges.iter().all(|c| c.target_error.is_some()) {
            "not graded"
        } else if report.challenges.iter().all(|c| c.score.passed) {
            "passed"
        } else {
            "not passed"
        };
        Self {
            rank: 0,
            submission: submission.to_string(),
            earned,
            total,
            percent: if total == 0 {
                0.0
            } else {
                f64::from(earned) * 100.0 / f64::from(total)
            },
            verdict: verdict.to_string(),
            categories,
            error,
            duration_ms: report.duration_ms,
            reports: reports.to_string(),
        }
    }
}

impl Leaderboard {
    /// The leaderboard of these entries: ranked by score, then by name.
    pub fn new(challenges: Vec<String>, mut entries: Vec<Entry>) -> Self {
        entries.sort_by(|a, b| {
            b.percent
                .total_cmp(&a.percent)
                .then_with(|| a.submission.cmp(&b.submission))
        });
        let mut rank = 0;
        let mut previous = None;
        for (i, entry) in entries.iter_mut().enumerate() {
            if previous != Some(entry.percent) {
                rank = i as u32 + 1;
                previous = Some(entry.percent);
            }
            entry.rank = rank;
        }
        Self {
            format_version: LEADERBOARD_VERSION,
            challenges,
            entries,
        }
    }

    /// One leaderboard from several (the partitions of one batch): their entries ranked together, each
    /// submission once (the last one given wins).
    pub fn merge(parts: Vec<Leaderboard>) -> Self {
        let mut challenges: Vec<String> = Vec::new();
        let mut entries: Vec<Entry> = Vec::new();
        for part in parts {
            for challenge in part.challenges {
                if !challenges.contains(&challenge) {
                    challenges.push(challenge);
                }
            }
            for entry in part.entries {
                entries.retain(|e| e.submission != entry.submission);
                entries.push(entry);
            }
        }
        Self::new(challenges, entries)
    }

    /// The category names, in order of first appearance.
    fn categories(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for entry in &self.entries {
            for (name, ..) in &entry.categories {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        }
        names
    }

    /// A plain-text table (the caller neutralises it for the terminal).
    pub fn table(&self) -> String {
        let width = self
            .entries
            .iter()
            .map(|e| e.submission.chars().count())
            .max()
            .unwrap_or(10)
            .max(10);
        let mut out = format!(
            "{:>4}  {:width$}  {:>7}  {:>9}  {:10}  {}\n",
            "rank", "submission", "score", "points", "verdict", "time"
        );
        for e in &self.entries {
            let note = e
                .error
                .as_deref()
                .map(|m| format!("  {}", crate::expect::clip(m, 80)))
                .unwrap_or_default();
            out.push_str(&format!(
                "{:>4}  {:width$}  {:>6.1}%  {:>9}  {:10}  {:.1} s{note}\n",
                e.rank,
                e.submission,
                e.percent,
                format!("{}/{}", e.earned, e.total),
                e.verdict,
                e.duration_ms as f64 / 1000.0
            ));
        }
        out
    }

    /// CSV (RFC 4180), one row per submission with a column per category; cells that a spreadsheet would take
    /// for a formula are prefixed with `'`.
    pub fn write_csv(&self, out: &mut dyn Write) -> io::Result<()> {
        let categories = self.categories();
        let mut header = vec!["rank", "submission", "percent", "earned", "total", "verdict"];
        header.extend(categories.iter().copied());
        header.extend(["error", "seconds", "reports"]);
        writeln!(
            out,
            "{}",
            header.iter().map(|h| csv_cell(h)).collect::<Vec<_>>().join(",")
        )?;
        for e in &self.entries {
            let mut row = vec![
                e.rank.to_string(),
                e.submission.clone(),
                format!("{:.2}", e.percent),
                e.earned.to_string(),
                e.total.to_string(),
                e.verdict.clone(),
            ];
            for category in &categories {
                row.push(
                    e.categories
                        .iter()
                        .find(|(name, ..)| name == category)
                        .map(|(_, earned, total)| format!("{earned}/{total}"))
                        .unwrap_or_default(),
                );
            }
            row.push(e.error.clone().unwrap_or_default());
            row.push(format!("{:.1}", e.duration_ms as f64 / 1000.0));
            row.push(e.reports.clone());
            writeln!(out, "{}", row.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(","))?;
        }
        Ok(())
    }

    /// The HTML index page: the table, each submission linking to its HTML report. Self-contained, no scripts.
    pub fn write_html(&self, out: &mut dyn Write) -> io::Result<()> {
        use super::html::escape;
        let categories = self.categories();
        writeln!(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")?;
        writeln!(
            out,
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        )?;
        writeln!(out, "<title>proctor leaderboard</title><style>")?;
        writeln!(
            out,
            "body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}\
             td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}.passed{{color:#176c2b}}\
             .failed{{color:#a4161a}}"
        )?;
        writeln!(out, "</style></head><body>\n<h1>Leaderboard</h1>")?;
        writeln!(
            out,
            "<p>{} submission(s) graded on {}.</p>",
            self.entries.len(),
            escape(&self.challenges.join(", "))
        )?;
        write!(
            out,
            "<table><thead><tr><th>rank</th><th>submission</th><th>score</th><th>verdict</th>"
        )?;
        for category in &categories {
            write!(out, "<th>{}</th>", escape(category))?;
        }
        writeln!(out, "<th>time</th><th>error</th></tr></thead><tbody>")?;
        for e in &self.entries {
            let class = if e.verdict == "passed" { "passed" } else { "failed" };
            write!(
                out,
                "<tr><td>{}</td><td><a href=\"{}/report.html\">{}</a></td><td>{:.1}% ({}/{})</td><td class=\"{class}\">{}</td>",
                e.rank,
                escape(&url_path(&e.reports)),
                escape(&e.submission),
                e.percent,
                e.earned,
                e.total,
                escape(&e.verdict)
            )?;
            for category in &categories {
                let cell = e
                    .categories
                    .iter()
                    .find(|(name, ..)| name == category)
                    .map(|(_, earned, total)| format!("{earned}/{total}"))
                    .unwrap_or_default();
                write!(out, "<td>{cell}</td>")?;
            }
            writeln!(
                out,
                "<td>{:.1} s</td><td>{}</td></tr>",
                e.duration_ms as f64 / 1000.0,
                escape(e.error.as_deref().unwrap_or(""))
            )?;
        }
        writeln!(out, "</tbody></table>\n</body></html>")
    }
}

/// One CSV cell: quoted when it must be, and never a formula.
fn csv_cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) && text.parse::<f64>().is_err() {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// A relative path as a URL path: each segment percent-encoded.
fn url_path(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            segment
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, percent: f64) -> Entry {
        Entry {
            rank: 0,
            submission: name.to_string(),
            earned: percent as u32,
            total: 100,
            percent,
            verdict: "not passed".to_string(),
            categories: vec![("caching".to_string(), 3, 4)],
            error: None,
            duration_ms: 1500,
            reports: name.to_string(),
        }
    }

    #[test]
    fn entries_are_ranked_by_score_with_ties_sharing_a_rank() {
        let board = Leaderboard::new(
            vec!["c".into()],
            vec![entry("b", 50.0), entry("a", 90.0), entry("c", 50.0), entry("d", 10.0)],
        );
        let ranks: Vec<(u32, &str)> = board.entries.iter().map(|e| (e.rank, e.submission.as_str())).collect();
        assert_eq!(ranks, vec![(1, "a"), (2, "b"), (2, "c"), (4, "d")]);
    }

    #[test]
    fn partitions_merge_into_one_ranking_each_submission_once() {
        let one = Leaderboard::new(vec!["x".into()], vec![entry("a", 40.0), entry("b", 60.0)]);
        let two = Leaderboard::new(vec!["x".into()], vec![entry("c", 80.0), entry("a", 70.0)]);
        let merged = Leaderboard::merge(vec![one, two]);
        let order: Vec<&str> = merged.entries.iter().map(|e| e.submission.as_str()).collect();
        assert_eq!(order, vec!["c", "a", "b"]);
        assert_eq!(merged.entries[1].percent, 70.0);
    }

    #[test]
    fn hostile_names_stay_data_in_csv_and_html() {
        let board = Leaderboard::new(
            vec!["x".into()],
            vec![
                entry("=HYPERLINK(\"http://evil\")", 10.0),
                entry("<script>alert(1)</script>", 20.0),
            ],
        );
        let mut csv = Vec::new();
        board.write_csv(&mut csv).expect("csv");
        let csv = String::from_utf8(csv).expect("utf-8");
        assert!(csv.contains("\"'=HYPERLINK(\"\"http://evil\"\")\""), "{csv}");
        assert!(csv.lines().next().is_some_and(|h| h.contains("caching")));
        let mut html = Vec::new();
        board.write_html(&mut html).expect("html");
        let html = String::from_utf8(html).expect("utf-8");
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(
            html.contains("href=\"%3Cscript%3Ealert%281%29%3C/script%3E/report.html\""),
            "{html}"
        );
    }
}
