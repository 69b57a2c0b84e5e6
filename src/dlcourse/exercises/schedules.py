"""Exercise checks for chapter 2.4, Learning-rate schedules and warm-up.

The references are the stateless schedules of ``dlcourse.optim`` and short simulations (the
notes' stateful factor scheduler, a ``MultiStepLR`` run), never constants copied from the
chapter.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch

from .core import WrongAnswerError, call_answer, check_close, check_equal, exercise, over_cases

CHAPTER = "02-training/04-learning-rate-schedules"


def _number(value: Any, name: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WrongAnswerError(f"{name} should be a number (a float), got {type(value).__name__}")
    if not math.isfinite(value):
        raise WrongAnswerError(f"{name} is {value}, not a finite number")
    return float(value)


def _compare_schedule(fn: Callable, reference: Callable, steps: range, label: str, **kw) -> None:
    got = [_number(call_answer(fn, t, **kw), f"{label}({t})") for t in steps]
    expected = [reference(t, **kw) for t in steps]
    for t, g, e in zip(steps, got, expected, strict=True):
        if not math.isclose(g, e, rel_tol=1e-6, abs_tol=1e-12):
            raise WrongAnswerError(f"{label}(t={t}, ...) is wrong (got {g:.6g})")


# ---------------------------------------------------------------------------------------------
# 1. Cosine with warm-up


def _cosine_solution():
    from dlcourse.optim import cosine_lr

    return cosine_lr


@exercise("ex-sched-cosine", CHAPTER, solution=_cosine_solution)
def _cosine(cosine_lr: Any) -> str:
    """``cosine_lr(t, max_update, base_lr, final_lr, warmup_steps, warmup_begin_lr)``."""
    from dlcourse.optim import cosine_lr as reference

    cases = [
        ("no warm-up, 0.3 -> 0.01 over 20 steps", dict(max_update=20, base_lr=0.3, final_lr=0.01)),
        ("5 warm-up steps from 0", dict(max_update=20, base_lr=0.3, final_lr=0.01, warmup_steps=5)),
        ("warm-up from 0.05, decay to 0", dict(max_update=12, base_lr=1.0, warmup_steps=3,
                                                warmup_begin_lr=0.05)),
        ("one warm-up step, long run", dict(max_update=200, base_lr=0.1, final_lr=1e-3,
                                            warmup_steps=1)),
    ]  # fmt: skip

    def check_one(kw: dict) -> None:
        steps = range(0, kw["max_update"] + 6)  # past max_update: the floor, no exception
        _compare_schedule(cosine_lr, reference, steps, "cosine_lr", **kw)

    return f"matches the warm-up + cosine schedule, also after max_update: {over_cases(cases, check_one)}"


# ---------------------------------------------------------------------------------------------
# 2. The Transformer schedule


def _transformer_solution():
    from dlcourse.optim import transformer_lr

    return transformer_lr


@exercise("ex-sched-transformer", CHAPTER, solution=_transformer_solution)
def _transformer(transformer_lr: Any) -> str:
    """``transformer_lr(step, d_model=512, warmup_steps=4000)``, defined for step >= 1."""
    from dlcourse.optim import transformer_lr as reference

    cases = [
        ("d_model 512, W 4000", dict(d_model=512, warmup_steps=4000)),
        ("d_model 64, W 10", dict(d_model=64, warmup_steps=10)),
    ]

    def check_one(kw: dict) -> None:
        steps = [1, 2, kw["warmup_steps"] - 1, kw["warmup_steps"], kw["warmup_steps"] + 1, 100_000]
        got = [_number(call_answer(transformer_lr, s, **kw), f"transformer_lr({s})") for s in steps]
        expected = [reference(s, **kw) for s in steps]
        check_close(got, expected, rtol=1e-3, atol=0.0, name="the rates at steps "
                    f"{steps}", reveal=False)  # fmt: skip

    note = over_cases(cases, check_one)
    rates = torch.tensor([_number(transformer_lr(s), "transformer_lr") for s in range(1, 20_001)])
    check_equal(int(rates.argmax()) + 1, 4000, name="the step of the largest rate", reveal=False)
    try:
        value = transformer_lr(0)
    except NotImplementedError:
        raise
    except ValueError:
        return f"right values and peak, and step 0 is refused: {note}"
    except Exception as error:
        raise WrongAnswerError(
            f"transformer_lr(0) should raise ValueError, it raised {type(error).__name__}"
        ) from None
    raise WrongAnswerError(
        f"transformer_lr(0) returned {value!r}: the formula has 0 ** -0.5 at step 0, so the "
        "schedule starts at step 1; raise ValueError for step < 1"
    )


# ---------------------------------------------------------------------------------------------
# 3. The factor schedule: stateful vs stateless


class _StatefulFactor:
    """The notes' scheduler: each call multiplies the stored rate, whatever its argument."""

    def __init__(self, factor: float, stop_factor_lr: float, base_lr: float):
        self.factor, self.stop, self.lr = factor, stop_factor_lr, base_lr

    def __call__(self, num_update: int) -> float:
        self.lr = max(self.stop, self.lr * self.factor)
        return self.lr


