"""status-codes: a notes API with precise status codes and RFC 9457 problem details (Flask)."""
import json
import os
import re
import threading

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

BUG = os.environ.get("CANDIDATE_BUG", "")

MAX_BODY = 64 * 1024
ID_RE = re.compile(r"[0-9]+")

app = Flask(__name__)
# Flask leaves MAX_CONTENT_LENGTH unset (no limit) by default. One byte more than
# the limit, so a chunked body (no Content-Length) that is cut off there is seen
# as too large below, while a body of exactly 64 KiB is still accepted.
app.config["MAX_CONTENT_LENGTH"] = MAX_BODY + 1

_lock = threading.Lock()
_notes: dict = {}
_next_id = 1


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str = ""):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


def problem(status: int, title: str, detail: str = "", headers=None) -> Response:
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    resp = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def json_response(obj, status=200, headers=None) -> Response:
    resp = Response(json.dumps(obj), status=status, mimetype="application/json")
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


@app.errorhandler(Problem)
def handle_problem(e: Problem):
    return problem(e.status, e.title, e.detail)


def handle_http_exception(e: HTTPException):
    # Keep the framework's headers (Allow on 405) but replace the HTML page.
    headers = {k: v for k, v in e.get_headers() if k.lower() != "content-type"}
    return problem(e.code or 500, e.name, "", headers)


if BUG != "default-error-pages":  # Werkzeug's own 404/405/413 pages are text/html
    app.register_error_handler(HTTPException, handle_http_exception)


@app.errorhandler(Exception)
def handle_unexpected(e: Exception):
    if isinstance(e, HTTPException):  # as in Flask's docs: pass HTTP errors through
        return e
    app.logger.exception("unhandled error")
    return problem(500, "Internal Server Error", "")


def _reject_nan(token):
    raise ValueError(f"invalid JSON constant {token}")


def read_note() -> dict:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise Problem(413, "Content Too Large", "the body is over 64 KiB")
    if request.mimetype != "application/json":
        raise Problem(415, "Unsupported Media Type", "the body must be application/json")
    raw = request.get_data(cache=True)
    if len(raw) > MAX_BODY:
        raise Problem(413, "Content Too Large", "the body is over 64 KiB")
    try:
        data = json.loads(raw, parse_constant=_reject_nan)
    except RecursionError:
        raise Problem(422, "Unprocessable Content", "the JSON is nested too deeply to be a note")
    except ValueError:
        raise Problem(400, "Bad Request", "the body is not valid JSON")
    if not isinstance(data, dict):
        raise Problem(422, "Unprocessable Content", "a note is a JSON object")
    extra = set(data) - {"text"}
    if extra and BUG != "extra-fields-allowed":
        raise Problem(422, "Unprocessable Content", "unknown fields: " + ", ".join(sorted(extra)))
    text = data.get("text")
    if not isinstance(text, str):
        raise Problem(422, "Unprocessable Content", "text must be a string")
    if not 1 <= len(text) <= 500 and BUG != "no-length-check":
        raise Problem(422, "Unprocessable Content", "text must be 1 to 500 characters")
    return {"text": text}


def find_note(note_id: str) -> dict:
    if not ID_RE.fullmatch(note_id):
        raise Problem(404, "Not Found", "no such note")
    with _lock:
        note = _notes.get(note_id)
    if note is None:
        raise Problem(404, "Not Found", "no such note")
    return note


# Flask answers OPTIONS on every route by default (200, Allow: ..., OPTIONS).
AUTO_OPTIONS = None if BUG == "automatic-options" else False  # None = the default


@app.get("/health")
def health():
    return json_response({"status": "ok"})


@app.route("/notes", methods=["POST"], provide_automatic_options=AUTO_OPTIONS)
def create_note():
    global _next_id
    note = read_note()
    with _lock:
        note_id = str(_next_id)
        _next_id += 1
        note = {"id": note_id, "text": note["text"]}
        _notes[note_id] = note
    return json_response(note, 201, {"Location": f"/notes/{note_id}"})


@app.route("/notes/<note_id>", methods=["GET", "HEAD"], provide_automatic_options=AUTO_OPTIONS)
def get_note(note_id):
    return json_response(find_note(note_id))


@app.route("/notes/<note_id>", methods=["DELETE"], provide_automatic_options=AUTO_OPTIONS)
def delete_note(note_id):
    if not ID_RE.fullmatch(note_id):
        raise Problem(404, "Not Found", "no such note")
    with _lock:
        if _notes.pop(note_id, None) is None:
            raise Problem(404, "Not Found", "no such note")
    resp = Response(status=204)
    del resp.headers["Content-Type"]
    return resp


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), threaded=True)
