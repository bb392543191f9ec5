//! `--cmd`: the service as a local process — started with PORT and env, graded, and stopped with its whole
//! process group on every path, Ctrl-C included.

use std::process::Stdio;
use std::time::{Duration, Instant};

use predicates::prelude::*;

use crate::support::{process_gone, proctor, proctor_path, temp_dir};

fn read_pid(path: &std::path::Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse().ok()) {
            return pid;
        }
        assert!(Instant::now() < deadline, "{} was never written", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A command that records its shell's pid and a background child's pid, then becomes the reference service.
fn reference_with_child(dir: &std::path::Path) -> String {
    format!(
        "sleep 300 & echo $! > {dir}/child; echo $$ > {dir}/shell; exec {proctor} reference",
        dir = dir.display(),
        proctor = proctor_path().display()
    )
}

#[test]
fn a_local_process_is_graded_like_the_reference_and_its_whole_group_is_stopped() {
    let dir = temp_dir(&[]);
    proctor()
        .args([
            "run",
            "rest-resource",
            "http-caching",
            "--cmd",
            &reference_with_child(dir.path()),
        ])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("2 challenges graded: 2 passed"));
    // Both challenges ran their own copy; the files hold the last one's pids, and every copy must be gone.
    for name in ["shell", "child"] {
        let pid = read_pid(&dir.path().join(name));
        assert!(process_gone(pid), "{name} process {pid} outlived the run");
    }
}

#[test]
fn a_process_that_exits_at_once_is_reported_with_its_status_and_output() {
    proctor()
        .args([
            "run",
            "rest-resource",
            "--cmd",
            "echo 'listening? no: config missing' >&2; exit 7",
        ])
        .assert()
        .code(3)
        .stdout(predicate::str::contains(
            "could not grade: the service exited with status 7 before it was ready",
        ))
        .stdout(predicate::str::contains("config missing"));
}

#[test]
fn a_process_that_never_listens_times_out_and_is_killed() {
    let dir = temp_dir(&[]);
    let cmd = format!(
        "echo $$ > {}/shell; echo starting; exec sleep 300",
        dir.path().display()
    );
    let started = Instant::now();
    proctor()
        .args(["run", "rest-resource", "--cmd", &cmd, "--start-timeout", "700ms"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("was not ready within 0.7 s"))
        .stdout(predicate::str::contains("starting"));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(process_gone(read_pid(&dir.path().join("shell"))));
}

#[test]
fn the_service_gets_port_and_the_challenges_env() {
    let spec = "title: env\nquestion: { number: 20, text: q }\nbrief: b\nrules: [{ id: r, text: t }]\nservice:\n  env: { SALUTE: hello }\n  ready: { http: /health }\nprobes:\n  - id: env-seen\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /health }\n        expect: { status: 200 }\n";
    let dir = temp_dir(&[("env.yaml", spec)]);
    let cmd = format!(
        "echo \"$SALUTE $PORT\" > {}/seen; exec {} reference",
        dir.path().display(),
        proctor_path().display()
    );
    proctor()
        .arg("run")
        .arg(dir.path().join("env.yaml"))
        .args(["--cmd", &cmd])
        .assert()
        .code(0);
    let seen = std::fs::read_to_string(dir.path().join("seen")).expect("the service wrote what it saw");
    let (greeting, port) = seen.trim().split_once(' ').expect("two words");
    assert_eq!(greeting, "hello");
    assert!(port.parse::<u16>().is_ok_and(|p| p > 0), "{seen}");
}

#[test]
fn ctrl_c_stops_the_run_tears_the_service_down_and_exits_130() {
    let spec = "title: slow\nquestion: { number: 1, text: q }\nbrief: b\nrules: [{ id: r, text: t }]\nservice: { ready: { tcp: true } }\nprobes:\n  - id: first\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - wait: { duration: 30s }\n  - id: second\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /health }\n";
    let dir = temp_dir(&[("slow.yaml", spec)]);
    let mut child = std::process::Command::new(proctor_path())
        .arg("run")
        .arg(dir.path().join("slow.yaml"))
        .args(["--cmd", &reference_with_child(dir.path()), "--report"])
        .arg(format!("json={}", dir.path().join("report.json").display()))
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("proctor starts");
    let shell = read_pid(&dir.path().join("shell"));
    let background = read_pid(&dir.path().join("child"));
    // Let readiness pass and the 30 s wait begin.
    std::thread::sleep(Duration::from_millis(800));
    let (code, stdout) = crate::support::interrupt(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(130), "{stdout}");
    assert!(
        stdout.contains("interrupted: unfinished probes were skipped"),
        "{stdout}"
    );
    assert!(
        process_gone(shell) && process_gone(background),
        "the service outlived proctor"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).expect("report written"))
            .expect("JSON");
    assert_eq!(report["interrupted"], true);
    assert_eq!(report["challenges"][0]["probes"][1]["verdict"], "skipped");
}

