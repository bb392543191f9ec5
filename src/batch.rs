//! Batch grading (`proctor grade --submissions`): a folder of submissions, each graded in its own sandbox run,
//! several at once, into an output folder of per-submission reports and a leaderboard. One submission's failure
//! (a broken build, a crash) is its verdict, never the batch's.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use sha2::Digest;
use tokio_util::sync::CancellationToken;

use crate::event::Events;
use crate::outcome::RunReport;
use crate::report::Format;
use crate::report::leaderboard::{Entry, Leaderboard};
use crate::session::{self, Options};
use crate::spec::Challenge;
use crate::target::{DockerOptions, DockerSource, Target, compose};

/// One submission: its name and what to run.
#[derive(Debug, Clone)]
pub struct Submission {
    /// Its name on the leaderboard.
    pub name: String,
    /// Its image, folder or Compose project.
    pub source: DockerSource,
}

/// Finds the submissions: each folder in `path` with a Compose file (a Compose project) or a `Dockerfile`; or,
/// when `path` is a file, one image per line (`NAME IMAGE`, or just `IMAGE`; `#` starts a comment). Sorted by
/// name.
pub fn discover(path: &Path, service: Option<&str>, budget: compose::Budget) -> Result<Vec<Submission>, String> {
    let mut found = Vec::new();
    if path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let mut words = line.split_whitespace();
            let (name, image) = match (words.next(), words.next()) {
                (Some(name), Some(image)) => (name.to_string(), image),
                (Some(image), None) => (image.to_string(), image),
                _ => continue,
            };
            found.push(Submission {
                name,
                source: DockerSource::Image(image.to_string()),
            });
        }
    } else {
        let entries = std::fs::read_dir(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for entry in entries.flatten() {
            let dir = entry.path();
            // A symbolic link could point anywhere on the machine: only real folders are submissions.
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().to_string();
            let source = if compose::PROJECT_FILES.iter().any(|f| dir.join(f).is_file()) {
                DockerSource::Compose {
                    dir,
                    service: service.map(str::to_string),
                    budget,
                }
            } else {
                // Without a Dockerfile the build says so: that is this submission's verdict.
                DockerSource::Build(dir)
            };
            found.push(Submission { name, source });
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = found.iter().find(|s| !seen.insert(folder_name(&s.name))) {
        return Err(format!("two submissions are both named `{}`", twice.name));
    }
    Ok(found)
}

/// The submissions of partition `index` of `count` (from 1): the i-th in name order goes to partition
/// `i mod count`, as nextest's `--partition count:` splits tests.
pub fn partition(submissions: Vec<Submission>, index: usize, count: usize) -> Vec<Submission> {
    submissions
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % count == index - 1)
        .map(|(_, s)| s)
        .collect()
}

/// How a batch runs.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Where the reports and the leaderboard go.
    pub out: PathBuf,
    /// How many submissions are graded at once, at most.
    pub jobs: usize,
    /// What the submissions graded at once may take together: the sum of their containers' memory and CPU
    /// limits (a submission that takes more than the whole budget is graded alone).
    pub budget: compose::Budget,
    /// Grade again submissions whose inputs have not changed since they were graded.
    pub force: bool,
    /// The Docker sandbox's options, for every submission.
    pub docker: DockerOptions,
    /// The session options of every submission (each gets its own run id).
    pub session: Options,
}

/// What became of one submission.
#[derive(Debug, Clone)]
pub struct Graded {
    /// Its leaderboard entry.
    pub entry: Entry,
    /// It was graded before with the same inputs, and not graded again.
    pub skipped: bool,
}

/// Grades every submission (at most `jobs` at once) and writes the output folder: per submission, its reports in
/// every format, candidate-facing copies with hidden probes redacted, its entry and the digest of its inputs;
/// then the leaderboard as JSON, CSV and an HTML index. `done` hears of each submission as it finishes.
pub async fn run(
    challenges: &[Challenge],
    submissions: Vec<Submission>,
    options: &BatchOptions,
    done: &(dyn Fn(&Graded) + Sync),
    cancel: &CancellationToken,
) -> std::io::Result<Leaderboard> {
    std::fs::create_dir_all(&options.out)?;
    let budget = Shares::new(options.budget);
    let budget = &budget;
    let graded: Vec<std::io::Result<Graded>> = futures::stream::iter(submissions)
        .map(|submission| async move {
            let graded = grade_one(challenges, submission, options, budget, cancel).await?;
            done(&graded);
            Ok(graded)
        })
        .buffer_unordered(options.jobs.max(1))
        .collect()
        .await;
    let mut entries = Vec::new();
    for graded in graded {
        entries.push(graded?.entry);
    }
    let board = Leaderboard::new(challenges.iter().map(|c| c.id.clone()).collect(), entries);
    write_leaderboard(&board, &options.out)?;
    Ok(board)
}

