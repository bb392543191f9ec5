//! Each expectation kind, passing and failing, against hand-built responses.

use std::time::Duration;

use super::*;
use crate::spec::model::ExpectSpec;

fn expect(yaml: &str) -> ExpectSpec {
    serde_yaml::from_str(yaml).expect("test expectation parses")
}

fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
    Response {
        status,
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        body: body.as_bytes().to_vec(),
        truncated: false,
        body_limit: 1 << 20,
        elapsed: Duration::from_millis(20),
        decoding_error: None,
    }
}

fn run(yaml: &str, r: &Response) -> Vec<Check> {
    let mut lookup = |name: &str| (name == "id").then(|| "42".to_string());
    evaluate(&Expect::new(expect(yaml)), r, &mut lookup)
}

fn verdicts(checks: &[Check]) -> Vec<(String, bool)> {
    checks.iter().map(|c| (c.what.clone(), c.passed)).collect()
}

#[test]
fn status_exact_list_and_class() {
    let r = response(201, &[], "");
    assert!(run("status: 201", &r)[0].passed);
    assert!(run("status: [200, 201]", &r)[0].passed);
    assert!(run("status: 2xx", &r)[0].passed);
    let failed = &run("status: 204", &r)[0];
    assert_eq!(
        (failed.expected.as_str(), failed.actual.as_str(), failed.passed),
        ("204", "201 Created", false)
    );
    assert!(!run("status: 4xx", &r)[0].passed);
}

#[test]
fn every_expectation_is_evaluated_even_after_a_failure() {
    let r = response(200, &[("Content-Type", "text/plain")], "hello");
    let checks = run(
        "{status: 201, content_type: application/json, body: {contains: hello}}",
        &r,
    );
    assert_eq!(
        verdicts(&checks),
        vec![
            ("status".into(), false),
            ("body contains".into(), true),
            ("content type".into(), false)
        ]
    );
}

#[test]
fn headers_presence_equality_pattern_numbers_lists_and_repeats() {
    let r = response(
        429,
        &[
            ("Retry-After", "3"),
            ("Allow", "GET, HEAD"),
            ("allow", "PUT"),
            ("ETag", "\"v1\""),
            ("Vary", "Origin"),
        ],
        "",
    );
    let yaml = r#"
headers:
  Retry-After: { exists: true, matches: '^[0-9]+$', gte: 1, lte: 3 }
  ETag: { equals: '"v1"' }
  Allow: { contains: put, excludes: PATCH, count: 2 }
  Location: { exists: false }
  Vary: { contains: Accept-Encoding }
"#;
    let checks = run(yaml, &r);
    let failed: Vec<&str> = checks.iter().filter(|c| !c.passed).map(|c| c.what.as_str()).collect();
    assert_eq!(failed, vec!["header Vary contains"]);
    assert_eq!(checks.len(), 10);
    let float = response(429, &[("Retry-After", "1.5")], "");
    let checks = run("headers: { Retry-After: { matches: '^[0-9]+$', lte: 2 } }", &float);
    assert_eq!(
        verdicts(&checks),
        vec![
            ("header Retry-After matches".into(), false),
            ("header Retry-After <= 2".into(), true)
        ]
    );
    let missing = run("headers: { Retry-After: { gte: 1 } }", &response(429, &[], ""));
    assert_eq!(missing[0].actual, "absent");
}

#[test]
fn json_paths_equality_types_lengths_numbers_and_patterns() {
    let body = r#"{"id": "42", "price": 9.5, "count": 3, "tags": ["a", "b"], "items": [{"id": 1}, {"id": 2}]}"#;
    let r = response(200, &[], body);
    let yaml = r#"
json:
  - { path: $.id, equals: "{{id}}", type: string, matches: '^[0-9]+$' }
  - { path: $.price, gt: 9, lt: 10, type: number }
  - { path: $.count, equals: 3.0, type: integer }
  - { path: $.tags, length: 2, type: array }
  - { path: "$.items[?@.id == 2]", count: 1 }
  - { path: $.missing, exists: false }
  - { path: "$.items[*].id", equals: 1 }
"#;
    let checks = run(yaml, &r);
    let failed: Vec<(&str, &str)> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| (c.what.as_str(), c.actual.as_str()))
        .collect();
    assert_eq!(failed, vec![("json $.items[*].id equals", "the path selected 2 nodes")]);
}