const SLOW_SPEC: &str = "title: slow\nquestion: { number: 1, text: q }\nbrief: b\nrules: [{ id: r, text: t }]\nservice: { ready: { tcp: true } }\nprobes:\n  - id: first\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - wait: { duration: 30s }\n";

/// A service that starts a daemon: it forks, calls `setsid` (leaving the process group) and ignores SIGTERM.
fn reference_with_daemon(dir: &std::path::Path) -> String {
    format!(
        "setsid sh -c 'trap \"\" TERM HUP; echo $$ > {dir}/daemon; exec sleep 300' & echo $$ > {dir}/shell; exec {proctor} reference",
        dir = dir.display(),
        proctor = proctor_path().display()
    )
}

fn wait_gone(pid: i32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if process_gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    process_gone(pid)
}

#[test]
fn a_daemon_that_escaped_the_process_group_does_not_outlive_the_run() {
    let dir = temp_dir(&[]);
    let spec = "title: quick\nquestion: { number: 1, text: q }\nbrief: b\nrules: [{ id: r, text: t }]\nservice: { ready: { tcp: true } }\nprobes:\n  - { id: a, title: t, category: c, rules: [r], why: w, hint: h, steps: [ { request: { path: /health } } ] }\n";
    std::fs::write(dir.path().join("quick.yaml"), spec).expect("write");
    proctor()
        .arg("run")
        .arg(dir.path().join("quick.yaml"))
        .args(["--cmd", &reference_with_daemon(dir.path())])
        .assert()
        .code(0);
    let daemon = read_pid(&dir.path().join("daemon"));
    assert!(
        wait_gone(daemon, Duration::from_secs(2)),
        "the setsid daemon {daemon} outlived proctor"
    );
}

