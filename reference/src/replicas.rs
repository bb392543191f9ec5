//! `stateless-replicas`: a shopping cart API whose every piece of client state — session tokens, carts, orders,
//! the order rate limit — lives in one SQLite database in `$DATA_DIR`, which every replica shares. Nothing about a
//! client stays in the memory of a replica, so any replica answers for any client.
//!
//! Defects put one piece of state back into the replica's memory (`replica-memory-carts`,
//! `replica-memory-tokens`, `replica-local-limit`), cache it there (`replica-cached-carts`,
//! `replica-token-cache`), number orders with a counter of the replica's own (`replica-local-ids`), or recreate
//! the tables at every start (`schema-reset-on-start`); `token-last-64` reads the token as the header's last 64
//! characters, so that a longer, made-up token passes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use serde_json::{Value, json};

use crate::{Config, Shared, json_response, lock, problem};

/// How long the order limit counts orders back.
const WINDOW: Duration = Duration::from_secs(60);

/// The database every replica shares, and what a defect keeps in one replica's memory instead.
pub(crate) struct Shop {
    db: Mutex<Connection>,
    /// `replica-memory-carts` and `replica-cached-carts`: carts by user.
    carts: Mutex<HashMap<String, BTreeMap<String, i64>>>,
    /// `replica-memory-tokens`: tokens and their users; `replica-token-cache`: tokens once found in the database.
    tokens: Mutex<HashMap<String, String>>,
    /// `replica-local-limit`: each user's order times.
    orders_at: Mutex<HashMap<String, Vec<SystemTime>>>,
    /// `replica-local-ids`: the next order id, counted by this replica.
    next_id: AtomicU64,
}

impl Shop {
    pub(crate) fn open(config: &Config) -> Self {
        // Every challenge's instance opens it (the reference serves them all): a data folder it cannot write in
        // is another challenge's business, so the shop then lives in memory.
        let connection = config
            .env
            .get("DATA_DIR")
            .and_then(|dir| Connection::open(std::path::Path::new(dir).join("shop.db")).ok())
            .map_or_else(Connection::open_in_memory, Ok)
            .expect("SQLite opens an in-memory database");
        let _ = connection.busy_timeout(Duration::from_secs(10));
        let _ = connection.pragma_update(None, "journal_mode", "WAL");
        let reset = if config.has("schema-reset-on-start") {
            "DROP TABLE IF EXISTS tokens; DROP TABLE IF EXISTS cart_items; DROP TABLE IF EXISTS orders;"
        } else {
            ""
        };
        connection
            .execute_batch(&format!(
                "BEGIN IMMEDIATE;
                 {reset}
                 CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, user TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS cart_items (user TEXT NOT NULL, sku TEXT NOT NULL, qty INTEGER NOT NULL,
                     PRIMARY KEY (user, sku));
                 CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL,
                     items TEXT NOT NULL, placed_at REAL NOT NULL, number INTEGER);
                 CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user, placed_at);
                 COMMIT;"
            ))
            .expect("the shop's tables are created");
        Self {
            db: Mutex::new(connection),
            carts: Mutex::default(),
            tokens: Mutex::default(),
            orders_at: Mutex::default(),
            next_id: AtomicU64::new(1),
        }
    }
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/tokens", post(sign_in))
        .route("/tokens/current", delete(sign_out))
        .route("/cart", get(cart))
        .route("/cart/items/{sku}", put(put_item))
        .route("/orders", post(place_order))
        .route("/orders/{id}", get(get_order))
}

/// Why a request is refused before it is served.
enum Refusal {
    /// No valid bearer token.
    Unauthorized,
    /// The database failed.
    Unavailable(String),
}

impl From<rusqlite::Error> for Refusal {
    fn from(error: rusqlite::Error) -> Self {
        Refusal::Unavailable(error.to_string())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthorized => {
                let mut response = problem(StatusCode::UNAUTHORIZED, "sign in first: Authorization: Bearer <token>");
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
                response
            }
            Refusal::Unavailable(error) => problem(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("the shop's database failed: {error}"),
            ),
        }
    }
}

/// A token no one can guess: SHA-256 over the time, a counter and the process's random hasher keys.
fn new_token() -> String {
    use sha2::Digest;
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let digest = sha2::Sha256::digest(format!("{nanos}-{}-{}", hasher.finish(), std::process::id()));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The request's bearer token.
fn token(headers: &HeaderMap) -> Result<&str, Refusal> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(Refusal::Unauthorized)
}

/// The token as the `token-last-64` defect reads it: the header's last 64 characters, whatever comes before.
fn last_64(token: &str) -> &str {
    token.char_indices().rev().nth(63).map_or(token, |(at, _)| &token[at..])
}

