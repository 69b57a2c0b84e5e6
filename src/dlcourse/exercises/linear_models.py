"""Exercise checks for chapter 1.3, Linear models, softmax and loss functions.

References come from PyTorch's built-in losses or from closed forms computed here, never from a
copy of the chapter's solution.
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
    exercise,
    over_cases,
    require_tensor,
)

CHAPTER = "01-foundations/03-linear-models-and-losses"


# ---------------------------------------------------------------------------------------------
# 1. Stable cross-entropy from log-sum-exp


def _ce_cases() -> list[tuple[str, tuple[torch.Tensor, torch.Tensor]]]:
    g = torch.Generator().manual_seed(13)
    cases = []
    for description, n, c, scale, dtype in (
        ("8 x 5 logits of size about 1", 8, 5, 1.0, torch.float64),
        ("a batch of one", 1, 4, 1.0, torch.float64),
        ("logits of size about 1e4", 16, 3, 1e4, torch.float64),
        ("logits of size about -1e4 and 1e4, float32", 6, 10, 1e4, torch.float32),
    ):
        logits = (scale * torch.randn(n, c, generator=g, dtype=torch.float64)).to(dtype)
        target = torch.randint(0, c, (n,), generator=g)
        cases.append((description, (logits, target)))
    return cases


def _ce_solution():
    from dlcourse.losses import logsumexp

    def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        picked = logits.gather(1, y.unsqueeze(1)).squeeze(1)
        return (logsumexp(logits, dim=1) - picked).mean()

    return cross_entropy


@exercise("ex-losses-stable-ce", CHAPTER, solution=_ce_solution)
def _stable_ce(fn: Any) -> str:
    """``cross_entropy(logits: (N, C), y: (N,)) -> scalar`` mean loss, equal to F.cross_entropy."""
    import torch.nn.functional as F

    def check_one(case: tuple[torch.Tensor, torch.Tensor]) -> None:
        logits, target = case
        got = require_tensor(call_answer(fn, logits, target), "cross_entropy(logits, y)")
        if got.numel() != 1:
            raise WrongAnswerError(
                f"cross_entropy(logits, y) should be one number (the mean over the batch), got "
                f"shape {tuple(got.shape)}"
            )
        got = got.reshape(())
        check_dtype(got, logits.dtype, "cross_entropy(logits, y)")
        if not torch.isfinite(got):
            raise WrongAnswerError(
                "the loss is inf or NaN: exp of a large logit overflows; subtract the largest "
                "logit of each row before exponentiating (log-sum-exp trick)"
            )
        expected = F.cross_entropy(logits, target)
        per_row_sum = F.cross_entropy(logits, target, reduction="sum")
        if len(target) > 1 and torch.allclose(got.double(), per_row_sum.double(), rtol=1e-5):
            raise WrongAnswerError("you return the sum over the batch; the loss is the mean")
        check_close(got, expected, rtol=1e-5, atol=1e-6, name="cross_entropy(logits, y)",
                    reveal=False)  # fmt: skip

    return over_cases(_ce_cases(), check_one)


# ---------------------------------------------------------------------------------------------
# 2. Two numbers: CE of probabilities and CE of logits


def _two_numbers() -> tuple[float, float]:
    ce_probs = -math.log(0.7)
    ce_logits = math.log(math.exp(2) + math.exp(1) + math.exp(0)) - 2.0
    return ce_probs, ce_logits


@exercise("ex-losses-two-numbers", CHAPTER, solution=_two_numbers)
def _two_numbers_check(answer: Any) -> None:
    """``answer = (ce_of_probabilities, ce_of_logits)``."""
    if not isinstance(answer, tuple | list) or len(answer) != 2:
        raise WrongAnswerError(
            "answer should hold two numbers: (ce_of_probabilities, ce_of_logits)"
        )
    try:
        got = torch.tensor([float(a) for a in answer], dtype=torch.float64)
    except (TypeError, ValueError):
        raise WrongAnswerError("both entries of answer should be numbers") from None
    # reference values, computed independently of the solution above
    p = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)
    z = torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.float64)
    expected = torch.stack([-p[0].log(), torch.nn.functional.cross_entropy(z, torch.tensor([0]))])
    if abs(got[1] - (-math.log(torch.softmax(torch.softmax(z, 1), 1)[0, 0].item()))) < 1e-3:
        raise WrongAnswerError(
            "the second number applies softmax twice: [2, 1, 0] are logits, softmax them once"
        )
    if abs(got[0] - 0.7) < 1e-9 or got[0] < 0 or got[1] < 0:
        raise WrongAnswerError("cross-entropy is minus the log of the true class's probability")
    if abs(got[0] - (-math.log10(0.7))) < 1e-4:
        raise WrongAnswerError("use the natural logarithm (nats), as PyTorch does, not log10")
    check_close(got, expected, rtol=1e-3, atol=1e-4, name="(ce_probs, ce_logits)", reveal=False)


# ---------------------------------------------------------------------------------------------
# 3. Huber


def _huber_solution():
    def huber(e: torch.Tensor, delta: float) -> torch.Tensor:
        small = e.abs() <= delta
        return torch.where(small, 0.5 * e * e, delta * e.abs() - 0.5 * delta**2)

    return huber


@exercise("ex-losses-huber", CHAPTER, solution=_huber_solution)
def _huber(fn: Any) -> str:
    """``huber(e, delta)`` elementwise, equal to ``nn.HuberLoss(reduction="none", delta=delta)``."""
    g = torch.Generator().manual_seed(3)
    cases = [
        ("e = linspace(-3, 3, 7), delta = 2", (torch.linspace(-3, 3, 7), 2.0)),
        ("e = linspace(-3, 3, 7), delta = 1", (torch.linspace(-3, 3, 7), 1.0)),
        ("random (4, 5) errors, delta = 0.5", (torch.randn(4, 5, generator=g), 0.5)),
        ("large errors (1e3), delta = 1.35, float64",
         (1e3 * torch.randn(6, generator=g, dtype=torch.float64), 1.35)),
        ("a single error of exactly delta", (torch.tensor([1.5]), 1.5)),
    ]  # fmt: skip

    def check_one(case: tuple[torch.Tensor, float]) -> None:
        e, delta = case
        got = require_tensor(call_answer(fn, e, delta), "huber(e, delta)")
        expected = torch.nn.HuberLoss(reduction="none", delta=delta)(e, torch.zeros_like(e))
        if got.shape != e.shape:
            raise WrongAnswerError(
                f"huber(e, delta) should be elementwise, shape {tuple(e.shape)}; got "
                f"{tuple(got.shape)} (no mean or sum here)"
            )
        check_dtype(got, e.dtype, "huber(e, delta)")
        if torch.allclose(got, 0.5 * e**2) and not torch.allclose(expected, 0.5 * e**2):
            raise WrongAnswerError("large errors should cost delta*|e| - delta**2/2, not e**2/2")
        check_close(got, expected, rtol=1e-5, atol=1e-6, name="huber(e, delta)", reveal=False)

    return over_cases(cases, check_one)


# ---------------------------------------------------------------------------------------------
# 4. Fisher information of n Bernoulli trials


def _fisher_value() -> float:
    theta, n = 0.2, 10
    return n / (theta * (1 - theta))


@exercise("ex-losses-fisher", CHAPTER, solution=_fisher_value)
def _fisher(answer: Any) -> None:
    """Fisher information of n = 10 Bernoulli(0.2) trials, from the Hessian by autograd."""
    is_number = isinstance(answer, int | float) and not isinstance(answer, bool)
    if not (is_number or (torch.is_tensor(answer) and answer.numel() == 1)):
        raise WrongAnswerError("answer should be one number, the Fisher information I(theta)")
    value = float(answer)
    # -E[d^2/dtheta^2 log p(k; theta)] for k ~ Binomial(10, 0.2), summed exactly over k
    n, theta = 10, torch.tensor(0.2, dtype=torch.float64)
    k = torch.arange(n + 1, dtype=torch.float64)
    pmf = torch.exp(
        torch.lgamma(k.new_tensor(n + 1.0)) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
        + k * theta.log() + (n - k) * torch.log1p(-theta)
    )  # fmt: skip

    def neg_expected_log_lik(t: torch.Tensor) -> torch.Tensor:
        return -(pmf * (k * t.log() + (n - k) * torch.log1p(-t))).sum()

    expected = torch.autograd.functional.hessian(neg_expected_log_lik, theta).item()
    if abs(value - 1 / expected) < 1e-6:
        raise WrongAnswerError("that is the Cramér-Rao bound 1/I(theta); the answer is I(theta)")
    if abs(value - expected / n) < 1e-6:
        raise WrongAnswerError("that is the information of one trial; n independent trials add up")
    check_close(value, expected, rtol=1e-4, name="I(theta)", reveal=False)
