"""Arguments of the command line and the Python API: empty layer lists (an empty list leaves its loss out, both
empty are refused in one line), and every argument of ``stylize``, ``train`` and ``stylize_video`` checked before
any work, a wrong one refused with an :class:`InputError` naming it."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import impasto
from impasto import api, video
from impasto.cli import main
from impasto.core.checks import Spec
from impasto.errors import InputError
from impasto.io.video import open_source
from impasto.options import PRESETS, Options, make_options
from impasto.training import TrainOptions, make_train_options
from impasto.video import VideoSettings

from .conftest import TINY

FAST = ["--size", "32", "--steps", "3", "--quiet"]


# -- empty layer lists ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("flag", "kept"), [("--content-layers", "style"), ("--style-layers", "content")])
def test_an_empty_layer_list_leaves_its_loss_out_in_the_cli(tmp_path, content_path, style_path, flag, kept):
    out, hist = tmp_path / "r.png", tmp_path / "h.json"
    code = main([str(content_path), str(style_path), "-o", str(out), flag, "", "--history", str(hist), *FAST])
    assert code == 0 and out.exists()
    rows = json.loads(hist.read_text())
    left_out = {"style": "content", "content": "style"}[kept]
    assert rows and all(kept in r and left_out not in r for r in rows)


@pytest.mark.parametrize("layers", [{"content_layers": ()}, {"style_layers": []}])
def test_an_empty_layer_list_leaves_its_loss_out_in_the_api(content64, style64, layers):
    runner = api.Runner(make_options(size=32, steps=2, **layers))
    prepared = api.prepare(content64, style64, runner.options)
    result = api.run(prepared, runner=runner)
    assert result.shape[-2:] == prepared.content.shape[-2:]
    left_out = "content" if "content_layers" in layers else "style"
    assert runner.history and all(left_out not in row for row in runner.history)


def test_both_layer_lists_empty_are_refused_in_one_line(tmp_path, content_path, style_path, capsys):
    out = tmp_path / "r.png"
    code = main([str(content_path), str(style_path), "-o", str(out), "--content-layers", "", "--style-layers", " , ",
                 *FAST])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err.count("\n") == 1 and "--content-layers and --style-layers are both empty" in err
    with pytest.raises(InputError, match="both empty"):
        make_options(content_layers=[], style_layers=())
    with pytest.raises(InputError, match="both empty"):
        make_train_options(content_layers=(), style_layers=[])
    code = main(["train", str(style_path), "-o", str(tmp_path / "m.pt"), "--content-layers", "", "--style-layers", ""])
    assert code == 2 and "both empty" in capsys.readouterr().err and not (tmp_path / "m.pt").exists()


def test_style_layer_weights_follow_the_style_layers():
    # The photo preset's per-layer weights belong to its five layers: other layers take equal weights...
    assert make_options("photo", style_layers=()).style_layer_weights is None
    assert make_options("photo", style_layers=("relu1_1",)).style_layer_weights is None
    assert make_options("photo").style_layer_weights == (10.0, 3.0, 1.0, 0.3, 0.1)
    # ... and weights given with them must be one per layer: none for no style layers.
    assert make_options(style_layers=(), style_layer_weights=()).style_layer_weights == ()
    with pytest.raises(InputError, match="--style-layer-weights has 1 values for 0 style layers"):
        make_options(style_layers=(), style_layer_weights=(1.0,))
    with pytest.raises(InputError, match="--style-blend needs one weight per style image"):
        make_options(style_blend=())


@pytest.mark.parametrize("layers", [{"content_layers": ()}, {"style_layers": ()}])
def test_training_without_content_or_style_layers(tmp_path, photos, style_path, layers):
    result = api.train(style_path, tmp_path / "m.pt", data=photos, steps=1, warn=lambda m: None, **TINY, **layers)
    left_out = "content" if "content_layers" in layers else "style"
    assert result.model.exists()
    kept = "style" if left_out == "content" else "content"
    assert result.history[0][left_out] == 0.0 and result.history[0][kept] > 0


def test_video_without_content_layers(tmp_path, content_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    photo = Image.open(content_path).convert("RGB").resize((48, 32))
    for i in range(2):
        photo.rotate(i, translate=(i, 0)).save(frames / f"f{i:03d}.png")
    out = tmp_path / "out"
    done = video.stylize_video(frames, content_path, out, size=32, steps=2, content_layers=(), warn=lambda m: None)
    assert done.frames == 2 and len(list(out.glob("*.png"))) == 2
    assert np.asarray(Image.open(sorted(out.glob("*.png"))[0])).shape[1:] == (32, 3)


# -- every argument of the Python API checked before any work ------------------------------------------------
class Reached(Exception):
    """The work itself was reached (the runner, the trainer, the video loop)."""


@contextmanager
def no_work() -> Iterator[None]:
    """The API with its work replaced by :class:`Reached`: an argument refused before it never gets there."""
    with (
        patch.object(api, "run", side_effect=Reached),
        patch.object(api, "Trainer", _NoTrainer),
        patch.object(video.VideoJob, "run", side_effect=Reached),
    ):
        yield


class _NoTrainer:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise Reached

    @classmethod
    def resume(cls, *args: Any, **kwargs: Any) -> None:
        raise Reached


#: Values no argument of the API takes (except the images, which take arrays and tensors).
_JUNK = st.sampled_from([object(), {"a": 1}, b"bytes", 1j, {1, 2}, torch.zeros(2), np.zeros(2)])
_NOT_A_FUNCTION = st.one_of(st.integers(), st.text(max_size=4), st.lists(st.integers(), max_size=2), _JUNK)


def _spec(cls: type, name: str) -> Spec:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    return fields[name].metadata.get("check", Spec()) if name in fields else Spec()


def wrong(tp: Any, spec: Spec, item: bool = False) -> st.SearchStrategy:
    """Values of the wrong type for ``tp``, or out of ``spec``'s bounds or choices (never None: it means "not
    given" for an option); ``item``: as an item of a list (no lists, which would make a valid list of lists)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    lists = [] if item else [st.lists(st.integers(), min_size=1, max_size=2)]
    if origin is typing.Union or origin is types.UnionType:
        return st.one_of(*(wrong(a, spec, item) for a in args if a is not type(None)))
    if origin is tuple:
        one = wrong(args[0], spec, item=True)
        return st.one_of(one, st.lists(one, min_size=1, max_size=3), _JUNK)
    if tp is bool:
        return st.one_of(st.integers(0, 1), st.text(max_size=3), _JUNK)
    if tp is int:
        out = [st.text(max_size=4), st.floats(), st.booleans(), *lists, _JUNK]
        if spec.lo is not None:
            out.append(st.integers(max_value=int(spec.lo) - 1))
        if spec.hi is not None:
            out.append(st.integers(min_value=int(spec.hi) + 1))
        return st.one_of(*out)
    if tp is float:
        out = [st.text(max_size=4), st.booleans(), *lists, _JUNK, st.sampled_from([math.nan, math.inf, -math.inf])]
        if spec.lo is not None:
            out.append(st.floats(max_value=spec.lo, exclude_max=not spec.lo_open, allow_nan=False))
        if spec.hi is not None:
            out.append(st.floats(min_value=spec.hi, exclude_min=True, allow_nan=False))
        return st.one_of(*out)
    if tp is str:
        out = [st.integers(), st.floats(), st.booleans(), *lists, _JUNK]
        if spec.choices:
            out.append(st.text(max_size=6).filter(lambda s: s not in spec.choices))
        return st.one_of(*out)
    raise AssertionError(f"no wrong values for {tp}")


