//! `graphql-endpoint`: a small book catalog over GraphQL (async-graphql), served as the GraphQL-over-HTTP draft
//! says: queries by POST (JSON) or GET, mutations by POST only, syntax and validation errors as 400 with an
//! `errors` list and no data, field errors as 200 next to the data, JSON bodies only.

use std::sync::{Arc, Mutex};

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType, Selection};
use async_graphql::{Context, EmptySubscription, ID, Object, Schema, SimpleObject, Variables};
use axum::Router;
use axum::extract::{Query as QueryString, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::{Config, Shared};

#[derive(SimpleObject, Clone)]
struct Book {
    id: ID,
    title: String,
    year: i32,
}

/// The books, seeded with three that the brief names.
struct Books {
    list: Mutex<Vec<Book>>,
    unknown_is_error: bool,
    year_unchecked: bool,
    year_checked_late: bool,
    not_stored: bool,
}

struct QueryRoot;

#[Object]
impl QueryRoot {
    /// The book with this id, or null.
    async fn book(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Book>> {
        let books = ctx.data_unchecked::<Arc<Books>>();
        let found = crate::lock(&books.list).iter().find(|b| b.id == id).cloned();
        if found.is_none() && books.unknown_is_error {
            return Err("book not found".into());
        }
        Ok(found)
    }

    /// Every book, or those with exactly this title.
    async fn books(&self, ctx: &Context<'_>, title: Option<String>) -> Vec<Book> {
        let books = ctx.data_unchecked::<Arc<Books>>();
        crate::lock(&books.list)
            .iter()
            .filter(|b| title.as_ref().is_none_or(|t| &b.title == t))
            .cloned()
            .collect()
    }
}

struct MutationRoot;

#[Object]
impl MutationRoot {
    /// Adds a book; `year` must be between 1450 and 2100.
    async fn add_book(&self, ctx: &Context<'_>, title: String, year: i32) -> Option<Book> {
        let books = ctx.data_unchecked::<Arc<Books>>();
        let mut list = crate::lock(&books.list);
        let book = Book {
            id: ID(format!("b{}", list.len() + 1)),
            title,
            year,
        };
        if books.year_checked_late {
            list.push(book.clone());
        }
        if !(1450..=2100).contains(&year) && !books.year_unchecked {
            // A field error next to `"addBook": null` (an `Err` here would null the whole mutation's data).
            let error = async_graphql::ServerError::new("year must be between 1450 and 2100", Some(ctx.item.pos));
            ctx.add_error(ctx.set_error_path(error));
            return None;
        }
        if !books.not_stored && !books.year_checked_late {
            list.push(book.clone());
        }
        Some(book)
    }
}

pub(crate) struct Library {
    schema: Schema<QueryRoot, MutationRoot, EmptySubscription>,
    books: Arc<Books>,
}

impl Library {
    pub(crate) fn new(config: &Config) -> Self {
        let seed = [("1", "Dune", 1965), ("2", "Neuromancer", 1984), ("3", "Kindred", 1979)];
        let books = Arc::new(Books {
            list: Mutex::new(
                seed.iter()
                    .map(|(id, title, year)| Book {
                        id: ID((*id).into()),
                        title: (*title).into(),
                        year: *year,
                    })
                    .collect(),
            ),
            unknown_is_error: config.has("gql-unknown-error"),
            year_unchecked: config.has("gql-year-unchecked"),
            year_checked_late: config.has("gql-year-checked-late"),
            not_stored: config.has("gql-add-not-stored"),
        });
        let schema = Schema::build(QueryRoot, MutationRoot, EmptySubscription)
            .data(Arc::clone(&books))
            .finish();
        Self { schema, books }
    }
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route("/graphql", get(over_get).post(over_post))
}

/// A GraphQL-over-HTTP request, from a JSON body or a query string.
struct GraphqlRequest {
    query: String,
    variables: Option<Value>,
    operation_name: Option<String>,
}

/// A JSON answer; the `gql-content-type-html` defect labels it text/html, as `res.send(string)` does in Express.
fn answer(app: &Shared, status: StatusCode, body: &Value) -> Response {
    let media = if app.config.has("gql-content-type-html") {
        "text/html; charset=utf-8"
    } else {
        "application/json"
    };
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(media))],
        body.to_string(),
    )
        .into_response()
}

fn request_error(app: &Shared, status: StatusCode, message: &str) -> Response {
    answer(app, status, &json!({ "errors": [{ "message": message }] }))
}

async fn over_post(State(app): State<Shared>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !json_body && !app.config.has("gql-any-content-type") {
        return request_error(
            &app,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be application/json",
        );
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return request_error(&app, StatusCode::BAD_REQUEST, "the body must be a JSON object");
    };
    let Some(query) = body.get("query").and_then(Value::as_str) else {
        if app.config.has("gql-missing-query-500") {
            return (StatusCode::INTERNAL_SERVER_ERROR, "KeyError: 'query'").into_response();
        }
        return request_error(&app, StatusCode::BAD_REQUEST, "the body has no \"query\" string");
    };
    let request = GraphqlRequest {
        query: query.to_string(),
        variables: body
            .get("variables")
            .filter(|v| !v.is_null() && !app.config.has("gql-variables-ignored"))
            .cloned(),
        operation_name: body.get("operationName").and_then(Value::as_str).map(str::to_string),
    };
    execute(&app, request, false).await
}

