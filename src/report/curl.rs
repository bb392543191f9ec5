//! A `curl` command line that sends the same request, for reproducing a failure by hand.

use crate::outcome::RequestRecord;

/// Quotes a word for a POSIX shell.
fn quote(word: &str) -> String {
    shell_escape::unix::escape(word.into()).into_owned()
}

/// `curl -i -X POST 'http://…' -H '…' --data-raw '…'`.
pub fn command(request: &RequestRecord) -> String {
    let mut parts = vec!["curl".to_string(), "-i".to_string()];
    match request.method.as_str() {
        "GET" => {}
        "HEAD" => parts[1] = "-I".to_string(),
        method => {
            parts.push("-X".to_string());
            parts.push(quote(method));
        }
    }
    parts.push(quote(&request.url));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_everything_the_shell_could_interpret() {
        let request = RequestRecord {
            method: "POST".into(),
            url: "http://127.0.0.1:8080/items?a=1&b=2".into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Some(r#"{"name":"O'Brien $HOME"}"#.into()),
        };
        assert_eq!(
            command(&request),
            r#"curl -i -X POST 'http://127.0.0.1:8080/items?a=1&b=2' -H 'Content-Type: application/json' --data-raw '{"name":"O'\''Brien $HOME"}'"#
        );
        let head = RequestRecord {
            method: "HEAD".into(),
            url: "http://127.0.0.1/x".into(),
            headers: vec![],
            body: None,
        };
        assert_eq!(command(&head), "curl -I 'http://127.0.0.1/x'");
    }
}
