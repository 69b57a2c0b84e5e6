"""The machinery behind ``dlcourse.exercises.check``.

A check compares a student's answer (a value or a function) with a reference that lives in the
package, never in the notebook, on seeded inputs and edge cases. Failures raise an
``AssertionError`` subclass whose message teaches (wrong shape, transposed, NaN, off by a
constant factor, ...) without printing the reference values of an exercise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "EXERCISES",
    "CheckResult",
    "NotDoneError",
    "WrongAnswerError",
    "call_answer",
    "require_tensor",
    "check",
    "check_close",
    "check_dtype",
    "check_equal",
    "exercise",
    "over_cases",
]


class _OneLineTraceback:
    """IPython shows an exception with ``_render_traceback_`` as these lines only: a student
    reads the message, not a wall of frames from inside the check."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


class WrongAnswerError(_OneLineTraceback, AssertionError):
    """The answer was checked and is wrong; the message says how."""


class NotDoneError(_OneLineTraceback, AssertionError):
    """The exercise has not been attempted yet (starter code still in place)."""

    def __init__(self, exercise_id: str):
        super().__init__(
            f"{exercise_id}: not done yet. Replace the `...` / `raise NotImplementedError` in the "
            "starter cell with your answer, run that cell, then run this check again."
        )


@dataclass(frozen=True)
class Exercise:
    id: str
    chapter: str
    points: int
    checker: Callable[[Any], str | None]
    solution: Callable[[], Any]


EXERCISES: dict[str, Exercise] = {}


