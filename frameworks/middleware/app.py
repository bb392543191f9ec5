"""Bookmarks API whose cross-cutting concerns live in an ASGI middleware chain.

Run: ``python app.py`` (reads PORT, API_KEY, ALLOWED_ORIGIN).

Chain, outermost first (Starlette runs its own ServerErrorMiddleware outside
everything and its ExceptionMiddleware inside everything):

    RequestIdMiddleware        every response gets X-Request-Id
    SecurityHeadersMiddleware  nosniff / no-store / DENY on every response
    ProblemCORSMiddleware      preflights answered here, before auth
    UnhandledErrorMiddleware   unexpected exceptions -> 500 problem details
    ApiKeyMiddleware           /api without the right X-Api-Key -> 401, no handler runs
    (FastAPI) ExceptionMiddleware -> router -> handlers

CANDIDATE_BUG=<name> switches on a deliberate defect (see README.md).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import sys
import uuid
from http import HTTPStatus
from typing import Any

import uvicorn
from fastapi import FastAPI, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("middleware")

BUG = os.environ.get("CANDIDATE_BUG", "")

API_KEY = os.environ.get("API_KEY", "")
ALLOWED_ORIGIN = os.environ.get("ALLOWED_ORIGIN", "").strip().rstrip("/")

API_PREFIX = "/api"
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def is_api_path(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


# --------------------------------------------------------------------------- #
# Problem details (RFC 9457)
# --------------------------------------------------------------------------- #


class ProblemResponse(Response):
    media_type = "application/problem+json"

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        headers: dict[str, str] | None = None,
        request_id: str | None = None,
        **extra: Any,
    ) -> None:
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Error"
        body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
        if detail:
            body["detail"] = detail
        if request_id:
            body["request_id"] = request_id
        body.update(extra)
        super().__init__(
            content=json.dumps(body).encode(), status_code=status, headers=headers
        )


def scope_request_id(scope: Scope) -> str | None:
    return scope.get("state", {}).get("request_id")


# --------------------------------------------------------------------------- #
# Middleware (pure ASGI)
# --------------------------------------------------------------------------- #


class RequestIdMiddleware:
    """Accept a well-formed incoming X-Request-Id, else mint one; echo it on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get("x-request-id")
        if incoming is not None and REQUEST_ID_RE.fullmatch(incoming):
            request_id = incoming
        else:
            request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-Id"] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)


class SecurityHeadersMiddleware:
    """Security headers on every response (successes and errors alike); no version banners."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                for banner in ("server", "x-powered-by"):
                    if banner in headers:
                        del headers[banner]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORSMiddleware, except that a refused preflight (its 400) is problem details."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-type", "content-length")
        }
        return ProblemResponse(
            response.status_code, detail=response.body.decode(), headers=headers
        )


class UnhandledErrorMiddleware:
    """Turn an unexpected exception into a 500 problem *inside* the chain, so the
    request id, security and CORS headers are still applied to it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error (request_id=%s)", scope_request_id(scope))
            if started:
                raise
            response = ProblemResponse(
                500, detail="Internal error.", request_id=scope_request_id(scope)
            )
            await response(scope, receive, send)


