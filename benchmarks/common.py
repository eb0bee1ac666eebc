"""Paths shared by the benchmark scripts (run as ``python benchmarks/NAME.py``, so this folder is on the path)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "images"


def tubingen_starry_night() -> tuple[Path, Path]:
    """tubingen.jpg + starry_night.jpg from ../shared/images, else the bundled chelsea.png + starry_night.jpg."""
    content, style = SHARED / "content" / "tubingen.jpg", SHARED / "style" / "starry_night.jpg"
    if content.exists() and style.exists():
        return content, style
    return ROOT / "examples" / "chelsea.png", ROOT / "examples" / "starry_night.jpg"