/// Writes `leaderboard.json`, `leaderboard.csv` and `index.html` into `out`.
pub fn write_leaderboard(board: &Leaderboard, out: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    let json = serde_json::to_string_pretty(board).map_err(std::io::Error::other)?;
    std::fs::write(out.join("leaderboard.json"), json + "\n")?;
    let mut csv = Vec::new();
    board.write_csv(&mut csv)?;
    std::fs::write(out.join("leaderboard.csv"), csv)?;
    let mut html = Vec::new();
    board.write_html(&mut html)?;
    std::fs::write(out.join("index.html"), html)
}

/// Rebuilds one leaderboard from the partitions' `leaderboard.json` files, with each entry's reports path made
/// relative to `out` when it can be.
pub fn merge(files: &[PathBuf], out: &Path) -> Result<Leaderboard, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let out_dir = out
        .canonicalize()
        .map_err(|e| format!("cannot open {}: {e}", out.display()))?;
    let mut parts = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let mut part: Leaderboard =
            serde_json::from_str(&text).map_err(|e| format!("{} is not a proctor leaderboard: {e}", file.display()))?;
        let base = file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
            .canonicalize()
            .unwrap_or_default();
        for entry in &mut part.entries {
            let reports = base.join(&entry.reports);
            entry.reports = match reports.strip_prefix(&out_dir) {
                Ok(relative) => relative.display().to_string(),
                Err(_) => reports.display().to_string(),
            };
        }
        parts.push(part);
    }
    let board = Leaderboard::merge(parts);
    write_leaderboard(&board, out).map_err(|e| format!("cannot write into {}: {e}", out.display()))?;
    Ok(board)
}

/// A submission's folder name in the output: its name with anything but letters, digits, `.`, `_` and `-`
/// replaced (never `.` or `..`).
pub fn folder_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.chars().all(|c| c == '.') {
        format!("_{safe}")
    } else {
        safe
    }
}

