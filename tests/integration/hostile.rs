//! Hostile services and specs: each attack has its verdict, and nothing it sends reaches a report raw.

use predicates::prelude::*;
use proctor::report::Format;
use proctor::target::Target;
use tokio::net::TcpListener;

use crate::support::{challenge, grade, proctor, spec_with_probes, temp_dir};

/// A body full of what terminals, Markdown renderers and XML parsers act on: an OSC title write, an OSC 52
/// clipboard write, clear-screen, a bidi override, NUL, and a code fence that tries to break out into a heading,
/// a link and raw HTML.
const HOSTILE_BODY: &str = "\u{1b}]0;pwned\u{7}\u{1b}]52;c;cm0gLXJmIH4=\u{7}\u{1b}[2J\u{202e}gnp.exe\u{0}\n```\n# Owned\n[click](https://evil.example) <img src=x onerror=alert(1)>\n";

/// Answers every request with the hostile body and a hostile header, written raw (HTTP frameworks refuse to).
async fn hostile_service() -> url::Url {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Evil: \u{202e}reversed \u{9b}31m\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    HOSTILE_BODY.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(HOSTILE_BODY.as_bytes()).await;
            });
        }
    });
    url::Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url")
}

fn render(format: Format, report: &proctor::outcome::RunReport) -> String {
    let mut out = Vec::new();
    format.write(report, &mut out).expect("writes");
    String::from_utf8(out).expect("UTF-8")
}

