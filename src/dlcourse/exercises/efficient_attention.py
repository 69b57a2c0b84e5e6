"""Exercise checks for chapter 5.6, Efficient attention and state-space models (Mamba)."""

from __future__ import annotations

import math
from typing import Any

import torch

from .core import WrongAnswerError, call_answer, check_close, check_equal, exercise, over_cases

CHAPTER = "05-attention/06-efficient-attention-and-ssms"


def _pairs_reference(n: int, w: int) -> int:
    from dlcourse.attention import window_pair_count

    return window_pair_count(n, w)


@exercise("ex-efficient-pairs", CHAPTER, solution=lambda: _pairs_reference)
def _pairs(answer: Any) -> str:
    """A function ``(n, w) -> int``: the pairs kept by a window of half-width ``w``."""

    def one(case: tuple[int, int]) -> None:
        n, w = case
        got = call_answer(answer, n, w)
        if torch.is_tensor(got):
            got = got.item()
        if not isinstance(got, int | float) or got != int(got):
            raise WrongAnswerError(f"expected a whole number of pairs, got {got!r}")
        want = _pairs_reference(n, w)
        if int(got) == n * (2 * w + 1) and want != got:
            raise WrongAnswerError(
                f"for n={n}, w={w} you count 2w+1 keys for every query: the first and last w "
                "queries lose keys at the ends of the sequence"
            )
        check_equal(int(got), want, name=f"pairs for n={n}, w={w}", reveal=False)

    cases = [("n=6, w=1", (6, 1)), ("w=0 (only the diagonal)", (9, 0)), ("one token", (1, 0)),
             ("n=100, w=7", (100, 7)), ("window wider than the sequence", (5, 9)),
             ("w = n - 1", (8, 7))]  # fmt: skip
    return over_cases(cases, one)


def _ssm_kernel_reference(a: float, b: float, c: float, delta: float, L: int) -> torch.Tensor:
    from dlcourse.ssm import discretize_zoh, ssm_conv_kernel

    A_bar, B_bar = discretize_zoh(torch.tensor([[a]], dtype=torch.float64),
                                  torch.tensor([[b]], dtype=torch.float64), delta)  # fmt: skip
    return ssm_conv_kernel(A_bar, B_bar, torch.tensor([[c]], dtype=torch.float64), L)[0]


