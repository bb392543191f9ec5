"""Products API with an in-memory cache-aside cache in front of a slow catalog.

Start: ``python app.py``. Environment:

- ``PORT``: port to listen on (default 8080).
- ``CATALOG_URL``: base URL of the catalog service, no final slash (required).
- ``CACHE_TTL_SECONDS``: how long a cached product stays fresh, a whole number of
  seconds from 1 to 3600 (default 60).
- ``CANDIDATE_BUG``: switches on one of the deliberate bugs described in README.md.
"""

import json
import logging
import math
import os
import sys
import threading
import time
from urllib.parse import quote

import requests
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger("cache-aside")

BUG = os.environ.get("CANDIDATE_BUG", "")

# Connect / read timeouts for catalog calls. The catalog answers in a few hundred
# milliseconds; anything much slower is treated as "no answer".
CATALOG_TIMEOUT = (2.0, 5.0)


def _read_config():
    catalog_url = os.environ.get("CATALOG_URL", "").rstrip("/")
    if not catalog_url:
        sys.exit("CATALOG_URL must be set")
    raw_ttl = os.environ.get("CACHE_TTL_SECONDS", "60").strip()
    try:
        ttl = int(raw_ttl)
    except ValueError:
        sys.exit(f"CACHE_TTL_SECONDS must be a whole number of seconds, got {raw_ttl!r}")
    if not 1 <= ttl <= 3600:
        sys.exit(f"CACHE_TTL_SECONDS must be between 1 and 3600, got {ttl}")
    try:
        port = int(os.environ.get("PORT", "8080"))
    except ValueError:
        sys.exit("PORT must be a number")
    return catalog_url, ttl, port


CATALOG_URL, CACHE_TTL_SECONDS, PORT = _read_config()

if BUG == "ttl-millis":
    # Bug: the TTL is converted to milliseconds, but compared with a clock in seconds.
    CACHE_TTL = CACHE_TTL_SECONDS * 1000
else:
    CACHE_TTL = CACHE_TTL_SECONDS


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    def __init__(self, status, title, detail):
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


def problem(status, title, detail=None):
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    resp = jsonify(body)
    resp.status_code = status
    resp.mimetype = "application/problem+json"
    return resp


# --------------------------------------------------------------------------- catalog


class CatalogOutcome:
    """What a catalog read produced: a product document, not found, or a failure."""

    __slots__ = ("status", "body")

    def __init__(self, status, body=None):
        self.status = status  # 200, 404 or 502
        self.body = body  # raw JSON bytes of the product when status == 200


def _product_url(product_id):
    return f"{CATALOG_URL}/products/{quote(product_id, safe='')}"


def _json_object_bytes(resp):
    """The catalog's body if it is a JSON object, else None."""
    try:
        doc = json.loads(resp.content)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    return resp.content


def fetch_product(product_id):
    try:
        resp = requests.get(_product_url(product_id), timeout=CATALOG_TIMEOUT)
    except requests.RequestException as exc:
        log.warning("catalog GET %s failed: %s", product_id, exc)
        return CatalogOutcome(502, None)
    if resp.status_code == 404:
        return CatalogOutcome(404)
    if resp.status_code != 200:
        log.warning("catalog GET %s answered %s", product_id, resp.status_code)
        return CatalogOutcome(502)
    body = _json_object_bytes(resp)
    if body is None:
        log.warning("catalog GET %s answered a body that is not a JSON object", product_id)
        return CatalogOutcome(502)
    return CatalogOutcome(200, body)


# --------------------------------------------------------------------------- cache


class _Flight:
    """One catalog read in progress, shared by every request that missed meanwhile."""

    def __init__(self, generation):
        self.generation = generation
        self.done = threading.Event()
        self.outcome = None


