//! `http-caching`: `/documents/{name}` with validators and conditional requests (RFC 9110 §8.8, §13).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde::Deserialize;

use crate::{Config, Shared, json_response, method_not_allowed, problem};

/// Documents by name, plus the version counter that makes every write's ETag unique.
#[derive(Default)]
pub(crate) struct Store {
    inner: Mutex<(BTreeMap<String, Document>, u64)>,
}

#[derive(Clone)]
struct Document {
    content: String,
    version: u64,
    created_version: u64,
    modified: SystemTime,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentInput {
    content: String,
}

const ALLOW: &str = "GET, HEAD, PUT, OPTIONS";

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/documents/{name}", any(document))
}

impl Document {
    /// The entity-tag's opaque part; `etag-stale` keeps the one of the first version.
    fn opaque(&self, config: &Config) -> String {
        let version = if config.has("etag-stale") {
            self.created_version
        } else {
            self.version
        };
        format!("doc-v{version}")
    }

    fn etag(&self, config: &Config) -> String {
        if config.has("etag-unquoted") {
            self.opaque(config)
        } else if config.has("etag-weak") {
            format!("W/\"{}\"", self.opaque(config))
        } else {
            format!("\"{}\"", self.opaque(config))
        }
    }

    fn seconds(&self) -> SystemTime {
        let secs = self.modified.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        UNIX_EPOCH + Duration::from_secs(secs)
    }
}

/// One entity-tag of a list: (weak, opaque). Unquoted tags are accepted leniently.
fn parse_tags(value: &str) -> Vec<(bool, String)> {
    value
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|tag| {
            let (weak, rest) = match tag.strip_prefix("W/") {
                Some(rest) => (true, rest),
                None => (false, tag),
            };
            (weak, rest.trim_matches('"').to_string())
        })
        .collect()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// If-None-Match evaluation (weak comparison, `*` matches any current representation).
fn none_match_hits(value: &str, doc: &Document, config: &Config) -> bool {
    if value.trim() == "*" {
        return !config.has("star-ignored");
    }
    if config.has("strong-compare") {
        return value.trim() == doc.etag(config);
    }
    let opaque = doc.opaque(config);
    parse_tags(value).iter().any(|(_, tag)| *tag == opaque)
}

/// Whether If-Modified-Since says the client's copy is current.
fn not_modified_since(value: &str, doc: &Document, config: &Config) -> Result<bool, ()> {
    let Ok(since) = httpdate::parse_http_date(value) else {
        // An invalid date is ignored, unless the parser's error escapes (`ims-invalid-500`).
        return if config.has("ims-invalid-500") {
            Err(())
        } else {
            Ok(false)
        };
    };
    if config.has("ims-string-compare") {
        // The header compared with Last-Modified as text: only the exact date counts as "not modified".
        return Ok(value.trim() == httpdate::fmt_http_date(doc.modified));
    }
    if config.has("ims-always-304") {
        // "The client has a copy" taken to mean "the copy is current".
        return Ok(true);
    }
    let modified = if config.has("last-modified-ms") {
        doc.modified
    } else {
        doc.seconds()
    };
    Ok(modified <= since)
}

async fn document(
    State(app): State<Shared>,
    Path(name): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let config = &app.config;
    let current = app
        .documents
        .inner
        .lock()
        .ok()
        .and_then(|store| store.0.get(&name).cloned());
    match method {
        Method::GET | Method::HEAD => {
            let inm = header_str(&headers, header::IF_NONE_MATCH);
            let Some(doc) = current else {
                if config.has("star-on-missing") && inm.is_some_and(|v| v.trim() == "*") {
                    return StatusCode::NOT_MODIFIED.into_response();
                }
                return problem(StatusCode::NOT_FOUND, &format!("no document named {name}"));
            };
            let ims = header_str(&headers, header::IF_MODIFIED_SINCE);
            let ims_applies = inm.is_none() || config.has("ims-over-inm");
            let unchanged = match ims.filter(|_| ims_applies).map(|v| not_modified_since(v, &doc, config)) {
                Some(Err(())) => {
                    let trace = "thread 'tokio-runtime-worker' panicked at src/documents.rs:88: invalid HTTP date";
                    return (StatusCode::INTERNAL_SERVER_ERROR, trace).into_response();
                }
                Some(Ok(unchanged)) => unchanged,
                None => false,
            };
            let fresh = (!config.has("ignore-if-none-match") && inm.is_some_and(|v| none_match_hits(v, &doc, config)))
                || unchanged;
            if fresh {
                let mut response = StatusCode::NOT_MODIFIED.into_response();
                if !config.has("304-bare") {
                    add_validators(&mut response, &doc, config, true);
                }
                return response;
            }
            let body = serde_json::json!({ "name": name, "content": doc.content });
            let mut response = json_response(StatusCode::OK, &body, false);
            add_validators(&mut response, &doc, config, !config.has("no-cache-control"));
            response
        }
        Method::PUT => put(&app, name, current, &headers, &body),
        Method::OPTIONS => (
            StatusCode::NO_CONTENT,
            [(header::ALLOW, HeaderValue::from_static(ALLOW))],
        )
            .into_response(),
        _ => method_not_allowed(ALLOW),
    }
}

