//! A service started as a local process: its own process group, output captured, the whole group stopped.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use super::{Instance, Launch, Spawned, TargetError, local_url, port_or_free};
use crate::logs::LogBuffer;

/// Process groups started and not yet reaped, so a forced exit (second Ctrl-C) can still kill them.
static LIVE_GROUPS: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

fn register(pgid: i32, live: bool) {
    if let Ok(mut groups) = LIVE_GROUPS.lock() {
        let set = groups.get_or_insert_with(HashSet::new);
        if live {
            set.insert(pgid);
        } else {
            set.remove(&pgid);
        }
    }
}

/// Sends SIGKILL to every process group still running, and to every orphan that was reparented to proctor; for
/// a forced exit where no destructor will run.
pub fn kill_all_now() {
    if let Ok(groups) = LIVE_GROUPS.lock() {
        for pgid in groups.iter().flatten() {
            let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
        }
    }
    kill_orphans();
}

/// Makes proctor the subreaper of everything it starts (Linux): a service's descendant whose parent exits — a
/// daemon that forked, called `setsid` and left its process group — is reparented to proctor instead of init,
/// so [`kill_orphans`] can still find it. Call once, before any service starts.
pub fn adopt_orphans() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag and touches no memory.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// The parent of every process, read from /proc (empty where there is no /proc).
fn parents() -> Vec<(i32, i32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name may contain spaces and parentheses: the fields that follow start after the last ')'.
            let ppid = stat.rsplit(')').next()?.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect()
}

/// Whether any process of the group is still running (a zombie, exited but not yet reaped, is not).
fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // Without /proc, ask the kernel: a group with only zombies still answers, so this errs on waiting.
        return killpg(Pid::from_raw(pgid), None).is_ok();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .any(|stat| {
            // After the command name: state, ppid, pgrp.
            let mut fields = stat.rsplit(')').next().unwrap_or_default().split_whitespace();
            let state = fields.next();
            let pgrp = fields.nth(1).and_then(|p| p.parse::<i32>().ok());
            pgrp == Some(pgid) && state != Some("Z")
        })
}

/// Every descendant of `root`, at any depth.
fn descendants(root: i32) -> Vec<i32> {
    let all = parents();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(all.iter().filter(|(_, ppid)| *ppid == parent).map(|(pid, _)| *pid));
        i += 1;
    }
    found.remove(0);
    found
}

/// SIGKILLs every process reparented to proctor that is not one it started (which tokio tracks and reaps):
/// what remains of services after they were stopped. Call only when no service should be running.
pub fn kill_orphans() {
    let me = std::process::id() as i32;
    let started: HashSet<i32> = LIVE_GROUPS
        .lock()
        .ok()
        .and_then(|groups| groups.clone())
        .unwrap_or_default();
    for (pid, ppid) in parents() {
        if ppid == me && !started.contains(&pid) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            // Reap it, so that it does not linger as a zombie for the rest of the run.
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
        }
    }
}

/// A command to start, the runtime its child belongs to, and where the result goes.
type SpawnJob = (
    Command,
    tokio::runtime::Handle,
    std::sync::mpsc::Sender<std::io::Result<Child>>,
);

/// Starts `command` from a thread that lives as long as proctor. `PR_SET_PDEATHSIG` fires when the *thread* that
/// forked the child ends, not the process, and the runtime's threads come and go (`block_in_place` hands a
/// worker's place to a new thread; idle threads end after 10 s): a service started from one of them was killed
/// by signal 9 in the middle of its probes (seen in CI). When that thread cannot be had, the caller's is used.
fn spawn_steadily(mut command: Command) -> std::io::Result<Child> {
    static SPAWNER: std::sync::OnceLock<Option<std::sync::mpsc::Sender<SpawnJob>>> = std::sync::OnceLock::new();
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return command.spawn();
    };
    let spawner = SPAWNER.get_or_init(|| {
        let (jobs, queue) = std::sync::mpsc::channel::<SpawnJob>();
        let thread = std::thread::Builder::new().name("proctor-spawner".into());
        let started = thread.spawn(move || {
            for (mut command, handle, reply) in queue {
                // The child is reaped by the runtime it belongs to.
                let _entered = handle.enter();
                let _ = reply.send(command.spawn());
            }
        });
        started.ok().map(|_| jobs)
    });
    let Some(jobs) = spawner else {
        return command.spawn();
    };
    let (reply, result) = std::sync::mpsc::channel();
    if let Err(unsent) = jobs.send((command, handle, reply)) {
        let (mut command, ..) = unsent.0;
        return command.spawn();
    }
    result
        .recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("the thread that starts services has ended")))
}

/// Starts the service as `sh -c <command>` with `PORT` and the challenge's env.
#[derive(Debug)]
pub struct ProcessLauncher {
    /// The shell command.
    pub command: String,
}

impl ProcessLauncher {
    pub(super) fn describe(&self) -> String {
        format!("command: {}", self.command)
    }

