//! A `curl` command line that sends the same request, for reproducing a failure by hand.

use crate::outcome::{CaptureFrom, RequestRecord, StepKind, StepReport};

/// Quotes a word for a POSIX shell.
fn quote(word: &str) -> String {
    shell_escape::unix::escape(word.into()).into_owned()
}

/// The shell variable a replay reads the service's base URL from.
pub const BASE: &str = "BASE";

/// Values captured by earlier steps that a replay takes again from its own responses: (shell variable, the value
/// this run saw).
type Known = [(String, String)];

/// One shell word made of quoted text and `"${variable}"` references, concatenated.
fn word(pieces: &[(bool, String)]) -> String {
    let mut merged: Vec<(bool, String)> = Vec::new();
    for (variable, text) in pieces.iter().filter(|(_, text)| !text.is_empty()) {
        match merged.last_mut() {
            Some((false, previous)) if !variable => previous.push_str(text),
            _ => merged.push((*variable, text.clone())),
        }
    }
    merged
        .iter()
        .map(|(variable, text)| {
            if *variable {
                format!("\"${{{text}}}\"")
            } else {
                quote(text)
            }
        })
        .collect()
}

/// `text` with a trailing captured value (the whole text, or after a space or comma, as in `Bearer <token>`)
/// turned into a variable reference.
fn with_known_suffix(text: &str, known: &Known) -> Vec<(bool, String)> {
    for (variable, value) in known {
        if let Some(prefix) = text.strip_suffix(value.as_str())
            && (prefix.is_empty() || prefix.ends_with([' ', ',']))
        {
            return vec![(false, prefix.to_string()), (true, variable.clone())];
        }
    }
    vec![(false, text.to_string())]
}

/// The request target with every path segment or query value that is a captured value turned into a variable.
fn target_pieces(target: &str, known: &Known) -> Vec<(bool, String)> {
    // A whole target that was captured (a Location followed) is the variable itself.
    if let Some((variable, _)) = known.iter().find(|(_, value)| value == target) {
        return vec![(true, variable.clone())];
    }
    let mut pieces = Vec::new();
    let mut rest = target;
    while !rest.is_empty() {
        let end = rest
            .find(['/', '?', '&', '='])
            .map_or(rest.len(), |i| if i == 0 { 1 } else { i });
        let (token, tail) = rest.split_at(end);
        match known.iter().find(|(_, value)| value == token) {
            Some((variable, _)) => pieces.push((true, variable.clone())),
            None => pieces.push((false, token.to_string())),
        }
        rest = tail;
    }
    pieces
}

/// `curl -sS -i -X POST "$BASE"/items -H '…' --data-raw '…'`: the request, sent to the base URL in `$BASE` so that
/// it can be replayed against any running copy of the service.
pub fn command(request: &RequestRecord) -> String {
    curl(request, &["-sS", "-i"], &[])
}

fn curl(request: &RequestRecord, flags: &[&str], known: &Known) -> String {
    let mut parts = vec!["curl".to_string()];
    parts.extend(flags.iter().map(|f| f.to_string()));
    match request.method.as_str() {
        "GET" => {}
        "HEAD" if flags.contains(&"-i") => {
            for flag in parts.iter_mut().filter(|p| *p == "-i") {
                *flag = "-I".to_string();
            }
        }
        "HEAD" => parts.push("-I".to_string()),
        method => {
            parts.push("-X".to_string());
            parts.push(quote(method));
        }
    }
    parts.push(format!("\"${BASE}\"{}", word(&target_pieces(&request.target, known))));
    for (name, value) in &request.headers {
        parts.push("-H".to_string());
        let mut pieces = vec![(false, format!("{name}: "))];
        pieces.extend(with_known_suffix(value, known));
        parts.push(word(&pieces));
    }
    if let Some(body) = &request.body {
        parts.push("--data-raw".to_string());
        parts.push(quote(body));
    }
    parts.join(" ")
}

/// A jq filter for a simple JSONPath (`$`, `$.a.b`, `$.items[0].id`); `None` for anything richer.
fn jq_filter(path: &str) -> Option<String> {
    static SIMPLE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^\$((\.[A-Za-z_][A-Za-z0-9_]*)|(\[[0-9]+\]))*$").unwrap_or_else(|e| panic!("{e}"))
    });
    SIMPLE.is_match(path).then(|| {
        if path == "$" {
            ".".to_string()
        } else {
            path[1..].to_string()
        }
    })
}

