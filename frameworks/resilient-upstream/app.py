"""resilient-upstream: a small quotes API in front of a slow, flaky quotes service.

Every call to the quotes service has a deadline (UPSTREAM_TIMEOUT_MS); quote calls that fail
with a 5xx or a dropped connection are retried with exponential backoff (RETRY_BASE_MS, then
twice that), trades are never retried, and quote requests pass a consecutive-failure circuit
breaker (BREAKER_THRESHOLD, BREAKER_COOLDOWN_MS).

Start: `python app.py` (reads PORT, QUOTES_URL, QUOTES_TOKEN, UPSTREAM_TIMEOUT_MS, RETRY_BASE_MS,
BREAKER_THRESHOLD, BREAKER_COOLDOWN_MS). CANDIDATE_BUG=<name> switches on a deliberate bug.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
import uuid
from contextlib import asynccontextmanager
from urllib.parse import quote

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("resilient-upstream")

BUG = os.environ.get("CANDIDATE_BUG", "")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}")
    if value < 0:
        raise SystemExit(f"{name} must not be negative, got {value}")
    return value


QUOTES_URL = os.environ.get("QUOTES_URL", "").rstrip("/")
QUOTES_TOKEN = os.environ.get("QUOTES_TOKEN", "")
UPSTREAM_TIMEOUT_S = _env_int("UPSTREAM_TIMEOUT_MS", 2000) / 1000
RETRY_BASE_S = _env_int("RETRY_BASE_MS", 100) / 1000
BREAKER_THRESHOLD = max(1, _env_int("BREAKER_THRESHOLD", 5))
BREAKER_COOLDOWN_S = _env_int("BREAKER_COOLDOWN_MS", 30000) / 1000
MAX_ATTEMPTS = 3


# --------------------------------------------------------------------------- problem details


class ApiProblem(Exception):
    def __init__(self, status: int, title: str, detail: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers


def problem(status: int, title: str, detail: str | None = None, *,
            headers: dict[str, str] | None = None, **extra) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers,
                        media_type="application/problem+json")


# --------------------------------------------------------------------------- circuit breaker


class CircuitBreaker:
    """Consecutive-failure breaker: closed -> open -> half-open (one trial) -> closed/open.

    The app runs on a single event loop and no method awaits, so no lock is needed.
    """

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

    def __init__(self, threshold: int, cooldown_s: float):
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.state = self.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.trial_in_flight = False

    def acquire(self) -> bool:
        """May a request go through? In half-open state only one trial at a time does."""
        if self.state == self.CLOSED:
            return True
        if self.state == self.OPEN:
            if time.monotonic() - self.opened_at < self.cooldown_s:
                return False
            self.state = self.HALF_OPEN
            log.info("circuit breaker half-open: letting a trial through")
        if self.trial_in_flight:
            return False
        self.trial_in_flight = True
        return True

    def retry_after(self) -> int:
        if self.state != self.OPEN:
            return 1
        left = self.cooldown_s - (time.monotonic() - self.opened_at)
        return max(1, math.ceil(left))

    def on_success(self) -> None:
        if self.state != self.CLOSED:
            log.info("circuit breaker closed after a successful trial")
        self.state = self.CLOSED
        self.failures = 0
        self.trial_in_flight = False

    def on_failure(self) -> None:
        self.trial_in_flight = False
        if self.state == self.HALF_OPEN:
            self._open("trial failed")
            return
        self.failures += 1
        if self.state == self.CLOSED and self.failures >= self.threshold:
            self._open(f"{self.failures} failed quote requests in a row")

    def on_neutral(self) -> None:
        """An outcome that neither counts nor resets (a 404): just free the trial slot."""
        self.trial_in_flight = False

    def _open(self, why: str) -> None:
        self.state = self.OPEN
        self.opened_at = time.monotonic()
        log.warning("circuit breaker open: %s", why)


breaker = CircuitBreaker(BREAKER_THRESHOLD, BREAKER_COOLDOWN_S)


# --------------------------------------------------------------------------- upstream calls


class UpstreamTimeout(Exception):
    pass


class UpstreamUnavailable(Exception):
    """A 5xx answer or a connection closed without an answer: worth retrying for a GET."""


def _headers(request_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {QUOTES_TOKEN}", "X-Request-Id": request_id}


async def _call_once(client: httpx.AsyncClient, method: str, url: str, request_id: str,
                     json: dict | None = None) -> httpx.Response:
    """One call with an overall deadline of UPSTREAM_TIMEOUT_MS (httpx's own timeouts are per
    phase, so a trickling answer could otherwise outlive it)."""
    try:
        if BUG == "default-timeout":
            # the client was built without a timeout: httpx's 5 s default applies
            return await client.request(method, url, headers=_headers(request_id), json=json)
        async with asyncio.timeout(UPSTREAM_TIMEOUT_S):
            return await client.request(method, url, headers=_headers(request_id), json=json)
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise UpstreamTimeout(f"{method} {url}: no answer within the time-out") from exc
    except httpx.TransportError as exc:
        raise UpstreamUnavailable(f"{method} {url}: {type(exc).__name__}: {exc}") from exc


async def get_with_retries(client: httpx.AsyncClient, url: str, request_id: str) -> httpx.Response:
    """GET with up to MAX_ATTEMPTS attempts; returns the first non-5xx answer.

    A time-out is not retried (UpstreamTimeout propagates at once); 5xx answers and dropped
    connections are retried after RETRY_BASE_MS, then 2 x RETRY_BASE_MS.
    """
    last_error = "no attempt made"
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if attempt > 1:
            await asyncio.sleep(RETRY_BASE_S * 2 ** (attempt - 2))
        try:
            resp = await _call_once(client, "GET", url, request_id)
        except UpstreamTimeout:
            if BUG == "breaker-counts-attempts":
                breaker.on_failure()
            raise
        except UpstreamUnavailable as exc:
            last_error = str(exc)
            if BUG == "breaker-counts-attempts":
                breaker.on_failure()
            log.warning("attempt %d/%d failed: %s", attempt, MAX_ATTEMPTS, last_error)
            continue
        if resp.status_code >= 500:
            last_error = f"GET {url}: status {resp.status_code}"
            if BUG == "breaker-counts-attempts":
                breaker.on_failure()
            log.warning("attempt %d/%d failed: %s", attempt, MAX_ATTEMPTS, last_error)
            if BUG == "upstream-status" and attempt == MAX_ATTEMPTS:
                # hands the last answer back to the caller, which relays its status
                return resp
            continue
        return resp
    raise UpstreamUnavailable(f"{MAX_ATTEMPTS} attempts failed, the last: {last_error}")


# --------------------------------------------------------------------------- app


@asynccontextmanager
async def lifespan(app: FastAPI):
    if BUG == "default-timeout":
        client = httpx.AsyncClient()
    else:
        client = httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT_S)
    app.state.client = client
    try:
        yield
    finally:
        await client.aclose()


app = FastAPI(title="resilient-upstream", lifespan=lifespan)


@app.exception_handler(ApiProblem)
async def api_problem_handler(request: Request, exc: ApiProblem):
    return problem(exc.status, exc.title, exc.detail, headers=exc.headers)


@app.exception_handler(StarletteHTTPException)
async def http_exception_handler(request: Request, exc: StarletteHTTPException):
    title = exc.detail if isinstance(exc.detail, str) else "Error"
    return problem(exc.status_code, title, headers=getattr(exc, "headers", None))


@app.exception_handler(RequestValidationError)
async def validation_exception_handler(request: Request, exc: RequestValidationError):
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
    return problem(422, "Unprocessable Content", "The request body is not valid.", errors=errors)


@app.exception_handler(Exception)
async def unhandled_exception_handler(request: Request, exc: Exception):
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "Internal Server Error")


def request_id_of(request: Request) -> str:
    return request.headers.get("x-request-id") or uuid.uuid4().hex


@app.get("/health")
async def health():
    return {"status": "ok", "breaker": breaker.state}


@app.get("/quotes/{symbol}")
async def get_quote(symbol: str, request: Request):
    if not breaker.acquire():
        raise ApiProblem(503, "Service Unavailable",
                         "The quotes service is failing; the circuit breaker is open.",
                         headers={"Retry-After": str(breaker.retry_after())})

    client: httpx.AsyncClient = request.app.state.client
    url = f"{QUOTES_URL}/quotes/{quote(symbol, safe='')}"
    outcome = "neutral"
    try:
        try:
            resp = await get_with_retries(client, url, request_id_of(request))
        except UpstreamTimeout as exc:
            outcome = "failure"
            raise ApiProblem(504, "Gateway Timeout", "The quotes service did not answer in time.") from exc
        except UpstreamUnavailable as exc:
            outcome = "failure"
            raise ApiProblem(502, "Bad Gateway", "The quotes service failed to answer.") from exc

        if resp.status_code == 404:
            raise ApiProblem(404, "Not Found", f"Unknown symbol {symbol!r}.")
        if resp.status_code != 200:
            outcome = "failure"
            if BUG == "upstream-status":
                raise ApiProblem(resp.status_code, resp.reason_phrase or "Error",
                                 "The quotes service failed to answer.")
            raise ApiProblem(502, "Bad Gateway",
                             f"The quotes service answered an unexpected {resp.status_code}.")
        try:
            price = resp.json()["price"]
        except (ValueError, KeyError, TypeError):
            price = None
        if isinstance(price, bool) or not isinstance(price, (int, float)):
            outcome = "failure"
            raise ApiProblem(502, "Bad Gateway", "The quotes service answered without a price.")
        outcome = "success"
        return {"symbol": symbol, "price": price}
    finally:
        if outcome == "success":
            breaker.on_success()
        elif outcome == "failure" and BUG != "breaker-counts-attempts":
            breaker.on_failure()
        elif outcome == "failure":
            # (bug) the failed attempts were already counted one by one in get_with_retries
            breaker.on_neutral()
        else:
            # 404, or the request was cancelled: neither counts nor resets
            breaker.on_neutral()


class TradeIn(BaseModel):
    symbol: str
    quantity: int


@app.post("/trades", status_code=201)
async def create_trade(trade: TradeIn, request: Request):
    client: httpx.AsyncClient = request.app.state.client
    url = f"{QUOTES_URL}/trades"
    payload = {"symbol": trade.symbol, "quantity": trade.quantity}
    request_id = request_id_of(request)
    try:
        if BUG == "retry-post":
            # the same retrying helper as quotes, with the method as a parameter
            resp = await _post_with_retries(client, url, request_id, payload)
        else:
            # one call only: a trade must never execute twice
            resp = await _call_once(client, "POST", url, request_id, json=payload)
    except UpstreamTimeout as exc:
        raise ApiProblem(504, "Gateway Timeout", "The quotes service did not answer in time.") from exc
    except UpstreamUnavailable as exc:
        raise ApiProblem(502, "Bad Gateway", "The quotes service failed to answer.") from exc

    if resp.status_code not in (200, 201):
        raise ApiProblem(502, "Bad Gateway",
                         f"The quotes service answered {resp.status_code} to the trade.")
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "id" not in body:
        raise ApiProblem(502, "Bad Gateway", "The quotes service answered without a trade.")
    return body


async def _post_with_retries(client: httpx.AsyncClient, url: str, request_id: str,
                             payload: dict) -> httpx.Response:
    """Only used by the retry-post bug."""
    last_error = "no attempt made"
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if attempt > 1:
            await asyncio.sleep(RETRY_BASE_S * 2 ** (attempt - 2))
        try:
            resp = await _call_once(client, "POST", url, request_id, json=payload)
        except UpstreamUnavailable as exc:
            last_error = str(exc)
            continue
        if resp.status_code >= 500:
            last_error = f"status {resp.status_code}"
            continue
        return resp
    raise UpstreamUnavailable(f"{MAX_ATTEMPTS} attempts failed, the last: {last_error}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not QUOTES_URL:
        raise SystemExit("QUOTES_URL is required")
    uvicorn.run(app, host="0.0.0.0", port=int(os.environ.get("PORT", "8000")))
