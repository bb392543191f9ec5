//! `observability`: `/health` as `application/health+json`, `/metrics` in the Prometheus text format with a
//! request counter labelled by route template, request ids (echoed, generated, replaced), and one JSON log line
//! per request when `LOG_FORMAT=json`. The middleware here wraps every route of the reference.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::{Shared, json_response, problem};

/// Requests counted by (method, route, status).
#[derive(Default)]
pub(crate) struct Store {
    counts: Mutex<BTreeMap<(String, String, u16), u64>>,
    next_id: AtomicU64,
}

/// The request id a request carries through the handlers.
#[derive(Clone)]
struct RequestId(String);

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/widgets/{id}", get(widget))
}

pub(crate) async fn health(State(app): State<Shared>) -> Response {
    let body = serde_json::json!({ "status": "pass" });
    let mut response = json_response(StatusCode::OK, &body, false);
    if !app.config.has("health-plain-json") {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/health+json"),
        );
    }
    response
}

async fn widget(Path(id): Path<String>) -> Response {
    match id.parse::<u32>() {
        Ok(n) if n <= 1000 => json_response(StatusCode::OK, &serde_json::json!({ "id": id }), false),
        _ => problem(StatusCode::NOT_FOUND, "no such widget"),
    }
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Outer layer, on every request: the request id, echoed when valid, else generated.
pub(crate) async fn request_id(State(app): State<Shared>, mut request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let id = match given {
        Some(id) if app.config.has("request-id-trusted") => Some(id),
        Some(id) if valid_id(&id) && !app.config.has("request-id-ignored") => Some(id),
        None if app.config.has("request-id-absent") => None,
        _ => {
            // Deterministic, so that reports of the reference are stable.
            let n = app.observe.next_id.fetch_add(1, Ordering::Relaxed) + 1;
            Some(format!("req-{n}"))
        }
    };
    if let Some(id) = &id {
        request.extensions_mut().insert(RequestId(id.clone()));
    }
    let mut response = next.run(request).await;
    // The id middleware placed inside authentication: refused requests never get an id.
    let skipped = app.config.has("request-id-after-auth") && response.status() == StatusCode::UNAUTHORIZED;
    if let Some(value) = id.filter(|_| !skipped).and_then(|id| HeaderValue::from_str(&id).ok()) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Inner layer, on matched routes: the request counter and the log line.
pub(crate) async fn observe(State(app): State<Shared>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let route = match request.extensions().get::<MatchedPath>() {
        Some(matched) if !app.config.has("raw-path-labels") => matched.as_str().to_string(),
        _ => path,
    };
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    if !(app.config.has("metrics-skip-errors") && status >= 400)
        && let Ok(mut counts) = app.observe.counts.lock()
    {
        *counts.entry((method.clone(), route.clone(), status)).or_default() += 1;
    }
    if app.config.env.get("LOG_FORMAT").map(String::as_str) == Some("json") {
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        let line = if app.config.has("log-plain-text") {
            format!(
                "INFO {method} {route} {status} {duration_ms:.1}ms rid={}",
                request_id.unwrap_or_default()
            )
        } else {
            serde_json::json!({
                "level": "info",
                "msg": "request",
                "request_id": request_id,
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
            })
            .to_string()
        };
        app.config.log.line(&line);
        if app.config.has("access-log-too") {
            // The server's own access line, left on beside the service's.
            let access = serde_json::json!({ "level": "info", "msg": "access", "request_id": null, "method": method,
                "route": null, "status": status, "duration_ms": null });
            app.config.log.line(&access.to_string());
        }
    }
    response
}

/// The start of the service: with `LOG_FORMAT=json` nothing is written that is not JSON (unless a defect says so).
pub(crate) fn announce(config: &crate::Config) {
    if config.env.get("LOG_FORMAT").map(String::as_str) == Some("json") && config.has("startup-banner-text") {
        config.log.line(" * Serving the widget API (press CTRL+C to quit)");
    }
}

/// A label value, escaped as the text format wants.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

async fn metrics(State(app): State<Shared>) -> Response {
    let counts = app.observe.counts.lock().map(|c| c.clone()).unwrap_or_default();
    let mut text = String::from("# HELP http_requests_total Requests answered, by method, route and status.\n");
    if !app.config.has("metrics-untyped") {
        text.push_str("# TYPE http_requests_total counter\n");
    }
    for ((method, route, status), count) in counts {
        text.push_str(&format!(
            "http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {count}\n",
            label(&method),
            label(&route)
        ));
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}
