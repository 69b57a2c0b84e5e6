"""Semantic segmentation: a synthetic data set with exact masks, paired crops, metrics, a U-Net.

- ``shapes_segmentation``: noisy images of discs, rectangles and triangles whose masks are the
  very predicates that drew them, so every label is exact;
- ``random_crop_pair``: one random window applied to an image and its mask alike;
- ``pixel_accuracy``, ``binary_iou``, ``per_class_iou``, ``mean_iou``: the metrics, with
  :math:`\\mathrm{IoU}_c = TP_c / (TP_c + FP_c + FN_c)`;
- ``UpBlock`` and ``TinyUNet``: an encoder-decoder whose decoder concatenates the encoder's
  feature maps (U-Net skips), with padded convolutions so the output has the input's size.

The transposed-convolution kernels themselves live in :mod:`dlcourse.conv`, ``dice_loss`` in
:mod:`dlcourse.losses`.
"""

from __future__ import annotations

import torch
from torch import nn

from .conv import _positive_int

__all__ = [
    "TinyUNet",
    "UpBlock",
    "binary_iou",
    "double_conv",
    "mean_iou",
    "per_class_iou",
    "pixel_accuracy",
    "random_crop_pair",
    "shapes_segmentation",
]

SHAPE_NAMES = ("background", "disc", "rectangle", "triangle")

# ---------------------------------------------------------------------------------------------
# Data


