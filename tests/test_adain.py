"""The fast method (AdaIN): decoder weights, AdaIN statistics, strength, style blends, odd sizes, CLI."""


import pytest
import torch
from PIL import Image

from impasto import api, make_options, stylize
from impasto.cli import main
from impasto.core.device import cpu_supports_bf16
from impasto.core.vgg import build_vgg
from impasto.errors import InputError
from impasto.io.images import load_image, read_metadata
from impasto.methods.adain import (
    AdaIN,
    Decoder,
    adain,
    channel_stats,
    crop_pads,
    downsample_masks,
    encoder_from_vgg,
    pad_to_stride,
    stylize_tiled,
)
from impasto.methods.base import Stylization
from impasto.methods.fast import FastMethod

from .conftest import np_channel_stats


@pytest.fixture(scope="module")
def engine() -> AdaIN:
    return AdaIN.shared("cpu", "fp32")


@pytest.fixture(scope="module")
def content96(content_path):
    return load_image(content_path, 96)


@pytest.fixture(scope="module")
def style96(style_path):
    return load_image(style_path, 96)


def _stats_distance(a, b):
    return float((a[0] - b[0]).abs().mean() + (a[1] - b[1]).abs().mean())


def test_decoder_has_pytorch_adain_layout_and_trained_weights():
    dec = Decoder.pretrained()
    assert isinstance(dec[0], torch.nn.ReflectionPad2d) and dec[1].weight.shape == (256, 512, 3, 3)
    assert isinstance(dec[3], torch.nn.Upsample) and dec[28].weight.shape == (3, 64, 3, 3) and len(dec) == 29
    assert float(dec[1].weight.std()) > 1e-3  # trained, not initialized
    assert dec(torch.zeros(1, 512, 3, 5)).shape == (1, 3, 24, 40)


def test_fp32_engine_computes_the_reference_network(engine, content96):
    x, _ = pad_to_stride(content96)
    vgg, dec = build_vgg(["relu4_1"], padding="reflect"), Decoder.pretrained()
    with torch.no_grad():
        ref = vgg(x, ["relu4_1"])["relu4_1"]
        feats = engine.encode(x)
        assert torch.allclose(feats, ref, atol=1e-4 * float(ref.abs().max()))
        assert torch.allclose(engine.decode(ref), dec(ref).clamp(0, 1), atol=1e-5)


def test_channel_stats_are_the_population_mean_and_std(engine, content96):
    fc = engine.encode(pad_to_stride(content96)[0])
    for mask in (None, (torch.rand(1, 1, *fc.shape[-2:], generator=torch.Generator().manual_seed(0)) > 0.3).float()):
        mean, std = channel_stats(fc, mask)
        ref_mean, ref_std = np_channel_stats(fc, mask)
        assert mean.shape == (1, fc.shape[1], 1, 1) and std.shape == mean.shape
        assert torch.allclose(mean, ref_mean, rtol=1e-5, atol=1e-5) and torch.allclose(
            std, ref_std, rtol=1e-4, atol=1e-5
        )


def test_style_stats_are_those_of_the_padded_style_features(engine, style96):
    mean, std = engine.style_stats(style96)
    ref_mean, ref_std = np_channel_stats(engine.encode(pad_to_stride(style96)[0]))
    assert torch.allclose(mean, ref_mean, atol=1e-5) and torch.allclose(std, ref_std, rtol=1e-4, atol=1e-5)