    pub(super) fn spawn(&self, launch: &Launch<'_>) -> Result<Spawned, TargetError> {
        let port = port_or_free(launch.port)?;
        let http_port = launch.local_http_port()?;
        let process = ServiceProcess::spawn(
            &self.command,
            &launch.local_env(port, http_port),
            &launch.removed,
            launch.logs.clone(),
        )
        .map_err(|source| TargetError::Spawn {
            command: self.command.clone(),
            source,
        })?;
        Ok(Spawned {
            base_url: Some(local_url(port)),
            plain_url: http_port.map(local_url),
            instance: Instance::Process(Box::new(process)),
        })
    }
}

/// A running local service. Dropping it kills the whole process group.
#[derive(Debug)]
pub struct ServiceProcess {
    child: Child,
    pgid: Option<i32>,
    /// The service's output.
    pub logs: LogBuffer,
}

impl ServiceProcess {
    /// Starts `sh -c <command>` in a new process group with `env` added to proctor's environment; its output
    /// goes to `logs`.
    pub fn spawn(
        command: &str,
        env: &[(String, String)],
        removed: &[String],
        logs: LogBuffer,
    ) -> std::io::Result<Self> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for name in removed {
            cmd.env_remove(name);
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        #[cfg(target_os = "linux")]
        // SAFETY: between fork and exec only prctl runs, which is async-signal-safe. If proctor dies (even by
        // SIGKILL), the kernel kills the service's shell with it.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                Ok(())
            });
        }
        let mut child = spawn_steadily(cmd)?;
        let pgid = child.id().and_then(|id| i32::try_from(id).ok());
        if let Some(pgid) = pgid {
            register(pgid, true);
        }
        for stream in [
            child.stdout.take().map(Reader::Out),
            child.stderr.take().map(Reader::Err),
        ]
        .into_iter()
        .flatten()
        {
            let logs = logs.clone();
            tokio::spawn(async move { stream.pump(logs).await });
        }
        Ok(Self { child, pgid, logs })
    }

    /// `Some(description)` once the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(describe(status)),
            _ => None,
        }
    }

    /// The exit code once the process has exited (`128 + n` when signal `n` ended it).
    pub fn exit_code(&mut self) -> Option<i32> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(code(status)),
            _ => None,
        }
    }

    /// SIGTERM to the group, up to `grace` for the shell to exit, then SIGKILL to whatever is left.
    pub async fn stop(self, grace: Duration) {
        self.terminate(grace).await;
    }

    /// Stops as [`Self::stop`] does and returns the exit code of the started command, or 137 when something of
    /// the group was still running at the end of the grace period and had to be killed.
    ///
    /// The wait is for the whole process group, not only the shell proctor started: `sh -c "app"` (dash does not
    /// `exec` the command) dies of SIGTERM at once while the service it started is still finishing its requests.
    pub async fn terminate(mut self, grace: Duration) -> Option<i32> {
        let pgid = self.pgid?;
        // Descendants that left the group (setsid) are found by parentage, before the tree can come apart.
        let tree = descendants(pgid);
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + grace;
        let killed = loop {
            let _ = self.child.try_wait();
            if !group_alive(pgid) {
                break false;
            }
            if tokio::time::Instant::now() >= deadline {
                break true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // Whatever is left of the group, and what escaped it, is killed. A group found empty is not signalled:
        // its id may already belong to a new group (the pid reused).
        if killed {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
        for pid in tree {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let status = self.child.wait().await;
        register(pgid, false);
        self.pgid = None;
        if killed { Some(137) } else { status.ok().map(code) }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            register(pgid, false);
        }
    }
}

fn code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(-1)
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "exited".to_string(),
    }
}

enum Reader {
    Out(tokio::process::ChildStdout),
    Err(tokio::process::ChildStderr),
}

impl Reader {
    async fn pump(mut self, logs: LogBuffer) {
        let mut buffer = vec![0u8; 8192];
        loop {
            let read = match &mut self {
                Reader::Out(r) => r.read(&mut buffer).await,
                Reader::Err(r) => r.read(&mut buffer).await,
            };
            match read {
                Ok(0) | Err(_) => break,
                Ok(n) => logs.push(&buffer[..n]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_outlives_the_thread_that_started_it() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let handle = runtime.handle().clone();
        // Started from a thread that then ends, as a runtime thread does after block_in_place or when idle.
        let mut process = std::thread::spawn(move || {
            let _entered = handle.enter();
            ServiceProcess::spawn("exec sleep 30", &[], &[], LogBuffer::new(1024))
        })
        .join()
        .expect("the thread ends")
        .expect("the service starts");
        std::thread::sleep(Duration::from_millis(300));
        let exited = runtime.block_on(async { process.exited() });
        assert_eq!(exited, None, "the service died with the thread that started it");
        assert_eq!(
            runtime.block_on(process.terminate(Duration::from_secs(2))),
            Some(128 + 15)
        );
    }
}
