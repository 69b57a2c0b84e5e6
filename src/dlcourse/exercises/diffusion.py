"""Exercise checks for chapter 7.4, Diffusion models (DDPM and DDIM)."""

from __future__ import annotations

from typing import Any

import torch

from .core import WrongAnswerError, call_answer, check_close, exercise, require_tensor

CHAPTER = "07-generative/04-diffusion"


# ---------------------------------------------------------------------------------------------
# 1. The schedule


def _reference_alpha_bar(T: int, kind: str = "linear") -> torch.Tensor:
    from dlcourse.diffusion import ddpm_schedule

    return ddpm_schedule(T, kind=kind)["alpha_bar"]


@exercise("ex-diffusion-schedule", CHAPTER, solution=lambda: _reference_alpha_bar)
def _schedule(alpha_bar_schedule: Any) -> str:
    """``alpha_bar_schedule(T, kind)`` -> ``(T + 1,)`` with ``alpha_bar[0] = 1``."""
    for T, kind in ((1000, "linear"), (1000, "cosine"), (10, "linear"), (50, "cosine")):
        got = require_tensor(call_answer(alpha_bar_schedule, T, kind), f"alpha_bar(T={T})")
        expected = _reference_alpha_bar(T, kind)
        if got.shape == (T,):
            raise WrongAnswerError(
                f"for T={T} you returned {T} values; return T + 1 of them, with alpha_bar[0] = 1 "
                "for the clean data, so that alpha_bar[t] is step t"
            )
        if got.shape != (T + 1,):
            raise WrongAnswerError(f"for T={T} expected shape ({T + 1},), got {tuple(got.shape)}")
        got = got.double()
        if abs(got[0].item() - 1.0) > 1e-6:
            raise WrongAnswerError("alpha_bar[0] must be 1 (no noise at all at t = 0)")
        if torch.isclose(got[1:], expected[:-1].double(), rtol=1e-3).all():
            raise WrongAnswerError(
                "off by one step: alpha_bar[1] must already include (1 - beta_1)"
            )
        if not (got[1:] < got[:-1]).all():
            raise WrongAnswerError(f"{kind} alpha_bar must be strictly decreasing in t (T={T})")
        if kind == "linear" and T == 1000:
            check_close(got[T], 4.04e-5, rtol=1e-2, atol=0, name="linear alpha_bar[1000]",
                        reveal=False)  # fmt: skip
        if kind == "cosine" and T == 1000 and got[T] >= 1e-8:
            raise WrongAnswerError(
                "cosine alpha_bar[T] should be below 1e-8: is f(t)/f(0) evaluated at t/T = 1?"
            )
        check_close(got, expected, rtol=1e-3, atol=1e-6, name=f"{kind} alpha_bar (T={T})",
                    reveal=False)  # fmt: skip
    return "linear and cosine, T = 1000, 50 and 10"


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
    cases = [
        (torch.randn(8, 2, generator=gen), torch.randint(0, 1001, (8,), generator=gen)),
        (torch.randn(1, 2, generator=gen), torch.tensor([1000])),
        (torch.randn(3, 1, 4, 4, generator=gen), torch.tensor([0, 250, 999])),
    ]
    for x0, t in cases:
        noise = torch.randn(x0.shape, generator=gen)
        got = require_tensor(call_answer(q_sample, x0, t, noise, schedule), "x_t")
        check_close(got, _reference_q_sample(x0, t, noise, schedule), rtol=1e-4, atol=1e-5,
                    name=f"x_t for x0 of shape {tuple(x0.shape)}", reveal=False)  # fmt: skip
    # the law of x_t over 100k draws: mean sqrt(abar) x0, variance 1 - abar
    n, t_value = 100_000, 300
    x0 = torch.tensor([[1.5, -0.5]]).expand(n, 2)
    noise = torch.randn(n, 2, generator=gen)
    x_t = require_tensor(
        call_answer(q_sample, x0, torch.full((n,), t_value), noise, schedule), "x_t"
    )
    abar = schedule["alpha_bar"][t_value]
    check_close(
        x_t.mean(0), abar.sqrt() * x0[0], atol=1e-2, rtol=0, name="empirical mean", reveal=False
    )
    check_close(
        x_t.var(0), (1 - abar).expand(2), atol=1e-2, rtol=0, name="empirical variance", reveal=False
    )
    return "3 seeded batches and the law of 100k draws"


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
    x0 = torch.randn(16, 2, generator=gen)
    eps = torch.randn(16, 2, generator=gen)
    abar_t = 0.3
    x_t = abar_t**0.5 * x0 + (1 - abar_t) ** 0.5 * eps
    first = _pair(call_answer(ddim_step, x_t, eps, abar_t, 1.0))
    second = _pair(call_answer(ddim_step, x_t, eps, abar_t, 1.0))
    if not (torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])):
        raise WrongAnswerError("with eta = 0 two calls must give identical results (no noise)")
    check_close(first[1], x0, rtol=1e-4, atol=1e-5, name="x0_hat with the true noise", reveal=False)
    check_close(
        first[0],
        x0,
        rtol=1e-4,
        atol=1e-5,
        name="x_prev after a jump to alpha_bar = 1",
        reveal=False,
    )
    cases = [
        (torch.randn(16, 2, generator=gen), 0.2, 0.6, 0.0, None),
        (torch.randn(1, 2, generator=gen), 0.05, 0.9, 0.0, None),
        (torch.randn(16, 2, generator=gen), 0.2, 0.6, 1.0, "noise"),
        (torch.randn(16, 2, generator=gen), 0.01, 0.5, 0.5, "noise"),
    ]
    for x, a_t, a_prev, eta, with_noise in cases:
        e = torch.randn(x.shape, generator=gen)
        z = torch.randn(x.shape, generator=gen) if with_noise else None
        got = _pair(call_answer(ddim_step, x, e, a_t, a_prev, eta=eta, noise=z))
        expected = _reference_ddim_step(x, e, a_t, a_prev, eta=eta, noise=z)
        check_close(got[1], expected[1], rtol=1e-4, atol=1e-5, name="x0_hat", reveal=False)
        label = f"x_prev (eta={eta}, alpha_bar {a_t} -> {a_prev})"
        check_close(got[0], expected[0], rtol=1e-4, atol=1e-5, name=label, reveal=False)
    return "determinism, exact recovery and 4 updates (eta 0, 0.5, 1)"


