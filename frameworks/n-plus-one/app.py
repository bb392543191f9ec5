"""Orders API that embeds each order's customer, fetched in one batch per page.

Run: python app.py (reads PORT and CUSTOMERS_URL; CANDIDATE_BUG switches on a deliberate bug).
"""

import asyncio
import base64
import binascii
import os
import uuid
from http import HTTPStatus
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

CUSTOMERS_URL = os.environ.get("CUSTOMERS_URL", "http://127.0.0.1:8081").rstrip("/")
BUG = os.environ.get("CANDIDATE_BUG", "")

# shop id -> its orders, oldest first (append-only, so a position is a stable cursor).
ORDERS: dict[str, list[dict[str, str]]] = {}
ORDERS_LOCK = asyncio.Lock()


class UpstreamError(Exception):
    """The customers service failed (5xx, unexpected answer, or no answer)."""


class NewOrder(BaseModel):
    customer_id: str
    item: str


@asynccontextmanager
async def lifespan(app: FastAPI):
    async with httpx.AsyncClient(base_url=CUSTOMERS_URL) as client:
        app.state.customers = client
        yield


app = FastAPI(lifespan=lifespan)


def problem(status: int, title: str, detail: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


class ProblemError(Exception):
    def __init__(self, status: int, title: str, detail: str | None = None):
        self.status, self.title, self.detail = status, title, detail


@app.exception_handler(ProblemError)
async def problem_error_handler(request: Request, exc: ProblemError) -> JSONResponse:
    return problem(exc.status, exc.title, exc.detail)


@app.exception_handler(StarletteHTTPException)
async def http_exception_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    try:
        title = HTTPStatus(exc.status_code).phrase
    except ValueError:
        title = "Error"
    detail = exc.detail if exc.detail != title else None
    response = problem(exc.status_code, title, detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


@app.exception_handler(RequestValidationError)
async def validation_exception_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    body = {"type": "about:blank", "title": "Unprocessable Entity", "status": 422,
            "detail": "The request is invalid.", "errors": errors}
    return JSONResponse(body, status_code=422, media_type="application/problem+json")


@app.exception_handler(Exception)
async def unhandled_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    return problem(500, "Internal Server Error")


# --- cursors -----------------------------------------------------------------

def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"p:{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = raw.partition(":")
        if prefix != "p" or not number.isdigit():
            raise ValueError(raw)
        return int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ProblemError(400, "Bad Request", "The cursor is not valid.") from None


# --- customers service ---------------------------------------------------------

async def fetch_customers(client: httpx.AsyncClient, ids: list[str]) -> dict[str, dict]:
    """One batch call for the given customer ids; returns the customers found, by id."""
    if not ids:
        return {}
    try:
        response = await client.get("/customers", params={"ids": ",".join(ids)})
    except httpx.HTTPError as exc:
        raise UpstreamError(f"customers service unreachable: {exc!r}") from exc
    if response.status_code != 200:
        raise UpstreamError(f"customers service answered {response.status_code}")
    try:
        items = response.json()["items"]
        found = {c["id"]: c for c in items if isinstance(c, dict) and "id" in c}
    except (ValueError, KeyError, TypeError) as exc:
        raise UpstreamError("customers service answered an unexpected body") from exc
    return found


async def fetch_customer(client: httpx.AsyncClient, customer_id: str) -> dict | None:
    """One customer by id (used only by the CANDIDATE_BUG variants)."""
    try:
        response = await client.get(f"/customers/{customer_id}")
    except httpx.HTTPError as exc:
        raise UpstreamError(f"customers service unreachable: {exc!r}") from exc
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise UpstreamError(f"customers service answered {response.status_code}")
    try:
        return response.json()
    except ValueError as exc:
        raise UpstreamError("customers service answered an unexpected body") from exc


async def customers_for(client: httpx.AsyncClient, page: list[dict], shop_orders: list[dict]) -> dict[str, dict]:
    if BUG == "n-plus-one":
        # One call per order, the classic N+1 loop.
        found: dict[str, dict] = {}
        for order in page:
            customer = await fetch_customer(client, order["customer_id"])
            if customer is not None:
                found[order["customer_id"]] = customer
        return found
    if BUG == "batch-all-orders":
        # Batch built from the shop's whole order list rather than the page.
        ids = list(dict.fromkeys(o["customer_id"] for o in shop_orders))
        return await fetch_customers(client, ids)
    if BUG == "duplicate-ids":
        # One id per order, not per distinct customer.
        return await fetch_customers(client, [o["customer_id"] for o in page])

    ids = list(dict.fromkeys(o["customer_id"] for o in page))
    found = await fetch_customers(client, ids)
    if BUG == "fallback-fetch":
        # "Just in case the batch missed some", fetch the missing ones one by one.
        for customer_id in ids:
            if customer_id not in found:
                customer = await fetch_customer(client, customer_id)
                if customer is not None:
                    found[customer_id] = customer
    return found


# --- routes --------------------------------------------------------------------

@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@app.post("/shops/{shop}/orders", status_code=201)
async def create_order(shop: str, body: NewOrder) -> dict:
    order = {"id": uuid.uuid4().hex, "customer_id": body.customer_id, "item": body.item}
    async with ORDERS_LOCK:
        ORDERS.setdefault(shop, []).append(order)
    return dict(order)


@app.get("/shops/{shop}/orders")
async def list_orders(
    request: Request,
    shop: str,
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = None,
) -> JSONResponse:
    start = decode_cursor(cursor) if cursor is not None else 0
    shop_orders = list(ORDERS.get(shop, []))
    if start > len(shop_orders):
        raise ProblemError(400, "Bad Request", "The cursor is not valid.")
    page = shop_orders[start:start + limit]
    end = start + len(page)
    next_cursor = encode_cursor(end) if end < len(shop_orders) else None

    try:
        customers = await customers_for(request.app.state.customers, page, shop_orders)
    except UpstreamError as exc:
        return problem(502, "Bad Gateway", str(exc))

    items = [
        {
            "id": o["id"],
            "item": o["item"],
            "customer_id": o["customer_id"],
            "customer": customers.get(o["customer_id"]),
        }
        for o in page
    ]
    return JSONResponse({"items": items, "next_cursor": next_cursor})


if __name__ == "__main__":
    uvicorn.run(app, host="0.0.0.0", port=int(os.environ.get("PORT", "8000")))
