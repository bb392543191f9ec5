//! `data-integrity`: authors and books in SQLite, with the database keeping the data right: unique emails (case
//! folded) and ISBNs, a foreign key that refuses missing authors and the deletion of authors with books, one stored
//! copy of each author's name, all-or-nothing batches, and an index on the foreign key.

use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use rusqlite::{Connection, ErrorCode, OptionalExtension};
use serde_json::{Value, json};

use crate::{Config, Shared, json_response, problem, problem_with};

/// The authors and books, in an in-memory SQLite database.
pub(crate) struct Database(Mutex<Connection>);

impl Database {
    pub(crate) fn new(config: &Config) -> Self {
        let connection = Connection::open_in_memory().expect("SQLite opens an in-memory database");
        let email = if config.has("email-case-sensitive") {
            "email TEXT NOT NULL UNIQUE"
        } else if config.has("email-check-then-insert") {
            "email TEXT NOT NULL"
        } else {
            "email TEXT NOT NULL UNIQUE COLLATE NOCASE"
        };
        let on_delete = if config.has("delete-cascades") {
            "CASCADE"
        } else {
            "RESTRICT"
        };
        let author_name = if config.has("name-copied") {
            ", author_name TEXT"
        } else {
            ""
        };
        let index = if config.has("author-books-unindexed") {
            ""
        } else {
            "CREATE INDEX books_by_author ON books (author_id);"
        };
        connection
            .execute_batch(&format!(
                "PRAGMA foreign_keys = ON;
                 CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL, {email});
                 CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT NOT NULL, isbn TEXT NOT NULL UNIQUE,
                     author_id INTEGER NOT NULL REFERENCES authors (id) ON DELETE {on_delete}{author_name});
                 {index}"
            ))
            .expect("the tables are created");
        Self(Mutex::new(connection))
    }
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/authors", post(create_author))
        .route("/authors/{id}", patch(rename_author).delete(delete_author))
        .route("/authors/{id}/books", get(author_books))
        .route("/books", post(create_book))
        .route("/books/{id}", get(get_book))
        .route(
            "/books/batch",
            post(create_batch).layer(DefaultBodyLimit::max(64 * 1024 * 1024)),
        )
}

/// A problem details answer naming the field at fault.
fn field_problem(status: StatusCode, field: &str, detail: &str, app: &Shared) -> Response {
    if app.config.has("conflict-no-field") {
        return problem(status, detail);
    }
    problem_with(status, detail, &[("field", field)])
}

/// What a write that the database refused means for the client: a duplicate (409, naming the field) or a missing
/// author (422).
fn refused(app: &Shared, error: &rusqlite::Error) -> Response {
    let message = error.to_string();
    let code = error.sqlite_error_code();
    if app.config.has("conflict-500") && code == Some(ErrorCode::ConstraintViolation) && message.contains("UNIQUE") {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("sqlite3.IntegrityError: {message}"),
        )
            .into_response();
    }
    if message.contains("UNIQUE constraint failed: authors.email") {
        // The `email-field-constraint` defect names the field after the database's constraint.
        let field = if app.config.has("email-field-constraint") {
            "authors.email"
        } else {
            "email"
        };
        field_problem(StatusCode::CONFLICT, field, "an author with this email exists", app)
    } else if message.contains("UNIQUE constraint failed: books.isbn") {
        field_problem(StatusCode::CONFLICT, "isbn", "a book with this ISBN exists", app)
    } else if message.contains("FOREIGN KEY constraint failed") {
        if app.config.has("missing-author-500") {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("sqlite3.IntegrityError: {message}"),
            )
                .into_response();
        }
        field_problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "author_id",
            "there is no author with this id",
            app,
        )
    } else {
        problem(StatusCode::INTERNAL_SERVER_ERROR, "the library could not store this")
    }
}

fn object(body: &[u8]) -> Option<serde_json::Map<String, Value>> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

