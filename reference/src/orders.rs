//! `n-plus-one`: orders of a shop, listed with their customers from the customers service at `CUSTOMERS_URL`,
//! one batch call per page.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use crate::{Shared, json_response, problem};

/// The orders of every shop, oldest first.
#[derive(Default)]
pub(crate) struct Orders {
    shops: Mutex<HashMap<String, Vec<Value>>>,
    next: std::sync::atomic::AtomicU64,
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/shops/{shop}/orders", get(list).post(create))
}

async fn create(State(app): State<Shared>, Path(shop): Path<String>, Json(body): Json<Value>) -> Response {
    let (Some(customer), Some(item)) = (
        body.get("customer_id").and_then(Value::as_str),
        body.get("item").and_then(Value::as_str),
    ) else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "an order needs a customer_id and an item",
        );
    };
    let id = app.orders.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    let order = json!({ "id": format!("o{id}"), "customer_id": customer, "item": item });
    let mut shops = crate::lock(&app.orders.shops);
    shops.entry(shop).or_default().push(order.clone());
    let status = if app.config.has("order-created-200") {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    json_response(status, &order, false)
}

#[derive(serde::Deserialize)]
struct Page {
    limit: Option<String>,
    cursor: Option<String>,
}

async fn list(State(app): State<Shared>, Path(shop): Path<String>, Query(page): Query<Page>) -> Response {
    let limit = match page.limit.as_deref().map(str::parse::<usize>) {
        None => 20,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        _ => return problem(StatusCode::BAD_REQUEST, "limit is a whole number from 1 to 100"),
    };
    let start = match page
        .cursor
        .as_deref()
        .map(|c| c.strip_prefix("after-").map(str::parse::<usize>))
    {
        None => 0,
        Some(Some(Ok(n))) => n,
        _ => return problem(StatusCode::BAD_REQUEST, "this cursor was not issued by the service"),
    };
    let orders = {
        let shops = crate::lock(&app.orders.shops);
        shops.get(&shop).cloned().unwrap_or_default()
    };
    let end = (start + limit).min(orders.len());
    let page: Vec<Value> = orders.get(start..end).map(<[Value]>::to_vec).unwrap_or_default();
    let batched = if app.config.has("batch-all-orders") {
        &orders[..]
    } else {
        &page[..]
    };
    let mut ids: Vec<&str> = batched.iter().filter_map(|o| o["customer_id"].as_str()).collect();
    if !app.config.has("ids-repeated") {
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(*id));
    }
    let customers = match fetch(&app, &ids).await {
        Ok(customers) => customers,
        Err(()) if app.config.has("customers-down-ignored") => HashMap::new(),
        Err(()) => return problem(StatusCode::BAD_GATEWAY, "the customers service failed"),
    };
    let mut items = Vec::new();
    for order in page {
        let id = order["customer_id"].as_str().unwrap_or_default();
        let mut customer = customers.get(id).cloned();
        if customer.is_none() && app.config.has("missing-fetched-alone") {
            customer = fetch_one(&app, id).await;
        }
        if customer.is_none() && app.config.has("missing-dropped") {
            continue;
        }
        if app.config.has("customer-name-only") {
            customer = customer.map(|c| json!({ "id": c["id"], "name": c["name"] }));
        }
        let mut order = order;
        order["customer"] = customer.unwrap_or(Value::Null);
        items.push(order);
    }
    let next = (end < orders.len()).then(|| format!("after-{end}"));
    json_response(StatusCode::OK, &json!({ "items": items, "next_cursor": next }), false)
}

fn base(app: &Shared) -> String {
    app.config.env.get("CUSTOMERS_URL").cloned().unwrap_or_default()
}

/// The customers with these ids, by id: one batch call (or one call per order with the `n-plus-one` defect).
async fn fetch(app: &Shared, ids: &[&str]) -> Result<HashMap<String, Value>, ()> {
    let mut found = HashMap::new();
    if ids.is_empty() && !app.config.has("empty-batch-call") {
        return Ok(found);
    }
    if app.config.has("n-plus-one") {
        for id in ids {
            if let Some(customer) = fetch_one(app, id).await {
                found.insert(id.to_string(), customer);
            }
        }
        return Ok(found);
    }
    // One batch; with the `batch-chunks-of-2` defect, a batch for every two ids (an IN list capped too low).
    let size = if app.config.has("batch-chunks-of-2") {
        2
    } else {
        ids.len().max(1)
    };
    let chunks: Vec<&[&str]> = if ids.is_empty() {
        vec![&[][..]]
    } else {
        ids.chunks(size).collect()
    };
    for chunk in chunks {
        let response = app
            .http
            .get(format!("{}/customers", base(app)))
            .query(&[("ids", chunk.join(","))])
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map_err(|_| ())?;
        if !response.status().is_success() {
            return Err(());
        }
        let body: Value = response.json().await.map_err(|_| ())?;
        for customer in body["items"].as_array().into_iter().flatten() {
            if let Some(id) = customer["id"].as_str() {
                found.insert(id.to_string(), customer.clone());
            }
        }
    }
    Ok(found)
}

async fn fetch_one(app: &Shared, id: &str) -> Option<Value> {
    let response = app
        .http
        .get(format!("{}/customers/{id}", base(app)))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}
