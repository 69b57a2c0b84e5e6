"""Exercise checks for chapter 3.6, Semantic segmentation: transposed convolution and U-Net."""

from __future__ import annotations

import math
from typing import Any

import torch

from .core import (
    WrongAnswerError,
    call_answer,
    check_close,
    exercise,
    over_cases,
    require_tensor,
)

CHAPTER = "03-vision/06-segmentation"

# ---------------------------------------------------------------------------------------------
# 1. Transposed convolution by scatter-add

# (input (H, W), kernel (k_h, k_w), stride, padding)
_TRANS_CASES = [
    ("the 2x2 example with stride 1", ((2, 2), (2, 2), 1, 0)),
    ("a 4x4 input, k = 4, stride 2, padding 1", ((4, 4), (4, 4), 2, 1)),
    ("a 3x5 input, a 3x2 kernel, stride 3", ((3, 5), (3, 2), 3, 0)),
    ("a single input pixel", ((1, 1), (3, 3), 2, 0)),
    ("padding 1 at stride 1", ((4, 3), (3, 3), 1, 1)),
]


def _trans_conv_reference():
    from dlcourse.conv import trans_conv

    return trans_conv


@exercise("ex-seg-trans-conv", CHAPTER, solution=_trans_conv_reference)
def _trans_conv(fn: Any) -> str:
    """The student's ``my_trans_conv(x, k, stride, padding)`` vs ``F.conv_transpose2d``."""
    F = torch.nn.functional
    gen = torch.Generator().manual_seed(36)

    def check_one(case: tuple[Any, ...]) -> None:
        (h, w), (kh, kw), s, p = case
        if (h, w) == (2, 2) and (kh, kw) == (2, 2):
            x = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
            k = x.clone()
        else:
            x, k = torch.randn(h, w, generator=gen), torch.randn(kh, kw, generator=gen)
        got = require_tensor(call_answer(fn, x, k, stride=s, padding=p), "the output")
        expected = F.conv_transpose2d(x[None, None], k[None, None], stride=s, padding=p)[0, 0]
        if got.shape != expected.shape:
            uncropped = ((h - 1) * s + kh, (w - 1) * s + kw)
            hint = (
                " It is the size before the padding is removed: padding crops p rows and "
                "columns from each side of the output."
                if tuple(got.shape) == uncropped and p
                else " The output size is (n - 1) s - 2p + k along each axis."
            )
            raise WrongAnswerError(
                f"the output has shape {tuple(got.shape)}, expected {tuple(expected.shape)}.{hint}"
            )
        flipped = F.conv_transpose2d(x[None, None], k.flip(0, 1)[None, None], stride=s, padding=p)
        if torch.allclose(got.float(), flipped[0, 0], atol=1e-4) and not torch.allclose(
            flipped[0, 0], expected, atol=1e-4
        ):
            raise WrongAnswerError(
                "your kernel is rotated by 180 degrees: each input pixel adds x[i, j] * k, with k "
                "as it is, at offset (s i, s j)"
            )
        check_close(got, expected, rtol=1e-4, atol=1e-4, name="the output", reveal=False)

    return f"{over_cases(_TRANS_CASES, check_one)} match F.conv_transpose2d"


# ---------------------------------------------------------------------------------------------
# 2. The matrix of a convolution, and its transpose

# (kernel (k_h, k_w), input (H, W), stride, padding)
_MATRIX_CASES = [
    ("a 2x2 kernel on a 3x3 input", ((2, 2), (3, 3), 1, 0)),
    ("a 3x3 kernel, stride 2, padding 1 on 6x6", ((3, 3), (6, 6), 2, 1)),
    ("a 3x2 kernel on a 4x5 input with padding 1", ((3, 2), (4, 5), 1, 1)),
    ("a 2x3 kernel on a 5x7 input, stride 2", ((2, 3), (5, 7), 2, 0)),
    ("a kernel as large as the input", ((3, 3), (3, 3), 1, 0)),
]


def _matrix_reference():
    from dlcourse.conv import conv_as_matrix

    def conv_matrix(k, in_hw, stride=1, padding=0):
        return conv_as_matrix(k, in_hw, stride=stride, padding=padding)

    return conv_matrix


