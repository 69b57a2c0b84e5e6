"""Numerically stable softmax and cross-entropy, written out so their gradients can be derived.

- ``logsumexp``: :math:`\\mathrm{LSE}(z) = m + \\log\\sum_j e^{z_j - m}` with :math:`m = \\max_j z_j`;
- ``log_softmax`` and ``stable_softmax`` built on it;
- ``cross_entropy``: the mean negative log-likelihood of the labels, equal to
  ``torch.nn.functional.cross_entropy`` for index targets and for probability targets.

Subtracting the maximum logit is what makes these safe: ``exp(1000)`` overflows, ``exp(0)`` does
not, and the shift cancels in every ratio.
"""

from __future__ import annotations

import torch

__all__ = ["cross_entropy", "log_softmax", "logsumexp", "stable_softmax"]


def _check_floating(z: torch.Tensor, name: str) -> None:
    if not torch.is_tensor(z):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(z).__name__}")
    if not z.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {z.dtype}")
    if z.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension, got a 0-d tensor")


def logsumexp(z: torch.Tensor, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    """:math:`\\log\\sum_j e^{z_j}` along ``dim``, computed as :math:`m + \\log\\sum_j e^{z_j-m}`.

    ``z: (..., C, ...)``, any floating dtype; the result drops ``dim`` unless ``keepdim``.
    With ``m = max_j z_j`` every exponent is <= 0, so nothing overflows; a row that is all
    ``-inf`` gives ``-inf`` (as ``torch.logsumexp`` does), not NaN.
    """
    _check_floating(z, "z")
    m = z.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # all -inf rows: shift by 0
    out = (z - m).exp().sum(dim=dim, keepdim=True).log() + m
    return out if keepdim else out.squeeze(dim)


def log_softmax(z: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """:math:`\\log\\mathrm{softmax}(z)_i = z_i - \\mathrm{LSE}(z)`, same shape as ``z``."""
    return z - logsumexp(z, dim=dim, keepdim=True)


def stable_softmax(z: torch.Tensor, dim: int = -1, temperature: float = 1.0) -> torch.Tensor:
    """:math:`\\hat p_i = e^{(z_i - m)/T} / \\sum_j e^{(z_j - m)/T}` along ``dim``; shape of ``z``.

    Adding a constant to every logit changes nothing; dividing them by the temperature ``T``
    does (``T < 1`` sharpens, ``T > 1`` flattens).
    """
    _check_floating(z, "z")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = z / temperature
    e = (z - z.amax(dim=dim, keepdim=True)).exp()
    return e / e.sum(dim=dim, keepdim=True)


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy of raw ``logits: (N, C)`` against ``target``, like ``F.cross_entropy``.

    - index targets ``(N,)`` int64 in ``[0, C)``: :math:`\\ell_n = \\mathrm{LSE}(z_n) - z_{n,y_n}`;
      rows whose target equals ``ignore_index`` are skipped (and not counted by the mean);
    - probability targets ``(N, C)`` floating: :math:`\\ell_n = -\\sum_c y_{n,c}\\log\\hat p_{n,c}`.

    ``reduction``: ``"mean"`` (over counted rows), ``"sum"`` or ``"none"`` (returns ``(N,)``).
    The logits must not have been through a softmax already.
    """
    _check_floating(logits, "logits")
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, C), got shape {tuple(logits.shape)}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not torch.is_tensor(target):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    logp = log_softmax(logits, dim=1)
    n, c = logits.shape
    if target.is_floating_point():
        if target.shape != logits.shape:
            raise ValueError(
                f"probability target must have the shape of logits {(n, c)}, "
                f"got {tuple(target.shape)}"
            )
        losses = -(target * logp).sum(dim=1)
        counted = torch.ones_like(losses)
    else:
        if target.shape != (n,):
            raise ValueError(
                f"target must be (N,) = ({n},) class indices, got {tuple(target.shape)}"
            )
        keep = target != ignore_index
        if ((target[keep] < 0) | (target[keep] >= c)).any():
            raise ValueError(f"target values must lie in [0, {c}) or equal ignore_index")
        safe = torch.where(keep, target, torch.zeros_like(target))
        losses = -logp.gather(1, safe.unsqueeze(1)).squeeze(1) * keep
        counted = keep.to(logits.dtype)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / counted.sum()
