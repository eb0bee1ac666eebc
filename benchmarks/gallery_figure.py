"""The README's gallery (docs/gallery.jpg): the bundled photo and three public-domain paintings on top, below the
optimization method with Starry Night and the fast method with each painting.

    python benchmarks/gallery_figure.py --out docs/gallery.jpg            # ~10 CPU-minutes, most of it Gatys
    python benchmarks/gallery_figure.py --out docs/gallery.jpg --results DIR   # compose results made before
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageOps

import impasto

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "chelsea.png"
GALLERY = ROOT / "src" / "impasto" / "web" / "gallery"
PAINTINGS = [ROOT / "examples" / "starry_night.jpg", GALLERY / "the_scream.jpg", GALLERY / "shipwreck.jpg"]
#: (file name in --results, method, painting index, extra options)
RESULTS = [("gatys.png", "gatys", 0, {"size": 320, "steps": 150}), ("fast.png", "fast", 0, {"size": 384}),
           ("scream.png", "fast", 1, {"size": 384}), ("shipwreck.png", "fast", 2, {"size": 384})]  # fmt: skip
CELL = (300, 200)


def compose(top: list[Image.Image], bottom: list[Image.Image], gap: int = 4) -> Image.Image:
    """Two rows of cells of the same size (each picture cropped to the cell's aspect ratio around its centre)."""
    w, h = CELL
    cols = max(len(top), len(bottom))
    sheet = Image.new("RGB", (cols * w + (cols - 1) * gap, 2 * h + gap), "white")
    for row, images in enumerate((top, bottom)):
        for col, im in enumerate(images):
            cell = ImageOps.fit(im.convert("RGB"), CELL, Image.Resampling.LANCZOS)
            sheet.paste(cell, (col * (w + gap), row * (h + gap)))
    return sheet


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery.jpg")
    parser.add_argument("--results", type=Path, help="folder with gatys.png, fast.png, scream.png, shipwreck.png")
    args = parser.parse_args(argv)
    results = []
    for name, method, k, options in RESULTS:
        if args.results is not None:
            results.append(Image.open(args.results / name))
        else:
            results.append(impasto.stylize(PHOTO, PAINTINGS[k], method=method, **options))
    top = [Image.open(PHOTO), *(Image.open(p) for p in PAINTINGS)]
    compose(top, results).save(args.out, quality=88)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
