
import numpy as np
import pytest
import torch

from impasto.core.losses import ContentLoss, StyleLoss, TVLoss, gram_matrix


def test_gram_matrix_by_hand():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)  # C=2, H=1, W=2
    raw = torch.tensor([[1 * 1 + 2 * 2, 1 * 3 + 2 * 4], [3 * 1 + 4 * 2, 3 * 3 + 4 * 4]], dtype=torch.float32)
    torch.testing.assert_close(gram_matrix(f, "none")[0], raw)
    torch.testing.assert_close(gram_matrix(f, "positions")[0], raw / 2)
    torch.testing.assert_close(gram_matrix(f, "elements")[0], raw / 4)
    with pytest.raises(ValueError):
        gram_matrix(f, "bogus")


def test_gram_is_computed_in_fp32():
    f = torch.rand(1, 4, 3, 3).bfloat16()
    assert gram_matrix(f).dtype == torch.float32


def test_guided_gram_with_full_mask_equals_plain_and_half_mask_selects():
    f = torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(gram_matrix(f, mask=torch.ones(1, 1, 4, 4)), gram_matrix(f))
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    torch.testing.assert_close(gram_matrix(f, mask=mask), gram_matrix(f[..., :2, :]))


def test_content_loss_is_mse():
    target, x = torch.rand(1, 2, 3, 3), torch.rand(1, 2, 3, 3)
    assert ContentLoss(target)(x).item() == pytest.approx(((x - target) ** 2).mean().item(), rel=1e-6)
    scaled = ContentLoss(target, normalize=True)(x).item()
    assert scaled == pytest.approx(((x - target) ** 2).mean().item() / (target**2).mean().item(), rel=1e-5)


def test_style_loss_by_hand_and_blend():
    s1, s2, x = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    g1, g2, gx = gram_matrix(s1), gram_matrix(s2), gram_matrix(x)
    loss = StyleLoss([g1])(x).item()
    assert loss == pytest.approx(((gx - g1) ** 2).mean().item(), rel=1e-5)
    blended = StyleLoss([g1, g2], weights=[3, 1])(x).item()
    assert blended == pytest.approx(((gx - (0.75 * g1 + 0.25 * g2)) ** 2).mean().item(), rel=1e-5)
    assert StyleLoss([gx])(x).item() == pytest.approx(0.0, abs=1e-10)


def test_article_layer_norm_divides_by_chw():
    s, x = torch.rand(1, 3, 4, 5), torch.rand(1, 3, 4, 5)
    target = StyleLoss.target_of(s, "none")
    plain = StyleLoss([target], gram_norm="none")(x).item()
    assert StyleLoss([target], gram_norm="none", layer_norm="elements")(x).item() == pytest.approx(plain / 60)


def test_raw_gram_targets_rescale_to_output_positions():
    """With raw Gram matrices a style image of another size gives the same target per position."""
    s = torch.rand(1, 3, 4, 4)
    big = s.repeat(1, 1, 2, 2)  # same statistics, 4x the positions
    torch.testing.assert_close(StyleLoss.target_of(big, "none", 16), gram_matrix(s, "none"))


def test_tv_loss_by_hand():
    img = torch.zeros(1, 1, 2, 2)
    img[..., 0, 0] = 1.0
    # vertical diffs: [1, 0] -> mean of squares 0.5; horizontal: [1, 0] -> 0.5
    assert TVLoss()(img).item() == pytest.approx(1.0)
    assert TVLoss()(torch.ones(1, 3, 5, 5)).item() == 0.0


@pytest.mark.parametrize("norm", ["positions", "elements", "none"])
def test_fused_gram_mse_matches_autograd(norm):
    from impasto.core.losses import gram_mse

    f = torch.rand(1, 5, 6, 7).float().requires_grad_(True)
    target = gram_matrix(torch.rand(1, 5, 6, 7), norm)
    ref_f = f.detach().clone().requires_grad_(True)
    ref = torch.nn.functional.mse_loss(gram_matrix(ref_f, norm), target)
    ref.backward()
    out = gram_mse(f, target, norm)
    out.backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(f.grad, ref_f.grad, rtol=1e-4, atol=1e-7)


def test_fused_gram_mse_bf16_features_give_bf16_grad():
    from impasto.core.losses import gram_mse

    f = torch.rand(1, 4, 5, 5).bfloat16().requires_grad_(True)
    gram_mse(f, torch.zeros(1, 4, 4)).backward()
    assert f.grad.dtype == torch.bfloat16 and f.grad.abs().sum() > 0


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("downstream", [False, True])
def test_gram_tap_gradient_matches_autograd(channels_last, downstream):
    """The tap passes features through unchanged and its fused backward (loss gradient accumulated into the
    gradient from above, channels-last read without a copy) equals plain autograd."""
    from impasto.core.losses import gram_matrix, gram_mse_tap

    torch.manual_seed(0)
    f = torch.randn(2, 5, 6, 7)
    if channels_last:
        f = f.contiguous(memory_format=torch.channels_last)
    target = torch.randn(1, 5, 5)
    target = target + target.transpose(1, 2)  # a Gram target is symmetric
    w = torch.randn(2, 5, 6, 7)

    def total(out, loss):
        return 3 * loss + ((out * w).sum() if downstream else 0)

    a = f.clone().requires_grad_(True)
    out, loss = gram_mse_tap(a, target, "elements")
    assert torch.equal(out, f)
    total(out, loss).backward()
    b = f.clone().requires_grad_(True)
    ref = torch.nn.functional.mse_loss(gram_matrix(b, "elements"), target.expand(2, 5, 5))
    total(b, ref).backward()
    assert torch.allclose(loss, ref, rtol=1e-5) and torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-6)


def test_tv_loss_is_the_mean_squared_difference_of_neighbours_written_out():
    image = torch.rand(1, 3, 5, 7, generator=torch.Generator().manual_seed(4))
    x = image.double().numpy()
    expected = (np.diff(x, axis=2) ** 2).mean() + (np.diff(x, axis=3) ** 2).mean()
    assert float(TVLoss()(image)) == pytest.approx(expected, rel=1e-5)


def test_raw_gram_target_is_rescaled_by_positions_of_a_non_square_style():
    """With raw Gram matrices (the article) a style of h x w positions is rescaled to the result's positions:
    G * out / (h * w), written out for a 2 x 5 feature map."""
    f = torch.rand(1, 4, 2, 5, generator=torch.Generator().manual_seed(5))
    flat = f.reshape(4, 10).double()
    expected = (flat @ flat.T) * (30 / 10)
    got = StyleLoss.target_of(f, "none", out_positions=30)
    torch.testing.assert_close(got.double().reshape(4, 4), expected, rtol=1e-5, atol=1e-6)


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