#[tokio::test]
async fn a_hostile_body_reaches_no_report_raw() {
    let url = hostile_service().await;
    let probes = "  - id: body\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /x }\n        expect: { status: 200, body: { equals: nothing }, headers: { X-Evil: { equals: nothing } } }\n";
    let report = grade(&[challenge("hostile", &spec_with_probes(probes))], Target::Url(url)).await;
    let mut terminal = Vec::new();
    proctor::report::terminal::write(&report, &mut terminal, true).expect("writes");
    let terminal = String::from_utf8(terminal).expect("UTF-8");
    // Our own colours are the only escape sequences: CSI + digits + 'm'.
    let own_styling = regex::Regex::new("\u{1b}\\[[0-9;]*m").expect("regex");
    let unstyled = own_styling.replace_all(&terminal, "");
    assert!(
        !unstyled.chars().any(|c| c.is_control() && c != '\n' && c != '\t') && !unstyled.contains('\u{202e}'),
        "{unstyled:?}"
    );
    assert!(terminal.contains(r"\x1b]0;pwned\x07"), "shown, not run: {terminal}");

    let markdown = render(Format::Markdown, &report);
    let outside_code: String = {
        // Everything outside fenced blocks must be free of headings, links and HTML from the service.
        let mut text = String::new();
        let mut fence: Option<String> = None;
        for line in markdown.lines() {
            let ticks: String = line.chars().take_while(|c| *c == '`').collect();
            match &fence {
                Some(open) if ticks.len() >= open.len() && line.trim_end() == ticks => fence = None,
                Some(_) => {}
                None if ticks.len() >= 3 => fence = Some(ticks),
                None => {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        text
    };
    assert!(!outside_code.contains("# Owned"), "{markdown}");
    assert!(!outside_code.contains("<img"), "{markdown}");
    assert!(!outside_code.contains("](https://evil"), "{markdown}");
    assert!(!markdown.contains('\u{1b}'), "{markdown}");

    let junit = render(Format::Junit, &report);
    roxmltree::Document::parse(&junit).unwrap_or_else(|e| panic!("JUnit is not well-formed XML ({e}):\n{junit}"));
}

#[test]
fn a_spec_with_hostile_text_is_shown_without_control_characters() {
    let spec = "title: \"t\\e]0;owned\\a\"\nquestion: { number: 1, text: q }\nbrief: \"\\e[2Jbrief\"\nrules: [{ id: r, text: \"rule \\e[5m\" }]\nprobes:\n  - { id: a, title: \"x\\e[31m\", category: c, rules: [r], why: w, hint: h, steps: [ { request: { path: /x } } ] }\n";
    let dir = temp_dir(&[("evil.yaml", spec)]);
    let output = proctor()
        .args(["show"])
        .arg(dir.path().join("evil.yaml"))
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(!stdout.contains('\u{1b}') && !stdout.contains('\u{7}'), "{stdout:?}");
    assert!(stdout.contains(r"\x1b]0;owned"), "{stdout}");
}

#[test]
fn points_that_would_overflow_are_refused_before_grading() {
    let spec = "title: t\nquestion: { number: 1, text: q }\nbrief: b\nrules: [{ id: r, text: t }]\nprobes:\n  - { id: a, title: t, category: c, rules: [r], points: 4294967295, why: w, hint: h, steps: [ { request: { path: /x } } ] }\n  - { id: b, title: t, category: c, rules: [r], points: 4294967295, why: w, hint: h, steps: [ { request: { path: /x } } ] }\n";
    let dir = temp_dir(&[("points.yaml", spec)]);
    proctor()
        .arg("validate")
        .arg(dir.path().join("points.yaml"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("a probe is worth 1 to 1000 points"))
        .stderr(predicate::str::contains("be worth at most 100000"));
}

#[test]
fn specs_asking_for_the_meaningless_are_refused_with_every_problem_at_once() {
    let probes = "  - id: a\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /x }\n        repeat: 100000000\n        expect: { headers: { X: { gt: .nan } } }\n      - wait: { duration: 1s, plus: 100h }\n";
    let spec = spec_with_probes(probes).replace("request_timeout: 2s", "request_timeout: 0ms");
    let dir = temp_dir(&[("silly.yaml", &spec)]);
    proctor()
        .arg("validate")
        .arg(dir.path().join("silly.yaml"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("service.request_timeout: 0 ms is outside"))
        .stderr(predicate::str::contains("repeat sends 1 to 10000 requests"))
        .stderr(predicate::str::contains("NaN is not a number"))
        .stderr(predicate::str::contains("wait.plus: 360000000 ms is outside"));
}

#[test]
fn report_destinations_are_checked_before_grading_and_a_late_failure_keeps_the_verdict() {
    let dir = temp_dir(&[]);
    let missing = dir.path().join("no-such-folder/report.json");
    proctor()
        .args(["demo", "rate-limiter", "--report"])
        .arg(format!("json={}", missing.display()))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("does not exist"))
        .stdout(predicate::str::is_empty());
    let same = dir.path().join("same.out");
    proctor()
        .args(["demo", "rate-limiter", "--report"])
        .arg(format!("json={}", same.display()))
        .arg("--report")
        .arg(format!("junit={}", same.display()))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("named for two reports"));
    proctor()
        .args(["demo", "rate-limiter", "--report"])
        .arg(format!("json={}", dir.path().display()))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is a folder"));
    assert!(!same.exists(), "a refused run leaves no file behind");
}

#[test]
fn flags_that_could_overflow_or_never_make_sense_are_usage_errors() {
    proctor()
        .args(["demo", "--jobs", "18446744073709551615"])
        .assert()
        .code(2);
    proctor()
        .args(["demo", "--request-timeout", "0ms"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is outside"));
    proctor()
        .args([
            "demo",
            "rate-limiter",
            "--max-body",
            "4MiB",
            "--request-timeout",
            "1m30s",
        ])
        .assert()
        .code(0);
}

#[test]
fn closed_or_full_standard_output_is_an_exit_code_not_a_panic() {
    for args in [&["list"][..], &["show", "rate-limiter"], &["schema"], &["validate"]] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let output = std::process::Command::new(crate::support::proctor_path())
            .args(args)
            .stdout(full)
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        // A reader that goes away (`proctor list | head -1`) ends the output quietly.
        let mut child = std::process::Command::new(crate::support::proctor_path())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("runs");
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("waits");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_base_path_is_honoured_and_credentials_never_reach_a_report() {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/api/health", get(|| async { "ok" }))
        .route("/api/x", get(|| async { "under the base" }));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let probes = "  - id: base\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /x }\n        expect: { status: 200, body: { equals: under the base } }\n";
    let spec = spec_with_probes(probes).replace("ready: { tcp: true }", "ready: { http: /health }");
    let url = url::Url::parse(&format!("http://grader:s3cr3t-pw@127.0.0.1:{port}/api")).expect("url");
    let report = grade(&[challenge("base", &spec)], Target::Url(url)).await;
    let json = render(Format::Json, &report);
    assert_eq!(report.challenges[0].score.percent, 100.0, "{json}");
    for format in [Format::Json, Format::Junit, Format::Markdown] {
        let text = render(format, &report);
        assert!(!text.contains("s3cr3t-pw"), "{format:?} leaks the password:\n{text}");
    }
}

#[test]
fn a_spec_cannot_send_readiness_elsewhere_or_change_how_the_service_starts() {
    let spec = "title: t\nquestion: { number: 1, text: q }\nbrief: b\nrules: [{ id: r, text: t }]\nservice:\n  ready: { http: '//127.0.0.2:9/x' }\n  env: { PATH: /tmp/evil, LD_PRELOAD: /tmp/evil.so, PORT: '1', OK: \"a\\0b\" }\nprobes:\n  - { id: a, title: t, category: c, rules: [r], why: w, hint: h, steps: [ { request: { path: /x } } ] }\n";
    let dir = temp_dir(&[("sneaky.yaml", spec)]);
    let assert = proctor()
        .arg("validate")
        .arg(dir.path().join("sneaky.yaml"))
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    for expected in [
        "service.ready.http: the readiness path `//127.0.0.2:9/x` must be a",
        "service.env.PATH",
        "service.env.LD_PRELOAD",
        "service.env.PORT",
        "cannot contain a NUL character",
    ] {
        assert!(stderr.contains(expected), "{expected}:\n{stderr}");
    }
}

#[test]
fn a_url_proctor_cannot_grade_is_refused_at_once() {
    let started = std::time::Instant::now();
    proctor()
        .args(["run", "rate-limiter", "--url", "ftp://127.0.0.1:21/"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("only http:// and https://"));
    proctor()
        .args(["run", "rate-limiter", "--path", "/no/such/submission"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no such folder"));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn a_service_that_stops_accepting_connections_cannot_hold_a_burst() {
    // A listener that never accepts, with the smallest backlog: once the kernel's queue is full, further connects
    // hang (SYNs are dropped) instead of failing.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let port = socket.local_addr().expect("addr").port();
    let _listener = socket.listen(1).expect("listen");
    let probes = "  - id: burst\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /x }\n        burst: { count: 20, concurrency: 20 }\n        expect: { statuses: { 200: 20 } }\n";
    let spec = spec_with_probes(probes).replace("request_timeout: 2s", "request_timeout: 1s");
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url");
    let started = std::time::Instant::now();
    // The TCP readiness check passes: the kernel completes the first handshakes on its own.
    let report = grade(&[challenge("stalled", &spec)], Target::Url(url)).await;
    let probe = &report.challenges[0].probes[0];
    assert_ne!(probe.verdict, proctor::outcome::Verdict::Passed);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "a 1 s request timeout held the burst for {:?}: {:?}",
        started.elapsed(),
        probe.message
    );
}

#[test]
fn specs_built_to_choke_the_parser_are_refused_before_parsing() {
    let nested = format!("title: {}{}\n", "[".repeat(200_000), "]".repeat(200_000));
    let indented: String = (0..300).map(|i| format!("{}a{i}:\n", " ".repeat(i))).collect();
    let huge = format!("title: t\nbrief: |\n{}", "  filler\n".repeat(200_000));
    let long_line = format!("title: {}: y\n", "x".repeat(5_000));
    let dir = temp_dir(&[
        ("nested.yaml", &nested),
        ("indented.yaml", &indented),
        ("huge.yaml", &huge),
        ("long-line.yaml", &long_line),
    ]);
    for (file, expected) in [
        ("nested.yaml", "flow collections nest deeper than 64 levels"),
        ("indented.yaml", "indented 129 spaces deep"),
        ("huge.yaml", "too big to be a challenge spec"),
        ("long-line.yaml", "long-line.yaml:1:"),
    ] {
        let started = std::time::Instant::now();
        let output = proctor()
            .arg("validate")
            .arg(dir.path().join(file))
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{file}: {stderr}");
        assert!(stderr.contains(expected), "{file}: {stderr}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{file} took {:?}",
            started.elapsed()
        );
        // No line of a spec is quoted whole when it is long.
        assert!(
            stderr.lines().all(|l| l.len() < 1_000),
            "{file}: a snippet line was not clipped"
        );
    }
}

#[test]
fn fat_endless_pages_and_huge_bursts_stay_within_memory() {
    // A paginator whose every page holds a 1 MiB value and points at another page, forever.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let url = runtime.block_on(async {
        use axum::routing::get;
        let page = std::sync::Arc::new(format!(
            "{{\"items\": [\"{}\"], \"next_cursor\": \"more\"}}",
            "x".repeat(1 << 20)
        ));
        let app = axum::Router::new()
            .route("/health", get(|| async { "ok" }))
            .route(
                "/x",
                get(move || {
                    let page = page.clone();
                    async move { ([("content-type", "application/json")], page.as_str().to_owned()) }
                }),
            )
            .route("/sink", axum::routing::post(|| async { "ok" }));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        url::Url::parse(&format!("http://127.0.0.1:{port}")).expect("url")
    });
    let probes = "  - id: walk\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /x }\n        walk: { next: { cursor: $.next_cursor }, collect: '$.items[*]', max_pages: 1000, totals: { distinct: true } }\n  - id: burst\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { method: POST, path: /sink, body: '{{filler.16777216}}' }\n        burst: { count: 100, concurrency: 10 }\n";
    let spec = spec_with_probes(probes).replace("ready: { tcp: true }", "ready: { http: /health }");
    let dir = temp_dir(&[("fat.yaml", &spec)]);
    let report = dir.path().join("report.json");
    let mut command = std::process::Command::new(crate::support::proctor_path());
    command
        .arg("run")
        .arg(dir.path().join("fat.yaml"))
        .args(["--url", url.as_str(), "--report"])
        .arg(format!("json={}", report.display()))
        .env("NO_COLOR", "1");
    let (code, stdout, peak) = crate::support::run_measured(command);
    // The burst could not be sent (proctor refuses to hold its bodies): an errored probe, exit 4.
    assert_eq!(code, Some(4), "{stdout}");
    assert!(stdout.contains("the walk collected more than 16 MiB"), "{stdout}");
    assert!(stdout.contains("request bodies add up to more than 64 MiB"), "{stdout}");
    assert!(peak < 100, "proctor peaked at {peak} MiB");
    let size = std::fs::metadata(&report).expect("report").len();
    assert!(size < 1 << 20, "the JSON report is {size} bytes");
    drop(runtime);
}

/// A server whose first connection answers one request with keep-alive and then closes on the next request
/// without answering; later connections answer every request.
async fn closes_kept_alive_connections() -> url::Url {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // The first connection that carries a request (the readiness check only connects) is the treacherous one.
    let betrayed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let betrayed = betrayed.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 65536];
                loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
                        .await;
                    if !betrayed.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        // Read the next request, then hang up without a word.
                        let _ = stream.read(&mut buffer).await;
                        return;
                    }
                }
            });
        }
    });
    url::Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url")
}

