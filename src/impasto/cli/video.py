"""``impasto video INPUT STYLE... -o OUTPUT [options]``: stylize a video (or a folder of frames), temporally
consistent. A thin layer over :mod:`impasto.video`: everything is checked before any heavy work, a progress bar
counts frames (frames/s, ETA), Ctrl-C and SIGTERM leave a playable ``OUTPUT.partial.EXT`` and ``--resume``
continues.

The method's options are those of the still-image command (:mod:`impasto.schema`), so a method or option added
there is offered here too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from .. import cluster, schema, video
from ..core.progress import StepInfo
from ..errors import InputError, NonFiniteLossError
from ..io.atomic import same_file
from ..io.models import model_stand_in
from ..options import Options
from ..plan import fmt_range
from ..version import __version__
from . import stylize
from .progress import signals_ignored, status, stop_code, stop_word


def build_parser() -> argparse.ArgumentParser:
    p = stylize.Parser(
        prog="impasto video",
        description="Stylize a video, temporally consistent: optical flow (OpenCV DIS) between frames, the "
        "previous result warped and blended in (feed-forward methods) or held by a temporal loss (optimization).",
    )
    p.add_argument("input", help="video file (anything FFmpeg reads) or a folder of frames")
    p.add_argument("styles", nargs="*", metavar="style", help="style image(s); several are blended")
    p.add_argument("-o", "--output", help="output video (.mp4 H.264 by default; .mkv .webm .mov .avi .gif ...) or a "
                   "folder for PNG frames (default: INPUT-STYLE.mp4)")  # fmt: skip
    g = p.add_argument_group("video")
    g.add_argument(
        "--temporal",
        type=float,
        metavar="WEIGHT",
        help=f"temporal consistency: feed-forward methods blend in this share of the previous result "
        f"where the flow is reliable (0..1, default {video.DEFAULT_BLEND}); the optimization method's "
        f"temporal loss weight (default {video.DEFAULT_TEMPORAL_LOSS:g}); 0: each frame on its own",
    )
    g.add_argument("--crf", type=int, help="quality of x264/x265/VP9/AV1: lower is better and larger (default 18)")
    g.add_argument("--codec", help="video encoder (default by extension: libx264 for .mp4 .mkv .mov, libvpx-vp9 for "
                   ".webm), e.g. libx265, ffv1, prores_ks")  # fmt: skip
    g.add_argument("--start", type=float, default=0.0, metavar="S", help="start S seconds into the input")
    g.add_argument("--duration", type=float, metavar="S", help="take S seconds (default: to the end)")
    g.add_argument("--fps", type=float, help="frame rate of a folder of frames (default 25)")
    g.add_argument("--no-audio", action="store_true", help="leave the audio out (by default it is copied unchanged)")
    g.add_argument(
        "--flow", choices=list(video.FLOW_PRESETS), default="medium", help="DIS optical flow preset (default medium)"
    )
    g.add_argument("--resume", action="store_true", help="continue an interrupted run from its frames (OUTPUT.frames/)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    g = stylize.add_cluster_args(p, "the frames, in chunks,", io=False)
    g.add_argument("--chunk-frames", type=int, default=cluster.DEFAULT_CHUNK, metavar="N",
                   help=f"with --cluster: frames per task (default {cluster.DEFAULT_CHUNK})")  # fmt: skip
    g.add_argument("--chunk-overlap", type=int, default=cluster.DEFAULT_OVERLAP, metavar="K",
                   help="with --cluster: frames before each chunk stylized again, only to carry the temporal state "
                   f"across its border (default {cluster.DEFAULT_OVERLAP})")  # fmt: skip
    _add_method_options(p)
    p.add_argument("--version", action="version", version=f"impasto {__version__}")
    return p


def _add_method_options(p: argparse.ArgumentParser) -> None:
    """The still-image command's options (:mod:`impasto.schema`) and ``--dry-run``, sizes and method said as
    they apply to a video."""
    method = ("fast (default here: AdaIN, one pass per frame), gatys (optimization, minutes per frame); any of "
              + ", ".join(schema.choices("method") or ()))  # fmt: skip
    stylize.add_option_arguments(p, {"size": "longest side of the frames in pixels (default: the video's)",
                                     "method": method})  # fmt: skip


def options_from_args(args: argparse.Namespace) -> Options:
    """The method's options from the arguments (``--size`` belongs to the video settings)."""
    values = dict(vars(args))
    values["size"] = None
    if values.get("method") is None and values.get("model") is None and values.get("preset", "default") == "default":
        values["method"] = "fast"  # minutes per frame would surprise: optimization is asked for by name
    for dest in stylize._OPTION_ARGS:
        values.setdefault(dest, None)
    return stylize.options_from_args(argparse.Namespace(**values))


