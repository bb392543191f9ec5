//! `rate-limiter`: `GET /quote`, limited per API key with a fixed window, RateLimit-* headers and Retry-After.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::{Shared, json_response, problem};

/// Per bucket: when its window started and how many requests it has counted.
#[derive(Default)]
pub(crate) struct Store {
    buckets: Mutex<HashMap<String, (Instant, u64)>>,
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/quote", get(quote))
}

fn setting(app: &Shared, name: &str, default: u64) -> u64 {
    app.config
        .env
        .get(name)
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

/// Counts a request in its bucket: (allowed, count after this request, seconds until the window resets).
async fn count(app: &Shared, bucket: &str, limit: u64, window: Duration) -> (bool, u64, u64) {
    let now = Instant::now();
    let fresh = |entry: &(Instant, u64)| now.duration_since(entry.0) < window;
    let current = {
        let Ok(mut buckets) = app.rate_limits.buckets.lock() else {
            return (false, limit, 1);
        };
        let entry = buckets.entry(bucket.to_string()).or_insert((now, 0));
        if !fresh(entry) {
            *entry = (now, 0);
        } else if app.config.has("window-slides") {
            // The window restarts with every request, so a steady client never gets a new one.
            entry.0 = now;
        }
        if !app.config.has("racy-counter") {
            entry.1 += 1;
        }
        *entry
    };
    let (started, count) = if app.config.has("racy-counter") {
        // Read, then write later: concurrent requests all read the same count.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let Ok(mut buckets) = app.rate_limits.buckets.lock() else {
            return (false, limit, 1);
        };
        let entry = buckets.entry(bucket.to_string()).or_insert(current);
        *entry = (current.0, current.1 + 1);
        *entry
    } else {
        current
    };
    let remaining_window = window.saturating_sub(now.duration_since(started));
    let mut reset = remaining_window.as_secs() + u64::from(remaining_window.subsec_nanos() > 0);
    if app.config.has("reset-constant") {
        reset = window.as_secs();
    }
    (count <= limit, count, reset.max(1))
}

async fn quote(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let limit = setting(&app, "RATE_LIMIT", 5);
    let window = Duration::from_secs(setting(&app, "WINDOW_SECONDS", 2));
    let Some(key) = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
    else {
        if app.config.has("no-api-key-422") {
            return json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                &serde_json::json!({ "detail": [{ "type": "missing", "loc": ["header", "x-api-key"] }] }),
                false,
            );
        }
        return problem(StatusCode::UNAUTHORIZED, "send your API key in X-Api-Key");
    };
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let bucket = match forwarded {
        Some(client) if app.config.has("trust-xff") => client.to_string(),
        _ if app.config.has("key-prefix-8") => key.chars().take(8).collect(),
        _ => key.to_string(),
    };
    let (allowed, count, reset) = count(&app, &bucket, limit, window).await;
    let remaining = if app.config.has("remaining-negative") {
        limit as i64 - count as i64
    } else {
        limit.saturating_sub(count) as i64
    };
    let mut response = if allowed {
        json_response(
            StatusCode::OK,
            &serde_json::json!({ "quote": "Simplicity is prerequisite for reliability." }),
            false,
        )
    } else {
        let status = if app.config.has("status-403") {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        let mut response = if app.config.has("text-429") {
            (status, "Too many requests, slow down.").into_response()
        } else {
            problem(status, "rate limit exceeded; retry after the time in Retry-After")
        };
        let retry_after = if app.config.has("retry-after-float") {
            format!("{reset}.5")
        } else if app.config.has("retry-after-lies") {
            // A second before the window reopens.
            reset.saturating_sub(1).max(1).to_string()
        } else {
            reset.to_string()
        };
        if let Ok(value) = HeaderValue::from_str(&retry_after) {
            response.headers_mut().insert("retry-after", value);
        }
        response
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("ratelimit-limit", limit as i64),
        ("ratelimit-remaining", remaining),
        // `reset-floor` rounds the seconds left down (the header only; Retry-After stays right).
        (
            "ratelimit-reset",
            if app.config.has("reset-floor") {
                (reset as i64 - 1).max(1)
            } else {
                reset as i64
            },
        ),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
            headers.insert(name, value);
        }
    }
    response.into_response()
}
