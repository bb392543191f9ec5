//! `injection-defense`: a customers directory in SQLite, queried with bound parameters only: names round-trip
//! exactly, quotes and SQL syntax are data, LIKE wildcards are escaped, sort columns come from an allowlist,
//! and answers are JSON marked nosniff.

use std::sync::Mutex;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rusqlite::Connection;
use serde_json::{Value, json};

use crate::{Shared, json_response, problem};

/// The customers table, in an in-memory SQLite database.
pub(crate) struct Customers(Mutex<Connection>);

impl Default for Customers {
    fn default() -> Self {
        let connection = Connection::open_in_memory().expect("SQLite opens an in-memory database");
        connection
            .execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL)")
            .expect("the table is created");
        Self(Mutex::new(connection))
    }
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/customers", get(list).post(create))
}

fn nosniff(app: &Shared, mut response: Response) -> Response {
    if !app.config.has("nosniff-missing") {
        response
            .headers_mut()
            .insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    }
    response
}

fn row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Value> {
    Ok(json!({ "id": row.get::<_, i64>(0)?, "name": row.get::<_, String>(1)?, "city": row.get::<_, String>(2)? }))
}

async fn create(State(app): State<Shared>, body: axum::body::Bytes) -> Response {
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    let (Some(name), Some(city)) = (
        parsed.as_ref().and_then(|v| v["name"].as_str()).map(str::to_string),
        parsed.as_ref().and_then(|v| v["city"].as_str()).map(str::to_string),
    ) else {
        return nosniff(
            &app,
            problem(StatusCode::UNPROCESSABLE_ENTITY, "a customer has a name and a city"),
        );
    };
    let name = if app.config.has("quotes-doubled") {
        name.replace('\'', "''")
    } else {
        name
    };
    let connection = crate::lock(&app.customers.0);
    let inserted = connection
        .execute("INSERT INTO customers (name, city) VALUES (?1, ?2)", (&name, &city))
        .map(|_| connection.last_insert_rowid());
    let response = match inserted {
        Ok(id) => json_response(
            StatusCode::CREATED,
            &json!({ "id": id, "name": name, "city": city }),
            false,
        ),
        Err(_) => problem(StatusCode::INTERNAL_SERVER_ERROR, "the customer could not be stored"),
    };
    nosniff(&app, response)
}

#[derive(serde::Deserialize)]
struct Search {
    name: Option<String>,
    q: Option<String>,
    sort: Option<String>,
    order: Option<String>,
}

/// `%`, `_` and the escape character itself, escaped for `LIKE ... ESCAPE '\'`.
fn like_literal(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

async fn list(State(app): State<Shared>, Query(search): Query<Search>) -> Response {
    let config = &app.config;
    let column = match search.sort.as_deref() {
        None => "id".to_string(),
        Some(column @ ("id" | "name" | "city")) => column.to_string(),
        Some(other) if config.has("sort-concatenated") => other.to_string(),
        Some(_) => return nosniff(&app, problem(StatusCode::BAD_REQUEST, "sort is one of id, name, city")),
    };
    let order = match search.order.as_deref() {
        None | Some("asc") => "ASC",
        Some("desc") => "DESC",
        Some(_) => return nosniff(&app, problem(StatusCode::BAD_REQUEST, "order is asc or desc")),
    };
    let mut sql = "SELECT id, name, city FROM customers WHERE 1 = 1".to_string();
    let mut params: Vec<String> = Vec::new();
    let string_sql = config.has("string-sql") || config.has("string-sql-errors-hidden");
    if let Some(name) = &search.name {
        if string_sql {
            sql.push_str(&format!(" AND name = '{name}'"));
        } else {
            params.push(name.clone());
            sql.push_str(&format!(" AND name = ?{}", params.len()));
        }
    }
    if let Some(q) = &search.q {
        if config.has("q-pasted") {
            // Wildcards escaped by hand, then pasted: a quote ends the string literal.
            sql.push_str(&format!(" AND name LIKE '%{}%' ESCAPE '\\'", like_literal(q)));
        } else if config.has("like-unescaped") {
            params.push(format!("%{q}%"));
            sql.push_str(&format!(" AND name LIKE ?{}", params.len()));
        } else {
            params.push(format!("%{}%", like_literal(q)));
            sql.push_str(&format!(" AND name LIKE ?{} ESCAPE '\\'", params.len()));
        }
    }
    sql.push_str(&format!(" ORDER BY {column} {order}, id ASC"));
    let connection = crate::lock(&app.customers.0);
    let result = connection.prepare(&sql).and_then(|mut statement| {
        statement
            .query_map(rusqlite::params_from_iter(params.iter()), row)?
            .collect::<rusqlite::Result<Vec<Value>>>()
    });
    let response = match result {
        Ok(items) => json_response(StatusCode::OK, &json!({ "items": items }), false),
        Err(_) if config.has("string-sql-errors-hidden") => {
            json_response(StatusCode::OK, &json!({ "items": [] }), false)
        }
        Err(e) if string_sql || config.has("sort-concatenated") || config.has("q-pasted") => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("sqlite3.OperationalError: {e}"),
        )
            .into_response(),
        Err(_) => problem(StatusCode::INTERNAL_SERVER_ERROR, "the search failed"),
    };
    nosniff(&app, response)
}
