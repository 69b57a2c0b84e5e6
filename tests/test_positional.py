"""Tests for the positional encodings of chapter 5.2 (dlcourse.attention) and offset_copy_task."""

import math

import pytest
import torch
from torch import nn

from dlcourse.attention import (
    POSITION_KINDS,
    LearnedPositionalEmbedding,
    MultiHeadAttention,
    PositionalSelfAttention,
    RelativeBias,
    alibi_bias,
    alibi_slopes,
    relative_position_bucket,
    rope,
    sinusoidal_offset_rotation,
    sinusoidal_pe,
)
from dlcourse.conv import check_equivariance
from dlcourse.data import offset_copy_task
from dlcourse.diffusion import timestep_embedding
from dlcourse.exercises import check
from dlcourse.exercises.core import WrongAnswerError


def test_sinusoidal_pe_matches_formula_and_norms():
    pe = sinusoidal_pe(50, 64, dtype=torch.float64)
    p, i = 7, 5
    assert pe[p, 2 * i].item() == pytest.approx(math.sin(p / 10000 ** (2 * i / 64)))
    assert pe[p, 2 * i + 1].item() == pytest.approx(math.cos(p / 10000 ** (2 * i / 64)))
    expected = torch.tensor([0.8415, 0.5403, 0.6816, 0.7318], dtype=torch.float64)
    torch.testing.assert_close(pe[1, :4], expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(pe.norm(dim=1), torch.full((50,), math.sqrt(32.0), dtype=pe.dtype))
    assert sinusoidal_pe(3, 4).dtype == torch.float32


def test_sinusoidal_shift_is_a_fixed_rotation():
    pe = sinusoidal_pe(80, 32, dtype=torch.float64)
    for k in (1, 5, 17, -4):
        R = sinusoidal_offset_rotation(k, 32)
        torch.testing.assert_close(R @ R.T, torch.eye(32, dtype=torch.float64))
        lo, hi = max(0, -k), 80 - max(0, k)
        torch.testing.assert_close(pe[lo:hi] @ R, pe[lo + k : hi + k], atol=1e-12, rtol=0)
    gram = pe @ pe.T
    offsets = torch.diagonal(gram, offset=5)
    torch.testing.assert_close(offsets, torch.full_like(offsets, offsets[0].item()))


def test_sinusoidal_pe_is_a_column_permutation_of_timestep_embedding():
    t = torch.arange(20)
    pe = sinusoidal_pe(20, 16)
    torch.testing.assert_close(timestep_embedding(t, 16), torch.cat([pe[:, 1::2], pe[:, 0::2]], 1))


def test_sinusoidal_pe_rejects_bad_arguments():
    with pytest.raises(ValueError, match="d must be even"):
        sinusoidal_pe(4, 7)
    with pytest.raises(ValueError, match="n must be"):
        sinusoidal_pe(0, 8)
    with pytest.raises(ValueError, match="base"):
        sinusoidal_pe(4, 8, base=1.0)
    with pytest.raises(ValueError, match="k must be"):
        sinusoidal_offset_rotation(1.5, 8)


def test_learned_embedding_counts_and_raises_past_max_len():
    table = LearnedPositionalEmbedding(512, 768)
    assert sum(p.numel() for p in table.parameters()) == 393_216
    assert table(torch.arange(512)).shape == (512, 768)
    with pytest.raises(ValueError, match="max_len=512"):
        table(torch.arange(513))
    with pytest.raises(ValueError, match="max_len"):
        table(torch.tensor([-1]))
    with pytest.raises(TypeError, match="positions"):
        table(torch.zeros(3))


def test_rope_scores_depend_only_on_offset():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(200, 16, generator=g, dtype=torch.float64)
    k = torch.randn(200, 16, generator=g, dtype=torch.float64)

    def score(m: int, n: int) -> torch.Tensor:
        qm = rope(q[:, None], torch.tensor([m]))[:, 0]
        kn = rope(k[:, None], torch.tensor([n]))[:, 0]
        return (qm * kn).sum(-1)

    for offset in (-7, 0, 3, 40):
        base = score(0 + max(0, -offset), max(0, -offset) + offset)
        for m in (5, 100, 1234):
            torch.testing.assert_close(score(m, m + offset), base, atol=1e-9, rtol=1e-9)
    x = torch.randn(3, 2, 10, 16, generator=g, dtype=torch.float64)
    torch.testing.assert_close(rope(x).norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(rope(x, torch.zeros(10)), x)


def test_rope_equals_complex_multiplication():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 12, 8, generator=g, dtype=torch.float64)
    pos = torch.arange(12, dtype=torch.float64)
    theta = 10000.0 ** (-torch.arange(4, dtype=torch.float64) * 2 / 8)
    z = torch.view_as_complex(x.reshape(2, 12, 4, 2).contiguous())
    rotated = torch.view_as_real(
        z * torch.polar(torch.ones(12, 4, dtype=x.dtype), pos[:, None] * theta)
    )
    torch.testing.assert_close(rope(x), rotated.reshape(2, 12, 8))


def test_rope_rejects_bad_input():
    with pytest.raises(ValueError, match="D"):
        rope(torch.randn(4, 5))
    with pytest.raises(ValueError, match="positions"):
        rope(torch.randn(4, 6), torch.arange(5))


def test_alibi_slopes_follow_the_paper():
    torch.testing.assert_close(alibi_slopes(8), 2.0 ** -torch.arange(1.0, 9.0))
    torch.testing.assert_close(alibi_slopes(4), torch.tensor([2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8]))
    # non-powers of two: 4 slopes of H=4, then every other slope of H=8
    six = [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3]
    torch.testing.assert_close(alibi_slopes(6), torch.tensor(six))
    twelve = [2.0**-i for i in range(1, 9)] + [2.0 ** -(i / 2) for i in (1, 3, 5, 7)]
    torch.testing.assert_close(alibi_slopes(12), torch.tensor(twelve))
    with pytest.raises(ValueError, match="n_heads"):
        alibi_slopes(0)


def test_alibi_bias_entries():
    bias = alibi_bias(8, 5)
    slopes = alibi_slopes(8)
    assert bias.shape == (8, 5, 5)
    for h, i, j in [(0, 4, 1), (7, 3, 0), (2, 2, 2)]:
        assert bias[h, i, j].item() == pytest.approx(-slopes[h].item() * (i - j))
    assert torch.isneginf(bias[:, 1, 3]).all()
    symmetric = alibi_bias(2, 4, causal=False)
    torch.testing.assert_close(symmetric, symmetric.transpose(1, 2))


@pytest.mark.parametrize(
    ("rel", "bidirectional", "bucket"),
    [(0, True, 0), (-1, True, 1), (1, True, 17), (-7, True, 7), (-8, True, 8), (-15, True, 9),
     (-16, True, 10), (-127, True, 15), (-128, True, 15), (-1000, True, 15), (1000, True, 31),
     (0, False, 0), (-1, False, 1), (5, False, 0), (-15, False, 15), (-16, False, 16),
     (-32, False, 21), (-1000, False, 31)],
)  # fmt: skip
def test_relative_position_bucket_hand_cases(rel, bidirectional, bucket):
    got = relative_position_bucket(torch.tensor([rel]), 32, 128, bidirectional=bidirectional)
    assert got.item() == bucket


def test_relative_position_bucket_is_monotone_and_rejects_floats():
    rel = -torch.arange(300)
    buckets = relative_position_bucket(rel, bidirectional=False)
    assert (buckets.diff() >= 0).all() and buckets.max() == 31
    with pytest.raises(TypeError, match="rel"):
        relative_position_bucket(torch.zeros(3))
    with pytest.raises(ValueError, match="max_distance"):
        relative_position_bucket(torch.zeros(3, dtype=torch.long), 32, 4)


def test_relative_bias_shape_and_sharing():
    rb = RelativeBias(3, num_buckets=8, max_distance=16)
    with torch.no_grad():
        rb.bias.weight.copy_(torch.arange(24.0).view(8, 3))
    b = rb(6)
    assert b.shape == (3, 6, 6)
    torch.testing.assert_close(
        torch.diagonal(b, offset=-2, dim1=1, dim2=2)[1], torch.full((4,), b[1, 2, 0].item())
    )
    assert rb(2, 5).shape == (3, 2, 5)


def test_attention_without_positions_is_permutation_equivariant():
    torch.manual_seed(0)
    perm = torch.randperm(7)
    x = torch.randn(2, 7, 16)
    for kind in POSITION_KINDS:
        layer = PositionalSelfAttention(16, 4, kind, max_len=8)
        if kind == "relative":
            nn.init.normal_(layer.relative.bias.weight)
        equivariant = check_equivariance(
            lambda t, f=layer: f(t)[0], lambda t: t[:, perm], lambda t: t[:, perm], x
        )
        assert equivariant == (kind == "none"), kind
    mha = MultiHeadAttention(16, 4)
    assert not check_equivariance(
        lambda t: mha(t, causal=True)[0], lambda t: t[:, perm], lambda t: t[:, perm], x
    )
    queries = torch.randn(2, 3, 16)
    assert check_equivariance(lambda kv: mha(queries, kv=kv)[0], lambda t: t[:, perm], None, x)


def test_positional_self_attention_rejects_unknown_kind():
    with pytest.raises(ValueError, match="position"):
        PositionalSelfAttention(8, 2, "absolute")
    with pytest.raises(ValueError, match="x must be"):
        PositionalSelfAttention(8, 2)(torch.randn(2, 3, 4))


def test_offset_copy_task_targets():
    x, y = offset_copy_task(5, 10, k=3, vocab=7, seed=0)
    assert x.shape == y.shape == (5, 10) and x.max() < 7
    assert (y[:, :3] == -100).all() and torch.equal(y[:, 3:], x[:, :-3])
    assert torch.equal(offset_copy_task(5, 10, seed=0)[0], offset_copy_task(5, 10, seed=0)[0])
    with pytest.raises(ValueError, match="k must be"):
        offset_copy_task(5, 3, k=3)


def test_positional_exercise_checks_reject_wrong_answers():
    def sin_only(n, d):
        p = torch.arange(n)[:, None].double()
        return torch.sin(p / 10000 ** (2 * (torch.arange(d) // 2) / d)).float()

    with pytest.raises(WrongAnswerError):
        check("ex-positional-sinusoidal", sin_only)

    def no_rotation(x, positions=None):
        return x.clone()

    with pytest.raises(WrongAnswerError):
        check("ex-positional-rope", no_rotation)
    with pytest.raises(WrongAnswerError):
        check("ex-positional-alibi", (2.0 ** -torch.arange(0.0, 8.0), alibi_bias(8, 5)))
    with pytest.raises(WrongAnswerError):
        check("ex-positional-concat", lambda W, x, p: x @ W[:, : x.shape[-1]].T)
