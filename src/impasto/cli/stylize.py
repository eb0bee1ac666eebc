"""``impasto CONTENT STYLE [STYLE ...] -o OUTPUT [options]``: one image, or a batch (a folder or a glob).

A thin layer over :mod:`impasto.api`: parse and check everything (options, files, paths) before any heavy
work, then run with a progress bar, write outputs atomically, and turn errors into one-line messages.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from .. import api, batch, cluster, schema
from ..errors import InputError, NonFiniteLossError, OutputError, StylizeInterrupted
from ..io.atomic import check_writable, same_file, sibling
from ..io.history import write_history
from ..io.images import FORMATS, open_image, output_format, save_image, tensor_to_pil
from ..io.models import model_stand_in
from ..io.plot import plot_run
from ..options import INIT_KINDS, Options
from ..plan import check, fmt_bytes, fmt_seconds
from ..version import __version__
from .progress import Progress, ScalarBar, status, stop_code, stop_word

#: Runs estimated to take longer than this announce their estimate first.
LONG_RUN_SECONDS = 600


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    #: Said after a "required" error: what the command looks like (the top-level parser names the commands).
    missing_hint = ""

    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        if self.missing_hint and "required" in message:
            message = f"{message}; {self.missing_hint}"
        self.exit(2, f"impasto: error: {message} (see impasto --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``impasto CONTENT STYLE...``: the options from :mod:`impasto.schema`, and the command's own
    arguments (inputs, outputs, the plan, batch mode, the cluster)."""
    p = Parser(prog="impasto", description="Repaint a photo in the style of an artwork (neural style transfer).")
    p.add_argument("content", help="content image (photo); a folder or a quoted glob ('photos/*.jpg') runs a batch")
    p.add_argument("styles", nargs="*", metavar="style", help="style image(s); several are blended (none with --model)")
    p.add_argument("-o", "--output", help="result image; .png .jpg .webp .tif (default: CONTENT-STYLE.png); "
                   "in batch mode the output folder")  # fmt: skip
    add_option_arguments(p)
    g = p.add_argument_group("output")
    g.add_argument("--save-every", type=int, default=0, metavar="N", help="write an intermediate image every N steps")
    g.add_argument("--resume", metavar="IMAGE", help="continue a run from one of its images (OUT.stepNNNNN.png, "
                   "OUT.interrupted.png): only the steps after the one it records run")  # fmt: skip
    g.add_argument("--resume-step", type=int, metavar="N", help="with --resume: the steps the image had done "
                   "(default: the step recorded in it)")  # fmt: skip
    g.add_argument("--history", metavar="FILE", help="write the loss history to FILE (.json or .csv)")
    g.add_argument("--plot", metavar="FILE", help="draw content | style | result and the loss curves to FILE")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group(
        "batch mode", "CONTENT a folder or quoted glob: every image x every style (all blended with --style-blend) "
        "to -o FOLDER as CONTENT-STYLE.FORMAT; unreadable images are skipped with a warning (exit code 2)",
    )  # fmt: skip
    g.add_argument("--format", choices=["png", "jpg", "webp", "tif"], help="output format in batch mode (default png)")
    g.add_argument("--skip-existing", action="store_true", help="in batch mode, leave outputs that already exist")
    add_cluster_args(p)
    p.add_argument("--version", action="version", version=f"impasto {__version__}")
    return p


def add_option_arguments(p: argparse.ArgumentParser, helps: dict[str, str] | None = None
                         ) -> dict[str, argparse._ArgumentGroup]:  # fmt: skip
    """The options (:func:`impasto.schema.add_option_arguments`, ``helps`` replacing their help) and
    ``--dry-run``, listed with the sizes; returns the groups by title."""
    def dry_run(group: argparse._ArgumentGroup) -> None:
        group.add_argument("--dry-run", action="store_true", help="print the plan (scales, tiles, memory, time) "
                           "and exit")  # fmt: skip

    return schema.add_option_arguments(p, helps=helps, then={"size": dry_run})


