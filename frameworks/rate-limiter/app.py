"""Per-API-key fixed-window rate limiter in front of a quote API (FastAPI + uvicorn)."""
import asyncio
import math
import os
import random
import threading
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

PORT = int(os.environ.get("PORT", "8000"))
RATE_LIMIT = int(os.environ.get("RATE_LIMIT", "5"))
WINDOW_SECONDS = float(os.environ.get("WINDOW_SECONDS", "2"))
BUG = os.environ.get("CANDIDATE_BUG", "")

QUOTES = [
    "Premature optimization is the root of all evil.",
    "Simple things should be simple, complex things should be possible.",
    "Make it work, make it right, make it fast.",
]

app = FastAPI()

# key -> [window_start (monotonic), count of admitted requests]
_windows: dict[str, list] = {}
_lock = threading.Lock()


class _Store:
    """A tiny async key-value store, the way one would front Redis."""

    async def get(self, key):
        await asyncio.sleep(0)  # network round trip
        return _windows.get(key)

    async def set(self, key, value):
        await asyncio.sleep(0)
        _windows[key] = value


store = _Store()


def _seconds_left(start: float, now: float) -> int:
    return max(1, math.ceil(start + WINDOW_SECONDS - now))


def _admit(key: str):
    """Atomically count one request for key. Returns (allowed, remaining, reset_seconds)."""
    with _lock:
        now = time.monotonic()
        entry = _windows.get(key)
        if entry is None or now >= entry[0] + WINDOW_SECONDS:
            entry = [now, 0]
            _windows[key] = entry
        if BUG == "window-slides":
            entry[0] = now  # BUG (gap probe): window restarts at every request instead of the first
        if entry[1] < RATE_LIMIT:
            entry[1] += 1
            return True, RATE_LIMIT - entry[1], _seconds_left(entry[0], now)
        return False, 0, _seconds_left(entry[0], now)


async def _admit_check_then_set(key: str):
    # BUG "check-then-set": read, decide, write back across awaits -- not atomic.
    now = time.monotonic()
    entry = await store.get(key)
    if entry is None or now >= entry[0] + WINDOW_SECONDS:
        entry = [now, 0]
    count = entry[1]
    if count < RATE_LIMIT:
        await store.set(key, [entry[0], count + 1])
        return True, RATE_LIMIT - (count + 1), _seconds_left(entry[0], now)
    return False, 0, _seconds_left(entry[0], now)


@app.get("/health")
async def health():
    return {"status": "ok"}


def _problem(status: int, title: str, detail: str, headers=None):
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        headers=headers,
        media_type="application/problem+json",
    )


@app.get("/quote")
async def quote(request: Request):
    key = request.headers.get("x-api-key", "")
    if not key and BUG == "missing-key-422":
        # BUG (gap probe): what `x_api_key: str = Header()` does -- FastAPI's default 422 validation error.
        raise RequestValidationError([{"type": "missing", "loc": ("header", "x-api-key"),
                                       "msg": "Field required", "input": None}])
    if not key:
        return _problem(401, "Unauthorized", "Missing X-Api-Key header.")

    if BUG == "check-then-set":
        allowed, remaining, reset = await _admit_check_then_set(key)
    else:
        allowed, remaining, reset = _admit(key)

    headers = {
        "RateLimit-Limit": str(RATE_LIMIT),
        "RateLimit-Remaining": str(remaining),
        "RateLimit-Reset": str(reset),
    }
    if not allowed:
        headers["Retry-After"] = str(reset)
        return _problem(429, "Too Many Requests",
                        f"Rate limit of {RATE_LIMIT} per {WINDOW_SECONDS:g}s exceeded.", headers)
    return JSONResponse({"quote": random.choice(QUOTES)}, headers=headers)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")
