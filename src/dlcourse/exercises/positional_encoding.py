"""Exercise checks for chapter 5.2, Positional encoding: sinusoidal, learned, relative, RoPE, ALiBi."""

from __future__ import annotations

from typing import Any

import torch

from .core import (
    WrongAnswerError,
    call_answer,
    check_close,
    check_equal,
    exercise,
    over_cases,
    require_tensor,
)

CHAPTER = "05-attention/02-positional-encoding"


def _sinusoidal_reference(n: int, d: int) -> torch.Tensor:
    from dlcourse.attention import sinusoidal_pe

    return sinusoidal_pe(n, d)


@exercise("ex-positional-sinusoidal", CHAPTER, solution=lambda: _sinusoidal_reference)
def _sinusoidal(answer: Any) -> str:
    """A function ``(n, d) -> (n, d)`` sinusoidal table, sin in even and cos in odd columns."""

    def one(case: tuple[int, int]) -> None:
        n, d = case
        got = require_tensor(call_answer(answer, n, d), "the table")
        ref = _sinusoidal_reference(n, d)
        if got.shape != ref.shape:
            raise WrongAnswerError(f"expected shape ({n}, {d}), got {tuple(got.shape)}")
        got = got.double()
        if n > 1 and torch.allclose(got[:, 1::2], got[:, 0::2], atol=1e-6):
            raise WrongAnswerError(
                "even and odd columns are equal: column 2i holds sin and column 2i+1 holds cos "
                "of the same angle"
            )
        if torch.allclose(got[:, 0::2], ref[:, 1::2].double(), atol=1e-4):
            raise WrongAnswerError("sin and cos are swapped: sin goes in the even columns")
        check_close(got.norm(dim=1), torch.full((n,), (d / 2) ** 0.5), rtol=1e-3, atol=1e-4,
                    name="the row norms", reveal=False)  # fmt: skip
        check_close(got, ref, rtol=1e-4, atol=1e-5, name="the table", reveal=False)

    cases = [("n=10, d=64", (10, 64)), ("one position", (1, 8)), ("n=200, d=16", (200, 16)),
             ("d=2", (5, 2))]  # fmt: skip
    return over_cases(cases, one)


def _rope_reference(x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
    from dlcourse.attention import rope

    return rope(x, positions)


@exercise("ex-positional-rope", CHAPTER, solution=lambda: _rope_reference)
def _rope(answer: Any) -> str:
    """A function ``(x (..., T, D), positions=None) -> (..., T, D)`` rotating feature pairs."""
    g = torch.Generator().manual_seed(0)

    def one(case: tuple[torch.Tensor, torch.Tensor | None]) -> None:
        x, positions = case
        got = require_tensor(call_answer(answer, x, positions), "rope(x)")
        ref = _rope_reference(x, positions)
        if got.shape != ref.shape:
            raise WrongAnswerError(f"expected shape {tuple(ref.shape)}, got {tuple(got.shape)}")
        if not torch.allclose(got.norm(dim=-1), x.norm(dim=-1), rtol=1e-4, atol=1e-5):
            raise WrongAnswerError("a rotation keeps every vector's norm; yours changes it")
        check_close(got, ref, rtol=1e-4, atol=1e-5, name="rope(x)", reveal=False)

    x1 = torch.randn(1, 6, 8, generator=g, dtype=torch.float64)
    x2 = torch.randn(2, 3, 20, 16, generator=g)
    x3 = 100 * torch.randn(1, 4, generator=g)
    cases = [("default positions", (x1, None)), ("batch and heads", (x2, None)),
             ("explicit positions", (x1, torch.tensor([7, 3, 0, 50, 1000, 2]))),
             ("one token, large values", (x3, None))]  # fmt: skip
    return over_cases(cases, one)


def _alibi_solution() -> tuple[torch.Tensor, torch.Tensor]:
    from dlcourse.attention import alibi_bias, alibi_slopes

    return alibi_slopes(8), alibi_bias(8, 5)


@exercise("ex-positional-alibi", CHAPTER, solution=_alibi_solution)
def _alibi(answer: Any) -> str:
    """``(slopes (8,), bias (8, 5, 5))`` for 8 heads and 5 tokens."""
    if not isinstance(answer, tuple | list) or len(answer) != 2:
        raise WrongAnswerError("answer should be the tuple (slopes, bias)")
    slopes, bias = (
        require_tensor(a, name) for a, name in zip(answer, ("slopes", "bias"), strict=True)
    )
    ref_slopes, ref_bias = _alibi_solution()
    check_close(slopes, ref_slopes, rtol=1e-5, name="slopes", reveal=False)
    check_equal(tuple(bias.shape), (8, 5, 5), name="bias shape", reveal=True)
    lower = torch.ones(5, 5, dtype=torch.bool).tril()
    got = bias.double().masked_fill(~lower, 0.0)
    want = ref_bias.double().masked_fill(~lower, 0.0)
    if torch.allclose(got, -want, atol=1e-6) and want.abs().max() > 0:
        raise WrongAnswerError("bias has the wrong sign: farther keys must get a *lower* score")
    check_close(
        got, want, rtol=1e-5, atol=1e-7, name="bias on and below the diagonal", reveal=False
    )
    return "slopes and bias"


def _concat_reference(W: torch.Tensor, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, p], dim=-1) @ W.T


@exercise(
    "ex-positional-concat",
    CHAPTER,
    solution=lambda: lambda W, x, p: x @ W[:, : x.shape[-1]].T + p @ W[:, x.shape[-1] :].T,
)
def _concat(answer: Any) -> str:
    """A function ``(W (d_out, d_x + d_p), x (..., d_x), p (..., d_p))`` -> ``(..., d_out)``."""
    g = torch.Generator().manual_seed(0)

    def one(case: tuple[int, int, int, tuple[int, ...]]) -> None:
        d_out, d_x, d_p, batch = case
        W = torch.randn(d_out, d_x + d_p, generator=g)
        x, p = torch.randn(*batch, d_x, generator=g), torch.randn(*batch, d_p, generator=g)
        got = call_answer(answer, W, x, p)
        check_close(got, _concat_reference(W, x, p), rtol=1e-4, atol=1e-5,
                    name="W1 x + W2 p", reveal=False)  # fmt: skip

    cases = [("equal widths", (6, 4, 4, (3,))), ("different widths", (5, 7, 3, (2, 4))),
             ("one token", (3, 2, 5, (1,)))]  # fmt: skip
    return over_cases(cases, one)
