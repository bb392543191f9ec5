//! A `curl` command line that sends the same request, for reproducing a failure by hand.

use crate::outcome::{RequestRecord, StepKind, StepReport};

/// Quotes a word for a POSIX shell.
fn quote(word: &str) -> String {
    shell_escape::unix::escape(word.into()).into_owned()
}

/// The shell variable a replay reads the service's base URL from.
pub const BASE: &str = "BASE";

/// `curl -sS -i -X POST "$BASE"'/items' -H '…' --data-raw '…'`: the request, sent to the base URL in `$BASE` so that
/// it can be replayed against any running copy of the service.
pub fn command(request: &RequestRecord) -> String {
    curl(request, &["-sS", "-i"])
}

fn curl(request: &RequestRecord, flags: &[&str]) -> String {
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
    parts.push(format!("\"${BASE}\"{}", quote(&request.target)));
    for (name, value) in &request.headers {
        parts.push("-H".to_string());
        parts.push(quote(&format!("{name}: {value}")));
    }
    if let Some(body) = &request.body {
        parts.push("--data-raw".to_string());
        parts.push(quote(body));
    }
    parts.join(" ")
}

/// Shell lines that replay the steps of a probe up to the one that failed: each request, a repeated request as a
/// loop, a burst as concurrent requests (`&` and `wait`), a pause as `sleep`. Values captured from responses
/// (ids, entity-tags) are the ones this run saw.
pub fn replay(steps: &[StepReport]) -> Vec<String> {
    let mut lines = Vec::new();
    for step in steps {
        let failed = if step.passed { "" } else { ", failed" };
        let comment = format!("# step {}: {}{failed}", step.number, step.label);
        let line = match (step.kind, &step.request) {
            (StepKind::Wait { ms }, _) => Some(format!("sleep {}", ms as f64 / 1000.0)),
            (StepKind::Request, Some(r)) => Some(command(r)),
            (StepKind::Walk, Some(r)) => Some(command(r)),
            (StepKind::Repeat { times }, Some(r)) => {
                Some(format!("for i in $(seq {times}); do {}; echo; done", command(r)))
            }
            (StepKind::Burst { count, .. }, Some(r)) => Some(format!(
                "for i in $(seq {count}); do {} & done; wait",
                curl(r, &["-sS", "-o", "/dev/null", "-w", "'%{http_code}\\n'"])
            )),
            (_, None) => None,
        };
        if let Some(line) = line {
            lines.push(comment);
            lines.push(line);
        }
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
                r#"for i in $(seq 5); do curl -sS -i "$BASE"/quote -H 'X-Api-Key: k'; echo; done"#,
                "# step 2: step 2",
                "sleep 2.25",
                "# step 3: step 3, failed",
                r#"for i in $(seq 15); do curl -sS -o /dev/null -w '%{http_code}\n' "$BASE"/quote -H 'X-Api-Key: k' & done; wait"#,
            ]
        );
    }
}