#[tokio::test]
async fn a_closed_keep_alive_connection_is_retried_when_safe_and_named_when_not() {
    let get_twice = "  - id: twice\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /a }\n        expect: { status: 200 }\n      - request: { path: /b }\n        expect: { status: 200 }\n";
    let report = grade(
        &[challenge("keepalive", &spec_with_probes(get_twice))],
        Target::Url(closes_kept_alive_connections().await),
    )
    .await;
    let probe = &report.challenges[0].probes[0];
    assert_eq!(probe.verdict, proctor::outcome::Verdict::Passed, "{:?}", probe.message);

    let then_post = get_twice.replace(
        "      - request: { path: /b }",
        "      - request: { method: POST, path: /b, body: x }",
    );
    let report = grade(
        &[challenge("keepalive", &spec_with_probes(&then_post))],
        Target::Url(closes_kept_alive_connections().await),
    )
    .await;
    let probe = &report.challenges[0].probes[0];
    assert_eq!(probe.verdict, proctor::outcome::Verdict::Failed);
    let message = probe.message.as_deref().unwrap_or_default();
    assert!(message.contains("closed the connection without answering"), "{message}");
}

#[tokio::test]
async fn env_port_is_the_port_the_service_was_actually_given() {
    use axum::extract::Path;
    use axum::routing::get;
    let app = axum::Router::new().route("/echo/{value}", get(|Path(value): Path<String>| async move { value }));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let probes = format!(
        "  - id: port\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: {{ path: '/echo/{{{{env.PORT}}}}' }}\n        expect: {{ status: 200, body: {{ equals: '{port}' }} }}\n"
    );
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url");
    let report = grade(&[challenge("port", &spec_with_probes(&probes))], Target::Url(url)).await;
    let probe = &report.challenges[0].probes[0];
    assert_eq!(probe.verdict, proctor::outcome::Verdict::Passed, "{:?}", probe.message);
}

