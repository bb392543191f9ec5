//! Every class of spec error, rendered as the user sees it (file:line:col, field path, snippet), snapshotted.

use proctor::spec::{self, Source};

const HEADER: &str = "title: t\nquestion: { number: 1, text: q }\nbrief: b\nrules: [{ id: r, text: t }]\n";

fn probe(steps: &str) -> String {
    format!(
        "{HEADER}probes:\n  - id: p\n    title: t\n    category: c\n    rules: [r]\n    why: w\n    hint: h\n    steps:\n{steps}"
    )
}

fn errors(name: &str, text: &str) -> String {
    let source = Source {
        name: format!("{name}.yaml"),
        id: name.to_string(),
        text: text.to_string(),
    };
    match spec::load(&source) {
        Ok(_) => panic!("{name}: expected spec errors"),
        Err(errors) => errors.iter().map(|e| e.render(false)).collect::<Vec<_>>().join(""),
    }
}

#[test]
fn spec_errors_name_file_line_column_field_and_show_a_snippet() {
    let cases: Vec<(&str, String)> = vec![
        ("syntax-error", format!("{HEADER}probes: [\n  - id: p\n")),
        ("missing-field", "title: t\nbrief: b\nrules: [{ id: r, text: t }]\nprobes: []\n".to_string()),
        ("unknown-field", probe("      - request: { path: /x, methd: POST }\n")),
        (
            "wrong-type",
            probe("      - request: { path: /x }\n        repeat: many\n"),
        ),
        (
            "bad-status-class",
            probe("      - request: { path: /x }\n        expect: { status: 6xx }\n"),
        ),
        (
            "bad-regex",
            probe("      - request: { path: /x }\n        expect: { headers: { ETag: { matches: '([' } } }\n"),
        ),
        ("bad-duration", probe("      - wait: { duration: soon }\n")),
        (
            "bad-jsonpath",
            probe("      - request: { path: /x }\n        expect: { json: [ { path: '$.items[', exists: true } ] }\n"),
        ),
        (
            "undefined-variable",
            probe("      - request: { path: '/items/{{id}}' }\n      - request: { path: '/x/{{env.SECRET}}' }\n"),
        ),
        (
            "capture-used-too-early",
            probe("      - request: { path: '/items/{{id}}' }\n        capture: { id: { json: $.id } }\n"),
        ),
        (
            "capture-path-undefined-variable",
            probe(
                "      - request: { path: /x }\n        capture: { id: { json: \"$.items[?@.name == '{{who}}'].id\" } }\n",
            ),
        ),
        (
            "no-content-with-body-checks",
            probe(
                "      - request: { method: DELETE, path: /x }\n        expect: { status: 204, json: [ { path: $.ok, equals: true } ] }\n",
            ),
        ),
        (
            "empty-range",
            probe("      - request: { path: /x }\n        expect: { headers: { Retry-After: { gt: 10, lt: 5 } } }\n"),
        ),
        (
            "burst-counts-do-not-add-up",
            probe(
                "      - request: { path: /x }\n        burst: { count: 15, concurrency: 15 }\n        expect: { statuses: { 200: 5, 429: 5 } }\n",
            ),
        ),
        (
            "statuses-outside-a-burst",
            probe("      - request: { path: /x }\n        expect: { statuses: { 200: 1 } }\n"),
        ),
        (
            "request-and-wait",
            probe("      - request: { path: /x }\n        wait: { duration: 1s }\n"),
        ),
        (
            "duplicate-probe-ids",
            format!(
                "{HEADER}probes:\n  - {{ id: a, title: t, category: c, rules: [r], why: w, hint: h, steps: [ {{ request: {{ path: /x }} }} ] }}\n  - {{ id: a, title: t, category: c, rules: [r], why: w, hint: h, steps: [ {{ request: {{ path: /y }} }} ] }}\n"
            ),
        ),
        ("Bad_File_Name", probe("      - request: { path: /x }\n")),
        (
            "walk-needs-one-next",
            probe(
                "      - request: { path: /x }\n        walk: { next: { link: next, cursor: $.c }, collect: '$.items[' }\n",
            ),
        ),
        (
            "limits-out-of-bounds",
            format!(
                "{HEADER}service: {{ limits: {{ memory: 1MiB, pids: 100000 }} }}\nprobes:\n  - {{ id: a, title: t, category: c, rules: [r], why: w, hint: h, steps: [ {{ request: {{ path: /x }} }} ] }}\n"
            ),
        ),
        (
            "no-privileged-mode",
            format!(
                "{HEADER}service: {{ privileged: true }}\nprobes:\n  - {{ id: a, title: t, category: c, rules: [r], why: w, hint: h, steps: [ {{ request: {{ path: /x }} }} ] }}\n"
            ),
        ),
        (
            "a-rule-no-probe-checks",
            "title: t\nquestion: { number: 1, text: q }\nbrief: b\nrules:\n  - { id: r, text: t }\n  - { id: unprobed, text: 'A second DELETE answers 404.' }\nprobes:\n  - { id: a, title: t, category: c, rules: [r], why: w, hint: h, steps: [ { request: { path: /x } } ] }\n"
                .to_string(),
        ),
        (
            "a-probe-names-an-unknown-rule",
            format!(
                "{HEADER}probes:\n  - {{ id: a, title: t, category: c, rules: [r, no-such-rule], why: w, hint: h, steps: [ {{ request: {{ path: /x }} }} ] }}\n  - {{ id: b, title: t, category: c, rules: [], why: w, hint: h, steps: [ {{ request: {{ path: /x }} }} ] }}\n"
            ),
        ),
        (
            "jwt-base-must-be-an-earlier-token",
            probe("      - request: { path: /x }\n").replace(
                "    steps:",
                "    vars:\n      bad: { jwt: { base: good, claims: { aud: x } } }\n      good: { jwt: { secret: s, claims: { sub: x } } }\n    steps:",
            ),
        ),
        (
            "poll-is-checked",
            probe(
                "      - request: { path: /jobs/1 }\n        poll: { until: {}, every: 1ms, forward: { path: '$.status', order: [done] } }\n        repeat: 2\n",
            ),
        ),
        (
            "servers-are-checked",
            format!(
                "{HEADER}servers:\n  up:\n    routes:\n      - {{ name: q, path: '/quotes/{{sym', respond: {{ status: 99, fault: reset }} }}\n      - {{ path: '/x/{{{{unique}}}}', respond: {{ delay: 2m }} }}\n    store: {{ data: {{ /flat: {{}} }} }}\nservice: {{ env: {{ UP: '{{{{server.down}}}}' }} }}\nprobes:\n  - {{ id: a, title: t, category: c, rules: [r], why: w, hint: h, steps: [ {{ serve: {{ server: nope, routes: [] }} }}, {{ calls: {{ server: up, route: missing, count: 0, gaps: [1s] }} }}, {{ request: {{ path: /x }}, sign: {{ secret: s, age: 1m, ahead: 1m, omit: [x-sig] }} }} ] }}\n"
            ),
        ),
    ];
    let mut rendered = String::new();
    for (name, text) in &cases {
        rendered.push_str(&format!("=== {name}\n{}\n", errors(name, text)));
    }
    insta::assert_snapshot!(rendered);
}

