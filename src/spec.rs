//! The challenge spec: the YAML format, loading with located errors, validation and `{{...}}` templates.
//!
//! Everything here is pure: no network, no processes, no async.

pub mod error;
pub mod load;
pub mod locate;
pub mod model;
pub mod template;
pub mod types;
pub mod validate;

pub use error::SpecError;
pub use load::{Challenge, Source, SourceError, load, resolve};
pub use model::ChallengeSpec;

/// The JSON Schema of the spec format, generated from the Rust types, pretty-printed.
pub fn json_schema() -> String {
    let mut schema = serde_json::to_value(schemars::schema_for!(ChallengeSpec)).unwrap_or_default();
    if let Some(object) = schema.as_object_mut() {
        object.insert("$id".into(), "https://proctor.dev/schema/challenge.schema.json".into());
        object.insert("title".into(), "proctor challenge".into());
    }
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
