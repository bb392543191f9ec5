"""session-auth: sign-up, login and logout with server-side sessions held in a cookie.

Members and sessions live in memory. The `session` cookie carries only an opaque,
random session id; what it stands for is kept on the server, so logout can end it.

Env: PORT (default 8000), LOGIN_MAX_FAILURES (default 5),
CANDIDATE_BUG (deliberate defects for the exercise; unset = correct service).
"""

import os
import secrets
import threading
import time

from flask import Flask, jsonify, request, session as flask_session
from werkzeug.exceptions import HTTPException
from werkzeug.security import check_password_hash, generate_password_hash

BUG = os.environ.get("CANDIDATE_BUG", "")

PORT = int(os.environ.get("PORT", "8000"))
LOGIN_MAX_FAILURES = int(os.environ.get("LOGIN_MAX_FAILURES", "5"))
LOCKOUT_SECONDS = 15 * 60  # a throttled username opens again this long after its last failure
SESSION_LIFETIME_SECONDS = 12 * 60 * 60  # absolute lifetime of a server-side session

SESSION_COOKIE = "session"
MAX_USERNAME_LENGTH = 128
MAX_PASSWORD_LENGTH = 1024
LOGIN_FAILED_DETAIL = "Invalid username or password."

app = Flask(__name__)
if BUG == "signed-cookie-session":
    # The "session" is Flask's built-in signed cookie: the member's name travels in
    # the cookie itself and nothing is stored on the server.
    app.secret_key = secrets.token_bytes(32)
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"

_lock = threading.Lock()
_members = {}  # username -> password hash
_sessions = {}  # session id -> {"username": str, "expires": float}
_failures = {}  # username -> {"count": int, "last": float}

# Compared against when the username is unknown, so that a failed login costs the
# same whichever part of it was wrong.
_DUMMY_HASH = generate_password_hash(secrets.token_urlsafe(16))


# ---------------------------------------------------------------- errors


def problem(status, detail=None, title=None, headers=None):
    body = {
        "type": "about:blank",
        "title": title or _reason(status),
        "status": status,
    }
    if detail:
        body["detail"] = detail
    resp = jsonify(body)
    resp.status_code = status
    resp.mimetype = "application/problem+json"
    if headers:
        resp.headers.update(headers)
    return resp


def _reason(status):
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


@app.errorhandler(HTTPException)
def handle_http_exception(exc):
    headers = {}
    if exc.code == 405 and exc.valid_methods:
        headers["Allow"] = ", ".join(exc.valid_methods)
    return problem(exc.code or 500, exc.description, exc.name, headers)


@app.errorhandler(Exception)
def handle_unexpected(exc):
    app.logger.exception("unhandled error")
    return problem(500, "An unexpected error occurred.")


# ---------------------------------------------------------------- helpers