async fn grade_one(
    challenges: &[Challenge],
    submission: Submission,
    options: &BatchOptions,
    budget: &Shares,
    cancel: &CancellationToken,
) -> std::io::Result<Graded> {
    let folder = folder_name(&submission.name);
    let dir = options.out.join(&folder);
    std::fs::create_dir_all(&dir)?;
    let digest = inputs_digest(challenges, &submission, options);
    if !options.force
        && let Some(digest) = &digest
        && std::fs::read_to_string(dir.join("inputs.sha256")).is_ok_and(|d| d.trim() == digest)
        && let Some(entry) = std::fs::read_to_string(dir.join("entry.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<Entry>(&text).ok())
    {
        return Ok(Graded { entry, skipped: true });
    }
    let session = Options {
        run_id: session::new_run_id(),
        ..options.session.clone()
    };
    let target = Target::Docker {
        source: submission.source.clone(),
        docker: options.docker.clone(),
    };
    let report = {
        let _share = tokio::select! {
            share = budget.take(footprint(challenges, &submission, &options.docker.limits)) => share,
            () = cancel.cancelled() => None,
        };
        session::run(challenges, target, &session, &Events::new(Vec::new()), cancel).await
    };
    write_reports(&report, &dir)?;
    let entry = Entry::from_run(&submission.name, &report, &folder);
    let json = serde_json::to_string_pretty(&entry).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("entry.json"), json + "\n")?;
    // An interrupted grading is not a result to keep.
    match digest {
        Some(digest) if !report.interrupted => std::fs::write(dir.join("inputs.sha256"), digest + "\n")?,
        _ => {
            let _ = std::fs::remove_file(dir.join("inputs.sha256"));
        }
    }
    Ok(Graded { entry, skipped: false })
}

/// What grading a submission takes at most, as the sum of its containers' limits while every challenge runs at
/// once: per challenge, its service's memory and CPU limits (the command line's over the spec's over the
/// defaults) times its replicas. A Compose project with a budget of its own takes that budget instead (when it
/// has none, its graded service's limits stand for it).
pub fn footprint(challenges: &[Challenge], submission: &Submission, cli: &crate::spec::model::Limits) -> (u64, f64) {
    let (mut memory, mut cpus) = (0u64, 0f64);
    for challenge in challenges {
        let limits = crate::limits::resolve(&challenge.spec.service.limits, cli);
        let replicas = challenge.spec.service.replicas.max(1);
        memory = memory.saturating_add(limits.memory.saturating_mul(u64::from(replicas)));
        cpus += limits.cpus * f64::from(replicas);
    }
    if let DockerSource::Compose { budget, .. } = &submission.source {
        let n = challenges.len().max(1);
        memory = budget.memory.map_or(memory, |m| m.saturating_mul(n as u64));
        cpus = budget.cpus.map_or(cpus, |c| c * n as f64);
    }
    (memory, cpus)
}

/// The batch's budget, shared out to the submissions being graded: memory in MiB and CPUs in hundredths.
struct Shares {
    memory: Option<(tokio::sync::Semaphore, u32)>,
    cpus: Option<(tokio::sync::Semaphore, u32)>,
}

impl Shares {
    fn new(budget: compose::Budget) -> Self {
        // Counted in what `acquire_many` takes: a u32.
        let pool = |units: u64| {
            let units = u32::try_from(units.clamp(1, u64::from(u32::MAX))).unwrap_or(u32::MAX);
            (tokio::sync::Semaphore::new(units as usize), units)
        };
        Self {
            memory: budget.memory.map(|bytes| pool(bytes >> 20)),
            cpus: budget.cpus.map(|cpus| pool((cpus * 100.0).round() as u64)),
        }
    }

    /// Waits until `(memory, cpus)` fit beside what the submissions being graded hold (at most the whole budget:
    /// a submission larger than it is graded alone). Memory first, then CPUs, always in that order.
    async fn take(&self, (memory, cpus): (u64, f64)) -> Option<Vec<tokio::sync::SemaphorePermit<'_>>> {
        let mut held = Vec::new();
        for (pool, need) in [
            (&self.memory, memory >> 20),
            (&self.cpus, (cpus * 100.0).round() as u64),
        ] {
            if let Some((semaphore, total)) = pool {
                let need = u32::try_from(need.clamp(1, u64::from(*total))).unwrap_or(*total);
                held.push(semaphore.acquire_many(need).await.ok()?);
            }
        }
        Some(held)
    }
}

/// Every report of a submission, and the candidate-facing ones with hidden probes redacted.
fn write_reports(report: &RunReport, dir: &Path) -> std::io::Result<()> {
    let candidate = crate::report::redact_hidden(report);
    let files = [
        ("report.json", Format::Json, report),
        ("report.xml", Format::Junit, report),
        ("report.md", Format::Markdown, report),
        ("report.html", Format::Html, report),
        ("candidate.json", Format::Json, &candidate),
        ("candidate.md", Format::Markdown, &candidate),
        ("candidate.html", Format::Html, &candidate),
    ];
    for (name, format, report) in files {
        let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join(name))?);
        format.write(report, &mut out)?;
        std::io::Write::flush(&mut out)?;
    }
    Ok(())
}

/// A digest of what a submission's grade depends on: proctor's version, the challenges, the grading options and
/// the submission's files. `None` for an image (its tag may point at another image tomorrow): always graded.
fn inputs_digest(challenges: &[Challenge], submission: &Submission, options: &BatchOptions) -> Option<String> {
    let dir = match &submission.source {
        DockerSource::Image(_) => return None,
        DockerSource::Build(dir) => dir,
        DockerSource::Compose { dir, .. } => dir,
    };
    let mut hasher = sha2::Sha256::new();
    hasher.update(env!("CARGO_PKG_VERSION"));
    for challenge in challenges {
        hasher.update(format!("{}\n{:?}\n", challenge.id, challenge.spec));
    }
    let s = &options.session;
    hasher.update(format!(
        "{:?} {:?} {:?} {:?} {:?} {:?}\n",
        s.min_score, s.start_timeout, s.request_timeout, s.max_body, s.probe_filter, options.docker.limits
    ));
    if let DockerSource::Compose { service, budget, .. } = &submission.source {
        hasher.update(format!("{service:?} {budget:?}\n"));
    }
    hash_tree(dir, dir, &mut hasher).ok()?;
    Some(format!("{:x}", hasher.finalize()))
}