def add_cluster_args(p: argparse.ArgumentParser, what: str = "batch mode", io: bool = True, verbose: bool = True
                     ) -> argparse._ArgumentGroup:  # fmt: skip
    """``--cluster``, ``--cluster-actors``, (``verbose``) ``--cluster-verbose`` and (``io``) ``--cluster-io``
    (docs/guides/cluster.md)."""
    g = p.add_argument_group("cluster", f"{what} on a Ray cluster (needs pip install 'impasto[cluster]')")
    g.add_argument("--cluster", metavar="RAY", help="ray: a local Ray instance on this machine's cores; "
                   "ray:auto: the cluster this machine is a node of (ray start); ray://HOST:10001: a remote one "
                   "(Ray Client)")  # fmt: skip
    g.add_argument("--cluster-actors", type=int, metavar="N", help="workers (one CPU and one torch thread each; "
                   "default: one per CPU of the cluster)")  # fmt: skip
    if verbose:
        g.add_argument("--cluster-verbose", action="store_true", help="show Ray's own notices and log lines "
                       "(hidden by default), and the workers' output")  # fmt: skip
    if not io:
        return g
    g.add_argument("--cluster-io", choices=list(cluster.IO_MODES), default="store", help="store (default): the "
                   "driver reads inputs and writes outputs, sent through Ray's object store; shared: the workers "
                   "read and write the paths themselves (a folder every node sees at the same path)")  # fmt: skip
    return g


#: The arguments that are options (:data:`impasto.schema.OPTION_NAMES`).
_OPTION_ARGS = list(schema.OPTION_NAMES)


def options_from_args(args: argparse.Namespace) -> Options:
    """Options of the chosen preset overridden by the arguments given."""
    return schema.options_from_args(args)


def check_paths(args: argparse.Namespace, opts: Options) -> Path:
    """Validate output paths against inputs, and that their folders can be written; returns the output path."""
    inputs = [Path(args.content), *map(Path, args.styles), *map(Path, opts.masks or ())]
    if opts.model:
        inputs.append(model_stand_in(opts.model))
    if args.resume:
        inputs.append(Path(args.resume))
    if opts.mask_map:
        inputs.append(Path(opts.mask_map))
    inputs += [Path(p) for p in (opts.content_seg, opts.style_seg) if p]
    if opts.init not in INIT_KINDS:
        inputs.append(Path(opts.init))
    if args.output is None:
        named = Path(args.styles[0]) if args.styles else model_stand_in(opts.model)
        args.output = f"{Path(args.content).stem}-{named.stem}.png"
    output = Path(args.output)
    output_format(output)
    if output.is_dir():
        raise InputError(f"output is a folder, expected an image file name: {output}")
    extras = [Path(x) for x in (args.history, args.plot) if x]
    for path in [output, *extras]:
        if not path.parent.is_dir():
            raise InputError(f"output folder does not exist: {path.parent}")
        for src in inputs:
            if same_file(path, src):
                raise InputError(f"output {path} is the same file as input {src}; refusing to overwrite an input")
    for folder in dict.fromkeys(p.parent for p in [output, *extras]):
        check_writable(folder)
    if args.history and Path(args.history).suffix.lower() not in (".json", ".csv"):
        raise InputError(f"--history file must end in .json or .csv: {args.history}")
    if args.plot:
        output_format(args.plot)
    if args.save_every < 0:
        raise InputError(f"--save-every must be >= 0, got {args.save_every}")
    return output


def _save_result(image, output: Path, meta: dict) -> Path:  # noqa: ANN001 - a PIL image
    """Write the result; when that fails, keep it in the temporary folder and raise the failure with where it is."""
    try:
        return save_image(image, output, meta)
    except OutputError as err:
        fd, rescue = tempfile.mkstemp(prefix=f"impasto-{output.stem}-", suffix=output.suffix)
        os.close(fd)
        try:
            save_image(image, rescue, meta)
        except OutputError:
            Path(rescue).unlink(missing_ok=True)
            raise err from None
        raise OutputError(f"{err}; the result was kept at {rescue}") from None


