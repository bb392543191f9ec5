//! `idempotency-keys`: `POST /payments` made safe to retry with `Idempotency-Key`, scoped per client.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::{Deserialize, Serialize};

use crate::{Shared, json_response, method_not_allowed, problem};

/// The longest key the brief allows.
const MAX_KEY: usize = 255;

#[derive(Clone, Serialize)]
struct Payment {
    id: String,
    amount: u64,
    currency: String,
    status: String,
    note: Option<String>,
}

#[derive(Deserialize, PartialEq, Clone)]
#[serde(deny_unknown_fields)]
struct PaymentInput {
    amount: u64,
    currency: String,
}

/// What is stored under (client, key).
#[derive(Clone)]
enum Entry {
    InFlight,
    Done {
        payload: serde_json::Value,
        status: StatusCode,
        body: serde_json::Value,
        location: String,
    },
}

#[derive(Default)]
pub(crate) struct Store {
    keys: Mutex<HashMap<(String, String), Entry>>,
    payments: Mutex<Vec<(String, Payment)>>,
    next: AtomicU64,
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/payments", get(list).post(create))
        .route("/payments/{id}", any(member))
        .route("/payments/{id}/note", any(note))
}

#[expect(
    clippy::result_large_err,
    reason = "the error is the ready response a handler returns as is"
)]
fn client_of(app: &Shared, headers: &HeaderMap) -> Result<String, Response> {
    let client = headers
        .get("x-client-id")
        .and_then(|v| v.to_str().ok())
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    match client {
        Some(client) => Ok(client),
        None if app.config.has("client-id-optional") => Ok("anonymous".to_string()),
        None => Err(problem(StatusCode::UNAUTHORIZED, "send your client id in X-Client-Id")),
    }
}

/// An error in the configured style: problem details, or (`html-400`) the framework's HTML page for a 400.
fn error(app: &Shared, status: StatusCode, detail: &str) -> Response {
    if app.config.has("html-400") && status == StatusCode::BAD_REQUEST {
        return (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            "<!doctype html><title>400 Bad Request</title><h1>Bad Request</h1>",
        )
            .into_response();
    }
    problem(status, detail)
}

fn stored(status: StatusCode, body: &serde_json::Value, location: &str) -> Response {
    let mut response = json_response(status, body, false);
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn create(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let client = match client_of(&app, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let max_key = if app.config.has("key-max-254") {
        MAX_KEY - 1
    } else {
        MAX_KEY
    };
    let key = match key {
        None if app.config.has("key-optional") => None,
        None => return error(&app, StatusCode::BAD_REQUEST, "send an Idempotency-Key header"),
        Some(k) if k.is_empty() || (k.len() > max_key && !app.config.has("no-key-validation")) => {
            return error(
                &app,
                StatusCode::BAD_REQUEST,
                "Idempotency-Key must be 1 to 255 characters",
            );
        }
        Some(k) => Some(k),
    };
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return error(&app, StatusCode::BAD_REQUEST, "the body is not valid JSON");
    };
    let Ok(input) = serde_json::from_value::<PaymentInput>(payload.clone()) else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a payment needs amount (integer) and currency",
        );
    };
    let scope = if app.config.has("keys-global") {
        String::new()
    } else {
        client.clone()
    };
    if let Some(key) = &key {
        let slot = (scope.clone(), key.clone());
        let existing = app
            .idempotency
            .keys
            .lock()
            .ok()
            .and_then(|keys| keys.get(&slot).cloned());
        match existing {
            Some(Entry::InFlight) => {
                return problem(
                    StatusCode::CONFLICT,
                    "a request with this Idempotency-Key is still in progress",
                );
            }
            Some(Entry::Done {
                payload: first,
                status,
                body,
                location,
            }) => {
                if first != payload && !app.config.has("mismatch-ignored") {
                    return problem(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "this Idempotency-Key was used with another payload",
                    );
                }
                if !app.config.has("replay-creates") {
                    let status = if app.config.has("replay-200") {
                        StatusCode::OK
                    } else {
                        status
                    };
                    if app.config.has("replay-live") {
                        // The replay describes the payment as it is now, not the response that was sent.
                        let id = body["id"].as_str().unwrap_or_default().to_string();
                        let now = with_payment(&app, &client, &id, |all, i| all[i].1.clone());
                        if let Some(payment) = now {
                            return stored(status, &serde_json::to_value(payment).unwrap_or_default(), &location);
                        }
                    }
                    return stored(status, &body, &location);
                }
            }
            None => {
                if !app.config.has("check-then-insert")
                    && let Ok(mut keys) = app.idempotency.keys.lock()
                {
                    // Check and claim under one lock: a concurrent retry sees InFlight.
                    if keys.contains_key(&slot) {
                        return problem(
                            StatusCode::CONFLICT,
                            "a request with this Idempotency-Key is still in progress",
                        );
                    }
                    keys.insert(slot.clone(), Entry::InFlight);
                }
            }
        }
    }
    let slow = app.config.env.get("SLOW_MS").and_then(|v| v.parse().ok()).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(slow)).await;
    let id = format!("pay_{}", app.idempotency.next.fetch_add(1, Ordering::SeqCst) + 1);
    let payment = Payment {
        id: id.clone(),
        amount: input.amount,
        currency: input.currency,
        status: "succeeded".into(),
        note: None,
    };
    if let Ok(mut payments) = app.idempotency.payments.lock() {
        payments.push((client, payment.clone()));
    }
    let mut body = serde_json::to_value(&payment).unwrap_or_default();
    if app.config.has("note-omitted")
        && let Some(object) = body.as_object_mut()
    {
        // What `skip_serializing_if = "Option::is_none"` does to the brief's `"note": null`.
        object.remove("note");
    }
    let location = format!("/payments/{id}");
    if let Some(key) = key
        && let Ok(mut keys) = app.idempotency.keys.lock()
    {
        keys.insert(
            (scope, key),
            Entry::Done {
                payload,
                status: StatusCode::CREATED,
                body: body.clone(),
                location: location.clone(),
            },
        );
    }
    let status = if app.config.has("payment-created-200") {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    stored(status, &body, &location)
}

