"""async-jobs: slow work run as asynchronous jobs behind a status resource.

POST /jobs puts a job on an in-memory asyncio.Queue and answers 202 at once; one
background worker task (started in the lifespan) takes jobs off the queue, moves
them queued -> running -> succeeded/failed, sleeps JOB_DURATION_MS and stores the
result. GET /jobs/{id} reads the job; GET /results?job={id} lists stored results.
Every error is an application/problem+json body.

CANDIDATE_BUG=<name> switches on one deliberate bug (see README.md).
"""

import asyncio
import os
import time
import uuid
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Optional

import uvicorn
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StrictInt
from starlette.exceptions import HTTPException as StarletteHTTPException

BUG = os.environ.get("CANDIDATE_BUG", "")
JOB_DURATION_MS = int(os.environ.get("JOB_DURATION_MS", "1000"))

PROBLEM = "application/problem+json"


def problem(status: int, detail: Optional[str] = None, **extra) -> dict:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status}
    if detail is not None:
        body["detail"] = detail
    body.update(extra)
    return body


def problem_response(status: int, detail: Optional[str] = None, headers=None, **extra) -> JSONResponse:
    return JSONResponse(problem(status, detail, **extra), status_code=status,
                        media_type=PROBLEM, headers=headers)


# --- state -------------------------------------------------------------------

jobs: dict = {}      # job id -> job dict (the status resource)
results: dict = {}   # result id -> {"id", "job", "sum"}
queue: "asyncio.Queue[str]"


def job_view(job: dict) -> dict:
    view = {"id": job["id"], "status": job["status"], "numbers": job["numbers"],
            "created_at": job["created_at"]}
    for key in ("started_at", "finished_at", "result_url", "error"):
        if job.get(key) is not None:
            view[key] = job[key]
    return view


def compute(job: dict) -> None:
    """Ends the job: succeeded with a stored result, or failed with a problem."""
    numbers = job["numbers"]
    negatives = [n for n in numbers if n < 0]
    if negatives:
        if BUG == "string-error":
            job["error"] = f"negative numbers are not allowed: {negatives}"
        else:
            job["error"] = problem(422, f"numbers must not be negative; got {negatives}")
        job["status"] = "failed"
    else:
        result_id = uuid.uuid4().hex
        results[result_id] = {"id": result_id, "job": job["id"], "sum": sum(numbers)}
        job.setdefault("result_url", f"/results/{result_id}")
        job["status"] = "succeeded"
    job["finished_at"] = time.time()


async def worker() -> None:
    while True:
        job_id = await queue.get()
        job = jobs[job_id]
        try:
            job["status"] = "running"
            job["started_at"] = time.time()
            await asyncio.sleep(JOB_DURATION_MS / 1000)
            compute(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never leave a job running forever
            job["error"] = problem(500, f"the job's work raised {type(exc).__name__}")
            job["status"] = "failed"
            job["finished_at"] = time.time()
        finally:
            queue.task_done()


@asynccontextmanager
async def lifespan(app: FastAPI):
    global queue
    queue = asyncio.Queue()
    task = None
    if BUG != "work-in-get":
        task = asyncio.create_task(worker())
    yield
    if task is not None:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


app = FastAPI(title="async-jobs", lifespan=lifespan)


# --- errors as problem details -------------------------------------------------

@app.exception_handler(StarletteHTTPException)
async def http_exception_handler(request: Request, exc: StarletteHTTPException):
    detail = exc.detail if isinstance(exc.detail, str) else None
    return problem_response(exc.status_code, detail, headers=getattr(exc, "headers", None))


@app.exception_handler(RequestValidationError)
async def validation_exception_handler(request: Request, exc: RequestValidationError):
    return problem_response(422, "The request is not valid.",
                            errors=jsonable_encoder(exc.errors()))


@app.exception_handler(Exception)
async def unhandled_exception_handler(request: Request, exc: Exception):
    return problem_response(500, "An unexpected error occurred.")


# --- routes --------------------------------------------------------------------

class JobIn(BaseModel):
    numbers: list[StrictInt]


@app.get("/health")
async def health():
    return {"status": "ok"}


@app.post("/jobs", status_code=202)
async def create_job(body: JobIn):
    job_id = uuid.uuid4().hex
    job = {"id": job_id, "status": "queued", "numbers": body.numbers, "created_at": time.time()}
    if BUG == "result-url-early":
        # The result's address is fixed up front; it only resolves once the work is done.
        job["result_url"] = f"/jobs/{job_id}/result"
    jobs[job_id] = job
    if BUG != "work-in-get":
        queue.put_nowait(job_id)
    status = 201 if BUG == "status-201" else 202
    return JSONResponse({"id": job_id, "status": job["status"]}, status_code=status,
                        headers={"Location": f"/jobs/{job_id}"})


@app.get("/jobs/{job_id}")
async def get_job(job_id: str):
    job = jobs.get(job_id)
    if job is None:
        return problem_response(404, f"No job with id {job_id!r}.")
    if BUG == "work-in-get":
        # No worker: the status is derived from the time elapsed, and the job is
        # finished by whichever read notices that its time is up.
        elapsed = time.time() - job["created_at"]
        if elapsed >= JOB_DURATION_MS / 1000:
            compute(job)
        elif job["status"] == "queued":
            job["status"] = "running"
            job["started_at"] = time.time()
    return job_view(job)


@app.get("/results")
async def list_results(job: str):
    return {"items": [r for r in results.values() if r["job"] == job]}


@app.get("/results/{result_id}")
async def get_result(result_id: str):
    result = results.get(result_id)
    if result is None:
        return problem_response(404, f"No result with id {result_id!r}.")
    return result


if BUG == "result-url-early":
    @app.get("/jobs/{job_id}/result")
    async def get_job_result(job_id: str):
        for result in results.values():
            if result["job"] == job_id:
                return result
        return problem_response(404, f"Job {job_id!r} has no result yet.")


if __name__ == "__main__":
    uvicorn.run(app, host="0.0.0.0", port=int(os.environ.get("PORT", "8000")))
