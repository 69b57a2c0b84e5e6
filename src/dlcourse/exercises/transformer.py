"""Exercise checks for chapter 5.3, The Transformer and a tiny GPT."""

from __future__ import annotations

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

CHAPTER = "05-attention/03-transformer"


def _ffn_share_solution() -> tuple[int, int, float]:
    from dlcourse.attention import block_param_count

    d, d_ff = 512, 2048
    ffn, attn = 2 * d * d_ff + d_ff + d, 4 * d * d + 4 * d
    return ffn, attn, ffn / block_param_count(d, d_ff)


@exercise("ex-transformer-ffn-share", CHAPTER, solution=_ffn_share_solution)
def _ffn_share(answer: Any) -> str:
    """``(ffn_params, attention_params, ffn_share)`` of one d=512, d_ff=2048 block."""
    if not isinstance(answer, tuple | list) or len(answer) != 3:
        raise WrongAnswerError("answer should be the tuple (ffn_params, attn_params, ffn_share)")
    ffn, attn, share = answer
    ref_ffn, ref_attn, ref_share = _ffn_share_solution()
    if ffn == 2 * 512 * 2048:
        raise WrongAnswerError("ffn_params: the two weight matrices are right; add the biases")
    check_equal(ffn, ref_ffn, name="ffn_params", reveal=False)
    if attn == 4 * 512 * 512:
        raise WrongAnswerError("attn_params: W_Q, W_K, W_V, W_O are right; add their biases")
    check_equal(attn, ref_attn, name="attn_params", reveal=False)
    if not isinstance(share, int | float) or not math.isclose(share, ref_share, abs_tol=1e-3):
        raise WrongAnswerError(
            "ffn_share should be the FFN's fraction of the block's parameters, a number in (0, 1)"
        )
    return "FFN, attention and share"


def _block_params_reference(d: int, d_ff: int) -> int:
    from dlcourse.attention import block_param_count

    return block_param_count(d, d_ff)


@exercise("ex-transformer-block-params", CHAPTER, solution=lambda: _block_params_reference)
def _block_params(answer: Any) -> str:
    """A function ``(d, d_ff) -> int``: parameters of one encoder block."""
    from torch import nn

    def one(case: tuple[int, int, int]) -> None:
        d, d_ff, heads = case
        got = call_answer(answer, d, d_ff)
        layer = nn.TransformerEncoderLayer(d, heads, d_ff)
        expected = sum(p.numel() for p in layer.parameters())
        if got == expected - 4 * d:
            raise WrongAnswerError("you are 4d short: the two LayerNorms have a gain and a shift")
        check_equal(got, expected, name="the parameter count", reveal=False)

    cases = [("d=64, d_ff=256", (64, 256, 4)), ("d=512, d_ff=2048", (512, 2048, 8)),
             ("d_ff < d", (32, 16, 2)), ("d=1", (1, 3, 1))]  # fmt: skip
    return over_cases(cases, one)


def _leak_reference(block: torch.nn.Module, x: torch.Tensor, i: int) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    block(x)[:, : i + 1].sum().backward()
    return x.grad[:, i + 1 :]


@exercise("ex-transformer-causal-leak", CHAPTER, solution=lambda: _leak_reference)
def _causal_leak(answer: Any) -> str:
    """A function ``(block, x (B, T, d), i) -> (B, T-i-1, d)``: the gradient of the sum of the
    outputs at positions ``<= i`` with respect to the inputs at positions ``> i``."""
    from dlcourse.attention import TransformerBlock

    torch.manual_seed(0)
    causal = TransformerBlock(8, 2, 16, causal=True).double()
    full = TransformerBlock(8, 2, 16, causal=False).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 8, generator=g, dtype=torch.float64)

    def one(case: tuple[torch.nn.Module, torch.Tensor, int, bool]) -> None:
        block, inputs, i, is_causal = case
        got = require_tensor(call_answer(answer, block, inputs, i), "the gradient")
        ref = _leak_reference(block, inputs, i)
        if got.shape != ref.shape:
            raise WrongAnswerError(
                f"expected shape {tuple(ref.shape)} (positions i+1..T-1 only), got "
                f"{tuple(got.shape)}"
            )
        if is_causal and got.abs().max() > 0:
            raise WrongAnswerError("for a causal block the future inputs get exactly 0 gradient")
        check_close(got, ref, rtol=1e-6, atol=1e-9, name="the gradient", reveal=False)

    cases = [("causal block, i=2", (causal, x, 2, True)),
             ("bidirectional block, i=2", (full, x, 2, False)),
             ("causal block, i=0", (causal, x, 0, True)),
             ("bidirectional, batch of one", (full, x[:1], 4, False))]  # fmt: skip
    return over_cases(cases, one)


def _lm_loss_reference(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    from dlcourse.losses import causal_lm_loss

    return causal_lm_loss(logits, labels, ignore_index=ignore_index)


@exercise("ex-transformer-lm-loss", CHAPTER, solution=lambda: _lm_loss_reference)
def _lm_loss(answer: Any) -> str:
    """A function ``(logits (B, T, V), labels (B, T), ignore_index=-100) -> scalar``: the
    shifted next-token cross-entropy, positions labelled ``ignore_index`` not counted."""
    g = torch.Generator().manual_seed(0)

    def one(case: tuple[torch.Tensor, torch.Tensor, int]) -> None:
        logits, labels, ignore = case
        got = require_tensor(call_answer(answer, logits, labels, ignore), "the loss")
        ref = _lm_loss_reference(logits, labels, ignore)
        if got.numel() != 1:
            raise WrongAnswerError(f"the loss should be one number, got shape {tuple(got.shape)}")
        unshifted = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), labels.flatten(), ignore_index=ignore
        )
        if torch.isclose(got.reshape(()).double(), unshifted.double(), rtol=1e-5) and not (
            torch.isclose(unshifted.double(), ref.double(), rtol=1e-5)
        ):
            raise WrongAnswerError(
                "you score position t against label t; the logits at t predict token t+1"
            )
        check_close(got.reshape(()), ref, rtol=1e-5, atol=1e-6, name="the loss", reveal=False)

    logits = torch.randn(3, 7, 5, generator=g)
    labels = torch.randint(0, 5, (3, 7), generator=g)
    padded = labels.clone()
    padded[0, 4:] = -100  # right padding
    padded[2, :3] = -100  # a prompt that is not trained on
    other = labels.clone()
    other[1, 2:] = 0
    cases = [("random", (logits, labels, -100)), ("ignored positions", (logits, padded, -100)),
             ("ignore_index=0", (logits, other, 0)),
             ("batch of one, T=2", (logits[:1, :2], labels[:1, :2], -100)),
             ("large logits", (1000 * logits, labels, -100))]  # fmt: skip
    return over_cases(cases, one)
