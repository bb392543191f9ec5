//! `injection-defense`: a customers directory in SQLite, queried with bound parameters only: names round-trip
//! exactly, quotes and SQL syntax are data, LIKE wildcards are escaped, sort columns come from an allowlist,
//! and answers are JSON marked nosniff.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use rusqlite::Connection;
use serde_json::{Value, json};

use crate::{Shared, json_response, problem};

/// The customers table, in an in-memory SQLite database, and the staff sessions: session id → CSRF token.
pub(crate) struct Customers(Mutex<Connection>, Mutex<HashMap<String, String>>);

impl Default for Customers {
    fn default() -> Self {
        let connection = Connection::open_in_memory().expect("SQLite opens an in-memory database");
        connection
            .execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL)")
            .expect("the table is created");
        Self(Mutex::new(connection), Mutex::default())
    }
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/customers", get(list).post(create))
        .route("/customers/{id}", delete(remove))
        .route("/staff/login", post(login))
}

/// The one CSRF token of the `csrf-global-token` defect.
const GLOBAL_TOKEN: &str = "csrf-0123456789abcdef";

/// `POST /staff/login`: a session cookie, and the session's CSRF token in the body.
async fn login(State(app): State<Shared>, body: axum::body::Bytes) -> Response {
    let parsed = serde_json::from_slice::<Value>(&body).unwrap_or_default();
    let password = app.config.env.get("STAFF_PASSWORD").filter(|p| !p.is_empty());
    if parsed["username"] != "staff"
        || password.is_none()
        || parsed["password"].as_str() != password.map(String::as_str)
    {
        return nosniff(&app, problem(StatusCode::UNAUTHORIZED, "invalid username or password"));
    }
    let session = format!("{:016x}{:016x}", crate::auth::rand_u64(), crate::auth::rand_u64());
    let token = if app.config.has("csrf-global-token") {
        GLOBAL_TOKEN.to_string()
    } else {
        format!("{:016x}{:016x}", crate::auth::rand_u64(), crate::auth::rand_u64())
    };
    crate::lock(&app.customers.1).insert(session.clone(), token.clone());
    let mut response = json_response(StatusCode::OK, &json!({ "csrf_token": token }), false);
    if let Ok(cookie) = HeaderValue::from_str(&format!("staff_session={session}; Path=/; HttpOnly; SameSite=Lax")) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    nosniff(&app, response)
}

/// `DELETE /customers/{id}`: staff only (the session cookie), with the session's CSRF token.
async fn remove(State(app): State<Shared>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let config = &app.config;
    let session = crate::sessions::cookie(&headers, "staff_session")
        .and_then(|id| crate::lock(&app.customers.1).get(&id).cloned());
    let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    match (session, sent) {
        (None, _) if config.has("delete-no-auth") => {}
        (None, _) => return nosniff(&app, problem(StatusCode::UNAUTHORIZED, "sign in as staff first")),
        _ if config.has("csrf-unchecked") => {}
        (Some(_), None) if config.has("csrf-missing-ok") => {}
        (Some(token), Some(sent)) if sent == token => {}
        (Some(_), Some(sent))
            if config.has("csrf-any-session") && crate::lock(&app.customers.1).values().any(|t| t == sent) => {}
        (Some(_), _) => {
            return nosniff(
                &app,
                problem(
                    StatusCode::FORBIDDEN,
                    "the X-CSRF-Token header must carry this session's token",
                ),
            );
        }
    }
    let deleted = crate::lock(&app.customers.0).execute("DELETE FROM customers WHERE id = ?1", [id]);
    let response = match deleted {
        Ok(0) => problem(StatusCode::NOT_FOUND, "no customer with this id"),
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => problem(StatusCode::INTERNAL_SERVER_ERROR, "the customer could not be deleted"),
    };
    nosniff(&app, response)
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
