"""persistence-and-migration: a memo service kept in SQLite, with a one-time, all-or-nothing
schema migration (`split-text`) when version 2 starts (Flask)."""
import json
import logging
import os
import re
import signal
import sqlite3
import sys
from contextlib import contextmanager
from datetime import datetime, timezone

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

BUG = os.environ.get("CANDIDATE_BUG", "")

APP_VERSION = os.environ.get("APP_VERSION", "").strip() or "1"
DATA_DIR = os.environ.get("DATA_DIR", "./data")
DB_PATH = os.path.join(DATA_DIR, "memos.db")
MIGRATION_ID = "split-text"
ID_RE = re.compile(r"[0-9]+")
# A line break is CRLF, LF or a lone CR; the title ends at the first one.
LINE_BREAK_RE = re.compile(r"\r\n|\n|\r")

log = logging.getLogger("memos")


class MigrationError(Exception):
    pass


# --- database -------------------------------------------------------------------------------

def connect() -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions from the sqlite3 module; every
    # write below opens its own transaction explicitly (BEGIN IMMEDIATE ... COMMIT).
    conn = sqlite3.connect(DB_PATH, timeout=10, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection):
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def memo_columns(conn: sqlite3.Connection) -> set:
    return {row["name"] for row in conn.execute("PRAGMA table_info(memos)")}


def applied_migrations(conn: sqlite3.Connection) -> list:
    rows = conn.execute("SELECT id, applied_at FROM schema_migrations ORDER BY applied_at, id")
    return [{"id": r["id"], "applied_at": r["applied_at"]} for r in rows]


def init_schema(conn: sqlite3.Connection) -> None:
    """The version-1 schema, created on first start."""
    with transaction(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS memos ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " text TEXT NOT NULL)"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " id TEXT PRIMARY KEY,"
            " applied_at TEXT NOT NULL)"
        )


def split_text(text: str):
    m = LINE_BREAK_RE.search(text)
    if m is None:
        return text, ""
    if BUG == "body-keeps-newline":  # slices from the start of the break, not its end
        return text[: m.start()], text[m.start():]
    return text[: m.start()], text[m.end():]


def migration_fail_after():
    raw = os.environ.get("MIGRATION_FAIL_AFTER", "").strip()
    if raw == "":
        return None
    n = int(raw)
    if n < 0:
        raise ValueError("MIGRATION_FAIL_AFTER must be >= 0")
    return n


def migrate_split_text(conn: sqlite3.Connection) -> None:
    """Version 1 -> 2: `text` becomes `title` (up to the first line break) and `body` (the rest).

    The whole migration (schema change, every memo, and its record in schema_migrations) is one
    SQLite transaction: it is either applied completely or not at all.
    """
    fail_after = migration_fail_after()

    def steps():
        conn.execute("ALTER TABLE memos ADD COLUMN body TEXT NOT NULL DEFAULT ''")
        rows = conn.execute("SELECT id, text FROM memos ORDER BY id").fetchall()
        converted = 0
        for row in rows:
            if fail_after is not None and converted >= fail_after:
                raise MigrationError(f"MIGRATION_FAIL_AFTER={fail_after}: failing after {converted} memos")
            title, body = split_text(row["text"])
            conn.execute("UPDATE memos SET text = ?, body = ? WHERE id = ?", (title, body, row["id"]))
            converted += 1
        if fail_after is not None:  # fewer memos than N: the fault still fires, after all of them
            raise MigrationError(f"MIGRATION_FAIL_AFTER={fail_after}: failing after {converted} memos")
        conn.execute("ALTER TABLE memos RENAME COLUMN text TO title")
        conn.execute(
            "INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)", (MIGRATION_ID, now())
        )
        log.info("migration %s applied to %d memos", MIGRATION_ID, converted)

    def run():
        # Checked inside the transaction (BEGIN IMMEDIATE takes the write lock), so two
        # instances starting at once cannot both apply it.
        if any(m["id"] == MIGRATION_ID for m in applied_migrations(conn)):
            if BUG == "applied-at-refreshed":  # "recording it again is harmless": it is not
                conn.execute(
                    "INSERT OR REPLACE INTO schema_migrations (id, applied_at) VALUES (?, ?)",
                    (MIGRATION_ID, now()),
                )
            return
        steps()

    if BUG == "commit-per-memo":  # no transaction: every statement commits on its own
        run()
    else:
        with transaction(conn):
            run()


def prepare_database() -> None:
    os.makedirs(DATA_DIR, exist_ok=True)
    conn = connect()
    try:
        init_schema(conn)
        migrated = any(m["id"] == MIGRATION_ID for m in applied_migrations(conn))
        if APP_VERSION == "2":
            migrate_split_text(conn)
        elif APP_VERSION == "1":
            if migrated or "title" in memo_columns(conn):
                raise MigrationError(
                    "the database is in the version-2 shape; version 1 cannot serve it"
                )
        else:
            raise MigrationError(f"unknown APP_VERSION {APP_VERSION!r} (expected 1 or 2)")
    finally:
        conn.close()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


# --- HTTP -----------------------------------------------------------------------------------

