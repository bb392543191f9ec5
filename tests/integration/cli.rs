//! The binary as a user meets it: list, show, validate, schema, demo, run, and the exit codes.

use predicates::prelude::*;

use crate::support::{proctor, temp_dir};

#[test]
fn list_shows_every_catalog_challenge_with_question_probes_and_points() {
    let out = proctor().arg("list").assert().success().get_output().stdout.clone();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("id "), "{text}");
    for id in ["rest-resource", "http-caching"] {
        assert!(text.lines().any(|l| l.starts_with(id)), "{id} missing:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("http-caching") && l.contains(" 18 ") && l.contains("[caching")),
        "{text}"
    );
}

#[test]
fn show_prints_the_brief_and_how_it_is_graded() {
    proctor()
        .args(["show", "http-caching"])
        .assert()
        .success()
        .stdout(predicate::str::contains("# http-caching — Add ETag caching"))
        .stdout(predicate::str::contains("Interview question 18"))
        .stdout(predicate::str::contains("If-None-Match"))
        .stdout(predicate::str::contains("## Rules"))
        .stdout(predicate::str::contains(
            "- **`if-match`** — `PUT` with `If-Match`: when no listed entity-tag matches",
        ))
        .stdout(predicate::str::contains(
            "  *probes:* if-match-prevents-lost-updates, if-match-uses-strong-comparison, if-match-star-and-lists",
        ))
        .stdout(predicate::str::contains(
            "- **etag-is-strong-and-quoted** (1 pt, rules strong-etag)",
        ));
}

#[test]
fn completions_load_in_bash_and_complete_subcommands_and_flags() {
    let out = proctor()
        .args(["completions", "bash"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let dir = temp_dir(&[("proctor.bash", &String::from_utf8_lossy(&out))]);
    // Sourced by a real bash: the script registers a completion, and asking it to complete `proctor ru` and
    // `proctor run --cm` offers the subcommand and the flag.
    let script = format!(
        "source {}/proctor.bash && complete -p proctor && \
         COMP_WORDS=(proctor ru) COMP_CWORD=1 && _proctor proctor ru proctor && echo \"${{COMPREPLY[@]}}\" && \
         COMP_WORDS=(proctor run --cm) COMP_CWORD=2 && _proctor proctor --cm run && echo \"${{COMPREPLY[@]}}\"",
        dir.path().display()
    );
    let shell = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("bash runs");
    let text = String::from_utf8_lossy(&shell.stdout);
    assert!(
        shell.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&shell.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("proctor"), "{text}");
    assert_eq!(lines[1], "run", "{text}");
    assert_eq!(lines[2], "--cmd", "{text}");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        proctor()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("demo"));
    }
}

#[test]
fn the_man_page_documents_the_commands_and_exit_codes() {
    proctor()
        .arg("man")
        .assert()
        .success()
        .stdout(predicate::str::starts_with(".ie"))
        .stdout(predicate::str::contains(".TH proctor 1"))
        .stdout(predicate::str::contains("proctor\\-run(1)"))
        .stdout(predicate::str::contains("interrupted (Ctrl\\-C"));
    // Every page the main one points to exists, with the subcommand's own options.
    let dir = temp_dir(&[]);
    proctor().args(["man", "--out-dir"]).arg(dir.path()).assert().success();
    let run = std::fs::read_to_string(dir.path().join("proctor-run.1")).expect("proctor-run.1 written");
    assert!(run.contains(".TH proctor-run 1") && run.contains("\\-\\-cmd"), "{run}");
    assert!(dir.path().join("proctor.1").exists() && dir.path().join("proctor-demo.1").exists());
}

#[test]
fn list_as_json_names_every_challenge_with_its_question_and_points() {
    let out = proctor()
        .args(["list", "--format", "json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let list: serde_json::Value = serde_json::from_slice(&out).expect("list --format json is JSON");
    let items = list.as_array().expect("an array");
    assert_eq!(items.len(), proctor::catalog::sources().len());
    let caching = items
        .iter()
        .find(|c| c["id"] == "http-caching")
        .expect("http-caching listed");
    assert_eq!(caching["question"]["number"], 18);
    assert!(caching["points"].as_u64().is_some_and(|p| p > 0) && caching["probes"].as_u64().is_some_and(|p| p > 0));
}

#[test]
fn a_report_to_stdout_leaves_stdout_to_it_and_the_terminal_report_to_stderr() {
    let out = proctor()
        .args(["demo", "status-codes", "--color", "never", "--report", "json=-"])
        .assert()
        .success()
        .get_output()
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is exactly the JSON report");
    assert_eq!(report["challenges"][0]["id"], "status-codes");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("score ") && stderr.contains("PASSED"), "{stderr}");
    proctor()
        .args(["demo", "status-codes", "--report", "json=-", "--report", "junit=-"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("only one report can go to standard output"));
}

#[test]
fn without_a_terminal_each_finished_challenge_is_one_line_and_quiet_prints_nothing() {
    // assert_cmd gives the binary pipes, not a terminal: progress is plain lines on stderr.
    let out = proctor()
        .args(["demo", "status-codes", "rest-resource", "--color", "never"])
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    for id in ["status-codes", "rest-resource"] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&format!("{id}: ")) && l.contains("(100.0%), passed in")),
            "{stderr}"
        );
    }
    let quiet = proctor()
        .args(["demo", "status-codes", "-q"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(quiet.stdout.is_empty() && quiet.stderr.is_empty(), "{quiet:?}");
    proctor()
        .args(["demo", "status-codes", "-q", "--defects", "notes-created-200"])
        .assert()
        .code(1)
        .stdout("")
        .stderr("");
}

#[test]
fn on_github_actions_failures_become_annotations_and_the_summary_is_appended() {
    let dir = temp_dir(&[("summary.md", "an earlier step's summary\n")]);
    let summary = dir.path().join("summary.md");
    let out = proctor()
        .args([
            "demo",
            "status-codes",
            "--color",
            "never",
            "--defects",
            "notes-created-200",
        ])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let annotations: Vec<&str> = stdout.lines().filter(|l| l.starts_with("::")).collect();
    assert_eq!(annotations.len(), 1, "{stdout}");
    assert!(
        annotations[0].starts_with("::error title=status-codes/create-is-201-with-location — ")
            && annotations[0].contains("expected 201")
            && annotations[0].contains("%0Awhy: "),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("Points ") && l.ends_with("/18")),
        "{stdout}"
    );
    let written = std::fs::read_to_string(&summary).expect("summary");
    assert!(written.starts_with("an earlier step's summary\n"), "{written}");
    assert!(written.contains("status-codes"), "{written}");
}

