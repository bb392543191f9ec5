//! Signals and the process's own hygiene: what a run does on Ctrl-C, SIGTERM or SIGHUP, and standard descriptors.

use tokio_util::sync::CancellationToken;

/// First Ctrl-C, SIGTERM or SIGHUP: cancel (the session stops the services and still reports). Second: kill
/// what proctor started, sweep the Docker runs still open (every submission being graded, for `grade`), and exit
/// at once with [`crate::exit::INTERRUPTED`].
pub async fn watch(cancel: CancellationToken) {
    use std::io::Write as _;
    use tokio::signal::unix::{SignalKind, signal};
    // A closed terminal or SSH session (SIGHUP) ends the run like Ctrl-C or SIGTERM: cleanly, with reports.
    let (Ok(mut interrupt), Ok(mut terminate), Ok(mut hangup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    for round in 0..2 {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
            _ = hangup.recv() => {}
        }
        if round == 0 {
            let _ = writeln!(
                std::io::stderr(),
                "\ninterrupted: stopping the service and writing reports (Ctrl-C again to force)"
            );
            cancel.cancel();
        }
    }
    crate::target::process::kill_all_now();
    let runs = crate::sandbox::open_run_ids();
    if !runs.is_empty() {
        let _ = writeln!(std::io::stderr(), "forced: removing the run's containers and networks");
        crate::sandbox::sweep_runs_blocking(&runs);
    }
    std::process::exit(i32::from(crate::exit::INTERRUPTED));
}

/// Makes sure file descriptors 0, 1 and 2 are open (on /dev/null if they were closed), so that nothing proctor
/// writes or starts can fail or panic on a missing descriptor, and no file it opens takes their numbers.
pub fn ensure_standard_fds() {
    use std::os::fd::AsRawFd as _;
    for fd in 0..=2 {
        // SAFETY: F_GETFD only asks whether the descriptor number is open; it touches no memory.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1 {
            continue;
        }
        let Ok(null) = std::fs::OpenOptions::new()
            .read(fd == 0)
            .write(fd != 0)
            .open("/dev/null")
        else {
            continue;
        };
        if null.as_raw_fd() == fd {
            // open() took the lowest free number, which was this one: keep it.
            std::mem::forget(null);
            continue;
        }
        // SAFETY: dup2 onto a descriptor number that is not open; `null` stays owned and is closed on drop.
        unsafe { libc::dup2(null.as_raw_fd(), fd) };
    }
}
