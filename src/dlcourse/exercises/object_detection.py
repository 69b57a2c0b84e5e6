"""Exercise checks for chapter 3.5, Object detection: anchors, IoU, NMS, set prediction."""

from __future__ import annotations

import math
from typing import Any

import torch

from .core import WrongAnswerError, call_answer, check_close, check_equal, exercise, over_cases

CHAPTER = "03-vision/05-object-detection"


def _iou_giou(a: list[float], b: list[float]) -> tuple[float, float]:
    from dlcourse.detection import box_iou, generalized_box_iou

    ta, tb = torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)
    return box_iou(ta, tb).item(), generalized_box_iou(ta, tb).item()


_BOX_PAIRS = [
    ("overlapping [0,0,2,2] and [1,1,3,3]", ([0, 0, 2, 2], [1, 1, 3, 3])),
    ("disjoint unit boxes at distance 1", ([0, 0, 1, 1], [2, 0, 3, 1])),
    ("identical boxes", ([1, 2, 4, 6], [1, 2, 4, 6])),
    ("one box inside the other", ([0, 0, 4, 4], [1, 1, 2, 3])),
    ("diagonal, far apart", ([0, 0, 1, 1], [5, 5, 7, 8])),
]


@exercise("ex-detection-iou-giou", CHAPTER, solution=lambda: _iou_giou)
def _iou_giou_check(fn: Any) -> str:
    """``fn(a, b)`` for two boxes given as lists ``[x1, y1, x2, y2]`` returns ``(iou, giou)``."""

    def check_one(pair: tuple[list[float], list[float]]) -> None:
        got = call_answer(fn, *pair)
        if not isinstance(got, tuple | list) or len(got) != 2:
            raise WrongAnswerError("return a pair (iou, giou) of two numbers")
        iou, giou = _iou_giou(*pair)
        check_close(float(got[0]), iou, rtol=1e-5, atol=1e-7, name="iou", reveal=False)
        if math.isclose(float(got[1]), iou, abs_tol=1e-9) and not math.isclose(giou, iou):
            raise WrongAnswerError("giou equals iou here: subtract |C minus (A u B)| / |C|")
        check_close(float(got[1]), giou, rtol=1e-5, atol=1e-7, name="giou", reveal=False)

    return f"IoU and GIoU right: {over_cases(_BOX_PAIRS, check_one)}"


def _anchor_count(h: int, w: int, n_sizes: int, n_ratios: int) -> int:
    return h * w * (n_sizes + n_ratios - 1)


@exercise("ex-detection-anchor-count", CHAPTER, solution=lambda: _anchor_count)
def _anchor_count_check(fn: Any) -> str:
    """``fn(h, w, n_sizes, n_ratios)``: the number of anchors ``multibox_prior`` makes."""
    cases = [("the 4 x 4 map, 3 sizes, 3 ratios", (4, 4, 3, 3)),
             ("a 561 x 728 image, 3 sizes, 3 ratios", (561, 728, 3, 3)),
             ("one size, one ratio", (2, 5, 1, 1)),
             ("5 sizes, 2 ratios", (3, 7, 5, 2))]  # fmt: skip

    def check_one(args: tuple[int, int, int, int]) -> None:
        got = call_answer(fn, *args)
        if not isinstance(got, int):
            raise WrongAnswerError(f"return an int, got {type(got).__name__}")
        if got != _anchor_count(*args) and got == args[0] * args[1] * args[2] * args[3]:
            raise WrongAnswerError(
                "that is every (size, ratio) pair: the anchors use only (s_i, r_1) and (s_1, r_j)"
            )
        check_equal(got, _anchor_count(*args), name="count", reveal=False)

    return f"anchor counts right: {over_cases(cases, check_one)}"


def _nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float):
    from dlcourse.detection import nms

    return nms(boxes, scores, iou_threshold)