class ProductCache:
    """TTL cache with single-flight loading and write invalidation.

    ``_generations`` counts invalidations per product: a read that started before a
    write finished must not put what it read into the cache.
    """

    def __init__(self, ttl):
        self._ttl = ttl
        self._lock = threading.Lock()
        self._entries = {}  # id -> (expires_at, CatalogOutcome)
        self._flights = {}  # id -> _Flight
        self._generations = {}  # id -> int

    def _fresh(self, product_id, now):
        entry = self._entries.get(product_id)
        if entry is None:
            return None
        expires_at, outcome = entry
        if now >= expires_at:
            del self._entries[product_id]
            return None
        return outcome

    def get(self, product_id):
        if BUG == "check-then-load":
            # Bug: look in the cache, and on a miss every request loads on its own.
            with self._lock:
                cached = self._fresh(product_id, time.monotonic())
            if cached is not None:
                return cached
            outcome = fetch_product(product_id)
            if outcome.status == 200:
                with self._lock:
                    self._entries[product_id] = (time.monotonic() + self._ttl, outcome)
            return outcome

        with self._lock:
            cached = self._fresh(product_id, time.monotonic())
            if cached is not None:
                return cached
            flight = self._flights.get(product_id)
            leader = flight is None
            if leader:
                flight = _Flight(self._generations.get(product_id, 0))
                self._flights[product_id] = flight

        if not leader:
            flight.done.wait()
            return flight.outcome

        outcome = None
        try:
            outcome = fetch_product(product_id)
        finally:
            if outcome is None:  # unexpected exception while loading
                outcome = CatalogOutcome(502)
            with self._lock:
                # Only products are cached; with the cache-errors bug, whatever the
                # catalog answered (404s and failures too) is.
                cacheable = outcome.status == 200 or BUG == "cache-errors"
                if cacheable and self._generations.get(product_id, 0) == flight.generation:
                    self._entries[product_id] = (time.monotonic() + self._ttl, outcome)
                if self._flights.get(product_id) is flight:
                    del self._flights[product_id]
            flight.outcome = outcome
            flight.done.set()
        return outcome

    def invalidate(self, product_id):
        with self._lock:
            self._generations[product_id] = self._generations.get(product_id, 0) + 1
            self._entries.pop(product_id, None)
            # Requests that arrive from now on start a new read rather than wait
            # for one that may return the old product.
            self._flights.pop(product_id, None)


cache = ProductCache(CACHE_TTL)

# --------------------------------------------------------------------------- app

app = Flask(__name__)


@app.errorhandler(ApiError)
def handle_api_error(err):
    return problem(err.status, err.title, err.detail)


@app.errorhandler(HTTPException)
def handle_http_exception(err):
    return problem(err.code, err.name, err.description)


@app.errorhandler(Exception)
def handle_unexpected(err):
    log.exception("unhandled error")
    return problem(500, "Internal Server Error")


@app.get("/health")
def health():
    return {"status": "ok"}


def _json_response(body):
    return Response(body, status=200, mimetype="application/json")


@app.get("/products/<product_id>")
def get_product(product_id):
    outcome = cache.get(product_id)
    if outcome.status == 200:
        return _json_response(outcome.body)
    if outcome.status == 404:
        raise ApiError(404, "Not Found", f"product {product_id!r} does not exist")
    raise ApiError(502, "Bad Gateway", "the catalog did not answer the product")


def _validate_update(payload):
    if not isinstance(payload, dict):
        raise ApiError(400, "Bad Request", "the body must be a JSON object")
    name = payload.get("name")
    price = payload.get("price")
    if not isinstance(name, str):
        raise ApiError(400, "Bad Request", "'name' must be a string")
    if (
        isinstance(price, bool)
        or not isinstance(price, (int, float))
        or not math.isfinite(price)
    ):
        raise ApiError(400, "Bad Request", "'price' must be a number")
    return name, price


@app.put("/products/<product_id>")
def put_product(product_id):
    name, price = _validate_update(request.get_json())
    product = {"id": product_id, "name": name, "price": price}
    try:
        try:
            resp = requests.put(_product_url(product_id), json=product, timeout=CATALOG_TIMEOUT)
        except requests.RequestException as exc:
            log.warning("catalog PUT %s failed: %s", product_id, exc)
            raise ApiError(502, "Bad Gateway", "the catalog did not answer the update")
    finally:
        # Invalidate whatever the outcome: even a failed write may have been stored.
        if BUG != "no-invalidate-on-put":
            cache.invalidate(product_id)
    if resp.status_code == 404:
        raise ApiError(404, "Not Found", f"product {product_id!r} does not exist")
    if not 200 <= resp.status_code < 300:
        log.warning("catalog PUT %s answered %s", product_id, resp.status_code)
        raise ApiError(502, "Bad Gateway", f"the catalog answered the update with {resp.status_code}")
    body = _json_object_bytes(resp)
    if body is None:
        raise ApiError(502, "Bad Gateway", "the catalog answered the update with a body that is not a JSON object")
    return _json_response(body)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app.run(host="127.0.0.1", port=PORT, threaded=True)
