"""Tests written for mutants that survived ``make mutation``: each asserts a behaviour a user would notice if it
changed (a region's style, a mask's share, an exact message), derived independently of the code under test."""

from __future__ import annotations

import pytest
import torch

from impasto import api, make_options
from impasto.core.losses import StyleLoss, gram_matrix
from impasto.core.regions import region_style_losses
from impasto.core.tiles import default_overlap
from impasto.core.vgg import build_vgg
from impasto.errors import InputError
from impasto.io.images import load_image
from impasto.methods.adain import AdaIN, FastMethod, downsample_masks, encoder_from_vgg
from impasto.methods.base import Inputs


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
