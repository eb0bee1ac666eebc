"""What the web app's routes do, as plain functions and classes over the job store: a job's view, the estimate of a
form, queuing a job from an upload, and the pictures the page shows (the example paintings' thumbnails, the
built-in styles applied to a bundled photo).
"""

from __future__ import annotations

import io
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image
from starlette.datastructures import UploadFile

from .. import api
from ..io import builtin
from ..io.atomic import write_bytes
from ..plan import Plan, fmt_bytes
from .config import ServerConfig
from .forms import (
    WebError,
    accept_file,
    accept_image,
    builtin_model,
    catalog,
    display_name,
    parse_options,
    parse_size,
    uploadable,
)
from .jobs import DiskFull, Job, JobStore, folder_bytes, is_disk_full, new_id

HERE = Path(__file__).resolve().parent
GALLERY_DIR = HERE / "gallery"
#: The bundled example styles (public-domain paintings; see gallery/CREDITS.md): name -> (file, title).
GALLERY = {
    "starry_night": ("starry_night.jpg", "Vincent van Gogh, The Starry Night (1889)"),
    "the_scream": ("the_scream.jpg", "Edvard Munch, The Scream (1893)"),
    "shipwreck": ("shipwreck.jpg", "J. M. W. Turner, The Shipwreck (c. 1805)"),
}
#: The photo the built-in styles are shown on (Chelsea the cat, CC0; see gallery/CREDITS.md).
BUILTIN_PHOTO = GALLERY_DIR / "chelsea.jpg"
#: Longest side of a built-in style's thumbnail, in pixels.
BUILTIN_THUMB = 96


