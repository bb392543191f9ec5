//! The Docker sandbox on the real engine: the reference graded in a container, hostile submissions, isolation
//! checked by inspection, `.dockerignore` against the docker CLI, Ctrl-C at each phase, and nothing left behind.
//!
//! Docker is required in CI (`CI` set): a missing engine fails these tests there and skips them elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use predicates::prelude::*;

use crate::support::{proctor, proctor_path, temp_dir};

/// Whether tests may use Docker; in CI a missing engine is a failure.
fn docker() -> bool {
    let ok = StdCommand::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    crate::support::available(
        "docker",
        ok,
        "no Docker engine answered `docker version` (start the daemon or set DOCKER_HOST)",
    )
}

/// Statically linked test binaries (the reference service and the hostile fixtures), built once.
fn static_bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let status = StdCommand::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .args([
                "build",
                "--quiet",
                "--target",
                "x86_64-unknown-linux-gnu",
                "-p",
                "proctor-reference",
                "-p",
                "proctor-fixtures",
            ])
            .arg("--target-dir")
            .arg(root.join("target/static"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the static test binaries failed");
        root.join("target/static/x86_64-unknown-linux-gnu/debug")
    });
    dir.join(name)
}

/// A submission folder: a static binary as /app in a scratch image, with extra Dockerfile lines.
fn submission(binary: &str, args: &[&str], extra: &str) -> tempfile::TempDir {
    let dir = temp_dir(&[]);
    std::fs::copy(static_bin(binary), dir.path().join("app")).expect("copy binary");
    let entrypoint: Vec<String> = std::iter::once("/app".to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect();
    let dockerfile = format!(
        "FROM scratch\n{extra}COPY app /app\nENTRYPOINT {}\n",
        serde_json::to_string(&entrypoint).expect("json")
    );
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).expect("write Dockerfile");
    dir
}

/// The reference service's image: `/app`, a stand-in `/bin/sh`, a `/data` folder owned by uid 65534 (for
/// `service.data`), then `lines`, then `ENTRYPOINT ["/app"]` unless `lines` has an entrypoint of its own.
fn reference_image(lines: &str) -> tempfile::TempDir {
    let dir = temp_dir(&[]);
    std::fs::copy(static_bin("proctor-reference"), dir.path().join("app")).expect("copy binary");
    std::fs::copy(static_bin("sh"), dir.path().join("sh")).expect("copy sh");
    std::fs::create_dir(dir.path().join("data")).expect("data folder");
    std::fs::write(dir.path().join("data/.keep"), "").expect("data folder");
    let entrypoint = if lines.contains("ENTRYPOINT") {
        ""
    } else {
        "ENTRYPOINT [\"/app\"]\n"
    };
    let dockerfile = format!(
        "FROM scratch\nCOPY app /app\nCOPY sh /bin/sh\nCOPY --chown=65534:65534 data /data\n{lines}{entrypoint}"
    );
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).expect("write Dockerfile");
    dir
}

#[test]
fn image_defects_fail_exactly_their_probe() {
    if !docker() {
        return;
    }
    let results: Vec<(String, Vec<String>, Vec<String>)> = std::thread::scope(|scope| {
        let runs: Vec<_> = crate::support::IMAGE_DEFECTS
            .iter()
            .map(|(name, lines, expected)| {
                scope.spawn(move || {
                    let sub = reference_image(lines);
                    let out = temp_dir(&[]);
                    let report = out.path().join("report.json");
                    proctor()
                        .args(["run", "graceful-shutdown", "--path"])
                        .arg(sub.path())
                        .args([
                            "--probe",
                            "runs-as-a-non-root-user",
                            "--probe",
                            "declares-a-healthcheck",
                        ])
                        .args(["--probe", "entrypoint-is-exec-form", "--report"])
                        .arg(format!("json={}", report.display()))
                        .output()
                        .expect("runs");
                    let report = read_report(&report);
                    let failed: Vec<String> = verdicts(&report)
                        .into_iter()
                        .filter(|(_, v)| v != "\"passed\"")
                        .map(|(id, v)| {
                            format!(
                                "{}{}",
                                id.trim_start_matches("graceful-shutdown/"),
                                if v == "\"failed\"" { "" } else { &v }
                            )
                        })
                        .collect();
                    let expected: Vec<String> = expected.iter().map(|p| p.to_string()).collect();
                    assert!(leftovers(report["run_id"].as_str().unwrap_or_default()).is_empty());
                    (name.to_string(), expected, failed)
                })
            })
            .collect();
        runs.into_iter().filter_map(|r| r.join().ok()).collect()
    });
    assert_eq!(
        results.len(),
        crate::support::IMAGE_DEFECTS.len(),
        "every image was graded"
    );
    for (name, expected, failed) in results {
        assert_eq!(failed, expected, "image {name}");
    }
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    let out = StdCommand::new("docker").args(args).output().expect("docker CLI runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Containers, networks and images still carrying a run's label.
fn leftovers(run_id: &str) -> Vec<String> {
    let filter = format!("label=dev.proctor.run={run_id}");
    let mut all = docker_lines(&["ps", "-aq", "--filter", &filter]);
    all.extend(docker_lines(&["network", "ls", "-q", "--filter", &filter]));
    all.extend(docker_lines(&["images", "-aq", "--filter", &filter]));
    all.extend(docker_lines(&["volume", "ls", "-q", "--filter", &filter]));
    all
}

fn read_report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report written")).expect("report is JSON")
}

/// The message of probe `challenge/probe` in a report.
fn probe_message(report: &serde_json::Value, id: &str) -> String {
    let (challenge, probe) = id.split_once('/').unwrap_or((id, ""));
    report["challenges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["id"] == challenge)
        .flat_map(|c| c["probes"].as_array().into_iter().flatten())
        .find(|p| p["id"] == probe)
        .map(|p| p["message"].to_string())
        .unwrap_or_default()
}

/// Verdicts per probe id, for comparing two runs.
fn verdicts(report: &serde_json::Value) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for challenge in report["challenges"].as_array().into_iter().flatten() {
        for probe in challenge["probes"].as_array().into_iter().flatten() {
            all.push((
                format!(
                    "{}/{}",
                    challenge["id"].as_str().unwrap_or(""),
                    probe["id"].as_str().unwrap_or("")
                ),
                probe["verdict"].to_string(),
            ));
        }
    }
    all
}

#[test]
fn the_whole_catalog_graded_in_docker_scores_exactly_as_with_cmd() {
    if !docker() {
        return;
    }
    let sub = reference_image(&format!(
        "ENV REFERENCE_DEFECTS=etag-stale,create-200\n{}",
        crate::support::SOUND_IMAGE
    ));
    let out = temp_dir(&[]);
    let (in_docker, local) = (out.path().join("docker.json"), out.path().join("local.json"));
    proctor()
        .args(["run", "challenges", "--path"])
        .arg(sub.path())
        .arg("--report")
        .arg(format!("json={}", in_docker.display()))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("on an internal network (no egress)"));
    let cmd = format!(
        "REFERENCE_DEFECTS=etag-stale,create-200 exec {} reference",
        proctor_path().display()
    );
    proctor()
        .args(["run", "challenges", "--cmd", &cmd, "--report"])
        .arg(format!("json={}", local.display()))
        .assert()
        .code(1);
    let (docker_report, local_report) = (read_report(&in_docker), read_report(&local));
    // What only an image has is not applicable to a process; the sound image passes it.
    let local_verdicts: Vec<(String, String)> = verdicts(&local_report)
        .into_iter()
        .map(|(id, v)| (id, v.replace("not_applicable", "passed")))
        .collect();
    // On a difference, say why each differing probe ended as it did, in both runs.
    let differ: Vec<String> = verdicts(&docker_report)
        .iter()
        .zip(&local_verdicts)
        .filter(|(a, b)| a != b)
        .map(|((id, v), _)| {
            format!(
                "{id}: {v} in Docker ({}); as a process: {}",
                probe_message(&docker_report, id),
                probe_message(&local_report, id)
            )
        })
        .collect();
    assert_eq!(verdicts(&docker_report), local_verdicts, "{differ:#?}");
    assert!(
        verdicts(&local_report).iter().any(|(_, v)| v == "\"not_applicable\""),
        "the image probes are not applicable to a process"
    );
    assert_eq!(
        docker_report["challenges"][0]["score"]["earned"],
        local_report["challenges"][0]["score"]["earned"]
    );
    let failed: Vec<String> = verdicts(&docker_report)
        .into_iter()
        .filter(|(_, v)| v != "\"passed\"")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        failed,
        [
            "http-caching/etag-changes-with-content",
            "rest-resource/create-returns-201"
        ]
    );
    assert_eq!(
        docker_report["challenges"].as_array().map(Vec::len),
        Some(proctor::catalog::sources().len())
    );
    assert!(leftovers(docker_report["run_id"].as_str().expect("run id")).is_empty());
}

