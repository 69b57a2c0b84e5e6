"""Exercise checks for chapter 5.1, Attention and self-attention from scratch."""

from __future__ import annotations

import functools
import math
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

CHAPTER = "05-attention/01-attention"

# The 3-token example of ex-attention-by-hand (rows are tokens, d_k = 4 so the scale is 1/2).
BY_HAND_Q = [[1, 0, 1, 0], [0, 2, 0, 0], [1, 1, 1, 1]]
BY_HAND_K = [[1, 0, 0, 1], [0, 1, 1, 0], [2, 0, 0, 0]]
BY_HAND_V = [[1, 0], [0, 1], [3, 3]]


def _to64(value: Any, name: str) -> torch.Tensor:
    try:
        return torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise WrongAnswerError(
            f"{name} should be a 3x3 or 3x2 tensor, got {type(value).__name__}"
        ) from None


def _by_hand_reference() -> tuple[torch.Tensor, ...]:
    from dlcourse.attention import scaled_dot_product_attention

    q, k, v = (torch.tensor(m, dtype=torch.float64) for m in (BY_HAND_Q, BY_HAND_K, BY_HAND_V))
    output, weights = scaled_dot_product_attention(q, k, v)
    causal_output, causal_weights = scaled_dot_product_attention(q, k, v, causal=True)
    return weights, output, causal_weights, causal_output


@exercise("ex-attention-by-hand", CHAPTER, solution=_by_hand_reference)
def _by_hand(answer: Any) -> str:
    """``(weights, output, causal_weights, causal_output)`` for the fixed 3-token example."""
    if not isinstance(answer, tuple | list) or len(answer) != 4:
        raise WrongAnswerError(
            "answer should be the tuple (weights, output, causal_weights, causal_output)"
        )
    weights, output, causal_weights, causal_output = answer
    ref_w, ref_o, ref_cw, ref_co = _by_hand_reference()
    for name, got in (("weights", weights), ("causal_weights", causal_weights)):
        got = _to64(got, name)
        if got.shape == (3, 3) and not torch.allclose(
            got.sum(-1), torch.ones(3, dtype=got.dtype), atol=1e-3
        ):
            if torch.allclose(got.sum(0), torch.ones(3, dtype=got.dtype), atol=1e-3):
                raise WrongAnswerError(
                    f"the columns of {name} sum to 1: the softmax runs over queries; it must "
                    "run over keys, along each row"
                )
            raise WrongAnswerError(f"each row of {name} should sum to 1 (a softmax over keys)")
    unscaled = torch.softmax(torch.tensor(BY_HAND_Q, dtype=torch.float64)
                             @ torch.tensor(BY_HAND_K, dtype=torch.float64).T, dim=-1)  # fmt: skip
    w = _to64(weights, "weights")
    if w.shape == (3, 3) and torch.allclose(w, unscaled, atol=1e-3):
        raise WrongAnswerError("weights: the scores were not divided by sqrt(d_k) = 2")
    check_close(weights, ref_w, rtol=1e-3, atol=1e-4, name="weights", reveal=False)
    check_close(output, ref_o, rtol=1e-3, atol=1e-4, name="output", reveal=False)
    cw = _to64(causal_weights, "causal_weights")
    if cw.shape == (3, 3) and cw.triu(1).abs().max() > 1e-6:
        raise WrongAnswerError(
            "causal_weights: a query may not see later keys, so entries above the diagonal "
            "must be exactly 0"
        )
    check_close(causal_weights, ref_cw, rtol=1e-3, atol=1e-4, name="causal_weights", reveal=False)
    check_close(causal_output, ref_co, rtol=1e-3, atol=1e-4, name="causal_output", reveal=False)
    return "with and without the causal mask"


_VARIANCE_CASES = ((16, 1.0), (64, 0.5), (256, 2.0), (2, 3.0), (128, 0.1))


@functools.cache
def _simulated_dot_variance(d: int, sigma: float, samples: int = 20_000) -> float:
    """Sample variance of q.k for q, k with i.i.d. N(0, sigma^2) components (seeded)."""
    generator = torch.Generator().manual_seed(d)
    q = sigma * torch.randn(samples, d, generator=generator)
    k = sigma * torch.randn(samples, d, generator=generator)
    return (q * k).sum(-1).double().var().item()


def _variance_solution() -> dict[str, Any]:
    return {"variance": lambda d, sigma: d * sigma**4, "d_k": 128, "scale": 1 / math.sqrt(128)}


