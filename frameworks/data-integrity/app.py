"""data-integrity: a small library API (authors and books) over SQLite.

FastAPI + uvicorn, the standard library's sqlite3, one file.  The database
enforces the rules: UNIQUE on the case-folded email and on the ISBN, a foreign
key from books to authors with ON DELETE RESTRICT (foreign keys switched on per
connection), an index on books.author_id, and the author's name stored only in
the authors table.  Writes that span more than one statement run in one
BEGIN IMMEDIATE transaction.

CANDIDATE_BUG=<name> switches on one deliberate mistake (see README.md):
  app-unique-check, no-foreign-keys-pragma, no-author-index,
  denormalised-author-name
"""

import json
import os
import sqlite3
import tempfile
from typing import Annotated, Any, Optional

import uvicorn
from fastapi import Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, StrictInt, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

BUG = os.environ.get("CANDIDATE_BUG", "")
KNOWN_BUGS = {
    "",
    "app-unique-check",
    "no-foreign-keys-pragma",
    "no-author-index",
    "denormalised-author-name",
}
if BUG not in KNOWN_BUGS:
    raise SystemExit(f"unknown CANDIDATE_BUG {BUG!r}")

DB_PATH = os.path.join(tempfile.mkdtemp(prefix="data-integrity-"), "library.db")

# ---------------------------------------------------------------- database


def _schema() -> str:
    # Emails are compared by their case-folded form, stored in email_key.
    if BUG == "app-unique-check":
        # Bug: "we check for duplicates in the handler", so the column only
        # gets a plain index for the lookup, no UNIQUE constraint.
        email_key = "email_key TEXT NOT NULL"
        email_index = "CREATE INDEX IF NOT EXISTS authors_email_key ON authors(email_key);"
    else:
        email_key = "email_key TEXT NOT NULL UNIQUE"
        email_index = ""
    # Bug: a copy of the author's name on every book "to save a join".
    author_name = "author_name TEXT NOT NULL," if BUG == "denormalised-author-name" else ""
    author_index = (
        "" if BUG == "no-author-index"
        else "CREATE INDEX IF NOT EXISTS books_author_id ON books(author_id);"
    )
    return f"""
    CREATE TABLE IF NOT EXISTS authors (
        id        INTEGER PRIMARY KEY,
        name      TEXT NOT NULL,
        email     TEXT NOT NULL,
        {email_key}
    );
    {email_index}
    CREATE TABLE IF NOT EXISTS books (
        id        INTEGER PRIMARY KEY,
        title     TEXT NOT NULL,
        isbn      TEXT NOT NULL UNIQUE,
        {author_name}
        author_id INTEGER NOT NULL REFERENCES authors(id) ON DELETE RESTRICT
    );
    {author_index}
    """


def connect() -> sqlite3.Connection:
    # isolation_level=None: autocommit, transactions are opened explicitly with
    # BEGIN IMMEDIATE where a write spans several statements.
    # check_same_thread=False: FastAPI may run a sync dependency and the
    # endpoint in different worker threads; the connection is still used by
    # one request at a time.
    conn = sqlite3.connect(DB_PATH, timeout=30, isolation_level=None, check_same_thread=False)
    if BUG != "no-foreign-keys-pragma":
        # SQLite ignores REFERENCES clauses unless this is set on every connection.
        conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def init_db() -> None:
    conn = sqlite3.connect(DB_PATH, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(_schema())
    conn.close()


def get_db():
    conn = connect()
    try:
        yield conn
    finally:
        conn.close()


Db = Annotated[sqlite3.Connection, Depends(get_db)]

# ---------------------------------------------------------------- errors

PROBLEM = "application/problem+json"


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str = "", field: Optional[str] = None):
        self.status, self.title, self.detail, self.field = status, title, detail, field


def problem_response(status: int, title: str, detail: str = "", headers=None, **extra) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


app = FastAPI(title="data-integrity")


@app.exception_handler(Problem)
async def _problem(request: Request, exc: Problem):
    return problem_response(exc.status, exc.title, exc.detail, field=exc.field)


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
    errors = exc.errors()
    field = None
    if errors:
        loc = [p for p in errors[0].get("loc", ()) if p not in ("body", "path", "query")]
        if loc and isinstance(loc[-1], str):
            field = ".".join(str(p) for p in loc)
    detail = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in errors[:5]
    )
    return problem_response(422, "Invalid request", detail, field=field)


