"""The web app of ``impasto serve``: a FastAPI application over the job queue (:mod:`impasto.web.jobs`).

The page (``static/``) uses the same HTTP API as scripts: ``POST /api/jobs`` (multipart: ``content``, one or
more ``style``, options as form fields named like the command line's flags), ``GET /api/jobs[/{id}]``,
``/preview``, ``/result``, ``/events`` (server-sent events), ``DELETE /api/jobs/{id}`` (cancel),
``POST /api/plan`` (the memory and time estimate) and ``GET /api/options`` (methods, presets, every option:
the page builds its controls from it). OpenAPI at ``/docs``.

Safety: options are parsed by the command line's own parser and validated by :func:`impasto.options.make_options`,
so a bad value gets the CLI's one-line message (HTTP 400); uploads are limited in bytes (the whole request,
counted as it arrives) and in pixels (read from the header first), and fully decoded by
:func:`impasto.io.images.open_image` (with its decompression-bomb guard) before a job is queued; files are
stored under random ids and names the server chooses; each client has a limit of active jobs; with a token,
every request must carry it (``Authorization: Bearer``, a cookie set by ``/?token=``, or ``?token=``); the
Host header must name this machine when it listens on loopback only (DNS rebinding) and a cross-site form
cannot post (Origin checked: a request that changes anything must come from this server's own page or carry no
Origin at all, as scripts' requests do; ``Origin: null``, sent by sandboxed frames and local files, is refused).
A full disk is answered 507 with one line, and nothing of the request is kept.
"""

import asyncio
import contextlib
import hmac
import io
import json
import re
import shutil
import threading
import warnings
from collections.abc import AsyncIterator
from functools import lru_cache
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

from .. import api
from ..cli import stylize as cli_stylize
from ..errors import ImpastoError, InputError
from ..io.images import open_image
from ..options import FIELD_INFO, GROUPS, INIT_KINDS, FieldInfo, Options
from ..plan import check, fmt_bytes
from ..version import __version__
from .config import LOOPBACK_NAMES, ServerConfig, is_loopback
from .jobs import (
    FINISHED,
    DiskFull,
    Job,
    JobNotFound,
    JobStore,
    TooManyJobs,
    data_lock,
    folder_bytes,
    is_disk_full,
    log,
    new_id,
)
from .worker import ClusterWorkerPool, WorkerPool

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
GALLERY_DIR = HERE / "gallery"
#: The bundled example styles (public-domain paintings; see gallery/CREDITS.md): name -> (file, title).
GALLERY = {
    "starry_night": ("starry_night.jpg", "Vincent van Gogh, The Starry Night (1889)"),
    "the_scream": ("the_scream.jpg", "Edvard Munch, The Scream (1893)"),
    "shipwreck": ("shipwreck.jpg", "J. M. W. Turner, The Shipwreck (c. 1805)"),
}
#: Options that name files or devices of the server: not settable from the web.
SERVER_ONLY = ("weights", "masks", "mask_map", "mask_colors", "content_seg", "style_seg", "device", "model")
FORMAT_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "TIFF": "tif", "BMP": "bmp", "GIF": "gif"}
#: The page may load and connect to this server only (and show the pictures the user picked: blob: URLs).
PAGE_POLICY = (b"default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
               b"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")  # fmt: skip
SESSION_COOKIE = "impasto_session"
TOKEN_COOKIE = "impasto_token"


class WebError(Exception):
    """An error answered with ``status`` and one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# -- options from form fields --------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _option_actions() -> dict[str, Any]:
    """The command line's argparse actions of the options the web accepts, by option name (``dest``)."""
    parser = cli_stylize.build_parser()
    wanted = ["preset", *cli_stylize._OPTION_ARGS]
    actions: dict[str, Any] = {}
    for group in parser._action_groups:
        for action in group._group_actions:
            if action.dest in wanted and action.dest not in SERVER_ONLY and action.option_strings:
                actions[action.dest] = (action, group.title)
    return actions


@lru_cache(maxsize=1)
def _catalog() -> dict[str, Any]:
    """Methods, presets, defaults and choices (fixed while the server runs)."""
    return api.catalog()