def exercise(exercise_id: str, chapter: str, solution: Callable[[], Any], points: int = 1):
    """Register ``checker(answer)`` for ``exercise_id`` (the sphinx-exercise ``:label:``).

    The checker raises ``WrongAnswerError`` (or ``NotDoneError``) or returns an optional note
    such as ``"5 cases"``. ``solution()`` returns a reference answer that passes the check; the
    tests and the grader's self-test use it.
    """

    def register(checker: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
        if exercise_id in EXERCISES:
            raise ValueError(f"exercise {exercise_id!r} is registered twice")
        EXERCISES[exercise_id] = Exercise(exercise_id, chapter, points, checker, solution)
        return checker

    return register


@dataclass(frozen=True)
class CheckResult:
    exercise_id: str
    note: str | None = None

    def __repr__(self) -> str:
        extra = f" ({self.note})" if self.note else ""
        return f"✔ {self.exercise_id}: correct{extra}"


def _has_placeholder(answer: Any) -> bool:
    """``...`` or ``None``, as the answer or anywhere inside its lists, tuples and dicts."""
    if answer is None or answer is Ellipsis:
        return True
    if isinstance(answer, dict):
        return any(_has_placeholder(item) for item in answer.values())
    return isinstance(answer, list | tuple) and any(_has_placeholder(i) for i in answer)


def check(exercise_id: str, answer: Any) -> CheckResult:
    """Check ``answer`` for exercise ``exercise_id``; raise an ``AssertionError`` with a hint.

    An answer that is ``...``, ``None`` or a function raising ``NotImplementedError`` gets a
    "not done yet" message instead of a traceback.
    """
    if exercise_id not in EXERCISES:
        known = ", ".join(sorted(EXERCISES))
        raise KeyError(f"unknown exercise {exercise_id!r}; known exercises: {known}")
    if _has_placeholder(answer):
        raise NotDoneError(exercise_id)
    try:
        note = EXERCISES[exercise_id].checker(answer)
    except NotImplementedError:
        raise NotDoneError(exercise_id) from None
    return CheckResult(exercise_id, note)


def _copy_inputs(value: Any) -> Any:
    """Tensors (also inside lists, tuples and dicts) cloned; other values as they are."""
    if torch.is_tensor(value):
        return value.clone()
    if isinstance(value, dict):
        return {key: _copy_inputs(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_copy_inputs(item) for item in value)
    return value


def call_answer(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a student's function on copies of the inputs (an in-place edit cannot change the
    reference's inputs); turn its crash into a ``WrongAnswerError`` naming the error."""
    if not callable(fn):
        raise WrongAnswerError(f"expected a function, got {type(fn).__name__}")
    args, kwargs = _copy_inputs(args), _copy_inputs(kwargs)
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as error:  # the student's bug, reported without a traceback wall
        raise WrongAnswerError(f"your function raised {type(error).__name__}: {error}") from None


def require_tensor(value: Any, name: str) -> torch.Tensor:
    """A student's result that must be a tensor, detached and on the CPU; else a named error."""
    if not torch.is_tensor(value):
        raise WrongAnswerError(f"{name} should be a torch tensor, got {type(value).__name__}")
    return value.detach().cpu()


def check_dtype(value: torch.Tensor, expected: torch.dtype, name: str = "answer") -> None:
    """Assert a tensor's dtype: a float64 result from float32 inputs is a bug, not a rounding."""
    if value.dtype != expected:
        raise WrongAnswerError(
            f"{name} has the wrong dtype: expected {expected}, got {value.dtype} (an integer "
            "tensor, a float64 constant or torch.tensor(...) without dtype= can change it)"
        )


def over_cases(
    cases: Iterable[tuple[str, Any]], check_one: Callable[[Any], None] = lambda check: check()
) -> str:
    """Run ``check_one(case)`` on each ``(description, case)``; return ``"N cases"``. Without
    ``check_one`` each case is a function that checks itself (for cases of different kinds).

    A failure is reported with its case, and when earlier cases passed the message says so: an
    answer that matches on the first, typical input but not on an empty batch, a batch of one or
    large values is a common, instructive bug.
    """
    passed: list[str] = []
    for description, case in cases:
        try:
            check_one(case)
        except WrongAnswerError as error:
            where = f"case {len(passed) + 1} ({description})"
            if passed:
                earlier = "the first case" if len(passed) == 1 else f"the first {len(passed)} cases"
                where += f"; it matches on {earlier} ({', '.join(passed)}) but not on this one"
            raise WrongAnswerError(f"{where}: {error}") from None
        passed.append(description)
    return f"{len(passed)} cases"


def _as_tensor(value: Any, name: str) -> torch.Tensor:
    if torch.is_tensor(value):
        return value.detach().cpu()
    try:
        return torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError, RuntimeError):
        raise WrongAnswerError(
            f"{name} should be a number, array or tensor, got {type(value).__name__}"
        ) from None


def _diagnose(
    got: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float, reveal: bool
) -> str:
    """Say how ``got`` differs from ``expected`` (same shape, not close).

    Without ``reveal`` the size of the error is not given: for an answer of zeros it would be
    the reference itself.
    """
    got64, exp64 = got.double(), expected.double()
    err = (got64 - exp64).abs()
    where = np.unravel_index(int(err.argmax()), tuple(err.shape)) if err.ndim else ()
    message = f"values differ: max abs error {err.max().item():.3g}" if reveal else "values differ"
    if err.ndim:
        message += f", the largest at index {tuple(int(i) for i in where)}"
        wrong = (~torch.isclose(got64, exp64, rtol=rtol, atol=atol)).float().mean().item()
        message += f", {wrong:.0%} of entries wrong"
    if torch.allclose(-got64, exp64, rtol=rtol, atol=atol):
        return message + "; the sign is flipped"
    nonzero = exp64.abs() > atol
    if nonzero.any():
        ratios = got64[nonzero] / exp64[nonzero]
        ratio = ratios.median().item()
        if math.isfinite(ratio) and abs(ratio) > 1e-12:
            if torch.allclose(got64, ratio * exp64, rtol=max(rtol, 1e-3), atol=atol):
                return message + f"; off by a constant factor of about {ratio:.4g}"
    if got64.ndim == 2 and got64.shape[0] == got64.shape[1]:
        if torch.allclose(got64.T, exp64, rtol=rtol, atol=atol):
            return message + "; it matches when transposed"
    return message


def check_close(
    value: Any,
    expected: Any,
    rtol: float = 1e-4,
    atol: float = 1e-8,
    name: str = "answer",
    reveal: bool = True,
    dtype: torch.dtype | None = None,
) -> None:
    """Assert that a number, array or tensor is close to ``expected``, with a helpful message.

    ``reveal=False`` keeps the expected values out of the message (used by exercise checks);
    ``dtype`` also requires that dtype of the answer.
    """
    got, exp = _as_tensor(value, name), _as_tensor(expected, "expected")
    if got.shape != exp.shape:
        hint = ""
        if got.ndim == 2 and got.T.shape == exp.shape:
            hint = " (transposed?)"
        elif got.numel() == exp.numel():
            hint = " (same number of entries: a reshape or a missing/extra dimension?)"
        raise WrongAnswerError(
            f"{name} has the wrong shape: expected {tuple(exp.shape)}, got {tuple(got.shape)}{hint}"
        )
    if dtype is not None:
        check_dtype(got, dtype, name)
    if exp.is_floating_point() and not (got.is_floating_point() or got.is_complex()):
        got = got.to(exp.dtype)
    if got.is_floating_point() and not torch.isfinite(got).all():
        bad = (~torch.isfinite(got)).sum().item()
        raise WrongAnswerError(f"{name} contains {bad} NaN or infinite value(s)")
    if torch.allclose(got.double(), exp.double(), rtol=rtol, atol=atol):
        return
    message = f"{name}: {_diagnose(got, exp, rtol, atol, reveal)}"
    if reveal:
        message += f"; expected {np.round(exp.double().numpy(), 4).tolist()}"
    raise WrongAnswerError(message)


def check_equal(value: Any, expected: Any, name: str = "answer", reveal: bool = True) -> None:
    """Assert exact equality for ints, strings, booleans, tuples, dicts and sets."""
    if value == expected:
        return
    if isinstance(expected, dict) and isinstance(value, dict):
        missing = sorted(map(str, expected.keys() - value.keys()))
        extra = sorted(map(str, value.keys() - expected.keys()))
        wrong = sorted(str(k) for k in expected.keys() & value.keys() if value[k] != expected[k])
        parts = [f"missing keys {missing}" if missing else "", f"extra keys {extra}" if extra else "",
                 f"wrong values for {wrong}" if wrong else ""]  # fmt: skip
        raise WrongAnswerError(f"{name}: " + "; ".join(p for p in parts if p))
    if isinstance(expected, tuple | list) and isinstance(value, tuple | list):
        if len(value) != len(expected):
            raise WrongAnswerError(f"{name}: expected {len(expected)} items, got {len(value)}")
        wrong = [i for i, (v, e) in enumerate(zip(value, expected, strict=True)) if v != e]
        message = f"{name}: items at positions {wrong} are wrong"
    else:
        message = f"{name} is wrong: got {value!r}"
    if reveal:
        message += f"; expected {expected!r}"
    raise WrongAnswerError(message)
