//! `session-auth`: members, cookie sessions held on the server, logout, generic login errors, throttling.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};
use sha2::Digest;

use crate::{Shared, json_response, problem};

/// Members (username → password digest), live sessions (id → username) and failed logins in a row.
#[derive(Default)]
pub(crate) struct Sessions {
    members: Mutex<HashMap<String, Vec<u8>>>,
    live: Mutex<HashMap<String, String>>,
    failures: Mutex<HashMap<String, u32>>,
    last_login: Mutex<Option<String>>,
    next: std::sync::atomic::AtomicU64,
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/members", post(join))
        .route("/members/me", get(me))
        .route("/sessions", post(login))
        .route("/sessions/current", delete(logout))
}

fn digest(password: &str) -> Vec<u8> {
    sha2::Sha256::digest(format!("proctor-reference:{password}").as_bytes()).to_vec()
}

fn credentials(body: &Value) -> Option<(String, String)> {
    Some((
        body.get("username")?.as_str()?.to_string(),
        body.get("password")?.as_str()?.to_string(),
    ))
}

/// The `session` cookie of a request.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie(headers, "session")
}

/// The value of a request's cookie.
pub(crate) fn cookie(headers: &HeaderMap, wanted: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| value.to_string())
}

async fn join(State(app): State<Shared>, Json(body): Json<Value>) -> Response {
    let Some((username, password)) = credentials(&body) else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a member needs a username and a password",
        );
    };
    let mut members = crate::lock(&app.sessions.members);
    if members.contains_key(&username) {
        return problem(StatusCode::CONFLICT, "this username is taken");
    }
    members.insert(username.clone(), digest(&password));
    json_response(StatusCode::CREATED, &json!({ "username": username }), false)
}

async fn login(State(app): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let config = &app.config;
    let Some((username, password)) = credentials(&body) else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a login needs a username and a password",
        );
    };
    let limit: u32 = config
        .env
        .get("LOGIN_MAX_FAILURES")
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    if !config.has("no-throttle")
        && crate::lock(&app.sessions.failures)
            .get(&username)
            .is_some_and(|n| *n >= limit)
    {
        return problem(StatusCode::TOO_MANY_REQUESTS, "too many failed logins: try again later");
    }
    let known = crate::lock(&app.sessions.members).get(&username).cloned();
    let right = known.as_deref() == Some(digest(&password).as_slice());
    if !right {
        *crate::lock(&app.sessions.failures).entry(username.clone()).or_default() += 1;
        let detail = if known.is_none() && config.has("login-says-unknown-user") {
            "no member has this username"
        } else {
            "the username or the password is wrong"
        };
        return problem(StatusCode::UNAUTHORIZED, detail);
    }
    crate::lock(&app.sessions.failures).remove(&username);
    let planted = session_cookie(&headers);
    let id = match planted {
        Some(planted) if config.has("adopts-session-id") => planted,
        _ => {
            let n = app.sessions.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let seed = format!("{n}:{:?}:{}", std::time::SystemTime::now(), std::process::id());
            sha2::Sha256::digest(seed.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }
    };
    crate::lock(&app.sessions.live).insert(id.clone(), username.clone());
    *crate::lock(&app.sessions.last_login) = Some(username);
    let mut cookie = format!("session={id}");
    if !config.has("cookie-path-missing") {
        cookie.push_str("; Path=/");
    }
    if !config.has("cookie-not-httponly") {
        cookie.push_str("; HttpOnly");
    }
    cookie.push_str(if config.has("samesite-none") {
        "; SameSite=None"
    } else {
        "; SameSite=Lax"
    });
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn me(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let id = session_cookie(&headers);
    let member = match &id {
        Some(id) => crate::lock(&app.sessions.live).get(id).cloned(),
        None => None,
    };
    match (member, id) {
        (Some(_), _) if app.config.has("me-last-login") => {
            let last = crate::lock(&app.sessions.last_login).clone();
            json_response(StatusCode::OK, &json!({ "username": last }), false)
        }
        (Some(username), _) => json_response(StatusCode::OK, &json!({ "username": username }), false),
        (None, Some(_)) if app.config.has("unknown-session-500") => {
            problem(StatusCode::INTERNAL_SERVER_ERROR, "KeyError: session")
        }
        (None, None) if app.config.has("missing-cookie-500") => {
            problem(StatusCode::INTERNAL_SERVER_ERROR, "KeyError: 'session'")
        }
        _ => problem(StatusCode::UNAUTHORIZED, "log in first"),
    }
}

async fn logout(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers)
        && !app.config.has("logout-cookie-only")
    {
        crate::lock(&app.sessions.live).remove(&id);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if !app.config.has("logout-keeps-cookie") {
        response.headers_mut().insert(
            header::SET_COOKIE,
            HeaderValue::from_static("session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
        );
    }
    response
}