def _field_wrongs(cls: type) -> dict[str, st.SearchStrategy]:
    hints = typing.get_type_hints(cls)
    return {f.name: wrong(hints[f.name], _spec(cls, f.name)) for f in dataclasses.fields(cls)}


_PATHLIKE_WRONG = st.one_of(st.integers(), st.floats(), st.lists(st.integers(), max_size=2), _JUNK)
_IMAGE_WRONG = st.one_of(st.integers(), st.floats(), st.booleans(), st.lists(st.integers(), min_size=1, max_size=2),
                         st.sampled_from([object(), {"a": 1}, torch.zeros(3), torch.zeros(2, 3, 8, 8),
                                          np.zeros((4,)), torch.full((3, 8, 8), 2.0)]))  # fmt: skip
_MINUTES = Spec(lo=0.0, lo_open=True)

#: Each parameter of each entry point, with its wrong values: the functions' own parameters, and every field
#: of the options dataclasses they take as keyword arguments.
WRONG = {
    "stylize": {
        "content": _IMAGE_WRONG, "style": _IMAGE_WRONG, "preset": wrong(str, Spec(choices=("default",))),
        "callback": _NOT_A_FUNCTION, **_field_wrongs(Options),
    },
    "train": {
        "style": _PATHLIKE_WRONG, "output": _PATHLIKE_WRONG, "data": _PATHLIKE_WRONG, "resume": _PATHLIKE_WRONG,
        "checkpoint": _PATHLIKE_WRONG, "samples": _PATHLIKE_WRONG, "history": _PATHLIKE_WRONG,
        "callback": _NOT_A_FUNCTION, "warn": _NOT_A_FUNCTION, "max_minutes": wrong(float, _MINUTES),
        **_field_wrongs(TrainOptions),
    },
    "stylize_video": {
        "source": _PATHLIKE_WRONG, "style": _IMAGE_WRONG, "output": _PATHLIKE_WRONG,
        "preset": wrong(str, Spec(choices=("default",))), "on_frame": _NOT_A_FUNCTION, "callback": _NOT_A_FUNCTION,
        "warn": _NOT_A_FUNCTION, **_field_wrongs(VideoSettings), **_field_wrongs(Options),
    },
}  # fmt: skip
#: How messages name a parameter whose option has another name on the command line.
FLAGS = {"temporal_weight": "--temporal", "max_minutes": "--minutes"}


