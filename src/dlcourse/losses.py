"""Numerically stable softmax and cross-entropy, written out so their gradients can be derived.

- ``logsumexp``: :math:`\\mathrm{LSE}(z) = m + \\log\\sum_j e^{z_j - m}` with :math:`m = \\max_j z_j`;
- ``log_softmax`` and ``stable_softmax`` built on it;
- ``cross_entropy``: the mean negative log-likelihood of the labels, equal to
  ``torch.nn.functional.cross_entropy`` for index targets and for probability targets.

Subtracting the maximum logit is what makes these safe: ``exp(1000)`` overflows, ``exp(0)`` does
not, and the shift cancels in every ratio.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

__all__ = [
    "bce_with_logits",
    "causal_lm_loss",
    "cross_entropy",
    "cross_entropy_dist",
    "dice_loss",
    "entropy",
    "focal_loss",
    "gaussian_nll",
    "grad_wrt_logits",
    "hinge",
    "huber",
    "kl_divergence",
    "l1_penalty",
    "l2_penalty",
    "laplace_nll",
    "log_softmax",
    "logsumexp",
    "mae",
    "masked_bce_with_logits",
    "mse",
    "nt_xent_loss",
    "stable_softmax",
]


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
    """:math:`\\log\\mathrm{softmax}(z)_i = (z_i - m) - \\log\\sum_j e^{z_j - m}`, shape of ``z``.

    Subtracting ``m = max_j z_j`` first keeps the small differences exact: ``z - LSE(z)``
    with logits near 1000 would lose about 1e-5 in float32 to rounding of the two large terms.
    """
    _check_floating(z, "z")
    m = z.amax(dim=dim, keepdim=True)
    shifted = z - torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    return shifted - shifted.exp().sum(dim=dim, keepdim=True).log()


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


# ---------------------------------------------------------------------------------------------
# Chapter 1.3: regression losses, binary losses, likelihoods and distribution-level quantities

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


def _check_pair(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str], reduction: str) -> None:
    """Both floating tensors of one shape (a target of another shape would silently broadcast)."""
    for t, name in zip((a, b), names, strict=True):
        if not torch.is_tensor(t):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if a.shape != b.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got {tuple(a.shape)} and "
            f"{tuple(b.shape)} (a (N, 1) prediction against an (N,) target would broadcast "
            "to (N, N))"
        )
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def mse(y_hat: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error :math:`\\frac1N\\sum_i (y_i - \\hat y_i)^2`, like ``F.mse_loss``.

    ``y_hat`` and ``y``: floating tensors of the same shape ``(...)``; ``reduction`` as in
    PyTorch (``"none"`` keeps the elementwise squares). Smooth, but an error of 100 costs 10,000.
    """
    _check_pair(y_hat, y, ("y_hat", "y"), reduction)
    return _reduce((y_hat - y) ** 2, reduction)


