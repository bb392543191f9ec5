"""twelve-factor-config: a greeting API configured only by its environment (FastAPI + uvicorn).

GREETING and API_SECRET are required, MAX_NAME_LENGTH is optional (default 20). The service
refuses to start without a required variable and never writes or returns the secret.
"""
import copy
import hmac
import logging
import os
import sys
from dataclasses import asdict, dataclass, field
from http import HTTPStatus

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.config import LOGGING_CONFIG

BUG = os.environ.get("CANDIDATE_BUG", "")

DEFAULT_MAX_NAME_LENGTH = 20

logger = logging.getLogger("twelve_factor_config")


# --- configuration -----------------------------------------------------------------------------


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class Settings:
    greeting: str
    max_name_length: int
    # repr=False: the secret stays out of any accidental "%s" of the settings.
    api_secret: str = field(repr=False)


def _required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ConfigError(f"required environment variable {name} is not set")
    return value


def load_settings() -> Settings:
    """Read the configuration from the environment; raise ConfigError naming what is wrong."""
    missing = []
    greeting = os.environ.get("GREETING", "")
    if not greeting:
        if BUG == "greeting-default":  # "sensible default" for a required variable
            greeting = "Hello"
        else:
            missing.append("GREETING")
    api_secret = os.environ.get("API_SECRET", "")
    if not api_secret:
        missing.append("API_SECRET")
    if missing:
        raise ConfigError("missing required environment variable(s): " + ", ".join(missing))

    raw_max = os.environ.get("MAX_NAME_LENGTH", "").strip()
    if raw_max:
        try:
            max_name_length = int(raw_max)
        except ValueError:
            # Do not echo the value: only the variable's name.
            raise ConfigError("MAX_NAME_LENGTH must be a positive integer") from None
        if max_name_length < 1:
            raise ConfigError("MAX_NAME_LENGTH must be a positive integer")
    else:
        max_name_length = DEFAULT_MAX_NAME_LENGTH
    return Settings(greeting=greeting, max_name_length=max_name_length, api_secret=api_secret)


settings: Settings  # set by main() before the server starts


# --- logging: uvicorn's defaults plus a filter that masks the secret --------------------------


class RedactSecret(logging.Filter):
    """Replace the secret in any log record (the access log prints request URLs verbatim)."""

    def __init__(self, secret: str):
        super().__init__()
        self.secret = secret

    def _redact(self, value):
        if isinstance(value, str) and self.secret in value:
            return value.replace(self.secret, "***")
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._redact(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: self._redact(v) for k, v in record.args.items()}
        return True


def log_config(secret: str) -> dict:
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact_secret": {"()": RedactSecret, "secret": secret}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact_secret"]
    config["loggers"]["twelve_factor_config"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


# --- HTTP ------------------------------------------------------------------------------------------

app = FastAPI(title="twelve-factor-config", docs_url=None, redoc_url=None, openapi_url=None)


def problem(status: int, detail: str = "", headers: dict | None = None) -> JSONResponse:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status}
    if detail:
        body["detail"] = detail
    if BUG == "config-in-errors":  # debug aid: show the settings the service is running with
        body["config"] = asdict(settings)
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


@app.exception_handler(StarletteHTTPException)
async def http_exception_handler(request: Request, exc: StarletteHTTPException):
    # Starlette's details are fixed phrases ("Not Found", "Method Not Allowed"): the path is not echoed.
    return problem(exc.status_code, "", exc.headers)


@app.exception_handler(RequestValidationError)
async def validation_exception_handler(request: Request, exc: RequestValidationError):
    # FastAPI's default body echoes the input; keep it out of the response.
    return problem(422, "the request is not valid")


@app.exception_handler(Exception)
async def unhandled_exception_handler(request: Request, exc: Exception):
    return problem(500)


@app.get("/health")
async def health():
    return {"status": "ok"}


@app.get("/greet")
async def greet(request: Request):
    name = request.query_params.get("name")
    if name is None:
        return problem(422, "the query parameter name is required")
    if BUG == "byte-length":
        length = len(name.encode("utf-8"))  # bytes, not characters
    else:
        length = len(name)
    if length == 0:
        return problem(422, "name must not be empty")
    if length > settings.max_name_length:
        # No echo of the name: it is client input and could be anything.
        return problem(422, f"name must be at most {settings.max_name_length} characters")
    return {"message": f"{settings.greeting}, {name}!"}


def bearer_token_ok(authorization: str) -> bool:
    if BUG == "prefix-token":
        return authorization.startswith("Bearer " + settings.api_secret)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(token.encode("utf-8"), settings.api_secret.encode("utf-8"))


@app.get("/admin/config")
async def admin_config(request: Request):
    authorization = request.headers.get("authorization", "")
    if not bearer_token_ok(authorization):
        return problem(401, "a valid bearer token is required", {"WWW-Authenticate": 'Bearer realm="admin"'})
    return {
        "greeting": settings.greeting,
        "max_name_length": settings.max_name_length,
        "api_secret": "***",
    }


def main() -> None:
    global settings
    try:
        settings = load_settings()
    except ConfigError as e:
        print(f"twelve-factor-config: configuration error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    if BUG == "log-settings":
        print(f"loaded configuration: {asdict(settings)}", flush=True)
    port = int(os.environ.get("PORT", "8000"))
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=log_config(settings.api_secret))


if __name__ == "__main__":
    main()
