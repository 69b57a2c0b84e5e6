"""Exercise checks for chapter 2.7, Normalization: BatchNorm and LayerNorm."""

from __future__ import annotations

from typing import Any

import torch

from .core import WrongAnswerError, call_answer, check_close, check_equal, exercise, over_cases

CHAPTER = "02-training/07-normalization"

# the 4 x 2 batch of the chapter, then seeded batches, a batch of two and large values
_GIVEN = torch.tensor([[1.0, 10.0], [2.0, 30.0], [3.0, 20.0], [6.0, 40.0]])


def _batches() -> list[tuple[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(27)
    return [
        ("the 4 x 2 batch of the statement", _GIVEN.clone()),
        ("a random 16 x 2 batch", 2 * torch.randn(16, 2, generator=g) + 1),
        ("a batch of two", torch.randn(2, 2, generator=g)),
        ("large values", 1e3 * torch.randn(8, 2, generator=g) + 5e3),
    ]


def _bn_train_step(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from dlcourse.nn import batch_norm

    c = x.shape[1]
    y, running_mean, _ = batch_norm(x, torch.ones(c), torch.zeros(c), torch.zeros(c), torch.ones(c))
    return y, running_mean


def _pair(value: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise WrongAnswerError(
            f"{what} should return a pair of tensors, got {type(value).__name__}"
        )
    return value[0], value[1]


@exercise("ex-norm-bn-by-hand", CHAPTER, solution=lambda: _bn_train_step)
def _bn_by_hand(fn: Any) -> str:
    """``fn(x)`` returns ``(y, running_mean)`` of a fresh ``nn.BatchNorm1d`` in training mode."""

    def check_one(x: torch.Tensor) -> None:
        y, running_mean = _pair(call_answer(fn, x), "bn_train_step(x)")
        bn = torch.nn.BatchNorm1d(x.shape[1])
        expected = bn(x).detach()
        check_close(y, expected, rtol=1e-4, atol=1e-4, name="y", reveal=False)
        if torch.is_tensor(running_mean) and torch.allclose(running_mean, 0.9 * x.mean(0)):
            raise WrongAnswerError(
                "running_mean is 0.9 * batch mean: PyTorch's momentum=0.1 weights the NEW "
                "statistic, (1 - 0.1) * 0 + 0.1 * mean"
            )
        check_close(running_mean, bn.running_mean, rtol=1e-4, atol=1e-5, name="running_mean",
                    reveal=False)  # fmt: skip

    return f"matches nn.BatchNorm1d: {over_cases(_batches(), check_one)}"


def _undo_params(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = x.mean(0)
    return torch.sqrt(x.var(0, correction=0) + 1e-5), mean


@exercise("ex-norm-undo", CHAPTER, solution=lambda: _undo_params)
def _undo(fn: Any) -> str:
    """``fn(x)`` returns ``(gamma, beta)`` with which BatchNorm1d (training mode) returns ``x``."""

    def check_one(x: torch.Tensor) -> None:
        gamma, beta = _pair(call_answer(fn, x), "undo_params(x)")
        for name, t in (("gamma", gamma), ("beta", beta)):
            if not torch.is_tensor(t) or t.shape != (x.shape[1],):
                raise WrongAnswerError(f"{name} should be a tensor of shape ({x.shape[1]},)")
        bn = torch.nn.BatchNorm1d(x.shape[1])
        with torch.no_grad():
            bn.weight.copy_(gamma)
            bn.bias.copy_(beta)
            out = bn(x)
        scale = float(x.abs().max())
        check_close(out, x, rtol=1e-4, atol=1e-5 * max(1.0, scale), name="bn(x)", reveal=False)

    return f"bn(x) == x: {over_cases(_batches(), check_one)}"


def _ln_1234() -> torch.Tensor:
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    return (x - x.mean()) / x.std(correction=0)


@exercise("ex-norm-layernorm", CHAPTER, solution=_ln_1234)
def _layernorm(answer: Any) -> None:
    """LN([1, 2, 3, 4]) with gamma = 1, beta = 0, eps = 0."""
    if not torch.is_tensor(answer) or answer.shape != (4,):
        raise WrongAnswerError("answer should be a tensor of shape (4,)")
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    if torch.allclose(answer.double(), ((x - x.mean()) / x.std()).double(), atol=1e-3):
        raise WrongAnswerError(
            "you divided by the unbiased std (torch.std's default): LayerNorm uses the biased "
            "variance, 1/d times the sum of squares"
        )
    from dlcourse.nn import layer_norm

    check_close(answer, layer_norm(x, eps=0.0), rtol=0, atol=1e-3, name="answer", reveal=False)


@exercise("ex-norm-buffers", CHAPTER, solution=lambda: (128, 128, 1))
def _buffers(answer: Any) -> None:
    """(parameter count, running-statistic elements, num_batches_tracked elements) of
    BatchNorm2d(64)."""
    if not isinstance(answer, tuple) or len(answer) != 3:
        raise WrongAnswerError("answer should be a tuple of three ints")
    if answer[0] == 64:
        raise WrongAnswerError("there are two learnable vectors per channel, gamma and beta")
    bn = torch.nn.BatchNorm2d(64)
    expected = (
        sum(p.numel() for p in bn.parameters()),
        bn.running_mean.numel() + bn.running_var.numel(),
        bn.num_batches_tracked.numel(),
    )
    check_equal(tuple(answer), expected, name="answer", reveal=False)
