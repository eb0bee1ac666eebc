"""What a request carries, read and checked: options from form fields (through :mod:`impasto.schema`, as the
command line reads its flags), uploaded images and files, image sizes, and the forms' OpenAPI description.

Every refusal is one line: :class:`WebError` with its HTTP status, or the :class:`~impasto.errors.InputError` of
the option or file (answered 400 by the app).
"""

from __future__ import annotations

import re
import shutil
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image

from .. import api, schema
from ..errors import InputError
from ..io.builtin import is_builtin
from ..io.images import open_image
from ..options import INIT_KINDS, Options
from .jobs import DiskFull, is_disk_full

#: Options that name files or devices of the server: not settable from the web (a built-in style's name is).
SERVER_ONLY = ("weights", "masks", "mask_map", "mask_colors", "content_seg", "style_seg", "device", "model")
#: The options a form may set.
ACCEPTED = tuple(name for name in schema.FLAGS if name not in SERVER_ONLY)
FORMAT_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "TIFF": "tif", "BMP": "bmp", "GIF": "gif"}


class WebError(Exception):
    """An error answered with ``status`` and one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class TooLarge(Exception):
    """The request's body grew past the upload limit while it was read."""


@lru_cache(maxsize=1)
def catalog() -> dict[str, Any]:
    """Methods, presets, defaults and choices (fixed while the server runs)."""
    return api.catalog()


def option_fields() -> list[dict[str, Any]]:
    """Every option the web accepts, for the page's controls and the OpenAPI schema
    (:func:`impasto.schema.option_fields`)."""
    return schema.option_fields(ACCEPTED)


def uploadable() -> set[str]:
    """Options naming an input file that some method needs: a web user uploads the file under that field name
    (for example ``model``, a trained network); the page asks for them from the catalog."""
    return {name for method in catalog()["methods"] for name in method["files"]}


def builtin_model(fields: dict[str, str]) -> str | None:
    """The built-in style a form names in its ``model`` field (``builtin:N``), or None."""
    value = fields.get("model", fields.get("--model", ""))
    return value.strip() if isinstance(value, str) and is_builtin(value.strip()) else None


def parse_options(fields: dict[str, str], uploads: dict[str, Path] | None = None) -> Options:
    """Options from form fields named like the command line's flags (``size`` or ``--size``; ``preserve-color`` or
    ``preserve_color``), parsed and validated as the command line does: the same one-line messages. ``uploads``
    are the server files of uploaded file options (option name -> stored path); a built-in style is named as text
    (``model=builtin:N``)."""
    fields, files = dict(fields), dict(uploads or {})
    for raw in list(fields):
        name = schema.field_name(raw)
        if name == "model" and is_builtin(fields[raw].strip()):
            files["model"] = fields.pop(raw).strip()  # a name, not a path: nothing of the server's
        elif name in uploadable():
            raise InputError(f"send --{name.replace('_', '-')} as a file in the form field '{name}', not as text")
        elif name in SERVER_ONLY:
            raise InputError(f"--{name.replace('_', '-')} is not available from the web: it names a server file")
    opts = schema.options_from_form(fields, files, ACCEPTED)
    if opts.init not in INIT_KINDS:
        raise InputError(
            f"--init must be one of {', '.join(INIT_KINDS)} from the web (a start image file is not accepted)"
        )
    return opts


