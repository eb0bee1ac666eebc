"""Benchmarks of ``--cluster`` (Ray): the overheads that the scale-out model of docs/benchmarks.md is
built from, and the temporal consistency of a video cut into chunks.

    python benchmarks/bench_cluster.py [--cpus 2] [--images 8] [--size 256] [--steps 50] [--method gatys]
                                       [--frames 48] [--chunk 12] [--overlap 4] [--json out.json]

Measured on a local Ray instance of ``--cpus`` CPUs (``ray.init(num_cpus=...)``; a real cluster adds the
network to the round trip and the transfers):

* ``round_trip_ms``: an empty actor task, submitted and waited for one at a time (the scheduler's and the
  driver's part of every task); ``pipelined_ms``: per empty task with 100 in flight;
* ``transfer_ms``: an image-sized payload (``--payload-kb``, about a 512 px PNG) to an actor and back through
  the object store;
* ``actor_start_s``: from asking for an actor to the end of its first (empty) task after loading the method's
  networks: what every actor pays once;
* batch throughput (images/s) of the same ``--images`` jobs: locally (``impasto.batch``, torch on all cores,
  and on one thread) and on the cluster with 1 and 2 actors (each one thread); ``per_image_overhead_s`` is the
  cluster with 1 actor minus the local run on one thread, per image, without actor start-up;
* video (``--frames`` > 0, fast method): the warping error (0-255, over the pixels the flow check trusts) of
  the local run and of the chunked run, at the chunk borders and inside the chunks.

Timings on a shared machine are noisy: compare the ratios of one run; the documented figures come from a quiet one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # tests/clips.py makes the clip

from tests import clips  # noqa: E402

from common import tubingen_starry_night  # noqa: E402
from impasto import batch, cluster, video  # noqa: E402
from impasto.core import flow  # noqa: E402
from impasto.options import make_options  # noqa: E402


class Echo:
    """An actor that does nothing: the cost of a task itself."""

    def ping(self, payload: object = None) -> object:
        return payload


def round_trips(ray, n: int, payload_kb: int) -> dict:  # noqa: ANN001 - the ray module
    actor = ray.remote(num_cpus=1)(Echo).remote()
    ray.get(actor.ping.remote())
    t0 = time.perf_counter()
    for _ in range(n):
        ray.get(actor.ping.remote())
    single = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    ray.get([actor.ping.remote() for _ in range(n)])
    pipelined = (time.perf_counter() - t0) / n
    data = np.random.default_rng(0).integers(0, 255, payload_kb * 1024, dtype=np.uint8).tobytes()
    t0 = time.perf_counter()
    for _ in range(max(1, n // 10)):
        assert len(ray.get(actor.ping.remote(data))) == len(data)
    transfer = (time.perf_counter() - t0) / max(1, n // 10)
    ray.kill(actor)
    return {"round_trip_ms": single * 1e3, "pipelined_ms": pipelined * 1e3, "transfer_ms": transfer * 1e3}


def actor_start(ray, options) -> float:  # noqa: ANN001
    style = tubingen_starry_night()[1]
    t0 = time.perf_counter()
    actor = ray.remote(num_cpus=1)(cluster.BatchActor).remote(options, [(str(style), style.read_bytes())])
    ray.get(actor.pid.remote())
    seconds = time.perf_counter() - t0
    ray.kill(actor)
    return seconds


def make_inputs(folder: Path, count: int) -> tuple[list[Path], Path]:
    content, style = tubingen_starry_night()
    im = Image.open(content).convert("RGB")
    paths = []
    for i in range(count):  # distinct crops of the photo, so no two jobs are the same
        w, h = im.size
        box = (i * w // (4 * count), 0, w - (count - i) * w // (4 * count), h)
        p = folder / f"photo{i:02d}.png"
        im.crop(box).save(p)
        paths.append(p)
    return paths, style


def batch_runs(args: argparse.Namespace, options, tmp: Path) -> dict:  # noqa: ANN001
    contents, style = make_inputs(tmp, args.images)
    out: dict = {}

    def timed(name: str, fn) -> None:  # noqa: ANN001
        folder = tmp / name
        folder.mkdir()
        t0 = time.perf_counter()
        result = fn(folder)
        seconds = time.perf_counter() - t0
        assert len(result.written) == args.images, name
        out[name] = {"seconds": seconds, "images_per_s": args.images / seconds}
        print(f"  {name}: {seconds:.1f} s, {args.images / seconds:.3f} images/s", flush=True)

    threads = torch.get_num_threads()
    timed("local_all_threads", lambda f: batch.run_batch(contents, [style], f, options))
    torch.set_num_threads(1)
    timed("local_1_thread", lambda f: batch.run_batch(contents, [style], f, options))
    torch.set_num_threads(threads)
    for n in args.actors:
        timed(f"cluster_{n}_actors", lambda f, n=n: cluster.run_batch(contents, [style], f, options, actors=n))
    return out


def warping_errors(frames: list[np.ndarray], clip: clips.Clip, estimator: flow.FlowEstimator) -> list[float]:
    errors = [float("nan")]
    for t in range(1, len(frames)):
        pair = estimator.pair(clip.frames[t - 1], clip.frames[t])
        errors.append(flow.warping_error(frames[t], frames[t - 1], pair.backward, pair.reliability()))
    return errors


def video_run(args: argparse.Namespace, tmp: Path) -> dict:
    clip = clips.render(Image.open(tubingen_starry_night()[0]), frames=args.frames, size=(args.video_size,
                        args.video_size * 2 // 3))  # fmt: skip
    src = tmp / "frames"
    src.mkdir()
    for i, f in enumerate(clip.frames):
        Image.fromarray(f).save(src / f"f{i:04d}.png")
    style = tubingen_starry_night()[1]
    runs = {}
    for name, engine in (("local", None), ("chunked", {"chunk": args.chunk, "overlap": args.overlap}),
                         ("chunked_no_overlap", {"chunk": args.chunk, "overlap": 0})):  # fmt: skip
        out = tmp / f"video_{name}"
        with video.VideoJob(src, [style], out, make_options(method="fast"), video.VideoSettings()) as job:
            t0 = time.perf_counter()
            job.run() if engine is None else cluster.run_video(job, **engine)
            seconds = time.perf_counter() - t0
        frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(out.glob("frame_*.png"))]
        assert len(frames) == args.frames, (name, len(frames))
        runs[name] = (frames, seconds)
    estimator = flow.FlowEstimator("medium")
    borders = [t for t in range(args.chunk, args.frames, args.chunk)]
    report: dict = {"borders": borders}
    for name, (frames, seconds) in runs.items():
        e = warping_errors(frames, clip, estimator)
        inside = [e[t] for t in range(1, args.frames) if t not in borders]
        report[name] = {
            "seconds": seconds,
            "warping_error_borders": float(np.mean([e[t] for t in borders])) if borders else None,
            "warping_error_inside": float(np.mean(inside)),
        }
        print(f"  video {name}: borders {report[name]['warping_error_borders']}, inside "
              f"{report[name]['warping_error_inside']:.2f} ({seconds:.1f} s)", flush=True)  # fmt: skip
    loc, chk = runs["local"][0], runs["chunked"][0]
    report["mean_abs_diff_to_local_at_borders"] = (
        float(np.mean([np.abs(loc[t].astype(float) - chk[t]).mean() for t in borders])) if borders else None
    )
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--method", default="gatys")
    p.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    p.add_argument("--round-trips", type=int, default=200)
    p.add_argument("--payload-kb", type=int, default=400)
    p.add_argument("--frames", type=int, default=48, help="video frames (0: no video part)")
    p.add_argument("--video-size", type=int, default=192)
    p.add_argument("--chunk", type=int, default=12)
    p.add_argument("--overlap", type=int, default=4)
    p.add_argument("--json", type=Path, help="also write the report here")
    args = p.parse_args()
    ray = cluster.ray_module()
    temp = tempfile.mkdtemp(prefix="impasto-ray-bench-", dir="/tmp")
    ray.init(num_cpus=args.cpus, include_dashboard=False, _temp_dir=temp, log_to_driver=False)
    options = make_options(method=args.method, size=args.size, steps=args.steps, precision="fp32")
    report: dict = {"cpus": args.cpus, "torch_threads": torch.get_num_threads(), "method": args.method,
                    "size": args.size, "steps": args.steps, "images": args.images}  # fmt: skip
    try:
        report.update(round_trips(ray, args.round_trips, args.payload_kb))
        print(f"round trip {report['round_trip_ms']:.2f} ms, pipelined {report['pipelined_ms']:.3f} ms, "
              f"{args.payload_kb} KB there and back {report['transfer_ms']:.2f} ms", flush=True)  # fmt: skip
        report["actor_start_s"] = actor_start(ray, options)
        print(f"actor start (networks loaded) {report['actor_start_s']:.2f} s", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            batch_report = batch_runs(args, options, Path(tmp))
            batch_report["per_image_overhead_s"] = (
                batch_report["cluster_1_actors"]["seconds"] - batch_report["local_1_thread"]["seconds"]
                - report["actor_start_s"]
            ) / args.images if "cluster_1_actors" in batch_report else None  # fmt: skip
            report["batch"] = batch_report
            if args.frames:
                report["video"] = video_run(args, Path(tmp))
    finally:
        ray.shutdown()
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
