"""A 4096 px (long side) picture on this machine: wall time, peak RSS, seams.

Runs the ``impasto`` command in a subprocess (so its peak RSS, read with ``RUSAGE_CHILDREN``, is the run's
own) on tubingen.jpg + starry_night.jpg: coarse to fine from 512 px, the last scale in tiles. Then checks
the picture for seams: along every tile border line of the last scale (both passes), in 256 px segments,
the mean absolute difference of neighbouring pixels across the line divided by the same on nearby lines
(1 = no seam; a visible seam is several times that), compared with control lines 64 px away. Where the
picture has an edge of its own along a border line (a facade's window frame), the content image has it too:
each segment's ratio is therefore also divided by the content's ratio there (when above 1), which is the
figure the check uses; the raw one is reported beside it. Crops around tile corners are written as PNGs
for a look.

    python benchmarks/bench_highres.py --out /tmp/highres.png
    python benchmarks/bench_highres.py --out /tmp/highres.png --scale-steps 100,50,20,6 --tile 2048
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from common import SHARED


def _segment_ratios(img: np.ndarray, lines: list[int], axis: int, segment: int = 256) -> list[float]:
    """For each line (a column boundary c | c+1 when axis is 1, a row boundary for 0) and each ``segment``
    pixels along it: mean |difference| across the line / median of the same on the lines 3-12 px away."""
    d = np.abs(np.diff(img, axis=axis)).mean(axis=2)  # (H, W-1) or (H-1, W)
    if axis == 0:
        d = d.T  # lines are now columns of d
    out = []
    for c in lines:
        near = [j for j in range(c - 12, c + 13) if 0 <= j < d.shape[1] and abs(j - c) >= 3]
        for s0 in range(0, d.shape[0], segment):
            seg = d[s0 : s0 + segment]
            out.append(float(seg[:, c].mean() / max(np.median(seg[:, near].mean(axis=0)), 1e-9)))
    return out


def _structure_normalized(ratios: list[float], reference: list[float]) -> list[float]:
    """Each ratio divided by the content's ratio at the same segment where that is above 1: an edge the
    content has along the line is the picture's, not a seam."""
    return [r / max(1.0, c) for r, c in zip(ratios, reference, strict=True)]


def seam_ratios(image: np.ndarray, tile: int, overlap: int, passes: int, content: np.ndarray | None = None) -> dict:
    """Across-line / nearby differences, per 256 px segment, on every tile border line of the last scale
    (both passes) and on control lines 64 px away from them: a seam makes border segments stand out.

    With ``content`` (the content image at the picture's size), the ``max_ratio``, ``p95_ratio`` and
    ``control_max_ratio`` are structure-normalized (:func:`_structure_normalized`); ``raw_*`` are not.
    """
    from impasto.core.tiles import shifts, tile_grid

    img = image.astype(np.float32) / 255.0
    h, w = img.shape[:2]
    cols, rows = set(), set()
    for s in shifts(passes):
        for t in tile_grid(h, w, tile, overlap, s):
            cols.update(c for c in (t.left - 1, t.left + t.width - 1) if 0 <= c < w - 1)
            rows.update(r for r in (t.top - 1, t.top + t.height - 1) if 0 <= r < h - 1)
    ctrl_cols = sorted({c + 64 for c in cols if c + 64 < w - 13} - cols)
    ctrl_rows = sorted({r + 64 for r in rows if r + 64 < h - 13} - rows)

    def ratios(picture: np.ndarray) -> tuple[list[float], list[float]]:
        border = _segment_ratios(picture, sorted(cols), 1) + _segment_ratios(picture, sorted(rows), 0)
        return border, _segment_ratios(picture, ctrl_cols, 1) + _segment_ratios(picture, ctrl_rows, 0)

    raw_border, raw_control = border, control = ratios(img)
    if content is not None:
        ref_border, ref_control = ratios(content.astype(np.float32) / 255.0)
        border, control = _structure_normalized(border, ref_border), _structure_normalized(control, ref_control)
    p95 = float(np.percentile(border, 95)) if border else 1.0
    return {"segments": len(border), "max_ratio": max(border, default=1.0), "p95_ratio": p95,
            "control_max_ratio": max(control, default=1.0), "raw_max_ratio": max(raw_border, default=1.0),
            "raw_control_max_ratio": max(raw_control, default=1.0), "columns": sorted(cols),
            "rows": sorted(rows)}  # fmt: skip


