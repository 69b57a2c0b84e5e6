"""Exercise checks for chapter 1.2, Derivatives, the chain rule and automatic differentiation.

The references come from ``torch.autograd`` run on the same expressions, so a hand-derived or
predicted answer is graded against the machine.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .core import (
    WrongAnswerError,
    call_answer,
    check_close,
    check_dtype,
    check_equal,
    exercise,
    over_cases,
    require_tensor,
)

CHAPTER = "01-foundations/02-autograd"


# ---------------------------------------------------------------------------------------------
# 1. Central finite differences


def _numerical_grad_solution():
    from dlcourse.autograd import numerical_grad

    return numerical_grad


def _numerical_grad_cases() -> list[tuple[str, tuple[Any, torch.Tensor, float | None]]]:
    """(description, (f, x, eps or None for the default)) for five functions, float64."""
    g = torch.Generator().manual_seed(12)
    weights = torch.randn(2, 3, generator=g, dtype=torch.float64)
    return [
        ("sum of cubes, x of shape (4,)", (lambda x: (x**3).sum(),
         torch.randn(4, generator=g, dtype=torch.float64), None)),
        ("product of sines, eps=1e-4", (lambda x: torch.sin(x).prod(),
         1.0 + torch.rand(3, generator=g, dtype=torch.float64), 1e-4)),
        ("a (2, 3) matrix input", (lambda x: (weights * x**2).sum() + x.exp().sum(),
         torch.randn(2, 3, generator=g, dtype=torch.float64), None)),
        ("a 0-dim input", (lambda x: torch.log(1 + x**2),
         torch.tensor(0.7, dtype=torch.float64), None)),
        ("log-sum-exp of values near 100", (lambda x: torch.logsumexp(x, dim=0),
         100 + torch.randn(5, generator=g, dtype=torch.float64), None)),
    ]  # fmt: skip


def _forward_difference(f, x: torch.Tensor, eps: float) -> torch.Tensor:
    """(f(x + eps e_i) - f(x)) / eps: the one-sided estimate, to recognise that answer."""
    flat = x.detach().clone().reshape(-1)
    base = f(flat.view_as(x)).item()
    out = torch.empty_like(flat)
    for i in range(flat.numel()):
        bumped = flat.clone()
        bumped[i] += eps
        out[i] = (f(bumped.view_as(x)).item() - base) / eps
    return out.view_as(x)


@exercise("ex-autograd-numerical-grad", CHAPTER, solution=_numerical_grad_solution)
def _numerical_grad(numerical_grad: Any) -> str:
    """``numerical_grad(f, x, eps=1e-6)`` against ``torch.autograd.grad`` on five functions."""
    from dlcourse.autograd import rel_error

    def check_one(case: tuple[Any, torch.Tensor, float | None]) -> None:
        f, x, eps = case
        kwargs = {} if eps is None else {"eps": eps}
        got = require_tensor(call_answer(numerical_grad, f, x, **kwargs), "numerical_grad(f, x)")
        leaf = x.clone().requires_grad_()
        (expected,) = torch.autograd.grad(f(leaf), leaf)
        if got.shape != x.shape:
            raise WrongAnswerError(
                f"the result should have the shape of x, {tuple(x.shape)}, got {tuple(got.shape)}"
            )
        check_dtype(got, torch.float64, "numerical_grad(f, x) for a float64 x")
        if not torch.isfinite(got).all():
            raise WrongAnswerError("the result contains NaN or infinite values")
        error = rel_error(got, expected)
        if error < 1e-6:
            return
        one_sided = _forward_difference(f, x, 1e-6 if eps is None else eps)
        if rel_error(got, one_sided) < 0.01 * error:
            raise WrongAnswerError(
                "this is the one-sided difference (f(x + eps) - f(x)) / eps, whose error "
                "shrinks only like eps; use the central one, (f(x + eps) - f(x - eps)) / "
                "(2 eps), whose error shrinks like eps**2"
            )
        check_close(got, expected, rtol=1e-6, atol=1e-9, name="numerical_grad(f, x)",
                    reveal=False)  # fmt: skip
        raise WrongAnswerError("the relative error to autograd is above 1e-6")

    return over_cases(_numerical_grad_cases(), check_one)


# ---------------------------------------------------------------------------------------------
# 2. The multivariate chain rule


T_CHAIN = 0.7


def _chain_rule_autograd() -> float:
    t = torch.tensor(T_CHAIN, dtype=torch.float64, requires_grad=True)
    z = torch.cos(t) * t**2
    z.backward()
    return t.grad.item()


def _chain_rule_solution() -> float:
    t = T_CHAIN
    dz_dx, dz_dy = t**2, math.cos(t)  # z = x y with x = cos t, y = t**2
    dx_dt, dy_dt = -math.sin(t), 2 * t
    return dz_dx * dx_dt + dz_dy * dy_dt


@exercise("ex-autograd-chain-rule", CHAPTER, solution=_chain_rule_solution)
def _chain_rule(answer: Any) -> str:
    """``answer`` = dz/dt at t = 0.7 for z = x y, x = cos t, y = t**2."""
    if torch.is_tensor(answer):
        if answer.numel() != 1:
            raise WrongAnswerError(f"answer should be one number, got shape {tuple(answer.shape)}")
        answer = answer.item()
    if not isinstance(answer, int | float):
        raise WrongAnswerError(f"answer should be a number, got {type(answer).__name__}")
    t = T_CHAIN
    paths = {"x": -math.sin(t) * t**2, "y": math.cos(t) * 2 * t}
    for through, value in paths.items():
        if math.isclose(answer, value, rel_tol=1e-6):
            raise WrongAnswerError(
                f"this is only the path through {through}; z depends on t through both x and y, "
                "and the multivariate chain rule adds the two paths"
            )
    if math.isclose(answer, paths["y"] - paths["x"], rel_tol=1e-6):
        raise WrongAnswerError("a sign is wrong: the derivative of cos t is -sin t")
    check_close(answer, _chain_rule_autograd(), rtol=1e-6, atol=1e-9, name="dz/dt", reveal=False)
    return "matches autograd"


# ---------------------------------------------------------------------------------------------
# 3. Gradient accumulation


X_ACCUMULATE = (-1.0, 0.5, 2.0)


def _accumulated_grad() -> torch.Tensor:
    x = torch.tensor(X_ACCUMULATE, requires_grad=True)
    (x**3).sum().backward()
    (2 * x).sum().backward()
    return x.grad


def _accumulation_solution() -> list[float]:
    return [3 * v**2 + 2 for v in X_ACCUMULATE]


@exercise("ex-autograd-accumulation", CHAPTER, solution=_accumulation_solution)
def _accumulation(answer: Any) -> str:
    """``answer`` = ``x.grad`` after the two backward calls, x = [-1, 0.5, 2]."""
    expected = _accumulated_grad()
    try:
        got = torch.as_tensor(answer, dtype=torch.float32).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise WrongAnswerError(
            f"answer should be three numbers (a list or a tensor), got {type(answer).__name__}"
        ) from None
    if got.shape != expected.shape:
        raise WrongAnswerError(f"answer should hold 3 numbers, got shape {tuple(got.shape)}")
    x = torch.tensor(X_ACCUMULATE)
    if torch.allclose(got, torch.full_like(x, 2.0)):
        raise WrongAnswerError(
            "that is the gradient of the second backward alone: .grad is not overwritten, "
            "each backward() adds into it"
        )
    if torch.allclose(got, 3 * x**2):
        raise WrongAnswerError(
            "that is the gradient of the first backward alone: the second backward() adds its "
            "gradient into the same .grad"
        )
    check_close(got, expected, rtol=1e-5, atol=1e-6, name="x.grad", reveal=False)
    return "matches torch"


# ---------------------------------------------------------------------------------------------
# 4. Leaf tensors


def _leaf_table() -> dict[str, tuple[bool, bool]]:
    """Run the statement's code and read is_leaf and whether .grad was filled."""
    a = torch.ones(3)
    w = torch.ones(3, requires_grad=True)
    y = w * 2
    (y * a).sum().backward()
    # reading y.grad of a non-leaf warns; is_leaf decides without reading it
    y_has_grad = y.is_leaf and y.grad is not None
    return {
        "a": (a.is_leaf, a.grad is not None),
        "w": (w.is_leaf, w.grad is not None),
        "y": (y.is_leaf, y_has_grad),
    }


