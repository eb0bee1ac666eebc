"""The option schema: how every option of :class:`~impasto.options.Options` is spelled and explained, and what the
front ends build from it.

An option's type, default, bounds and choices are its :class:`~impasto.options.Options` field (with its
:func:`~impasto.core.checks.option` spec); its label, hint, group for people and the methods it applies to are its
:data:`~impasto.options.FIELD_INFO` entry; its flags, help and command-line section are its :data:`FLAGS` entry
here. From these three, and nothing else, come the command line's option arguments (:func:`add_option_arguments`),
the list of options a web page offers (:func:`option_fields`, ``GET /api/options``) and the parsing of a form's
fields (:func:`options_from_form`), so that both front ends accept the same values with the same messages.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from os import PathLike
from typing import Any

from .core.color import PRESERVE_COLOR
from .errors import InputError
from .options import FIELD_INFO, GROUPS, FieldInfo, Options, make_options
from .presets import PRESETS


@dataclass(frozen=True)
class Flag:
    """How the command line spells an option: its flags in the order ``--help`` lists them (front ends name it by
    the longest), ``help``, the ``section`` of ``--help`` it is listed under (None: with the general options), a
    ``metavar``, and whether it is given once per value (``repeat``: ``--mask A --mask B``)."""

    help: str | None = None
    section: str | None = None
    flags: tuple[str, ...] = ()
    metavar: str | None = None
    repeat: bool = False


_SIZE, _ART, _PHOTO = "size", "artistic controls (both methods)", "photorealistic transfer (--method photo, photo-fast)"
_LOSSES, _OPT, _NET = "losses", "optimization", "network"

#: The command line's spelling of every option a front end offers, in the order of ``impasto --help``.
FLAGS: dict[str, Flag] = {
    "preset": Flag("starting set of options"),
    "method": Flag("gatys: optimization (default); fast: AdaIN, ~1 s; model: a trained network (--model); "
                   "photo: photorealistic optimization (Luan et al.; --preset photo); photo-fast: photorealistic "
                   "in seconds (Li et al.)"),
    "model": Flag("stylize with a network trained by 'impasto train' (no style image), or a built-in style: "
                  "builtin:19, builtin:3:0.5,12:0.5 (see: impasto styles PHOTO)", metavar="FILE"),
    "size": Flag("longest side of the result in pixels (default 512)", _SIZE, ("-s", "--size")),
    "style_scale": Flag("style image size relative to the result (default 1)", _SIZE),
    "style_blend": Flag("weights of the style images, e.g. 0.7,0.3", _SIZE),
    "start_size": Flag("multi-scale: coarsest scale's longest side", _SIZE, metavar="PX"),
    "scale_factor": Flag("multi-scale: size ratio between scales (default 2)", _SIZE, metavar="F"),
    "scale_steps": Flag("multi-scale: steps per scale, coarse to fine (default: --steps shared so that each scale "
                        "takes about the same time)", _SIZE, metavar="N,N,.."),
    "tile": Flag("process in tiles of at most PX pixels (0: never; default: only when memory requires)", _SIZE,
                 metavar="PX"),
    "tile_overlap": Flag("pixels shared by neighbouring tiles (default 1/8)", _SIZE, metavar="PX"),
    "tile_passes": Flag("tile passes, grid moved between them (default 2)", _SIZE, metavar="N"),
    "strength": Flag("style strength 0..1 (default 1); fast: AdaIN's alpha, gatys: each 0.25 less divides the "
                     "style/content weight ratio by 10; 0 keeps the content", _ART),
    "preserve_color": Flag("keep the content's colours: luminance-only transfer, or style recoloured to the "
                           "content", _ART),
    "masks": Flag("region of one style (white: that style), one per style in order; content outside every mask "
                  "stays unstyled", _ART, ("--mask",), "FILE", repeat=True),
    "mask_map": Flag("one colour-coded mask image instead of --mask files", _ART, metavar="FILE"),
    "mask_colors": Flag("colour of each style's region in --mask-map, in style order (names or #rrggbb); other "
                        "colours stay unstyled", _ART, metavar="C1,C2"),
    "content_seg": Flag("label map of the content image (colour-coded PNG in the paper's palette, or an integer "
                        "label PNG); regions are matched by label", _PHOTO, metavar="FILE"),
    "style_seg": Flag("label map of the style image (same kind as --content-seg)", _PHOTO, metavar="FILE"),
    "photo_weight": Flag("photorealism regularizer weight (matting Laplacian; --preset photo sets it)", _PHOTO,
                         metavar="W"),
    "smooth": Flag("photo-fast: Li et al.'s smoothing: its guided-filter approximation (default, fast), solved "
                   "exactly (slower), or none", _PHOTO),
    "transform": Flag("photo-fast feature transform (default adain)", _PHOTO),
    "content_layers": Flag("e.g. relu4_2 (tutorial aliases conv_N accepted)", _LOSSES),
    "style_layers": Flag("e.g. relu1_1,relu2_1,relu3_1,relu4_1,relu5_1", _LOSSES),
    "style_layer_weights": Flag("one weight per style layer", _LOSSES),
    "content_weight": Flag("content loss weight (alpha)", _LOSSES, ("--content-weight", "--alpha")),
    "style_weight": Flag("style loss weight (beta)", _LOSSES, ("--style-weight", "--beta")),
    "tv_weight": Flag("total-variation (smoothness) weight", _LOSSES),
    "gram_norm": Flag("Gram matrix normalization", _LOSSES),
    "init": Flag("content, noise, style, colors (the content recoloured to the style), or an image file", _OPT),
    "optimizer": Flag(None, _OPT),
    "lr": Flag("Adam learning rate", _OPT),
    "steps": Flag("loss evaluations (L-BFGS) or Adam steps", _OPT),
    "lbfgs_history": Flag("L-BFGS memory size (default 50; tutorial 100)", _OPT),
    "seed": Flag("random seed (default 0)", _OPT),
    "weights": Flag("your own VGG-19 state dict (torchvision or Caffe layout)", _NET),
    "pooling": Flag(None, _NET),
    "padding": Flag(None, _NET),
    "device": Flag("auto (default), cpu, cuda, cuda:N, mps", _NET),
    "precision": Flag("auto: bf16 where supported; mixed: fp32 loss, bf16 gradients (the tutorial preset's)", _NET),
}  # fmt: skip

#: The options the command line sets (every :data:`FLAGS` entry but ``preset``, which names where they start).
OPTION_NAMES: tuple[str, ...] = tuple(name for name in FLAGS if name != "preset")


def flags(name: str) -> tuple[str, ...]:
    """Every flag of an option, as ``--help`` lists them (``-s``, ``--size``)."""
    return FLAGS[name].flags or (f"--{name.replace('_', '-')}",)


def flag(name: str) -> str:
    """The flag an option is named by, its longest: ``--size``, ``--content-weight``."""
    return max(flags(name), key=len)


def choices(name: str) -> tuple[Any, ...] | None:
    """The values an option accepts when they are a fixed set (its field's spec; presets and colour preservation
    from where they are defined)."""
    if name == "preset":
        return tuple(PRESETS)
    if name == "preserve_color":
        return PRESERVE_COLOR
    spec = _fields()[name].metadata.get("check")
    return tuple(spec.choices) if spec is not None and spec.choices else None


def words(text: str) -> tuple[str, ...]:
    """``relu1_1,relu2_1`` (commas or spaces) as a tuple of its parts."""
    return tuple(p for p in (s.strip() for s in text.replace(" ", ",").split(",")) if p)


def numbers(text: str) -> tuple[float, ...]:
    """``0.7,0.3`` as a tuple of floats; :class:`argparse.ArgumentTypeError` otherwise."""
    try:
        return tuple(float(p) for p in text.replace(" ", ",").split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from None


def whole_numbers(text: str) -> tuple[int, ...]:
    """``200,100`` as a tuple of ints; :class:`argparse.ArgumentTypeError` otherwise."""
    try:
        return tuple(int(p) for p in text.replace(" ", ",").split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got '{text}'") from None


@lru_cache(maxsize=1)
def _fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(Options)}


@lru_cache(maxsize=1)
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(Options)


def parse_type(name: str) -> Callable[[str], Any] | None:
    """How one command-line value of an option is read, from its field's type: ``int``, ``float``, a list of
    numbers or words, or None (text, kept as given)."""
    tp = _hints()[name]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(t for t in typing.get_args(tp) if t is not type(None))
    if tp in (int, float):
        return tp
    if typing.get_origin(tp) is tuple and not FLAGS[name].repeat:
        item = typing.get_args(tp)[0]
        return {float: numbers, int: whole_numbers}.get(item, words)
    return None


def add_option_arguments(
    parser: argparse.ArgumentParser, names: Collection[str] | None = None, helps: Mapping[str, str] | None = None,
    then: Mapping[str, Callable[[argparse._ArgumentGroup], Any]] | None = None,
) -> dict[str, argparse._ArgumentGroup]:  # fmt: skip
    """Add the options (all of :data:`FLAGS`, or ``names``) to ``parser`` as its arguments, each in its section
    (an argument group, made in :data:`FLAGS` order), with the help of :data:`FLAGS` or of ``helps`` (option name
    -> help, where a command says it differently); ``then`` (section -> function of its group) adds a command's
    own arguments right after a section's options. Returns the groups by title. Every option defaults to None
    (not given), ``preset`` to ``default``."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    chosen = [name for name in FLAGS if names is None or name in names]
    for i, name in enumerate(chosen):
        spec = FLAGS[name]
        target: Any = parser
        if spec.section is not None:
            if spec.section not in groups:
                groups[spec.section] = parser.add_argument_group(spec.section)
            target = groups[spec.section]
        kwargs: dict[str, Any] = {"dest": name, "help": (helps or {}).get(name, spec.help)}
        if spec.metavar:
            kwargs["metavar"] = spec.metavar
        if name == "preset":
            kwargs["default"] = "default"
        if spec.repeat:
            kwargs["action"] = "append"
        if choices(name):
            kwargs["choices"] = list(choices(name) or ())
        elif parse_type(name) is not None:
            kwargs["type"] = parse_type(name)
        target.add_argument(*flags(name), **kwargs)
        last = i + 1 == len(chosen) or FLAGS[chosen[i + 1]].section != spec.section
        if last and spec.section in (then or {}):
            then[spec.section](target)  # type: ignore[index]
    return groups


