"""rest-resource: a JSON API for a collection of items (FastAPI + uvicorn)."""
import os
import threading
from typing import Annotated, List, Union

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictFloat, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

BUG = os.environ.get("CANDIDATE_BUG", "")

app = FastAPI()

COLLECTION_METHODS = "GET, HEAD, POST, OPTIONS"
ITEM_METHODS = "GET, HEAD, PUT, DELETE, OPTIONS"

_lock = threading.Lock()
_items: dict = {}
_next_id = 1


class ItemIn(BaseModel):
    name: Annotated[StrictStr, Field(min_length=1)]
    price: Annotated[Union[StrictInt, StrictFloat], Field(ge=0, allow_inf_nan=False)]
    tags: List[StrictStr] = Field(default_factory=list)


def _stored(item_id: str, body: ItemIn) -> dict:
    return {"id": item_id, "name": body.name, "price": body.price, "tags": list(body.tags)}


def _not_found() -> JSONResponse:
    return JSONResponse({"detail": "no such item"}, status_code=404)


@app.get("/health")
def health():
    return {"status": "ok"}


@app.api_route("/items", methods=["GET", "HEAD"])
def list_items():
    with _lock:
        return {"items": list(_items.values())}


@app.post("/items", status_code=201)
def create_item(body: ItemIn):
    global _next_id
    with _lock:
        item_id = str(_next_id)
        _next_id += 1
        item = _stored(item_id, body)
        _items[item_id] = item
    return JSONResponse(item, status_code=201, headers={"Location": f"/items/{item_id}"})


@app.options("/items")
def options_items():
    return Response(status_code=204, headers={"Allow": COLLECTION_METHODS})


# FastAPI's @app.get() does not answer HEAD (Starlette's plain Route would).
GET_METHODS = ["GET"] if BUG == "no-head" else ["GET", "HEAD"]


@app.api_route("/items/{item_id}", methods=GET_METHODS)
def get_item(item_id: str):
    with _lock:
        item = _items.get(item_id)
    if item is None:
        return _not_found()
    return item


@app.put("/items/{item_id}")
def replace_item(item_id: str, body: ItemIn):
    with _lock:
        if item_id not in _items and BUG != "put-upsert":
            return _not_found()
        item = _stored(item_id, body)
        _items[item_id] = item
    return item


@app.delete("/items/{item_id}", status_code=204)
def delete_item(item_id: str):
    with _lock:
        if _items.pop(item_id, None) is None:
            return _not_found()
    return Response(status_code=204)


@app.options("/items/{item_id}")
def options_item(item_id: str):
    return Response(status_code=204, headers={"Allow": ITEM_METHODS})


def _allowed_methods(scope) -> List[str]:
    """Union of the methods of every route whose path matches (Starlette only
    reports the methods of the first route that matches the path)."""
    methods = set()
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match != Match.NONE and getattr(route, "methods", None):
            methods |= route.methods
    order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return sorted(methods, key=lambda m: order.index(m) if m in order else len(order))


if BUG != "allow-first-route":
    @app.exception_handler(StarletteHTTPException)
    async def http_exception_handler(request: Request, exc: StarletteHTTPException):
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            scope = dict(request.scope, method="GET")
            headers["Allow"] = ", ".join(_allowed_methods(scope))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), log_level="warning")
