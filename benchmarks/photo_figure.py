"""The documentation's figure of the photorealistic methods, from photos free to publish (``../shared/images/free/``,
restyled by each other): content | style photo | gatys | photo | photo-fast, one row per pair.

    python benchmarks/photo_figure.py [--size 256] [--steps 300] [--out docs/photo.jpg]

Every image is pre-sized once (LANCZOS) and the same tensors go to every method, so the columns differ only by
the method. Prints each run's seconds.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from impasto import api
from impasto.io.images import tensor_to_pil
from impasto.options import make_options

ROOT = Path(__file__).resolve().parent.parent
FREE = Path(os.environ.get("IMPASTO_SHARED_IMAGES", ROOT.parent / "shared" / "images")) / "free"
#: (content, style photo): a blue-sky launch given the coffee's warm browns; the cat given the rocket's dusk.
PAIRS = (("rocket.jpg", "coffee.png"), ("chelsea.png", "rocket.jpg"))


def sized(name: str, size: int) -> Image.Image:
    im = Image.open(FREE / name).convert("RGB")
    scale = size / max(im.size)
    return im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--out", default=str(ROOT / "docs" / "photo.jpg"))
    args = p.parse_args()
    runs = {
        "gatys": make_options(size=args.size, steps=args.steps, init="content"),
        "photo": make_options("photo", size=args.size, steps=args.steps),
        "photo-fast": make_options(method="photo-fast", size=args.size),
    }
    rows = []
    for content_name, style_name in PAIRS:
        content, style = sized(content_name, args.size), sized(style_name, args.size)
        tiles = [content, style]
        for name, opts in runs.items():
            t0 = time.perf_counter()
            out = api.stylize_tensors(content, style, opts)
            print(f"{content_name} <- {style_name}: {name} {time.perf_counter() - t0:.1f} s", flush=True)
            tiles.append(tensor_to_pil(out))
        h = args.size
        tiles = [t.resize((round(t.width * h / t.height), h), Image.LANCZOS) for t in tiles]
        rows.append(np.concatenate([np.asarray(t) for t in tiles], 1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    sheet = Image.fromarray(np.concatenate(rows, 0))
    labels = Image.new("RGB", (sheet.width, 18), "white")
    draw = ImageDraw.Draw(labels)
    for text, t in zip(["content", "style photo", *runs], range(5), strict=True):
        draw.text((4 + t * (sheet.width // 5), 3), text, fill="black")
    out = Image.new("RGB", (sheet.width, sheet.height + 18), "white")
    out.paste(labels, (0, 0))
    out.paste(sheet, (0, 18))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    out.save(args.out, quality=88)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