def save_crops(image: Image.Image, points: list[tuple[int, int]], out: Path, size: int = 512) -> list[Path]:
    """PNG crops of ``size`` px centred on ``points`` (tile corners), next to ``out``."""
    paths = []
    for i, (x, y) in enumerate(points):
        left = min(max(0, x - size // 2), image.width - size)
        top = min(max(0, y - size // 2), image.height - size)
        path = out.with_name(f"{out.stem}.crop{i}.png")
        image.crop((left, top, left + size, top + size)).save(path)
        paths.append(path)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="where to write the picture (.png or .jpg)")
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--start-size", type=int, default=512)
    p.add_argument("--scale-steps", default="100,50,20,6", help="steps per scale, coarse to fine")
    p.add_argument("--tile", type=int, default=2048, help="tile size (0: let the estimate choose)")
    p.add_argument("--tile-overlap", type=int, default=256)
    p.add_argument("--tile-passes", type=int, default=2)
    p.add_argument("--check-only", action="store_true", help="check the picture at --out again without running")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more impasto options")
    args = p.parse_args()

    content, style = SHARED / "content" / "tubingen.jpg", SHARED / "style" / "starry_night.jpg"
    if not content.exists():
        sys.exit(f"needs {content} (the shared images)")
    out = Path(args.out).resolve()
    cmd = [sys.executable, "-m", "impasto", str(content), str(style), "-o", str(out), "--size", str(args.size),
           "--start-size", str(args.start_size), "--scale-steps", args.scale_steps,
           "--tile-overlap", str(args.tile_overlap), "--tile-passes", str(args.tile_passes),
           "--history", str(out.with_suffix(".history.csv")), *args.extra]  # fmt: skip
    if args.tile:
        cmd += ["--tile", str(args.tile)]
    plan = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, check=True).stdout
    print(plan, flush=True)
    wall = peak = 0.0
    if not args.check_only:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 / 1024  # GB (the dry run is small)
        if proc.returncode != 0:
            sys.exit(f"impasto failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    image = Image.open(out).convert("RGB")
    tile = args.tile or next((int(w) for w in plan.split() if w.isdigit() and f"<= {w} px" in plan), 0)
    result = {"size": image.size, "wall_s": round(wall, 1), "peak_rss_gb": round(peak, 2), "plan": plan.strip(),
              "command": " ".join(cmd[1:])}  # fmt: skip
    if tile and max(image.size) > tile:
        reference = np.asarray(Image.open(content).convert("RGB").resize(image.size, Image.Resampling.LANCZOS))
        seams = seam_ratios(np.asarray(image), tile, args.tile_overlap, args.tile_passes, reference)
        corners = [(c, r) for c in seams["columns"][:2] for r in seams["rows"][:1]]
        crops = save_crops(image, corners or [(image.width // 2, image.height // 2)], out)
        result.update(seam_segments=seams["segments"], seam_max_ratio=round(seams["max_ratio"], 3),
                      seam_p95_ratio=round(seams["p95_ratio"], 3), crops=[str(c) for c in crops],
                      control_max_ratio=round(seams["control_max_ratio"], 3),
                      raw_seam_max_ratio=round(seams["raw_max_ratio"], 3),
                      raw_control_max_ratio=round(seams["raw_control_max_ratio"], 3))  # fmt: skip
    print(json.dumps(result, indent=1))
    ok = peak < 16 and result.get("seam_max_ratio", 1.0) <= max(1.5, result.get("control_max_ratio", 1.0))
    print("PASS" if ok else "FAIL", "(peak RSS < 16 GB; no tile border segment stands out more than 1.5x, or more than "
          "on lines 64 px away)")  # fmt: skip


if __name__ == "__main__":
    main()
