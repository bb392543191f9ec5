//! The build context: the submission folder as a tar stream, filtered by `.dockerignore` with Docker's own
//! rules, symlinks archived as links (never followed), bounded in size.
//!
//! Docker's rules (moby/patternmatcher, as the docker CLI applies them): one pattern per line, `#` comments,
//! patterns cleaned and anchored at the context root (a leading `/` is dropped), `*` and `?` never cross `/`,
//! `**` matches any number of directories, `!` re-includes, the last matching pattern wins, and a pattern that
//! matches a directory matches everything below it. `Dockerfile` and `.dockerignore` are always sent.

use std::path::{Path, PathBuf};

use regex::Regex;

/// One `.dockerignore` line.
#[derive(Debug)]
struct Rule {
    regex: Regex,
    exclusion: bool,
}

/// Parsed `.dockerignore` rules.
#[derive(Debug, Default)]
pub struct Ignore {
    rules: Vec<Rule>,
}

/// `filepath.Clean` for slash-separated relative patterns.
fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// Compiles a Docker pattern into an anchored regex (the translation moby's patternmatcher makes).
fn compile(pattern: &str) -> Option<Regex> {
    let mut out = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 1;
                if chars.get(i + 1) == Some(&'/') {
                    i += 1;
                }
                if i + 1 >= chars.len() {
                    out.push_str(".*");
                } else {
                    out.push_str("(.*/)?");
                }
            }
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            '\\' => {
                i += 1;
                if let Some(next) = chars.get(i) {
                    out.push_str(&regex::escape(&next.to_string()));
                }
            }
            '[' => {
                // A character class passes through up to its closing bracket; `[!...]` negates like `[^...]`.
                let end = chars[i..].iter().position(|&c| c == ']').map(|p| p + i)?;
                let mut class: String = chars[i + 1..end].iter().collect();
                if let Some(rest) = class.strip_prefix('!') {
                    class = format!("^{rest}");
                }
                out.push('[');
                out.push_str(&class.replace('\\', "\\\\").replace('[', "\\["));
                out.push(']');
                i = end;
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    out.push('$');
    Regex::new(&out).ok()
}

impl Ignore {
    /// Parses the text of a `.dockerignore` file. Patterns that cannot compile are skipped, as Docker would
    /// reject the build; [`Ignore::errors`] lists them.
    pub fn parse(text: &str) -> (Self, Vec<String>) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclusion, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let pattern = clean(pattern.trim_start_matches('/'));
            match compile(&pattern) {
                Some(regex) => rules.push(Rule { regex, exclusion }),
                None => errors.push(line.to_string()),
            }
        }
        (Self { rules }, errors)
    }

    /// Whether a path (slash-separated, relative to the context root) is excluded: the last rule that matches
    /// the path or one of its parent directories decides.
    pub fn excludes(&self, path: &str) -> bool {
        let parents: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).collect();
        let mut excluded = false;
        for rule in &self.rules {
            let matched = rule.regex.is_match(path) || parents.iter().any(|p| rule.regex.is_match(p));
            if matched {
                excluded = !rule.exclusion;
            }
        }
        excluded
    }
}

/// Why a build context could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// A file or folder could not be read.
    #[error("failed to read {}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The folder has no Dockerfile.
    #[error("{} has no Dockerfile: a submission folder needs one at its root", .0.display())]
    NoDockerfile(PathBuf),
    /// The Dockerfile is a symbolic link (it could point anywhere on this machine).
    #[error("{} is a symbolic link: the Dockerfile must be a regular file inside the submission", .0.display())]
    DockerfileIsLink(PathBuf),
    /// The context is over the limit.
    #[error(
        "the build context is over {} MiB (the limit): list large files and folders (target/, node_modules/, data) in .dockerignore, or raise --max-context",
        limit >> 20
    )]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// A `.dockerignore` pattern is invalid.
    #[error(".dockerignore has an invalid pattern: {0}")]
    BadPattern(String),
}

