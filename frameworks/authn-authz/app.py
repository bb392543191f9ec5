"""authn-authz: users, opaque bearer tokens and private documents (Flask)."""
import os
import secrets
import threading
import uuid
from functools import wraps

from flask import Flask, abort, g, jsonify, request
from werkzeug.security import check_password_hash, generate_password_hash

BUG = os.environ.get("CANDIDATE_BUG", "")
REALM = "docs"

app = Flask(__name__)

lock = threading.Lock()
users = {}  # username -> {"id", "username", "role", "password_hash"}
tokens = {}  # token -> username
docs = {}  # id -> {"id", "owner", "title", "body"}

# Hash of a random password: lets an unknown username cost the same work as a wrong password.
DUMMY_HASH = generate_password_hash(secrets.token_hex(16))


def public_user(u):
    if BUG == "pwd-field-leak":
        # Gap-revealing bug: the Werkzeug hash leaks under a field name the probe's regex does not know.
        return {"id": u["id"], "username": u["username"], "role": u["role"], "pwd": u["password_hash"]}
    return {"id": u["id"], "username": u["username"], "role": u["role"]}


def error(status, message, headers=None):
    resp = jsonify({"error": message})
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def unauthorized(message, invalid_token):
    if BUG == "abort-401":
        # Bug: Flask's abort(401) -> Werkzeug's default HTML 401 page, with no WWW-Authenticate header.
        abort(401)
    challenge = f'Bearer realm="{REALM}"'
    if invalid_token:
        challenge += ', error="invalid_token"'
    return error(401, message, {"WWW-Authenticate": challenge})


def require_auth(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        header = request.headers.get("Authorization")
        if not header:
            return unauthorized("authentication required", invalid_token=False)
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            # Credentials in another scheme are not Bearer credentials: challenge again.
            return unauthorized("bearer token required", invalid_token=False)
        token = token.strip()
        with lock:
            username = tokens.get(token) if token else None
            user = users.get(username) if username else None
        if user is None:
            return unauthorized("invalid token", invalid_token=True)
        g.user = user
        return view(*args, **kwargs)

    return wrapper


def json_body():
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else None


def credentials():
    data = json_body()
    if data is None:
        return None, None
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return None, None
    return username, password


def doc_fields():
    data = json_body()
    if data is None:
        return None
    title, body = data.get("title"), data.get("body")
    if not isinstance(title, str) or not isinstance(body, str):
        return None
    return title, body


@app.get("/health")
def health():
    return jsonify({"status": "ok"})


@app.post("/users")
def create_user():
    username, password = credentials()
    if username is None or not username.strip():
        return error(400, "username and password are required strings")
    if len(password) < 8:
        return error(400, "password must be at least 8 characters")
    pw_hash = generate_password_hash(password)
    with lock:
        # Gap-revealing bug "duplicate-overwrite": skips this check, so signing up again replaces the account.
        if username in users and BUG != "duplicate-overwrite":
            return error(409, "username already taken")
        user = {"id": str(uuid.uuid4()), "username": username, "role": "user", "password_hash": pw_hash}
        users[username] = user
    return jsonify(public_user(user)), 201


@app.post("/login")
def login():
    username, password = credentials()
    if username is None:
        return error(400, "username and password are required strings")
    with lock:
        user = users.get(username)
    stored = user["password_hash"] if user else DUMMY_HASH
    ok = check_password_hash(stored, password)
    if not user or not ok:
        return error(401, "invalid username or password")
    token = secrets.token_urlsafe(32)
    with lock:
        tokens[token] = username
    return jsonify({"token": token})


@app.get("/users/me")
@require_auth
def me():
    return jsonify(public_user(g.user))


@app.post("/docs")
@require_auth
def create_doc():
    fields = doc_fields()
    if fields is None:
        return error(400, "title and body are required strings")
    doc = {"id": str(uuid.uuid4()), "owner": g.user["username"], "title": fields[0], "body": fields[1]}
    with lock:
        docs[doc["id"]] = doc
    resp = jsonify(doc)
    resp.status_code = 201
    resp.headers["Location"] = f"/docs/{doc['id']}"
    return resp


def owned_doc(doc_id):
    """The document if it exists and the caller owns it; else None (callers answer 404)."""
    doc = docs.get(doc_id)
    if doc is None or doc["owner"] != g.user["username"]:
        return None
    return doc


@app.get("/docs/<doc_id>")
@require_auth
def get_doc(doc_id):
    with lock:
        doc = owned_doc(doc_id)
        doc = dict(doc) if doc else None
    if doc is None:
        return error(404, "document not found")
    return jsonify(doc)


@app.put("/docs/<doc_id>")
@require_auth
def put_doc(doc_id):
    with lock:
        exists = owned_doc(doc_id) is not None
    if not exists:
        return error(404, "document not found")
    fields = doc_fields()
    if fields is None:
        return error(400, "title and body are required strings")
    with lock:
        doc = owned_doc(doc_id)
        if doc is None:
            return error(404, "document not found")
        doc["title"], doc["body"] = fields
        doc = dict(doc)
    return jsonify(doc)


@app.get("/admin/stats")
@require_auth
def admin_stats():
    if g.user["role"] != "admin":
        return error(403, "admin role required")
    with lock:
        stats = {"users": len(users), "documents": len(docs), "tokens": len(tokens)}
    return jsonify(stats)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8080")), threaded=True)
