"""The open list of loss terms that the optimization methods minimize.

A term has a ``name`` (its column in the loss history, the progress bar and the plot), a ``weight``, the
VGG-19 ``layers`` whose features it reads (none for a term on the image itself, such as total variation), and
computes its unweighted value. :data:`TERMS` lists the term classes; :func:`build_terms` builds those a run
wants, in that order. The planner asks the same classes, before anything is built, whether the hand-written
pass (:mod:`impasto.methods.fused_backward`) evaluates them and how much memory they add per pixel.

Adding a term: one :class:`Term` subclass here (``build``, ``forward``; ``wanted``, ``handwritten`` and
``bytes_per_pixel`` where the defaults do not fit) and its class in :data:`TERMS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..core.losses import ContentLoss, StyleLoss, TVLoss
from ..core.matting import laplacian_csr_bytes_per_pixel, laplacian_tensor, photorealism_loss
from ..core.regions import region_style_losses
from ..errors import ImpastoError
from ..options import Options

#: A tap (see :meth:`impasto.core.vgg.VGG19.forward_with_taps`): features -> (the same features, a value).
Tap = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class StyleGrams:
    """Gram matrices of each style image at each style layer (normalized as ``gram_norm`` says), with the number
    of positions each was taken over (to rescale raw Gram matrices to another size)."""

    grams: dict[str, list[torch.Tensor]]
    positions: dict[str, list[int]]


@dataclass
class Targets:
    """What terms are built from at one working size: a whole scale, or one tile."""

    content: torch.Tensor  # the content image (or tile) on the run's device
    content_features: dict[str, torch.Tensor]  # at the content and style layers
    style_grams: StyleGrams
    style_features: list[dict[str, torch.Tensor]] | None = None  # per style image (whole images only)
    masks: torch.Tensor | None = None  # (K, 1, H, W) regions at the content's size
    content_scale: float | None = None  # tiles: the whole picture's content normalization
    # Label-matched regions (photorealistic transfer): content region k at the content's size takes the Gram
    # matrix of the (one) style image over style region k, at that style image's size.
    regions: torch.Tensor | None = None  # (K, 1, H, W)
    style_regions: torch.Tensor | None = None  # (K, 1, h, w)
    # Video: the previous frame's result warped to this frame (1, 3, H, W) and its per-pixel weights (1, 1, H, W)
    # from the flow's consistency check, at this working size.
    temporal: tuple[torch.Tensor, torch.Tensor] | None = None


def strength_factor(strength: float) -> float:
    """What ``--strength`` multiplies the style weight by: 10 ** (4 (strength - 1)), 0 at strength 0.

    Strength 1 keeps the style/content weight ratio, each 0.25 less divides it by 10, 0 is content only.
    """
    return 0.0 if strength <= 0 else 10.0 ** (4.0 * (strength - 1.0))


class Term(nn.Module):
    """One weighted term of the objective: ``weight * term(image, features, tapped)``."""

    name: ClassVar[str] = ""

    def __init__(self, weight: float, layers: Sequence[str] = ()) -> None:
        super().__init__()
        self.weight = float(weight)
        self.layers: tuple[str, ...] = tuple(layers)

    # -- what the planner asks before anything is built ----------------------------------------------------
    @classmethod
    def wanted(cls, options: Options) -> bool:
        """Whether a run with these options has this term."""
        return True

    @classmethod
    def handwritten(cls, options: Options) -> bool:
        """Whether the hand-written pass evaluates this term (else the whole step runs under autograd)."""
        return False

    @classmethod
    def bytes_per_pixel(cls, options: Options) -> float:
        """Memory this term adds per working pixel, beyond the network's (for the plan's estimate)."""
        return 0.0

    # -- building and evaluating -----------------------------------------------------------------------------
    @classmethod
    def build(cls, options: Options, targets: Targets) -> Term:
        """The term with its targets, for one working size."""
        raise NotImplementedError

    def taps(self) -> dict[str, Tap]:
        """Parts computed inside the forward pass, by layer (only one term may tap a layer)."""
        return {}

    def forward(
        self, image: torch.Tensor, features: Mapping[str, torch.Tensor], tapped: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """The unweighted value (a differentiable scalar) from the image, its features and this term's taps."""
        raise NotImplementedError