def shapes_segmentation(
    n: int,
    size: int = 32,
    n_classes: int = 2,
    noise: float = 0.3,
    seed: int = 0,
    max_shapes: int = 3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy grey images of 1 to ``max_shapes`` discs, rectangles and triangles, with masks.

    Returns ``images: (n, 1, size, size)`` float32 and ``masks: (n, size, size)`` int64. Each
    shape has a random centre, a size between ``size / 10`` and ``size / 5`` and a brightness
    in ``[0.4, 1]`` on a black background; Gaussian noise of standard deviation ``noise`` is
    added to every pixel. A pixel's label is the kind of the last shape drawn over it: with
    ``n_classes = 2`` any shape is 1 (foreground), with ``n_classes = 4`` the classes are
    ``SHAPE_NAMES`` (0 background, 1 disc, 2 rectangle, 3 triangle). The masks are the
    inequalities that drew the shapes (``(y - c_y)^2 + (x - c_x)^2 <= r^2`` for a disc), so they
    are exact, with no anti-aliasing or annotation error.
    """
    n = _positive_int(n, "n", 1)
    size = _positive_int(size, "size", 8)
    max_shapes = _positive_int(max_shapes, "max_shapes", 1)
    if n_classes not in (2, 4):
        raise ValueError(f"n_classes must be 2 (foreground/background) or 4, got {n_classes!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    gen = torch.Generator().manual_seed(int(seed))
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    yy, xx = coords[:, None], coords[None, :]  # (S, 1), (1, S)
    images = torch.zeros(n, size, size)
    masks = torch.zeros(n, size, size, dtype=torch.long)
    present = torch.rand(n, max_shapes, generator=gen) < 0.6
    present[:, 0] = True  # at least one shape per image
    for slot in range(max_shapes):
        kind = torch.randint(1, 4, (n,), generator=gen)
        radius = size * (0.1 + 0.1 * torch.rand(n, generator=gen))
        aspect = 0.6 + 0.8 * torch.rand(n, generator=gen)
        cy, cx = (size * (0.15 + 0.7 * torch.rand(2, n, generator=gen)))[:, :, None, None]
        r, a = radius[:, None, None], aspect[:, None, None]
        dy, dx = yy - cy, xx - cx  # (n, S, S) by broadcasting
        disc = dy**2 + dx**2 <= r**2
        rectangle = (dy.abs() <= r * a) & (dx.abs() <= r / a)
        triangle = (dy.abs() <= r) & (dx.abs() <= 0.6 * (dy + r))  # apex at the top
        k = kind[:, None, None]
        inside = torch.where(k == 1, disc, torch.where(k == 2, rectangle, triangle))
        inside &= present[:, slot, None, None]
        brightness = 0.4 + 0.6 * torch.rand(n, 1, 1, generator=gen)
        images = torch.where(inside, brightness, images)
        label = k if n_classes == 4 else torch.ones_like(k)
        masks = torch.where(inside, label, masks)
    images = images + noise * torch.randn(n, size, size, generator=gen)
    return images[:, None], masks


def random_crop_pair(
    img: torch.Tensor, mask: torch.Tensor, size: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut the same random ``size x size`` window out of an image and its mask.

    ``img: (C, H, W)`` or ``(H, W)``, ``mask: (H, W)`` (the same ``H, W``) ->
    ``(img[..., i:i+size, j:j+size], mask[i:i+size, j:j+size])`` with one top-left corner
    ``(i, j)`` drawn uniformly with ``generator``. Cropping moves no pixel relative to its
    label, so the pair stays aligned; no value is interpolated.
    """
    if not torch.is_tensor(img) or img.ndim not in (2, 3):
        raise ValueError(
            f"img must be a (C, H, W) or (H, W) tensor, got {getattr(img, 'shape', img)}"
        )
    if not torch.is_tensor(mask) or mask.ndim != 2:
        raise ValueError(f"mask must be an (H, W) tensor, got {getattr(mask, 'shape', mask)}")
    h, w = img.shape[-2:]
    if mask.shape != (h, w):
        raise ValueError(
            f"mask must have the image's height and width {(h, w)}, got {tuple(mask.shape)}"
        )
    size = _positive_int(size, "size", 1)
    if size > min(h, w):
        raise ValueError(f"size ({size}) must be at most the image's height and width {(h, w)}")
    i = int(torch.randint(h - size + 1, (1,), generator=generator))
    j = int(torch.randint(w - size + 1, (1,), generator=generator))
    return img[..., i : i + size, j : j + size], mask[i : i + size, j : j + size]


# ---------------------------------------------------------------------------------------------
# Metrics


def _check_labels(pred: torch.Tensor, target: torch.Tensor) -> None:
    for name, t in (("pred", pred), ("target", target)):
        if not torch.is_tensor(t):
            raise TypeError(f"{name} must be a tensor of labels, got {type(t).__name__}")
        if t.is_floating_point() or t.is_complex():
            raise TypeError(
                f"{name} must hold integer or boolean labels, got {t.dtype} (threshold or "
                "argmax the scores first)"
            )
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have one shape, got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    if pred.numel() == 0:
        raise ValueError("pred and target must not be empty")


def pixel_accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of pixels whose label is right: ``mean(pred == target)``.

    ``pred``, ``target``: integer or boolean label maps of one shape, e.g. ``(N, H, W)``. Under
    class imbalance it rewards the majority class: predicting background everywhere on images
    that are 90 % background scores 0.9.
    """
    _check_labels(pred, target)
    return (pred == target).float().mean().item()


def binary_iou(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Intersection over union of two foreground masks, ``|P ∩ T| / |P ∪ T|``.

    ``pred``, ``target``: boolean or 0/1 integer masks of one shape, pooled over all pixels
    (``= TP / (TP + FP + FN)``). Two empty masks agree perfectly and score 1.
    """
    _check_labels(pred, target)
    if pred.dtype != torch.bool and ((pred != 0) & (pred != 1)).any():
        raise ValueError("pred must be a 0/1 mask; use mean_iou for more than two classes")
    if target.dtype != torch.bool and ((target != 0) & (target != 1)).any():
        raise ValueError("target must be a 0/1 mask; use mean_iou for more than two classes")
    p, t = pred.bool(), target.bool()
    union = (p | t).sum().item()
    return 1.0 if union == 0 else (p & t).sum().item() / union


def per_class_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """IoU of every class, ``TP_c / (TP_c + FP_c + FN_c)``, pooled over all pixels.

    ``pred``, ``target``: integer label maps of one shape with values in
    ``[0, num_classes)``. Returns ``(num_classes,)`` float64, NaN for a class that appears in
    neither (its IoU is 0/0). Computed from the confusion matrix ``M[t, p]``: ``TP = diag(M)``,
    ``FP = M.sum(0) - TP``, ``FN = M.sum(1) - TP``.
    """
    _check_labels(pred, target)
    num_classes = _positive_int(num_classes, "num_classes", 1)
    for name, t in (("pred", pred), ("target", target)):
        if t.min() < 0 or t.max() >= num_classes:
            raise ValueError(f"{name} labels must lie in [0, num_classes={num_classes})")
    flat = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    confusion = torch.bincount(flat, minlength=num_classes**2).view(num_classes, num_classes)
    confusion = confusion.double().cpu()
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def mean_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """Mean of :func:`per_class_iou` over the classes present in ``pred`` or ``target``.

    Every class counts equally, however few pixels it has, so a model that ignores a small
    class loses ``1 / num_classes`` of the score even when its pixel accuracy is high.
    """
    ious = per_class_iou(pred, target, num_classes)
    return ious[~ious.isnan()].mean().item()


# ---------------------------------------------------------------------------------------------
# U-Net


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    """Two padded 3x3 convolutions, each followed by BatchNorm and ReLU; keeps ``H, W``."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class UpBlock(nn.Module):
    """One decoder step: upsample x2, concatenate the encoder's map, convolve.

    ``x: (N, c_in, H, W)``, ``skip: (N, c_skip, 2H, 2W)`` -> ``(N, c_out, 2H, 2W)``. The
    transposed convolution (``k = 2``, ``s = 2``) maps ``c_in`` to ``c_out`` channels; the
    concatenation makes ``c_out + c_skip`` channels, which :func:`double_conv` maps back to
    ``c_out``. With ``c_skip = 0`` there is no skip (an encoder-decoder without shortcuts).
    """

    def __init__(self, c_in: int, c_skip: int, c_out: int) -> None:
        super().__init__()
        self.c_skip = _positive_int(c_skip, "c_skip", 0)
        self.up = nn.ConvTranspose2d(_positive_int(c_in, "c_in", 1), _positive_int(c_out, "c_out", 1),
                                     kernel_size=2, stride=2)  # fmt: skip
        self.conv = double_conv(c_out + c_skip, c_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = self.up(x)
        if self.c_skip:
            if skip is None or skip.shape[1] != self.c_skip or skip.shape[2:] != x.shape[2:]:
                raise ValueError(
                    f"skip must have shape (N, {self.c_skip}, {x.shape[2]}, {x.shape[3]}), got "
                    f"{None if skip is None else tuple(skip.shape)}"
                )
            x = torch.cat([skip, x], dim=1)  # crop-and-copy without the crop: padded convs
        return self.conv(x)


class TinyUNet(nn.Module):
    """A small U-Net: ``levels`` poolings down, as many ``UpBlock`` steps back up.

    ``x: (N, in_ch, H, W)`` with ``H, W`` divisible by ``2**levels`` ->
    logits ``(N, out_ch, H, W)``. Widths double at every level (``base, 2 base, ...``). With
    ``skip=True`` each decoder step concatenates the encoder map of its resolution; with
    ``skip=False`` the decoder has to rebuild the detail from the bottleneck alone. Padded
    convolutions keep the output the size of the input (the original U-Net did not pad, and
    cropped the encoder maps before concatenating).
    """

    def __init__(
        self, in_ch: int = 1, out_ch: int = 1, base: int = 8, levels: int = 2, skip: bool = True
    ) -> None:
        super().__init__()
        self.levels = _positive_int(levels, "levels", 1)
        widths = [_positive_int(base, "base", 1) * 2**i for i in range(levels + 1)]
        self.down = nn.ModuleList(
            [double_conv(_positive_int(in_ch, "in_ch", 1), widths[0])]
            + [double_conv(widths[i], widths[i + 1]) for i in range(levels)]
        )
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(
            [
                UpBlock(widths[i + 1], widths[i] if skip else 0, widths[i])
                for i in reversed(range(levels))
            ]
        )
        self.head = nn.Conv2d(widths[0], _positive_int(out_ch, "out_ch", 1), kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[2] % 2**self.levels or x.shape[3] % 2**self.levels:
            raise ValueError(
                f"x must be (N, C, H, W) with H and W divisible by 2**levels = "
                f"{2**self.levels}, got {tuple(x.shape)}"
            )
        features = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            features.append(x)
        x = features.pop()  # the bottleneck
        for block in self.up:
            x = block(x, features.pop())
        return self.head(x)