app = Flask(__name__)


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str = ""):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


def json_response(obj, status=200, headers=None) -> Response:
    resp = Response(json.dumps(obj), status=status, mimetype="application/json")
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def problem(status: int, title: str, detail: str = "", headers=None) -> Response:
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    resp = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


@app.errorhandler(Problem)
def handle_problem(e: Problem):
    return problem(e.status, e.title, e.detail)


@app.errorhandler(HTTPException)
def handle_http_exception(e: HTTPException):
    headers = {k: v for k, v in e.get_headers() if k.lower() != "content-type"}
    return problem(e.code or 500, e.name, "", headers)


@app.errorhandler(Exception)
def handle_unexpected(e: Exception):
    if isinstance(e, HTTPException):
        return e
    app.logger.exception("unhandled error")
    return problem(500, "Internal Server Error", "")


def db() -> sqlite3.Connection:
    if "db" not in g:
        g.db = connect()
    return g.db


@app.teardown_appcontext
def close_db(exc):
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()  # anything left uncommitted is rolled back here


def read_json_object() -> dict:
    if not request.is_json:
        raise Problem(415, "Unsupported Media Type", "the body must be application/json")
    try:
        data = json.loads(request.get_data(cache=True))
    except (ValueError, RecursionError):
        raise Problem(400, "Bad Request", "the body is not valid JSON")
    if not isinstance(data, dict):
        raise Problem(422, "Unprocessable Content", "a memo is a JSON object")
    return data


def read_memo_input() -> dict:
    data = read_json_object()
    if APP_VERSION == "1":
        extra = set(data) - {"text"}
        text = data.get("text")
        if extra:
            raise Problem(422, "Unprocessable Content", "unknown fields: " + ", ".join(sorted(extra)))
        if not isinstance(text, str) or text == "":
            raise Problem(422, "Unprocessable Content", "text must be a non-empty string")
        return {"text": text}
    extra = set(data) - {"title", "body"}
    if extra:
        raise Problem(422, "Unprocessable Content", "unknown fields: " + ", ".join(sorted(extra)))
    title, body = data.get("title"), data.get("body")
    if not isinstance(title, str) or not isinstance(body, str):
        raise Problem(422, "Unprocessable Content", "title and body must be strings")
    return {"title": title, "body": body}


FIELDS = ("text",) if APP_VERSION == "1" else ("title", "body")


def to_json(row) -> dict:
    out = {"id": str(row["id"])}
    for f in FIELDS:
        out[f] = row[f]
    return out


def parse_id(memo_id: str) -> int:
    if not ID_RE.fullmatch(memo_id):
        raise Problem(404, "Not Found", "no such memo")
    return int(memo_id)


def load_memo(conn, memo_id: int):
    row = conn.execute(
        f"SELECT id, {', '.join(FIELDS)} FROM memos WHERE id = ?", (memo_id,)
    ).fetchone()
    if row is None:
        raise Problem(404, "Not Found", "no such memo")
    return row


@app.get("/health")
def health():
    return json_response({"status": "ok", "version": int(APP_VERSION)})


@app.get("/migrations")
def list_migrations():
    return json_response({"applied": applied_migrations(db())})


@app.get("/memos")
def list_memos():
    rows = db().execute(f"SELECT id, {', '.join(FIELDS)} FROM memos ORDER BY id").fetchall()
    return json_response({"items": [to_json(r) for r in rows]})


@app.post("/memos")
def create_memo():
    memo = read_memo_input()
    conn = db()
    with transaction(conn):
        cur = conn.execute(
            f"INSERT INTO memos ({', '.join(FIELDS)}) VALUES ({', '.join('?' for _ in FIELDS)})",
            tuple(memo[f] for f in FIELDS),
        )
        memo_id = str(cur.lastrowid)
    return json_response({"id": memo_id, **memo}, 201, {"Location": f"/memos/{memo_id}"})


@app.get("/memos/<memo_id>")
def get_memo(memo_id):
    return json_response(to_json(load_memo(db(), parse_id(memo_id))))


@app.put("/memos/<memo_id>")
def replace_memo(memo_id):
    mid = parse_id(memo_id)
    memo = read_memo_input()
    conn = db()
    conn.execute("BEGIN IMMEDIATE")
    try:
        load_memo(conn, mid)
        conn.execute(
            f"UPDATE memos SET {', '.join(f + ' = ?' for f in FIELDS)} WHERE id = ?",
            (*(memo[f] for f in FIELDS), mid),
        )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if BUG != "put-not-committed":  # without COMMIT, closing the connection rolls it back
        conn.execute("COMMIT")
    return json_response({"id": str(mid), **memo})


# --- start and stop -------------------------------------------------------------------------

def on_sigterm(signum, frame):
    # SystemExit unwinds serve_forever(), which closes the listening socket.
    sys.exit(0)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        prepare_database()
    except (MigrationError, sqlite3.Error, ValueError) as e:
        log.error("cannot start: %s", e)
        if BUG == "exit-zero-on-failure":  # logs the error, then returns as if all went well
            return 0
        return 1
    signal.signal(signal.SIGTERM, on_sigterm)
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), threaded=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
