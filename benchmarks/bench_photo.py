"""Benchmarks of the photorealistic methods (docs/benchmarks.md, docs/guides/photorealistic.md).

Sections (all by default; pick with --only):

* ``step``: a photo step (hand-written pass + the regularizer) against a plain Gatys step at --size, in one
  process, alternating; target <= 1.15x.
* ``build``: building the matting Laplacian (stencil, float32 CSR tensor) at --size; target <= 2 s.
* ``fast``: photo-fast at --size, warm (networks loaded, style encoded once), per smoothing and transform;
  target <= 2 s with the default smoothing.
* ``smooth``: Li et al.'s smoothing alone at 803x538 (their 13.5 s with SciPy; target >= 5x less), exact and
  guided, and the guided result's distance from the exact one.
* ``memory``: L's bytes at --memory-sizes, and each size's photo run (a fresh process, the preset's scales,
  one step at each coarser scale and --memory-steps at the last) against the plan's peak-memory estimate;
  target within +-20%.
* ``edges``: the straight-edge test's margin over seeds, step counts and styles (photo vs gatys).
* ``structure``: WCT vs AdaIN for photo-fast: correlation of the output's gradient magnitude with the
  content's, before and after smoothing, on the photo pairs (../shared/images/photo) or the free photos.

    python benchmarks/bench_photo.py                          # everything at 512 px (long on a busy machine)
    python benchmarks/bench_photo.py --only step build --size 256 --iters 3
    python benchmarks/bench_photo.py --only memory --memory-sizes 1024 2048 --memory-steps 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import ROOT
from impasto.core import matting
from impasto.core.malloc import tune_allocator
from impasto.io.images import load_image
from impasto.methods.gatys import Gatys
from impasto.options import make_options

SHARED = Path(os.environ.get("IMPASTO_SHARED_IMAGES", ROOT.parent / "shared" / "images"))
FREE = SHARED / "free"
PHOTO = SHARED / "photo"


def timed(fn, repeats: int) -> list[float]:  # noqa: ANN001
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def square(path: Path, size: int) -> torch.Tensor:
    image = load_image(path, None)
    side = min(image.shape[-2:])
    image = image[..., :side, :side]
    return torch.nn.functional.interpolate(image, size=(size, size), mode="bicubic", antialias=True).clamp(0, 1)


def images(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A size x size content and style: the free astronaut and rocket (bundled cat and Starry Night else)."""
    if (FREE / "astronaut.png").exists():
        return square(FREE / "astronaut.png", size), square(FREE / "rocket.jpg", size)
    return square(ROOT / "examples" / "chelsea.png", size), square(ROOT / "examples" / "starry_night.jpg", size)


def bench_step(args: argparse.Namespace) -> dict:
    content, style = images(args.size)
    plain = Gatys(make_options("photo", method="gatys", photo_weight=0.0, size=args.size, precision=args.precision))
    photo = Gatys(make_options("photo", size=args.size, precision=args.precision), net=plain.net)
    plain_terms = plain.build_terms(content, [style])
    photo_terms = photo.build_terms(content, [style])
    image = (content + 0.05 * torch.rand_like(content)).clamp(0, 1)
    for engine, terms in ((plain, plain_terms), (photo, photo_terms)):
        engine.loss_and_grad(image, terms)  # warm-up
    a, b = [], []
    for _ in range(args.iters):
        a += timed(lambda: plain.loss_and_grad(image, plain_terms), 1)
        b += timed(lambda: photo.loss_and_grad(image, photo_terms), 1)
    ta, tb = statistics.median(a), statistics.median(b)
    return {"size": args.size, "gatys_step_s": round(ta, 3), "photo_step_s": round(tb, 3), "ratio": round(tb / ta, 3),
            "target": "<= 1.15"}  # fmt: skip


def bench_build(args: argparse.Namespace) -> dict:
    content, _ = images(args.size)
    times = timed(lambda: matting.laplacian_tensor(content), args.iters)
    lap = matting.laplacian_tensor(content)
    nbytes = sum(t.numel() * t.element_size() for t in (lap.crow_indices(), lap.col_indices(), lap.values()))
    return {"size": args.size, "build_s": round(statistics.median(times), 3), "csr_mb": round(nbytes / 2**20, 1),
            "nnz_per_pixel": round(lap.values().numel() / args.size**2, 2), "target": "<= 2 s"}  # fmt: skip


