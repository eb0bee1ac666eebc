"""The optimization method of Gatys et al.: change an image's pixels until its VGG-19 features match
the content image's features and the style images' Gram matrices.

:class:`StyleTransfer` builds the loss terms (:mod:`impasto.losses`) from the targets and runs the
optimizer loop (L-BFGS or Adam), reporting each evaluation to a callback.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from . import fused, lbfgs
from .device import pick_device, pick_dtype, pick_grad_dtype
from .errors import ImpastoError, NonFiniteLossError
from .images import fit_size, load_image, resize_tensor
from .losses import ContentLoss, StyleLoss, TVLoss
from .masks import region_style_losses
from .options import Options
from .vgg import VGG19, build_vgg, resolve_layers


@dataclass
class StepInfo:
    """What the callback receives after each loss evaluation (or Adam step)."""

    step: int
    total: int
    loss: float
    content: float
    style: float
    tv: float
    elapsed: float
    image: torch.Tensor  # the evaluated image, (1, 3, H, W), detached; do not modify

    def as_row(self) -> dict[str, float]:
        """The numbers of this step, for a loss history."""
        return {"step": self.step, "loss": self.loss, "content": self.content, "style": self.style,
                "tv": self.tv, "seconds": round(self.elapsed, 4)}  # fmt: skip


class StylizeInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; ``image`` holds the latest image."""

    def __init__(self, image: torch.Tensor) -> None:
        super().__init__("interrupted")
        self.image = image


@dataclass
class Losses:
    """The loss terms of one run, with their weights."""

    content: dict[str, ContentLoss]
    style: dict[str, StyleLoss]
    style_layer_weights: dict[str, float]
    content_weight: float
    style_weight: float
    tv_weight: float
    tv: TVLoss = field(default_factory=TVLoss)

    @property
    def layers(self) -> list[str]:
        return list(dict.fromkeys([*self.content, *self.style]))


def strength_factor(strength: float) -> float:
    """What ``--strength`` multiplies the style weight by: 10 ** (4 (strength - 1)), 0 at strength 0.

    Strength 1 keeps the style/content weight ratio, each 0.25 less divides it by 10, 0 is content only.
    """
    return 0.0 if strength <= 0 else 10.0 ** (4.0 * (strength - 1.0))


