"""Test clips made from a real photo: a camera panning and zooming over it, a textured object moving across, and
an audio tone. Used by the video tests and ``benchmarks/bench_video.py``; the ground truth of the motion is
returned with the frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


@dataclass
class Clip:
    """A generated clip: where it is and what went into it."""

    path: Path | None
    frames: list[np.ndarray]  # (H, W, 3) uint8, as encoded (before compression)
    fps: Fraction
    cameras: list[np.ndarray] = field(default_factory=list)  # per frame: 2x3 affine, frame pixel -> photo pixel
    objects: list[tuple[float, float]] = field(default_factory=list)  # the object's top-left corner per frame
    object_size: int = 0
    tone_hz: float = 440.0
    sample_rate: int = 48000


def camera(t: float, frames: int, photo_wh: tuple[int, int], size: tuple[int, int], pan: float, zoom: float
           ) -> np.ndarray:  # fmt: skip
    """The affine map (2x3) from frame pixels to photo pixels at frame ``t``: the view pans right by ``pan`` of
    the photo's width over the clip and zooms in by ``zoom`` (1.1: 10%)."""
    pw, ph = photo_wh
    w, h = size
    u = t / max(1, frames - 1)
    scale0 = min(pw / (w * (1 + pan)), ph / h) * 0.95  # photo pixels per frame pixel at the start
    scale = scale0 / (1 + (zoom - 1) * u)
    cx = pw / 2 + (u - 0.5) * pan * pw * 0.8
    cy = ph / 2
    return np.array([[scale, 0, cx - scale * w / 2], [0, scale, cy - scale * h / 2]], dtype=np.float64)


def render(
    photo: Image.Image,
    frames: int = 24,
    size: tuple[int, int] = (96, 64),
    pan: float = 0.25,
    zoom: float = 1.1,
    moving_object: bool = True,
    fps: int = 24,
) -> Clip:
    """The frames of a clip over ``photo`` (no file): camera motion, and a textured disc crossing the frame."""
    photo = photo.convert("RGB")
    w, h = size
    clip = Clip(None, [], Fraction(fps))
    side = max(8, h // 3)
    disc = _object(side)
    clip.object_size = side
    for t in range(frames):
        m = camera(t, frames, photo.size, size, pan, zoom)
        data = (m[0, 0], m[0, 1], m[0, 2], m[1, 0], m[1, 1], m[1, 2])
        im = photo.transform(size, Image.Transform.AFFINE, data, resample=Image.Resampling.BICUBIC)
        if moving_object:
            x = -side / 2 + (w + side / 2) * t / max(1, frames - 1) * 0.8
            y = h * 0.45 + h * 0.15 * math.sin(t / 4.0)
            im.paste(disc, (round(x), round(y)), disc)
            clip.objects.append((round(x), round(y)))
        clip.frames.append(np.asarray(im, dtype=np.uint8))
        clip.cameras.append(m)
    return clip


def _object(side: int) -> Image.Image:
    """An RGBA disc with a striped texture (so the flow can follow it)."""
    im = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    d.ellipse((0, 0, side - 1, side - 1), fill=(230, 40, 40, 255))
    for k in range(0, side, max(2, side // 6)):
        d.line((k, 0, k - side // 2, side), fill=(250, 220, 30, 255), width=max(1, side // 12))
    mask = Image.new("L", (side, side), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, side - 1, side - 1), fill=255)
    im.putalpha(mask)
    return im


def write(clip: Clip, path: Path, audio: bool = True, rotation: int = 0, codec: str = "libx264",
          crf: int = 12, faststart: bool = False) -> Clip:  # fmt: skip
    """Encode ``clip`` to ``path`` with PyAV (a display rotation and an AAC tone optional; ``faststart``: an MP4's
    index before the frames, so that a file cut short still opens)."""
    import av

    out = av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {})
    h, w = clip.frames[0].shape[:2]
    stored = (h, w) if rotation in (90, 270) else (w, h)
    v = out.add_stream(codec, rate=clip.fps)
    v.width, v.height = stored
    v.pix_fmt = "yuv420p" if codec != "ffv1" else "yuv444p"
    if codec == "libx264":
        v.options = {"crf": str(crf)}
    if rotation:
        v.set_display_rotation(rotation)
    a = None
    if audio:
        a = out.add_stream("aac", rate=clip.sample_rate)
        a.layout = "mono"
    for i, frame in enumerate(clip.frames):
        stored_frame = np.ascontiguousarray(np.rot90(frame, -(rotation // 90))) if rotation else frame
        f = av.VideoFrame.from_ndarray(stored_frame, format="rgb24")
        f.pts = i
        for p in v.encode(f):
            out.mux(p)
    if a is not None:
        seconds = len(clip.frames) / float(clip.fps)
        n = int(seconds * clip.sample_rate)
        t = np.arange(n) / clip.sample_rate
        tone = (0.3 * np.sin(2 * np.pi * clip.tone_hz * t)).astype(np.float32)
        for k in range(0, n, 1024):
            chunk = tone[k : k + 1024]
            if len(chunk) < 1024:
                break
            af = av.AudioFrame.from_ndarray(chunk[None], format="fltp", layout="mono")
            af.sample_rate, af.pts = clip.sample_rate, k
            for p in a.encode(af):
                out.mux(p)
        for p in a.encode(None):
            out.mux(p)
    for p in v.encode(None):
        out.mux(p)
    out.close()
    clip.path = path
    return clip


def decode(path: Path) -> tuple[list[np.ndarray], dict]:
    """Every frame of a video as upright RGB arrays (display rotation applied) and facts about its streams."""
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        facts = {"fps": v.average_rate, "audio": None, "audio_seconds": 0.0, "rotation": 0, "pts": [],
                 "comment": c.metadata.get("comment")}  # fmt: skip
        if c.streams.audio:
            a = c.streams.audio[0]
            facts["audio"] = a.codec_context.name
            facts["sample_rate"] = a.codec_context.sample_rate
        frames = []
        for f in c.decode(video=0):
            facts["rotation"] = f.rotation or 0
            arr = f.to_ndarray(format="rgb24")
            k = int(round((f.rotation or 0) / 90)) % 4
            frames.append(np.ascontiguousarray(np.rot90(arr, k)) if k else arr)
            facts["pts"].append(f.time)
        if c.streams.audio:
            c.seek(0)
            samples = []
            for f in c.decode(audio=0):
                samples.append(f.to_ndarray()[0])
            audio = np.concatenate(samples) if samples else np.zeros(0)
            facts["audio_samples"] = audio
            facts["audio_seconds"] = len(audio) / facts["sample_rate"]
    return frames, facts


def tone_frequency(samples: np.ndarray, rate: int) -> float:
    """The strongest frequency of a signal (Hz)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])
