"""Read images robustly, convert to and from tensors, and write results atomically with metadata."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from .errors import InputError

ImageLike = str | os.PathLike | Image.Image | torch.Tensor

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
    if not p.exists():
        raise InputError(f"image not found: {p}")
    if p.is_dir():
        raise InputError(f"expected an image file, got a folder: {p}")
    if p.stat().st_size == 0:
        raise InputError(f"image file is empty: {p}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
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
        raise InputError(f"not an image file (or a format Pillow cannot read): {p}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(
            f"cannot decode image {p}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    if im.width < 1 or im.height < 1:
        raise InputError(f"image has no pixels: {p}")
    return im


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
    if im.mode == "CMYK" and im.info.get("adobe"):
        # Adobe CMYK JPEGs are stored inverted; Pillow's plain conversion handles the usual case.
        return im.convert("RGB")
    return im.convert("RGB")


def alpha_of(im: Image.Image) -> Image.Image | None:
    """The alpha channel of an image, if it has a meaningful one."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        alpha = im.convert("RGBA").getchannel("A")
        return alpha if alpha.getextrema() != (255, 255) else None
    return None


def fit_size(width: int, height: int, longest: int) -> tuple[int, int]:
    """(width, height) scaled so the longest side is ``longest``, aspect ratio kept (each side >= 1)."""
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


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


def load_image(image: ImageLike, longest: int | None = None, what: str = "image") -> torch.Tensor:
    """An image (path, PIL image or tensor) as a (1, 3, H, W) float32 tensor, resized to a longest side."""
    if isinstance(image, torch.Tensor):
        t = image.detach().float().cpu()
        if t.ndim == 3:
            t = t.unsqueeze(0)
        if t.ndim != 4 or t.shape[0] != 1 or t.shape[1] not in (1, 3):
            raise InputError(f"{what} tensor must have shape (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
        if t.shape[1] == 1:
            t = t.expand(1, 3, *t.shape[2:])
        if not torch.isfinite(t).all():
            raise InputError(f"{what} tensor has NaN or infinite values")
        if longest is not None and max(t.shape[2:]) != longest:
            h, w = t.shape[2:]
            nw, nh = fit_size(w, h, longest)
            t = F.interpolate(t, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
        return t.clamp(0, 1).contiguous()
    im = image if isinstance(image, Image.Image) else open_image(image)
    rgb = to_rgb(im)
    if longest is not None and max(rgb.size) != longest:
        rgb = rgb.resize(fit_size(*rgb.size, longest), Image.Resampling.LANCZOS)
    return pil_to_tensor(rgb)


def resize_tensor(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a (N, C, H, W) image tensor to (H, W) = ``size`` with antialiased bicubic, clamped to [0, 1]."""
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    down = size[0] < t.shape[-2]
    out = F.interpolate(t, size=size, mode="bicubic", align_corners=False, antialias=down)
    return out.clamp(0, 1)


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_image(im: Image.Image, path: str | os.PathLike, metadata: Mapping | None = None, quality: int = 95) -> Path:
    """Write ``im`` atomically (temporary file in the same folder, then rename), embedding ``metadata``.

    PNG gets an ``impasto`` text chunk, JPEG a comment, TIFF and WebP an EXIF ImageDescription.
    """
    path = Path(path)
    fmt = output_format(path)
    if not path.parent.is_dir():
        raise InputError(f"output folder does not exist: {path.parent}")
    kwargs: dict = {}
    text = _metadata_text(metadata) if metadata else None
    if fmt == "PNG":
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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            im.save(fh, format=fmt, **kwargs)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
