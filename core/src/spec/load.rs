//! Turning YAML text into a checked [`Challenge`], or into every problem found in it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::SpecError;
use super::locate::{Locations, Position};
use super::model::{ChallengeSpec, ProbeSpec};
use super::validate::validate;

/// A loaded, checked challenge.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// The challenge id: the file stem, kebab-case.
    pub id: String,
    /// Where it came from: a path, or `catalog:<id>`.
    pub origin: String,
    /// The spec.
    pub spec: ChallengeSpec,
    /// Its probes compiled, in the spec's order (one per `spec.probes` entry).
    pub plan: Vec<crate::spec::plan::ProbePlan>,
}

impl Challenge {
    /// Total points of all probes.
    pub fn points(&self) -> u32 {
        self.spec
            .probes
            .iter()
            .fold(0u32, |sum, p| sum.saturating_add(p.points))
    }

    /// The time its probes spend on purpose (see [`crate::spec::plan::ProbePlan::planned_pause`]).
    pub fn planned_pause(&self) -> std::time::Duration {
        self.plan.iter().map(crate::spec::plan::ProbePlan::planned_pause).sum()
    }
}

/// The largest spec file proctor reads (the catalog's are under 20 KiB).
pub const MAX_SPEC_BYTES: usize = 1 << 20;
/// The deepest nesting of flow collections (`[`, `{`) and indentation a spec may have.
pub const MAX_SPEC_DEPTH: usize = 64;

/// Refuses, before parsing, a spec whose size or nesting could only be an attack on the parser (deep flow
/// nesting makes YAML parsing quadratic): `Some((line, column), message)`.
fn shape_problem(text: &str) -> Option<(Option<(usize, usize)>, String)> {
    if text.len() > MAX_SPEC_BYTES {
        return Some((
            None,
            format!(
                "the spec is {} bytes; a spec may be at most {MAX_SPEC_BYTES}",
                text.len()
            ),
        ));
    }
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (index, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if indent > 2 * MAX_SPEC_DEPTH {
            return Some((
                Some((index + 1, 1)),
                format!(
                    "the spec is indented {indent} spaces deep; at most {} are allowed",
                    2 * MAX_SPEC_DEPTH
                ),
            ));
        }
        let mut previous = ' ';
        for (column, c) in line.chars().enumerate() {
            match (quote, c) {
                (None, '#') if previous.is_whitespace() => break,
                (None, '\'' | '"') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '[' | '{') => {
                    depth += 1;
                    if depth > MAX_SPEC_DEPTH {
                        return Some((
                            Some((index + 1, column + 1)),
                            format!("flow collections nest deeper than {MAX_SPEC_DEPTH} levels"),
                        ));
                    }
                }
                (None, ']' | '}') => depth = depth.saturating_sub(1),
                _ => {}
            }
            previous = c;
        }
        // Single-quoted scalars may span lines, but plain `'` inside words (don't) are not quotes in YAML.
        if quote == Some('\'') && !line.trim_end().ends_with('\'') {
            quote = None;
        }
    }
    None
}

