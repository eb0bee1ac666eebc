"""The plain Gatys loss and its gradient with respect to the image in one hand-written pass through VGG-19.

With frozen weights the backward pass of VGG-19 is short: per conv one transposed convolution, per ReLU a
mask, per pooling a scatter, per loss one product. Autograd runs the same kernels, but every gradient it
passes between them must have the dtype of the forward tensor, so under ``mixed`` precision (fp32 forward,
bf16 gradients) each conv's gradient was cast to bf16 and back, and the ReLU, pooling and Gram products ran
in fp32. Here the gradient stays in the backward precision from the top layer down to conv1_1, the Gram
products of the backward pass run in it too, and a max-pooling that follows a ReLU runs first (max and ReLU
commute) so the ReLU and its mask touch a quarter of the positions. On the tutorial preset at 256 px one
evaluation takes ~0.16 s instead of ~0.18 s (README: "Benchmarks").

:func:`supported` says when it applies (CPU, plain content and style losses, zero padding); otherwise
:class:`impasto.gatys.StyleTransfer` uses autograd. Losses and Gram matrices are fp32, as on that path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .losses import ContentLoss, StyleLoss, _gram_divisor, _gram_grad, _gram_residual
from .vgg import VGG19, resolve_layer

if TYPE_CHECKING:
    from .gatys import Losses


@dataclass
class _Record:
    """What one layer's backward needs: ``kind`` and its tensors."""

    kind: str  # conv | relu | maxpool | avgpool | gram | content
    name: str = ""
    tensors: tuple[torch.Tensor, ...] = ()
    shape: tuple[int, ...] = ()  # a pooling's input shape
    positions_first: bool = False  # a Gram loss's feature layout (see impasto.losses._gram_residual)


def applies(device: str, padding: str, plain_losses: bool) -> bool:
    """The conditions of this pass: a CPU ``device`` (measured and tested there only; elsewhere autograd),
    zero ``padding``, and only plain content and style losses (no region masks). Also what
    :mod:`impasto.estimate` plans with, before anything is built."""
    return device.split(":")[0] == "cpu" and padding == "zeros" and plain_losses


def supported(net: VGG19, losses: Losses) -> bool:
    """Whether :func:`loss_and_grad` can evaluate ``losses`` (an :class:`impasto.gatys.Losses`) on ``net``."""
    plain = all(type(loss) is StyleLoss for loss in losses.style.values()) and all(
        type(loss) is ContentLoss for loss in losses.content.values()
    )
    return applies(net.pre_weight.device.type, net.padding, plain)


def loss_and_grad(net: VGG19, image: torch.Tensor, losses: Losses) -> tuple[float, dict[str, float], torch.Tensor]:
    """Weighted total loss of ``image`` (N, 3, H, W) in [0, 1], its parts, and its gradient (fp32, image layout).

    ``losses`` must satisfy :func:`supported`. The values equal those of
    :meth:`impasto.gatys.StyleTransfer.evaluate`; the gradient equals autograd's up to the rounding of the
    backward precision.
    """
    with torch.no_grad():
        records, content, style = _forward(net, image.float(), losses)
        grad = _backward(net, records)
        tv = 0.0
    if losses.tv_weight > 0:
        with torch.enable_grad():
            x = image.detach().float().requires_grad_(True)
            tv_loss = losses.tv(x) * losses.tv_weight
            tv_loss.backward()
        tv = float(tv_loss.detach())
        grad = grad.add_(x.grad) if grad is not None else x.grad
    if grad is None:
        grad = torch.zeros_like(image, dtype=torch.float32)
    return content + style + tv, {"content": content, "style": style, "tv": tv}, grad


def _low_dtype(net: VGG19) -> torch.dtype:
    """The backward pass's precision above conv1_1."""
    return net.grad_dtype or net.compute_dtype or torch.float32