def mae(y_hat: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean absolute error :math:`\\frac1N\\sum_i |y_i - \\hat y_i|`, like ``F.l1_loss``.

    Same shapes as :func:`mse`. Not differentiable at a zero error; autograd uses the
    sub-gradient ``sign(0) = 0`` there.
    """
    _check_pair(y_hat, y, ("y_hat", "y"), reduction)
    return _reduce((y_hat - y).abs(), reduction)


def huber(e: torch.Tensor, delta: float = 1.0, reduction: str = "none") -> torch.Tensor:
    """Huber penalty of the errors ``e`` (any shape), elementwise by default.

    :math:`\\rho_\\delta(e) = \\tfrac12 e^2` for :math:`|e|\\le\\delta`, else
    :math:`\\delta|e| - \\tfrac12\\delta^2`: quadratic near 0, linear (slope :math:`\\pm\\delta`)
    beyond. Equals ``F.huber_loss(e, 0, delta=delta)``; ``SmoothL1Loss(beta)`` is this divided by
    ``beta``.
    """
    if not torch.is_tensor(e) or not e.is_floating_point():
        raise TypeError(f"e must be a floating-point tensor, got {getattr(e, 'dtype', type(e))}")
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    a = e.abs()
    losses = torch.where(a <= delta, 0.5 * e**2, delta * (a - 0.5 * delta))
    return _reduce(losses, reduction)


def hinge(
    scores: torch.Tensor, y: torch.Tensor, margin: float = 1.0, reduction: str = "mean"
) -> torch.Tensor:
    """Binary hinge loss :math:`\\max(0, m - y\\,s)` of raw ``scores: (N,)`` and labels in {-1, +1}.

    ``y``: ``(N,)``, float or int, every entry -1 or +1. Zero once an example is on the right side
    with margin ``m``; used by support vector machines. Not to be confused with the Huber loss.
    """
    if not torch.is_tensor(scores) or not scores.is_floating_point():
        raise TypeError("scores must be a floating-point tensor")
    if not torch.is_tensor(y) or y.shape != scores.shape:
        raise ValueError(f"y must be a tensor of shape {tuple(scores.shape)} (the shape of scores)")
    if not ((y == 1) | (y == -1)).all():
        raise ValueError("y must hold labels -1 and +1 only")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return _reduce((margin - y.to(scores.dtype) * scores).clamp(min=0), reduction)


def bce_with_logits(z: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Binary cross-entropy from raw logits, like ``F.binary_cross_entropy_with_logits``.

    :math:`-[y\\log\\sigma(z) + (1-y)\\log(1-\\sigma(z))] = \\max(z, 0) - zy + \\log(1 + e^{-|z|})`;
    the right-hand side never exponentiates a positive number, so it is exact at ``z = 200``
    where ``log(1 - sigmoid(z))`` is ``log(0)``. ``z`` and ``y`` (targets in [0, 1]) share a shape.
    """
    _check_pair(z, y, ("z", "y"), reduction)
    losses = z.clamp(min=0) - z * y + torch.log1p(torch.exp(-z.abs()))
    return _reduce(losses, reduction)


def focal_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "sum",
) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al., 2017) for binary or one-vs-all targets.

    :math:`FL = -\\alpha_t (1 - p_t)^\\gamma \\log p_t` with :math:`p = \\sigma(z)`,
    :math:`p_t = p` where ``y = 1`` and :math:`1 - p` where ``y = 0``, and
    :math:`\\alpha_t = \\alpha` for positives, :math:`1 - \\alpha` for negatives (no weight when
    ``alpha`` is None). ``logits`` and ``y`` share a shape, e.g. ``(N, C)`` for C one-vs-all
    classes. With ``gamma = 0`` and ``alpha = None`` it is :func:`bce_with_logits`; a large
    ``gamma`` silences well-classified examples (:math:`p_t \\to 1`). The default ``"sum"``
    is what detectors then divide by the number of positive anchors.
    """
    _check_pair(logits, y, ("logits", "y"), reduction)
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if alpha is not None and not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1] or be None, got {alpha}")
    ce = bce_with_logits(logits, y, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * y + (1 - p) * (1 - y)
    losses = ce * (1 - p_t) ** gamma
    if alpha is not None:
        losses = (alpha * y + (1 - alpha) * (1 - y)) * losses
    return _reduce(losses, reduction)


def gaussian_nll(
    y_hat: torch.Tensor, y: torch.Tensor, sigma: float = 1.0, reduction: str = "mean"
) -> torch.Tensor:
    """Negative log-likelihood of ``y`` under :math:`\\mathcal N(\\hat y, \\sigma^2)`.

    :math:`-\\log p(y) = \\frac{(y-\\hat y)^2}{2\\sigma^2} + \\tfrac12\\log(2\\pi\\sigma^2)` per element
    (same shapes as :func:`mse`): for a fixed ``sigma`` an affine function of the squared error,
    so minimising it is least squares. Equals ``F.gaussian_nll_loss(y_hat, y, var, full=True)``.
    """
    _check_pair(y_hat, y, ("y_hat", "y"), reduction)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    losses = (y - y_hat) ** 2 / (2 * sigma**2) + 0.5 * math.log(2 * math.pi * sigma**2)
    return _reduce(losses, reduction)


def laplace_nll(
    y_hat: torch.Tensor, y: torch.Tensor, b: float = 1.0, reduction: str = "mean"
) -> torch.Tensor:
    """Negative log-likelihood of ``y`` under a Laplace density centred at ``y_hat``, scale ``b``.

    :math:`p(y) = \\frac1{2b}e^{-|y-\\hat y|/b}`, so :math:`-\\log p = |y-\\hat y|/b + \\log 2b`:
    minimising it is the L1 loss, whose best constant is the median.
    """
    _check_pair(y_hat, y, ("y_hat", "y"), reduction)
    if not b > 0:
        raise ValueError(f"b must be > 0, got {b}")
    return _reduce((y - y_hat).abs() / b + math.log(2 * b), reduction)


def _check_distributions(tensors: dict[str, torch.Tensor]) -> None:
    shapes = set()
    for name, t in tensors.items():
        _check_floating(t, name)
        if (t < 0).any():
            raise ValueError(f"{name} must hold probabilities (>= 0)")
        shapes.add(tuple(t.shape))
    if len(shapes) > 1:
        raise ValueError(f"{' and '.join(tensors)} must have the same shape, got {sorted(shapes)}")


def entropy(p: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Shannon entropy :math:`H(p) = -\\sum_i p_i\\log p_i` (nats) along ``dim``, with 0 log 0 = 0.

    ``p: (..., C, ...)`` non-negative, summing to 1 along ``dim``; the result drops ``dim``.
    """
    _check_distributions({"p": p})
    return -torch.xlogy(p, p).sum(dim=dim)


