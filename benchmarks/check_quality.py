"""The convergence matrix: every optimization mode at the sizes people use, on two content/style pairs.

Each run records the loss of every evaluation of every optimization it makes (one per scale of coarse to fine,
one per tile and pass of tiling) and passes where, in each of them, the loss

* ends well below where the run started (the last optimization's end against the first one's start:
  ``end <= END_MAX x start``),
* never climbs above the optimization's start by more than a small factor (``worst <= WORST_MAX x start``):
  ``worst`` is the highest loss of the points the optimizer went on from; an L-BFGS step whose loss is past
  :data:`impasto.core.lbfgs.RISE` times the lowest so far is rejected (the optimizer goes back to its best point)
  and counted apart, with the highest of them (``probes``, ``probe max``),

and the picture is not flat (the standard deviation of its luminance, and its mean absolute difference between
neighbouring pixels, are at least :data:`MIN_STD` and :data:`MIN_DETAIL`). It writes each picture, a contact sheet
of all of them to look at, and a Markdown table (start, worst, end, verdict per run); it exits 1 where a run
fails. bf16 runs need a CPU with native bf16 (``avx512_bf16``) or a GPU; elsewhere they are listed as skipped
(emulated bf16 takes minutes a step).

    make check-quality                                   # both sizes, every case (about an hour on 2 cores)
    python benchmarks/check_quality.py --sizes 256 --cases luminance histogram --out out/quality

The images come from ``../shared/images`` (``$IMPASTO_SHARED_IMAGES``), else ``examples/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import impasto
from impasto.core.device import cpu_supports_bf16
from impasto.core.lbfgs import RISE
from impasto.errors import InputError
from impasto.methods.gatys import Gatys

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("IMPASTO_SHARED_IMAGES", ROOT.parent / "shared" / "images"))
END_MAX = 0.5
WORST_MAX = 3.0
MIN_STD = 0.04
MIN_DETAIL = 0.01

#: Each case: the options it adds to the pair's (None: the case needs native bf16 and this machine has none).
CASES: dict[str, dict] = {
    "lbfgs": {},
    "adam": {"optimizer": "adam"},
    "luminance": {"preserve_color": "luminance"},
    "histogram": {"preserve_color": "histogram"},
    "masks": {"masks": "two"},
    "blend": {"style_blend": "two"},
    "coarse-to-fine": {"start_size": "half"},
    "tiling": {"tile": "half"},
    "preset-tutorial": {"preset": "tutorial"},
    "preset-article": {"preset": "article"},
    "photo": {"preset": "photo"},
    "mixed": {"precision": "mixed"},
    "bf16": {"precision": "bf16"},
    "bf16-luminance": {"precision": "bf16", "preserve_color": "luminance"},
}


def pairs() -> list[tuple[str, Path, Path, Path]]:
    """(name, content, style, second style) of the two pairs."""
    content, style = SHARED / "content", SHARED / "style"
    if content.is_dir() and style.is_dir():
        return [
            ("tubingen-starry", content / "tubingen.jpg", style / "starry_night.jpg", style / "the_scream.jpg"),
            ("sailboat-scream", content / "sailboat.jpg", style / "the_scream.jpg", style / "picasso.jpg"),
        ]
    ex = ROOT / "examples"
    return [("chelsea-starry", ex / "chelsea.png", ex / "starry_night.jpg", ex / "starry_night.jpg")]


def half_masks(content: Path, folder: Path) -> list[str]:
    """Two masks: the left and the right half of the content image."""
    w, h = Image.open(content).size
    paths = []
    for i in range(2):
        m = Image.new("L", (w, h), 0)
        ImageDraw.Draw(m).rectangle([0 if i == 0 else w // 2, 0, w // 2 if i == 0 else w, h], fill=255)
        paths.append(str(folder / f"mask{i}.png"))
        m.save(paths[-1])
    return paths


class Recorder:
    """Collects the loss of every evaluation, one list per optimization (scale, tile)."""

    def __init__(self) -> None:
        self.segments: list[list[float]] = []
        self._optimize = Gatys.optimize

    def __enter__(self) -> Recorder:
        recorder, original = self, self._optimize

        def optimize(engine, image, terms, steps=None, callback=None):
            losses: list[float] = []
            recorder.segments.append(losses)

            def record(info):
                losses.append(info.loss)
                if callback is not None:
                    callback(info)

            return original(engine, image, terms, steps, callback=record)

        Gatys.optimize = optimize
        return self

    def __exit__(self, *exc) -> None:
        Gatys.optimize = self._optimize


def run_case(case: str, extra: dict, pair: tuple, size: int, steps: int, folder: Path, tmp: Path) -> dict:
    """One run: its figures and verdict."""
    name, content, style, second = pair
    options = {"size": size, "steps": steps, "seed": 0, **extra}
    styles: list = [style]
    if options.pop("masks", None):
        styles, options["masks"] = [style, second], half_masks(content, tmp)
    if options.pop("style_blend", None):
        styles, options["style_blend"] = [style, second], (0.5, 0.5)
    if options.get("start_size") == "half":
        options["start_size"] = size // 2
    if options.get("tile") == "half":
        options["tile"] = size // 2
    preset = options.pop("preset", "default")
    t0 = time.perf_counter()
    with Recorder() as rec:
        image = impasto.stylize(content, styles, preset=preset, **options)
    seconds = time.perf_counter() - t0
    segs = [s for s in rec.segments if s]
    start = segs[0][0]
    chosen = impasto.make_options(preset, **options)
    lbfgs = chosen.optimizer == "lbfgs" and chosen.normalize_losses  # the guarded runs (see Gatys.optimize)
    kept, probes = [], []  # per optimization: the losses it went on from, the steps it rejected (relative)
    for seg in segs:
        low = math.inf
        for value in seg:
            rejected = lbfgs and value > RISE * low
            (probes if rejected else kept).append(value / seg[0])
            low = min(low, value)
    worst = max(kept)  # no optimization climbs above its own start
    end = segs[-1][-1] / start  # the last optimization (the finest scale, the last tile) ends below the first start
    y = torch.from_numpy(np.asarray(image.convert("L"), dtype=np.float32) / 255)
    std = float(y.std())
    detail = float((y[:, 1:] - y[:, :-1]).abs().mean())
    problems = []
    if not end <= END_MAX:
        problems.append(f"ends at {end:.2f} of its start")
    if not worst <= WORST_MAX:
        problems.append(f"climbs to {worst:.1f}x its start")
    if std < MIN_STD or detail < MIN_DETAIL:
        problems.append(f"flat (std {std:.3f}, detail {detail:.3f})")
    path = folder / f"{name}-{case}-{size}.png"
    image.save(path)
    return {"pair": name, "case": case, "size": size, "steps": steps, "start": start, "worst": worst,
            "end": end, "std": std, "seconds": seconds, "segments": segs, "path": path,
            "probes": len(probes), "probe_max": max(probes, default=0.0),
            "verdict": "; ".join(problems) or "ok"}  # fmt: skip


def table_row(r: dict) -> str:
    """One run's line of the Markdown table."""
    probes = f"{r['probes']} ({r['probe_max']:.1f}x)" if r["probes"] else "0"
    figures = f"{r['start']:.3g} | {r['worst']:.2f} | {probes} | {r['end']:.3f} | {r['std']:.3f} | {r['seconds']:.0f}"
    return f"| {r['pair']} | {r['case']} | {r['size']} | {figures} | {r['verdict']} |"


