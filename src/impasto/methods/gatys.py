"""The optimization method of Gatys et al.: change an image's pixels until its VGG-19 features match
the content image's features and the style images' Gram matrices.

:class:`Gatys` builds the loss terms (:mod:`impasto.methods.terms`) from the targets and runs the optimizer
loop (L-BFGS or Adam), reporting each evaluation to a callback. It runs one whole-image scale; coarse to fine
and tiles are :mod:`impasto.methods.coarse_to_fine` and :mod:`impasto.methods.tiled`, which drive it.

:data:`SPEC` is ``--method gatys``: its checks and its memory and time (:func:`peak_bytes`, :func:`seconds`),
which the photorealistic optimization (:mod:`impasto.methods.photo`) shares.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import time
from collections.abc import Callable, Sequence

import torch

from ..core import lbfgs
from ..core.color import transfer_colors
from ..core.costs import (
    MB,
    PICTURE_COPIES,
    RUNTIME_BYTES,
    VGG_FILE_BYTES,
    activation_bytes_per_pixel,
    flops_per_pixel,
    flops_rate,
    param_count,
)
from ..core.device import pick_device, pick_dtype, pick_grad_dtype
from ..core.losses import gram_matrix
from ..core.progress import Callback, StepInfo
from ..core.schedule import split_steps
from ..core.sizes import fit_size, resize_tensor
from ..core.vgg import VGG19, build_vgg
from ..errors import NonFiniteLossError, StylizeInterrupted
from ..io.images import load_image
from ..options import Options
from . import fused_backward
from .base import MethodSpec, Stylization, Work, refuse_label_maps, refuse_model, refuse_photo_weight
from .terms import StyleGrams, Targets, Term, build_terms, term_classes


class Gatys:
    """Gatys et al. style transfer with the options of :class:`impasto.options.Options`."""

    def __init__(self, options: Options, device: torch.device | None = None, net: VGG19 | None = None) -> None:
        self.options = options
        self.device = device or pick_device(options.device)
        self.dtype = pick_dtype(options.precision, self.device)
        self.content_layers = options.content_layer_names
        self.style_layers = options.style_layer_names
        self.net = net or build_vgg(
            self.content_layers + self.style_layers, options.weights, options.pooling, options.padding, self.device
        )
        if self.dtype is not None:
            # Hold the frozen network in the reduced precision: autocast's arithmetic without re-casting every
            # weight at every step (autocast caches casts only for weights that need grad).
            self.net = self.net.reduced_precision(self.dtype)
        self.grad_dtype = pick_grad_dtype(options.precision, self.device)
        if self.grad_dtype is not None:
            self.net = self.net.low_precision_gradients(self.grad_dtype)
        if self.device.type == "cpu":
            self.net = self.net.channels_last()
        self.history: list[dict[str, float]] = []
        #: Use the hand-written forward/backward pass of :mod:`impasto.methods.fused_backward` where it applies.
        self.handwritten = True

    # -- targets ---------------------------------------------------------------------------------------
    def features(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Features of an image at ``layers`` (no gradient), from the network the steps use."""
        with torch.no_grad():
            return self.net(self.net_input(image), layers)

    def net_input(self, image: torch.Tensor) -> torch.Tensor:
        """An image on the run's device as fp32 (the network casts after its first conv)."""
        return image.to(self.device, torch.float32)

    def style_image_for(self, style: torch.Tensor, content_hw: Sequence[int]) -> torch.Tensor:
        """A style image resized so its longest side is ``style_scale`` times the content's longest side."""
        w, h = fit_size(style.shape[-1], style.shape[-2], self.options.style_size(max(content_hw)))
        return resize_tensor(style, (h, w))

    def targets(
        self,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        masks: torch.Tensor | None = None,
        regions: tuple[torch.Tensor, torch.Tensor] | None = None,
        *,
        temporal: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> Targets:
        """What the terms are built from for a whole content image: its features, each style's features and
        Gram matrices (the style resized for this content's size), and the masks and the temporal loss's
        (warped previous result, weights) at this size. ``regions``: label-matched (content (K, 1, H, W),
        style (K, 1, h, w)) regions, resized with their images."""
        o = self.options
        content = content.to(self.device)
        content_features = self.features(content, self.content_layers + self.style_layers)
        sized = [self.style_image_for(s, content.shape[-2:]) for s in styles]
        style_features = [self.features(s, self.style_layers) for s in sized]
        grams: dict[str, list[torch.Tensor]] = {n: [] for n in self.style_layers}
        positions: dict[str, list[int]] = {n: [] for n in self.style_layers}
        for feats in style_features:
            for n in self.style_layers:
                grams[n].append(gram_matrix(feats[n], o.gram_norm))
                positions[n].append(feats[n].shape[-2] * feats[n].shape[-1])
        if masks is not None:
            masks = resize_tensor(masks.float(), tuple(content.shape[-2:])).to(self.device)
        targets = Targets(content, content_features, StyleGrams(grams, positions), style_features, masks)
        if regions is not None:
            targets.regions = resize_tensor(regions[0].float(), tuple(content.shape[-2:])).to(self.device)
            targets.style_regions = resize_tensor(regions[1].float(), tuple(sized[0].shape[-2:])).to(self.device)
        if temporal is not None:
            hw = tuple(content.shape[-2:])
            targets.temporal = (resize_tensor(temporal[0].float(), hw).to(self.device),
                                resize_tensor(temporal[1].float(), hw).to(self.device))  # fmt: skip
        return targets

    def build_terms(
        self,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        masks: torch.Tensor | None = None,
        regions: tuple[torch.Tensor, torch.Tensor] | None = None,
        *,
        temporal: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> list[Term]:
        """The loss terms for a whole content image, their targets computed once."""
        return build_terms(self.options, self.targets(content, styles, masks, regions, temporal=temporal))

    # -- loss and optimization ------------------------------------------------------------------------------
    def evaluate(self, image: torch.Tensor, terms: Sequence[Term]) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted total loss of an image (differentiable) and each term's weighted value."""
        active = [t for t in terms if t.weight != 0]
        taps: dict = {}
        for term in active:
            for layer, tap in term.taps().items():
                if layer in taps:
                    raise ValueError(f"two loss terms tap layer {layer}")
                taps[layer] = tap
        layers = list(dict.fromkeys(n for t in active for n in t.layers))
        feats, tapped = self.net.forward_with_taps(self.net_input(image), layers, taps) if layers else ({}, {})
        weighted = {id(t): t(image, feats, tapped) * t.weight for t in active}
        zero = torch.zeros((), device=image.device)
        total = functools.reduce(operator.add, weighted.values()) if weighted else zero
        parts = {t.name: float(weighted[id(t)].detach()) if id(t) in weighted else 0.0 for t in terms}
        return total, parts

    def loss_and_grad(self, image: torch.Tensor, terms: Sequence[Term]) -> tuple[float, dict[str, float], torch.Tensor]:
        """Weighted total loss of an image, each term's value, and the gradient with respect to the image (fp32).

        By the hand-written pass of :mod:`impasto.methods.fused_backward` where it applies (CPU, zero padding, terms
        it knows), else by autograd through :meth:`evaluate`.
        """
        if self.handwritten and fused_backward.supported(self.net, terms):
            return fused_backward.loss_and_grad(self.net, self.net_input(image), terms)
        with torch.enable_grad():
            leaf = image.detach().requires_grad_(True)
            total, parts = self.evaluate(leaf, terms)
            if total.requires_grad:  # not when every term has weight 0
                total.backward()
        grad = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
        return float(total.detach()), parts, grad.contiguous()  # oneDNN may return a channels-last gradient

    def optimize(
        self,
        image: torch.Tensor,
        terms: Sequence[Term],
        steps: int | None = None,
        callback: Callback | None = None,
    ) -> torch.Tensor:
        """Optimize the pixels of ``image`` for ``steps`` evaluations; returns the best image evaluated (the one
        with the lowest loss: L-BFGS without a line search, and Adam, can end above it), in [0, 1].

        Raises :class:`NonFiniteLossError` and, on Ctrl-C, :class:`StylizeInterrupted`, each with the best image
        evaluated so far (the start image before the first evaluation).
        """
        o = self.options
        steps = o.steps if steps is None else steps
        x = (
            image.detach()
            .to(self.device)
            .clone(memory_format=torch.contiguous_format)
            .clamp_(0, 1)
            .requires_grad_(True)
        )
        if steps == 0:
            return x.detach()
        best, best_value = x.detach().clone(), math.inf
        count = 0
        start = time.perf_counter()

        def closure() -> float:
            nonlocal count, best, best_value
            with torch.no_grad():
                x.clamp_(0, 1)
            value, parts, grad = self.loss_and_grad(x, terms)
            if not math.isfinite(value):
                message = f"the loss became {value} at step {count + 1}; stopped, best image so far kept"
                raise NonFiniteLossError(message, best)
            x.grad = grad
            count += 1
            evaluated = x.detach().clone()
            if value < best_value:
                best, best_value = evaluated, value
            info = StepInfo(count, steps, value, parts, time.perf_counter() - start, evaluated)
            self.history.append(info.as_row())
            if callback is not None:
                callback(info)
            return value

        try:
            if o.optimizer == "lbfgs":
                # Normalized losses (every preset but the seeds') are guarded against divergence; the seeds' raw
                # losses keep torch's arithmetic, spikes included (see impasto.core.lbfgs).
                lbfgs.minimize(closure, x, steps, history_size=o.lbfgs_history, guard=o.normalize_losses)
            else:
                optimizer = torch.optim.Adam([x], lr=o.lr)
                for _ in range(steps):
                    closure()
                    optimizer.step()
        except KeyboardInterrupt:
            raise StylizeInterrupted(best) from None
        return best

    def initial_image(
        self,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        regions: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The starting image: content, noise (seeded), the first style image, the content recoloured to the
        styles (``colors``: region by region with label-matched ``regions``, :func:`transfer_colors`), or an
        image file."""
        o = self.options
        hw = tuple(content.shape[-2:])
        if o.init == "content":
            return content.clone()
        if o.init == "noise":
            gen = torch.Generator().manual_seed(o.seed)
            return torch.rand(content.shape, generator=gen)
        if o.init == "style":
            return resize_tensor(styles[0], hw)
        if o.init == "colors":
            if regions is not None:
                return transfer_colors(content, styles[0], resize_tensor(regions[0].float(), hw), regions[1])
            return transfer_colors(content, styles, blend=o.style_blend)
        return resize_tensor(load_image(o.init, what="init image"), hw)

    def stylize(
        self, stylization: Stylization, *, steps: int | None = None, callback: Callback | None = None
    ) -> torch.Tensor:
        """Stylize ``stylization``'s content whole, at its size, for ``steps`` (default: the options'); returns
        the result on the CPU. Its masks give region k style k, its regions are label-matched regions; its
        ``start`` (resized to the content) and ``start_step`` resume a run: the ``steps - start_step`` remaining
        steps, numbered on from ``start_step``; its ``temporal`` is the temporal loss's target (video; see
        :class:`~impasto.methods.terms.TemporalTerm`). Its plan is not read (see :meth:`run`)."""
        s = stylization
        torch.manual_seed(self.options.seed)
        self.history = []
        terms = self.build_terms(s.content, s.styles, s.masks, s.regions, temporal=s.temporal)
        hw = tuple(s.content.shape[-2:])
        init = self.initial_image(s.content, s.styles, s.regions) if s.start is None else resize_tensor(s.start, hw)
        steps = self.options.steps if steps is None else steps
        start_step = s.start_step
        if not start_step:
            return self.optimize(init, terms, steps, callback=callback).cpu()

        def numbered(info: StepInfo) -> None:
            if callback is not None:
                callback(dataclasses.replace(info, step=start_step + info.step, total=steps))

        try:
            return self.optimize(init, terms, max(0, steps - start_step), callback=numbered).cpu()
        finally:
            for row in self.history:
                row["step"] += start_step

    def run(self, stylization: Stylization, *, callback: Callback | None = None) -> torch.Tensor:
        """Run a plan of one whole-image scale (see :class:`impasto.methods.coarse_to_fine.CoarseToFine`)."""
        plan = stylization.plan
        if plan is None or len(plan.scales) != 1 or plan.scales[0].tile:
            raise ValueError("Gatys.run takes a single untiled scale; CoarseToFine runs the others")
        return self.stylize(stylization, steps=plan.scales[0].steps, callback=callback)


# -- the method's spec: its checks and its cost -------------------------------------------------------------
#: Memory a run holds besides the runtime, weights and per-pixel terms (workspaces, arenas; calibrated).
WORK_FIXED_BYTES = 150 * MB
#: Peak bytes per pixel held by the backward pass besides the saved activations: gradients and float32 Gram
#: temporaries at full resolution (calibrated, the same in every precision).
BACKWARD_BYTES_PER_PIXEL = 1480
#: The same for the hand-written pass of :mod:`impasto.methods.fused_backward` (CPU, zero padding, terms it
#: knows), which frees each layer's tensors as its backward goes by and holds no autograd graph, and what it
#: saves of the fixed part (calibrated).
FUSED_BACKWARD_BYTES_PER_PIXEL = 130
FUSED_FIXED_SAVING = 40 * MB
#: Image-sized float32 buffers besides the optimizer's history (pixels, gradient, copies; L-BFGS holds the point
#: before its step through each evaluation, to store the step actually taken where the clamp moved a pixel, and
#: the best point and its gradient, to go back to where the loss climbs).
IMAGE_COPIES = 13
#: Backward pass cost relative to the forward pass (input gradients only: the weights are fixed).
BACKWARD_RATIO = 1.0


def uses_handwritten_pass(options: Options, device: str) -> bool:
    """Whether a run takes the hand-written pass of :mod:`impasto.methods.fused_backward` (every term of the run
    is one it evaluates; masks, for one, make the style term guided)."""
    known = all(cls.handwritten(options) for cls in term_classes(options))
    return fused_backward.applies(device, options.padding, known)


def terms_bytes_per_pixel(options: Options) -> float:
    """What the run's loss terms add per working pixel (see :meth:`impasto.methods.terms.Term.bytes_per_pixel`)."""
    return sum(cls.bytes_per_pixel(options) for cls in term_classes(options))


def peak_bytes(
    options: Options, area: int, picture: int, style_pixels: int, steps: int, precision: str,
    style_area: int | None = None, device: str = "cpu",
) -> int:  # fmt: skip
    """Peak bytes of the optimization working on ``area`` pixels of a ``picture``-pixel image, with style images
    of ``style_pixels`` passed through the network ``style_area`` pixels at a time.

    Fixed: the runtime, the VGG-19 file, :data:`WORK_FIXED_BYTES`, the network's float32 parameters and, in
    bf16/fp16/mixed, a 16-bit copy. Per working pixel: the activations autograd keeps, what the backward pass
    holds at its peak, each loss term's own bytes, and :data:`IMAGE_COPIES` plus the optimizer's history of
    image-sized float32 buffers (L-BFGS: 2 x min(steps, history); Adam: 2). Per pixel of the picture:
    :data:`~impasto.core.costs.PICTURE_COPIES` buffers, and the style images."""
    layers = [*options.content_layers, *options.style_layers]
    elem = 2 if precision in ("bf16", "fp16") else 4  # "mixed" keeps fp32 activations
    params = param_count(layers)
    low_copy = 2 if precision in ("bf16", "fp16", "mixed") else 0  # the network's weights in 16 bits
    hand_written = uses_handwritten_pass(options, device)
    fixed = RUNTIME_BYTES + VGG_FILE_BYTES + WORK_FIXED_BYTES + params * (4 + low_copy)
    fixed -= FUSED_FIXED_SAVING if hand_written else 0
    backward = FUSED_BACKWARD_BYTES_PER_PIXEL if hand_written else BACKWARD_BYTES_PER_PIXEL
    act = activation_bytes_per_pixel(layers, options.content_layers, elem, options.pooling) + backward
    act += terms_bytes_per_pixel(options)
    history = 2 if options.optimizer == "adam" else 2 * min(steps, getattr(options, "lbfgs_history", 20))
    work = area * (act + 12 * (IMAGE_COPIES + history))
    # Style targets: a forward pass (no gradient) over the style image; its peak is two conv outputs.
    style_fwd = (style_pixels if style_area is None else style_area) * (2 * 64 * elem + 64 * 4 + 12)
    return int(fixed + max(work, style_fwd) + picture * 12 * PICTURE_COPIES + style_pixels * 12)


def step_seconds(options: Options, pixels: float, device: str, precision: str) -> float:
    """Seconds of one loss evaluation (forward and backward through VGG-19) over ``pixels`` pixels."""
    layers = [*options.content_layers, *options.style_layers]
    rate = flops_rate(device, precision)
    return pixels * flops_per_pixel(layers) * (1 + BACKWARD_RATIO) / rate


def seconds(options: Options, pixels: float, steps: int, device: str, precision: str) -> float:
    """Seconds of ``steps`` loss evaluations over ``pixels`` pixels (plus the targets' forward passes)."""
    return step_seconds(options, pixels, device, precision) * (steps + 1)


def scale_cost(
    options: Options, work: Work, timing: Callable[[Options, float, int, str, str], float] = seconds
) -> tuple[int, float]:
    """(peak bytes, seconds) of one scale, whole or in tiles (each pass over the tiles doing its share of the
    steps); ``timing(options, pixels, steps, device, precision)`` is the time of some steps over some pixels."""
    tiled = work.tile is not None
    per_pass = split_steps(work.steps, work.passes) if tiled else [work.steps]
    steps_each = max(per_pass) if per_pass else 0
    style_area = min(work.style_pixels, work.tile * work.tile) if tiled else None  # type: ignore[operator]
    peak = peak_bytes(options, work.area, work.picture, work.style_pixels, steps_each, work.precision, style_area,
                      work.device)  # fmt: skip
    secs = sum(timing(options, px, k, work.device, work.precision)
               for px, k in zip(work.pass_pixels, per_pass, strict=True))  # fmt: skip
    return peak, secs


def check(options: Options) -> None:
    """The optimization takes masks, several styles and tiles; not a model file, label maps or the
    photorealism regularizer (the photo method's)."""
    refuse_model(options)
    refuse_label_maps(options)
    refuse_photo_weight(options)


SPEC = MethodSpec("gatys", build=Gatys, cost=scale_cost, check=check)
