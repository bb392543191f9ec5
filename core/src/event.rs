//! Events of a run, in order, for every live output (progress display, future streaming reporters).

use crate::outcome::{Score, Verdict};

/// Something that happened during a run.
#[derive(Debug, Clone)]
pub enum Event {
    /// A challenge's target is being started or reached.
    ChallengeStarted {
        /// Challenge id.
        id: String,
        /// How many probes it has.
        probes: usize,
    },
    /// The target is ready; probes start.
    TargetReady {
        /// Challenge id.
        id: String,
    },
    /// A probe finished.
    ProbeFinished {
        /// Challenge id.
        challenge: String,
        /// Probe id.
        probe: String,
        /// Its verdict.
        verdict: Verdict,
    },
    /// A challenge finished (or could not start).
    ChallengeFinished {
        /// Challenge id.
        id: String,
        /// Its score.
        score: Score,
        /// Probes that never ran because the target failed.
        unrun: usize,
    },
}
