"""Gatys step cost against the bare VGG floor, peak memory, and the tutorial preset against the tutorial.

Part 1, for each size and precision, each in a fresh subprocess (so peak RSS is its own): seconds per
iteration (median) of the full Gatys step (default preset: VGG-19 forward to relu5_1, content + 5 style losses,
backward, L-BFGS update, clamp), seconds per bare VGG forward+backward of the same input to the same layer
(the floor), their ratio, and the process's peak RSS.

Part 2: ``--preset tutorial`` end to end (network build, targets, 300 L-BFGS evaluations, ``mixed``
precision: fp32 forward, bf16 gradients) against ``tutorial_baseline.py`` (the tutorial's loop as the
tutorial structures it, fp32) on the same images and size, in the same run; all final images are scored with
the same fp32 tutorial loss. The baseline runs as
the tutorial is written (its VGG's weights keep ``requires_grad``, so each backward also computes weight
gradients) and, for reference, with the ``model.requires_grad_(False)`` of later tutorial versions.

It also reports when impasto's run first reaches the baseline's final loss (``--tutorial-evals N`` lets it go
on past 300 evaluations to find out): a measure that does not hang on where L-BFGS's last step happens to land.

    python benchmarks/bench_gatys.py                    # everything (~15 min on 2 cores)
    python benchmarks/bench_gatys.py --skip-tutorial    # part 1 only
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from common import HERE, ROOT, SHARED


def _images(kind: str) -> tuple[Path, Path]:
    if kind == "tutorial" and (SHARED / "content" / "dancing.jpg").exists():
        return SHARED / "content" / "dancing.jpg", SHARED / "style" / "picasso.jpg"
    return ROOT / "examples" / "chelsea.png", ROOT / "examples" / "starry_night.jpg"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_step(size: int, precision: str, iters: int, allocator: str = "tuned") -> dict:
    """Per-iteration seconds of the Gatys step and of the bare VGG floor (run inside a subprocess)."""
    from impasto import make_options
    from impasto.core.malloc import tune_allocator

    if allocator == "tuned":  # as the CLI and impasto.stylize run
        tune_allocator()
    from impasto.io.images import load_image
    from impasto.methods.gatys import Gatys

    content_path, style_path = _images("default")
    content = load_image(content_path, size)
    h, w = content.shape[-2:]
    content = torch.nn.functional.interpolate(content, size=(size, size), mode="bilinear")  # square, as stated
    style = load_image(style_path, size)
    st = Gatys(make_options(precision=precision, size=size, steps=iters + 2))
    losses = st.build_terms(content, [style])
    stamps: list[float] = []
    st.optimize(content, losses, callback=lambda info: stamps.append(time.perf_counter()))
    # Medians of per-iteration times (the first evaluation is warm-up): robust to a noisy neighbour.
    gatys = statistics.median(b - a for a, b in zip(stamps[1:], stamps[2:]))
    rss_gatys = peak_rss_mb()

    layers = list(dict.fromkeys(n for t in losses for n in t.layers))
    deepest_layer = st.net.layers[-1]
    x = content.clone().requires_grad_(True)

    def bare() -> None:  # same network and precision, no losses, no optimizer
        out = st.net(st.net_input(x), [deepest_layer])[deepest_layer]
        out.float().sum().backward()

    bare()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        bare()
        times.append(time.perf_counter() - t0)
    floor = statistics.median(times)
    return {"size": size, "precision": precision, "gatys_s": gatys, "floor_s": floor, "ratio": gatys / floor,
            "peak_rss_mb": rss_gatys, "layers": layers, "allocator": allocator}  # fmt: skip


def run_tutorial(size: int, frozen: bool = True, impasto_evals: int = 300, impasto_first: bool = False) -> dict:
    """Tutorial baseline and impasto's tutorial preset, end to end, same images and size.

    With ``impasto_evals`` > 300 impasto goes on past the tutorial's 300 evaluations (its first 300 are the same
    run: the figures at 300 are read from its history), to find when it reaches the baseline's final loss.
    ``impasto_first`` runs impasto before the baseline (repeats alternate the order).
    """
    sys.path.insert(0, str(HERE))
    from impasto import make_options
    from impasto.io.images import load_image
    from impasto.methods.base import Stylization
    from impasto.methods.gatys import Gatys
    from tutorial_baseline import run_style_transfer

    content_path, style_path = _images("tutorial")
    content, style = load_image(content_path, size), load_image(style_path, size)

    scorer = Gatys(make_options("tutorial", precision="fp32"))
    score_losses = scorer.build_terms(content, [style])

    def score(img: torch.Tensor) -> float:
        with torch.no_grad():
            return float(scorer.evaluate(img, score_losses)[0])

    out: dict = {}

    def baseline() -> None:
        t0 = time.perf_counter()
        out["base_img"], out["evals"] = run_style_transfer(content, style, content.clone())
        out["base_s"] = time.perf_counter() - t0
        out["frozen_s"], out["frozen_loss"] = float("nan"), float("nan")
        if frozen:
            t0 = time.perf_counter()
            frozen_img, _ = run_style_transfer(content, style, content.clone(), freeze=True)
            out["frozen_s"] = time.perf_counter() - t0
            out["frozen_loss"] = score(frozen_img)

    def impasto() -> None:
        t0 = time.perf_counter()
        stamps: list[float] = []
        transfer = Gatys(make_options("tutorial", size=size, steps=max(impasto_evals, 300)))
        run = Stylization(content, [style])
        out["ours"] = transfer.stylize(run, callback=lambda info: stamps.append(time.perf_counter() - t0))
        out["stamps"], out["transfer"] = stamps, transfer

    for side in (impasto, baseline) if impasto_first else (baseline, impasto):  # the first runs on a cooler CPU
        side()
    base_img, evals, base_s = out["base_img"], out["evals"], out["base_s"]
    frozen_s, frozen_loss = out["frozen_s"], out["frozen_loss"]
    ours, stamps, transfer = out["ours"], out["stamps"], out["transfer"]
    ours_s, ours_loss = stamps[299], transfer.history[299]["loss"]  # the evaluated loss is the fp32 loss
    base_loss = score(base_img)
    reach = next((i for i, row in enumerate(transfer.history) if row["loss"] <= base_loss), None)
    return {"size": size, "images": [content_path.name, style_path.name], "baseline_s": base_s, "baseline_evals": evals,
            "baseline_loss": base_loss, "frozen_s": frozen_s, "frozen_loss": frozen_loss,
            "impasto_s": ours_s, "impasto_evals": 300, "impasto_loss": ours_loss,
            "impasto_last_loss": score(ours), "impasto_total_evals": len(transfer.history),
            "reach_evals": None if reach is None else reach + 1, "reach_s": None if reach is None else stamps[reach],
            "speedup": base_s / ours_s, "speedup_vs_frozen": frozen_s / ours_s,
            "precision": transfer.options.precision, "impasto_first": impasto_first}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--iters", type=int, default=8)
    p.add_argument(
        "--tutorial-sizes",
        type=int,
        nargs="+",
        default=[128, 256],
        help="128 and 512 are the tutorial's CPU and GPU sizes",
    )
    p.add_argument("--skip-tutorial", action="store_true")
    p.add_argument("--skip-steps", action="store_true")
    p.add_argument("--repeats", type=int, default=1, help="run each tutorial comparison this many times")
    p.add_argument(
        "--tutorial-evals",
        type=int,
        default=300,
        help="let impasto go on past 300 evaluations to see when it reaches the baseline's loss",
    )
    p.add_argument("--no-frozen", action="store_true", help="skip the frozen-weights baseline (saves time at 512 px)")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument(
        "--allocator",
        choices=["tuned", "default", "both"],
        default="tuned",
        help="tuned: glibc keeps freed memory, as the CLI runs (impasto.core.malloc.tune_allocator)",
    )
    p.add_argument("--_child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        size, precision, iters, allocator = args._child
        print(json.dumps(measure_step(int(size), precision, int(iters), allocator)))
        return
    results: dict = {"torch": torch.__version__, "threads": torch.get_num_threads(), "steps": [], "tutorial": None}
    if not args.skip_steps:
        allocators = ["tuned", "default"] if args.allocator == "both" else [args.allocator]
        print(f"{'size':>5} {'prec':>5} {'allocator':>9} {'gatys s/it':>11} {'floor s/it':>11} {'ratio':>6} "
              f"{'peak RSS MB':>12}")  # fmt: skip
        for size in args.sizes:
            for precision in args.precisions:
                for alloc in allocators:
                    cmd = [sys.executable, __file__, "--_child", str(size), precision, str(args.iters), alloc]
                    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                    results["steps"].append(r)
                    print(f"{size:>5} {precision:>5} {alloc:>9} {r['gatys_s']:>11.3f} {r['floor_s']:>11.3f} "
                          f"{r['ratio']:>6.3f} {r['peak_rss_mb']:>12.0f}", flush=True)  # fmt: skip
    if not args.skip_tutorial:
        if args.allocator != "default":  # the baseline runs in this process too: both get the same allocator
            from impasto.core.malloc import tune_allocator

            tune_allocator()
        results["tutorial"] = []
        for size, rep in itertools.product(args.tutorial_sizes, range(args.repeats)):
            first = rep % 2 == 1  # alternate which side runs first
            r = run_tutorial(size, frozen=not args.no_frozen, impasto_evals=args.tutorial_evals, impasto_first=first)
            results["tutorial"].append(r)
            print(f"\ntutorial preset at {r['size']} px ({', '.join(r['images'])}), 300 evaluations each:")
            print(f"  baseline, the tutorial's loop as written (fp32):   {r['baseline_s']:7.1f} s  "
                  f"final loss {r['baseline_loss']:.4f}")  # fmt: skip
            if not args.no_frozen:
                print(f"  baseline with model.requires_grad_(False):         {r['frozen_s']:7.1f} s  "
                      f"final loss {r['frozen_loss']:.4f}")  # fmt: skip
            print(f"  impasto --preset tutorial ({r['precision']:>5}):            {r['impasto_s']:7.1f} s  "
                  f"final loss {r['impasto_loss']:.4f}")  # fmt: skip
            vs_frozen = "" if args.no_frozen else f" ({r['speedup_vs_frozen']:.2f}x vs the frozen baseline)"
            print(f"  speed-up {r['speedup']:.2f}x{vs_frozen}, "
                  f"loss ratio impasto/baseline {r['impasto_loss'] / r['baseline_loss']:.4f}", flush=True)  # fmt: skip
            if r["reach_evals"] is None:
                print(f"  impasto does not reach the baseline's final loss in {r['impasto_total_evals']} evaluations")
            else:
                print(f"  impasto reaches the baseline's final loss at evaluation {r['reach_evals']}, "
                      f"{r['reach_s']:.1f} s: {r['baseline_s'] / r['reach_s']:.2f}x faster to equal loss")  # fmt: skip
        if args.repeats > 1:
            for size in args.tutorial_sizes:
                runs = [r for r in results["tutorial"] if r["size"] == size]
                speed = statistics.median(r["speedup"] for r in runs)
                each = ", ".join(f"{r['speedup']:.2f}" for r in runs)
                losses = [round(r["impasto_loss"] / r["baseline_loss"], 4) for r in runs]
                print(f"\n{size} px, {len(runs)} runs: median speed-up {speed:.2f}x ({each}); loss ratios {losses}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
