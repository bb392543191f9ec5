//! `authn-authz`: users, bearer tokens, per-user documents; 401 vs 403, object-level authorization.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::{any, get, post};
use serde::Deserialize;

use crate::{Shared, json_response, method_not_allowed, problem};

struct User {
    id: u64,
    /// A stand-in for a real password hash (the reference is not a password store).
    password_hash: String,
    admin: bool,
}

#[derive(Clone)]
struct Doc {
    owner: String,
    title: String,
    body: String,
}

#[derive(Default)]
pub(crate) struct Store {
    users: Mutex<HashMap<String, User>>,
    tokens: Mutex<HashMap<String, String>>,
    docs: Mutex<HashMap<u64, Doc>>,
    next: AtomicU64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

/// The sign-up body: fields other than these are ignored (never bound onto the user).
#[derive(Deserialize)]
struct SignUp {
    username: String,
    password: String,
    /// Read only by the `role-from-body` defect.
    role: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocInput {
    title: String,
    body: String,
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/users", post(register))
        .route("/users/me", get(me))
        .route("/login", post(login))
        .route("/docs", post(create_doc))
        .route("/docs/{id}", any(doc))
        .route("/admin/stats", get(stats))
}

fn fake_hash(password: &str) -> String {
    let digest = password.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("$2b$12${digest:016x}")
}

fn user_json(app: &Shared, username: &str, user: &User) -> serde_json::Value {
    let mut value = serde_json::json!({ "id": user.id.to_string(), "username": username, "role": if user.admin { "admin" } else { "user" } });
    if app.config.has("leaks-hash") {
        value["password_hash"] = user.password_hash.clone().into();
    }
    if app.config.has("pwd-field-leak") {
        value["pwd"] = format!("scrypt:32768:8:1${}", &user.password_hash[7..]).into();
    }
    if app.config.has("password-changed-at") {
        value["password_changed_at"] = "2026-01-01T00:00:00Z".into();
    }
    value
}

async fn register(State(app): State<Shared>, body: Bytes) -> Response {
    let Ok(credentials) = serde_json::from_slice::<SignUp>(&body) else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "send {\"username\": ..., \"password\": ...}",
        );
    };
    let too_short = credentials.password.len() < 8 && !app.config.has("short-password-accepted");
    if credentials.username.is_empty() || too_short {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a username and a password of at least 8 characters",
        );
    }
    let Ok(mut users) = app.auth.users.lock() else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "the user store is unavailable");
    };
    if users.contains_key(&credentials.username) && !app.config.has("duplicate-overwrite") {
        return problem(StatusCode::CONFLICT, "that username is taken");
    }
    let user = User {
        id: app.auth.next.fetch_add(1, Ordering::SeqCst) + 1,
        password_hash: fake_hash(&credentials.password),
        admin: app.config.has("role-from-body") && credentials.role.as_deref() == Some("admin"),
    };
    let body = user_json(&app, &credentials.username, &user);
    users.insert(credentials.username, user);
    json_response(StatusCode::CREATED, &body, false)
}

async fn login(State(app): State<Shared>, body: Bytes) -> Response {
    let Ok(credentials) = serde_json::from_slice::<Credentials>(&body) else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "send {\"username\": ..., \"password\": ...}",
        );
    };
    let known = app.auth.users.lock().ok().and_then(|users| {
        users
            .get(&credentials.username)
            .map(|u| u.password_hash == fake_hash(&credentials.password))
    });
    match known {
        Some(true) => {
            let token = format!("tok_{:016x}{:016x}", rand_u64(), rand_u64());
            if let Ok(mut tokens) = app.auth.tokens.lock() {
                tokens.insert(token.clone(), credentials.username);
            }
            let mut response = json_response(StatusCode::OK, &serde_json::json!({ "token": token }), false);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        None if app.config.has("user-enumeration") => problem(StatusCode::UNAUTHORIZED, "no such user"),
        _ => problem(StatusCode::UNAUTHORIZED, "invalid username or password"),
    }
}

pub(crate) fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64,
    );
    hasher.finish()
}

