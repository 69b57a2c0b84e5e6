"""Exercise checks for chapter 2.1, Gradient descent, SGD and minibatches.

References are short simulations with ``dlcourse.optim.gd`` and ``dlcourse.train``, never
constants copied from the chapter.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .core import (
    WrongAnswerError,
    call_answer,
    check_close,
    check_equal,
    exercise,
    over_cases,
    require_tensor,
)

CHAPTER = "02-training/01-gradient-descent"


# ---------------------------------------------------------------------------------------------
# 1. Ten steps of gradient descent on x^2


def _ten_steps() -> float:
    from dlcourse.optim import gd

    path = gd(lambda x: 2 * x, torch.tensor([10.0], dtype=torch.float64), lr=0.2, steps=10)
    return path[-1, 0].item()


@exercise("ex-gd-ten-steps", CHAPTER, solution=_ten_steps)
def _check_ten_steps(x10: Any) -> str:
    """``x10``: the iterate after 10 steps of GD on x^2, lr 0.2, from 10."""
    if torch.is_tensor(x10) and x10.numel() == 1:
        x10 = x10.item()
    if not isinstance(x10, int | float):
        raise WrongAnswerError(f"x10 should be a number, got {type(x10).__name__}")
    if math.isclose(x10, 10 * 0.6**11, rel_tol=1e-4) or math.isclose(
        x10, 10 * 0.6**9, rel_tol=1e-4
    ):
        raise WrongAnswerError("x10 is one step off: count the updates, x_0 = 10 is not one")
    if math.isclose(x10, 10 * 0.8**10, rel_tol=1e-4):
        raise WrongAnswerError("the derivative of x^2 is 2x, not x")
    check_close(x10, _ten_steps(), rtol=1e-4, name="x10", reveal=False)
    return "x_10 = (1 - 2 lr)^10 x_0"


# ---------------------------------------------------------------------------------------------
# 2. The stability threshold on the ravine diag(1, 100)


def _converges(lr: float) -> bool:
    from dlcourse.optim import gd, make_quadratic

    f, grad, _ = make_quadratic([1.0, 100.0])
    path = gd(grad, torch.tensor([-10.0, 1.0], dtype=torch.float64), lr=lr, steps=2000)
    return bool(f(path[-1]).item() < 1e-6)


def _stability() -> tuple[float, bool, bool]:
    from dlcourse.optim import make_quadratic

    hessian = make_quadratic([1.0, 100.0])[2]
    return 2 / torch.linalg.eigvalsh(hessian).max().item(), _converges(0.019), _converges(0.021)


@exercise("ex-gd-stability", CHAPTER, solution=_stability)
def _check_stability(answer: Any) -> str:
    """``answer = (largest stable lr, converges at 0.019, converges at 0.021)``."""
    if not isinstance(answer, tuple | list) or len(answer) != 3:
        raise WrongAnswerError("answer should be a tuple of 3 items: (threshold, bool, bool)")
    threshold, at_019, at_021 = answer
    expected = _stability()
    if isinstance(threshold, int | float) and math.isclose(threshold, 2.0, rel_tol=1e-3):
        raise WrongAnswerError("threshold: 2/lambda uses the LARGEST eigenvalue (the steep wall)")
    check_close(float(threshold), expected[0], rtol=1e-3, name="threshold", reveal=False)
    for name, got, exp in (("at 0.019", at_019, expected[1]), ("at 0.021", at_021, expected[2])):
        if not isinstance(got, bool):
            raise WrongAnswerError(f"the convergence flag {name} should be a bool")
        check_equal(got, exp, name=f"the convergence flag {name}", reveal=False)
    return "eta < 2 / lambda_max"


# ---------------------------------------------------------------------------------------------
# 3. Iterations per epoch


def _iterations() -> tuple[int, int]:
    from dlcourse.train import iterations_per_epoch

    return iterations_per_epoch(1797, 64), iterations_per_epoch(1797, 64, drop_last=True)


@exercise("ex-gd-iterations", CHAPTER, solution=_iterations)
def _check_iterations(answer: Any) -> str:
    """``answer = (updates per epoch, updates per epoch with drop_last)`` for N=1797, B=64."""
    if not isinstance(answer, tuple | list) or len(answer) != 2:
        raise WrongAnswerError("answer should be a tuple (without drop_last, with drop_last)")
    if not all(isinstance(a, int) for a in answer):
        raise WrongAnswerError("both counts should be ints (updates are whole numbers)")
    dataset = torch.utils.data.TensorDataset(torch.zeros(1797))
    loaders = tuple(
        len(torch.utils.data.DataLoader(dataset, batch_size=64, drop_last=d)) for d in (False, True)
    )
    if tuple(answer) == loaders[::-1]:
        raise WrongAnswerError("the two counts are swapped: drop_last removes the partial batch")
    check_equal(tuple(answer), loaders, name="answer", reveal=False)
    return "matches len(DataLoader(...))"


# ---------------------------------------------------------------------------------------------
# 4. The mean of the minibatch gradients over one epoch


def _epoch_mean_grad_reference(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int
) -> torch.Tensor:
    from dlcourse.data import minibatches

    total, count = None, 0
    for xb, yb in minibatches(X, y, batch_size=batch_size):
        model.zero_grad(set_to_none=True)
        nn.functional.mse_loss(model(xb).squeeze(-1), yb).backward()
        flat = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        total, count = (flat if total is None else total + flat), count + 1
    return total / count


def _full_grad(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    nn.functional.mse_loss(model(X).squeeze(-1), y).backward()
    flat = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).detach().clone()
    model.zero_grad(set_to_none=True)
    return flat


@exercise("ex-gd-epoch-mean-grad", CHAPTER, solution=lambda: _epoch_mean_grad_reference)
def _check_epoch_mean_grad(epoch_mean_grad: Any) -> str:
    """``epoch_mean_grad(model, X, y, batch_size)``: mean of the minibatch gradients, flat."""

    def check_one(case: tuple[int, int, int]) -> None:
        n, d, batch_size = case
        gen = torch.Generator().manual_seed(n + d + batch_size)
        X = torch.randn(n, d, generator=gen, dtype=torch.float64)
        y = X @ torch.randn(d, generator=gen, dtype=torch.float64) + 0.5
        model = nn.Sequential(nn.Linear(d, 4), nn.Tanh(), nn.Linear(4, 1)).double()
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
        expected = _full_grad(model, X, y)
        got = require_tensor(call_answer(epoch_mean_grad, model, X, y, batch_size), "the result")
        if got.ndim != 1:
            raise WrongAnswerError("return ONE flat tensor: torch.cat of the p.grad.reshape(-1)")
        summed = expected * (n // batch_size)
        if n > batch_size and got.shape == expected.shape and torch.allclose(got, summed):
            raise WrongAnswerError("you summed the minibatch gradients: divide by their number")
        check_close(got, expected, rtol=1e-6, atol=1e-9, name="the mean gradient", reveal=False)

    cases = [("N=60, B=10", (60, 3, 10)), ("batch of one", (12, 2, 1)), ("B=N", (40, 5, 40))]
    return f"the epoch mean equals the full gradient: {over_cases(cases, check_one)}"