def _flag(action: Any) -> str:
    return max(action.option_strings, key=len)


def option_fields() -> list[dict[str, Any]]:
    """Every option the web accepts, for the page's controls and the OpenAPI schema: name, flag, help, kind
    (int, float, choice, list, text), choices, default, the command line's group (``cli_group``) and, from
    :data:`impasto.options.FIELD_INFO`, a ``label`` and ``hint`` for people, the page's ``group`` and the
    ``methods`` it applies to (None: all); in :data:`impasto.options.GROUPS` order."""
    defaults = Options().to_dict()
    out = []
    for name, (action, group) in _option_actions().items():
        info = FIELD_INFO.get(name) or FieldInfo(_flag(action).lstrip("-").replace("-", " ").capitalize(), "Other")
        if action.choices:
            kind = "choice"
        elif action.type in (int, float):
            kind = action.type.__name__
        elif action.type is None:
            kind = "text"
        else:
            kind = "list"
        out.append({
            "name": name, "flag": _flag(action), "help": action.help or "", "kind": kind,
            "choices": list(action.choices) if action.choices else None,
            "default": defaults.get(name, action.default), "cli_group": group, "group": info.group,
            "label": info.label, "hint": info.hint, "methods": list(info.methods) if info.methods else None,
        })  # fmt: skip
    order, names = {g: i for i, g in enumerate(GROUPS)}, list(FIELD_INFO)
    return sorted(out, key=lambda f: (order.get(f["group"], len(order)),
                                      names.index(f["name"]) if f["name"] in names else len(names)))  # fmt: skip


def _raise_input_error(message: str) -> None:
    raise InputError(message)


def uploadable() -> set[str]:
    """Options naming an input file that some method needs: a web user uploads the file under that field name
    (for example ``model``, a trained network); the page asks for them from the catalog."""
    return {name for method in _catalog()["methods"] for name in method["files"]}


def parse_options(fields: dict[str, str], uploads: dict[str, Path] | None = None) -> Options:
    """Options from form fields named like the command line's flags (``size`` or ``--size``; ``preserve-color`` or
    ``preserve_color``), parsed and validated as the command line does: the same one-line messages. ``uploads``
    are the server files of uploaded file options (option name -> stored path)."""
    actions = _option_actions()
    argv = ["content"]  # the style images' count is checked by the caller (impasto.api.as_list)
    for name, path in (uploads or {}).items():
        argv += [f"--{name.replace('_', '-')}", str(path)]
    for raw, value in fields.items():
        name = raw.lstrip("-").replace("-", "_")
        if name in uploadable():
            raise InputError(f"send --{name.replace('_', '-')} as a file in the form field '{name}', not as text")
        if name in SERVER_ONLY:
            raise InputError(f"--{name.replace('_', '-')} is not available from the web: it names a server file")
        if name not in actions:
            known = ", ".join(sorted(actions))
            raise InputError(f"unknown field '{raw[:40]}' (options are named like the command line's flags: {known})")
        if value.strip() == "":
            continue
        argv += [_flag(actions[name][0]), value]
    parser = cli_stylize.build_parser()
    parser.error = _raise_input_error  # type: ignore[method-assign]  # one line, as the CLI prints it
    args = parser.parse_args(argv)
    opts = cli_stylize.options_from_args(args)
    if opts.init not in INIT_KINDS:
        raise InputError(
            f"--init must be one of {', '.join(INIT_KINDS)} from the web (a start image file is not accepted)"
        )
    return opts