/// Runs proctor on a hostile submission and returns (exit code, stdout, run id, seconds taken).
fn grade_hostile(mode: &str, extra_args: &[&str]) -> (Option<i32>, String, String, Duration) {
    let sub = submission("hostile", &[mode], "");
    let out = temp_dir(&[]);
    let report = out.path().join("report.json");
    let started = Instant::now();
    let output = proctor()
        .args(["run", "rest-resource", "--path"])
        .arg(sub.path())
        .args(["--start-timeout", "6s", "--memory", "64MiB", "--pids", "32"])
        .args(extra_args)
        .arg("--report")
        .arg(format!("json={}", report.display()))
        .output()
        .expect("proctor runs");
    let run_id = read_report(&report)["run_id"].as_str().unwrap_or_default().to_string();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        run_id,
        started.elapsed(),
    )
}

#[test]
fn hostile_submissions_get_a_clear_verdict_in_time_and_leave_nothing_behind() {
    if !docker() {
        return;
    }
    let cases: &[(&str, &[&str])] = &[
        (
            "exit-now",
            &[
                "the service exited with status 3 before it was ready",
                "fatal: DATABASE_URL is not set",
            ],
        ),
        (
            "alloc-bomb",
            &[
                "the service was killed for exceeding its memory limit (OOMKilled) before it was ready",
                "holding 16 MiB",
            ],
        ),
        ("fork-bomb", &["was not ready within 6 s", "spawn failed after"]),
        (
            "never-listen",
            &["was not ready within 6 s", "starting up, but never listening"],
        ),
        ("flood", &["was not ready within 6 s", "flood flood"]),
    ];
    for (mode, expected) in cases {
        let (code, stdout, run_id, took) = grade_hostile(mode, &[]);
        assert_eq!(code, Some(3), "{mode}: {stdout}");
        for text in *expected {
            assert!(stdout.contains(text), "{mode}: expected {text:?} in\n{stdout}");
        }
        assert!(took < Duration::from_secs(40), "{mode} took {took:?}");
        assert!(!run_id.is_empty());
        assert!(leftovers(&run_id).is_empty(), "{mode} left {:?}", leftovers(&run_id));
    }
}

#[test]
fn isolation_and_limits_are_what_was_asked_and_keep_then_clean_removes_them() {
    if !docker() {
        return;
    }
    let sub = submission("proctor-reference", &[], "");
    let out = temp_dir(&[]);
    let report = out.path().join("report.json");
    proctor()
        .args([
            "run",
            "rest-resource",
            "--keep",
            "--memory",
            "128MiB",
            "--cpus",
            "0.5",
            "--pids",
            "64",
            "--path",
        ])
        .arg(sub.path())
        .arg("--report")
        .arg(format!("json={}", report.display()))
        .assert()
        .code(0)
        .stderr(predicate::str::contains("kept for inspection"))
        .stderr(predicate::str::contains("remove them with: proctor clean --run"));
    let json = read_report(&report);
    let run_id = json["run_id"].as_str().expect("run id").to_string();
    assert!(
        json["build_log"].as_str().is_some_and(|log| log.contains("Step 1/")),
        "the build output is kept: {}",
        json["build_log"]
    );
    let container = format!("proctor-{run_id}-rest-resource");
    let inspect = |format: &str| docker_lines(&["inspect", "--format", format, &container]).join("\n");
    assert_eq!(
        inspect("{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}"),
        "134217728 134217728"
    );
    assert_eq!(
        inspect("{{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}"),
        "500000000 64"
    );
    assert_eq!(
        inspect("{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.Privileged}} {{.HostConfig.Init}}"),
        "true false true"
    );
    assert_eq!(
        inspect("{{json .HostConfig.CapDrop}} {{json .HostConfig.SecurityOpt}}"),
        r#"["ALL"] ["no-new-privileges"]"#
    );
    assert_eq!(
        inspect("{{json .HostConfig.Tmpfs}}"),
        r#"{"/tmp":"rw,noexec,nosuid,size=64m"}"#
    );
    assert_eq!(inspect("{{json .HostConfig.Binds}} {{json .Mounts}}"), "null []");
    assert!(inspect("{{json .HostConfig.Ulimits}}").contains(r#""Name":"nofile""#));
    assert_eq!(
        inspect("{{.HostConfig.NetworkMode}}").len(),
        64,
        "attached to the run's network by id"
    );
    let network = format!("proctor-{run_id}");
    let bridge = docker_lines(&[
        "network",
        "inspect",
        "--format",
        "{{index .Options \"com.docker.network.bridge.name\"}}",
        &network,
    ]);
    assert_eq!(
        bridge,
        [format!("prx-{run_id}")],
        "probes bind to this device, so none can leave another way"
    );
    assert_eq!(
        docker_lines(&["network", "inspect", "--format", "{{.Internal}} {{.Driver}}", &network]),
        ["true bridge"]
    );
    assert_eq!(
        docker_lines(&[
            "inspect",
            "--format",
            "{{index .Config.Labels \"dev.proctor.managed\"}}",
            &container
        ]),
        ["1"]
    );
    // A volume of the run that something else still uses: the engine refuses to remove it, and clean names it
    // with the engine's reason and exits 3 instead of counting what it removed as if that were all.
    let volume = format!("proctor-{run_id}-held");
    let labels = ["--label", "dev.proctor.managed=1", "--label"];
    let run_label = format!("dev.proctor.run={run_id}");
    docker_lines(&[&["volume", "create"][..], &labels, &[&run_label, &volume]].concat());
    // Held by a container of an image without proctor's labels (a container inherits its image's labels): an
    // empty file system imported as an image, created with a command it never runs.
    let (holder, held_by) = (format!("holder-{run_id}"), format!("proctor-test-holder:{run_id}"));
    let mut import = StdCommand::new("docker")
        .args(["import", "-", &held_by])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("docker import runs");
    let mut empty = tar::Builder::new(import.stdin.take().expect("stdin"));
    empty.finish().expect("an empty tar archive");
    drop(empty);
    assert!(import.wait().expect("docker import ends").success());
    let mount = format!("{volume}:/held");
    let created = docker_lines(&["create", "--name", &holder, "-v", &mount, &held_by, "/none"]);
    assert_eq!(created.len(), 1, "the holder is created");
    // Scoped to this run: a plain `proctor clean` would also remove what concurrent tests are using.
    proctor()
        .args(["clean", "--run", &run_id])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("removed 1 container(s), 1 network(s)"))
        .stderr(
            predicate::str::contains(format!("error: could not remove volume {volume}: "))
                .and(predicate::str::contains("in use")),
        );
    docker_lines(&["rm", &holder]);
    docker_lines(&["rmi", &held_by]);
    proctor().args(["clean", "--run", &run_id]).assert().code(0);
    assert!(leftovers(&run_id).is_empty());
}

#[test]
fn published_mode_grades_through_a_loopback_port_and_says_egress_is_open() {
    if !docker() {
        return;
    }
    let sub = submission("proctor-reference", &[], "");
    proctor()
        .args(["run", "http-caching", "--docker-network", "published", "--path"])
        .arg(sub.path())
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "published on 127.0.0.1 (egress is NOT blocked in this mode)",
        ));
}

