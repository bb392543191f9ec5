//! proctor grades hands-on backend challenges: it starts or reaches a service, runs HTTP conformance probes
//! against it, scores them and reports every failure with the rule behind it.
//!
//! The flow: [`spec`] (YAML → [`spec::Challenge`]) → [`target`] (a running service) → [`engine`] (probes →
//! outcomes, as [`event`]s) → [`score`] → [`report`]. `spec`, `expect`, `score` and `report` are pure.

pub mod catalog;
pub mod engine;
pub mod event;
pub mod exit;
pub mod expect;
pub mod neutral;
pub mod outcome;
pub mod progress;
pub mod report;
pub mod sandbox;
pub mod score;
pub mod spec;
pub mod target;
