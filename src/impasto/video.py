"""Video style transfer with temporal consistency: what ``impasto video`` runs, and :func:`stylize_video`.

Frames are decoded, stylized and encoded one at a time (:mod:`impasto.io.video`), so memory does not grow
with the video's length. Between consecutive frames, OpenCV's DIS optical flow is computed forward and
backward on the input frames and checked for consistency (:mod:`impasto.core.flow`, after Ruder et al. 2016);
the previous result is warped to the current frame along the backward flow, and trusted where the check
passes:

* feed-forward methods (``fast``, and any method that runs in one pass): the warped previous result is
  blended into the new frame's stylization with weight ``temporal`` x the (feathered) reliability, so the
  stylization's flicker is damped along the motion while new and occluded content comes from the frame
  itself; the detail that blending and warping take away is then restored band by band and orientation by
  orientation to the frame's own stylization's (:func:`impasto.core.flow.restore_detail`). Style statistics
  are computed once per video (the style images are the same tensors every frame).
* optimizing methods (``gatys``): each frame starts from the warped previous result and minimizes, besides
  the content and style losses, Ruder et al.'s temporal loss (:class:`impasto.methods.terms.TemporalTerm`)
  with weight ``temporal``.

Every finished frame is kept as a PNG in a cache folder beside the output (``OUT.frames/``) while the video is
encoded into a temporary file; at the end the file is renamed to the output and the cache removed. After
Ctrl-C or SIGTERM the frames done so far are finalized as a playable ``OUT.partial.EXT`` (the output path
itself only ever holds a complete video), and ``resume=True`` (``--resume``) continues from the cache: the
cached frames are re-encoded, the next frame's temporal target comes from the last cached one, so the
result is the one an uninterrupted run gives, frame for frame.

This module sits beside :mod:`impasto.api` (as :mod:`impasto.batch` does) and is the API for video:
:func:`stylize_video`, re-exported as ``impasto.stylize_video``; :class:`VideoJob` for front ends that check
everything first and then run with progress.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import api
from .core import flow as flowlib
from .core.checks import check_arguments, check_fields, option
from .core.color import match_color
from .core.progress import Callback
from .errors import InputError, NonFiniteLossError
from .io.atomic import check_writable, same_file, sibling
from .io.images import MAX_SIZE, ImageLike, image_size
from .io.video import (
    MIN_FPS,
    Frame,
    FrameCache,
    VideoReader,
    VideoWriter,
    check_frame_size,
    encoder_for,
    even_size,
    is_frame_folder,
    open_source,
)
from .options import Options, make_options, validate
from .plan import Plan, check, fmt_range
from .runner import Runner
from .version import __version__

#: ``temporal`` of feed-forward methods when not given: the share of the warped previous result blended in
#: where the flow is reliable (docs/guides/video.md: chosen on the benchmark clip).
DEFAULT_BLEND = 0.95
#: ``temporal`` of optimizing methods when not given: the temporal loss's weight (same scale as the content
#: weight with normalized losses; docs/guides/video.md).
DEFAULT_TEMPORAL_LOSS = 1000.0
#: Radius (pixels) over which the reliability weights are feathered for blending.
FEATHER = 2.0
#: Bands of the pyramid in which the blend restores the stylization's detail, the Gaussian window (pixels of
#: each band) over which it compares their energy, the largest gain, and the orientations each band is split
#: into, each with its own gain (:func:`impasto.core.flow.blend`; two: a pan's repeated warps blur along the
#: motion only, and one gain for all directions drew the strokes out into streaks along it).
DETAIL_LEVELS = 3
DETAIL_WINDOW = 8.0
MAX_GAIN = 3.0
DETAIL_ORIENTATIONS = 2
#: Interpolation of the previous result's warp: Lanczos for the blend (what is carried is resampled at every
#: frame, and a softer kernel blurs it a little more each time), bicubic for an optimization's start and target
#: (the optimization redraws the detail).
BLEND_WARP, START_WARP = "lanczos", "cubic"
#: The optical flow's presets (``--flow``).
FLOW_PRESETS = flowlib.PRESETS


@dataclass
class VideoSettings:
    """How a video is read, made consistent and written (the method's options are an :class:`Options`). Each
    field's type and :func:`~impasto.core.checks.option` spec are checked before the video is opened."""

    size: int | None = option(None, lo=16, hi=MAX_SIZE)  # longest side of the frames (None: the video's own)
    temporal: float | None = option(None, lo=0.0)  # blend weight 0..1 (feed-forward) or temporal loss weight
    crf: int | None = option(18, lo=0, hi=63)  # constant rate factor of x264/x265 (0..51)/VP9/AV1 (lower: better)
    codec: str | None = None  # video encoder (None: by the output's extension)
    start: float = option(0.0, lo=0.0)  # seconds into the input
    duration: float | None = option(None, lo=0.0, lo_open=True)  # seconds to take (None: to the end)
    fps: float | None = option(None, lo=MIN_FPS, hi=1000.0)  # frame rate of a folder of frames (default 25)
    audio: bool = True  # copy the audio stream
    resume: bool = False  # continue an interrupted run from its frame cache
    flow: str = option("medium", choices=tuple(FLOW_PRESETS))  # DIS preset: ultrafast, fast, medium


@dataclass
class FrameInfo:
    """Progress after each frame."""

    index: int  # the frame just finished (0-based)
    done: int  # frames finished, cached ones of a resumed run included
    total: int | None  # frames expected (an estimate; None when unknown)
    cached: bool  # taken from the cache of an interrupted run (not stylized again)
    stylize_seconds: float = 0.0
    flow_seconds: float = 0.0
    write_seconds: float = 0.0


@dataclass
class VideoResult:
    """What a finished run did."""

    output: Path
    frames: int  # frames in the output
    stylized: int  # frames stylized by this run (the others came from the cache)
    resumed_from: int
    skipped: int  # input frames that could not be decoded
    seconds: float

    @property
    def frames_per_second(self) -> float:
        return self.stylized / self.seconds if self.seconds > 0 else 0.0


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back until the block ends, then act on them with the handlers they had (in the
    main thread; elsewhere signals do not reach Python code anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    names = (signal.SIGINT, signal.SIGTERM)
    before = {n: signal.signal(n, lambda signum, _frame: got.append(signum)) for n in names}
    try:
        yield
    finally:
        for n, handler in before.items():
            signal.signal(n, handler)
    for n in dict.fromkeys(got):
        handler = before[n]
        if callable(handler):
            handler(n, None)
        elif handler == signal.SIG_DFL:
            signal.raise_signal(n)


class VideoStopped(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a video run: ``partial`` is the playable video of the ``frames`` done so far
    (None when no frame was done, or when a second Ctrl-C stopped its writing), ``cache`` the folder of those
    frames that a ``--resume`` continues from."""

    def __init__(self, partial: Path | None, frames: int, cache: Path) -> None:
        super().__init__("interrupted")
        self.partial, self.frames, self.cache = partial, frames, cache


def _fingerprint(tensors: Sequence[torch.Tensor]) -> list[str]:
    return [hashlib.blake2b(t.detach().float().cpu().contiguous().numpy().tobytes(), digest_size=12).hexdigest()
            for t in tensors]  # fmt: skip


def _tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 or float [0, 1] -> (1, 3, H, W) float32."""
    t = torch.from_numpy(np.array(image, copy=True) if not image.flags.writeable else np.ascontiguousarray(image))
    t = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
    return t.permute(2, 0, 1).unsqueeze(0).contiguous()


def _array(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) float [0, 1] -> (H, W, 3) float32."""
    return image.detach().float().cpu()[0].permute(1, 2, 0).contiguous().numpy()


def quantize(image: np.ndarray) -> np.ndarray:
    """A float [0, 1] frame as uint8, as it is encoded and cached (the next frame is made consistent with this)."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out += _differences(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


@dataclass
class FrameStylizer:
    """Everything that stylizes a video's frames, consistent with the previous result, and nothing that holds
    files open: it can be pickled and sent to other processes (a cluster's actors), which build their own
    :class:`~impasto.runner.Runner` and flow estimator once (:meth:`runner`) and stylize chunks of frames."""

    #: The video's run, prepared once (styles, masks, plan, and the options the frames run with: histogram
    #: colour preservation already applied); each frame runs a copy with its own content, start and target.
    stylization: api.Stylization
    temporal: float
    iterative: bool
    flow: str

    def runner(self) -> Runner:
        assert self.stylization.options is not None
        return Runner(self.stylization.options)

    def estimator(self) -> flowlib.FlowEstimator:
        return flowlib.FlowEstimator(self.flow)

    def frame(
        self,
        runner: Runner,
        estimator: flowlib.FlowEstimator,
        image: np.ndarray,
        prev_in: np.ndarray | None,
        prev_out: np.ndarray | None,
        info: FrameInfo | None = None,
        callback: Callback | None = None,
    ) -> np.ndarray:
        """One frame, consistent with the previous result (``prev_in`` / ``prev_out``: the previous input frame
        and its result, uint8; None for the first); returns it as uint8."""
        info = info if info is not None else FrameInfo(0, 0, None, False)
        content = _tensor(image)
        consistent = prev_in is not None and prev_out is not None and self.temporal > 0
        warped = weights = None
        if consistent:
            t0 = time.perf_counter()
            pair = estimator.pair(prev_in, image)
            weights = pair.reliability()
            warped = flowlib.warp(prev_out.astype(np.float32) / 255.0, pair.backward,
                                  START_WARP if self.iterative else BLEND_WARP)  # fmt: skip
            info.flow_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        temporal = start = None
        if self.iterative and consistent:  # start from the warped previous result, held to it by the loss
            start = _tensor(warped)
            temporal = (start, torch.from_numpy(weights)[None, None])
        run = dataclasses.replace(self.stylization, content=content, start=start, temporal=temporal)
        result = _array(api.run(run, callback if self.iterative else None, runner))
        if not self.iterative and consistent:  # blend the warped previous result in
            result = flowlib.blend(result, warped, weights, self.temporal, FEATHER, DETAIL_LEVELS, DETAIL_WINDOW,
                                   MAX_GAIN, DETAIL_ORIENTATIONS)  # fmt: skip
        info.stylize_seconds = time.perf_counter() - t0
        return quantize(result)

    def chunk(
        self,
        runner: Runner,
        estimator: flowlib.FlowEstimator,
        frames: np.ndarray,
        warm_up: int = 0,
        previous: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Frames (N, H, W, 3) uint8 stylized one after another; the first ``warm_up`` of them only build the
        temporal state (the frames before a chunk, stylized again so that its first frame has a previous
        result to be consistent with) and are left out of the result, (N - warm_up, H, W, 3) uint8.
        ``previous``: the input and result of the frame before, when known exactly (a resumed run's cache)."""
        prev_in, prev_out = previous if previous is not None else (None, None)
        out = []
        for k, image in enumerate(frames):
            result = self.frame(runner, estimator, image, prev_in, prev_out)
            if k >= warm_up:
                out.append(result)
            prev_in, prev_out = image, result
        return np.stack(out) if out else np.zeros((0, *frames.shape[1:]), np.uint8)


class VideoJob:
    """A video run, checked and prepared: input opened (first frame decoded), output path, options, styles,
    masks and the per-frame plan checked, the frame cache inspected. Nothing heavy has run yet;
    :meth:`run` does the work. Use as a context manager (or call :meth:`close`)."""

    def __init__(
        self,
        source: str | os.PathLike,
        style: ImageLike | Sequence[ImageLike] | None,
        output: str | os.PathLike,
        options: Options,
        settings: VideoSettings | None = None,
        warn: Callable[[str], None] | None = None,
        masks: torch.Tensor | None = None,
    ) -> None:
        settings = settings or VideoSettings()
        self.settings = s = VideoSettings(**check_fields(VideoSettings, dataclasses.asdict(settings)))
        self.warn = warn or (lambda message: print(f"impasto: warning: {message}", file=sys.stderr))
        self.source, self.output = Path(source), Path(output)
        self.folder_output = is_frame_folder(self.output)
        self._check_output()
        self.reader = open_source(self.source, s.start, s.duration, s.fps, self.warn)
        try:
            self._prepare(style, options, masks)
        except BaseException:
            self.reader.close()
            raise

    # -- checks ----------------------------------------------------------------------------------------------
    def _check_output(self) -> None:
        s, out = self.settings, self.output
        if same_file(out, self.source):
            raise InputError(f"output {out} is the input; refusing to overwrite it")
        parent = out.parent if str(out.parent) else Path(".")
        if self.folder_output:
            if out.exists() and any(out.iterdir()):
                raise InputError(f"output folder {out} is not empty; give a new or empty folder for the frames")
            if not parent.is_dir():
                raise InputError(f"output folder does not exist: {parent}")
        else:
            if out.is_dir():
                raise InputError(f"output is a folder: {out}")
            if not parent.is_dir():
                raise InputError(f"output folder does not exist: {parent}")
            self.codec = encoder_for(out, s.codec)
            lo, hi = {"libx264": (0, 51), "libx265": (0, 51)}.get(self.codec, (0, 63))
            if s.crf is not None and not lo <= s.crf <= hi:
                raise InputError(f"--crf must be a whole number from {lo} to {hi} for {self.codec}, got {s.crf!r}")
        check_writable(parent)
        self.cache = FrameCache(out.with_name(out.name + ".frames"))
        self.partial = sibling(out, "partial") if not self.folder_output else None

    def _prepare(self, style: ImageLike | Sequence[ImageLike] | None, options: Options,
                 masks: torch.Tensor | None) -> None:  # fmt: skip
        s, r = self.settings, self.reader
        w, h = even_size(*r.display, s.size)
        # Before any frame is scaled to it: a size FFmpeg or the encoder cannot take, or one past the image size
        # limit (then the memory plan, in api.prepare), fails here in one line.
        if not self.folder_output or isinstance(r, VideoReader):
            check_frame_size(w, h, None if self.folder_output else self.codec)
        r.size = (w, h)
        self.size = (w, h)
        opts = validate(dataclasses.replace(options, size=max(w, h)))
        styles = [] if style is None else list(style) if isinstance(style, (list, tuple)) else [style]
        sizes = [image_size(st) for st in styles]
        plan = api.plan_sizes((w, h), sizes, opts)
        self.iterative = plan.iterative
        weight = s.temporal if s.temporal is not None else (DEFAULT_TEMPORAL_LOSS if plan.iterative else DEFAULT_BLEND)
        if not plan.iterative and weight > 1:
            raise InputError(f"--temporal for --method {opts.method} is a blend weight from 0 to 1, got {weight:g}")
        self.temporal = float(weight)
        self.options = validate(dataclasses.replace(opts, temporal_weight=self.temporal if plan.iterative else 0.0))
        if plan.iterative and self.temporal > 0:
            plan = api.plan_sizes((w, h), sizes, self.options)  # the temporal term's memory
        check(plan)  # what cannot fit is refused before any frame is scaled
        first = _tensor(r.first_image())  # the run is prepared on the first frame
        run = api.prepare(first, styles, self.options, masks, planned=plan)
        if self.options.preserve_color == "histogram":
            # Recolour the styles once, to the first frame: their statistics then stay fixed for the whole video.
            run.styles = [match_color(st, first) for st in run.styles]
            run.options = dataclasses.replace(self.options, preserve_color=None)
        self.stylization = run
        self.plan: Plan = run.plan
        self.total = r.info.frames
        self.metadata = api.metadata(self.options, self.source, styles)
        self.metadata["video"] = {
            "temporal": self.temporal, "consistency": "temporal loss" if self.iterative else "blend",
            "flow": f"OpenCV DIS {s.flow}", "start": s.start, "duration": s.duration,
            "size": [w, h],
        }  # fmt: skip
        if r.info.missing:  # a truncated input: the output is that much shorter than its header said
            self.metadata["video"]["truncated_input"] = {"frames_in_header": r.info.frames + r.info.missing,
                                                         "frames_in_file": r.info.frames}  # fmt: skip
        self.manifest = {
            "impasto": __version__,
            "source": _source_identity(self.source),
            "styles": _fingerprint(run.styles),
            "masks": _fingerprint([run.masks]) if run.masks is not None else None,
            "options": self.options.to_dict(),
            "video": {
                "start": s.start,
                "duration": s.duration,
                "fps": s.fps,
                "size": [w, h],
                "temporal": self.temporal,
                "flow": s.flow,
            },  # fmt: skip
        }
        self.resume_from = self._inspect_cache()
        self.writer: VideoWriter | None = None
        if not self.folder_output:  # the container's header is written now: what it cannot take fails here
            audio = r.audio if (s.audio and getattr(r, "audio", None) is not None) else None
            self.writer = VideoWriter(self.output, self.size, r.fps, r.time_base, rotation=r.info.rotation,
                                      crf=s.crf, codec=self.codec, audio=audio, metadata=self.metadata)  # fmt: skip
            if audio is not None:
                r.on_audio = self.writer.copy_audio

    def _inspect_cache(self) -> int:
        cache, s = self.cache, self.settings
        found = cache.manifest()
        frames = cache.count() if cache.folder.is_dir() else 0
        if not s.resume:
            if found is not None and cache.any_frames():
                raise InputError(f"{cache.folder} holds {frames} frame(s) of an interrupted run of this output: "
                                 "--resume continues it (or delete that folder to start again)")  # fmt: skip
            return 0
        if found is None:
            if cache.folder.exists() and cache.any_frames():
                raise InputError(f"{cache.folder} has frames but no readable manifest; delete it to start again")
            self.warn(f"nothing to resume at {cache.folder}; starting from the first frame")
            return 0
        diff = _differences(self.manifest, found)
        if diff:
            raise InputError(f"cannot resume: the frames in {cache.folder} were made with other settings "
                             f"({', '.join(diff[:4])}); delete that folder to start again")  # fmt: skip
        return frames

    # -- running ---------------------------------------------------------------------------------------------
    def describe(self) -> str:
        """The per-frame plan and the whole video's estimate (``--dry-run``)."""
        n = self.total
        frames = f"{n} frames" if n else "frames: unknown count"
        lo, hi = self.plan.spread
        whole = self.plan.load_seconds + self.plan.seconds * n
        total = f", {fmt_range(whole * lo, whole * hi)} in all" if n else ""
        return f"{self.plan.describe()}\nper frame; {frames}{total}"

    def stylizer(self) -> FrameStylizer:
        """What stylizes this video's frames, to be sent elsewhere (e.g. to the actors of a cluster)."""
        return FrameStylizer(self.stylization, self.temporal, self.iterative, self.settings.flow)

    def frames(self, callback: Callback | None = None) -> Iterator[tuple[Frame, np.ndarray, FrameInfo]]:
        """Every input frame with its result, in order, stylized here one after another (the cached frames of a
        resumed run read back from the cache)."""
        stylizer = self.stylizer()
        runner = stylizer.runner()
        estimator = stylizer.estimator()
        prev_in: np.ndarray | None = None
        prev_out: np.ndarray | None = None
        for frame in self.reader:
            i = frame.index
            info = FrameInfo(i, 0, self.total, i < self.resume_from)
            if info.cached:
                out = self.cache.get(i)
            else:
                out = stylizer.frame(runner, estimator, frame.image, prev_in, prev_out, info, callback)
            yield frame, out, info
            prev_in, prev_out = frame.image, out

    def run(
        self,
        on_frame: Callable[[FrameInfo], None] | None = None,
        callback: Callback | None = None,
        frames: Callable[[VideoJob, Callback | None], Iterator[tuple[Frame, np.ndarray, FrameInfo]]] | None = None,
    ) -> VideoResult:
        """Stylize every frame and write the output; see the module's text for interruptions. ``frames``
        replaces :meth:`frames`, the engine that yields each input frame with its result in order (e.g.
        :func:`impasto.cluster.video_frames`, chunks stylized on a Ray cluster); frames are cached and encoded
        here, in order, whatever made them."""
        r, cache = self.reader, self.cache
        writer, self.writer = self.writer, None
        if writer is None and not self.folder_output:
            raise RuntimeError("a VideoJob runs once")
        start_time = time.perf_counter()
        done = stylized = 0
        try:
            cache.begin(self.manifest, self.resume_from)
            engine = frames or VideoJob.frames
            for frame, out, info in engine(self, callback):
                i = frame.index
                with _signals_deferred():  # a frame is cached, encoded and counted, or none of these
                    if not info.cached:
                        t0 = time.perf_counter()
                        cache.put(i, out, {"frame": i + 1})
                        info.write_seconds += time.perf_counter() - t0
                        stylized += 1
                    t0 = time.perf_counter()
                    if writer is not None:
                        writer.write(out, frame.pts)
                    info.write_seconds += time.perf_counter() - t0
                    done += 1
                    info.done = done
                if on_frame is not None:
                    on_frame(info)
            if done == 0:
                raise InputError(f"no frame of {self.source} could be decoded")
            if done < self.resume_from:
                raise InputError(f"the cache holds {self.resume_from} frames but the input has only {done}")
            if writer is not None:
                writer.finish()
                writer = None
                cache.remove()
                if self.partial is not None:
                    self.partial.unlink(missing_ok=True)
            else:
                cache.publish(self.output)
        except KeyboardInterrupt:
            partial = None
            if writer is not None and writer.frames and self.partial is not None:
                try:
                    partial = writer.finish(self.partial)
                except KeyboardInterrupt:  # stopped again while it was written: no partial video, the cache stays
                    partial = None
                writer = None
            raise VideoStopped(partial, done, cache.folder) from None
        except NonFiniteLossError as err:
            kept = ""
            if writer is not None and writer.frames and self.partial is not None:
                kept = f"; the {done} frames before are in {writer.finish(self.partial)}"
                writer = None
            raise NonFiniteLossError(f"frame {done + 1}: {err}{kept}", err.image) from None
        finally:
            if writer is not None:
                writer.abort()
        return VideoResult(self.output, done, stylized, self.resume_from, getattr(r, "skipped", 0),
                           time.perf_counter() - start_time)  # fmt: skip

    def close(self) -> None:
        if self.writer is not None:  # never run: nothing is left behind
            self.writer.abort()
            self.writer = None
        self.reader.close()

    def __enter__(self) -> VideoJob:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _source_identity(path: Path) -> dict:
    """What identifies an input for ``--resume``: its path, size and modification time (a folder: its files)."""
    try:
        st = path.stat()
    except OSError:
        return {"path": str(path)}
    if path.is_dir():
        names = sorted(f.name for f in path.iterdir())
        digest = hashlib.blake2b("\n".join(names).encode(), digest_size=12).hexdigest()
        return {"path": str(path.resolve()), "files": len(names), "names": digest}
    return {"path": str(path.resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def stylize_video(
    source: str | os.PathLike,
    style: ImageLike | Sequence[ImageLike] | None,
    output: str | os.PathLike,
    *,
    preset: str = "default",
    size: int | None = None,
    temporal: float | None = None,
    crf: int | None = 18,
    codec: str | None = None,
    start: float = 0.0,
    duration: float | None = None,
    fps: float | None = None,
    audio: bool = True,
    resume: bool = False,
    flow: str = "medium",
    on_frame: Callable[[FrameInfo], None] | None = None,
    callback: Callback | None = None,
    warn: Callable[[str], None] | None = None,
    **options: Any,
) -> VideoResult:
    """Stylize a video file (or a folder of frames) into ``output`` (a video file, container and encoder by its
    extension, or a folder for PNG frames), temporally consistent.

    ``size``: longest side of the frames (default: the video's). ``temporal``: for feed-forward methods the
    share of the warped previous result blended in where the flow is reliable (0..1, default
    :data:`DEFAULT_BLEND`); for optimizing methods the temporal loss's weight (default
    :data:`DEFAULT_TEMPORAL_LOSS`); 0 stylizes each frame on its own. ``crf``, ``codec``: the encoding.
    ``start`` / ``duration``: seconds of the input to take; ``fps``: a folder's frame rate; ``audio``: copy
    the audio stream; ``resume``: continue an interrupted run. ``options`` are fields of
    :class:`impasto.options.Options` (``method``, ``style_weight``, ...) over the ``preset``. ``on_frame``
    gets a :class:`FrameInfo` after each frame, ``callback`` each optimization step. Ctrl-C raises
    :class:`VideoStopped` after writing the partial video.
    """
    named = {"source": source, "output": output, "preset": preset, "on_frame": on_frame, "callback": callback,
             "warn": warn}  # fmt: skip
    check_arguments(stylize_video, named)  # the style images: when loaded, before any frame is stylized
    settings = VideoSettings(size, temporal, crf, codec, start, duration, fps, audio, resume, flow)
    settings = VideoSettings(**check_fields(VideoSettings, dataclasses.asdict(settings)))
    opts = make_options(preset, **options)
    with VideoJob(source, style, output, opts, settings, warn) as job:
        return job.run(on_frame, callback)
