"""Colour preservation: YIQ, luminance-only transfer, and colour matching of the style to the content."""


import numpy as np
import pytest
import torch

from impasto import make_options
from impasto.core import color
from impasto.errors import InputError
from impasto.io.images import load_image
from impasto.methods.base import Stylization
from impasto.runner import Runner, prepare


@pytest.fixture(scope="module")
def pair(content_path, style_path):
    return load_image(content_path, 80), load_image(style_path, 80)


def test_yiq_round_trip_and_luminance_weights():
    x = torch.rand(2, 3, 9, 7)
    assert torch.allclose(color.yiq_to_rgb(color.rgb_to_yiq(x)), x, atol=1e-5)
    gray = torch.full((1, 3, 2, 2), 0.4)
    yiq = color.rgb_to_yiq(gray)
    assert torch.allclose(yiq[:, 0], torch.full((1, 2, 2), 0.4), atol=1e-6) and yiq[:, 1:].abs().max() < 1e-5


@pytest.mark.parametrize("mode", ["pca", "cholesky"])
def test_color_matching_gives_the_style_the_content_mean_and_covariance(pair, mode):
    content, style = pair
    matched = color.match_color(style, content, mode, clamp=False)
    mu_m, cov_m = color.color_stats(matched)
    mu_c, cov_c = color.color_stats(content)
    mu_s, cov_s = color.color_stats(style)
    assert torch.allclose(mu_m, mu_c, atol=1e-5)
    assert torch.allclose(cov_m, cov_c, atol=2e-4 * float(cov_c.abs().max()))
    assert not torch.allclose(cov_s, cov_c, atol=0.1 * float(cov_c.abs().max()))  # they differed before
    # Clamped into [0, 1] (what the transfer uses), the statistics stay close.
    clamped = color.match_color(style, content, mode)
    assert 0 <= clamped.min() and clamped.max() <= 1
    assert torch.allclose(color.color_stats(clamped)[0], mu_c, atol=0.02)


def test_pca_matching_keeps_the_style_structure(pair):
    content, style = pair
    matched = color.match_color(style, content)
    # A linear map of colours: the luminance pattern of the style survives (strong correlation).
    a, b = color.luminance(matched).flatten(), color.luminance(style).flatten()
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.9


def test_luminance_combination_keeps_the_content_chroma_exactly(pair):
    content, _ = pair
    # A wild stylized luminance, far outside what the content's colours allow in places.
    stylized = torch.rand_like(content) * 1.4 - 0.2
    out = color.combine_luminance(stylized, content)
    assert 0 <= out.min() and out.max() <= 1
    assert torch.allclose(color.rgb_to_yiq(out)[:, 1:], color.rgb_to_yiq(content)[:, 1:], atol=1e-5)
    inside = (color.luminance(out) - color.luminance(stylized).clamp(0, 1)).abs() < 1e-5
    assert inside.float().mean() > 0.5  # where it fits, the stylized luminance is kept as is


def test_luminance_matching_of_the_style(pair):
    content, style = pair
    matched = color.match_luminance(style, content)
    assert torch.equal(matched[:, 0], matched[:, 1]) and torch.equal(matched[:, 1], matched[:, 2])
    y, yc = color.luminance(matched), color.luminance(content)
    assert abs(float(y.mean() - yc.mean())) < 0.01 and abs(float(y.std() - yc.std())) < 0.01


def test_luminance_transfer_end_to_end_keeps_chroma(pair):
    content, style = pair
    opts = make_options(method="fast", preserve_color="luminance", precision="fp32")
    out = Runner(opts)(Stylization(content, [style]))
    assert torch.allclose(color.rgb_to_yiq(out)[:, 1:], color.rgb_to_yiq(content)[:, 1:], atol=1e-5)
    assert float((color.luminance(out) - color.luminance(content)).abs().mean()) > 0.03  # still stylized
    plain = Runner(make_options(method="fast", precision="fp32"))(Stylization(content, [style]))
    assert float((color.rgb_to_yiq(plain)[:, 1:] - color.rgb_to_yiq(content)[:, 1:]).abs().mean()) > 0.02


