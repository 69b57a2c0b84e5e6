"""Exercise checks for chapter 4.2, Recurrent networks from scratch."""

from __future__ import annotations

from typing import Any

import torch

from .core import WrongAnswerError, call_answer, check_close, check_equal, exercise, over_cases

CHAPTER = "04-sequences/02-rnn"


def _reference_cell():
    from dlcourse.rnn import rnn_cell

    return rnn_cell


def _torch_step(x, h, W_ih, W_hh, b_ih, b_hh) -> torch.Tensor:
    """One step of ``torch.nn.RNN`` (tanh) with the given weights."""
    rnn = torch.nn.RNN(W_ih.shape[1], W_ih.shape[0], bias=b_ih is not None, dtype=x.dtype)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(W_ih)
        rnn.weight_hh_l0.copy_(W_hh)
        if b_ih is not None:
            rnn.bias_ih_l0.copy_(b_ih)
            rnn.bias_hh_l0.copy_(b_hh)
        return rnn(x[None], h[None])[1][0]


def _cell_case(seed: int, B: int, D: int, H: int, scale: float = 1.0, bias: bool = True):
    g = torch.Generator().manual_seed(seed)
    x, h = scale * torch.randn(B, D, generator=g), torch.randn(B, H, generator=g).tanh()
    W_ih, W_hh = torch.randn(H, D, generator=g) / D**0.5, torch.randn(H, H, generator=g) / H**0.5
    b = (torch.randn(H, generator=g), torch.randn(H, generator=g)) if bias else (None, None)
    return x, h, W_ih, W_hh, *b


_CELL_CASES = [
    ("batch 4, D=3, H=5", _cell_case(0, 4, 3, 5)),
    ("a non-square W_ih, D=7, H=2", _cell_case(1, 3, 7, 2)),
    ("batch of one", _cell_case(2, 1, 4, 6)),
    ("no biases (None)", _cell_case(3, 2, 3, 5, bias=False)),
    ("large inputs (tanh saturates)", _cell_case(4, 2, 3, 5, scale=100.0)),
]


@exercise("ex-rnn-cell", CHAPTER, solution=_reference_cell)
def _cell(rnn_cell: Any) -> str:
    """``rnn_cell(x, h, W_ih, W_hh, b_ih=None, b_hh=None)`` must equal one step of nn.RNN."""

    def check_one(case) -> None:
        x, h, W_ih, W_hh, b_ih, b_hh = case
        got = call_answer(rnn_cell, x, h, W_ih, W_hh, b_ih, b_hh)
        if not torch.is_tensor(got):
            raise WrongAnswerError(f"rnn_cell should return a tensor, got {type(got).__name__}")
        if got.shape != h.shape:
            raise WrongAnswerError(
                f"rnn_cell should return the new state, shape (B, H) = {tuple(h.shape)}, got "
                f"{tuple(got.shape)}; PyTorch stores W_ih as (H, D), so the product is x @ W_ih.T"
            )
        check_close(got, _torch_step(x, h, W_ih, W_hh, b_ih, b_hh), rtol=1e-5, atol=1e-6,
                    name="h_t", reveal=False)  # fmt: skip

    return f"matches nn.RNN: {over_cases(_CELL_CASES, check_one)}"


@exercise("ex-rnn-linear-grad", CHAPTER, solution=lambda: 0.5**10)
def _linear_grad(value: Any) -> None:
    """d h_10 / d h_0 for h_t = 0.5 h_{t-1} + x_t."""
    if torch.is_tensor(value):
        if value.numel() != 1:
            raise WrongAnswerError("the derivative of a scalar by a scalar is one number")
        value = value.item()
    if not isinstance(value, int | float):
        raise WrongAnswerError(f"answer should be a number, got {type(value).__name__}")
    if abs(value - 0.5**9) < 1e-9:
        raise WrongAnswerError("that is d h_10 / d h_1: from h_0 to h_10 there are 10 steps")
    check_close(value, 0.5**10, rtol=1e-6, atol=0.0, name="d h_10 / d h_0", reveal=False)


_DETACH_ANSWER = {"raises": True, "type": "RuntimeError"}


@exercise("ex-rnn-detach", CHAPTER, solution=lambda: dict(_DETACH_ANSWER))
def _detach(answer: Any) -> None:
    """Does the second minibatch's backward raise without detach, and with which type?"""
    if not isinstance(answer, dict) or set(answer) != {"raises", "type"}:
        raise WrongAnswerError('answer should be a dict {"raises": bool, "type": str}')
    if answer["raises"] is not True:
        raise WrongAnswerError(
            "the second loss reaches back through the carried state into the first "
            "minibatch's graph, whose saved tensors the first backward already freed"
        )
    check_equal(answer, _DETACH_ANSWER, name="answer", reveal=False)


def _anatomy() -> dict[str, tuple[int, ...]]:
    rnn = torch.nn.RNN(28, 64, num_layers=2, bidirectional=True)
    return {name: tuple(p.shape) for name, p in rnn.named_parameters()}


@exercise("ex-rnn-anatomy", CHAPTER, solution=_anatomy)
def _anatomy_check(shapes: Any) -> None:
    """Parameter names and shapes of nn.RNN(28, 64, num_layers=2, bidirectional=True)."""
    if not isinstance(shapes, dict):
        raise WrongAnswerError(f"answer should be a dict name -> shape, got {type(shapes)}")
    try:
        got = {str(k): tuple(int(n) for n in v) for k, v in shapes.items()}
    except (TypeError, ValueError):
        raise WrongAnswerError("each shape should be a tuple of ints such as (64, 28)") from None
    expected = _anatomy()
    if len(got) < len(expected):
        hint = "a bidirectional layer has a second set of weights, named with '_reverse'"
        if not any(k.startswith("bias") for k in got):
            hint = "nn.RNN has bias=True by default: two bias vectors per layer and direction"
        raise WrongAnswerError(f"{len(got)} parameters, but there are more: {hint}")
    if got.get("weight_ih_l1") == (64, 64):
        raise WrongAnswerError(
            "weight_ih_l1 is wrong: layer 1 reads the concatenated outputs of both directions"
        )
    check_equal(got, expected, name="shapes", reveal=False)
