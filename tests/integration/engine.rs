//! The engine against real servers: hostile responses, bursts released together, captures, redirects.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use proctor::outcome::{RunReport, Verdict};
use proctor::session::Options;
use proctor::target::Target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{challenge, grade, grade_with, spec_with_probes};

/// Serves raw bytes from `respond` on every connection; returns the base URL.
async fn raw_server(respond: fn(tokio::net::TcpStream) -> tokio::task::JoinHandle<()>) -> url::Url {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            respond(stream);
        }
    });
    url::Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url")
}

async fn read_request(stream: &mut tokio::net::TcpStream) {
    let mut buffer = [0u8; 4096];
    let _ = stream.read(&mut buffer).await;
}

async fn serve(app: Router) -> url::Url {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    url::Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url")
}

const GET_200: &str = "  - id: get\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /x }\n        expect: { status: 200 }\n";

fn only_probe(report: &RunReport) -> &proctor::outcome::ProbeReport {
    &report.challenges[0].probes[0]
}

#[tokio::test]
async fn garbage_instead_of_http_is_a_failed_probe_with_a_clear_message() {
    let url = raw_server(|mut stream| {
        tokio::spawn(async move {
            read_request(&mut stream).await;
            let _ = stream
                .write_all(b"SSH-2.0-OpenSSH_9.6\r\nnot http at all\r\n\r\n")
                .await;
        })
    })
    .await;
    let report = grade(&[challenge("garbage", &spec_with_probes(GET_200))], Target::Url(url)).await;
    let probe = only_probe(&report);
    assert_eq!(probe.verdict, Verdict::Failed);
    let message = probe.message.as_deref().unwrap_or_default();
    assert!(message.contains("did not send a valid HTTP response"), "{message}");
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_cap_and_fails_without_exhausting_memory() {
    let url = raw_server(|mut stream| {
        tokio::spawn(async move {
            read_request(&mut stream).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1073741824\r\n\r\n")
                .await;
            let chunk = vec![b'x'; 64 * 1024];
            while stream.write_all(&chunk).await.is_ok() {}
        })
    })
    .await;
    let options = Options {
        seed: 1,
        max_body: 1 << 20,
        ..crate::support::options()
    };
    let started = Instant::now();
    let report = grade_with(
        &[challenge("endless", &spec_with_probes(GET_200))],
        Target::Url(url),
        options,
    )
    .await;
    let probe = only_probe(&report);
    assert_eq!(probe.verdict, Verdict::Failed);
    let check = &probe.steps[0].checks[0];
    assert_eq!(
        (check.what.as_str(), check.actual.as_str()),
        ("body size", "more than 1048576 bytes (stopped reading)")
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_service_that_never_answers_fails_at_the_request_timeout() {
    let url = raw_server(|mut stream| {
        tokio::spawn(async move {
            read_request(&mut stream).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(stream);
        })
    })
    .await;
    let spec = spec_with_probes(GET_200).replace("request_timeout: 2s", "request_timeout: 300ms");
    let report = grade(&[challenge("silent", &spec)], Target::Url(url)).await;
    let probe = only_probe(&report);
    assert_eq!(probe.verdict, Verdict::Failed);
    assert!(
        probe
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("no complete response before the request timeout")
    );
}

#[tokio::test]
async fn a_burst_is_released_together_and_counted_per_status() {
    let served = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (s, f, p) = (served.clone(), in_flight.clone(), peak.clone());
    let app = Router::new().route(
        "/quote",
        get(move || {
            let (served, in_flight, peak) = (s.clone(), f.clone(), p.clone());
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(150)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                if served.fetch_add(1, Ordering::SeqCst) < 5 {
                    StatusCode::OK
                } else {
                    StatusCode::TOO_MANY_REQUESTS
                }
            }
        }),
    );
    let url = serve(app).await;
    let probes = "  - id: exact\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /quote, headers: { X-Api-Key: '{{unique}}', X-N: '{{index}}' } }\n        burst: { count: 15, concurrency: 15 }\n        expect: { statuses: { 200: 5, 429: 10 }, status: [200, 429] }\n  - id: wrong\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /quote }\n        burst: { count: 6, concurrency: 3 }\n        expect: { statuses: { 200: 6 } }\n";
    let report = grade(&[challenge("burst", &spec_with_probes(probes))], Target::Url(url)).await;
    let probes = &report.challenges[0].probes;
    assert_eq!(probes[0].verdict, Verdict::Passed, "{:#?}", probes[0]);
    assert_eq!(
        peak.load(Ordering::SeqCst),
        15,
        "all fifteen requests were in flight at once"
    );
    assert_eq!(probes[1].verdict, Verdict::Failed);
    let check = &probes[1].steps[0].checks[0];
    assert_eq!((check.expected.as_str(), check.actual.as_str()), ("6 × 200", "6 × 429"));
}

#[tokio::test]
async fn redirects_are_not_followed_and_foreign_locations_are_never_requested() {
    let app = Router::new()
        .route(
            "/moved",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/elsewhere")]).into_response() }),
        )
        .route(
            "/away",
            get(|| async { (StatusCode::CREATED, [(header::LOCATION, "http://192.0.2.1/x")]).into_response() }),
        );
    let url = serve(app).await;
    let probes = "  - id: redirect\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /moved }\n        expect: { status: 302, headers: { Location: { equals: /elsewhere } } }\n  - id: foreign\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /away }\n        capture: { next: { header: Location } }\n      - request: { path: '{{next}}' }\n";
    let report = grade(&[challenge("redirects", &spec_with_probes(probes))], Target::Url(url)).await;
    let probes = &report.challenges[0].probes;
    assert_eq!(probes[0].verdict, Verdict::Passed, "{:#?}", probes[0]);
    assert_eq!(probes[1].verdict, Verdict::Failed);
    let message = probes[1].message.as_deref().unwrap_or_default();
    assert!(
        message.contains("refusing to send a request outside the service under test: http://192.0.2.1/x"),
        "{message}"
    );
}

#[tokio::test]
async fn captures_vars_repeats_and_env_flow_between_steps() {
    let yaml = "title: flow\nquestion: { number: 1, text: q }\nbrief: b\nrules: [{ id: r, text: t }]\nservice: { env: { PRICE: '7' } }\nprobes:\n  - id: flow\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    vars: { name: 'n-{{unique}}' }\n    steps:\n      - request: { method: POST, path: /items, json: { name: '{{name}}', price: 7, tags: ['{{uuid}}'] } }\n        expect: { status: 201 }\n        capture: { id: { json: $.id }, location: { header: Location }, number: { header: Location, regex: '/items/(\\d+)' } }\n      - request: { path: '{{location}}' }\n        repeat: 3\n        expect: { json: [ { path: $.name, equals: '{{name}}' }, { path: $.id, equals: '{{number}}' }, { path: $.price, equals: 7 } ] }\n      - request: { method: PUT, path: '/items/{{id}}', json: { name: 'r-{{index}}', price: 1 } }\n        repeat: 2\n        expect: { json: [ { path: $.name, matches: '^r-[01]$' } ] }\n      - request: { path: '/items/{{id}}' }\n        expect: { json: [ { path: $.name, equals: r-1 } ], headers: { Content-Type: { equals: application/json } } }\n      - request: { path: /items, query: { price: '{{env.PRICE}}' } }\n        expect: { status: 200 }\n";
    let report = grade(&[challenge("flow", yaml)], Target::Reference(String::new())).await;
    let probe = only_probe(&report);
    assert_eq!(probe.verdict, Verdict::Passed, "{:#?}", probe);
    let query_url = &probe.steps[4].request.as_ref().expect("sent").url;
    assert!(query_url.ends_with("/items?price=7"), "{query_url}");
    let same_seed = grade(&[challenge("flow", yaml)], Target::Reference(String::new())).await;
    assert_eq!(
        probe.steps[0].request.as_ref().map(|r| r.body.clone()),
        only_probe(&same_seed).steps[0].request.as_ref().map(|r| r.body.clone()),
        "the same seed generates the same values"
    );
}

#[tokio::test]
async fn a_client_bound_to_a_device_cannot_reach_anything_through_another() {
    // Probes of a sandboxed target are bound to the run network's bridge. Prove the binding holds by dialling a
    // loopback server through a device that does not exist: nothing may get through. (Only 127.0.0.1 is dialled.)
    let url = serve(Router::new().route("/x", get(|| async { "ok" }))).await;
    let request = proctor::http::Prepared {
        method: "GET".into(),
        url: url.join("/x").expect("url"),
        headers: Vec::new(),
        body: None,
        base_path: String::new(),
    };
    let free = proctor::http::Http::new(Duration::from_secs(2), 1 << 20, None, None).expect("client");
    assert!(
        free.send(&request).await.is_ok(),
        "the unbound client reaches the loopback server"
    );
    let bound =
        proctor::http::Http::new(Duration::from_secs(2), 1 << 20, Some("prx-missing".into()), None).expect("client");
    match bound.send(&request).await {
        Ok(response) => panic!("a request left through another device: {}", response.status),
        Err(no) => assert!(no.message.contains("could not connect"), "{}", no.message),
    }
}

#[tokio::test]
async fn reporters_see_every_probe_report_in_order_and_the_finished_run_as_returned() {
    use proctor::event::{Event, Events};
    let recorder = crate::support::Recorder::default();
    let events = Events::new(vec![Box::new(recorder.clone())]);
    let challenges = [crate::support::catalog("status-codes")];
    let report = proctor::session::run(
        &challenges,
        Target::Reference("notes-created-200".into()),
        &crate::support::options(),
        &events,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await;
    let seen = recorder.events();
    assert!(matches!(seen.first(), Some(Event::ChallengeStarted { id, .. }) if id == "status-codes"));
    assert!(matches!(seen.get(1), Some(Event::TargetReady { .. })));
    let probes: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            Event::ProbeFinished { report, .. } => Some(serde_json::to_value(report).expect("json")),
            _ => None,
        })
        .collect();
    let returned: Vec<_> = report.challenges[0]
        .probes
        .iter()
        .map(|p| serde_json::to_value(p).expect("json"))
        .collect();
    assert_eq!(probes, returned, "each probe's full report, in order");
    let Some(Event::ChallengeFinished {
        report: finished,
        unrun: 0,
    }) = seen.get(seen.len() - 2)
    else {
        panic!("the challenge finishes before the run: {seen:?}")
    };
    assert!(!finished.score.passed, "notes-created-200 fails a probe");
    let Some(Event::RunFinished { report: last }) = seen.last() else {
        panic!("the run finishes last")
    };
    assert_eq!(
        serde_json::to_value(last.as_ref()).expect("json"),
        serde_json::to_value(&report).expect("json")
    );
}

#[tokio::test]
async fn a_poll_stops_when_its_condition_holds_and_fails_at_its_deadline_saying_so() {
    // A status that turns ready on the third read.
    let reads = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&reads);
    let app = Router::new().route(
        "/job",
        get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let status = match n {
                1 => "queued",
                2 => "running",
                _ => "done",
            };
            async move { axum::Json(serde_json::json!({ "status": status, "n": n })) }
        }),
    );
    let url = serve(app).await;
    let probes = "  - id: until-done\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /job }\n        poll: { until: { json: [ { path: $.status, equals: done } ] }, every: 20ms, within: 2s, forward: { path: $.status, order: [queued, running, done] } }\n        capture: { n: { json: $.n } }\n      - request: { path: /job }\n        expect: { json: [ { path: $.n, gt: 3 } ] }\n  - id: never\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /job }\n        poll: { until: { json: [ { path: $.status, equals: failed } ] }, every: 50ms, within: 300ms }\n";
    let report = grade(&[challenge("poll", &spec_with_probes(probes))], Target::Url(url)).await;
    let probes = &report.challenges[0].probes;
    assert_eq!(probes[0].verdict, Verdict::Passed, "{:#?}", probes[0]);
    assert_eq!(
        probes[0].steps[0].captures[0].value, "3",
        "the capture comes from the response that ended it"
    );
    assert!(matches!(
        probes[0].steps[0].kind,
        proctor::outcome::StepKind::Poll { requests: 3 }
    ));
    assert_eq!(probes[1].verdict, Verdict::Failed);
    let error = probes[1].steps[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("did not hold within 300 ms"), "{error}");
}

