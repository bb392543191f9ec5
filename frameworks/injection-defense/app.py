"""Customers directory that keeps user input out of SQL and out of HTML.

Start: ``python app.py`` (reads ``PORT``, default 8000).

Every value from the request reaches SQLite as a bound parameter; the only
pieces of SQL chosen at run time are the ORDER BY column and direction, which
are looked up in fixed allowlists.  Every answer is JSON (problem details for
errors) and carries ``X-Content-Type-Options: nosniff``.

Staff sign in with ``POST /staff/login`` (password from ``STAFF_PASSWORD``) and
get a server-side session: an opaque random id in an ``HttpOnly``,
``SameSite=Strict`` cookie, plus a CSRF token returned in the body.  A
``DELETE /customers/<id>`` needs the live session (else 401) and that session's
token in ``X-CSRF-Token`` (else 403), both checked before anything is deleted.

``CANDIDATE_BUG=<name>`` switches on one deliberate bug (see README.md).
"""

import hmac
import logging
import os
import secrets
import sqlite3
import threading
import time

from flask import Flask, jsonify, request
from markupsafe import escape
from werkzeug.exceptions import BadRequest, HTTPException, InternalServerError

BUG = os.environ.get("CANDIDATE_BUG", "")

STAFF_USERNAME = "staff"
STAFF_PASSWORD = os.environ.get("STAFF_PASSWORD", "")
SESSION_COOKIE = "staff_session"
SESSION_TTL = 8 * 60 * 60  # seconds; a session is "live" for a working day
# The service is served over plain HTTP on 127.0.0.1; set COOKIE_SECURE=1 behind TLS.
COOKIE_SECURE = os.environ.get("COOKIE_SECURE", "") in ("1", "true", "yes")

log = logging.getLogger(__name__)

app = Flask(__name__)
# Flask's automatic OPTIONS answer is an empty text/html response; without it,
# OPTIONS gets a 405 problem body like any other unsupported method.
app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False

# ---------------------------------------------------------------------------
# Database: one in-memory connection shared by the server's threads.  sqlite3
# connections refuse cross-thread use by default, so the check is turned off
# and every use is serialised by a lock instead.
# ---------------------------------------------------------------------------

_db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
_db_lock = threading.Lock()
with _db_lock:
    _db.execute(
        "CREATE TABLE customers ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " name TEXT NOT NULL,"
        " city TEXT NOT NULL)"
    )
    _db.execute("CREATE INDEX customers_name ON customers (name)")

# The only SQL fragments taken from the request, and only through these maps.
SORT_COLUMNS = {"id": "id", "name": "name", "city": "city"}
SORT_ORDERS = {"asc": "ASC", "desc": "DESC"}


def _row(row):
    return {"id": row[0], "name": row[1], "city": row[2]}


# ---------------------------------------------------------------------------
# Problem details
# ---------------------------------------------------------------------------


def problem(status, title, detail=None, headers=None):
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    for key, value in headers or ():
        response.headers[key] = value
    return response


@app.errorhandler(HTTPException)
def http_error(exc):
    # Keep headers such as Allow (405), drop Werkzeug's text/html type.
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    return problem(exc.code, exc.name, exc.description, headers)


@app.errorhandler(Exception)
def unexpected_error(exc):
    # Log the details server-side; never send a database message to the client.
    log.exception("unhandled error on %s %s", request.method, request.path)
    return problem(500, InternalServerError.name, "The server could not complete the request.")


@app.after_request
def nosniff(response):
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# ---------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------


@app.get("/health")
def health():
    with _db_lock:
        _db.execute("SELECT 1").fetchone()
    return {"status": "ok"}


