"""Tests written for mutants that survived ``make mutation``: each asserts a behaviour a user would notice if it
changed (a region's style, a mask's share, an exact message), derived independently of the code under test."""

from __future__ import annotations

import os

import pytest
import torch
from PIL import Image

from impasto import api, estimate, make_options
from impasto.core import color
from impasto.core.losses import StyleLoss, TVLoss, gram_matrix
from impasto.core.regions import composite, coverage, region_style_losses
from impasto.core.sizes import resize_tensor
from impasto.core.tiles import Tile, axis_spans, core_positions, default_overlap, tile_grid, tiled_apply
from impasto.core.vgg import build_vgg
from impasto.errors import InputError
from impasto.io.atomic import write_bytes
from impasto.io.images import load_image
from impasto.io.video import FrameCache
from impasto.methods import terms
from impasto.methods.adain import AdaIN, FastMethod, downsample_masks, encoder_from_vgg, pad_to_stride, stylize_tiled
from impasto.methods.base import Inputs
from impasto.methods.gatys import Gatys
from impasto.methods.terms import TemporalTerm


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
    mixed = method.run(Inputs(content, two_styles, masks), plan)
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
        FastMethod(opts).run(Inputs(content, two_styles, masks), plan)
    assert str(err.value) == "masks cannot be combined with tiles; use --tile 0 or a smaller --size"


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


def test_default_tile_overlap_is_an_eighth_of_the_tile_and_at_least_16_pixels():
    assert [default_overlap(t) for t in (64, 128, 144, 512, 2048)] == [16, 16, 18, 64, 256]


# --- tile geometry ---------------------------------------------------------------------------------------------


def test_a_grid_shift_is_taken_modulo_one_tile_step():
    assert axis_spans(1000, 256, 32, 1.5) == axis_spans(1000, 256, 32, 0.5) != axis_spans(1000, 256, 32)
    assert axis_spans(1000, 256, 32, 1.0) == axis_spans(1000, 256, 32, 2.0) == axis_spans(1000, 256, 32)


def test_each_tiled_pass_uses_its_own_shifted_grid():
    """Two passes: the plain grid and the half-shifted one (which has one more tile per axis), each tile once."""

    seen: list[tuple[int, int]] = []

    def fn(crop: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(crop.shape[-2:]))
        return crop

    image = torch.rand(1, 3, 200, 300, generator=torch.Generator().manual_seed(0))
    out = tiled_apply(image, fn, tile=128, overlap=16, passes=2)
    expected = [(t.height, t.width) for s in (0.0, 0.5) for t in tile_grid(200, 300, 128, 16, s)]
    assert seen == expected and len(tile_grid(200, 300, 128, 16, 0.5)) > len(tile_grid(200, 300, 128, 16))
    assert torch.allclose(out, image, atol=1e-6)  # an identity stylization blends back to the image


def test_core_positions_take_feature_centres_inside_the_core_counting_padding():
    """Worked by hand: an 8-pixel stride puts feature j's centre at top + 8j + 4 - pad. A tile at the top-left
    with neighbours below and right (overlap 16) has its core in rows [0, 56) and columns [0, 56); with 3 pixels
    of padding the centres are 8j + 1, so rows 0..6 (8*7 + 1 = 57 is out); an edge tile keeps all rows."""

    inner = Tile(0, 0, 64, 64, (False, True, False, True))
    rows, cols = core_positions(inner, 16, 8, (9, 9), (3, 3))
    assert rows == cols == list(range(7))
    tall = Tile(0, 0, 96, 64, (False, False, False, False))  # alone: everything is core; 12 rows, 8 columns
    rows, cols = core_positions(tall, 16, 8, (12, 8))
    assert rows == list(range(12)) and cols == list(range(8))


# --- losses ----------------------------------------------------------------------------------------------------


def test_a_raw_gram_target_is_rescaled_by_the_ratio_of_positions_for_non_square_maps():
    f = torch.randn(1, 4, 3, 5, generator=torch.Generator().manual_seed(1))
    flat = f.flatten(2)[0]
    raw = flat @ flat.T
    assert torch.allclose(StyleLoss.target_of(f, "none", out_positions=30), raw * 2, rtol=1e-5)