@app.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception):
    return problem_response(500, "Internal Server Error", "An unexpected error occurred.")


# ---------------------------------------------------------------- models

# SQLite integers are 64-bit; a larger id could not even be bound.
INT64 = {"ge": -(2**63), "le": 2**63 - 1}
# Ids in the JSON body must be JSON integers (pydantic's lax mode would take
# true as 1 and "5" as 5); ids in the path are text and converted as usual.
BodyId = Annotated[StrictInt, Field(**INT64)]
PathId = Annotated[int, Path(**INT64)]

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class AuthorIn(BaseModel):
    name: Text
    email: Text


class AuthorPatch(BaseModel):
    name: Text


class BookIn(BaseModel):
    title: Text
    isbn: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
    author_id: BodyId


class BatchIn(BaseModel):
    books: list[BookIn]


# ---------------------------------------------------------------- helpers


def email_key(email: str) -> str:
    return email.casefold()


def author_json(row) -> dict:
    return {"id": row[0], "name": row[1], "email": row[2]}


def book_json(row) -> dict:
    # row: book id, title, isbn, author id, author name
    return {"id": row[0], "title": row[1], "isbn": row[2], "author": {"id": row[3], "name": row[4]}}


if BUG == "denormalised-author-name":
    BOOK_SELECT = "SELECT b.id, b.title, b.isbn, b.author_id, b.author_name FROM books b"
else:
    BOOK_SELECT = (
        "SELECT b.id, b.title, b.isbn, a.id, a.name FROM books b JOIN authors a ON a.id = b.author_id"
    )


def rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def is_foreign_key_error(exc: sqlite3.IntegrityError) -> bool:
    # ON DELETE RESTRICT is reported as SQLITE_CONSTRAINT_TRIGGER, an insert
    # naming a missing parent as SQLITE_CONSTRAINT_FOREIGNKEY; the message is
    # the same for both.
    return "FOREIGN KEY constraint failed" in str(exc)


def constraint_problem(exc: sqlite3.IntegrityError) -> Problem:
    """Map a constraint the database refused onto the API's answer."""
    msg = str(exc)
    if is_foreign_key_error(exc):
        return Problem(422, "Unknown author", "author_id names no author.", "author_id")
    if "authors.email" in msg:
        return Problem(409, "Email in use", "An author with this email already exists.", "email")
    if "books.isbn" in msg:
        return Problem(409, "ISBN in use", "A book with this ISBN already exists.", "isbn")
    return Problem(409, "Conflict", "The change conflicts with stored data.")


def check_books(conn: sqlite3.Connection, books: list[BookIn]) -> None:
    """Find the first book the database would refuse, inside the caller's
    write transaction, so the answer names the book and the field.  The
    constraints remain the backstop."""
    author_ids = json.dumps(sorted({b.author_id for b in books}))
    existing_authors = {
        r[0]
        for r in conn.execute(
            "SELECT id FROM authors WHERE id IN (SELECT value FROM json_each(?))", (author_ids,)
        )
    }
    isbns = json.dumps([b.isbn for b in books])
    isbns_in_use = {
        r[0]
        for r in conn.execute(
            "SELECT isbn FROM books WHERE isbn IN (SELECT value FROM json_each(?))", (isbns,)
        )
    }
    seen: set[str] = set()
    many = len(books) > 1
    for i, b in enumerate(books):
        where = f"books[{i}]: " if many else ""
        if b.author_id not in existing_authors:
            raise Problem(422, "Unknown author", f"{where}no author has id {b.author_id}.", "author_id")
        if b.isbn in isbns_in_use or b.isbn in seen:
            raise Problem(409, "ISBN in use", f"{where}ISBN {b.isbn} is already in use.", "isbn")
        seen.add(b.isbn)