def contact_sheet(rows: list[dict], path: Path, thumb: int = 256) -> None:
    """All pictures of the matrix, labelled, in one image."""
    cols = 4
    lines = math.ceil(len(rows) / cols)
    sheet = Image.new("RGB", (cols * thumb, lines * (thumb + 16)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, r in enumerate(rows):
        im = Image.open(r["path"]).convert("RGB")
        im.thumbnail((thumb, thumb))
        x, y = (i % cols) * thumb, (i // cols) * (thumb + 16)
        sheet.paste(im, (x, y + 16))
        draw.text((x + 2, y + 2), f"{r['pair']} {r['case']} {r['size']} {r['verdict'][:18]}", fill="black")
    sheet.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--pairs", type=int, default=2, help="how many of the content/style pairs (1 or 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "quality")
    parser.add_argument("--table", type=Path, help="also write the Markdown table to this file")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    bf16 = cpu_supports_bf16() or torch.cuda.is_available()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")  # fmt: skip
    header = [f"Convergence matrix, {time.strftime('%Y-%m-%d')}, {cpu}, {torch.get_num_threads()} threads, "
              f"native bf16: {'yes' if bf16 else 'no'}; {args.steps} steps; figures relative to the start.", "",
              "| pair | case | size | start | worst / start | rejected steps | end / start | luminance std | s "
              "| verdict |",
              "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    print("\n".join(header), flush=True)
    rows, lines, failed = [], [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            for pair in pairs()[: args.pairs]:
                for case in args.cases:
                    extra = CASES[case]
                    if extra.get("precision") == "bf16" and not bf16:
                        line = f"| {pair[0]} | {case} | {size} | | | | | | | skipped: no native bf16 |"
                    else:
                        try:
                            r = run_case(case, extra, pair, size, args.steps, args.out, Path(tmp))
                        except InputError as e:
                            line = f"| {pair[0]} | {case} | {size} | | | | | | | error: {e} |"
                            failed += 1
                        else:
                            rows.append(r)
                            failed += r["verdict"] != "ok"
                            line = table_row(r)
                    lines.append(line)
                    print(line, flush=True)
    if rows:
        contact_sheet(rows, args.out / "sheet.png")
        print(f"\npictures in {args.out}, all of them in {args.out / 'sheet.png'}")
    (args.out / "losses.json").write_text(json.dumps(
        [{k: r[k] for k in ("pair", "case", "size", "segments", "verdict")} for r in rows]))
    if args.table:
        args.table.write_text("\n".join(["## The table", "", *header, *lines]) + "\n")
    print(f"{failed} of {len(lines)} runs failed" if failed else f"all {len(lines)} runs passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