def _first_floor_call(factor: float = 0.9, floor: float = 0.01, base: float = 2.0) -> int:
    scheduler = _StatefulFactor(factor, floor, base)
    t = 0
    while scheduler(t) > floor:
        t += 1
    return t


def _factor_solution():
    from dlcourse.optim import factor_lr

    return (_first_floor_call(), factor_lr)


@exercise("ex-sched-factor", CHAPTER, solution=_factor_solution)
def _factor(answer: Any) -> str:
    """``(first_floor_call, factor_lr)``: an int and ``factor_lr(t, base_lr, factor, min_lr)``."""
    from dlcourse.optim import factor_lr as reference

    if not (isinstance(answer, tuple | list) and len(answer) == 2):
        raise WrongAnswerError("the answer should be a pair (first_floor_call, factor_lr)")
    index, fn = answer
    if isinstance(index, bool) or not isinstance(index, int):
        raise WrongAnswerError(f"first_floor_call should be an int, got {type(index).__name__}")
    check_equal(index, _first_floor_call(), name="first_floor_call", reveal=False)
    cases = [
        ("the notes' setting: 2.0, x0.9, floor 0.01",
         dict(base_lr=2.0, factor=0.9, min_lr=0.01)),
        ("0.5, x0.5, no floor", dict(base_lr=0.5, factor=0.5, min_lr=0.0)),
        ("factor 1: constant", dict(base_lr=0.1, factor=1.0, min_lr=0.0)),
    ]  # fmt: skip
    note = over_cases(
        cases, lambda kw: _compare_schedule(fn, reference, range(60), "factor_lr", **kw)
    )
    repeat = [_number(call_answer(fn, 7, 2.0, 0.9, 0.01), "factor_lr") for _ in range(2)]
    if repeat[0] != repeat[1]:
        raise WrongAnswerError("two calls factor_lr(7, ...) differ: the function keeps state")
    return f"right index, and a stateless schedule: {note}"


# ---------------------------------------------------------------------------------------------
# 4. Scheduler bookkeeping


def _multistep_rates(calls_per_epoch: int, epochs: int) -> list[float]:
    """The rate at the start of each epoch, with ``scheduler.step()`` called that often."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[15, 30], gamma=0.5)
    rates = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(epochs):
            rates.append(opt.param_groups[0]["lr"])
            opt.step()
            for _ in range(calls_per_epoch):
                scheduler.step()
    return rates


def _bookkeeping_solution() -> tuple[float, float]:
    return (_multistep_rates(1, 31)[30], _multistep_rates(2, 16)[15])


@exercise("ex-sched-bookkeeping", CHAPTER, solution=_bookkeeping_solution)
def _bookkeeping(answer: Any) -> None:
    """``(rate_at_epoch_30, rate_at_epoch_15_stepping_twice)``."""
    if not (isinstance(answer, tuple | list) and len(answer) == 2):
        raise WrongAnswerError("the answer should be a pair (rate_at_30, rate_at_15_double)")
    right, doubled = (_number(a, n) for a, n in zip(answer, ("rate_at_30", "rate_at_15_double"),
                                                     strict=True))  # fmt: skip
    try:
        check_close(right, _multistep_rates(1, 31)[30], rtol=1e-6, name="rate_at_30", reveal=False)
    except WrongAnswerError as error:
        raise WrongAnswerError(
            f"{error}; the rate changes *at* each milestone: epoch 30 has seen both"
        ) from None
    try:
        check_close(doubled, _multistep_rates(2, 16)[15], rtol=1e-6, name="rate_at_15_double",
                    reveal=False)  # fmt: skip
    except WrongAnswerError as error:
        raise WrongAnswerError(
            f"{error}; with two step() calls per epoch, how many calls has the scheduler "
            "counted at the start of epoch 15?"
        ) from None