#[test]
fn json_expectations_on_a_body_that_is_not_json_fail_once_with_the_body() {
    let checks = run(
        "json: [{ path: $.id, exists: true }]",
        &response(500, &[], "<html>Internal Server Error</html>"),
    );
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].what, "body is JSON");
    assert!(checks[0].actual.starts_with("<html>"));
}

#[test]
fn json_schema_reports_the_first_errors() {
    let yaml = "schema: { type: object, required: [id], properties: { id: { type: string } } }";
    assert!(run(yaml, &response(200, &[], r#"{"id": "x"}"#))[0].passed);
    let failed = &run(yaml, &response(200, &[], r#"{"id": 7}"#))[0];
    assert!(!failed.passed);
    assert!(failed.actual.contains("/id"), "{}", failed.actual);
}

#[test]
fn body_empty_contains_matches_and_not_matches() {
    let r = response(500, &[], "Traceback (most recent call last):\n  File \"app.py\"");
    let checks = run(
        r#"body: { empty: false, contains: "File", not_matches: 'Traceback|SQLSTATE' }"#,
        &r,
    );
    assert_eq!(
        verdicts(&checks),
        vec![
            ("body".into(), true),
            ("body contains".into(), true),
            ("body does not match".into(), false)
        ]
    );
    assert!(run("body: { empty: true }", &response(204, &[], ""))[0].passed);
}

#[test]
fn content_type_ignores_parameters_and_case_and_time_is_bounded() {
    let r = response(200, &[("Content-Type", "Application/JSON; charset=utf-8")], "{}");
    assert!(run("content_type: application/json", &r)[0].passed);
    assert!(run("max_time: 50ms", &r)[0].passed);
    assert!(!run("max_time: 10ms", &r)[0].passed);
}

#[test]
fn a_truncated_body_always_fails() {
    let mut r = response(200, &[], "xxxx");
    r.truncated = true;
    r.body_limit = 4;
    let checks = run("status: 200", &r);
    assert_eq!(
        verdicts(&checks),
        vec![("body size".into(), false), ("status".into(), true)]
    );
}

#[test]
fn burst_counts_and_aggregates() {
    use crate::types::Count;
    let expected: indexmap::IndexMap<u16, Count> = [(200, Count::Exactly(2)), (429, Count::Exactly(1))]
        .into_iter()
        .collect();
    assert!(status_counts(&expected, &[200, 429, 200]).passed);
    let open: indexmap::IndexMap<u16, Count> = [(201, Count::AtLeast(1)), (409, Count::AtLeast(1))]
        .into_iter()
        .collect();
    assert!(
        status_counts(&open, &[201, 409, 201, 409]).passed,
        "replays and conflicts"
    );
    let blocked = status_counts(&open, &[201, 201, 201]);
    assert_eq!(
        (blocked.expected.as_str(), blocked.passed),
        ("1 or more × 201, 1 or more × 409", false)
    );
    let racy = status_counts(&expected, &[200, 200, 200]);
    assert_eq!(
        (racy.expected.as_str(), racy.actual.as_str(), racy.passed),
        ("2 × 200, 1 × 429", "3 × 200", false)
    );
    let ok = Check::new("status", "2xx", "200 OK", true);
    let bad = Check::new("status", "2xx", "500 Internal Server Error", false);
    let merged = aggregate(&[vec![ok.clone()], vec![bad], vec![ok]]);
    assert!(!merged[0].passed);
    assert!(merged[0].actual.contains("1 of 3"), "{}", merged[0].actual);
}

#[test]
fn captures_from_json_headers_and_regexes() {
    let r = response(201, &[("Location", "/items/42")], r#"{"id": 42, "name": "x"}"#);
    let mut none = |_: &str| None;
    let spec = |yaml: &str| Capture::new("x", &serde_yaml::from_str(yaml).expect("parses"));
    assert_eq!(capture(&spec("json: $.id"), &r, &mut none), Ok("42".to_string()));
    assert_eq!(capture(&spec("json: $.name"), &r, &mut none), Ok("x".to_string()));
    assert_eq!(
        capture(&spec("header: location"), &r, &mut none),
        Ok("/items/42".to_string())
    );
    assert_eq!(
        capture(&spec("{header: Location, regex: '/items/(\\d+)'}"), &r, &mut none),
        Ok("42".to_string())
    );
    assert!(capture(&spec("json: $.nope"), &r, &mut none).is_err_and(|e| e.contains("selects nothing")));
    assert!(capture(&spec("header: ETag"), &r, &mut none).is_err_and(|e| e.contains("no ETag header")));
}

#[test]
fn members_are_the_whole_set_in_any_order_and_not_matches_passes_an_absent_header() {
    let allow = response(405, &[("Allow", "GET, HEAD"), ("Allow", "put,delete, OPTIONS")], "");
    let whole = run(
        "headers: { Allow: { members: [OPTIONS, GET, HEAD, PUT, DELETE] } }",
        &allow,
    );
    assert!(whole[0].passed, "{whole:?}");
    let partial = response(405, &[("Allow", "GET, HEAD")], "");
    let checks = run(
        "headers: { Allow: { members: [GET, HEAD, PUT, DELETE, OPTIONS] } }",
        &partial,
    );
    assert!(!checks[0].passed);
    assert_eq!(checks[0].actual, "GET, HEAD (missing: DELETE, OPTIONS, PUT)");
    let extra = response(405, &[("Allow", "GET, HEAD, PATCH")], "");
    assert!(!run("headers: { Allow: { members: [GET, HEAD] } }", &extra)[0].passed);
    assert!(!run("headers: { Allow: { members: [GET] } }", &response(405, &[], ""))[0].passed);

    let challenge = response(
        401,
        &[("WWW-Authenticate", "Bearer realm=\"docs\", scope=\"docs\"")],
        "",
    );
    assert!(
        run(
            "headers: { WWW-Authenticate: { not_matches: 'error\\s*=' } }",
            &challenge
        )[0]
        .passed
    );
    let erred = response(401, &[("WWW-Authenticate", "Bearer error=\"invalid_token\"")], "");
    assert!(!run("headers: { WWW-Authenticate: { not_matches: 'error\\s*=' } }", &erred)[0].passed);
    assert!(
        run(
            "headers: { WWW-Authenticate: { not_matches: x } }",
            &response(200, &[], "")
        )[0]
        .passed
    );
}

#[test]
fn cookie_checks_read_every_set_cookie_line_and_the_jar_follows_them() {
    let login = response(
        204,
        &[
            ("Set-Cookie", "theme=dark; Path=/"),
            ("Set-Cookie", "session=abc123; Path=/; HttpOnly; SameSite=Lax"),
        ],
        "",
    );
    let checks = run(
        "cookies: { session: { exists: true, http_only: true, secure: false, same_site: [strict, lax], path: /, not_equals: abc } }",
        &login,
    );
    assert!(checks.iter().all(|c| c.passed), "{checks:#?}");
    let loose = response(204, &[("Set-Cookie", "session=abc123; SameSite=None")], "");
    let checks = run(
        "cookies: { session: { http_only: true, same_site: [Lax, Strict], path: /, not_equals: abc123 } }",
        &loose,
    );
    assert_eq!(
        verdicts(&checks),
        [
            ("cookie session HttpOnly".to_string(), false),
            ("cookie session SameSite".to_string(), false),
            ("cookie session Path".to_string(), false),
            ("cookie session value".to_string(), false),
        ]
    );
    let logout = response(204, &[("Set-Cookie", "session=; Path=/; Max-Age=0")], "");
    let expired = response(
        204,
        &[("Set-Cookie", "session=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT")],
        "",
    );
    assert!(run("cookies: { session: { cleared: true } }", &logout)[0].passed);
    assert!(run("cookies: { session: { cleared: true } }", &expired)[0].passed);
    assert!(!run("cookies: { session: { cleared: true } }", &login)[0].passed);
    assert!(!run("cookies: { session: { exists: true } }", &response(204, &[], ""))[0].passed);

    let mut vars = crate::vars::Vars::new(1, "r", "c", "p", Default::default());
    vars.absorb_cookies(&login);
    assert_eq!(vars.cookie_header().as_deref(), Some("theme=dark; session=abc123"));
    vars.absorb_cookies(&logout);
    assert_eq!(
        vars.cookie_header().as_deref(),
        Some("theme=dark"),
        "a deleted cookie leaves the jar"
    );
}
