"""Tests of dlcourse.text and the chapter 4.1 helpers in dlcourse.data and dlcourse.train."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlcourse import data, text
from dlcourse.exercises import WrongAnswerError, check
from dlcourse.exercises.language_models import TOY_CORPUS
from dlcourse.train import k_step_forecast, perplexity, perplexity_from_probs

# --------------------------------------------------------------------------------------------
# tokens and vocabularies


def test_tokenize_chars_keeps_every_character():
    assert text.tokenize(["Ab c!"]) == [["A", "b", " ", "c", "!"]]
    assert text.tokenize("ab", lower=True) == [["a", "b"]]


def test_tokenize_words_drops_punctuation_keeps_inner_apostrophes():
    lines = ["O'er the hills, 'tis TWO-fold!", "3 men"]
    assert text.tokenize(lines, "word", lower=True) == [
        ["o'er", "the", "hills", "tis", "two", "fold"],
        ["men"],
    ]


def test_tokenize_rejects_bad_input():
    with pytest.raises(ValueError, match="token"):
        text.tokenize(["a"], "subword")
    with pytest.raises(TypeError, match="lines"):
        text.tokenize([1, 2])


def test_vocab_reserved_tokens_first_unknown_is_zero():
    vocab = text.Vocab(
        [["b", "a", "b"], ["c", "b", "a"]], reserved_tokens=("<pad>", "<bos>", "<eos>")
    )
    assert vocab.idx_to_token == ["<unk>", "<pad>", "<bos>", "<eos>", "b", "a", "c"]
    assert vocab["zzz"] == 0 == vocab.unk
    assert vocab[["a", "q"]] == [5, 0]
    assert vocab.to_tokens(torch.tensor([4, 6])) == ["b", "c"]
    assert vocab.token_freqs == [("b", 3), ("a", 2), ("c", 1)]
    assert len(vocab) == 7 and "a" in vocab


def test_vocab_min_freq_and_round_trip_for_words_and_chars():
    words = "the cat and the hat and the end".split()
    vocab = text.Vocab(words, min_freq=2)
    assert vocab.idx_to_token == ["<unk>", "the", "and"]
    chars = list("hello world")
    vocab = text.Vocab(chars)
    assert "".join(vocab.to_tokens(vocab[chars])) == "hello world"
    with pytest.raises(ValueError, match="min_freq"):
        text.Vocab(words, min_freq=-1)
    with pytest.raises(ValueError, match="reserved_tokens"):
        text.Vocab(words, reserved_tokens=("<pad>", "<pad>"))


def test_ngram_counts_hand_computed():
    counts = text.ngram_counts("abab", 2)
    assert counts == {("a", "b"): 2, ("b", "a"): 1}
    assert text.ngram_counts("ab", 3) == {}
    with pytest.raises(ValueError, match="n must"):
        text.ngram_counts("ab", 0)


def test_zipf_slope_recovers_a_power_law():
    ranks = np.arange(1, 2001)
    freqs = np.round(1e7 * ranks**-1.2)
    assert text.zipf_slope(freqs, (10, 1000)) == pytest.approx(-1.2, abs=1e-3)
    with pytest.raises(ValueError, match="rank_range"):
        text.zipf_slope(freqs, (5, 5))
    with pytest.raises(ValueError, match="freqs"):
        text.zipf_slope([3, 2, 1], (10, 1000))


# --------------------------------------------------------------------------------------------
# n-gram language model


def _toy_ids():
    vocab = text.Vocab(TOY_CORPUS, reserved_tokens=())
    return vocab, torch.tensor(vocab[TOY_CORPUS])


def test_ngram_lm_matches_the_laplace_formula_exactly():
    vocab, ids = _toy_ids()
    # the toy vocabulary has <unk> too: m = 9 types; the formula with m = 9
    m, n = len(vocab), len(ids)
    p_cat = (Fraction(2) + Fraction(1, m)) / (n + 1)
    p_cat_given_the = (2 + p_cat) / (4 + 1)
    lm = text.NgramLM(2, len(vocab), eps=1.0).fit(ids)
    probs = lm.next_token_probs([vocab["the"]])
    assert probs[vocab["cat"]].item() == pytest.approx(float(p_cat_given_the), rel=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_ngram_lm_probabilities_sum_to_one_and_agree_with_token_probs(n):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 6, (300,), generator=g)
    lm = text.NgramLM(n, 6, eps=0.5).fit(ids[:250])
    test_ids = ids[250:]
    per_token = lm.token_probs(test_ids)
    for t in (0, 1, 5, 49):
        probs = lm.next_token_probs(test_ids[:t])
        assert probs.sum().item() == pytest.approx(1.0, abs=1e-12)
        assert per_token[t].item() == pytest.approx(probs[test_ids[t]].item(), rel=1e-12)
    assert lm.log_prob(test_ids) == pytest.approx(per_token.log().sum().item())
    assert lm.perplexity(test_ids) == pytest.approx(perplexity_from_probs(per_token))


def test_unsmoothed_unseen_bigram_gives_infinite_perplexity():
    lm = text.NgramLM(2, 3, eps=0.0).fit(torch.tensor([0, 1, 0, 1, 2]))
    assert lm.token_probs(torch.tensor([0, 2])).tolist() == [0.4, 0.0]
    assert math.isinf(lm.perplexity(torch.tensor([0, 2])))
    lm.eps = 1.0  # eps is only used when predicting
    assert math.isfinite(lm.perplexity(torch.tensor([0, 2])))


def test_unseen_context_falls_back_to_the_shorter_context():
    lm = text.NgramLM(2, 4, eps=1.0).fit(torch.tensor([0, 1, 0, 1]))
    torch.testing.assert_close(lm.next_token_probs([3]), lm.next_token_probs([]))


def test_ngram_lm_generate_is_seeded_and_greedy_at_zero_temperature():
    lm = text.NgramLM(2, 3, eps=0.1).fit(torch.tensor([0, 1, 2] * 20))
    assert lm.generate([0], 5, temperature=0) == [0, 1, 2, 0, 1, 2]
    a = lm.generate([0], 20, generator=torch.Generator().manual_seed(3))
    b = lm.generate([0], 20, generator=torch.Generator().manual_seed(3))
    assert a == b and len(a) == 21


def test_ngram_lm_rejects_bad_input():
    with pytest.raises(ValueError, match="n must"):
        text.NgramLM(0, 5)
    with pytest.raises(ValueError, match="eps"):
        text.NgramLM(2, 5, eps=-1.0)
    with pytest.raises(ValueError, match="ids"):
        text.NgramLM(2, 5).fit(torch.tensor([0, 7]))
    with pytest.raises(ValueError, match="vocab_size"):
        text.NgramLM(8, 300_000)


# --------------------------------------------------------------------------------------------
# minibatches of a long sequence


def test_sequential_batches_continue_each_other_and_targets_shift_by_one():
    batches = list(text.seq_data_iter_sequential(list(range(35)), 2, 5, offset=0))
    assert len(batches) == 3
    for (x1, _), (x2, _) in zip(batches, batches[1:], strict=False):
        assert torch.equal(x2[:, 0], x1[:, -1] + 1)
    for x, y in batches:
        assert x.shape == (2, 5) and torch.equal(y, x + 1)


def test_sequential_reader_covers_every_token_over_random_offsets():
    corpus = torch.arange(97)  # 96 = 8 batches of 3 rows x 4 steps, plus one last target
    covered = set()
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        xs = [x for x, _ in text.seq_data_iter_sequential(corpus, 3, 4, generator=g)]
        flat = torch.cat([x.flatten() for x in xs])
        assert len(set(flat.tolist())) == len(flat)  # no token twice in an epoch
        covered |= set(flat.tolist())
    assert covered == set(range(96))  # every token but the last, which is only a target


def test_random_windows_do_not_overlap_and_cover_every_token():
    corpus = torch.arange(35)
    g = torch.Generator().manual_seed(0)
    covered = set()
    for _ in range(30):
        xs = []
        for x, y in text.seq_data_iter_random(corpus, 2, 5, generator=g):
            assert x.shape == (2, 5) and torch.equal(y, x + 1)
            assert torch.equal(x[:, 1:], x[:, :-1] + 1)  # each row is a contiguous window
            xs.append(x)
        flat = torch.cat([x.flatten() for x in xs]).tolist()
        assert len(set(flat)) == len(flat)
        covered |= set(flat)
    assert covered == set(range(34))


def test_readers_reject_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        next(text.seq_data_iter_random(list(range(10)), 0, 2))
    with pytest.raises(ValueError, match="num_steps"):
        next(text.seq_data_iter_sequential(list(range(10)), 1, 20))
    with pytest.raises(ValueError, match="offset"):
        next(text.seq_data_iter_sequential(list(range(10)), 1, 2, offset=-1))


def test_frame_signal_gives_98_frames_per_second_at_16_khz():
    x = np.arange(16000.0)
    frames = text.frame_signal(x)
    assert frames.shape == (98, 400)
    np.testing.assert_array_equal(frames[3], x[480:880])
    with pytest.raises(ValueError, match="x must"):
        text.frame_signal(np.zeros((2, 400)))
    with pytest.raises(ValueError, match="hop"):
        text.frame_signal(np.zeros(1000), hop=0)


# --------------------------------------------------------------------------------------------
# corpora and series


def test_text_corpora_are_read_from_the_packages():
    kjv = data.text_corpus("kjv")
    assert len(kjv.splitlines()) == 31_103
    assert kjv.startswith("In the beginning God created the heaven and the earth.")
    names = data.text_corpus("names").splitlines()
    assert names[0] == "james" and len(names) == len(set(names)) > 5000
    assert data.text_corpus("surnames", max_chars=5) == "smith"
    with pytest.raises(ValueError, match="name"):
        data.text_corpus("quran")
    with pytest.raises(ValueError, match="max_chars"):
        data.text_corpus("kjv", max_chars=0)


def test_shakespeare_plays_join_to_the_whole_corpus():
    plays = data.shakespeare_plays()
    assert len(plays) == 38
    assert plays["Hamlet"][0] == "tragedies"
    assert plays["Measure for Measure"][0] == "problems"
    assert "\n\n".join(t for _, t in plays.values()) == data.text_corpus("shakespeare")


def test_sine_series_and_lagged_features():
    x = data.sine_series(50, noise=0.0)
    torch.testing.assert_close(x, torch.sin(0.01 * torch.arange(1, 51.0)))
    assert torch.equal(data.sine_series(10, seed=1), data.sine_series(10, seed=1))
    feats, labels = data.lagged_features(torch.arange(10.0), 4)
    assert feats.shape == (6, 4) and labels.shape == (6,)
    assert feats[2].tolist() == [2, 3, 4, 5] and labels[2].item() == 6
    with pytest.raises(ValueError, match="tau"):
        data.lagged_features(torch.arange(3.0), 3)


# --------------------------------------------------------------------------------------------
# perplexity and forecasting


def test_perplexity_is_exp_of_torch_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=g)
    targets = torch.randint(0, 11, (3, 7), generator=g)
    targets[0, :3] = -100
    expected = math.exp(F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1)).item())
    assert perplexity(logits, targets) == pytest.approx(expected, rel=1e-6)
    assert perplexity(torch.zeros(5, 28), torch.arange(5)) == pytest.approx(28.0)
    with pytest.raises(ValueError, match="targets"):
        perplexity(logits, targets[:, :3])


def test_perplexity_from_probs_is_the_geometric_mean_of_inverse_probs():
    p = torch.tensor([0.5, 0.25, 0.1, 0.8])
    assert perplexity_from_probs(p) == pytest.approx(10**0.5, rel=1e-7)
    assert perplexity_from_probs(torch.full((10_000,), 1e-3)) == pytest.approx(1000.0)
    assert math.isinf(perplexity_from_probs(torch.tensor([0.5, 0.0])))
    with pytest.raises(ValueError, match="p_true"):
        perplexity_from_probs(torch.tensor([1.5]))


class _PlusOne(nn.Module):
    """Predicts the last value plus one."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x[:, -1:] + 1 + self.dummy