# -- uploads -------------------------------------------------------------------------------------------------
def display_name(filename: str | None, fallback: str) -> str:
    """A client's file name for messages and metadata only (never a path): its last part, printable, short."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()[:80]
    return name or fallback


def accept_image(upload: Any, folder: Path, stem: str, what: str, max_pixels: int) -> dict[str, Any]:
    """Store one uploaded image as ``folder/stem.EXT`` after checking its size and decoding it whole; returns
    {file, name, width, height}. Raises :class:`WebError` with the command line's message."""
    name = display_name(upload.filename, what)
    tmp = folder / f"{stem}.img"
    upload.file.seek(0)
    with open(tmp, "wb") as out:
        shutil.copyfileobj(upload.file, out, 1 << 20)
    try:
        w, h, fmt = _header(tmp)
        if w * h > max_pixels:
            raise WebError(413, f"image too large: {name} is {w}x{h} (limit {max_pixels // 1_000_000} megapixels)")
        try:
            im = open_image(tmp)
        except InputError as err:
            message = str(err).replace(str(tmp), name)
            raise WebError(413 if message.startswith("image too large") else 400, message) from None
        ext = FORMAT_EXTENSIONS.get(fmt or "", "img")
        width, height = im.size
        im.close()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    final = folder / f"{stem}.{ext}"
    tmp.replace(final)
    return {"file": final.name, "name": name, "width": width, "height": height}


def accept_file(upload: Any, folder: Path, option: str) -> Path:
    """Store an uploaded file option (a trained model) as ``folder/OPTION.pt`` and check it is what the option
    needs (:func:`impasto.api.model_info` for ``model``), with the command line's message naming the upload."""
    name = display_name(upload.filename, option)
    path = folder / f"{option}.pt"
    upload.file.seek(0)
    with open(path, "wb") as out:
        shutil.copyfileobj(upload.file, out, 1 << 20)
    if option == "model":
        try:
            api.model_info(path)
        except InputError as err:
            path.unlink(missing_ok=True)
            raise WebError(400, str(err).replace(str(path), name)) from None
    return path


def _header(path: Path) -> tuple[int, int, str | None]:
    """(width, height, format) from an image file's header, without decoding; (0, 0, None) when Pillow cannot
    tell (the full decode that follows says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                return im.width, im.height, im.format
    except Exception:  # noqa: BLE001 - reported by open_image
        return (0, 0, None)


async def read_form(request: Any, max_files: int) -> Any:
    """The request's multipart form, at most ``max_files`` files; one-line 400 when it cannot be read, 507 when
    the temporary folder is full."""
    try:
        return await request.form(max_files=max_files, max_fields=100, max_part_size=64 * 1024)
    except TooLarge:
        raise
    except Exception as err:  # noqa: BLE001 - a malformed body, however it fails
        if is_disk_full(err):  # the parser keeps large parts in temporary files
            raise DiskFull(f"the disk of the temporary folder is full ({err})") from None
        raise WebError(400, f"cannot read the form: {str(err).splitlines()[0] if str(err) else 'malformed'}") from None


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` as (width, height)."""
    m = re.fullmatch(r"\s*(\d{1,6})\s*[xX×]\s*(\d{1,6})\s*", text or "")
    if not m:
        raise InputError(f"image sizes are given as WIDTHxHEIGHT, got '{(text or '')[:40]}'")
    return int(m.group(1)), int(m.group(2))


def form_schema(files: bool = True) -> dict[str, Any]:
    """The multipart body of POST /api/jobs (``files``) or /api/plan, for OpenAPI."""
    if files:
        props: dict[str, Any] = {
            "content": {"type": "string", "format": "binary", "description": "the photo"},
            "style": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "description": "style image(s)",
            },
        }
    else:
        props = {
            "content_size": {"type": "string", "description": "the photo's WIDTHxHEIGHT, e.g. 1024x768"},
            "style_size": {"type": "array", "items": {"type": "string"}, "description": "each style's WIDTHxHEIGHT"},
        }
    for f in option_fields():
        kind = {"int": "integer", "float": "number"}.get(f["kind"], "string")
        prop: dict[str, Any] = {"type": kind, "description": f"{f['flag']}: {f['help']}"}
        if f["choices"]:
            prop["enum"] = f["choices"]
        props[f["name"]] = prop
    required = ["content", "style"] if files else ["content_size", "style_size"]
    return {"type": "object", "required": required, "properties": props}