#[test]
fn a_tls_challenge_needs_a_service_proctor_starts() {
    // The certificate is made for the run and given in the env: a running service cannot receive it.
    proctor()
        .args(["run", "tls", "--url", "http://127.0.0.1:9", "--color", "never"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains(
            "giving the service the run's TLS certificate is not possible for http://127.0.0.1:9/",
        ));
}

#[test]
fn the_committed_schemas_are_current() {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/challenge.schema.json"))
        .expect("committed");
    assert_eq!(
        spec,
        proctor::spec::json_schema(),
        "run `proctor schema > schema/challenge.schema.json`"
    );
    let report =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/report.schema.json")).expect("committed");
    assert_eq!(
        report,
        proctor::outcome::json_schema(),
        "run `proctor schema --report > schema/report.schema.json`"
    );
    proctor().arg("schema").assert().success().stdout(spec);
}

#[test]
fn every_catalog_file_validates_against_the_published_schema() {
    let schema: serde_json::Value = serde_json::from_str(&proctor::spec::json_schema()).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    for source in proctor::catalog::sources() {
        let value: serde_json::Value = serde_yaml::from_str(&source.text).expect("catalog YAML parses");
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", source.name);
    }
    let unknown: serde_json::Value = serde_json::json!({"title": "t", "question": {"number": 1, "text": "q"}, "brief": "b", "probes": [], "extra": 1});
    assert!(
        !validator.is_valid(&unknown),
        "the schema rejects unknown fields like the loader does"
    );
}

#[test]
fn validate_accepts_the_catalog_and_rejects_bad_files_with_exit_2() {
    let count = proctor::catalog::sources().len();
    proctor()
        .args(["validate", "challenges"])
        .assert()
        .code(0)
        .stdout(predicate::str::starts_with(format!("ok: {count} challenge(s)")));
    let dir = temp_dir(&[("broken.yaml", "title: t\n"), ("also-broken.yaml", "title: [\n")]);
    proctor()
        .arg("validate")
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("broken.yaml:1:1: missing field `question`"))
        .stderr(predicate::str::contains(
            "also-broken.yaml:1:8: title: invalid type: sequence, expected a string",
        ))
        .stderr(predicate::str::contains("error: 2 problems in the spec files"));
}

#[test]
fn demo_grades_the_reference_at_100_percent_with_exit_0() {
    let count = proctor::catalog::sources().len();
    proctor()
        .arg("demo")
        .assert()
        .code(0)
        .stdout(predicate::str::contains(format!(
            "{count} challenges graded: {count} passed, 0 not passed"
        )))
        .stdout(predicate::str::contains("score 18/18 (100%)"))
        .stdout(predicate::str::contains("score 22/22 (100%)"));
}

