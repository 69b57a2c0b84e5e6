"""Exercise checks for chapter 7.4, Diffusion models (DDPM and DDIM)."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from .core import WrongAnswerError, call_answer, check_close, exercise, over_cases, require_tensor

CHAPTER = "07-generative/04-diffusion"


# ---------------------------------------------------------------------------------------------
# 1. The schedule


def _reference_alpha_bar(T: int, kind: str = "linear") -> torch.Tensor:
    from dlcourse.diffusion import ddpm_schedule

    return ddpm_schedule(T, kind=kind)["alpha_bar"]


_SCHEDULE_CASES = [
    ("linear with T = 1000", (1000, "linear")),
    ("cosine with T = 1000", (1000, "cosine")),
    ("linear with T = 10", (10, "linear")),
    ("cosine with T = 50", (50, "cosine")),
    ("linear with a single step (T = 1)", (1, "linear")),
]


@exercise("ex-diffusion-schedule", CHAPTER, solution=lambda: _reference_alpha_bar)
def _schedule(alpha_bar_schedule: Any) -> str:
    """``alpha_bar_schedule(T, kind)`` -> ``(T + 1,)`` with ``alpha_bar[0] = 1``."""

    def check_one(case: tuple[int, str]) -> None:
        T, kind = case
        got = require_tensor(call_answer(alpha_bar_schedule, T, kind), f"alpha_bar(T={T})")
        expected = _reference_alpha_bar(T, kind)
        if got.shape == (T,):
            raise WrongAnswerError(
                f"for T={T} you returned {T} values; return T + 1 of them, with alpha_bar[0] = 1 "
                "for the clean data, so that alpha_bar[t] is step t"
            )
        if got.shape != (T + 1,):
            raise WrongAnswerError(
                f"alpha_bar has the wrong shape: expected ({T + 1},), got {tuple(got.shape)}"
            )
        if got.is_floating_point() and not torch.isfinite(got).all():
            raise WrongAnswerError("alpha_bar contains NaN or infinite values")
        got = got.double()
        if abs(got[0].item() - 1.0) > 1e-6:
            raise WrongAnswerError("alpha_bar[0] must be 1 (no noise at all at t = 0)")
        shifted = torch.isclose(got[1:], expected[:-1].double(), rtol=1e-3).all()
        if shifted and not torch.allclose(got, expected.double(), rtol=1e-3, atol=1e-6):
            raise WrongAnswerError(
                "off by one step: alpha_bar[1] must already include (1 - beta_1)"
            )
        if not (got[1:] < got[:-1]).all():
            raise WrongAnswerError(f"{kind} alpha_bar must be strictly decreasing in t")
        if kind == "linear" and T == 1000:
            check_close(got[T], 4.04e-5, rtol=1e-2, atol=0, name="linear alpha_bar[1000]",
                        reveal=False)  # fmt: skip
        if kind == "cosine" and T == 1000 and got[T] >= 1e-8:
            raise WrongAnswerError(
                "cosine alpha_bar[T] should be below 1e-8: is f(t)/f(0) evaluated at t/T = 1?"
            )
        check_close(got, expected, rtol=1e-3, atol=1e-6, name=f"{kind} alpha_bar",
                    reveal=False)  # fmt: skip

    return f"linear and cosine, T from 1 to 1000: {over_cases(_SCHEDULE_CASES, check_one)}"


# ---------------------------------------------------------------------------------------------
# 2. Closed-form forward sampling


def _reference_q_sample(x0, t, noise, schedule):
    from dlcourse.diffusion import q_sample

    return q_sample(x0, t, noise, schedule)


@exercise("ex-diffusion-q-sample", CHAPTER, solution=lambda: _reference_q_sample)
def _q_sample(q_sample: Any) -> str:
    """``q_sample(x0, t, noise, schedule)`` equals the closed form, in law and value."""
    from dlcourse.diffusion import ddpm_schedule

    schedule = ddpm_schedule(1000)
    gen = torch.Generator().manual_seed(74)

    def call(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return require_tensor(call_answer(q_sample, x0, t, noise, schedule), "x_t")

    def check_value(case: tuple[torch.Tensor, torch.Tensor]) -> None:
        x0, t = case
        noise = torch.randn(x0.shape, generator=gen)
        check_close(call(x0, t, noise), _reference_q_sample(x0, t, noise, schedule), rtol=1e-4,
                    atol=1e-5, name="x_t", reveal=False, dtype=x0.dtype)  # fmt: skip

    def check_law(t_value: int) -> None:
        """The law of x_t over 100k draws: mean sqrt(abar) x0, variance 1 - abar."""
        n = 100_000
        x0 = torch.tensor([[1.5, -0.5]]).expand(n, 2)
        x_t = call(x0, torch.full((n,), t_value), torch.randn(n, 2, generator=gen))
        abar = schedule["alpha_bar"][t_value]
        check_close(x_t.mean(0), abar.sqrt() * x0[0], atol=1e-2, rtol=0, name="empirical mean",
                    reveal=False)  # fmt: skip
        check_close(x_t.var(0), (1 - abar).expand(2), atol=1e-2, rtol=0,
                    name="empirical variance", reveal=False)  # fmt: skip

    cases = [
        ("a batch of 8 points", (torch.randn(8, 2, generator=gen),
                                 torch.randint(0, 1001, (8,), generator=gen))),
        ("a batch of one at t = T", (torch.randn(1, 2, generator=gen), torch.tensor([1000]))),
        ("images (3, 1, 4, 4)", (torch.randn(3, 1, 4, 4, generator=gen),
                                 torch.tensor([0, 250, 999]))),
        ("an empty batch (B = 0)", (torch.randn(0, 2), torch.zeros(0, dtype=torch.long))),
    ]  # fmt: skip
    note = over_cases(
        [(name, partial(check_value, case)) for name, case in cases]
        + [("the law of 100k draws at t = 300", partial(check_law, 300))]
    )
    return f"seeded batches and the law of 100k draws: {note}"


# ---------------------------------------------------------------------------------------------
# 3. One DDIM step


def _reference_ddim_step(x_t, eps, abar_t, abar_prev, eta=0.0, noise=None):
    from dlcourse.diffusion import ddim_step

    return ddim_step(x_t, eps, abar_t, abar_prev, eta=eta, noise=noise)


def _pair(value: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise WrongAnswerError("ddim_step should return a pair (x_prev, x0_hat)")
    return require_tensor(value[0], "x_prev"), require_tensor(value[1], "x0_hat")


@exercise("ex-diffusion-ddim-step", CHAPTER, solution=lambda: _reference_ddim_step)
def _ddim_step(ddim_step: Any) -> str:
    """Deterministic at eta = 0, exact with the true noise, equal to DDIM's update."""
    gen = torch.Generator().manual_seed(75)

    def step(x, e, a_t, a_prev, **kwargs):
        return _pair(call_answer(ddim_step, x, e, a_t, a_prev, **kwargs))

    def check_exact(abar_t: float) -> None:
        """eta = 0 is deterministic, and with the true noise a jump to alpha_bar = 1 gives x0."""
        x0, eps = torch.randn(16, 2, generator=gen), torch.randn(16, 2, generator=gen)
        x_t = abar_t**0.5 * x0 + (1 - abar_t) ** 0.5 * eps
        first, second = step(x_t, eps, abar_t, 1.0), step(x_t, eps, abar_t, 1.0)
        if not (torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])):
            raise WrongAnswerError("with eta = 0 two calls must give identical results (no noise)")
        check_close(first[1], x0, rtol=1e-4, atol=1e-5, name="x0_hat with the true noise",
                    reveal=False)  # fmt: skip
        check_close(first[0], x0, rtol=1e-4, atol=1e-5, name="x_prev after a jump to "
                    "alpha_bar = 1", reveal=False)  # fmt: skip

    def check_update(case: tuple[Any, ...]) -> None:
        x, a_t, a_prev, eta, with_noise = case
        e = torch.randn(x.shape, generator=gen)
        z = torch.randn(x.shape, generator=gen) if with_noise else None
        got = step(x, e, a_t, a_prev, eta=eta, noise=z)
        expected = _reference_ddim_step(x, e, a_t, a_prev, eta=eta, noise=z)
        check_close(got[1], expected[1], rtol=1e-4, atol=1e-5, name="x0_hat", reveal=False,
                    dtype=x.dtype)  # fmt: skip
        check_close(got[0], expected[0], rtol=1e-4, atol=1e-5, name=f"x_prev (eta={eta})",
                    reveal=False, dtype=x.dtype)  # fmt: skip

    per_row = 0.05 + 0.5 * torch.rand(16, 1, generator=gen)  # one level per example
    updates = [
        ("eta = 0 from alpha_bar 0.2 to 0.6", (torch.randn(16, 2, generator=gen), 0.2, 0.6, 0.0, False)),
        ("a batch of one from alpha_bar 0.05 to 0.9", (torch.randn(1, 2, generator=gen), 0.05, 0.9,
                                                   0.0, False)),
        ("eta = 1", (torch.randn(16, 2, generator=gen), 0.2, 0.6, 1.0, True)),
        ("eta = 0.5 from alpha_bar 0.01 to 0.5", (torch.randn(16, 2, generator=gen), 0.01, 0.5, 0.5,
                                              True)),
        ("one alpha_bar per example, (B, 1) tensors", (torch.randn(16, 2, generator=gen),
                                                       per_row, per_row + 0.4, 0.5, True)),
        ("an empty batch (B = 0)", (torch.randn(0, 2), 0.2, 0.6, 0.0, False)),
    ]  # fmt: skip
    note = over_cases(
        [("eta = 0 twice and the true noise", partial(check_exact, 0.3))]
        + [(name, partial(check_update, case)) for name, case in updates]
    )
    return f"determinism, exact recovery and DDIM's update for eta 0, 0.5 and 1: {note}"