class ContentTerm(Term):
    """Feature reconstruction (Gatys et al.): MSE to the content image's features at the content layers."""

    name = "content"

    def __init__(self, weight: float, losses: Mapping[str, ContentLoss]) -> None:
        super().__init__(weight, tuple(losses))
        self.losses = dict(losses)

    @classmethod
    def wanted(cls, options: Options) -> bool:
        return bool(options.content_layers)  # no content layers: no content term

    @classmethod
    def handwritten(cls, options: Options) -> bool:
        return True

    @classmethod
    def build(cls, options: Options, targets: Targets) -> ContentTerm:
        losses = {}
        for n in options.content_layer_names:
            loss = ContentLoss(targets.content_features[n], options.normalize_losses)
            if targets.content_scale is not None:
                loss.scale = targets.content_scale
            losses[n] = loss
        return cls(options.content_weight, losses)

    def forward(self, image, features, tapped):  # noqa: ANN001, ANN201 - see Term.forward
        zero = torch.zeros((), device=image.device)
        return sum((self.losses[n](features[n]) for n in self.losses), zero)


class StyleTerm(Term):
    """Gram matrix MSE at the style layers (Gatys et al.), blended styles; with region masks, one guided Gram
    loss per region and layer (Gatys et al. 2017)."""

    name = "style"

    def __init__(self, weight: float, losses: Mapping[str, nn.Module], layer_weights: Mapping[str, float]) -> None:
        super().__init__(weight, tuple(losses))
        self.losses = dict(losses)
        self.layer_weights = dict(layer_weights)

    @property
    def plain(self) -> bool:
        """Plain Gram losses (no regions): computed as taps, and by the hand-written pass."""
        return all(type(loss) is StyleLoss for loss in self.losses.values())

    @classmethod
    def wanted(cls, options: Options) -> bool:
        return bool(options.style_layers)  # no style layers: no style term

    @classmethod
    def handwritten(cls, options: Options) -> bool:
        return not options.masks and not options.mask_map and not options.content_seg

    @classmethod
    def build(cls, options: Options, targets: Targets) -> StyleTerm:
        o = options
        layers = o.style_layer_names
        grams, positions = targets.style_grams.grams, targets.style_grams.positions
        n_styles = len(next(iter(grams.values()))) if grams else 0
        blend = o.style_blend if o.style_blend is not None else [1.0] * n_styles
        if len(blend) != n_styles:
            raise ImpastoError(f"--style-blend has {len(blend)} weights for {n_styles} style images")
        if targets.regions is not None:  # label-matched regions: each takes the style's own region k
            if targets.style_features is None or len(targets.style_features) != 1:
                raise ImpastoError("label maps need exactly one style image (and cannot be combined with tiles)")
            k = targets.regions.shape[0]
            losses: dict[str, nn.Module] = dict(
                region_style_losses(
                    targets.style_features * k,
                    targets.content_features,
                    targets.regions,
                    layers,
                    o.gram_norm,
                    o.normalize_losses,
                    o.style_layer_norm,
                    style_masks=targets.style_regions,
                    weighted=True,
                )  # fmt: skip
            )
        elif targets.masks is not None:  # spatial control: one guided Gram loss per region and layer
            if targets.style_features is None:
                raise ImpastoError("masks need the style images' features (masks cannot be combined with tiles)")
            losses = dict(
                region_style_losses(
                    targets.style_features,
                    targets.content_features,
                    targets.masks,
                    layers,
                    o.gram_norm,
                    o.normalize_losses,
                    o.style_layer_norm,
                )  # fmt: skip
            )
        else:
            losses = {}
            for n in layers:
                f = targets.content_features[n]
                here = f.shape[-2] * f.shape[-1]
                if o.gram_norm == "none":  # raw Gram matrices grow with the positions: rescale to this size
                    ts = [g * (here / p) for g, p in zip(grams[n], positions[n], strict=True)]
                else:
                    ts = grams[n]
                losses[n] = StyleLoss(ts, blend, o.gram_norm, o.normalize_losses, o.style_layer_norm)
        layer_w = o.style_layer_weights or [1.0] * len(layers)
        return cls(o.style_weight * strength_factor(o.strength), losses, dict(zip(layers, layer_w, strict=True)))

    def taps(self) -> dict[str, Tap]:
        return {n: loss.tap for n, loss in self.losses.items() if type(loss) is StyleLoss}

    def forward(self, image, features, tapped):  # noqa: ANN001, ANN201 - see Term.forward
        zero = torch.zeros((), device=image.device)
        values = (tapped[n] if n in tapped else loss(features[n]) for n, loss in self.losses.items())
        return sum((self.layer_weights[n] * v for n, v in zip(self.losses, values, strict=True)), zero)