#[test]
fn a_killed_proctor_takes_its_service_with_it() {
    let dir = temp_dir(&[("slow.yaml", SLOW_SPEC)]);
    let mut child = std::process::Command::new(proctor_path())
        .arg("run")
        .arg(dir.path().join("slow.yaml"))
        .args(["--cmd", &reference_with_child(dir.path())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("proctor starts");
    let shell = read_pid(&dir.path().join("shell"));
    std::thread::sleep(Duration::from_millis(500));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(
        wait_gone(shell, Duration::from_secs(2)),
        "the service {shell} outlived a SIGKILLed proctor"
    );
}

#[test]
fn a_hangup_ends_the_run_like_ctrl_c_with_reports_and_nothing_left() {
    let dir = temp_dir(&[("slow.yaml", SLOW_SPEC)]);
    let report = dir.path().join("report.json");
    let mut child = std::process::Command::new(proctor_path())
        .arg("run")
        .arg(dir.path().join("slow.yaml"))
        .args(["--cmd", &reference_with_child(dir.path()), "--report"])
        .arg(format!("json={}", report.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("proctor starts");
    let shell = read_pid(&dir.path().join("shell"));
    let background = read_pid(&dir.path().join("child"));
    std::thread::sleep(Duration::from_millis(800));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    let status = child.wait().expect("waits");
    assert_eq!(status.code(), Some(130));
    assert!(report.exists(), "the report was written");
    assert!(wait_gone(shell, Duration::from_secs(2)) && wait_gone(background, Duration::from_secs(2)));
}

#[test]
fn ctrl_c_during_a_restart_or_a_stop_leaves_no_process_and_no_data_folder() {
    for (name, step) in [
        ("restarting", "{ restart: {} }"),
        ("stopping", "{ stop: { grace: 30s } }"),
    ] {
        let spec = format!(
            "title: t\nquestion: {{ number: 1, text: q }}\nbrief: b\nrules: [{{ id: r, text: t }}]\nservice: {{ ready: {{ tcp: true }}, data: /data }}\nprobes:\n  - {{ id: p, title: t, category: c, rules: [r], why: w, hint: h, steps: [ {step}, {{ wait: {{ duration: 30s }} }} ] }}\n"
        );
        let dir = temp_dir(&[("lifecycle.yaml", &spec)]);
        // A service that ignores SIGTERM: the restart or the stop waits for it, and the interrupt lands there.
        let command = format!(
            "echo $$ > {dir}/shell; echo \"$DATA_DIR\" > {dir}/data; exec {proctor} reference --defects sigterm-ignored",
            dir = dir.path().display(),
            proctor = proctor_path().display()
        );
        let mut child = std::process::Command::new(proctor_path())
            .arg("run")
            .arg(dir.path().join("lifecycle.yaml"))
            .args(["--cmd", &command])
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("proctor starts");
        let shell = read_pid(&dir.path().join("shell"));
        let data = std::fs::read_to_string(dir.path().join("data")).expect("data folder written");
        let data = std::path::PathBuf::from(data.trim());
        assert!(data.is_dir(), "{name}: the service got a data folder");
        // Let readiness pass and the step begin its wait for the stubborn service.
        std::thread::sleep(Duration::from_millis(1500));
        let (code, stdout) = crate::support::interrupt(&mut child, Duration::from_secs(15));
        assert_eq!(code, Some(130), "{name}: {stdout}");
        assert!(
            wait_gone(shell, Duration::from_secs(5)),
            "{name}: the service outlived proctor"
        );
        assert!(
            !data.exists(),
            "{name}: the data folder {} was left behind",
            data.display()
        );
    }
}

#[test]
fn servers_reach_a_process_through_its_env_and_do_not_outlive_the_run() {
    // The reference's quotes API calls QUOTES_URL: a probe asks it for a quote, the server answers and records
    // the call.
    let spec = "title: servers\nquestion: { number: 16, text: q }\nbrief: b\nrules: [{ id: r, text: t }]\nservers:\n  up: { routes: [ { name: quote, method: GET, path: '/quotes/{symbol}', respond: { json: { price: 7.25 } } } ] }\nservice:\n  env: { QUOTES_URL: '{{server.up}}', QUOTES_TOKEN: tok }\n  ready: { http: /health }\nprobes:\n  - id: calls-seen\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /quotes/ABC }\n        expect: { status: 200, json: [ { path: $.price, equals: 7.25 } ] }\n      - calls: { server: up, route: quote, path: /quotes/ABC, count: 1, each: { headers: { Authorization: { equals: Bearer tok } } } }\n";
    let dir = temp_dir(&[("servers.yaml", spec)]);
    let cmd = format!(
        "echo \"$QUOTES_URL\" > {}/url; exec {} reference",
        dir.path().display(),
        proctor_path().display()
    );
    proctor()
        .arg("run")
        .arg(dir.path().join("servers.yaml"))
        .args(["--cmd", &cmd])
        .assert()
        .code(0);
    let url = std::fs::read_to_string(dir.path().join("url")).expect("the service saw the URL");
    let address = url.trim().trim_start_matches("http://").to_string();
    assert!(
        address.starts_with("127.0.0.1:"),
        "a process reaches servers on loopback: {url}"
    );
    assert!(
        std::net::TcpStream::connect(&address).is_err(),
        "the server at {address} still listens after the run"
    );
}

#[test]
fn a_running_service_is_graded_with_servers_on_ports_fixed_beforehand() {
    let spec = "title: servers\nquestion: { number: 16, text: q }\nbrief: b\nrules: [{ id: r, text: t }]\nservers:\n  up: { routes: [ { name: quote, method: GET, path: '/quotes/{symbol}', respond: { json: { price: 3.5 } } } ] }\nservice:\n  env: { QUOTES_URL: '{{server.up}}', QUOTES_TOKEN: tok }\nprobes:\n  - id: p\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /quotes/XYZ }\n        expect: { status: 200, json: [ { path: $.price, equals: 3.5 } ] }\n      - calls: { server: up, count: 1 }\n";
    let dir = temp_dir(&[("servers.yaml", spec)]);
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port()
    };
    let (service_port, server_port) = (free(), free());
    // Without fixed ports, the refusal says what to do.
    proctor()
        .arg("run")
        .arg(dir.path().join("servers.yaml"))
        .args(["--url", "http://127.0.0.1:9/"])
        .env("NO_COLOR", "1")
        .assert()
        .code(3)
        .stdout(predicates::str::contains(
            "start it with QUOTES_URL=http://127.0.0.1:PORT, and pass --server-port up=PORT",
        ));
    let mut service = std::process::Command::new(proctor_path())
        .arg("reference")
        .env("PORT", service_port.to_string())
        .env("QUOTES_URL", format!("http://127.0.0.1:{server_port}"))
        .env("QUOTES_TOKEN", "tok")
        .stdout(Stdio::null())
        .spawn()
        .expect("the reference starts");
    let graded = proctor()
        .arg("run")
        .arg(dir.path().join("servers.yaml"))
        .args(["--url", &format!("http://127.0.0.1:{service_port}/")])
        .args(["--server-port", &format!("up={server_port}")])
        .env("NO_COLOR", "1")
        .assert();
    let _ = service.kill();
    let _ = service.wait();
    graded.code(0);
}
