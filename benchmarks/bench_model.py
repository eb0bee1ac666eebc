"""Inference speed of trained networks (``--model``): seconds per 512x512 image, warm, for the published width
(32), the smaller one (16) and any built-in styles asked for, next to the fast method (AdaIN) measured in the same
run, then batch mode end to end (read, stylize, write PNG) in images per second; ``--memory`` measures peak RSS of
one pass at several sizes in fresh processes, against the estimate (:func:`impasto.methods.model.peak_bytes`).

Speed does not depend on the weights, so the networks of a given width are initialized, not trained.

    python benchmarks/bench_model.py [--size 512] [--repeats 5] [--batch 8] [--widths 32 16] [--builtin 19]
                                     [--memory 1024 2048]
"""

from __future__ import annotations

import argparse
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
from common import SHARED as _SHARED
from impasto.batch import run_batch
from impasto.core.malloc import tune_allocator
from impasto.io.images import load_image
from impasto.io.models import ARCHITECTURE, load_model, save_model
from impasto.methods.adain import AdaIN
from impasto.methods.model import peak_bytes as model_peak_bytes
from impasto.methods.transformer import Stylizer, TransformerNet
from impasto.options import make_options

SHARED = Path(os.environ.get("IMPASTO_SHARED_IMAGES", _SHARED))


def model_file(folder: Path, width: int) -> Path:
    torch.manual_seed(0)
    path = folder / f"w{width}.pt"
    save_model(path, TransformerNet(width).state_dict(), {"architecture": ARCHITECTURE, "width": width})
    return path


def peak_rss(model: Path, size: int) -> None:
    """Child process: one pass at ``size`` x ``size``, prints peak RSS in bytes."""
    s = Stylizer(load_model(model), torch.device("cpu"))
    s(torch.rand(1, 3, size, size))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8, help="images in the batch-mode run")
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 16])
    ap.add_argument("--builtin", nargs="*", default=[], metavar="N", help="built-in styles to time too, e.g. 19")
    ap.add_argument("--memory", type=int, nargs="*", default=[], help="sizes for the peak-RSS check")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return peak_rss(Path(args.child[0]), int(args.child[1]))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for w in args.widths:
            model_file(folder, w)
        # Peak memory first, while this process is small: a child's ru_maxrss starts from its parent's resident
        # size at the fork (Linux keeps the high-water mark across exec).
        for size in args.memory:
            for w in args.widths:
                out = subprocess.run([sys.executable, __file__, "--child", str(folder / f"w{w}.pt"), str(size)],
                                     capture_output=True, text=True, check=True).stdout  # fmt: skip
                rss, est = int(out.split()[-1]), model_peak_bytes(size * size, size * size, w)
                print(f"peak RSS {size}x{size}, width {w}: {rss / 2**20:.0f} MB, estimate {est / 2**20:.0f} MB "
                      f"({(est - rss) / rss:+.0%})")  # fmt: skip
        tune_allocator()  # as the CLI and impasto.stylize run: glibc keeps freed memory (impasto.core.malloc)
        x = torch.rand(1, 3, args.size, args.size)
        style = load_image(ROOT / "examples" / "starry_night.jpg", args.size)
        fns = {}
        for w in args.widths:
            s = Stylizer(load_model(folder / f"w{w}.pt"), torch.device("cpu"))
            fns[f"model width {w}"] = lambda s=s: s(x)
        for spec in args.builtin:
            s = Stylizer(load_model(f"builtin:{spec}"), torch.device("cpu"))
            fns[f"builtin:{spec}"] = lambda s=s: s(x)
        engine = AdaIN.shared("cpu", "auto")
        fns["fast (AdaIN)"] = lambda: engine.stylize(x, [style])
        for fn in fns.values():
            fn()  # warm-up
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(args.repeats):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        for name, v in times.items():
            print(f"{name:15s}: {statistics.median(v):.3f} s per {args.size}x{args.size} image (median of {len(v)})")
        # batch mode end to end
        photos = sorted((SHARED / "content").glob("*.jpg")) if (SHARED / "content").is_dir() else []
        photos = (photos or [ROOT / "examples" / "chelsea.png"]) * args.batch
        inputs = folder / "in"
        inputs.mkdir()
        for i, p in enumerate(photos[: args.batch]):
            (inputs / f"{i:03d}-{p.name}").write_bytes(p.read_bytes())
        models = {f"width {w}": str(folder / f"w{w}.pt") for w in args.widths}
        models.update({f"builtin:{spec}": f"builtin:{spec}" for spec in args.builtin})
        for i, (name, model) in enumerate(models.items()):
            opts = make_options(model=model, size=args.size)
            (folder / f"out{i}").mkdir()
            result = run_batch(sorted(inputs.iterdir()), [], folder / f"out{i}", opts)
            print(f"batch, {name}: {len(result.written)} images in {result.seconds:.1f} s = "
                  f"{result.images_per_second:.2f} images/s (read, stylize, write PNG)")  # fmt: skip


if __name__ == "__main__":
    main()
