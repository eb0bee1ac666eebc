"""``impasto styles PHOTO -o SHEET.png``: the 26 built-in styles on one photo, each labelled with its index (the
``N`` of ``--model builtin:N``), next to the photo as it is."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import api
from ..errors import InputError
from ..io.atomic import check_output
from ..io.images import open_image, output_format, save_image
from ..version import __version__
from .stylize import Parser


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="impasto styles", description="A contact sheet of the 26 built-in styles on a photo "
               "(pick one with --model builtin:N, or blend: --model builtin:3:0.5,12:0.5).")  # fmt: skip
    p.add_argument("content", help="the photo")
    p.add_argument("-o", "--output", help="sheet image to write (default: PHOTO-styles.png)")
    p.add_argument("--tile", type=int, default=256, help="longest side of each picture in pixels (default 256)")
    p.add_argument("--columns", type=int, default=7, help="pictures per row (default 7)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default auto)")
    p.add_argument("-q", "--quiet", action="store_true", help="no messages")
    p.add_argument("--version", action="version", version=f"impasto {__version__}")
    return p


def run(args: argparse.Namespace) -> int:
    content = Path(args.content)
    output = Path(args.output) if args.output else Path(f"{content.stem}-styles.png")
    output_format(output)
    if output.is_dir():
        raise InputError(f"output is a folder, expected an image file name: {output}")
    check_output(output, (content, "photo"))
    photo = open_image(content)  # a bad photo fails here, in one line
    sheet = api.style_sheet(photo, args.tile, args.columns, args.device)
    sheet.info["impasto"]["content"] = content.name
    save_image(sheet, output, sheet.info["impasto"])
    if not args.quiet:
        print(f"impasto: wrote {output}", file=sys.stderr)
    return 0
