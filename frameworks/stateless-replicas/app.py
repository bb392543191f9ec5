"""stateless-replicas: a small shop API meant to run as several replicas.

FastAPI + uvicorn, the standard library's sqlite3, one file.  Every piece of
client state -- sign-in tokens, carts, orders and the order rate limit -- lives
in one SQLite database in $DATA_DIR (WAL mode, busy timeout), so any replica
can answer any request and a restarted replica loses nothing.  Nothing about a
client is kept in the process.  Check-then-write steps (placing an order: read
the cart, count recent orders, insert, empty the cart) run in one
BEGIN IMMEDIATE transaction, which serialises them across processes.

CANDIDATE_BUG=<name> switches on one deliberate mistake (see README.md):
  sessions-in-process, lru-cart-cache, limit-in-process, process-counter-ids
"""

import hashlib
import itertools
import json
import math
import os
import re
import secrets
import sqlite3
import tempfile
import threading
import time
from typing import Annotated, Any, Optional

import uvicorn
from fastapi import Depends, FastAPI, Header, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, StrictInt, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

BUG = os.environ.get("CANDIDATE_BUG", "")
KNOWN_BUGS = {
    "",
    "sessions-in-process",
    "lru-cart-cache",
    "limit-in-process",
    "process-counter-ids",
}
if BUG not in KNOWN_BUGS:
    raise SystemExit(f"unknown CANDIDATE_BUG {BUG!r}")

# Used only by the process-counter-ids bug.
LOCAL_ORDER_IDS = itertools.count(1)


def _order_limit() -> int:
    raw = os.environ.get("ORDER_LIMIT", "3")
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"ORDER_LIMIT must be an integer, got {raw!r}")
    if value < 0:
        raise SystemExit(f"ORDER_LIMIT must not be negative, got {value}")
    return value


ORDER_LIMIT = _order_limit()
ORDER_WINDOW = 60.0  # seconds

DATA_DIR = os.environ.get("DATA_DIR") or os.path.join(tempfile.gettempdir(), "stateless-replicas")
os.makedirs(DATA_DIR, exist_ok=True)
DB_PATH = os.path.join(DATA_DIR, "shop.db")
BUSY_TIMEOUT = 30.0  # seconds

