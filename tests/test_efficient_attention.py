"""Tests for chapter 5.6's efficient-attention kernels (dlcourse.attention) and their data."""

import math

import pytest
import torch
import torch.nn.functional as F

from dlcourse.attention import (
    causal_mask,
    cluster_mask,
    cluster_sparse_attention,
    elu_feature_map,
    kmeans_assign,
    linear_attention,
    linear_attention_recurrent,
    local_window_mask,
    lsh_buckets,
    random_feature_map,
    scaled_dot_product_attention,
    topk_attention,
    window_pair_count,
)
from dlcourse.data import clustered_tokens
from dlcourse.exercises import check
from dlcourse.exercises.core import WrongAnswerError


def _qkv(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(*shape, generator=g, dtype=dtype) for _ in range(3))


def test_window_pair_count_matches_mask_sum():
    assert window_pair_count(6, 1) == 16
    for n in range(1, 12):
        for w in range(0, 14):
            assert window_pair_count(n, w) == int(local_window_mask(n, w).sum())
    assert window_pair_count(16384, 256) == 16384 * 513 - 256 * 257


def test_wide_window_equals_full_attention_in_torch():
    q, k, v = _qkv(2, 3, 10, 8)
    out, weights = scaled_dot_product_attention(q, k, v, mask=local_window_mask(10, 10))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))
    causal_window = local_window_mask(10, 3) & causal_mask(10)
    out, weights = scaled_dot_product_attention(q, k, v, mask=causal_window)
    torch.testing.assert_close(
        out, F.scaled_dot_product_attention(q, k, v, attn_mask=causal_window)
    )
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 10, dtype=q.dtype))


def test_topk_attention_renormalises_and_reduces_to_full():
    q, k, v = _qkv(2, 7, 4)
    out, _ = topk_attention(q, k, v, k_keep=7)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))
    out, weights = topk_attention(q, k, v, k_keep=2)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 7, dtype=q.dtype))
    assert ((weights > 0).sum(-1) == 2).all()


def test_lsh_buckets_shapes_and_angular_locality():
    x = torch.randn(3, 50, 8, generator=torch.Generator().manual_seed(0))
    ids = lsh_buckets(x, 6, n_rounds=2, generator=torch.Generator().manual_seed(1))
    assert ids.shape == (2, 3, 50) and ids.dtype == torch.long
    assert 0 <= ids.min() and ids.max() < 6
    # scaling a vector does not change its angle, hence not its bucket
    again = lsh_buckets(3.0 * x, 6, n_rounds=2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(ids, again)


def test_kmeans_recovers_well_separated_clusters():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    g = torch.Generator().manual_seed(0)
    x = centres.repeat_interleave(20, 0) + 0.1 * torch.randn(60, 2, generator=g)
    ids, cents = kmeans_assign(x, 3, generator=torch.Generator().manual_seed(3))
    for block in ids.view(3, 20):
        assert (block == block[0]).all()
    assert len(set(ids.tolist())) == 3 and cents.shape == (3, 2)


def test_cluster_sparse_attention_masks_within_clusters():
    x = clustered_tokens(128, 8, 4, seed=0)
    v = torch.randn(128, 8, generator=torch.Generator().manual_seed(1))
    for method in ("kmeans", "lsh"):
        out, mask = cluster_sparse_attention(
            x, x, v, 4, method=method, generator=torch.Generator().manual_seed(0)
        )
        assert mask.diagonal().all()  # shared Q = K: every query keeps its own key
        ref, _ = scaled_dot_product_attention(x, x, v, mask=mask)
        torch.testing.assert_close(out, ref)
    ids = torch.tensor([0, 1, 0])
    assert cluster_mask(ids, ids).sum() == 5


def test_linear_attention_associative_equals_kernel_matrix_form():
    q, k, v = _qkv(2, 9, 5)
    A = elu_feature_map(q) @ elu_feature_map(k).transpose(-2, -1)
    torch.testing.assert_close(
        linear_attention(q, k, v), (A @ v) / (A.sum(-1, keepdim=True) + 1e-6)
    )


def test_causal_linear_attention_equals_recurrent_form():
    q, k, v = _qkv(2, 3, 12, 4)
    torch.testing.assert_close(
        linear_attention(q, k, v, causal=True), linear_attention_recurrent(q, k, v)
    )
    ones = torch.ones(2, 3, 12, 4, dtype=q.dtype)
    torch.testing.assert_close(
        linear_attention_recurrent(q, k, v, gate=ones), linear_attention_recurrent(q, k, v)
    )
    # a gate of 0 at step t forgets everything before t
    gate = ones.clone()
    gate[..., 6, :] = 0
    out = linear_attention_recurrent(q, k, v, gate=gate)
    tail = linear_attention_recurrent(q[..., 6:, :], k[..., 6:, :], v[..., 6:, :])
    torch.testing.assert_close(out[..., 6:, :], tail)


def test_random_features_approximate_exp_better_with_more_features():
    g = torch.Generator().manual_seed(0)
    q = 0.5 * torch.randn(20, 4, generator=g, dtype=torch.float64)
    k = 0.5 * torch.randn(20, 4, generator=g, dtype=torch.float64)
    exact = torch.exp((q * k).sum(-1))

    def mean_error(m):
        errs = []
        for seed in range(10):
            w = torch.randn(m, 4, generator=torch.Generator().manual_seed(seed), dtype=q.dtype)
            est = (random_feature_map(q, m, weights=w) * random_feature_map(k, m, weights=w)).sum(
                -1
            )
            errs.append(((est - exact) / exact).abs().mean())
        return float(torch.stack(errs).mean())

    e16, e256, e4096 = mean_error(16), mean_error(256), mean_error(4096)
    assert e16 > e256 > e4096 and e4096 < 0.05
    assert (random_feature_map(q, 8) > 0).all()


def test_bad_inputs_name_the_argument():
    q, k, v = _qkv(5, 4)
    with pytest.raises(ValueError, match="w must be"):
        local_window_mask(5, -1)
    with pytest.raises(ValueError, match="n must be"):
        window_pair_count(0, 1)
    with pytest.raises(ValueError, match="k_keep"):
        topk_attention(q, k, v, 0)
    with pytest.raises(ValueError, match="n_buckets must be even"):
        lsh_buckets(q, 3)
    with pytest.raises(ValueError, match="n_clusters"):
        kmeans_assign(q, 6)
    with pytest.raises(ValueError, match="method"):
        cluster_sparse_attention(q, k, v, 2, method="sinkhorn")
    with pytest.raises(ValueError, match="gate"):
        linear_attention_recurrent(q, k, v, gate=torch.ones(3, 4))
    with pytest.raises(ValueError, match="weights"):
        random_feature_map(q, 8, weights=torch.ones(4, 4))
    with pytest.raises(ValueError, match="v must be"):
        linear_attention(q, k, torch.ones(3))


def test_exercise_checks_reject_wrong_answers():
    with pytest.raises(WrongAnswerError):
        check("ex-efficient-pairs", lambda n, w: n * (2 * w + 1))
    with pytest.raises(WrongAnswerError):
        check("ex-efficient-linear", lambda q, k, v: linear_attention(q, k, v, causal=False))
    with pytest.raises(WrongAnswerError):  # forgot the -|x|^2/2 term
        check(
            "ex-efficient-features",
            lambda x, W: torch.exp(x @ W.T) / math.sqrt(W.shape[0]),
        )