/// The username behind the request's bearer token, or the 401 to answer.
#[expect(
    clippy::result_large_err,
    reason = "the error is the ready response a handler returns as is"
)]
fn authenticate(app: &Shared, headers: &HeaderMap) -> Result<String, Response> {
    let challenge = |error: Option<&str>| {
        let error = if app.config.has("challenge-always-errors") {
            error.or(Some("invalid_token"))
        } else {
            error
        };
        let mut response = problem(StatusCode::UNAUTHORIZED, "authentication required");
        if !app.config.has("no-www-authenticate") {
            let value = match error {
                Some(error) => format!("Bearer realm=\"proctor\", error=\"{error}\""),
                None if app.config.has("realm-with-scope") => "Bearer realm=\"docs\", scope=\"docs\"".to_string(),
                None => "Bearer realm=\"proctor\"".to_string(),
            };
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    };
    let Some(authorization) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Err(challenge(None));
    };
    let token = authorization
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let user = token.and_then(|t| app.auth.tokens.lock().ok().and_then(|tokens| tokens.get(t).cloned()));
    match user {
        Some(user) => Ok(user),
        None if app.config.has("bad-token-403") => Err(problem(StatusCode::FORBIDDEN, "invalid token")),
        None => Err(challenge(Some("invalid_token"))),
    }
}

async fn me(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let username = match authenticate(&app, &headers) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Ok(users) = app.auth.users.lock() else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "the user store is unavailable");
    };
    let username = if app.config.has("me-first-user") {
        // The "current user" read from the wrong place: the first account ever created.
        users
            .iter()
            .min_by_key(|(_, user)| user.id)
            .map_or(username, |(name, _)| name.clone())
    } else {
        username
    };
    match users.get(&username) {
        Some(user) => json_response(StatusCode::OK, &user_json(&app, &username, user), false),
        None => problem(StatusCode::UNAUTHORIZED, "authentication required"),
    }
}

async fn create_doc(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let owner = match authenticate(&app, &headers) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Ok(input) = serde_json::from_slice::<DocInput>(&body) else {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "send {\"title\": ..., \"body\": ...}");
    };
    let id = app.auth.next.fetch_add(1, Ordering::SeqCst) + 1;
    let doc = Doc {
        owner: owner.clone(),
        title: input.title,
        body: input.body,
    };
    if let Ok(mut docs) = app.auth.docs.lock() {
        docs.insert(id, doc.clone());
    }
    let mut response = json_response(StatusCode::CREATED, &doc_json(id, &doc), false);
    if !app.config.has("doc-no-location")
        && let Ok(location) = HeaderValue::from_str(&format!("/docs/{id}"))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn doc_json(id: u64, doc: &Doc) -> serde_json::Value {
    serde_json::json!({ "id": id.to_string(), "owner": doc.owner, "title": doc.title, "body": doc.body })
}

async fn doc(
    State(app): State<Shared>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let user = match authenticate(&app, &headers) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let not_found = || problem(StatusCode::NOT_FOUND, "no such document");
    let Ok(id) = id.parse::<u64>() else { return not_found() };
    let Some(current) = app.auth.docs.lock().ok().and_then(|docs| docs.get(&id).cloned()) else {
        return not_found();
    };
    match method {
        Method::GET => {
            // Someone else's document is reported as missing: its existence is not revealed.
            if current.owner != user && !app.config.has("no-owner-check-read") {
                return not_found();
            }
            json_response(StatusCode::OK, &doc_json(id, &current), false)
        }
        Method::PUT => {
            if current.owner != user && !app.config.has("no-owner-check-write") {
                return not_found();
            }
            let Ok(input) = serde_json::from_slice::<DocInput>(&body) else {
                return problem(StatusCode::UNPROCESSABLE_ENTITY, "send {\"title\": ..., \"body\": ...}");
            };
            let doc = Doc {
                owner: current.owner,
                title: input.title,
                body: input.body,
            };
            if let Ok(mut docs) = app.auth.docs.lock() {
                docs.insert(id, doc.clone());
            }
            json_response(StatusCode::OK, &doc_json(id, &doc), false)
        }
        _ => method_not_allowed("GET, PUT"),
    }
}

async fn stats(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let user = match authenticate(&app, &headers) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let admin = app
        .auth
        .users
        .lock()
        .ok()
        .and_then(|users| users.get(&user).map(|u| u.admin))
        .unwrap_or(false);
    if admin {
        let docs = app.auth.docs.lock().map(|d| d.len()).unwrap_or(0);
        return json_response(StatusCode::OK, &serde_json::json!({ "documents": docs }), false);
    }
    if app.config.has("forbidden-401") {
        return problem(StatusCode::UNAUTHORIZED, "admins only");
    }
    problem(StatusCode::FORBIDDEN, "admins only")
}
