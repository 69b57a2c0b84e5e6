"""Exercise checks for chapter 3.1, Convolution from scratch."""

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

CHAPTER = "03-vision/01-convolution"

# ---------------------------------------------------------------------------------------------
# 1. conv2d_im2col

# (batch, C_in, C_out, kernel, stride, padding, dilation, groups, bias, input size)
_IM2COL_CASES = [
    ("no padding and no bias", (2, 3, 4, (3, 3), 1, 0, 1, 1, False, (9, 8))),
    ("stride 2 and padding 1", (2, 3, 5, (3, 3), 2, 1, 1, 1, True, (9, 8))),
    (
        "a batch of one with a 3x2 kernel and dilation 2",
        (1, 2, 3, (3, 2), 1, 2, 2, 1, True, (9, 8)),
    ),
    ("groups 2", (2, 4, 6, (3, 3), 1, 1, 1, 2, True, (9, 8))),
    ("depthwise with stride 2 and dilation 2", (1, 4, 4, (2, 3), 2, 1, 2, 4, False, (9, 8))),
    ("an output of a single pixel", (3, 2, 4, (3, 3), 1, 0, 1, 1, True, (3, 3))),
    ("an empty batch", (0, 4, 6, (3, 3), 1, 1, 1, 2, True, (9, 8))),
]


def _im2col_reference():
    from dlcourse.conv import conv2d_im2col

    return conv2d_im2col


@exercise("ex-conv-im2col", CHAPTER, solution=_im2col_reference)
def _im2col(fn: Any) -> str:
    """The student's ``conv2d_im2col(x, w, b, stride, padding, dilation, groups)`` vs F.conv2d."""
    F = torch.nn.functional
    gen = torch.Generator().manual_seed(31)

    def check_one(case: tuple[Any, ...]) -> None:
        n, c_in, c_out, k, s, p, d, g, has_b, size = case
        x = torch.randn(n, c_in, *size, generator=gen)
        w = torch.randn(c_out, c_in // g, *k, generator=gen)
        b = torch.randn(c_out, generator=gen) if has_b else None
        setting = f"output (stride={s}, padding={p}, dilation={d}, groups={g})"
        got = call_answer(fn, x, w, b, stride=s,
                          padding=p, dilation=d, groups=g)  # fmt: skip
        got = require_tensor(got, setting)
        expected = F.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g)
        flipped = F.conv2d(x, w.flip(-2, -1), b, stride=s, padding=p, dilation=d, groups=g)
        if got.shape == expected.shape and torch.allclose(got.float(), flipped, atol=1e-4):
            if not torch.allclose(flipped, expected, atol=1e-4):
                raise WrongAnswerError(
                    "you computed a true convolution (flipped kernel); F.conv2d computes "
                    "cross-correlation, with no flip"
                )
        check_close(got, expected, rtol=1e-4, atol=1e-4, name=setting, reveal=False,
                    dtype=x.dtype)  # fmt: skip

    return f"{over_cases(_IM2COL_CASES, check_one)} match F.conv2d"


# ---------------------------------------------------------------------------------------------
# 2. Output widths

# (input width n, kernel k, stride s, padding p, dilation d), in the order of the chapter
WIDTH_CASES = (
    (28, 3, 1, 1, 1),
    (28, 5, 2, 2, 1),
    (28, 3, 2, 0, 1),
    (32, 3, 1, 2, 2),
    (32, 3, 1, 0, 3),
    (224, 11, 4, 0, 1),
)


def _measured_width(n: int, k: int, s: int, p: int, d: int) -> int:
    conv = torch.nn.Conv2d(1, 1, (1, k), stride=(1, s), padding=(0, p), dilation=(1, d))
    with torch.no_grad():
        return conv(torch.zeros(1, 1, 1, n)).shape[-1]


def _widths_solution() -> tuple[list[int], int]:
    from dlcourse.conv import conv_output_size

    widths = [conv_output_size(n, k, s, p, d) for n, k, s, p, d in WIDTH_CASES]
    alexnet = next(n for n in range(224, 240) if (n - 11) % 4 == 0)
    return widths, alexnet


