"""Neural style transfer: Gram matrices, the three losses, a frozen feature extractor, and the
pixel optimisation that combines them (Gatys, Ecker & Bethge, 2016).

The network is never trained: its weights are frozen, and the only variable is the image. The
feature network is EfficientNet-Lite0 (``dlcourse.vision.efficientnet_lite0``); its stages are
named ``"stem"`` (the first convolution + BN + ReLU6, stride 2) and ``"block0"`` ...
``"block15"`` (the 16 MBConv blocks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import nn

from .vision import IMAGENET_MEAN, IMAGENET_STD, imagenet_deprocess, imagenet_preprocess

__all__ = [
    "CONTENT_LAYERS",
    "STYLE_LAYERS",
    "FeatureExtractor",
    "content_loss",
    "gram",
    "style_loss",
    "style_transfer",
    "tv_loss",
]

STYLE_LAYERS = ("stem", "block1", "block3", "block5", "block8")
CONTENT_LAYERS = ("block5",)


def _check_maps(x: torch.Tensor, name: str) -> None:
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor (N, C, H, W)")
    if x.ndim != 4:
        raise ValueError(f"{name} must be (N, C, H, W), got shape {tuple(x.shape)}")


def gram(x: torch.Tensor) -> torch.Tensor:
    """Gram matrix of feature maps: ``G = F F^T / (c h w)`` with ``F = x.reshape(N, c, h w)``.

    ``x: (N, c, h, w)`` -> ``(N, c, c)``. Entry ``G[i, j]`` is the average over positions of
    the product of channels ``i`` and ``j`` (divided once more by ``c``); it is symmetric,
    positive semi-definite, and unchanged by any permutation of the ``h w`` positions.
    """
    _check_maps(x, "x")
    n, c, h, w = x.shape
    f = x.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def content_loss(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``L_c = ||y_hat - y||^2 / n``: mean squared difference of two feature maps (``n`` entries).

    ``y_hat, y: (N, c, h, w)``, same shape; returns a scalar.
    """
    _check_maps(y_hat, "y_hat")
    _check_maps(y, "y")
    if y_hat.shape != y.shape:
        raise ValueError(
            f"y_hat and y must have the same shape, got {tuple(y_hat.shape)} and {tuple(y.shape)}"
        )
    return ((y_hat - y) ** 2).mean()


def style_loss(y_hat: torch.Tensor, gram_y: torch.Tensor) -> torch.Tensor:
    """``L_s = ||gram(y_hat) - G_y||_F^2`` (squared Frobenius norm, averaged over the batch).

    ``y_hat: (N, c, h, w)`` feature maps; ``gram_y: (c, c)``, ``(1, c, c)`` or ``(N, c, c)``,
    the target Gram matrix (computed once from the style image). Returns a scalar.
    """
    _check_maps(y_hat, "y_hat")
    c = y_hat.shape[1]
    if not torch.is_tensor(gram_y) or gram_y.shape[-2:] != (c, c) or gram_y.ndim not in (2, 3):
        shape = tuple(gram_y.shape) if torch.is_tensor(gram_y) else type(gram_y).__name__
        raise ValueError(
            f"gram_y must be ({c}, {c}) or (N, {c}, {c}) for {c} channels, got {shape}"
        )
    diff = gram(y_hat) - gram_y
    return (diff**2).sum(dim=(-2, -1)).mean()


