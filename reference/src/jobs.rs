//! `async-jobs`: `POST /jobs` queues a sum for a background worker and answers 202; `GET /jobs/{id}` is the
//! status resource; a succeeded job links to its result.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::{Shared, json_response, problem};

/// Jobs by id, and the results their work stored.
#[derive(Default)]
pub(crate) struct Jobs {
    jobs: Mutex<HashMap<String, Value>>,
    results: Mutex<Vec<Value>>,
    next: std::sync::atomic::AtomicU64,
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/jobs", post(create))
        .route("/jobs/{id}", get(read))
        .route("/results", get(results))
        .route("/results/{id}", get(result))
}

fn set(app: &Shared, id: &str, change: impl FnOnce(&mut Value)) {
    let mut jobs = crate::lock(&app.jobs.jobs);
    if let Some(job) = jobs.get_mut(id) {
        change(job);
    }
}

async fn create(State(app): State<Shared>, body: axum::body::Bytes) -> Response {
    let numbers: Option<Vec<i64>> = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("numbers").and_then(Value::as_array).cloned())
        .and_then(|items| items.iter().map(Value::as_i64).collect());
    let numbers = match numbers {
        Some(numbers) => numbers,
        None if app.config.has("no-job-validation") => Vec::new(),
        None => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the body is {\"numbers\": [<integers>]}",
            );
        }
    };
    let n = app.jobs.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    let id = format!("j{n}");
    let mut job = json!({ "id": id, "status": "queued" });
    if app.config.has("result-url-early") {
        job["result_url"] = json!(format!("/results/r{n}"));
    }
    let duration = Duration::from_millis(
        app.config
            .env
            .get("JOB_DURATION_MS")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
    );
    let work = work(app.clone(), id.clone(), n, numbers, duration);
    if app.config.has("sync-work") {
        crate::lock(&app.jobs.jobs).insert(id.clone(), job.clone());
        work.await;
    } else if app.config.has("job-appears-late") {
        // The job is stored when the worker picks it up, a moment after the 202.
        let (app, id, job) = (app.clone(), id.clone(), job.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            crate::lock(&app.jobs.jobs).insert(id, job);
            work.await;
        });
    } else {
        crate::lock(&app.jobs.jobs).insert(id.clone(), job.clone());
        tokio::spawn(work);
    }
    let status = if app.config.has("job-created-201") {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    };
    let mut response = json_response(status, &job, false);
    if let Ok(location) = HeaderValue::from_str(&format!("/jobs/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// The worker: running, the work, then succeeded with a stored result, or failed.
async fn work(app: Shared, id: String, n: u64, numbers: Vec<i64>, duration: Duration) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    set(&app, &id, |job| job["status"] = json!("running"));
    if app.config.has("status-goes-back") {
        // A retry puts the job back in the queue for a moment.
        tokio::time::sleep(duration / 2).await;
        set(&app, &id, |job| job["status"] = json!("queued"));
        tokio::time::sleep(Duration::from_millis(150)).await;
        set(&app, &id, |job| job["status"] = json!("running"));
    }
    tokio::time::sleep(duration).await;
    if numbers.iter().any(|n| *n < 0) {
        let error = if app.config.has("error-string") {
            json!("a number is negative")
        } else {
            json!({ "type": "about:blank", "title": "Unprocessable Content", "status": 422,
                "detail": "the numbers must not be negative" })
        };
        set(&app, &id, |job| {
            job["status"] = json!("failed");
            job["error"] = error;
        });
        return;
    }
    store_result(&app, &id, n, numbers.iter().sum());
    let url = if app.config.has("result-url-wrong") {
        format!("/result/r{n}")
    } else {
        format!("/results/r{n}")
    };
    set(&app, &id, |job| {
        job["status"] = json!("succeeded");
        job["result_url"] = json!(url);
    });
}

fn store_result(app: &Shared, job: &str, n: u64, sum: i64) {
    let mut results = crate::lock(&app.jobs.results);
    results.push(json!({ "id": format!("r{n}"), "job": job, "sum": sum }));
}

async fn read(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    let job = crate::lock(&app.jobs.jobs).get(&id).cloned();
    let job = job.filter(|job| !(app.config.has("queued-invisible") && job["status"] == "queued"));
    match job {
        Some(job) => {
            if app.config.has("work-on-read") && job["status"] == "succeeded" {
                // The status handler recomputes the result on every read of a finished job, and stores it.
                let n: u64 = id.trim_start_matches('j').parse().unwrap_or_default();
                let sum = crate::lock(&app.jobs.results)
                    .iter()
                    .find(|r| r["job"] == id.as_str())
                    .and_then(|r| r["sum"].as_i64())
                    .unwrap_or_default();
                store_result(&app, &id, n, sum);
            }
            json_response(StatusCode::OK, &job, false)
        }
        None if app.config.has("unknown-job-500") => problem(StatusCode::INTERNAL_SERVER_ERROR, "KeyError: the job"),
        None => problem(StatusCode::NOT_FOUND, "no such job"),
    }
}

#[derive(serde::Deserialize)]
struct ByJob {
    job: Option<String>,
}

async fn results(State(app): State<Shared>, Query(by): Query<ByJob>) -> Response {
    let results = crate::lock(&app.jobs.results);
    let items: Vec<Value> = results
        .iter()
        .filter(|r| by.job.as_deref().is_none_or(|job| r["job"] == job))
        .map(|r| json!({ "job": r["job"], "sum": r["sum"] }))
        .collect();
    json_response(StatusCode::OK, &json!({ "items": items }), false)
}

async fn result(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    let results = crate::lock(&app.jobs.results);
    match results.iter().find(|r| r["id"] == id.as_str()) {
        Some(r) => json_response(StatusCode::OK, &json!({ "sum": r["sum"] }), false),
        None => problem(StatusCode::NOT_FOUND, "no such result"),
    }
}
