"""Exercise checks for chapter 4.4, Word embeddings: skip-gram, CBOW, negative sampling."""

from __future__ import annotations

import math
from typing import Any

import torch

from .core import WrongAnswerError, call_answer, check_close, check_equal, exercise, over_cases

CHAPTER = "04-sequences/04-word-embeddings"


def _reference_contexts(corpus, max_window):
    from dlcourse.embeddings import centers_and_contexts

    return centers_and_contexts(corpus, max_window, random_window=False)


def _reference_noise(counts, power=0.75):
    from dlcourse.embeddings import noise_weights

    return noise_weights(dict(enumerate(counts)), list(range(len(counts))), power)


def _reference_code_lengths(counts):
    from dlcourse.embeddings import huffman_codes

    codes = huffman_codes(list(counts))
    return [len(codes[i]) for i in range(len(counts))]


def _reference_skipgram_grad(v_c, U, o):
    """d log P(o | c) / d v_c = u_o - sum_j P(j | c) u_j."""
    probs = torch.softmax(U @ v_c, dim=0)
    return U[o] - probs @ U


@exercise("ex-emb-centers-contexts", CHAPTER, solution=lambda: _reference_contexts)
def _centers_contexts(fn: Any) -> str:
    """``fn(corpus, max_window)`` -> (centres, contexts) with a fixed window."""
    cases = [
        ("the chapter's two sentences, window 2", ([[0, 1, 2, 3, 4, 5, 6], [7, 8, 9]], 2)),
        ("window 1", ([[0, 1, 2, 3, 4, 5, 6], [7, 8, 9]], 1)),
        ("a window wider than the sentence", ([[4, 2, 7]], 5)),
        ("one-word and empty sentences give no pairs", ([[3], [], [1, 1, 2]], 2)),
    ]

    def check_one(args) -> None:
        got = call_answer(fn, *args)
        if not isinstance(got, tuple | list) or len(got) != 2:
            raise WrongAnswerError("return a pair (centres, contexts) of lists")
        centers, contexts = (list(x) for x in got)
        expected_centers, expected_contexts = _reference_contexts(*args)
        if len(centers) != len(expected_centers):
            raise WrongAnswerError(
                f"expected {len(expected_centers)} centres, got {len(centers)}: every word of a "
                "sentence of at least two words is a centre, shorter sentences give none"
            )
        check_equal([int(c) for c in centers], expected_centers, name="centres", reveal=False)
        for i, (got_ctx, exp_ctx) in enumerate(zip(contexts, expected_contexts, strict=True)):
            got_ctx = [int(w) for w in got_ctx]
            if sorted(got_ctx) == sorted(exp_ctx) and got_ctx != exp_ctx:
                raise WrongAnswerError(
                    f"centre {i}: right words, wrong order; list them as they appear in the "
                    "sentence (left neighbours first)"
                )
            if got_ctx != exp_ctx:
                raise WrongAnswerError(
                    f"centre {i} (word {centers[i]}): wrong context words; take the words at "
                    "positions i - max_window .. i + max_window except i, inside the sentence"
                )

    return over_cases(cases, check_one)


@exercise("ex-emb-noise", CHAPTER, solution=lambda: _reference_noise)
def _noise(fn: Any) -> str:
    """``fn(counts, power=0.75)`` -> the noise distribution, a 1-D tensor summing to 1."""
    g = torch.Generator().manual_seed(0)
    cases = [
        ("counts (1, 8, 27)", ([1, 8, 27], 0.75)),
        ("power 1: the unigram distribution", ([1, 8, 27], 1.0)),
        ("power 0: uniform", ([3, 50, 7, 1], 0.0)),
        ("a single word", ([12], 0.75)),
        ("random counts", (torch.randint(1, 10_000, (50,), generator=g).tolist(), 0.75)),
    ]

    def check_one(args) -> None:
        got = call_answer(fn, *args)
        try:
            got = torch.as_tensor(got, dtype=torch.float64).detach().cpu()
        except (TypeError, ValueError, RuntimeError):
            raise WrongAnswerError(f"return a tensor or a list, got {type(got).__name__}") from None
        counts, power = args
        if got.shape == (len(counts),) and not math.isclose(float(got.sum()), 1.0, rel_tol=1e-6):
            raise WrongAnswerError(
                f"the probabilities sum to {float(got.sum()):.4g}: divide by their sum"
            )
        check_close(got, _reference_noise(*args), rtol=1e-5, atol=1e-8, name="P_n", reveal=False)

    return over_cases(cases, check_one)