/// The user the request's bearer token belongs to.
fn user(app: &Shared, headers: &HeaderMap) -> Result<String, Refusal> {
    let mut token = token(headers)?;
    if app.config.has("token-last-64") {
        token = last_64(token);
    }
    let shop = &app.shop;
    let in_memory = app.config.has("replica-memory-tokens") || app.config.has("replica-token-cache");
    if in_memory && let Some(user) = lock(&shop.tokens).get(token) {
        return Ok(user.clone());
    }
    if app.config.has("replica-memory-tokens") {
        return Err(Refusal::Unauthorized);
    }
    let found: Option<String> = lock(&shop.db)
        .query_row("SELECT user FROM tokens WHERE token = ?1", [token], |row| row.get(0))
        .optional()?;
    let user = found.ok_or(Refusal::Unauthorized)?;
    if app.config.has("replica-token-cache") {
        lock(&shop.tokens).insert(token.to_string(), user.clone());
    }
    Ok(user)
}

async fn sign_in(State(app): State<Shared>, body: axum::body::Bytes) -> Result<Response, Refusal> {
    let user = match serde_json::from_slice::<Value>(&body) {
        Ok(value) => value.get("user").and_then(Value::as_str).map(str::to_string),
        Err(_) => None,
    };
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return Ok(problem(StatusCode::UNPROCESSABLE_ENTITY, "a sign-in names a `user`"));
    };
    let token = new_token();
    if app.config.has("replica-memory-tokens") {
        lock(&app.shop.tokens).insert(token.clone(), user);
    } else {
        lock(&app.shop.db).execute("INSERT INTO tokens (token, user) VALUES (?1, ?2)", [&token, &user])?;
    }
    Ok(json_response(StatusCode::CREATED, &json!({ "token": token }), false))
}

