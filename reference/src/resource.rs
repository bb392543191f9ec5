//! `rest-resource`: the `/items` collection with the full method semantics of RFC 9110.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde::{Deserialize, Serialize};

use crate::{Shared, json_response, problem, with_allow};

/// Items by id, plus the id counter.
#[derive(Default)]
pub(crate) struct Store {
    items: Mutex<BTreeMap<String, Item>>,
    next: AtomicU64,
    /// The list computed at the first GET (the `list-cached` defect).
    cached_list: Mutex<Option<Vec<Item>>>,
}

#[derive(Clone, Serialize)]
struct Item {
    id: String,
    name: String,
    price: f64,
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemInput {
    name: String,
    price: f64,
    tags: Option<Vec<String>>,
}

const COLLECTION_ALLOW: &str = "GET, HEAD, POST, OPTIONS";
const ITEM_ALLOW: &str = "GET, HEAD, PUT, DELETE, OPTIONS";

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/items", any(collection))
        .route("/items/{id}", any(member))
}

async fn collection(State(app): State<Shared>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
    let plain = app.config.has("text-plain-json");
    match method {
        Method::GET | Method::HEAD if method == Method::GET || !app.config.has("head-405") => {
            let mut items: Vec<Item> = app
                .items
                .items
                .lock()
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default();
            if app.config.has("list-cached")
                && let Ok(mut cached) = app.items.cached_list.lock()
            {
                items = cached.get_or_insert(items).clone();
            }
            json_response(StatusCode::OK, &serde_json::json!({ "items": items }), plain)
        }
        Method::POST => {
            let input = match parse_input(&app, &headers, &body) {
                Ok(input) => input,
                Err((status, detail)) => return problem(status, &detail),
            };
            let id = format!("{}", app.items.next.fetch_add(1, Ordering::Relaxed) + 1);
            let item = Item {
                id: id.clone(),
                name: input.name,
                price: input.price,
                tags: input.tags.unwrap_or_default(),
            };
            if let Ok(mut items) = app.items.items.lock() {
                items.insert(id.clone(), item.clone());
            }
            let status = if app.config.has("create-200") {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            let location = if app.config.has("location-wrong") {
                format!("/item/{id}")
            } else {
                format!("/items/{id}")
            };
            let mut response = json_response(status, &serde_json::to_value(&item).unwrap_or_default(), plain);
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        Method::OPTIONS if !app.config.has("options-405") => allow_only(StatusCode::NO_CONTENT, COLLECTION_ALLOW),
        _ => not_allowed(&app, COLLECTION_ALLOW),
    }
}

async fn member(
    State(app): State<Shared>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let plain = app.config.has("text-plain-json");
    if app.config.has("bad-id-500") && id.parse::<u64>().is_err() {
        let trace = format!("thread 'main' panicked at src/items.rs:42: invalid digit found in string: {id:?}");
        return (StatusCode::INTERNAL_SERVER_ERROR, trace).into_response();
    }
    let current = app.items.items.lock().ok().and_then(|items| items.get(&id).cloned());
    match method {
        Method::GET | Method::HEAD if method == Method::GET || !app.config.has("head-405") => match current {
            Some(item) => json_response(StatusCode::OK, &serde_json::to_value(&item).unwrap_or_default(), plain),
            None if app.config.has("unknown-200") => json_response(StatusCode::OK, &serde_json::Value::Null, plain),
            None => problem(StatusCode::NOT_FOUND, &format!("no item with id {id}")),
        },
        Method::PUT => {
            let old = match current {
                Some(old) => old,
                // An upsert: PUT invents the item it was asked to replace.
                None if app.config.has("put-upsert") => Item {
                    id: id.clone(),
                    name: String::new(),
                    price: 0.0,
                    tags: Vec::new(),
                },
                None => return problem(StatusCode::NOT_FOUND, &format!("no item with id {id}")),
            };
            let input = match parse_input(&app, &headers, &body) {
                Ok(input) => input,
                Err((status, detail)) => return problem(status, &detail),
            };
            let tags = match input.tags {
                Some(tags) => tags,
                None if app.config.has("put-merges") => old.tags,
                None => Vec::new(),
            };
            let item = Item {
                id: id.clone(),
                name: input.name,
                price: input.price,
                tags,
            };
            if let Ok(mut items) = app.items.items.lock() {
                items.insert(id, item.clone());
            }
            json_response(StatusCode::OK, &serde_json::to_value(&item).unwrap_or_default(), plain)
        }
        Method::DELETE => {
            if current.is_none() {
                if app.config.has("delete-again-204") {
                    return StatusCode::NO_CONTENT.into_response();
                }
                return problem(StatusCode::NOT_FOUND, &format!("no item with id {id}"));
            }
            if !app.config.has("delete-noop")
                && let Ok(mut items) = app.items.items.lock()
            {
                items.remove(&id);
            }
            if app.config.has("delete-200") {
                json_response(StatusCode::OK, &serde_json::json!({ "deleted": id }), plain)
            } else {
                StatusCode::NO_CONTENT.into_response()
            }
        }
        Method::OPTIONS if !app.config.has("options-405") => allow_only(StatusCode::NO_CONTENT, ITEM_ALLOW),
        _ => not_allowed(&app, ITEM_ALLOW),
    }
}

/// Parses a JSON item: 415 for other media types, 400 for broken JSON, 422 for a wrong shape.
fn parse_input(app: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<ItemInput, (StatusCode, String)> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the item as application/json".into(),
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("the body is not valid JSON: {e}")))?;
    if app.config.has("no-validation") {
        // Whatever arrives is stored, with defaults for what is missing.
        return Ok(ItemInput {
            name: value["name"].as_str().unwrap_or_default().to_string(),
            price: value["price"].as_f64().unwrap_or_default(),
            tags: serde_json::from_value(value["tags"].clone()).ok(),
        });
    }
    let input: ItemInput = serde_json::from_value(value)
        .map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, format!("the item is not valid: {e}")))?;
    if input.name.trim().is_empty() || input.price < 0.0 {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            "name must not be empty and price must be >= 0".into(),
        ));
    }
    Ok(input)
}

fn allow_only(status: StatusCode, allow: &'static str) -> Response {
    (status, [(header::ALLOW, HeaderValue::from_static(allow))]).into_response()
}

fn not_allowed(app: &Shared, allow: &'static str) -> Response {
    let response = problem(StatusCode::METHOD_NOT_ALLOWED, "this method is not supported here");
    if app.config.has("405-no-allow") {
        response
    } else if app.config.has("allow-route-only") {
        // A router's default: the methods of the first route matching the path, not of the whole URL.
        with_allow(response, "GET, HEAD")
    } else {
        with_allow(response, allow)
    }
}
