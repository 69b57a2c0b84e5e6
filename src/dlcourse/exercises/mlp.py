"""Exercise checks for chapter 1.4, Multilayer perceptrons and activation functions.

The activations are graded against ``torch.nn.functional``, the collapse of two linear layers
against the two layers themselves, and the counting answers against ``dlcourse.nn``.
"""

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

CHAPTER = "01-foundations/04-mlp"


# ---------------------------------------------------------------------------------------------
# 1. The activation zoo

ACTIVATION_NAMES = ("elu", "selu", "silu", "mish", "gelu")


def _torch_activation(name: str, x: torch.Tensor) -> torch.Tensor:
    functional = torch.nn.functional
    return {
        "elu": functional.elu,
        "selu": functional.selu,
        "silu": functional.silu,
        "mish": functional.mish,
        "gelu": functional.gelu,
    }[name](x)


def _activations_solution() -> dict[str, Any]:
    from dlcourse.nn import elu, gelu, mish, selu, swish

    return {"elu": elu, "selu": selu, "silu": swish, "mish": mish, "gelu": gelu}


def _activation_inputs() -> list[tuple[str, torch.Tensor]]:
    return [
        ("float32 grid linspace(-5, 5, 101)", torch.linspace(-5, 5, 101)),
        ("float64 grid", torch.linspace(-5, 5, 101, dtype=torch.float64)),
        ("large inputs (|x| up to 50)", torch.tensor([-50.0, -20.0, -8.0, 8.0, 20.0, 50.0])),
        ("a (4, 3) batch", torch.linspace(-3, 3, 12).reshape(4, 3)),
    ]


_HINTS = {
    "selu": " (use the full constants lambda = 1.0507009873554805, alpha = 1.6732632423543772; "
    "four decimals are not enough)",
    "gelu": " (F.gelu's default is the exact x * Phi(x) with Phi(x) = (1 + erf(x / sqrt(2))) / 2; "
    "the tanh formula is only an approximation)",
    "silu": " (SiLU is swish with beta = 1: x * sigmoid(x))",
    "mish": " (mish(x) = x * tanh(softplus(x)), softplus(x) = log(1 + exp(x)))",
    "elu": " (x for x > 0, alpha * (exp(x) - 1) otherwise, with alpha = 1)",
}


@exercise("ex-mlp-activations", CHAPTER, solution=_activations_solution)
def _activations(answer: Any) -> str:
    """``answer`` maps "elu", "selu", "silu", "mish", "gelu" to elementwise functions."""
    if not isinstance(answer, dict):
        raise WrongAnswerError(f"activations should be a dict, got {type(answer).__name__}")
    missing = [name for name in ACTIVATION_NAMES if name not in answer]
    if missing:
        raise WrongAnswerError(f"activations is missing the key(s) {missing}")
    notes = []
    for name in ACTIVATION_NAMES:

        def check_one(x: torch.Tensor, name: str = name) -> None:
            got = require_tensor(call_answer(answer[name], x), f"{name}(x)")
            expected = _torch_activation(name, x)
            tol = 1e-5 if x.dtype == torch.float32 else 1e-10
            try:
                check_close(got, expected, rtol=tol, atol=tol, name=f"{name}(x)", reveal=False,
                            dtype=x.dtype)  # fmt: skip
            except WrongAnswerError as error:
                raise WrongAnswerError(f"{error}{_HINTS[name]}") from None

        notes.append(over_cases(_activation_inputs(), check_one))
    return f"all {len(ACTIVATION_NAMES)} match torch.nn.functional on {notes[0]}"


# ---------------------------------------------------------------------------------------------
# 2. Two linear layers are one


def _collapse_solution():
    def collapse(lin1, lin2):
        W1, b1, W2, b2 = lin1.weight, lin1.bias, lin2.weight, lin2.bias
        return W2 @ W1, W2 @ b1 + b2

    return collapse


# (in, hidden, out)
_COLLAPSE_CASES = [
    ("Linear(3, 5) then Linear(5, 2)", (3, 5, 2)),
    ("square layers Linear(4, 4) twice", (4, 4, 4)),
    ("Linear(1, 3) then Linear(3, 1)", (1, 3, 1)),
    ("a wide hidden layer, Linear(2, 64) then Linear(64, 3)", (2, 64, 3)),
]


