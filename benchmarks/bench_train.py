"""Training speed of ``impasto train`` against a baseline that follows pytorch/examples' fast_neural_style
``neural_style.py train`` loop as written, in one process, steps alternating so both see the same load.

The baseline uses the same two networks (impasto's TransformerNet computed as written: nearest upsampling + conv,
9x9 convs, ``F.instance_norm``; impasto's VGG-19 with the same weights), fp32 eager, NCHW, the same batches of the
same photos: ``optimizer.zero_grad(); y = transformer(x); features_y = vgg(y); features_x = vgg(x);`` content MSE
at relu2_2, Gram matrices ``F F^T / (C H W)`` and their MSE at every style layer, ``backward(); step()``.
impasto's step is :meth:`impasto.training.Trainer.train_step` (the content image's features only up to relu2_2
and without autograd, Gram losses as taps, channels-last, sub-pixel upsampling and a space-to-depth last conv).

    python benchmarks/bench_train.py [--steps 6] [--size 256] [--batch 4] [--width 32] [--data FOLDER]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common import ROOT
from common import SHARED as _SHARED
from impasto.core.vgg import build_vgg
from impasto.io.images import load_image
from impasto.methods.transformer import TransformerNet
from impasto.training import Trainer, find_photos, make_train_options

SHARED = Path(os.environ.get("IMPASTO_SHARED_IMAGES", _SHARED))


def gram(y: torch.Tensor) -> torch.Tensor:
    b, c, h, w = y.size()
    f = y.view(b, c, w * h)
    return f.bmm(f.transpose(1, 2)) / (c * h * w)


class Baseline:
    """pytorch/examples' train loop as written, on impasto's networks."""

    def __init__(self, style: torch.Tensor, options, seed: int) -> None:  # noqa: ANN001
        torch.manual_seed(seed)
        self.transformer = TransformerNet(options.width)
        self.transformer.fast = False
        self.layers = list(options.style_layers) + list(options.content_layers)
        self.vgg = build_vgg(self.layers)
        self.optimizer = torch.optim.Adam(self.transformer.parameters(), options.lr)
        with torch.no_grad():
            feats = self.vgg(style, options.style_layers)
        self.gram_style = [gram(feats[n]) for n in options.style_layers]
        self.options = options

    def step(self, x: torch.Tensor) -> float:
        o = self.options
        self.optimizer.zero_grad()
        y = self.transformer(x)
        features_y = self.vgg(y, self.layers)
        features_x = self.vgg(x, self.layers)
        content = o.content_weight * F.mse_loss(features_y["relu2_2"], features_x["relu2_2"])
        style = 0.0
        for n, gm_s in zip(o.style_layers, self.gram_style):
            style += F.mse_loss(gram(features_y[n]), gm_s.expand(len(x), -1, -1))
        total = content + o.style_weight * style
        total.backward()
        self.optimizer.step()
        return total.item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per side (after one warm-up step each)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--data", help="photo folder (default ../shared/images/content, else examples/)")
    ap.add_argument("--threads", type=int, help="torch threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = args.data or (SHARED / "content" if (SHARED / "content").is_dir() else ROOT / "examples")
    style = SHARED / "style" / "starry_night.jpg"
    style = style if style.exists() else ROOT / "examples" / "starry_night.jpg"
    opts = make_train_options(start="scratch", train_size=args.size, batch_size=args.batch, width=args.width, seed=0,
                              sample_every=0, checkpoint_every=0, steps=10**6)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(style, Path(tmp) / "m.pt", opts, data, warn=lambda m: None)
        base = Baseline(load_image(style, opts.style_size), opts, 0)
        print(f"photos: {len(find_photos(data))} in {data}; batch {args.batch} x {args.size} px, width {args.width}, "
              f"{torch.get_num_threads()} threads")  # fmt: skip
        times: dict[str, list[float]] = {"baseline": [], "impasto": []}
        for k in range(args.steps + 1):
            x = trainer.data.batch(k, args.batch)
            t0 = time.perf_counter()
            base.step(x)
            tb = time.perf_counter() - t0
            t0 = time.perf_counter()
            trainer.train_step()
            ti = time.perf_counter() - t0
            if k:  # the first step of each warms up oneDNN and the allocator
                times["baseline"].append(tb)
                times["impasto"].append(ti)
            print(f"step {k}: baseline {tb:.2f} s, impasto {ti:.2f} s" + ("" if k else " (warm-up)"), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:9s}: {v:.3f} s/step median, {args.batch / v:.2f} images/s")
    print(f"impasto / baseline images per second: {med['baseline'] / med['impasto']:.2f}x (target >= 2x)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