#[tokio::test]
async fn gzip_bodies_proctor_asked_for_are_decoded_within_the_cap_and_bad_ones_said() {
    use std::io::Write;
    let gzip = |data: &[u8]| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).expect("compress");
        encoder.finish().expect("compress")
    };
    let small = gzip(br#"{"ok": true}"#);
    // 64 MiB of zeros: about 64 KiB compressed, far past the 4 MiB cap once inflated.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    let app = Router::new()
        .route(
            "/small",
            get(move || {
                let body = small.clone();
                async move {
                    (
                        [
                            (header::CONTENT_ENCODING, "gzip"),
                            (header::CONTENT_TYPE, "application/json"),
                        ],
                        body,
                    )
                }
            }),
        )
        .route(
            "/bomb",
            get(move || {
                let body = bomb.clone();
                async move { ([(header::CONTENT_ENCODING, "gzip")], body) }
            }),
        )
        .route(
            "/liar",
            get(|| async { ([(header::CONTENT_ENCODING, "gzip")], "not gzip at all") }),
        );
    let url = serve(app).await;
    let probes = "  - id: decoded\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /small, headers: { Accept-Encoding: gzip } }\n        expect: { headers: { Content-Encoding: { equals: gzip } }, json: [ { path: $.ok, equals: true } ] }\n  - id: bomb\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /bomb, headers: { Accept-Encoding: 'br, gzip' } }\n  - id: liar\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /liar, headers: { Accept-Encoding: gzip } }\n  - id: not-asked\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n      - request: { path: /liar, headers: { Accept-Encoding: 'gzip;q=0, identity' } }\n        expect: { body: { equals: not gzip at all } }\n";
    let report = grade(&[challenge("gzip", &spec_with_probes(probes))], Target::Url(url)).await;
    let probes = &report.challenges[0].probes;
    assert_eq!(probes[0].verdict, Verdict::Passed, "{:#?}", probes[0]);
    let bomb = &probes[1].steps[0].checks;
    assert!(
        bomb.iter().any(|c| c.what == "body size" && !c.passed),
        "an inflated body past the cap is cut and fails: {bomb:#?}"
    );
    let liar = &probes[2].steps[0].checks;
    assert!(
        liar.iter()
            .any(|c| c.what == "content decoding" && !c.passed && c.actual.contains("not gzip data")),
        "{liar:#?}"
    );
    assert_eq!(
        probes[3].verdict,
        Verdict::Passed,
        "a body proctor did not ask to compress is left as is"
    );
}
