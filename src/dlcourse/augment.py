"""Data augmentation in plain torch (chapter 3.4): batched, seeded, label-preserving transforms.

Every op takes a batch ``x: (N, C, H, W)`` of float images in [0, 1] and returns the same shape.
Random ops draw one set of parameters per image from ``generator`` (on the CPU, so results do
not depend on the device) and run vectorised on ``x``'s device. Deterministic ops clamp to
[0, 1]. ``augment`` chains random ops; the same ``generator`` seed gives the same batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "augment",
    "color_jitter",
    "hflip",
    "random_crop_pad",
    "random_hflip",
    "random_resized_crop",
]

Op = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]


def _check_images(x: torch.Tensor, name: str = "x", channels: int | None = None) -> None:
    if not torch.is_tensor(x) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(
            f"{name} must be a float (N, C, H, W) tensor, got {getattr(x, 'shape', type(x))}"
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels, got shape {tuple(x.shape)}")


def _factor(f: float | torch.Tensor, x: torch.Tensor, name: str) -> torch.Tensor:
    """A scalar or one factor per image, shaped ``(N, 1, 1, 1)`` for broadcasting."""
    f = torch.as_tensor(f, dtype=x.dtype, device=x.device)
    if f.ndim == 0:
        f = f.expand(len(x))
    if f.shape != (len(x),):
        raise ValueError(f"{name} must be a scalar or have shape ({len(x)},), got {tuple(f.shape)}")
    if (f < 0).any():
        raise ValueError(f"{name} must be >= 0")
    return f.view(-1, 1, 1, 1)


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror left-right: ``out[..., j] = x[..., W - 1 - j]``. ``x: (N, C, H, W)``."""
    _check_images(x)
    return x.flip(-1)


def random_hflip(
    x: torch.Tensor, generator: torch.Generator | None = None, p: float = 0.5
) -> torch.Tensor:
    """Flip each image left-right with probability ``p``. ``x: (N, C, H, W)``."""
    _check_images(x)
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    flip = (torch.rand(len(x), generator=generator) < p).to(x.device).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(-1), x)


def random_crop_pad(
    x: torch.Tensor, size: int, pad: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero-pad each side by ``pad``, then cut a random ``size`` x ``size`` window per image.

    ``x: (N, C, H, W)`` -> ``(N, C, size, size)``; the window's top-left corner is uniform in
    ``[0, H + 2 pad - size] x [0, W + 2 pad - size]``. With ``size = H = W`` this is a random
    shift by at most ``pad`` pixels, the border filled with zeros (CIFAR's classic recipe).
    """
    _check_images(x)
    if not isinstance(pad, int) or pad < 0:
        raise ValueError(f"pad must be a non-negative int, got {pad!r}")
    N, C, H, W = x.shape
    if not isinstance(size, int) or not 1 <= size <= min(H, W) + 2 * pad:
        raise ValueError(f"size must be an int in [1, {min(H, W) + 2 * pad}], got {size!r}")
    padded = F.pad(x, (pad, pad, pad, pad))
    top = torch.randint(0, H + 2 * pad - size + 1, (N,), generator=generator).to(x.device)
    left = torch.randint(0, W + 2 * pad - size + 1, (N,), generator=generator).to(x.device)
    steps = torch.arange(size, device=x.device)
    rows = (top[:, None] + steps)[:, None, :, None].expand(N, C, size, W + 2 * pad)
    out = padded.gather(2, rows)  # (N, C, size, W + 2 pad)
    cols = (left[:, None] + steps)[:, None, None, :].expand(N, C, size, size)
    return out.gather(3, cols)


def random_resized_crop(
    x: torch.Tensor,
    size: int,
    scale: tuple[float, float] = (0.5, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Crop a random box of area ``s H W`` (``s ~ U[scale]``) and aspect ratio ``r`` (``log r``
    uniform in ``log ratio``), resize it to ``size`` x ``size`` by bilinear interpolation.

    Box ``(h, w) = (H sqrt(s / r), W sqrt(s r))``, clipped to the image, its corner uniform.
    Implemented as one affine sampling grid per image and ``F.grid_sample`` (no loop):
    output pixel ``i`` reads input coordinate ``y0 + (i + 1/2) h / size - 1/2``, exactly what
    ``F.interpolate(crop, size, mode="bilinear", align_corners=False)`` reads.
    ``x: (N, C, H, W)`` -> ``(N, C, size, size)``. Zooming in gives scale variation, which a
    CNN does not have built in.
    """
    _check_images(x)
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale}")
    if not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"ratio must satisfy 0 < low <= high, got {ratio}")
    N, _, H, W = x.shape
    s = _uniform(N, scale[0], scale[1], generator)
    r = torch.exp(_uniform(N, math.log(ratio[0]), math.log(ratio[1]), generator))
    h = (H * torch.sqrt(s / r)).clamp(max=H)
    w = (W * torch.sqrt(s * r)).clamp(max=W)
    y0 = (H - h) * torch.rand(N, generator=generator)
    x0 = (W - w) * torch.rand(N, generator=generator)
    return _crop_resize(x, torch.stack([y0, x0, h, w], 1).to(x.device, x.dtype), size)


