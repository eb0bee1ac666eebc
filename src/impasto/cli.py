"""Command line: ``impasto CONTENT STYLE [STYLE ...] -o OUTPUT [options]``.

A thin layer over :mod:`impasto.api`: parse and check everything (options, files, paths) before any heavy
work, then run with a progress bar, write outputs atomically, and turn errors into one-line messages.
Exit codes: 0 done, 1 the run failed (non-finite loss), 2 bad input, 130 interrupted (image kept).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__, batch, estimate
from .api import metadata
from .device import tune_allocator
from .errors import ImpastoError, InputError, NonFiniteLossError
from .gatys import StepInfo, StylizeInterrupted
from .images import load_image, open_image, output_format, save_image, tensor_to_pil
from .masks import load_masks
from .options import PRESETS, Options, make_options
from .pipeline import Stylizer


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        self.exit(2, f"impasto: error: {message} (see impasto --help)\n")


def _layers(text: str) -> tuple[str, ...]:
    return tuple(p for p in (s.strip() for s in text.replace(" ", ",").split(",")) if p)


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in text.replace(" ", ",").split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.replace(" ", ",").split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got '{text}'") from None


#: Runs estimated to take longer than this announce their estimate first.
LONG_RUN_SECONDS = 600


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="impasto", description="Repaint a photo in the style of an artwork (neural style transfer).")
    p.add_argument("content", help="content image (photo); a folder or a quoted glob ('photos/*.jpg') runs a batch")
    p.add_argument("styles", nargs="+", metavar="style", help="style image(s); several are blended")
    p.add_argument("-o", "--output", help="result image; .png .jpg .webp .tif (default: CONTENT-STYLE.png); "
                   "in batch mode the output folder")  # fmt: skip
    p.add_argument("--preset", default="default", choices=list(PRESETS), help="starting set of options")
    p.add_argument("--method", choices=["gatys", "fast"], help="gatys: optimization (default); fast: AdaIN, ~1 s")
    g = p.add_argument_group("size")
    g.add_argument("-s", "--size", type=int, help="longest side of the result in pixels (default 512)")
    g.add_argument("--style-scale", type=float, help="style image size relative to the result (default 1)")
    g.add_argument("--style-blend", type=_floats, help="weights of the style images, e.g. 0.7,0.3")
    g.add_argument("--start-size", type=int, metavar="PX", help="multi-scale: coarsest scale's longest side")
    g.add_argument("--scale-factor", type=float, metavar="F", help="multi-scale: size ratio between scales (default 2)")
    g.add_argument("--scale-steps", type=_ints, metavar="N,N,..",
                   help="multi-scale: steps per scale, coarse to fine (default: --steps shared so that each scale "
                   "takes about the same time)")  # fmt: skip
    g.add_argument("--tile", type=int, metavar="PX", help="process in tiles of at most PX pixels (0: never; "
                   "default: only when memory requires)")  # fmt: skip
    g.add_argument("--tile-overlap", type=int, metavar="PX", help="pixels shared by neighbouring tiles (default 1/8)")
    g.add_argument("--tile-passes", type=int, metavar="N", help="tile passes, grid moved between them (default 2)")
    g.add_argument("--dry-run", action="store_true", help="print the plan (scales, tiles, memory, time) and exit")
    g = p.add_argument_group("artistic controls (both methods)")
    g.add_argument("--strength", type=float, help="style strength 0..1 (default 1); fast: AdaIN's alpha, gatys: "
                   "each 0.25 less divides the style/content weight ratio by 10; 0 keeps the content")  # fmt: skip
    g.add_argument(
        "--preserve-color",
        choices=["luminance", "histogram"],
        help="keep the content's colours: luminance-only transfer, or style recoloured to the content",
    )
    g.add_argument("--mask", dest="masks", action="append", metavar="FILE", help="region of one style (white: that "
                   "style), one per style in order; content outside every mask stays unstyled")  # fmt: skip
    g.add_argument("--mask-map", metavar="FILE", help="one colour-coded mask image instead of --mask files")
    g.add_argument("--mask-colors", type=_layers, metavar="C1,C2", help="colour of each style's region in "
                   "--mask-map, in style order (names or #rrggbb); other colours stay unstyled")  # fmt: skip
    g = p.add_argument_group("losses")
    g.add_argument("--content-layers", type=_layers, help="e.g. relu4_2 (tutorial aliases conv_N accepted)")
    g.add_argument("--style-layers", type=_layers, help="e.g. relu1_1,relu2_1,relu3_1,relu4_1,relu5_1")
    g.add_argument("--style-layer-weights", type=_floats, help="one weight per style layer")
    g.add_argument("--content-weight", "--alpha", type=float, help="content loss weight (alpha)")
    g.add_argument("--style-weight", "--beta", type=float, help="style loss weight (beta)")
    g.add_argument("--tv-weight", type=float, help="total-variation (smoothness) weight")
    g.add_argument("--gram-norm", choices=["positions", "elements", "none"], help="Gram matrix normalization")
    g = p.add_argument_group("optimization")
    g.add_argument("--init", help="content, noise, style, or an image file")
    g.add_argument("--optimizer", choices=["lbfgs", "adam"])
    g.add_argument("--lr", type=float, help="Adam learning rate")
    g.add_argument("--steps", type=int, help="loss evaluations (L-BFGS) or Adam steps")
    g.add_argument("--lbfgs-history", type=int, help="L-BFGS memory size (default 50; tutorial 100)")
    g.add_argument("--seed", type=int, help="random seed (default 0)")
    g = p.add_argument_group("network")
    g.add_argument("--weights", help="your own VGG-19 state dict (torchvision or Caffe layout)")
    g.add_argument("--pooling", choices=["max", "avg"])
    g.add_argument("--padding", choices=["zeros", "reflect"])
    g.add_argument("--device", help="auto (default), cpu, cuda, cuda:N, mps")
    g.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16", "fp16", "mixed"],
        help="auto: bf16 where supported; mixed: fp32 loss, bf16 gradients (the tutorial preset's)",
    )
    g = p.add_argument_group("output")
    g.add_argument("--save-every", type=int, default=0, metavar="N", help="write an intermediate image every N steps")
    g.add_argument("--history", metavar="FILE", help="write the loss history to FILE (.json or .csv)")
    g.add_argument("--plot", metavar="FILE", help="draw content | style | result and the loss curves to FILE")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group(
        "batch mode", "CONTENT a folder or quoted glob: every image x every style (all blended with --style-blend) "
        "to -o FOLDER as CONTENT-STYLE.FORMAT; unreadable images are skipped with a warning (exit code 2)",
    )  # fmt: skip
    g.add_argument("--format", choices=["png", "jpg", "webp", "tif"], help="output format in batch mode (default png)")
    g.add_argument("--skip-existing", action="store_true", help="in batch mode, leave outputs that already exist")
    p.add_argument("--version", action="version", version=f"impasto {__version__}")
    return p


_OPTION_ARGS = [
    "method", "size", "style_scale", "style_blend", "content_layers", "style_layers", "style_layer_weights",
    "content_weight", "style_weight", "tv_weight", "gram_norm", "init", "optimizer", "lr", "steps", "seed",
    "lbfgs_history",
    "weights", "pooling", "padding", "device", "precision",
    "strength", "preserve_color", "masks", "mask_map", "mask_colors",
]  # fmt: skip
_OPTION_ARGS += ["start_size", "scale_factor", "scale_steps", "tile", "tile_overlap", "tile_passes"]


def options_from_args(args: argparse.Namespace) -> Options:
    """Options of the chosen preset overridden by the arguments given."""
    return make_options(args.preset, **{k: getattr(args, k) for k in _OPTION_ARGS})


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def sibling(output: Path, tag: str) -> Path:
    """``out.png`` -> ``out.TAG.png``, next to the output."""
    return output.with_name(f"{output.stem}.{tag}{output.suffix}")


def check_paths(args: argparse.Namespace, opts: Options) -> Path:
    """Validate output paths against inputs; returns the output path."""
    inputs = [Path(args.content), *map(Path, args.styles), *map(Path, opts.masks or ())]
    if opts.mask_map:
        inputs.append(Path(opts.mask_map))
    if opts.init not in ("content", "noise", "style"):
        inputs.append(Path(opts.init))
    if args.output is None:
        args.output = f"{Path(args.content).stem}-{Path(args.styles[0]).stem}.png"
    output = Path(args.output)
    output_format(output)
    if output.is_dir():
        raise InputError(f"output is a folder, expected an image file name: {output}")
    extras = [Path(x) for x in (args.history, args.plot) if x]
    for path in [output, *extras]:
        if not path.parent.is_dir():
            raise InputError(f"output folder does not exist: {path.parent}")
        for src in inputs:
            if _same_file(path, src):
                raise InputError(f"output {path} is the same file as input {src}; refusing to overwrite an input")
    if args.history and Path(args.history).suffix.lower() not in (".json", ".csv"):
        raise InputError(f"--history file must end in .json or .csv: {args.history}")
    if args.plot:
        output_format(args.plot)
    if args.save_every < 0:
        raise InputError(f"--save-every must be >= 0, got {args.save_every}")
    return output


def write_history(path: Path, history: list[dict[str, float]]) -> None:
    """Loss history as JSON or CSV, written atomically."""
    if path.suffix.lower() == ".json":
        text = json.dumps(history, indent=1)
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["step", "loss", "content", "style", "tv", "seconds"])
        writer.writeheader()
        writer.writerows(history)
        text = buf.getvalue()
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Progress:
    """tqdm bar with step, losses and ETA; also writes ``--save-every`` snapshots."""

    def __init__(self, total: int, quiet: bool, save_every: int, output: Path, meta: dict) -> None:
        from tqdm import tqdm

        self.bar = None if quiet else tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr)
        self.save_every, self.output, self.meta = save_every, output, meta

    def __call__(self, info: StepInfo) -> None:
        if self.bar is not None:
            if self.bar.total != info.total:
                self.bar.reset(total=info.total)
            self.bar.update(info.step - self.bar.n)
            self.bar.set_postfix(content=f"{info.content:.3g}", style=f"{info.style:.3g}", tv=f"{info.tv:.3g}",
                                 refresh=False)  # fmt: skip
        if self.save_every and info.step % self.save_every == 0:
            save_image(tensor_to_pil(info.image), sibling(self.output, f"step{info.step:05d}"), self.meta)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    opts = options_from_args(args)
    if batch.is_batch(args.content):
        return batch.run_from_args(args, opts)
    if opts.method == "fast" and (args.history or args.save_every):
        raise InputError("--history and --save-every need the optimization method; --method fast has no steps")
    output = check_paths(args, opts)
    # Decode every input before any heavy work, so a bad file fails fast.
    content_im = open_image(args.content)
    style_ims = [open_image(s) for s in args.styles]
    if opts.init not in ("content", "noise", "style"):
        open_image(opts.init)
    if opts.style_blend is not None and len(opts.style_blend) != len(style_ims):
        raise InputError(f"--style-blend has {len(opts.style_blend)} weights for {len(style_ims)} style images")
    # Memory and time before any heavy work: refuse what cannot fit, print the plan on --dry-run.
    plan = estimate.plan(opts, content_im.size, [s.size for s in style_ims])
    long_run = plan.seconds > LONG_RUN_SECONDS
    hint = estimate.coarse_to_fine_hint(opts, plan, content_im.size, [s.size for s in style_ims]) if long_run else None
    if args.dry_run:
        print(plan.describe() + (f"\n{hint}" if hint else ""))
        return 0
    estimate.check(plan)
    if long_run and not args.quiet:  # say so before a long run, not after
        print(f"impasto: estimated {estimate.fmt_seconds(plan.seconds)} and {estimate.fmt_bytes(plan.peak_bytes)} "
              "on this machine (--dry-run shows the plan); Ctrl-C keeps the latest image", file=sys.stderr)  # fmt: skip
        if hint:
            print(f"impasto: {hint}", file=sys.stderr)
    meta = metadata(opts, args.content, args.styles)
    content = load_image(content_im, opts.size)
    masks = load_masks(tuple(content.shape[-2:]), len(style_ims), opts.masks, opts.mask_map, opts.mask_colors)
    style_longest = max(16, round(opts.style_scale * opts.size))
    styles = [load_image(s, style_longest) for s in style_ims]
    progress = Progress(opts.steps, args.quiet or opts.method == "fast", args.save_every, output, meta)
    transfer = Stylizer(opts)
    try:
        result = transfer(content, styles, masks, progress)
    except StylizeInterrupted as stop:
        progress.close()
        kept = save_image(tensor_to_pil(stop.image), sibling(output, "interrupted"), meta)
        if args.history:
            write_history(Path(args.history), transfer.history)
        print(f"impasto: interrupted; latest image saved to {kept}", file=sys.stderr)
        return 130
    except NonFiniteLossError as err:
        progress.close()
        kept = save_image(tensor_to_pil(err.image), sibling(output, "last-good"), meta)  # type: ignore[attr-defined]
        print(f"impasto: error: {err}; saved to {kept}", file=sys.stderr)
        return 1
    progress.close()
    image = tensor_to_pil(result)
    save_image(image, output, meta)
    if args.history:
        write_history(Path(args.history), transfer.history)
    if args.plot:
        from .plot import plot_run

        plot_run(args.plot, content_im.convert("RGB"), [s.convert("RGB") for s in style_ims], image, transfer.history)
    if not args.quiet:
        print(f"impasto: wrote {output}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``impasto`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    tune_allocator()
    try:
        return run(args)
    except ImpastoError as err:
        print(f"impasto: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("impasto: interrupted before the run started; nothing written", file=sys.stderr)
        return 130
