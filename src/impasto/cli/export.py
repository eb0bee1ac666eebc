"""``impasto export MODEL.pt -o MODEL.onnx``: a trained network as ONNX, with dynamic batch, height and width.

The ONNX model takes ``image`` (N, 3, H, W) RGB floats in [0, 1] (H, W >= 16) and returns ``stylized``, the same
shape, clamped to [0, 1]; the model file's metadata is kept as an ONNX metadata property. Where onnxruntime is
installed the exported file is run once on a picture of odd size and compared with PyTorch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import api
from ..errors import InputError
from ..io import builtin
from ..io.atomic import check_output
from ..version import __version__
from .stylize import Parser


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="impasto export", description="Export a trained model (impasto train) as ONNX.")
    p.add_argument("model", help="model file written by impasto train, or built-in styles (builtin:N, a blend)")
    p.add_argument("-o", "--output", help="ONNX file to write (default: MODEL.onnx; builtinN.onnx)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--no-check", action="store_true", help="do not compare the ONNX model with PyTorch")
    p.add_argument("-q", "--quiet", action="store_true", help="no messages")
    p.add_argument("--version", action="version", version=f"impasto {__version__}")
    return p


def run(args: argparse.Namespace) -> int:
    model: str | Path = args.model if builtin.is_builtin(args.model) else Path(args.model)
    info = api.model_info(model)  # a bad model file or built-in spec fails here, in one line
    default = Path(f"{builtin.tag(args.model)}.onnx") if isinstance(model, str) else model.with_suffix(".onnx")
    output = Path(args.output) if args.output else default
    if output.suffix.lower() != ".onnx":
        raise InputError(f"the ONNX file name must end in .onnx: {output}")
    check_output(output, *([(model, "model file")] if isinstance(model, Path) else []))
    if not 17 <= args.opset <= 23:
        raise InputError(f"--opset must be from 17 to 23, got {args.opset}")
    if not args.quiet:
        print(f"impasto: exporting {info}", file=sys.stderr)
    api.export_onnx(model, output, args.opset)
    if not args.no_check:
        if not args.quiet:
            print("impasto: checking the ONNX file against PyTorch...", file=sys.stderr)
        diff = api.check_onnx(model, output)
        if diff is not None and not args.quiet:
            print(f"impasto: onnxruntime matches PyTorch within {diff:.1e} on a 67x93 picture", file=sys.stderr)
    if not args.quiet:
        print(f"impasto: wrote {output}", file=sys.stderr)
    return 0
