//! Captures: values taken from a response for later steps.

use serde_json::Value;

use super::{Capture, Lookup, Response, clip};

/// The captured text, or why nothing could be captured (the service's fault: a failed step).
pub fn capture(capture: &Capture, response: &Response, lookup: &mut Lookup<'_>) -> Result<String, String> {
    let spec = &capture.spec;
    if let Some(metric) = &spec.metric {
        return super::metrics::value(metric, response, lookup);
    }
    if let Some(name) = &spec.cookie {
        return super::cookies::set_cookies(response)
            .into_iter()
            .rfind(|c| c.name() == name)
            .map(|c| c.value().to_string())
            .ok_or_else(|| format!("the response sets no cookie {name}"));
    }
    if let Some(path) = &capture.json {
        let (path, path_text) = path
            .resolve(lookup)
            .map_err(|(text, e)| format!("invalid JSONPath {text}: {e}"))?;
        let body: Value = serde_json::from_slice(&response.body).map_err(|_| {
            format!(
                "the body is not JSON, so {path_text} selects nothing: {}",
                clip(&response.text(), 120)
            )
        })?;
        let nodes = path.query(&body).all();
        return match nodes.as_slice() {
            [Value::String(s)] => Ok(s.clone()),
            [other] => Ok(other.to_string()),
            [] => Err(format!(
                "{path_text} selects nothing in {}",
                clip(&body.to_string(), 200)
            )),
            many => Err(format!(
                "{path_text} selects {} nodes; a capture needs exactly one",
                many.len()
            )),
        };
    }
    let source = match &spec.header {
        Some(name) => response
            .header(name)
            .ok_or_else(|| format!("the response has no {name} header"))?,
        None => response.text().into_owned(),
    };
    let Some(pattern) = &spec.regex else { return Ok(source) };
    let captures = pattern.0.captures(&source).ok_or_else(|| {
        let from = spec.header.as_deref().unwrap_or("the body");
        format!("/{}/ does not match {from}: {}", pattern.0.as_str(), clip(&source, 120))
    })?;
    let matched = captures
        .get(1)
        .or_else(|| captures.get(0))
        .map(|m| m.as_str().to_string());
    Ok(matched.unwrap_or_default())
}
