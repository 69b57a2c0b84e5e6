"""Exercise checks for chapter 1.1, Tensors, broadcasting and linear algebra.

The references are computed here by PyTorch itself (broadcasting by evaluating the
expressions, products with ``@``, layouts with ``permute``, norms with ``torch.linalg`` and the
covariance with ``torch.cov``), never typed in by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .core import (
    WrongAnswerError,
    call_answer,
    check_close,
    check_dtype,
    check_equal,
    exercise,
    over_cases,
    require_tensor,
)

CHAPTER = "01-foundations/01-tensors"


# ---------------------------------------------------------------------------------------------
# 1. Predict the shape of a broadcast expression (or the error it raises)

SHAPE_EXPRESSIONS: tuple[tuple[str, Callable[[], torch.Tensor]], ...] = (
    ("torch.ones(5, 1) + torch.ones(3)", lambda: torch.ones(5, 1) + torch.ones(3)),
    ("torch.ones(2, 1, 4) * torch.ones(3, 1)", lambda: torch.ones(2, 1, 4) * torch.ones(3, 1)),
    ("torch.ones(8, 1, 6, 1) - torch.ones(7, 1, 5)",
     lambda: torch.ones(8, 1, 6, 1) - torch.ones(7, 1, 5)),
    ("torch.ones(4, 3) + torch.ones(4)", lambda: torch.ones(4, 3) + torch.ones(4)),
)  # fmt: skip


def broadcast_outcome(expression: Callable[[], torch.Tensor]) -> tuple[int, ...] | str:
    """Run ``expression()``: the shape of its result, or the name of the exception it raises."""
    try:
        return tuple(expression().shape)
    except Exception as error:  # the point is to report which error broadcasting raises
        return type(error).__name__


def _predicted_shapes() -> list[tuple[int, ...] | str]:
    return [broadcast_outcome(fn) for _, fn in SHAPE_EXPRESSIONS]


def _as_outcome(item: Any) -> tuple[int, ...] | str:
    """A student's item as a shape tuple or an exception name (a class counts as its name)."""
    if isinstance(item, type) and issubclass(item, BaseException):
        return item.__name__
    if isinstance(item, str):
        return item.strip()
    if isinstance(item, int) and not isinstance(item, bool):
        return (item,)
    if isinstance(item, tuple | list | torch.Size) and all(
        isinstance(d, int) and not isinstance(d, bool) for d in item
    ):
        return tuple(item)
    raise WrongAnswerError(
        "each item should be a shape such as (2, 3) or the name of an exception such as "
        f"'ValueError', got {item!r}"
    )


@exercise("ex-tensors-predict-shapes", CHAPTER, solution=_predicted_shapes)
def _predict_shapes(answer: Any) -> str:
    """``answer``: one shape tuple (or exception name) per expression of ``SHAPE_EXPRESSIONS``."""
    if not isinstance(answer, list | tuple) or len(answer) != len(SHAPE_EXPRESSIONS):
        raise WrongAnswerError(
            f"answer should be a list of {len(SHAPE_EXPRESSIONS)} items, one per expression"
        )
    got = [_as_outcome(item) for item in answer]
    for k, ((text, _), mine, right) in enumerate(
        zip(SHAPE_EXPRESSIONS, got, _predicted_shapes(), strict=True), start=1
    ):
        if mine == right:
            continue
        if isinstance(right, str) and not isinstance(mine, str):
            raise WrongAnswerError(
                f"expression {k} ({text}): no shape comes out of it. Align the shapes on the "
                "right: every pair of sizes must be equal or contain a 1"
            )
        if isinstance(mine, str) and not isinstance(right, str):
            raise WrongAnswerError(
                f"expression {k} ({text}) does broadcast: pad the shorter shape with 1s on the "
                "left, then each pair of sizes is equal or contains a 1"
            )
        if isinstance(mine, str):
            raise WrongAnswerError(
                f"expression {k} ({text}): the error is right but not its class (run it)"
            )
        if len(mine) != len(right):
            raise WrongAnswerError(
                f"expression {k} ({text}): the result has as many dimensions as the longer "
                f"operand, {len(right)}, got {len(mine)}"
            )
        if sorted(mine) == sorted(right):
            raise WrongAnswerError(
                f"expression {k} ({text}): the sizes are right but not their order; "
                "dimensions are matched from the right, and each keeps its position"
            )
    check_equal(got, _predicted_shapes(), name="the shapes", reveal=False)
    return f"{len(got)} expressions"


# ---------------------------------------------------------------------------------------------
# 2. The matrix-vector product as a loop


