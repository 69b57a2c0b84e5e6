"""Exercise checks for chapter 2.8, Vanishing and exploding gradients, residual connections."""

from __future__ import annotations

import math
from typing import Any

import torch

from .core import WrongAnswerError, call_answer, check_close, exercise, over_cases, require_tensor

CHAPTER = "02-training/08-deep-network-stability"


# ---------------------------------------------------------------------------------------------
# 1. Products of scaled orthogonal matrices


def _orthogonal_product(a: float, L: int, d: int = 8, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    product = torch.eye(d, dtype=torch.float64)
    for _ in range(L):
        q, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
        product = (a * q) @ product
    return product


@exercise("ex-stability-orthogonal", CHAPTER, solution=lambda: _orthogonal_product)
def _orthogonal(fn: Any) -> str:
    """``fn(a, L, d=8, seed=0)``: the product of ``L`` random orthogonal ``(d, d)`` times ``a``."""

    def one(case: tuple[float, int, int]) -> None:
        a, L, d = case
        P = require_tensor(call_answer(fn, a, L, d=d, seed=1), "the product")
        if P.shape != (d, d):
            raise WrongAnswerError(f"the product should be ({d}, {d}), got {tuple(P.shape)}")
        P = P.double()
        if not torch.isfinite(P).all():
            raise WrongAnswerError("the product contains NaN or infinite values")
        norm = torch.linalg.matrix_norm(P, 2)
        check_close(norm, a**L, rtol=1e-5, name="the spectral norm of the product", reveal=False)
        s = torch.linalg.svdvals(P)
        if (s.max() - s.min()) > 1e-5 * s.max():
            raise WrongAnswerError(
                "the singular values of the product are not all equal: are the factors "
                "orthogonal (the Q of torch.linalg.qr, not the random matrix itself)?"
            )

    cases = [("a=0.9, L=10", (0.9, 10, 8)), ("a=1.1, L=30", (1.1, 30, 8)),
             ("a=1, L=50, d=3", (1.0, 50, 3))]  # fmt: skip
    return over_cases(cases, one)


# ---------------------------------------------------------------------------------------------
# 2. The scalar sigmoid chain, by hand


def _chain_grad_w1(w: torch.Tensor, b: torch.Tensor, x0: float) -> torch.Tensor:
    """dz_L/dw_1 for z_i = sigmoid(w_i z_{i-1} + b_i), z_0 = x0, with autograd."""
    w = w.detach().clone().double().requires_grad_(True)
    z = torch.tensor(float(x0), dtype=torch.float64)
    for wi, bi in zip(w, b.double(), strict=True):
        z = torch.sigmoid(wi * z + bi)
    (grad,) = torch.autograd.grad(z, w)
    return grad[0]


@exercise("ex-stability-scalar-chain", CHAPTER, solution=lambda: _chain_grad_w1)
def _scalar_chain(fn: Any) -> str:
    """``fn(w, b, x0)``: :math:`\\partial z_L/\\partial w_1` of the sigmoid chain, a 0-dim tensor."""

    def one(case: tuple[torch.Tensor, torch.Tensor, float]) -> None:
        w, b, x0 = case
        got = call_answer(fn, w, b, x0)
        if torch.is_tensor(got):
            if got.numel() != 1:
                raise WrongAnswerError(
                    f"return one number (dz_L/dw_1), got a tensor of shape {tuple(got.shape)}"
                )
            got = got.detach().reshape(())
        expected = _chain_grad_w1(w, b, x0)
        check_close(got, expected, rtol=1e-6, atol=1e-300, name="dz_L/dw_1", reveal=False)

    generator = torch.Generator().manual_seed(7)
    cases = []
    for i in range(3):
        w = torch.randn(5, generator=generator, dtype=torch.float64) * 2
        b = torch.randn(5, generator=generator, dtype=torch.float64)
        cases.append((f"random weights {i + 1}", (w, b, 0.5 + i)))
    cases.append(("large weights", (torch.full((5,), 6.0).double(), torch.zeros(5).double(), 1.0)))
    cases.append(("negative input", (torch.ones(5).double(), torch.zeros(5).double(), -2.0)))
    return over_cases(cases, one)


# ---------------------------------------------------------------------------------------------
# 3. Break the "+1 means it cannot explode" claim


def residual_input_grad_norm(weights: torch.Tensor) -> float:
    """:math:`\\lVert\\partial L/\\partial x_0\\rVert` for ``x_{k+1} = x_k + W_k x_k`` and
    :math:`L = u^\\top x_K`, ``u = (1, ..., 1)/\\sqrt d``; ``weights: (K, d, d)``.

    The gradient is :math:`(I+W_0)^\\top\\cdots(I+W_{K-1})^\\top u`, computed with autograd.
    """
    if not torch.is_tensor(weights) or weights.ndim != 3 or weights.shape[1] != weights.shape[2]:
        raise ValueError("weights must be a tensor of shape (K, d, d)")
    weights = weights.detach().double()
    d = weights.shape[1]
    x0 = torch.zeros(d, dtype=torch.float64, requires_grad=True)
    x = x0
    for W in weights:
        x = x + W @ x
    u = torch.ones(d, dtype=torch.float64) / math.sqrt(d)
    (grad,) = torch.autograd.grad(x @ u, x0)
    return grad.norm().item()


def _doubling_weights() -> torch.Tensor:
    """W_k = I in every block: each factor (I + W_k) = 2I, so the norm is 2^10 = 1024."""
    return torch.eye(4).repeat(10, 1, 1)


@exercise("ex-stability-break-plus-one", CHAPTER, solution=_doubling_weights)
def _break_plus_one(weights: Any) -> str:
    """``weights: (10, d, d)`` for 10 linear residual blocks, with entries of size at most 10."""
    weights = require_tensor(weights, "weights")
    if weights.ndim != 3 or weights.shape[0] != 10 or weights.shape[1] != weights.shape[2]:
        raise WrongAnswerError(
            f"weights should have shape (10, d, d): one square matrix per block, got "
            f"{tuple(weights.shape)}"
        )
    if not weights.is_floating_point() or not torch.isfinite(weights).all():
        raise WrongAnswerError("weights should be finite floating-point numbers")
    if weights.abs().max() > 10:
        raise WrongAnswerError(
            "keep every weight at most 10 in size: the point is that moderate branch "
            "Jacobians already multiply up"
        )
    norm = residual_input_grad_norm(weights)
    if not norm > 1e3:
        raise WrongAnswerError(
            f"||dL/dx_0|| = {norm:.3g}, not above 1e3. Each block multiplies the gradient by "
            "(I + W_k)^T: which W_k makes that factor stretch the same direction every time?"
        )
    return f"||dL/dx_0|| = {norm:.3g}"


# ---------------------------------------------------------------------------------------------
# 4. Gradient clipping by the global norm


def _clip_cases() -> list[tuple[str, tuple[list[torch.Tensor], float]]]:
    generator = torch.Generator().manual_seed(3)
    shapes = [(4, 3), (3,), (2, 2, 2)]
    big = [torch.randn(s, generator=generator, dtype=torch.float64) * 50 for s in shapes]
    small = [torch.randn(s, generator=generator, dtype=torch.float64) * 1e-3 for s in shapes]
    one = [torch.randn(5, generator=generator, dtype=torch.float64) * 10]
    return [("large gradients, max_norm=1", (big, 1.0)),
            ("small gradients (no clipping), max_norm=1", (small, 1.0)),
            ("a single parameter, max_norm=0.5", (one, 0.5)),
            ("large gradients, max_norm=20", (big, 20.0))]  # fmt: skip


def _params_with(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    params = []
    for g in grads:
        p = torch.zeros_like(g, requires_grad=True)
        p.grad = g.clone()
        params.append(p)
    return params


def _reference_clip() -> Any:
    from dlcourse.optim import clip_grad_norm_

    return clip_grad_norm_


@exercise("ex-stability-clip", CHAPTER, solution=_reference_clip)
def _clip(fn: Any) -> str:
    """``fn(params, max_norm)``: clip in place, return the norm before clipping."""

    def one(case: tuple[list[torch.Tensor], float]) -> None:
        grads, max_norm = case
        ours, theirs = _params_with(grads), _params_with(grads)
        expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
        if not callable(fn):
            raise WrongAnswerError(f"expected a function, got {type(fn).__name__}")
        try:
            got = fn(ours, max_norm)
        except NotImplementedError:
            raise
        except Exception as error:
            raise WrongAnswerError(
                f"your function raised {type(error).__name__}: {error}"
            ) from None
        if got is None:
            raise WrongAnswerError("return the total gradient norm measured before clipping")
        check_close(torch.as_tensor(got).detach().double(), expected, rtol=1e-6,
                    name="the returned norm", reveal=False)  # fmt: skip
        for i, (p, q) in enumerate(zip(ours, theirs, strict=True)):
            if p.grad is None:
                raise WrongAnswerError(f"parameter {i} lost its .grad: clip in place")
            check_close(p.grad, q.grad, rtol=1e-6, atol=1e-12, name=f"params[{i}].grad",
                        reveal=False)  # fmt: skip
        before = torch.cat([g.flatten() for g in grads])
        after = torch.cat([p.grad.flatten() for p in ours])
        cosine = torch.nn.functional.cosine_similarity(before, after, dim=0)
        if cosine < 1 - 1e-9:
            raise WrongAnswerError("the clipped gradient points in another direction")

    return over_cases(_clip_cases(), one)