def _text_field(data, field):
    value = data.get(field)
    if not isinstance(value, str):
        raise BadRequest(f"'{field}' is required and must be a string.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (e.g. "\ud800") are not characters
        raise BadRequest(f"'{field}' must be valid Unicode text.") from None
    if BUG == "html-escape-input":
        # "Sanitise" input against XSS before storing it.
        value = str(escape(value))
    return value


@app.post("/customers")
def create_customer():
    data = request.get_json()  # 415 if not JSON, 400 if malformed
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.")
    name = _text_field(data, "name")
    city = _text_field(data, "city")
    with _db_lock:
        cur = _db.execute("INSERT INTO customers (name, city) VALUES (?, ?)", (name, city))
        customer_id = cur.lastrowid
    return {"id": customer_id, "name": name, "city": city}, 201


@app.get("/customers")
def list_customers():
    sort = request.args.get("sort", "id")
    order = request.args.get("order", "asc")
    if BUG == "sort-interpolated":
        # Trusts the parameters and lets the database reject bad ones.
        order_by = f"{sort} {order}, id ASC"
    else:
        if sort not in SORT_COLUMNS:
            raise BadRequest("'sort' must be one of: id, name, city.")
        if order not in SORT_ORDERS:
            raise BadRequest("'order' must be 'asc' or 'desc'.")
        order_by = f"{SORT_COLUMNS[sort]} {SORT_ORDERS[order]}, id ASC"

    where, params = [], []
    name = request.args.get("name")
    if name is not None:
        if BUG == "fstring-name":
            where.append(f"name = '{name}'")
        else:
            where.append("name = ?")
            params.append(name)
    q = request.args.get("q")
    if q is not None:
        if BUG == "unescaped-like":
            where.append("name LIKE '%' || ? || '%'")
        else:
            # instr() has no wildcards at all, so % and _ are just characters;
            # SQLite's lower() folds ASCII letters only.
            where.append("instr(lower(name), lower(?)) > 0")
        params.append(q)

    sql = "SELECT id, name, city FROM customers"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY " + order_by
    with _db_lock:
        try:
            rows = _db.execute(sql, params).fetchall()
        except sqlite3.Error:
            if BUG != "sort-interpolated":
                raise
            raise BadRequest("Invalid sort or order.") from None
    return {"items": [_row(r) for r in rows]}


# ---------------------------------------------------------------------------
# Staff sessions: kept server-side in a dict, keyed by an unguessable id that
# is the only thing the cookie carries.  Each session has its own CSRF token.
# ---------------------------------------------------------------------------

_sessions = {}  # session id -> {"csrf": str, "expires": float}
_sessions_lock = threading.Lock()
_issued_csrf_tokens = set()  # CANDIDATE_BUG=csrf-unbound-token only


def _new_session():
    session_id = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    now = time.time()
    with _sessions_lock:
        for sid in [sid for sid, s in _sessions.items() if s["expires"] <= now]:
            del _sessions[sid]
        _sessions[session_id] = {"csrf": csrf_token, "expires": now + SESSION_TTL}
        if BUG == "csrf-unbound-token":
            _issued_csrf_tokens.add(csrf_token)
    return session_id, csrf_token


def _current_session():
    """The live session named by the request's cookie, or None."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    with _sessions_lock:
        session = _sessions.get(session_id)
        if session is None:
            return None
        if session["expires"] <= time.time():
            del _sessions[session_id]
            return None
        return dict(session)


def _csrf_ok(session):
    sent = request.headers.get("X-CSRF-Token", "")
    if BUG == "csrf-unbound-token":
        # "Is this a token we issued?" -- any session's, and never forgotten.
        with _sessions_lock:
            return sent in _issued_csrf_tokens
    return hmac.compare_digest(sent.encode(), session["csrf"].encode())


@app.post("/staff/login")
def staff_login():
    data = request.get_json()  # 415 if not JSON, 400 if malformed
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.")
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise BadRequest("'username' and 'password' are required and must be strings.")
    # Compare both fields in constant time; no password configured means no login.
    user_ok = hmac.compare_digest(username.encode("utf-8", "surrogatepass"), STAFF_USERNAME.encode())
    pass_ok = hmac.compare_digest(password.encode("utf-8", "surrogatepass"), STAFF_PASSWORD.encode())
    if not (user_ok and pass_ok and STAFF_PASSWORD):
        return problem(401, "Unauthorized", "Wrong username or password.")

    # A login replaces the session the browser already had, if any.
    old_id = request.cookies.get(SESSION_COOKIE)
    if old_id:
        with _sessions_lock:
            _sessions.pop(old_id, None)
    session_id, csrf_token = _new_session()
    response = jsonify({"csrf_token": csrf_token})
    response.headers["Cache-Control"] = "no-store"
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=SESSION_TTL,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=COOKIE_SECURE,
    )
    return response


@app.delete("/customers/<int:customer_id>")
def delete_customer(customer_id):
    session = _current_session()
    if session is None:
        return problem(401, "Unauthorized", "Staff sign-in required.")
    if not _csrf_ok(session):
        return problem(403, "Forbidden", "Missing or invalid X-CSRF-Token.")
    with _db_lock:
        cur = _db.execute("DELETE FROM customers WHERE id = ?", (customer_id,))
    if cur.rowcount == 0:
        return problem(404, "Not Found", f"No customer with id {customer_id}.")
    # No body, so no Content-Type either (Flask would otherwise say text/html).
    response = app.response_class(status=204)
    del response.headers["Content-Type"]
    return response


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    if not STAFF_PASSWORD:
        log.warning("STAFF_PASSWORD is not set: staff cannot sign in")
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), threaded=True)
