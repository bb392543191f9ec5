//! `persistence-and-migration`: memos kept in `$DATA_DIR/memos.json`, and the `split-text` migration that
//! version 2 (`APP_VERSION=2`) runs once, all or nothing, at start.
//!
//! Version 1 memos are `{"id", "text"}`; version 2 memos are `{"id", "title", "body"}` (the first line of the
//! text, and the rest). The file is written whole and renamed into place, so a crash never leaves half of it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Config, Shared, json_response, problem};

const MIGRATION: &str = "split-text";

/// What the data file holds.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Data {
    next_id: u64,
    /// Each memo as stored: v1 `{"id", "text"}` or v2 `{"id", "title", "body"}`.
    memos: Vec<Value>,
    /// Applied migrations: `{"id", "applied_at"}`.
    migrations: Vec<Value>,
}

/// The memos of one instance, and where they are saved.
#[derive(Default)]
pub(crate) struct Store {
    data: Mutex<Data>,
    file: Option<PathBuf>,
}

fn file(config: &Config) -> Option<PathBuf> {
    config.env.get("DATA_DIR").map(|dir| Path::new(dir).join("memos.json"))
}

fn version(config: &Config) -> u32 {
    if config.env.get("APP_VERSION").map(String::as_str) == Some("2") {
        2
    } else {
        1
    }
}

fn load(path: &Path) -> Result<Data, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("error: {} is corrupt: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Data::default()),
        Err(e) => Err(format!("error: cannot read {}: {e}", path.display())),
    }
}

fn save(path: &Path, data: &Data) -> Result<(), String> {
    let temporary = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(data).map_err(|e| e.to_string())?;
    std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| format!("error: cannot write {}: {e}", path.display()))
}

/// The v2 shape of a v1 memo: the first line is the title, the rest the body.
fn split(memo: &Value, config: &Config) -> Value {
    let text = memo["text"].as_str().unwrap_or_default();
    let at = if config.has("split-last-line") {
        text.rsplit_once('\n')
    } else {
        text.split_once('\n')
    };
    let (title, body) = at.unwrap_or((text, ""));
    json!({ "id": memo["id"], "title": title, "body": body })
}

/// At start: version 2 migrates version-1 memos once, all or nothing. `MIGRATION_FAIL_AFTER=N` (a fault the
/// brief documents for testing) makes the migration fail after N memos.
pub(crate) fn migrate(config: &Config) -> Result<(), String> {
    let Some(path) = file(config) else { return Ok(()) };
    if version(config) != 2 || config.has("no-migration") {
        return Ok(());
    }
    let mut data = load(&path)?;
    let applied = data.migrations.iter().any(|m| m["id"] == MIGRATION);
    if applied && !config.has("migration-unrecorded") {
        return Ok(());
    }
    let fail_after: Option<usize> = config.env.get("MIGRATION_FAIL_AFTER").and_then(|n| n.parse().ok());
    for (done, i) in (0..data.memos.len()).enumerate() {
        if fail_after == Some(done) {
            return Err(format!(
                "error: migration {MIGRATION} failed after {done} memo(s); nothing was changed"
            ));
        }
        data.memos[i] = split(&data.memos[i], config);
        if config.has("partial-migration") {
            // Each memo is saved as soon as it is converted: a failure leaves the file half migrated.
            save(&path, &data)?;
        }
    }
    if !config.has("migration-unrecorded") {
        data.migrations
            .push(json!({ "id": MIGRATION, "applied_at": httpdate::fmt_http_date(std::time::SystemTime::now()) }));
    }
    save(&path, &data)
}

/// The store an instance starts with: the saved memos, unless the service keeps them in memory only.
pub(crate) fn open(config: &Config) -> Store {
    let file = file(config).filter(|_| !config.has("memory-only"));
    let data = file.as_deref().and_then(|f| load(f).ok()).unwrap_or_default();
    Store {
        data: Mutex::new(data),
        file,
    }
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/memos", get(list).post(create))
        .route("/memos/{id}", get(read).put(update))
        .route("/migrations", get(migrations))
}

async fn list(State(app): State<Shared>) -> Response {
    let data = app.memos.data.lock().map(|d| d.clone()).unwrap_or_default();
    json_response(StatusCode::OK, &json!({ "items": data.memos }), false)
}

async fn read(State(app): State<Shared>, UrlPath(id): UrlPath<String>) -> Response {
    let data = app.memos.data.lock().map(|d| d.clone()).unwrap_or_default();
    match data.memos.iter().find(|m| m["id"] == id.as_str()) {
        Some(memo) => json_response(StatusCode::OK, memo, false),
        None => problem(StatusCode::NOT_FOUND, "no such memo"),
    }
}

async fn update(State(app): State<Shared>, UrlPath(id): UrlPath<String>, body: axum::body::Bytes) -> Response {
    let Some(fields) = parse(&app, &body) else {
        return invalid(&app);
    };
    let store = &app.memos;
    let Ok(mut data) = store.data.lock() else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "the store is unavailable");
    };
    let Some(memo) = data.memos.iter_mut().find(|m| m["id"] == id.as_str()) else {
        return problem(StatusCode::NOT_FOUND, "no such memo");
    };
    let mut updated = json!({ "id": id });
    if let (Some(object), Some(fields)) = (updated.as_object_mut(), fields.as_object()) {
        object.extend(fields.clone());
    }
    *memo = updated.clone();
    // `update-not-saved`: the update handler forgets to save; only creates reach the disk.
    if !app.config.has("update-not-saved")
        && let Some(file) = &store.file
        && let Err(e) = save(file, &data)
    {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, &e);
    }
    json_response(StatusCode::OK, &updated, false)
}

/// The fields of a memo in the running version's shape, if the body is one.
fn parse(app: &Shared, body: &[u8]) -> Option<Value> {
    let input: Value = serde_json::from_slice(body).unwrap_or_default();
    let valid = |field: &str| input[field].as_str().is_some_and(|s| !s.trim().is_empty());
    if version(&app.config) == 2 {
        (valid("title") && input["body"].is_string()).then(|| json!({ "title": input["title"], "body": input["body"] }))
    } else {
        valid("text").then(|| json!({ "text": input["text"] }))
    }
}

fn invalid(app: &Shared) -> Response {
    let shape = if version(&app.config) == 2 {
        r#"{"title": "...", "body": "..."}"#
    } else {
        r#"{"text": "..."}"#
    };
    problem(StatusCode::UNPROCESSABLE_ENTITY, &format!("a memo is {shape}"))
}

async fn migrations(State(app): State<Shared>) -> Response {
    let data = app.memos.data.lock().map(|d| d.clone()).unwrap_or_default();
    json_response(StatusCode::OK, &json!({ "applied": data.migrations }), false)
}

async fn create(State(app): State<Shared>, body: axum::body::Bytes) -> Response {
    let Some(memo_fields) = parse(&app, &body) else {
        return invalid(&app);
    };
    let store = &app.memos;
    let Ok(mut data) = store.data.lock() else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "the store is unavailable");
    };
    data.next_id += 1;
    let mut memo = json!({ "id": data.next_id.to_string() });
    if let (Some(memo), Some(fields)) = (memo.as_object_mut(), memo_fields.as_object()) {
        memo.extend(fields.clone());
    }
    data.memos.push(memo.clone());
    if let Some(file) = &store.file
        && let Err(e) = save(file, &data)
    {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, &e);
    }
    let location = format!("/memos/{}", data.next_id);
    let mut response = json_response(StatusCode::CREATED, &memo, false);
    if let Ok(value) = location.parse() {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response.into_response()
}