def _crop_resize(x: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of the boxes ``(y0, x0, h, w)`` (pixels, one row per image) to ``size``."""
    N, _, H, W = x.shape
    y0, x0, h, w = boxes.unbind(1)
    centre = (torch.arange(size, device=x.device, dtype=x.dtype) + 0.5) / size  # (size,)
    ys = y0[:, None] + centre * h[:, None]  # continuous pixel coordinates (edges at integers)
    xs = x0[:, None] + centre * w[:, None]
    # grid_sample with align_corners=False maps -1 and 1 to the outer pixel edges
    gy = (2 * ys / H - 1)[:, :, None].expand(N, size, size)
    gx = (2 * xs / W - 1)[:, None, :].expand(N, size, size)
    grid = torch.stack([gx, gy], -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def adjust_brightness(x: torch.Tensor, f: float | torch.Tensor) -> torch.Tensor:
    """``clamp(f x, 0, 1)``: ``f = 0`` is black, ``f = 1`` the identity. ``f``: scalar or
    ``(N,)``."""
    _check_images(x)
    return (x * _factor(f, x, "f")).clamp(0, 1)


def adjust_contrast(x: torch.Tensor, f: float | torch.Tensor) -> torch.Tensor:
    """``clamp((x - m) f + m, 0, 1)`` with ``m`` the mean of each image (over C, H, W).

    ``f = 1`` is the identity, ``f = 0`` a constant image equal to ``m``, ``f > 1`` stretches
    values away from the mean. ``f``: scalar or ``(N,)``.
    """
    _check_images(x)
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - m) * _factor(f, x, "f") + m).clamp(0, 1)


# RGB <-> YIQ: Y is the luma, (I, Q) the chroma plane that a hue shift rotates
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)


def adjust_hue(x: torch.Tensor, h: float | torch.Tensor) -> torch.Tensor:
    """Shift the hue of RGB images by ``h`` turns, ``h`` in [-0.5, 0.5] (scalar or ``(N,)``).

    The colour is rotated by the angle ``2 pi h`` in the chroma plane of YIQ space, which keeps
    the luma Y and the saturation: ``yiq = A rgb``, ``(I, Q) <- R(2 pi h) (I, Q)``,
    ``rgb = A^{-1} yiq``, clamped. Hue is an angle, so ``h`` and ``h + 1`` are the same shift
    and ``|h| <= 0.5`` covers every hue (torchvision's ``ColorJitter`` requires it too). Gray
    pixels (I = Q = 0) are unchanged. ``x: (N, 3, H, W)``.
    """
    _check_images(x, channels=3)
    angle = torch.as_tensor(h, dtype=x.dtype, device=x.device)
    if angle.ndim == 0:
        angle = angle.expand(len(x))
    if angle.shape != (len(x),) or (angle.abs() > 0.5).any():
        raise ValueError(f"h must be a scalar or ({len(x)},) with |h| <= 0.5, got {h}")
    angle = 2 * math.pi * angle
    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(cos), torch.zeros_like(cos)
    rotation = torch.stack(
        [torch.stack([one, zero, zero], -1), torch.stack([zero, cos, -sin], -1),
         torch.stack([zero, sin, cos], -1)], -2,
    )  # fmt: skip
    A = _RGB_TO_YIQ.to(x.device, x.dtype)
    M = torch.linalg.inv(A) @ rotation @ A  # (N, 3, 3)
    return torch.einsum("nij,njhw->nihw", M, x).clamp(0, 1)


def color_jitter(
    x: torch.Tensor,
    brightness: float = 0.0,
    contrast: float = 0.0,
    hue: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random brightness, contrast (and, for RGB, hue), one draw per image.

    Factors ``f ~ U[max(0, 1 - b), 1 + b]`` for brightness ``b`` and contrast ``b``; hue shift
    ``~ U[-hue, hue]`` with ``0 <= hue <= 0.5``. ``x: (N, C, H, W)``.
    """
    _check_images(x)
    for name, value in (("brightness", brightness), ("contrast", contrast)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if not 0 <= hue <= 0.5:
        raise ValueError(f"hue must be in [0, 0.5] (a hue shift is an angle), got {hue}")
    n = len(x)
    if brightness > 0:
        x = adjust_brightness(x, _uniform(n, max(0.0, 1 - brightness), 1 + brightness, generator))
    if contrast > 0:
        x = adjust_contrast(x, _uniform(n, max(0.0, 1 - contrast), 1 + contrast, generator))
    if hue > 0:
        x = adjust_hue(x, _uniform(n, -hue, hue, generator))
    return x


def augment(
    x: torch.Tensor, ops: Sequence[Op], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Apply the random ops in order, ``op(x, generator)`` each, to the batch ``x``.

    Each op draws its own parameters per image, so every image gets its own transform
    ``t = t_k o ... o t_1``. Use ``functools.partial`` (or a lambda) to fix an op's settings,
    e.g. ``partial(random_crop_pad, size=28, pad=2)``. Train-time only: evaluation keeps the
    deterministic preprocessing.
    """
    _check_images(x)
    for op in ops:
        if not callable(op):
            raise TypeError(f"ops must hold callables op(x, generator), got {type(op).__name__}")
        x = op(x, generator=generator)
    return x