/// The files a context will hold, relative to its root, in archive order (directories before their contents).
pub fn select(dir: &Path, limit: u64) -> Result<Vec<String>, ContextError> {
    fn read(path: &Path) -> impl FnOnce(std::io::Error) -> ContextError + '_ {
        move |source| ContextError::Read {
            path: path.to_path_buf(),
            source,
        }
    }
    let dockerfile = dir.join("Dockerfile");
    if std::fs::symlink_metadata(&dockerfile).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(ContextError::DockerfileIsLink(dockerfile));
    }
    if !dockerfile.is_file() {
        return Err(ContextError::NoDockerfile(dir.to_path_buf()));
    }
    let ignore_path = dir.join(".dockerignore");
    let ignore = match std::fs::read_to_string(&ignore_path) {
        Ok(text) => {
            let (ignore, errors) = Ignore::parse(&text);
            if let Some(bad) = errors.into_iter().next() {
                return Err(ContextError::BadPattern(bad));
            }
            ignore
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ignore::default(),
        Err(e) => return Err(read(&ignore_path)(e)),
    };
    let mut selected = Vec::new();
    let mut total = 0u64;
    let mut pending = vec![String::new()];
    while let Some(relative) = pending.pop() {
        let full = if relative.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join(&relative)
        };
        let mut entries: Vec<(String, std::fs::Metadata)> = Vec::new();
        for entry in std::fs::read_dir(&full).map_err(read(&full))? {
            let entry = entry.map_err(read(&full))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if relative.is_empty() {
                name
            } else {
                format!("{relative}/{name}")
            };
            // symlink_metadata: a link is archived as a link and never followed.
            let meta = std::fs::symlink_metadata(entry.path()).map_err(read(&entry.path()))?;
            entries.push((path, meta));
        }
        entries.sort_by(|a, b| b.0.cmp(&a.0));
        for (path, meta) in entries {
            let always = path == "Dockerfile" || path == ".dockerignore";
            let excluded = !always && ignore.excludes(&path);
            if meta.is_dir() {
                // Descend even into excluded folders: a later `!` rule may re-include something inside.
                if !excluded {
                    selected.push(path.clone());
                }
                pending.push(path);
            } else if !excluded {
                // What the archive will really hold: a 512-byte header and the content padded to 512 bytes.
                total += 512
                    + if meta.is_file() {
                        meta.len().div_ceil(512) * 512
                    } else {
                        0
                    };
                if total > limit {
                    return Err(ContextError::TooLarge { limit });
                }
                selected.push(path);
            }
        }
    }
    selected.sort();
    Ok(selected)
}

/// The Dockerfile with `LABEL <labels>` after every `FROM`, so that every image the build makes — the
/// intermediate ones of each step too, even those committed after an interrupted build — carries the run's labels
/// and the run's sweep finds it.
pub fn labelled_dockerfile(text: &str, labels: &[(String, String)]) -> String {
    let escape = text
        .lines()
        .take_while(|l| l.trim_start().starts_with('#'))
        .find_map(|l| {
            let directive = l.trim_start().trim_start_matches('#').trim();
            let (key, value) = directive.split_once('=')?;
            (key.trim().eq_ignore_ascii_case("escape")).then(|| value.trim().chars().next())?
        })
        .unwrap_or('\\');
    let label = format!(
        "LABEL {}",
        labels
            .iter()
            .map(|(k, v)| format!(
                "{}={}",
                serde_json::Value::from(k.as_str()),
                serde_json::Value::from(v.as_str())
            ))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut out = String::with_capacity(text.len() + 200);
    let mut in_from = false;
    let mut continued = false;
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        let trimmed = line.trim();
        if !continued && !trimmed.starts_with('#') {
            in_from = trimmed
                .split_whitespace()
                .next()
                .is_some_and(|word| word.eq_ignore_ascii_case("FROM"));
        }
        // Comment lines neither start an instruction nor continue one, nor end a continued one.
        if trimmed.starts_with('#') {
            continue;
        }
        continued = trimmed.ends_with(escape);
        if in_from && !continued {
            out.push_str(&label);
            out.push('\n');
            in_from = false;
        }
    }
    out
}

