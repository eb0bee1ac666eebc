"""All options of a run in one dataclass, the named presets, and their validation.

A preset (:mod:`impasto.presets`) is a set of option values; anything given explicitly overrides it.
``Options.to_dict()`` is what outputs record so that a result can be reproduced.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .core.checks import check_fields, option
from .core.color import PRESERVE_COLOR
from .core.losses import GRAM_NORMS
from .core.schedule import scale_sizes, schedule
from .core.vgg import resolve_layers
from .errors import InputError
from .io.builtin import is_builtin, parse_spec
from .io.images import MAX_SIZE
from .io.masks import parse_color
from .presets import PRESETS, preset_values

#: Each method's own checks of the options, by method name, in the order the methods were registered. The methods
#: register themselves (:func:`register_method`) as :mod:`impasto.methods` is imported, which importing impasto does
#: first: the options are a lower layer than the methods and know them only by what they register.
_METHOD_CHECKS: dict[str, Callable[[Options], None]] = {}


class _MethodNames(Sequence[str]):
    """The registered methods' names in the order they were registered, as they are now (a live view)."""

    def __getitem__(self, index):  # type: ignore[override]
        return list(_METHOD_CHECKS)[index]

    def __len__(self) -> int:
        return len(_METHOD_CHECKS)

    def __contains__(self, name: object) -> bool:
        return name in _METHOD_CHECKS

    def __repr__(self) -> str:
        return repr(tuple(_METHOD_CHECKS))


#: The names ``--method`` accepts: the ``method`` option's choices.
METHOD_NAMES = _MethodNames()


def register_method(name: str, check: Callable[[Options], None]) -> None:
    """Make ``name`` a choice of the ``method`` option, its options checked by ``check`` (which raises
    :class:`InputError`) after every option's own checks."""
    _METHOD_CHECKS[name] = check