#[test]
fn validation_reports_every_problem_at_once() {
    let text = probe(
        "      - request: { path: '/a/{{nope}}' }\n        expect: { status: 204, body: { contains: x } }\n      - wait: {}\n",
    );
    let source = Source {
        name: "many.yaml".into(),
        id: "many".into(),
        text,
    };
    let errors = spec::load(&source).expect_err("invalid");
    let fields: Vec<&str> = errors.iter().filter_map(|e| e.field.as_deref()).collect();
    assert_eq!(
        fields,
        vec![
            "probes[0].steps[0].request.path",
            "probes[0].steps[0].expect.status",
            "probes[0].steps[1].wait"
        ]
    );
}

#[test]
fn truncated_or_mangled_specs_never_panic_the_loader() {
    // Every catalog file cut at many points, and with characters swapped for YAML syntax, must give a result
    // (usually errors), never a panic: the loader, the locator and the snippet renderer all see broken input.
    let mut tried = 0;
    for source in proctor::catalog::sources() {
        let text = &source.text;
        // About 150 cuts a file, 53 bytes apart at least: loading is linear in the text, so more cuts of the
        // larger specs would make the test quadratic in the catalog's size.
        let cuts: Vec<usize> = (0..text.len())
            .step_by((text.len() / 150).max(53))
            .filter(|i| text.is_char_boundary(*i))
            .collect();
        for cut in cuts {
            for variant in [
                text[..cut].to_string(),
                format!("{}{{[:\n", &text[..cut]),
                text[..cut].replace(':', ""),
            ] {
                let mangled = Source {
                    name: "mangled.yaml".into(),
                    id: "mangled".into(),
                    text: variant,
                };
                if let Err(errors) = spec::load(&mangled) {
                    for error in errors {
                        let _ = error.render(false);
                    }
                }
                tried += 1;
            }
        }
    }
    assert!(tried > 500, "only {tried} variants tried");
}

#[test]
fn type_errors_in_several_probes_are_reported_in_one_pass() {
    let text = format!(
        "{HEADER}servic: {{}}\nprobes:\n  - {{ id: a, title: t, category: c, rules: [r], why: w, hint: h, steps: [ {{ request: {{ path: /x, methd: POST }} }} ] }}\n  - {{ id: b, title: t, category: c, rules: [r], why: w, hint: h, steps: [ {{ request: {{ path: /x }}, repeat: many }} ] }}\n"
    );
    let source = Source {
        name: "several.yaml".into(),
        id: "several".into(),
        text,
    };
    let errors = spec::load(&source).expect_err("invalid");
    let fields: Vec<&str> = errors.iter().filter_map(|e| e.field.as_deref()).collect();
    assert_eq!(
        fields,
        [
            "servic",
            "probes[0].steps[0].request.methd",
            "probes[1].steps[0].repeat"
        ]
    );
    assert!(errors.iter().all(|e| e.position.is_some()));
}

