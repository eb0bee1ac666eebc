"""The web app of ``impasto serve``: a FastAPI application over the job queue (:mod:`impasto.web.jobs`).

The page (``static/``) uses the same HTTP API as scripts: ``POST /api/jobs`` (multipart: ``content``, one or
more ``style``, options as form fields named like the command line's flags), ``GET /api/jobs[/{id}]``,
``/preview``, ``/result``, ``/events`` (server-sent events), ``DELETE /api/jobs/{id}`` (cancel),
``POST /api/plan`` (the memory and time estimate), ``GET /api/options`` (methods, presets, every option, the
built-in styles: the page builds its controls from it) and ``GET /api/builtin/{N}`` (a built-in style's
thumbnail). OpenAPI at ``/docs``. The routes are in ``routes_pages``, ``routes_catalog`` and ``routes_jobs``, what
they do in :mod:`~impasto.web.service` and :mod:`~impasto.web.forms`; this module assembles them.

Safety: options are read from the option schema (:mod:`impasto.schema`, as the command line reads its flags) and
validated by :func:`impasto.options.make_options`, so a bad value gets the CLI's one-line message (HTTP 400);
uploads are limited in bytes (the whole request, counted as it arrives) and in pixels (read from the header first),
and fully decoded by :func:`impasto.io.images.open_image` (with its decompression-bomb guard) before a job is
queued; files are stored under random ids and names the server chooses; each client has a limit of active jobs;
with a token, every request must carry it (``Authorization: Bearer``, a cookie set by ``/?token=``, or
``?token=``); the Host header must name this machine when it listens on loopback only (DNS rebinding) and a
cross-site form cannot post (Origin checked: a request that changes anything must come from this server's own page
or carry no Origin at all, as scripts' requests do; ``Origin: null``, sent by sandboxed frames and local files, is
refused).
A full disk is answered 507 with one line, and nothing of the request is kept.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ImpastoError
from ..plan import check
from ..version import __version__
from . import routes_catalog, routes_jobs, routes_pages
from .config import ServerConfig, is_loopback
from .forms import WebError, option_fields, parse_options
from .guard import Guard
from .jobs import DiskFull, JobNotFound, JobStore, data_lock, log
from .routes_pages import STATIC
from .service import GALLERY, BuiltinStyles, Submissions
from .worker import ClusterWorkerPool, WorkerPool


def create_app(config: ServerConfig, start_workers: bool = True) -> Any:
    """The FastAPI application for ``config``; ``start_workers=False`` leaves running jobs to the caller (tests)."""
    config.data = Path(config.data)
    config.data.mkdir(parents=True, exist_ok=True)
    store = JobStore(config.data)
    state: dict[str, Any] = {"pool": None}
    app = FastAPI(
        title="impasto", version=__version__, lifespan=_lifespan(store, config, state, start_workers), docs_url=None,
        redoc_url=None, description="Neural style transfer: upload a photo and a painting, follow the job, download "
        "the result.",
    )  # fmt: skip
    app.state.store, app.state.config, app.state.runtime = store, config, state
    app.state.submissions = Submissions(store, config, check)
    app.state.builtin = BuiltinStyles(config.data / "builtin-thumbnails")
    app.add_middleware(Guard, config=config)
    _add_error_handlers(app)
    app.include_router(routes_pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # /docs with Swagger UI's files from a package, not from a CDN: the docs work offline too.
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    app.include_router(routes_catalog.router)
    app.include_router(routes_jobs.router)
    return app


def _lifespan(store: JobStore, config: ServerConfig, state: dict[str, Any], start_workers: bool) -> Any:
    """The server's life: the data folder's lock, jobs of a dead server queued again, the janitor expiring old
    jobs every minute, and the workers (``start_workers``), stopped when the server stops."""
    stop_janitor = threading.Event()

    def janitor() -> None:
        while not stop_janitor.wait(60):
            with contextlib.suppress(Exception):
                store.expire(config.keep_hours * 3600, int(config.max_disk_mb * (1 << 20)))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with data_lock(config.data):  # `impasto serve` took it before the server started: held once more here
            store.requeue_running()  # no worker of an earlier server is alive: they die with it
            store.expire(config.keep_hours * 3600, int(config.max_disk_mb * (1 << 20)))
            thread = threading.Thread(target=janitor, name="impasto-janitor", daemon=True)
            thread.start()
            if start_workers and config.cluster:
                state["pool"] = ClusterWorkerPool(store, config.cluster, config.cluster_actors, config.warm_up)
                state["pool"].start()
            elif start_workers and config.workers > 0:
                state["pool"] = WorkerPool(store, config.workers, config.threads, config.warm_up)
                state["pool"].start()
            try:
                yield
            finally:
                stop_janitor.set()
                if state["pool"] is not None:
                    await run_in_threadpool(state["pool"].stop)

    return lifespan


def _add_error_handlers(app: FastAPI) -> None:
    """Every refusal answered with one line: ``{"detail": ...}`` and its status."""

    @app.exception_handler(WebError)
    async def _web_error(request: Request, err: WebError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=err.status)

    @app.exception_handler(ImpastoError)
    async def _impasto_error(request: Request, err: ImpastoError) -> JSONResponse:
        return JSONResponse({"detail": str(err).splitlines()[0]}, status_code=400)

    @app.exception_handler(DiskFull)
    async def _disk_full(request: Request, err: DiskFull) -> JSONResponse:
        log(f"{request.method} {request.url.path} refused: {err}")
        return JSONResponse({"detail": "the server's disk is full: nothing was stored; try again later"},
                            status_code=507)  # fmt: skip

    @app.exception_handler(JobNotFound)
    async def _not_found(request: Request, err: JobNotFound) -> JSONResponse:
        return JSONResponse({"detail": "no such job"}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid request')}"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(err.detail)}, status_code=err.status_code)


def app_from_environment() -> Any:
    """The application for the settings ``impasto serve`` put in the environment (uvicorn's app factory)."""
    return create_app(ServerConfig.from_env())


__all__ = [
    "GALLERY",
    "ServerConfig",
    "app_from_environment",
    "check",
    "create_app",
    "is_loopback",
    "option_fields",
    "parse_options",
]
