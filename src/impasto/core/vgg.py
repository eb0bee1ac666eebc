"""VGG-19 feature extractor with the layer names of Gatys et al. (conv1_1 ... conv5_4).

The network is defined here (no torchvision). Weights come from :mod:`impasto.weights`. The network is
cut after the deepest layer in use, pooling may be max or average and padding zeros or reflect.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .weights import CONV_NAMES, VGGWeights, load_vgg_weights

_BLOCKS = [2, 2, 4, 4, 4]


def _layer_names() -> list[str]:
    names: list[str] = []
    for block, n_convs in enumerate(_BLOCKS, start=1):
        for i in range(1, n_convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


#: Every layer of VGG-19's feature part, in order, under its paper name.
LAYER_NAMES: list[str] = _layer_names()
_INDEX = {name: i for i, name in enumerate(LAYER_NAMES)}
_POOL_AFTER_CONV = {2: "pool1", 4: "pool2", 8: "pool3", 12: "pool4", 16: "pool5"}


def resolve_layer(name: str) -> str:
    """Paper name of a layer; accepts the tutorial's ``conv_N``/``relu_N``/``pool_N`` aliases."""
    key = name.strip().lower()
    if key in _INDEX:
        return key
    match = re.fullmatch(r"(conv|relu|pool)_(\d+)", key)
    if match:
        kind, n = match.group(1), int(match.group(2))
        if 1 <= n <= 16 and kind in ("conv", "relu"):
            return CONV_NAMES[n - 1].replace("conv", kind)
        if kind == "pool" and n in _POOL_AFTER_CONV:
            return _POOL_AFTER_CONV[n]
    raise InputError(f"unknown VGG-19 layer '{name}' (use conv1_1 ... conv5_4, relu4_2, pool3 or conv_1 ... conv_16)")


def resolve_layers(names: Iterable[str]) -> list[str]:
    """Resolve several layer names (see :func:`resolve_layer`)."""
    return [resolve_layer(n) for n in names]


def channels_of(layer: str) -> int:
    """Number of feature channels at a layer."""
    block = int(resolve_layer(layer)[-3] if "_" in layer else resolve_layer(layer)[-1])
    return [64, 128, 256, 512, 512][block - 1]


def stride_of(layer: str) -> int:
    """Spatial downsampling factor of a layer's output relative to the input."""
    index = _INDEX[resolve_layer(layer)]
    return 2 ** sum(1 for n in LAYER_NAMES[: index + 1] if n.startswith("pool"))


