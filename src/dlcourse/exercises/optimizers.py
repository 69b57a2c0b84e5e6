"""Exercise checks for chapter 2.3, Momentum and adaptive optimizers, from scratch.

The Adam check runs the student's step function next to ``torch.optim.Adam`` on the Rosenbrock
function; the other references are short simulations, never constants copied from the chapter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from .core import (
    WrongAnswerError,
    call_answer,
    check_close,
    check_equal,
    exercise,
    over_cases,
)

CHAPTER = "02-training/03-optimizers"


# ---------------------------------------------------------------------------------------------
# 1. Adam from scratch


def _adam_solution():
    from dlcourse.optim import adam_step_

    return adam_step_


def _call_in_place(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Call a step function on the real tensors (it must update them in place); a crash becomes
    a ``WrongAnswerError``. ``call_answer`` would hand it copies, which is wrong here."""
    if not callable(fn):
        raise WrongAnswerError(f"expected a function, got {type(fn).__name__}")
    try:
        fn(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as error:  # the student's bug, reported without a traceback wall
        hint = ""
        if "leaf Variable" in str(error) or "requires grad" in str(error):
            hint = " (update the parameters inside `with torch.no_grad():`)"
        raise WrongAnswerError(
            f"your function raised {type(error).__name__}: {error}{hint}"
        ) from None


def _adam_case(
    adam_step: Callable, scale: float, hp: dict[str, Any], split: bool, steps: int = 20
) -> None:
    """``steps`` steps on ``scale * rosenbrock`` next to torch.optim.Adam, float64."""
    from dlcourse.optim import rosenbrock

    start = torch.tensor([-1.5, 2.0], dtype=torch.float64)
    theirs = torch.optim.Adam
    if split:  # two parameter tensors: x and y separately
        mine = [start[:1].clone().requires_grad_(), start[1:].clone().requires_grad_()]
        ref = [start[:1].clone().requires_grad_(), start[1:].clone().requires_grad_()]
    else:
        mine, ref = [start.clone().requires_grad_()], [start.clone().requires_grad_()]
    opt = theirs(ref, **hp)
    state: dict = {}
    for step in range(1, steps + 1):
        for params in (mine, ref):
            for p in params:
                p.grad = None
            (scale * rosenbrock(torch.cat(params))).backward()
        before = torch.cat(mine).detach().clone()
        _call_in_place(adam_step, mine, state, **hp)
        opt.step()
        got, expected = torch.cat(mine).detach(), torch.cat(ref).detach()
        if not torch.isfinite(got).all():
            raise WrongAnswerError(f"step {step}: the parameters became NaN or infinite")
        if torch.allclose(got, expected, rtol=1e-6, atol=1e-6):
            continue
        if torch.equal(got, before):
            raise WrongAnswerError(
                f"step {step}: the parameters did not change; update each p in place "
                "(p -= ..., or p.add_(...)) inside torch.no_grad()"
            )
        if step == 1:
            beta1, beta2 = hp.get("betas", (0.9, 0.999))
            ratio = ((got - before) / (expected - start)).median().item()
            for factor, message in (
                (1 / math.sqrt(1 - beta2), "too large by 1/sqrt(1 - beta2): divide v by "
                 "(1 - beta2**t) (bias correction of the second moment)"),
                (1 - beta1, "too small by (1 - beta1): divide m by (1 - beta1**t) (bias "
                 "correction of the first moment)"),
                ((1 - beta1) / math.sqrt(1 - beta2), "off by (1 - beta1)/sqrt(1 - beta2): both "
                 "bias corrections are missing (m / (1 - beta1**t), v / (1 - beta2**t))"),
            ):  # fmt: skip
                if abs(ratio / factor - 1) < 0.05:
                    raise WrongAnswerError(f"step 1 is {message}")
        raise WrongAnswerError(
            f"step {step}: the parameters differ from torch.optim.Adam (the first "
            f"{step - 1} steps matched). Check the order: t += 1, m, v, bias correction, then "
            "theta -= lr * m_hat / (sqrt(v_hat) + eps), with eps outside the root"
        )


@exercise("ex-optim-adam", CHAPTER, solution=_adam_solution)
def _adam(adam_step: Any) -> str:
    """``adam_step(params, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)`` vs torch.optim.Adam."""
    cases = [
        ("Rosenbrock, lr 0.01", (1.0, {"lr": 0.01}, False)),
        ("betas (0.5, 0.9), lr 0.05", (1.0, {"lr": 0.05, "betas": (0.5, 0.9)}, False)),
        ("two parameter tensors", (1.0, {"lr": 0.02}, True)),
        ("tiny gradients, where eps matters", (1e-7, {"lr": 0.01}, False)),
        ("gradients scaled by 1000", (1e3, {"lr": 0.01}, False)),
    ]
    note = over_cases(cases, lambda case: _adam_case(adam_step, *case))
    return f"matches torch.optim.Adam for 20 steps: {note}"


# ---------------------------------------------------------------------------------------------
# 2. Terminal velocity


def _terminal_velocity(lr: float = 0.1, g: float = 1.0, beta: float = 0.9, steps: int = 200):
    """|m_t| after ``steps`` steps of m_t = beta m_{t-1} - lr g from m_0 = 0."""
    m = 0.0
    for _ in range(steps):
        m = beta * m - lr * g
    return abs(m)


@exercise("ex-optim-terminal-velocity", CHAPTER, solution=lambda: 0.1 * 1.0 / (1 - 0.9))
def _terminal(answer: Any) -> str:
    """The limit of |m_t| for lr 0.1, g 1, beta 0.9."""
    if not isinstance(answer, int | float) or isinstance(answer, bool):
        raise WrongAnswerError(f"answer should be a number, got {type(answer).__name__}")
    simulated = _terminal_velocity()
    if math.isclose(answer, 0.1, rel_tol=1e-6):
        raise WrongAnswerError("that is the first step's size; momentum keeps adding to it")
    if math.isclose(answer, 10.0, rel_tol=1e-6):
        raise WrongAnswerError("1 / (1 - beta) is the number of steps averaged; multiply by lr g")
    check_close(answer, simulated, rtol=1e-6, atol=1e-9, name="the limit of |m_t|", reveal=False)
    return "agrees with 200 simulated steps"


# ---------------------------------------------------------------------------------------------
# 3. Adaptive rates: the mean-RMS rule and AdaGrad's decaying rate


def _adagrad_rate_reference(lr: float, T: int, g: float) -> float:
    """lr / sqrt(s_T) with s_T the sum of T squared gradients g, by accumulation."""
    s = 0.0
    for _ in range(T):
        s += g * g
    return lr / math.sqrt(s)


def _adaptive_solution():
    return (math.sqrt((3.0**2 + 4.0**2) / 2), lambda lr, T, g: lr / (math.sqrt(T) * abs(g)))


@exercise("ex-optim-adaptive-rates", CHAPTER, solution=_adaptive_solution)
def _adaptive(answer: Any) -> str:
    """``(sigma1, adagrad_rate)``: a number and a function ``adagrad_rate(lr, T, g)``."""
    if not isinstance(answer, tuple | list) or len(answer) != 2:
        raise WrongAnswerError("answer should be the pair (sigma1, adagrad_rate)")
    sigma1, rate = answer
    if not isinstance(sigma1, int | float) or isinstance(sigma1, bool):
        raise WrongAnswerError(f"sigma1 should be a number, got {type(sigma1).__name__}")
    if math.isclose(sigma1, 5.0, rel_tol=1e-4):
        raise WrongAnswerError(
            "sigma1 = 5 is the root of the sum of squares (AdaGrad's accumulator); the mean "
            "rule divides the sum by the number of gradients before the root"
        )
    check_close(sigma1, math.sqrt(12.5), rtol=1e-4, name="sigma1", reveal=False)

    def check_one(case: tuple[float, int, float]) -> None:
        got = call_answer(rate, *case)
        if not isinstance(got, int | float | torch.Tensor):
            raise WrongAnswerError(f"adagrad_rate should return a number, got {type(got)}")
        got = float(got)
        expected = _adagrad_rate_reference(*case)
        if got < 0:
            raise WrongAnswerError("a learning rate is positive: did you keep the sign of g?")
        if math.isclose(got, case[0] / abs(case[2]), rel_tol=1e-6) and case[1] > 1:
            raise WrongAnswerError("your rate does not decay with T: s_T sums T squared gradients")
        check_close(got, expected, rtol=1e-6, name=f"adagrad_rate{case}", reveal=False)

    cases = [
        ("lr 0.1, T 100, g 1", (0.1, 100, 1.0)),
        ("lr 0.5, T 9, g -2", (0.5, 9, -2.0)),
        ("lr 1, T 1, g 0.01", (1.0, 1, 0.01)),
    ]
    return f"sigma1 right; adagrad_rate: {over_cases(cases, check_one)}"


# ---------------------------------------------------------------------------------------------
# 4. Momentum stability on f = lambda/2 x^2


def _momentum_converges(lr: float, beta: float = 0.5, lam: float = 4.0, steps: int = 2000) -> bool:
    x, m = 1.0, 0.0
    for _ in range(steps):
        m = beta * m - lr * lam * x
        x = x + m
    return abs(x) < 1e-3


def _stability_solution() -> tuple[float, bool, bool]:
    return (2 * (1 + 0.5) / 4.0, True, False)


@exercise("ex-optim-momentum-stability", CHAPTER, solution=_stability_solution)
def _stability(answer: Any) -> str:
    """``(largest stable lr, converges at 0.74, converges at 0.76)`` for beta 0.5, lambda 4."""
    if not isinstance(answer, tuple | list) or len(answer) != 3:
        raise WrongAnswerError("answer should be (eta_max, converges_at_0_74, converges_at_0_76)")
    eta_max, at_074, at_076 = answer
    if not isinstance(eta_max, int | float) or isinstance(eta_max, bool):
        raise WrongAnswerError(f"eta_max should be a number, got {type(eta_max).__name__}")
    if math.isclose(eta_max, 0.5, rel_tol=1e-6):
        raise WrongAnswerError("2 / lambda is plain gradient descent's limit; momentum raises it")
    threshold = 2 * (1 + 0.5) / 4.0  # the roots of z^2 - (1 + beta - lr lam) z + beta reach -1
    check_close(eta_max, threshold, rtol=1e-6, name="eta_max", reveal=False)
    for name, value in (("converges_at_0_74", at_074), ("converges_at_0_76", at_076)):
        if not isinstance(value, bool):
            raise WrongAnswerError(f"{name} should be True or False, got {type(value).__name__}")
    simulated = (_momentum_converges(0.74), _momentum_converges(0.76))
    check_equal((at_074, at_076), simulated, name="(converges at 0.74, at 0.76)", reveal=False)
    return "threshold and both simulations right"