def test_histogram_mode_brings_the_result_colours_near_the_content(pair):
    content, style = pair
    net_content, net_styles = prepare(content, [style], "histogram")
    assert net_content is content
    assert torch.allclose(color.color_stats(net_styles[0])[0], color.color_stats(content)[0], atol=0.02)
    histogram = make_options(method="fast", preserve_color="histogram", precision="fp32")
    kept = Runner(histogram)(Stylization(content, [style]))
    plain = Runner(make_options(method="fast", precision="fp32"))(Stylization(content, [style]))
    mu_c = color.color_stats(content)[0]
    assert (color.color_stats(kept)[0] - mu_c).norm() < 0.5 * (color.color_stats(plain)[0] - mu_c).norm()


def test_preserve_color_option_is_checked():
    with pytest.raises(InputError, match="--preserve-color"):
        make_options(preserve_color="hue")
    assert make_options(preserve_color="none").preserve_color is None


def _np_stats(image: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population covariance (divided by N) of an image's RGB pixels, with NumPy."""
    x = image.double().numpy().reshape(3, -1)
    return x.mean(1), np.cov(x, bias=True)


def test_colour_statistics_are_population_statistics_even_for_tiny_images():
    """With 6 and 10 pixels, dividing by N or by N - 1 differs by 20% and 11%: the statistics are those of the
    pixels (N), and matching gives the source exactly the target's (unclamped)."""
    g = torch.Generator().manual_seed(0)
    source, target = torch.rand(1, 3, 2, 3, generator=g), torch.rand(1, 3, 5, 2, generator=g)
    mean, cov = color.color_stats(source)
    np_mean, np_cov = _np_stats(source)
    np.testing.assert_allclose(mean.numpy(), np_mean, atol=1e-12)
    np.testing.assert_allclose(cov.numpy(), np_cov, atol=1e-12)
    for mode in ("pca", "cholesky"):
        out = color.match_color(source, target, mode=mode, clamp=False)
        got_mean, got_cov = _np_stats(out)
        want_mean, want_cov = _np_stats(target)
        np.testing.assert_allclose(got_mean, want_mean, atol=1e-5)
        np.testing.assert_allclose(got_cov, want_cov, atol=1e-5)


def test_matching_clamps_to_the_rgb_cube_by_default():
    g = torch.Generator().manual_seed(1)
    source = torch.rand(1, 3, 8, 8, generator=g)
    target = torch.rand(1, 3, 8, 8, generator=g) * 0.1 + torch.tensor([0.0, 0.5, 0.95]).view(1, 3, 1, 1)
    target[..., 0, 0] = torch.tensor([1.0, 0.0, 0.0])  # a wide spread: the match leaves the cube
    free = color.match_color(source, target, clamp=False)
    assert free.min() < 0 or free.max() > 1
    assert torch.equal(color.match_color(source, target), free.clamp(0, 1))


@pytest.mark.parametrize("mode", ["pca", "cholesky"])
def test_flat_images_match_without_failing(mode):
    """A single-colour image has a zero (singular) covariance: eps keeps both decompositions defined. A flat
    source becomes the target's mean colour; anything matched to a flat target becomes its colour."""
    g = torch.Generator().manual_seed(2)
    flat = torch.tensor([0.2, 0.5, 0.7]).view(1, 3, 1, 1).expand(1, 3, 6, 6).clone()
    busy = torch.rand(1, 3, 6, 6, generator=g)
    out = color.match_color(flat, busy, mode=mode)
    expected = busy.double().mean((0, 2, 3)).view(1, 3, 1, 1).float().expand_as(out)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    out = color.match_color(busy, flat, mode=mode)
    torch.testing.assert_close(out, flat, atol=1e-3, rtol=0)


# -- the photorealistic method's start image: the content recoloured to the style ----------------------------
def test_weighted_color_stats_are_the_stats_of_the_weighted_pixels(pair):
    content, _ = pair
    mask = torch.zeros_like(content[:, :1])
    mask[..., : content.shape[-2] // 2, :] = 1.0  # the top half
    mu, cov = color.color_stats(content, mask)
    top = content[..., : content.shape[-2] // 2, :]
    mu_top, cov_top = color.color_stats(top)
    assert torch.allclose(mu, mu_top, atol=1e-10) and torch.allclose(cov, cov_top, atol=1e-10)
    # weights scale out; a half weight everywhere changes nothing
    assert torch.allclose(color.color_stats(content, mask * 0.5)[1], cov_top, atol=1e-10)
    assert torch.allclose(color.color_stats(content, torch.full_like(mask, 0.5))[0], color.color_stats(content)[0])


@pytest.mark.parametrize("mode", color.TRANSFER_MODES)
def test_transfer_colors_pools_several_styles_by_their_blend_weights(pair, mode):
    content, style = pair
    other = 1 - style  # a negative: other colours
    only_first = color.transfer_colors(content, [style, other], blend=[1.0, 0.0], mode=mode)
    assert torch.allclose(only_first, color.transfer_colors(content, style, mode=mode), atol=1e-5)
    mixed = color.transfer_colors(content, [style, other], blend=[0.5, 0.5], mode=mode)
    mean = color.color_stats(mixed)[0]
    want = 0.5 * (color.color_stats(style)[0] + color.color_stats(other)[0])
    assert (mean - want).abs().max() < 0.03


def test_transfer_colors_gives_each_region_the_style_regions_colours(pair):
    content, style = pair
    ch, cw = content.shape[-2:]
    sh, sw = style.shape[-2:]
    regions = torch.zeros(2, 1, ch, cw)
    regions[0, :, :, : cw // 2] = 1
    regions[1] = 1 - regions[0]
    style_regions = torch.zeros(2, 1, sh, sw)
    style_regions[0, :, : sh // 2] = 1  # left half of the content takes the top of the style
    style_regions[1] = 1 - style_regions[0]
    out = color.transfer_colors(content, style, regions, style_regions)
    assert out.shape == content.shape and 0 <= out.min() and out.max() <= 1
    for k in range(2):
        got = color.color_stats(out, regions[k : k + 1])[0]
        want = color.color_stats(style, style_regions[k : k + 1])[0]
        assert (got - want).abs().max() < 0.03, (k, got, want)
    # the two halves of the style differ, and so do the two halves of the result
    halves = [color.color_stats(out, regions[k : k + 1])[0] for k in range(2)]
    assert (halves[0] - halves[1]).abs().max() > 0.05
    # without regions: the whole picture takes the style's statistics
    whole = color.transfer_colors(content, style)
    assert (color.color_stats(whole)[0] - color.color_stats(style)[0]).abs().max() < 0.03


def test_transfer_colors_is_locally_affine_in_the_content_colours(pair):
    from impasto.core import matting

    content, style = pair
    lap = matting.laplacian_tensor(content)
    recoloured = color.transfer_colors(content, style)
    texture = color.match_color(torch.rand_like(content), style)  # the same colours, none of the structure
    energy = [float(matting.photorealism_loss(x, lap)) for x in (recoloured, texture, content)]
    assert energy[0] < 0.02 * energy[1], energy  # what the photorealism regularizer asks of a picture


def test_histogram_matching_gives_the_target_distribution_on_each_principal_axis(pair):
    content, style = pair
    out = color.match_histograms(content, style)
    _, cov = color.color_stats(style)
    axes = torch.linalg.eigh(cov)[1]
    got = out.double().reshape(3, -1).T @ axes
    want = style.double().reshape(3, -1).T @ axes
    q = torch.linspace(0.02, 0.98, 25, dtype=torch.float64)
    for c in range(3):
        err = (torch.quantile(got[:, c], q) - torch.quantile(want[:, c], q)).abs().max()
        spread = float(want[:, c].std())
        assert err < 0.05 * spread + 2e-3, (c, float(err), spread)
    # a monotone map per axis: the content's order along each axis is kept
    before = content.double().reshape(3, -1).T @ axes
    for c in range(3):
        rank = torch.corrcoef(torch.stack([before[:, c].argsort().argsort().double(),
                                           got[:, c].argsort().argsort().double()]))[0, 1]  # fmt: skip
        assert rank > 0.999


def test_histogram_matching_keeps_a_dark_style_dark_where_the_mean_and_covariance_map_brightens():
    # A style mostly black with a few bright lights; a content of mid greys with a gentle gradient.
    gen = torch.Generator().manual_seed(0)
    style = torch.zeros(1, 3, 40, 40)
    style[..., :6, :6] = 1.0  # 2% of the picture bright
    content = (torch.linspace(0.3, 0.7, 40).view(1, 1, 1, 40) + 0.02 * torch.rand(1, 3, 40, 40, generator=gen)).clamp(
        0, 1
    )
    hist = color.transfer_colors(content, style, mode="histogram")
    affine = color.transfer_colors(content, style, mode="affine")
    dark = lambda x: float((color.luminance(x) < 0.1).float().mean())  # noqa: E731
    assert dark(hist) > 0.9 and dark(affine) < 0.7, (dark(hist), dark(affine))


def test_an_unknown_colour_matching_mode_is_named_in_one_line():
    x = torch.rand(1, 3, 4, 4)
    with pytest.raises(ValueError) as err:
        color.match_color(x, x, mode="lab")
    assert str(err.value) == "colour matching mode must be 'pca' or 'cholesky', not 'lab'"


def test_matched_luminance_is_clipped_at_black_and_works_on_a_batch():
    """A dark, high-contrast content asks the style's darkest pixels to go below 0: they stop at 0 (the gray
    image stays a picture). Two images at once give each the same gray in all three channels."""

    style = torch.linspace(0, 1, 16).view(1, 1, 4, 4).expand(2, 3, 4, 4)  # luminance ramp 0..1 (gray)
    content = torch.zeros(2, 3, 4, 4)
    content[..., 0, 0] = 1.0  # mean 1/16, one bright pixel: std ~0.25, far more than the mean
    out = color.match_luminance(style, content)
    assert out.shape == (2, 3, 4, 4) and float(out.min()) == 0.0
    ys = color.luminance(style)
    yc = color.luminance(content)
    unclipped = (ys - ys.mean()) * (yc.std() / ys.std()) + yc.mean()
    assert float(unclipped.min()) < -0.05  # the case is real
    assert torch.allclose(out[:, :1], unclipped.clamp(0, 1), atol=1e-6) and torch.equal(out[:, 0], out[:, 2])


def test_under_luminance_preservation_the_network_sees_gray_images(content64, style64, monkeypatch):
    opts = make_options(size=64, steps=8, precision="fp32", preserve_color="luminance", style_weight=100.0)
    runner = Runner(opts)
    seen = {}
    real = runner.method.run

    def spy(inputs, *, callback=None):
        seen["inputs"] = inputs
        return real(inputs, callback=callback)

    monkeypatch.setattr(runner.method, "run", spy)
    out = runner(Stylization(content64, [style64]))
    inputs = seen["inputs"]
    for image in (inputs.content, *inputs.styles):
        assert torch.equal(image[:, 0], image[:, 1]) and torch.equal(image[:, 1], image[:, 2])  # gray
    y_content = color.luminance(content64)
    assert torch.allclose(inputs.content[:, :1], y_content.clamp(0, 1), atol=1e-6)
    y_style = inputs.styles[0][:, :1]
    assert float(y_style.mean()) == pytest.approx(float(y_content.mean()), abs=0.01)  # matched to the content's
    assert float(y_style.std()) == pytest.approx(float(y_content.std()), rel=0.05)
    # the result has the content's chroma (I, Q) wherever its luminance did not have to be clamped
    iq_out, iq_content = color.rgb_to_yiq(out)[:, 1:], color.rgb_to_yiq(content64)[:, 1:]
    inside = (out > 0.01).all(1, keepdim=True) & (out < 0.99).all(1, keepdim=True)
    diff = (iq_out - iq_content).abs()[inside.expand_as(iq_out)]
    assert float(diff.max()) < 2e-3 and float(inside.float().mean()) > 0.5
    # and a luminance of its own: the run did change it
    assert float((color.luminance(out) - y_content).abs().mean()) > 0.005
