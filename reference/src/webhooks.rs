//! `webhooks`: `POST /payouts` delivers a signed `payout.created` event to `WEBHOOK_URL` (retries with backoff,
//! `410` ends, `429` honours `Retry-After`, redirects are failures), and `POST /webhooks` verifies Standard
//! Webhooks signatures from the bank before crediting `GET /accounts/{account}`, once per message id.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use crate::{Shared, json_response, problem};

/// Balances and the message ids already processed.
#[derive(Default)]
pub(crate) struct Webhooks {
    balances: Mutex<HashMap<String, i64>>,
    seen: Mutex<HashSet<String>>,
    next: std::sync::atomic::AtomicU64,
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/payouts", post(payout))
        .route("/webhooks", post(receive))
        .route("/accounts/{account}", get(account))
}

fn env_u64(app: &Shared, name: &str, default: u64) -> u64 {
    app.config.env.get(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn key(secret: &str) -> Vec<u8> {
    STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .unwrap_or_default()
}

fn mac(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> Hmac<sha2::Sha256> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key(secret)).expect("HMAC takes a key of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    mac
}

async fn payout(State(app): State<Shared>, Json(body): Json<Value>) -> Response {
    let (Some(account), Some(amount)) = (body["account"].as_str(), body["amount"].as_i64()) else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a payout needs an account and an integer amount",
        );
    };
    let n = app.webhooks.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    let payout = json!({ "id": format!("po_{n}"), "account": account, "amount": amount });
    let event = if app.config.has("payload-not-enveloped") {
        payout.clone()
    } else {
        json!({
            "type": "payout.created",
            "timestamp": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            "data": payout,
        })
    };
    let delivery = deliver(app.clone(), format!("msg_po_{n}"), event.to_string());
    if app.config.has("sync-delivery") {
        delivery.await;
    } else {
        let mut stopping = app.stopping.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = delivery => {}
                _ = stopping.wait_for(|stopping| *stopping) => {}
            }
        });
    }
    json_response(StatusCode::CREATED, &payout, false)
}

/// Delivers one event until an attempt succeeds, `410` ends it, or the attempts run out.
async fn deliver(app: Shared, id: String, body: String) {
    let config = &app.config;
    let url = config.env.get("WEBHOOK_URL").cloned().unwrap_or_default();
    let secret = config.env.get("WEBHOOK_SECRET").cloned().unwrap_or_default();
    let base = env_u64(&app, "WEBHOOK_RETRY_BASE_MS", 200);
    let mut attempts = env_u64(&app, "WEBHOOK_MAX_ATTEMPTS", 4);
    if config.has("attempts-plus-one") {
        attempts += 1;
    }
    if config.has("webhook-no-retry") {
        attempts = 1;
    }
    let client = if config.has("redirects-followed") {
        &app.http_following
    } else {
        &app.http
    };
    let first = now();
    for attempt in 1..=attempts {
        let id = if config.has("retry-new-id") && attempt > 1 {
            format!("{id}-{attempt}")
        } else {
            id.clone()
        };
        let seconds = if config.has("timestamp-frozen") { first } else { now() };
        let timestamp = if config.has("timestamp-ms") {
            (seconds * 1000).to_string()
        } else {
            seconds.to_string()
        };
        let signature = if config.has("signature-hex") {
            let bytes = mac(&secret, &id, &timestamp, body.as_bytes()).finalize().into_bytes();
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        } else {
            STANDARD.encode(mac(&secret, &id, &timestamp, body.as_bytes()).finalize().into_bytes())
        };
        let sent = client
            .post(&url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", &timestamp)
            .header("webhook-signature", format!("v1,{signature}"))
            .body(body.clone())
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        let mut wait = if config.has("retry-no-backoff") {
            0
        } else {
            base << (attempt - 1)
        };
        match sent {
            Ok(response) if response.status().is_success() => return,
            Ok(response) if response.status() == StatusCode::GONE && !config.has("gone-retried") => return,
            Ok(response) if !config.has("retry-after-ignored") => {
                let asked = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if let Some(seconds) = asked {
                    wait = wait.max(seconds * 1000);
                }
            }
            _ => {}
        }
        if attempt < attempts {
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
}

/// Why a webhook is refused.
fn verify(app: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<String, (StatusCode, &'static str)> {
    let config = &app.config;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    if config.has("no-verification") {
        return Ok(header("webhook-id").unwrap_or_default());
    }
    let signatures = match header("webhook-signature") {
        Some(signatures) => signatures,
        None if config.has("missing-signature-500") => {
            return Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "AttributeError: 'NoneType' object has no attribute 'split'",
            ));
        }
        None => return Err((StatusCode::BAD_REQUEST, "webhook-signature is missing")),
    };
    let (Some(id), Some(timestamp)) = (header("webhook-id"), header("webhook-timestamp")) else {
        return Err((StatusCode::BAD_REQUEST, "webhook-id and webhook-timestamp are required"));
    };
    let Ok(seconds) = timestamp.trim().parse::<u64>() else {
        return Err((StatusCode::BAD_REQUEST, "webhook-timestamp is not Unix seconds"));
    };
    if seconds.abs_diff(now()) > 300 && !config.has("timestamp-unchecked") {
        return Err((StatusCode::BAD_REQUEST, "the timestamp is too old or too new"));
    }
    let secret = config.env.get("INBOUND_SECRET").cloned().unwrap_or_default();
    let reserialized;
    let signed: &[u8] = if config.has("verifies-reserialized") {
        reserialized = serde_json::from_slice::<Value>(body)
            .map(|v| v.to_string())
            .unwrap_or_default();
        reserialized.as_bytes()
    } else {
        body
    };
    let mut candidates: Vec<&str> = signatures.split(' ').collect();
    if config.has("first-signature-only") {
        candidates.truncate(1);
    }
    let valid = config.has("signature-unchecked")
        || candidates.iter().any(|candidate| {
            candidate
                .strip_prefix("v1,")
                .and_then(|b64| STANDARD.decode(b64).ok())
                // verify_slice compares in constant time.
                .is_some_and(|expected| mac(&secret, &id, &timestamp, signed).verify_slice(&expected).is_ok())
        });
    if valid {
        Ok(id)
    } else {
        Err((StatusCode::UNAUTHORIZED, "no signature verifies"))
    }
}

async fn receive(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let id = match verify(&app, &headers, &body) {
        Ok(id) => id,
        Err((status, detail)) => return problem(status, detail),
    };
    let first = crate::lock(&app.webhooks.seen).insert(id);
    if !first && !app.config.has("replay-applied-twice") {
        return StatusCode::NO_CONTENT.into_response();
    }
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return problem(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    let credits = event["type"] == "deposit.succeeded" || app.config.has("any-event-credits");
    if credits
        && let (Some(account), Some(amount)) = (event["data"]["account"].as_str(), event["data"]["amount"].as_i64())
    {
        let mut balances = crate::lock(&app.webhooks.balances);
        *balances.entry(account.to_string()).or_default() += amount;
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn account(State(app): State<Shared>, Path(account): Path<String>) -> Response {
    let balance = crate::lock(&app.webhooks.balances).get(&account).copied().unwrap_or(0);
    json_response(
        StatusCode::OK,
        &json!({ "account": account, "balance": balance }),
        false,
    )
}
