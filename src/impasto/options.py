"""All options of a run in one dataclass, the named presets, and their validation.

A preset (:mod:`impasto.presets`) is a set of option values; anything given explicitly overrides it.
``Options.to_dict()`` is what outputs record so that a result can be reproduced.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .core.color import PRESERVE_COLOR
from .core.losses import GRAM_NORMS
from .core.schedule import scale_sizes, schedule
from .core.vgg import resolve_layers
from .errors import InputError
from .io.images import MAX_SIZE
from .io.masks import parse_color
from .presets import PRESETS, preset_values


@dataclass
class Options:
    """Every setting of a style transfer run. See :data:`PRESETS` for named starting points."""

    preset: str = "default"
    method: str = "gatys"  # gatys, fast (AdaIN), model (a trained network), photo (Luan), photo-fast (Li)
    model: str | None = None  # model file of a trained network (method "model"; see impasto train)
    size: int = 512  # longest side of the result, pixels
    style_scale: float = 1.0  # style image size relative to the result's size
    style_blend: tuple[float, ...] | None = None  # weights of several style images
    strength: float = 1.0  # style strength 0..1: AdaIN's alpha (fast); scales the style/content ratio (gatys)
    preserve_color: str | None = None  # None | luminance | histogram (Gatys et al. 2017)
    masks: tuple[str, ...] | None = None  # one grayscale mask file per style image: where that style goes
    mask_map: str | None = None  # or one colour-coded mask image ...
    mask_colors: tuple[str, ...] | None = None  # ... with the colour of each style's region, in style order
    content_layers: tuple[str, ...] = ("relu4_2",)
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    style_layer_weights: tuple[float, ...] | None = None
    content_weight: float = 1.0  # alpha
    style_weight: float = 5.0  # beta (losses normalized by their targets: see docs/guides/methods.md)
    tv_weight: float = 0.0
    photo_weight: float = 0.0  # photorealism regularizer (matting Laplacian, Luan et al. 2017); photo method
    content_seg: str | None = None  # label map of the content image (photo methods: regions matched by label)
    style_seg: str | None = None  # label map of the style image
    smooth: str = "guided"  # photo-fast: Li et al.'s smoothing: guided-filter approximation, exact solve, or none
    transform: str = "adain"  # photo-fast feature transform at relu4_1: adain or wct (whitening and colouring)
    temporal_weight: float = 0.0  # video, optimization methods: Ruder et al.'s temporal loss (see impasto.video)
    gram_norm: str = "positions"  # positions | elements | none
    normalize_losses: bool = True  # divide each loss by its target's mean square
    style_layer_norm: str = "none"  # none | elements (the article divides by C*H*W per layer)
    init: str = "content"  # content | noise | style | colors (content recoloured to the style) | image file
    optimizer: str = "lbfgs"  # lbfgs | adam
    lr: float = 0.02  # Adam learning rate (pixels in [0, 1])
    steps: int = 300  # loss evaluations (L-BFGS) or Adam steps
    lbfgs_history: int = 50  # L-BFGS memory (pairs kept); each pair costs 2 image-sized fp32 vectors
    start_size: int | None = None  # multi-scale: longest side of the coarsest scale (None: single scale)
    scale_factor: float = 2.0  # multi-scale: size ratio between consecutive scales
    scale_steps: tuple[int, ...] | None = None  # multi-scale: steps per scale, coarse to fine (None: share steps)
    tile: int | None = None  # tile side in pixels: None picks tiles when memory requires, 0 never tiles
    tile_overlap: int | None = None  # pixels shared by neighbouring tiles (None: tile // 8)
    tile_passes: int = 2  # passes over the tiles, grid shifted between passes
    pooling: str = "max"
    padding: str = "zeros"
    weights: str | None = None  # path to a user VGG-19 state dict
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 | mixed (fp32 forward, bf16 gradients)
    seed: int = 0

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


#: The named start images of ``init`` (anything else is an image file).
INIT_KINDS = ("content", "noise", "style", "colors")

_CHOICES = {
    "method": ("gatys", "fast", "model", "photo", "photo-fast"),
    "smooth": ("exact", "guided", "none"),
    "transform": ("wct", "adain"),
    "gram_norm": GRAM_NORMS,
    "style_layer_norm": ("none", "elements"),
    "optimizer": ("lbfgs", "adam"),
    "pooling": ("max", "avg"),
    "padding": ("zeros", "reflect"),
    "precision": ("auto", "fp32", "bf16", "fp16", "mixed"),
}


def _check_range(name: str, value: float, lo: float, hi: float | None = None, lo_open: bool = False) -> None:
    bad = not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
    bad = bad or (value <= lo if lo_open else value < lo) or (hi is not None and value > hi)
    if bad:
        bound = f"> {lo}" if lo_open else f">= {lo}"
        bound += f" and <= {hi}" if hi is not None else ""
        raise InputError(f"--{name.replace('_', '-')} must be a number {bound}, got {value!r}")


def _validate_controls(opts: Options) -> None:
    """Strength, colour preservation, masks, and what the fast method supports."""
    _check_range("strength", opts.strength, 0.0, 1.0)
    if opts.preserve_color in ("none", ""):
        opts.preserve_color = None
    if opts.preserve_color is not None and opts.preserve_color not in PRESERVE_COLOR:
        raise InputError(f"--preserve-color must be one of {', '.join(PRESERVE_COLOR)}, got {opts.preserve_color!r}")
    if opts.masks is not None:
        opts.masks = (opts.masks,) if isinstance(opts.masks, str) else tuple(str(m) for m in opts.masks)
    if opts.mask_colors is not None:
        opts.mask_colors = (opts.mask_colors,) if isinstance(opts.mask_colors, str) else tuple(opts.mask_colors)
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
    if opts.method == "model" and not opts.model:
        raise InputError("--method model needs a model file: --model FILE (made by impasto train)")
    if opts.model is not None and opts.method != "model":
        raise InputError(f"--model cannot be combined with --method {opts.method} (the model is the method)")
    if opts.method == "model" and opts.preserve_color == "histogram":
        raise InputError("--preserve-color histogram recolours style images; a trained model has none: use luminance")
    if opts.method == "model" and opts.style_blend is not None:
        raise InputError("--style-blend does not apply to --model: a trained network has one style")
    if opts.method in ("fast", "photo-fast"):
        if opts.weights is not None:
            raise InputError(f"--weights cannot be used with --method {opts.method} (its decoder was trained on the "
                             "bundled VGG)")  # fmt: skip
        if opts.pooling != "max":
            raise InputError(f"--pooling avg cannot be used with --method {opts.method}: its encoder uses max pooling")
    _validate_photo(opts)


def _validate_photo(opts: Options) -> None:
    """Label maps and the photorealism regularizer: photo methods only, both maps or none, no other masks."""
    photo = opts.method in ("photo", "photo-fast")
    if (opts.content_seg is None) != (opts.style_seg is None):
        raise InputError("give both --content-seg and --style-seg (label maps of the content and the style image)")
    if opts.content_seg is not None:
        if not photo:
            raise InputError("--content-seg/--style-seg need --method photo or photo-fast (use --mask for gatys/fast)")
        if opts.masks or opts.mask_map is not None:
            raise InputError("label maps (--content-seg/--style-seg) and --mask/--mask-map cannot be combined")
    if photo and (opts.masks or opts.mask_map is not None):
        raise InputError(f"--method {opts.method} takes label maps (--content-seg/--style-seg), not --mask/--mask-map")
    if photo and opts.tile:
        raise InputError(f"--method {opts.method} does not run in tiles (the matting Laplacian couples the whole "
                         "picture); use --tile 0, --start-size or a smaller --size")  # fmt: skip
    if photo and opts.style_blend is not None:
        raise InputError(f"--method {opts.method} takes one style image (no --style-blend)")
    if opts.photo_weight > 0 and opts.method != "photo":
        raise InputError("--photo-weight needs --method photo (the optimization with the photorealism regularizer)")


def _whole(name: str, value: Any, lo: int, hi: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise InputError(f"--{name.replace('_', '-')} must be a whole number from {lo} to {hi}, got {value!r}")


def _validate_scales(opts: Options) -> None:
    """Multi-scale and tiling options (see :mod:`impasto.core.schedule`, :mod:`impasto.core.tiles`)."""
    if opts.start_size is not None:
        _whole("start_size", opts.start_size, 32, MAX_SIZE)
        if opts.start_size > opts.size:
            raise InputError(f"--start-size ({opts.start_size}) must not be larger than --size ({opts.size})")
    _check_range("scale_factor", opts.scale_factor, 1.0, 4.0, lo_open=True)
    if opts.scale_steps is not None:
        opts.scale_steps = (opts.scale_steps,) if isinstance(opts.scale_steps, int) else tuple(opts.scale_steps)
        if not opts.scale_steps:
            raise InputError("--scale-steps needs at least one number")
        for k in opts.scale_steps:
            _whole("scale_steps", k, 0, 100_000)
        sizes = scale_sizes(opts.size, opts.start_size, opts.scale_factor)
        if len(opts.scale_steps) != len(sizes):
            listing = ", ".join(str(s) for s in sizes)
            raise InputError(
                f"--scale-steps has {len(opts.scale_steps)} value(s) for {len(sizes)} scale(s) ({listing} px): "
                "give one per scale"
            )
    if opts.tile is not None:
        _whole("tile", opts.tile, 0, MAX_SIZE)
        if 0 < opts.tile < 64:
            raise InputError(f"--tile must be 0 (never tile) or at least 64 pixels, got {opts.tile}")
    if opts.tile_overlap is not None:
        _whole("tile_overlap", opts.tile_overlap, 0, MAX_SIZE)
        if opts.tile and opts.tile_overlap > opts.tile // 3:
            third = opts.tile // 3
            raise InputError(f"--tile-overlap must be at most a third of --tile ({third}), got {opts.tile_overlap}")
    _whole("tile_passes", opts.tile_passes, 1, 8)


def validate(opts: Options) -> Options:
    """Check every option; raise :class:`InputError` naming the first bad one."""
    for name, choices in _CHOICES.items():
        value = getattr(opts, name)
        if value not in choices:
            raise InputError(f"--{name.replace('_', '-')} must be one of {', '.join(choices)}, got {value!r}")
    if opts.preset not in PRESETS:
        raise InputError(f"unknown preset '{opts.preset}' (choose from {', '.join(PRESETS)})")
    if not isinstance(opts.size, int) or isinstance(opts.size, bool) or not 16 <= opts.size <= MAX_SIZE:
        raise InputError(f"--size must be a whole number of pixels from 16 to {MAX_SIZE}, got {opts.size!r}")
    if not isinstance(opts.steps, int) or isinstance(opts.steps, bool) or not 0 <= opts.steps <= 100_000:
        raise InputError(f"--steps must be a whole number from 0 to 100000, got {opts.steps!r}")
    if (
        not isinstance(opts.lbfgs_history, int)
        or isinstance(opts.lbfgs_history, bool)
        or not 1 <= opts.lbfgs_history <= 1000
    ):
        raise InputError(f"--lbfgs-history must be a whole number from 1 to 1000, got {opts.lbfgs_history!r}")
    if not isinstance(opts.seed, int) or isinstance(opts.seed, bool) or not 0 <= opts.seed < 2**63:
        raise InputError(f"--seed must be a whole number >= 0, got {opts.seed!r}")
    _check_range("style_scale", opts.style_scale, 0.0, 8.0, lo_open=True)
    _check_range("content_weight", opts.content_weight, 0.0)
    _check_range("style_weight", opts.style_weight, 0.0)
    _check_range("tv_weight", opts.tv_weight, 0.0)
    _check_range("photo_weight", opts.photo_weight, 0.0)
    _check_range("temporal", opts.temporal_weight, 0.0)
    _check_range("lr", opts.lr, 0.0, 10.0, lo_open=True)
    opts.content_layers = tuple(opts.content_layers)
    opts.style_layers = tuple(opts.style_layers)
    resolve_layers(opts.content_layers + opts.style_layers)
    if not opts.style_layers and not opts.content_layers:
        raise InputError("at least one content or style layer is needed")
    if opts.style_layer_weights is not None:
        opts.style_layer_weights = tuple(float(w) for w in opts.style_layer_weights)
        if len(opts.style_layer_weights) != len(opts.style_layers):
            raise InputError(
                f"--style-layer-weights has {len(opts.style_layer_weights)} values "
                f"for {len(opts.style_layers)} style layers"
            )
        for w in opts.style_layer_weights:
            _check_range("style_layer_weights", w, 0.0)
    _validate_controls(opts)
    _validate_scales(opts)
    if opts.style_blend is not None:
        opts.style_blend = tuple(float(w) for w in opts.style_blend)
        for w in opts.style_blend:
            _check_range("style_blend", w, 0.0)
        if sum(opts.style_blend) <= 0:
            raise InputError("--style-blend weights must not all be zero")
    return opts


def make_options(preset: str = "default", **overrides: Any) -> Options:
    """Options of a preset with explicit ``overrides`` (None values are ignored), validated."""
    fields = {f.name for f in dataclasses.fields(Options)}
    unknown = set(overrides) - fields
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    explicit = {k: v for k, v in overrides.items() if v is not None}
    values = {**preset_values(preset), **explicit, "preset": preset}
    if "start_size" not in explicit and (values.get("start_size") or 0) >= values.get("size", Options.size):
        values["start_size"] = None  # a preset's coarsest scale at or above the picture's size: one scale
    if values.get("model") is not None and overrides.get("method") is None:
        values["method"] = "model"  # a model file names the method
    return validate(Options(**values))