@exercise("ex-seg-conv-matrix", CHAPTER, solution=_matrix_reference)
def _conv_matrix(fn: Any) -> str:
    """``my_conv_matrix(k, in_hw, stride, padding)``: ``C`` with ``C vec(x) = vec(conv2d(x, k))``."""
    F = torch.nn.functional
    gen = torch.Generator().manual_seed(63)

    def check_one(case: tuple[Any, ...]) -> None:
        (kh, kw), (h, w), s, p = case
        k = torch.randn(kh, kw, generator=gen, dtype=torch.float64)
        got = require_tensor(call_answer(fn, k, (h, w), stride=s, padding=p), "C")
        out = F.conv2d(torch.zeros(1, 1, h, w, dtype=torch.float64), k[None, None], stride=s,
                       padding=p)  # fmt: skip
        rows, cols = out.numel(), h * w
        if tuple(got.shape) == (cols, rows) and rows != cols:
            raise WrongAnswerError(
                f"C has shape {tuple(got.shape)}: that is C^T. C maps the input (H W = {cols} "
                f"entries) to the output (H' W' = {rows}), so it has {rows} rows"
            )
        if tuple(got.shape) != (rows, cols):
            raise WrongAnswerError(f"C should have shape (H' W', H W) = {(rows, cols)}")
        x = torch.randn(1, 1, h, w, generator=gen, dtype=torch.float64)
        y = torch.randn(1, 1, *out.shape[2:], generator=gen, dtype=torch.float64)
        conv = F.conv2d(x, k[None, None], stride=s, padding=p).flatten()
        check_close(got.double() @ x.flatten(), conv, rtol=1e-6, atol=1e-8,
                    name="C @ vec(x) compared with conv2d(x)", reveal=False)  # fmt: skip
        back = F.conv_transpose2d(y, k[None, None], stride=s, padding=p,
                                  output_padding=_output_padding((h, w), (kh, kw), s, p)).flatten()  # fmt: skip
        check_close(got.double().T @ y.flatten(), back, rtol=1e-6, atol=1e-8,
                    name="C^T @ vec(y) compared with conv_transpose2d(y)", reveal=False)  # fmt: skip

    return f"{over_cases(_MATRIX_CASES, check_one)}: C x = conv(x) and C^T y = conv_transpose(y)"


def _output_padding(
    in_hw: tuple[int, int], k_hw: tuple[int, int], s: int, p: int
) -> tuple[int, int]:
    """The output_padding that gives the transposed conv the conv's input size, per axis."""
    pads = []
    for n, k in zip(in_hw, k_hw, strict=True):
        m = (n + 2 * p - k) // s + 1
        pads.append(n - ((m - 1) * s - 2 * p + k))
    return pads[0], pads[1]


# ---------------------------------------------------------------------------------------------
# 3. Mean IoU

# the hand-made masks of the chapter
TARGET_3 = [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [0, 0, 0, 0]]
PRED_3 = [[0, 0, 1, 0], [0, 1, 1, 1], [2, 2, 0, 0], [0, 0, 0, 0]]


def _mean_iou_reference():
    from dlcourse.segmentation import mean_iou

    return mean_iou


def _iou_cases(gen: torch.Generator) -> list[tuple[str, tuple]]:
    target = torch.tensor(TARGET_3)
    random_target = torch.randint(0, 4, (3, 8, 8), generator=gen)
    noisy = torch.where(torch.rand(3, 8, 8, generator=gen) < 0.3,
                        torch.randint(0, 4, (3, 8, 8), generator=gen), random_target)  # fmt: skip
    absent = torch.randint(0, 2, (2, 6, 6), generator=gen)  # classes 2 and 3 never appear
    absent_pred = torch.where(torch.rand(2, 6, 6, generator=gen) < 0.2, 1 - absent, absent)
    only_pred = absent.clone()
    only_pred[0, 0, 0] = 2  # class 2 predicted once but absent from the target: IoU 0
    return [
        ("the 4x4 masks of the chapter", (torch.tensor(PRED_3), target, 3)),
        ("a perfect prediction", (target.clone(), target, 3)),
        ("a batch of noisy 4-class masks", (noisy, random_target, 4)),
        ("classes that appear in neither mask", (absent_pred, absent, 4)),
        ("a class that is predicted but absent from the target", (only_pred, absent, 4)),
        ("a batch of one", (noisy[:1], random_target[:1], 4)),
    ]


