"""Spatial control: mask files and colour maps, AdaIN per region, guided Gram matrices, unstyled regions."""


import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter

from impasto import make_options
from impasto.cli import main
from impasto.core.losses import StyleLoss, gram_matrix
from impasto.core.regions import RegionStyleLoss, composite, coverage, region_style_losses
from impasto.core.sizes import resize_tensor
from impasto.errors import InputError
from impasto.io.images import load_image, read_metadata
from impasto.io.masks import load_color_map, load_mask_files, load_masks, parse_color
from impasto.methods import terms
from impasto.methods.adain import (
    AdaIN,
    adain,
    downsample_masks,
    pad_to_stride,
)
from impasto.methods.base import Stylization
from impasto.methods.gatys import Gatys
from impasto.methods.terms import strength_factor
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
    out = Runner(opts)(Stylization(content, styles, masks))
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


@pytest.mark.parametrize("gram_norm", ["positions", "elements", "none"])
def test_one_region_covering_everything_is_the_plain_style_loss_for_every_gram_norm(gram_norm):
    g = torch.Generator().manual_seed(7)
    style = {"relu1_1": torch.randn(1, 8, 6, 10, generator=g)}
    content = {"relu1_1": torch.randn(1, 8, 5, 5, generator=g)}
    region = region_style_losses([style], content, torch.ones(1, 1, 5, 5), ["relu1_1"], gram_norm)["relu1_1"]
    target = StyleLoss.target_of(style["relu1_1"], gram_norm, out_positions=25)
    plain = torch.nn.functional.mse_loss(gram_matrix(content["relu1_1"], gram_norm), target)
    assert float(region(content["relu1_1"])) == pytest.approx(float(plain), rel=1e-5)


def test_an_empty_region_adds_nothing_and_keeps_the_loss_finite():
    g = torch.Generator().manual_seed(8)
    style = {"relu1_1": torch.randn(1, 8, 6, 6, generator=g)}
    content = {"relu1_1": torch.randn(1, 8, 6, 6, generator=g)}
    whole = torch.ones(1, 1, 6, 6)
    alone = region_style_losses([style], content, whole, ["relu1_1"])["relu1_1"](content["relu1_1"])
    with_empty = region_style_losses([style, style], content, torch.cat([whole, 0 * whole]), ["relu1_1"])
    value = with_empty["relu1_1"](content["relu1_1"])
    assert torch.isfinite(value) and float(value) == pytest.approx(float(alone), rel=1e-6)


def test_coverage_and_composite_keep_shapes_and_the_stylized_dtype():
    masks = torch.zeros(2, 1, 4, 4)
    masks[0, :, :, :2] = 0.75
    masks[1, :, :, :1] = 0.5  # overlaps: coverage capped at 1
    cover = coverage(masks)
    assert cover.shape == (1, 1, 4, 4)
    assert torch.equal(cover[0, 0, 0], torch.tensor([1.0, 0.75, 0.0, 0.0]))
    stylized, content = torch.ones(1, 3, 4, 4), torch.zeros(1, 3, 4, 4, dtype=torch.float64)
    out = composite(stylized, content, masks)
    assert out.dtype == torch.float32 and torch.equal(out[0, :, 0], cover[0, 0, 0].expand(3, 4))