async fn sign_out(State(app): State<Shared>, headers: HeaderMap) -> Result<Response, Refusal> {
    user(&app, &headers)?;
    let token = token(&headers)?;
    lock(&app.shop.tokens).remove(token);
    lock(&app.shop.db).execute("DELETE FROM tokens WHERE token = ?1", [token])?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A user's cart as the database has it.
fn read_cart(db: &Connection, user: &str) -> rusqlite::Result<BTreeMap<String, i64>> {
    let mut statement = db.prepare("SELECT sku, qty FROM cart_items WHERE user = ?1")?;
    let rows = statement.query_map([user], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}

/// A user's cart: from the database, or from this replica's memory (the defects).
fn load_cart(app: &Shared, user: &str) -> Result<BTreeMap<String, i64>, Refusal> {
    let shop = &app.shop;
    if app.config.has("replica-memory-carts") {
        return Ok(lock(&shop.carts).get(user).cloned().unwrap_or_default());
    }
    if app.config.has("replica-cached-carts")
        && let Some(cached) = lock(&shop.carts).get(user)
    {
        return Ok(cached.clone());
    }
    let cart = read_cart(&lock(&shop.db), user)?;
    if app.config.has("replica-cached-carts") {
        lock(&shop.carts).insert(user.to_string(), cart.clone());
    }
    Ok(cart)
}

fn items(cart: &BTreeMap<String, i64>) -> Value {
    Value::Array(
        cart.iter()
            .map(|(sku, qty)| json!({ "sku": sku, "qty": qty }))
            .collect(),
    )
}

async fn cart(State(app): State<Shared>, headers: HeaderMap) -> Result<Response, Refusal> {
    let user = user(&app, &headers)?;
    let cart = load_cart(&app, &user)?;
    Ok(json_response(StatusCode::OK, &json!({ "items": items(&cart) }), false))
}

async fn put_item(
    State(app): State<Shared>,
    Path(sku): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Refusal> {
    let user = user(&app, &headers)?;
    let qty = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("qty").and_then(Value::as_i64))
        .filter(|q| *q >= 1);
    let Some(qty) = qty else {
        return Ok(problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`qty` is a whole number of at least 1",
        ));
    };
    let shop = &app.shop;
    if app.config.has("replica-memory-carts") {
        lock(&shop.carts).entry(user.clone()).or_default().insert(sku, qty);
    } else {
        lock(&shop.db).execute(
            "INSERT INTO cart_items (user, sku, qty) VALUES (?1, ?2, ?3)
             ON CONFLICT (user, sku) DO UPDATE SET qty = excluded.qty",
            rusqlite::params![user, sku, qty],
        )?;
        if app.config.has("replica-cached-carts")
            && let Some(cached) = lock(&shop.carts).get_mut(&user)
        {
            cached.insert(sku, qty);
        }
    }
    cart(State(app), headers).await
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn limit(app: &Shared) -> usize {
    app.config
        .env
        .get("ORDER_LIMIT")
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

fn too_many() -> Response {
    let mut response = problem(StatusCode::TOO_MANY_REQUESTS, "too many orders: wait a minute");
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, axum::http::HeaderValue::from_static("60"));
    response
}

/// The order limit as the `replica-local-limit` defect counts it: in this replica's memory.
fn local_limit_reached(app: &Shared, user: &str) -> bool {
    let mut times = lock(&app.shop.orders_at);
    let mine = times.entry(user.to_string()).or_default();
    let now = SystemTime::now();
    mine.retain(|t| now.duration_since(*t).unwrap_or_default() < WINDOW);
    if mine.len() >= limit(app) {
        return true;
    }
    mine.push(now);
    false
}

/// What placing an order came to.
enum Placed {
    Order(i64, BTreeMap<String, i64>),
    EmptyCart,
    TooMany,
}

async fn place_order(State(app): State<Shared>, headers: HeaderMap) -> Result<Response, Refusal> {
    let user = user(&app, &headers)?;
    let local_limit = app.config.has("replica-local-limit");
    // The defects that keep carts in memory read them there; the others read them in the transaction.
    let in_memory = app.config.has("replica-memory-carts") || app.config.has("replica-cached-carts");
    let remembered = if in_memory { Some(load_cart(&app, &user)?) } else { None };
    let placed = {
        let mut db = lock(&app.shop.db);
        // One transaction that takes the write lock first: reading the cart, counting the user's recent orders,
        // adding this one and emptying the cart cannot interleave with another replica doing the same.
        let mut place = || -> rusqlite::Result<Placed> {
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let cart = match &remembered {
                Some(cart) => cart.clone(),
                None => read_cart(&tx, &user)?,
            };
            if cart.is_empty() {
                return Ok(Placed::EmptyCart);
            }
            let since = now_seconds() - WINDOW.as_secs_f64();
            let recent: i64 = tx.query_row(
                "SELECT count(*) FROM orders WHERE user = ?1 AND placed_at > ?2",
                rusqlite::params![user, since],
                |row| row.get(0),
            )?;
            let over = if local_limit {
                local_limit_reached(&app, &user)
            } else {
                recent as usize >= limit(&app)
            };
            if over {
                return Ok(Placed::TooMany);
            }
            let listed = items(&cart).to_string();
            // The `replica-local-ids` defect gives the order a number of this replica's own, and shows it as the id.
            let number = app
                .config
                .has("replica-local-ids")
                .then(|| app.shop.next_id.fetch_add(1, Ordering::Relaxed) as i64);
            tx.execute(
                "INSERT INTO orders (user, items, placed_at, number) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![user, listed, now_seconds(), number],
            )?;
            let id = number.unwrap_or_else(|| tx.last_insert_rowid());
            tx.execute("DELETE FROM cart_items WHERE user = ?1", [&user])?;
            tx.commit()?;
            Ok(Placed::Order(id, cart))
        };
        place()?
    };
    Ok(match placed {
        Placed::Order(id, cart) => {
            lock(&app.shop.carts).remove(&user);
            json_response(StatusCode::CREATED, &json!({ "id": id, "items": items(&cart) }), false)
        }
        Placed::EmptyCart => problem(StatusCode::UNPROCESSABLE_ENTITY, "the cart is empty"),
        Placed::TooMany => too_many(),
    })
}

async fn get_order(State(app): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, Refusal> {
    let user = user(&app, &headers)?;
    let Ok(id) = id.parse::<i64>() else {
        return Ok(problem(StatusCode::NOT_FOUND, "there is no such order"));
    };
    let found: Option<String> = lock(&app.shop.db)
        .query_row(
            "SELECT items FROM orders WHERE coalesce(number, id) = ?1 AND user = ?2 ORDER BY id LIMIT 1",
            rusqlite::params![id, user],
            |row| row.get(0),
        )
        .optional()?;
    Ok(match found {
        Some(listed) => {
            let items: Value = serde_json::from_str(&listed).unwrap_or(Value::Array(Vec::new()));
            json_response(StatusCode::OK, &json!({ "id": id, "items": items }), false)
        }
        None => problem(StatusCode::NOT_FOUND, "there is no such order"),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_differ() {
        let tokens: std::collections::HashSet<String> = (0..100).map(|_| super::new_token()).collect();
        assert_eq!(tokens.len(), 100);
        assert!(tokens.iter().all(|t| t.len() == 64));
    }
}
