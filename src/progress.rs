//! The live progress display: one bar over every probe of the run, fed by engine events. Hidden when stderr is
//! not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::event::Event;
use crate::outcome::Verdict;

/// Consumes events until the sender side closes, drawing progress on stderr when it is a terminal.
pub async fn display(mut events: UnboundedReceiver<Event>, total_probes: u64, visible: bool) {
    let target = if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total_probes), target);
    let style = ProgressStyle::with_template("{spinner} [{elapsed}] {bar:30} {pos}/{len} probes · {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let mut failed = 0u64;
    while let Some(event) = events.recv().await {
        match event {
            Event::ChallengeStarted { id, .. } => bar.set_message(format!("starting {id}")),
            Event::TargetReady { id } => bar.set_message(format!("grading {id}")),
            Event::ProbeFinished {
                challenge,
                probe,
                verdict,
            } => {
                if verdict != Verdict::Passed {
                    failed += 1;
                }
                bar.inc(1);
                bar.set_message(format!("{challenge}/{probe} · {failed} not passed"));
            }
            Event::ChallengeFinished { unrun, .. } => bar.inc(unrun as u64),
        }
    }
    bar.finish_and_clear();
}