def test_every_parameter_of_the_api_has_wrong_values():
    """The properties below cover whole signatures: a new parameter or option field must be added to them."""
    for fn, options in [(impasto.stylize, Options), (api.train, TrainOptions), (video.stylize_video, Options)]:
        own = set(inspect.signature(fn).parameters) - {"options"}
        settings = {f.name for f in dataclasses.fields(VideoSettings)} if fn is video.stylize_video else set()
        assert own - settings <= set(WRONG[fn.__name__]), fn.__name__
        assert {f.name for f in dataclasses.fields(options)} <= set(WRONG[fn.__name__])
        assert settings <= set(WRONG[fn.__name__])


@pytest.fixture(scope="module")
def video_inputs(tmp_path_factory, content_path) -> tuple[Path, Path]:
    """A folder of two small frames, and an output folder beside it."""
    root = tmp_path_factory.mktemp("api_video")
    (root / "frames").mkdir()
    photo = Image.open(content_path).convert("RGB").resize((40, 28))
    for i in range(2):
        photo.save(root / "frames" / f"f{i}.png")
    return root / "frames", root / "out"


def call(fn: str, values: dict[str, Any], paths: dict[str, Any]) -> None:
    """``fn`` with valid defaults for its required arguments, overridden by ``values``."""
    if fn == "stylize":
        args = {"content": torch.rand(3, 24, 20), "style": torch.rand(3, 20, 24), "size": 24, **values}
        impasto.stylize(args.pop("content"), args.pop("style"), **args)
    elif fn == "train":
        args = {"style": paths["style"], "output": paths["model"], "warn": lambda m: None, **values}
        api.train(args.pop("style"), args.pop("output"), **args)
    else:
        args = {"source": paths["frames"], "style": torch.rand(3, 20, 24), "output": paths["out"], "size": 24,
                "warn": lambda m: None, **values}  # fmt: skip
        video.stylize_video(args.pop("source"), args.pop("style"), args.pop("output"), **args)


@pytest.fixture(scope="module")
def paths(video_inputs, style_path, tmp_path_factory) -> dict[str, Any]:
    frames, out = video_inputs
    return {"frames": frames, "out": out, "style": style_path, "model": tmp_path_factory.mktemp("m") / "m.pt"}


_CASES = st.sampled_from([(fn, name) for fn in WRONG for name in WRONG[fn]])


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_CASES, data=st.data())
def test_a_wrong_argument_is_refused_before_any_work(paths, case, data):
    fn, name = case
    value = data.draw(WRONG[fn][name], label=name)
    with no_work(), pytest.raises(InputError) as err:
        call(fn, {name: value}, paths)
    message = str(err.value)
    names = {name, "--" + name.replace("_", "-"), FLAGS.get(name, name)}
    assert "\n" not in message and any(n in message for n in names), message


@pytest.mark.parametrize(
    ("fn", "values", "message"),
    [
        ("stylize", {"size": "32"}, "--size must be a whole number from 16 to 16384, got '32'"),
        ("stylize", {"style_blend": "0.5,0.5"}, "--style-blend must be a list of numbers >= 0 or None, got '0.5,0.5'"),
        ("stylize", {"init": torch.zeros(3, 8, 8)}, "--init must be a path (str or os.PathLike), got a torch.Tensor"),
        ("stylize", {"callback": "print"}, "callback must be a function (callable) or None, got 'print'"),
        ("stylize", {"preset": ["photo"]}, "preset must be a str, got ['photo']"),
        ("train", {"callback": 1}, "callback must be a function (callable) or None, got 1"),
        ("train", {"max_minutes": "5"}, "--minutes must be a number > 0 or None, got '5'"),
        ("train", {"batch_size": 2.0}, "--batch-size must be a whole number from 1 to 256, got 2.0"),
        ("stylize_video", {"fps": "25"}, "--fps must be a number >= 0.01 and <= 1000 or None, got '25'"),
        ("stylize_video", {"fps": 1e-6}, "--fps must be a number >= 0.01 and <= 1000 or None, got 1e-06"),
        ("stylize_video", {"on_frame": True}, "on_frame must be a function (callable) or None, got True"),
    ],
)  # fmt: skip
def test_wrong_arguments_are_named_with_what_is_accepted(paths, fn, values, message):
    with no_work(), pytest.raises(InputError) as err:
        call(fn, values, paths)
    assert str(err.value) == message


