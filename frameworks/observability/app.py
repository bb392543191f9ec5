"""observability: a widget API with health, Prometheus metrics, request ids and JSON logs (Flask)."""
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from functools import wraps

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import make_server

BUG = os.environ.get("CANDIDATE_BUG", "")

LOG_FORMAT = os.environ.get("LOG_FORMAT", "text").lower()
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
WIDGET_ID_RE = re.compile(r"0|[1-9][0-9]{0,3}")
MAX_WIDGET_ID = 1000
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED_ROUTE = "unmatched"  # no route matched (unknown URL): never the raw path

# Fields every access-log record carries; the JSON formatter always writes them
# (null on records that are not about a request), so every line has one shape.
REQUEST_FIELDS = ("request_id", "method", "route", "path", "status", "duration_ms")


# --------------------------------------------------------------------------- logging

class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for field in REQUEST_FIELDS:
            entry[field] = getattr(record, field, None)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        # json.dumps escapes newlines, so a traceback stays on one line.
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [f"{f}={getattr(record, f)}" for f in REQUEST_FIELDS if hasattr(record, f)]
        return line + (" " + " ".join(extras) if extras else "")


def configure_logging() -> None:
    # Twelve-factor: everything goes to stdout, one event per line.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if LOG_FORMAT == "json" else TextFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    if BUG != "werkzeug-access-log":
        # The service writes its own access log line (below); Werkzeug's
        # "127.0.0.1 - - [...] "GET / HTTP/1.1" 200 -" line would be a second,
        # unstructured one per request. Its warnings and errors still go through.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)


configure_logging()
access_log = logging.getLogger("access")

# --------------------------------------------------------------------------- metrics


class RequestCounter:
    """http_requests_total{method, route, status}, kept in memory."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict = {}

    def inc(self, method: str, route: str, status: int) -> None:
        key = (method, route, str(status))
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self._counts)


REQUESTS = RequestCounter()


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_metrics() -> str:
    lines = [
        "# HELP http_requests_total Total number of HTTP requests answered.",
        "# TYPE http_requests_total counter",
    ]
    for (method, route, status), count in sorted(REQUESTS.snapshot().items()):
        labels = f'method="{_escape_label(method)}",route="{_escape_label(route)}",status="{status}"'
        lines.append(f"http_requests_total{{{labels}}} {count}")
    return "\n".join(lines) + "\n"


def route_template() -> str:
    """The matched rule, in the {name} form: /widgets/<id> -> /widgets/{id}."""
    if BUG == "path-label":
        return request.path
    rule = request.url_rule
    if rule is None:
        return UNMATCHED_ROUTE
    return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)


# --------------------------------------------------------------------------- app

app = Flask(__name__)


def problem(status: int, title: str, detail: str = "", headers=None) -> Response:
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    resp = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def json_response(obj, status=200, mimetype="application/json") -> Response:
    return Response(json.dumps(obj), status=status, mimetype=mimetype)


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str = ""):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


@app.errorhandler(Problem)
def handle_problem(e: Problem):
    return problem(e.status, e.title, e.detail)


@app.errorhandler(HTTPException)
def handle_http_exception(e: HTTPException):
    # Unknown URL, wrong method...: a problem body instead of Werkzeug's HTML page.
    headers = {k: v for k, v in e.get_headers() if k.lower() != "content-type"}
    return problem(e.code or 500, e.name, "", headers)


@app.errorhandler(Exception)
def handle_unexpected(e: Exception):
    # Logged once, as part of the request's access log line (after_request).
    g.error = e
    return problem(500, "Internal Server Error")


@app.before_request
def start_request():
    g.start = time.perf_counter()
    incoming = request.headers.get("X-Request-Id", "")
    if BUG == "echo-any-request-id":
        g.request_id = incoming or uuid.uuid4().hex
    elif REQUEST_ID_RE.fullmatch(incoming):
        g.request_id = incoming
    else:
        g.request_id = uuid.uuid4().hex


@app.after_request
def finish_request(response: Response):
    # Runs for every response Flask builds: views, error handlers, routing 404/405, 500s.
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers["X-Request-Id"] = request_id
    route = route_template()
    if BUG != "errors-not-counted":
        REQUESTS.inc(request.method, route, response.status_code)
    duration_ms = round((time.perf_counter() - g.get("start", time.perf_counter())) * 1000, 3)
    error = g.get("error")
    access_log.log(
        logging.ERROR if response.status_code >= 500 else logging.INFO,
        "%s %s %s", request.method, request.path, response.status_code,
        exc_info=(type(error), error, error.__traceback__) if error else None,
        extra={
            "request_id": request_id,
            "method": request.method,
            "route": route,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": duration_ms,
        },
    )
    return response


def counted(view):
    """BUG errors-not-counted: the counter is bumped when a view returns normally."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        resp = app.make_response(view(*args, **kwargs))
        if BUG == "errors-not-counted":
            REQUESTS.inc(request.method, route_template(), resp.status_code)
        return resp
    return wrapper


@app.get("/health")
@counted
def health():
    return json_response({"status": "pass"}, mimetype="application/health+json")


@app.get("/metrics")
@counted
def metrics():
    return Response(render_metrics(), status=200, content_type=METRICS_CONTENT_TYPE)


@app.get("/widgets/<id>")
@counted
def get_widget(id):  # the parameter's name is the {id} of the route label
    if not WIDGET_ID_RE.fullmatch(id) or int(id) > MAX_WIDGET_ID:
        raise Problem(404, "Not Found", "no widget with this id")
    return json_response({"id": id})


def main():
    port = int(os.environ.get("PORT", "8080"))
    if BUG == "app-run-banner":
        # Flask prints " * Serving Flask app 'app'" / " * Debug mode: off" to stdout.
        app.run(host="127.0.0.1", port=port, threaded=True)
        return
    # make_server instead of app.run(): no start-up banner printed to stdout.
    server = make_server("127.0.0.1", port, app, threaded=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
