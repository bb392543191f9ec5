//! The event stream of a run, in order, and the [`Reporter`]s that consume it: the live progress display, the
//! terminal summary and the file reports are all reporters. Each event carries what a reporter needs.

use std::sync::{Arc, Mutex};

use crate::outcome::{ChallengeReport, ProbeReport, RunReport};

/// Something that happened during a run.
#[derive(Debug, Clone)]
pub enum Event {
    /// Something the user should know now, not only in the report (the run id, resources kept for inspection).
    Notice {
        /// One or more lines of text (proctor's own, not the service's).
        message: String,
    },
    /// An image build started.
    BuildStarted,
    /// A line of build output (untrusted: neutralise before display).
    BuildOutput {
        /// The line.
        line: String,
    },
    /// The image build ended (built or not).
    BuildFinished,
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
        /// Its full report.
        report: Box<ProbeReport>,
    },
    /// A challenge finished (or could not start).
    ChallengeFinished {
        /// Its full report.
        report: Box<ChallengeReport>,
        /// Probes that never ran because the target failed.
        unrun: usize,
    },
    /// The run finished: the report as users see it (hidden probes redacted when asked).
    RunFinished {
        /// The whole run.
        report: Box<RunReport>,
    },
}

/// Consumes events. Called synchronously, in order, from whichever task sent the event: keep it quick.
pub trait Reporter: Send {
    /// One event.
    fn report(&mut self, event: &Event);
}

/// Where a run sends its events: every reporter, in the order given. Cheap to clone.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<Box<dyn Reporter>>>>);

impl Events {
    /// Events for these reporters.
    pub fn new(reporters: Vec<Box<dyn Reporter>>) -> Self {
        Self(Arc::new(Mutex::new(reporters)))
    }

    /// Sends an event to every reporter.
    pub fn send(&self, event: Event) {
        // A reporter that panicked poisons the lock; the rest of the run still reports to the others.
        let mut reporters = match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        for reporter in reporters.iter_mut() {
            reporter.report(&event);
        }
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Events")
    }
}
