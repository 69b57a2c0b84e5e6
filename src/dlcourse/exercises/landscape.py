"""Exercise checks for chapter 2.2, The optimization landscape: saddles and curvature.

Every reference comes from the curvature kernels of ``dlcourse.autograd`` (``hessian`` by double
backprop, ``classify_critical_point``, ``newton_step``) or from ``torch.linalg.eigvalsh``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .core import WrongAnswerError, call_answer, check_close, check_equal, exercise, over_cases

CHAPTER = "02-training/02-optimization-landscape"

_KINDS = ("min", "max", "saddle", "degenerate")


def _grad_and_hessian(fn, point: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    from dlcourse.autograd import hessian

    x = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(fn(x), x)
    return grad, hessian(fn, x)


# ---------------------------------------------------------------------------------------------
# 1. Classify the critical points of f(x, y) = x^3 - 3x + y^2


def _cubic(p: torch.Tensor) -> torch.Tensor:
    return p[0] ** 3 - 3 * p[0] + p[1] ** 2


def _classify_reference() -> dict[tuple[int, int], str]:
    from dlcourse.autograd import classify_critical_point

    kinds = {}
    for point in ((1, 0), (-1, 0)):
        grad, H = _grad_and_hessian(_cubic, point)
        assert grad.abs().max() < 1e-12  # both points are critical
        kinds[point] = classify_critical_point(H)
    return kinds


@exercise("ex-landscape-classify", CHAPTER, solution=_classify_reference)
def _classify(answer: Any) -> str:
    """``answer = {(1, 0): kind, (-1, 0): kind}`` with kinds among min/max/saddle/degenerate."""
    if not isinstance(answer, dict):
        raise WrongAnswerError(
            f"answer should be a dict from points to kinds, got {type(answer).__name__}"
        )
    try:  # (1.0, 0.0) or [1, 0] name the same point as (1, 0)
        answer = {tuple(int(c) for c in k) if isinstance(k, tuple | list) else k: v
                  for k, v in answer.items()}  # fmt: skip
    except (TypeError, ValueError):
        raise WrongAnswerError("the keys should be points such as (1, 0)") from None
    for kind in answer.values():
        if kind not in _KINDS:
            raise WrongAnswerError(f"each kind must be one of {list(_KINDS)}, got {kind!r}")
    expected = _classify_reference()
    if answer.get((-1, 0)) == "max":
        raise WrongAnswerError(
            "(-1, 0) is a maximum along x only: f_yy = 2 > 0, so along y it curves upwards. "
            "Mixed signs of the Hessian's eigenvalues make a saddle"
        )
    check_equal(answer, expected, name="answer", reveal=False)
    return "both critical points"


# ---------------------------------------------------------------------------------------------
# 2. The degenerate valley of (1 - w1 w2)^2 at (1, 1)


def _two_weight_loss(w: torch.Tensor) -> torch.Tensor:
    return (1 - w[0] * w[1]) ** 2


def _valley_reference() -> tuple[list[float], str]:
    from dlcourse.autograd import classify_critical_point

    _, H = _grad_and_hessian(_two_weight_loss, (1.0, 1.0))
    return torch.linalg.eigvalsh(H).tolist(), classify_critical_point(H, tol=1e-8)


@exercise("ex-landscape-valley", CHAPTER, solution=_valley_reference)
def _valley(answer: Any) -> str:
    """``answer = (eigenvalues, kind)`` for the Hessian of (1 - w1 w2)^2 at (1, 1)."""
    if not isinstance(answer, tuple | list) or len(answer) != 2:
        raise WrongAnswerError("answer should be a pair (eigenvalues, kind)")
    eigs, kind = answer
    try:
        eigs = sorted(float(e) for e in eigs)
    except (TypeError, ValueError):
        raise WrongAnswerError(
            "the eigenvalues should be two numbers (a list or a tensor)"
        ) from None
    expected_eigs, expected_kind = _valley_reference()
    if len(eigs) != 2:
        raise WrongAnswerError(f"a 2 x 2 Hessian has 2 eigenvalues, got {len(eigs)}")
    if math.isclose(eigs[0], -2.0, abs_tol=1e-6) and math.isclose(eigs[1], 2.0, abs_tol=1e-6):
        raise WrongAnswerError(
            "those are the eigenvalues at the saddle (0, 0); evaluate the second derivatives at "
            "(1, 1), where d2L/dw1dw2 = -2 + 4 w1 w2"
        )
    check_close(sorted(eigs), sorted(expected_eigs), rtol=1e-6, atol=1e-6, name="eigenvalues",
                reveal=False)  # fmt: skip
    if kind == "min":
        raise WrongAnswerError(
            "the eigenvalues are right, but one of them is 0: the Hessian is singular, so the "
            "second-derivative test cannot say 'min' (the loss is flat along the valley)"
        )
    if kind not in _KINDS:
        raise WrongAnswerError(f"kind must be one of {list(_KINDS)}, got {kind!r}")
    check_equal(kind, expected_kind, name="kind", reveal=False)
    return "eigenvalues and classification"


# ---------------------------------------------------------------------------------------------
# 3. The most negative eigenvalue by shifted power iteration


def _symmetric(eigs: list[float], seed: int) -> torch.Tensor:
    """Q diag(eigs) Q^T with a seeded random orthogonal Q (float64)."""
    g = torch.Generator().manual_seed(seed)
    n = len(eigs)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return Q @ torch.diag(torch.tensor(eigs, dtype=torch.float64)) @ Q.T


_EIG_CASES = [
    ("diag(3, 1, -0.5): the largest magnitude is positive", torch.diag(
        torch.tensor([3.0, 1.0, -0.5], dtype=torch.float64))),
    ("a 10 x 10 matrix with eigenvalues in [-1, 4]", _symmetric(
        [-1.0, -0.4, 0.0, 0.3, 0.8, 1.2, 2.0, 2.5, 3.2, 4.0], seed=0)),
    ("a 20 x 20 matrix whose most negative eigenvalue is also the largest in magnitude",
     _symmetric([-6.0] + [0.25 * k for k in range(19)], seed=1)),
    ("a positive-definite matrix (the answer is positive)", _symmetric(
        [0.5, 1.0, 2.0, 3.0, 5.0], seed=2)),
    ("a 1 x 1 matrix", torch.tensor([[-2.5]], dtype=torch.float64)),
]  # fmt: skip


def _smallest_eigenvalue_reference(matvec, dim: int) -> float:
    from dlcourse.autograd import power_iteration

    top, _ = power_iteration(matvec, dim, iters=300, seed=1)
    bottom, _ = power_iteration(matvec, dim, iters=1000, shift=abs(top), seed=2)
    return bottom


@exercise("ex-landscape-min-eig", CHAPTER, solution=lambda: _smallest_eigenvalue_reference)
def _min_eig(fn: Any) -> str:
    """``fn(matvec, dim) -> float``: the most negative (smallest) eigenvalue of a symmetric A."""

    def check_one(H: torch.Tensor) -> None:
        eigs = torch.linalg.eigvalsh(H)
        scale = eigs.abs().max().item()

        def matvec(v: torch.Tensor) -> torch.Tensor:
            return H @ torch.as_tensor(v).to(H.dtype).reshape(-1)

        got = call_answer(fn, matvec, H.shape[0])
        try:
            got = float(got)
        except (TypeError, ValueError, RuntimeError):
            raise WrongAnswerError(f"return one number, got {type(got).__name__}") from None
        smallest, largest = eigs[0].item(), eigs[-1].item()
        tol = 1e-3 * scale
        if abs(got - smallest) <= tol:
            return
        if len(eigs) > 1 and abs(got - largest) <= tol:
            raise WrongAnswerError(
                "you found the largest eigenvalue: power iteration converges to the eigenvalue of "
                "largest magnitude; shift the operator to A - c I with c >= the largest eigenvalue"
            )
        if abs(got - (smallest - largest)) <= tol or abs(got - (smallest - abs(largest))) <= tol:
            raise WrongAnswerError(
                "you returned an eigenvalue of the shifted operator A - c I: add the shift back "
                "(or take the Rayleigh quotient v @ matvec(v) of the original operator)"
            )
        check_close(got, smallest, rtol=0.0, atol=tol, name="smallest eigenvalue", reveal=False)

    return over_cases(_EIG_CASES, check_one)


# ---------------------------------------------------------------------------------------------
# 4. One Newton step on x^2 - y^2


def _saddle(p: torch.Tensor) -> torch.Tensor:
    return p[0] ** 2 - p[1] ** 2


NEWTON_START = (1.0, 0.5)


def _newton_reference() -> list[float]:
    from dlcourse.autograd import newton_step

    grad, H = _grad_and_hessian(_saddle, NEWTON_START)
    return (torch.tensor(NEWTON_START, dtype=torch.float64) + newton_step(grad, H)).tolist()


@exercise("ex-landscape-newton", CHAPTER, solution=_newton_reference)
def _newton(answer: Any) -> str:
    """``answer``: the point (x, y) after one Newton step on x^2 - y^2 from (1, 0.5)."""
    try:
        got = torch.as_tensor(answer, dtype=torch.float64).detach().reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise WrongAnswerError("answer should be the new point (x, y): two numbers") from None
    if got.numel() != 2:
        raise WrongAnswerError(f"answer should hold two numbers (x, y), got {got.numel()}")
    start = torch.tensor(NEWTON_START, dtype=torch.float64)
    step = got - start
    hints = {
        (-1.0, 1.0): "that is a gradient step with learning rate 1 (theta - g), not a Newton step",
        (0.0, 1.0): "that step uses |H| (saddle-free Newton); plain Newton uses H^-1 itself",
        (2.0, 0.0): "the step has the wrong sign: Newton moves by -H^-1 g",
    }
    for point, hint in hints.items():
        if torch.allclose(got, torch.tensor(point, dtype=torch.float64), atol=1e-6):
            raise WrongAnswerError(hint)
    if torch.allclose(step, torch.zeros(2, dtype=torch.float64)):
        raise WrongAnswerError("answer is the starting point: apply the step -H^-1 g to it")
    check_close(got, _newton_reference(), rtol=0.0, atol=1e-6, name="the new point", reveal=False)
    return "one Newton step"