/// The shell line that takes a captured value again from `$response` (headers, blank line, body), or `None` when
/// the replay has to use this run's value.
fn extraction(variable: &str, from: &CaptureFrom) -> Option<String> {
    match from {
        CaptureFrom::Json { path } => jq_filter(path).map(|filter| {
            format!(
                "{variable}=$(printf '%s' \"$response\" | tr -d '\\r' | sed '1,/^$/d' | jq -r {})",
                quote(&filter)
            )
        }),
        CaptureFrom::Header { name } if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => Some(format!(
            "{variable}=$(printf '%s' \"$response\" | awk 'tolower($0) ~ /^{}:/ {{ sub(/^[^:]*:[ \\t]*/, \"\"); sub(/\\r$/, \"\"); print; exit }}')",
            name.to_ascii_lowercase()
        )),
        _ => None,
    }
}

/// The shell variable for a capture: its own name unless that could clash with the replay's or the shell's.
fn variable(name: &str) -> String {
    let reserved = ["BASE", "response", "i", "PATH", "HOME", "IFS"];
    if reserved.contains(&name) || name.starts_with(|c: char| c.is_ascii_uppercase()) {
        format!("v_{name}")
    } else {
        name.to_string()
    }
}

/// Shell lines that replay the steps of a probe up to the one that failed: each request, a repeated request as a
/// loop, a burst as concurrent requests (`&` and `wait`), a pause as `sleep`. A value an earlier step captured
/// (an id, an entity-tag, a token) is taken again from the replay's own response (with `jq` for JSON) wherever a
/// later request uses it whole — a path segment, a query value, a header value or its last word — so the replay
/// works against another copy of the service; elsewhere this run's value is used.
pub fn replay(steps: &[StepReport]) -> Vec<String> {
    let mut known: Vec<(String, String)> = Vec::new();
    let mut lines = Vec::new();
    for step in steps {
        let failed = if step.passed { "" } else { ", failed" };
        lines.push(format!("# step {}: {}{failed}", step.number, step.label));
        let extractions: Vec<(String, String, String)> = step
            .captures
            .iter()
            .filter_map(|c| {
                let variable = variable(&c.name);
                extraction(&variable, &c.from).map(|line| (variable, line, c.value.clone()))
            })
            .collect();
        let capturing = |command: String, lines: &mut Vec<String>| {
            if extractions.is_empty() {
                lines.push(command);
            } else {
                lines.push(format!("response=$({command})"));
                lines.push("printf '%s\\n' \"$response\"".to_string());
                lines.extend(extractions.iter().map(|(_, line, _)| line.clone()));
            }
        };
        match (step.kind, &step.request) {
            (StepKind::Wait { ms }, _) => lines.push(format!("sleep {}", ms as f64 / 1000.0)),
            (StepKind::Request | StepKind::Walk, Some(r)) => capturing(curl(r, &["-sS", "-i"], &known), &mut lines),
            (StepKind::Repeat { times }, Some(r)) => {
                let command = curl(r, &["-sS", "-i"], &known);
                if times > 1 {
                    lines.push(format!("for i in $(seq {}); do {command}; echo; done", times - 1));
                }
                capturing(command, &mut lines);
            }
            (StepKind::Poll { requests }, Some(r)) => {
                let command = curl(r, &["-sS", "-i"], &known);
                if requests > 1 {
                    lines.push(format!(
                        "for i in $(seq {}); do {command}; echo; sleep 0.1; done",
                        requests - 1
                    ));
                }
                capturing(command, &mut lines);
            }
            (StepKind::Burst { count, .. }, Some(r)) => lines.push(format!(
                "for i in $(seq {count}); do {} & done; wait",
                curl(r, &["-sS", "-o", "/dev/null", "-w", "'%{http_code}\\n'"], &known)
            )),
            (StepKind::Serve, _) => lines.push(
                "# a server proctor hosts answers this way from here on: point your service at a stand-in that does"
                    .to_string(),
            ),
            (StepKind::Calls, _) => lines.push(
                "# proctor checks what its own server received: read your stand-in's log to see what your service sent"
                    .to_string(),
            ),
            (StepKind::Handshake, _) => lines.push(
                "# offer one TLS version by hand: openssl s_client -connect <host>:<port> -tls1_1 (-tls1, -tls1_2, -tls1_3)"
                    .to_string(),
            ),
            (StepKind::Restart | StepKind::Stop | StepKind::Start | StepKind::Logs | StepKind::Image, _) => {
                lines.push("# proctor does this to the service itself: do it by hand here".to_string())
            }
            (_, None) => {
                lines.pop();
            }
        }
        // Longest values first, so that a value inside another is not matched instead of it.
        known.extend(extractions.into_iter().map(|(variable, _, value)| (variable, value)));
        known.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, target: &str, body: Option<&str>) -> RequestRecord {
        RequestRecord {
            method: method.into(),
            url: format!("http://10.0.0.2:8080{target}"),
            target: target.into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.map(Into::into),
        }
    }

    #[test]
    fn quotes_everything_the_shell_could_interpret_and_sends_to_base() {
        let post = request("POST", "/items?a=1&b=2", Some(r#"{"name":"O'Brien $HOME"}"#));
        assert_eq!(
            command(&post),
            r#"curl -sS -i -X POST "$BASE"'/items?a=1&b=2' -H 'Content-Type: application/json' --data-raw '{"name":"O'\''Brien $HOME"}'"#
        );
        let mut head = request("HEAD", "/x", None);
        head.headers.clear();
        assert_eq!(command(&head), r#"curl -sS -I "$BASE"/x"#);
    }

    #[test]
    fn a_replay_covers_every_step_up_to_the_failure() {
        let step = |number, kind, request: Option<RequestRecord>, passed| StepReport {
            number,
            label: format!("step {number}"),
            kind,
            captures: Vec::new(),
            request,
            response: None,
            checks: Vec::new(),
            error: None,
            passed,
            duration_ms: 0,
        };
        let mut get = request("GET", "/quote", None);
        get.headers = vec![("X-Api-Key".into(), "k".into())];
        let lines = replay(&[
            step(1, StepKind::Repeat { times: 5 }, Some(get.clone()), true),
            step(2, StepKind::Wait { ms: 2250 }, None, true),
            step(
                3,
                StepKind::Burst {
                    count: 15,
                    concurrency: 15,
                },
                Some(get),
                false,
            ),
        ]);
        assert_eq!(
            lines,
            [
                "# step 1: step 1",
                r#"for i in $(seq 4); do curl -sS -i "$BASE"/quote -H 'X-Api-Key: k'; echo; done"#,
                r#"curl -sS -i "$BASE"/quote -H 'X-Api-Key: k'"#,
                "# step 2: step 2",
                "sleep 2.25",
                "# step 3: step 3, failed",
                r#"for i in $(seq 15); do curl -sS -o /dev/null -w '%{http_code}\n' "$BASE"/quote -H 'X-Api-Key: k' & done; wait"#,
            ]
        );
    }

    #[test]
    fn captured_values_are_taken_again_from_the_replays_own_responses() {
        let created = StepReport {
            number: 1,
            label: "POST /items".into(),
            kind: StepKind::Request,
            captures: vec![
                crate::outcome::CaptureRecord {
                    name: "id".into(),
                    from: CaptureFrom::Json { path: "$.id".into() },
                    value: "17".into(),
                },
                crate::outcome::CaptureRecord {
                    name: "etag".into(),
                    from: CaptureFrom::Header { name: "ETag".into() },
                    value: "\"v1\"".into(),
                },
                crate::outcome::CaptureRecord {
                    name: "token".into(),
                    from: CaptureFrom::Json {
                        path: "$.items[?@.a == 1].t".into(),
                    },
                    value: "tok".into(),
                },
            ],
            request: Some(request("POST", "/items", Some("{}"))),
            response: None,
            checks: Vec::new(),
            error: None,
            passed: true,
            duration_ms: 0,
        };
        let mut read = request("GET", "/items/17?rev=17", None);
        read.headers = vec![
            ("If-None-Match".into(), "\"v1\"".into()),
            ("Authorization".into(), "Bearer tok".into()),
        ];
        let failed = StepReport {
            number: 2,
            label: "GET /items/17".into(),
            captures: Vec::new(),
            request: Some(read),
            passed: false,
            ..created.clone()
        };
        let lines = replay(&[created, failed]);
        assert_eq!(
            lines,
            [
                "# step 1: POST /items",
                r#"response=$(curl -sS -i -X POST "$BASE"/items -H 'Content-Type: application/json' --data-raw '{}')"#,
                r#"printf '%s\n' "$response""#,
                r#"id=$(printf '%s' "$response" | tr -d '\r' | sed '1,/^$/d' | jq -r .id)"#,
                r#"etag=$(printf '%s' "$response" | awk 'tolower($0) ~ /^etag:/ { sub(/^[^:]*:[ \t]*/, ""); sub(/\r$/, ""); print; exit }')"#,
                "# step 2: GET /items/17, failed",
                r#"curl -sS -i "$BASE"/items/"${id}"'?rev='"${id}" -H 'If-None-Match: '"${etag}" -H 'Authorization: Bearer tok'"#,
            ]
        );
    }
}