def test_adain_gives_content_features_the_style_statistics(engine, content96, style96):
    fc = engine.encode(pad_to_stride(content96)[0])
    s_mean, s_std = np_channel_stats(engine.encode(pad_to_stride(style96)[0]))
    live = np_channel_stats(fc)[1].flatten() > 1e-3  # channels where the content is not constant
    assert live.float().mean() > 0.9
    mean, std = np_channel_stats(adain(fc, s_mean, s_std))
    assert torch.allclose(mean, s_mean, atol=1e-4)
    assert torch.allclose(std.flatten()[live], s_std.flatten()[live], rtol=1e-4, atol=1e-5)
    assert _stats_distance(np_channel_stats(fc), (s_mean, s_std)) > 0.1  # the content's were different
    # Per region: the masked positions get the style's statistics.
    mask = torch.zeros(1, 1, *fc.shape[-2:])
    mask[..., : fc.shape[-2] // 2, :] = 1
    live = np_channel_stats(fc, mask)[1].flatten() > 1e-3
    mean, std = np_channel_stats(adain(fc, s_mean, s_std, mask), mask)
    assert torch.allclose(mean, s_mean, atol=1e-4)
    assert torch.allclose(std.flatten()[live], s_std.flatten()[live], rtol=1e-4, atol=1e-5)


def test_strength_zero_decodes_the_content_and_strength_one_is_full_style(engine, content96, style96):
    x, pads = pad_to_stride(content96)
    decoded = crop_pads(engine.decode(engine.encode(x)), pads)
    zero = engine.stylize(content96, [style96], strength=0.0)
    assert torch.allclose(zero, decoded, atol=1e-6)
    full = engine.stylize(content96, [style96])
    # The decoder roughly inverts the encoder: much nearer the content than the stylized image is.
    assert float((zero - content96).abs().mean()) < 0.6 * float((full - content96).abs().mean())
    style_stats = engine.style_stats(style96)
    distances = []
    for strength in (0.0, 0.5, 1.0):
        out = engine.stylize(content96, [style96], strength=strength)
        distances.append(_stats_distance(np_channel_stats(engine.encode(pad_to_stride(out)[0])), style_stats))
    assert distances[0] > distances[1] > distances[2]
    # Strength 1 decodes exactly the AdaIN target.
    target = adain(engine.encode(x), *style_stats)
    assert torch.allclose(engine.stylize(content96, [style96]), crop_pads(engine.decode(target), pads), atol=1e-6)


def test_style_blend_interpolates_the_adain_targets(engine, content96, style96):
    other = load_image(torch.rand(3, 50, 70), 96)
    single = engine.stylize(content96, [style96])
    assert torch.allclose(engine.stylize(content96, [style96, other], weights=[1.0, 0.0]), single, atol=1e-6)
    half = engine.stylize(content96, [style96, other], weights=[2.0, 2.0])
    feats = engine.encode(pad_to_stride(content96)[0])
    (m1, s1), (m2, s2) = engine.style_stats(style96), engine.style_stats(other)
    expected = crop_pads(engine.decode(adain(feats, (m1 + m2) / 2, (s1 + s2) / 2)), pad_to_stride(content96)[1])
    assert torch.allclose(half, expected, atol=1e-6) and float((half - single).abs().mean()) > 0.01


def test_style_statistics_are_computed_once(content96, style96, monkeypatch):
    eng = AdaIN("cpu", "fp32")
    calls = []
    original = eng.encode
    monkeypatch.setattr(eng, "encode", lambda x: calls.append(tuple(x.shape)) or original(x))
    for _ in range(3):
        eng.stylize(content96, [style96])
    assert len(calls) == 4  # the style once, the content three times
    eng.stylize(content96, [style96.clone()])  # same pixels, another tensor: still cached
    assert len(calls) == 5


@pytest.mark.parametrize("hw", [(61, 45), (96, 97), (5, 16), (16, 3), (33, 130)])
def test_any_size_and_aspect_ratio(engine, style96, hw):
    content = load_image(torch.rand(3, 7, 9), None)
    content = torch.nn.functional.interpolate(content, size=hw, mode="bilinear", align_corners=False)
    out = engine.stylize(content, [style96])
    assert out.shape == (1, 3, *hw) and torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1


def test_odd_size_has_no_edge_artefacts(engine, content_path, style96):
    # Compare each result with the same pixels of a run on a larger crop of the same picture: at an odd size
    # the borders must not differ more than they do at an aligned size (zero padding would: ~1.4x).
    picture = torch.nn.functional.interpolate(load_image(content_path, None), size=(120, 180), mode="area")
    larger = engine.stylize(picture[..., :110, :170], [style96])

    def edge_and_interior(h, w):
        d = (engine.stylize(picture[..., :h, :w], [style96]) - larger[..., :h, :w]).abs()
        return max(float(d[..., -4:].mean()), float(d[..., -4:, :].mean())), float(d[..., 8:-8, 8:-8].mean())

    aligned_edge, aligned_inside = edge_and_interior(96, 152)
    for hw in [(99, 157), (101, 149)]:
        edge, inside = edge_and_interior(*hw)
        assert edge < 1.2 * aligned_edge and inside < 1.2 * aligned_inside, (hw, edge, aligned_edge)


@pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no native bf16")
def test_bf16_engine_close_to_fp32(engine, content96, style96):
    fast = AdaIN.shared("cpu", "bf16")
    assert fast.dtype == torch.bfloat16
    diff = (fast.stylize(content96, [style96]) - engine.stylize(content96, [style96])).abs()
    assert float(diff.mean()) < 0.02


def test_api_fast_records_options(content_path, style_path):
    im = stylize(content_path, style_path, method="fast", size=64, strength=0.5, precision="fp32")
    assert max(im.size) == 64
    assert im.info["impasto"]["options"]["method"] == "fast" and im.info["impasto"]["options"]["strength"] == 0.5


def test_fast_options_are_checked():
    with pytest.raises(InputError, match="--weights"):
        make_options(method="fast", weights="vgg.pth")
    with pytest.raises(InputError, match="--strength"):
        make_options(method="fast", strength=1.5)
    with pytest.raises(InputError, match="--strength"):
        make_options(strength=-0.1)


def test_cli_fast(tmp_path, content_path, style_path, capsys):
    out = tmp_path / "f.jpg"
    assert main([str(content_path), str(style_path), "-o", str(out), "--method", "fast", "-s", "80",
                 "--strength", "0.8", "-q"]) == 0  # fmt: skip
    assert max(Image.open(out).size) == 80
    meta = read_metadata(out)
    assert meta["options"]["method"] == "fast" and meta["options"]["strength"] == 0.8
    assert main([str(content_path), str(style_path), "-o", str(tmp_path / "g.png"), "--method", "fast",
                 "--history", str(tmp_path / "h.csv")]) == 2  # fmt: skip
    assert "--method fast has no steps" in capsys.readouterr().err


def test_the_adain_encoder_refuses_a_vgg_with_either_wrong_setting_in_one_exact_line():
    for kwargs in ({"padding": "zeros", "pooling": "max"}, {"padding": "reflect", "pooling": "avg"}):
        with pytest.raises(ValueError) as err:
            encoder_from_vgg(build_vgg(["relu4_1"], **kwargs))
        assert str(err.value) == "the AdaIN encoder needs reflect padding and max pooling"


def test_masks_keep_their_share_when_downsampled_to_a_feature_map():
    """A 1-pixel checkerboard averaged over 2x2 blocks is one half everywhere (nearest sampling gives 0 or 1)."""
    board = ((torch.arange(8).view(8, 1) + torch.arange(8).view(1, 8)) % 2).float().view(1, 1, 8, 8)
    assert torch.equal(downsample_masks(board, (4, 4)), torch.full((1, 1, 4, 4), 0.5))


@pytest.fixture(scope="module")
def two_styles(style_path) -> list[torch.Tensor]:
    style = load_image(style_path, 64)
    return [style, style.flip(1)]  # the same painting with its colour channels reversed: another palette


def test_fast_method_gives_each_masked_region_its_own_style(content_path, two_styles):
    """Left half style A, right half style B: each half is much closer to the picture all in its own style than
    to the one in the other style; swapping the masks swaps the halves. No history (one pass)."""
    content = load_image(content_path, 64)
    w = content.shape[-1]
    left = torch.zeros(1, 1, *content.shape[-2:])
    left[..., : w // 2] = 1
    masks = torch.cat([left, 1 - left])
    opts = make_options(method="fast", size=64)
    method = FastMethod(opts)
    assert method.history == []
    plan = api.plan(content, two_styles, opts)
    mixed = method.run(Stylization(content, two_styles, masks, plan=plan))
    engine = AdaIN()
    only = [engine.stylize(content, [s]) for s in two_styles]
    inner_left, inner_right = slice(0, w // 2 - 8), slice(w // 2 + 8, w)
    for cols, own, other in ((inner_left, 0, 1), (inner_right, 1, 0)):
        near = (mixed[..., cols] - only[own][..., cols]).abs().mean()
        far = (mixed[..., cols] - only[other][..., cols]).abs().mean()
        assert near < 0.5 * far


def test_fast_method_refuses_masks_with_tiles_in_one_exact_line(content_path, two_styles):
    content = load_image(content_path, 96)
    opts = make_options(method="fast", size=96, tile=64)
    plan = api.plan(content, two_styles, opts)
    masks = torch.ones(2, 1, *content.shape[-2:]) / 2
    with pytest.raises(InputError) as err:
        FastMethod(opts).run(Stylization(content, two_styles, masks, plan=plan))
    assert str(err.value) == "masks cannot be combined with tiles; use --tile 0 or a smaller --size"


def test_the_style_statistics_cache_drops_the_least_recently_used_image():
    engine = AdaIN(cache_size=2)
    g = torch.Generator().manual_seed(2)
    a, b, c = (torch.rand(1, 3, 16, 16, generator=g) for _ in range(3))
    calls = []
    encode = engine.encode
    engine.encode = lambda x: calls.append(1) or encode(x)  # count the encoder passes
    engine.style_stats(a)
    engine.style_stats(b)
    engine.style_stats(a)  # a is now the most recent
    engine.style_stats(c)  # evicts b
    assert len(calls) == 3
    engine.style_stats(a)
    assert len(calls) == 3  # still cached
    engine.style_stats(b)
    assert len(calls) == 4  # was evicted


def test_padding_to_the_stride_falls_back_to_replicate_when_reflect_cannot_reach():
    """An 8-pixel-high picture is padded to the 16-pixel minimum: 8 rows below it, which a mirror of 8 rows
    cannot give (reflect needs more rows than it pads), so its last row is repeated."""

    x = torch.rand(1, 3, 8, 16, generator=torch.Generator().manual_seed(3))
    padded, pads = pad_to_stride(x)
    assert pads == (0, 0, 0, 8) and padded.shape[-2:] == (16, 16)
    assert torch.equal(padded[..., :8, :], x)
    assert torch.equal(padded[..., 8:, :], x[..., -1:, :].expand(1, 3, 8, 16))  # replicated edge row


def test_a_mask_count_that_does_not_match_the_styles_is_named_in_one_line(content_path, two_styles):
    engine = AdaIN()
    feats = torch.rand(1, 512, 4, 4)
    with pytest.raises(InputError) as err:
        engine.target_features(feats, two_styles, masks=torch.ones(3, 1, 4, 4) / 3)
    assert str(err.value) == "3 masks for 2 style images (one mask per style)"


def test_the_tiled_fast_method_follows_its_options_and_normalizes_blend_weights(content_path, two_styles):
    """Through FastMethod with --tile: the same pixels as stylize_tiled called with the options by hand, and blend
    weights (1, 3) mean (0.25, 0.75)."""

    content = load_image(content_path, 112)
    opts = make_options(method="fast", size=112, tile=64, tile_overlap=16, tile_passes=1, style_blend=(1, 3),
                        strength=0.8)  # fmt: skip
    plan = api.plan(content, two_styles, opts)
    assert plan.scales[-1].tile == 64
    out = FastMethod(opts).run(Stylization(content, two_styles, plan=plan))
    ref = stylize_tiled(AdaIN(), content, two_styles, 64, 16, 1, (0.25, 0.75), 0.8)
    assert out.shape == content.shape and torch.allclose(out, ref, atol=1e-5)


def test_one_tile_gathers_the_whole_pictures_statistics_and_matches_the_untiled_run(content_path, two_styles):
    """A picture within one tile: its core is every feature position, so the tiled path's content statistics
    are the whole picture's and its result the untiled AdaIN's (64 x 96: no padding, 8 x 12 features)."""

    content = torch.nn.functional.interpolate(load_image(content_path, 96), size=(64, 96), mode="area")
    engine = AdaIN()
    tiled = stylize_tiled(engine, content, two_styles, tile=128, overlap=16, passes=1, weights=(1, 3))
    whole = engine.stylize(content, two_styles, (0.25, 0.75))
    assert torch.allclose(tiled, whole, atol=2e-4), float((tiled - whole).abs().max())