@exercise("ex-mlp-collapse", CHAPTER, solution=_collapse_solution)
def _collapse(fn: Any) -> str:
    """``fn(lin1, lin2) -> (W, b)`` with ``x @ W.T + b == lin2(lin1(x))``."""

    def check_one(dims: tuple[int, int, int]) -> None:
        n_in, n_hidden, n_out = dims
        g = torch.Generator().manual_seed(sum(d * 10**i for i, d in enumerate(dims)))
        lin1 = torch.nn.Linear(n_in, n_hidden, dtype=torch.float64)
        lin2 = torch.nn.Linear(n_hidden, n_out, dtype=torch.float64)
        with torch.no_grad():
            for p in (*lin1.parameters(), *lin2.parameters()):
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
        x = torch.randn(7, n_in, generator=g, dtype=torch.float64)
        with torch.no_grad():
            expected = lin2(lin1(x))
            W_ref = lin2.weight @ lin1.weight
            out = call_answer(fn, lin1, lin2)
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise WrongAnswerError("return a pair (W, b)")
        W = require_tensor(out[0], "W").double()
        b = require_tensor(out[1], "b").double()
        if W.shape != (n_out, n_in):
            hint = ""
            if W.shape == (n_in, n_out):
                hint = " (transposed: PyTorch stores weights as (out_features, in_features))"
            raise WrongAnswerError(
                f"W should have shape (out, in) = {(n_out, n_in)}, got {tuple(W.shape)}{hint}"
            )
        if b.shape != (n_out,):
            raise WrongAnswerError(f"b should have shape ({n_out},), got {tuple(b.shape)}")
        if torch.allclose(W, W_ref, rtol=1e-9, atol=1e-12):
            b1, b2 = lin1.bias.detach(), lin2.bias.detach()
            if torch.allclose(b, b2) or (b1.shape == b2.shape and torch.allclose(b, b1 + b2)):
                raise WrongAnswerError(
                    "W is right but b is not: the first bias also passes through W2, "
                    "so b = W2 @ b1 + b2"
                )
            check_close(x @ W.T + b, expected, rtol=1e-9, atol=1e-12, name="x @ W.T + b",
                        reveal=False)  # fmt: skip
            return
        if n_in == n_out == n_hidden and torch.allclose(W, lin1.weight @ lin2.weight):
            raise WrongAnswerError("W is W1 @ W2; lin1 acts first, so W = W2 @ W1")
        check_close(W, W_ref, rtol=1e-9, atol=1e-12, name="W", reveal=False)

    return over_cases(_COLLAPSE_CASES, check_one)


# ---------------------------------------------------------------------------------------------
# 3. The best line for XOR


def best_linear_xor_accuracy(steps: int = 41) -> float:
    """Best accuracy of 1[w1 x1 + w2 x2 + b > 0] on XOR over a grid on [-2, 2]^3."""
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 1, 0])
    axis = torch.linspace(-2, 2, steps)
    w1, w2, b = (t.reshape(-1) for t in torch.meshgrid(axis, axis, axis, indexing="ij"))
    predictions = (x[:, :1] * w1 + x[:, 1:] * w2 + b > 0).long()  # (4, steps**3)
    return (predictions == y[:, None]).float().mean(0).max().item()


@exercise("ex-mlp-xor-grid", CHAPTER, solution=best_linear_xor_accuracy)
def _xor_grid(best: Any) -> str:
    """``best``: the best accuracy of a linear threshold unit on the four XOR points."""
    if not isinstance(best, int | float) and not torch.is_tensor(best):
        raise WrongAnswerError(f"best should be a number, got {type(best).__name__}")
    value = float(best)
    if value > 1.0 or value < 0.0:
        raise WrongAnswerError(f"best is an accuracy, a number in [0, 1]; got {value}")
    if value == 1.0:
        raise WrongAnswerError(
            "no line classifies all four XOR points (that is the point of the exercise): check "
            "that each (w1, w2, b) is scored on all four points with the rule w.x + b > 0"
        )
    if value <= 0.5:
        raise WrongAnswerError(
            "a line can do better than half: the best ones get 3 of the 4 points right; is "
            "the accuracy maximised over the whole grid?"
        )
    check_close(value, best_linear_xor_accuracy(), rtol=0.0, atol=1e-9, name="best",
                reveal=False)  # fmt: skip
    return "no line separates XOR"


# ---------------------------------------------------------------------------------------------
# 4. Pieces of the tent map


def _pieces_solution() -> tuple[int, int]:
    from dlcourse.nn import count_linear_pieces, tent_map_net

    pieces = count_linear_pieces(tent_map_net(6))
    return pieces, pieces - 1


@exercise("ex-mlp-pieces", CHAPTER, solution=_pieces_solution)
def _pieces(answer: Any) -> str:
    """``answer = (pieces of tent_map_net(6) on [0, 1], minimal one-hidden-layer width)``."""
    if not isinstance(answer, tuple | list) or len(answer) != 2:
        raise WrongAnswerError("answer should be a pair (pieces, width)")
    pieces, width = answer
    if not all(isinstance(v, int) for v in answer):
        raise WrongAnswerError("pieces and width should both be ints")
    if pieces != 64:
        hint = ""
        if pieces in (6, 12, 13):
            hint = ": the pieces double with each layer, they do not add up"
        elif pieces in (32, 128):
            hint = ": depth 1 has 2 pieces, depth 2 has 4; count the layers again"
        raise WrongAnswerError(f"pieces is wrong{hint}")
    if width == 64:
        raise WrongAnswerError(
            "width is off by one: m ReLU units on a line give at most m kinks, i.e. m + 1 pieces"
        )
    check_equal((pieces, width), _pieces_solution(), name="(pieces, width)", reveal=False)
    return "depth buys pieces exponentially here"
