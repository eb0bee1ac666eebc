"""Batch mode: many content images (a folder or a glob) against one or more styles in one command.

The network is built once and each style's statistics are computed once (fast method), then every
content image is stylized with every style: one output per content x style, named
``{content}-{style}.{format}`` in the output folder (with ``--style-blend``, one output per content named
``{content}-{style1}+{style2}.{format}``). Options, styles and output names are checked before any work;
a content file that cannot be read is skipped with a one-line warning and the run goes on.
With a trained network (``options.model``) there is no style image: one output per content image, named
``{content}-{model}.{format}``.
Exit codes: 0 all written, 1 some run failed, 2 some content files were skipped, 130 interrupted.
"""

from __future__ import annotations

import glob
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from . import api
from .errors import InputError, NonFiniteLossError
from .io.images import encode_image, image_from_bytes, load_image, save_image, tensor_to_pil
from .io.models import model_stand_in
from .options import Options
from .runner import Runner

#: File extensions taken from a content folder.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif")


def is_batch(spec: str) -> bool:
    """True when a content argument names a folder or is a glob pattern (and not an existing file)."""
    p = Path(spec).expanduser()
    return p.is_dir() or (glob.has_magic(spec) and not p.exists())


def find_contents(spec: str) -> list[Path]:
    """Image files (by extension) of a folder (not recursive, hidden files left out) or of a glob (``**``
    recurses), sorted."""
    p = Path(spec).expanduser()
    if p.is_dir():
        found = [f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith(".")]
        found = [f for f in found if f.is_file()]
        if not found:
            raise InputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {p}")
    else:
        found = [Path(f) for f in glob.glob(os.path.expanduser(spec), recursive=True)]
        found = [f for f in found if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file()]
        if not found:
            raise InputError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) match {spec}")
    return sorted(found)


@dataclass
class Job:
    """One output: a content image with one style (or all styles blended)."""

    content: Path
    styles: list[int]  # indices into the style list
    output: Path


def make_jobs(
    contents: Sequence[Path], styles: Sequence[Path], outdir: Path, options: Options, fmt: str = "png"
) -> list[Job]:
    """The batch's outputs: each content with each style (all styles blended with ``style_blend``; the model file
    in place of a style with a trained network). Refuses names that collide or outputs that would overwrite an
    input."""
    blend = options.style_blend is not None
    if api.METHODS[options.method].styles == "none":  # a trained network: its file names the outputs
        styles = [model_stand_in(options.model)]
    groups = [list(range(len(styles)))] if blend else [[i] for i in range(len(styles))]
    jobs: list[Job] = []
    seen: dict[Path, Path] = {}
    inputs = {_key(p) for p in [*contents, *styles]}
    for content in contents:
        for group in groups:
            tag = "+".join(styles[i].stem for i in group)
            out = outdir / f"{content.stem}-{tag}.{fmt}"
            if out in seen:
                raise InputError(f"{seen[out]} and {content} would both write {out.name}; rename one of them")
            if _key(out) in inputs:
                raise InputError(f"output {out} would overwrite an input image; choose another output folder")
            seen[out] = content
            jobs.append(Job(content, group, out))
    return jobs


def _key(p: Path) -> str:
    return os.path.normcase(os.path.realpath(p))


@dataclass
class BatchResult:
    """What a batch run did."""

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # unreadable content files
    failed: list[tuple[Path, str]] = field(default_factory=list)  # runs that failed (non-finite loss)
    existing: int = 0  # outputs left as they were (skip_existing)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return len(self.written) / self.seconds if self.seconds > 0 else 0.0


@dataclass
class BatchTask:
    """One output of a batch, as a worker gets it."""

    content: str  # the content file's path (as the driver names it: recorded in the output's metadata)
    data: bytes | None  # its bytes (sent by the driver), or None: the worker reads ``content``
    styles: list[int]  # indices into the style list
    output: str
    error: str | None = None  # the driver could not read the content: the worker reports it skipped


