//! Every report format, snapshotted from a real run of the reference with two defects (timings, ports and
//! dates redacted).

use proctor::outcome::RunReport;
use proctor::report::{self, Format};
use proctor::target::Target;

use crate::support::{catalog, grade};

async fn sample() -> RunReport {
    let challenges = [catalog("http-caching"), catalog("rest-resource")];
    let mut report = grade(&challenges, Target::Reference("304-bare,location-wrong".into())).await;
    report.started_at = "2026-01-01T00:00:00Z".into();
    report.duration_ms = 1234;
    for c in &mut report.challenges {
        c.duration_ms = 100;
        for p in &mut c.probes {
            p.duration_ms = 10;
            for s in &mut p.steps {
                s.duration_ms = 1;
                if let Some(r) = s.response.as_mut() {
                    r.elapsed_ms = 1;
                }
            }
        }
    }
    report
}

fn render(format: Format, report: &RunReport) -> String {
    let mut out = Vec::new();
    format.write(report, &mut out).expect("writes");
    String::from_utf8(out).expect("UTF-8")
}

macro_rules! redacted {
    ($body:block) => {
        insta::with_settings!({filters => vec![
            (r"127\.0\.0\.1:\d+", "127.0.0.1:PORT"),
            (r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", "DATE"),
            (r#""proctor_version": "[^"]+""#, r#""proctor_version": "VERSION""#),
        ]}, $body)
    };
}

#[tokio::test]
async fn terminal_report() {
    let report = sample().await;
    let mut out = Vec::new();
    report::terminal::write(&report, &mut out, false).expect("writes");
    redacted!({ insta::assert_snapshot!(String::from_utf8_lossy(&out)) });
}

#[tokio::test]
async fn json_report() {
    let report = sample().await;
    let text = render(Format::Json, &report);
    let value: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(value["format_version"], 1);
    let schema: serde_json::Value = serde_json::from_str(&proctor::outcome::json_schema()).expect("schema");
    assert!(
        jsonschema::is_valid(&schema, &value),
        "the report matches its published schema"
    );
    redacted!({ insta::assert_snapshot!(text) });
}

#[tokio::test]
async fn junit_report() {
    let report = sample().await;
    redacted!({ insta::assert_snapshot!(render(Format::Junit, &report)) });
}

#[tokio::test]
async fn markdown_report() {
    let report = sample().await;
    redacted!({ insta::assert_snapshot!(render(Format::Markdown, &report)) });
}

#[tokio::test]
async fn junit_tells_failures_from_errors_and_skips() {
    let mut report = sample().await;
    let probes = &mut report.challenges[0].probes;
    probes[0].verdict = proctor::outcome::Verdict::Errored;
    probes[0].message = Some("could not open connections".into());
    probes[1].verdict = proctor::outcome::Verdict::Skipped;
    let xml = render(Format::Junit, &report);
    assert_eq!(xml.matches("<failure").count(), 2, "{xml}");
    assert_eq!(xml.matches("<error").count(), 1);
    assert_eq!(xml.matches("<skipped").count(), 1);
}

#[tokio::test]
async fn hidden_probes_can_be_redacted_for_candidates() {
    let mut report = sample().await;
    report.challenges[0].probes[2].hidden = true;
    let secret_id = report.challenges[0].probes[2].id.clone();
    let redacted = report::redact_hidden(&report);
    let probe = &redacted.challenges[0].probes[2];
    assert_eq!(
        (probe.id.as_str(), probe.title.as_str(), probe.steps.len()),
        ("hidden-1", "hidden probe", 0)
    );
    assert_eq!(probe.verdict, report.challenges[0].probes[2].verdict);
    assert!(!render(Format::Markdown, &redacted).contains(&secret_id));
}

/// What the Jenkins xunit plugin's JUnit schema (junit-10.xsd) allows: per element, its attributes (required
/// ones first, marked `!`) and its children. Any other attribute or element makes CI dashboards reject the file.
const JUNIT_10: &[(&str, &[&str], &[&str])] = &[
    (
        "testsuites",
        &["name", "time", "tests", "failures", "errors"],
        &["testsuite"],
    ),
    (
        "testsuite",
        &[
            "!name",
            "!tests",
            "!failures",
            "!errors",
            "group",
            "time",
            "skipped",
            "timestamp",
            "hostname",
            "id",
            "package",
            "file",
            "log",
            "url",
        ],
        &["testsuite", "properties", "testcase", "system-out", "system-err"],
    ),
    ("properties", &[], &["property"]),
    ("property", &["!name", "!value"], &[]),
    (
        "testcase",
        &["!name", "time", "classname", "group"],
        &[
            "skipped",
            "error",
            "failure",
            "rerunFailure",
            "rerunError",
            "flakyFailure",
            "flakyError",
            "system-out",
            "system-err",
        ],
    ),
    ("failure", &["type", "message"], &[]),
    ("error", &["type", "message"], &[]),
    ("skipped", &["type", "message"], &[]),
    ("system-out", &[], &[]),
    ("system-err", &[], &[]),
];

/// Every way `xml` breaks junit-10.xsd, empty when it validates.
fn junit_10_violations(xml: &str) -> Vec<String> {
    let document = match roxmltree::Document::parse(xml) {
        Ok(d) => d,
        Err(e) => return vec![format!("not well-formed: {e}")],
    };
    let time = regex::Regex::new(r"^(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?$").expect("regex");
    let mut problems = Vec::new();
    if document.root_element().tag_name().name() != "testsuites" {
        problems.push("the root is not <testsuites>".to_string());
    }
    for node in document.descendants().filter(|n| n.is_element()) {
        let name = node.tag_name().name();
        let Some((_, attributes, children)) = JUNIT_10.iter().find(|(element, _, _)| *element == name) else {
            problems.push(format!("<{name}> is not in the schema"));
            continue;
        };
        for attribute in node.attributes() {
            let known = attributes.iter().any(|a| a.trim_start_matches('!') == attribute.name());
            if !known {
                problems.push(format!("<{name}> may not carry `{}`", attribute.name()));
            }
            if attribute.name() == "time" && name != "testcase" && !time.is_match(attribute.value()) {
                problems.push(format!("<{name}> time `{}` is not a SUREFIRE_TIME", attribute.value()));
            }
        }
        for required in attributes.iter().filter_map(|a| a.strip_prefix('!')) {
            if node.attribute(required).is_none() {
                problems.push(format!("<{name}> lacks `{required}`"));
            }
        }
        for child in node.children().filter(|c| c.is_element()) {
            if !children.contains(&child.tag_name().name()) {
                problems.push(format!("<{}> may not be inside <{name}>", child.tag_name().name()));
            }
        }
    }
    problems
}

#[tokio::test]
async fn junit_follows_the_jenkins_xunit_schema() {
    let report = sample().await;
    let xml = render(Format::Junit, &report);
    assert_eq!(junit_10_violations(&xml), Vec::<String>::new(), "{xml}");
    // The checker itself catches what it is there for.
    assert!(!junit_10_violations("<testsuites skipped=\"1\"/>").is_empty());
    assert!(!junit_10_violations("<testsuites><testsuite name=\"x\"/></testsuites>").is_empty());
}

#[tokio::test]
async fn a_service_that_never_started_is_a_junit_error_not_a_green_skip() {
    let challenges = [catalog("rate-limiter")];
    // A service that exits at once, saying why with a colour escape in its output.
    let crash = "printf 'Error: \\033[31mPORT is not set\\n'; exit 1".to_string();
    let report = grade(&challenges, Target::Command(crash)).await;
    let logs = report.challenges[0].logs.as_deref().unwrap_or_default();
    assert_eq!(
        logs, "Error: PORT is not set",
        "the output is kept, without its escape sequence"
    );
    let xml = render(Format::Junit, &report);
    assert_eq!(junit_10_violations(&xml), Vec::<String>::new(), "{xml}");
    let document = roxmltree::Document::parse(&xml).expect("well-formed");
    let cases = document.descendants().filter(|n| n.has_tag_name("testcase")).count();
    let errors = document.descendants().filter(|n| n.has_tag_name("error")).count();
    assert_eq!((cases, errors), (challenges[0].spec.probes.len(), cases), "{xml}");
    assert!(
        xml.contains("the service could not be graded: the service exited with status 1"),
        "{xml}"
    );
    let suite = document
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("a suite");
    assert_eq!(suite.attribute("errors"), Some(cases.to_string().as_str()));
    assert_eq!(suite.attribute("skipped"), Some("0"));
}

/// Whether Chromium (Debian's `chromium`) is installed.
fn chromium() -> bool {
    std::process::Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_renders_in_a_real_browser_and_shows_hostile_markup_as_text() {
    use axum::http::{HeaderValue, StatusCode};
    use axum::response::IntoResponse;
    // A service whose answers carry markup that would run if a report pasted it into a page.
    const HOSTILE: &str = "<script>document.title='pwned'</script></pre><img src=x onerror=\"document.title='pwned'\">";
    let app = axum::Router::new().route(
        "/x",
        axum::routing::get(|| async {
            let mut response = (StatusCode::INTERNAL_SERVER_ERROR, HOSTILE).into_response();
            response
                .headers_mut()
                .insert("x-evil", HeaderValue::from_static("<b onmouseover=alert(1)>hi</b>"));
            response
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let spec = "title: markup\nquestion: { number: 1, text: 'q <b>bold</b>?' }\nbrief: b\nrules: [{ id: r, text: t }]\n\
                service: { ready: { tcp: true } }\nprobes:\n  - { id: p, title: '<i>t</i>', category: c, rules: [r], \
                why: w, hint: h, steps: [ { request: { path: /x }, expect: { status: 200, body: { contains: ok } } } ] }\n";
    let challenge = proctor::spec::load(&proctor::spec::Source {
        name: "markup.yaml".into(),
        id: "markup".into(),
        text: spec.into(),
    })
    .expect("spec loads");
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}")).expect("url");
    let report = grade(&[challenge], Target::Url(url)).await;
    let html = render(Format::Html, &report);
    // Self-contained: no script, no external asset, nothing fetched.
    for forbidden in [
        "<script",
        "<img",
        "<link",
        "url(",
        "@import",
        "href=\"http",
        "<b onmouseover",
        "<i>t</i>",
    ] {
        assert!(!html.contains(forbidden), "{forbidden} in the report");
    }
    assert!(html.contains("&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"));
    if !crate::support::available(
        "chromium",
        chromium(),
        "install Chromium (Debian: apt install chromium)",
    ) {
        return;
    }
    let dir = crate::support::temp_dir(&[("report.html", &html)]);
    let page = format!("file://{}/report.html", dir.path().display());
    let browser = |args: &[&str]| {
        std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
            ])
            .args(args)
            .arg(&page)
            .output()
            .expect("chromium runs")
    };
    // The DOM after the browser parsed (and would have run) the page: the hostile markup is text, not elements.
    let dom = String::from_utf8_lossy(&browser(&["--dump-dom"]).stdout).into_owned();
    assert!(dom.contains("<title>proctor report</title>"), "{dom}");
    assert!(!dom.contains("pwned</title>") && !dom.contains("<img"), "{dom}");
    assert!(
        dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"),
        "{dom}"
    );
    for text in [
        "markup — markup",
        "✗",
        "status: expected 200, got 500 Internal Server Error",
        "why:",
        "hint:",
    ] {
        assert!(dom.contains(text), "{text} not rendered:\n{dom}");
    }
    let shot = dir.path().join("report.png");
    let output = browser(&[&format!("--screenshot={}", shot.display()), "--window-size=1280,1200"]);
    let png =
        std::fs::read(&shot).unwrap_or_else(|_| panic!("no screenshot: {}", String::from_utf8_lossy(&output.stderr)));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot ({} bytes)",
        png.len()
    );
}
