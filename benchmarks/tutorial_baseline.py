"""The PyTorch neural-style tutorial's loop, structured as the tutorial structures it, as a baseline.

Loss modules inserted into an ``nn.Sequential`` after each chosen conv, out-of-place ReLUs, fp32, L-BFGS
(``optim.LBFGS`` defaults, ``max_iter=20`` per ``step``), pixels clamped inside the closure. Only the
network differs from the tutorial's torchvision model: it is impasto's VGG-19 weights (the same network
impasto uses), built as the tutorial's ``nn.Sequential`` with its ``Normalization`` module replaced by the
weights' 1x1 input transform. The loop stops after ``num_steps`` closure evaluations exactly (the tutorial's
``while run[0] <= num_steps`` would run 320 for 300).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn, optim

from impasto.core.weights import CONV_NAMES, load_vgg_weights


class ContentLoss(nn.Module):
    def __init__(self, target):
        super().__init__()
        self.target = target.detach()

    def forward(self, input):
        self.loss = F.mse_loss(input, self.target)
        return input


def gram_matrix(input):
    a, b, c, d = input.size()
    features = input.view(a * b, c * d)
    G = torch.mm(features, features.t())
    return G.div(a * b * c * d)


class StyleLoss(nn.Module):
    def __init__(self, target_feature):
        super().__init__()
        self.target = gram_matrix(target_feature).detach()

    def forward(self, input):
        G = gram_matrix(input)
        self.loss = F.mse_loss(G, self.target)
        return input


class Normalization(nn.Module):
    """The tutorial's (img - mean) / std, here for the Caffe VGG: BGR order, 0-255 scale, Caffe mean."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def forward(self, img):
        return (img.flip(1) - self.mean) / self.std


def vgg19_features() -> tuple[nn.Sequential, Normalization]:
    """torchvision-style ``vgg19().features`` with impasto's weights and the matching input normalization."""
    w = load_vgg_weights()
    layers: list[nn.Module] = []
    for block, n in enumerate([2, 2, 4, 4, 4], start=1):
        for i in range(1, n + 1):
            name = f"conv{block}_{i}"
            conv = nn.Conv2d(w.convs[f"{name}.weight"].shape[1], w.convs[f"{name}.weight"].shape[0], 3, padding=1)
            conv.weight.data.copy_(w.convs[f"{name}.weight"])
            conv.bias.data.copy_(w.convs[f"{name}.bias"])
            layers += [conv, nn.ReLU(inplace=True)]
        layers.append(nn.MaxPool2d(2, 2))
    assert sum(isinstance(m, nn.Conv2d) for m in layers) == len(CONV_NAMES)
    assert torch.equal(w.pre_weight, torch.tensor([[0.0, 0, 255], [0, 255, 0], [255, 0, 0]]))
    mean_bgr = (-w.pre_bias / 255).tolist()
    return nn.Sequential(*layers).eval(), Normalization(mean_bgr, [1 / 255] * 3)


content_layers_default = ["conv_4"]
style_layers_default = ["conv_1", "conv_2", "conv_3", "conv_4", "conv_5"]


def get_style_model_and_losses(cnn, normalization, style_img, content_img,
                               content_layers=content_layers_default, style_layers=style_layers_default):  # fmt: skip
    content_losses, style_losses = [], []
    model = nn.Sequential(normalization)
    i = 0
    for layer in cnn.children():
        if isinstance(layer, nn.Conv2d):
            i += 1
            name = f"conv_{i}"
        elif isinstance(layer, nn.ReLU):
            name = f"relu_{i}"
            layer = nn.ReLU(inplace=False)
        elif isinstance(layer, nn.MaxPool2d):
            name = f"pool_{i}"
        else:
            raise RuntimeError(f"Unrecognized layer: {layer.__class__.__name__}")
        model.add_module(name, layer)
        if name in content_layers:
            target = model(content_img).detach()
            content_loss = ContentLoss(target)
            model.add_module(f"content_loss_{i}", content_loss)
            content_losses.append(content_loss)
        if name in style_layers:
            target_feature = model(style_img).detach()
            style_loss = StyleLoss(target_feature)
            model.add_module(f"style_loss_{i}", style_loss)
            style_losses.append(style_loss)
    for i in range(len(model) - 1, -1, -1):
        if isinstance(model[i], (ContentLoss, StyleLoss)):
            break
    model = model[: (i + 1)]
    return model, style_losses, content_losses


def run_style_transfer(content_img, style_img, input_img, num_steps=300, style_weight=1000000, content_weight=1,
                       freeze=False):  # fmt: skip
    """The tutorial's ``run_style_transfer``; returns the image and the number of evaluations.

    As in the tutorial (seeds/004), the network's weights keep ``requires_grad``, so every backward pass also
    computes their gradients; ``freeze=True`` adds the ``model.requires_grad_(False)`` of later tutorial
    versions."""
    cnn, normalization = vgg19_features()
    model, style_losses, content_losses = get_style_model_and_losses(cnn, normalization, style_img, content_img)
    input_img.requires_grad_(True)
    if freeze:
        model.requires_grad_(False)
    optimizer = optim.LBFGS([input_img])
    run = [0]
    while run[0] < num_steps:

        def closure():
            with torch.no_grad():
                input_img.clamp_(0, 1)
            optimizer.zero_grad()
            model(input_img)
            style_score = sum(sl.loss for sl in style_losses) * style_weight
            content_score = sum(cl.loss for cl in content_losses) * content_weight
            loss = style_score + content_score
            loss.backward()
            run[0] += 1
            return style_score + content_score

        optimizer.step(closure)
    with torch.no_grad():
        input_img.clamp_(0, 1)
    return input_img.detach(), run[0]