def _guided_gram(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """G = F diag(m) F^T / sum(m) in float64, the (1, 1, 32, 32) mask averaged over each feature position's pixels."""
    m = torch.nn.functional.avg_pool2d(mask, 32 // features.shape[-1]).flatten().double()
    x = features[0].flatten(1).double()
    return (x * m) @ x.T / m.sum()


def test_label_region_style_loss_weights_each_region_by_its_share_and_normalizes_it(content_path, style_path):
    """The photo method's style term with label regions, written out: for each layer and region k, the Gram
    matrix of the output's features under content region k against the style's under style region k (both
    masks averaged down to the layer), divided by the target's mean square, weighted by region k's share of the
    content; regions of unequal share so a dropped weight or normalization shows."""
    content = resize_tensor(load_image(content_path, 64), (32, 32))
    style = resize_tensor(load_image(style_path, 64), (32, 32))
    top = torch.zeros(1, 1, 32, 32)
    top[..., :24, :] = 1  # 3/4 of the content
    left = torch.zeros(1, 1, 32, 32)
    left[..., :, :8] = 1  # 1/4 of the style
    regions, style_regions = torch.cat([top, 1 - top]), torch.cat([left, 1 - left])
    opts = make_options(size=32, precision="fp32", normalize_losses=True, style_layer_norm="none",
                        gram_norm="positions", style_weight=3.0)  # fmt: skip
    engine = Gatys(opts)
    (term,) = [t for t in engine.build_terms(content, [style], regions=(regions, style_regions))
               if isinstance(t, terms.StyleTerm)]  # fmt: skip
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    layers = list(opts.style_layer_names)
    with torch.no_grad():
        out_f = engine.net(engine.net_input(image), layers)
        got = float(term(image, out_f, {}))
        sty_f = engine.net(engine.net_input(style), layers)

    expected = 0.0
    for n in layers:
        for k, share in enumerate((0.75, 0.25)):
            target = _guided_gram(sty_f[n], style_regions[k : k + 1])
            g = _guided_gram(out_f[n], regions[k : k + 1])
            expected += share * float((g - target).pow(2).mean() / target.pow(2).mean())
    assert term.weight == 3.0 and got == pytest.approx(expected, rel=1e-4)


def test_masked_style_loss_compares_each_region_with_its_whole_style_normalized(content_path, style_path):
    """Spatial control's style term, written out: region k's guided Gram matrix of the output against the Gram
    matrix of the whole style image k, divided by that target's mean square, regions weighted 1 each."""
    content = resize_tensor(load_image(content_path, 64), (32, 32))
    style = resize_tensor(load_image(style_path, 64), (32, 32))
    styles = [style, style.flip(1)]
    top = torch.zeros(1, 1, 32, 32)
    top[..., :24, :] = 1
    masks = torch.cat([top, 1 - top])
    opts = make_options(size=32, precision="fp32", normalize_losses=True, style_layer_norm="none",
                        gram_norm="positions")  # fmt: skip
    engine = Gatys(opts)
    (term,) = [t for t in engine.build_terms(content, styles, masks) if isinstance(t, terms.StyleTerm)]
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    layers = list(opts.style_layer_names)
    with torch.no_grad():
        out_f = engine.net(engine.net_input(image), layers)
        got = float(term(image, out_f, {}))
        sty_f = [engine.net(engine.net_input(s), layers) for s in styles]

    expected = 0.0
    for n in layers:
        for k in range(2):
            target = _guided_gram(sty_f[k][n], torch.ones(1, 1, 32, 32))
            expected += float((_guided_gram(out_f[n], masks[k : k + 1]) - target).pow(2).mean() / target.pow(2).mean())
    assert got == pytest.approx(expected, rel=1e-4)


def _gram(f: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Gram matrix per position, written out: sum_p m_p f_p f_p^T / sum_p m_p, in float64."""
    f = f.double()[0].reshape(f.shape[1], -1)
    m = torch.ones(f.shape[1], dtype=torch.float64) if mask is None else mask.double().reshape(-1)
    return (f * m) @ f.T / m.sum()


@pytest.mark.parametrize("norm", ["positions", "elements", "none"])
def test_a_full_mask_gives_the_unmasked_gram_matrix(norm):
    f = torch.rand(1, 6, 7, 9, generator=torch.Generator().manual_seed(0))
    ones = torch.ones(1, 1, 7, 9)
    assert torch.allclose(gram_matrix(f, norm, ones), gram_matrix(f, norm), rtol=1e-6)
    half = torch.zeros(1, 1, 7, 9)
    half[..., :4] = 1
    expected = {"positions": 1.0, "elements": 1.0 / 6, "none": 28.0}[norm] * _gram(f, half)
    assert torch.allclose(gram_matrix(f, norm, half).double(), expected[None], rtol=1e-5)


@pytest.fixture(scope="module")
def two_styles(content_path, style_path):
    """A reddish and a bluish style image, far apart in their Gram matrices."""
    base = load_image(style_path, 64)
    red = (base * torch.tensor([1.0, 0.3, 0.2]).view(1, 3, 1, 1)).clamp(0, 1)
    blue = (base.flip(-1) * torch.tensor([0.2, 0.4, 1.0]).view(1, 3, 1, 1)).clamp(0, 1)
    return red, blue


def test_region_k_gets_the_gram_matrix_of_style_k(content64, two_styles):
    st = Gatys(make_options(size=64, precision="fp32", style_layers=("relu1_1", "relu2_1")))
    h, w = content64.shape[-2:]
    masks = torch.zeros(2, 1, h, w)
    masks[0, ..., : w // 2] = 1
    masks[1, ..., w // 2 :] = 1
    terms = {t.name: t for t in st.build_terms(content64, list(two_styles), masks)}
    for layer, loss in terms["style"].losses.items():
        assert isinstance(loss, RegionStyleLoss)
        for k, style in enumerate(two_styles):
            f = st.features(st.style_image_for(style, (h, w)), [layer])[layer]
            assert torch.allclose(loss.losses[k].target.double(), _gram(f)[None], rtol=1e-4), (layer, k)
        # each region's mask is that region carried down to the layer's size, sharing nothing with the other
        assert torch.allclose(loss.masks.sum(0), torch.ones_like(loss.masks[0]))
        assert float(loss.masks[0, ..., : loss.masks.shape[-1] // 2 - 1].min()) == 1.0


def test_after_a_run_each_region_is_nearer_its_own_style(content64, two_styles):
    h, w = content64.shape[-2:]
    masks = torch.zeros(2, 1, h, w)
    masks[0, ..., : w // 2] = 1
    masks[1, ..., w // 2 :] = 1
    opts = make_options(size=64, steps=40, precision="fp32", style_weight=50.0)
    out = Runner(opts)(Stylization(content64, list(two_styles), masks))
    left, right = out[..., : w // 2], out[..., w // 2 :]
    red, blue = (s.mean(dim=(2, 3)) for s in two_styles)
    for region, own, other in ((left, red, blue), (right, blue, red)):
        colour = region.mean(dim=(2, 3))
        assert float((colour - own).abs().sum()) < float((colour - other).abs().sum())


def test_mask_tensors_are_checked_against_the_styles_when_the_run_is_prepared(content_path, style_path, monkeypatch):
    """Masks given as a tensor are checked once, by api.prepare, before any network is built."""
    from impasto import api

    monkeypatch.setattr(api, "Runner", lambda *a, **k: pytest.fail("a runner was built for a bad run"))
    opts = make_options(method="fast", size=32)
    two = torch.ones(2, 1, 8, 8)
    with pytest.raises(InputError, match=r"^2 mask\(s\) for 1 style image\(s\): give one per style$"):
        api.prepare(content_path, style_path, opts, masks=two)
    with pytest.raises(InputError, match="--style-blend does not apply with masks"):
        api.prepare(content_path, [style_path, style_path], make_options(method="fast", size=32, style_blend=(1, 1)),
                    masks=two)  # fmt: skip
    prepared = api.prepare(content_path, style_path, opts, masks=two[:1])
    assert prepared.masks.shape[-2:] == prepared.content.shape[-2:]  # resized to the content