def _matvec_reference(W: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """y_i = sum_j W_ij x_j for ``W: (m, n)``, ``x: (n,)``; the student-facing definition."""
    y = torch.zeros(W.shape[0], dtype=W.dtype)
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            y[i] = y[i] + W[i, j] * x[j]
    return y


def _matvec_cases() -> list[tuple[str, tuple[torch.Tensor, torch.Tensor]]]:
    g = torch.Generator().manual_seed(11)
    return [
        ("the 2x2 example", (torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([5.0, 6.0]))),
        ("a random (5, 7) matrix", (torch.randn(5, 7, generator=g), torch.randn(7, generator=g))),
        ("one row, W (1, 4)", (torch.randn(1, 4, generator=g), torch.randn(4, generator=g))),
        ("one column, W (3, 1)", (torch.randn(3, 1, generator=g), torch.randn(1, generator=g))),
        ("float64, W (4, 3)", (torch.randn(4, 3, generator=g, dtype=torch.float64),
                               torch.randn(3, generator=g, dtype=torch.float64))),
    ]  # fmt: skip


@exercise("ex-tensors-matvec-loop", CHAPTER, solution=lambda: _matvec_reference)
def _matvec_loop(matvec: Any) -> str:
    """``matvec(W, x)`` must equal ``W @ x`` (shape ``(m,)``, dtype of ``W``)."""

    def check_one(case: tuple[torch.Tensor, torch.Tensor]) -> None:
        W, x = case
        expected = W @ x
        got = require_tensor(call_answer(matvec, W, x), "matvec_loop(W, x)")
        if got.shape == (W.shape[0], 1):
            raise WrongAnswerError(
                f"matvec_loop(W, x) has shape {tuple(got.shape)}: return a 1-D tensor of shape "
                f"({W.shape[0]},), one entry per row of W"
            )
        if got.shape == (W.shape[1],) and W.shape[0] != W.shape[1]:
            raise WrongAnswerError(
                f"matvec_loop(W, x) has shape {tuple(got.shape)}, one entry per column: y has one "
                "entry per row i of W, and the sum runs over the columns j"
            )
        if W.shape[0] == W.shape[1] and torch.allclose(got.double(), (W.T @ x).double()):
            if not torch.allclose(W, W.T):
                raise WrongAnswerError(
                    "you computed W^T x: in y_i = sum_j W_ij x_j the row index i stays fixed "
                    "while j runs along the row"
                )
        check_dtype(got, W.dtype, "matvec_loop(W, x)")
        check_close(got, expected, rtol=1e-5, atol=1e-6, name="matvec_loop(W, x)", reveal=False)

    return f"equals W @ x on {over_cases(_matvec_cases(), check_one)}"


# ---------------------------------------------------------------------------------------------
# 3. From a batch of HWC uint8 photos to NCHW floats


def _to_nchw_reference(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` -> float32 ``(N, 3, H, W)`` in [0, 1]."""
    return images.permute(0, 3, 1, 2).float() / 255.0


def _photo_batches() -> list[tuple[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(5)
    extremes = torch.zeros(3, 2, 3, 3, dtype=torch.uint8)
    extremes[1] = 255
    extremes[2, :, :, 1] = 255  # pure green
    return [
        ("N=2, H=5, W=7", torch.randint(0, 256, (2, 5, 7, 3), generator=g, dtype=torch.uint8)),
        ("a batch of one", torch.randint(0, 256, (1, 4, 6, 3), generator=g, dtype=torch.uint8)),
        ("black, white and green images", extremes),
    ]


@exercise("ex-tensors-hwc-to-nchw", CHAPTER, solution=lambda: _to_nchw_reference)
def _hwc_to_nchw(to_nchw: Any) -> str:
    """``to_nchw(images)``: ``out[n, c, i, j] == images[n, i, j, c] / 255``, float32."""

    def check_one(images: torch.Tensor) -> None:
        n, h, w, c = images.shape
        out = require_tensor(call_answer(to_nchw, images), "to_nchw(images)")
        if out.shape == (n, c, w, h) and h != w:
            raise WrongAnswerError(
                f"to_nchw(images) has shape {tuple(out.shape)}: height and width are swapped; "
                "the new order of the axes (N, H, W, C) is (0, 3, 1, 2)"
            )
        if out.shape != (n, c, h, w):
            raise WrongAnswerError(
                f"to_nchw(images) has the wrong shape: expected {(n, c, h, w)} for images of "
                f"shape {tuple(images.shape)}, got {tuple(out.shape)}"
            )
        check_dtype(out, torch.float32, "to_nchw(images)")
        if out.max() > 1.0:
            raise WrongAnswerError(
                "to_nchw(images) has values above 1: divide the uint8 values 0..255 by 255"
            )
        scrambled = images.reshape(n, c, h, w).float() / 255.0
        if (
            h * w > 1
            and torch.allclose(out, scrambled)
            and not torch.allclose(out, _to_nchw_reference(images))
        ):
            raise WrongAnswerError(
                "the shape is right but the pixels are scrambled: reshape/view keeps the memory "
                "order (H, W, C) and cuts it into new blocks; permute moves the axes"
            )
        g = torch.Generator().manual_seed(0)
        for _ in range(20):
            i_n, i_c, i_h, i_w = (int(torch.randint(0, s, (1,), generator=g)) for s in (n, c, h, w))
            want = images[i_n, i_h, i_w, i_c].item() / 255.0
            if abs(out[i_n, i_c, i_h, i_w].item() - want) > 1e-6:
                raise WrongAnswerError(
                    f"out[{i_n}, {i_c}, {i_h}, {i_w}] should be images[{i_n}, {i_h}, {i_w}, "
                    f"{i_c}] / 255"
                )
        check_close(out, _to_nchw_reference(images), atol=1e-6, name="to_nchw(images)",
                    reveal=False)  # fmt: skip

    return f"right layout and scale on {over_cases(_photo_batches(), check_one)}"


# ---------------------------------------------------------------------------------------------
# 4. Norms of a vector and the covariance matrix of a small data set

NORM_VECTOR = (1.0, -1.0, 3.0)
COV_DATA = ((2.0, 1.0), (4.0, 3.0), (6.0, 2.0), (8.0, 7.0), (10.0, 7.0))  # 5 samples, 2 features


def _norms_and_cov() -> dict[str, Any]:
    v = torch.tensor(NORM_VECTOR, dtype=torch.float64)
    X = torch.tensor(COV_DATA, dtype=torch.float64)
    return {
        "l1": torch.linalg.vector_norm(v, 1).item(),
        "l2": torch.linalg.vector_norm(v, 2).item(),
        "linf": torch.linalg.vector_norm(v, float("inf")).item(),
        "cov": torch.cov(X.T),  # rows of torch.cov's input are the variables
    }


def _scalar(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise WrongAnswerError(f"answer[{name!r}] should be a number, got {value!r}") from None


@exercise("ex-tensors-norms-cov", CHAPTER, solution=_norms_and_cov)
def _norms_cov(answer: Any) -> str:
    """``answer = {"l1", "l2", "linf": norms of NORM_VECTOR, "cov": (2, 2) of COV_DATA}``."""
    if not isinstance(answer, dict):
        raise WrongAnswerError('answer should be a dict with the keys "l1", "l2", "linf" and "cov"')
    check_equal(sorted(answer), sorted(["l1", "l2", "linf", "cov"]), name="the keys of answer")
    ref = _norms_and_cov()
    l1, l2, linf = (_scalar(answer[k], k) for k in ("l1", "l2", "linf"))
    if abs(l1 - sum(NORM_VECTOR)) < 1e-9:
        raise WrongAnswerError("l1 is the sum of the ABSOLUTE values of the entries")
    if abs(l2 - ref["l2"] ** 2) < 1e-9:
        raise WrongAnswerError("l2 is the square ROOT of the sum of squares")
    if linf < 0:
        raise WrongAnswerError("linf is the largest absolute value, a non-negative number")
    for key, value in (("l1", l1), ("l2", l2), ("linf", linf)):
        check_close(value, ref[key], rtol=1e-6, name=key, reveal=False)
    cov = answer["cov"]
    got = torch.as_tensor(cov.detach().cpu() if torch.is_tensor(cov) else cov).double()
    if got.shape == (len(COV_DATA), len(COV_DATA)):
        raise WrongAnswerError(
            "cov is 5 x 5, one row and column per sample: the variables are the columns of X "
            "(np.cov needs rowvar=False, torch.cov needs X.T)"
        )
    X = torch.tensor(COV_DATA, dtype=torch.float64)
    centred = X - X.mean(dim=0)
    if got.shape == (2, 2) and torch.allclose(got, centred.T @ centred / len(X)):
        raise WrongAnswerError(
            "cov divides by N; the sample covariance divides by N - 1 (the default of np.cov "
            "and torch.cov)"
        )
    if got.shape == (2, 2) and torch.allclose(got, X.T @ X / (len(X) - 1)):
        raise WrongAnswerError("cov: subtract the mean of each column first")
    check_close(got, ref["cov"], rtol=1e-6, name="cov", reveal=False)
    return "three norms and a covariance matrix"