@exercise("ex-seg-mean-iou", CHAPTER, solution=_mean_iou_reference)
def _mean_iou(fn: Any) -> str:
    """``my_mean_iou(pred, target, num_classes)`` vs ``dlcourse.segmentation.mean_iou``."""
    from dlcourse.segmentation import mean_iou, per_class_iou, pixel_accuracy

    gen = torch.Generator().manual_seed(7)

    def check_one(case: tuple[Any, ...]) -> None:
        pred, target, num_classes = case
        got = call_answer(fn, pred, target, num_classes)
        if torch.is_tensor(got):
            if got.numel() != 1:
                raise WrongAnswerError("return one number, the mean over classes")
            got = got.item()
        if not isinstance(got, int | float):
            raise WrongAnswerError(f"return a float, got {type(got).__name__}")
        if math.isnan(got):
            raise WrongAnswerError(
                "the result is NaN: a class that appears in neither mask has IoU 0/0; leave "
                "it out of the mean"
            )
        expected = mean_iou(pred, target, num_classes)
        if abs(got - expected) <= 1e-6:
            return
        if abs(got - pixel_accuracy(pred, target)) <= 1e-6:
            raise WrongAnswerError(
                "that is the pixel accuracy; IoU is TP / (TP + FP + FN) per class"
            )
        as_zero = torch.nan_to_num(per_class_iou(pred, target, num_classes)).mean().item()
        if abs(got - as_zero) <= 1e-6:
            raise WrongAnswerError(
                "a class that appears in neither pred nor target has no IoU (0/0): skip it "
                "instead of counting it as 0"
            )
        raise WrongAnswerError("the mean IoU is wrong")

    return f"{over_cases(_iou_cases(gen), check_one)} match"


# ---------------------------------------------------------------------------------------------
# 4. The U-Net decoder step

# (c_in, c_skip, c_out, batch, H, W) of the low-resolution input
_DECODER_CASES = [
    ("16 -> 8 channels with an 8-channel skip", (16, 8, 8, 2, 4, 4)),
    ("a skip wider than the output", (8, 12, 4, 1, 3, 5)),
    ("a batch of one 1x1 map", (4, 2, 2, 1, 1, 1)),
]


def _decoder_reference():
    from dlcourse.segmentation import UpBlock

    return UpBlock


@exercise("ex-seg-decoder", CHAPTER, solution=_decoder_reference)
def _decoder(cls: Any) -> str:
    """``MyUpBlock(c_in, c_skip, c_out)``; ``block(x, skip)`` upsamples x2, concatenates, convs."""
    nn = torch.nn
    gen = torch.Generator().manual_seed(5)

    def check_one(case: tuple[Any, ...]) -> None:
        c_in, c_skip, c_out, n, h, w = case
        block = call_answer(cls, c_in, c_skip, c_out)
        if not isinstance(block, nn.Module):
            raise WrongAnswerError("MyUpBlock(c_in, c_skip, c_out) should build an nn.Module")
        convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
        if not any(m.in_channels == c_out + c_skip for m in convs):
            raise WrongAnswerError(
                f"no Conv2d takes c_out + c_skip = {c_out + c_skip} input channels: a U-Net "
                "concatenates the upsampled map with the skip (torch.cat on dim 1), it does not "
                "add them"
            )
        block.eval()
        x = torch.randn(n, c_in, h, w, generator=gen)
        skip = torch.randn(n, c_skip, 2 * h, 2 * w, generator=gen)
        out = require_tensor(call_answer(block, x, skip), "the block's output")
        check_close(torch.tensor(out.shape), torch.tensor([n, c_out, 2 * h, 2 * w]),
                    name="the output shape (N, c_out, 2H, 2W)")  # fmt: skip
        other = require_tensor(call_answer(block, x, torch.zeros_like(skip)), "the output")
        if torch.allclose(out, other):
            raise WrongAnswerError("the output does not depend on skip: concatenate it")

    return f"{over_cases(_DECODER_CASES, check_one)}: shapes and concatenated channels right"
