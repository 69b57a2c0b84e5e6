"""Exercise checks for chapter 8.1, Policy gradient (REINFORCE)."""

from __future__ import annotations

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

CHAPTER = "08-rl/01-policy-gradient"


def _as_1d(value: Any, name: str, length: int) -> torch.Tensor:
    try:
        got = torch.as_tensor(value.detach().cpu() if torch.is_tensor(value) else value)
    except (TypeError, ValueError, RuntimeError):
        raise WrongAnswerError(
            f"{name} should be a list or 1-D tensor of numbers, got {type(value).__name__}"
        ) from None
    got = got.double().reshape(-1) if got.numel() == length else got
    if got.shape != (length,):
        raise WrongAnswerError(f"{name} should have {length} entries, got shape {tuple(got.shape)}")
    return got


# ---------------------------------------------------------------------------------------------
# 1. Reward-to-go


def _reference_returns(rewards: list[float], gamma: float) -> torch.Tensor:
    from dlcourse.rl import discounted_returns

    return discounted_returns(torch.tensor(rewards, dtype=torch.float64), gamma)


def _return_cases() -> list[tuple[str, tuple[list[float], float]]]:
    gen = torch.Generator().manual_seed(0)
    noisy = (torch.randn(30, generator=gen) * 2).tolist()
    return [("[1, 0, 0, 1] with gamma 0.9", ([1.0, 0.0, 0.0, 1.0], 0.9)),
            ("a single reward", ([2.5], 0.5)),
            ("an empty episode", ([], 0.9)),
            ("gamma = 1 (no discount)", ([1.0, 1.0, 1.0], 1.0)),
            ("gamma = 0 (only the next reward)", ([0.0, -1.0, 3.0, 0.5, 2.0], 0.0)),
            ("30 noisy rewards with gamma 0.99", (noisy, 0.99))]  # fmt: skip


@exercise("ex-pg-reward-to-go", CHAPTER, solution=lambda: _reference_returns)
def _reward_to_go(reward_to_go: Any) -> str:
    """``reward_to_go(rewards: list[float], gamma) -> (T,)`` with ``G_t = r_t + gamma G_{t+1}``."""

    def check_one(case: tuple[list[float], float]) -> None:
        rewards, gamma = case
        name = "the returns"
        got = _as_1d(call_answer(reward_to_go, list(rewards), gamma), name, len(rewards))
        expected = _reference_returns(rewards, gamma)
        if torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
            return
        if torch.allclose(got, expected.flip(0), atol=1e-4):
            raise WrongAnswerError("the returns come out in reverse order")
        from_start = expected * gamma ** torch.arange(len(rewards), dtype=torch.float64)
        if torch.allclose(got, from_start, atol=1e-4):
            raise WrongAnswerError(
                "discount from step t, not from step 0: G_t weights r_k by gamma ** (k - t)"
            )
        check_close(got, expected, rtol=1e-4, atol=1e-5, name=name, reveal=False)

    return over_cases(_return_cases(), check_one)


# ---------------------------------------------------------------------------------------------
# 2. The two-armed bandit gradient


