//! `middleware`: a bookmarks API under `/api` behind a chain of middleware — security headers, CORS, API-key
//! authentication — with every error, from any layer, as problem details. (Request ids come from the global
//! `observe::request_id` layer.)

use std::sync::Mutex;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::{Shared, json_response, problem};

/// The bookmarks stored.
#[derive(Default)]
pub(crate) struct Bookmarks(Mutex<Vec<Value>>);

pub(crate) fn routes(app: &Shared) -> Router<Shared> {
    let router = Router::new().route("/bookmarks", get(list).post(create));
    let router = if app.config.has("framework-404") {
        router.fallback(|| async { StatusCode::NOT_FOUND })
    } else {
        router.fallback(|| async { problem(StatusCode::NOT_FOUND, "there is nothing at this URL") })
    };
    router
        .method_not_allowed_fallback(|| async {
            let mut response = problem(StatusCode::METHOD_NOT_ALLOWED, "this method is not supported here");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST, OPTIONS"));
            response
        })
        .layer(from_fn_with_state(app.clone(), auth))
        .layer(from_fn_with_state(app.clone(), cors))
        .layer(from_fn_with_state(app.clone(), security_headers))
}

async fn list(State(app): State<Shared>) -> Response {
    let items = crate::lock(&app.bookmarks.0).clone();
    json_response(StatusCode::OK, &json!({ "items": items }), false)
}

async fn create(State(app): State<Shared>, body: Bytes) -> Response {
    let url = match serde_json::from_slice::<Value>(&body) {
        Ok(value) => value.get("url").and_then(Value::as_str).map(str::to_string),
        Err(_) if app.config.has("json-rejection-plain") => {
            return (StatusCode::BAD_REQUEST, "Failed to parse the request body as JSON").into_response();
        }
        Err(_) => return problem(StatusCode::BAD_REQUEST, "the body is not JSON"),
    };
    let Some(url) = url else {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "a bookmark needs a url");
    };
    let mut bookmarks = crate::lock(&app.bookmarks.0);
    let bookmark = json!({ "id": format!("b{}", bookmarks.len() + 1), "url": url });
    bookmarks.push(bookmark.clone());
    json_response(StatusCode::CREATED, &bookmark, false)
}

/// `X-Api-Key` must be `API_KEY`; CORS preflights (answered by the CORS layer) never get here.
async fn auth(State(app): State<Shared>, request: Request, next: Next) -> Response {
    let expected = app.config.env.get("API_KEY").cloned().unwrap_or_default();
    let given = request
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let allowed = !expected.is_empty() && given.as_deref() == Some(expected.as_str());
    if app.config.has("auth-after-handler") {
        // The check runs on the way out: the handler has already done its work.
        let response = next.run(request).await;
        return if allowed {
            response
        } else {
            problem(StatusCode::UNAUTHORIZED, "a valid X-Api-Key is required")
        };
    }
    if !allowed {
        return problem(StatusCode::UNAUTHORIZED, "a valid X-Api-Key is required");
    }
    next.run(request).await
}

fn allowed_origin(app: &Shared, origin: &str) -> bool {
    let allowed = app.config.env.get("ALLOWED_ORIGIN").cloned().unwrap_or_default();
    if app.config.has("origin-reflected") {
        return true;
    }
    if app.config.has("origin-prefix-match") {
        return origin.starts_with(&allowed);
    }
    origin == allowed
}

/// Answers preflights itself; adds the CORS headers of an allowed origin to every other response.
async fn cors(State(app): State<Shared>, request: Request, next: Next) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let preflight =
        request.method() == Method::OPTIONS && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight && !app.config.has("preflight-needs-key") {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    if !app.config.has("no-vary-origin") || preflight {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    if let Some(origin) = origin.filter(|o| allowed_origin(&app, o)) {
        let value = if app.config.has("cors-wildcard") {
            "*".to_string()
        } else {
            origin
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        }
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        if preflight {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST"),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("Content-Type, X-Api-Key, X-Request-Id"),
            );
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        }
    }
    response
}

async fn security_headers(State(app): State<Shared>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if app.config.has("headers-on-success-only") && !response.status().is_success() {
        return response;
    }
    let headers: &mut HeaderMap = response.headers_mut();
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    if app.config.has("server-version") {
        headers.insert(header::SERVER, HeaderValue::from_static("bookmarks/1.4.2 (axum 0.8)"));
    }
    response
}
