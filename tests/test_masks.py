"""Spatial control: mask files and colour maps, AdaIN per region, guided Gram matrices, unstyled regions."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter

from impasto.cli import main
from impasto.core.losses import StyleLoss
from impasto.core.regions import RegionStyleLoss
from impasto.errors import InputError
from impasto.io.images import load_image, read_metadata
from impasto.io.masks import load_color_map, load_mask_files, load_masks, parse_color
from impasto.methods.adain import AdaIN, adain, downsample_masks, pad_to_stride
from impasto.methods.gatys import Gatys
from impasto.methods.terms import strength_factor
from impasto.options import make_options
from impasto.runner import Runner

from .conftest import np_channel_stats


@pytest.fixture(scope="module")
def content(content_path):
    return load_image(content_path, 96)  # 96 x 64


@pytest.fixture(scope="module")
def styles(style_path):
    return [load_image(style_path, 96), load_image(torch.rand(3, 40, 40), 96)]


def half_masks(h: int, w: int) -> torch.Tensor:
    """Region 0 the left third, region 1 the middle third; the right third unstyled."""
    m = torch.zeros(2, 1, h, w)
    m[0, ..., : w // 3] = 1
    m[1, ..., w // 3 : 2 * w // 3] = 1
    return m


def colour_map(path, size=(300, 200), blur=True):
    """Left half red, right top green, right bottom white (unlisted), anti-aliased edges."""
    im = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(im)
    draw.rectangle([0, 0, size[0] // 2, size[1]], fill=(255, 0, 0))
    draw.ellipse([size[0] // 2 + 10, 5, size[0] - 10, size[1] // 2], fill=(0, 255, 0))
    if blur:
        im = im.filter(ImageFilter.GaussianBlur(2))
    im.save(path)
    return im


def test_mask_files_are_resized_soft_masks(tmp_path):
    a = np.zeros((40, 60), np.uint8)
    a[:, :30] = 255
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(255 - a).save(tmp_path / "b.png")
    masks = load_mask_files([tmp_path / "a.png", tmp_path / "b.png"], (20, 30))
    assert masks.shape == (2, 1, 20, 30) and 0 <= masks.min() and masks.max() <= 1
    assert float(masks[0, 0, :, :14].min()) == 1 and float(masks[0, 0, :, 16:].max()) == 0
    assert torch.allclose(masks.sum(0), torch.ones(1, 20, 30), atol=1e-5)
    with pytest.raises(InputError, match="aspect ratio"):
        load_mask_files([tmp_path / "a.png"], (30, 30))
    with pytest.raises(InputError, match="2 mask file"):
        load_masks((20, 30), 3, files=[tmp_path / "a.png", tmp_path / "b.png"])


def test_colour_map_snaps_anti_aliased_edges(tmp_path):
    colour_map(tmp_path / "map.png")
    masks = load_color_map(tmp_path / "map.png", ["red", "#00ff00"], (200, 300))
    assert masks.shape == (2, 1, 200, 300)
    assert set(np.unique(masks.numpy())) <= {0.0, 1.0}  # same size: every pixel snapped to one colour
    red, green = masks[0, 0], masks[1, 0]
    assert float(red[:, :145].mean()) == 1 and float(red[:, 155:].max()) == 0
    assert float(green[40, 220]) == 1 and float(green[190, 220]) == 0  # white stays unstyled
    assert float((red * green).max()) == 0
    small = load_color_map(tmp_path / "map.png", ["red", "lime"], (20, 30))
    assert small.shape == (2, 1, 20, 30) and torch.allclose(small[0], masks[0, :, ::10, ::10], atol=0.51)


def test_colour_map_errors(tmp_path):
    colour_map(tmp_path / "map.png")
    with pytest.raises(InputError, match="'blue' does not occur.*#ffffff"):
        load_color_map(tmp_path / "map.png", ["red", "blue"], (200, 300))
    with pytest.raises(InputError, match="unknown mask colour 'reddish'"):
        parse_color("reddish")
    assert parse_color("ff8000") == (255, 128, 0) and parse_color(" Red ") == (255, 0, 0)
    with pytest.raises(InputError, match="--mask-colors lists 1 colour"):
        load_masks((200, 300), 2, color_map=tmp_path / "map.png", colors=["red"])


def test_mask_options_are_checked(tmp_path):
    with pytest.raises(InputError, match="needs --mask-colors"):
        make_options(mask_map="m.png")
    with pytest.raises(InputError, match="needs --mask-map"):
        make_options(mask_colors=("red",))
    with pytest.raises(InputError, match="not both"):
        make_options(masks=("a.png",), mask_map="m.png", mask_colors=("red",))
    with pytest.raises(InputError, match="--style-blend does not apply"):
        make_options(masks=("a.png", "b.png"), style_blend=(1, 1))


def test_fast_adain_per_region(content, styles):
    eng = AdaIN.shared("cpu", "fp32")
    feats = eng.encode(pad_to_stride(content)[0])
    masks = downsample_masks(pad_to_stride(half_masks(*content.shape[-2:]))[0], tuple(feats.shape[-2:]))
    target = eng.target_features(feats, styles, masks=masks)
    for k, style in enumerate(styles):
        region = (masks[k : k + 1] == 1).float()  # positions wholly inside region k
        mean, std = np_channel_stats(target, region)
        s_mean, s_std = np_channel_stats(eng.encode(pad_to_stride(style)[0]))
        expected = np_channel_stats(adain(feats, s_mean, s_std, masks[k : k + 1]), region)
        assert torch.allclose(mean, expected[0], atol=1e-4) and torch.allclose(std, expected[1], atol=1e-4)
        # region k has style k's statistics where the content was not constant (not style j's)
        other_mean = np_channel_stats(eng.encode(pad_to_stride(styles[1 - k])[0]))[0]
        assert float((mean - s_mean).abs().mean()) < 0.5 * float((mean - other_mean).abs().mean())
        before = np_channel_stats(feats, region)[0]
        assert float((mean - s_mean).abs().mean()) < 0.5 * float((before - s_mean).abs().mean())
    outside = (masks.sum(0, keepdim=True) == 0).expand_as(feats)
    assert torch.equal(target[outside], feats.float()[outside])


@pytest.mark.parametrize("method", ["fast", "gatys"])
def test_outside_every_mask_stays_content(content, styles, method):
    if method == "gatys":  # smaller and few steps: the region only has to move
        content = torch.nn.functional.interpolate(content, scale_factor=0.5, mode="area")
    masks = half_masks(*content.shape[-2:])
    opts = make_options(method=method, size=max(content.shape[-2:]), steps=3, precision="fp32")
    out = Runner(opts)(content, styles, masks)
    w = content.shape[-1]
    assert torch.allclose(out[..., 2 * w // 3 :], content[..., 2 * w // 3 :], atol=1e-6)  # unstyled, exactly
    for k in range(2):
        region = out[..., k * w // 3 : (k + 1) * w // 3]
        assert float((region - content[..., k * w // 3 : (k + 1) * w // 3]).abs().mean()) > 1e-3


def test_guided_gram_loss_is_the_style_loss_over_each_region():
    feats = torch.randn(1, 8, 6, 10)
    target = StyleLoss.target_of(torch.randn(1, 8, 5, 5))
    full = torch.ones(1, 1, 6, 10)
    loss = RegionStyleLoss([StyleLoss([target])], full)
    assert torch.allclose(loss(feats), StyleLoss([target])(feats))
    left = torch.zeros(1, 1, 6, 10)
    left[..., :5] = 1
    two = RegionStyleLoss([StyleLoss([target]), StyleLoss([target])], torch.cat([left, 1 - left]))
    expected = StyleLoss([target])(feats[..., :5]) + StyleLoss([target])(feats[..., 5:])
    assert torch.allclose(two(feats), expected, rtol=1e-5)


def test_gatys_masks_build_one_guided_loss_per_region(content, styles):
    transfer = Gatys(make_options(size=96, steps=2, precision="fp32", style_layers=("relu1_1", "relu3_1")))
    terms = {t.name: t for t in transfer.build_terms(content, styles, half_masks(*content.shape[-2:]))}
    for name, loss in terms["style"].losses.items():
        assert isinstance(loss, RegionStyleLoss) and len(loss.losses) == 2
        assert loss.masks.shape[-2:] == transfer.features(content, [name])[name].shape[-2:]


def test_gatys_strength_scales_the_style_weight(content, styles):
    assert strength_factor(1.0) == 1.0 and strength_factor(0.0) == 0.0
    assert strength_factor(0.75) == pytest.approx(0.1) and strength_factor(0.5) == pytest.approx(0.01)
    values = [strength_factor(s) for s in np.linspace(0, 1, 11)]
    assert values == sorted(values)
    terms = Gatys(make_options(size=64, strength=0.5, style_weight=1e3)).build_terms(content, styles[:1])
    assert {t.name: t.weight for t in terms}["style"] == pytest.approx(10.0)


def test_cli_masks(tmp_path, content_path, style_path, capsys):
    w, h = Image.open(content_path).size
    mask = np.zeros((h, w), np.uint8)
    mask[:, : w // 2] = 255
    Image.fromarray(mask).save(tmp_path / "left.png")
    out = tmp_path / "m.png"
    assert main([str(content_path), str(style_path), "-o", str(out), "--method", "fast", "-s", "64",
                 "--mask", str(tmp_path / "left.png"), "-q"]) == 0  # fmt: skip
    assert read_metadata(out)["options"]["masks"] == [str(tmp_path / "left.png")]
    result = np.asarray(Image.open(out), dtype=np.int16)
    original = np.asarray(Image.open(content_path).convert("RGB").resize(Image.open(out).size, Image.LANCZOS))
    right = slice(Image.open(out).size[0] // 2 + 2, None)
    assert np.abs(result[:, right] - original[:, right]).max() <= 1  # unstyled: the content's pixels
    capsys.readouterr()
    bad = tmp_path / "bad.png"
    assert main([str(content_path), str(style_path), str(style_path), "-o", str(bad), "--method", "fast",
                 "--mask", str(tmp_path / "left.png")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "1 mask file(s) for 2 style image(s)" in err and len(err.strip().splitlines()) == 1 and not bad.exists()


def test_cli_colour_map_on_shared_photo(tmp_path, shared_images):
    photo = shared_images / "photo"
    out = tmp_path / "in1.png"
    assert main([str(photo / "input" / "in1.png"), str(shared_images / "style" / "starry_night.jpg"),
                 str(shared_images / "style" / "the_scream.jpg"), "--method", "fast", "-s", "96", "-o", str(out),
                 "--mask-map", str(photo / "masks" / "in1.png"), "--mask-colors", "white,lime", "-q"]) == 0  # fmt: skip
    assert max(Image.open(out).size) == 96
