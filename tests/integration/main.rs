//! End-to-end tests: the binary, the engine against real HTTP servers, the defect matrix, reports.
//!
//! One test binary (as ripgrep does) so the reference service and helpers build once.

mod cli;
mod defects;
mod docker;
mod engine;
mod frameworks;
mod hostile;
mod lifecycle;
mod process;
mod reports;
mod spec_errors;
mod support;