@dataclass
class Options:
    """Every setting of a run. See :data:`PRESETS` for named starting points. Each field's type and its
    :func:`~impasto.core.checks.option` spec (bounds, choices, paths) are what :func:`validate` checks first."""

    preset: str = "default"
    # one of the registered methods (impasto.methods): gatys, fast (AdaIN), model (a trained network), photo
    # (Luan), photo-fast (Li)
    method: str = option("gatys", choices=METHOD_NAMES)
    model: str | None = option(None, path=True)  # a trained network's file (impasto train) or builtin:N
    size: int = option(512, lo=16, hi=MAX_SIZE)  # longest side of the result, pixels
    style_scale: float = option(1.0, lo=0.0, hi=8.0, lo_open=True)  # style image size relative to the result's size
    style_blend: tuple[float, ...] | None = option(None, lo=0.0)  # weights of several style images
    # style strength 0..1: AdaIN's alpha (fast); scales the style/content ratio (gatys)
    strength: float = option(1.0, lo=0.0, hi=1.0)
    preserve_color: str | None = None  # None | luminance | histogram (Gatys et al. 2017)
    masks: tuple[str, ...] | None = option(None, path=True)  # one grayscale mask file per style: where it goes
    mask_map: str | None = option(None, path=True)  # or one colour-coded mask image ...
    mask_colors: tuple[str, ...] | None = None  # ... with the colour of each style's region, in style order
    content_layers: tuple[str, ...] = ("relu4_2",)  # empty: no content loss
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")  # empty: no style loss
    style_layer_weights: tuple[float, ...] | None = option(None, lo=0.0)
    content_weight: float = option(1.0, lo=0.0)  # alpha
    # beta (losses normalized by their targets: see docs/guides/methods.md)
    style_weight: float = option(5.0, lo=0.0)
    tv_weight: float = option(0.0, lo=0.0)
    # photorealism regularizer (matting Laplacian, Luan et al. 2017); photo method
    photo_weight: float = option(0.0, lo=0.0)
    # label maps of the content and the style image (photo methods: regions matched by label)
    content_seg: str | None = option(None, path=True)
    style_seg: str | None = option(None, path=True)
    # photo-fast: Li et al.'s smoothing: guided-filter approximation, exact solve, or none
    smooth: str = option("guided", choices=("exact", "guided", "none"))
    # photo-fast feature transform at relu4_1: adain or wct (whitening and colouring)
    transform: str = option("adain", choices=("wct", "adain"))
    # video, optimization methods: Ruder et al.'s temporal loss (see impasto.video)
    temporal_weight: float = option(0.0, lo=0.0, flag="--temporal")
    gram_norm: str = option("positions", choices=GRAM_NORMS)
    normalize_losses: bool = True  # divide each loss by its target's mean square
    style_layer_norm: str = option("none", choices=("none", "elements"))  # the article divides by C*H*W per layer
    # content | noise | style | colors (content recoloured to the style) | image file
    init: str = option("content", path=True)
    optimizer: str = option("lbfgs", choices=("lbfgs", "adam"))
    lr: float = option(0.02, lo=0.0, hi=10.0, lo_open=True)  # Adam learning rate (pixels in [0, 1])
    steps: int = option(300, lo=0, hi=100_000)  # loss evaluations (L-BFGS) or Adam steps
    lbfgs_history: int = option(50, lo=1, hi=1000)  # L-BFGS memory (pairs kept); each pair: 2 image-sized vectors
    # multi-scale: longest side of the coarsest scale (None: single scale)
    start_size: int | None = option(None, lo=32, hi=MAX_SIZE)
    scale_factor: float = option(2.0, lo=1.0, hi=4.0, lo_open=True)  # multi-scale: size ratio between scales
    # multi-scale: steps per scale, coarse to fine (None: share steps)
    scale_steps: tuple[int, ...] | None = option(None, lo=0, hi=100_000)
    # tile side in pixels: None picks tiles when memory requires, 0 never tiles
    tile: int | None = option(None, lo=0, hi=MAX_SIZE)
    tile_overlap: int | None = option(None, lo=0, hi=MAX_SIZE)  # pixels shared by neighbouring tiles (None: tile // 8)
    tile_passes: int = option(2, lo=1, hi=8)  # passes over the tiles, grid shifted between passes
    pooling: str = option("max", choices=("max", "avg"))
    padding: str = option("zeros", choices=("zeros", "reflect"))
    weights: str | None = option(None, path=True)  # path to a user VGG-19 state dict
    device: str = "auto"
    # mixed: fp32 forward, bf16 gradients
    precision: str = option("auto", choices=("auto", "fp32", "bf16", "fp16", "mixed"))
    seed: int = option(0, lo=0, hi=2**63 - 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view of the options."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @property
    def content_layer_names(self) -> list[str]:
        """The content layers under their paper names (aliases such as ``conv_4`` resolved)."""
        return resolve_layers(self.content_layers)

    @property
    def style_layer_names(self) -> list[str]:
        """The style layers under their paper names."""
        return resolve_layers(self.style_layers)

    def style_size(self, size: int | None = None) -> int:
        """Longest side of the style images for a picture whose longest side is ``size`` (default: the result's):
        ``style_scale`` times it, at least 16 pixels. The one place this is computed."""
        return max(16, round(self.style_scale * (self.size if size is None else size)))

    def scales(self) -> list[tuple[int, int]]:
        """(longest side, steps) of each scale of an optimization run, coarse to fine (one for a single scale)."""
        return schedule(self.size, self.start_size, self.scale_factor, self.steps, self.scale_steps)


#: Both layer lists empty: an empty list leaves its loss out, and with neither there is nothing to minimize.
NO_LAYERS = ("--content-layers and --style-layers are both empty: give layers for at least one of them "
             "(an empty list leaves that loss out)")  # fmt: skip


@dataclass(frozen=True)
class FieldInfo:
    """How a front end presents an option: a label and a one-sentence hint for people (no flag names), the group
    it belongs to, and the methods it applies to (None: every method)."""

    label: str
    group: str
    methods: tuple[str, ...] | None = None
    hint: str = ""


#: The optimization methods (options of the loss, the optimizer and the scales apply to them only).
OPTIMIZING = ("gatys", "photo")
#: Groups of :data:`FIELD_INFO`, in the order a front end shows them.
_BALANCE, _NETWORK = "Photo and painting balance", "Network and precision"
GROUPS = ("Basics", "Style", "Photorealistic", _BALANCE, "Optimization", "Large pictures", _NETWORK)
#: Presentation of every option a front end may offer (the web page renders from it, via ``GET /api/options``).
FIELD_INFO: dict[str, FieldInfo] = {
    "method": FieldInfo("Method", "Basics", hint="How the picture is painted: optimization (best, slowest), a "
                        "fast network, a trained model, or a photorealistic variant."),
    "preset": FieldInfo("Preset", "Basics", OPTIMIZING, "A starting set of settings; anything you change "
                        "overrides it."),
    "size": FieldInfo("Size (px, longest side)", "Basics", hint="Longest side of the result in pixels."),
    "steps": FieldInfo("Steps", "Basics", OPTIMIZING, "More steps refine the picture further and take longer."),
    "strength": FieldInfo("Style strength", "Basics", hint="0 keeps the photo, 1 is the full style."),
    "preserve_color": FieldInfo("Keep the photo's colours", "Basics", hint="Paint the forms of the style in the "
                                "photo's own colours."),
    "style_scale": FieldInfo("Painting scale", "Style", ("gatys", "fast", "photo", "photo-fast"),
                             "Size of the painting's brush strokes relative to the result (1: same size)."),
    "style_blend": FieldInfo("Blend of the paintings", "Style", ("gatys", "fast"),
                             "How much of each painting goes into the mix."),
    "start_size": FieldInfo("Start at size (px)", "Large pictures", OPTIMIZING,
                            "Paint small first, then refine at larger sizes up to the result's (faster)."),
    "scale_factor": FieldInfo("Size ratio between rounds", "Large pictures", OPTIMIZING,
                              "With a start size: how much larger each round is (2: twice)."),
    "scale_steps": FieldInfo("Steps per round", "Large pictures", OPTIMIZING,
                             "With a start size: steps of each round, smallest first, e.g. 200,100."),
    "tile": FieldInfo("Tile size (px)", "Large pictures", ("gatys", "fast", "model"),
                      "Work in tiles this large to save memory (0: never; empty: only when needed)."),
    "tile_overlap": FieldInfo("Tile overlap (px)", "Large pictures", ("gatys", "fast", "model"),
                              "Pixels neighbouring tiles share, to hide the seams."),
    "tile_passes": FieldInfo("Tile passes", "Large pictures", ("gatys", "fast", "model"),
                             "Passes over the tiles, the grid moved between them."),
    "content_layers": FieldInfo("Content layers", _BALANCE, OPTIMIZING,
                                "The network's layers that keep the photo's forms, e.g. relu4_2."),
    "style_layers": FieldInfo("Style layers", _BALANCE, OPTIMIZING,
                              "The network's layers whose textures are copied from the painting."),
    "style_layer_weights": FieldInfo("Style layer weights", _BALANCE, OPTIMIZING,
                                     "One weight per style layer, e.g. 1,1,1,1,1."),
    "content_weight": FieldInfo("Photo weight", _BALANCE, OPTIMIZING, "How closely the photo's forms are kept."),
    "style_weight": FieldInfo("Painting weight", _BALANCE, OPTIMIZING, "How strongly the painting's textures "
                              "are copied."),
    "tv_weight": FieldInfo("Smoothness", _BALANCE, OPTIMIZING, "Smooths out fine noise; 0 is off."),
    "gram_norm": FieldInfo("Texture statistics scaling", _BALANCE, OPTIMIZING,
                           "How the texture statistics are normalized (leave as is unless comparing papers)."),
    "init": FieldInfo("Start from", "Optimization", OPTIMIZING, "The picture the painting starts from: the "
                      "photo, noise, the painting, or the photo in the painting's colours."),
    "optimizer": FieldInfo("Optimizer", "Optimization", OPTIMIZING,
                           "L-BFGS (default) converges in fewer steps; Adam takes a learning rate."),
    "lr": FieldInfo("Learning rate (Adam)", "Optimization", OPTIMIZING, "Adam's step size."),
    "lbfgs_history": FieldInfo("L-BFGS memory", "Optimization", OPTIMIZING,
                               "Past steps L-BFGS remembers; more uses more memory."),
    "seed": FieldInfo("Random seed", "Optimization", OPTIMIZING, "Changes the noise a run starts from."),
    "photo_weight": FieldInfo("Photorealism", "Photorealistic", ("photo",),
                              "How strongly edges and textures of the photo are kept sharp and real."),
    "smooth": FieldInfo("Smoothing", "Photorealistic", ("photo-fast",),
                        "Cleans the result along the photo's edges: fast approximation, exact, or none."),
    "transform": FieldInfo("Feature transform", "Photorealistic", ("photo-fast",),
                           "How the painting's colours and textures are matched."),
    "pooling": FieldInfo("Pooling", _NETWORK, OPTIMIZING, "Average pooling gives softer, flowing strokes."),
    "padding": FieldInfo("Border padding", _NETWORK, OPTIMIZING, "Reflect avoids dark borders at the edges."),
    "precision": FieldInfo("Number precision", _NETWORK, hint="Lower precision is faster where the processor "
                           "supports it; auto picks."),
}


#: The named start images of ``init`` (anything else is an image file).
INIT_KINDS = ("content", "noise", "style", "colors")

#: The options with a fixed set of values, and those values (what a front end offers).
_CHOICES = {f.name: f.metadata["check"].choices for f in dataclasses.fields(Options)
            if "check" in f.metadata and f.metadata["check"].choices is not None}  # fmt: skip


def _validate_controls(opts: Options) -> None:
    """Colour preservation, masks, label maps and a built-in model's name: what holds for every method."""
    if opts.preserve_color in ("none", ""):
        opts.preserve_color = None
    if opts.preserve_color is not None and opts.preserve_color not in PRESERVE_COLOR:
        raise InputError(f"--preserve-color must be one of {', '.join(PRESERVE_COLOR)}, got {opts.preserve_color!r}")
    if opts.mask_colors is not None:
        for c in opts.mask_colors:
            parse_color(c)
    if opts.masks and opts.mask_map is not None:
        raise InputError("give either --mask files or one --mask-map, not both")
    if opts.mask_map is not None and not opts.mask_colors:
        raise InputError("--mask-map needs --mask-colors: the colour of each style's region, in style order")
    if opts.mask_colors and opts.mask_map is None:
        raise InputError("--mask-colors needs --mask-map (the colour-coded mask image)")
    if (opts.masks or opts.mask_map is not None) and opts.style_blend is not None:
        raise InputError("--style-blend does not apply with masks: each region takes its own style")
    if is_builtin(opts.model):
        parse_spec(opts.model)  # a bad index or weight: one line, before anything is read
    if (opts.content_seg is None) != (opts.style_seg is None):
        raise InputError("give both --content-seg and --style-seg (label maps of the content and the style image)")


def _validate_scales(opts: Options) -> None:
    """Multi-scale and tiling options (see :mod:`impasto.core.schedule`, :mod:`impasto.core.tiles`)."""
    if opts.start_size is not None and opts.start_size > opts.size:
        raise InputError(f"--start-size ({opts.start_size}) must not be larger than --size ({opts.size})")
    if opts.scale_steps is not None:
        if not opts.scale_steps:
            raise InputError("--scale-steps needs at least one number")
        sizes = scale_sizes(opts.size, opts.start_size, opts.scale_factor)
        if len(opts.scale_steps) != len(sizes):
            listing = ", ".join(str(s) for s in sizes)
            raise InputError(
                f"--scale-steps has {len(opts.scale_steps)} value(s) for {len(sizes)} scale(s) ({listing} px): "
                "give one per scale"
            )
    if opts.tile is not None and 0 < opts.tile < 64:
        raise InputError(f"--tile must be 0 (never tile) or at least 64 pixels, got {opts.tile}")
    if opts.tile and opts.tile_overlap is not None and opts.tile_overlap > opts.tile // 3:
        third = opts.tile // 3
        raise InputError(f"--tile-overlap must be at most a third of --tile ({third}), got {opts.tile_overlap}")


def validate(opts: Options) -> Options:
    """Check every option, first each field against its type and spec (made canonical: lists as tuples, paths as
    str), then how they combine, the method's own checks among them (registered by :mod:`impasto.methods`); raise
    :class:`InputError` naming the first bad one."""
    current = {f.name: getattr(opts, f.name) for f in dataclasses.fields(Options)}
    for name, value in check_fields(Options, current).items():
        setattr(opts, name, value)
    if opts.preset not in PRESETS:
        raise InputError(f"unknown preset '{opts.preset}' (choose from {', '.join(PRESETS)})")
    resolve_layers(opts.content_layers + opts.style_layers)
    if not opts.style_layers and not opts.content_layers:
        raise InputError(NO_LAYERS)
    weights, layers = opts.style_layer_weights, opts.style_layers
    if weights is not None and len(weights) != len(layers):
        raise InputError(f"--style-layer-weights has {len(weights)} values for {len(layers)} style layers")
    _validate_controls(opts)
    _METHOD_CHECKS[opts.method](opts)
    _validate_scales(opts)
    if opts.style_blend is not None:
        if not opts.style_blend:
            raise InputError("--style-blend needs one weight per style image")
        if sum(opts.style_blend) <= 0:
            raise InputError("--style-blend weights must not all be zero")
    return opts


def make_options(preset: str = "default", **overrides: Any) -> Options:
    """Options of a preset with explicit ``overrides`` (None values are ignored), validated: the overrides are
    checked against their types before anything is computed from them."""
    fields = {f.name for f in dataclasses.fields(Options)}
    unknown = set(overrides) - fields
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    explicit = check_fields(Options, {k: v for k, v in overrides.items() if v is not None})
    preset = check_fields(Options, {"preset": preset})["preset"]
    values = {**preset_values(preset), **explicit, "preset": preset}
    if "start_size" not in explicit and (values.get("start_size") or 0) >= values.get("size", Options.size):
        values["start_size"] = None  # a preset's coarsest scale at or above the picture's size: one scale
    if "style_layers" in explicit and "style_layer_weights" not in explicit:
        values["style_layer_weights"] = None  # a preset's per-layer weights belong to the preset's layers
    if values.get("model") is not None and overrides.get("method") is None:
        values["method"] = "model"  # a model file names the method
    return validate(Options(**values))
