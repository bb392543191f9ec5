//! The challenge spec: the YAML format, loading with located errors, validation and `{{...}}` templates.
//!
//! Everything here is pure: no network, no processes, no async.

pub mod error;
pub mod jwt;
pub mod load;
pub mod locate;
pub mod model;
pub mod plan;
pub mod template;
pub mod validate;

pub use crate::types;
pub use error::SpecError;
pub use load::{Challenge, Source, SourceError, load, resolve, select_probes};
pub use model::ChallengeSpec;

/// The JSON Schema of the spec format, generated from the Rust types, pretty-printed.
pub fn json_schema() -> String {
    schema_text(
        schemars::schema_for!(ChallengeSpec),
        "challenge.schema.json",
        "proctor challenge",
    )
}

/// A generated schema with its `$id` and title, pretty-printed with a final newline.
pub(crate) fn schema_text(schema: schemars::Schema, file: &str, title: &str) -> String {
    let mut schema = serde_json::to_value(schema).unwrap_or_default();
    if let Some(object) = schema.as_object_mut() {
        object.insert("$id".into(), format!("https://proctor.dev/schema/{file}").into());
        object.insert("title".into(), title.into());
    }
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
