//! `status-codes`: `/notes` answering every outcome with the precise status code and RFC 9457 problem details.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde::Deserialize;

use crate::{Shared, json_response, problem, with_allow};

/// The largest request body the brief allows.
const MAX_BODY: usize = 64 * 1024;

#[derive(Default)]
pub(crate) struct Store {
    notes: Mutex<BTreeMap<u64, String>>,
    next: AtomicU64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteInput {
    text: String,
}

pub(crate) fn routes() -> Router<Shared> {
    // The default body limit is lifted so the handler can answer 413 itself.
    Router::new()
        .route("/notes", any(collection))
        .route("/notes/{id}", any(member))
        .layer(axum::extract::DefaultBodyLimit::max(32 << 20))
}

/// An error in the configured style: problem details, or one of the defects' plain shapes.
pub(crate) fn error(app: &Shared, status: StatusCode, detail: &str) -> Response {
    if app.config.has("plain-json-errors") {
        return json_response(status, &serde_json::json!({ "error": detail }), false);
    }
    if app.config.has("status-as-string") {
        let body = serde_json::json!({ "type": "about:blank", "title": "Error", "status": status.as_u16().to_string(), "detail": detail });
        let mut response = json_response(status, &body, false);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        return response;
    }
    problem(status, detail)
}

async fn collection(State(app): State<Shared>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
    if method != Method::POST {
        return not_allowed(&app, "POST");
    }
    if body.len() > MAX_BODY && app.config.has("html-413") {
        // The framework's body limit answers before any handler, with its own HTML page.
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            "<html><body><h1>413 Request Entity Too Large</h1></body></html>",
        )
            .into_response();
    }
    if body.len() > MAX_BODY && !app.config.has("no-body-limit") {
        return error(
            &app,
            StatusCode::PAYLOAD_TOO_LARGE,
            "request bodies are limited to 64 KiB",
        );
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !is_json && !app.config.has("media-type-ignored") {
        return error(
            &app,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send notes as application/json",
        );
    }
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(e) => {
            let status = if app.config.has("malformed-422") {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::BAD_REQUEST
            };
            return error(&app, status, &format!("the body is not valid JSON: {e}"));
        }
    };
    let lenient = app.config.has("extra-fields-allowed");
    let parsed = if lenient {
        value["text"]
            .as_str()
            .map(|text| NoteInput { text: text.to_string() })
            .ok_or(())
    } else {
        serde_json::from_value::<NoteInput>(value).map_err(|_| ())
    };
    let length_ok = |text: &str| {
        // `length-in-bytes` counts UTF-8 bytes where the brief says characters.
        let length = if app.config.has("length-in-bytes") {
            text.len()
        } else {
            text.chars().count()
        };
        app.config.has("no-length-check") || (!text.trim().is_empty() && length <= 500)
    };
    let text = match parsed {
        Ok(input) if length_ok(&input.text) => input.text,
        _ => {
            let status = if app.config.has("invalid-400") {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            return error(&app, status, "a note is {\"text\": <1 to 500 characters>}");
        }
    };
    let id = app.notes.next.fetch_add(1, Ordering::SeqCst) + 1;
    if let Ok(mut notes) = app.notes.notes.lock() {
        notes.insert(id, text.clone());
    }
    let status = if app.config.has("notes-created-200") {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut response = json_response(
        status,
        &serde_json::json!({ "id": id.to_string(), "text": text }),
        false,
    );
    if let Ok(location) = HeaderValue::from_str(&format!("/notes/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

async fn member(State(app): State<Shared>, Path(id): Path<String>, method: Method) -> Response {
    if !matches!(method, Method::GET | Method::HEAD | Method::DELETE) {
        return not_allowed(&app, "GET, HEAD, DELETE");
    }
    let Ok(number) = id.parse::<u64>() else {
        if app.config.has("stack-traces") {
            let trace = format!(
                "Traceback (most recent call last):\n  File \"/app/notes.py\", line 42, in get_note\n    note_id = int(\"{id}\")\nValueError: invalid literal for int() with base 10"
            );
            return (StatusCode::INTERNAL_SERVER_ERROR, trace).into_response();
        }
        return error(&app, StatusCode::NOT_FOUND, "no such note");
    };
    let note = app
        .notes
        .notes
        .lock()
        .ok()
        .and_then(|notes| notes.get(&number).cloned());
    let Some(text) = note else {
        if method == Method::DELETE && app.config.has("delete-missing-204") {
            return StatusCode::NO_CONTENT.into_response();
        }
        if app.config.has("notes-missing-500") {
            return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response();
        }
        return error(&app, StatusCode::NOT_FOUND, "no such note");
    };
    if method == Method::DELETE {
        if let Ok(mut notes) = app.notes.notes.lock() {
            notes.remove(&number);
        }
        if app.config.has("notes-delete-body") {
            return json_response(StatusCode::OK, &serde_json::json!({ "deleted": true }), false);
        }
        return StatusCode::NO_CONTENT.into_response();
    }
    let id = if app.config.has("get-note-id-number") {
        serde_json::json!(number)
    } else {
        serde_json::json!(id)
    };
    json_response(StatusCode::OK, &serde_json::json!({ "id": id, "text": text }), false)
}

fn not_allowed(app: &Shared, allow: &'static str) -> Response {
    let response = error(app, StatusCode::METHOD_NOT_ALLOWED, "this method is not supported here");
    if app.config.has("notes-405-no-allow") {
        response
    } else {
        with_allow(response, allow)
    }
}
