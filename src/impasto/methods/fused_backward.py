"""The Gatys loss and its gradient with respect to the image in one hand-written forward/backward pass through
VGG-19.

With frozen weights the backward pass of VGG-19 is short: per conv one transposed convolution, per ReLU a
mask, per pooling a scatter, per loss one product. Autograd runs the same kernels, but every gradient it
passes between them must have the dtype of the forward tensor, so under ``mixed`` precision (fp32 forward,
bf16 gradients) each conv's gradient was cast to bf16 and back, and the ReLU, pooling and Gram products ran
in fp32. Here the gradient stays in the backward precision from the top layer down to conv1_1, the Gram
products of the backward pass run in it too, and a max-pooling that follows a ReLU runs first (max and ReLU
commute) so the ReLU and its mask touch a quarter of the positions. On the tutorial preset at 256 px one
evaluation takes ~0.16 s instead of ~0.18 s (docs/design.md).

:func:`supported` says when it applies (CPU, zero padding, and terms it knows: content terms, plain style
terms, and any term on the image itself, whose autograd gradient is added in the same step); otherwise
:class:`impasto.methods.gatys.Gatys` runs the whole step under autograd. Losses and Gram matrices are fp32, as
on that path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core.losses import ContentLoss, StyleLoss, _gram_divisor, _gram_grad, _gram_residual
from ..core.vgg import VGG19
from .terms import ContentTerm, StyleTerm, Term


@dataclass
class _Record:
    """What one layer's backward needs: ``kind`` and its tensors."""

    kind: str  # conv | relu | maxpool | avgpool | gram | content
    name: str = ""
    tensors: tuple[torch.Tensor, ...] = ()
    shape: tuple[int, ...] = ()  # a pooling's input shape
    positions_first: bool = False  # a Gram loss's feature layout (see impasto.losses._gram_residual)


def applies(device: str, padding: str, known_terms: bool) -> bool:
    """The conditions of this pass: a CPU ``device`` (measured and tested there only; elsewhere autograd),
    zero ``padding``, and only terms it knows. Also what the planner (:mod:`impasto.estimate`) plans with,
    before anything is built."""
    return device.split(":")[0] == "cpu" and padding == "zeros" and known_terms


def knows(term: Term) -> bool:
    """Whether this pass evaluates ``term``: content terms, plain style terms, terms on the image itself."""
    if isinstance(term, StyleTerm):
        return term.plain
    if isinstance(term, ContentTerm):
        return all(type(loss) is ContentLoss for loss in term.losses.values())
    return not term.layers


def supported(net: VGG19, terms: Sequence[Term]) -> bool:
    """Whether :func:`loss_and_grad` can evaluate ``terms`` on ``net``."""
    return applies(net.pre_weight.device.type, net.padding, all(knows(t) for t in terms))


def loss_and_grad(
    net: VGG19, image: torch.Tensor, terms: Sequence[Term]
) -> tuple[float, dict[str, float], torch.Tensor]:
    """Weighted total loss of ``image`` (N, 3, H, W) in [0, 1], each term's weighted value, and the gradient
    (fp32, image layout).

    ``terms`` must satisfy :func:`supported`. The values equal those of
    :meth:`impasto.methods.gatys.Gatys.evaluate`; the gradient equals autograd's up to the rounding of the
    backward precision.
    """
    parts = dict.fromkeys((t.name for t in terms), 0.0)
    active = [t for t in terms if t.weight != 0]
    feature_terms = [t for t in active if t.layers]
    with torch.no_grad():
        records = _forward(net, image.float(), feature_terms, parts) if feature_terms else []
        grad = _backward(net, records)
    image_terms = [t for t in active if not t.layers]
    if image_terms:
        with torch.enable_grad():
            x = image.detach().float().requires_grad_(True)
            values = [t(x, {}, {}) * t.weight for t in image_terms]
            sum(values[1:], values[0]).backward()
        for t, v in zip(image_terms, values, strict=True):
            parts[t.name] += float(v.detach())
        grad = grad.add_(x.grad) if grad is not None else x.grad
    if grad is None:
        grad = torch.zeros_like(image, dtype=torch.float32)
    return sum(parts.values(), 0.0), parts, grad


def _low_dtype(net: VGG19) -> torch.dtype:
    """The backward pass's precision above conv1_1."""
    return net.grad_dtype or net.compute_dtype or torch.float32


def _forward(net: VGG19, image: torch.Tensor, terms: Sequence[Term], parts: dict[str, float]) -> list[_Record]:
    """The forward pass with the terms computed at their layers (values added to ``parts``); records what the
    backward needs.

    ``same`` is a tensor in the backward precision holding x's current values (x itself or a copy) once a
    record needs one, so a Gram product and a ReLU mask share it; x is changed in place only when no record
    holds x itself.
    """
    low = _low_dtype(net)
    at: dict[str, list[tuple[Term, str]]] = {}  # layer -> (term, layer) evaluated there, in term order
    for term in terms:
        for n in term.layers:
            at.setdefault(n, []).append((term, n))
    wanted = set(at)
    layers = net.layers[: max(net.layers.index(n) for n in wanted) + 1]
    records = [_Record("conv", "input")]
    x = F.conv2d(image, net.pre_weight, net.pre_bias).contiguous(memory_format=net.memory_format)
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
        for term, n in at.get(name, ()):
            if isinstance(term, StyleTerm):
                if same is None:
                    same = x if x.dtype == low else x.to(low)
                value, record = _style(x, same, term.losses[n], term.weight * term.layer_weights[n], low)
            else:
                value, record = _content(x, term.losses[n], term.weight, low)
            parts[term.name] += value
            records.append(record)
    return records


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
