"""Shared tools for generative models: distances between a model's samples and the data.

``mmd_rbf`` measures how far two point clouds are as distributions; part 7 uses it to say
whether samples of a generative model look like held-out data.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["mmd_rbf"]


def _check_cloud(z: Tensor, name: str) -> None:
    if not torch.is_tensor(z) or not z.is_floating_point():
        raise TypeError(f"{name} must be a float tensor of shape (N, D), got {type(z).__name__}")
    if z.ndim != 2 or len(z) < 2:
        raise ValueError(f"{name} must have shape (N, D) with N >= 2, got {tuple(z.shape)}")


def mmd_rbf(x: Tensor, y: Tensor, bandwidth: float = 0.5, *, unbiased: bool = True) -> float:
    """Squared maximum mean discrepancy with the RBF kernel ``k(a, b) = exp(-|a-b|^2 / 2h^2)``.

    ``MMD^2 = E k(x, x') + E k(y, y') - 2 E k(x, y)`` for ``x: (N, D)``, ``y: (M, D)``,
    ``h = bandwidth``. The default is the **unbiased** U-statistic (Gretton et al. 2012): the
    diagonals ``k(x_i, x_i) = 1`` are left out of the within-sample means, so its expectation
    is exactly 0 when both clouds come from the same distribution, and a single estimate can be
    slightly negative. ``unbiased=False`` gives the biased V-statistic (diagonals kept), which
    is >= 0 but sits about ``(1/N + 1/M)(1 - E k)`` above 0 for identical distributions.
    Costs ``O((N + M)^2 D)`` time and memory; both clouds must be on the same device.
    """
    _check_cloud(x, "x")
    _check_cloud(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same D, got {x.shape[1]} and {y.shape[1]}")
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    x, y = x.double(), y.double()
    gamma = 1.0 / (2.0 * bandwidth**2)
    kxx = torch.exp(-gamma * torch.cdist(x, x).pow(2))
    kyy = torch.exp(-gamma * torch.cdist(y, y).pow(2))
    kxy = torch.exp(-gamma * torch.cdist(x, y).pow(2))
    n, m = len(x), len(y)
    if unbiased:
        term_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
        term_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    else:
        term_x, term_y = kxx.mean(), kyy.mean()
    return float(term_x + term_y - 2 * kxy.mean())
