"""The Gatys step of an older commit against the working tree, in one process, alternating (noise-robust A/B).

    python benchmarks/ab_step.py 6dd298b --size 512 --rounds 6

The older commit's package is unpacked with ``git archive`` and imported as ``impasto_old`` (its imports are
relative), so both run on the same images, allocator and machine state; each round runs a few optimizer steps
of each side, the order alternating. Prints the median step time of each side and their ratio.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

from common import ROOT


def unpack(commit: str, folder: Path) -> None:
    data = subprocess.run(["git", "archive", commit, "src/impasto"], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(folder, filter="data")
    (folder / "src" / "impasto").rename(folder / "impasto_old")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("commit")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--steps", type=int, default=6, help="optimizer steps per round and side (first two not timed)")
    p.add_argument("--precision", default="fp32")
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp())
    unpack(args.commit, tmp)
    sys.path.insert(0, str(tmp))
    import impasto_old  # unpacked above

    from impasto import make_options
    from impasto.core.malloc import tune_allocator
    from impasto.io.images import load_image
    from impasto.methods.gatys import Gatys

    tune_allocator()
    content = load_image(ROOT / "examples" / "chelsea.png", args.size)
    content = torch.nn.functional.interpolate(content, size=(args.size, args.size), mode="bilinear")
    style = load_image(ROOT / "examples" / "starry_night.jpg", args.size)
    try:  # the layout before the refactor
        from impasto_old.gatys import StyleTransfer as OldEngine
    except ImportError:
        from impasto_old.methods.gatys import Gatys as OldEngine
    old = OldEngine(impasto_old.make_options(size=args.size, precision=args.precision))
    new = Gatys(make_options(size=args.size, precision=args.precision))
    build_old = getattr(old, "build_losses", None) or old.build_terms
    sides = {"old": (old, build_old(content, [style])), "new": (new, new.build_terms(content, [style]))}

    def run(side: str) -> list[float]:
        engine, terms = sides[side]
        stamps: list[float] = []
        engine.optimize(content, terms, args.steps, lambda info: stamps.append(time.perf_counter()))
        return [b - a for a, b in zip(stamps[1:], stamps[2:])]

    times: dict[str, list[float]] = {"old": [], "new": []}
    for r in range(args.rounds):
        for side in ("old", "new") if r % 2 == 0 else ("new", "old"):
            times[side] += run(side)
    for side, t in times.items():
        print(f"{side}: median step {statistics.median(t):.4f} s over {len(t)} steps")
    print(f"new/old: {statistics.median(times['new']) / statistics.median(times['old']):.3f}")


if __name__ == "__main__":
    main()