def run(args: argparse.Namespace) -> int:
    """The command; returns the exit code (errors before the run raise :class:`ImpastoError`)."""
    opts = options_from_args(args)
    api.as_list(args.styles, opts)  # as many style images as the method takes (none for a model), one weight each
    if batch.is_batch(args.content):
        return run_batch(args, opts)
    if args.cluster:
        raise InputError("--cluster runs batch mode (CONTENT a folder or a glob); one image runs here")
    if not api.METHODS[opts.method].iterative and (args.history or args.save_every):
        raise InputError(f"--history and --save-every need an optimization method; --method {opts.method} has no "
                         "steps")  # fmt: skip
    output = check_paths(args, opts)
    # Decode every input before any heavy work, so a bad file fails fast.
    content_im = open_image(args.content)
    style_ims = [open_image(s) for s in args.styles]
    if opts.model:
        api.model_info(opts.model)  # a bad model file fails here, in one line, before any heavy work
    # Memory and time before any heavy work: refuse what cannot fit, print the plan on --dry-run.
    plan = api.plan(content_im, style_ims, opts)
    plan.startup_seconds = api.startup_seconds()  # the wait so far; a --dry-run's run waits as long to start
    long_run = plan.seconds > LONG_RUN_SECONDS
    hint = api.coarse_to_fine_hint(plan, content_im, style_ims, opts) if long_run else None
    if args.dry_run:
        print(plan.describe() + (f"\n{hint}" if hint else ""))
        return 0 if plan.fits else _refuse(plan)
    check(plan)  # refuse what cannot fit before announcing it
    if long_run and not args.quiet:  # say so before a long run, not after
        print(f"impasto: estimated {plan.time_text} and {fmt_bytes(plan.peak_bytes)} on this machine "
              "(--dry-run shows the plan); Ctrl-C keeps the best image so far", file=sys.stderr)  # fmt: skip
        if hint:
            print(f"impasto: {hint}", file=sys.stderr)
    if args.resume_step is not None and not args.resume:
        raise InputError("--resume-step needs --resume IMAGE")
    prepared = api.prepare(content_im, style_ims, opts, planned=plan, start=args.resume, start_step=args.resume_step)
    meta = api.metadata(opts, args.content, args.styles)
    if args.resume:
        meta["resumed"] = {"from": Path(args.resume).name, "step": prepared.start_step}
    h, w = plan.scales[-1].hw
    estimated = "" if long_run else f": estimated {plan.time_text} in all on this machine"
    status(f"{opts.method}, {w}x{h}{estimated}; loading the networks...", args.quiet)
    runner = api.Runner(opts)
    if not plan.iterative:
        status("stylizing (one pass)...", args.quiet)
    progress = Progress(sum(s.steps for s in plan.scales), args.quiet or not plan.iterative, args.save_every,
                        lambda step: sibling(output, f"step{step:05d}"), meta)  # fmt: skip
    try:
        result = api.run(prepared, progress, runner)
    except StylizeInterrupted as stop:
        progress.close()
        done = int(runner.history[-1]["step"]) if runner.history else prepared.start_step
        kept = _save_result(tensor_to_pil(stop.image), sibling(output, "interrupted"), {**meta, "step": done})
        if args.history:
            write_history(args.history, runner.history)
        print(f"impasto: {stop_word()}; best image so far saved to {kept}", file=sys.stderr)
        return stop_code()
    except NonFiniteLossError as err:
        progress.close()
        kept = _save_result(tensor_to_pil(err.image), sibling(output, "last-good"), meta)
        print(f"impasto: error: {err}; saved to {kept}", file=sys.stderr)
        return 1
    progress.close()
    image = tensor_to_pil(result)
    _save_result(image, output, meta)
    if args.history:
        write_history(args.history, runner.history)
    if args.plot:
        plot_run(args.plot, content_im.convert("RGB"), [s.convert("RGB") for s in style_ims], image, runner.history)
    if not args.quiet:
        print(f"impasto: wrote {output} (took {fmt_seconds(api.startup_seconds())} in all)", file=sys.stderr)
    return 0


def _refuse(plan) -> int:  # noqa: ANN001 - a Plan that does not fit
    try:
        check(plan)
    except InputError as err:
        print(f"impasto: error: {err}", file=sys.stderr)
    return 2