class BatchWorker:
    """Stylizes batch tasks with one :class:`~impasto.runner.Runner` (networks built once), the style images
    decoded once and the last content image kept for its next styles. ``styles``: (path, bytes or None: read
    the path) each. ``io="shared"`` writes each result to its output path; ``io="store"`` returns the encoded
    file for the driver to write."""

    def __init__(self, options: Options, styles: Sequence[tuple[str, bytes | None]], io: str = "shared") -> None:
        self.options, self.io = options, io
        self.trained = api.METHODS[options.method].styles == "none"  # a trained network: no style image
        self.style_paths = [Path(p) for p, _ in styles]
        self.style_ts = []
        if not self.trained:
            for path, data in styles:
                source = image_from_bytes(data, path) if data is not None else path
                self.style_ts.append(load_image(source, options.style_size(), "style image"))
        self.runner = Runner(options)
        self.content: tuple[str, torch.Tensor] | None = None

    def load(self, task: BatchTask) -> torch.Tensor:
        """The task's content image at the run's size (the last one kept)."""
        if self.content is None or self.content[0] != task.content:
            self.content = None
            if task.error is not None:
                raise InputError(task.error)
            source = image_from_bytes(task.data, task.content) if task.data is not None else task.content
            self.content = (task.content, load_image(source, self.options.size, "content image"))
        return self.content[1]

    def run(self, task: BatchTask) -> dict:
        """``{"status": "written"}`` (io="shared"), ``{"status": "ok", "data": bytes}`` (io="store"),
        ``{"status": "skipped" | "failed", "error": message}``."""
        o = self.options
        try:
            content_t = self.load(task)
        except InputError as err:
            return {"status": "skipped", "error": str(err)}
        chosen = [] if self.trained else [self.style_ts[i] for i in task.styles]
        try:
            image = api.run(api.prepare(content_t, chosen, o), runner=self.runner)
        except NonFiniteLossError as err:
            return {"status": "failed", "error": str(err)}
        styles = [] if self.trained else [self.style_paths[i] for i in task.styles]
        meta = api.metadata(o, Path(task.content), styles)
        if self.io == "shared":
            save_image(tensor_to_pil(image), task.output, meta)
            return {"status": "written"}
        return {"status": "ok", "data": encode_image(tensor_to_pil(image), task.output, meta)}


class Executor(Protocol):
    """Where a batch's jobs run: ``map`` yields each job with its outcome (:meth:`BatchWorker.run`'s, every
    result written), in the order of ``jobs``."""

    def map(self, options: Options, styles: Sequence[Path], jobs: Sequence[Job]) -> Iterator[tuple[Job, dict]]: ...


class LocalExecutor:
    """Runs a batch's jobs one after another in this process, with one :class:`BatchWorker`."""

    def map(self, options: Options, styles: Sequence[Path], jobs: Sequence[Job]) -> Iterator[tuple[Job, dict]]:
        worker = BatchWorker(options, [(str(s), None) for s in styles])
        for job in jobs:
            yield job, worker.run(BatchTask(str(job.content), None, job.styles, str(job.output)))


def run_batch(
    contents: Sequence[Path],
    styles: Sequence[Path],
    outdir: Path,
    options: Options,
    fmt: str = "png",
    skip_existing: bool = False,
    on_image: Callable[[int, int], None] | None = None,
    warn: Callable[[str], None] | None = None,
    executor: Executor | None = None,
) -> BatchResult:
    """Stylize every content image with every style (or with the blend of all, when ``style_blend`` is set),
    writing each result atomically into ``outdir`` with the options recorded. Each job is prepared by
    :func:`impasto.api.prepare` (so each is checked against available memory) and run by a worker's one
    :class:`~impasto.runner.Runner` (networks built once), here (``executor`` None: :class:`LocalExecutor`) or
    on a cluster (:class:`impasto.cluster.RayExecutor`). ``on_image(done, total)`` follows the progress. A
    content file that cannot be read is skipped with one warning. A write that fails raises
    :class:`~impasto.errors.OutputError` and ends the batch; the images written before stay."""
    warn = warn or (lambda msg: print(msg, file=sys.stderr))
    executor = executor if executor is not None else LocalExecutor()
    jobs = make_jobs(contents, styles, outdir, options, fmt)
    result = BatchResult()
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if on_image is not None:
            on_image(done, len(jobs))

    start = time.perf_counter()
    todo = jobs
    if skip_existing:
        todo = [j for j in jobs if not j.output.exists()]
        result.existing = len(jobs) - len(todo)
        advance(result.existing)
    try:
        used = [] if api.METHODS[options.method].styles == "none" else styles  # a trained network: no style image
        for job, out in executor.map(options, used, todo) if todo else ():
            if out["status"] == "written":
                result.written.append(job.output)
            elif out["status"] == "skipped":
                if not any(c == job.content for c, _ in result.skipped):  # one warning per content file
                    warn(f"impasto: warning: skipped {out['error']}")
                    result.skipped.append((job.content, out["error"]))
            else:
                warn(f"impasto: warning: {job.output.name} not written: {out['error']}")
                result.failed.append((job.content, out["error"]))
            advance(1)
    finally:
        result.seconds = time.perf_counter() - start
    return result