def _forward(net: VGG19, image: torch.Tensor, losses: Losses) -> tuple[list[_Record], float, float]:
    """The forward pass with the losses computed at their layers; records what the backward needs.

    ``same`` is a tensor in the backward precision holding x's current values (x itself or a copy) once a
    record needs one, so a Gram product and a ReLU mask share it; x is changed in place only when no record
    holds x itself.
    """
    low = _low_dtype(net)
    wanted = {resolve_layer(n) for n in losses.layers}
    layers = net.layers[: max(net.layers.index(n) for n in wanted) + 1]
    records = [_Record("conv", "input")]
    x = F.conv2d(image, net.pre_weight, net.pre_bias).contiguous(memory_format=net.memory_format)
    content = style = 0.0
    same: torch.Tensor | None = None
    pooled = False  # the pooling that follows this ReLU already ran
    for i, name in enumerate(layers):
        if name.startswith("conv"):
            conv = net.convs[name]
            x = conv(x.to(conv.weight.dtype))
            if name == "conv1_1" and net.compute_dtype is not None:
                x = x.to(net.compute_dtype)
            records.append(_Record("conv", name))
            same = None
        elif name.startswith("relu"):
            following = layers[i + 1] if i + 1 < len(layers) else ""
            if net.pooling == "max" and following.startswith("pool") and name not in wanted:
                # max(relu(a)) == relu(max(a)), gradients included: pool first, then a quarter-size ReLU.
                records.append(_Record("maxpool", shape=tuple(x.shape)))
                x, records[-1].tensors = _max_pool(x)
                same, pooled = None, True
            if same is not None:  # the sign of the ReLU's input is that of its output
                records.append(_Record("relu", tensors=(same,)))
                x = F.relu(x) if same is x else x.relu_()
                same = None
            else:
                x = x.relu_()
                same = x if x.dtype == low else x.to(low)
                records.append(_Record("relu", tensors=(same,)))
        elif pooled:
            pooled = False
        else:
            records.append(_Record(f"{net.pooling}pool", shape=tuple(x.shape)))
            if net.pooling == "max":
                x, records[-1].tensors = _max_pool(x)
            else:
                x = F.avg_pool2d(x, 2, ceil_mode=True)
            same = None
        if name in losses.content:
            value, record = _content(x, losses.content[name], losses.content_weight, low)
            content += value
            records.append(record)
        if name in losses.style:
            if same is None:
                same = x if x.dtype == low else x.to(low)
            weight = losses.style_weight * losses.style_layer_weights[name]
            value, record = _style(x, same, losses.style[name], weight, low)
            style += value
            records.append(record)
    return records, content, style


def _max_pool(x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
    out, indices = F.max_pool2d_with_indices(x, 2, ceil_mode=True)
    return out, (indices,)


def _content(x: torch.Tensor, loss: ContentLoss, weight: float, low: torch.dtype) -> tuple[float, _Record]:
    """Content MSE at ``x`` and its gradient (kept for the backward pass)."""
    diff = x.float() - loss.target
    coef = weight * loss.scale
    value = coef * float(diff.pow(2).mean())
    return value, _Record("content", tensors=(diff.mul_(2.0 * coef / diff.numel()).to(low),))


def _style(x: torch.Tensor, same: torch.Tensor, loss: StyleLoss, weight: float, low: torch.dtype
           ) -> tuple[float, _Record]:  # fmt: skip
    """Gram MSE at ``x`` (the math of :class:`impasto.losses._GramMSETap`) and what its backward needs:
    ``same`` (x in the backward precision) and d(loss)/dG, so that d(loss)/dF = (d(loss)/dG) F."""
    n, c = x.shape[:2]
    divisor = _gram_divisor(x, loss.gram_norm)
    diff, pf = _gram_residual(x, loss.target.expand(n, c, c), divisor)
    coef = weight * loss.scale / (x[0].numel() if loss.layer_norm == "elements" else 1.0)
    value = coef * float(diff.pow(2).mean())
    d = diff.mul_(coef * 4.0 / (divisor * diff.numel())).to(low)  # symmetric
    return value, _Record("gram", tensors=(same, d), positions_first=pf)


def _backward(net: VGG19, records: list[_Record]) -> torch.Tensor | None:
    """Walk the records backwards, the gradient in the backward precision until conv1_1. Each record is
    dropped once used, so its tensors are freed as the gradients below grow (as autograd frees its graph)."""
    g: torch.Tensor | None = None
    while records:
        r = records.pop()
        if r.kind == "gram":
            same, d = r.tensors
            g = _gram_grad(same, d, r.positions_first, g)
        elif r.kind == "content":
            g = r.tensors[0] if g is None else g.add_(r.tensors[0])
        elif g is None:  # nothing above this layer depends on the image
            continue
        elif r.kind == "relu":
            g = torch.ops.aten.threshold_backward(g, r.tensors[0], 0)
        elif r.kind == "maxpool":
            g = torch.ops.aten.max_pool2d_with_indices_backward(
                g, _empty_like(g, r.shape, net), [2, 2], [2, 2], [0, 0], [1, 1], True, r.tensors[0]
            )
        elif r.kind == "avgpool":
            g = torch.ops.aten.avg_pool2d_backward(g, _empty_like(g, r.shape, net), [2, 2], [2, 2], [0, 0], True,
                                                   True, None)  # fmt: skip
        elif r.name == "input":
            g = F.conv_transpose2d(g.float(), net.pre_weight)
        else:
            weight = net.backward_weight(r.name)
            g = F.conv_transpose2d(g.to(weight.dtype), weight, padding=1)
    return None if g is None else g.contiguous()


def _empty_like(g: torch.Tensor, shape: tuple[int, ...], net: VGG19) -> torch.Tensor:
    """An uninitialized tensor of a pooling's input shape (its backward reads only the shape and layout)."""
    return torch.empty(shape, dtype=g.dtype, device=g.device, memory_format=net.memory_format)