async fn list(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let client = match client_of(&app, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mine: Vec<Payment> = app
        .idempotency
        .payments
        .lock()
        .map(|all| {
            all.iter()
                .filter(|(owner, _)| *owner == client)
                .map(|(_, p)| p.clone())
                .collect()
        })
        .unwrap_or_default();
    json_response(StatusCode::OK, &serde_json::json!({ "payments": mine }), false)
}

/// Runs `change` on the client's payment `id`; `None` when it does not exist (or is someone else's).
fn with_payment<T>(
    app: &Shared,
    client: &str,
    id: &str,
    change: impl FnOnce(&mut Vec<(String, Payment)>, usize) -> T,
) -> Option<T> {
    let mut payments = app.idempotency.payments.lock().ok()?;
    let any_owner = app.config.has("no-owner-check");
    let index = payments
        .iter()
        .position(|(owner, p)| (any_owner || owner == client) && p.id == id)?;
    Some(change(&mut payments, index))
}

async fn member(State(app): State<Shared>, Path(id): Path<String>, method: Method, headers: HeaderMap) -> Response {
    let client = match client_of(&app, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match method {
        Method::GET => match with_payment(&app, &client, &id, |all, i| all[i].1.clone()) {
            Some(payment) => json_response(
                StatusCode::OK,
                &serde_json::to_value(payment).unwrap_or_default(),
                false,
            ),
            None => problem(StatusCode::NOT_FOUND, "no such payment"),
        },
        Method::DELETE => match with_payment(&app, &client, &id, |all, i| all.remove(i)) {
            Some(_) => StatusCode::NO_CONTENT.into_response(),
            None if app.config.has("payment-delete-again-204") => StatusCode::NO_CONTENT.into_response(),
            None if app.config.has("delete-again-500") => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "called `Option::unwrap()` on a `None` value",
            )
                .into_response(),
            None => problem(StatusCode::NOT_FOUND, "no such payment"),
        },
        _ => method_not_allowed("GET, DELETE"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteInput {
    note: String,
}

async fn note(
    State(app): State<Shared>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client = match client_of(&app, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if method != Method::PUT {
        return method_not_allowed("PUT");
    }
    let Ok(input) = serde_json::from_slice::<NoteInput>(&body) else {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "send {\"note\": \"...\"}");
    };
    let appends = app.config.has("note-appends");
    let updated = with_payment(&app, &client, &id, |all, i| {
        let payment = &mut all[i].1;
        payment.note = match (&payment.note, appends) {
            (Some(old), true) => Some(format!("{old} {}", input.note)),
            _ => Some(input.note),
        };
        payment.clone()
    });
    match updated {
        Some(payment) => json_response(
            StatusCode::OK,
            &serde_json::to_value(payment).unwrap_or_default(),
            false,
        ),
        None => problem(StatusCode::NOT_FOUND, "no such payment"),
    }
}
