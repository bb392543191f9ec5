//! Helpers: commands for the binary, specs from text, runs of the engine against a target.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use proctor::event::Events;
use proctor::outcome::RunReport;
use proctor::session::{self, Options};
use proctor::spec::{self, Challenge, Source};
use proctor::target::Target;
use tokio_util::sync::CancellationToken;

/// The proctor binary under test.
pub fn proctor() -> Command {
    let mut cmd = Command::cargo_bin("proctor").expect("the proctor binary is built");
    cmd.env("NO_COLOR", "1")
        .env_remove("PORT")
        .env_remove("REFERENCE_DEFECTS");
    cmd
}

/// The path of the proctor binary, for `--cmd` lines that start the reference service.
pub fn proctor_path() -> PathBuf {
    assert_cmd::cargo::cargo_bin("proctor")
}

/// A challenge from YAML text (panics with the rendered errors if it does not load).
pub fn challenge(id: &str, yaml: &str) -> Challenge {
    let source = Source {
        name: format!("{id}.yaml"),
        id: id.to_string(),
        text: yaml.to_string(),
    };
    spec::load(&source).unwrap_or_else(|errors| {
        let rendered: Vec<String> = errors.iter().map(|e| e.render(false)).collect();
        panic!("test spec does not load:\n{}", rendered.join("\n"))
    })
}

/// A catalog challenge.
pub fn catalog(id: &str) -> Challenge {
    proctor::catalog::challenges()
        .expect("the catalog loads")
        .into_iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no catalog challenge {id}"))
}

/// The options tests grade with: seed 42, run id `test`, default bounds.
pub fn options() -> Options {
    Options {
        seed: 42,
        run_id: "test".to_string(),
        ..Options::new()
    }
}

/// Runs challenges against a target with a fixed seed and returns the report.
pub async fn grade(challenges: &[Challenge], target: Target) -> RunReport {
    grade_with(challenges, target, options()).await
}

/// Runs a session with given options, no reporters.
pub async fn grade_with(challenges: &[Challenge], target: Target, options: Options) -> RunReport {
    session::run(
        challenges,
        target,
        &options,
        &Events::default(),
        &CancellationToken::new(),
    )
    .await
}

/// A temporary directory with files written into it.
pub fn temp_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        let path: &Path = dir.path();
        std::fs::write(path.join(name), text).expect("write test file");
    }
    dir
}

/// Whether a process is gone (no such pid, or a zombie nobody has reaped yet).
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// A minimal valid challenge whose probes are given as YAML (indented under `probes:`).
pub fn spec_with_probes(probes: &str) -> String {
    format!(
        "title: test\nquestion: {{ number: 1, text: q }}\nbrief: b\nrules: [{{ id: r, text: t }}]\nservice: {{ ready: {{ tcp: true }}, request_timeout: 2s }}\nprobes:\n{probes}"
    )
}

/// Sends SIGINT to a running proctor, waits (at most `limit`) for it to exit, and returns its exit code and
/// stdout.
pub fn interrupt(child: &mut std::process::Child, limit: std::time::Duration) -> (Option<i32>, String) {
    signal(child, nix::sys::signal::Signal::SIGINT, limit)
}

/// Sends `signal` to a running proctor, waits (at most `limit`) for it to exit, and returns its exit code and
/// stdout.
pub fn signal(
    child: &mut std::process::Child,
    signal: nix::sys::signal::Signal,
    limit: std::time::Duration,
) -> (Option<i32>, String) {
    use std::io::Read;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).expect("signal");
    let interrupted = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            interrupted.elapsed() < limit,
            "proctor did not stop within {limit:?} of {signal}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout).expect("read stdout");
    }
    (status.code(), stdout)
}

/// Whether an external tool a test needs is there. A missing tool fails the test with what to do, so that no
/// test passes quietly without running; outside CI, `PROCTOR_SKIP=docker,python` (or `all`) names the tools whose
/// tests may be skipped, and each skip is printed.
pub fn available(tool: &str, present: bool, remedy: &str) -> bool {
    if present {
        return true;
    }
    let skip = std::env::var("PROCTOR_SKIP").unwrap_or_default();
    let skipped = std::env::var_os("CI").is_none() && skip.split(',').any(|t| t.trim() == tool || t.trim() == "all");
    assert!(
        skipped,
        "this test needs {tool}: {remedy}. To skip the tests that need it on this machine, set PROCTOR_SKIP={tool} \
         (never honoured in CI)"
    );
    eprintln!("SKIPPED: no {tool} (PROCTOR_SKIP={skip})");
    false
}

/// Runs a command to its end and returns its exit code, its stdout and its own peak resident memory in MiB
/// (from `wait4`, so other children of the test — cargo, the docker CLI — do not count).
#[expect(
    clippy::zombie_processes,
    reason = "wait4 reaps the child; std's wait cannot report its rusage"
)]
pub fn run_measured(mut command: std::process::Command) -> (Option<i32>, String, i64) {
    use std::io::Read;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts");
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills in; the pid is our own unreaped child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert!(pid > 0, "wait4 failed");
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, stdout, usage.ru_maxrss / 1024)
}

/// A reporter that keeps every event it sees, for tests of the event stream.
#[derive(Clone, Default)]
pub struct Recorder(pub std::sync::Arc<std::sync::Mutex<Vec<proctor::event::Event>>>);

impl proctor::event::Reporter for Recorder {
    fn report(&mut self, event: &proctor::event::Event) {
        self.0.lock().expect("not poisoned").push(event.clone());
    }
}

impl Recorder {
    /// The events seen so far.
    pub fn events(&self) -> Vec<proctor::event::Event> {
        self.0.lock().expect("not poisoned").clone()
    }
}

/// Image defects: Dockerfile lines for the reference's `FROM scratch` image (after `FROM`, before the
/// `ENTRYPOINT` a sound image has) that each break one image rule, with the probes they must fail. Graded in
/// Docker by `docker::image_defects_fail_exactly_their_probe`; counted by the defect matrix's coverage check.
/// `sound` is the image every other Docker test of the catalog uses.
pub const IMAGE_DEFECTS: &[(&str, &str, &[&str])] = &[
    ("sound", SOUND_IMAGE, &[]),
    (
        "runs-as-root",
        "HEALTHCHECK CMD [\"/app\", \"healthcheck\"]\n",
        &["runs-as-a-non-root-user"],
    ),
    ("no-healthcheck", "USER 65534:65534\n", &["declares-a-healthcheck"]),
    (
        "shell-form",
        "USER 65534:65534\nHEALTHCHECK CMD [\"/app\", \"healthcheck\"]\nCOPY sh /bin/sh\nENTRYPOINT /app\n",
        &["entrypoint-is-exec-form"],
    ),
];

/// A sound image: a non-root user and a health check (the exec-form `ENTRYPOINT` is added after these lines).
pub const SOUND_IMAGE: &str = "USER 65534:65534\nHEALTHCHECK --interval=5m CMD [\"/app\", \"healthcheck\"]\n";
