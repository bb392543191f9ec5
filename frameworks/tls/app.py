"""tls — a tiny FastAPI API over HTTPS, plus a plain-HTTP listener that only redirects to it.

Two uvicorn servers run in one asyncio loop:

* on $PORT, HTTPS with the certificate and key given in TLS_CERT / TLS_KEY (PEM), serving
  GET /health and GET /hello; every answer carries Strict-Transport-Security;
* on $HTTP_PORT, plain HTTP whose only job is to send every request to the same host, path and
  query over HTTPS with a 308 Permanent Redirect (and no Strict-Transport-Security).

Start: python app.py   (env: PORT, HTTP_PORT, TLS_CERT, TLS_KEY; optional HOST, CANDIDATE_BUG)
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import ssl
import sys
import tempfile
from urllib.parse import urlsplit

import uvicorn
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.types import Receive, Scope, Send

BUG = os.environ.get("CANDIDATE_BUG", "")

HOST = os.environ.get("HOST", "127.0.0.1")
HTTPS_PORT = int(os.environ.get("PORT", "8443"))
HTTP_PORT = int(os.environ.get("HTTP_PORT", "8080"))

# One year, the minimum browsers' preload lists and the brief ask for.
HSTS = "max-age=31536000"
if BUG == "hsts-rollout-max-age":
    # BUG: the "start small" value from an HSTS roll-out guide (one day) was never raised.
    HSTS = "max-age=86400"


# --------------------------------------------------------------------------- HTTPS API

api = FastAPI(title="tls")

# Filled in by main(); /health reports ready only once both listeners accept connections.
SERVERS: list[uvicorn.Server] = []


@api.get("/health")
async def health():
    if SERVERS and all(server.started for server in SERVERS):
        return {"status": "ok"}
    return PlainTextResponse("starting", status_code=503)


@api.get("/hello")
async def hello():
    return {"message": "hello"}


# --------------------------------------------------------------------------- plain-HTTP redirector

# A host as it may appear in a Host header: a bracketed IPv6 literal or a DNS name / IPv4
# address, optionally followed by a port (which is dropped: the HTTPS port replaces it).
_HOST_HEADER = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::[0-9]*)?$")


def https_location(request: Request) -> str | None:
    """https://<the request's host>[:<HTTPS port>]<path>[?<query>], or None for an unusable host."""
    scope = request.scope
    raw_path = scope.get("raw_path") or scope["path"].encode()
    target = raw_path.decode("latin-1")
    authority = request.headers.get("host")

    if not target.startswith("/"):
        parts = urlsplit(target)
        if parts.scheme.lower() in ("http", "https") and parts.netloc:
            # absolute-form request target (RFC 9112 §3.2.2): its authority wins over Host.
            authority = parts.netloc.rpartition("@")[2]
            target = parts.path
        if not target.startswith("/"):  # "*" (OPTIONS *) or an empty path
            target = "/"

    if authority is None and scope.get("server"):
        # HTTP/1.0 without Host: fall back to the address the client connected to.
        authority = scope["server"][0]
        if ":" in authority:
            authority = f"[{authority}]"
    match = _HOST_HEADER.match(authority or "")
    if match is None:
        return None
    host = match.group(1)

    port = "" if HTTPS_PORT == 443 else f":{HTTPS_PORT}"
    query = scope.get("query_string", b"").decode("latin-1")
    return f"https://{host}{port}{target}" + (f"?{query}" if query else "")


async def redirect_to_https(scope: Scope, receive: Receive, send: Send) -> None:
    """The whole plain-HTTP application: every request, whatever its method, is redirected."""
    if scope["type"] != "http":  # no websockets over plain HTTP (lifespan is off)
        return
    request = Request(scope, receive)
    location = https_location(request)
    if location is None:
        response = PlainTextResponse("Bad Request: unusable Host header", status_code=400)
    elif BUG == "redirect-301-all-methods":
        # BUG: "301 is the permanent redirect", used for every method like nginx's
        # `return 301 https://$host$request_uri;` -- clients turn a redirected POST into a GET.
        response = RedirectResponse(location, status_code=301)
    else:
        # 308 keeps the method and body for every method, GET and HEAD included.
        response = RedirectResponse(location, status_code=308)
    await response(scope, receive, send)


# --------------------------------------------------------------------------- start-up


def legacy_ssl_context(config: uvicorn.Config, default_factory) -> ssl.SSLContext:
    # BUG: "allow TLS 1.0/1.1 for compatibility with old clients"; OpenSSL 3 only negotiates
    # them at security level 0, so the cipher string is lowered as well.
    ctx = default_factory()
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


def write_pem_files(directory: str) -> tuple[str, str]:
    cert_pem = os.environ.get("TLS_CERT")
    key_pem = os.environ.get("TLS_KEY")
    if not cert_pem or not key_pem:
        sys.exit("TLS_CERT and TLS_KEY (PEM) must be set")
    cert_path = os.path.join(directory, "cert.pem")
    key_path = os.path.join(directory, "key.pem")
    with open(cert_path, "w") as f:
        f.write(cert_pem)
    # The private key is readable by this user only.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key_pem)
    return cert_path, key_path


async def main() -> None:
    common: dict = {"host": HOST, "log_level": "info"}
    # uvicorn adds these to every answer the HTTPS server sends, error answers included.
    https_only: dict = {"headers": [("Strict-Transport-Security", HSTS)]}
    if BUG == "hsts-on-both-listeners":
        # BUG: the security header is put in the options shared by both servers.
        common.update(https_only)
        https_only = {}

    tmpdir = tempfile.mkdtemp(prefix="tls-")  # mode 0700
    try:
        cert_path, key_path = write_pem_files(tmpdir)
        https_config = uvicorn.Config(
            api,
            port=HTTPS_PORT,
            ssl_certfile=cert_path,
            ssl_keyfile=key_path,
            ssl_context_factory=legacy_ssl_context if BUG == "legacy-tls-versions" else None,
            **https_only,
            **common,
        )
        https_config.load()  # builds the SSLContext: the PEM files are no longer needed
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)

    http_config = uvicorn.Config(redirect_to_https, port=HTTP_PORT, lifespan="off", **common)

    https_server = uvicorn.Server(https_config)
    http_server = uvicorn.Server(http_config)
    SERVERS.extend([https_server, http_server])
    # Each server handles SIGINT/SIGTERM; on a signal the one that caught it stops and re-raises
    # it for the other, so both shut down gracefully.
    await asyncio.gather(http_server.serve(), https_server.serve())


if __name__ == "__main__":
    asyncio.run(main())
