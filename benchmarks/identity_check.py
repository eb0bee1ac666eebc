"""Pixel-identity check for refactors: run a fixed set of small CLI runs and compare their outputs.

    python benchmarks/identity_check.py --save /tmp/before     # on the old code
    python benchmarks/identity_check.py --compare /tmp/before  # on the new code: max pixel difference per run

Every run goes through the command line (whose flags do not change), so the same script drives the code
before and after a move. Outputs are PNG (lossless); the loss history of each optimization run is kept too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from common import ROOT

EX = ROOT / "examples"
C, S = str(EX / "chelsea.png"), str(EX / "starry_night.jpg")

#: name -> (extra arguments, whether it writes a loss history)
RUNS: dict[str, tuple[list[str], bool]] = {
    "tutorial-64": ([C, S, "--preset", "tutorial", "-s", "64", "--steps", "100"], True),
    "default-64": ([C, S, "-s", "64", "--steps", "100"], True),
    "default-64-bf16": ([C, S, "-s", "64", "--steps", "40", "--precision", "bf16"], True),
    "article-64": ([C, S, "--preset", "article", "-s", "64", "--steps", "60"], True),
    "reflect-tv-64": ([C, S, "-s", "64", "--steps", "40", "--padding", "reflect", "--tv-weight", "10"], True),
    "fast-128": ([C, S, "--method", "fast", "-s", "128"], False),
    "fast-128-strength": ([C, S, "--method", "fast", "-s", "128", "--strength", "0.5"], False),
    "blend-64": ([C, S, C, "--style-blend", "0.7,0.3", "-s", "64", "--steps", "60"], True),
    "fast-blend-128": ([C, S, C, "--method", "fast", "--style-blend", "0.7,0.3", "-s", "128"], False),
    "masks-64": ([C, S, C, "--mask", "{mask_a}", "--mask", "{mask_b}", "-s", "64", "--steps", "60"], True),
    "fast-masks-128": ([C, S, C, "--method", "fast", "--mask", "{mask_a}", "--mask", "{mask_b}", "-s", "128"], False),
    "luminance-64": ([C, S, "--preserve-color", "luminance", "-s", "64", "--steps", "60"], True),
    "histogram-64": ([C, S, "--preserve-color", "histogram", "-s", "64", "--steps", "60"], True),
    "fast-luminance-128": ([C, S, "--method", "fast", "--preserve-color", "luminance", "-s", "128"], False),
    "multiscale-tiles-192": (
        [C, S, "-s", "192", "--start-size", "96", "--tile", "96", "--scale-steps", "20,20"],
        True,
    ),
    "fast-tiles-256": ([C, S, "--method", "fast", "-s", "256", "--tile", "96"], False),
}


def _masks(folder: Path) -> dict[str, str]:
    """Two complementary masks (left / right half with a soft edge) at the content's aspect ratio."""
    w, h = Image.open(C).size
    x = np.linspace(-1, 1, w)[None, :].repeat(h, 0)
    a = np.clip(0.5 - x * 4, 0, 1)
    paths = {}
    for name, m in (("mask_a", a), ("mask_b", 1 - a)):
        p = folder / f"{name}.png"
        Image.fromarray((m * 255).round().astype(np.uint8), "L").save(p)
        paths[name] = str(p)
    return paths


def run_all(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        masks = _masks(Path(tmp))
        for name, (args, history) in RUNS.items():
            cmd = [
                sys.executable,
                "-m",
                "impasto",
                *(a.format(**masks) for a in args),
                "-q",
                "-o",
                str(out / f"{name}.png"),
            ]
            if history:
                cmd += ["--history", str(out / f"{name}.json")]
            subprocess.run(cmd, check=True)
            print(f"{name}: done", flush=True)


def _losses(path: Path) -> list[dict]:
    """A loss history without its timings."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in json.loads(path.read_text())]


def compare(before: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        after = Path(tmp)
        run_all(after)
        worst = 0
        for name, (_, history) in RUNS.items():
            a = np.asarray(Image.open(before / f"{name}.png"), dtype=np.int16)
            b = np.asarray(Image.open(after / f"{name}.png"), dtype=np.int16)
            diff = int(np.abs(a - b).max()) if a.shape == b.shape else 999
            line = f"{name:24s} max |diff| = {diff}/255"
            if history:
                ha, hb = (_losses(folder / f"{name}.json") for folder in (before, after))
                line += f"   final loss {ha[-1]['loss']:.6g} -> {hb[-1]['loss']:.6g}"
                line += ", every evaluation equal" if ha == hb else ", histories differ"
                diff = diff if ha == hb else max(diff, 1)
            print(line)
            worst = max(worst, diff)
    print(f"worst: {worst}/255")
    return 0 if worst == 0 else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", type=Path, help="run everything and keep the outputs here")
    g.add_argument("--compare", type=Path, help="run everything and compare with the outputs saved here")
    args = p.parse_args()
    if args.save:
        run_all(args.save)
        return 0
    return compare(args.compare)


if __name__ == "__main__":
    raise SystemExit(main())
