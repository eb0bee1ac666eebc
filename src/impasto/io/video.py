"""Reading and writing videos with PyAV (FFmpeg's libraries, bundled in the ``av`` wheel), folders of frames, and
the on-disk frame cache that lets an interrupted video run resume.

* :func:`open_source` opens a video file (:class:`VideoReader`) or a folder of frames (:class:`FrameFolder`):
  frames come one at a time (never all in memory) as upright RGB arrays at the size asked for (the rotation
  of the container's display matrix applied), with their time stamps; ``start`` / ``duration`` select a part;
  a frame that cannot be decoded is skipped with a warning. A video's audio packets are handed, undecoded,
  to ``on_audio`` as they are read (to be copied into the output unchanged).
* :class:`VideoWriter` encodes frames (H.264 in MP4 by default, other containers and encoders by the file's
  extension or by name) into a temporary file in the destination folder and renames it into place when
  finished, so nothing half-written is ever at the output path. It keeps the frame times, the rotation
  metadata and copies the audio stream.
* :class:`FrameCache` keeps each finished frame as a PNG (written atomically) with a manifest of the run.

Every problem with an input is an :class:`~impasto.errors.InputError`, every failed write an
:class:`~impasto.errors.OutputError`, in one line.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import InputError, OutputError
from .atomic import write_text
from .images import open_image, save_image, to_rgb

#: Image files taken from a folder of frames, in natural order of their names.
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
#: Encoder by output extension; other extensions take their container's default encoder.
ENCODERS = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9"}
#: Encoders that take a constant rate factor (``--crf``), with their range.
CRF_RANGE = {"libx264": (0, 51), "libx265": (0, 51), "libvpx-vp9": (0, 63), "libvpx": (4, 63), "libsvtav1": (0, 63)}
#: Largest side each encoder takes (x264: 16384, measured); others are held to FFmpeg's own frame limit alone.
MAX_SIDE = {"libx264": 16384, "gif": 65535}
#: FFmpeg's frame limit (``av_image_check_size``): 8 x (width + 128) x (height + 128) below 2^31 - 1, beyond
#: which neither a frame can be scaled nor an encoder opened.
_FFMPEG_FRAME_LIMIT = 2**31 - 1
#: FFmpeg demuxers that read single images: such a file is a picture, not a video.
_IMAGE_DEMUXERS = re.compile(r"^(image2|.*_pipe|apng)$")

Warn = Callable[[str], None]


def _av():  # noqa: ANN202 - the av module
    try:
        import av
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError("video needs PyAV: pip install 'impasto[video]'") from exc
    return av


def _first_line(exc: BaseException) -> str:
    """An error's message in one line (FFmpeg's without the errno and the function that failed)."""
    strerror = getattr(exc, "strerror", None)
    text = (strerror if isinstance(strerror, str) and strerror else str(exc)).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _warn_default(message: str) -> None:
    import sys

    print(f"impasto: warning: {message}", file=sys.stderr)


@dataclass
class VideoInfo:
    """What a source holds, as read before any frame is stylized."""

    path: Path
    width: int  # upright (as displayed)
    height: int
    rotation: int  # degrees counterclockwise the stored frames are turned for display: 0, 90, 180 or 270
    fps: Fraction
    time_base: Fraction  # of the frames' ``pts``
    frames: int | None  # frames expected after ``start`` / ``duration`` (an estimate; None when unknown)
    audio: str | None = None  # the audio codec, None without audio
    folder: bool = False
    missing: int = 0  # frames the header promises that are not in the file (a truncated file), left out of ``frames``


@dataclass
class Frame:
    """One decoded frame: its index among the frames kept, its time stamp from the output's start, its pixels."""

    index: int
    pts: int  # in the source's time base, 0 at the first frame kept
    time: float  # seconds
    image: np.ndarray  # (H, W, 3) uint8 RGB, upright, at the size asked for


def even_size(width: int, height: int, longest: int | None = None) -> tuple[int, int]:
    """(width, height) scaled so that the longest side is ``longest`` (None: as is), each side then made even
    (most video encoders store colour at half resolution) and at least 2."""
    if longest is not None:
        scale = longest / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    return max(2, width - width % 2), max(2, height - height % 2)


