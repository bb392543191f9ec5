"""Payments API with Idempotency-Key on POST /payments (Flask)."""
import json
import os
import threading
import time
import uuid

from flask import Flask, Response, abort, g, request
from werkzeug.exceptions import HTTPException

PORT = int(os.environ.get("PORT", "5000"))
SLOW_MS = int(os.environ.get("SLOW_MS", "400"))
BUG = os.environ.get("CANDIDATE_BUG", "")

app = Flask(__name__)

_lock = threading.Lock()
_payments: dict[str, dict] = {}  # id -> payment (with "_client")
# (client, key) -> {"state": "in_progress" | "done", "payload": ..., "response": (status, headers, body)}
_idem: dict[tuple[str, str], dict] = {}


def _json(status, obj, headers=None, content_type="application/json"):
    return Response(json.dumps(obj), status=status, headers=headers or {}, content_type=content_type)


def problem(status, title, detail=""):
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return _json(status, body, content_type="application/problem+json")


@app.errorhandler(HTTPException)
def _http_error(e):
    if BUG == "html-400":
        return e.get_response()  # BUG (gap probe): no JSON error handler -- Werkzeug's default HTML error page
    resp = problem(e.code, e.name, e.description or "")
    if e.code == 405 and e.valid_methods:
        resp.headers["Allow"] = ", ".join(e.valid_methods)
    return resp


def _public(p):
    return {k: v for k, v in p.items() if not k.startswith("_")}


@app.before_request
def _client():
    if request.path == "/health":
        return None
    client = request.headers.get("X-Client-Id", "")
    if not client:
        return problem(401, "Unauthorized", "Missing X-Client-Id header.")
    g.client = client
    return None


@app.get("/health")
def health():
    return _json(200, {"status": "ok"})


def _valid_payment(data):
    if not isinstance(data, dict):
        return "Body must be a JSON object."
    amount = data.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        return "amount must be an integer > 0."
    currency = data.get("currency")
    if not isinstance(currency, str) or not currency:
        return "currency must be a non-empty string."
    return None


@app.post("/payments")
def create_payment():
    key = request.headers.get("Idempotency-Key")
    if not key and BUG == "html-400":
        abort(400)  # BUG (gap probe): with no JSON error handler this is Werkzeug's HTML 400 page
    if key is None or key == "":
        return problem(400, "Bad Request", "Idempotency-Key header is required.")
    if len(key) > 255:
        return problem(400, "Bad Request", "Idempotency-Key must be 1 to 255 characters.")
    data = request.get_json(silent=True)
    if data is None:
        return problem(400, "Bad Request", "Body must be JSON (Content-Type: application/json).")

    slot = (g.client, key)
    with _lock:
        rec = _idem.get(slot)
        if rec is not None:
            if rec["state"] == "in_progress":
                return problem(409, "Conflict", "A request with this Idempotency-Key is still in progress.")
            if rec["payload"] != data:
                return problem(422, "Unprocessable Content",
                               "Idempotency-Key was already used with a different payload.")
            status, headers, body = rec["response"]
            return Response(body, status=status, headers=headers)
        error = _valid_payment(data)
        if error:
            return problem(400, "Bad Request", error)
        if BUG != "no-in-progress-marker":
            _idem[slot] = {"state": "in_progress", "payload": data}

    try:
        time.sleep(SLOW_MS / 1000.0)  # the bank
        pid = uuid.uuid4().hex
        payment = {"id": pid, "amount": data["amount"], "currency": data["currency"],
                   "status": "succeeded", "note": None, "_client": g.client}
        body = json.dumps(_public(payment))
        headers = {"Location": f"/payments/{pid}", "Content-Type": "application/json"}
        with _lock:
            _payments[pid] = payment
            # BUG "no-in-progress-marker": the key is only recorded here, once the work is done.
            _idem[slot] = {"state": "done", "payload": data, "response": (201, headers, body)}
    except Exception:
        with _lock:
            _idem.pop(slot, None)
        raise
    return Response(body, status=201, headers=headers)


@app.get("/payments")
def list_payments():
    with _lock:
        mine = [_public(p) for p in _payments.values() if p["_client"] == g.client]
    return _json(200, {"payments": mine})


def _own(pid):
    p = _payments.get(pid)
    if BUG == "no-owner-check":
        return p  # BUG (gap probe): any client can read/modify/delete any payment by id
    return p if p is not None and p["_client"] == g.client else None


@app.get("/payments/<pid>")
def get_payment(pid):
    with _lock:
        p = _own(pid)
        if p is None:
            return problem(404, "Not Found", "No such payment.")
        return _json(200, _public(p))


@app.put("/payments/<pid>/note")
def put_note(pid):
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or "note" not in data or not (data["note"] is None or isinstance(data["note"], str)):
        return problem(400, "Bad Request", 'Body must be {"note": "..."}.')
    with _lock:
        p = _own(pid)
        if p is None:
            return problem(404, "Not Found", "No such payment.")
        p["note"] = data["note"]
        return _json(200, _public(p))


@app.delete("/payments/<pid>")
def delete_payment(pid):
    with _lock:
        if _own(pid) is None:
            return problem(404, "Not Found", "No such payment.")
        del _payments[pid]
    return Response(status=204)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=PORT, threaded=True)