def options_from_args(args: argparse.Namespace) -> Options:
    """Options of the chosen preset overridden by the parsed arguments given (those left at None are not)."""
    return make_options(getattr(args, "preset", "default"), **{k: getattr(args, k, None) for k in OPTION_NAMES})


def option_fields(names: Collection[str]) -> list[dict[str, Any]]:
    """The options ``names`` as a front end presents them: name, flag, help, kind (int, float, choice, list,
    text), choices, default, the command line's section (``cli_group``) and, from :data:`FIELD_INFO`, a ``label``
    and ``hint`` for people, the ``group`` and the ``methods`` it applies to (None: all); in :data:`GROUPS` order,
    then :data:`FIELD_INFO` order."""
    defaults = Options().to_dict()
    out = []
    for name in FLAGS:
        if name not in names:
            continue
        spec, parse = FLAGS[name], parse_type(name)
        info = FIELD_INFO.get(name) or FieldInfo(flag(name).lstrip("-").replace("-", " ").capitalize(), "Other")
        if choices(name):
            kind = "choice"
        elif parse in (int, float):
            kind = parse.__name__  # type: ignore[union-attr]
        elif parse is None:
            kind = "text"
        else:
            kind = "list"
        out.append({
            "name": name, "flag": flag(name), "help": spec.help or "", "kind": kind,
            "choices": list(choices(name) or ()) or None, "default": defaults.get(name),
            "cli_group": spec.section or "options", "group": info.group, "label": info.label, "hint": info.hint,
            "methods": list(info.methods) if info.methods else None,
        })  # fmt: skip
    order, listed = {g: i for i, g in enumerate(GROUPS)}, list(FIELD_INFO)
    return sorted(out, key=lambda f: (order.get(f["group"], len(order)),
                                      listed.index(f["name"]) if f["name"] in listed else len(listed)))  # fmt: skip