/// Keeps only the probes whose id (or `challenge/probe`) matches one of the glob patterns (`*`, `?`, `[...]`),
/// and drops challenges left without probes. An error when a pattern is invalid or nothing matches.
pub fn select_probes(challenges: Vec<Challenge>, patterns: &[String]) -> Result<Vec<Challenge>, String> {
    if patterns.is_empty() {
        return Ok(challenges);
    }
    let compiled = patterns
        .iter()
        .map(|p| glob::Pattern::new(p).map_err(|e| format!("--probe `{p}` is not a valid pattern: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let selected: Vec<Challenge> = challenges
        .into_iter()
        .filter_map(|mut challenge| {
            let id = challenge.id.clone();
            let selected = |probe: &str| {
                let qualified = format!("{id}/{probe}");
                compiled.iter().any(|p| p.matches(probe) || p.matches(&qualified))
            };
            challenge.spec.probes.retain(|probe| selected(&probe.id));
            challenge.plan.retain(|probe| selected(&probe.id));
            (!challenge.spec.probes.is_empty()).then_some(challenge)
        })
        .collect();
    if selected.is_empty() {
        return Err(format!(
            "no probe matches --probe {}: `proctor show <challenge>` lists the probe ids",
            patterns.join(", ")
        ));
    }
    Ok(selected)
}

/// A spec source: its display name, the id it will have, and its text.
#[derive(Debug, Clone)]
pub struct Source {
    /// Display name (path or `catalog:<id>`).
    pub name: String,
    /// The challenge id (file stem).
    pub id: String,
    /// The YAML text.
    pub text: String,
}

/// Parses and checks one spec; every problem found is returned at once.
pub fn load(source: &Source) -> Result<Challenge, Vec<SpecError>> {
    let text = Arc::new(source.text.clone());
    let error = |position: Option<Position>, field: Option<String>, message: String| SpecError {
        file: source.name.clone(),
        text: Arc::clone(&text),
        position,
        field,
        message,
    };
    if !is_kebab(&source.id) {
        return Err(vec![error(
            None,
            None,
            format!(
                "the file name `{}` is not a valid challenge id: use lowercase letters, digits and dashes",
                source.id
            ),
        )]);
    }
    if let Some((position, message)) = shape_problem(&source.text) {
        return Err(vec![error(
            position.map(|(line, column)| Position::at(&source.text, line, column)),
            None,
            message,
        )]);
    }
    let deserializer = serde_yaml::Deserializer::from_str(&source.text);
    let spec: ChallengeSpec = match serde_path_to_error::deserialize(deserializer) {
        Ok(spec) => spec,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let position = inner
                .location()
                .map(|l| Position::at(&source.text, l.line(), l.column()));
            // A syntax error leaves an unknown segment (`?`) at the end of the path; keep what is known.
            let known = path.split(".?").next().unwrap_or_default().to_string();
            let field = (known != "." && !known.is_empty()).then_some(known);
            let first = error(
                position,
                field.clone(),
                clean_message(&inner.to_string(), field.as_deref()),
            );
            // A syntax error ends the parse; an error of type or shape leaves the rest of the file readable, so
            // every probe and the top level are checked on their own and all their errors reported at once.
            let locations = Locations::index(&source.text);
            let all = shape_errors(&source.text)
                .filter(|errors| errors.len() > 1)
                .map(|errors| {
                    let mut errors: Vec<SpecError> = errors
                        .into_iter()
                        .map(|(field, message)| error(locations.find(&field), Some(field), message))
                        .collect();
                    errors.sort_by_key(|e| e.position.map_or(usize::MAX, |p| p.offset));
                    errors
                });
            return Err(all.unwrap_or_else(|| vec![first]));
        }
    };
    let problems = validate(&spec);
    if problems.is_empty() {
        return Ok(Challenge {
            id: source.id.clone(),
            origin: source.name.clone(),
            plan: crate::spec::plan::compile(&spec),
            spec,
        });
    }
    let locations = Locations::index(&source.text);
    Err(problems
        .into_iter()
        .map(|(field, message)| error(locations.find(&field), Some(field), message))
        .collect())
}

/// Every type or shape error of a syntactically valid spec, as (field path, message): each probe is read on its
/// own, then the rest with the probes left out. `None` when the text is not even YAML.
fn shape_errors(text: &str) -> Option<Vec<(String, String)>> {
    let mut value: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    let mut errors = Vec::new();
    let mut record = |prefix: &str, e: serde_path_to_error::Error<serde_yaml::Error>| {
        let path = e.path().to_string();
        let field = match (prefix.is_empty(), path.as_str()) {
            (true, path) => path.to_string(),
            (false, ".") => prefix.to_string(),
            (false, path) => format!("{prefix}.{path}"),
        };
        let message = clean_message(&e.into_inner().to_string(), Some(&field));
        errors.push((field, message));
    };
    if let Some(probes) = value.get_mut("probes").and_then(|p| p.as_sequence_mut()) {
        for (i, probe) in probes.iter().enumerate() {
            if let Err(e) = serde_path_to_error::deserialize::<_, ProbeSpec>(probe.clone()) {
                record(&format!("probes[{i}]"), e);
            }
        }
        probes.clear();
    }
    if let Err(e) = serde_path_to_error::deserialize::<_, ChallengeSpec>(value) {
        record("", e);
    }
    Some(errors)
}

/// serde_norway's messages repeat the path and the position; keep only what is wrong.
fn clean_message(message: &str, field: Option<&str>) -> String {
    static POSITION: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r" at line \d+ column \d+").unwrap_or_else(|e| panic!("{e}")));
    let stripped = POSITION.replace_all(message, "");
    let mut message = stripped.as_ref();
    // serde_norway prefixes the path it tracked (the field itself or its parent); the field is shown already.
    if let Some(field) = field
        && let Some((prefix, rest)) = message.split_once(": ")
        && !prefix.is_empty()
        && field.starts_with(prefix)
    {
        message = rest;
    }
    message.to_string()
}

/// Whether `s` is a kebab-case identifier.
pub fn is_kebab(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Problems finding spec files (distinct from problems inside them).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Neither a path nor a catalog id.
    #[error("unknown challenge `{0}`: not a file, not a folder, not in the catalog (`proctor list` shows it)")]
    Unknown(String),
    /// A file or folder could not be read.
    #[error("failed to read {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A folder holds no spec files.
    #[error("no challenge files (*.yaml, *.yml) in {0}")]
    EmptyFolder(PathBuf),
    /// A file too big to be a spec.
    #[error("{path} is over {limit} bytes: too big to be a challenge spec")]
    TooBig {
        /// The path.
        path: String,
        /// The limit.
        limit: usize,
    },
}

/// Resolves arguments (catalog ids, files, folders) to sources, in order, without duplicates.
pub fn resolve(args: &[String], catalog: &[Source]) -> Result<Vec<Source>, SourceError> {
    let mut out: Vec<Source> = Vec::new();
    for arg in args {
        let path = Path::new(arg);
        let catalogued = catalog.iter().find(|s| s.id == *arg);
        let found = if path.is_dir() {
            // A project folder named after the challenge (`rest-resource/` holding the candidate's code) must not
            // hide the catalog challenge: a folder without spec files falls back to the catalog id.
            match (read_folder(path), catalogued) {
                (Err(SourceError::EmptyFolder(_)), Some(source)) => vec![source.clone()],
                (result, _) => result?,
            }
        } else if path.is_file() {
            vec![read_file(path)?]
        } else if let Some(source) = catalogued {
            vec![source.clone()]
        } else {
            return Err(SourceError::Unknown(arg.clone()));
        };
        for source in found {
            if !out.iter().any(|s| s.name == source.name) {
                out.push(source);
            }
        }
    }
    Ok(out)
}

fn read_folder(dir: &Path) -> Result<Vec<Source>, SourceError> {
    let read = |source| SourceError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(SourceError::EmptyFolder(dir.to_path_buf()));
    }
    files.iter().map(|p| read_file(p)).collect()
}

fn read_file(path: &Path) -> Result<Source, SourceError> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > MAX_SPEC_BYTES as u64) {
        return Err(SourceError::TooBig {
            path: path.display().to_string(),
            limit: MAX_SPEC_BYTES,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let id = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    Ok(Source {
        name: path.display().to_string(),
        id,
        text,
    })
}