def tv_loss(x: torch.Tensor) -> torch.Tensor:
    """Total variation ``(mean|x[i+1, j] - x[i, j]| + mean|x[i, j+1] - x[i, j]|) / 2``.

    ``x: (N, C, H, W)`` with ``H, W >= 2``; returns a scalar. Zero for a constant image, 2 for
    a +-1 checkerboard; it grows with high-frequency noise.
    """
    _check_maps(x, "x")
    if x.shape[-2] < 2 or x.shape[-1] < 2:
        raise ValueError(f"x must have H, W >= 2, got shape {tuple(x.shape)}")
    down = (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
    right = (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
    return (down + right) / 2


class FeatureExtractor(nn.Module):
    """The activations of chosen stages of a frozen EfficientNet-Lite0.

    ``FeatureExtractor(model, layers)(x)`` with ``x: (N, 3, H, W)`` normalised as by
    ``imagenet_preprocess`` returns ``{name: (N, c, h, w)}`` for each name in ``layers``
    (``"stem"``, ``"block0"`` ... ``"block15"``). It runs the network only up to the deepest
    requested stage. The weights are frozen (``requires_grad=False``, eval mode), so gradients
    reach the input image and nothing else.
    """

    def __init__(self, model: nn.Module | None = None, layers: Sequence[str] = STYLE_LAYERS):
        super().__init__()
        if model is None:
            from .vision import efficientnet_lite0

            model = efficientnet_lite0(pretrained=True)
        if not all(hasattr(model, a) for a in ("_conv_stem", "_bn0", "_swish", "_blocks")):
            raise TypeError(
                "model must be an EfficientNet (from dlcourse.vision.efficientnet_lite0)"
            )
        names = ["stem"] + [f"block{i}" for i in range(len(model._blocks))]
        layers = tuple(layers)
        if not layers or any(name not in names for name in layers):
            raise ValueError(f"layers must be a non-empty list of names from {names}, got {layers}")
        self.model = model.eval().requires_grad_(False)
        self.layers = layers
        self._depth = max(names.index(name) for name in layers)  # 0 = stem, i + 1 = block i

    def train(self, mode: bool = True) -> FeatureExtractor:
        """Stays in eval mode: batch norm uses its ImageNet statistics, drop-connect is off."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        _check_maps(x, "x")
        if x.shape[1] != 3:
            raise ValueError(f"x must have 3 channels (N, 3, H, W), got shape {tuple(x.shape)}")
        m = self.model
        out: dict[str, torch.Tensor] = {}
        x = m._swish(m._bn0(m._conv_stem(x)))
        if "stem" in self.layers:
            out["stem"] = x
        for i, block in enumerate(m._blocks[: self._depth]):
            x = block(x)  # eval mode: no drop-connect
            if f"block{i}" in self.layers:
                out[f"block{i}"] = x
        return out


def _as_batch(image: torch.Tensor, name: str) -> torch.Tensor:
    if not torch.is_tensor(image) or not image.is_floating_point():
        raise TypeError(f"{name} must be a float image tensor (3, H, W) in [0, 1]")
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"{name} must be (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
    return image


def style_transfer(
    content: torch.Tensor,
    style: torch.Tensor,
    extractor: FeatureExtractor,
    content_layers: Sequence[str] = CONTENT_LAYERS,
    style_layers: Sequence[str] | Mapping[str, float] = STYLE_LAYERS,
    weights: tuple[float, float, float] = (1.0, 100.0, 0.0),
    steps: int = 150,
    lr: float = 0.1,
    init: Literal["content", "noise"] = "content",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, list[float]]]:
    """Optimise the pixels of an image so that its deep features match ``content`` and its
    Gram matrices match ``style``; the network stays frozen.

    Minimises ``lc * L_c + ls * sum_l w_l L_s^l + ltv * L_tv`` with ``(lc, ls, ltv) = weights``
    by Adam on the normalised image ``z = (x - mean) / std``, clamping ``x`` to [0, 1] after
    every step. ``content: (3, H, W)`` and ``style: (3, H', W')`` are float images in [0, 1]
    (square crops, on the extractor's device). ``style_layers`` is a mapping name -> ``w_l``, or
    a list of names, which gives each layer ``w_l = 1 / ||G_s^l||_F^2``: every layer's term is
    then a relative error that starts on the same scale, whatever its number of channels.
    ``init="content"`` starts from the content image, ``"noise"`` from uniform noise drawn with
    ``generator``.

    Returns the image ``(1, 3, H, W)`` in [0, 1] and the history ``{"content", "style", "tv",
    "total"}``: ``steps + 1`` unweighted loss values, the first for the initial image, the last
    for the returned one.
    """
    content, style = _as_batch(content, "content"), _as_batch(style, "style")
    if not isinstance(extractor, FeatureExtractor):
        raise TypeError("extractor must be a dlcourse.style.FeatureExtractor")
    explicit = isinstance(style_layers, Mapping)
    style_w = dict(style_layers) if explicit else dict.fromkeys(style_layers, 1.0)
    missing = [n for n in (*content_layers, *style_w) if n not in extractor.layers]
    if not content_layers or not style_w or missing:
        raise ValueError(
            f"content_layers and style_layers must be non-empty and among the extractor's "
            f"layers {extractor.layers}; missing {missing}"
        )
    if len(weights) != 3 or any(w < 0 for w in weights):
        raise ValueError(f"weights must be three non-negative numbers (lc, ls, ltv), got {weights}")
    if steps < 0 or lr <= 0:
        raise ValueError(f"steps must be >= 0 and lr > 0, got steps={steps}, lr={lr}")
    if init not in ("content", "noise"):
        raise ValueError(f"init must be 'content' or 'noise', got {init!r}")

    lc, ls, ltv = weights
    z_content = imagenet_preprocess(content, size=min(content.shape[-2:]))
    z_style = imagenet_preprocess(style, size=min(style.shape[-2:]))
    mean = torch.tensor(IMAGENET_MEAN, device=z_content.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=z_content.device).view(1, 3, 1, 1)
    low, high = (0 - mean) / std, (1 - mean) / std  # the valid pixel range, normalised

    with torch.no_grad():
        content_targets = {n: f for n, f in extractor(z_content).items() if n in content_layers}
        style_targets = {n: gram(f) for n, f in extractor(z_style).items() if n in style_w}
    if not explicit:
        style_w = {n: 1.0 / max(float(style_targets[n].square().sum()), 1e-12) for n in style_w}
    if init == "content":
        z = z_content.clone()
    else:
        noise = torch.rand(z_content.shape, generator=generator, device="cpu").to(z_content)
        z = (noise - mean) / std
    z.requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    history: dict[str, list[float]] = {"content": [], "style": [], "tv": [], "total": []}

    def losses() -> torch.Tensor:
        feats = extractor(z)
        l_c = sum(content_loss(feats[n], content_targets[n]) for n in content_layers)
        l_s = sum(w * style_loss(feats[n], style_targets[n]) for n, w in style_w.items())
        l_tv = tv_loss(z * std + mean)
        total = lc * l_c + ls * l_s + ltv * l_tv
        for key, value in zip(history, (l_c, l_s, l_tv, total), strict=True):
            history[key].append(float(value.detach()))
        return total

    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        losses().backward()
        optimizer.step()
        with torch.no_grad():
            z.copy_(torch.maximum(torch.minimum(z, high), low))
    with torch.no_grad():
        losses()
    return imagenet_deprocess(z.detach()), history