class _ConvLowPrecisionGrad(torch.autograd.Function):
    """A 3x3 convolution computed in fp32 whose input gradient is computed in a lower precision.

    The weights are frozen, so the backward pass is one transposed convolution, of the incoming gradient by
    ``weight_low`` (the weights in bf16/fp16), half the cost of fp32 on hardware with native bf16. Gradient
    rounding barely matters to L-BFGS; rounding in the forward pass (the loss itself) does (docs/design.md,
    "Precision").
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, weight_low: torch.Tensor,
                padding: int) -> torch.Tensor:  # fmt: skip
        ctx.save_for_backward(weight_low)
        ctx.padding = padding
        return F.conv2d(x, weight, bias, padding=padding)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (weight_low,) = ctx.saved_tensors
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv_transpose2d(grad.to(weight_low.dtype), weight_low, padding=ctx.padding).to(grad.dtype)
        return grad_x, None, None, None, None


class VGG19(nn.Module):
    """VGG-19 features up to ``last_layer``; ``forward(x, layers)`` returns the named activations.

    ``x`` is RGB in [0, 1] of shape (N, 3, H, W); the input transform of the weights is applied first.
    """

    def __init__(
        self,
        weights: VGGWeights,
        last_layer: str = "relu5_1",
        pooling: str = "max",
        padding: str = "zeros",
    ) -> None:
        super().__init__()
        if pooling not in ("max", "avg"):
            raise InputError(f"pooling must be 'max' or 'avg', not '{pooling}'")
        if padding not in ("zeros", "reflect"):
            raise InputError(f"padding must be 'zeros' or 'reflect', not '{padding}'")
        self.last_layer = resolve_layer(last_layer)
        self.pooling, self.padding = pooling, padding
        self.layers = LAYER_NAMES[: _INDEX[self.last_layer] + 1]
        self.register_buffer("pre_weight", weights.pre_weight.reshape(3, 3, 1, 1).clone())
        self.register_buffer("pre_bias", weights.pre_bias.clone())
        self.convs = nn.ModuleDict()
        for name in self.layers:
            if name.startswith("conv"):
                w = weights.convs[f"{name}.weight"]
                conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1, padding_mode=padding)
                conv.weight.data.copy_(w)
                conv.bias.data.copy_(weights.convs[f"{name}.bias"])
                self.convs[name] = conv
        self.requires_grad_(False)
        self.eval()
        self.compute_dtype: torch.dtype | None = None
        self.grad_dtype: torch.dtype | None = None
        self._low: dict[str, torch.Tensor] = {}
        self.memory_format = torch.contiguous_format

    def channels_last(self) -> VGG19:
        """Hold weights and activations in channels-last (NHWC) layout; returns self.

        oneDNN's CPU convolutions and max-pooling run 10-25% faster in this layout (``benchmarks/``); the
        returned features are channels-last tensors of the usual (N, C, H, W) shape.
        """
        self.memory_format = torch.channels_last
        for conv in self.convs.values():
            conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last)
        if self.grad_dtype is not None:
            self.low_precision_gradients(self.grad_dtype)
        return self

    def reduced_precision(self, dtype: torch.dtype) -> VGG19:
        """Run every conv after conv1_1 in ``dtype`` (bf16/fp16); returns self.

        The input transform and conv1_1 (1.5% of the arithmetic) stay fp32, and conv1_1's output is cast:
        rounding the image itself to bf16 would hide every pixel change smaller than about one grey level from
        the optimizer, while rounding conv1_1's output costs nothing measurable (default preset, 256 px, 150
        steps: fp32-scored loss 1.433 vs 1.435) and makes every later activation bf16.
        """
        for name, conv in self.convs.items():
            if name != "conv1_1":
                conv.to(dtype)
        self.compute_dtype = dtype
        return self

    def low_precision_gradients(self, dtype: torch.dtype) -> VGG19:
        """Keep the forward pass (so the loss) fp32 but compute the input gradients of every conv after
        conv1_1 in ``dtype`` (bf16/fp16); returns self. The ``mixed`` precision of :mod:`impasto.options`.

        Measured on the tutorial preset (128 px, 300 L-BFGS evaluations): a bf16 forward pass ends with a
        2.7-3.4% higher loss even when only conv3_1 runs in bf16, while bf16 gradients end where fp32 does,
        at three quarters of fp32's cost.
        """
        self.grad_dtype = dtype
        self._low = {name: conv.weight.detach().to(dtype) for name, conv in self.convs.items() if name != "conv1_1"}
        return self

    def backward_weight(self, name: str) -> torch.Tensor:
        """The weights a conv's input gradient is computed with: the low-precision copy under ``mixed``
        (recreated if the network moved to another device since), else the conv's own."""
        weight = self.convs[name].weight
        low = self._low.get(name)
        if low is None:
            return weight
        if low.device != weight.device:
            low = self._low[name] = weight.detach().to(low.dtype)
        return low

    def _conv(self, name: str, x: torch.Tensor) -> torch.Tensor:
        conv = self.convs[name]
        if name not in self._low or not torch.is_grad_enabled():
            return conv(x.to(conv.weight.dtype))
        padding = 1
        if self.padding == "reflect":
            x, padding = F.pad(x, (1, 1, 1, 1), mode="reflect"), 0
        return _ConvLowPrecisionGrad.apply(x, conv.weight, conv.bias, self.backward_weight(name), padding)

    def forward(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.forward_with_taps(x, layers)[0]

    def forward_with_taps(
        self,
        x: torch.Tensor,
        layers: Sequence[str],
        taps: Mapping[str, Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]] | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Activations at ``layers``, and the values of ``taps``: per-layer functions ``f(a) -> (a', value)``
        whose ``a'`` (the same activation) continues through the network, so a loss computed by a tap can
        add its gradient into the one from above without an extra full-size addition."""
        taps = {resolve_layer(k): f for k, f in (taps or {}).items()}
        wanted = set(resolve_layers(layers)) | set(taps)
        missing = wanted - set(self.layers)
        if missing:
            raise InputError(f"layer(s) {sorted(missing)} lie beyond this network's last layer {self.last_layer}")
        if not wanted:  # nothing asked for (a run without content or without style layers): no forward pass
            return {}, {}
        deepest = max(_INDEX[n] for n in wanted)
        out: dict[str, torch.Tensor] = {}
        values: dict[str, torch.Tensor] = {}
        x = F.conv2d(x, self.pre_weight.to(x.dtype), self.pre_bias.to(x.dtype))
        x = x.contiguous(memory_format=self.memory_format)
        for name in self.layers[: deepest + 1]:
            if name.startswith("conv"):
                x = self._conv(name, x)
                if name == "conv1_1" and self.compute_dtype is not None:
                    x = x.to(self.compute_dtype)  # the image's precision matters, conv1_1's output's does not
            elif name.startswith("relu"):
                # In place unless the conv output before it is asked for (conv backward needs only its input).
                x = F.relu(x, inplace=name.replace("relu", "conv") not in wanted)
            elif self.pooling == "max":
                x = F.max_pool2d(x, 2, ceil_mode=True)
            else:
                x = F.avg_pool2d(x, 2, ceil_mode=True)
            if name in taps:
                x, values[name] = taps[name](x)
            if name in wanted:
                out[name] = x
        return out, values


def deepest(layers: Iterable[str]) -> str:
    """The deepest of several layer names."""
    return max(resolve_layers(layers), key=_INDEX.__getitem__)


def build_vgg(
    layers: Iterable[str],
    weights: str | None = None,
    pooling: str = "max",
    padding: str = "zeros",
    device: torch.device | str = "cpu",
) -> VGG19:
    """A VGG-19 cut after the deepest of ``layers``, with bundled or user weights, on ``device``."""
    return VGG19(load_vgg_weights(weights), deepest(layers), pooling, padding).to(device)
