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
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for source in sources() {
        match load(&source) {
            Ok(challenge) => loaded.push(challenge),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() { Ok(loaded) } else { Err(errors) }
}