class TVTerm(Term):
    """Total variation: mean squared difference of neighbouring pixels (a smoothness prior on the image)."""

    name = "tv"

    def __init__(self, weight: float) -> None:
        super().__init__(weight)
        self.tv = TVLoss()

    @classmethod
    def handwritten(cls, options: Options) -> bool:
        return True  # a term on the image: the hand-written pass adds its autograd gradient in the same step

    @classmethod
    def build(cls, options: Options, targets: Targets) -> TVTerm:
        return cls(options.tv_weight)

    def forward(self, image, features, tapped):  # noqa: ANN001, ANN201 - see Term.forward
        return self.tv(image)


class PhotoTerm(Term):
    """The photorealism regularizer of Luan et al. (2017): sum over colour channels c of V_c^T L V_c / N, with
    L the matting Laplacian of the content image (:mod:`impasto.core.matting`), V_c the image's channel c as a
    vector and N its pixel count. It is 0 for an output that is locally an affine function of the content's
    colours, whatever the colours: it penalizes painterly texture and bent edges, not recolouring.

    Divided by N (the paper sums) so that one weight means the same at every size and scale of a coarse-to-fine
    run; docs/guides/photorealistic.md derives the paper's lambda = 1e4 in these units. L is built
    once per working size (``build``), in float64, and held in float32 as a sparse CSR tensor; its value and
    gradient 2 L V / N come from one sparse product (:func:`impasto.core.matting.photorealism_loss`, a custom
    autograd function), so the hand-written pass adds it as a term on the image.
    """

    name = "photo"

    def __init__(self, weight: float, laplacian: torch.Tensor) -> None:
        super().__init__(weight)
        self.laplacian = laplacian

    @classmethod
    def wanted(cls, options: Options) -> bool:
        return options.photo_weight > 0

    @classmethod
    def handwritten(cls, options: Options) -> bool:
        return True  # a term on the image

    @classmethod
    def bytes_per_pixel(cls, options: Options) -> float:
        return laplacian_csr_bytes_per_pixel()

    @classmethod
    def build(cls, options: Options, targets: Targets) -> PhotoTerm:
        return cls(options.photo_weight, laplacian_tensor(targets.content))

    def forward(self, image, features, tapped):  # noqa: ANN001, ANN201 - see Term.forward
        return photorealism_loss(image, self.laplacian)


class TemporalTerm(Term):
    """Ruder, Dosovitskiy and Brox's short-term temporal loss (*Artistic style transfer for videos*, 2016):
    mean over pixels and channels of c * (x - w)^2, with w the previous frame's result warped to this frame by
    the optical flow and c the weights of the forward-backward consistency check (0 at disocclusions and motion
    boundaries, :mod:`impasto.core.flow`). A term on the image, so the hand-written pass adds its gradient in
    the same step. Without a previous frame (a video's first frame, a still image) its weight is 0."""

    name = "temporal"

    def __init__(self, weight: float, warped: torch.Tensor | None = None, weights: torch.Tensor | None = None) -> None:
        super().__init__(weight if warped is not None else 0.0)
        self.warped, self.weights = warped, weights

    @classmethod
    def wanted(cls, options: Options) -> bool:
        return options.temporal_weight > 0

    @classmethod
    def handwritten(cls, options: Options) -> bool:
        return True  # a term on the image

    @classmethod
    def bytes_per_pixel(cls, options: Options) -> float:
        return 64.0  # the target and weights (16 B) and autograd's image-sized temporaries

    @classmethod
    def build(cls, options: Options, targets: Targets) -> TemporalTerm:
        if targets.temporal is None:
            return cls(options.temporal_weight)
        warped, weights = targets.temporal
        return cls(options.temporal_weight, warped.float(), weights.float())

    def forward(self, image, features, tapped):  # noqa: ANN001, ANN201 - see Term.forward
        if self.warped is None:
            return torch.zeros((), device=image.device)
        return ((image - self.warped).pow(2) * self.weights).mean()


#: The terms of the optimization methods, in the order they are built and reported.
TERMS: list[type[Term]] = [ContentTerm, StyleTerm, TVTerm, PhotoTerm, TemporalTerm]


def build_terms(options: Options, targets: Targets) -> list[Term]:
    """The terms a run with ``options`` has, built from ``targets``."""
    return [cls.build(options, targets) for cls in TERMS if cls.wanted(options)]


def term_classes(options: Options) -> list[type[Term]]:
    """The term classes a run with ``options`` builds (what the planner asks about)."""
    return [cls for cls in TERMS if cls.wanted(options)]