#[test]
fn body_templates_define_index_inside_each_and_check_their_forms() {
    let load = |text: String| {
        spec::load(&Source {
            name: "body.yaml".into(),
            id: "body".into(),
            text,
        })
    };
    let good = probe(
        "      - request: { method: POST, path: /x, json: { rows: { $repeat: 3, $each: { n: { $int: '{{index}}' } } } } }\n",
    );
    assert!(load(good).is_ok(), "{{{{index}}}} is defined inside $each");
    let bad = probe(
        "      - request: { method: POST, path: /x, json: { a: '{{index}}', b: { $repeat: 1000001, $each: 1 }, c: { $int: 5 }, d: { $int: '1', e: 2 } } }\n",
    );
    let errors = load(bad).expect_err("invalid");
    let found: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.field.as_deref().unwrap_or(""), e.message.as_str()))
        .collect();
    let at = "probes[0].steps[0].request.json";
    assert_eq!(
        found,
        vec![
            (
                format!("{at}.a").as_str(),
                "`{{index}}` is only defined inside `repeat`, `burst` or a body's `$each`"
            ),
            (
                format!("{at}.b.$repeat").as_str(),
                "`$repeat` takes a whole number from 0 to 1000000"
            ),
            (
                format!("{at}.c.$int").as_str(),
                "`$int` takes a text, e.g. \"{{index}}\""
            ),
            (
                format!("{at}.d.$int").as_str(),
                "`$int` is the only key of its object, and `$repeat` goes with `$each` and nothing else"
            ),
        ]
    );
}

#[test]
fn timings_need_a_repeat_and_bound_by_a_recorded_time() {
    let text = probe(concat!(
        "      - request: { path: /x }\n        repeat: 5\n        timing: { record: before }\n",
        "      - request: { path: /x }\n        timing: { at_most: { factor: 0, of: after } }\n",
        "      - request: { path: /x }\n        repeat: 9\n        timing: { at_most: { factor: 1.5, of: before, plus: 1ms } }\n",
    ));
    let errors = spec::load(&Source {
        name: "timing.yaml".into(),
        id: "timing".into(),
        text,
    })
    .expect_err("invalid");
    let found: Vec<(String, String)> = errors
        .iter()
        .map(|e| (e.field.clone().unwrap_or_default(), e.message.clone()))
        .collect();
    let at = "probes[0].steps[1].timing";
    assert_eq!(
        found,
        vec![
            (
                at.to_string(),
                "a timing takes the fastest of a `repeat` of at least 5 requests".to_string()
            ),
            (
                format!("{at}.at_most.factor"),
                "the factor is a number greater than 0".to_string()
            ),
            (
                format!("{at}.at_most.of"),
                "`after` is not recorded by an earlier step's `timing.record`".to_string()
            ),
        ]
    );
}

/// The fields and messages of a spec's problems.
fn problems(name: &str, text: String) -> Vec<(String, String)> {
    let errors = spec::load(&Source {
        name: format!("{name}.yaml"),
        id: name.into(),
        text,
    })
    .expect_err("invalid");
    errors
        .iter()
        .map(|e| (e.field.clone().unwrap_or_default(), e.message.clone()))
        .collect()
}

#[test]
fn replicas_are_counted_from_one_and_lifecycle_steps_name_theirs() {
    let steps = concat!(
        "      - request: { path: /x, replica: 3 }\n",
        "      - request: { path: /x, replica: 0 }\n",
        "      - request: { path: /x, replica: 2 }\n",
        "      - restart: {}\n",
        "      - logs: { contains: [x] }\n",
        "      - stop: { replica: 1 }\n",
        "      - restart: { service: db }\n",
        "      - restart: { service: db, replica: 1 }\n",
    );
    let text = probe(steps).replace("probes:\n", "service: { replicas: 2 }\nprobes:\n");
    let problem = |field: &str, message: &str| (field.to_string(), message.to_string());
    let numbered = "replicas are numbered from 1 to 2 (`service.replicas`)";
    let name_one = "the service runs as 2 replicas: say which one with `replica`";
    assert_eq!(
        problems("replicas", text),
        vec![
            problem("probes[0].steps[0].request.replica", numbered),
            problem("probes[0].steps[1].request.replica", numbered),
            problem("probes[0].steps[3].restart", name_one),
            problem("probes[0].steps[4].logs", name_one),
            problem(
                "probes[0].steps[7].restart.service",
                "a restart of another service of the project takes neither `replica` nor `env`"
            ),
        ]
    );
    // One replica is the default; more than four, or replicas with TLS, are refused.
    let one = probe("      - request: { path: /x, replica: 2 }\n");
    assert_eq!(
        problems("one", one),
        vec![problem(
            "probes[0].steps[0].request.replica",
            "replicas are numbered from 1 to 1 (`service.replicas`)"
        )]
    );
    let many = probe("      - request: { path: /x }\n").replace("probes:\n", "service: { replicas: 5 }\nprobes:\n");
    assert_eq!(
        problems("many", many),
        vec![problem("service.replicas", "a service runs as 1 to 4 replicas")]
    );
}