@exercise("ex-efficient-ssm-kernel", CHAPTER, solution=lambda: _ssm_kernel_reference)
def _ssm_kernel(answer: Any) -> str:
    """A function ``(a, b, c, delta, L) -> (L,)`` kernel of a scalar SSM after ZOH."""

    def one(case: tuple[float, float, float, float, int]) -> None:
        got = call_answer(answer, *case)
        if not torch.is_tensor(got):
            got = torch.as_tensor(got, dtype=torch.float64)
        want = _ssm_kernel_reference(*case)
        check_close(got.double(), want, rtol=1e-5, atol=1e-9, name="the kernel", reveal=False)
        # the kernel must also reproduce the recurrence on an input
        x = torch.randn(case[-1], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        a, b, c, delta, L = case
        a_bar = math.exp(delta * a)
        b_bar = (a_bar - 1) / a * b
        h, ys = 0.0, []
        for t in range(L):
            h = a_bar * h + b_bar * x[t].item()
            ys.append(c * h)
        conv = torch.stack([(got.double()[: t + 1].flip(0) * x[: t + 1]).sum() for t in range(L)])
        check_close(conv, torch.tensor(ys, dtype=torch.float64), rtol=1e-5, atol=1e-9,
                    name="the convolution with your kernel vs the recurrence", reveal=False)  # fmt: skip

    cases = [("a=-1, delta=0.1", (-1.0, 1.0, 1.0, 0.1, 8)), ("a=-0.5, b=2, c=-3", (-0.5, 2.0, -3.0, 0.7, 12)),
             ("one step", (-2.0, 1.5, 0.5, 0.01, 1)), ("fast decay", (-20.0, 1.0, 1.0, 0.5, 5))]  # fmt: skip
    return over_cases(cases, one)


def _linear_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    from dlcourse.attention import linear_attention

    return linear_attention(q, k, v, causal=True)


def _linear_solution():
    def causal_linear_attention(q, k, v):
        fq = torch.nn.functional.elu(q) + 1
        fk = torch.nn.functional.elu(k) + 1
        S, z, outs = 0.0, 0.0, []
        for t in range(q.shape[0]):
            S = S + torch.outer(fk[t], v[t])
            z = z + fk[t]
            outs.append(fq[t] @ S / (fq[t] @ z + 1e-6))
        return torch.stack(outs)

    return causal_linear_attention


@exercise("ex-efficient-linear", CHAPTER, solution=_linear_solution)
def _linear(answer: Any) -> str:
    """A function ``(q (T, D), k (T, D), v (T, D_v)) -> (T, D_v)``, causal linear attention."""
    g = torch.Generator().manual_seed(0)

    def one(case: tuple[int, int, int, float]) -> None:
        T, D, Dv, scale = case
        q, k, v = (scale * torch.randn(T, d, generator=g) for d in (D, D, Dv))
        got = call_answer(answer, q, k, v)
        want = _linear_reference(q, k, v)
        if torch.is_tensor(got) and got.shape == want.shape and T > 1:
            if torch.allclose(got.float(), _full_linear(q, k, v), rtol=1e-3, atol=1e-4):
                raise WrongAnswerError("output t must not see keys after t: the form is causal")
        check_close(got, want, rtol=1e-3, atol=1e-4, name="the outputs", reveal=False)

    cases = [("T=10, D=4", (10, 4, 4, 1.0)), ("one token", (1, 3, 2, 1.0)),
             ("D_v != D", (7, 5, 3, 1.0)), ("large values", (6, 4, 4, 10.0))]  # fmt: skip
    return over_cases(cases, one)


def _full_linear(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    from dlcourse.attention import linear_attention

    return linear_attention(q, k, v)


def _features_reference(x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    from dlcourse.attention import random_feature_map

    return random_feature_map(x, W.shape[0], weights=W)


@exercise("ex-efficient-features", CHAPTER, solution=lambda: lambda x, W: torch.exp(
    x @ W.T - 0.5 * (x**2).sum(-1, keepdim=True)) / W.shape[0] ** 0.5)  # fmt: skip
def _features(answer: Any) -> str:
    """A function ``(x (..., D), W (m, D)) -> (..., m)``, Performer's positive features."""
    g = torch.Generator().manual_seed(0)
    # three fixed pairs with |q| = |k| = 0.5 and the Monte Carlo estimate of exp(q . k)
    dirs = torch.randn(6, 4, generator=g, dtype=torch.float64)
    pairs = 0.5 * dirs / dirs.norm(dim=-1, keepdim=True)
    q, k = pairs[:3], pairs[3:]
    W = torch.randn(20000, 4, generator=g, dtype=torch.float64)
    fq, fk = call_answer(answer, q, W), call_answer(answer, k, W)
    for name, f in (("phi(q)", fq), ("phi(k)", fk)):
        if not torch.is_tensor(f) or f.shape != (3, 20000):
            raise WrongAnswerError(f"{name} should be a tensor (3, m=20000)")
        if (f <= 0).any():
            raise WrongAnswerError(f"{name} has non-positive entries: exp(...) is always > 0")
    estimate = (fq * fk).sum(-1)
    exact = torch.exp((q * k).sum(-1))
    rel = ((estimate - exact) / exact).abs()
    if (rel > 0.05).any():
        raise WrongAnswerError(
            "phi(q) . phi(k) is not within 5% of exp(q . k) with 20,000 features: check the "
            "-|x|^2/2 term and the 1/sqrt(m) factor"
        )
    x = torch.randn(2, 5, 3, generator=g)
    W2 = torch.randn(7, 3, generator=g)
    check_close(call_answer(answer, x, W2), _features_reference(x, W2), rtol=1e-4, atol=1e-6,
                name="phi(x) on a batch", reveal=False)  # fmt: skip
    return "Monte Carlo estimate within 5% on three pairs; batch shapes"
