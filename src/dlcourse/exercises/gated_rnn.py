"""Exercise checks for chapter 4.3, LSTM, GRU and encoder-decoder models."""

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

CHAPTER = "04-sequences/03-lstm-gru-seq2seq"


def _gru_reference(x, h, W_ih, W_hh, b_ih, b_hh):
    from dlcourse.rnn import gru_cell

    return gru_cell(x, h, W_ih, W_hh, b_ih, b_hh)


def _gru_cases() -> list[tuple[str, tuple]]:
    g = torch.Generator().manual_seed(0)

    def make(B: int, D: int, H: int, scale: float = 1.0) -> tuple:
        shapes = [(B, D), (B, H), (3 * H, D), (3 * H, H), (3 * H,), (3 * H,)]
        return tuple(scale * torch.randn(*s, generator=g) for s in shapes)

    return [("B=4, D=5, H=7", make(4, 5, 7)), ("a batch of one", make(1, 3, 2)),
            ("H=1", make(3, 4, 1)), ("large values", make(2, 3, 4, scale=5.0))]  # fmt: skip


@exercise("ex-gated-gru", CHAPTER, solution=lambda: _gru_reference)
def _gru(answer: Any) -> str:
    """``gru_cell(x, h, W_ih, W_hh, b_ih, b_hh) -> h_t`` in ``nn.GRUCell``'s convention."""
    from dlcourse.rnn import gru_cell

    def one(args: tuple) -> None:
        got = require_tensor(call_answer(answer, *args), "gru_cell(...)")
        ref = _gru_reference(*args)
        if got.shape != ref.shape:
            raise WrongAnswerError(f"expected shape {tuple(ref.shape)}, got {tuple(got.shape)}")
        if torch.allclose(got, gru_cell(*args, convention="reset_before"), atol=1e-5):
            raise WrongAnswerError(
                "this is the textbook GRU: PyTorch keeps the OLD state with weight z, "
                "h_t = (1 - z) * n + z * h, and applies r after the matmul, r * (h W_hn^T + b_hn)"
            )
        check_close(got, ref, rtol=1e-4, atol=1e-5, name="h_t", reveal=False)

    return over_cases(_gru_cases(), one)


def _param_count_reference(
    kind: str, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False
) -> int:
    from dlcourse.rnn import rnn_param_count

    return rnn_param_count(kind, input_size, hidden_size, num_layers, bidirectional)


@exercise("ex-gated-params", CHAPTER, solution=lambda: _param_count_reference)
def _params(answer: Any) -> str:
    """``param_count(kind, input_size, hidden_size, num_layers, bidirectional) -> int``."""
    cases = [("nn.LSTM(10, 20)", ("lstm", 10, 20, 1, False)),
             ("nn.GRU(10, 20)", ("gru", 10, 20, 1, False)),
             ("nn.RNN(10, 20)", ("rnn", 10, 20, 1, False)),
             ("nn.GRU(3, 17, num_layers=2)", ("gru", 3, 17, 2, False)),
             ("nn.LSTM(6, 4, bidirectional=True)", ("lstm", 6, 4, 1, True)),
             ("nn.LSTM(5, 8, num_layers=3, bidirectional=True)", ("lstm", 5, 8, 3, True))]  # fmt: skip

    def one(args: tuple) -> None:
        got = call_answer(answer, *args)
        if not isinstance(got, int) or isinstance(got, bool):
            raise WrongAnswerError(f"param_count should return an int, got {type(got).__name__}")
        check_equal(got, _param_count_reference(*args), name="the count", reveal=False)

    return over_cases(cases, one)


def _cell_path_reference(f: float, steps: int) -> float:
    return f**steps


@exercise("ex-gated-forget-path", CHAPTER, solution=lambda: _cell_path_reference)
def _forget_path(answer: Any) -> str:
    """``cell_path_grad(f, steps) -> float``: d c_steps / d c_0 with fixed gates f and i = 0."""
    cases = [("f=0.9, 10 steps", (0.9, 10)), ("f=0.5, 3 steps", (0.5, 3)),
             ("f=1, 50 steps", (1.0, 50)), ("f=0.99, 200 steps", (0.99, 200)),
             ("one step", (0.3, 1))]  # fmt: skip

    def one(args: tuple) -> None:
        got = call_answer(answer, *args)
        if torch.is_tensor(got):
            got = got.detach().cpu().item()
        if not isinstance(got, int | float):
            raise WrongAnswerError(f"cell_path_grad should return a number, got {type(got)}")
        f, steps = args
        if steps > 1 and abs(got - f) < 1e-9 and abs(f**steps - f) > 1e-6:
            raise WrongAnswerError(
                "that is the derivative over one step; the chain rule multiplies one factor "
                "f per step"
            )
        check_close(got, _cell_path_reference(*args), rtol=1e-4, atol=1e-7, reveal=False,
                    name="d c_T / d c_0")  # fmt: skip

    return over_cases(cases, one)


def _last_valid_reference(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    from dlcourse.rnn import last_valid_output

    return last_valid_output(outputs, lengths)


@exercise("ex-gated-last-valid", CHAPTER, solution=lambda: _last_valid_reference)
def _last_valid(answer: Any) -> str:
    """``last_valid_output(outputs (B, T, H), lengths (B,)) -> (B, H)``."""
    g = torch.Generator().manual_seed(1)

    def case(lengths: list[int], T: int, H: int) -> tuple[torch.Tensor, torch.Tensor]:
        lengths_t = torch.tensor(lengths)
        # the padded steps hold values too, as when nn.LSTM runs over a padded batch
        return torch.randn(len(lengths), T, H, generator=g), lengths_t

    cases = [("lengths [5, 2, 4]", case([5, 2, 4], 5, 3)), ("no padding", case([6, 6], 6, 2)),
             ("a batch of one", case([3], 7, 4)), ("length 1", case([1, 4], 4, 5))]  # fmt: skip

    def one(args: tuple[torch.Tensor, torch.Tensor]) -> None:
        outputs, lengths = args
        got = require_tensor(call_answer(answer, outputs, lengths), "last_valid_output(...)")
        ref = _last_valid_reference(outputs, lengths)
        if got.shape != ref.shape:
            raise WrongAnswerError(f"expected shape {tuple(ref.shape)}, got {tuple(got.shape)}")
        if not torch.equal(lengths, torch.full_like(lengths, outputs.shape[1])):
            if torch.allclose(got, outputs[:, -1]):
                raise WrongAnswerError("this is out[:, -1], which reads padding for short rows")
            index = lengths.clamp(max=outputs.shape[1] - 1)
            if torch.allclose(got, outputs[torch.arange(len(lengths)), index]):
                raise WrongAnswerError("off by one: sequence b ends at index lengths[b] - 1")
        check_close(got, ref, rtol=1e-6, atol=1e-7, name="the last valid outputs", reveal=False)

    return over_cases(cases, one)
