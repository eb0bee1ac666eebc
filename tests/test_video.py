"""Video: reading and writing with PyAV, optical flow and the consistency check, temporal blending and the temporal
loss, resuming and interruptions, bad inputs. Clips are made here from examples/chelsea.png (panned and zoomed,
a textured disc moving across, a 440 Hz tone), 24 frames at 96x64."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from impasto import make_options, video
from impasto.cli import main
from impasto.core import flow
from impasto.core.vgg import build_vgg
from impasto.errors import InputError
from impasto.io import video as vio
from impasto.io.atomic import write_bytes
from impasto.io.video import FrameCache
from impasto.methods import fused_backward
from impasto.methods.terms import Targets, TemporalTerm

from . import clips

av = pytest.importorskip("av")
pytest.importorskip("cv2")

ROOT = Path(__file__).resolve().parents[1]
CHELSEA = ROOT / "examples" / "chelsea.png"
STARRY = ROOT / "examples" / "starry_night.jpg"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> clips.Clip:
    """24 frames at 96x64, 24 fps, with an AAC tone."""
    c = clips.render(Image.open(CHELSEA), frames=24, size=(96, 64))
    return clips.write(c, tmp_path_factory.mktemp("clip") / "clip.mp4")


def _png_frames(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("frame_*.png"))]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


# -- reading and writing -------------------------------------------------------------------------------------
def test_round_trip_keeps_frames_rate_rotation_and_audio(tmp_path: Path) -> None:
    c = clips.render(Image.open(CHELSEA), frames=24, size=(96, 64))
    src = clips.write(c, tmp_path / "turned.mp4", rotation=90).path
    with vio.open_source(src) as reader:
        assert (reader.info.width, reader.info.height, reader.info.rotation) == (96, 64, 90)
        assert reader.info.fps == 24 and reader.info.frames == 24 and reader.info.audio == "aac"
        writer = vio.VideoWriter(tmp_path / "out.mp4", reader.size, reader.fps, reader.time_base,
                                 rotation=reader.info.rotation, crf=10, audio=reader.audio)  # fmt: skip
        reader.on_audio = writer.copy_audio
        frames = list(reader)
        for f in frames:
            writer.write(f.image, f.pts)
        writer.finish()
    # Upright frames, in order: each is closest to the frame it was made from (the rotation was undone).
    assert len(frames) == 24
    for i, f in enumerate(frames):
        errors = [np.abs(f.image.astype(float) - g).mean() for g in c.frames]
        assert int(np.argmin(errors)) == i and errors[i] < 8, (i, errors[i])
    out, facts = clips.decode(tmp_path / "out.mp4")
    assert len(out) == 24 and facts["fps"] == 24 and facts["rotation"] == 90
    assert np.allclose(facts["pts"], [i / 24 for i in range(24)])
    assert np.abs(out[10].astype(float) - c.frames[10]).mean() < 8
    # The audio is the same packets, byte for byte, and still the tone.
    assert _audio_packets(tmp_path / "out.mp4") == _audio_packets(src)
    assert abs(clips.tone_frequency(facts["audio_samples"], facts["sample_rate"]) - 440) < 5
    assert _leftovers(tmp_path) == []


def test_start_and_duration_take_a_part(clip: clips.Clip, tmp_path: Path) -> None:
    with vio.open_source(clip.path, start=0.25, duration=0.5) as reader:
        writer = vio.VideoWriter(tmp_path / "cut.mkv", reader.size, reader.fps, reader.time_base, audio=reader.audio)
        reader.on_audio = writer.copy_audio
        frames = list(reader)
        for f in frames:
            writer.write(f.image, f.pts)
        writer.finish()
    assert len(frames) == 12 and frames[0].time == 0.0
    errors = [np.abs(frames[0].image.astype(float) - g).mean() for g in clip.frames]
    assert int(np.argmin(errors)) == 6  # 0.25 s at 24 fps
    out, facts = clips.decode(tmp_path / "cut.mkv")
    assert len(out) == 12 and facts["pts"][0] == 0.0
    assert 0.4 < facts["audio_seconds"] < 0.6


@pytest.mark.parametrize("name", ["out.mkv", "out.webm", "out.avi", "out.mov", "out.gif"])
def test_containers_by_extension(clip: clips.Clip, tmp_path: Path, name: str) -> None:
    frames = clip.frames[:4]
    writer = vio.VideoWriter(tmp_path / name, (96, 64), Fraction(24), Fraction(1, 24), crf=20)
    for i, f in enumerate(frames):
        writer.write(f, i)
    writer.finish()
    out, _ = clips.decode(tmp_path / name)
    assert len(out) == 4
    assert np.abs(out[2].astype(float) - frames[2]).mean() < (20 if name.endswith(".gif") else 10)


def test_folder_of_frames_in_and_out(clip: clips.Clip, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i, f in enumerate(clip.frames[:6]):  # names sorted as numbers: frame2 before frame10
        Image.fromarray(f).save(src / f"frame{[1, 2, 10, 11, 20, 100][i]}.png")
    (src / "notes.txt").write_text("not a frame")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    warnings: list[str] = []
    result = video.stylize_video(src, STARRY, tmp_path / "out", method="fast", fps=12, warn=warnings.append)
    out = _png_frames(tmp_path / "out")
    assert result.frames == 6 and len(out) == 6 and out[0].shape == (64, 96, 3)
    assert any("broken.png" in w for w in warnings)
    assert not (tmp_path / "out.frames").exists()


def test_corrupt_frame_is_skipped_with_a_warning(clip: clips.Clip, tmp_path: Path) -> None:
    path = tmp_path / "bad.mkv"
    out = av.open(str(path), "w")
    v = out.add_stream("mjpeg", rate=24)
    v.width, v.height, v.pix_fmt = 96, 64, "yuvj420p"
    for i, f in enumerate(clip.frames[:8]):
        frame = av.VideoFrame.from_ndarray(f, format="rgb24")
        frame.pts = i
        for p in v.encode(frame):
            if i == 3:  # frame 4 gets garbage after its first bytes
                data = bytes(p)
                bad = av.Packet(data[:16] + bytes(np.random.default_rng(1).integers(0, 256, len(data) - 16, np.uint8)))
                bad.pts, bad.dts, bad.time_base, bad.stream = p.pts, p.dts, p.time_base, v
                p = bad
            out.mux(p)
    for p in v.encode(None):
        out.mux(p)
    out.close()
    warnings: list[str] = []
    result = video.stylize_video(path, STARRY, tmp_path / "out.mp4", method="fast", warn=warnings.append)
    assert result.frames == 7 and result.skipped == 1
    assert len(warnings) == 1 and "0.125 s" in warnings[0] and "skipped" in warnings[0]
    frames, facts = clips.decode(tmp_path / "out.mp4")
    assert len(frames) == 7 and 0.125 not in [round(t, 3) for t in facts["pts"]]


# -- optical flow and the consistency check --------------------------------------------------------------
def _shifted(dx: float, dy: float, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Two views of chelsea.png, the second moved by (dx, dy) px (made at 4x and reduced, so sub-pixel)."""
    big = np.asarray(Image.open(CHELSEA).convert("RGB").resize((size * 4 + 80, round((size * 4 + 80) / 1.5))))
    h, w = big.shape[:2]
    ox, oy = round(dx * 4), round(dy * 4)
    a = big[20 : h - 20, 20 : w - 20]
    b = big[20 + oy : h - 20 + oy, 20 + ox : w - 20 + ox]

    def small(x: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(x).resize((x.shape[1] // 4, x.shape[0] // 4), Image.Resampling.BOX))

    return small(a), small(b)


def test_flow_of_a_translation_is_recovered_within_half_a_pixel() -> None:
    first, second = _shifted(2.5, 1.25)  # second(p) = first(p + (2.5, 1.25))
    estimator = flow.FlowEstimator("medium")
    backward = estimator(second, first)
    inner = backward[6:-6, 6:-6]
    error = np.sqrt(((inner - np.array([2.5, 1.25])) ** 2).sum(-1))
    assert error.mean() < 0.5 and np.percentile(error, 90) < 0.5, (error.mean(), np.percentile(error, 90))


def test_warp_samples_where_the_flow_points() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((20, 30, 3)).astype(np.float32)
    shift = np.zeros((20, 30, 2), np.float32)
    shift[..., 0], shift[..., 1] = 3, 2  # out(p) = image(p + (3, 2))
    out = flow.warp(image, shift)
    assert np.allclose(out[:-2, :-3], image[2:, 3:], atol=1e-6)
    t = flow.warp(torch.from_numpy(image).permute(2, 0, 1)[None], shift)
    assert t.shape == (1, 3, 20, 30) and torch.allclose(t[0].permute(1, 2, 0), torch.from_numpy(out))


def test_consistency_check_by_hand() -> None:
    h, w = 40, 50
    backward = np.zeros((h, w, 2), np.float32)
    backward[..., 0] = -3.0  # everything came from 3 px to the left
    forward = np.zeros((h, w, 2), np.float32)
    forward[..., 0] = 3.0
    forward[10:20, 10:20] = 0.0  # the previous frame's pixels there did not go to where the backward flow says
    c = flow.reliability(backward, forward)
    assert (c[:, :3] == 0).all()  # their source is outside the previous frame
    assert (c[10:20, 14:22] == 0).all()  # |w~ + w^|^2 = 9 > 0.01 * 9 + 0.5: disoccluded
    assert (c[25:, 10:] == 1).all() and (c[:8, 10:] == 1).all()
    # A motion boundary: the backward flow steps by 0.8 px between columns 29 and 30; forward and backward still
    # agree (|w~ + w^|^2 <= 0.64 < 0.01 (9 + 14.4) + 0.5), but the central-difference gradient there is 0.4 px/px:
    # 0.16 > 0.01 * 14.4 + 0.002.
    backward[:, 30:, 0] = -3.8
    forward[:, 27:, 0] = 3.8
    c = flow.reliability(backward, forward)
    assert (c[25:, 29:31] == 0).all() and (c[25:, 31:] == 1).all() and (c[25:, 10:29] == 1).all()


def test_consistency_check_marks_the_disoccluded_border_and_the_object() -> None:
    background = np.asarray(Image.open(CHELSEA).convert("RGB").resize((150, 100)))
    disc = np.asarray(Image.open(STARRY).convert("RGB").resize((24, 24)))

    def frame(cam: int, obj: int) -> np.ndarray:
        f = background[10:74, 8 + cam : 104 + cam].copy()  # 96x64 view, the camera moved right by cam px
        f[20:44, obj : obj + 24] = disc
        return f

    prev, cur = frame(0, 30), frame(4, 34)  # the background moves 4 px left, the object 4 px right
    pair = flow.FlowEstimator("medium").pair(prev, cur)
    assert abs(np.median(pair.backward[26:38, 38:54, 0]) + 4) < 0.5  # the object's pixels came from 4 px left
    c = pair.reliability()
    assert c[:, -4:].mean() < 0.15, c[:, -4:].mean()  # new at the right border
    assert c[22:42, 27:33].mean() < 0.3, c[22:42, 27:33].mean()  # uncovered behind the object (x + 4 in 30..54)
    assert c[48:60, 10:80].mean() > 0.9 and c[2:16, 10:80].mean() > 0.9  # background away from the object


# -- temporal consistency ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stylized(clip: clips.Clip, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[np.ndarray]]:
    """The clip stylized frame by frame and with temporal blending (PNG frames, no compression)."""
    base = tmp_path_factory.mktemp("stylized")
    out = {}
    for name, weight in (("plain", 0.0), ("consistent", None)):
        video.stylize_video(clip.path, STARRY, base / name, method="fast", temporal=weight)
        out[name] = _png_frames(base / name)
    with vio.open_source(clip.path) as reader:
        out["input"] = [f.image for f in reader]
    return out


def test_temporal_blending_lowers_the_warping_error(stylized: dict[str, list[np.ndarray]]) -> None:
    inputs, plain, consistent = stylized["input"], stylized["plain"], stylized["consistent"]
    assert len(plain) == len(consistent) == 24
    assert np.array_equal(plain[0], consistent[0])  # the first frame has nothing to agree with
    estimator = flow.FlowEstimator("medium")
    errors = {"plain": [], "consistent": []}
    for t in range(1, 24):
        pair = estimator.pair(inputs[t - 1], inputs[t])
        c = pair.reliability()
        for name in errors:
            frames = stylized[name]
            errors[name].append(flow.warping_error(frames[t], frames[t - 1], pair.backward, c))
    plain_error, consistent_error = np.mean(errors["plain"]), np.mean(errors["consistent"])
    assert consistent_error < 0.6 * plain_error, (consistent_error, plain_error)


def test_blend_follows_its_formula() -> None:
    rng = np.random.default_rng(3)
    stylized = rng.random((30, 40, 3)).astype(np.float32)
    warped = rng.random((30, 40, 3)).astype(np.float32)
    weights = np.ones((30, 40), np.float32)
    weights[:, :10] = 0
    out = flow.blend(stylized, warped, weights, 0.7, feather_radius=0, levels=0)
    assert np.allclose(out[:, :10], stylized[:, :10])  # unreliable: the new stylization
    assert np.allclose(out[:, 10:], 0.3 * stylized[:, 10:] + 0.7 * warped[:, 10:], atol=1e-6)
    # With the detail restored, the blended part's fine detail is back to the stylization's strength.
    restored = flow.blend(stylized, warped, weights, 0.7, feather_radius=0, levels=3)
    inner = (slice(8, -8), slice(18, -8))

    def detail(x: np.ndarray) -> float:
        return float((x - flow._gaussian(x, 1.0))[inner].std())

    assert detail(out) < 0.8 * detail(stylized)
    assert abs(detail(restored) - detail(stylized)) < 0.15 * detail(stylized)
    assert np.allclose(restored[:, :5], stylized[:, :5], atol=0.02)  # nothing blended, nothing changed


def test_restore_detail_per_band() -> None:
    rng = np.random.default_rng(4)
    reference = rng.random((64, 64, 3)).astype(np.float32)
    bands = flow._bands(reference, 3)
    assert [b.shape[:2] for b in bands] == [(64, 64), (32, 32), (16, 16), (8, 8)]
    assert np.allclose(flow._collapse(bands), reference, atol=1e-5)  # the pyramid is exact
    # Each band of the reference at half strength: every band is brought back to full strength, the coarsest
    # remainder (colours, light) is left alone.
    halved = flow._collapse([b * 0.5 for b in bands[:-1]] + [bands[-1]])
    restored = flow.restore_detail(halved, reference, levels=3)
    assert np.abs(restored - reference).mean() < 0.1 * np.abs(halved - reference).mean()
    # Detail is never taken away (gain >= 1), and never raised by more than max_gain.
    doubled = flow._collapse([b * 2 for b in bands[:-1]] + [bands[-1]])
    assert np.allclose(flow.restore_detail(doubled, reference), doubled, atol=1e-5)
    flat = flow._collapse([b * 0.1 for b in bands[:-1]] + [bands[-1]])
    capped = flow._bands(flow.restore_detail(flat, reference, levels=3, max_gain=2.0), 3)
    for band, original in zip(capped[:-1], bands[:-1], strict=True):
        assert np.allclose(band, 0.2 * original, atol=0.03)


def test_warp_interpolations() -> None:
    rng = np.random.default_rng(5)
    image = rng.random((20, 30, 3)).astype(np.float32)
    shift = np.zeros((20, 30, 2), np.float32)
    shift[..., 0] = 2.0  # sample two pixels to the right: whole pixels, every kernel gives them exactly
    for interpolation in flow.INTERPOLATIONS:
        out = flow.warp(image, shift, interpolation)
        assert np.allclose(out[:, :-2], image[:, 2:], atol=1e-5), interpolation
    half = np.full((20, 30, 2), 0.5, np.float32)  # half a pixel: Lanczos keeps more of the detail than bicubic
    detail = {i: float(np.std(np.diff(flow.warp(image, half, i)[3:-3, 3:-3], axis=1))) for i in flow.INTERPOLATIONS}
    assert detail["linear"] < detail["cubic"] < detail["lanczos"]
    with pytest.raises(ValueError, match="interpolation must be one of"):
        flow.warp(image, shift, "nearest")


def test_temporal_term_value_and_gradient() -> None:
    torch.manual_seed(0)
    x, w = torch.rand(1, 3, 8, 10), torch.rand(1, 3, 8, 10)
    c = (torch.rand(1, 1, 8, 10) > 0.3).float()
    opts = make_options(temporal_weight=50.0)
    targets = Targets(x, {}, None, temporal=(w, c))  # type: ignore[arg-type]
    term = TemporalTerm.build(opts, targets)
    expected = sum(float(c[0, 0, i, j]) * float((x[0, k, i, j] - w[0, k, i, j]) ** 2)
                   for k in range(3) for i in range(8) for j in range(10)) / (3 * 8 * 10)  # fmt: skip
    assert abs(float(term(x, {}, {})) - expected) < 1e-6 and term.weight == 50.0
    assert TemporalTerm.wanted(opts) and not TemporalTerm.wanted(make_options())
    # The hand-written pass adds its gradient: 2 * weight * c * (x - w) / N.
    value, parts, grad = fused_backward.loss_and_grad(_net(), x, [term])
    assert abs(value - 50.0 * expected) < 1e-4 and abs(parts["temporal"] - value) < 1e-9
    assert torch.allclose(grad, 2 * 50.0 * c * (x - w) / x.numel(), atol=1e-6)
    # A first frame (no target) has weight 0.
    assert TemporalTerm.build(opts, Targets(x, {}, None)).weight == 0  # type: ignore[arg-type]


def _net():  # noqa: ANN202 - a VGG19 on the CPU

    return build_vgg(["relu1_1"])


def test_gatys_with_the_temporal_loss_end_to_end(clip: clips.Clip, tmp_path: Path) -> None:
    steps: list = []
    result = video.stylize_video(clip.path, STARRY, tmp_path / "g", method="gatys", steps=4, size=48,
                                 duration=3 / 24, callback=steps.append)  # fmt: skip
    assert result.frames == 3
    frames = _png_frames(tmp_path / "g")
    assert len(frames) == 3 and frames[0].shape == (32, 48, 3)
    per_frame = [steps[i : i + 4] for i in range(0, 12, 4)]
    assert len(steps) == 12 and all(s.step == k + 1 for f in per_frame for k, s in enumerate(f))
    assert all(s.parts["temporal"] == 0 for s in per_frame[0])  # the first frame has no previous one
    assert all(s.parts["temporal"] > 0 for f in per_frame[1:] for s in f)
    # Frames 2 and 3 start from the previous result (as written) warped to them: their first evaluated image
    # is that warp, and the temporal loss there is the weighted mean over the reliable pixels of (x - warp)^2 = 0
    # ... plus nothing: it starts at 0 only where x = warp, so its value at the start is exactly 0.
    with vio.open_source(clip.path, duration=3 / 24) as reader:
        reader.size = (48, 32)
        inputs = [f.image for f in reader]
    estimator = flow.FlowEstimator("medium")
    for t in (1, 2):
        pair = estimator.pair(inputs[t - 1], inputs[t])
        warped = flow.warp(frames[t - 1].astype(np.float32) / 255.0, pair.backward, video.START_WARP).clip(0, 1)
        start = per_frame[t][0].image[0].permute(1, 2, 0).numpy()
        assert np.abs(start - warped).max() < 1e-5
    assert not (tmp_path / "g.frames").exists()


# -- long runs: interruptions and resume -------------------------------------------------------------------
class _StopAfter:
    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, info: video.FrameInfo) -> None:
        if info.done == self.n and not info.cached:
            raise KeyboardInterrupt


def test_interrupt_leaves_a_partial_video_and_resume_continues(clip: clips.Clip, tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    ref.mkdir()
    video.stylize_video(clip.path, STARRY, ref / "out.mp4", method="fast")
    out = tmp_path / "out.mp4"
    with pytest.raises(video.VideoStopped) as stopped:
        video.stylize_video(clip.path, STARRY, out, method="fast", on_frame=_StopAfter(10))
    assert stopped.value.frames == 10 and stopped.value.partial == tmp_path / "out.partial.mp4"
    assert not out.exists()
    partial, facts = clips.decode(tmp_path / "out.partial.mp4")
    assert len(partial) == 10 and facts["audio"] == "aac"
    assert len(list((tmp_path / "out.mp4.frames").glob("frame_*.png"))) == 10
    # Without --resume the cache is not thrown away.
    with pytest.raises(InputError, match="--resume"):
        video.stylize_video(clip.path, STARRY, out, method="fast")
    # Other settings cannot resume it.
    with pytest.raises(InputError, match="other settings"):
        video.stylize_video(clip.path, STARRY, out, method="fast", resume=True, strength=0.5)
    done: list[video.FrameInfo] = []
    result = video.stylize_video(clip.path, STARRY, out, method="fast", resume=True, on_frame=done.append)
    assert result.resumed_from == 10 and result.stylized == 14 and result.frames == 24
    assert [i.index for i in done] == list(range(24)) and [i.cached for i in done] == [True] * 10 + [False] * 14
    resumed, facts = clips.decode(out)
    expected, ref_facts = clips.decode(ref / "out.mp4")
    assert len(resumed) == 24 and facts["pts"] == ref_facts["pts"]
    # No frame dropped or repeated: each matches the uninterrupted run's, far better than any other frame. Not
    # exactly: x264 (mbtree, 40-frame lookahead) can code the same YUV frames differently from one run to the next
    # in one process (measured: up to ~4/255 mean per frame; neighbouring frames of the pan differ by 18-31).
    for i, frame in enumerate(resumed):
        errors = [np.abs(frame.astype(float) - e).mean() for e in expected]
        others = min(e for j, e in enumerate(errors) if j != i)
        assert int(np.argmin(errors)) == i and errors[i] < 6 and errors[i] < 0.35 * others, (i, errors[i], others)
    assert _audio_packets(out) == _audio_packets(ref / "out.mp4")
    assert not (tmp_path / "out.mp4.frames").exists() and not (tmp_path / "out.partial.mp4").exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_sigterm_leaves_a_playable_partial_video(tmp_path: Path) -> None:
    c = clips.render(Image.open(CHELSEA), frames=96, size=(96, 64))
    src = clips.write(c, tmp_path / "long.mp4").path
    out = tmp_path / "out.mp4"
    cmd = [sys.executable, "-m", "impasto", "video", str(src), str(STARRY), "-o", str(out), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cache = tmp_path / "out.mp4.frames"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(cache.glob("frame_*.png"))) < 3:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated after" in err and "out.partial.mp4" in err and len(err.strip().splitlines()) == 1
    frames, facts = clips.decode(tmp_path / "out.partial.mp4")
    cached = len(list(cache.glob("frame_*.png")))
    assert 3 <= len(frames) == cached < 96 and facts["audio"] == "aac"
    assert not out.exists() and _leftovers(tmp_path) == []


# -- bad input -------------------------------------------------------------------------------------------------
def _run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = main(["video", *args])
    return code, capsys.readouterr().err


def _run_cli_out(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = main(["video", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_bad_inputs_are_one_line(clip: clips.Clip, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 20)
    empty = tmp_path / "empty.mp4"
    empty.touch()
    audio_only = tmp_path / "tone.m4a"
    out = av.open(str(audio_only), "w")
    a = out.add_stream("aac", rate=48000)
    a.layout = "mono"
    for k in range(0, 48000, 1024):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, k
        for p in a.encode(frame):
            out.mux(p)
    out.close()
    o = str(tmp_path / "o.mp4")
    cases = [
        ([str(text), str(STARRY), "-o", o], "not a video file"),
        ([str(empty), str(STARRY), "-o", o], "empty"),
        ([str(audio_only), str(STARRY), "-o", o], "no video stream"),
        ([str(CHELSEA), str(STARRY), "-o", o], "still image"),
        ([str(tmp_path / "missing.mp4"), str(STARRY), "-o", o], "not found"),
        ([str(clip.path), str(STARRY), "-o", str(tmp_path / "o.xyz")], "unknown video container"),
        ([str(clip.path), str(STARRY), "-o", o, "--codec", "nosuchcodec"], "unknown video encoder"),
        ([str(clip.path), str(STARRY), "-o", str(tmp_path / "o.webm")], "--no-audio"),  # AAC cannot go in WebM
        ([str(clip.path), str(STARRY), "-o", str(tmp_path / "nowhere" / "o.mp4")], "does not exist"),
        ([str(clip.path), str(STARRY), "-o", str(clip.path)], "is the input"),
        ([str(clip.path), str(STARRY), "-o", o, "--crf", "99"], "--crf"),
        ([str(clip.path), str(STARRY), "-o", o, "--start", "5"], "past the end"),
        ([str(clip.path), str(STARRY), "-o", o, "--temporal", "2"], "blend weight from 0 to 1"),
        ([str(clip.path), str(STARRY), "-o", o, "--fps", "30"], "--fps applies to a folder"),
        ([str(clip.path), str(tmp_path / "nostyle.jpg"), "-o", o], "not found"),
        ([str(clip.path), "-o", o], "style image"),
    ]
    before = sorted(p.name for p in tmp_path.iterdir())
    for args, words in cases:
        code, err = _run_cli(args, capsys)
        assert code == 2, (args, err)
        assert words in err and len(err.strip().splitlines()) == 1 and err.startswith("impasto: error:"), (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, no temporary file left
    # The same output with --no-audio can be written.
    code, err = _run_cli([str(clip.path), str(STARRY), "-o", str(tmp_path / "o.webm"), "--no-audio", "-q",
                          "--duration", "0.1"], capsys)  # fmt: skip
    assert code == 0, err
    frames, facts = clips.decode(tmp_path / "o.webm")
    assert len(frames) == 3 and facts["audio"] is None  # 0, 1/24 and 2/24 s


def test_the_cli_offers_every_option_of_the_still_image_command() -> None:
    from impasto.cli import stylize
    from impasto.cli import video as cli_video

    parser = cli_video.build_parser()
    dests = {a.dest for a in parser._actions}
    assert set(stylize._OPTION_ARGS) <= dests
    args = parser.parse_args(["in.mp4", "s.jpg", "--strength", "0.5", "--size", "128", "--temporal", "0.3"])
    opts = cli_video.options_from_args(args)
    assert opts.method == "fast" and opts.strength == 0.5 and opts.size == 512  # --size is the video's setting
    assert cli_video.settings_from_args(args).size == 128
    args = parser.parse_args(["in.mp4", "s.jpg", "--method", "gatys", "--steps", "7"])
    assert cli_video.options_from_args(args).method == "gatys"


def test_cli_end_to_end_reports_and_records(clip: clips.Clip, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "styled.mp4"
    code, err = _run_cli([str(clip.path), str(STARRY), "-o", str(out), "--size", "64", "--strength", "0.8"], capsys)
    assert code == 0, err
    assert "wrote" in err and "24 frames" in err and "frame/s" in err  # the progress bar counts frames
    frames, facts = clips.decode(out)
    assert len(frames) == 24 and frames[0].shape == (42, 64, 3) and facts["audio"] == "aac"
    meta = json.loads(facts["comment"])
    assert meta["options"]["method"] == "fast" and meta["options"]["strength"] == 0.8
    assert meta["video"]["temporal"] == video.DEFAULT_BLEND
    code, out_text, err = _run_cli_out([str(clip.path), str(STARRY), "-o", str(tmp_path / "d.mp4"), "--dry-run"],
                                       capsys)  # fmt: skip
    assert code == 0 and "24 frames" in out_text and "plan: fast" in out_text
    assert not (tmp_path / "d.mp4").exists() and _leftovers(tmp_path) == []


def test_orientations_split_a_band_by_direction() -> None:
    rng = np.random.default_rng(5)
    band = rng.standard_normal((48, 64, 3)).astype(np.float32)
    for n in (2, 4):
        parts = flow._orientations(band, n)
        assert len(parts) == n
        assert np.allclose(sum(parts), band, atol=1e-5)  # the parts sum to the band
    ys = np.arange(48, dtype=np.float32)[:, None, None]
    rows = np.broadcast_to(np.sin(ys * 2 * np.pi / 6), (48, 64, 3)).astype(np.float32)  # horizontal stripes
    across, along = flow._orientations(rows, 2)
    assert np.abs(across).max() < 1e-4 and np.allclose(along, rows, atol=1e-4)


def test_oriented_restore_does_not_strengthen_what_was_not_blurred() -> None:
    """A picture blurred along rows only (what a pan's repeated warps do): restoring one gain for all directions
    strengthens the detail across the blur (streaks); a gain per orientation does not."""
    import cv2

    rng = np.random.default_rng(6)
    reference = rng.random((96, 128, 3)).astype(np.float32)
    blurred = cv2.GaussianBlur(reference, (0, 0), sigmaX=0.6, sigmaY=1e-3)  # along x only

    def energies(x: np.ndarray) -> tuple[float, float]:
        band = flow._bands(x, 1)[0][8:-8, 8:-8]
        across, along = flow._orientations(band, 2)
        return float((across**2).mean()), float((along**2).mean())

    ref_across, ref_along = energies(reference)
    assert energies(blurred)[0] < 0.5 * ref_across  # detail varying along rows lost
    iso = energies(flow.restore_detail(blurred, reference, levels=2))
    oriented = energies(flow.restore_detail(blurred, reference, levels=2, orientations=2))
    assert iso[1] > 1.3 * ref_along  # one gain: the detail along rows made stronger than it ever was
    assert abs(oriented[1] / ref_along - 1) < 0.2  # measured +15% (the angular windows overlap)
    assert oriented[0] > max(0.7 * ref_across, iso[0])  # and the lost direction brought back


def test_a_write_killed_midway_leaves_a_hidden_tmp_file_that_a_resumed_video_clears(tmp_path, monkeypatch):
    """The temporary file is ``.NAME.*.tmp`` beside its destination: the name the frame cache removes when a
    run begins again after a hard kill (which gives the writer no chance to remove it)."""

    names = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (names.append(os.path.basename(a)), real(a, b))[1])
    cache = FrameCache(tmp_path / "out.frames")
    cache.begin({"run": 1}, keep=0)
    write_bytes(cache.folder / "frame_000001.png", b"frame")
    name = names[-1]
    assert name.startswith(".frame_000001.png.") and name.endswith(".tmp")
    (cache.folder / name).write_bytes(b"half a frame")  # what a SIGKILL between write and rename leaves
    cache.begin({"run": 1}, keep=1)
    assert sorted(p.name for p in cache.folder.iterdir() if p.name.startswith(".frame")) == []
    assert (cache.folder / "frame_000001.png").read_bytes() == b"frame"


# -- sizes, interruptions, resuming, truncated inputs ------------------------------------------------------------
def test_a_size_too_large_is_refused_before_any_frame_is_scaled(clip: clips.Clip, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    def no_scaling(self: vio.VideoReader, frame: object) -> np.ndarray:
        raise AssertionError("a frame was scaled before the size was checked")

    monkeypatch.setattr(vio.VideoReader, "_array", no_scaling)
    square = clips.write(clips.render(Image.open(CHELSEA), frames=3, size=(32, 32), moving_object=False),
                         tmp_path / "square.mp4", audio=False).path  # fmt: skip
    o = str(tmp_path / "o.mp4")
    cases = [
        ([str(clip.path), str(STARRY), "-o", o, "--size", "100000"], "--size must be a whole number from 16 to 16384"),
        ([str(square), str(STARRY), "-o", o, "--size", "16384"], "more than FFmpeg can scale or encode"),
    ]
    monkeypatch.setattr("impasto.estimate.available_memory", lambda device="cpu": 2**30)  # 1 GB: 4000 px is too big
    cases.append(([str(clip.path), str(STARRY), "-o", o, "--size", "4000"], "not enough memory"))
    before = sorted(p.name for p in tmp_path.iterdir())
    for args, words in cases:
        code, err = _run_cli(args, capsys)
        assert code == 2, (args, err)
        assert words in err and len(err.strip().splitlines()) == 1 and err.startswith("impasto: error:"), (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    # x264 takes at most 16384 pixels a side (FFmpeg alone would take a 16386-pixel-wide strip).
    vio.check_frame_size(16384, 10922, "libx264")
    vio.check_frame_size(16386, 100, "ffv1")
    with pytest.raises(InputError, match="libx264 cannot encode frames of 16386x100"):
        vio.check_frame_size(16386, 100, "libx264")


def test_ctrl_c_while_the_command_imports_is_one_line(tmp_path: Path) -> None:
    # The command as its console script starts it, with a Ctrl-C arriving while torch is being imported.
    script = tmp_path / "impasto"
    script.write_text(
        "import os, signal, sys\n"
        "class Hook:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch':\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Hook())\n"
        "from impasto.cli import main\n"
        "sys.exit(main())\n"
    )
    cmd = [sys.executable, str(script), "video", "in.mp4", "style.jpg", "-o", str(tmp_path / "o.mp4")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          # a shell's background job starts with SIGINT ignored, which the child would inherit
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip() == "impasto: interrupted while starting; nothing written"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["impasto"]


def test_only_the_command_installs_its_startup_handler() -> None:
    from impasto import startup

    assert startup.is_command(["/usr/bin/impasto", "video"], [])
    assert startup.is_command(["-m", "video"], ["python3", "-m", "impasto", "video"])
    assert startup.is_command(["-m"], ["python3", "-X", "importtime", "-mimpasto"])
    assert not startup.is_command(["-m", "x"], ["python3", "-m", "pytest", "impasto"])
    assert not startup.is_command(["/usr/bin/myapp"], ["python3", "/usr/bin/myapp"])
    assert signal.getsignal(signal.SIGINT) is not startup._quit  # a program that imports impasto keeps its own


def test_a_second_ctrl_c_while_the_partial_video_is_written_is_reported_truly(
    clip: clips.Clip, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from impasto.cli import video as cli_video

    finish = vio.VideoWriter.finish

    def stopped_again(self: vio.VideoWriter, path: Path | None = None) -> Path:
        if path is not None:  # the partial video
            self.abort()
            raise KeyboardInterrupt
        return finish(self, path)

    def stop_at_5(self: cli_video.Bar, info: video.FrameInfo) -> None:
        if info.done == 5 and not info.cached:
            raise KeyboardInterrupt

    out = tmp_path / "out.mp4"
    args = [str(clip.path), str(STARRY), "-o", str(out), "--size", "64", "-q"]
    with monkeypatch.context() as m:
        m.setattr(vio.VideoWriter, "finish", stopped_again)
        m.setattr(cli_video.Bar, "frame", stop_at_5)
        code, err = _run_cli(args, capsys)
    assert code == 130, err
    assert len(err.strip().splitlines()) == 1 and "before the run started" not in err, err
    assert err.startswith("impasto: interrupted after 5 frame(s)") and "--resume continues from frame 6" in err
    assert len(list((tmp_path / "out.mp4.frames").glob("frame_*.png"))) == 5
    assert not out.exists() and not (tmp_path / "out.partial.mp4").exists()
    code, err = _run_cli([*args, "--resume"], capsys)
    assert code == 0, err
    assert len(clips.decode(out)[0]) == 24 and _leftovers(tmp_path) == []


@pytest.mark.parametrize("output", ["frames/", "out.mp4"])
def test_resume_is_frame_for_frame_the_uninterrupted_run(clip: clips.Clip, tmp_path: Path, output: str) -> None:
    """Stopped after 1, 9 or 17 frames and resumed, the result is the uninterrupted run's, exactly: the PNG frames
    of a folder output, and the decoded frames of an H.264 one (the same frames encode the same way)."""

    def frames(path: Path) -> list[np.ndarray]:
        return _png_frames(path) if path.is_dir() else clips.decode(path)[0]

    ref = tmp_path / "ref" / output
    ref.parent.mkdir()
    video.stylize_video(clip.path, STARRY, ref, method="fast", size=64)
    expected = frames(ref)
    assert len(expected) == 24
    for stop in (1, 9, 17):
        out = tmp_path / str(stop) / output
        out.parent.mkdir()
        with pytest.raises(video.VideoStopped):
            video.stylize_video(clip.path, STARRY, out, method="fast", size=64, on_frame=_StopAfter(stop))
        result = video.stylize_video(clip.path, STARRY, out, method="fast", size=64, resume=True)
        assert result.resumed_from == stop and result.frames == 24
        got = frames(out)
        differing = [i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if not np.array_equal(a, b)]
        assert differing == [], (stop, differing)


def test_a_truncated_input_is_warned_about_and_recorded(tmp_path: Path) -> None:
    c = clips.render(Image.open(CHELSEA), frames=50, size=(96, 64))
    whole = clips.write(c, tmp_path / "whole.mp4", audio=False, faststart=True).path
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])  # the index (at the front) still lists 50 frames
    warnings: list[str] = []
    out = tmp_path / "out.mp4"
    result = video.stylize_video(cut, STARRY, out, method="fast", size=64, warn=warnings.append)
    truncated = [w for w in warnings if "truncated" in w]
    assert len(truncated) == 1 and "the header gives 50 frames" in truncated[0], warnings
    in_file = int(truncated[0].split("only ")[1].split()[0])
    assert result.frames <= in_file < 40
    frames, facts = clips.decode(out)
    assert len(frames) == result.frames
    meta = json.loads(facts["comment"])
    assert meta["video"]["truncated_input"] == {"frames_in_header": 50, "frames_in_file": in_file}
    # A whole file: no such warning, nothing recorded.
    warnings.clear()
    video.stylize_video(whole, STARRY, tmp_path / "whole-out.mp4", method="fast", size=64, warn=warnings.append)
    meta = json.loads(clips.decode(tmp_path / "whole-out.mp4")[1]["comment"])
    assert warnings == [] and "truncated_input" not in meta["video"]