# -- uploads -------------------------------------------------------------------------------------------------
def display_name(filename: str | None, fallback: str) -> str:
    """A client's file name for messages and metadata only (never a path): its last part, printable, short."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()[:80]
    return name or fallback


def accept_image(upload: Any, folder: Path, stem: str, what: str, max_pixels: int) -> dict[str, Any]:
    """Store one uploaded image as ``folder/stem.EXT`` after checking its size and decoding it whole; returns
    {file, name, width, height}. Raises :class:`WebError` with the command line's message."""
    name = display_name(upload.filename, what)
    tmp = folder / f"{stem}.img"
    upload.file.seek(0)
    with open(tmp, "wb") as out:
        shutil.copyfileobj(upload.file, out, 1 << 20)
    try:
        w, h, fmt = _header(tmp)
        if w * h > max_pixels:
            raise WebError(413, f"image too large: {name} is {w}x{h} (limit {max_pixels // 1_000_000} megapixels)")
        try:
            im = open_image(tmp)
        except InputError as err:
            message = str(err).replace(str(tmp), name)
            raise WebError(413 if message.startswith("image too large") else 400, message) from None
        ext = FORMAT_EXTENSIONS.get(fmt or "", "img")
        width, height = im.size
        im.close()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    final = folder / f"{stem}.{ext}"
    tmp.replace(final)
    return {"file": final.name, "name": name, "width": width, "height": height}


def accept_file(upload: Any, folder: Path, option: str) -> Path:
    """Store an uploaded file option (a trained model) as ``folder/OPTION.pt`` and check it is what the option
    needs (:func:`impasto.api.model_info` for ``model``), with the command line's message naming the upload."""
    name = display_name(upload.filename, option)
    path = folder / f"{option}.pt"
    upload.file.seek(0)
    with open(path, "wb") as out:
        shutil.copyfileobj(upload.file, out, 1 << 20)
    if option == "model":
        try:
            api.model_info(path)
        except InputError as err:
            path.unlink(missing_ok=True)
            raise WebError(400, str(err).replace(str(path), name)) from None
    return path


def _header(path: Path) -> tuple[int, int, str | None]:
    """(width, height, format) from an image file's header, without decoding; (0, 0, None) when Pillow cannot
    tell (the full decode that follows says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                return im.width, im.height, im.format
    except Exception:  # noqa: BLE001 - reported by open_image
        return (0, 0, None)


def _estimate(plan: Any) -> dict[str, Any]:
    """The estimate of a plan: ``seconds`` of the run itself, ``total_seconds`` with loading the networks, and
    ``range`` (shortest, longest) of the whole wait from this machine's measured speed; ``text`` says it."""
    lo, hi = plan.seconds_range
    return {
        "seconds": round(plan.seconds, 2), "total_seconds": round(plan.total_seconds, 2),
        "range": [round(lo, 1), round(hi, 1)], "peak_bytes": plan.peak_bytes,
        "available_bytes": plan.available_bytes, "fits": plan.fits, "iterative": plan.iterative,
        "steps": sum(s.steps for s in plan.scales),
        "text": f"{plan.time_text}, peak memory {fmt_bytes(plan.peak_bytes)} of {fmt_bytes(plan.available_bytes)} "
        "available",
        "plan": plan.describe(),
    }  # fmt: skip


# -- the guard: token, host, origin, request size -------------------------------------------------------------
class _TooLarge(Exception):
    pass