class ApiKeyMiddleware:
    """Every request under /api needs X-Api-Key == $API_KEY; refused before any handler runs."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.api_key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_api_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        supplied = Headers(scope=scope).getlist("x-api-key")
        if len(supplied) == 1 and hmac.compare_digest(
            supplied[0].encode("latin-1"), self.api_key
        ):
            await self.app(scope, receive, send)
            return
        detail = (
            "Missing X-Api-Key header." if not supplied else "Invalid X-Api-Key header."
        )
        response = ProblemResponse(401, detail=detail, request_id=scope_request_id(scope))
        await response(scope, receive, send)


# --------------------------------------------------------------------------- #
# Application
# --------------------------------------------------------------------------- #

app = FastAPI(
    title="bookmarks",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)

BOOKMARKS: dict[str, dict[str, str]] = {}


class BookmarkIn(BaseModel):
    url: str = Field(min_length=1, max_length=2048)


def handler_security_headers(response: Response) -> None:
    # Only used by CANDIDATE_BUG=headers-in-handlers.
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/api/bookmarks")
async def list_bookmarks(response: Response) -> dict[str, list[dict[str, str]]]:
    if BUG == "headers-in-handlers":
        handler_security_headers(response)
    return {"items": list(BOOKMARKS.values())}


@app.post("/api/bookmarks", status_code=201)
async def create_bookmark(payload: BookmarkIn, response: Response) -> dict[str, str]:
    if BUG == "headers-in-handlers":
        handler_security_headers(response)
    bookmark = {"id": uuid.uuid4().hex, "url": payload.url}
    BOOKMARKS[bookmark["id"]] = bookmark
    return bookmark


# --- one error format: the framework's own errors become problem details ---


async def http_problem_handler(request: Request, exc: StarletteHTTPException) -> Response:
    # Routing 404 / 405 (with its Allow header) and any HTTPException a handler raises.
    if exc.status_code < 200 or exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    detail = exc.detail if isinstance(exc.detail, str) else None
    return ProblemResponse(
        exc.status_code,
        detail=detail,
        headers=exc.headers,
        request_id=scope_request_id(request.scope),
    )


def body_not_json(exc: RequestValidationError) -> bool:
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            return True
        # Whole body missing, or left as raw bytes because it was not sent as JSON
        # (FastAPI only parses application/json and +json bodies).
        if loc == ("body",) and (
            err.get("type") == "missing" or isinstance(err.get("input"), (bytes, str))
        ):
            return True
    return False


async def validation_problem_handler(request: Request, exc: RequestValidationError) -> Response:
    rid = scope_request_id(request.scope)
    if body_not_json(exc):
        return ProblemResponse(
            400,
            detail="The request body must be a JSON object sent as application/json.",
            request_id=rid,
        )
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
        for e in exc.errors()
    ]
    return ProblemResponse(
        422, detail="The request body failed validation.", request_id=rid, errors=errors
    )


if BUG != "default-error-bodies":
    app.add_exception_handler(StarletteHTTPException, http_problem_handler)
    app.add_exception_handler(RequestValidationError, validation_problem_handler)


# --- the chain. add_middleware() wraps what is already there, so the LAST one
# --- added is the OUTERMOST. Order listed innermost first. ---

cors_options: dict[str, Any] = dict(
    allow_origins=[ALLOWED_ORIGIN] if ALLOWED_ORIGIN else [],
    allow_credentials=True,
    allow_methods=["GET", "POST"],
    allow_headers=["Content-Type", "X-Api-Key", "X-Request-Id"],
    expose_headers=["X-Request-Id"],
)
if BUG == "wildcard-origin":
    cors_options["allow_origins"] = ["*"]

if BUG == "auth-before-cors":
    # CORS added first, then auth: auth ends up outside CORS.
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(ProblemCORSMiddleware, **cors_options)
    app.add_middleware(ApiKeyMiddleware, api_key=API_KEY)
else:
    app.add_middleware(ApiKeyMiddleware, api_key=API_KEY)
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(ProblemCORSMiddleware, **cors_options)
if BUG != "headers-in-handlers":
    app.add_middleware(SecurityHeadersMiddleware)
app.add_middleware(RequestIdMiddleware)


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    if not API_KEY:
        sys.exit("API_KEY must be set")
    if not ALLOWED_ORIGIN:
        log.warning("ALLOWED_ORIGIN is not set: no browser origin is allowed")
    uvicorn.run(
        app,
        host="0.0.0.0",
        port=int(os.environ.get("PORT", "8000")),
        server_header=False,
        log_level="info",
    )


if __name__ == "__main__":
    main()
