"""graceful-shutdown: a service that finishes its work in flight on SIGTERM (FastAPI + uvicorn).

uvicorn already does the right thing on SIGTERM: it stops accepting connections, lets
every request in flight finish and answer, runs the lifespan shutdown, and exits. The
service only has to keep out of its way: do the work without blocking the event loop,
leave uvicorn's signal handlers alone and keep the shutdown hook short.
"""
import asyncio
import logging
import os
import signal
import sys
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

BUG = os.environ.get("CANDIDATE_BUG", "")

WORK_MS = int(os.environ.get("WORK_MS", "1500"))

logger = logging.getLogger("graceful-shutdown")


def _on_sigterm_exit(signum, frame):
    logger.info("SIGTERM received, exiting")
    sys.exit(0)  # raised inside the event loop: requests in flight are cancelled


def _on_sigterm_log(signum, frame):
    logger.info("SIGTERM received")  # ... and nothing else: uvicorn never hears of it


@asynccontextmanager
async def lifespan(app: FastAPI):
    # Runs inside uvicorn's serve(), after it has installed its own SIGTERM handler,
    # so anything registered here replaces uvicorn's graceful shutdown.
    if BUG == "exit-on-sigterm":
        signal.signal(signal.SIGTERM, _on_sigterm_exit)
    if BUG == "swallow-sigterm":
        signal.signal(signal.SIGTERM, _on_sigterm_log)
    yield
    logger.info("shutting down")
    if BUG == "slow-shutdown-hook":
        # "give the load balancer time to take us out of rotation" — but uvicorn has
        # already stopped accepting and drained by the time this runs.
        await asyncio.sleep(10)


app = FastAPI(lifespan=lifespan)


@app.get("/health")
async def health():
    return {"status": "ok"}


@app.get("/work")
async def work():
    await asyncio.sleep(WORK_MS / 1000)  # stands for real work; never block the event loop
    return {"done": True}


if __name__ == "__main__":
    # uvicorn's default (None) waits for every request in flight, however long; the
    # orchestrator's SIGKILL at the end of its grace period is the upper bound.
    graceful_timeout = 0 if BUG == "graceful-timeout-zero" else None
    uvicorn.run(
        app,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8000")),
        timeout_graceful_shutdown=graceful_timeout,
    )