fn put(app: &Shared, name: String, current: Option<Document>, headers: &HeaderMap, body: &[u8]) -> Response {
    let config = &app.config;
    let is_json = header_str(headers, header::CONTENT_TYPE)
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the document as application/json",
        );
    }
    let input: DocumentInput = match serde_json::from_slice::<serde_json::Value>(body) {
        Err(e) => return problem(StatusCode::BAD_REQUEST, &format!("the body is not valid JSON: {e}")),
        Ok(value) => match serde_json::from_value(value) {
            Ok(input) => input,
            Err(e) => {
                return problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &format!("the document is not valid: {e}"),
                );
            }
        },
    };
    if config.has("if-match-after-write")
        && let Ok(mut store) = app.documents.inner.lock()
    {
        // The write happens first and the precondition is checked afterwards: a 412 that changed the document.
        store.1 += 1;
        let version = store.1;
        store.0.insert(
            name.clone(),
            Document {
                content: input.content.clone(),
                version,
                created_version: current.as_ref().map_or(version, |d| d.created_version),
                modified: SystemTime::now(),
            },
        );
    }
    if let Some(if_match) = header_str(headers, header::IF_MATCH)
        && !config.has("ignore-if-match")
    {
        // Strong comparison: weak tags never match, `*` matches any current representation.
        let ok = match &current {
            None => config.has("if-match-star-creates") && if_match.trim() == "*",
            // The raw header compared with the ETag: lists and `*` never match.
            Some(doc) if config.has("if-match-string-compare") => if_match.trim() == doc.etag(config),
            Some(_) if if_match.trim() == "*" => true,
            Some(doc) => parse_tags(if_match)
                .iter()
                .any(|(weak, tag)| (!weak || config.has("if-match-weak-compare")) && *tag == doc.opaque(config)),
        };
        if !ok {
            return problem(
                StatusCode::PRECONDITION_FAILED,
                "If-Match does not match the current ETag",
            );
        }
    }
    if header_str(headers, header::IF_NONE_MATCH).is_some_and(|v| v.trim() == "*") && current.is_some() {
        return problem(StatusCode::PRECONDITION_FAILED, "the document already exists");
    }
    let Ok(mut store) = app.documents.inner.lock() else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "the store is unavailable");
    };
    store.1 += 1;
    let version = store.1;
    let doc = Document {
        content: input.content,
        version,
        created_version: current.as_ref().map_or(version, |d| d.created_version),
        modified: SystemTime::now(),
    };
    store.0.insert(name.clone(), doc.clone());
    drop(store);
    let status = if current.is_some() || config.has("put-always-200") {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut response = json_response(
        status,
        &serde_json::json!({ "name": name, "content": doc.content }),
        false,
    );
    if !config.has("put-no-validators") {
        add_validators(&mut response, &doc, config, false);
    }
    if status == StatusCode::CREATED
        && let Ok(location) = HeaderValue::from_str(&format!("/documents/{name}"))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn add_validators(response: &mut Response, doc: &Document, config: &Config, cache_control: bool) {
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&doc.etag(config)) {
        headers.insert(header::ETAG, etag);
    }
    let modified = if config.has("last-modified-now") {
        SystemTime::now()
    } else {
        doc.modified
    };
    if let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
        headers.insert(header::LAST_MODIFIED, date);
    }
    if cache_control {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
}