@exercise("ex-autograd-leaves", CHAPTER, solution=_leaf_table)
def _leaves(answer: Any) -> str:
    """``answer`` = ``{name: (is_leaf, has_grad_after_backward)}`` for a, w and y."""
    if not isinstance(answer, dict):
        raise WrongAnswerError(f"answer should be a dict, got {type(answer).__name__}")
    expected = _leaf_table()
    check_equal(sorted(answer), sorted(expected), name="the keys of answer", reveal=True)
    for name, value in answer.items():
        if (
            not isinstance(value, tuple | list)
            or len(value) != 2
            or not all(isinstance(v, bool) for v in value)
        ):
            raise WrongAnswerError(f"answer[{name!r}] should be a pair of booleans")
    answer = {name: tuple(value) for name, value in answer.items()}
    if answer["a"][0] is False:
        raise WrongAnswerError(
            "a: every tensor you create yourself is a leaf, also one that does not require "
            "gradients"
        )
    if answer["a"][1] is True:
        raise WrongAnswerError("a: .grad is filled only for tensors that require gradients")
    if answer["y"][0] is True:
        raise WrongAnswerError("y: a tensor computed from a tensor that requires grad is no leaf")
    if answer["y"][1] is True:
        raise WrongAnswerError(
            "y: autograd does not keep .grad of a non-leaf tensor unless y.retain_grad() is called"
        )
    check_equal(answer, expected, name="answer", reveal=False)
    return "a leaf table for three tensors"