def _check_code_lengths(counts, lengths) -> None:
    if not isinstance(lengths, list | tuple) or len(lengths) != len(counts):
        raise WrongAnswerError(f"return a list of {len(counts)} code lengths, one per word")
    lengths = [int(n) for n in lengths]
    if len(counts) > 1 and min(lengths) < 1:
        raise WrongAnswerError("every code has at least one bit when there are two words or more")
    kraft = sum(2.0**-n for n in lengths)
    if not math.isclose(kraft, 1.0):
        raise WrongAnswerError(
            f"sum of 2^-length is {kraft:.4g}, not 1: these lengths are not those of the leaves "
            "of a full binary tree (a Huffman tree)"
        )
    expected = _reference_code_lengths(counts)
    bits = sum(c * n for c, n in zip(counts, lengths, strict=True))
    best = sum(c * n for c, n in zip(counts, expected, strict=True))
    if bits != best:
        raise WrongAnswerError(
            "the lengths form a valid tree but not the cheapest one: always merge the two "
            "lightest subtrees"
        )


@exercise("ex-emb-huffman-lengths", CHAPTER, solution=lambda: _reference_code_lengths)
def _huffman_lengths(fn: Any) -> str:
    """``fn(counts)`` -> Huffman code length of each word (ties may be broken either way)."""
    g = torch.Generator().manual_seed(0)
    cases = [
        ("counts (5, 9, 12, 13, 16, 45)", [5, 9, 12, 13, 16, 45]),
        ("two words", [3, 1]),
        ("powers of two", [1, 1, 2, 4, 8, 16]),
        ("equal counts", [7] * 8),
        ("random counts", torch.randint(1, 1000, (40,), generator=g).tolist()),
    ]
    note = over_cases(cases, lambda counts: _check_code_lengths(counts, call_answer(fn, counts)))
    lengths = [int(n) for n in call_answer(fn, [5, 9, 12, 13, 16, 45])]
    check_equal(
        lengths, [4, 4, 3, 3, 3, 1], name="the lengths for (5, 9, 12, 13, 16, 45)", reveal=False
    )
    return note


@exercise("ex-emb-skipgram-grad", CHAPTER, solution=lambda: _reference_skipgram_grad)
def _skipgram_grad(fn: Any) -> str:
    """``fn(v_c, U, o)`` -> d log P(o | c) / d v_c, shape (d,)."""
    g = torch.Generator().manual_seed(0)
    cases = [
        ("V = 10, d = 4", (torch.randn(4, generator=g), torch.randn(10, 4, generator=g), 3)),
        ("V = 50, d = 8", (torch.randn(8, generator=g), torch.randn(50, 8, generator=g), 0)),
        ("a single word", (torch.randn(3, generator=g), torch.randn(1, 3, generator=g), 0)),
        (
            "large scores",
            (10 * torch.randn(5, generator=g), 10 * torch.randn(20, 5, generator=g), 7),
        ),
    ]

    def check_one(args) -> None:
        v_c, U, o = args
        got = call_answer(fn, v_c, U, o)
        if not torch.is_tensor(got):
            raise WrongAnswerError(f"return a tensor of shape (d,), got {type(got).__name__}")
        expected = _reference_skipgram_grad(v_c, U, o)
        if got.shape == expected.shape and torch.allclose(got.detach(), U[o], atol=1e-6):
            raise WrongAnswerError("you returned u_o only: subtract the expected context vector")
        check_close(got, expected, rtol=1e-4, atol=1e-5, name="the gradient", reveal=False)

    return over_cases(cases, check_one)
