"""Read images robustly, convert to and from tensors, and write results atomically with metadata."""

from __future__ import annotations

import errno
import io
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from ..core.sizes import fit_size
from ..errors import InputError
from .atomic import write_bytes

#: What the API accepts as an image: a file path, a PIL image, a tensor ((3, H, W) or (1, 3, H, W), floats in
#: [0, 1] or uint8) or a numpy array ((H, W, 3) or (H, W), uint8 or floats in [0, 1]).
ImageLike = str | os.PathLike | Image.Image | torch.Tensor | np.ndarray

#: Largest input accepted, in pixels (Pillow's decompression-bomb guard is made an error at this size).
MAX_INPUT_PIXELS = 120_000_000
#: Largest output side accepted by ``--size``.
MAX_SIZE = 16384
#: Output formats by file extension.
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}

Image.MAX_IMAGE_PIXELS = MAX_INPUT_PIXELS


def output_format(path: str | os.PathLike) -> str:
    """Pillow format name for an output path, from its extension."""
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise InputError(
            f"unknown output extension '{ext or Path(path).name}' for {path} (use {', '.join(sorted(FORMATS))})"
        )
    return FORMATS[ext]


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image file, applying its EXIF orientation; one clear error on failure."""
    p = Path(path)
    _check_resolves(p)
    if not p.exists():
        raise InputError(f"image not found: {p}")
    if p.is_dir():
        raise InputError(f"expected an image file, got a folder: {p}")
    if p.stat().st_size == 0:
        raise InputError(f"image file is empty: {p}")
    return _decode(p, p)


def image_from_bytes(data: bytes, name: str | os.PathLike) -> Image.Image:
    """An image file's bytes (read elsewhere, e.g. by a cluster's driver) decoded exactly as :func:`open_image`
    decodes the file ``name``; errors name ``name``."""
    p = Path(name)
    if not data:
        raise InputError(f"image file is empty: {p}")
    return _decode(io.BytesIO(data), p)


def _decode(source: Path | io.BytesIO, p: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                if im.width * im.height > MAX_INPUT_PIXELS:
                    raise InputError(
                        f"image too large: {p} is {im.width}x{im.height} "
                        f"(limit {MAX_INPUT_PIXELS // 1_000_000} megapixels)"
                    )
                im.load()
                im = ImageOps.exif_transpose(im)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"image too large (decompression bomb guard): {p}") from None
    except UnidentifiedImageError:
        raise InputError(f"not an image file, or not one impasto can read (use PNG, JPEG, WebP or TIFF): {p}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(
            f"cannot decode image {p}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    if im.width < 1 or im.height < 1:
        raise InputError(f"image has no pixels: {p}")
    return im


def _check_resolves(p: Path) -> None:
    """A symlink loop or a path through a non-folder is one clear error (not a traceback from pathlib)."""
    try:
        p.resolve(strict=True)
    except FileNotFoundError:
        return  # reported as "not found" by the caller
    except RuntimeError:  # Python < 3.13 reports a symlink loop this way
        raise InputError(f"symlink loop: {p}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"symlink loop: {p}") from None
        if exc.errno == errno.ENOTDIR:
            raise InputError(f"image not found: {p} (a part of the path is not a folder)") from None
        raise InputError(f"cannot open {p}: {exc.strerror or exc}") from None


def to_rgb(im: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """RGB version of any Pillow mode: 16-bit and float scaled, alpha composited on ``background``, CMYK and
    palette converted."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        if im.mode == "F" and arr.max() <= 1.0:
            hi = 1.0
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        base = Image.new("RGBA", rgba.size, background + (255,))
        return Image.alpha_composite(base, rgba).convert("RGB")
    return im.convert("RGB")  # also CMYK (Pillow undoes Adobe's inverted CMYK JPEGs when it reads them)


