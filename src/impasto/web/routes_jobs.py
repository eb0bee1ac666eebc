"""The jobs: ``POST /api/plan`` (the estimate), ``POST /api/jobs`` (queue one), ``GET /api/jobs[/{id}]``,
``DELETE /api/jobs/{id}`` (cancel), and a job's ``/preview``, ``/result``, ``/content`` and ``/events``
(server-sent events)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from .forms import WebError, form_schema, read_form
from .jobs import FINISHED, TooManyJobs
from .routes_pages import SESSION_COOKIE
from .service import estimate_form, job_view, result_name

router = APIRouter()
_PLAN_BODY = {"content": {"multipart/form-data": {"schema": form_schema(files=False)}}}
_JOB_BODY = {"required": True, "content": {"multipart/form-data": {"schema": form_schema()}}}


@router.post("/api/plan", summary="Memory and time estimate of a run from the images' sizes",
             openapi_extra={"requestBody": _PLAN_BODY})  # fmt: skip
async def plan(request: Request) -> dict[str, Any]:
    return estimate_form(await read_form(request, 0))


@router.post("/api/jobs", status_code=201, summary="Queue a job (multipart: content, style..., options)",
             openapi_extra={"requestBody": _JOB_BODY})  # fmt: skip
async def submit(request: Request) -> JSONResponse:
    submissions, store = request.app.state.submissions, request.app.state.store
    client = request.client.host if request.client else ""
    if store.active_count(client) >= submissions.config.max_active_per_client:  # early, before the upload is read
        raise WebError(429, submissions.too_many)
    form = await read_form(request, submissions.max_files())
    session = request.cookies.get(SESSION_COOKIE, "")[:64]
    try:
        job = await run_in_threadpool(submissions.submit, form, client, session)
    except TooManyJobs:  # counted again with the insert: requests that raced the check above
        raise WebError(429, submissions.too_many) from None
    return JSONResponse(job_view(store, job), status_code=201, headers={"location": f"/api/jobs/{job.id}"})


@router.get("/api/jobs", summary="Jobs, newest first (scope=session: this browser's)")
def list_jobs(request: Request, scope: str = "all", limit: int = 100) -> dict[str, Any]:
    store = request.app.state.store
    session = request.cookies.get(SESSION_COOKIE, "") if scope == "session" else None
    jobs = store.list(session, max(1, min(limit, 1000)))
    return {"jobs": [job_view(store, j) for j in jobs]}


@router.get("/api/jobs/{job_id}", summary="State, step, total, losses, ETA and error of a job")
def get_job(job_id: str, request: Request) -> dict[str, Any]:
    store = request.app.state.store
    return job_view(store, store.get(job_id))


@router.delete("/api/jobs/{job_id}", summary="Cancel a queued or running job (purge=true: also delete a finished one)")
def cancel(job_id: str, request: Request, purge: bool = False) -> dict[str, Any]:
    store = request.app.state.store
    job = store.get(job_id)
    if purge:
        if job.state == "running":
            store.cancel(job_id)
            job = store.get(job_id)
        store.delete(job_id)
        return {"id": job_id, "deleted": True}
    if job.state in FINISHED:
        raise WebError(409, f"job {job_id} is already {job.state}; nothing to cancel")
    return job_view(store, store.cancel(job_id))


@router.get("/api/jobs/{job_id}/preview", summary="The latest intermediate image (PNG; the result once done)")
def preview(job_id: str, request: Request) -> FileResponse:
    store = request.app.state.store
    job = store.get(job_id)
    path = store.file(job.id, "preview.png")
    if not path.exists() and job.has_result:
        path = store.file(job.id, "result.png")
    if not path.exists():
        raise WebError(404, "no preview yet")
    return FileResponse(path, media_type="image/png", headers={"cache-control": "no-store"})


@router.get("/api/jobs/{job_id}/result", summary="The result (PNG with the options embedded)")
def result(job_id: str, request: Request) -> FileResponse:
    store = request.app.state.store
    job = store.get(job_id)
    path = store.file(job.id, "result.png")
    if not job.has_result or not path.exists():
        raise WebError(404 if job.state not in FINISHED else 409, f"job {job_id} has no result ({job.state})")
    return FileResponse(path, media_type="image/png", filename=result_name(job))


@router.get("/api/jobs/{job_id}/content", summary="The uploaded content image")
def content(job_id: str, request: Request) -> FileResponse:
    store = request.app.state.store
    job = store.get(job_id)
    return FileResponse(store.file(job.id, job.inputs["content"]["file"]))


@router.get("/api/jobs/{job_id}/events", summary="Server-sent events: the job's view each time it changes")
async def events(job_id: str, request: Request) -> StreamingResponse:
    store = request.app.state.store
    store.get(job_id)
    return StreamingResponse(_stream(store, job_id, request), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})  # fmt: skip


async def _stream(store: Any, job_id: str, request: Request) -> AsyncIterator[str]:
    """The job's view each time it changes, until it finishes or is gone; a keep-alive every 15 s of quiet."""
    last, quiet = None, 0.0
    while True:
        current = await run_in_threadpool(store.version, job_id)
        if current is None:
            yield "event: gone\ndata: {}\n\n"
            return
        if current[0] != last:
            last, quiet = current[0], 0.0
            job = await run_in_threadpool(store.get, job_id)
            yield f"event: job\ndata: {json.dumps(job_view(store, job))}\n\n"
            if job.state in FINISHED:
                return
        elif quiet > 15:
            yield ": keep-alive\n\n"
            quiet = 0.0
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.1)
        quiet += 0.1