def _reference_bandit_gradient(logits: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    from dlcourse.rl import exact_policy_gradient

    return exact_policy_gradient(logits, lambda seqs: rewards[seqs[:, 0]], horizon=1)


def _bandit_cases() -> list[tuple[str, tuple[torch.Tensor, torch.Tensor]]]:
    gen = torch.Generator().manual_seed(1)
    cases = [("a uniform policy", (torch.tensor([0.0, 0.0]), torch.tensor([1.0, 2.0]))),
             ("equal rewards", (torch.tensor([0.3, -0.2]), torch.tensor([5.0, 5.0]))),
             ("a nearly deterministic policy", (torch.tensor([4.0, -4.0]),
                                                torch.tensor([-1.0, 3.0])))]  # fmt: skip
    for i in range(3):
        logits, rewards = torch.randn(2, generator=gen), torch.randn(2, generator=gen) * 3
        cases.append((f"random bandit {i + 1}", (logits, rewards)))
    cases += [("large logits (around 1e3)", (torch.tensor([1000.0, 1000.5]),
                                             torch.tensor([1.0, 2.0]))),
              ("large logits of opposite signs", (torch.tensor([1000.0, -1000.0]),
                                                  torch.tensor([-1.0, 3.0])))]  # fmt: skip
    return cases


@exercise("ex-pg-bandit-gradient", CHAPTER, solution=lambda: _reference_bandit_gradient)
def _bandit_gradient(bandit_gradient: Any) -> str:
    """``bandit_gradient(logits (2,), rewards (2,)) -> (2,)``, the exact ``grad J``."""

    def check_one(case: tuple[torch.Tensor, torch.Tensor]) -> None:
        logits, rewards = case
        name = f"bandit_gradient(logits={logits.tolist()}, rewards={rewards.tolist()})"
        raw = call_answer(bandit_gradient, logits, rewards)
        got = _as_1d(raw, name, 2)
        if not torch.isfinite(got).all() and logits.abs().max() > 80:
            raise WrongAnswerError(
                f"{name} contains NaN or infinite values: exp(1000) overflows; subtract the "
                "largest logit before exp (the softmax does not change)"
            )
        if torch.is_tensor(raw):
            check_dtype(raw, logits.dtype, name)
        expected = _reference_bandit_gradient(logits, rewards).double()
        probs = torch.softmax(logits.double(), 0)
        wrong = not torch.allclose(got, expected, rtol=1e-4, atol=1e-6)
        if wrong and torch.allclose(got, probs * rewards.double(), atol=1e-5):
            raise WrongAnswerError(
                f"{name}: you returned p_k r_k; the softmax couples the arms, so "
                "dJ/dtheta_k = p_k (r_k - J) with J = sum_j p_j r_j"
            )
        check_close(got, expected, rtol=1e-4, atol=1e-6, name=name, reveal=False)

    return f"exact gradients, large logits included: {over_cases(_bandit_cases(), check_one)}"


# ---------------------------------------------------------------------------------------------
# 3. A constant baseline adds nothing in expectation


def _reference_baseline_terms(logits: torch.Tensor, b: float) -> torch.Tensor:
    probs = torch.softmax(logits.double(), 0)
    scores = torch.eye(len(logits), dtype=torch.float64) - probs  # row a: grad log pi(a)
    return probs[:, None] * b * scores


@exercise("ex-pg-baseline-zero", CHAPTER, solution=lambda: _reference_baseline_terms)
def _baseline_zero(baseline_terms: Any) -> str:
    """``baseline_terms(logits (K,), b) -> (K, K)``: row ``a`` is ``pi(a) b grad log pi(a)``."""
    gen = torch.Generator().manual_seed(2)

    def check_one(case: tuple[torch.Tensor, float]) -> None:
        logits, b = case
        k = len(logits)
        name = f"baseline_terms(logits of {k} actions, b={b})"
        got = require_tensor(call_answer(baseline_terms, logits, b), name).double()
        if got.shape != (k, k):
            raise WrongAnswerError(
                f"{name} has the wrong shape: expected ({k}, {k}), one row per action a and one "
                f"column per logit; got {tuple(got.shape)}"
            )
        expected = _reference_baseline_terms(logits, b)
        unweighted = expected / torch.softmax(logits.double(), 0)[:, None]
        if b != 0 and torch.allclose(got, unweighted) and not torch.allclose(got, expected):
            raise WrongAnswerError(f"{name}: each row must be weighted by pi(a)")
        check_close(got, expected, rtol=1e-4, atol=1e-6, name=name, reveal=False)
        # float32 rounding of the rows grows with b
        check_close(got.sum(0), torch.zeros(k, dtype=torch.float64), atol=1e-5 * max(1, abs(b)),
                    name=f"{name}.sum(0)", reveal=False)  # fmt: skip

    cases = [
        ("uniform over 2 actions", (torch.zeros(2), 1.0)),
        ("3 actions", (torch.randn(3, generator=gen), -3.5)),
        ("5 actions with b = 100", (torch.randn(5, generator=gen) * 2, 100.0)),
        ("b = 0", (torch.randn(4, generator=gen), 0.0)),
        ("a single action (K = 1)", (torch.zeros(1), 2.0)),
        ("large logits (around 1e3)", (1000.0 + torch.randn(3, generator=gen), 1.5)),
    ]
    return f"{over_cases(cases, check_one)}, each summing to zero"


# ---------------------------------------------------------------------------------------------
# 4. Which operations carry a gradient


@exercise("ex-pg-which-grad", CHAPTER, solution=lambda: (False, False, True))
def _which_grad(answer: Any) -> None:
    """``(argmax, sample, log_prob)``: does each result carry a gradient back to the logits?"""
    if not isinstance(answer, tuple | list) or len(answer) != 3:
        raise WrongAnswerError(
            "answer should be a tuple of three booleans: (argmax, sample, log_prob)"
        )
    if not all(isinstance(a, bool) for a in answer):
        raise WrongAnswerError("each entry should be True or False (a Python bool)")
    expected = (False, False, True)
    if tuple(answer) != expected and answer[0] and answer[1]:
        raise WrongAnswerError(
            "look at .requires_grad / .grad_fn of x.argmax() and dist.sample(): integer indices "
            "have no gradient"
        )
    check_equal(tuple(answer), expected, name="(argmax, sample, log_prob)", reveal=False)
