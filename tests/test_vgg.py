import pytest
import torch
import torch.nn.functional as F

from impasto.core.vgg import LAYER_NAMES, build_vgg, deepest, resolve_layer, stride_of
from impasto.core.weights import CONV_NAMES, load_vgg_weights
from impasto.errors import InputError


def test_layer_list_is_vgg19():
    assert len([n for n in LAYER_NAMES if n.startswith("conv")]) == 16
    assert len([n for n in LAYER_NAMES if n.startswith("relu")]) == 16
    assert [n for n in LAYER_NAMES if n.startswith("pool")] == [f"pool{i}" for i in range(1, 6)]
    assert LAYER_NAMES[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert LAYER_NAMES[-1] == "pool5"


@pytest.mark.parametrize(
    "alias, name",
    [("conv_1", "conv1_1"), ("conv_4", "conv2_2"), ("conv_5", "conv3_1"), ("relu_10", "relu4_2"),
     ("conv_16", "conv5_4"), ("pool_2", "pool1"), ("pool_16", "pool5"), ("ReLU4_2", "relu4_2")],
)  # fmt: skip
def test_tutorial_aliases(alias, name):
    assert resolve_layer(alias) == name


@pytest.mark.parametrize("bad", ["conv6_1", "conv_17", "pool_3", "fc7", ""])
def test_unknown_layer_is_an_input_error(bad):
    with pytest.raises(InputError, match="unknown VGG-19 layer"):
        resolve_layer(bad)


def test_strides_and_deepest():
    assert stride_of("relu1_1") == 1 and stride_of("pool1") == 2 and stride_of("relu4_2") == 8
    assert deepest(["relu1_1", "conv4_2", "relu3_1"]) == "conv4_2"


def test_network_is_cut_after_deepest_layer():
    net = build_vgg(["relu3_1", "conv2_2"])
    assert list(net.convs) == CONV_NAMES[:5]
    with pytest.raises(InputError, match="beyond"):
        net(torch.rand(1, 3, 32, 32), ["relu4_1"])


def test_layers_map_to_the_right_modules():
    """relu2_1 equals a hand-built conv1_1 -> relu -> conv1_2 -> relu -> pool -> conv2_1 -> relu."""
    w = load_vgg_weights()
    net = build_vgg(["relu2_1", "conv1_2"])
    x = torch.rand(1, 3, 20, 24)
    out = net(x, ["relu2_1", "conv1_2", "relu1_1"])
    h = F.conv2d(x, w.pre_weight.reshape(3, 3, 1, 1), w.pre_bias)
    h = F.relu(F.conv2d(h, w.convs["conv1_1.weight"], w.convs["conv1_1.bias"], padding=1))
    torch.testing.assert_close(out["relu1_1"], h)
    conv12 = F.conv2d(h, w.convs["conv1_2.weight"], w.convs["conv1_2.bias"], padding=1)
    torch.testing.assert_close(out["conv1_2"], conv12)
    h = F.max_pool2d(F.relu(conv12), 2)
    h = F.relu(F.conv2d(h, w.convs["conv2_1.weight"], w.convs["conv2_1.bias"], padding=1))
    torch.testing.assert_close(out["relu2_1"], h, rtol=1e-4, atol=1e-3)


def test_conv_output_is_not_modified_by_following_relu():
    net = build_vgg(["conv1_1", "relu1_1"])
    out = net(torch.rand(1, 3, 16, 16), ["conv1_1", "relu1_1"])
    assert (out["conv1_1"] < 0).any()
    torch.testing.assert_close(out["relu1_1"], out["conv1_1"].clamp_min(0))


def test_pooling_and_padding_options_change_features():
    x = torch.rand(1, 3, 24, 24)
    base = build_vgg(["relu2_1"])(x, ["relu2_1"])["relu2_1"]
    avg = build_vgg(["relu2_1"], pooling="avg")(x, ["relu2_1"])["relu2_1"]
    refl = build_vgg(["relu2_1"], padding="reflect")(x, ["relu2_1"])["relu2_1"]
    assert not torch.allclose(base, avg) and not torch.allclose(base, refl)
    with pytest.raises(InputError):
        build_vgg(["relu2_1"], pooling="min")


def test_odd_sizes_give_ceil_sized_features():
    out = build_vgg(["relu4_1"])(torch.rand(1, 3, 33, 50), ["relu4_1"])["relu4_1"]
    assert out.shape == (1, 512, 5, 7)


def test_channels_last_network_gives_the_same_features():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 37, 45)
    plain = build_vgg(["relu3_1"])
    fast = build_vgg(["relu3_1"]).channels_last()
    a, b = plain(x, ["relu1_1", "relu3_1"]), fast(x, ["relu1_1", "relu3_1"])
    assert b["relu3_1"].is_contiguous(memory_format=torch.channels_last)
    for n in a:
        assert torch.allclose(a[n], b[n], atol=1e-4, rtol=1e-4)
