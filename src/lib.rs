//! proctor grades hands-on backend challenges: it starts or reaches a service, runs HTTP conformance probes
//! against it, scores them and reports every failure with the rule behind it.
//!
//! This crate is the runtime: [`session`] (one call grades challenges against a target) → [`target`] (launchers
//! and the running-service handle) → [`engine`] (the compiled plan's steps, sent over [`http`]). What a grade *is*
//! — the spec, expectations, scoring, reports — lives in the pure crate [`proctor_core`], re-exported here.

pub use proctor_core::{
    catalog, event, exit, expect, limits, neutral, outcome, report, score, spec, types, vars, webhook,
};

pub mod batch;
pub mod engine;
pub mod http;
pub mod logs;
pub mod progress;
pub mod sandbox;
pub mod servers;
pub mod session;
pub mod signals;
pub mod target;
pub mod tls;
pub mod watch;