class StyleTransfer:
    """Gatys et al. style transfer with the options of :class:`impasto.options.Options`."""

    def __init__(self, options: Options, device: torch.device | None = None, net: VGG19 | None = None) -> None:
        self.options = options
        self.device = device or pick_device(options.device)
        self.dtype = pick_dtype(options.precision, self.device)
        self.content_layers = resolve_layers(options.content_layers)
        self.style_layers = resolve_layers(options.style_layers)
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
        #: Region masks (K, 1, H, W), one per style image (guided Gram matrices); resized to each content.
        self.masks: torch.Tensor | None = None
        #: Use the hand-written forward/backward pass of :mod:`impasto.fused` where it applies.
        self.fused = True

    # -- targets ---------------------------------------------------------------------------------------
    def features(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Features of an image at ``layers`` (no gradient), from the network the steps use."""
        with torch.no_grad():
            return self.net(self.net_input(image), layers)

    def net_input(self, image: torch.Tensor) -> torch.Tensor:
        """An image on the run's device as fp32 (the network casts after its first conv)."""
        return image.to(self.device, torch.float32)

    def style_image_for(self, style: torch.Tensor, content_hw: tuple[int, int]) -> torch.Tensor:
        """A style image resized so its longest side is ``style_scale`` times the content's longest side."""
        longest = max(16, round(self.options.style_scale * max(content_hw)))
        w, h = fit_size(style.shape[-1], style.shape[-2], longest)
        return resize_tensor(style, (h, w))

    def build_losses(self, content: torch.Tensor, styles: Sequence[torch.Tensor]) -> Losses:
        """Content and style loss terms with their targets computed once."""
        o = self.options
        content = content.to(self.device)
        positions: dict[str, int] = {}
        content_feats = self.features(content, self.content_layers + self.style_layers)
        for name, feat in content_feats.items():
            positions[name] = feat.shape[-2] * feat.shape[-1]
        content_losses = {n: ContentLoss(content_feats[n], o.normalize_losses) for n in self.content_layers}
        grams: dict[str, list[torch.Tensor]] = {n: [] for n in self.style_layers}
        style_feats = []
        for style in styles:
            feats = self.features(self.style_image_for(style, content.shape[-2:]), self.style_layers)
            style_feats.append(feats)
            for n in self.style_layers:
                grams[n].append(StyleLoss.target_of(feats[n], o.gram_norm, positions[n]))
        blend = o.style_blend if o.style_blend is not None else [1.0] * len(styles)
        if len(blend) != len(styles):
            raise ImpastoError(f"--style-blend has {len(blend)} weights for {len(styles)} style images")
        style_losses = {
            n: StyleLoss(grams[n], blend, o.gram_norm, o.normalize_losses, o.style_layer_norm)
            for n in self.style_layers
        }
        if self.masks is not None:  # spatial control: one guided Gram loss per region and layer
            masks = resize_tensor(self.masks.float(), tuple(content.shape[-2:])).to(self.device)
            style_losses = region_style_losses(  # type: ignore[assignment]
                style_feats, content_feats, masks, self.style_layers,
                o.gram_norm, o.normalize_losses, o.style_layer_norm,
            )  # fmt: skip
        layer_w = o.style_layer_weights or [1.0] * len(self.style_layers)
        return Losses(
            content_losses, style_losses, dict(zip(self.style_layers, layer_w)),
            o.content_weight, o.style_weight * strength_factor(o.strength), o.tv_weight,
        )  # fmt: skip

    # -- loss and optimization ------------------------------------------------------------------------------
    def evaluate(self, image: torch.Tensor, losses: Losses) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted total loss of an image (differentiable) and its parts as floats."""
        # Plain Gram losses run as taps inside the forward pass (their backward fused with the network's).
        taps = {n: loss.tap for n, loss in losses.style.items() if type(loss) is StyleLoss}
        feats, tapped = self.net.forward_with_taps(self.net_input(image), losses.layers, taps)
        content = sum((losses.content[n](feats[n]) for n in losses.content), torch.zeros((), device=image.device))
        style = sum(
            (losses.style_layer_weights[n] * (tapped[n] if n in tapped else losses.style[n](feats[n]))
             for n in losses.style),
            torch.zeros((), device=image.device),
        )  # fmt: skip
        tv = losses.tv(image) if losses.tv_weight > 0 else torch.zeros((), device=image.device)
        content, style, tv = content * losses.content_weight, style * losses.style_weight, tv * losses.tv_weight
        total = content + style + tv
        return total, {"content": float(content.detach()), "style": float(style.detach()), "tv": float(tv.detach())}

    def loss_and_grad(self, image: torch.Tensor, losses: Losses) -> tuple[float, dict[str, float], torch.Tensor]:
        """Weighted total loss of an image, its parts, and its gradient with respect to the image (fp32).

        By the hand-written pass of :mod:`impasto.fused` where it applies (CPU, plain content and style
        losses, zero padding), else by autograd through :meth:`evaluate`.
        """
        if self.fused and fused.supported(self.net, losses):
            return fused.loss_and_grad(self.net, self.net_input(image), losses)
        with torch.enable_grad():
            leaf = image.detach().requires_grad_(True)
            total, parts = self.evaluate(leaf, losses)
            total.backward()
        grad = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
        return float(total.detach()), parts, grad.contiguous()  # oneDNN may return a channels-last gradient

    def optimize(
        self,
        image: torch.Tensor,
        losses: Losses,
        steps: int | None = None,
        callback: Callable[[StepInfo], None] | None = None,
    ) -> torch.Tensor:
        """Optimize the pixels of ``image`` for ``steps`` evaluations; returns the result in [0, 1].

        Raises :class:`NonFiniteLossError` (with ``.image``, the last image with a finite loss) and
        :class:`StylizeInterrupted` on Ctrl-C (with ``.image``, the latest image).
        """
        o = self.options
        steps = o.steps if steps is None else steps
        x = image.detach().to(self.device).clone().clamp_(0, 1).requires_grad_(True)
        if steps == 0:
            return x.detach()
        last_good = x.detach().clone()
        count = 0
        start = time.perf_counter()

        def closure() -> float:
            nonlocal count, last_good
            with torch.no_grad():
                x.clamp_(0, 1)
            value, parts, grad = self.loss_and_grad(x, losses)
            if not math.isfinite(value):
                err = NonFiniteLossError(f"the loss became {value} at step {count + 1}; stopped, last good image kept")
                err.image = last_good  # type: ignore[attr-defined]
                raise err
            x.grad = grad
            count += 1
            last_good = x.detach().clone()
            info = StepInfo(count, steps, value, parts["content"], parts["style"], parts["tv"],
                            time.perf_counter() - start, last_good)  # fmt: skip
            self.history.append(info.as_row())
            if callback is not None:
                callback(info)
            return value

        try:
            if o.optimizer == "lbfgs":
                lbfgs.minimize(closure, x, steps, history_size=o.lbfgs_history)
            else:
                optimizer = torch.optim.Adam([x], lr=o.lr)
                for _ in range(steps):
                    closure()
                    optimizer.step()
        except KeyboardInterrupt:
            raise StylizeInterrupted(x.detach().clamp(0, 1).clone()) from None
        return x.detach().clamp_(0, 1)

    def initial_image(self, content: torch.Tensor, styles: Sequence[torch.Tensor]) -> torch.Tensor:
        """The starting image: content, noise (seeded), the first style image, or an image file."""
        o = self.options
        hw = tuple(content.shape[-2:])
        if o.init == "content":
            return content.clone()
        if o.init == "noise":
            gen = torch.Generator().manual_seed(o.seed)
            return torch.rand(content.shape, generator=gen)
        if o.init == "style":
            return resize_tensor(styles[0], hw)
        return resize_tensor(load_image(o.init, what="init image"), hw)

    def stylize(
        self,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        callback: Callable[[StepInfo], None] | None = None,
    ) -> torch.Tensor:
        """Stylize a content tensor (1, 3, H, W) with style tensors; returns the result on the CPU."""
        torch.manual_seed(self.options.seed)
        self.history = []
        losses = self.build_losses(content, styles)
        init = self.initial_image(content, styles)
        return self.optimize(init, losses, callback=callback).cpu()
