"""graphql-endpoint: a small book catalog behind one GraphQL endpoint.

Strawberry GraphQL (GraphQLRouter) on FastAPI, served by uvicorn.
Start: python app.py   (reads PORT, listens on 127.0.0.1)
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Optional

import strawberry
import uvicorn
from cross_web import HTTPException as GraphQLHTTPException
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from graphql import GraphQLError
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import InvalidOperationTypeError

BUG = os.environ.get("CANDIDATE_BUG", "")

YEAR_MIN, YEAR_MAX = 1450, 2100


# ---------------------------------------------------------------- storage


@dataclass
class BookRecord:
    id: str
    title: str
    year: int


class Catalog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._books: dict[str, BookRecord] = {}
        self._next_id = 1
        for title, year in (("Dune", 1965), ("Neuromancer", 1984), ("Kindred", 1979)):
            self.add(title, year)

    def add(self, title: str, year: int) -> BookRecord:
        with self._lock:
            record = BookRecord(id=str(self._next_id), title=title, year=year)
            self._next_id += 1
            self._books[record.id] = record
            return record

    def get(self, book_id: str) -> Optional[BookRecord]:
        with self._lock:
            return self._books.get(book_id)

    def all(self, title: Optional[str] = None) -> list[BookRecord]:
        with self._lock:
            books = list(self._books.values())
        if title is None:
            return books
        return [b for b in books if b.title == title]


catalog = Catalog()


# ---------------------------------------------------------------- schema


@strawberry.type
class Book:
    id: strawberry.ID
    title: str
    year: int

    @classmethod
    def from_record(cls, record: BookRecord) -> "Book":
        return cls(id=strawberry.ID(record.id), title=record.title, year=record.year)


@strawberry.type
class Query:
    @strawberry.field
    def book(self, id: strawberry.ID) -> Optional[Book]:
        record = catalog.get(str(id))
        if record is None:
            if BUG == "unknown-book-error":
                raise GraphQLError(f"Book {id} not found")
            return None
        return Book.from_record(record)

    @strawberry.field
    def books(self, title: Optional[str] = strawberry.UNSET) -> list[Book]:
        # UNSET rather than None keeps the SDL at `books(title: String)`, with no default value
        wanted = None if title is strawberry.UNSET else title
        return [Book.from_record(r) for r in catalog.all(wanted)]


@strawberry.type
class Mutation:
    @strawberry.mutation
    def add_book(self, title: str, year: int) -> Optional[Book]:
        if not YEAR_MIN <= year <= YEAR_MAX:
            raise GraphQLError(f"year must be between {YEAR_MIN} and {YEAR_MAX}, got {year}")
        return Book.from_record(catalog.add(title, year))


schema = strawberry.Schema(query=Query, mutation=Mutation)


# ---------------------------------------------------------------- HTTP layer


class HTTPError(Exception):
    """An HTTP-level failure, answered as {"errors": [{"message": ...}]}."""

    def __init__(self, status_code: int, message: str, headers: Optional[dict[str, str]] = None):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = headers or {}


def errors_response(status_code: int, message: str, headers: Optional[dict[str, str]] = None) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message}]}, status_code=status_code, headers=headers)


class CatalogGraphQLRouter(GraphQLRouter):
    # Strawberry answers its own HTTP-level errors (bad content type, missing
    # query, GET mutation, ...) as text/plain; the brief wants JSON everywhere.
    async def run(self, request, context=strawberry.UNSET, root_value=strawberry.UNSET):
        try:
            return await super().run(request, context=context, root_value=root_value)
        except HTTPError as e:
            return errors_response(e.status_code, e.message, e.headers)
        except GraphQLHTTPException as e:
            return errors_response(e.status_code, e.reason)

    # GraphiQL is disabled (graphql_ide=None); without this, a GET with no
    # query and a browser Accept header would answer a text/plain 404.
    def should_render_graphql_ide(self, request) -> bool:
        return False

    async def parse_http_body(self, request):
        if request.method == "POST":
            mime_type, _ = parse_content_type(request.content_type or "")
            if mime_type.lower() != "application/json":
                if BUG == "any-content-type":
                    # "be liberal in what you accept": read the body as JSON anyway
                    data = self.parse_json(await request.get_body())
                    return self._request_data(data)
                raise HTTPError(415, "Content-Type must be application/json")
            data = self.parse_json(await request.get_body())
            return self._request_data(data)
        return await super().parse_http_body(request)

    def _request_data(self, data: Any):
        if not isinstance(data, dict):
            raise HTTPError(400, "The request body must be a JSON object")
        query = data.get("query")
        if not isinstance(query, str) or not query:
            raise HTTPError(400, "The request body must hold a `query` string")
        variables = data.get("variables")
        if not isinstance(variables, (dict, type(None))):
            raise HTTPError(400, "`variables` must be an object or null")
        operation_name = data.get("operationName")
        if not isinstance(operation_name, (str, type(None))):
            raise HTTPError(400, "`operationName` must be a string or null")
        extensions = data.get("extensions")
        if not isinstance(extensions, (dict, type(None))):
            raise HTTPError(400, "`extensions` must be an object or null")
        return GraphQLRequestData(
            query=query,
            variables=variables,
            operation_name=operation_name,
            extensions=extensions,
        )

    async def execute_single(self, request, request_adapter, sub_response, context, root_value, request_data):
        try:
            return await super().execute_single(
                request=request,
                request_adapter=request_adapter,
                sub_response=sub_response,
                context=context,
                root_value=root_value,
                request_data=request_data,
            )
        except GraphQLHTTPException as e:
            # Strawberry refuses a mutation over GET with a 400; it is a
            # method problem, so answer 405 and say which method works.
            if isinstance(e.__cause__, InvalidOperationTypeError) and request_adapter.method == "GET":
                if BUG != "get-mutation-400":
                    raise HTTPError(405, e.reason, {"Allow": "POST"}) from e
            raise

    def create_response(self, response_data, sub_response):
        status_code = None
        if isinstance(response_data, dict) and response_data.get("errors"):
            # No data and no error tied to a field: the document did not parse,
            # did not validate, or its variables were wrong -- nothing ran.
            # That is a request error: 400, and no `data` entry at all.
            if response_data.get("data") is None and not any(
                isinstance(err, dict) and err.get("path") for err in response_data["errors"]
            ):
                response_data = {k: v for k, v in response_data.items() if k != "data"}
                status_code = 400
            elif BUG == "errors-mean-400":
                status_code = 400
        response = super().create_response(response_data, sub_response)
        if status_code is not None:
            response.status_code = status_code
        return response


graphql_app = CatalogGraphQLRouter(schema, graphql_ide=None)

app = FastAPI(title="graphql-endpoint")
app.include_router(graphql_app, prefix="/graphql")


@app.api_route("/graphql", methods=["PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"], include_in_schema=False)
async def graphql_other_methods(request: Request) -> JSONResponse:
    return errors_response(405, f"{request.method} is not supported; use GET or POST", {"Allow": "GET, POST"})


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