def test_total_variation_on_a_ramp_and_a_checkerboard_written_out():
    ramp = torch.arange(4.0).view(1, 1, 4, 1).expand(1, 1, 4, 3)  # rows 0, 1, 2, 3: vertical steps of 1
    assert float(TVLoss()(ramp)) == pytest.approx(1.0)  # mean dh^2 = 1, dw = 0
    board = ((torch.arange(3).view(3, 1) + torch.arange(3).view(1, 3)) % 2).float().view(1, 1, 3, 3)
    assert float(TVLoss()(board)) == pytest.approx(2.0)  # every neighbour differs by 1, both directions


# --- regions ---------------------------------------------------------------------------------------------------


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


# --- AdaIN -----------------------------------------------------------------------------------------------------


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


# --- colour ----------------------------------------------------------------------------------------------------


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


def test_a_mask_count_that_does_not_match_the_styles_is_named_in_one_line(content_path, two_styles):
    engine = AdaIN()
    feats = torch.rand(1, 512, 4, 4)
    with pytest.raises(InputError) as err:
        engine.target_features(feats, two_styles, masks=torch.ones(3, 1, 4, 4) / 3)
    assert str(err.value) == "3 masks for 2 style images (one mask per style)"


# --- the optimizer loop ----------------------------------------------------------------------------------------


def test_zero_steps_return_the_start_clamped_and_one_step_evaluates_once(content_path, style_path):
    content, style = load_image(content_path, 32), load_image(style_path, 32)
    engine = Gatys(make_options(size=32, precision="fp32"))
    loss_terms = engine.build_terms(content, [style])
    start = content * 3 - 1  # values from -1 to 2
    calls = []
    out = engine.optimize(start, loss_terms, steps=0, callback=calls.append)
    assert calls == [] and torch.equal(out, start.clamp(0, 1))
    engine.optimize(start, loss_terms, steps=1, callback=calls.append)
    assert [c.step for c in calls] == [1]


def test_the_start_image_comes_from_the_style_or_from_a_file(content_path, style_path, tmp_path):
    content, style = load_image(content_path, 32), load_image(style_path, 48)
    hw = tuple(content.shape[-2:])
    by_style = Gatys(make_options(init="style")).initial_image(content, [style, content])
    assert torch.equal(by_style, resize_tensor(style, hw))
    picture = tmp_path / "start.png"
    rgb = (torch.rand(3, 20, 30, generator=torch.Generator().manual_seed(4)) * 255).round().byte()
    Image.fromarray(rgb.permute(1, 2, 0).numpy()).save(picture)
    by_file = Gatys(make_options(init=str(picture))).initial_image(content, [style])
    assert torch.equal(by_file, resize_tensor(load_image(picture), hw))


