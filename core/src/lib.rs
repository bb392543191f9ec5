//! proctor's pure core: everything that decides *what* a grade is, with nothing that does IO beyond reading spec
//! files. No async runtime, no HTTP client, no Docker: this crate's `Cargo.toml` has none of them, so the compiler
//! keeps it pure (the runtime crate `proctor` sits on it).
//!
//! The flow: [`spec`] (YAML → [`spec::Challenge`], validated and compiled into a [`spec::plan`]) → the runtime sends
//! requests → [`expect`] (responses against expectations) → [`outcome`] → [`score`] → [`report`].

pub mod catalog;
pub mod event;
pub mod exit;
pub mod expect;
pub mod limits;
pub mod neutral;
pub mod outcome;
pub mod report;
pub mod score;
pub mod spec;
pub mod types;
pub mod vars;
pub mod webhook;
