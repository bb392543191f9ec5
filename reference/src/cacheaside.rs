//! `cache-aside`: `GET /products/{id}` read through an in-memory cache in front of the catalog at
//! `CATALOG_URL`, with a time to live, invalidation on `PUT`, and one catalog call for concurrent misses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use crate::{Shared, json_response, problem};

/// The cache, and the loads in flight: concurrent misses of a product share one load.
#[derive(Default)]
pub(crate) struct Cache {
    entries: Mutex<HashMap<String, (Value, Instant)>>,
    loading: Mutex<HashMap<String, Arc<Load>>>,
}

/// One load of a product: the catalog's status and document, set once, awaited by every concurrent miss.
type Load = tokio::sync::OnceCell<(u16, Option<Value>)>;

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/products/{id}", get(read).put(write))
}

fn ttl(app: &Shared) -> Duration {
    let mut seconds: u64 = app
        .config
        .env
        .get("CACHE_TTL_SECONDS")
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    if app.config.has("ttl-hardcoded") {
        seconds = 2;
    }
    if app.config.has("ttl-minutes") {
        seconds *= 60;
    }
    Duration::from_secs(seconds)
}

fn url(app: &Shared, id: &str) -> String {
    let base = app.config.env.get("CATALOG_URL").cloned().unwrap_or_default();
    format!("{base}/products/{id}")
}

fn fresh(app: &Shared, id: &str) -> Option<Value> {
    if app.config.has("no-cache") {
        return None;
    }
    let entries = crate::lock(&app.cache.entries);
    entries
        .get(id)
        .filter(|(_, at)| at.elapsed() < ttl(app))
        .map(|(doc, _)| doc.clone())
}

async fn read(State(app): State<Shared>, Path(id): Path<String>) -> Response {
    if let Some(doc) = fresh(&app, &id) {
        return answer(&app, doc);
    }
    if app.config.has("serves-stale") {
        let stale = crate::lock(&app.cache.entries).get(&id).cloned();
        if let Some((doc, _)) = stale {
            // Stale-while-revalidate past the TTL: the old product now, the catalog's in the background.
            let (background, id) = (app.clone(), id.clone());
            tokio::spawn(async move {
                let app = background;
                let response = app
                    .http
                    .get(url(&app, &id))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
                if let Ok(response) = response
                    && response.status().is_success()
                    && let Ok(doc) = response.json::<Value>().await
                {
                    let mut entries = crate::lock(&app.cache.entries);
                    entries.insert(id, (doc, Instant::now()));
                }
            });
            return answer(&app, doc);
        }
    }
    let load: Arc<Load> = if app.config.has("no-single-flight") {
        Arc::default()
    } else {
        let mut loading = crate::lock(&app.cache.loading);
        Arc::clone(loading.entry(id.clone()).or_default())
    };
    let (status, doc) = load
        .get_or_init(|| async {
            let result = app
                .http
                .get(url(&app, &id))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            let loaded = match result {
                Ok(response) => (response.status().as_u16(), response.json::<Value>().await.ok()),
                Err(_) => (0, None),
            };
            if let (200, Some(doc)) = &loaded {
                let mut entries = crate::lock(&app.cache.entries);
                entries.insert(id.clone(), (doc.clone(), Instant::now()));
            }
            loaded
        })
        .await
        .clone();
    {
        let mut loading = crate::lock(&app.cache.loading);
        if loading.get(&id).is_some_and(|current| Arc::ptr_eq(current, &load)) {
            loading.remove(&id);
        }
    }
    match (status, doc) {
        (200, Some(doc)) => answer(&app, doc),
        (404, _) if !app.config.has("missing-500") => problem(StatusCode::NOT_FOUND, "no such product"),
        (404, _) => problem(StatusCode::INTERNAL_SERVER_ERROR, "KeyError: product"),
        _ => {
            let failure = problem(StatusCode::BAD_GATEWAY, "the catalog failed");
            if app.config.has("errors-cached") {
                // The failure is remembered as if it were the product.
                crate::lock(&app.cache.entries).insert(id, (json!({ "__error": 502 }), Instant::now()));
            }
            failure
        }
    }
}

fn answer(app: &Shared, doc: Value) -> Response {
    if doc.get("__error").is_some() {
        return problem(StatusCode::BAD_GATEWAY, "the catalog failed");
    }
    let doc = if app.config.has("fields-dropped") {
        json!({ "id": doc.get("id"), "name": doc.get("name"), "price": doc.get("price") })
    } else {
        doc
    };
    json_response(StatusCode::OK, &doc, false)
}

async fn write(State(app): State<Shared>, Path(id): Path<String>, Json(body): Json<Value>) -> Response {
    let (Some(name), Some(price)) = (
        body.get("name").and_then(Value::as_str),
        body.get("price").and_then(Value::as_f64),
    ) else {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "a product needs a name and a price");
    };
    let product = json!({ "id": id, "name": name, "price": price });
    if app.config.has("write-not-forwarded") {
        let mut entries = crate::lock(&app.cache.entries);
        entries.insert(id, (product.clone(), Instant::now()));
        return json_response(StatusCode::OK, &product, false);
    }
    let result = app
        .http
        .put(url(&app, &id))
        .json(&product)
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    let stored = match result {
        Ok(response) if response.status().is_success() => response.json::<Value>().await.unwrap_or(product),
        _ => return problem(StatusCode::BAD_GATEWAY, "the catalog failed"),
    };
    if !app.config.has("no-invalidation") {
        crate::lock(&app.cache.entries).remove(&id);
    }
    json_response(StatusCode::OK, &stored, false)
}
