"""``impasto train STYLE [--data FOLDER] -o model.pt [options]``: train a per-style network, then stylize in one
pass with ``impasto photo.jpg --model model.pt``. By default a new style of the built-in styles' network
(Dumoulin et al. 2017: its norms' scales and shifts, the convolutions shared and frozen; ``--fine-tune-convs``
trains them too); ``--from-scratch`` trains Johnson et al.'s network (2016) from random weights.

Exit codes: 0 done, 1 an output could not be written, 2 bad input (before any training), 130 / 143 stopped by
Ctrl-C / SIGTERM after writing a checkpoint (``--resume`` continues it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from .. import api
from ..errors import InputError
from ..io.images import open_image, output_format
from ..io.plot import plot_run
from ..schema import words as _layers
from ..version import __version__
from .progress import status
from .stylize import Parser


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="impasto train", description="Train a network that paints photos like STYLE in one pass: by "
               "default a new style of the built-in network (Dumoulin et al. 2017), --from-scratch Johnson et al.'s "
               "(2016); use it with: impasto PHOTO --model MODEL")  # fmt: skip
    p.add_argument("style", help="the style image (a painting)")
    p.add_argument("-o", "--output", help="model file to write (default: STYLE.pt in this folder)")
    p.add_argument("--data", metavar="FOLDER", help="folder of photos (searched recursively) to train on; "
                   "default: the bundled example photos, for a first try")  # fmt: skip
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue a training from its checkpoint, exactly")
    g = p.add_argument_group("training")
    g.add_argument("--from-scratch", dest="start", action="store_const", const="scratch",
                   help="train Johnson et al.'s network from random weights (default: a new style of the built-in "
                   "network, --model builtin:N)")  # fmt: skip
    g.add_argument("--style-row", choices=api.STYLE_ROWS,
                   help="built-in start: the new style starts from the built-in style with the lowest loss on the "
                   "first photos (nearest, the default) or from the mean of the 26")  # fmt: skip
    g.add_argument("--freeze-convs", dest="fine_tune_convs", action="store_const", const=False,
                   help="built-in start: learn only the new style's norms, the convolutions shared and frozen as in "
                   "Dumoulin et al. (default: fine-tune the convolutions too, which scores better in the same time)")
    g.add_argument("--fine-tune-convs", action="store_true", default=None, help=argparse.SUPPRESS)
    g.add_argument("--conv-lr", type=float, help="learning rate of the convolutions (default 3e-3)")
    g.add_argument("--steps", type=int, help="Adam steps (default 150; 2000 --from-scratch)")
    g.add_argument("--epochs", type=float, help="passes over the photos, instead of --steps")
    g.add_argument("--minutes", type=float, help="train for this many minutes (with --steps/--epochs: stop at "
                   "whichever comes first); the model is written as finished")  # fmt: skip
    g.add_argument("--batch-size", type=int, help="photos per step (default 4)")
    g.add_argument("--lr", type=float, help="Adam learning rate (default 3e-2 for the new style's norms, 1e-3 "
                   "--from-scratch)")  # fmt: skip
    g.add_argument("--lr-schedule", choices=api.LR_SCHEDULES, help="learning rates: constant (the default) "
                   "or linear, down in a straight line to zero at the end of the budget (--steps or --minutes)")
    g.add_argument("--train-size", type=int, metavar="PX", help="side of the square training crops (default 256)")
    g.add_argument("--style-size", type=int, metavar="PX", help="longest side of the style image (default 512; "
                   "larger: finer strokes)")  # fmt: skip
    g.add_argument("--width", type=int, help="--from-scratch: channels of the network's first layer (default 32 as "
                   "published; 16: ~3x faster, smaller strokes of detail)")  # fmt: skip
    g.add_argument("--seed", type=int, help="random seed: weights, photo order, crops (default 0)")
    g.add_argument("--device", help="auto (default), cpu, cuda, cuda:N, mps")
    g = p.add_argument_group("losses (each divided by its target's mean square)")
    g.add_argument("--content-weight", type=float, help="content loss weight (default 1; 3 keeps more of the "
                   "photo, such as faces, for less of the style)")  # fmt: skip
    g.add_argument("--style-weight", type=float, help="style loss weight (default 5; 3 --from-scratch)")
    g.add_argument("--tv-weight", type=float, help="total-variation weight (default 0)")
    g.add_argument("--content-layers", type=_layers, help="default relu4_2; relu2_2 --from-scratch")
    g.add_argument("--style-layers", type=_layers, help="default relu1_1,relu2_1,relu3_1,relu4_1,relu5_1; "
                   "relu1_1 ... relu4_1 --from-scratch")  # fmt: skip
    g = p.add_argument_group("output")
    g.add_argument("--checkpoint", metavar="FILE", help="checkpoint file (default: OUTPUT.ckpt.pt)")
    g.add_argument("--checkpoint-every", type=int, metavar="N", help="write a checkpoint every N steps "
                   "(default 200; also on Ctrl-C and SIGTERM); 0: only then")  # fmt: skip
    g.add_argument("--sample-every", type=int, metavar="N", help="stylize a sample photo every N steps "
                   "(default 100; 0: never) into OUTPUT-samples/")  # fmt: skip
    g.add_argument("--samples", metavar="FOLDER", help="folder for the samples (default OUTPUT-samples)")
    g.add_argument("--history", metavar="FILE", help="write the loss history to FILE (.json or .csv)")
    g.add_argument("--plot", metavar="FILE", help="draw sample photo | style | last sample and the loss curves")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--version", action="version", version=f"impasto {__version__}")
    return p


_OPTIONS = ["start", "style_row", "fine_tune_convs", "conv_lr", "steps", "epochs", "batch_size", "lr", "lr_schedule",
            "train_size", "style_size", "width", "seed", "device", "content_weight", "style_weight", "tv_weight",
            "content_layers", "style_layers", "checkpoint_every", "sample_every"]  # fmt: skip


class TrainBar:
    """tqdm bar over steps with the weighted losses and images/s (tqdm shows the ETA)."""

    def __init__(self, quiet: bool, minutes: float | None = None) -> None:
        self.quiet, self.minutes = quiet, minutes
        self.bar: tqdm | None = None

    def __call__(self, info: api.TrainInfo) -> None:
        if self.quiet:
            return
        if self.minutes is not None and info.total >= api.UNTIL_STOPPED:  # a time budget: a bar over its seconds
            if self.bar is None:
                self.bar = tqdm(total=round(60 * self.minutes), unit="s", dynamic_ncols=True, file=sys.stderr)
            self.bar.update(min(round(info.elapsed), self.bar.total) - self.bar.n)
        else:
            if self.bar is None:  # a resumed run starts at its step, so the rate and ETA count this run only
                self.bar = tqdm(total=info.total, initial=info.step - 1, unit="step", dynamic_ncols=True,
                                file=sys.stderr)  # fmt: skip
            self.bar.update(info.step - self.bar.n)
        post = {"step": str(info.step)} if self.minutes is not None else {}
        post.update({k: f"{v:.3g}" for k, v in info.parts.items() if v})
        post["img/s"] = f"{info.images_per_second:.2f}"
        self.bar.set_postfix(post, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    open_image(args.style)
    # A resumed training writes the model file its checkpoint records, unless -o names another.
    output = Path(args.output) if args.output else None if args.resume else Path(f"{Path(args.style).stem}.pt")
    if output is not None and output.suffix.lower() not in (".pt", ".pth"):
        raise InputError(f"the model file name must end in .pt or .pth: {output}")
    if output is not None and output.is_dir():
        raise InputError(f"output is a folder, expected a model file name: {output}")
    if args.plot:
        output_format(args.plot)
        if not Path(args.plot).parent.is_dir():
            raise InputError(f"output folder does not exist: {Path(args.plot).parent}")
    if args.plot and args.sample_every == 0:
        raise InputError("--plot shows the last sample: it needs --sample-every above 0")
    options = {k: getattr(args, k) for k in _OPTIONS}
    bar = TrainBar(args.quiet, args.minutes)
    status("loading the networks and the training images...", args.quiet)
    try:
        extra = {"checkpoint": args.checkpoint, "samples": args.samples, "history": args.history,
                 "max_minutes": args.minutes}  # fmt: skip
        result = api.train(args.style, output, data=args.data, resume=args.resume, callback=bar, **extra, **options)
    except api.TrainingInterrupted as stop:
        bar.close()
        word = "terminated" if stop.signum == 15 else "interrupted"
        if stop.checkpoint is None:
            print(f"impasto: {word} again; the last periodic checkpoint is kept", file=sys.stderr)
        else:
            again = f"impasto train {args.style} --resume {stop.checkpoint}"
            where = f"checkpoint saved to {stop.checkpoint}"
            print(f"impasto: {word} at step {stop.step}; {where} (continue with: {again})", file=sys.stderr)
        return 143 if stop.signum == 15 else 130
    bar.close()
    if args.plot and result.sample is not None:
        photo, style = open_image(result.sample_photo).convert("RGB"), open_image(args.style).convert("RGB")
        plot_run(args.plot, photo, [style], open_image(result.sample).convert("RGB"), result.history)
    if not args.quiet:
        print(f"impasto: wrote {result.model} ({result.steps} steps, {result.seconds / 60:.1f} min); stylize with: "
              f"impasto PHOTO --model {result.model} -o OUT.png", file=sys.stderr)  # fmt: skip
    return 0