class _FormParser(argparse.ArgumentParser):
    """argparse whose errors raise :class:`InputError` with argparse's own one line (the command line's)."""

    def error(self, message: str) -> typing.NoReturn:
        raise InputError(message)


def field_name(raw: str) -> str:
    """A form field's option name: ``--preserve-color``, ``preserve-color`` and ``preserve_color`` alike."""
    return raw.lstrip("-").replace("-", "_")


def options_from_form(fields: Mapping[str, str], files: Mapping[str, str | PathLike] | None = None,
                      accepted: Collection[str] | None = None) -> Options:  # fmt: skip
    """Options from form fields named like the command line's flags (``size`` or ``--size``; ``preserve-color``
    or ``preserve_color``; empty values are not given), read and validated exactly as the command line's are:
    the same one-line messages. ``files`` are options given as server paths (option name -> path); ``accepted``
    are the field names a form may carry (default: every option), another one is refused naming them."""
    accepted = set(FLAGS) if accepted is None else set(accepted)
    argv: list[str] = []
    for name, path in (files or {}).items():
        argv += [flag(name), str(path)]
    for raw, value in fields.items():
        name = field_name(raw)
        if name not in accepted or name not in FLAGS:
            known = ", ".join(sorted(accepted))
            raise InputError(f"unknown field '{raw[:40]}' (options are named like the command line's flags: {known})")
        if value.strip() != "":
            argv += [flag(name), value]
    parser = _FormParser(add_help=False, allow_abbrev=False)
    add_option_arguments(parser)
    return options_from_args(parser.parse_args(argv))