def alpha_of(im: Image.Image) -> Image.Image | None:
    """The alpha channel of an image, if it has a meaningful one."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        alpha = im.convert("RGBA").getchannel("A")
        return alpha if alpha.getextrema() != (255, 255) else None
    return None


def pil_to_tensor(im: Image.Image) -> torch.Tensor:
    """(1, 3, H, W) float32 tensor in [0, 1] from an RGB image."""
    arr = np.asarray(to_rgb(im), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """RGB image from a (1, 3, H, W) or (3, H, W) tensor in [0, 1] (clamped, rounded)."""
    t = t.detach().float().cpu()
    if t.ndim == 4:
        t = t[0]
    arr = (t.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(arr, "RGB")


def _tensor_image(t: torch.Tensor, what: str) -> torch.Tensor:
    """A (1, 3, H, W) float32 tensor in [0, 1] from a tensor the API accepts (see :data:`ImageLike`)."""
    shape = tuple(t.shape)
    t = t.detach().cpu()
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4 or t.shape[0] != 1 or t.shape[1] not in (1, 3):
        raise InputError(f"{what} tensor must have shape (3, H, W) or (1, 3, H, W), got {shape}")
    if t.shape[2] == 0 or t.shape[3] == 0:
        raise InputError(f"{what} tensor has no pixels: shape {shape}")
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    elif t.is_floating_point():
        t = t.float()
        if not torch.isfinite(t).all():
            raise InputError(f"{what} tensor has NaN or infinite values")
        lo, hi = float(t.min()), float(t.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise InputError(
                f"{what} tensor has values from {lo:.4g} to {hi:.4g}; floats must lie in [0, 1] (or pass uint8 0-255)"
            )
    else:
        raise InputError(f"{what} tensor must be float (values in [0, 1]) or uint8 (0-255), got {t.dtype}")
    if t.shape[1] == 1:
        t = t.expand(1, 3, *t.shape[2:])
    return t.clamp(0, 1).contiguous()


def _array_image(a: np.ndarray, what: str) -> torch.Tensor | Image.Image:
    """A numpy image (H, W, 3), (H, W, 4) or (H, W): uint8 through Pillow (alpha composited), floats as a tensor."""
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise InputError(f"{what} array must have shape (H, W, 3), (H, W, 4) or (H, W), got {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise InputError(f"{what} array has no pixels: shape {a.shape}")
    if a.dtype == np.uint8:
        return Image.fromarray(np.ascontiguousarray(a))
    if a.dtype.kind != "f":
        raise InputError(f"{what} array must be uint8 (0-255) or float (values in [0, 1]), got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 4:
        rgb, alpha = a[..., :3], a[..., 3:]
        a = rgb * alpha + (1 - alpha)  # composited on white, as for image files
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    return _tensor_image(t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1), what)


def load_image(image: ImageLike, longest: int | None = None, what: str = "image") -> torch.Tensor:
    """An image (see :data:`ImageLike`) as a (1, 3, H, W) float32 tensor in [0, 1], resized to a longest side."""
    if isinstance(image, np.ndarray):
        image = _array_image(image, what)
    if isinstance(image, torch.Tensor):
        t = _tensor_image(image, what)
        if longest is not None and max(t.shape[2:]) != longest:
            h, w = t.shape[2:]
            nw, nh = fit_size(w, h, longest)
            t = F.interpolate(t, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
        return t.clamp(0, 1).contiguous()
    if isinstance(image, Image.Image):
        im = image
    elif isinstance(image, (str, os.PathLike)):
        im = open_image(image)
    else:
        raise InputError(
            f"{what} must be a file path, a PIL image, a (3, H, W) tensor or an (H, W, 3) numpy array, "
            f"got {type(image).__name__}"
        )
    if im.width < 1 or im.height < 1:
        raise InputError(f"{what} has no pixels")
    rgb = to_rgb(im)
    if longest is not None and max(rgb.size) != longest:
        rgb = rgb.resize(fit_size(*rgb.size, longest), Image.Resampling.LANCZOS)
    return pil_to_tensor(rgb)


def image_size(image: ImageLike) -> tuple[int, int]:
    """(width, height) of an image (see :data:`ImageLike`) without decoding a file's pixels; (1, 1) for a file
    that cannot be read (reported when it is loaded)."""
    if isinstance(image, torch.Tensor):
        return (int(image.shape[-1]), int(image.shape[-2])) if image.ndim >= 2 else (1, 1)
    if isinstance(image, np.ndarray):
        return (int(image.shape[1]), int(image.shape[0])) if image.ndim >= 2 else (1, 1)
    if isinstance(image, Image.Image):
        return image.size
    if not isinstance(image, (str, os.PathLike)):
        return (1, 1)
    try:
        with Image.open(image) as im:
            w, h = im.size
            turned = im.getexif().get(0x0112) in (5, 6, 7, 8)  # EXIF orientation: a quarter turn
    except Exception:  # noqa: BLE001 - unreadable files are reported when they are loaded
        return (1, 1)
    return (h, w) if turned else (w, h)


def _metadata_text(metadata: Mapping) -> str:
    return json.dumps(metadata, sort_keys=True, default=str)


def read_metadata(path: str | os.PathLike) -> dict | None:
    """The impasto options recorded in an output file, or None."""
    with Image.open(path) as im:
        text = im.info.get("impasto") or im.info.get("comment") or im.getexif().get(0x010E)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        data = json.loads(text) if text else None
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def save_image(im: Image.Image, path: str | os.PathLike, metadata: Mapping | None = None, quality: int = 95,
               compress_level: int = 6) -> Path:  # fmt: skip
    """Write ``im`` atomically (encoded in memory, then :func:`impasto.io.atomic.write_bytes`), embedding
    ``metadata``; raises :class:`~impasto.errors.OutputError` when it cannot be written whole.

    PNG gets an ``impasto`` text chunk, JPEG a comment, TIFF and WebP an EXIF ImageDescription.
    ``compress_level``: PNG's zlib level (6, Pillow's default; 1 is ~25% faster and ~3% larger).
    """
    return write_bytes(path, encode_image(im, path, metadata, quality, compress_level))


def encode_image(im: Image.Image, path: str | os.PathLike, metadata: Mapping | None = None, quality: int = 95,
                 compress_level: int = 6) -> bytes:  # fmt: skip
    """The bytes :func:`save_image` writes to ``path`` (format by its extension, ``metadata`` embedded)."""
    fmt = output_format(path)
    kwargs: dict = {}
    text = _metadata_text(metadata) if metadata else None
    if fmt == "PNG":
        kwargs["compress_level"] = compress_level
        if text:
            info = PngImagePlugin.PngInfo()
            info.add_itxt("impasto", text)
            kwargs["pnginfo"] = info
    elif fmt == "JPEG":
        kwargs.update(quality=quality, subsampling=0)
        if text:
            kwargs["comment"] = text
        if im.mode not in ("RGB", "L"):
            im = im.convert("RGB")
    elif text:
        exif = Image.Exif()
        exif[0x010E] = text
        kwargs["exif"] = exif
        if fmt == "WEBP":
            kwargs["quality"] = quality
    buffer = io.BytesIO()
    im.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()
