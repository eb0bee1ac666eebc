"""Mask files of spatial control (Gatys et al. 2017): which region of the content takes which style.

Masks come as one grayscale file per style (white: that style, black: not) or as one colour-coded map with
one colour per style. They become a (K, 1, H, W) float tensor at the content's size, one region per
style image, values in [0, 1] (soft at anti-aliased edges); :mod:`impasto.core.regions` does the maths.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageColor

from ..errors import InputError
from .images import alpha_of, open_image, to_rgb

#: Share of the pixels a colour of a map must cover to count as a region (smaller ones are edge blends).
MIN_REGION_SHARE = 0.002
#: Largest aspect-ratio mismatch accepted between a mask and the content image.
ASPECT_TOLERANCE = 0.02


def parse_color(text: str) -> tuple[int, int, int]:
    """An RGB triple from a colour name (``red``) or hex code (``#ff0000``, ``ff0000``)."""
    s = text.strip()
    candidates = [s, f"#{s}"] if not s.startswith("#") else [s]
    for c in candidates:
        try:
            return ImageColor.getrgb(c)[:3]
        except ValueError:
            continue
    raise InputError(f"unknown mask colour '{text}' (use a name like red or a hex code like #ff0000)")


def _hex(rgb: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _open_mask(path: str | os.PathLike) -> Image.Image:
    try:
        return open_image(path)
    except InputError as err:
        raise InputError(f"mask: {err}") from None


def _check_aspect(path: str | os.PathLike, mask_size: tuple[int, int], content_hw: tuple[int, int]) -> None:
    (w, h), (ch, cw) = mask_size, content_hw
    if abs(w / h - cw / ch) > ASPECT_TOLERANCE * (cw / ch):
        raise InputError(f"mask {path} is {w}x{h} but the content image is {cw}x{ch} (different aspect ratio)")


def _resize(maps: np.ndarray, content_hw: tuple[int, int]) -> torch.Tensor:
    """(K, h, w) float maps to a (K, 1, H, W) tensor at the content's size, antialiased."""
    t = torch.from_numpy(maps.astype(np.float32)).unsqueeze(1)
    if tuple(t.shape[-2:]) != tuple(content_hw):
        down = content_hw[0] < t.shape[-2]
        t = F.interpolate(t, size=content_hw, mode="bilinear", align_corners=False, antialias=down)
    return t.clamp_(0, 1)


def load_mask_files(paths: Sequence[str | os.PathLike], content_hw: tuple[int, int]) -> torch.Tensor:
    """One region per grayscale mask file (its alpha channel if it has one), at the content's (H, W)."""
    maps = []
    size = None
    for path in paths:
        im = _open_mask(path)
        alpha = alpha_of(im)
        gray = alpha if alpha is not None else to_rgb(im).convert("L")
        if size is not None and gray.size != size:
            raise InputError(f"mask {path} is {gray.size[0]}x{gray.size[1]}, the first mask {size[0]}x{size[1]}")
        size = gray.size
        _check_aspect(path, gray.size, content_hw)
        maps.append(np.asarray(gray, dtype=np.float32) / 255.0)
    return _resize(np.stack(maps), content_hw)


def _codes(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 colours packed into one int32 each."""
    return (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2].astype(np.int32)


def palette_of(rgb: np.ndarray, min_share: float = MIN_REGION_SHARE) -> list[tuple[tuple[int, int, int], float]]:
    """Colours of an (H, W, 3) uint8 map covering at least ``min_share`` of it, with their shares."""
    codes = _codes(rgb)
    values, counts = np.unique(codes, return_counts=True)
    order = np.argsort(-counts)
    total = codes.size
    return [
        (((int(v) >> 16) & 255, (int(v) >> 8) & 255, int(v) & 255), c / total)
        for v, c in zip(values[order], counts[order], strict=True)
        if c / total >= min_share
    ]


def load_color_map(path: str | os.PathLike, colors: Sequence[str], content_hw: tuple[int, int]) -> torch.Tensor:
    """Regions of a colour-coded map, one per colour of ``colors`` (in style order), at the content's size.

    Every pixel snaps to the nearest colour of the palette (the given colours and any other colour covering
    at least 0.2 % of the map), so anti-aliased or JPEG edges are assigned cleanly; pixels of colours not
    given stay unstyled.
    """
    im = _open_mask(path)
    rgb = np.asarray(to_rgb(im), dtype=np.uint8)
    _check_aspect(path, im.size, content_hw)
    wanted = [parse_color(c) for c in colors]
    found = palette_of(rgb)
    palette = list(dict.fromkeys([*wanted, *(c for c, _ in found)]))
    pal = np.asarray(palette, dtype=np.float32)
    codes, inverse = np.unique(_codes(rgb).reshape(-1), return_inverse=True)
    colours = np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255], axis=1).astype(np.float32)
    lut = ((colours[:, None, :] - pal[None, :, :]) ** 2).sum(-1).argmin(1)
    nearest = lut[inverse.reshape(-1)].reshape(rgb.shape[:2])
    maps = np.stack([(nearest == palette.index(c)) for c in wanted])
    for text, m in zip(colors, maps, strict=True):
        if not m.any():
            listing = ", ".join(f"{_hex(c)} ({share:.0%})" for c, share in found[:8])
            raise InputError(f"mask colour '{text}' does not occur in {path} (its colours: {listing})")
    return _resize(maps, content_hw)


def load_masks(
    content_hw: tuple[int, int],
    n_styles: int,
    files: Sequence[str | os.PathLike] | None = None,
    color_map: str | os.PathLike | None = None,
    colors: Sequence[str] | None = None,
) -> torch.Tensor | None:
    """Region masks (K, 1, H, W) from mask files or a colour map, one per style image; None without masks."""
    if files:
        if len(files) != n_styles:
            raise InputError(f"{len(files)} mask file(s) for {n_styles} style image(s): give one --mask per style")
        return load_mask_files(files, content_hw)
    if color_map is not None:
        if not colors or len(colors) != n_styles:
            n = len(colors) if colors else 0
            raise InputError(f"--mask-colors lists {n} colour(s) for {n_styles} style image(s): give one per style")
        return load_color_map(color_map, colors, content_hw)
    return None
