"""Tests of dlcourse.embeddings, losses.masked_bce_with_logits and data.two_topic_corpus."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from dlcourse import embeddings as emb
from dlcourse.data import two_topic_corpus
from dlcourse.exercises import WrongAnswerError, check
from dlcourse.losses import masked_bce_with_logits

# --------------------------------------------------------------------------------------------
# the loss


def test_masked_bce_matches_torch_with_weights():
    g = torch.Generator().manual_seed(0)
    logits = 5 * torch.randn(6, 9, generator=g)
    labels = (torch.rand(6, 9, generator=g) > 0.5).float()
    mask = (torch.rand(6, 9, generator=g) > 0.3).float()
    mask[:, 0] = 1
    expected = F.binary_cross_entropy_with_logits(logits, labels, weight=mask, reduction="none")
    torch.testing.assert_close(
        masked_bce_with_logits(logits, labels, mask), expected.sum(1) / mask.sum(1)
    )


def test_masked_bce_ignores_padding_values():
    logits = torch.tensor([[1.0, -2.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    labels = torch.tensor([[1.0, 0.0, 0.0]])
    expected = (F.softplus(torch.tensor(-1.0)) + F.softplus(torch.tensor(-2.0))) / 2
    torch.testing.assert_close(masked_bce_with_logits(logits, labels, mask)[0], expected)


def test_masked_bce_rejects_bad_inputs():
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="mask"):
        masked_bce_with_logits(z, z, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="labels"):
        masked_bce_with_logits(z, torch.zeros(2, 4), torch.ones(2, 3))
    with pytest.raises(TypeError, match="logits"):
        masked_bce_with_logits(torch.zeros(2, 3, dtype=torch.long), z, z)


# --------------------------------------------------------------------------------------------
# data pipeline


def test_two_topic_corpus_keeps_topics_apart():
    corpus = two_topic_corpus(n_sent=300, vocab=20, sent_len=8, seed=1)
    assert len(corpus) == 300 and all(len(s) == 8 for s in corpus)
    assert all(max(s) < 10 or min(s) >= 10 for s in corpus)
    assert corpus == two_topic_corpus(n_sent=300, vocab=20, sent_len=8, seed=1)
    with pytest.raises(ValueError, match="vocab"):
        two_topic_corpus(vocab=3)


def test_discard_probability_formula():
    freqs = torch.tensor([1e-5, 1e-4, 1e-2, 0.04], dtype=torch.float64)
    expected = torch.tensor([0.0, 0.0, 0.9, 0.95], dtype=torch.float64)
    torch.testing.assert_close(emb.discard_probability(freqs, t=1e-4), expected)
    with pytest.raises(ValueError, match="freqs"):
        emb.discard_probability(torch.tensor([0.0, 0.5]))


def test_subsample_drops_frequent_words_at_the_stated_rate():
    counter = Counter({"the": 9_000, "cat": 10})  # f(the) = 0.9989
    sentences = [["the", "cat"]] * 20_000
    kept = emb.subsample(sentences, counter, t=1e-2, rng=torch.Generator().manual_seed(0))
    rate = sum("the" in s for s in kept) / len(kept)
    assert rate == pytest.approx(math.sqrt(1e-2 / (9000 / 9010)), abs=0.01)
    assert all("cat" in s for s in kept)


def test_centers_and_contexts_fixed_window():
    centers, contexts = emb.centers_and_contexts(
        [[0, 1, 2, 3, 4, 5, 6], [7, 8, 9], [10]], max_window=2, random_window=False
    )
    assert centers == list(range(10))
    assert contexts[3] == [1, 2, 4, 5]
    assert contexts[0] == [1, 2]
    assert contexts[7] == [8, 9]


def test_centers_and_contexts_random_window_within_bounds():
    g = torch.Generator().manual_seed(0)
    corpus = [list(range(30))]
    _, contexts = emb.centers_and_contexts(corpus, max_window=3, rng=g)
    assert all(1 <= len(c) <= 6 for c in contexts)
    assert {len(c) for c in contexts[3:-3]} == {2, 4, 6}
    with pytest.raises(ValueError, match="max_window"):
        emb.centers_and_contexts(corpus, max_window=0)


def test_noise_weights_hand_case():
    probs = emb.noise_weights(Counter({"a": 1, "b": 8, "c": 27}), ["<unk>", "a", "b", "c"])
    expected = torch.tensor([0.0, 0.0568, 0.2703, 0.6729], dtype=torch.float64)
    torch.testing.assert_close(probs, expected, atol=1e-4, rtol=0)
    with pytest.raises(TypeError, match="vocab"):
        emb.noise_weights(Counter({"a": 1}), 5)


def test_negatives_follow_the_noise_distribution():
    counts = Counter({i: c for i, c in enumerate([1, 8, 27, 64, 125])})
    weights = emb.noise_weights(counts, list(range(5)))
    contexts = [[0]] * 4000  # word 0 is a context everywhere, so it is never a negative
    negatives = emb.get_negatives(contexts, weights, K=5, rng=torch.Generator().manual_seed(0))
    assert all(len(n) == 5 and 0 not in n for n in negatives)
    freq = torch.bincount(torch.tensor(negatives).flatten(), minlength=5).double() / 20_000
    expected = weights.clone()
    expected[0] = 0
    torch.testing.assert_close(freq, expected / expected.sum(), atol=0.01, rtol=0)
    with pytest.raises(ValueError, match="K"):
        emb.get_negatives(contexts, weights, K=0)


def test_batchify_skipgram_pads_and_labels():
    centers, ctx_negs, masks, labels = emb.batchify_skipgram([(1, [2], [3, 4]), (5, [6, 7], [8])])
    assert centers.tolist() == [[1], [5]]
    assert ctx_negs.tolist() == [[2, 3, 4], [6, 7, 8]]
    assert masks.tolist() == [[1, 1, 1], [1, 1, 1]]
    assert labels.tolist() == [[1, 0, 0], [1, 1, 0]]
    _, ctx_negs, masks, _ = emb.batchify_skipgram([(1, [2], [3]), (5, [6, 7], [8, 9])])
    assert ctx_negs[0].tolist() == [2, 3, 0, 0] and masks[0].tolist() == [1, 1, 0, 0]


def test_batchify_cbow_candidates():
    contexts, ctx_mask, candidates, labels = emb.batchify_cbow(
        [(1, [2], [3, 4]), (5, [6, 7], [8, 9])]
    )
    assert contexts.tolist() == [[2, 0], [6, 7]] and ctx_mask.tolist() == [[1, 0], [1, 1]]
    assert candidates.tolist() == [[1, 3, 4], [5, 8, 9]]
    assert labels.tolist() == [[1, 0, 0], [1, 0, 0]]


# --------------------------------------------------------------------------------------------
# models


def test_skipgram_scores_are_dot_products():
    net = emb.SkipGram(10, 4)
    centers, ctx = torch.tensor([[1], [2]]), torch.tensor([[3, 4, 5], [6, 7, 8]])
    scores = net(centers, ctx)
    expected = (net.v.weight[centers] * net.u.weight[ctx]).sum(-1)
    torch.testing.assert_close(scores, expected)
    with pytest.raises(ValueError, match="ctx_negs"):
        net(centers, ctx[0])


def test_cbow_averages_real_context_words_only():
    net = emb.CBOW(10, 4)
    contexts, mask = torch.tensor([[1, 2, 0]]), torch.tensor([[1.0, 1.0, 0.0]])
    scores = net(contexts, mask, torch.tensor([[5, 6]]))
    v_bar = (net.v.weight[1] + net.v.weight[2]) / 2
    torch.testing.assert_close(scores[0], net.u.weight[[5, 6]] @ v_bar)


# --------------------------------------------------------------------------------------------
# hierarchical softmax


def test_huffman_codes_hand_case_prefix_free():
    counts = [5, 9, 12, 13, 16, 45]
    codes = emb.huffman_codes(counts)
    assert [len(codes[i]) for i in range(6)] == [4, 4, 3, 3, 3, 1]
    assert sum(c * len(codes[i]) for i, c in enumerate(counts)) == 224
    words = list(codes.values())
    assert not any(a != b and b.startswith(a) for a in words for b in words)
    assert emb.huffman_codes([3]) == {0: "0"}
    with pytest.raises(ValueError, match="counts"):
        emb.huffman_codes([1, -2])


def test_hierarchical_softmax_sums_to_one():
    g = torch.Generator().manual_seed(0)
    counts = torch.randint(1, 100, (37,), generator=g).tolist()
    nodes, signs = emb.huffman_paths(emb.huffman_codes(counts))
    assert int(nodes.max()) == 35  # V - 1 internal nodes
    U = torch.randn(36, 8, generator=g, dtype=torch.float64)
    v = torch.randn(3, 8, generator=g, dtype=torch.float64)
    log_p = torch.stack([emb.hs_log_prob(v, nodes[[w] * 3], signs[[w] * 3], U) for w in range(37)])
    torch.testing.assert_close(log_p.exp().sum(0), torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="path_nodes"):
        emb.hs_log_prob(v, nodes[:2], signs[:2], U)


# --------------------------------------------------------------------------------------------
# evaluation


def test_nearest_tokens_by_cosine():
    vectors = torch.tensor([[1.0, 0.0], [10.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    got = emb.nearest_tokens("a", 2, vectors, ["a", "b", "c", "d"])
    assert [t for t, _ in got] == ["b", "c"]
    assert got[0][1] == pytest.approx(10 / math.sqrt(101))
    with pytest.raises(ValueError, match="query"):
        emb.nearest_tokens("z", 2, vectors, ["a", "b", "c", "d"])


def test_similarity_spearman_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    vectors = torch.randn(6, 3, generator=g)
    words = list("abcdef")
    pairs = [
        (a, b, float(i % 3)) for i, (a, b) in enumerate(zip(words, words[1:] + ["zz"], strict=True))
    ]
    rho, coverage = emb.similarity_spearman(vectors, words, pairs)
    assert coverage == pytest.approx(5 / 6)
    cos = [float(F.cosine_similarity(vectors[i], vectors[i + 1], dim=0)) for i in range(5)]
    expected = stats.spearmanr(cos, [p[2] for p in pairs[:5]]).statistic
    assert rho == pytest.approx(expected)


# --------------------------------------------------------------------------------------------
# exercise checks reject typical mistakes


def test_contexts_exercise_rejects_unordered_contexts():
    def reversed_contexts(corpus, max_window):
        centers, contexts = emb.centers_and_contexts(corpus, max_window, random_window=False)
        return centers, [c[::-1] for c in contexts]

    with pytest.raises(WrongAnswerError, match="order"):
        check("ex-emb-centers-contexts", reversed_contexts)


def test_noise_exercise_rejects_unnormalised_weights():
    with pytest.raises(WrongAnswerError, match="sum"):
        check("ex-emb-noise", lambda counts, power=0.75: torch.tensor(counts) ** power)


def test_huffman_exercise_rejects_balanced_tree():
    with pytest.raises(WrongAnswerError, match="cheapest"):
        check("ex-emb-huffman-lengths", lambda counts: [3, 3, 3, 3, 2, 2][: len(counts)]
              if len(counts) == 6 else [1] * 2 if len(counts) == 2 else None)  # fmt: skip


def test_grad_exercise_rejects_u_o_only():
    with pytest.raises(WrongAnswerError, match="u_o"):
        check("ex-emb-skipgram-grad", lambda v_c, U, o: U[o].clone())