def test_a_folder_of_frames_refuses_a_frame_rate_too_low_for_its_time_stamps(paths):
    with pytest.raises(InputError, match="--fps must be a number of frames per second from 0.01 to 1000"):
        open_source(paths["frames"], fps=1e-4)
    with open_source(paths["frames"], fps=0.01) as frames:
        assert frames.fps > 0


# -- valid values reach the work (or a one-line refusal of how they combine) ---------------------------------
def _small(name: str, tp: Any, spec: Spec) -> st.SearchStrategy:
    """Valid values of a field, kept small where a value sizes the work (the images are loaded at ``size``)."""
    small = {
        "size": st.one_of(st.integers(16, 48), st.integers(16, 48).map(np.int64)),
        "start_size": st.one_of(st.none(), st.integers(32, 48)), "tile": st.sampled_from([None, 0, 64, 96]),
        "tile_overlap": st.one_of(st.none(), st.integers(0, 20)), "steps": st.one_of(st.none(), st.integers(0, 5)),
        "scale_steps": st.one_of(st.none(), st.lists(st.integers(0, 3), min_size=1, max_size=3)),
        "style_size": st.integers(16, 64), "train_size": st.integers(32, 64), "batch_size": st.integers(1, 4),
        "width": st.integers(4, 16), "epochs": st.one_of(st.none(), st.floats(0.01, 3)),
        "content_layers": st.lists(st.sampled_from(["relu4_2", "conv_4", "relu2_2", "relu1_1"]), max_size=2),
        "style_layers": st.lists(st.sampled_from(["relu1_1", "relu2_1", "conv_3", "relu5_1"]), max_size=3),
        "style_layer_weights": st.one_of(st.none(), st.lists(st.floats(0, 10), max_size=3)),
        "style_blend": st.one_of(st.none(), st.lists(st.floats(0, 2), min_size=1, max_size=2)),
        "masks": st.sampled_from([None, "missing-mask.png", [Path("missing.png")]]),
        "mask_colors": st.sampled_from([None, "red", ["#ff0000"]]),
        "init": st.sampled_from(["content", "noise", "style", "colors", Path("missing-start.png")]),
        "preserve_color": st.sampled_from([None, "luminance", "histogram", "none", "grey"]),
        "device": st.sampled_from(["auto", "cpu", "cuda", "tpu"]), "lbfgs_history": st.integers(1, 10),
        "start": st.floats(0, 0.05), "duration": st.one_of(st.none(), st.floats(0.01, 2)),
        "codec": st.sampled_from([None, "libx264"]), "checkpoint_every": st.integers(0, 10),
    }  # fmt: skip
    if name in small:
        return small[name]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return st.one_of(st.none(), *(_small(name, a, spec) for a in args if a is not type(None)))
    if tp is bool:
        return st.booleans()
    if spec.choices:
        return st.sampled_from(spec.choices)
    if tp is int:
        return st.integers(int(spec.lo or 0), int(min(spec.hi if spec.hi is not None else 10**6, 10**6)))
    if tp is float:
        lo, hi = spec.lo if spec.lo is not None else -1e3, spec.hi if spec.hi is not None else 1e6
        return st.floats(lo, hi, exclude_min=spec.lo_open)
    if tp is str:
        return st.sampled_from(["missing-file", Path("missing-file.bin")] if spec.path else ["x"])
    raise AssertionError(f"no valid values for {name}: {tp}")


def _field_values(cls: type) -> dict[str, st.SearchStrategy]:
    hints = typing.get_type_hints(cls)
    return {f.name: _small(f.name, hints[f.name], _spec(cls, f.name)) for f in dataclasses.fields(cls)}


_OPTION_VALUES = {k: v for k, v in _field_values(Options).items() if k != "preset"}
_VALID = {
    "stylize": {"preset": st.sampled_from(list(PRESETS)), "callback": st.just(lambda info: None), **_OPTION_VALUES},
    "train": {"callback": st.just(lambda info: None), "max_minutes": st.floats(0.01, 100),
              **_field_values(TrainOptions)},
    "stylize_video": {"on_frame": st.just(lambda info: None), **_field_values(VideoSettings), **_OPTION_VALUES},
}  # fmt: skip


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(fn=st.sampled_from(sorted(_VALID)), data=st.data())
def test_valid_arguments_reach_the_work_or_are_refused_in_one_line(paths, fn, data):
    names = data.draw(st.lists(st.sampled_from(sorted(_VALID[fn])), max_size=4, unique=True), label="arguments")
    values = {name: data.draw(_VALID[fn][name], label=name) for name in names}
    try:
        with no_work():
            call(fn, values, paths)
    except Reached:
        return
    except InputError as err:  # how the values combine (a photo method with masks, a tile below 64 px, ...)
        assert "\n" not in str(err)
        return
    raise AssertionError("the call neither reached the work nor refused its arguments")
