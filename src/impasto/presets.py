"""The named presets: option values that reproduce the seed documents, or the tuned default.

A preset is a set of option values; anything given explicitly overrides it (:func:`impasto.options.make_options`).
"""

from __future__ import annotations

from typing import Any

from .errors import InputError

PAPER_STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


def preset_values(name: str) -> dict[str, Any]:
    """The option values of a named preset, a fresh dict on every call. ``tutorial`` and ``article`` reproduce
    the two seed documents (pinned against them in ``tests/test_presets.py``)."""
    presets: dict[str, dict[str, Any]] = {
        # Tuned on the normalized VGG for the best look per second (docs/guides/methods.md, "How the default was
        # chosen").
        "default": {},
        # PyTorch tutorial (Jacq): conv_4 content, conv_1..conv_5 style, Gram / (a*b*c*d), weights 1 / 1e6,
        # L-BFGS for 300 evaluations, start from the content image, pixels clamped to [0, 1].
        "tutorial": {
            "content_layers": ("conv_4",),
            "style_layers": ("conv_1", "conv_2", "conv_3", "conv_4", "conv_5"),
            "style_layer_weights": None,
            "content_weight": 1.0,
            "style_weight": 1e6,
            "tv_weight": 0.0,
            "gram_norm": "elements",
            "normalize_losses": False,
            "style_layer_norm": "none",
            "optimizer": "lbfgs",
            "lbfgs_history": 100,  # torch.optim.LBFGS's default, which the tutorial uses
            "steps": 300,
            "init": "content",
            # The loss in fp32, as the tutorial; only the gradients' convolutions in bf16. A bf16 forward pass ends
            # ~3% higher in the tutorial's loss; bf16 gradients end where fp32 does (docs/design.md, "Precision").
            "precision": "mixed",
        },
        # Medium article: conv4_2 content, conv1_1..conv5_1 style weighted 1, .75, .2, .2, .2, raw Gram matrices
        # with each layer's loss divided by C*H*W, Adam (lr 0.003), alpha 1 and beta chosen by the user
        # (the article shows 1e3, 1e6 and 1e10).
        "article": {
            "content_layers": ("conv4_2",),
            "style_layers": PAPER_STYLE_LAYERS,
            "style_layer_weights": (1.0, 0.75, 0.2, 0.2, 0.2),
            "content_weight": 1.0,
            "style_weight": 1e6,
            "tv_weight": 0.0,
            "gram_norm": "none",
            "normalize_losses": False,
            "style_layer_norm": "elements",
            "optimizer": "adam",
            "lr": 0.003,
            "steps": 1000,
            "init": "content",
        },
        # Luan et al. 2017 (Deep Photo Style Transfer): content relu4_2, style relu1_1..relu5_1 (with label maps,
        # per region), the photorealism regularizer, L-BFGS; started from the content recoloured to the style
        # region by region (histogram matching), the shallow style layers weighted most (docs/guides/photorealistic.md
        # derives the regularizer weight and says how the others were chosen).
        "photo": {
            "method": "photo",
            "content_layers": ("relu4_2",),
            "style_layers": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
            "style_layer_weights": (10.0, 3.0, 1.0, 0.3, 0.1),
            "content_weight": 1.0,
            "style_weight": 3.0,
            "photo_weight": 1e5,
            "init": "colors",
            "optimizer": "lbfgs",
            "steps": 300,
            "start_size": 256,  # coarse to fine: most steps at 256 px, one Laplacian per scale
        },
    }
    if name not in presets:
        raise InputError(f"unknown preset '{name}' (choose from {', '.join(presets)})")
    return presets[name]


#: Named presets: name -> option values (see :func:`preset_values`).
PRESETS: dict[str, dict[str, Any]] = {name: preset_values(name) for name in ("default", "tutorial", "article", "photo")}