async fn create_author(State(app): State<Shared>, body: axum::body::Bytes) -> Response {
    let fields = object(&body);
    let text = |name: &str| {
        fields
            .as_ref()?
            .get(name)?
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (Some(name), Some(email)) = (text("name"), text("email")) else {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "an author has a name and an email");
    };
    if app.config.has("email-check-then-insert") {
        // Uniqueness checked by the application, with a gap before the insert (a query, an await).
        let taken = crate::lock(&app.integrity.0)
            .query_row("SELECT 1 FROM authors WHERE lower(email) = lower(?1)", [&email], |_| {
                Ok(())
            })
            .optional()
            .unwrap_or_default()
            .is_some();
        if taken {
            return field_problem(StatusCode::CONFLICT, "email", "an author with this email exists", &app);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connection = crate::lock(&app.integrity.0);
    match connection.execute("INSERT INTO authors (name, email) VALUES (?1, ?2)", (&name, &email)) {
        Ok(_) => {
            let id = connection.last_insert_rowid();
            json_response(
                StatusCode::CREATED,
                &json!({ "id": id, "name": name, "email": email }),
                false,
            )
        }
        Err(e) => refused(&app, &e),
    }
}

async fn rename_author(State(app): State<Shared>, Path(id): Path<i64>, body: axum::body::Bytes) -> Response {
    let Some(name) = object(&body).and_then(|f| f.get("name")?.as_str().filter(|s| !s.is_empty()).map(str::to_string))
    else {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "a rename has a name");
    };
    let connection = crate::lock(&app.integrity.0);
    let author = connection
        .query_row("UPDATE authors SET name = ?1 WHERE id = ?2 RETURNING id, name, email", (&name, id), |row| {
            Ok(json!({ "id": row.get::<_, i64>(0)?, "name": row.get::<_, String>(1)?, "email": row.get::<_, String>(2)? }))
        })
        .optional();
    match author {
        Ok(Some(author)) => json_response(StatusCode::OK, &author, false),
        Ok(None) => problem(StatusCode::NOT_FOUND, "no author with this id"),
        Err(e) => refused(&app, &e),
    }
}

async fn delete_author(State(app): State<Shared>, Path(id): Path<i64>) -> Response {
    let connection = crate::lock(&app.integrity.0);
    match connection.execute("DELETE FROM authors WHERE id = ?1", [id]) {
        Ok(0) => problem(StatusCode::NOT_FOUND, "no author with this id"),
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) if e.to_string().contains("FOREIGN KEY constraint failed") => {
            problem(StatusCode::CONFLICT, "the author still has books; delete them first")
        }
        Err(e) => refused(&app, &e),
    }
}

/// The columns of a book as answered: its author's name read from the authors table (or from the copy the
/// `name-copied` defect keeps).
fn book_select(app: &Shared) -> &'static str {
    if app.config.has("name-copied") {
        "SELECT b.id, b.title, b.isbn, b.author_id, b.author_name FROM books b"
    } else {
        "SELECT b.id, b.title, b.isbn, b.author_id, a.name FROM books b JOIN authors a ON a.id = b.author_id"
    }
}

fn book(row: &rusqlite::Row<'_>) -> rusqlite::Result<Value> {
    Ok(json!({
        "id": row.get::<_, i64>(0)?,
        "title": row.get::<_, String>(1)?,
        "isbn": row.get::<_, String>(2)?,
        "author": { "id": row.get::<_, i64>(3)?, "name": row.get::<_, Option<String>>(4)? },
    }))
}

/// A book as the client sent it: title, ISBN, author id.
fn book_fields(value: &Value) -> Option<(String, String, i64)> {
    let text = |name: &str| value.get(name)?.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    Some((text("title")?, text("isbn")?, value.get("author_id")?.as_i64()?))
}

fn insert_book(
    app: &Shared,
    connection: &Connection,
    (title, isbn, author_id): &(String, String, i64),
) -> rusqlite::Result<i64> {
    if app.config.has("name-copied") {
        let name: Option<String> = connection
            .query_row("SELECT name FROM authors WHERE id = ?1", [author_id], |r| r.get(0))
            .optional()?;
        connection.execute(
            "INSERT INTO books (title, isbn, author_id, author_name) VALUES (?1, ?2, ?3, ?4)",
            (title, isbn, author_id, name),
        )?;
    } else {
        connection.execute(
            "INSERT INTO books (title, isbn, author_id) VALUES (?1, ?2, ?3)",
            (title, isbn, author_id),
        )?;
    }
    Ok(connection.last_insert_rowid())
}

async fn create_book(State(app): State<Shared>, body: axum::body::Bytes) -> Response {
    let Some(fields) = serde_json::from_slice::<Value>(&body)
        .ok()
        .as_ref()
        .and_then(book_fields)
    else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a book has a title, an isbn and an author_id",
        );
    };
    let connection = crate::lock(&app.integrity.0);
    if app.config.has("orphan-kept") {
        // The author is checked after an insert made without the foreign key: the orphan stays.
        let _ = connection.execute_batch("PRAGMA foreign_keys = OFF");
        let inserted = insert_book(&app, &connection, &fields);
        let _ = connection.execute_batch("PRAGMA foreign_keys = ON");
        let known = connection
            .query_row("SELECT 1 FROM authors WHERE id = ?1", [fields.2], |_| Ok(()))
            .optional();
        if matches!(known, Ok(None)) {
            return field_problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "author_id",
                "there is no author with this id",
                &app,
            );
        }
        let answered =
            inserted.and_then(|id| connection.query_row(&format!("{} WHERE b.id = ?1", book_select(&app)), [id], book));
        return match answered {
            Ok(book) => json_response(StatusCode::CREATED, &book, false),
            Err(e) => refused(&app, &e),
        };
    }
    let inserted = insert_book(&app, &connection, &fields)
        .and_then(|id| connection.query_row(&format!("{} WHERE b.id = ?1", book_select(&app)), [id], book));
    match inserted {
        Ok(book) => json_response(StatusCode::CREATED, &book, false),
        Err(e)
            if app.config.has("isbn-conflict-422")
                && e.to_string().contains("UNIQUE constraint failed: books.isbn") =>
        {
            field_problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "isbn",
                "a book with this ISBN exists",
                &app,
            )
        }
        Err(e)
            if app.config.has("book-integrity-409")
                && e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) =>
        {
            // One catch-all for IntegrityError in this handler.
            let field = if e.to_string().contains("FOREIGN KEY") {
                "author_id"
            } else {
                "isbn"
            };
            field_problem(StatusCode::CONFLICT, field, "the book conflicts with the data", &app)
        }
        Err(e) => refused(&app, &e),
    }
}