class Guard:
    """ASGI middleware in front of everything: the token, the Host and Origin checks and the request size limit."""

    def __init__(self, app: Any, config: ServerConfig) -> None:
        self.app, self.config = app, config

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        from starlette.datastructures import Headers

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cfg = self.config
        headers = Headers(scope=scope)
        if cfg.loopback:  # a page on another site cannot reach us through a name that resolves here
            host = urlsplit("//" + headers.get("host", "")).hostname or ""
            if host.lower() not in LOOPBACK_NAMES | {cfg.host.lower()}:
                await _send_error(send, 400, f"unexpected Host header '{host[:60]}': use http://127.0.0.1:{cfg.port}/")
                return
        set_cookie = None
        if cfg.token:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            auth = headers.get("authorization", "")
            cookie = SimpleCookie()
            with contextlib.suppress(Exception):
                cookie.load(headers.get("cookie", ""))
            given = [
                auth[7:] if auth.lower().startswith("bearer ") else None,
                headers.get("x-impasto-token"),
                cookie[TOKEN_COOKIE].value if TOKEN_COOKIE in cookie else None,
                *(query.get("token") or [None]),
            ]
            if not any(g and hmac.compare_digest(g.encode(), cfg.token.encode()) for g in given):
                await _send_error(send, 401, "missing or wrong token: send 'Authorization: Bearer TOKEN' or open "
                                  "/?token=TOKEN once", {"www-authenticate": "Bearer"})  # fmt: skip
                return
            if query.get("token"):
                set_cookie = f"{TOKEN_COOKIE}={cfg.token}; HttpOnly; SameSite=Strict; Path=/"
        if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            origin = headers.get("origin")
            if origin is not None and urlsplit(origin).netloc != headers.get("host"):  # "null" has no netloc
                await _send_error(send, 403, f"cross-site request from {origin[:80]} refused")
                return
            length = headers.get("content-length")
            if length and length.isdigit() and int(length) > cfg.max_upload_bytes:
                await _send_error(send, 413, self._too_large())
                return
        received = 0
        started = False

        async def counted_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cfg.max_upload_bytes:
                    raise _TooLarge
            return message

        async def send_with_cookie(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                # same-origin: other sites learn nothing, and the page's own requests carry its origin (with
                # no-referrer, browsers send "Origin: null" from it, which the check above refuses)
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]
                if scope["path"] == "/":
                    extra.append((b"content-security-policy", PAGE_POLICY))
                if set_cookie:
                    extra.append((b"set-cookie", set_cookie.encode()))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, counted_receive, send_with_cookie)
        except _TooLarge:
            if not started:
                await _send_error(send, 413, self._too_large())

    def _too_large(self) -> str:
        return f"upload too large: more than {self.config.max_upload_bytes / (1 << 20):.3g} MB in one request"


async def _send_error(send: Any, status: int, message: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- the application -----------------------------------------------------------------------------------------
def job_view(store: JobStore, job: Job) -> dict[str, Any]:
    """What the API says about a job."""
    base = f"/api/jobs/{job.id}"
    view = {
        "id": job.id, "state": job.state, "method": job.method, "iterative": job.iterative,
        "step": job.step, "total": job.total, "loss": job.loss, "losses": job.losses,
        "eta": None if job.eta is None else round(job.eta, 1), "error": job.error,
        "created": job.created, "started": job.started, "finished": job.finished,
        "attempts": job.attempts, "resumed_from": job.resumed_from, "preview_step": job.preview_step,
        "has_result": job.has_result, "estimate": job.estimate, "options": job.options,
        "content": {k: job.inputs["content"][k] for k in ("name", "width", "height")},
        "styles": [{k: s[k] for k in ("name", "width", "height")} for s in job.inputs["styles"]],
        "position": store.position(job) if job.state == "queued" else None,
        "links": {"self": base, "events": f"{base}/events", "preview": f"{base}/preview", "result": f"{base}/result",
                  "content": f"{base}/content"},
    }  # fmt: skip
    return view


def _form_schema(files: bool = True) -> dict[str, Any]:
    """The multipart body of POST /api/jobs (``files``) or /api/plan, for OpenAPI."""
    if files:
        props: dict[str, Any] = {
            "content": {"type": "string", "format": "binary", "description": "the photo"},
            "style": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "description": "style image(s)",
            },
        }
    else:
        props = {
            "content_size": {"type": "string", "description": "the photo's WIDTHxHEIGHT, e.g. 1024x768"},
            "style_size": {"type": "array", "items": {"type": "string"}, "description": "each style's WIDTHxHEIGHT"},
        }
    for f in option_fields():
        kind = {"int": "integer", "float": "number"}.get(f["kind"], "string")
        prop: dict[str, Any] = {"type": kind, "description": f"{f['flag']}: {f['help']}"}
        if f["choices"]:
            prop["enum"] = f["choices"]
        props[f["name"]] = prop
    required = ["content", "style"] if files else ["content_size", "style_size"]
    return {"type": "object", "required": required, "properties": props}


def _plan_schema() -> dict[str, Any]:
    return _form_schema(files=False)


