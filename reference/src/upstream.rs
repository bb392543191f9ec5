//! `resilient-upstream`: `GET /quotes/{symbol}` and `POST /trades` in front of the quotes service at
//! `QUOTES_URL`, with time-outs, retries with backoff for idempotent calls, and a circuit breaker.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::{Config, Shared, json_response, problem};

/// The breaker's state.
#[derive(Debug, Default)]
pub(crate) struct Breaker {
    /// Failed quote requests in a row.
    failures: u32,
    /// When it opened, while it is open or half-open.
    opened: Option<Instant>,
    /// A trial request is in flight.
    trial: bool,
}

/// An HTTP client for calls to other services (no proxy from the env: the calls go where the env says).
pub(crate) fn client(redirects: reqwest::redirect::Policy) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(redirects)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/quotes/{symbol}", get(quote))
        .route("/trades", post(trade))
}

fn setting(config: &Config, name: &str, default: u64) -> u64 {
    config.env.get(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// How one attempt ended.
enum Attempt {
    Answered(u16, Value),
    /// No answer in time.
    TimedOut,
    /// The connection failed or closed without an answer.
    Dropped,
}

async fn call(app: &Shared, request: reqwest::RequestBuilder, headers: &HeaderMap) -> Attempt {
    let config = &app.config;
    let mut timeout = Duration::from_millis(setting(config, "UPSTREAM_TIMEOUT_MS", 500));
    if config.has("no-timeout") {
        timeout = Duration::from_secs(5);
    }
    let mut request = request.timeout(timeout);
    if !config.has("no-upstream-auth") {
        let token = config.env.get("QUOTES_TOKEN").cloned().unwrap_or_default();
        request = request.bearer_auth(token);
    }
    if !config.has("request-id-dropped")
        && let Some(id) = headers.get("x-request-id")
    {
        request = request.header("x-request-id", id.clone());
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.json::<Value>().await.unwrap_or(Value::Null);
            Attempt::Answered(status, body)
        }
        Err(e) if e.is_timeout() => Attempt::TimedOut,
        Err(_) => Attempt::Dropped,
    }
}

fn base(app: &Shared) -> String {
    app.config.env.get("QUOTES_URL").cloned().unwrap_or_default()
}

async fn quote(State(app): State<Shared>, Path(symbol): Path<String>, headers: HeaderMap) -> Response {
    let config = &app.config;
    let cooldown = Duration::from_millis(setting(config, "BREAKER_COOLDOWN_MS", 1500));
    let mut threshold = setting(config, "BREAKER_THRESHOLD", 5) as u32;
    if config.has("breaker-threshold-plus-one") {
        threshold += 1;
    }
    let breaker_on = !config.has("no-breaker");
    let mut short_circuit = false;
    {
        let mut breaker = crate::lock(&app.breaker);
        if let Some(opened) = breaker.opened
            && breaker_on
        {
            let cooling = opened.elapsed() < cooldown || config.has("breaker-never-closes");
            if cooling || breaker.trial {
                short_circuit = true;
            } else if config.has("cooldown-closes") {
                *breaker = Breaker::default();
            } else {
                breaker.trial = true;
            }
        }
    }
    if short_circuit {
        if config.has("breaker-calls-anyway") {
            let url = format!("{}/quotes/{symbol}", base(&app));
            let _ = call(&app, app.http.get(url), &headers).await;
        }
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the quotes service is failing: try again later",
        );
    }
    let base_ms = setting(config, "RETRY_BASE_MS", 100);
    let url = format!("{}/quotes/{symbol}", base(&app));
    let attempts = if config.has("no-retry") { 1 } else { 3 };
    let mut outcome = None;
    for attempt in 1..=attempts {
        if attempt > 1 {
            let wait = if config.has("retry-no-backoff") {
                0
            } else if config.has("retry-constant-backoff") {
                base_ms
            } else {
                base_ms << (attempt - 2)
            };
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        let result = call(&app, app.http.get(&url), &headers).await;
        if config.has("breaker-counts-attempts") && !matches!(result, Attempt::Answered(200 | 404, _)) {
            failed(&app, threshold);
        }
        let retry = match &result {
            Attempt::Answered(status, _) if *status >= 500 => true,
            Attempt::Answered(404, _) => config.has("retries-404"),
            Attempt::Dropped => !config.has("reset-not-retried"),
            Attempt::TimedOut => config.has("timeout-retried"),
            Attempt::Answered(..) => false,
        };
        outcome = Some(result);
        if !retry {
            break;
        }
    }
    let response = match outcome.unwrap_or(Attempt::Dropped) {
        Attempt::Answered(200, body) => {
            let mut price = body.get("price").cloned().unwrap_or(Value::Null);
            if config.has("price-rounded") {
                price = json!(price.as_f64().unwrap_or_default().trunc() as i64);
            }
            let mut breaker = crate::lock(&app.breaker);
            if breaker.trial && config.has("trial-keeps-open") {
                // The trial succeeded, but the breaker only starts another cool-down.
                breaker.trial = false;
                breaker.opened = Some(Instant::now());
            } else {
                breaker.closed();
            }
            drop(breaker);
            return json_response(StatusCode::OK, &json!({ "symbol": symbol, "price": price }), false);
        }
        Attempt::Answered(404, _) if !config.has("404-as-502") => {
            crate::lock(&app.breaker).trial = false;
            return problem(StatusCode::NOT_FOUND, "the quotes service does not know this symbol");
        }
        Attempt::TimedOut => problem(StatusCode::GATEWAY_TIMEOUT, "the quotes service did not answer in time"),
        Attempt::Answered(status, _) if config.has("upstream-status-passed-through") => problem(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            "the quotes service failed",
        ),
        Attempt::Dropped if config.has("reset-500") => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "connection closed before message completed",
        ),
        _ => problem(StatusCode::BAD_GATEWAY, "the quotes service failed"),
    };
    if !config.has("breaker-counts-attempts") {
        failed(&app, threshold);
    }
    response
}

