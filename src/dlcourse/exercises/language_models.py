"""Exercise checks for chapter 4.1, Text, language models and perplexity."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import torch

from .core import WrongAnswerError, call_answer, check_close, check_equal, exercise, over_cases

CHAPTER = "04-sequences/01-language-models"

# the 12-token toy corpus of the Laplace exercise: 8 distinct tokens, "the" is never last
TOY_CORPUS = "the cat sat on the mat and the cat ate the hat".split()


def _reference_perplexity_from_probs(p):
    from dlcourse.train import perplexity_from_probs

    return perplexity_from_probs(p)


def _reference_sequential(corpus, batch_size, num_steps):
    from dlcourse.text import seq_data_iter_sequential

    return list(seq_data_iter_sequential(corpus, batch_size, num_steps, offset=0))


def _laplace_bigram(corpus: list[str], x: str, x_next: str, eps1=1, eps2=1) -> Fraction:
    """P(x_next | x) = (n(x, x_next) + eps2 P(x_next)) / (n(x) + eps2), in exact fractions."""
    n, m = len(corpus), len(set(corpus))
    p_next = (Fraction(corpus.count(x_next)) + Fraction(eps1, m)) / (n + eps1)
    pairs = list(zip(corpus[:-1], corpus[1:], strict=True))
    n_pair = pairs.count((x, x_next))
    return (n_pair + eps2 * p_next) / (corpus.count(x) + eps2)


def _n_frames(seconds: float, rate: int, win_ms: float, hop_ms: float) -> int:
    from dlcourse.text import frame_signal

    n_samples = round(seconds * rate)
    win, hop = round(rate * win_ms / 1000), round(rate * hop_ms / 1000)
    return frame_signal(torch.zeros(n_samples).numpy(), win, hop).shape[0]


@exercise("ex-lm-perplexity-from-probs", CHAPTER, solution=lambda: _reference_perplexity_from_probs)
def _perplexity_from_probs(fn: Any) -> str:
    """``fn(p)`` -> float: the geometric mean of 1/p over the observed tokens."""
    g = torch.Generator().manual_seed(0)
    cases = [
        ("the four probabilities of the chapter", torch.tensor([0.5, 0.25, 0.1, 0.8])),
        ("uniform over 28 symbols", torch.full((50,), 1 / 28)),
        ("a single token", torch.tensor([0.3])),
        ("random probabilities", torch.rand(20, generator=g).clamp_min(0.01)),
        ("10,000 tokens of probability 1e-3", torch.full((10_000,), 1e-3, dtype=torch.float64)),
    ]

    def check_one(p: torch.Tensor) -> None:
        got = call_answer(fn, p)
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise WrongAnswerError(f"return a number, got {type(got).__name__}") from None
        expected = _reference_perplexity_from_probs(p)
        if not math.isfinite(got) and len(p) > 1000:
            raise WrongAnswerError(
                "the result overflowed: a product of 10,000 factors 1/p leaves the float range. "
                "Work with logarithms: exp(-mean(log p))"
            )
        harmonic = len(p) / float(p.double().sum())  # the harmonic mean of the 1/p
        if len(p) == 4 and math.isclose(got, harmonic, rel_tol=1e-6):
            raise WrongAnswerError(
                "that is the harmonic mean of 1/p (n / sum p); perplexity is the geometric mean"
            )
        check_close(got, expected, rtol=1e-5, name="perplexity", reveal=False)

    note = over_cases(cases, check_one)
    got_zero = float(call_answer(fn, torch.tensor([0.5, 0.0, 0.5])))
    if not math.isinf(got_zero):
        raise WrongAnswerError(
            "a zero probability on an observed token must give an infinite perplexity "
            f"(log 0 = -inf), got {got_zero}"
        )
    return note + " and a zero probability"


@exercise("ex-lm-sequential-reader", CHAPTER, solution=lambda: _reference_sequential)
def _sequential_reader(fn: Any) -> str:
    """``fn(corpus, batch_size, num_steps)`` -> iterable of (X, Y), sequential, no offset."""
    g = torch.Generator().manual_seed(1)
    cases = [
        ("range(35), batch 2, 5 steps", (list(range(35)), 2, 5)),
        ("range(100), batch 3, 4 steps", (list(range(100)), 3, 4)),
        ("a batch of one row", (list(range(20)), 1, 6)),
        ("random token ids", (torch.randint(0, 9, (61,), generator=g).tolist(), 4, 3)),
    ]

    def check_one(args) -> None:
        got = call_answer(fn, *args)
        try:
            got = [(torch.as_tensor(x), torch.as_tensor(y)) for x, y in got]
        except (TypeError, ValueError):
            raise WrongAnswerError("yield (or return a list of) pairs (X, Y) of tensors") from None
        expected = _reference_sequential(*args)
        check_equal(len(got), len(expected), name="the number of minibatches", reveal=False)
        for i, ((x, y), (ex, ey)) in enumerate(zip(got, expected, strict=True)):
            if x.shape != ex.shape:
                raise WrongAnswerError(
                    f"minibatch {i}: X should have shape (batch_size, num_steps) = "
                    f"{tuple(ex.shape)}, got {tuple(x.shape)}"
                )
            if not torch.equal(x.long(), ex):
                if i > 0 and not torch.equal(x[:, 0].long(), expected[i - 1][0][:, -1] + 1):
                    raise WrongAnswerError(
                        f"minibatch {i} does not continue minibatch {i - 1}: row b of X must "
                        "start right after where row b of the previous X ended"
                    )
                raise WrongAnswerError(
                    f"minibatch {i}: X differs; split the corpus into batch_size contiguous rows"
                )
            if not torch.equal(y.long(), ey):
                raise WrongAnswerError(f"minibatch {i}: Y must be X shifted by one token")

    return over_cases(cases, check_one)


@exercise(
    "ex-lm-laplace-bigram",
    CHAPTER,
    solution=lambda: _laplace_bigram(TOY_CORPUS, "the", "cat"),
)
def _laplace_bigram_check(answer: Any) -> None:
    """The exact Laplace-smoothed P(cat | the) on ``TOY_CORPUS`` with eps1 = eps2 = 1."""
    expected = _laplace_bigram(TOY_CORPUS, "the", "cat")
    if isinstance(answer, float):
        raise WrongAnswerError(
            "give an exact fractions.Fraction (build it from Fraction(...) pieces), not a float"
        )
    if not isinstance(answer, Fraction | int):
        raise WrongAnswerError(
            f"answer should be a fractions.Fraction, got {type(answer).__name__}"
        )
    if answer == Fraction(2, 4):
        raise WrongAnswerError("that is the unsmoothed ratio n(the, cat) / n(the); smooth it")
    if answer == Fraction(3, 5):
        raise WrongAnswerError(
            "close: the pseudo-count eps2 multiplies the smoothed unigram P(cat), not 1"
        )
    check_equal(answer, expected, name="P(cat | the)", reveal=False)


@exercise("ex-lm-frames", CHAPTER, solution=lambda: _n_frames(3.0, 8000, 25, 10))
def _frames(answer: Any) -> None:
    """Frames in 3 s of 8 kHz audio, 25 ms windows every 10 ms."""
    if not isinstance(answer, int):
        raise WrongAnswerError(f"answer should be an int, got {type(answer).__name__}")
    if answer == 300:
        raise WrongAnswerError(
            "3 s / 10 ms = 300 counts hops, but the last window must fit inside the signal"
        )
    check_equal(answer, _n_frames(3.0, 8000, 25, 10), name="number of frames", reveal=False)
