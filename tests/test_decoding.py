"""Tests for dlcourse.decoding: search, sampling filters, generation, repetition measures."""

import itertools
import math

import pytest
import torch

from dlcourse.attention import TinyGPT
from dlcourse.decoding import (
    ToyLM,
    apply_temperature,
    as_step_fn,
    beam_search,
    distinct_n,
    exhaustive_best,
    generate,
    greedy_decode,
    repetition_rate,
    sample_next,
    sampling_distribution,
    sequence_log_prob,
    top_k_filter,
    top_p_filter,
)
from dlcourse.exercises import WrongAnswerError, check
from dlcourse.rnn import CharRNNLM
from dlcourse.text import NgramLM

A, B, EOS = 0, 1, 2


def toy_lm() -> ToyLM:
    """The chapter's E1 table: greedy gives (a, a, eos), the optimum is (b, b, eos)."""
    table = {(): (0.5, 0.4, 0.1), (A,): (0.4, 0.3, 0.3), (B,): (0.05, 0.9, 0.05),
             (B, B): (0.1, 0.1, 0.8)}  # fmt: skip
    return ToyLM(table, eos=EOS, max_len=3, default=(0.3, 0.3, 0.4))


def random_toy_lm(seed: int, vocab: int = 3, max_len: int = 3) -> ToyLM:
    """Every prefix of at most max_len - 1 letters gets a random distribution."""
    g = torch.Generator().manual_seed(seed)
    letters = [v for v in range(vocab) if v != EOS]
    table = {}
    for length in range(max_len):
        for prefix in itertools.product(letters, repeat=length):
            table[tuple(prefix)] = torch.rand(vocab, generator=g).softmax(0).tolist()
    return ToyLM(table, eos=EOS, max_len=max_len)