impl Breaker {
    fn closed(&mut self) {
        *self = Breaker::default();
    }
}

/// A failed quote request: counts towards the threshold, or reopens a half-open breaker.
fn failed(app: &Shared, threshold: u32) {
    let mut breaker = crate::lock(&app.breaker);
    if breaker.trial {
        breaker.trial = false;
        breaker.opened = Some(Instant::now());
        return;
    }
    breaker.failures += 1;
    if breaker.failures >= threshold && breaker.opened.is_none() {
        breaker.opened = Some(Instant::now());
        breaker.failures = 0;
    }
}

async fn trade(State(app): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let config = &app.config;
    let mut sent = json!({ "symbol": body.get("symbol"), "quantity": body.get("quantity") });
    if config.has("trade-quantity-string") {
        sent["quantity"] = json!(body.get("quantity").map(|q| q.to_string()).unwrap_or_default());
    }
    let url = format!("{}/trades", base(&app));
    let attempts = if config.has("post-retried") { 3 } else { 1 };
    let mut result = Attempt::Dropped;
    for attempt in 1..=attempts {
        if attempt > 1 {
            tokio::time::sleep(Duration::from_millis(setting(config, "RETRY_BASE_MS", 100))).await;
        }
        result = call(&app, app.http.post(&url).json(&sent), &headers).await;
        if !matches!(&result, Attempt::Dropped | Attempt::Answered(500.., _)) {
            break;
        }
    }
    match result {
        Attempt::Answered(201, mut trade) => {
            if config.has("trade-id-own") {
                trade["id"] = json!(format!("tr_local_{}", rand_id()));
            }
            json_response(StatusCode::CREATED, &trade, false)
        }
        Attempt::TimedOut => problem(StatusCode::GATEWAY_TIMEOUT, "the quotes service did not answer in time"),
        _ => problem(StatusCode::BAD_GATEWAY, "the trade failed"),
    }
}

fn rand_id() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

pub(crate) type BreakerCell = Mutex<Breaker>;