# ---------------------------------------------------------------- database

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    user       TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cart_items (
    id   INTEGER PRIMARY KEY,
    user TEXT NOT NULL,
    sku  TEXT NOT NULL,
    qty  INTEGER NOT NULL CHECK (qty >= 1),
    UNIQUE (user, sku)
);
CREATE TABLE IF NOT EXISTS orders (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user       TEXT NOT NULL,
    items      TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_user_created ON orders (user, created_at);
"""


def connect() -> sqlite3.Connection:
    # isolation_level=None: autocommit; multi-statement writes open their own
    # BEGIN IMMEDIATE.  timeout= is SQLite's busy timeout: a replica waits for
    # the other's write lock instead of failing with "database is locked".
    # check_same_thread=False: FastAPI may run a sync dependency and the
    # endpoint in different worker threads; one request uses it at a time.
    conn = sqlite3.connect(
        DB_PATH, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
    )
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def init_db() -> None:
    # Both replicas start at the same moment; the switch to WAL and the schema
    # script may meet the other's lock, so retry for a while.
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        conn = sqlite3.connect(DB_PATH, timeout=BUSY_TIMEOUT, isolation_level=None)
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise SystemExit(f"could not switch {DB_PATH} to WAL (got {mode!r})")
            conn.executescript(SCHEMA)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            conn.close()


def get_db():
    conn = connect()
    try:
        yield conn
    finally:
        conn.close()


Db = Annotated[sqlite3.Connection, Depends(get_db)]


def rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


# ---------------------------------------------------------------- errors

PROBLEM = "application/problem+json"


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str = "", headers: Optional[dict] = None):
        self.status, self.title, self.detail, self.headers = status, title, detail, headers


def problem_response(status: int, title: str, detail: str = "", headers=None, **extra) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


app = FastAPI(title="stateless-replicas")


@app.exception_handler(Problem)
async def _problem(request: Request, exc: Problem):
    return problem_response(exc.status, exc.title, exc.detail, headers=exc.headers)


@app.exception_handler(StarletteHTTPException)
async def _http(request: Request, exc: StarletteHTTPException):
    titles = {404: "Not Found", 405: "Method Not Allowed"}
    return problem_response(
        exc.status_code,
        titles.get(exc.status_code, "HTTP error"),
        str(exc.detail),
        headers=getattr(exc, "headers", None),
    )


@app.exception_handler(RequestValidationError)
async def _validation(request: Request, exc: RequestValidationError):
    detail = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
        for e in exc.errors()[:5]
    )
    return problem_response(422, "Invalid request", detail)


@app.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception):
    return problem_response(500, "Internal Server Error", "An unexpected error occurred.")


# ---------------------------------------------------------------- models

INT64_MAX = 2**63 - 1

UserName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Sku = Annotated[str, Path(min_length=1, max_length=200)]


class TokenIn(BaseModel):
    user: UserName


class QtyIn(BaseModel):
    # A JSON integer (not true, not "2"), at least 1, and small enough for SQLite.
    qty: Annotated[StrictInt, Field(ge=1, le=INT64_MAX)]


# ---------------------------------------------------------------- sign-in

# Bug (sessions-in-process): "a dict is the fastest session store".
LOCAL_SESSIONS: dict[str, str] = {}
LOCAL_SESSIONS_LOCK = threading.Lock()


def token_hash(token: str) -> str:
    # Only a hash of the token is stored, so a copy of the database cannot be
    # replayed as bearer tokens.
    return hashlib.sha256(token.encode()).hexdigest()


def unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def bearer_token(authorization: Optional[str]) -> str:
    if not authorization:
        raise unauthorized("Send Authorization: Bearer <token>.")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthorized("Send Authorization: Bearer <token>.")
    return token


def current_user(conn: Db, authorization: Annotated[Optional[str], Header()] = None) -> str:
    token = bearer_token(authorization)
    if BUG == "sessions-in-process":
        with LOCAL_SESSIONS_LOCK:
            user = LOCAL_SESSIONS.get(token_hash(token))
        if user is None:
            raise unauthorized("The token is not valid.")
        return user
    row = conn.execute(
        "SELECT user FROM sessions WHERE token_hash = ?", (token_hash(token),)
    ).fetchone()
    if row is None:
        raise unauthorized("The token is not valid.")
    return row[0]


User = Annotated[str, Depends(current_user)]


@app.get("/health")
def health(conn: Db):
    conn.execute("SELECT 1").fetchone()
    return {"status": "ok"}


@app.post("/tokens", status_code=201)
def sign_in(body: TokenIn, conn: Db):
    token = secrets.token_urlsafe(32)
    if BUG == "sessions-in-process":
        with LOCAL_SESSIONS_LOCK:
            LOCAL_SESSIONS[token_hash(token)] = body.user
    else:
        conn.execute(
            "INSERT INTO sessions (token_hash, user, created_at) VALUES (?, ?, ?)",
            (token_hash(token), body.user, time.time()),
        )
    return {"token": token}


@app.delete("/tokens/current", status_code=204)
def sign_out(conn: Db, user: User, authorization: Annotated[Optional[str], Header()] = None):
    h = token_hash(bearer_token(authorization))
    if BUG == "sessions-in-process":
        with LOCAL_SESSIONS_LOCK:
            LOCAL_SESSIONS.pop(h, None)
    else:
        conn.execute("DELETE FROM sessions WHERE token_hash = ?", (h,))
    return Response(status_code=204)


# ---------------------------------------------------------------- cart

# Bug (lru-cart-cache): "carts are read far more often than written".
CART_CACHE: dict[str, list] = {}
CART_CACHE_LOCK = threading.Lock()


def read_cart(conn: sqlite3.Connection, user: str) -> list[dict]:
    rows = conn.execute(
        "SELECT sku, qty FROM cart_items WHERE user = ? ORDER BY id", (user,)
    ).fetchall()
    return [{"sku": sku, "qty": qty} for sku, qty in rows]


@app.get("/cart")
def get_cart(conn: Db, user: User):
    if BUG == "lru-cart-cache":
        with CART_CACHE_LOCK:
            cached = CART_CACHE.get(user)
        if cached is not None:
            return {"items": cached}
        items = read_cart(conn, user)
        with CART_CACHE_LOCK:
            CART_CACHE[user] = items
        return {"items": items}
    return {"items": read_cart(conn, user)}


@app.put("/cart/items/{sku}")
def put_cart_item(sku: Sku, body: QtyIn, conn: Db, user: User):
    # One upsert, then the cart as it is now; the item keeps its place in the
    # cart when only its quantity changes.
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT INTO cart_items (user, sku, qty) VALUES (?, ?, ?) "
            "ON CONFLICT (user, sku) DO UPDATE SET qty = excluded.qty",
            (user, sku, body.qty),
        )
        items = read_cart(conn, user)
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
    if BUG == "lru-cart-cache":
        # Keeps this process's copy current; the other replica never hears of it.
        with CART_CACHE_LOCK:
            CART_CACHE[user] = items
    return {"items": items}


# ---------------------------------------------------------------- orders

# Bug (limit-in-process): "a sliding window of timestamps per user".
LOCAL_ORDER_TIMES: dict[str, list[float]] = {}
LOCAL_ORDER_TIMES_LOCK = threading.Lock()


def too_many_orders(retry_after: float) -> Problem:
    seconds = max(1, math.ceil(retry_after))
    return Problem(
        429,
        "Too Many Requests",
        f"At most {ORDER_LIMIT} orders within {int(ORDER_WINDOW)} seconds.",
        headers={"Retry-After": str(seconds)},
    )


def check_limit_in_db(conn: sqlite3.Connection, user: str, now: float) -> None:
    since = now - ORDER_WINDOW
    count, oldest = conn.execute(
        "SELECT count(*), min(created_at) FROM orders WHERE user = ? AND created_at > ?",
        (user, since),
    ).fetchone()
    if count >= ORDER_LIMIT:
        if ORDER_LIMIT == 0 or oldest is None:
            raise too_many_orders(ORDER_WINDOW)
        # The window frees up when the oldest of the last ORDER_LIMIT orders
        # leaves it.
        nth = conn.execute(
            "SELECT created_at FROM orders WHERE user = ? AND created_at > ? "
            "ORDER BY created_at DESC LIMIT 1 OFFSET ?",
            (user, since, ORDER_LIMIT - 1),
        ).fetchone()
        raise too_many_orders((nth[0] if nth else oldest) + ORDER_WINDOW - now)


def take_local_slot(user: str, now: float) -> None:
    with LOCAL_ORDER_TIMES_LOCK:
        times = [t for t in LOCAL_ORDER_TIMES.get(user, []) if t > now - ORDER_WINDOW]
        if len(times) >= ORDER_LIMIT:
            LOCAL_ORDER_TIMES[user] = times
            raise too_many_orders((times[-ORDER_LIMIT] if ORDER_LIMIT else now) + ORDER_WINDOW - now)
        times.append(now)
        LOCAL_ORDER_TIMES[user] = times


@app.post("/orders", status_code=201)
def place_order(conn: Db, user: User):
    # Read the cart, check the limit, insert the order and empty the cart in
    # one write transaction: two replicas cannot both pass the limit check or
    # order the same cart twice.
    conn.execute("BEGIN IMMEDIATE")
    try:
        items = read_cart(conn, user)
        if not items:
            raise Problem(422, "Empty cart", "Put at least one item in the cart first.")
        now = time.time()
        if BUG == "limit-in-process":
            take_local_slot(user, now)
        else:
            check_limit_in_db(conn, user, now)
        if BUG == "process-counter-ids":
            # Bug: "a counter is simpler than a sequence": each process numbers
            # its orders from 1, so two replicas hand out the same ids.
            order_id = next(LOCAL_ORDER_IDS)
            conn.execute(
                "INSERT OR REPLACE INTO orders (id, user, items, created_at) VALUES (?, ?, ?, ?)",
                (order_id, user, json.dumps(items), now),
            )
        else:
            order_id = conn.execute(
                "INSERT INTO orders (user, items, created_at) VALUES (?, ?, ?)",
                (user, json.dumps(items), now),
            ).lastrowid
        conn.execute("DELETE FROM cart_items WHERE user = ?", (user,))
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
    if BUG == "lru-cart-cache":
        with CART_CACHE_LOCK:
            CART_CACHE.pop(user, None)
    return {"id": order_id, "items": items}


@app.get("/orders/{order_id}")
def get_order(order_id: str, conn: Db, user: User):
    # An id that is not a 64-bit integer names no order: 404, like any other.
    oid = int(order_id) if re.fullmatch(r"-?[0-9]{1,19}", order_id) else None
    if oid is None or not (-(2**63) <= oid <= INT64_MAX):
        raise Problem(404, "Not Found", f"No order {order_id}.")
    row = conn.execute(
        "SELECT id, items FROM orders WHERE id = ? AND user = ?", (oid, user)
    ).fetchone()
    if row is None:
        # Another user's order answers exactly like a missing one.
        raise Problem(404, "Not Found", f"No order {order_id}.")
    return {"id": row[0], "items": json.loads(row[1])}


init_db()

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