#[tokio::test]
async fn whose_fault_it_is_decides_failed_or_errored_and_the_exit_code() {
    // Readiness connects once; then the service stops listening: refused burst connections are its failure.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = listener.accept().await;
        drop(listener);
    });
    let burst = "  - id: burst\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /x }\n        burst: { count: 4, concurrency: 4 }\n        expect: { statuses: { 200: 4 } }\n";
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url");
    let report = grade(&[challenge("refused", &spec_with_probes(burst))], Target::Url(url)).await;
    assert_eq!(
        report.challenges[0].probes[0].verdict,
        proctor::outcome::Verdict::Failed
    );
    assert_eq!(proctor::exit::for_run(&report), proctor::exit::BELOW_THRESHOLD);

    // A burst proctor will not send (its bodies are too big to hold) is proctor's: errored, exit 4, JUnit <error>.
    let app = axum::Router::new().route("/x", axum::routing::post(|| async { "ok" }));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let fat = "  - id: fat\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { method: POST, path: /x, body: '{{filler.16777216}}' }\n        burst: { count: 8, concurrency: 2 }\n";
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url");
    let report = grade(&[challenge("fat", &spec_with_probes(fat))], Target::Url(url)).await;
    assert_eq!(
        report.challenges[0].probes[0].verdict,
        proctor::outcome::Verdict::Errored
    );
    assert!(!report.challenges[0].score.passed);
    assert_eq!(proctor::exit::for_run(&report), proctor::exit::ERRORED);
    assert!(render(Format::Junit, &report).contains("<error"));
}
