"""Trained per-style networks (Johnson, Alahi & Fei-Fei, ECCV 2016): the image transformation network, and the
stylizer that runs a trained model file in one forward pass (the model method, :mod:`impasto.methods.model`).

:class:`TransformerNet` is the network of Johnson et al. with instance normalization (Ulyanov et al. 2016) as
pytorch/examples' fast_neural_style builds it: a 9x9 conv, two stride-2 3x3 convs, five residual blocks, two
upsampling stages (nearest x2 then a 3x3 conv: no transposed convs, so no checkerboard), a 9x9 conv to RGB;
reflection padding everywhere. ``width`` is the first layer's channel count (32 as published; 16 or 8 for a
smaller, faster variant); the deeper layers have 2x and 4x that. It takes RGB in [0, 1] of any size: the input
is mirrored out at the right and bottom to a multiple of 4 (what the two stride-2 convs need to come back to
the same size) and the output cropped back, so odd sizes come out exactly as large as they went in.

:class:`Stylizer` runs a model file (:mod:`impasto.io.models`) on the whole picture, or on a picture too large
for memory in overlapping tiles that share one set of instance-norm statistics (measured on the whole picture
at a reduced size), so no tile is normalized on its own and shows as a patch. :func:`blend` applies
``strength`` in pixel space.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from ..core.sizes import fit_size, resize_tensor
from ..core.tiles import tiled_apply
from ..errors import InputError
from ..io import builtin
from ..io.models import MULTISTYLE, LoadedModel, check_state_dict, load_model
from .layers import InstanceNorm, SharedStatistics, UpsampleConv, WideConv, conv, relu
from .multistyle import MultiStyleNet

#: The network's total downsampling (two stride-2 convs); inputs are padded to a multiple of it.
STRIDE = 4
#: Smallest side the network runs on (the 9x9 convs mirror 4 pixels; the 1/4 scale needs 2 pixels).
MIN_SIDE = 16
#: Longest side of the reduced picture whose instance-norm statistics the tiles share.
STATS_SIZE = 1024
#: Default width (channels of the first layer), as published.
DEFAULT_WIDTH = 32
#: Residual blocks, as published.
RESIDUAL_BLOCKS = 5


class ResidualBlock(nn.Module):
    """conv -> IN -> ReLU -> conv -> IN, plus the input (He et al. 2016, as Johnson et al.'s supplement)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1, self.in1 = conv(channels, channels, 3), InstanceNorm(channels)
        self.conv2, self.in2 = conv(channels, channels, 3), InstanceNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = relu(self.in1(self.conv1(x)))
        return x + self.in2(self.conv2(y))


class TransformerNet(SharedStatistics, nn.Module):
    """The image transformation network of Johnson et al. (see the module docstring); RGB in [0, 1] in, RGB
    out (not clamped: clamp at inference) of the same size."""

    def __init__(self, width: int = DEFAULT_WIDTH) -> None:
        super().__init__()
        if not isinstance(width, int) or not 4 <= width <= 128:
            raise InputError(f"--width must be a whole number from 4 to 128, got {width!r}")
        w1, w2, w3 = width, 2 * width, 4 * width
        self.width = width
        self.conv1, self.in1 = conv(3, w1, 9), InstanceNorm(w1)
        self.conv2, self.in2 = conv(w1, w2, 3, 2), InstanceNorm(w2)
        self.conv3, self.in3 = conv(w2, w3, 3, 2), InstanceNorm(w3)
        self.res = nn.Sequential(*(ResidualBlock(w3) for _ in range(RESIDUAL_BLOCKS)))
        self.up1, self.in4 = UpsampleConv(w3, w2), InstanceNorm(w2)
        self.up2, self.in5 = UpsampleConv(w2, w1), InstanceNorm(w1)
        self.conv_out = WideConv(w1, 3)
        #: Compute the upsampling stages and the last conv in their faster, equivalent forms (see
        #: :meth:`UpsampleConv.fast`, :meth:`WideConv.fast`); the weights are the same either way.
        self.fast = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # Mirror out at the right and bottom to a multiple of 4; a pixel keeps its place on the 4-pixel grid.
        x = F.pad(x, (0, (-w) % STRIDE, 0, (-h) % STRIDE), mode="reflect")
        y = relu(self.in1(self.conv1(x)))
        y = relu(self.in2(self.conv2(y)))
        y = relu(self.in3(self.conv3(y)))
        y = self.res(y)
        if self.fast:
            y = relu(self.in4(self.up1.fast(y)))
            y = relu(self.in5(self.up2.fast(y)))
            return self.conv_out.fast(y)[..., :h, :w]
        y = relu(self.in4(self.up1(y)))
        y = relu(self.in5(self.up2(y)))
        return self.conv_out(y)[..., :h, :w]


def network(model: LoadedModel) -> TransformerNet | MultiStyleNet:
    """The network of a loaded model file, its weights checked against the architecture (one-line error); a
    multi-style network set to the model's ``style_weights`` (default: its first style)."""
    if model.metadata.get("architecture") == MULTISTYLE:
        multi = MultiStyleNet.for_state_dict(model.state_dict)
        check_state_dict(model, multi.state_dict())
        multi.load_state_dict(model.state_dict)
        weights = model.metadata.get("style_weights") or [1.0] + [0.0] * (multi.styles - 1)
        multi.set_style(weights)
        return multi
    net = TransformerNet(model.width)
    check_state_dict(model, net.state_dict())
    net.load_state_dict(model.state_dict)
    return net


class _Clamped(nn.Module):
    """The network as exported: output clamped to [0, 1]."""

    def __init__(self, net: TransformerNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image).clamp(0, 1)


def onnx_bytes(model: LoadedModel, opset: int = 18) -> bytes:
    """The network of ``model`` as an ONNX model (bytes): input ``image`` (N, 3, H, W) RGB in [0, 1] with dynamic
    N, H and W (H, W >= 16), output ``stylized`` of the same shape, clamped to [0, 1]. The upsampling stages are
    exported as written (nearest x2 + conv), the model's metadata as ONNX metadata properties."""
    try:
        import onnx  # noqa: F401 - the exporter needs it
        import onnxscript  # noqa: F401
    except ImportError:
        raise InputError("ONNX export needs the onnx extra: pip install 'impasto[onnx]'") from None
    net = network(model).requires_grad_(False).eval()
    net.fast = False
    wrapped = _Clamped(net).eval()
    example = torch.rand(1, 3, 67, 93)
    batch, height, width = (torch.export.Dim(n, min=m) for n, m in (("batch", 1), ("height", MIN_SIDE),
                                                                       ("width", MIN_SIDE)))  # fmt: skip
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it warns about torchvision's operators, which this network has none of
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapped, (example,), dynamo=True, opset_version=opset, input_names=["image"],
            output_names=["stylized"], dynamic_shapes={"image": {0: batch, 2: height, 3: width}}, verbose=False,
        )  # fmt: skip
    exporter_log.setLevel(level)
    proto = program.model_proto
    # The output has the input's shape (the network crops what its upsampling adds); the exporter writes it as the
    # arithmetic of the strides (Min(height, 4*(...))): named as the input's, it reads as it is.
    for output in proto.graph.output:
        for dim, name in zip(output.type.tensor_type.shape.dim, ("batch", None, "height", "width"), strict=False):
            if name is not None:
                dim.dim_param = name
    for key, value in (("impasto_model", json.dumps(model.metadata, sort_keys=True)),):
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    return proto.SerializeToString()