# ---------------------------------------------------------------------------------------------
# 4. eps, x0 and v


def _reference_from_v(x_t, v, alpha_bar):
    a = torch.as_tensor(alpha_bar, dtype=x_t.dtype)
    return a.sqrt() * x_t - (1 - a).sqrt() * v, (1 - a).sqrt() * x_t + a.sqrt() * v


@exercise("ex-diffusion-v-param", CHAPTER, solution=lambda: _reference_from_v)
def _v_param(x0_eps_from_v: Any) -> str:
    """Round trip: (x0, eps) -> (x_t, v) -> ``x0_eps_from_v`` -> (x0, eps)."""
    gen = torch.Generator().manual_seed(76)

    def check_one(case: tuple[torch.Tensor, Any]) -> None:
        x0, abar = case
        if torch.is_tensor(abar) and abar.ndim == 1:
            abar = abar.view(-1, *[1] * (x0.ndim - 1))  # one level per example
        eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
        a = torch.as_tensor(abar, dtype=x0.dtype)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        v = a.sqrt() * eps - (1 - a).sqrt() * x0
        got = call_answer(x0_eps_from_v, x_t, v, abar)
        if not isinstance(got, tuple | list) or len(got) != 2:
            raise WrongAnswerError("x0_eps_from_v should return a pair (x0, eps)")
        check_close(require_tensor(got[0], "x0"), x0, rtol=1e-4, atol=1e-4, name="x0",
                    reveal=False, dtype=x0.dtype)  # fmt: skip
        check_close(require_tensor(got[1], "eps"), eps, rtol=1e-4, atol=1e-4, name="eps",
                    reveal=False, dtype=x0.dtype)  # fmt: skip

    cases = [
        ("alpha_bar = 0.5", (torch.randn(32, 2, generator=gen), 0.5)),
        ("a batch of one at alpha_bar = 0.9999", (torch.randn(1, 2, generator=gen), 0.9999)),
        ("alpha_bar = 1e-4 (almost pure noise)", (torch.randn(32, 2, generator=gen), 1e-4)),
        ("a per-row alpha_bar of shape (32, 1)", (torch.randn(32, 2, generator=gen),
                                         torch.rand(32, 1, generator=gen))),
        ("images (4, 3, 5, 5) around 10 with one alpha_bar each",
         (10 * torch.randn(4, 3, 5, 5, generator=gen), torch.tensor([0.1, 0.4, 0.7, 0.95]))),
        ("an empty batch (B = 0)", (torch.randn(0, 2), 0.5)),
        ("float64 inputs", (torch.randn(8, 2, generator=gen, dtype=torch.float64), 0.3)),
    ]  # fmt: skip
    return f"round trips, alpha_bar from 1e-4 to 0.9999: {over_cases(cases, check_one)}"
