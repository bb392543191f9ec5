//! The challenges that ship inside the binary.

use crate::spec::{Challenge, Source, SpecError, load};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/catalog.rs"));
}

/// The embedded challenge files as sources named `catalog:<id>`.
pub fn sources() -> Vec<Source> {
    embedded::FILES
        .iter()
        .map(|(id, text)| Source {
            name: format!("catalog:{id}"),
            id: (*id).to_string(),
            text: (*text).to_string(),
        })
        .collect()
}

/// Every embedded challenge, loaded and checked.
pub fn challenges() -> Result<Vec<Challenge>, Vec<SpecError>> {
    load_all(&sources())
}

fn load_all(sources: &[Source]) -> Result<Vec<Challenge>, Vec<SpecError>> {
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for source in sources {
        match load(source) {
            Ok(challenge) => loaded.push(challenge),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() { Ok(loaded) } else { Err(errors) }
}

/// Why challenges named on the command line could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// A name is neither a file, a folder nor a catalog id (or a file could not be read).
    Source(crate::spec::SourceError),
    /// Specs that do not load or validate, every problem found.
    Specs(Vec<SpecError>),
}

/// Loads challenges named by catalog ids, files or folders; every spec error of every file, not just the first.
pub fn load_named(names: &[String]) -> Result<Vec<Challenge>, LoadError> {
    let sources = crate::spec::resolve(names, &sources()).map_err(LoadError::Source)?;
    load_all(&sources).map_err(LoadError::Specs)
}

/// The id of every embedded challenge.
pub fn ids() -> Vec<String> {
    sources().into_iter().map(|s| s.id).collect()
}