def _credentials():
    """Return (username, password) from the JSON body, or a problem response."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return None, problem(400, "The body must be a JSON object with username and password.")
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not username.strip():
        return None, problem(400, "username must be a non-empty string.")
    if not isinstance(password, str) or not password:
        return None, problem(400, "password must be a non-empty string.")
    if len(username) > MAX_USERNAME_LENGTH:
        return None, problem(400, f"username must be at most {MAX_USERNAME_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        return None, problem(400, f"password must be at most {MAX_PASSWORD_LENGTH} characters.")
    return (username, password), None


def _live_session(sid):
    """The session record for `sid` if it is live, else None. Caller holds _lock."""
    if not sid:
        return None
    record = _sessions.get(sid)
    if record is None:
        return None
    if record["expires"] <= time.time():
        del _sessions[sid]
        return None
    return record


def _is_throttled(username, now):
    """Caller holds _lock."""
    entry = _failures.get(username)
    if entry is None:
        return False
    if now - entry["last"] >= LOCKOUT_SECONDS:
        del _failures[username]
        return False
    return entry["count"] >= LOGIN_MAX_FAILURES


def _throttled_response(username, now):
    entry = _failures[username]
    retry_after = max(1, int(LOCKOUT_SECONDS - (now - entry["last"])))
    return problem(
        429,
        "Too many failed logins for this username; try again later.",
        headers={"Retry-After": str(retry_after)},
    )


def _no_store(resp):
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _set_session_cookie(resp, sid):
    if BUG == "cookie-missing-flags":
        resp.set_cookie(SESSION_COOKIE, sid)
        return
    resp.set_cookie(
        SESSION_COOKIE,
        sid,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=request.is_secure,
    )


# ---------------------------------------------------------------- routes


@app.get("/health")
def health():
    return {"status": "ok"}


@app.post("/members")
def create_member():
    creds, error = _credentials()
    if error:
        return error
    username, password = creds
    password_hash = generate_password_hash(password)
    with _lock:
        if username in _members:
            return problem(409, "That username is already taken.")
        _members[username] = password_hash
    resp = jsonify({"username": username})
    resp.status_code = 201
    resp.headers["Location"] = "/members/me"
    return resp


@app.post("/sessions")
def login():
    creds, error = _credentials()
    if error:
        return error
    username, password = creds

    with _lock:
        now = time.time()
        if _is_throttled(username, now):
            return _throttled_response(username, now)
        stored_hash = _members.get(username)

    # The (deliberately slow) hash check runs outside the lock.
    if stored_hash is None:
        check_password_hash(_DUMMY_HASH, password)
        ok = False
    else:
        ok = check_password_hash(stored_hash, password)

    with _lock:
        now = time.time()
        # Other attempts for this username may have failed while we were hashing;
        # once the limit is reached every attempt answers 429, right password or not.
        if _is_throttled(username, now):
            return _throttled_response(username, now)
        if not ok:
            entry = _failures.setdefault(username, {"count": 0, "last": now})
            entry["count"] += 1
            entry["last"] = now
            if BUG == "enumerating-login-errors":
                if stored_hash is None:
                    return problem(401, "No member with that username.")
                return problem(401, "Wrong password.")
            return problem(401, LOGIN_FAILED_DETAIL)
        _failures.pop(username, None)

        if BUG == "signed-cookie-session":
            flask_session.clear()
            flask_session["username"] = username
            return _no_store(app.response_class(status=204))

        # A session the client already holds is replaced, never carried over.
        old_sid = request.cookies.get(SESSION_COOKIE)
        if BUG == "adopt-client-session-id" and old_sid:
            sid = old_sid  # "keep the client's session if it already has one"
        else:
            if old_sid:
                _sessions.pop(old_sid, None)
            sid = secrets.token_urlsafe(32)
        _sessions[sid] = {"username": username, "expires": now + SESSION_LIFETIME_SECONDS}

    resp = app.response_class(status=204)
    _set_session_cookie(resp, sid)
    return _no_store(resp)


@app.get("/members/me")
def me():
    if BUG == "signed-cookie-session":
        username = flask_session.get("username")
        if username is None:
            return problem(401, "You are not logged in.")
        return _no_store(jsonify({"username": username}))

    with _lock:
        record = _live_session(request.cookies.get(SESSION_COOKIE))
        username = record["username"] if record else None
    if username is None:
        return problem(401, "You are not logged in.")
    return _no_store(jsonify({"username": username}))


@app.delete("/sessions/current")
def logout():
    if BUG == "signed-cookie-session":
        flask_session.clear()  # Flask then sends an expired cookie
        return app.response_class(status=204)

    # Logging out is idempotent: the session, if any, is ended and the cookie deleted.
    sid = request.cookies.get(SESSION_COOKIE)
    if sid:
        with _lock:
            _sessions.pop(sid, None)
    resp = app.response_class(status=204)
    resp.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="Lax", secure=request.is_secure
    )
    return resp


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=PORT, threaded=True)
