"""Exercise checks for chapter 3.7, Neural style transfer."""

from __future__ import annotations

from typing import Any

import torch

from .core import WrongAnswerError, call_answer, check_close, exercise, over_cases, require_tensor

CHAPTER = "03-vision/07-style-transfer"


def _maps(n: int, c: int, h: int, w: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, c, h, w, generator=gen)


# (description, feature maps)
_GRAM_CASES = [
    ("a batch of two 4-channel 5x6 maps", _maps(2, 4, 5, 6, 0)),
    ("a batch of one", _maps(1, 3, 4, 4, 1)),
    ("a single channel", _maps(2, 1, 3, 5, 2)),
    ("a 1x1 map", _maps(3, 5, 1, 1, 3)),
    ("large values", _maps(2, 3, 4, 4, 4, scale=1e3)),
]


def _gram_reference():
    from dlcourse.style import gram

    return gram


@exercise("ex-style-gram", CHAPTER, solution=_gram_reference)
def _gram(fn: Any) -> str:
    """``gram(x)``: ``(N, c, h, w) -> (N, c, c)``, ``F F^T / (c h w)``."""

    def check_one(x: torch.Tensor) -> None:
        n, c, h, w = x.shape
        got = require_tensor(call_answer(fn, x), "gram(x)")
        expected = torch.einsum("nchw,ndhw->ncd", x, x) / (c * h * w)
        if got.shape == expected.shape and not torch.allclose(got, expected, rtol=1e-4):
            for divisor, what in ((h * w, "h w"), (1, "nothing"), (c * h * w * n, "N c h w")):
                unnormalised = expected * (c * h * w) / divisor
                if torch.allclose(got, unnormalised, rtol=1e-4):
                    raise WrongAnswerError(f"you divided by {what}; divide by c * h * w")
        check_close(got, expected, rtol=1e-4, atol=1e-6, name="gram(x)", reveal=False)
        if not torch.allclose(got, got.transpose(-2, -1), rtol=1e-5, atol=1e-6):
            raise WrongAnswerError("gram(x) should be symmetric")
        smallest = torch.linalg.eigvalsh(got.double()).min().item()
        if smallest < -1e-6 * max(1.0, got.abs().max().item()):
            raise WrongAnswerError("gram(x) should be positive semi-definite")

    return over_cases(_GRAM_CASES, check_one)


def _tv_reference():
    from dlcourse.style import tv_loss

    return tv_loss


def _checkerboard(h: int, w: int) -> torch.Tensor:
    i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return (1.0 - 2.0 * ((i + j) % 2)).float().expand(2, 3, h, w).clone()


def _stripes(h: int, w: int) -> torch.Tensor:
    """Vertical stripes: every horizontal difference is 1, every vertical one 0."""
    return (torch.arange(w) % 2).float().expand(1, 1, h, w).clone()


@exercise("ex-style-tv", CHAPTER, solution=_tv_reference)
def _tv(fn: Any) -> str:
    """``tv_loss(x)`` = (mean |vertical differences| + mean |horizontal differences|) / 2."""
    reference = _tv_reference()
    cases = [
        ("a constant image (TV 0)", torch.full((1, 3, 6, 5), 0.7)),
        ("a +-1 checkerboard (TV 2)", _checkerboard(6, 8)),
        ("vertical stripes (TV 0.5)", _stripes(4, 7)),
        ("random noise on a batch of two", _maps(2, 3, 9, 5, 5)),
        ("a 2x2 image", _maps(1, 1, 2, 2, 6)),
    ]

    def check_one(x: torch.Tensor) -> None:
        got = require_tensor(call_answer(fn, x), "tv_loss(x)")
        expected = reference(x)
        if got.numel() != 1:
            raise WrongAnswerError(f"tv_loss(x) should be a scalar, got shape {tuple(got.shape)}")
        if expected > 0 and torch.allclose(got.reshape(()), 2 * expected, rtol=1e-4):
            raise WrongAnswerError("twice too large: average the two directions (divide by 2)")
        check_close(got.reshape(()), expected, rtol=1e-4, atol=1e-6, name="tv_loss(x)",
                    reveal=False)  # fmt: skip

    return over_cases(cases, check_one)


def _shuffle_reference():
    def shuffle_positions(y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, c, h, w = y.shape
        order = torch.randperm(h * w, generator=generator)
        return y.reshape(n, c, h * w)[..., order].reshape(n, c, h, w)

    return shuffle_positions


@exercise("ex-style-shuffle", CHAPTER, solution=_shuffle_reference)
def _shuffle(fn: Any) -> str:
    """``shuffle_positions(y, generator)`` moves whole feature vectors; style_loss is unchanged."""
    from dlcourse.style import gram, style_loss

    def check_one(case: tuple[torch.Tensor, int]) -> None:
        y, seed = case
        n, c, h, w = y.shape
        out = require_tensor(
            call_answer(fn, y, torch.Generator().manual_seed(seed)), "shuffle_positions(y)"
        )
        if out.shape != y.shape:
            raise WrongAnswerError(f"the result should keep the shape {tuple(y.shape)}")
        if torch.equal(out, y):
            raise WrongAnswerError("the result equals y: the positions were not shuffled")
        cols_in = y.reshape(n, c, h * w).permute(0, 2, 1)
        cols_out = out.reshape(n, c, h * w).permute(0, 2, 1)
        # each position's feature vector must survive intact: compare as sorted rows
        same = all(
            torch.equal(torch.unique(a, dim=0), torch.unique(b, dim=0))
            for a, b in zip(cols_in, cols_out, strict=True)
        )
        if not same:
            raise WrongAnswerError(
                "the feature vectors changed: move whole positions (all channels together), "
                "do not shuffle each channel or mix values"
            )
        loss = style_loss(out, gram(y))
        if loss > 1e-8 * max(1.0, float(gram(y).square().sum())):
            raise WrongAnswerError("style_loss(result, gram(y)) should be 0 for a permutation")

    cases = [
        ("a batch of two 3-channel 4x5 maps", (_maps(2, 3, 4, 5, 7), 0)),
        ("a batch of one 8x8 map", (_maps(1, 6, 8, 8, 8), 1)),
    ]
    return over_cases(cases, check_one) + ": style_loss unchanged"