def cross_entropy_dist(p: torch.Tensor, q: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Cross-entropy of distributions :math:`H(p, q) = -\\sum_i p_i\\log q_i` along ``dim``.

    ``p`` (the data) and ``q`` (the model) share a shape. It is infinite when ``q_i = 0`` where
    ``p_i > 0``, and :math:`H(p, p) = H(p)`, which is not 0: cross-entropy is not a distance.
    """
    _check_distributions({"p": p, "q": q})
    return -torch.xlogy(p, q).sum(dim=dim)


def kl_divergence(p: torch.Tensor, q: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Kullback-Leibler divergence :math:`D_{KL}(p\\Vert q) = \\sum_i p_i\\log(p_i/q_i)`.

    Along ``dim`` of two same-shaped distributions; equals :math:`H(p, q) - H(p)`, is >= 0 with
    equality iff ``p == q`` (Gibbs' inequality), and is not symmetric in ``p`` and ``q``.
    Equals ``F.kl_div(q.log(), p, reduction="none").sum(dim)``.
    """
    _check_distributions({"p": p, "q": q})
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(dim=dim)


def grad_wrt_logits(
    kind: Literal["ce", "mse"], logits: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Per-example gradient of a classification loss with respect to the logits, in closed form.

    ``logits: (N, C)``, ``target: (N,)`` class indices; returns ``(N, C)``. With
    :math:`\\hat p = \\mathrm{softmax}(z)` and one-hot :math:`y`:

    - ``"ce"``: :math:`L = -\\log\\hat p_y`, gradient :math:`\\hat p - y`;
    - ``"mse"``: :math:`L = \\sum_c (\\hat p_c - y_c)^2`, gradient through the softmax Jacobian
      :math:`J = \\mathrm{diag}(\\hat p) - \\hat p\\hat p^\\top`:
      :math:`2J(\\hat p - y) = 2\\hat p \\odot (r - \\langle\\hat p, r\\rangle)`, :math:`r = \\hat p - y`.

    The MSE gradient carries a factor :math:`\\hat p`, so it vanishes when the model is
    confidently wrong; the CE gradient does not.
    """
    if kind not in ("ce", "mse"):
        raise ValueError(f"kind must be 'ce' or 'mse', got {kind!r}")
    _check_floating(logits, "logits")
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, C), got shape {tuple(logits.shape)}")
    n, c = logits.shape
    if not torch.is_tensor(target) or target.shape != (n,) or target.is_floating_point():
        raise ValueError(f"target must be (N,) = ({n},) integer class indices")
    if ((target < 0) | (target >= c)).any():
        raise ValueError(f"target values must lie in [0, {c})")
    p = stable_softmax(logits, dim=1)
    r = p - torch.nn.functional.one_hot(target, c).to(p.dtype)
    if kind == "ce":
        return r
    return 2 * p * (r - (p * r).sum(dim=1, keepdim=True))


# ---------------------------------------------------------------------------------------------
# Chapter 2.6 (regularization): penalties act on weights, not on residuals


def _stack_params(params, name: str) -> list[torch.Tensor]:
    if torch.is_tensor(params):
        params = [params]
    params = list(params)
    if not params:
        raise ValueError(f"{name} must hold at least one tensor")
    for i, p in enumerate(params):
        if not torch.is_tensor(p):
            raise TypeError(f"{name} must hold tensors, item {i} is {type(p).__name__}")
    return params


def l1_penalty(params) -> torch.Tensor:
    """:math:`\\lVert w\\rVert_1 = \\sum_i |w_i|` over every entry of every tensor in ``params``.

    ``params``: a tensor or an iterable of tensors (e.g. ``model.parameters()``); returns a
    0-dim tensor in the graph, so ``loss + lam * l1_penalty(...)`` can be back-propagated.
    """
    return sum(p.abs().sum() for p in _stack_params(params, "params"))


def l2_penalty(params) -> torch.Tensor:
    """:math:`\\lVert w\\rVert_2^2 = \\sum_i w_i^2` (squared, no 1/2) over all entries.

    Its gradient is :math:`2w`: with the penalty ``lam * l2_penalty``, SGD's
    ``weight_decay`` equals ``2 * lam``. Same input and output as ``l1_penalty``.
    """
    return sum((p * p).sum() for p in _stack_params(params, "params"))


# ---------------------------------------------------------------------------------------------
# Chapter 3.6: segmentation


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss on sigmoid probabilities, averaged over the batch.

    Per image, with :math:`p = \\sigma(z)` and the sums over all its pixels (and channels),
    :math:`1 - \\frac{2\\sum p\\,y + \\epsilon}{\\sum p + \\sum y + \\epsilon}`. ``logits``
    and ``target`` (0/1, any float or integer dtype) share a shape ``(N, ...)``. The ratio
    compares the predicted and true foreground with each other, not with the number of
    background pixels, so a predictor of "background everywhere" loses about 1 per image that
    has foreground (``eps`` keeps an image without foreground at 0 when it is predicted empty).
    """
    _check_floating(logits, "logits")
    if not torch.is_tensor(target) or target.shape != logits.shape:
        raise ValueError(
            f"target must have the shape of logits {tuple(logits.shape)}, got "
            f"{tuple(target.shape) if torch.is_tensor(target) else type(target).__name__}"
        )
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    p = torch.sigmoid(logits).flatten(1)
    y = target.to(p.dtype).flatten(1)
    dice = (2 * (p * y).sum(1) + eps) / (p.sum(1) + y.sum(1) + eps)
    return (1 - dice).mean()


# ---------------------------------------------------------------------------------------------
# Chapter 5.3: the causal language-modelling loss (next-token cross-entropy)


def causal_lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = -100,
    shift: bool = True,
) -> torch.Tensor:
    r"""Mean next-token cross-entropy of a causal language model, in nats per counted token.

    ``logits: (B, T, V)``, ``labels: (B, T)`` int64. With ``shift=True`` the logits at position
    ``t`` are scored against the label at ``t + 1`` (``labels`` are the input ids themselves):
    $\mathcal L=-\frac{1}{n}\sum_{b,t<T-1}\log\mathrm{softmax}(z_{b,t})_{x_{b,t+1}}$, ``n`` the
    number of counted pairs. With ``shift=False`` the labels are already the next tokens (as
    from ``dlcourse.text.lm_batches``). Labels equal to ``ignore_index`` (padding, a prompt)
    are not counted; if none is counted the result is NaN, as in ``F.cross_entropy``.
    """
    _check_floating(logits, "logits")
    if logits.ndim != 3:
        raise ValueError(f"logits must be (B, T, V), got shape {tuple(logits.shape)}")
    if not torch.is_tensor(labels) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor (B, T), got {labels!r:.60}")
    if labels.shape != logits.shape[:2]:
        raise ValueError(
            f"labels must be (B, T) = {tuple(logits.shape[:2])} like logits, "
            f"got {tuple(labels.shape)}"
        )
    if shift:
        if logits.shape[1] < 2:
            raise ValueError("logits need T >= 2 positions when shift=True (nothing to predict)")
        logits, labels = logits[:, :-1], labels[:, 1:]  # predict token t+1 from position t
    flat = logits.reshape(-1, logits.shape[-1])
    return cross_entropy(flat, labels.reshape(-1).long(), ignore_index=ignore_index)


# ---------------------------------------------------------------------------------------------
# Chapter 4.4: word embeddings (negative sampling)


def masked_bce_with_logits(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Per-row mean binary cross-entropy over the real (``mask == 1``) entries: ``(B,)``.

    ``logits``, ``labels`` (0/1 targets) and ``mask`` (1 = real, 0 = padding) are ``(B, L)``;
    row ``b`` gives :math:`\\sum_l m_{bl}\\,\\ell(z_{bl}, y_{bl}) / \\sum_l m_{bl}` with
    :math:`\\ell` the loss of ``bce_with_logits``. Every row needs at least one real entry.
    """
    _check_floating(logits, "logits")
    if logits.ndim != 2 or labels.shape != logits.shape or mask.shape != logits.shape:
        raise ValueError(
            f"logits, labels and mask must share one (B, L) shape, got {tuple(logits.shape)}, "
            f"{tuple(labels.shape)} and {tuple(mask.shape)}"
        )
    mask = mask.to(logits.dtype)
    real = mask.sum(-1)
    if (real <= 0).any():
        raise ValueError("mask must have at least one real (non-zero) entry in every row")
    losses = bce_with_logits(logits, labels.to(logits.dtype), reduction="none")
    return (losses * mask).sum(-1) / real


# ---------------------------------------------------------------------------------------------
# Chapter 5.5: contrastive self-supervision (SimCLR's NT-Xent)


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, tau: float = 0.5) -> torch.Tensor:
    """SimCLR's normalised temperature-scaled cross-entropy, symmetric over the ``2N`` views.

    ``z1, z2: (N, d)``, row ``i`` of each a view of example ``i``. With ``z = [z1; z2]``
    L2-normalised and ``s_ik = z_i . z_k / tau``, anchor ``i`` with positive ``j``:
    ``l(i, j) = -log( exp(s_ij) / sum_{k != i} exp(s_ik) )`` (``2N - 1`` terms in the denominator:
    the positive and ``2(N - 1)`` negatives). Returns the mean of ``l`` over all ``2N`` anchors,
    i.e. of ``l(i, j)`` and ``l(j, i)`` over every positive pair: a scalar.
    """
    for name, z in (("z1", z1), ("z2", z2)):
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or not z.is_floating_point():
            raise ValueError(f"{name} must be a float tensor (N, d)")
    if z1.shape != z2.shape or z1.shape[0] < 2:
        raise ValueError(f"z1 and z2 must share a shape (N >= 2, d), got {z1.shape}, {z2.shape}")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    n = z1.shape[0]
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)  # (2N, d)
    sim = z @ z.T / tau
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return torch.nn.functional.cross_entropy(sim, positive)