/// Writes the tar archive of `files` (from [`select`]), its Dockerfile labelled (see [`labelled_dockerfile`]), to
/// `out` as it is made, so that a large context is streamed to the engine rather than held in memory.
pub fn pack_into<W: std::io::Write>(
    dir: &Path,
    files: &[String],
    labels: &[(String, String)],
    out: W,
) -> Result<W, ContextError> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    // Old engines reject GNU sparse entries (type 'S'), which tar writes for files with holes by default.
    builder.sparse(false);
    for relative in files {
        let full = dir.join(relative);
        if relative == "Dockerfile" {
            let read = |source| ContextError::Read {
                path: full.clone(),
                source,
            };
            let text = std::fs::read_to_string(&full).map_err(read)?;
            let text = labelled_dockerfile(&text, labels);
            let mut header = tar::Header::new_gnu();
            header.set_metadata(&std::fs::metadata(&full).map_err(read)?);
            header.set_size(text.len() as u64);
            builder
                .append_data(&mut header, relative, text.as_bytes())
                .map_err(read)?;
            continue;
        }
        builder
            .append_path_with_name(&full, relative)
            .map_err(|source| ContextError::Read {
                path: full.clone(),
                source,
            })?;
    }
    builder.into_inner().map_err(|source| ContextError::Read {
        path: dir.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(rules: &str, path: &str) -> bool {
        Ignore::parse(rules).0.excludes(path)
    }

    #[test]
    fn patterns_are_anchored_at_the_root_and_stars_stay_in_one_folder() {
        assert!(excluded("*.log", "debug.log"));
        assert!(!excluded("*.log", "logs/debug.log"));
        assert!(excluded("/secret.txt", "secret.txt"));
        assert!(excluded("*/temp*", "a/temporary"));
        assert!(!excluded("*/temp*", "a/b/temporary"));
        assert!(excluded("temp?", "temp1"));
        assert!(!excluded("temp?", "temp12"));
    }

    #[test]
    fn double_star_crosses_folders() {
        assert!(excluded("**/*.pyc", "a.pyc"));
        assert!(excluded("**/*.pyc", "pkg/sub/a.pyc"));
        assert!(excluded("docs/**", "docs/a/b.md"));
        assert!(!excluded("docs/**/x", "docs2/x"));
    }

    #[test]
    fn a_folder_match_covers_its_contents_and_the_last_match_wins() {
        assert!(excluded("node_modules", "node_modules/left-pad/index.js"));
        assert!(!excluded("logs\n!logs/keep.log", "logs/keep.log"));
        assert!(excluded("logs\n!logs/keep.log", "logs/other.log"));
        assert!(excluded("!a.txt\n*.txt", "a.txt"));
    }

    #[test]
    fn comments_blank_lines_dots_and_escapes() {
        assert!(!excluded("# secret\n\n", "secret"));
        assert!(excluded("./build/../dist", "dist/x"));
        assert!(excluded("\\*literal", "*literal"));
        assert!(!excluded("\\*literal", "xliteral"));
        assert!(excluded("file[0-9].txt", "file7.txt"));
        assert!(!excluded("file[!0-9].txt", "file7.txt"));
    }

    #[test]
    fn symlinks_are_archived_as_links_and_never_followed_out_of_the_folder() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").expect("write");
        std::fs::write(dir.path().join(".dockerignore"), "Dockerfile\n*.secret\n").expect("write");
        std::fs::write(dir.path().join("a.secret"), "x").expect("write");
        std::os::unix::fs::symlink("/etc", dir.path().join("outside")).expect("symlink");
        std::os::unix::fs::symlink("../../etc/passwd", dir.path().join("passwd")).expect("symlink");
        let files = select(dir.path(), 1 << 20).expect("selects");
        let archive = pack_into(dir.path(), &files, &[], Vec::new()).expect("packs");
        let mut entries: Vec<(String, bool, Option<String>)> = tar::Archive::new(archive.as_slice())
            .entries()
            .expect("tar")
            .map(|e| {
                let e = e.expect("entry");
                let path = e.path().expect("path").to_string_lossy().into_owned();
                let link = e.link_name().ok().flatten().map(|l| l.to_string_lossy().into_owned());
                (path, e.header().entry_type().is_symlink(), link)
            })
            .collect();
        entries.sort();
        assert_eq!(
            entries,
            vec![
                (".dockerignore".to_string(), false, None),
                ("Dockerfile".to_string(), false, None),
                ("outside".to_string(), true, Some("/etc".to_string())),
                ("passwd".to_string(), true, Some("../../etc/passwd".to_string())),
            ]
        );
    }

    #[test]
    fn a_context_over_the_limit_or_without_a_dockerfile_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(matches!(select(dir.path(), 3000), Err(ContextError::NoDockerfile(_))));
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").expect("write");
        // Each entry costs a 512-byte tar header plus its content padded to 512 bytes.
        std::fs::write(dir.path().join("big"), vec![0u8; 2000]).expect("write");
        assert!(matches!(
            select(dir.path(), 3000),
            Err(ContextError::TooLarge { limit: 3000 })
        ));
        std::fs::write(dir.path().join(".dockerignore"), "big\n").expect("write");
        assert_eq!(
            select(dir.path(), 3000).expect("fits"),
            vec![".dockerignore", "Dockerfile"]
        );
    }

    #[test]
    fn every_stage_is_labelled_right_after_its_from() {
        let labels = vec![("dev.proctor.run".to_string(), "r1".to_string())];
        let text = "# syntax comment\nARG BASE=scratch\nFROM ${BASE} \\\n  AS build\nRUN [\"/x\"]\nfrom build as final\nCOPY a /a\n";
        assert_eq!(
            labelled_dockerfile(text, &labels),
            "# syntax comment\nARG BASE=scratch\nFROM ${BASE} \\\n  AS build\nLABEL \"dev.proctor.run\"=\"r1\"\nRUN [\"/x\"]\nfrom build as final\nLABEL \"dev.proctor.run\"=\"r1\"\nCOPY a /a\n"
        );
        let backtick = "# escape=`\nFROM scratch `\n  AS x\n";
        assert!(labelled_dockerfile(backtick, &labels).ends_with("  AS x\nLABEL \"dev.proctor.run\"=\"r1\"\n"));
    }
}