def test_k_step_forecast_feeds_predictions_back():
    x = torch.arange(20.0)
    x[10:] = 0.0  # the model never sees these when it starts early enough
    preds = k_step_forecast(_PlusOne(), x, tau=3, k=5)
    assert preds.shape == (20 - 3 - 5 + 1, 5)
    torch.testing.assert_close(preds[0], torch.tensor([3.0, 4, 5, 6, 7]))
    with pytest.raises(ValueError, match="k must"):
        k_step_forecast(_PlusOne(), x, tau=3, k=18)


# --------------------------------------------------------------------------------------------
# exercise checks reject typical wrong answers


def test_exercise_checks_reject_wrong_answers():
    def harmonic(p):
        return len(p) / float(torch.as_tensor(p).sum())

    def naive_product(p):
        return float(torch.prod(1 / torch.as_tensor(p, dtype=torch.float32)) ** (1 / len(p)))

    for wrong in (harmonic, naive_product):
        with pytest.raises(WrongAnswerError):
            check("ex-lm-perplexity-from-probs", wrong)

    def overlapping(corpus, batch_size, num_steps):
        c = torch.as_tensor(corpus)
        return [(c[i : i + num_steps][None].repeat(batch_size, 1),) * 2 for i in range(3)]

    with pytest.raises(WrongAnswerError):
        check("ex-lm-sequential-reader", overlapping)
    for wrong in (Fraction(1, 2), Fraction(3, 5), 0.4327):
        with pytest.raises(WrongAnswerError):
            check("ex-lm-laplace-bigram", wrong)
    with pytest.raises(WrongAnswerError, match="window"):
        check("ex-lm-frames", 300)