def _nms_cases() -> list[tuple[str, tuple[torch.Tensor, torch.Tensor, float]]]:
    six = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 9], [20, 20, 30, 30],
                        [21, 20, 31, 30], [50, 50, 52, 52]], dtype=torch.float32)  # fmt: skip
    six_scores = torch.tensor([0.9, 0.8, 0.95, 0.7, 0.75, 0.1])
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(30, 2, generator=g) * 20
    rand = torch.cat([xy, xy + torch.rand(30, 2, generator=g) * 10 + 1], dim=1)
    rand_scores = torch.rand(30, generator=g)
    tie = torch.tensor([[0, 0, 2, 2], [0, 0, 2, 2], [5, 5, 6, 6]], dtype=torch.float32)
    edge = torch.tensor([[0, 0, 3, 1], [1, 0, 4, 1]], dtype=torch.float32)  # IoU exactly 0.5
    return [("the six-box example, threshold 0.5", (six, six_scores, 0.5)),
            ("the six-box example, threshold 0.7", (six, six_scores, 0.7)),
            ("30 random boxes, threshold 0.3", (rand, rand_scores, 0.3)),
            ("tied scores on identical boxes", (tie, torch.tensor([0.5, 0.5, 0.5]), 0.5)),
            ("IoU exactly at the threshold", (edge, torch.tensor([0.9, 0.8]), 0.5)),
            ("a single box", (six[:1], six_scores[:1], 0.5))]  # fmt: skip


@exercise("ex-detection-nms", CHAPTER, solution=lambda: _nms_reference)
def _nms_check(fn: Any) -> str:
    """``fn(boxes, scores, iou_threshold)`` -> kept indices, highest score first."""

    def check_one(case: tuple[torch.Tensor, torch.Tensor, float]) -> None:
        got = call_answer(fn, *case)
        if not torch.is_tensor(got):
            got = torch.as_tensor(list(got), dtype=torch.long)
        if got.is_floating_point():
            raise WrongAnswerError("return integer indices (a LongTensor), not scores or boxes")
        expected = _nms_reference(*case).tolist()
        got_list = got.reshape(-1).tolist()
        if sorted(got_list) == sorted(expected) and got_list != expected:
            raise WrongAnswerError("the right boxes, in the wrong order: sort by score, best first")
        check_equal(got_list, expected, name="kept indices", reveal=False)

    return f"same kept boxes as the reference: {over_cases(_nms_cases(), check_one)}"


def _focal(p_t: float, alpha_t: float, gamma: float) -> float:
    return -alpha_t * (1 - p_t) ** gamma * math.log(p_t)


@exercise("ex-detection-focal", CHAPTER, solution=lambda: _focal)
def _focal_check(fn: Any) -> str:
    """``fn(p_t, alpha_t, gamma)`` = ``-alpha_t (1 - p_t)^gamma log(p_t)``."""
    cases = [("p_t 0.9, alpha_t 0.25, gamma 2", (0.9, 0.25, 2.0)),
             ("p_t 0.6, alpha_t 0.25, gamma 2", (0.6, 0.25, 2.0)),
             ("gamma 0 is weighted cross-entropy", (0.3, 0.75, 0.0)),
             ("a very easy example", (0.999, 0.75, 2.0))]  # fmt: skip

    def check_one(args: tuple[float, float, float]) -> None:
        got = call_answer(fn, *args)
        if torch.is_tensor(got):
            got = got.item()
        expected = _focal(*args)
        if math.isclose(float(got), -expected, rel_tol=1e-6):
            raise WrongAnswerError("the sign is flipped: a loss is -log p_t >= 0")
        check_close(float(got), expected, rtol=1e-5, atol=1e-12, name="focal loss", reveal=False)

    hard, easy = (
        _focal(0.6, 1.0, 2.0) / _focal(0.6, 1.0, 0.0),
        _focal(0.9, 1.0, 2.0) / _focal(0.9, 1.0, 0.0),
    )
    if not math.isclose(hard / easy, 16.0):  # (0.4 / 0.1)^2: a sanity check of the reference
        raise AssertionError("reference focal loss is inconsistent")
    return f"focal loss right: {over_cases(cases, check_one)}"
