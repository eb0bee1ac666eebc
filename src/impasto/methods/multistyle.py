"""The multi-style network of Dumoulin, Shlens & Kudlur ("A Learned Representation for Artistic Style", ICLR
2017): one set of convolutions for many styles, each style a row of scales and shifts in every conditional
instance norm (:class:`~impasto.methods.layers.ConditionalInstanceNorm`).

:class:`MultiStyleNet` has the layers of the built-in styles' ONNX graph (:mod:`impasto.io.builtin`), with the
same parameter names (``contract.0.w``, ``contract.0.norm.gamma``, ...), so its state dict is the file's
initializers: a 9x9 conv to 32 channels, two stride-2 3x3 convs, six residual blocks, two nearest x2
upsamplings each followed by a 3x3 conv (to 8, then 4 channels), a 9x9 conv to RGB and a sigmoid; no biases;
reflection padding everywhere. It takes RGB in [0, 1] of any size, mirrored out at the right and bottom to a
multiple of 4 and cropped back, as :class:`~impasto.methods.transformer.TransformerNet`.

A network trained from the built-in one (``impasto train``) has the same convolutions and as many style rows as
it learned (one): the model file records its architecture (:data:`impasto.io.models.MULTISTYLE`) and, for the
built-in styles, the style weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..core.subpixel import upsample_conv2d
from ..errors import InputError
from .layers import ConditionalInstanceNorm, SharedStatistics, relu

#: Total downsampling (two stride-2 convs); inputs are padded to a multiple of it.
STRIDE = 4


def strided_reflect_conv(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """A stride-2 3x3 conv of ``x`` (even height and width) reflect-padded by 1, without a padded copy: on even
    sides only the top row and left column of the padding are read, so this is the zero-padded conv plus what
    the mirrored row -1 (= row 1, its columns mirrored too, corner included) and column -1 (= column 1) add to
    the first output row and column."""
    out = F.conv2d(x, w, stride=2, padding=1)
    row = F.conv2d(F.pad(x[:, :, 1:2, :], (1, 1, 0, 0), mode="reflect"), w[:, :, 0:1, :], stride=(1, 2))
    col = F.conv2d(x[:, :, :, 1:2], w[:, :, :, 0:1], stride=(2, 1), padding=(1, 0))
    out[:, :, 0:1, :] += row
    out[:, :, :, 0:1] += col
    return out


class CINConv(nn.Module):
    """A conv (weight ``w``, no bias) with reflection padding of half its kernel, optionally after a nearest x2
    upsampling, followed by a conditional instance norm (``norm``)."""

    def __init__(self, styles: int, c_in: int, c_out: int, kernel: int, stride: int = 1, upsample: bool = False):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(c_out, c_in, kernel, kernel))
        self.norm = ConditionalInstanceNorm(styles, c_out)
        self.stride, self.upsample = stride, upsample
        #: Compute an upsampling conv at the low resolution (:func:`impasto.core.subpixel.upsample_conv2d`: the
        #: same map, 4 multiply-adds per output pixel and channel pair instead of 9, no upsampled copy).
        self.fast = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.w.shape[-1]
        if self.upsample and self.fast and k == 3:
            y = upsample_conv2d(x, self.w, None)
        elif self.stride == 2 and self.fast and k == 3 and x.shape[-2] % 2 == 0 and x.shape[-1] % 2 == 0:
            y = strided_reflect_conv(x, self.w)
        else:
            if self.upsample:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            y = F.conv2d(F.pad(x, (k // 2,) * 4, mode="reflect"), self.w, stride=self.stride)
        return self.norm(y)


class MultiStyleNet(SharedStatistics, nn.Module):
    """Dumoulin et al.'s network as the built-in styles have it (see the module docstring); RGB in [0, 1] in,
    RGB in (0, 1) out, of the same size. ``styles``: rows in every norm's tables; :meth:`set_style` picks the
    mix of them that runs."""

    def __init__(self, styles: int = 26, width: int = 32, expand: Sequence[int] = (8, 4), blocks: int = 6) -> None:
        super().__init__()
        if not isinstance(styles, int) or styles < 1:
            raise InputError(f"a multi-style network needs at least one style, got {styles!r}")
        e1, e2 = expand
        self.styles = styles
        self.contract = nn.ModuleList([CINConv(styles, 3, width, 9), CINConv(styles, width, width, 3, 2),
                                       CINConv(styles, width, width, 3, 2)])  # fmt: skip
        self.res = nn.ModuleList(
            nn.ModuleList([CINConv(styles, width, width, 3), CINConv(styles, width, width, 3)]) for _ in range(blocks)
        )
        self.expand = nn.ModuleList([CINConv(styles, width, e1, 3, upsample=True),
                                     CINConv(styles, e1, e2, 3, upsample=True), CINConv(styles, e2, 3, 9)])  # fmt: skip

    @classmethod
    def for_state_dict(cls, state: dict[str, torch.Tensor]) -> MultiStyleNet:
        """A network shaped like ``state`` (styles, width, expansion channels, residual blocks), not loaded."""
        try:
            styles, width = state["contract.0.norm.gamma"].shape
            expand = (int(state["expand.0.w"].shape[0]), int(state["expand.1.w"].shape[0]))
        except (KeyError, ValueError):
            raise InputError("not a multi-style network (its weights lack contract.0 or expand.0/1)") from None
        blocks = len({k.split(".")[1] for k in state if k.startswith("res.")})
        return cls(int(styles), int(width), expand, blocks)

    @property
    def fast(self) -> bool:
        return all(m.fast for m in self.modules() if isinstance(m, CINConv))

    @fast.setter
    def fast(self, value: bool) -> None:
        for m in self.modules():
            if isinstance(m, CINConv):
                m.fast = value

    def set_style(self, weights: Sequence[float] | torch.Tensor) -> None:
        """Run the mix ``weights`` (one per style row, used as given) of the styles."""
        w = torch.as_tensor(weights, dtype=torch.float32)
        if w.shape != (self.styles,):
            raise InputError(f"style weights must be {self.styles} numbers, got {tuple(w.shape)}")
        for norm in self.norms():
            norm.style = w.to(norm.gamma.device, norm.gamma.dtype)  # type: ignore[union-attr]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (-w) % STRIDE, 0, (-h) % STRIDE), mode="reflect")
        for layer in self.contract:
            x = relu(layer(x))
        for first, second in self.res:  # type: ignore[misc]
            x = x + second(relu(first(x)))
        x = relu(self.expand[0](x))
        x = relu(self.expand[1](x))
        return torch.sigmoid(self.expand[2](x))[..., :h, :w]


def flops_per_pixel(width: int = 32, expand: Sequence[int] = (8, 4), blocks: int = 6) -> float:
    """Forward multiply-adds x 2 per input pixel of :class:`MultiStyleNet`."""
    e1, e2 = expand
    macs = 81 * 3 * width + 9 * width * width / 4 + 9 * width * width / 16 + 2 * blocks * 9 * width * width / 16
    macs += 9 * width * e1 / 4 + 9 * e1 * e2 + 81 * e2 * 3
    return 2 * macs