def onnx_difference(model: LoadedModel, onnx_path: str | os.PathLike, hw: tuple[int, int] = (67, 93)) -> float | None:
    """Largest absolute difference between onnxruntime running ``onnx_path`` and PyTorch running ``model`` on a
    random picture of size ``hw`` (odd by default); None when onnxruntime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    net = network(model).requires_grad_(False).eval()
    x = torch.rand(1, 3, *hw, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = net(x).clamp(0, 1).numpy()
    session = onnxruntime.InferenceSession(os.fspath(onnx_path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"image": x.numpy()})[0]
    if out.shape != ref.shape:
        return float("inf")
    return float(abs(out - ref).max())


def flops_per_pixel(width: int = DEFAULT_WIDTH) -> float:
    """Forward multiply-adds x 2 per input pixel of :class:`TransformerNet` of ``width``."""
    w1, w2, w3 = width, 2 * width, 4 * width
    macs = 81 * 3 * w1 + 9 * w1 * w2 / 4 + 9 * w2 * w3 / 16  # 9x9 conv, two stride-2 convs (outputs at 1/2, 1/4)
    macs += 2 * RESIDUAL_BLOCKS * 9 * w3 * w3 / 16  # residual blocks at 1/4
    macs += 9 * w3 * w2 / 4 + 9 * w2 * w1 + 81 * w1 * 3  # the two upsampling convs and the 9x9 conv to RGB
    return 2 * macs


def pad_small(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """A picture with a side under :data:`MIN_SIDE` replicated out to it (right and bottom); its (H, W)."""
    h, w = x.shape[-2:]
    if h >= MIN_SIDE and w >= MIN_SIDE:
        return x, (h, w)
    return F.pad(x, (0, max(0, MIN_SIDE - w), 0, max(0, MIN_SIDE - h)), mode="replicate"), (h, w)


class Stylizer:
    """A loaded model ready to stylize: ``stylizer(image)`` for a (N, 3, H, W) batch in [0, 1]."""

    def __init__(self, model: LoadedModel, device: torch.device) -> None:
        self.model = model
        self.device = device
        self.net = network(model)
        self.net = self.net.requires_grad_(False).eval().to(device)
        self.memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format
        self.net = self.net.to(memory_format=self.memory_format)
        for norm in self.net.norms():
            norm.channels_last_inference = self.memory_format == torch.channels_last
        self._lock = threading.Lock()  # the instance norms' fixed statistics are state

    @torch.inference_mode()
    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Stylized images (N, 3, H, W) in [0, 1], float32 on the CPU."""
        x, (h, w) = pad_small(image.to(self.device, torch.float32))
        out = self.net(x.contiguous(memory_format=self.memory_format))[..., :h, :w]
        return out.clamp_(0, 1).float().cpu().contiguous()

    def tiled(self, image: torch.Tensor, tile: int, overlap: int | None, passes: int) -> torch.Tensor:
        """The picture in overlapping tiles, every tile normalized with the statistics of the whole picture
        (measured on it at most :data:`STATS_SIZE` pixels long)."""
        h, w = image.shape[-2:]
        small = image
        if max(h, w) > STATS_SIZE:
            sw, sh = fit_size(w, h, STATS_SIZE)
            small = resize_tensor(image, (sh, sw))
        with self._lock:
            x, _ = pad_small(small.to(self.device, torch.float32))
            stats = self.net.statistics(x.contiguous(memory_format=self.memory_format))
            self.net.set_statistics(stats)
            try:
                return tiled_apply(image, self, tile, overlap, passes).clamp_(0, 1)
            finally:
                self.net.set_statistics(None)


@lru_cache(maxsize=4)
def _shared(path: str, mtime_ns: int, size: int, device: str) -> Stylizer:
    return Stylizer(load_model(path), torch.device(device))


def shared_stylizer(path: str, device: torch.device) -> Stylizer:
    """One :class:`Stylizer` per model file (as it is now) or built-in style mix, and device, built once per
    process."""
    if builtin.is_builtin(path):
        return _shared(builtin.canonical(path), 0, 0, str(device))
    try:
        st = os.stat(path)
    except OSError:
        return Stylizer(load_model(path), device)  # load_model reports the problem in one line
    return _shared(os.path.realpath(path), st.st_mtime_ns, st.st_size, str(device))


def blend(result: torch.Tensor, content: torch.Tensor, strength: float) -> torch.Tensor:
    """``strength`` x result + (1 - ``strength``) x content, per pixel and channel (strength 1: the network's
    output, 0: the content)."""
    if strength >= 1:
        return result
    return (strength * result + (1 - strength) * content.to(result.device, result.dtype)).clamp_(0, 1)