def test_gatys_run_passes_every_input_of_its_one_scale_to_stylize(content_path, style_path):
    """Masks, a start image with the steps already done, the temporal target, the plan's step count (not the
    options') and the callback all reach the run: the same pixels and steps as the explicit call."""

    content, style = load_image(content_path, 32), load_image(style_path, 32)
    styles = [style, style.flip(1)]
    h, w = content.shape[-2:]
    left = torch.zeros(1, 1, h, w)
    left[..., : w // 2] = 1
    masks = torch.cat([left, 1 - left])
    g = torch.Generator().manual_seed(5)
    start = torch.rand(1, 3, h, w, generator=g)
    temporal = (torch.rand(1, 3, h, w, generator=g), torch.ones(1, 1, h, w))
    opts = make_options(size=32, steps=4, precision="fp32", temporal_weight=50.0)
    plan = api.plan(content, styles, opts)
    assert plan.scales[0].steps == 4
    seen, expected = [], []
    out = Gatys(make_options(size=32, steps=9, precision="fp32", temporal_weight=50.0)).run(
        Inputs(content, styles, masks, start=start, start_step=1, temporal=temporal), plan, seen.append
    )
    ref = Gatys(opts).stylize(content, styles, expected.append, masks, 4, start, 1, None, temporal)
    assert torch.equal(out, ref) and [i.step for i in seen] == [i.step for i in expected] == [2, 3, 4]
    unmasked = Gatys(opts).stylize(content, styles, None, None, 4, start, 1, None, temporal)
    untemporal = Gatys(opts).stylize(content, styles, None, masks, 4, start, 1, None, None)
    assert not torch.equal(out, unmasked) and not torch.equal(out, untemporal)  # each input changes the result


def test_stylize_starts_from_the_style_image_when_asked(content_path, style_path):
    content, style = load_image(content_path, 32), load_image(style_path, 48)
    out = Gatys(make_options(size=32, init="style")).stylize(content, [style], steps=0)
    assert torch.equal(out, resize_tensor(style, tuple(content.shape[-2:])))


def test_gatys_run_passes_label_regions(content_path, style_path):
    content, style = load_image(content_path, 32), load_image(style_path, 32)
    top = torch.zeros(1, 1, *content.shape[-2:])
    top[..., : content.shape[-2] // 2, :] = 1
    stop = torch.zeros(1, 1, *style.shape[-2:])
    stop[..., :, : style.shape[-1] // 2] = 1
    regions, style_regions = torch.cat([top, 1 - top]), torch.cat([stop, 1 - stop])
    opts = make_options(size=32, steps=2, precision="fp32")
    plan = api.plan(content, [style], opts)
    out = Gatys(opts).run(Inputs(content, [style], regions=regions, style_regions=style_regions), plan)
    ref = Gatys(opts).stylize(content, [style], None, None, 2, None, 0, (regions, style_regions))
    plain = Gatys(opts).stylize(content, [style], steps=2)
    assert torch.equal(out, ref) and not torch.equal(out, plain)


def test_gatys_run_refuses_a_plan_of_several_scales_in_one_exact_line(content_path, style_path):
    content, style = load_image(content_path, 64), load_image(style_path, 64)
    two = api.plan(content, [style], make_options(size=64, start_size=32, steps=4))
    assert len(two.scales) == 2 and not two.scales[0].tile
    with pytest.raises(ValueError) as err:
        Gatys(make_options(size=64)).run(Inputs(content, [style]), two)
    assert str(err.value) == "Gatys.run takes a single untiled scale; CoarseToFine runs the others"


def test_the_temporal_term_without_a_previous_frame_is_zero():
    term = TemporalTerm(5.0)
    assert term.weight == 0 and float(term(torch.rand(1, 3, 4, 4), {}, {})) == 0.0


def test_a_new_term_without_a_hand_written_gradient_is_planned_under_autograd(monkeypatch):
    """The open list of terms: a term that says nothing about the hand-written pass is not assumed to be in it."""

    class Brightness(terms.Term):
        name = "brightness"

        @classmethod
        def wanted(cls, options):  # noqa: ANN001, ANN206
            return True

    opts = make_options(size=64)
    assert estimate.uses_handwritten_pass(opts, "cpu")
    monkeypatch.setattr(terms, "TERMS", [*terms.TERMS, Brightness])
    assert not estimate.uses_handwritten_pass(opts, "cpu")


def test_the_tiled_fast_method_follows_its_options_and_normalizes_blend_weights(content_path, two_styles):
    """Through FastMethod with --tile: the same pixels as stylize_tiled called with the options by hand, and blend
    weights (1, 3) mean (0.25, 0.75)."""

    content = load_image(content_path, 112)
    opts = make_options(method="fast", size=112, tile=64, tile_overlap=16, tile_passes=1, style_blend=(1, 3),
                        strength=0.8)  # fmt: skip
    plan = api.plan(content, two_styles, opts)
    assert plan.scales[-1].tile == 64
    out = FastMethod(opts).run(Inputs(content, two_styles), plan)
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


# --- atomic writes -------------------------------------------------------------------------------------------


def test_a_write_killed_midway_leaves_a_hidden_tmp_file_that_a_resumed_video_clears(tmp_path, monkeypatch):
    """The temporary file is ``.NAME.*.tmp`` beside its destination: the name the frame cache removes when a
    run begins again after a hard kill (which gives the writer no chance to remove it)."""

    names = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (names.append(os.path.basename(a)), real(a, b))[1])
    cache = FrameCache(tmp_path / "out.frames")
    cache.begin({"run": 1}, keep=0)
    write_bytes(cache.folder / "frame_000001.png", b"frame")
    name = names[-1]
    assert name.startswith(".frame_000001.png.") and name.endswith(".tmp")
    (cache.folder / name).write_bytes(b"half a frame")  # what a SIGKILL between write and rename leaves
    cache.begin({"run": 1}, keep=1)
    assert sorted(p.name for p in cache.folder.iterdir() if p.name.startswith(".frame")) == []
    assert (cache.folder / "frame_000001.png").read_bytes() == b"frame"


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