def job_view(store: JobStore, job: Job) -> dict[str, Any]:
    """What the API says about a job."""
    base = f"/api/jobs/{job.id}"
    return {
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


def estimate_view(plan: Plan) -> dict[str, Any]:
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


def estimate_form(form: Any) -> dict[str, Any]:
    """The estimate of POST /api/plan's form: the images' sizes (``content_size``, ``style_size``...) and options.
    A method that needs a file (a trained model) is planned before it is uploaded: with its defaults."""
    fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    sizes = [v for k, v in form.multi_items() if k == "style_size"]
    content = fields.pop("content_size", "")
    fields.pop("style_size", None)
    method = next((m for m in catalog()["methods"] if m["name"] == fields.get("method", "").strip()), None)
    opts = parse_options(fields, {name: Path(f"{name}.pt") for name in (method["files"] if method else [])})
    return estimate_view(api.plan_sizes(parse_size(content), [parse_size(s) for s in sizes], opts))


def result_name(job: Job) -> str:
    """The file name a job's result is downloaded as: ``PHOTO-STYLE.png`` from the names the client gave."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(job.inputs["content"]["name"]).stem)[:40] or "result"
    styles = job.inputs["styles"] or list(job.inputs.get("files", {}).values())  # a trained model: its name
    if not styles and builtin.is_builtin(job.options.get("model")):
        styles = [{"name": builtin.tag(job.options["model"])}]
    style = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(styles[0]["name"]).stem if styles else "")[:40] or "style"
    return f"{stem}-{style}.png"


@dataclass
class Submissions:
    """Queuing jobs from uploads: every check (form, options, files, pictures, the plan, the disk budget) before a
    job is queued, and nothing of a refused request kept. ``check`` refuses a plan that cannot fit."""

    store: JobStore
    config: ServerConfig
    check: Callable[[Plan], Plan]

    @property
    def too_many(self) -> str:
        return (f"too many jobs queued or running for this client ({self.config.max_active_per_client}): "
                "wait for one to finish or cancel one")  # fmt: skip

    def max_files(self) -> int:
        """The most files a job's form may carry."""
        return self.config.max_styles + 1 + len(uploadable())

    def submit(self, form: Any, client: str, session: str) -> Job:
        """Queue the job a POST /api/jobs form asks for (raises :class:`WebError` or :class:`InputError`)."""
        config, store = self.config, self.store
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
        spec = next(m for m in catalog()["methods"] if m["name"] == opts.method)
        named = {"model"} if builtin_model(fields) else set()  # a built-in style needs no file
        for needed in spec["files"]:
            if needed not in file_fields and needed not in named:
                raise WebError(400, f"--method {opts.method} needs a file: send it as the form field '{needed}'")
        if not styles and spec["styles"] != "none":
            raise WebError(400, "send one or more style images as form fields 'style' (files)")
        api.as_list(styles, opts)  # as many style images as the method takes, one blend weight each
        job_id = new_id()
        folder = store.folder(job_id)
        try:
            folder.mkdir()
            uploads = {k: accept_file(v, folder, k) for k, v in file_fields.items()
                       if k in spec["files"] and k not in named}  # fmt: skip
            opts = parse_options(fields, uploads)
            content = accept_image(contents[0], folder, "content", "content image", config.max_pixels)
            style_info = [accept_image(s, folder, f"style{i}", f"style image {i + 1}", config.max_pixels)
                          for i, s in enumerate(styles)]  # fmt: skip
            p = self.check(api.plan(folder / content["file"], [folder / s["file"] for s in style_info], opts))
            self._within_budget(folder)
            return store.create(
                job_id, options=opts.to_dict(),
                inputs={"content": content, "styles": style_info,
                        "files": {k: {"file": p.name, "name": display_name(file_fields[k].filename, k)}
                                  for k, p in uploads.items()}},
                method=opts.method, iterative=p.iterative, total=sum(s.steps for s in p.scales) if p.iterative else 1,
                estimate=estimate_view(p), client=client, session=session, max_active=config.max_active_per_client,
            )  # fmt: skip
        except BaseException as err:
            shutil.rmtree(folder, ignore_errors=True)
            if isinstance(err, OSError) and is_disk_full(err) and not isinstance(err, DiskFull):
                raise DiskFull(f"the disk of the data folder {config.data} is full ({err})") from None
            raise

    def _within_budget(self, folder: Path) -> None:
        """Expire old jobs to make room for ``folder``'s; 507 when there is still none."""
        config, store = self.config, self.store
        budget = config.max_disk_mb * (1 << 20)
        if store.total_bytes() + folder_bytes(folder) > budget:
            store.expire(config.keep_hours * 3600, int(budget) - folder_bytes(folder))
            if store.total_bytes() + folder_bytes(folder) > budget:
                raise WebError(507, "the server's disk budget for jobs is full: try again when jobs have finished")


# -- pictures of the page ---------------------------------------------------------------------------------------
@lru_cache(maxsize=16)
def thumbnail(path: Path, side: int = 240) -> bytes:
    """A JPEG of the picture at ``path``, its longest side at most ``side`` pixels."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((side, side))
        buffer = io.BytesIO()
        im.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@dataclass
class BuiltinStyles:
    """The built-in styles (``model=builtin:N``) as the page offers them: whether they can run here, and each
    one's thumbnail (the style applied to :data:`BUILTIN_PHOTO`), made once and kept in ``folder``."""

    folder: Path
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _missing: list[str | None] = field(default_factory=list)

    def missing(self) -> str | None:
        """Why the built-in styles cannot run on this server (one line), or None when they can."""
        if not self._missing:
            self._missing.append(builtin.missing())
        return self._missing[0]

    def catalog(self) -> dict[str, Any]:
        """What ``GET /api/options`` says about them: ``available``, the one-line ``message`` when they are not,
        and each style's ``index``, ``label``, ``model`` (the value of the ``model`` field) and ``thumb`` URL."""
        missing = self.missing()
        styles = [] if missing else [
            {"index": i, "label": f"Built-in style {i}", "model": f"{builtin.PREFIX}{i}", "thumb": f"/api/builtin/{i}"}
            for i in range(builtin.STYLES)
        ]  # fmt: skip
        return {"available": missing is None, "message": missing, "styles": styles}

    def thumbnail(self, index: int) -> Path:
        """The thumbnail of style ``index`` (a JPEG file), made the first time it is asked for."""
        if not 0 <= index < builtin.STYLES:
            raise WebError(404, f"no built-in style {index}: they are numbered 0 to {builtin.STYLES - 1}")
        missing = self.missing()
        if missing:
            raise WebError(404, missing)
        path = self.folder / f"{index}.jpg"
        with self._lock:  # one request makes it; the others wait and read it
            if not path.exists():
                self.folder.mkdir(parents=True, exist_ok=True)
                image = api.stylize(BUILTIN_PHOTO, model=f"{builtin.PREFIX}{index}", size=BUILTIN_THUMB,
                                    device="cpu")  # fmt: skip
                buffer = io.BytesIO()
                image.convert("RGB").save(buffer, "JPEG", quality=88)
                write_bytes(path, buffer.getvalue())
        return path
