"""Arguments of the command line and the Python API: empty layer lists (an empty list leaves its loss out, both
empty are refused in one line), and every argument of ``stylize``, ``train`` and ``stylize_video`` checked before
any work, a wrong one refused with an :class:`InputError` naming it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from impasto import api, video
from impasto.cli import main
from impasto.errors import InputError
from impasto.options import make_options
from impasto.training import make_train_options

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