#[derive(serde::Deserialize)]
struct GetParams {
    query: Option<String>,
    variables: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
}

async fn over_get(State(app): State<Shared>, QueryString(params): QueryString<GetParams>) -> Response {
    if app.config.has("gql-get-405") {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "POST")]).into_response();
    }
    let Some(query) = params.query else {
        return request_error(&app, StatusCode::BAD_REQUEST, "the query string has no \"query\"");
    };
    let variables = match params.variables.as_deref().map(serde_json::from_str::<Value>) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => return request_error(&app, StatusCode::BAD_REQUEST, "\"variables\" is not JSON"),
    };
    let request = GraphqlRequest {
        query,
        variables,
        operation_name: params.operation_name,
    };
    execute(&app, request, true).await
}

/// The operation a request runs: the one named, or the only one.
fn operation_type(document: &ExecutableDocument, name: Option<&str>) -> Option<OperationType> {
    match (&document.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| op.node.ty),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// The name of the first operation written in a document (what a hand-written server that ignores
/// `operationName` runs).
fn first_operation_name(query: &str) -> Option<String> {
    let mut words = query.split(|c: char| !(c.is_alphanumeric() || c == '_'));
    words.find(|w| matches!(*w, "query" | "mutation"))?;
    words.find(|w| !w.is_empty()).map(str::to_string)
}

async fn execute(app: &Shared, mut request: GraphqlRequest, over_get: bool) -> Response {
    let config = &app.config;
    let document = match async_graphql::parser::parse_query(&request.query) {
        Ok(document) => document,
        Err(error) => {
            if config.has("gql-errors-object") {
                return answer(app, StatusCode::BAD_REQUEST, &json!({ "error": error.to_string() }));
            }
            let status = if config.has("gql-parse-200") {
                StatusCode::OK
            } else {
                StatusCode::BAD_REQUEST
            };
            return request_error(app, status, &error.to_string());
        }
    };
    if over_get
        && operation_type(&document, request.operation_name.as_deref()) == Some(OperationType::Mutation)
        && !config.has("gql-get-mutation")
    {
        if config.has("gql-get-mutation-405-late") {
            // The method is checked after the mutation ran.
            let _ = app.library.schema.execute(request.query.clone()).await;
        }
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, HeaderValue::from_static("POST"))],
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            json!({ "errors": [{ "message": "mutations are accepted over POST only" }] }).to_string(),
        )
            .into_response();
    }
    if config.has("gql-operation-first") && request.operation_name.is_some() {
        request.operation_name = first_operation_name(&request.query);
    }
    let mut graphql = async_graphql::Request::new(request.query);
    if let Some(variables) = request.variables {
        graphql = graphql.variables(Variables::from_json(variables));
    }
    if let Some(name) = request.operation_name {
        graphql = graphql.operation_name(name);
    }
    let response = app.library.schema.execute(graphql).await;
    let errors = serde_json::to_value(&response.errors).unwrap_or(Value::Null);
    if response.data == async_graphql::Value::Null && !response.errors.is_empty() {
        // A request error (validation, a missing variable, an unknown operation): nothing ran.
        if config.has("gql-validated-late") {
            store_anyway(app, &document);
        }
        let status = if config.has("gql-validation-200") {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        return answer(app, status, &json!({ "errors": errors }));
    }
    let mut data = serde_json::to_value(&response.data).unwrap_or(Value::Null);
    if config.has("gql-all-fields") {
        let books = crate::lock(&app.library.books.list).clone();
        whole_books(&mut data, &books);
    }
    let mut body = json!({ "data": data });
    let mut status = StatusCode::OK;
    if !response.errors.is_empty() {
        body["errors"] = errors;
        if config.has("gql-field-error-400") {
            status = StatusCode::BAD_REQUEST;
        }
    }
    answer(app, status, &body)
}

/// The `gql-validated-late` defect: the books of a mutation's `addBook` fields are stored although the document
/// does not validate (as when the mutation runs before the validator).
fn store_anyway(app: &Shared, document: &ExecutableDocument) {
    let mutations = document
        .operations
        .iter()
        .filter(|(_, op)| op.node.ty == OperationType::Mutation);
    for (_, operation) in mutations {
        for selection in &operation.node.selection_set.node.items {
            let Selection::Field(field) = &selection.node else {
                continue;
            };
            let argument = |name| field.node.get_argument(name).and_then(|v| v.node.clone().into_const());
            if let (Some(async_graphql::Value::String(title)), Some(async_graphql::Value::Number(year))) =
                (argument("title"), argument("year"))
            {
                let mut list = crate::lock(&app.library.books.list);
                let id = ID(format!("b{}", list.len() + 1));
                let year = year.as_i64().and_then(|y| i32::try_from(y).ok()).unwrap_or_default();
                list.push(Book { id, title, year });
            }
        }
    }
}

/// The `gql-all-fields` defect: every book in the answer is the whole book, whatever was selected.
fn whole_books(value: &mut Value, books: &[Book]) {
    match value {
        Value::Object(object) => {
            let title = object.get("title").and_then(Value::as_str).map(str::to_string);
            if let Some(book) = title.and_then(|t| books.iter().find(|b| b.title == t)) {
                *value = json!({ "id": book.id.to_string(), "title": book.title, "year": book.year });
                return;
            }
            object.values_mut().for_each(|v| whole_books(v, books));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| whole_books(v, books)),
        _ => {}
    }
}
