"""Exercise checks for chapter 1.5, Backpropagation by hand.

Every reference gradient here comes from ``torch.autograd`` on the same expression, so a
hand-derived answer is graded against the machine, never against a copy of itself.
"""

from __future__ import annotations

from typing import Any

import torch

from .core import (
    WrongAnswerError,
    call_answer,
    check_close,
    check_dtype,
    exercise,
    over_cases,
    require_tensor,
)

CHAPTER = "01-foundations/05-backpropagation"


# ---------------------------------------------------------------------------------------------
# 1. The scalar graph L = (w1 x1 + w2 x2 + b)^2


SCALAR_POINT = {"w1": 1.0, "x1": 2.0, "w2": -1.0, "x2": 3.0, "b": 0.5}


def _scalar_graph_grads() -> torch.Tensor:
    """(dL/dw1, dL/dw2, dL/db) at ``SCALAR_POINT``, by autograd."""
    t = {
        k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in SCALAR_POINT.items()
    }
    loss = (t["w1"] * t["x1"] + t["w2"] * t["x2"] + t["b"]) ** 2
    loss.backward()
    return torch.stack([t["w1"].grad, t["w2"].grad, t["b"].grad])


def _scalar_graph_solution() -> tuple[float, float, float]:
    p = SCALAR_POINT
    z = p["w1"] * p["x1"] + p["w2"] * p["x2"] + p["b"]
    return (2 * z * p["x1"], 2 * z * p["x2"], 2 * z)


@exercise("ex-backprop-scalar-graph", CHAPTER, solution=_scalar_graph_solution)
def _scalar_graph(answer: Any) -> str:
    """``answer = (dL/dw1, dL/dw2, dL/db)`` at w1=1, x1=2, w2=-1, x2=3, b=0.5."""
    if not isinstance(answer, tuple | list | torch.Tensor) or len(answer) != 3:
        raise WrongAnswerError("answer should hold three numbers: (dL/dw1, dL/dw2, dL/db)")
    got = torch.as_tensor([float(a) for a in answer], dtype=torch.float64)
    expected = _scalar_graph_grads()
    if torch.allclose(got, expected, rtol=1e-6, atol=1e-9):
        return "matches autograd"
    if torch.allclose(got, expected / 2, rtol=1e-6):
        raise WrongAnswerError(
            "every entry is half the right value: the derivative of z**2 is 2z, not z"
        )
    if torch.allclose(got.abs(), expected.abs(), rtol=1e-6):
        raise WrongAnswerError(
            "the magnitudes are right but a sign is wrong: recompute z = w1*x1 + w2*x2 + b "
            "(it is negative here) and keep its sign in dL/dz = 2z"
        )
    check_close(got, expected, rtol=1e-6, atol=1e-9, name="(dL/dw1, dL/dw2, dL/db)", reveal=False)
    raise WrongAnswerError("(dL/dw1, dL/dw2, dL/db) is not close enough to autograd's values")


# ---------------------------------------------------------------------------------------------
# 2. The backward pass of a two-layer network


def _two_layer_case(
    batch: int,
    seed: int,
    relu_zero: bool = False,
    logit_scale: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, ...]:
    """A batch and parameters for a 5-4-3 network; optionally some Z1 exactly 0 or huge logits."""
    g = torch.Generator().manual_seed(seed)
    dims = {"D": 5, "H": 4, "C": 3}
    X = torch.randn(batch, dims["D"], generator=g, dtype=dtype)
    y = torch.randint(0, dims["C"], (batch,), generator=g)
    Y = torch.nn.functional.one_hot(y, dims["C"]).to(dtype)
    W1 = torch.randn(dims["H"], dims["D"], generator=g, dtype=dtype)
    b1 = 0.1 * torch.randn(dims["H"], generator=g, dtype=dtype)
    W2 = logit_scale * torch.randn(dims["C"], dims["H"], generator=g, dtype=dtype)
    b2 = 0.1 * torch.randn(dims["C"], generator=g, dtype=dtype)
    if relu_zero:  # a zero input row and zero biases make those pre-activations exactly 0
        X[0] = 0.0
        b1[:2] = 0.0
    return X, Y, W1, b1, W2, b2