def settings_from_args(args: argparse.Namespace) -> video.VideoSettings:
    return video.VideoSettings(
        size=args.size, temporal=args.temporal, crf=args.crf if args.crf is not None else 18, codec=args.codec,
        start=args.start, duration=args.duration, fps=args.fps, audio=not args.no_audio, resume=args.resume,
        flow=args.flow,
    )  # fmt: skip


class Bar:
    """Frames done, frames/s and ETA; with an optimizing method, the step within the frame."""

    def __init__(self, total: int | None, initial: int, quiet: bool) -> None:
        self.bar = None
        if not quiet:
            self.bar = tqdm(total=total, initial=initial, unit="frame", dynamic_ncols=True, file=sys.stderr)

    def frame(self, info: video.FrameInfo) -> None:
        if self.bar is None or info.cached:
            return
        if self.bar.total is not None and info.done > self.bar.total:
            self.bar.total = info.done
        self.bar.update(info.done - self.bar.n)

    def step(self, info: StepInfo) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"step {info.step}/{info.total} loss {info.loss:.3g}", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    """The command; returns the exit code (bad input raises :class:`~impasto.errors.ImpastoError`)."""
    opts = options_from_args(args)
    if not args.styles and getattr(opts, "model", None) is None:
        raise InputError("give a style image after the input video (see impasto video --help)")
    if args.output is None:
        named = Path(args.styles[0]) if args.styles else model_stand_in(str(getattr(opts, "model", "model")))
        tag = named.stem
        args.output = f"{Path(args.input).stem}-{tag}.mp4"
    for style in args.styles:
        if same_file(Path(style), Path(args.output)):
            raise InputError(f"output {args.output} is the same file as input {style}; refusing to overwrite an input")
    settings = settings_from_args(args)
    styles = list(args.styles)
    if args.cluster:
        cluster.parse_address(args.cluster)
        cluster.ray_module()  # not installed: one line saying how, before any work
        if args.chunk_frames < 1 or args.chunk_overlap < 0:
            raise InputError("--chunk-frames must be at least 1 and --chunk-overlap at least 0")
        status(f"connecting to Ray ({args.cluster})...", args.quiet)
        # unreachable: one line, before the bar
        connection = cluster.Cluster(args.cluster, args.cluster_actors, args.cluster_verbose)
        try:
            return _run(args, opts, settings, styles, connection)
        finally:
            connection.close()
    return _run(args, opts, settings, styles, None)


def _kept(stop: video.VideoStopped) -> str:
    """What a stopped run leaves, and how to go on."""
    if not stop.frames:
        return "no frame finished"
    kept = f"playable partial video {stop.partial}" if stop.partial else "no partial video (stopped while writing it)"
    return f"{kept}; the same command with --resume continues from frame {stop.frames + 1} ({stop.cache}/)"


def _run(args: argparse.Namespace, opts: Options, settings: video.VideoSettings, styles: list[str],
         connection: cluster.Cluster | None) -> int:  # fmt: skip
    with video.VideoJob(args.input, styles, args.output, opts, settings) as job:  # bad input: one line
        if args.dry_run:
            print(job.describe())
            return 0
        status(f"{job.total} frames: loading the networks..." if job.total else "loading the networks...", args.quiet)
        seconds = job.plan.seconds * (job.total or 0)
        if not args.quiet and seconds > stylize.LONG_RUN_SECONDS:
            lo, hi = job.plan.spread
            print(f"impasto: estimated {fmt_range(seconds * lo, seconds * hi)} for {job.total} frames (--dry-run "
                  "shows the plan); "
                  "Ctrl-C keeps a playable partial video and --resume continues", file=sys.stderr)  # fmt: skip
        if job.resume_from and not args.quiet:
            print(f"impasto: resuming after frame {job.resume_from}", file=sys.stderr)
        bar = Bar(job.total, job.resume_from, args.quiet)
        try:
            if connection is not None:
                result = cluster.run_video(job, bar.frame, connection, args.cluster_actors, args.chunk_frames,
                                           args.chunk_overlap)  # fmt: skip
            else:
                result = job.run(bar.frame, bar.step if job.iterative else None)
        except video.VideoStopped as stop:
            with signals_ignored():  # a second Ctrl-C does not cut the report short
                bar.close()
                job.close()
                print(f"impasto: {stop_word()} after {stop.frames} frame(s); {_kept(stop)}", file=sys.stderr)
            return stop_code()
        except NonFiniteLossError as err:
            bar.close()
            print(f"impasto: error: {err}", file=sys.stderr)
            return 1
        bar.close()
    if not args.quiet:
        extra = f", {result.skipped} undecodable frame(s) skipped" if result.skipped else ""
        print(f"impasto: wrote {result.output} ({result.frames} frames; {result.stylized} stylized in "
              f"{result.seconds:.1f} s, {result.frames_per_second:.2f} frames/s{extra})", file=sys.stderr)  # fmt: skip
    return 0