@exercise("ex-attention-variance", CHAPTER, solution=_variance_solution)
def _variance(answer: Any) -> str:
    """``{"variance": f(d, sigma), "d_k": int, "scale": float}`` for q.k and GPT-3's heads."""
    if not isinstance(answer, dict) or set(answer) != {"variance", "d_k", "scale"}:
        raise WrongAnswerError('answer should be a dict with keys "variance", "d_k", "scale"')
    fn = answer["variance"]
    for d, sigma in _VARIANCE_CASES:
        got = call_answer(fn, d, sigma)
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise WrongAnswerError(
                f"variance(d, sigma) should return a number, got {type(got).__name__}"
            ) from None
        simulated = _simulated_dot_variance(d, sigma)
        if not math.isfinite(got) or abs(got - simulated) > 0.05 * simulated:
            raise WrongAnswerError(
                f"variance({d}, {sigma}) = {got:.4g} disagrees with a simulation of q.k by more "
                "than 5%: a product of two independent zero-mean factors has variance "
                "sigma^2 * sigma^2, and the d products are independent"
            )
    d_k = answer["d_k"]
    if not isinstance(d_k, int) or isinstance(d_k, bool):
        raise WrongAnswerError(f"d_k should be an int, got {type(d_k).__name__}")
    if d_k == 12288:
        raise WrongAnswerError("d_k: the scale uses the width of one head, not d_model")
    check_equal(d_k, 12288 // 96, name="d_k", reveal=False)
    check_close(answer["scale"], 1 / math.sqrt(12288 // 96), rtol=2e-3, name="scale", reveal=False)
    return (
        f"{len(_VARIANCE_CASES)} (d, sigma) pairs against simulations, GPT-3 head width and scale"
    )


def _multihead_solution() -> tuple[Any, Any, Any]:
    from dlcourse.attention import MultiHeadAttention, merge_heads, split_heads

    return split_heads, merge_heads, MultiHeadAttention


# (d_model, heads, batch, tokens, input scale)
_MULTIHEAD_CASES = [
    ("d = 8 with 2 heads", (8, 2, 2, 4, 1.0)),
    ("a batch of one (d = 12 with 3 heads)", (12, 3, 1, 6, 1.0)),
    ("a single head (d = 6)", (6, 1, 3, 2, 1.0)),
    ("one token and 16 heads of width 1", (16, 16, 1, 1, 1.0)),
    ("an empty batch (B = 0)", (8, 2, 0, 4, 1.0)),
    ("large inputs (scores around 1e3)", (8, 2, 2, 4, 30.0)),
]


def _check_split_merge(split: Any, merge: Any, x: torch.Tensor, n_heads: int) -> None:
    """``split_heads`` puts features ``i d_h:(i+1) d_h`` in head ``i``; ``merge_heads`` undoes it."""
    b, t, d = x.shape
    heads = call_answer(split, x, n_heads)
    shape = (b, n_heads, t, d // n_heads)
    if not torch.is_tensor(heads) or tuple(heads.shape) != shape:
        raise WrongAnswerError(
            f"split_heads(x {tuple(x.shape)}, {n_heads}) has the wrong shape: expected {shape}, "
            f"got {tuple(getattr(heads, 'shape', ()))}"
        )
    d_h = d // n_heads
    if not torch.equal(heads[:, -1], x[..., d - d_h :]):  # the last head, the last features
        raise WrongAnswerError(
            "split_heads: head i should hold features i*d_h:(i+1)*d_h of every token (reshape "
            "to (B, T, h, d_h), then swap the T and h axes), as nn.MultiheadAttention does"
        )
    back = call_answer(merge, heads)
    if not torch.is_tensor(back) or not torch.equal(back, x):
        raise WrongAnswerError("merge_heads(split_heads(x, h)) should give x back exactly")


@exercise("ex-attention-multihead", CHAPTER, solution=_multihead_solution)
def _multihead(answer: Any) -> str:
    """``(split_heads, merge_heads, MultiHeadAttentionClass)`` against ``nn.MultiheadAttention``."""
    from torch import nn

    if not isinstance(answer, tuple | list) or len(answer) != 3:
        raise WrongAnswerError(
            "answer should be the tuple (split_heads, merge_heads, MyMultiHeadAttention)"
        )
    split, merge, cls = answer
    generator = torch.Generator().manual_seed(1)

    def check_one(case: tuple[int, int, int, int, float]) -> None:
        d, h, b, t, scale = case
        x = scale * torch.randn(b, t, d, generator=generator)
        _check_split_merge(split, merge, x, h)
        reference = nn.MultiheadAttention(d, h, batch_first=True)
        with torch.no_grad():  # seeded weights, without touching the global random state
            for param in reference.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) / math.sqrt(d))
        expected = reference(x, x, x, need_weights=False)[0].detach()
        module = call_answer(cls, d, h)
        call_answer(module.load_from_torch, reference)
        with torch.no_grad():
            got = call_answer(module, x)
        if isinstance(got, tuple | list):
            got = got[0]
        check_close(require_tensor(got, "output"), expected, rtol=1e-4, atol=1e-5,
                    name="output", reveal=False, dtype=x.dtype)  # fmt: skip

    note = over_cases(_MULTIHEAD_CASES, check_one)
    return f"split, merge and output against nn.MultiheadAttention, {note}"


@exercise(
    "ex-attention-param-count",
    CHAPTER,
    solution=lambda: {h: 4 * 512 * 512 + 4 * 512 for h in (1, 8, 16)},
)
def _param_count(answer: Any) -> None:
    """``{h: number of parameters of MHA(d=512, h)}`` for h in 1, 8, 16."""
    if not isinstance(answer, dict):
        raise WrongAnswerError(f"answer should be a dict {{h: count}}, got {type(answer).__name__}")
    if any(isinstance(v, int) and v == 4 * 512 * 512 for v in answer.values()):
        raise WrongAnswerError("the biases are missing: each of the 4 projections has d of them")
    check_equal(answer, {h: 4 * 512 * 512 + 4 * 512 for h in (1, 8, 16)}, name="counts",
                reveal=False)  # fmt: skip
