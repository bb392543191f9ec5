//! Scoring: probe verdicts to points, category subtotals, percentage and pass/fail. Pure.

use crate::outcome::{CategoryScore, Counts, ProbeReport, Score, Verdict};

/// Scores probes against a threshold (percent). A run with errored or skipped probes, or a target that could
/// not be graded, never passes: a grade needs every probe to have run.
pub fn score(probes: &[ProbeReport], threshold: f64, target_ok: bool) -> Score {
    let mut categories: Vec<CategoryScore> = Vec::new();
    let mut counts = Counts::default();
    for probe in probes {
        if probe.verdict == Verdict::NotApplicable {
            counts.not_applicable += 1;
            continue;
        }
        let earned = probe.earned();
        match categories.iter_mut().find(|c| c.name == probe.category) {
            // Validation bounds a challenge's points far below u32::MAX; saturating keeps a wrong total from
            // ever wrapping into a pass.
            Some(c) => {
                c.earned = c.earned.saturating_add(earned);
                c.total = c.total.saturating_add(probe.points);
            }
            None => categories.push(CategoryScore {
                name: probe.category.clone(),
                earned,
                total: probe.points,
            }),
        }
        match probe.verdict {
            Verdict::Passed => counts.passed += 1,
            Verdict::Failed => counts.failed += 1,
            Verdict::Errored => counts.errored += 1,
            Verdict::Skipped => counts.skipped += 1,
            Verdict::NotApplicable => {}
        }
    }
    let earned = categories.iter().fold(0u32, |sum, c| sum.saturating_add(c.earned));
    let total = categories.iter().fold(0u32, |sum, c| sum.saturating_add(c.total));
    let percent = if total == 0 {
        0.0
    } else {
        f64::from(earned) * 100.0 / f64::from(total)
    };
    // Round to 2 decimals so 2/3 prints and compares the same everywhere.
    let percent = (percent * 100.0).round() / 100.0;
    let complete = target_ok && counts.errored == 0 && counts.skipped == 0;
    Score {
        earned,
        total,
        percent,
        passed: complete && percent >= threshold,
        categories,
        counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(category: &str, points: u32, verdict: Verdict) -> ProbeReport {
        ProbeReport {
            id: "p".into(),
            title: "t".into(),
            category: category.into(),
            points,
            why: String::new(),
            hint: String::new(),
            hidden: false,
            verdict,
            message: None,
            duration_ms: 0,
            steps: Vec::new(),
        }
    }

    #[test]
    fn points_categories_and_threshold() {
        let probes = [
            probe("caching", 3, Verdict::Passed),
            probe("status-codes", 1, Verdict::Failed),
            probe("caching", 2, Verdict::Failed),
            probe("status-codes", 2, Verdict::Passed),
        ];
        let s = score(&probes, 62.5, true);
        assert_eq!((s.earned, s.total, s.percent, s.passed), (5, 8, 62.5, true));
        assert_eq!(
            s.categories,
            vec![
                CategoryScore {
                    name: "caching".into(),
                    earned: 3,
                    total: 5
                },
                CategoryScore {
                    name: "status-codes".into(),
                    earned: 2,
                    total: 3
                },
            ]
        );
        assert!(!score(&probes, 63.0, true).passed);
        assert_eq!(score(&probes[..1], 100.0, true).percent, 100.0);
    }

    #[test]
    fn errored_skipped_or_unreachable_never_pass() {
        let errored = [probe("a", 1, Verdict::Passed), probe("a", 1, Verdict::Errored)];
        assert!(!score(&errored, 50.0, true).passed);
        assert_eq!(score(&errored, 50.0, true).counts.errored, 1);
        let passed = [probe("a", 1, Verdict::Passed)];
        assert!(!score(&passed, 0.0, false).passed);
    }

    #[test]
    fn thirds_round_to_two_decimals() {
        let probes = [probe("a", 1, Verdict::Passed), probe("a", 2, Verdict::Failed)];
        assert_eq!(score(&probes, 0.0, true).percent, 33.33);
    }
}