#[test]
fn a_defect_scores_below_the_pass_mark_with_exit_1_and_explains_itself() {
    proctor()
        .args(["demo", "http-caching", "--defects", "ignore-if-match", "--seed", "7"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("✗ if-match-prevents-lost-updates"))
        .stdout(predicate::str::contains("status: expected 412, got 200 OK"))
        .stdout(predicate::str::contains("why:  RFC 9110 §13.1.1"))
        .stdout(predicate::str::contains("hint: Evaluate If-Match"))
        .stdout(predicate::str::contains(
            "replay: (set BASE=<your service's base URL>, then paste)",
        ))
        .stdout(predicate::str::contains(
            "# step 2: PUT with a stale ETag: PUT /documents/",
        ))
        .stdout(predicate::str::contains(r#"curl -sS -i -X PUT "$BASE"/documents/"#))
        .stdout(predicate::str::contains("seed 7"));
}

#[test]
fn min_score_overrides_the_pass_mark() {
    proctor()
        .args([
            "demo",
            "http-caching",
            "--defects",
            "ignore-if-match",
            "--min-score",
            "70",
        ])
        .assert()
        .code(0);
    proctor()
        .args(["demo", "--min-score", "120"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("outside 0..=100"));
}

#[test]
fn usage_errors_exit_2() {
    proctor().args(["run", "rest-resource"]).assert().code(2);
    proctor()
        .args(["run", "no-such-challenge", "--url", "http://127.0.0.1:9"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "unknown challenge `no-such-challenge`: not a file, not a folder, not in the catalog",
        ));
    proctor()
        .args(["demo", "--defects", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown defect `nope`"));
    proctor()
        .args(["demo", "--report", "yaml=x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown format `yaml`"));
}

#[test]
fn an_unreachable_url_exits_3_with_the_reason() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    proctor()
        .args([
            "run",
            "rest-resource",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--start-timeout",
            "300ms",
        ])
        .assert()
        .code(3)
        .stdout(predicate::str::contains(
            "could not grade: the service at http://127.0.0.1:",
        ))
        .stdout(predicate::str::contains("was not ready within 0.3 s"))
        .stdout(predicate::str::contains("could not connect"));
}

#[test]
fn help_teaches_the_commands_and_exit_codes() {
    proctor()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Quick start:"))
        .stdout(predicate::str::contains("130  interrupted"));
    proctor()
        .args(["run", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("3    the service could not be started"));
}

#[test]
fn a_project_folder_named_after_a_challenge_does_not_hide_it() {
    let dir = temp_dir(&[]);
    std::fs::create_dir(dir.path().join("rest-resource")).expect("mkdir");
    std::fs::write(dir.path().join("rest-resource/app.py"), "print(1)\n").expect("write");
    proctor()
        .current_dir(dir.path())
        .args(["show", "rest-resource"])
        .assert()
        .success()
        .stdout(predicate::str::contains("# rest-resource — Build a REST resource"));
}

#[test]
fn watch_grades_again_on_a_change_and_shows_only_what_changed() {
    use std::io::{BufRead, Write};
    let dir = temp_dir(&[("defects", "")]);
    let proctor_bin = crate::support::proctor_path();
    let cmd = format!(
        "REFERENCE_DEFECTS=$(cat {}/defects) exec {} reference",
        dir.path().display(),
        proctor_bin.display()
    );
    let mut child = std::process::Command::new(&proctor_bin)
        .args(["run", "rest-resource", "--cmd", &cmd, "--watch"])
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("proctor starts");
    let (lines, read) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let wait_for = |what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut seen = Vec::new();
        while std::time::Instant::now() < deadline {
            if let Ok(line) = read.recv_timeout(std::time::Duration::from_millis(200)) {
                if line.contains(what) {
                    return line;
                }
                seen.push(line);
            }
        }
        panic!("never saw {what:?}; saw:\n{}", seen.join("\n"));
    };
    // The first run prints the whole report.
    wait_for("score");
    // A change below the watched folder grades again, showing only what changed.
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::write(dir.path().join("defects"), "create-200").expect("write");
    let failing = wait_for("newly failing");
    assert!(failing.contains("rest-resource/create-returns-201"), "{failing}");
    std::fs::write(dir.path().join("defects"), "").expect("write");
    let passing = wait_for("newly passing");
    assert!(passing.contains("rest-resource/create-returns-201"), "{passing}");
    // Enter grades again; nothing changed.
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"\n").expect("enter");
    wait_for("nothing changed");
    let (code, _) = crate::support::signal(
        &mut child,
        nix::sys::signal::Signal::SIGINT,
        std::time::Duration::from_secs(20),
    );
    assert_eq!(code, Some(130));
}
