//! Exit codes, documented in `--help` and the README.

/// Every challenge reached its pass mark (or the command succeeded).
pub const OK: u8 = 0;
/// At least one challenge scored below its pass mark.
pub const BELOW_THRESHOLD: u8 = 1;
/// Bad usage or an invalid spec.
pub const USAGE: u8 = 2;
/// The service could not be started or reached.
pub const TARGET: u8 = 3;
/// A probe could not run (proctor's or the environment's fault): the grade is incomplete, whatever the score.
pub const ERRORED: u8 = 4;
/// Interrupted (Ctrl-C, SIGTERM or SIGHUP).
pub const INTERRUPTED: u8 = 130;

/// The exit code for a finished run.
pub fn for_run(report: &crate::outcome::RunReport) -> u8 {
    if report.interrupted {
        INTERRUPTED
    } else if report.challenges.iter().any(|c| c.target_error.is_some()) {
        TARGET
    } else if report
        .challenges
        .iter()
        .flat_map(|c| &c.probes)
        .any(|p| p.verdict == crate::outcome::Verdict::Errored)
    {
        ERRORED
    } else if report.challenges.iter().all(|c| c.score.passed) {
        OK
    } else {
        BELOW_THRESHOLD
    }
}