/// Hashes the paths and contents of the files below `dir`, in name order (symbolic links by their target
/// path, never followed).
fn hash_tree(root: &Path, dir: &Path, hasher: &mut sha2::Sha256) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.flatten().collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let relative = path.strip_prefix(root).unwrap_or(&path).display().to_string();
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            hasher.update(format!("link {relative} -> {}\n", std::fs::read_link(&path)?.display()));
        } else if kind.is_dir() {
            hash_tree(root, &path, hasher)?;
        } else {
            hasher.update(format!("file {relative} {}\n", entry.metadata()?.len()));
            let mut file = std::fs::File::open(&path)?;
            std::io::copy(&mut file, hasher)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn named(names: &[&str]) -> Vec<Submission> {
        names
            .iter()
            .map(|n| Submission {
                name: n.to_string(),
                source: DockerSource::Image(n.to_string()),
            })
            .collect()
    }

    #[test]
    fn partitions_cover_every_submission_once() {
        let all = named(&["a", "b", "c", "d", "e"]);
        let mut seen: Vec<String> = (1..=3)
            .flat_map(|i| partition(all.clone(), i, 3))
            .map(|s| s.name)
            .collect();
        assert_eq!(partition(all.clone(), 1, 3).len(), 2);
        seen.sort();
        assert_eq!(seen, vec!["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn a_submission_takes_its_challenges_limits_times_their_replicas() {
        let mut challenges = crate::catalog::challenges().expect("catalog");
        challenges.retain(|c| ["status-codes", "stateless-replicas"].contains(&c.id.as_str()));
        let image = &named(&["a"])[0];
        let none = crate::spec::model::Limits::default();
        // status-codes: one 512 MiB, 1-CPU service; stateless-replicas: two of them.
        assert_eq!(footprint(&challenges, image, &none), ((3 * 512) << 20, 3.0));
        let cli = crate::spec::model::Limits {
            memory: Some(crate::types::ByteSize(256 << 20)),
            cpus: Some(0.5),
            ..Default::default()
        };
        assert_eq!(footprint(&challenges, image, &cli), ((3 * 256) << 20, 1.5));
        let compose = Submission {
            name: "c".to_string(),
            source: DockerSource::Compose {
                dir: PathBuf::from("c"),
                service: None,
                budget: compose::Budget {
                    memory: Some(350 << 20),
                    cpus: None,
                },
            },
        };
        // A project's own budget stands for each challenge's project; without one, the service's limits do.
        assert_eq!(footprint(&challenges, &compose, &none), ((2 * 350) << 20, 3.0));
    }

    #[tokio::test]
    async fn submissions_wait_for_their_share_of_the_budget_and_a_big_one_gets_all_of_it() {
        let shares = Shares::new(compose::Budget {
            memory: Some(1 << 30),
            cpus: Some(2.0),
        });
        let first = shares.take((600 << 20, 1.0)).await.expect("fits");
        // 600 + 600 MiB is over 1 GiB: the second waits for the first.
        let waits = tokio::time::timeout(Duration::from_millis(100), shares.take((600 << 20, 1.0))).await;
        assert!(waits.is_err(), "the second submission did not wait");
        drop(first);
        let second = shares
            .take((600 << 20, 1.0))
            .await
            .expect("fits once the first is done");
        // Two small ones fit side by side within what is left.
        let small = tokio::time::timeout(Duration::from_millis(100), shares.take((100 << 20, 0.5))).await;
        assert!(small.is_ok(), "a submission that fits waited");
        drop((second, small));
        // Larger than the whole budget: graded alone, not never.
        let huge = tokio::time::timeout(Duration::from_secs(1), shares.take((64 << 30, 99.0))).await;
        assert!(huge.expect("a submission over the budget still runs").is_some());
    }

    #[test]
    fn folder_names_stay_inside_the_output() {
        assert_eq!(folder_name("../../etc"), ".._.._etc");
        assert_eq!(folder_name(".."), "_..");
        assert_eq!(folder_name("ann smith/v2"), "ann_smith_v2");
    }

    #[test]
    fn an_image_list_names_its_submissions() {
        let dir = tempfile::tempdir().expect("dir");
        let list = dir.path().join("images.txt");
        std::fs::write(&list, "# candidates\nann registry.example/ann:1\n\nbob:latest\n").expect("write");
        let found = discover(&list, None, Default::default()).expect("found");
        let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["ann", "bob:latest"]);
        assert!(matches!(&found[0].source, DockerSource::Image(i) if i == "registry.example/ann:1"));
    }
}