# -- batch mode ------------------------------------------------------------------------------------------
def check_batch_args(args: argparse.Namespace, opts: Options) -> tuple[list[Path], list[Path], Path, str]:
    """Everything a batch command line needs, checked before any work; returns contents, styles, folder, format."""
    for flag, value in (("--mask", opts.masks), ("--mask-map", opts.mask_map), ("--content-seg", opts.content_seg),
                        ("--history", args.history), ("--plot", args.plot), ("--save-every", args.save_every),
                        ("--resume", args.resume)):  # fmt: skip
        if value:
            raise InputError(f"{flag} is not available in batch mode (content is a folder or a glob)")
    if args.dry_run:
        raise InputError("--dry-run is not available in batch mode (content is a folder or a glob)")
    if not args.output:
        raise InputError("batch mode (content is a folder or a glob) needs -o OUTPUT_FOLDER")
    outdir = Path(args.output).expanduser()
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"in batch mode -o names a folder, but {outdir} is a file")
    if not outdir.exists() and outdir.suffix.lower() in FORMATS:
        raise InputError(f"in batch mode -o names a folder, not an image file: {outdir}")
    if not outdir.exists() and not outdir.parent.is_dir():
        raise InputError(f"cannot create output folder {outdir}: {outdir.parent} does not exist")
    check_writable(outdir if outdir.exists() else outdir.parent)
    fmt = (args.format or "png").lower().lstrip(".")
    if f".{fmt}" not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(sorted(f[1:] for f in FORMATS))}, got {args.format!r}")
    styles = [Path(s) for s in args.styles]
    for s in styles:
        open_image(s)
    if opts.model:
        api.model_info(opts.model)  # a bad model file fails here, in one line
    contents = batch.find_contents(args.content)
    batch.make_jobs(contents, styles, outdir, opts, fmt)
    return contents, styles, outdir, fmt


def run_batch(args: argparse.Namespace, opts: Options) -> int:
    """The ``impasto FOLDER_OR_GLOB STYLE... -o OUTDIR`` command; returns the exit code."""
    contents, styles, outdir, fmt = check_batch_args(args, opts)
    connection = None
    if args.cluster:  # Ray missing or the cluster unreachable: one line, before the progress bar
        cluster.parse_address(args.cluster)
        cluster.ray_module()  # not installed: one line saying how, and nothing else
        status(f"connecting to Ray ({args.cluster})...", args.quiet)
        connection = cluster.Cluster(args.cluster, args.cluster_actors, args.cluster_verbose)
    try:
        return _run_batch(args, opts, contents, styles, outdir, fmt, connection)
    finally:
        if connection is not None:
            connection.close()


def _run_batch(args: argparse.Namespace, opts: Options, contents: list[Path], styles: list[Path], outdir: Path,
               fmt: str, connection: cluster.Cluster | None) -> int:  # fmt: skip
    outdir.mkdir(exist_ok=True)
    where = "starting the cluster's workers" if connection is not None else "loading the networks"
    per_content = 1 if opts.model or opts.style_blend is not None else len(styles)
    status(f"{len(contents) * per_content} image(s) to make: {where}...", args.quiet)
    bar = None if args.quiet else ScalarBar("image", len(contents) * per_content)
    try:
        if connection is not None:
            result = cluster.run_batch(
                contents, styles, outdir, opts, fmt, args.skip_existing, on_image=bar, cluster=connection,
                actors=args.cluster_actors, io=args.cluster_io,
            )  # fmt: skip
        else:
            result = batch.run_batch(contents, styles, outdir, opts, fmt, args.skip_existing, on_image=bar)
    except KeyboardInterrupt:
        print(f"impasto: {stop_word()}; the images written so far are complete", file=sys.stderr)
        return stop_code()
    except OutputError as err:
        print(f"impasto: error: {err}; the images written before are complete", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    if not args.quiet:
        extra = f", {result.existing} already there" if result.existing else ""
        print(f"impasto: wrote {len(result.written)} image(s) to {outdir} in {result.seconds:.1f} s "
              f"({result.images_per_second:.2f} images/s){extra}", file=sys.stderr)  # fmt: skip
    if result.skipped:
        print(f"impasto: error: {len(result.skipped)} content file(s) could not be read and were skipped",
              file=sys.stderr)  # fmt: skip
        return 2
    return 1 if result.failed else 0