def _ffmpeg_takes(width: int, height: int) -> bool:
    return 8 * (width + 128) * (height + 128) < _FFMPEG_FRAME_LIMIT


def check_frame_size(width: int, height: int, codec: str | None = None) -> None:
    """Raise :class:`InputError` (naming a ``--size`` that would do) when frames of ``width`` x ``height`` are
    more than FFmpeg can scale or ``codec`` (None: no encoder) can encode."""
    longest = max(width, height)
    limit = MAX_SIDE.get(codec or "")
    if limit is not None and longest > limit:
        raise InputError(f"{codec} cannot encode frames of {width}x{height} (at most {limit} pixels a side); "
                         f"use --size {limit} or smaller")  # fmt: skip
    if not _ffmpeg_takes(width, height):
        fits = longest - longest % 64
        while fits > 64 and not _ffmpeg_takes(*even_size(width, height, fits)):
            fits -= 64
        raise InputError(f"frames of {width}x{height} are more than FFmpeg can scale or encode; "
                         f"use a smaller --size (at most about {fits})")  # fmt: skip


def is_frame_folder(path: str | os.PathLike) -> bool:
    """Whether a path names a folder (of frames, as an input or an output)."""
    p = Path(path)
    return p.is_dir() or (not p.exists() and (str(path).endswith(("/", os.sep)) or p.suffix == ""))