def test_toy_lm_forces_eos_after_max_len():
    lm = toy_lm()
    assert torch.equal(lm.step([A, A, B]).exp(), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    assert torch.allclose(lm([B]).exp(), torch.tensor([0.05, 0.9, 0.05], dtype=torch.float64))


def test_greedy_is_not_optimal_and_beam_finds_the_optimum():
    lm = toy_lm()
    seq, score = greedy_decode(lm, [], EOS, max_len=4)
    assert seq == [A, A, EOS] and math.isclose(math.exp(score), 0.08)
    seq, score = beam_search(lm, [], EOS, beam_width=2, max_len=4)
    assert seq == [B, B, EOS] and math.isclose(math.exp(score), 0.288)
    assert exhaustive_best(lm, [], EOS, max_len=4) == (seq, score)


@pytest.mark.parametrize("seed", range(6))
def test_beam_width_one_is_greedy(seed):
    lm = random_toy_lm(seed)
    assert beam_search(lm, [], EOS, 1, 4) == greedy_decode(lm, [], EOS, 4)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_full_width_beam_equals_exhaustive(seed, alpha):
    lm = random_toy_lm(seed)
    width = 3**4  # vocabulary ** length: nothing is ever pruned
    got = beam_search(lm, [], EOS, width, 4, length_penalty=alpha)
    assert got == exhaustive_best(lm, [], EOS, 4, length_penalty=alpha)


def test_length_penalty_changes_the_winner():
    table = {(): (0.3, 0.2, 0.5), (A,): (0.9, 0.05, 0.05), (A, A): (0.05, 0.05, 0.9)}
    lm = ToyLM(table, eos=EOS, max_len=3, default=(0.3, 0.3, 0.4))
    assert beam_search(lm, [], EOS, 3, 4)[0] == [EOS]
    assert beam_search(lm, [], EOS, 3, 4, length_penalty=1.0)[0] == [A, A, EOS]


def test_sequence_log_prob_matches_search_scores():
    lm = toy_lm()
    seq, score = beam_search(lm, [], EOS, 2, 4)
    assert math.isclose(sequence_log_prob(lm, [], seq), score)


def test_temperature_values_and_limit():
    z = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    expected = torch.tensor([0.685, 0.247, 0.062, 0.007])
    torch.testing.assert_close(apply_temperature(z, 0.5).softmax(-1), expected, atol=1e-3, rtol=0)
    cold = sampling_distribution(z, temperature=0.01)
    assert cold[0] > 0.999  # T -> 0 approaches the arg-max
    torch.testing.assert_close(sampling_distribution(z, temperature=0), torch.eye(4)[0])
    torch.testing.assert_close(apply_temperature(z, 1.0), z)


def test_top_k_keeps_the_k_largest_and_ties():
    z = torch.tensor([[1.0, 3.0, 2.0, 0.0], [2.0, 2.0, 1.0, 2.0]])
    kept = torch.isfinite(top_k_filter(z, 2))
    assert kept.tolist() == [[False, True, True, False], [True, True, False, True]]
    assert torch.isfinite(top_k_filter(z, 4)).all()
    assert torch.isfinite(top_k_filter(z, 1)).sum(-1).tolist() == [1, 3]


def test_top_p_keeps_the_smallest_nucleus():
    z = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    for p, n_kept in [(0.3, 1), (0.5, 1), (0.51, 2), (0.8, 2), (0.81, 3), (0.96, 4), (1.0, 4)]:
        assert torch.isfinite(top_p_filter(z, p)).sum() == n_kept, p
    torch.testing.assert_close(
        sampling_distribution(z, top_p=0.8), torch.tensor([0.625, 0.375, 0.0, 0.0])
    )
    ties = torch.tensor([0.4, 0.2, 0.2, 0.2]).log()  # the second token is tied with two more
    assert torch.isfinite(top_p_filter(ties, 0.5)).all()
    assert torch.isfinite(top_p_filter(ties, 0.4)).sum() == 1


def test_sample_next_frequencies_match_the_filtered_softmax():
    z = torch.tensor([0.5, 0.3, 0.15, 0.05]).log().expand(20_000, 4)
    for kw in ({}, {"temperature": 0.5}, {"top_k": 3}, {"top_p": 0.8}):
        g = torch.Generator().manual_seed(0)
        draws = sample_next(z, generator=g, **kw)
        assert draws.shape == (20_000,) and draws.dtype == torch.int64
        freq = torch.bincount(draws, minlength=4) / len(draws)
        torch.testing.assert_close(freq, sampling_distribution(z[0], **kw), atol=0.015, rtol=0)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(sample_next(z[:50], generator=g1), sample_next(z[:50], generator=g2))
    assert sample_next(z[0], generator=g1).shape == ()


def test_generate_runs_on_all_model_types():
    torch.manual_seed(0)
    ids = torch.randint(0, 5, (200,))
    ngram = NgramLM(3, 5).fit(ids)
    rnn = CharRNNLM(5, hidden=8, cell="gru")
    gpt = TinyGPT(5, d=16, n_layers=1, n_heads=2, max_len=8)
    for model in (ngram, rnn, gpt, toy_lm()):
        for strategy, kw in (
            ("greedy", {}),
            ("beam", {"beam_width": 3}),
            ("sample", {"top_p": 0.9}),
        ):
            g = torch.Generator().manual_seed(0)
            out = generate(model, [1], 12, strategy=strategy, generator=g, **kw)
            assert out.dtype == torch.int64 and out[0] == 1 and 2 <= len(out) <= 13
    assert rnn.training  # generate restores the training mode


def test_generate_greedy_matches_the_models_own_argmax():
    torch.manual_seed(0)
    rnn = CharRNNLM(6, hidden=8).eval()
    out = generate(rnn, [1, 2], 10)
    with torch.no_grad():
        for t in range(2, len(out)):
            logits, _ = rnn(out[None, :t])
            assert int(logits[0, -1].argmax()) == out[t]
    gpt = TinyGPT(6, d=16, n_layers=1, n_heads=2, max_len=32).eval()
    out = generate(gpt, [3], 10)
    with torch.no_grad():
        assert torch.equal(gpt(out[None, :-1])[0].argmax(-1), out[1:])


def test_cached_rnn_steps_match_a_full_forward_pass():
    torch.manual_seed(0)
    rnn = CharRNNLM(6, hidden=8, cell="lstm").eval()
    step = as_step_fn(rnn)
    step([1, 2])
    with torch.no_grad():
        full = torch.log_softmax(rnn(torch.tensor([[1, 2, 3]]))[0][0, -1].double(), -1)
    torch.testing.assert_close(step([1, 2, 3]), full)


def test_repetition_measures():
    assert distinct_n([1, 2, 3, 4], 2) == 1.0
    assert repetition_rate([1, 2, 3, 4], 2) == 0.0
    assert distinct_n([1, 2, 1, 2, 1, 2], 2) == pytest.approx(2 / 5)
    assert repetition_rate(torch.tensor([7] * 10), 4) == pytest.approx(1 - 1 / 7)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: greedy_decode(toy_lm(), [], EOS, 0), "max_len"),
        (lambda: beam_search(toy_lm(), [], EOS, 0, 4), "beam_width"),
        (lambda: beam_search(toy_lm(), [], EOS, 2, 4, length_penalty=-1), "length_penalty"),
        (lambda: greedy_decode(toy_lm(), "ab", EOS, 3), "bos"),
        (lambda: apply_temperature(torch.zeros(3), 0.0), "temperature"),
        (lambda: top_k_filter(torch.zeros(3), 0), "k"),
        (lambda: top_p_filter(torch.zeros(3), 0.0), "p"),
        (lambda: top_p_filter(torch.zeros(3), 1.5), "p"),
        (lambda: top_k_filter(torch.zeros(3, dtype=torch.long), 1), "logits"),
        (lambda: generate(toy_lm(), [], 0), "max_new"),
        (lambda: generate(toy_lm(), [], 3, strategy="nucleus"), "strategy"),
        (lambda: generate(toy_lm(), [], 3, beam_width=2), "beam_width"),
        (lambda: distinct_n([1, 2], 3), "ids"),
        (lambda: ToyLM({(): (0.5, 0.6)}, eos=1, max_len=2), "table"),
        (lambda: ToyLM({(): (0.5, 0.5)}, eos=2, max_len=2), "eos"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_generate_rejects_unknown_models():
    with pytest.raises(TypeError, match="model_or_step_fn"):
        generate(42, [1], 3)


def test_exercise_checks_reject_wrong_answers():
    def greedy_only(step_fn, bos, eos, beam_width, max_len):
        return greedy_decode(step_fn, bos, eos, max_len)

    with pytest.raises(WrongAnswerError):
        check("ex-decoding-beam", greedy_only)

    def top_p_inclusive_of_next(logits, p):  # keeps one token too many
        return top_p_filter(logits, min(1.0, p + 0.2))

    with pytest.raises(WrongAnswerError):
        check("ex-decoding-top-p", top_p_inclusive_of_next)
    with pytest.raises(WrongAnswerError):
        check("ex-decoding-temperature", (0.5, 0.3, 0.15, 0.05))
    with pytest.raises(WrongAnswerError):
        check("ex-decoding-nat", 0.25)