def bench_fast(args: argparse.Namespace) -> list[dict]:
    from impasto.api import Runner, Stylization

    content, style = images(args.size)
    rows = []
    for smooth in args.smooth:
        for transform in args.transform:
            opts = make_options(method="photo-fast", size=args.size, smooth=smooth, transform=transform)
            runner = Runner(opts)
            runner(Stylization(content, [style]))  # warm
            times = timed(lambda runner=runner: runner(Stylization(content, [style])), max(1, args.iters // 2))
            seconds = round(statistics.median(times), 3)
            rows.append({"size": args.size, "smooth": smooth, "transform": transform, "seconds": seconds,
                         "iterations": runner.method.iterations})  # fmt: skip
    return rows


def bench_smooth(args: argparse.Namespace) -> dict:
    from impasto.methods.photo_fast import PhotoFast

    path = PHOTO / "input" / "in1.png"
    src = load_image(path if path.exists() else FREE / "coffee.png", None)
    content = torch.nn.functional.interpolate(src, size=(538, 803), mode="bicubic", antialias=True).clamp(0, 1)
    style_path = PHOTO / "style" / "tar1.png"
    style = load_image(style_path if style_path.exists() else FREE / "rocket.jpg", 512)
    y = PhotoFast(make_options(method="photo-fast"), None).decode_stylized(content, style)[0]
    t = time.perf_counter()
    exact, iterations = matting.smooth(content[0], y, "exact")
    t_first = time.perf_counter() - t  # includes loading the compiled kernels (compiled once per install)
    t_exact = statistics.median(timed(lambda: matting.smooth(content[0], y, "exact"), max(1, args.iters)))
    t = time.perf_counter()
    guided, _ = matting.smooth(content[0], y, "guided")
    t_guided = time.perf_counter() - t
    diff = (guided - exact).abs() * 255
    return {"size": "803x538", "exact_s": round(t_exact, 2), "exact_first_call_s": round(t_first, 2),
            "cg_iterations": iterations,
            "guided_s": round(t_guided, 2),
            "li_et_al_s": 13.5, "speedup_exact": round(13.5 / t_exact, 1), "speedup_guided": round(13.5 / t_guided, 1),
            "guided_vs_exact_rms_255": round(float(diff.pow(2).mean().sqrt()), 2),
            "guided_vs_exact_p99_255": round(float(diff.reshape(-1).kthvalue(int(0.99 * diff.numel())).values), 1),
            "target": ">= 5x"}  # fmt: skip


def child(argv: list[str]) -> None:
    from impasto import cli

    code = cli.main(argv)
    print(json.dumps({"code": code, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def bench_memory(args: argparse.Namespace) -> list[dict]:
    from impasto import estimate
    from impasto.cli import stylize
    from impasto.io.images import open_image

    content = FREE / "astronaut.png" if (FREE / "astronaut.png").exists() else ROOT / "examples" / "chelsea.png"
    style = FREE / "rocket.jpg" if (FREE / "rocket.jpg").exists() else ROOT / "examples" / "starry_night.jpg"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.memory_sizes:
            for method in ("photo", "gatys"):  # the same run without the regularizer, to isolate its memory
                argv = [str(content), str(style), "-o", str(Path(tmp) / f"p{size}.png"), "--preset", "photo", "-s",
                        str(size), "--steps", str(args.memory_steps), "-q", "--method", method]  # fmt: skip
                argv += ["--photo-weight", "0"] if method == "gatys" else []
                a = stylize.build_parser().parse_args(argv)
                sizes = (open_image(a.content).size, [open_image(a.styles[0]).size])
                n = len(estimate.plan(stylize.options_from_args(a), *sizes).scales)
                if n > 1:  # the preset runs coarse to fine: one step per coarser scale, the steps at the last
                    argv += ["--scale-steps", ",".join(["1"] * (n - 1) + [str(args.memory_steps)])]
                    a = stylize.build_parser().parse_args(argv)
                p = estimate.plan(stylize.options_from_args(a), *sizes)
                h, w = p.scales[-1].hw
                proc = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True, text=True)
                if proc.returncode != 0:
                    sys.exit(f"run at {size} failed: {proc.stderr.strip().splitlines()[-1:]}")
                got = json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss"]
                lap = h * w * matting.laplacian_csr_bytes_per_pixel() if method == "photo" else 0
                rows.append({"size": size, "method": method, "pixels": h * w, "laplacian_mb": round(lap / 2**20),
                             "estimate_mb": round(p.peak_bytes / 2**20), "measured_mb": round(got / 2**20),
                             "ratio": round(p.peak_bytes / got, 3), "target": "0.8 .. 1.2"})  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_edges(args: argparse.Namespace) -> list[dict]:
    sys.path.insert(0, str(ROOT))
    from tests.test_photo import EDGE_MARGIN, EDGE_STEPS, edge_correlation, straight_edges

    from impasto.api import Runner, Stylization

    styles = [ROOT / "examples" / "starry_night.jpg"] + sorted((SHARED / "style").glob("the_scream.jpg"))
    rows = []
    for style_path in styles:
        for steps in (EDGE_STEPS, 2 * EDGE_STEPS, 4 * EDGE_STEPS):
            for seed in (0, 1):
                content = straight_edges()
                content = content + 0.02 * seed * torch.rand(
                    content.shape, generator=torch.Generator().manual_seed(seed)
                )
                style = load_image(style_path, 64)
                corr = {}
                for name, preset in (("gatys", "default"), ("photo", "photo")):
                    opts = make_options(preset, size=64, steps=steps, precision="fp32", style_weight=5.0, seed=seed)
                    corr[name] = edge_correlation(Runner(opts)(Stylization(content, [style])), content)
                rows.append({"style": style_path.name, "steps": steps, "seed": seed, **{k: round(v, 3) for k, v in
                             corr.items()}, "margin": round(corr["photo"] - corr["gatys"], 3)})  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    print(f"smallest margin {min(r['margin'] for r in rows):.3f} (the test asserts > {EDGE_MARGIN})")
    return rows


def bench_structure(args: argparse.Namespace) -> list[dict]:
    sys.path.insert(0, str(ROOT))
    from tests.test_photo import edge_correlation

    from impasto.api import Runner, Stylization

    pairs = [(PHOTO / "input" / f"in{n}.png", PHOTO / "style" / f"tar{n}.png") for n in (1, 9, 17)]
    pairs = [p for p in pairs if p[0].exists()] or [(FREE / "coffee.png", FREE / "rocket.jpg")]
    rows = []
    for content_path, style_path in pairs:
        content = load_image(content_path, args.size)
        style = load_image(style_path, args.size)
        for transform in ("wct", "adain"):
            row = {"content": content_path.name, "transform": transform}
            for smooth in ("none", "guided"):
                opts = make_options(method="photo-fast", size=args.size, smooth=smooth, transform=transform)
                row[smooth] = round(edge_correlation(Runner(opts)(Stylization(content, [style])), content), 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


SECTIONS = {"step": bench_step, "build": bench_build, "fast": bench_fast, "smooth": bench_smooth,
            "memory": bench_memory, "edges": bench_edges, "structure": bench_structure}  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--precision", default="auto")
    p.add_argument("--smooth", nargs="+", default=["guided", "exact", "none"], help="fast: smoothing modes")
    p.add_argument("--transform", nargs="+", default=["adain", "wct"], help="fast: feature transforms")
    p.add_argument("--memory-sizes", type=int, nargs="+", default=[1024, 2048])
    p.add_argument("--memory-steps", type=int, default=5)
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    tune_allocator()  # as the CLI and impasto.stylize run: glibc keeps freed memory (impasto.core.malloc)
    results = {}
    for name in args.only:
        results[name] = SECTIONS[name](args)
        print(name, json.dumps(results[name], indent=None), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
