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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import api
from .errors import InputError, NonFiniteLossError
from .io.images import load_image, save_image, tensor_to_pil
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


def run_batch(
    contents: Sequence[Path],
    styles: Sequence[Path],
    outdir: Path,
    options: Options,
    fmt: str = "png",
    skip_existing: bool = False,
    on_image: Callable[[int, int], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> BatchResult:
    """Stylize every content image with every style (or with the blend of all, when ``style_blend`` is set),
    writing each result atomically into ``outdir`` with the options recorded. Each job is prepared by
    :func:`impasto.api.prepare` (so each is checked against available memory) and run by one shared
    :class:`~impasto.runner.Runner` (networks built once). ``on_image(done, total)`` follows the progress. A
    write that fails raises :class:`~impasto.errors.OutputError` and ends the batch; the images written
    before stay."""
    warn = warn or (lambda msg: print(msg, file=sys.stderr))
    trained = api.METHODS[options.method].styles == "none"  # a trained network: no style image
    jobs = make_jobs(contents, styles, outdir, options, fmt)
    style_ts = [] if trained else [load_image(s, options.style_size(), "style image") for s in styles]
    runner = Runner(options)
    result = BatchResult()
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if on_image is not None:
            on_image(done, len(jobs))

    start = time.perf_counter()
    try:
        for content in dict.fromkeys(j.content for j in jobs):
            todo = [j for j in jobs if j.content == content]
            if skip_existing:
                result.existing += sum(j.output.exists() for j in todo)
                todo = [j for j in todo if not j.output.exists()]
            if not todo:
                advance(len([j for j in jobs if j.content == content]))
                continue
            try:
                content_t = load_image(content, options.size, "content image")
            except InputError as err:
                warn(f"impasto: warning: skipped {err}")
                result.skipped.append((content, str(err)))
                advance(len(todo))
                continue
            for job in todo:
                chosen = [] if trained else [style_ts[i] for i in job.styles]
                try:
                    image = api.run(api.prepare(content_t, chosen, options), runner=runner)
                except NonFiniteLossError as err:
                    warn(f"impasto: warning: {job.output.name} not written: {err}")
                    result.failed.append((content, str(err)))
                else:
                    meta = api.metadata(options, content, [] if trained else [styles[i] for i in job.styles])
                    save_image(tensor_to_pil(image), job.output, meta)
                    result.written.append(job.output)
                advance(1)
    finally:
        result.seconds = time.perf_counter() - start
    return result
