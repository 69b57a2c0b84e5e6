"""Exercise checks for chapter 5.4, Decoding: greedy, beam search, sampling."""

from __future__ import annotations

import math
from typing import Any

import torch

from .core import WrongAnswerError, call_answer, check_close, check_equal, exercise, over_cases

CHAPTER = "05-attention/04-decoding"


def _toy_lms():
    """(description, ToyLM, eos, max_len): the chapter's table and a few random ones."""
    import itertools

    from dlcourse.decoding import ToyLM

    a, b, eos = 0, 1, 2
    chapter = ToyLM(
        {(): (0.5, 0.4, 0.1), (a,): (0.4, 0.3, 0.3), (b,): (0.05, 0.9, 0.05),
         (b, b): (0.1, 0.1, 0.8)},
        eos=eos, max_len=3, default=(0.3, 0.3, 0.4),
    )  # fmt: skip
    cases = [("the chapter's table", chapter)]
    for seed in (1, 2):
        g = torch.Generator().manual_seed(seed)
        table = {
            prefix: torch.rand(4, generator=g).softmax(0).tolist()
            for length in range(3)
            for prefix in itertools.product([0, 1, 3], repeat=length)
        }
        cases.append((f"a random table over 4 tokens (seed {seed})", ToyLM(table, eos, 3)))
    return cases


def _reference_beam(step_fn, bos, eos, beam_width, max_len):
    from dlcourse.decoding import beam_search

    return beam_search(step_fn, bos, eos, beam_width, max_len)


@exercise("ex-decoding-beam", CHAPTER, solution=lambda: _reference_beam)
def _beam(answer: Any) -> str:
    """``my_beam_search(step_fn, bos, eos, beam_width, max_len) -> (ids, log_prob)``."""
    from dlcourse.decoding import exhaustive_best, greedy_decode

    def check_one(lm) -> None:
        for width, expected, what in (
            (1, greedy_decode(lm, [], lm.eos, 4), "greedy search (width 1)"),
            (200, exhaustive_best(lm, [], lm.eos, 4), "the exhaustive optimum (width 200)"),
        ):
            got = call_answer(answer, lm.step, [], lm.eos, width, 4)
            if not (isinstance(got, tuple) and len(got) == 2):
                raise WrongAnswerError("return a tuple (list of new ids, summed log-probability)")
            ids, score = got
            ids = [int(i) for i in (ids.tolist() if torch.is_tensor(ids) else ids)]
            if ids != expected[0]:
                raise WrongAnswerError(
                    f"with beam_width={width} the sequence should equal {what}; keep the "
                    "beam_width best candidates over all extensions, set those ending in eos "
                    "aside, and return the best finished one"
                )
            check_close(float(score), expected[1], rtol=1e-6, atol=1e-9, name="log_prob",
                        reveal=False)  # fmt: skip
        ids, score = call_answer(answer, lm.step, [], lm.eos, 2, 4)
        if lm.table.get(()) is not None and lm.table[()][0] == 0.5:  # the chapter's table
            check_equal([int(i) for i in ids], [1, 1, 2], name="width-2 sequence", reveal=False)
            check_close(float(score), math.log(0.288), rtol=1e-6, name="width-2 log_prob",
                        reveal=False)  # fmt: skip

    return over_cases(_toy_lms(), check_one)


def _reference_top_p(logits, p):
    from dlcourse.decoding import top_p_filter

    return top_p_filter(logits, p)


@exercise("ex-decoding-top-p", CHAPTER, solution=lambda: _reference_top_p)
def _top_p(answer: Any) -> str:
    """``my_top_p_filter(logits, p)``: logits outside the nucleus set to -inf."""
    from dlcourse.decoding import top_p_filter

    g = torch.Generator().manual_seed(0)
    cases = [
        (
            "p = (0.5, 0.3, 0.15, 0.05), top-p 0.8",
            (torch.tensor([0.5, 0.3, 0.15, 0.05]).log(), 0.8),
        ),
        ("the same, top-p 0.81", (torch.tensor([0.5, 0.3, 0.15, 0.05]).log(), 0.81)),
        ("top-p 0.3: only the top token", (torch.tensor([0.1, 0.6, 0.3]).log(), 0.3)),
        ("top-p 1 keeps everything", (torch.tensor([2.0, -1.0, 0.5]), 1.0)),
        ("a batch of random logits, top-p 0.9", (3 * torch.randn(5, 10, generator=g), 0.9)),
    ]

    def check_one(case) -> None:
        logits, p = case
        got = call_answer(answer, logits, p)
        if not torch.is_tensor(got) or got.shape != logits.shape:
            raise WrongAnswerError(f"return a tensor of shape {tuple(logits.shape)} (logits)")
        expected = top_p_filter(logits, p)
        kept, want = torch.isfinite(got), torch.isfinite(expected)
        if not torch.equal(kept, want):
            more = "too many" if kept.sum() > want.sum() else "too few"
            raise WrongAnswerError(
                f"you keep {more} tokens: keep the smallest set of most probable tokens whose "
                "probability adds up to at least p (a token is kept iff the mass of the tokens "
                "ranked above it is < p); mark the others -inf"
            )
        check_close(got[kept], expected[want], rtol=1e-5, name="kept logits", reveal=False)

    return over_cases(cases, check_one)


def _temperature_answer() -> tuple[float, ...]:
    p = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    q = p**2
    return tuple((q / q.sum()).tolist())


@exercise("ex-decoding-temperature", CHAPTER, solution=_temperature_answer)
def _temperature(answer: Any) -> None:
    """The distribution at T = 0.5 of p = (0.5, 0.3, 0.15, 0.05)."""
    got = torch.as_tensor(answer, dtype=torch.float64).flatten()
    if got.shape != (4,):
        raise WrongAnswerError("answer should hold 4 probabilities, one per token")
    if not math.isclose(float(got.sum()), 1.0, abs_tol=1e-3):
        raise WrongAnswerError("the probabilities should sum to 1: did you renormalise?")
    if torch.allclose(got, torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64), atol=1e-3):
        raise WrongAnswerError("that is the distribution at T = 1; T = 0.5 sharpens it")
    check_close(got, torch.tensor(_temperature_answer()), atol=1e-3, rtol=0, name="answer",
                reveal=False)  # fmt: skip


@exercise("ex-decoding-nat", CHAPTER, solution=lambda: 0.5)
def _nat(answer: Any) -> None:
    """Probability that independent per-position decoding of the ab/ba toy is invalid."""
    if not isinstance(answer, int | float) or isinstance(answer, bool):
        raise WrongAnswerError(f"answer should be a number, got {type(answer).__name__}")
    if not 0 <= answer <= 1:
        raise WrongAnswerError("answer is a probability: it lies in [0, 1]")
    check_close(float(answer), 0.5, atol=1e-6, name="answer", reveal=False)