def create_app(config: ServerConfig, start_workers: bool = True) -> Any:
    """The FastAPI application for ``config``; ``start_workers=False`` leaves running jobs to the caller (tests).

    FastAPI is imported here, not with the module, so that the command line starts without it."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException as StarletteHTTPException

    config.data = Path(config.data)
    config.data.mkdir(parents=True, exist_ok=True)
    store = JobStore(config.data)
    state: dict[str, Any] = {"pool": None}
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

    app = FastAPI(
        title="impasto", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
        description="Neural style transfer: upload a photo and a painting, follow the job, download the result.",
    )  # fmt: skip
    app.state.store, app.state.config, app.state.runtime = store, config, state
    app.add_middleware(Guard, config=config)

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

    # -- page ---------------------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page(request: Request) -> HTMLResponse:
        response = HTMLResponse((STATIC / "index.html").read_text(), headers={"cache-control": "no-cache"})
        if SESSION_COOKIE not in request.cookies:
            response.set_cookie(SESSION_COOKIE, new_id(), max_age=365 * 86400, httponly=True, samesite="strict")
        return response

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # /docs with Swagger UI's files from a package, not from a CDN: the docs work offline too.
    from fastapi.openapi.docs import get_swagger_ui_html
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="impasto HTTP API", swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css", swagger_favicon_url="/docs-assets/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},
        )  # fmt: skip

    @app.get("/api/options", summary="Methods, presets and every option the page offers")
    def options() -> dict[str, Any]:
        return {
            **_catalog(), "fields": option_fields(), "version": __version__,
            "gallery": [{"name": k, "title": t, "url": f"/api/gallery/{k}", "thumb": f"/api/gallery/{k}?thumb=1"}
                        for k, (_, t) in GALLERY.items()],
            "limits": {"max_upload_bytes": config.max_upload_bytes, "max_pixels": config.max_pixels,
                       "max_styles": config.max_styles, "max_active_per_client": config.max_active_per_client},
        }  # fmt: skip

    @app.get("/api/gallery/{name}", summary="A bundled example style image")
    def gallery(name: str, thumb: bool = False) -> Response:
        if name not in GALLERY:
            raise WebError(404, "no such example")
        path = GALLERY_DIR / GALLERY[name][0]
        if thumb:
            return Response(_thumbnail(path), media_type="image/jpeg", headers={"cache-control": "max-age=86400"})
        return FileResponse(path, headers={"cache-control": "max-age=86400"})

    @app.get("/api/health", summary="Workers and queue")
    def health() -> dict[str, Any]:
        pool = state["pool"]
        workers, ready = (len(pool.pids()), pool.ready()) if pool else (0, 0)
        return {"ok": True, "workers": workers, "ready_workers": ready, "jobs": store.counts()}

    plan_body = {"content": {"multipart/form-data": {"schema": _plan_schema()}}}
    job_body = {"required": True, "content": {"multipart/form-data": {"schema": _form_schema()}}}

    @app.post("/api/plan", summary="Memory and time estimate of a run from the images' sizes",
              openapi_extra={"requestBody": plan_body})  # fmt: skip
    async def plan(request: Request) -> dict[str, Any]:
        form = await _read_form(request, 0)
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        sizes = [v for k, v in form.multi_items() if k == "style_size"]
        content = fields.pop("content_size", "")
        fields.pop("style_size", None)
        # A method that needs a file (a trained model) is planned before it is uploaded: with its defaults.
        method = next((m for m in _catalog()["methods"] if m["name"] == fields.get("method", "").strip()), None)
        opts = parse_options(fields, {name: Path(f"{name}.pt") for name in (method["files"] if method else [])})
        p = api.plan_sizes(_size(content), [_size(s) for s in sizes], opts)
        if opts.style_blend is not None and len(opts.style_blend) != len(sizes):
            raise InputError(f"--style-blend has {len(opts.style_blend)} weights for {len(sizes)} style images")
        return _estimate(p)

    too_many = (f"too many jobs queued or running for this client ({config.max_active_per_client}): "
                "wait for one to finish or cancel one")  # fmt: skip

    @app.post("/api/jobs", status_code=201, summary="Queue a job (multipart: content, style..., options)",
              openapi_extra={"requestBody": job_body})  # fmt: skip
    async def submit(request: Request) -> JSONResponse:
        client = request.client.host if request.client else ""
        if store.active_count(client) >= config.max_active_per_client:  # early, before the upload is read
            raise WebError(429, too_many)
        form = await _read_form(request, config.max_styles + 1 + len(uploadable()))
        session = request.cookies.get(SESSION_COOKIE, "")[:64]
        try:
            job = await run_in_threadpool(_submit, form, client, session)
        except TooManyJobs:  # counted again with the insert: requests that raced the check above
            raise WebError(429, too_many) from None
        return JSONResponse(job_view(store, job), status_code=201, headers={"location": f"/api/jobs/{job.id}"})

    def _submit(form: Any, client: str, session: str) -> Job:
        files = uploadable()
        contents = [v for k, v in form.multi_items() if k == "content"]
        styles = [v for k, v in form.multi_items() if k == "style"]
        file_fields = {k: v for k, v in form.multi_items() if k in files and isinstance(v, UploadFile)}
        fields = {k: v for k, v in form.multi_items() if k not in ("content", "style", *file_fields)}
        if len(contents) != 1 or not isinstance(contents[0], UploadFile):
            raise WebError(400, "send one content image as the form field 'content' (a file)")
        if not all(isinstance(s, UploadFile) for s in styles):
            raise WebError(400, "send one or more style images as form fields 'style' (files)")
        if len(styles) > config.max_styles:
            raise WebError(400, f"at most {config.max_styles} style images")
        for k, v in fields.items():
            if not isinstance(v, str):
                raise WebError(400, f"form field '{display_name(k, '?')}' must be text, not a file")
        opts = parse_options(fields, {k: Path(v.filename or k) for k, v in file_fields.items()})  # checked early
        spec = next(m for m in _catalog()["methods"] if m["name"] == opts.method)
        for needed in spec["files"]:
            if needed not in file_fields:
                raise WebError(400, f"--method {opts.method} needs a file: send it as the form field '{needed}'")
        if not styles and spec["styles"] != "none":
            raise WebError(400, "send one or more style images as form fields 'style' (files)")
        api.as_list(styles, opts)  # as many style images as the method takes
        if opts.style_blend is not None and len(opts.style_blend) != len(styles):
            raise InputError(f"--style-blend has {len(opts.style_blend)} weights for {len(styles)} style images")
        job_id = new_id()
        folder = store.folder(job_id)
        try:
            folder.mkdir()
            uploads = {k: accept_file(v, folder, k) for k, v in file_fields.items() if k in spec["files"]}
            opts = parse_options(fields, uploads)
            content = accept_image(contents[0], folder, "content", "content image", config.max_pixels)
            style_info = [accept_image(s, folder, f"style{i}", f"style image {i + 1}", config.max_pixels)
                          for i, s in enumerate(styles)]  # fmt: skip
            p = check(api.plan(folder / content["file"], [folder / s["file"] for s in style_info], opts))
            disk = store.total_bytes() + folder_bytes(folder)
            if disk > config.max_disk_mb * (1 << 20):
                store.expire(config.keep_hours * 3600, int(config.max_disk_mb * (1 << 20)) - folder_bytes(folder))
                if store.total_bytes() + folder_bytes(folder) > config.max_disk_mb * (1 << 20):
                    raise WebError(507, "the server's disk budget for jobs is full: try again when jobs have finished")
            return store.create(
                job_id, options=opts.to_dict(),
                inputs={"content": content, "styles": style_info,
                        "files": {k: {"file": p.name, "name": display_name(file_fields[k].filename, k)}
                                  for k, p in uploads.items()}},
                method=opts.method, iterative=p.iterative, total=sum(s.steps for s in p.scales) if p.iterative else 1,
                estimate=_estimate(p), client=client, session=session, max_active=config.max_active_per_client,
            )  # fmt: skip
        except BaseException as err:
            shutil.rmtree(folder, ignore_errors=True)
            if isinstance(err, OSError) and is_disk_full(err) and not isinstance(err, DiskFull):
                raise DiskFull(f"the disk of the data folder {config.data} is full ({err})") from None
            raise

    @app.get("/api/jobs", summary="Jobs, newest first (scope=session: this browser's)")
    def list_jobs(request: Request, scope: str = "all", limit: int = 100) -> dict[str, Any]:
        session = request.cookies.get(SESSION_COOKIE, "") if scope == "session" else None
        jobs = store.list(session, max(1, min(limit, 1000)))
        return {"jobs": [job_view(store, j) for j in jobs]}

    @app.get("/api/jobs/{job_id}", summary="State, step, total, losses, ETA and error of a job")
    def get_job(job_id: str) -> dict[str, Any]:
        return job_view(store, store.get(job_id))

    @app.delete("/api/jobs/{job_id}", summary="Cancel a queued or running job (purge=true: also delete a finished one)")
    def cancel(job_id: str, purge: bool = False) -> dict[str, Any]:
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

    @app.get("/api/jobs/{job_id}/preview", summary="The latest intermediate image (PNG; the result once done)")
    def preview(job_id: str) -> FileResponse:
        job = store.get(job_id)
        path = store.file(job.id, "preview.png")
        if not path.exists() and job.has_result:
            path = store.file(job.id, "result.png")
        if not path.exists():
            raise WebError(404, "no preview yet")
        return FileResponse(path, media_type="image/png", headers={"cache-control": "no-store"})

    @app.get("/api/jobs/{job_id}/result", summary="The result (PNG with the options embedded)")
    def result(job_id: str) -> FileResponse:
        job = store.get(job_id)
        path = store.file(job.id, "result.png")
        if not job.has_result or not path.exists():
            raise WebError(404 if job.state not in FINISHED else 409, f"job {job_id} has no result ({job.state})")
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(job.inputs["content"]["name"]).stem)[:40] or "result"
        styles = job.inputs["styles"] or list(job.inputs.get("files", {}).values())  # a trained model: its name
        style = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(styles[0]["name"]).stem if styles else "")[:40] or "style"
        return FileResponse(path, media_type="image/png", filename=f"{stem}-{style}.png")

    @app.get("/api/jobs/{job_id}/content", summary="The uploaded content image")
    def content(job_id: str) -> FileResponse:
        job = store.get(job_id)
        return FileResponse(store.file(job.id, job.inputs["content"]["file"]))

    @app.get("/api/jobs/{job_id}/events", summary="Server-sent events: the job's view each time it changes")
    async def events(job_id: str, request: Request) -> StreamingResponse:
        store.get(job_id)

        async def stream() -> AsyncIterator[str]:
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

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})  # fmt: skip

    return app


def app_from_environment() -> Any:
    """The application for the settings ``impasto serve`` put in the environment (uvicorn's app factory)."""
    return create_app(ServerConfig.from_env())


async def _read_form(request: Any, max_files: int) -> Any:
    try:
        return await request.form(max_files=max_files, max_fields=100, max_part_size=64 * 1024)
    except _TooLarge:
        raise
    except Exception as err:  # noqa: BLE001 - a malformed body, however it fails
        if is_disk_full(err):  # the parser keeps large parts in temporary files
            raise DiskFull(f"the disk of the temporary folder is full ({err})") from None
        raise WebError(400, f"cannot read the form: {str(err).splitlines()[0] if str(err) else 'malformed'}") from None


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d{1,6})\s*[xX×]\s*(\d{1,6})\s*", text or "")
    if not m:
        raise InputError(f"image sizes are given as WIDTHxHEIGHT, got '{(text or '')[:40]}'")
    return int(m.group(1)), int(m.group(2))


@lru_cache(maxsize=16)
def _thumbnail(path: Path, side: int = 240) -> bytes:
    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((side, side))
        buffer = io.BytesIO()
        im.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


__all__ = [
    "GALLERY",
    "ServerConfig",
    "app_from_environment",
    "create_app",
    "is_loopback",
    "option_fields",
    "parse_options",
]