@exercise("ex-conv-output-size", CHAPTER, solution=_widths_solution)
def _output_size(answer: Any) -> str:
    """``(widths, alexnet_input)``: six ints, then the smallest width >= 224 with no remainder."""
    if not isinstance(answer, tuple | list) or len(answer) != 2:
        raise WrongAnswerError("pass the pair (widths, alexnet_input)")
    widths, alexnet_input = answer
    if not isinstance(widths, tuple | list) or len(widths) != len(WIDTH_CASES):
        raise WrongAnswerError(f"widths should be a list of {len(WIDTH_CASES)} ints")
    for i, (w, (n, k, s, p, d)) in enumerate(zip(widths, WIDTH_CASES, strict=True)):
        expected = _measured_width(n, k, s, p, d)
        if isinstance(w, float) and not w.is_integer():
            raise WrongAnswerError(
                f"width {i + 1} is {w}: a layer cannot output a fraction of a pixel; the last "
                "window that does not fit is dropped (floor)"
            )
        if w == expected:
            continue
        no_dilation = (n + 2 * p - k) // s + 1
        hint = " Did you use the dilated kernel span d(k-1)+1?" if w == no_dilation else ""
        raise WrongAnswerError(f"width {i + 1} (n={n}, k={k}, s={s}, p={p}, d={d}) is wrong.{hint}")
    if not isinstance(alexnet_input, int) or isinstance(alexnet_input, bool):
        raise WrongAnswerError(f"alexnet_input should be an int, got {alexnet_input!r}")
    if alexnet_input < 224:
        raise WrongAnswerError("alexnet_input should be at least 224 (the crop size of the paper)")
    if (alexnet_input - 11) % 4:
        raise WrongAnswerError(
            f"with width {alexnet_input}, (n - 11) / 4 = {(alexnet_input - 11) / 4}: not an "
            "integer, so some input columns are never covered"
        )
    _, smallest = _widths_solution()
    check_equal(
        alexnet_input, smallest, name="alexnet_input (the smallest such width)", reveal=False
    )
    return f"AlexNet's first layer gives {_measured_width(alexnet_input, 11, 4, 0, 1)}"


# ---------------------------------------------------------------------------------------------
# 3. Parameter counts

PARAM_KEYS = ("conv_3_16", "dense_equivalent", "conv_64_64", "depthwise_64")


def _measured_params() -> dict[str, int]:
    nn = torch.nn

    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    return {
        "conv_3_16": count(nn.Conv2d(3, 16, 3, padding=1, device="meta")),
        "dense_equivalent": count(nn.Linear(3 * 32 * 32, 16 * 32 * 32, device="meta")),
        "conv_64_64": count(nn.Conv2d(64, 64, 3, device="meta")),
        "depthwise_64": count(nn.Conv2d(64, 64, 3, groups=64, device="meta")),
    }


@exercise("ex-conv-params", CHAPTER, solution=_measured_params)
def _params(answer: Any) -> str:
    """A dict of four parameter counts, compared with ``sum(p.numel())`` of the real layers."""
    if not isinstance(answer, dict):
        raise WrongAnswerError(f"answer should be a dict with keys {list(PARAM_KEYS)}")
    check_equal(set(answer), set(PARAM_KEYS), name="the keys of answer")
    expected = _measured_params()
    weights_only = {"conv_3_16": 432, "dense_equivalent": 3072 * 16384, "conv_64_64": 36_864,
                    "depthwise_64": 576}  # fmt: skip
    for key in PARAM_KEYS:
        value = answer[key]
        if value == expected[key]:
            continue
        if value == weights_only[key]:
            raise WrongAnswerError(f"{key}: you counted the weights but not the biases")
        if key == "depthwise_64" and value == expected["conv_64_64"]:
            raise WrongAnswerError(
                "depthwise_64: with groups=64 each kernel sees C_in / groups = 1 channel"
            )
        raise WrongAnswerError(f"{key} is wrong: got {value!r}")
    return "all four counts match sum(p.numel())"


# ---------------------------------------------------------------------------------------------
# 4. Equivariance predictions

EQUIVARIANCE_KEYS = ("circular_conv_roll", "strided_conv_roll", "maxpool_roll", "conv_rot90")


def _measured_equivariance() -> dict[str, bool]:
    from dlcourse.conv import check_equivariance

    nn = torch.nn
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 16, 16, generator=gen)
    circular = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")
    strided = nn.Conv2d(3, 4, 3, stride=2, padding=1, padding_mode="circular")
    plain = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")
    pool = nn.MaxPool2d(2)
    with torch.no_grad():  # seeded weights, without touching the global random state
        for conv in (circular, strided, plain):
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen))
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen))

    def roll(t: torch.Tensor) -> torch.Tensor:
        return t.roll((1, 1), dims=(-2, -1))

    def rot(t: torch.Tensor) -> torch.Tensor:
        return t.rot90(1, dims=(-2, -1))

    return {
        "circular_conv_roll": check_equivariance(circular, roll, roll, x),
        "strided_conv_roll": check_equivariance(strided, roll, roll, x),
        "maxpool_roll": check_equivariance(pool, roll, roll, x),
        "conv_rot90": check_equivariance(plain, rot, rot, x),
    }


@exercise(
    "ex-conv-equivariance",
    CHAPTER,
    solution=lambda: {"circular_conv_roll": True, "strided_conv_roll": False,
                      "maxpool_roll": False, "conv_rot90": False},
)  # fmt: skip
def _equivariance(answer: Any) -> str:
    """A dict of four booleans, compared with what ``check_equivariance`` measures."""
    if not isinstance(answer, dict):
        raise WrongAnswerError(f"answer should be a dict with keys {list(EQUIVARIANCE_KEYS)}")
    check_equal(set(answer), set(EQUIVARIANCE_KEYS), name="the keys of answer")
    if not all(isinstance(v, bool) for v in answer.values()):
        raise WrongAnswerError("every value should be True or False")
    check_equal(answer, _measured_equivariance(), name="your predictions", reveal=False)
    return "all four predictions match check_equivariance"