# ---------------------------------------------------------------------------------------------
# 4. eps, x0 and v


def _reference_from_v(x_t, v, alpha_bar):
    a = torch.as_tensor(alpha_bar, dtype=x_t.dtype)
    return a.sqrt() * x_t - (1 - a).sqrt() * v, (1 - a).sqrt() * x_t + a.sqrt() * v


@exercise("ex-diffusion-v-param", CHAPTER, solution=lambda: _reference_from_v)
def _v_param(x0_eps_from_v: Any) -> str:
    """Round trip: (x0, eps) -> (x_t, v) -> ``x0_eps_from_v`` -> (x0, eps)."""
    gen = torch.Generator().manual_seed(76)
    cases = [
        (torch.randn(32, 2, generator=gen), 0.5),
        (torch.randn(1, 2, generator=gen), 0.9999),
        (torch.randn(32, 2, generator=gen), 1e-4),
        (torch.randn(32, 2, generator=gen), torch.rand(32, 1, generator=gen)),
        (10 * torch.randn(4, 3, 5, 5, generator=gen), torch.tensor([0.1, 0.4, 0.7, 0.95])),
    ]
    for x0, abar in cases:
        if torch.is_tensor(abar) and abar.ndim == 1:
            abar = abar.view(-1, *[1] * (x0.ndim - 1))  # one level per example
        eps = torch.randn(x0.shape, generator=gen)
        a = torch.as_tensor(abar, dtype=x0.dtype)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        v = a.sqrt() * eps - (1 - a).sqrt() * x0
        got = call_answer(x0_eps_from_v, x_t, v, abar)
        if not isinstance(got, tuple | list) or len(got) != 2:
            raise WrongAnswerError("x0_eps_from_v should return a pair (x0, eps)")
        label = f"alpha_bar = {abar}" if isinstance(abar, float) else "per-row alpha_bar"
        check_close(require_tensor(got[0], "x0"), x0, rtol=1e-4, atol=1e-4,
                    name=f"x0 ({label})", reveal=False)  # fmt: skip
        check_close(require_tensor(got[1], "eps"), eps, rtol=1e-4, atol=1e-4,
                    name=f"eps ({label})", reveal=False)  # fmt: skip
    return "5 round trips, alpha_bar from 1e-4 to 0.9999"