async fn get_book(State(app): State<Shared>, Path(id): Path<i64>) -> Response {
    let connection = crate::lock(&app.integrity.0);
    match connection
        .query_row(&format!("{} WHERE b.id = ?1", book_select(&app)), [id], book)
        .optional()
    {
        Ok(Some(book)) => json_response(StatusCode::OK, &book, false),
        Ok(None) => problem(StatusCode::NOT_FOUND, "no book with this id"),
        Err(e) => refused(&app, &e),
    }
}

async fn author_books(State(app): State<Shared>, Path(id): Path<i64>) -> Response {
    let connection = crate::lock(&app.integrity.0);
    let exists = connection
        .query_row("SELECT 1 FROM authors WHERE id = ?1", [id], |_| Ok(()))
        .optional();
    if matches!(exists, Ok(None)) {
        return problem(StatusCode::NOT_FOUND, "no author with this id");
    }
    let books = connection
        .prepare_cached(&format!("{} WHERE b.author_id = ?1 ORDER BY b.id", book_select(&app)))
        .and_then(|mut statement| {
            statement
                .query_map([id], book)?
                .collect::<rusqlite::Result<Vec<Value>>>()
        });
    match books {
        Ok(items) => json_response(StatusCode::OK, &json!({ "items": items }), false),
        Err(e) => refused(&app, &e),
    }
}

async fn create_batch(State(app): State<Shared>, body: axum::body::Bytes) -> Response {
    // Typed, not a JSON value tree: a batch of 200,000 books stays a few tens of MiB.
    #[derive(serde::Deserialize)]
    struct Batch {
        books: Vec<BookIn>,
    }
    #[derive(serde::Deserialize)]
    struct BookIn {
        title: String,
        isbn: String,
        author_id: i64,
    }
    let books = serde_json::from_slice::<Batch>(&body).ok().and_then(|batch| {
        let valid = batch.books.iter().all(|b| !b.title.is_empty() && !b.isbn.is_empty());
        valid.then(|| {
            batch
                .books
                .into_iter()
                .map(|b| (b.title, b.isbn, b.author_id))
                .collect::<Vec<_>>()
        })
    });
    let Some(books) = books else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a batch is {\"books\": [...]}, each with a title, an isbn and an author_id",
        );
    };
    let mut connection = crate::lock(&app.integrity.0);
    if app.config.has("batch-not-atomic") {
        // Row by row in autocommit mode: the rows before the first failure stay.
        for fields in &books {
            if let Err(e) = insert_book(&app, &connection, fields) {
                return refused(&app, &e);
            }
        }
        return json_response(StatusCode::CREATED, &json!({ "count": books.len() }), false);
    }
    if app.config.has("batch-or-ignore") {
        // Duplicates skipped silently (INSERT OR IGNORE): a foreign-key failure still rolls the batch back.
        let stored = connection.transaction().and_then(|transaction| {
            for (title, isbn, author_id) in &books {
                transaction.execute(
                    "INSERT OR IGNORE INTO books (title, isbn, author_id) VALUES (?1, ?2, ?3)",
                    (title, isbn, author_id),
                )?;
            }
            transaction.commit()
        });
        return match stored {
            Ok(()) => json_response(StatusCode::CREATED, &json!({ "count": books.len() }), false),
            Err(e) => refused(&app, &e),
        };
    }
    let stored = connection.transaction().and_then(|transaction| {
        let stored = if app.config.has("batch-last-dropped") {
            &books[..books.len().saturating_sub(1)]
        } else {
            &books[..]
        };
        for fields in stored {
            insert_book(&app, &transaction, fields)?;
        }
        transaction.commit()
    });
    match stored {
        Ok(()) => json_response(StatusCode::CREATED, &json!({ "count": books.len() }), false),
        Err(e) => refused(&app, &e),
    }
}