def insert_books(conn: sqlite3.Connection, books: list[BookIn]) -> Optional[int]:
    """Insert all books in one transaction, or none.  Returns the last row id."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        check_books(conn, books)
        if BUG == "denormalised-author-name":
            names = dict(
                conn.execute(
                    "SELECT id, name FROM authors WHERE id IN (SELECT value FROM json_each(?))",
                    (json.dumps(sorted({b.author_id for b in books})),),
                ).fetchall()
            )
            sql = "INSERT INTO books (title, isbn, author_id, author_name) VALUES (?, ?, ?, ?)"
            rows = [(b.title, b.isbn, b.author_id, names[b.author_id]) for b in books]
        else:
            sql = "INSERT INTO books (title, isbn, author_id) VALUES (?, ?, ?)"
            rows = [(b.title, b.isbn, b.author_id) for b in books]
        if len(rows) == 1:
            last = conn.execute(sql, rows[0]).lastrowid
        else:
            conn.executemany(sql, rows)
            last = None
        conn.execute("COMMIT")
        return last
    except sqlite3.IntegrityError as exc:
        rollback(conn)
        raise constraint_problem(exc) from exc
    except BaseException:
        rollback(conn)
        raise


def fetch_book(conn: sqlite3.Connection, book_id: int) -> dict:
    row = conn.execute(f"{BOOK_SELECT} WHERE b.id = ?", (book_id,)).fetchone()
    if row is None:
        raise Problem(404, "Not Found", f"No book has id {book_id}.")
    return book_json(row)


# ---------------------------------------------------------------- routes


@app.get("/health")
def health(conn: Db):
    conn.execute("SELECT 1").fetchone()
    return {"status": "ok"}


def email_not_taken(body: AuthorIn, conn: Db) -> None:
    """Bug (app-unique-check): a validation dependency that looks the email up
    before the endpoint inserts it; nothing in the database backs it up."""
    taken = conn.execute(
        "SELECT 1 FROM authors WHERE email_key = ?", (email_key(body.email),)
    ).fetchone()
    if taken:
        raise Problem(409, "Email in use", "An author with this email already exists.", "email")


@app.post(
    "/authors",
    status_code=201,
    dependencies=[Depends(email_not_taken)] if BUG == "app-unique-check" else [],
)
def create_author(body: AuthorIn, conn: Db):
    # The UNIQUE constraint on email_key decides; two concurrent requests
    # cannot both insert the same email.
    try:
        row = conn.execute(
            "INSERT INTO authors (name, email, email_key) VALUES (?, ?, ?) RETURNING id, name, email",
            (body.name, body.email, email_key(body.email)),
        ).fetchone()
    except sqlite3.IntegrityError as exc:
        raise constraint_problem(exc) from exc
    return author_json(row)


@app.patch("/authors/{author_id}")
def rename_author(author_id: PathId, body: AuthorPatch, conn: Db):
    # The name lives only in authors, so one UPDATE renames it everywhere.
    row = conn.execute(
        "UPDATE authors SET name = ? WHERE id = ? RETURNING id, name, email", (body.name, author_id)
    ).fetchone()
    if row is None:
        raise Problem(404, "Not Found", f"No author has id {author_id}.")
    return author_json(row)


@app.delete("/authors/{author_id}", status_code=204)
def delete_author(author_id: PathId, conn: Db):
    try:
        cur = conn.execute("DELETE FROM authors WHERE id = ?", (author_id,))
    except sqlite3.IntegrityError as exc:
        if is_foreign_key_error(exc):
            raise Problem(409, "Author has books", "Delete or reassign the author's books first.") from exc
        raise
    if cur.rowcount == 0:
        raise Problem(404, "Not Found", f"No author has id {author_id}.")
    return Response(status_code=204)


@app.get("/authors/{author_id}/books")
def author_books(author_id: PathId, conn: Db):
    if conn.execute("SELECT 1 FROM authors WHERE id = ?", (author_id,)).fetchone() is None:
        raise Problem(404, "Not Found", f"No author has id {author_id}.")
    rows = conn.execute(f"{BOOK_SELECT} WHERE b.author_id = ? ORDER BY b.id", (author_id,)).fetchall()
    return {"items": [book_json(r) for r in rows]}


@app.post("/books", status_code=201)
def create_book(body: BookIn, conn: Db):
    book_id = insert_books(conn, [body])
    return fetch_book(conn, book_id)


@app.get("/books/{book_id}")
def get_book(book_id: PathId, conn: Db):
    return fetch_book(conn, book_id)


@app.post("/books/batch", status_code=201)
def create_books(body: BatchIn, conn: Db):
    if body.books:
        insert_books(conn, body.books)
    return {"count": len(body.books)}


init_db()

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
