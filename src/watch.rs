//! `run --watch`: what the files below a path look like (to notice a change), and what changed between two runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::outcome::{RunReport, Verdict};

/// The most files a snapshot looks at: a watched folder is a project, not a disk.
const MAX_FILES: usize = 20_000;

/// Folders never watched: version control, build output, dependencies, caches.
const SKIPPED: [&str; 9] = [
    ".git",
    "target",
    "node_modules",
    "__pycache__",
    ".venv",
    "venv",
    ".pytest_cache",
    ".mypy_cache",
    "proctor-results",
];

/// Each file's modification time and size, below `path` (or of `path` itself).
pub fn snapshot(path: &Path) -> BTreeMap<PathBuf, (Option<SystemTime>, u64)> {
    let mut files = BTreeMap::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&next) else {
            continue;
        };
        if meta.is_dir() {
            let skipped = next
                .file_name()
                .is_some_and(|n| SKIPPED.contains(&n.to_string_lossy().as_ref()));
            if skipped && next != path {
                continue;
            }
            if let Ok(entries) = std::fs::read_dir(&next) {
                pending.extend(entries.flatten().map(|e| e.path()));
            }
        } else {
            files.insert(next, (meta.modified().ok(), meta.len()));
            if files.len() >= MAX_FILES {
                break;
            }
        }
    }
    files
}

/// What changed from one run to the next: probes newly failing (with why) and newly passing, and the points.
pub fn changes(before: &RunReport, after: &RunReport) -> String {
    let verdicts = |report: &RunReport| -> BTreeMap<String, Verdict> {
        report
            .challenges
            .iter()
            .flat_map(|c| c.probes.iter().map(move |p| (format!("{}/{}", c.id, p.id), p.verdict)))
            .collect()
    };
    let (old, new) = (verdicts(before), verdicts(after));
    let mut lines = Vec::new();
    for challenge in &after.challenges {
        if let Some(error) = &challenge.target_error {
            lines.push(format!("  ✗ {}: {error}", challenge.id));
        }
        for probe in &challenge.probes {
            let id = format!("{}/{}", challenge.id, probe.id);
            let was = old.get(&id).copied();
            let passed = probe.verdict == Verdict::Passed;
            if passed && was.is_some_and(|v| v != Verdict::Passed) {
                lines.push(format!("  ✓ newly passing: {id}"));
            } else if !passed && was == Some(Verdict::Passed) {
                let why = probe.message.as_deref().unwrap_or("").lines().next().unwrap_or("");
                lines.push(format!("  ✗ newly failing: {id} — {}", crate::expect::clip(why, 160)));
            }
        }
    }
    let gone: Vec<&String> = old.keys().filter(|id| !new.contains_key(*id)).collect();
    if !gone.is_empty() {
        lines.push(format!("  (no longer graded: {})", gone.len()));
    }
    let (earned, total) = after.points();
    let (was, _) = before.points();
    let head = format!("{earned}/{total} points (was {was})");
    if lines.is_empty() {
        format!("{head}: nothing changed\n")
    } else {
        format!("{head}:\n{}\n", lines.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_sees_an_edit_and_skips_dependency_folders() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("app.py"), "v1").expect("write");
        std::fs::create_dir(dir.path().join("node_modules")).expect("mkdir");
        std::fs::write(dir.path().join("node_modules/x.js"), "x").expect("write");
        let before = snapshot(dir.path());
        assert_eq!(before.len(), 1);
        std::fs::write(dir.path().join("node_modules/x.js"), "changed").expect("write");
        assert_eq!(snapshot(dir.path()), before);
        std::fs::write(dir.path().join("app.py"), "version 2").expect("write");
        assert_ne!(snapshot(dir.path()), before);
    }
}