def _two_layer_autograd(
    X: torch.Tensor, Y: torch.Tensor, *params: torch.Tensor, relu_grad_at_zero: float = 0.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss and gradients by autograd, in float64 whatever the dtype of the inputs."""
    X, Y = X.double(), Y.double()
    W1, b1, W2, b2 = (p.to(torch.float64, copy=True).requires_grad_() for p in params)
    Z1 = X @ W1.T + b1
    if relu_grad_at_zero == 0.0:
        A1 = torch.relu(Z1)
    else:  # the wrong convention ReLU'(0) = 1, used only to recognise that mistake
        A1 = torch.where(Z1 >= 0, Z1, torch.zeros_like(Z1))
    Z2 = A1 @ W2.T + b2
    loss = -(Y * torch.log_softmax(Z2, dim=1)).sum(dim=1).mean()
    loss.backward()
    return loss.detach(), {"W1": W1.grad, "b1": b1.grad, "W2": W2.grad, "b2": b2.grad}


def _two_layer_solution():
    from dlcourse.autograd import two_layer_forward_backward

    return two_layer_forward_backward


# No empty batch: the loss is a batch mean, undefined (NaN) for B = 0.
_TWO_LAYER_CASES = [
    ("a batch of 8", {"batch": 8, "seed": 0}),
    ("a batch of one", {"batch": 1, "seed": 1}),
    ("a batch of 32", {"batch": 32, "seed": 2}),
    ("ReLU inputs at exactly 0", {"batch": 6, "seed": 3, "relu_zero": True}),
    ("large logits (around 1e3)", {"batch": 8, "seed": 4, "logit_scale": 500.0}),
    ("float32 inputs", {"batch": 8, "seed": 5, "dtype": torch.float32}),
]


@exercise("ex-backprop-two-layer", CHAPTER, solution=_two_layer_solution)
def _two_layer(fn: Any) -> str:
    """``fn(X, Y_onehot, W1, b1, W2, b2) -> (loss, {"W1", "b1", "W2", "b2": gradients})``."""
    from dlcourse.autograd import rel_error

    def check_one(case: dict[str, Any]) -> None:
        inputs = _two_layer_case(**case)
        batch, dtype = case["batch"], inputs[0].dtype
        tol = 1e-8 if dtype == torch.float64 else 1e-5  # relative to the largest entry
        out = call_answer(fn, *inputs)
        if not isinstance(out, tuple | list) or len(out) != 2 or not isinstance(out[1], dict):
            raise WrongAnswerError("return a pair (loss, grads) where grads is a dict")
        loss, grads = out
        ref_loss, ref_grads = _two_layer_autograd(*inputs)
        missing = sorted(set(ref_grads) - set(grads))
        if missing:
            raise WrongAnswerError(f"grads is missing the key(s) {missing}")
        check_close(loss, ref_loss, rtol=tol, atol=1e-12, name="loss", reveal=False)
        for name, expected in ref_grads.items():
            got = require_tensor(grads[name], f"grads['{name}']")
            if got.shape == expected.shape:
                check_dtype(got, dtype, f"grads['{name}']")
                if rel_error(got.double(), expected) < tol:
                    continue
            hint = ""
            if got.shape == expected.shape and batch > 1:
                if rel_error(got.double(), batch * expected) < tol:
                    hint = (
                        " (it is B times too large: the loss is a batch mean, so G2 = (P - Y) / B)"
                    )
                elif (
                    case.get("relu_zero")
                    and rel_error(
                        got.double(), _two_layer_autograd(*inputs, relu_grad_at_zero=1.0)[1][name]
                    )
                    < tol
                ):
                    hint = (" (wrong only where Z1 is exactly 0: use the mask Z1 > 0, i.e. "
                            "ReLU'(0) = 0 as in PyTorch)")  # fmt: skip
            try:
                check_close(got, expected, rtol=tol, atol=1e-12, name=f"grads['{name}']",
                            reveal=False)  # fmt: skip
            except WrongAnswerError as error:
                raise WrongAnswerError(f"{error}{hint}") from None
            raise WrongAnswerError(f"grads['{name}'] relative error too large")

    return over_cases(_TWO_LAYER_CASES, check_one)


# ---------------------------------------------------------------------------------------------
# 3. The vector-Jacobian product of a linear layer


def _linear_backward_solution():
    def linear_backward(x, W, grad_out):
        return grad_out @ W, grad_out.T @ x, grad_out.sum(dim=0)

    return linear_backward


# (batch, in, out, dtype)
_LINEAR_CASES = [
    ("a batch of 4 and W of shape (5, 3)", (4, 3, 5, torch.float64)),
    ("a batch of one", (1, 6, 2, torch.float64)),
    ("a square W of shape (5, 5)", (7, 5, 5, torch.float64)),
    ("an empty batch (B = 0)", (0, 3, 4, torch.float64)),
    ("float32 inputs", (4, 3, 5, torch.float32)),
]


@exercise("ex-backprop-linear-vjp", CHAPTER, solution=_linear_backward_solution)
def _linear_vjp(fn: Any) -> str:
    """``fn(x: (B, in), W: (out, in), grad_out: (B, out)) -> (grad_x, grad_W, grad_b)``."""

    def check_one(case: tuple[int, int, int, torch.dtype]) -> None:
        batch, n_in, n_out, dtype = case
        g = torch.Generator().manual_seed(100 + batch + 10 * n_in + 100 * n_out)
        x = torch.randn(batch, n_in, generator=g, dtype=dtype)
        W = torch.randn(n_out, n_in, generator=g, dtype=dtype)
        b = torch.randn(n_out, generator=g, dtype=dtype)
        grad_out = torch.randn(batch, n_out, generator=g, dtype=dtype)
        out = call_answer(fn, x, W, grad_out)
        if not isinstance(out, tuple | list) or len(out) != 3:
            raise WrongAnswerError("return three tensors: (grad_x, grad_W, grad_b)")
        grad_x, grad_W, grad_b = out
        tol, atol = (1e-9, 1e-12) if dtype == torch.float64 else (1e-5, 1e-5)
        # the dot-product test first: <g, J v> = <J^T g, v>, with J v = v W^T for this layer
        v = torch.randn(batch, n_in, generator=g, dtype=torch.float64)
        if torch.is_tensor(grad_x) and grad_x.shape == v.shape:
            lhs = (grad_out.double() * (v @ W.double().T)).sum()
            rhs = (grad_x.detach().double() * v).sum()
            if not torch.isclose(lhs, rhs, rtol=tol, atol=atol):
                gap = ((lhs - rhs).abs() / lhs.abs().clamp_min(1e-12)).item()
                raise WrongAnswerError(
                    f"grad_x fails the dot-product test <g, J v> = <J^T g, v> for x of shape "
                    f"{tuple(x.shape)} and W of shape {tuple(W.shape)}: the two sides differ by "
                    f"{gap:.2%} of <g, J v> (a random v; J v = v @ W.T)"
                )
        xr, Wr, br = (t.to(torch.float64, copy=True).requires_grad_() for t in (x, W, b))
        (xr @ Wr.T + br).backward(grad_out.double())
        for name, got, expected in (("grad_x", grad_x, xr.grad), ("grad_W", grad_W, Wr.grad),
                                    ("grad_b", grad_b, br.grad)):  # fmt: skip
            check_close(got, expected, rtol=tol, atol=atol, name=name, reveal=False, dtype=dtype)

    return f"dot-product test and autograd, {over_cases(_LINEAR_CASES, check_one)}"


# ---------------------------------------------------------------------------------------------
# 4. The gradient of softmax cross-entropy with respect to the logits


def _logit_grad() -> torch.Tensor:
    z = torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64, requires_grad=True)
    torch.nn.functional.cross_entropy(z.unsqueeze(0), torch.tensor([0])).backward()
    return z.grad


@exercise("ex-backprop-logit-grad", CHAPTER, solution=lambda: [-0.3348, 0.2447, 0.0900])
def _logit_gradient(answer: Any) -> str:
    """``answer`` = dL/dz for logits [2, 1, 0] and label 0 (three numbers)."""
    got = torch.as_tensor(answer.detach() if torch.is_tensor(answer) else answer).double()
    expected = _logit_grad()
    if got.shape != (3,):
        raise WrongAnswerError(
            f"answer should hold 3 numbers (one per logit), got shape {tuple(got.shape)}"
        )
    if torch.allclose(got, expected, rtol=0.0, atol=1e-4):
        return "prediction minus label"
    probs = torch.softmax(torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64), dim=0)
    if torch.allclose(got, probs, atol=1e-4):
        raise WrongAnswerError("these are the probabilities; subtract the one-hot label")
    if torch.allclose(got, -expected, atol=1e-4):
        raise WrongAnswerError("the sign is flipped: the gradient is prediction minus label")
    check_close(got, expected, rtol=0.0, atol=1e-4, name="dL/dz", reveal=False)
    raise WrongAnswerError("dL/dz is not within 1e-4 of autograd's value")