#[test]
fn docker_problems_are_one_clear_sentence_with_exit_3() {
    proctor()
        .args(["run", "rest-resource", "--image", "anything"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .assert()
        .code(3)
        .stdout(predicate::str::contains("failed to reach Docker: is it running?"));
    if !docker() {
        return;
    }
    proctor()
        .args(["run", "rest-resource", "--image", "proctor-test-no-such-image:latest"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains(
            "image `proctor-test-no-such-image:latest` is not on this Docker engine",
        ));
    let broken = temp_dir(&[("Dockerfile", "FROM scratch\nCOPY missing-file /x\n")]);
    proctor()
        .args(["run", "rest-resource", "--path"])
        .arg(broken.path())
        .assert()
        .code(3)
        .stdout(predicate::str::contains("the image build failed at Step 3/"))
        .stdout(predicate::str::contains(" : COPY missing-file /x: COPY failed"));
    let unparsable = temp_dir(&[("Dockerfile", "FRM scratch\n")]);
    proctor()
        .args(["run", "rest-resource", "--path"])
        .arg(unparsable.path())
        .assert()
        .code(3)
        .stdout(predicate::str::contains("the Docker engine did not build the image"))
        .stdout(predicate::str::contains("unknown instruction: FRM"));
    let big = temp_dir(&[("Dockerfile", "FROM scratch\nCOPY . /\n")]);
    std::fs::write(big.path().join("data.bin"), vec![7u8; 2 << 20]).expect("write");
    proctor()
        .args(["run", "rest-resource", "--max-context", "1MiB", "--path"])
        .arg(big.path())
        .assert()
        .code(3)
        .stdout(predicate::str::contains("the build context is over 1 MiB (the limit)"));
    let slow = temp_dir(&[("Dockerfile", "FROM scratch\nCOPY . /\n")]);
    let data: Vec<u8> = (0..(80u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(slow.path().join("data.bin"), data).expect("write");
    let output = proctor()
        .args(["run", "rest-resource", "--build-timeout", "100ms", "--path"])
        .arg(slow.path())
        .output()
        .expect("proctor runs");
    assert_eq!(output.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("the image build did not finish within 0.1 s (--build-timeout)")
    );
    let no_dockerfile = temp_dir(&[("main.py", "print(1)")]);
    proctor()
        .args(["run", "rest-resource", "--path"])
        .arg(no_dockerfile.path())
        .assert()
        .code(3)
        .stdout(predicate::str::contains("has no Dockerfile"));
}

/// The files of an image, listed by exporting a (never started) container of it.
fn image_files(image: &str) -> Vec<String> {
    let id = docker_lines(&["create", image, "/nothing"])
        .pop()
        .expect("container created");
    let export = StdCommand::new("docker")
        .args(["export", &id])
        .output()
        .expect("export");
    let _ = StdCommand::new("docker").args(["rm", "-f", &id]).output();
    let mut archive = tar::Archive::new(export.stdout.as_slice());
    let mut files: Vec<String> = archive
        .entries()
        .expect("tar")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let path = e.path().ok()?.to_string_lossy().trim_end_matches('/').to_string();
            let kind = if e.header().entry_type().is_symlink() {
                "link"
            } else if e.header().entry_type().is_dir() {
                "dir"
            } else {
                "file"
            };
            path.starts_with("ctx").then(|| format!("{path} ({kind})"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn dockerignore_rules_match_the_docker_cli_on_the_real_engine() {
    if !docker() {
        return;
    }
    let ignore = "# build output\ntarget\n*.log\n!keep.log\n**/*.pyc\nsecrets/\n!secrets/public.pem\n/docs/*.md\n!docs/README.md\ntmp?\n.git\nDockerfile\n";
    let dir = temp_dir(&[
        ("Dockerfile", "FROM scratch\nCOPY . /ctx/\n"),
        (".dockerignore", ignore),
    ]);
    for (path, text) in [
        ("app.py", "x"),
        ("debug.log", "x"),
        ("keep.log", "x"),
        ("pkg/mod.pyc", "x"),
        ("pkg/mod.py", "x"),
        ("pkg/deep/x.pyc", "x"),
        ("target/debug/bin", "x"),
        ("secrets/private.key", "x"),
        ("secrets/public.pem", "x"),
        ("docs/guide.md", "x"),
        ("docs/README.md", "x"),
        ("docs/sub/deep.md", "x"),
        ("tmp1", "x"),
        ("tmp12", "x"),
        (".git/HEAD", "x"),
        ("logs/app.log", "x"),
    ] {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, text).expect("write");
    }
    std::os::unix::fs::symlink("/etc/hostname", dir.path().join("link-out")).expect("symlink");
    let cli_tag = format!("proctor-test-cli-{}", std::process::id());
    let status = StdCommand::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", &cli_tag])
        .arg(dir.path())
        .stdout(Stdio::null())
        .status()
        .expect("docker build");
    assert!(status.success());
    let expected = image_files(&cli_tag);
    let _ = StdCommand::new("docker").args(["rmi", "-f", &cli_tag]).output();
    // proctor's build of the same folder, kept so its image can be listed.
    let out = temp_dir(&[]);
    let report = out.path().join("r.json");
    proctor()
        .args(["run", "rest-resource", "--keep", "--start-timeout", "1s", "--path"])
        .arg(dir.path())
        .arg("--report")
        .arg(format!("json={}", report.display()))
        .assert()
        .code(3);
    let run_id = read_report(&report)["run_id"].as_str().expect("run id").to_string();
    let actual = image_files(&format!("proctor-{run_id}:submission"));
    let _ = StdCommand::new("docker")
        .args(["rmi", "-f", &format!("proctor-{run_id}:submission")])
        .output();
    let _ = StdCommand::new("docker")
        .args(["network", "rm", &format!("proctor-{run_id}")])
        .output();
    assert_eq!(actual, expected);
    assert!(expected.contains(&"ctx/link-out (link)".to_string()), "{expected:?}");
    assert!(
        expected.contains(&"ctx/keep.log (file)".to_string())
            && !expected.contains(&"ctx/debug.log (file)".to_string())
    );
}

/// Starts proctor on a spec, waits for `ready()` to say the phase was reached, sends SIGINT, and checks the
/// exit code, the time it took and that the run left nothing behind.
fn interrupt_when(spec_name: &str, spec: &str, sub: &Path, ready: impl Fn(&str) -> bool) {
    signal_when(nix::sys::signal::Signal::SIGINT, spec_name, spec, sub, ready);
}

/// Like [`interrupt_when`], with another signal (SIGTERM from a supervisor, SIGHUP from a closed terminal).
fn signal_when(
    signal: nix::sys::signal::Signal,
    spec_name: &str,
    spec: &str,
    sub: &Path,
    ready: impl Fn(&str) -> bool,
) {
    let target = [std::ffi::OsStr::new("--path"), sub.as_os_str()];
    signal_run(signal, spec_name, spec, &target, (60, 30), ready);
}

/// Runs the spec against `target` until `ready` (waiting at most `patience.0` seconds), then sends `signal`:
/// proctor must end with 130 within `patience.1` seconds and leave nothing of the run on the engine.
fn signal_run(
    signal: nix::sys::signal::Signal,
    spec_name: &str,
    spec: &str,
    target: &[&std::ffi::OsStr],
    patience: (u64, u64),
    ready: impl Fn(&str) -> bool,
) {
    let dir = temp_dir(&[(&format!("{spec_name}.yaml"), spec)]);
    let report = dir.path().join("report.json");
    let mut child = StdCommand::new(proctor_path())
        .arg("run")
        .arg(dir.path().join(format!("{spec_name}.yaml")))
        .args(target)
        .arg("--report")
        .arg(format!("json={}", report.display()))
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("proctor starts");
    let deadline = Instant::now() + Duration::from_secs(patience.0);
    while !ready(spec_name) {
        assert!(Instant::now() < deadline, "{spec_name}: the phase was never reached");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "{spec_name}: proctor ended before the phase"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, stdout) = crate::support::signal(&mut child, signal, Duration::from_secs(patience.1));
    assert_eq!(code, Some(130), "{spec_name} ({signal}): {stdout}");
    let run_id = read_report(&report)["run_id"].as_str().expect("run id").to_string();
    assert!(
        leftovers(&run_id).is_empty(),
        "{spec_name} left {:?}",
        leftovers(&run_id)
    );
}

fn container_running(challenge: &str) -> bool {
    !docker_lines(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=dev.proctor.challenge={challenge}"),
    ])
    .is_empty()
}

#[test]
fn ctrl_c_while_building_starting_or_probing_leaves_nothing_behind() {
    if !docker() {
        return;
    }
    let slow_probe = "title: t\nquestion: { number: 1, text: q }\nbrief: b\nrules: [{ id: r, text: t }]\nservice: { ready: { tcp: true }, start_timeout: 60s }\nprobes:\n  - id: p\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - wait: { duration: 60s }\n";
    // Building: a context large enough that packing and sending it takes a while.
    let big = submission("hostile", &["sleep"], "COPY data.bin /data.bin\n");
    let mut data = vec![0u8; 150 << 20];
    for (i, byte) in data.iter_mut().enumerate() {
        *byte = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    }
    std::fs::write(big.path().join("data.bin"), data).expect("write");
    let started = Instant::now();
    interrupt_when("ctrl-c-building", slow_probe, big.path(), |_| {
        started.elapsed() > Duration::from_millis(400)
    });
    // Building, between steps: layers already committed (and one committed after the interrupt) must go too.
    let steps = submission(
        "hostile",
        &["sleep"],
        "COPY app /first\nRUN [\"/first\", \"report-limits\"]\nCOPY app /second\nRUN [\"/second\", \"sleep\"]\n",
    );
    let started = Instant::now();
    interrupt_when("ctrl-c-mid-build", slow_probe, steps.path(), |_| {
        started.elapsed() > Duration::from_secs(4)
    });
    // The same moments with the other signals that end a run: a supervisor's SIGTERM, a closed terminal's SIGHUP.
    let started = Instant::now();
    signal_when(
        nix::sys::signal::Signal::SIGTERM,
        "sigterm-mid-build",
        slow_probe,
        steps.path(),
        |_| started.elapsed() > Duration::from_secs(3),
    );
    let started = Instant::now();
    signal_when(
        nix::sys::signal::Signal::SIGHUP,
        "sighup-mid-build",
        slow_probe,
        steps.path(),
        |_| started.elapsed() > Duration::from_millis(1500),
    );
    // Starting: the container runs but never becomes ready.
    let never = submission("hostile", &["never-listen"], "");
    interrupt_when("ctrl-c-starting", slow_probe, never.path(), container_running);
    // Probing: the reference is ready and a 60 s wait is under way.
    let reference = submission("proctor-reference", &[], "");
    signal_when(
        nix::sys::signal::Signal::SIGHUP,
        "sighup-probing",
        slow_probe,
        reference.path(),
        |name| {
            container_running(name) && {
                std::thread::sleep(Duration::from_millis(800));
                true
            }
        },
    );
    interrupt_when("ctrl-c-probing", slow_probe, reference.path(), |name| {
        container_running(name) && {
            std::thread::sleep(Duration::from_millis(800));
            true
        }
    });
}

#[tokio::test]
async fn the_container_reaches_proctor_listeners_on_the_gateway_of_its_internal_network() {
    if !docker() {
        return;
    }
    use proctor::sandbox::{BuildOptions, NetworkMode, Sandbox};
    use tokio::io::AsyncReadExt;
    let run_id = format!("gw{}", std::process::id());
    let sandbox = Sandbox::connect(&run_id, NetworkMode::Internal, false)
        .await
        .expect("docker");
    let gateway = sandbox.gateway().await.expect("the run network has a gateway");
    let listener = tokio::net::TcpListener::bind((gateway, 0))
        .await
        .expect("bind on the gateway address");
    let port = listener.local_addr().expect("addr").port();
    let sub = submission("hostile", &["call-home"], "");
    let options = BuildOptions {
        dir: sub.path().to_path_buf(),
        max_context: 200 << 20,
        timeout: Duration::from_secs(120),
        limits: Default::default(),
        tag: None,
    };
    let log = proctor::logs::LogBuffer::new(1 << 16);
    let image = sandbox.build(&options, &log, &mut |_| {}).await.expect("build");
    let spec = format!(
        "title: t\nquestion: {{ number: 16, text: q }}\nbrief: b\nrules: [{{ id: r, text: t }}]\nservice: {{ env: {{ CALL_HOME: '{gateway}:{port}' }} }}\nprobes:\n  - {{ id: p, title: t, category: c, rules: [r], why: w, hint: h, steps: [ {{ request: {{ path: / }} }} ] }}\n"
    );
    let challenge = crate::support::challenge("call-home", &spec);
    let limits = proctor::limits::resolve(&Default::default(), &Default::default());
    let env: Vec<(String, String)> = challenge.spec.service.env.clone().into_iter().collect();
    let container = sandbox
        .start(&image, &challenge, limits, Default::default(), &env, log.clone())
        .await
        .expect("container starts");
    let accepted = tokio::time::timeout(Duration::from_secs(20), listener.accept()).await;
    let mut line = String::new();
    if let Ok(Ok((mut stream, _))) = accepted {
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut line)).await;
    }
    container.stop().await;
    sandbox.finish().await;
    assert_eq!(line, "hello from the sandbox\n", "container logs: {}", log.text());
    assert!(leftovers(&run_id).is_empty());
    let internal = docker_lines(&["network", "ls", "-q", "--filter", &format!("name=proctor-{run_id}")]);
    assert!(internal.is_empty(), "the network was removed");
}

#[test]
fn a_dropped_sweep_guard_removes_what_the_run_made() {
    if !docker() {
        return;
    }
    // The guard is the fallback for panics and early returns: dropping it armed sweeps the run's resources.
    let run_id = format!("guard{}", std::process::id());
    let labels = ["--label", "dev.proctor.managed=1", "--label"];
    let created = StdCommand::new("docker")
        .args(["network", "create", "--internal"])
        .args(labels)
        .arg(format!("dev.proctor.run={run_id}"))
        .arg(format!("proctor-{run_id}"))
        .output()
        .expect("docker network create");
    assert!(created.status.success());
    assert_eq!(leftovers(&run_id).len(), 1);
    drop(proctor::sandbox::SweepGuard::new(&run_id));
    assert!(leftovers(&run_id).is_empty());
    let mut disarmed = proctor::sandbox::SweepGuard::new("never-used");
    disarmed.disarm();
}

#[test]
fn a_second_ctrl_c_removes_the_run_and_exits_at_once() {
    if !docker() {
        return;
    }
    let spec = "title: t\nquestion: { number: 1, text: q }\nbrief: b\nrules: [{ id: r, text: t }]\nservice: { start_timeout: 60s }\nprobes:\n  - { id: p, title: t, category: c, rules: [r], why: w, hint: h, steps: [ { request: { path: / } } ] }\n";
    let dir = temp_dir(&[("forced-exit.yaml", spec)]);
    let never = submission("hostile", &["never-listen"], "");
    // `run` has one run open; `grade` one per submission being graded: a forced exit removes them all.
    let submissions = temp_dir(&[]);
    copy_into(never.path(), submissions.path(), "one");
    copy_into(never.path(), submissions.path(), "two");
    let spec_path = dir.path().join("forced-exit.yaml");
    let run: Vec<std::ffi::OsString> = vec![
        "run".into(),
        spec_path.clone().into(),
        "--path".into(),
        never.path().into(),
    ];
    let grade: Vec<std::ffi::OsString> = vec![
        "grade".into(),
        spec_path.into(),
        "--submissions".into(),
        submissions.path().into(),
        "--out".into(),
        dir.path().join("out").into(),
        "--jobs".into(),
        "2".into(),
    ];
    for (args, runs) in [(run, 1), (grade, 2)] {
        let mut child = StdCommand::new(proctor_path())
            .args(&args)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("proctor starts");
        let deadline = Instant::now() + Duration::from_secs(120);
        let run_ids = loop {
            let mut labels = docker_lines(&[
                "ps",
                "--filter",
                "label=dev.proctor.challenge=forced-exit",
                "--format",
                "{{.Label \"dev.proctor.run\"}}",
            ]);
            labels.sort();
            labels.dedup();
            if labels.len() == runs {
                break labels;
            }
            assert!(Instant::now() < deadline, "{runs} containers never started");
            std::thread::sleep(Duration::from_millis(50));
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("first Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
        let (code, _) = crate::support::interrupt(&mut child, Duration::from_secs(30));
        assert_eq!(code, Some(130), "{args:?}");
        for run_id in run_ids {
            assert!(leftovers(&run_id).is_empty(), "{args:?} left {:?}", leftovers(&run_id));
        }
    }
}

#[test]
fn the_build_runs_with_the_memory_cpu_and_network_it_was_given() {
    if !docker() {
        return;
    }
    let sub = submission(
        "hostile",
        &["sleep"],
        "COPY app /probe\nRUN [\"/probe\", \"report-limits\"]\n",
    );
    let spec = "title: t\nquestion: { number: 1, text: q }\nbrief: b\nrules: [{ id: r, text: t }]\nservice: { ready: { tcp: true }, start_timeout: 2s }\nprobes:\n  - { id: a, title: t, category: c, rules: [r], why: w, hint: h, steps: [ { request: { path: / } } ] }\n";
    let dir = temp_dir(&[("limits.yaml", spec)]);
    let report = dir.path().join("report.json");
    proctor()
        .arg("run")
        .arg(dir.path().join("limits.yaml"))
        .arg("--path")
        .arg(sub.path())
        .args([
            "--build-memory",
            "300MiB",
            "--build-cpus",
            "0.5",
            "--build-network",
            "none",
            "--report",
        ])
        .arg(format!("json={}", report.display()))
        .assert()
        .code(3);
    let log = read_report(&report)["build_log"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let line = log
        .lines()
        .find(|l| l.starts_with("limits:"))
        .unwrap_or_else(|| panic!("no limits line in:\n{log}"));
    // cgroup v1 or v2: the memory limit is 300 MiB, the CPU quota half a period, and only loopback exists.
    assert!(line.contains("memory=314572800"), "{line}");
    assert!(line.contains("cpu=50000"), "{line}");
    assert!(line.ends_with("net=lo"), "{line}");
}

#[test]
fn a_dockerfile_that_is_a_symlink_is_refused_with_the_reason() {
    if !docker() {
        return;
    }
    let dir = temp_dir(&[("real", "FROM scratch\n")]);
    std::os::unix::fs::symlink("/etc/hostname", dir.path().join("Dockerfile")).expect("symlink");
    proctor()
        .args(["run", "rest-resource", "--path"])
        .arg(dir.path())
        .assert()
        .code(3)
        .stdout(predicate::str::contains("is a symbolic link"));
}

#[test]
fn a_service_killed_for_memory_during_the_probes_is_reported_as_oom_killed() {
    if !docker() {
        return;
    }
    let sub = submission("hostile", &["oom-on-request"], "");
    let spec = "title: t\nquestion: { number: 1, text: q }\nbrief: b\nrules: [{ id: r, text: t }]\nservice: { ready: { http: /health }, start_timeout: 20s, request_timeout: 10s }\nprobes:\n  - { id: boom, title: t, category: c, rules: [r], why: w, hint: h, steps: [ { request: { path: /boom }, expect: { status: 200 } } ] }\n  - { id: after, title: t, category: c, rules: [r], why: w, hint: h, steps: [ { request: { path: /health }, expect: { status: 200 } } ] }\n";
    let dir = temp_dir(&[("oom.yaml", spec)]);
    let report = dir.path().join("report.json");
    let output = proctor()
        .arg("run")
        .arg(dir.path().join("oom.yaml"))
        .args(["--memory", "64MiB", "--path"])
        .arg(sub.path())
        .arg("--report")
        .arg(format!("json={}", report.display()))
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("the service was killed for exceeding its memory limit (OOMKilled)"),
        "{stdout}"
    );
    let run_id = read_report(&report)["run_id"].as_str().unwrap_or_default().to_string();
    assert!(leftovers(&run_id).is_empty(), "left {:?}", leftovers(&run_id));
}

#[test]
fn a_large_build_context_is_streamed_not_held_in_memory() {
    if !docker() {
        return;
    }
    let sub = submission("hostile", &["sleep"], "COPY data.bin /data.bin\n");
    // Written a MiB at a time: a fork of this test process must not inherit a big resident buffer, or the child's
    // peak memory (counted from the fork) would be the test's, not proctor's.
    {
        use std::io::Write;
        let mut file = std::fs::File::create(sub.path().join("data.bin")).expect("create");
        let mut chunk = vec![0u8; 1 << 20];
        for n in 0..150u32 {
            for (i, byte) in chunk.iter_mut().enumerate() {
                *byte = ((i as u32 ^ n).wrapping_mul(2_654_435_761) >> 13) as u8;
            }
            file.write_all(&chunk).expect("write");
        }
    }
    let spec = "title: t\nquestion: { number: 1, text: q }\nbrief: b\nrules: [{ id: r, text: t }]\nservice: { ready: { tcp: true }, start_timeout: 1s }\nprobes:\n  - { id: a, title: t, category: c, rules: [r], why: w, hint: h, steps: [ { request: { path: / } } ] }\n";
    let dir = temp_dir(&[("big.yaml", spec)]);
    let report = dir.path().join("report.json");
    let mut command = StdCommand::new(proctor_path());
    command
        .arg("run")
        .arg(dir.path().join("big.yaml"))
        .arg("--path")
        .arg(sub.path())
        .arg("--report")
        .arg(format!("json={}", report.display()));
    let (code, stdout, peak_mib) = crate::support::run_measured(command);
    assert_eq!(code, Some(3), "{stdout}");
    assert!(
        peak_mib < 100,
        "proctor peaked at {peak_mib} MiB while sending a 150 MiB context"
    );
    let run_id = read_report(&report)["run_id"].as_str().unwrap_or_default().to_string();
    assert!(leftovers(&run_id).is_empty(), "left {:?}", leftovers(&run_id));
}

#[tokio::test]
async fn a_container_restarts_as_a_new_instance_and_the_old_one_is_gone() {
    if !docker() {
        return;
    }
    use proctor::sandbox::{BuildOptions, NetworkMode, Sandbox};
    use proctor::target::container::ContainerLauncher;
    use proctor::target::{Launcher, Service};
    use std::sync::Arc;
    let run_id = format!("restart{}", std::process::id());
    let sandbox = Arc::new(
        Sandbox::connect(&run_id, NetworkMode::Internal, false)
            .await
            .expect("docker"),
    );
    let sub = submission("proctor-reference", &[], "");
    let options = BuildOptions {
        dir: sub.path().to_path_buf(),
        max_context: 200 << 20,
        timeout: Duration::from_secs(120),
        limits: Default::default(),
        tag: None,
    };
    let log = proctor::logs::LogBuffer::new(1 << 16);
    let image = sandbox.build(&options, &log, &mut |_| {}).await.expect("build");
    let challenge = crate::support::catalog("rate-limiter");
    let launcher = Arc::new(Launcher::Container(ContainerLauncher {
        sandbox: Arc::clone(&sandbox),
        image,
        limits: Default::default(),
    }));
    let mut service = Service::start(launcher, &challenge, None).await.expect("starts");
    let first = format!("proctor-{run_id}-rate-limiter");
    assert_eq!(
        docker_lines(&["ps", "-q", "--filter", &format!("name=^{first}$")]).len(),
        1
    );
    service.restart(&Default::default()).await.expect("restarts");
    assert!(
        docker_lines(&["ps", "-aq", "--filter", &format!("name=^{first}$")]).is_empty(),
        "the first instance was removed"
    );
    assert_eq!(
        docker_lines(&["ps", "-q", "--filter", &format!("name=^{first}-1$")]).len(),
        1
    );
    assert_eq!(service.exited().await, None);
    let client = proctor::http::build_client(Duration::from_secs(5), sandbox.probe_interface().as_deref(), None)
        .expect("client");
    let url = service.base_url().join("quote").expect("url");
    let status = client
        .get(url)
        .header("X-Api-Key", "k")
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(status.ok(), Some(200), "the new instance answers");
    service.stop().await;
    sandbox.finish().await;
    assert!(leftovers(&run_id).is_empty());
}

#[tokio::test]
async fn a_docker_session_runs_from_the_library_with_its_events_and_leaves_nothing() {
    if !docker() {
        return;
    }
    use proctor::event::{Event, Events};
    use proctor::target::{DockerOptions, DockerSource, Target};
    let sub = submission("proctor-reference", &[], "");
    let recorder = crate::support::Recorder::default();
    let options = proctor::session::Options {
        run_id: format!("lib{}", std::process::id()),
        ..crate::support::options()
    };
    let docker = DockerOptions {
        network: None,
        keep: false,
        limits: Default::default(),
        build_timeout: Duration::from_secs(300),
        max_context: 200 << 20,
        build_limits: Default::default(),
    };
    let target = Target::Docker {
        source: DockerSource::Build(sub.path().to_path_buf()),
        docker,
    };
    let report = proctor::session::run(
        &[crate::support::catalog("rate-limiter")],
        target,
        &options,
        &Events::new(vec![Box::new(recorder.clone())]),
        &tokio_util::sync::CancellationToken::new(),
    )
    .await;
    assert!(
        report.challenges[0].score.passed,
        "{:?}",
        report.challenges[0].target_error
    );
    assert!(report.build_log.is_some(), "the build output is kept");
    let kinds: Vec<&str> = recorder
        .events()
        .iter()
        .map(|e| match e {
            Event::Notice { .. } => "notice",
            Event::BuildStarted => "build",
            Event::BuildOutput { .. } => "output",
            Event::BuildFinished => "built",
            Event::ChallengeStarted { .. } => "start",
            Event::TargetReady { .. } => "ready",
            Event::ProbeFinished { .. } => "probe",
            Event::ChallengeFinished { .. } => "finished",
            Event::RunFinished { .. } => "run",
        })
        .collect();
    let mut order = kinds.clone();
    order.dedup();
    assert_eq!(
        order,
        [
            "notice", "build", "output", "built", "start", "ready", "probe", "finished", "run"
        ],
        "the run id is said first, then the build, the probes and the end"
    );
    assert!(leftovers(&options.run_id).is_empty(), "nothing of the run is left");
}

#[test]
fn ctrl_c_during_a_restart_or_a_stop_leaves_no_container_volume_or_network() {
    if !docker() {
        return;
    }
    // A service that ignores SIGTERM: a restart waits 5 s for it to go, a stop waits out its grace period; the
    // interrupt lands in that wait, with a data volume in use.
    let stubborn = reference_image(&format!(
        "ENV REFERENCE_DEFECTS=sigterm-ignored\n{}",
        crate::support::SOUND_IMAGE
    ));
    let spec = |step: &str| {
        format!(
            "title: t\nquestion: {{ number: 1, text: q }}\nbrief: b\nrules: [{{ id: r, text: t }}]\nservice: {{ ready: {{ http: /health }}, data: /data, start_timeout: 60s }}\nprobes:\n  - {{ id: p, title: t, category: c, rules: [r], why: w, hint: h, steps: [ {step}, {{ wait: {{ duration: 60s }} }} ] }}\n"
        )
    };
    let volume_in_use = |name: &str| {
        container_running(name)
            && !docker_lines(&["volume", "ls", "-q", "--filter", "label=dev.proctor.managed=1"]).is_empty()
            && {
                std::thread::sleep(Duration::from_millis(1500));
                true
            }
    };
    interrupt_when(
        "ctrl-c-restarting",
        &spec("{ restart: {} }"),
        stubborn.path(),
        volume_in_use,
    );
    interrupt_when(
        "ctrl-c-stopping",
        &spec("{ stop: { grace: 30s } }"),
        stubborn.path(),
        volume_in_use,
    );
}

/// Copies a test image's folder into `dir/name`.
fn copy_into(from: &Path, dir: &Path, name: &str) {
    let to = dir.join(name);
    std::fs::create_dir_all(&to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_into(&entry.path(), &to, &entry.file_name().to_string_lossy());
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// A Compose project: `api` (built from `api`, with the ports, privileges and host paths a careless project
/// has) and its database `store` (the fixture's key-value store, keeping its data in a named volume, with a
/// read-only file of the project).
fn compose_project(api: &Path) -> tempfile::TempDir {
    let dir = temp_dir(&[(
        "compose.yaml",
        concat!(
            "services:\n",
            "  api:\n",
            "    build: ./api\n",
            "    ports: [\"8080:8080\"]\n",
            "    cap_add: [NET_ADMIN]\n",
            "    environment: [STORE_HOST=store]\n",
            "    depends_on: [store]\n",
            "    deploy: { resources: { limits: { memory: 200M } } }\n",
            "  store:\n",
            "    build: ./store\n",
            "    volumes: [\"storedata:/var/lib/store\", \"./seed.sql:/seed.sql\"]\n",
            "volumes:\n",
            "  storedata: {}\n",
        ),
    )]);
    std::fs::write(dir.path().join("seed.sql"), "-- seed\n").expect("seed");
    copy_into(api, dir.path(), "api");
    let store = submission(
        "hostile",
        &["store"],
        "COPY --chown=65534:65534 data /var/lib/store\nUSER 65534:65534\n",
    );
    std::fs::create_dir(store.path().join("data")).expect("mkdir");
    std::fs::write(store.path().join("data/.keep"), "").expect("keep");
    copy_into(store.path(), dir.path(), "store");
    dir
}

#[test]
fn a_compose_project_is_graded_with_replicas_and_nothing_of_it_is_left() {
    if !docker() {
        return;
    }
    let api = reference_image(crate::support::SOUND_IMAGE);
    let project = compose_project(api.path());
    let out = temp_dir(&[]);
    let report = out.path().join("report.json");
    let output = proctor()
        .args(["run", "stateless-replicas", "--compose"])
        .arg(project.path())
        .args(["--service", "api", "--report"])
        .arg(format!("json={}", report.display()))
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = read_report(&report);
    let failed: Vec<(String, String)> = verdicts(&report)
        .into_iter()
        .filter(|(_, verdict)| verdict != "\"passed\"")
        .collect();
    assert!(failed.is_empty(), "not passed: {failed:?}\n{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let target = report["challenges"][0]["target"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(target.contains("service `api` of the Compose project"), "{target}");
    let run_id = report["run_id"].as_str().expect("run id");
    assert!(leftovers(run_id).is_empty(), "left {:?}", leftovers(run_id));
    // The candidate's files are as they were.
    let file = std::fs::read_to_string(project.path().join("compose.yaml")).expect("read");
    assert!(file.contains("8080:8080") && file.contains("NET_ADMIN"));
}

#[test]
fn a_compose_project_with_a_host_path_or_without_its_service_is_refused_clearly() {
    if !docker() {
        return;
    }
    let project = temp_dir(&[(
        "compose.yaml",
        "services:\n  api:\n    image: proctor-no-such-image:never\n    volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]\n  db:\n    image: proctor-no-such-image:never\n",
    )]);
    let run = |service: Option<&str>| {
        let mut command = proctor();
        command.args(["run", "rate-limiter", "--compose"]).arg(project.path());
        if let Some(service) = service {
            command.args(["--service", service]);
        }
        command.env("NO_COLOR", "1").output().expect("runs")
    };
    let several = run(None);
    let said = String::from_utf8_lossy(&several.stdout).to_string() + &String::from_utf8_lossy(&several.stderr);
    assert!(
        said.contains("several services (api, db): name the one to grade with --service"),
        "{said}"
    );
    // Without either Compose tool on the PATH, proctor says which to install.
    let mut bare = proctor();
    bare.args(["run", "rate-limiter", "--compose"]).arg(project.path());
    let none = bare
        .args(["--service", "api"])
        .env("PATH", "/nonexistent")
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&none.stdout).to_string() + &String::from_utf8_lossy(&none.stderr);
    assert!(
        said.contains("neither the Compose plugin (`docker compose`) nor `docker-compose` is installed"),
        "{said}"
    );
    assert_eq!(none.status.code(), Some(3), "{said}");
    let socket = run(Some("api"));
    let said = String::from_utf8_lossy(&socket.stdout).to_string() + &String::from_utf8_lossy(&socket.stderr);
    assert!(said.contains("outside the project folder"), "{said}");
    assert_eq!(socket.status.code(), Some(3), "{said}");
}

/// Runs `challenge` on a Compose project until `ready`, then interrupts proctor: it ends with 130 and leaves
/// nothing of the run on the engine.
fn interrupt_compose_when(name: &str, spec: &str, project: &Path, ready: impl Fn(&str) -> bool) {
    let target = [
        "--compose".as_ref(),
        project.as_os_str(),
        "--service".as_ref(),
        "api".as_ref(),
    ];
    signal_run(nix::sys::signal::Signal::SIGINT, name, spec, &target, (120, 60), ready);
}

#[test]
fn ctrl_c_while_a_compose_project_builds_starts_or_is_probed_leaves_nothing_behind() {
    if !docker() {
        return;
    }
    let slow_probe = "title: t\nquestion: { number: 1, text: q }\nbrief: b\nrules: [{ id: r, text: t }]\nservice: { ready: { tcp: true }, start_timeout: 90s }\nprobes:\n  - id: p\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - wait: { duration: 60s }\n";
    // Building: the api's context is large enough that sending it takes a while.
    let big = submission("hostile", &["sleep"], "COPY data.bin /data.bin\n");
    let data: Vec<u8> = (0..150usize << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(big.path().join("data.bin"), data).expect("write");
    let building = compose_project(big.path());
    let started = Instant::now();
    interrupt_compose_when("compose-building", slow_probe, building.path(), |_| {
        started.elapsed() > Duration::from_millis(400)
    });
    // Starting: the project is up, but the api never listens.
    let never = submission("hostile", &["never-listen"], "");
    let starting = compose_project(never.path());
    interrupt_compose_when("compose-starting", slow_probe, starting.path(), container_running);
    // Probing: the api is ready and a 60 s wait is under way.
    let reference = submission("proctor-reference", &[], "");
    let probing = compose_project(reference.path());
    interrupt_compose_when("compose-probing", slow_probe, probing.path(), |name| {
        container_running(name) && {
            std::thread::sleep(Duration::from_millis(800));
            true
        }
    });
}

#[test]
fn a_compose_step_restarts_the_database_and_a_project_over_its_budget_is_refused() {
    if !docker() {
        return;
    }
    let spec = "title: t\nquestion: { number: 1, text: q }\nbrief: b\nrules: [{ id: r, text: t }]\nservice: { ready: { http: /health } }\nprobes:\n  - id: p\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - restart: { service: store }\n      - request: { path: /health }\n        expect: { status: 200 }\n";
    let dir = temp_dir(&[("db-restart.yaml", spec)]);
    let api = reference_image(crate::support::SOUND_IMAGE);
    let project = compose_project(api.path());
    let report = dir.path().join("report.json");
    let output = proctor()
        .arg("run")
        .arg(dir.path().join("db-restart.yaml"))
        .arg("--compose")
        .arg(project.path())
        .args(["--service", "api", "--report"])
        .arg(format!("json={}", report.display()))
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&output.stderr).to_string();
    let report = read_report(&report);
    let probe = &report["challenges"][0]["probes"][0];
    assert_eq!(probe["verdict"], "passed", "{probe}\n{said}");
    assert_eq!(probe["steps"][0]["label"], "restart service `store` of the project");
    let run_id = report["run_id"].as_str().expect("run id");
    assert!(leftovers(run_id).is_empty(), "left {:?}", leftovers(run_id));
    // The store itself, graded: it writes into its named volume under a read-only root, and what it wrote is
    // there after a restart (and after the api's).
    let store_spec = "title: t\nquestion: { number: 1, text: q }\nbrief: b\nrules: [{ id: r, text: t }]\nservice: { ready: { http: /health } }\nprobes:\n  - id: p\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { method: PUT, path: /kv/k, body: kept }\n        expect: { status: 204 }\n      - restart: {}\n      - restart: { service: api }\n      - request: { path: /kv/k }\n        expect: { status: 200, body: { equals: kept } }\n";
    std::fs::write(dir.path().join("store.yaml"), store_spec).expect("write");
    let stored = dir.path().join("store.json");
    proctor()
        .arg("run")
        .arg(dir.path().join("store.yaml"))
        .arg("--compose")
        .arg(project.path())
        .args(["--service", "store", "--report"])
        .arg(format!("json={}", stored.display()))
        .output()
        .expect("runs");
    let stored = read_report(&stored);
    let probe = &stored["challenges"][0]["probes"][0];
    assert_eq!(probe["verdict"], "passed", "{probe}");
    // Without a Compose project there is no database to restart: the probe is not applicable.
    let local = dir.path().join("local.json");
    proctor()
        .arg("run")
        .arg(dir.path().join("db-restart.yaml"))
        .args([
            "--cmd",
            &static_bin("proctor-reference").display().to_string(),
            "--report",
        ])
        .arg(format!("json={}", local.display()))
        .output()
        .expect("runs");
    assert_eq!(
        read_report(&local)["challenges"][0]["probes"][0]["verdict"],
        "not_applicable"
    );
    // Two services at 512 MiB each do not fit in 700 MiB.
    let over = proctor()
        .arg("run")
        .arg(dir.path().join("db-restart.yaml"))
        .arg("--compose")
        .arg(project.path())
        .args(["--service", "api", "--memory", "512MiB", "--budget-memory", "700MiB"])
        .env("NO_COLOR", "1")
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&over.stdout).to_string() + &String::from_utf8_lossy(&over.stderr);
    assert!(said.contains("over the budget of 700 MiB"), "{said}");
    assert_eq!(over.status.code(), Some(3), "{said}");
}

#[test]
fn a_folder_of_submissions_is_graded_into_reports_and_a_leaderboard_and_a_rerun_skips_it() {
    if !docker() {
        return;
    }
    let submissions = temp_dir(&[]);
    let alice = reference_image(crate::support::SOUND_IMAGE);
    copy_into(alice.path(), submissions.path(), "alice");
    // A build that fails, and a service that exits at start: each its own verdict, not the batch's.
    std::fs::create_dir(submissions.path().join("bob")).expect("mkdir");
    std::fs::write(
        submissions.path().join("bob/Dockerfile"),
        "FROM scratch\nCOPY missing /app\n",
    )
    .expect("write");
    let carol = submission("hostile", &["exit-now"], "");
    copy_into(carol.path(), submissions.path(), "carol");
    let out = temp_dir(&[]);
    let grade = |out: &Path, extra: &[&str]| {
        proctor()
            .args(["grade", "status-codes", "--submissions"])
            .arg(submissions.path())
            .arg("--out")
            .arg(out)
            .args(extra)
            .env("NO_COLOR", "1")
            .output()
            .expect("runs")
    };
    let first = grade(out.path(), &["--jobs", "3"]);
    let said = String::from_utf8_lossy(&first.stderr).to_string();
    assert_eq!(first.status.code(), Some(0), "{said}");
    let table = String::from_utf8_lossy(&first.stdout).to_string();
    let csv = std::fs::read_to_string(out.path().join("leaderboard.csv")).expect("csv");
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.splitn(7, ',').collect()).collect();
    assert_eq!(rows[0][..2], ["1", "alice"], "{csv}");
    assert_eq!(rows[0][5], "passed", "{csv}");
    let bob = rows.iter().find(|r| r[1] == "bob").expect("bob");
    assert_eq!(bob[5], "not graded");
    assert!(csv.contains("the image build failed"), "{csv}");
    assert!(rows.iter().any(|r| r[1] == "carol" && r[5] == "not graded"), "{csv}");
    assert!(table.contains("alice") && table.contains("100.0%"), "{table}");
    for name in ["alice", "bob", "carol"] {
        for file in [
            "report.json",
            "report.xml",
            "report.md",
            "report.html",
            "candidate.html",
            "entry.json",
        ] {
            assert!(out.path().join(name).join(file).is_file(), "{name}/{file} missing");
        }
        let run_id = read_report(&out.path().join(name).join("report.json"))["run_id"]
            .as_str()
            .expect("run id")
            .to_string();
        assert!(leftovers(&run_id).is_empty(), "{name} left {:?}", leftovers(&run_id));
    }
    let index = std::fs::read_to_string(out.path().join("index.html")).expect("index");
    assert!(index.contains("href=\"alice/report.html\""), "{index}");
    // Nothing changed: nothing is graded again.
    let again = grade(out.path(), &[]);
    let said = String::from_utf8_lossy(&again.stderr).to_string();
    assert_eq!(said.matches("unchanged, not graded again").count(), 3, "{said}");
    // A submission that changed is graded again.
    std::fs::write(
        submissions.path().join("bob/Dockerfile"),
        "FROM scratch\nCOPY nothing /app\n",
    )
    .expect("write");
    let changed = grade(out.path(), &[]);
    let said = String::from_utf8_lossy(&changed.stderr).to_string();
    assert_eq!(said.matches("unchanged, not graded again").count(), 2, "{said}");
    // Two partitions, merged, rank as the whole batch did. Within a budget one submission fits (512 MiB of
    // 1 GiB) and one does not (1 CPU of 0.5): graded one at a time, the one over the budget alone, none never.
    let parts = temp_dir(&[]);
    for i in ["1/2", "2/2"] {
        let dir = parts.path().join(i.replace('/', "-of-"));
        let budget = ["--max-memory", "1GiB", "--max-cpus", "0.5", "--jobs", "2"];
        let part = grade(&dir, &[&["--partition", i][..], &budget[..]].concat());
        assert_eq!(part.status.code(), Some(0), "{}", String::from_utf8_lossy(&part.stderr));
    }
    let merged = parts.path().join("merged");
    let merge = proctor()
        .arg("merge")
        .arg(parts.path().join("1-of-2/leaderboard.json"))
        .arg(parts.path().join("2-of-2/leaderboard.json"))
        .arg("--out")
        .arg(&merged)
        .output()
        .expect("runs");
    assert_eq!(merge.status.code(), Some(0));
    let board: serde_json::Value = read_report(&merged.join("leaderboard.json"));
    let order: Vec<&str> = board["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["submission"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(order, ["alice", "bob", "carol"]);
    // Each entry still leads to its reports, wherever the partition wrote them.
    for entry in board["entries"].as_array().expect("entries") {
        let reports = merged.join(entry["reports"].as_str().expect("reports"));
        assert!(reports.join("report.html").is_file(), "{}", reports.display());
    }
}

/// An engine reached over TCP, as a remote one is: a forwarder from a port on 127.0.0.1 to the local engine's
/// socket, for as long as the test runs. `DOCKER_HOST=tcp://…` makes proctor treat the engine as remote.
fn engine_over_tcp() -> String {
    let socket = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
        .unwrap_or_else(|| "/var/run/docker.sock".to_string());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(engine) = std::os::unix::net::UnixStream::connect(&socket) else {
                continue;
            };
            let (mut client_in, mut engine_out) =
                (client.try_clone().expect("clone"), engine.try_clone().expect("clone"));
            let (mut client_out, mut engine_in) = (client, engine);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_in, &mut engine_out);
                let _ = engine_out.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut engine_in, &mut client_out);
                let _ = client_out.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    format!("tcp://{address}")
}

#[test]
fn a_batch_on_a_remote_engine_builds_and_grades_through_published_ports() {
    if !docker() {
        return;
    }
    let submissions = temp_dir(&[]);
    let sound = reference_image(crate::support::SOUND_IMAGE);
    copy_into(sound.path(), submissions.path(), "alice");
    copy_into(sound.path(), submissions.path(), "bob");
    let out = temp_dir(&[]);
    let graded = proctor()
        .args(["grade", "status-codes", "stateless-replicas", "--submissions"])
        .arg(submissions.path())
        .arg("--out")
        .arg(out.path())
        .env("DOCKER_HOST", engine_over_tcp())
        .env("NO_COLOR", "1")
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&graded.stderr).to_string();
    assert_eq!(graded.status.code(), Some(0), "{said}");
    for name in ["alice", "bob"] {
        let report = read_report(&out.path().join(name).join("report.json"));
        for challenge in report["challenges"].as_array().expect("challenges") {
            // Published, as for any engine that is not a local socket: probes reach the ports on 127.0.0.1.
            let target = challenge["target"].as_str().unwrap_or_default();
            assert!(target.contains("published on 127.0.0.1"), "{name}: {target}");
            assert_eq!(challenge["score"]["percent"], 100.0, "{name}: {challenge}");
        }
        let run_id = report["run_id"].as_str().expect("run id");
        assert!(leftovers(run_id).is_empty(), "{name} left {:?}", leftovers(run_id));
    }
}