# -- reading ---------------------------------------------------------------------------------------------
class VideoReader:
    """Frames of a video file, decoded one at a time. Open with :func:`open_source`; use as a context manager.

    ``size`` (width, height), upright, is the size frames come at (default: the video's); set it before
    iterating. ``on_audio(packet, origin)`` receives each audio packet in the selected part, undecoded,
    ``origin`` being the source time (seconds) of the output's start.
    """

    def __init__(self, path: Path, start: float = 0.0, duration: float | None = None, warn: Warn | None = None):
        av = _av()
        self.path, self.warn = path, warn or _warn_default
        self.on_audio: Callable[[Any, float], None] | None = None
        self.skipped = 0
        try:
            self.container = av.open(str(path), "r")
        except FileNotFoundError:
            raise InputError(f"video not found: {path}") from None
        except (av.FFmpegError, OSError, ValueError) as exc:
            why = _first_line(exc)
            raise InputError(f"not a video file (or a format FFmpeg cannot read): {path} ({why})") from None
        try:
            self._open(start, duration)
        except BaseException:
            self.container.close()
            raise

    def _open(self, start: float, duration: float | None) -> None:
        av, c, path = _av(), self.container, self.path
        if _IMAGE_DEMUXERS.match(c.format.name or ""):
            raise InputError(f"{path} is a still image, not a video (stylize it with: impasto {path.name} STYLE)")
        if not c.streams.video:
            raise InputError(f"no video stream in {path}")
        self.stream = c.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.audio = c.streams.audio[0] if c.streams.audio else None
        rate = self.stream.average_rate or self.stream.guessed_rate or self.stream.base_rate
        if not rate or rate <= 0:
            raise InputError(f"{path} has no frame rate")
        self.fps, self.time_base = Fraction(rate), Fraction(self.stream.time_base)
        length = float(c.duration / av.time_base) if c.duration else None
        if length is not None and start > 0 and start >= length:
            raise InputError(f"--start {start:g} s is past the end of {path.name} ({length:.2f} s)")
        self.start, self.end = start, (start + duration if duration is not None else None)
        if start > 0:
            try:
                c.seek(int(start / self.time_base), stream=self.stream, backward=True, any_frame=False)
            except av.FFmpegError as exc:
                raise InputError(f"cannot seek to --start {start:g} s in {path}: {_first_line(exc)}") from None
        self._packets = c.demux(*[s for s in (self.stream, self.audio) if s is not None])
        self._backlog: list[Any] = []  # audio packets read with the first frame, before iterating
        self._iterating = False
        self._frames = self._decoded()
        first = next(self._frames, None)
        if first is None:
            where = f" after --start {start:g} s" if start > 0 else ""
            raise InputError(f"no frame could be decoded from {path}{where}")
        self._first = first
        self.origin_pts = first.pts if first.pts is not None else 0
        self.origin = float(self.origin_pts * self.time_base)
        self.rotation = int(round((first.rotation or 0) / 90.0)) % 4 * 90
        w, h = first.width, first.height
        if self.rotation in (90, 270):
            w, h = h, w
        self.display = (w, h)
        self.size = (w, h)
        n = self.stream.frames or 0
        if not n and self.stream.duration:
            n = round(float(self.stream.duration * self.time_base * self.fps))
        elif not n and length:
            n = round(length * float(self.fps))
        if n and (start > 0 or duration is not None):
            left = max(0.0, n / float(self.fps) - start)
            n = round(min(left, duration if duration is not None else left) * float(self.fps))
        self.info = VideoInfo(path, w, h, self.rotation, self.fps, self.time_base, n or None,
                              self.audio.codec_context.name if self.audio is not None else None)  # fmt: skip
        if n:
            present = self._frames_in_file()
            if present is not None and n - present > max(1, n // 100):  # duration-based counts may be 1 off
                self.info.frames, self.info.missing = present, n - present
                part = " in the part taken" if start > 0 or duration is not None else ""
                self.warn(f"{path.name}: the header gives {n} frames{part} but only {present} are in the file "
                          f"(truncated?); the output will be {self.info.missing} or more frames short")  # fmt: skip

    def _frames_in_file(self) -> int | None:
        """Video packets in the selected part, counted without decoding (one frame each), by a second reading of
        the file; None when it cannot be read through."""
        av = _av()
        try:
            with av.open(str(self.path), "r") as c:
                stream = c.streams.video[0]
                tb, count = Fraction(stream.time_base), 0
                low = self.start - 0.5 / float(self.fps)
                for packet in c.demux(stream):
                    if not packet.size:
                        continue
                    t = float(packet.pts * tb) if packet.pts is not None else None
                    if t is not None and (t < low or (self.end is not None and t >= self.end - 1e-6)):
                        continue
                    count += 1
        except (av.FFmpegError, OSError):
            return None
        return count

    def _decoded(self) -> Iterator[Any]:
        """Decoded video frames from ``start`` on (audio packets passed on or kept), corrupt ones skipped."""
        av = _av()
        while True:
            try:
                packet = next(self._packets)
            except StopIteration:
                return
            except av.FFmpegError as exc:  # the container is damaged from here on: end the video there
                self.warn(f"{self.path.name}: cannot read past this point ({_first_line(exc)}); the video ends here")
                return
            if packet.stream.type == "audio":
                if packet.pts is not None and packet.size:
                    if not self._iterating:
                        self._backlog.append(packet)
                    elif self.on_audio is not None:
                        self._audio(packet)
                continue
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                t = float(packet.pts * self.time_base) if packet.pts is not None else None
                self._skip(t, _first_line(exc))
                continue
            for frame in frames:
                t = frame.time
                if getattr(frame, "is_corrupt", False):
                    self._skip(t, "corrupt data")
                    continue
                if t is not None and t < self.start - 0.5 / float(self.fps):
                    continue  # before --start (seeking lands on the key frame before it)
                if self.end is not None and t is not None and t >= self.end - 1e-6:
                    return
                yield frame

    def _skip(self, t: float | None, why: str) -> None:
        self.skipped += 1
        where = f" at {t:.3f} s" if t is not None else ""
        self.warn(f"{self.path.name}: skipped a frame that cannot be decoded{where} ({why})")

    def _audio(self, packet: Any) -> None:
        """Pass on an audio packet of the selected part. From the start of the file every packet is kept (one
        before the first frame, such as an AAC encoder's priming packet, with its negative time stamp, as
        FFmpeg's stream copy does); after ``--start``, those that start before the first frame are dropped (the
        audio then starts up to one packet later, in sync, and the video at 0)."""
        t = float(packet.pts * packet.time_base)
        if self.start > 0 and t < self.origin - 1e-6:
            return
        if (self.end is None or t < self.end) and self.on_audio is not None:
            self.on_audio(packet, self.origin)

    def _array(self, frame: Any) -> np.ndarray:
        """A decoded frame as an upright (H, W, 3) uint8 RGB array at ``size``."""
        av = _av()
        w, h = self.size
        stored = (h, w) if self.rotation in (90, 270) else (w, h)
        Interpolation = av.video.reformatter.Interpolation
        interp = Interpolation.AREA if stored[0] < frame.width else Interpolation.BICUBIC
        arr = frame.to_ndarray(format="rgb24", width=stored[0], height=stored[1], interpolation=interp,
                               src_color_range=frame.color_range)  # fmt: skip
        k = self.rotation // 90
        return np.ascontiguousarray(np.rot90(arr, k)) if k else arr

    def first_image(self) -> np.ndarray:
        """The first frame (as :meth:`__iter__` will give it), without consuming it."""
        if self._first is None:
            raise RuntimeError("the reader has started")
        return self._array(self._first)

    def __iter__(self) -> Iterator[Frame]:
        av = _av()
        self._iterating = True
        for packet in self._backlog:
            if self.on_audio is not None:
                self._audio(packet)
        self._backlog = []
        index, last_pts = 0, None
        step = max(1, round(1 / float(self.fps * self.time_base)))
        frames = self._frames if self._first is None else _chain(self._first, self._frames)
        self._first = None
        for frame in frames:
            pts = frame.pts if frame.pts is not None else (last_pts + step if last_pts is not None else 0)
            if last_pts is not None and pts <= last_pts:
                continue  # a repeated time stamp: keep the first frame shown at it
            last_pts = pts
            try:
                arr = self._array(frame)
            except (av.FFmpegError, ValueError) as exc:
                self._skip(frame.time, _first_line(exc))
                continue
            rel = pts - self.origin_pts
            yield Frame(index, rel, float(rel * self.time_base), arr)
            index += 1

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


class FrameFolder:
    """Frames from a folder of images (sorted by name, numbers in names compared as numbers) at ``fps``."""

    def __init__(self, path: Path, fps: float | Fraction = 25, start: float = 0.0, duration: float | None = None,
                 warn: Warn | None = None) -> None:  # fmt: skip
        self.path, self.warn, self.skipped = path, warn or _warn_default, 0
        self.on_audio: Callable[[Any, float], None] | None = None
        files = [f for f in path.iterdir() if f.suffix.lower() in FRAME_EXTENSIONS and not f.name.startswith(".")]
        files = sorted((f for f in files if f.is_file()), key=lambda f: _natural_key(f.name))
        if not files:
            raise InputError(f"no frames ({', '.join(FRAME_EXTENSIONS)}) in folder {path}")
        self.fps = Fraction(fps).limit_denominator(1001)
        self.time_base = 1 / self.fps
        first = round(start * self.fps)
        last = len(files) if duration is None else min(len(files), first + round(duration * self.fps))
        if first >= len(files):
            raise InputError(f"--start {start:g} s is past the end of {path} ({len(files)} frames at {self.fps} fps)")
        self.files = files[first:last]
        self._first_image = None
        for f in self.files:
            try:
                self._first_image = to_rgb(open_image(f))
                break
            except InputError:
                continue
        if self._first_image is None:
            raise InputError(f"none of the {len(self.files)} images in {path} can be read")
        w, h = self._first_image.size
        self.display, self.size = (w, h), (w, h)
        self.info = VideoInfo(path, w, h, 0, self.fps, self.time_base, len(self.files), None, folder=True)

    def _resized(self, im: Image.Image) -> np.ndarray:
        if im.size != tuple(self.size):
            down = im.width > self.size[0]
            im = im.resize(self.size, Image.Resampling.BOX if down else Image.Resampling.BICUBIC)
        return np.asarray(im, dtype=np.uint8)

    def first_image(self) -> np.ndarray:
        """The first readable frame, at ``size``."""
        return self._resized(self._first_image)

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for i, f in enumerate(self.files):
            try:
                im = to_rgb(open_image(f))
            except InputError as err:
                self.skipped += 1
                self.warn(f"skipped frame {f.name}: {err}")
                continue
            yield Frame(index, i, float(i / self.fps), self._resized(im))
            index += 1

    def close(self) -> None:
        pass

    def __enter__(self) -> FrameFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


#: The lowest frame rate of a folder of frames (time stamps are kept in 1/1001 s ticks at the lowest).
MIN_FPS = 0.01


def open_source(path: str | os.PathLike, start: float = 0.0, duration: float | None = None,
                fps: float | None = None, warn: Warn | None = None) -> VideoReader | FrameFolder:  # fmt: skip
    """A video file or a folder of frames, opened and checked (its first frame decoded)."""
    p = Path(path)
    if not isinstance(start, (int, float)) or isinstance(start, bool) or not start >= 0:
        raise InputError(f"--start must be a number of seconds >= 0, got {start!r}")
    if duration is not None and (not isinstance(duration, (int, float)) or not duration > 0):
        raise InputError(f"--duration must be a number of seconds > 0, got {duration!r}")
    if fps is not None and (not isinstance(fps, (int, float, Fraction)) or not MIN_FPS <= fps <= 1000):
        raise InputError(f"--fps must be a number of frames per second from {MIN_FPS} to 1000, got {fps!r}")
    if p.is_dir():
        return FrameFolder(p, fps if fps is not None else 25, start, duration, warn)
    if fps is not None:
        raise InputError("--fps applies to a folder of frames; a video file keeps its own frame rate")
    if p.exists() and not p.is_file():
        raise InputError(f"not a video file: {p}")
    if p.is_file() and p.stat().st_size == 0:
        raise InputError(f"video file is empty: {p}")
    return VideoReader(p, start, duration, warn)


# -- writing -----------------------------------------------------------------------------------------------
def _write_failure(exc: BaseException) -> bool:
    """Whether an error is the disk's (OutputError) rather than a format or codec the output cannot take."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS,
                                                      errno.EACCES, errno.EPERM, errno.ENOENT)  # fmt: skip


def encoder_for(path: str | os.PathLike, codec: str | None = None) -> str:
    """The encoder a video output uses: ``codec`` if given, else the one for its extension (:data:`ENCODERS`)
    or its container's default. Raises :class:`InputError` for an unknown container or encoder."""
    av, p = _av(), Path(path)
    if not p.suffix:
        raise InputError(f"output {p} has no extension: give a video file name (.mp4, .mkv, .webm, ...) or a folder")
    try:
        probe = av.open(str(p.with_name(f".impasto-probe{p.suffix}")), "w")  # opened lazily: writes nothing
    except ValueError:
        raise InputError(f"unknown video container '{p.suffix}' for {p} (use .mp4, .mkv, .webm, .mov, .avi, .gif, ...)"
                         ) from None  # fmt: skip
    try:
        name = codec or ENCODERS.get(p.suffix.lower()) or probe.default_video_codec
    finally:
        probe.close()
    if not name or name == "none":
        raise InputError(f"container '{p.suffix}' holds no video")
    try:
        found = av.Codec(name, "w")
    except Exception:  # noqa: BLE001 - av.codec.codec.UnknownCodecError and friends
        raise InputError(f"unknown video encoder '{name}' (see: python -c 'import av; print(av.codecs_available)')"
                         ) from None  # fmt: skip
    if found.type != "video":
        raise InputError(f"'{name}' is not a video encoder")
    return found.name


class VideoWriter:
    """Encode upright RGB frames into a video file, atomically.

    Frames go to a temporary file beside ``path`` (``.NAME.XXXX.tmp.EXT``); :meth:`finish` flushes the encoder,
    writes the container's index, syncs and renames it to ``path`` (or to another name, for a partial
    video); :meth:`abort` removes it. The container's header is written when it is opened, so an encoder or
    an audio codec the container cannot take fails here, before any frame is made.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        size: tuple[int, int],
        fps: Fraction,
        time_base: Fraction,
        *,
        rotation: int = 0,
        crf: int | None = None,
        codec: str | None = None,
        audio: Any = None,
        metadata: dict | None = None,
    ) -> None:
        av = _av()
        self.path = Path(path)
        self.codec = encoder_for(self.path, codec)
        self.size, self.rotation, self.time_base = size, rotation % 360, Fraction(time_base)
        self.frames = 0
        token = secrets.token_hex(4)
        self.tmp = self.path.with_name(f".{self.path.name}.{token}.tmp{self.path.suffix}")
        self.container = None
        try:
            self.container = av.open(str(self.tmp), "w")
            self._setup(av, fps, crf, audio, metadata)
            self.container.start_encoding()  # the header: fails now if the container cannot take a stream
        except BaseException as exc:
            self.abort()
            if isinstance(exc, (InputError, OutputError)) or not isinstance(exc, Exception):
                raise
            if _write_failure(exc):
                raise OutputError(f"cannot write {self.path}: {_first_line(exc)}") from None
            what = f"{self.codec} video" + (f" with {audio.codec_context.name} audio" if audio is not None else "")
            hint = " (--no-audio drops the audio)" if audio is not None else ""
            raise InputError(f"cannot write {what} to {self.path.name}: {_first_line(exc)}{hint}") from None

    def _setup(self, av: Any, fps: Fraction, crf: int | None, audio: Any, metadata: dict | None) -> None:
        w, h = self.size
        stored = (h, w) if self.rotation in (90, 270) else (w, h)
        stream = self.container.add_stream(self.codec, rate=fps)
        stream.width, stream.height = stored
        formats = [f.name for f in (av.Codec(self.codec, "w").video_formats or [])]
        preferred = ("yuv420p", "rgb24", "pal8" if self.codec == "gif" else "", "gbrp")
        self.pix_fmt = next((f for f in preferred if f in formats), formats[0] if formats else "yuv420p")
        stream.pix_fmt = self.pix_fmt
        self.yuv = self.pix_fmt.startswith("yuv")
        cc = stream.codec_context
        cc.time_base = self.time_base
        stream.time_base = self.time_base
        if self.yuv:  # BT.709, limited range, tagged so players convert back the same way
            cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = 1, 1, 1, 1
        options: dict[str, str] = {}
        if self.codec in CRF_RANGE and crf is not None:
            options["crf"] = str(crf)
            if self.codec.startswith("libvpx"):
                options["b"] = "0"  # constant quality
        if self.codec == "libx264":
            options.setdefault("preset", "medium")
        stream.options = options
        if self.rotation:
            stream.set_display_rotation(self.rotation)
        self.stream = stream
        self.audio = self.container.add_stream_from_template(audio) if audio is not None else None
        if metadata:
            self.container.metadata["comment"] = json.dumps(metadata, sort_keys=True, default=str)

    def write(self, image: np.ndarray, pts: int) -> None:
        """Encode one upright (H, W, 3) uint8 RGB frame at ``pts`` (in ``time_base``)."""
        av = _av()
        if self.rotation:
            image = np.ascontiguousarray(np.rot90(image, -(self.rotation // 90)))
        if self.pix_fmt == "pal8":
            pal = Image.fromarray(image).quantize(256, dither=Image.Dither.FLOYDSTEINBERG)
            palette = np.array((pal.getpalette() + [0] * 768)[:768], np.uint8)
            argb = np.concatenate([np.full((256, 1), 255, np.uint8), palette.reshape(256, 3)], axis=1)
            frame = av.VideoFrame.from_ndarray((np.asarray(pal, np.uint8), argb), format="pal8")
        else:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if self.yuv:
                from av.video.reformatter import ColorRange, Colorspace

                frame = frame.reformat(format=self.pix_fmt, dst_colorspace=Colorspace.ITU709,
                                       dst_color_range=ColorRange.MPEG)  # fmt: skip
        frame.pts, frame.time_base = int(pts), self.time_base
        self._mux(self.stream.encode(frame))
        self.frames += 1

    def copy_audio(self, packet: Any, origin: float) -> None:
        """Copy an audio packet unchanged (not decoded), its time stamps moved back by ``origin`` seconds."""
        if self.audio is None:
            return
        shift = round(origin / packet.time_base) if origin else 0
        if packet.pts is not None:
            packet.pts -= shift
        if packet.dts is not None:
            packet.dts -= shift
        packet.stream = self.audio
        self._mux([packet])

    def _mux(self, packets: Any) -> None:
        av = _av()
        try:
            for p in packets:
                self.container.mux(p)
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot write {self.path}: {_first_line(exc)}") from None

    def finish(self, path: str | os.PathLike | None = None) -> Path:
        """Flush the encoder, close the container and rename it to ``path`` (default: the output path)."""
        av = _av()
        target = Path(path) if path is not None else self.path
        try:
            self._mux(self.stream.encode(None))
            self.container.close()
            self.container = None
            with open(self.tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(self.tmp, target)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, (av.FFmpegError, OSError)) and not isinstance(exc, OutputError):
                raise OutputError(f"cannot write {target}: {_first_line(exc)}") from None
            raise
        return target

    def abort(self) -> None:
        """Close without finishing and remove the temporary file."""
        if self.container is not None:
            try:
                self.container.close()
            except Exception:  # noqa: BLE001, S110 - the file is removed anyway
                pass
            self.container = None
        self.tmp.unlink(missing_ok=True)


# -- the frame cache -------------------------------------------------------------------------------------
class FrameCache:
    """A folder of finished frames (``frame_000001.png``, ...: frame index + 1) and ``impasto-video.json``, the
    manifest of the run that made them. Each frame is written atomically, so after any interruption the
    folder holds whole frames only."""

    MANIFEST = "impasto-video.json"

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def frame_path(self, index: int) -> Path:
        return self.folder / f"frame_{index + 1:06d}.png"

    def manifest(self) -> dict | None:
        """The manifest, or None (no cache, or one without a readable manifest)."""
        try:
            data = json.loads((self.folder / self.MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def count(self) -> int:
        """Frames cached from the first on, without a gap."""
        n = 0
        while self.frame_path(n).is_file():
            n += 1
        return n

    def any_frames(self) -> bool:
        return self.folder.is_dir() and any(f.name.startswith("frame_") for f in self.folder.iterdir())

    def begin(self, manifest: dict, keep: int) -> None:
        """Start (or go on with) a run: frames from ``keep`` on are removed, the manifest written."""
        self.folder.mkdir(exist_ok=True)
        for f in self.folder.iterdir():
            m = re.fullmatch(r"frame_(\d+)\.png", f.name)
            if (m and int(m.group(1)) > keep) or (f.name.startswith(".") and f.name.endswith(".tmp")):
                f.unlink(missing_ok=True)
        write_text(self.folder / self.MANIFEST, json.dumps(manifest, sort_keys=True, indent=1, default=str))

    def put(self, index: int, image: np.ndarray, metadata: dict | None = None) -> None:
        # zlib level 1: the cache is written every frame and read back only by a resumed run (~25% faster)
        save_image(Image.fromarray(image, "RGB"), self.frame_path(index), metadata, compress_level=1)

    def get(self, index: int) -> np.ndarray:
        try:
            return np.asarray(to_rgb(open_image(self.frame_path(index))), dtype=np.uint8)
        except InputError as err:
            raise InputError(f"the frame cache is damaged ({err}); delete {self.folder} and start again") from None

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def publish(self, folder: str | os.PathLike) -> Path:
        """Make the cached frames the output folder ``folder`` (renamed; the manifest left out)."""
        target = Path(folder)
        (self.folder / self.MANIFEST).unlink(missing_ok=True)
        try:
            if target.is_dir():
                target.rmdir()  # checked empty before the run
            os.replace(self.folder, target)
        except OSError as exc:
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}; the frames are in {self.folder}"
                              ) from None  # fmt: skip
        return target
