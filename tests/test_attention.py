"""Tests for dlcourse.attention: against PyTorch's built-ins, hand-computed cases, bad input."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dlcourse.attention import (
    AdditiveAttention,
    MultiHeadAttention,
    attention_cost,
    causal_mask,
    masked_softmax,
    merge_heads,
    padding_mask,
    scaled_dot_product_attention,
    self_attention_column,
    split_heads,
)
from dlcourse.exercises import EXERCISES, NotDoneError, WrongAnswerError, check


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def qkv(gen, b=2, h=3, t_q=5, t_k=7, d=8, d_v=6):
    return (
        torch.randn(b, h, t_q, d, generator=gen),
        torch.randn(b, h, t_k, d, generator=gen),
        torch.randn(b, h, t_k, d_v, generator=gen),
    )


def test_sdpa_matches_torch(gen):
    q, k, v = qkv(gen)
    out, weights = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5))


def test_sdpa_causal_matches_torch(gen):
    for t_q, t_k in ((6, 6), (4, 7)):
        q, k, v = qkv(gen, t_q=t_q, t_k=t_k)
        out, weights = scaled_dot_product_attention(q, k, v, causal=True)
        torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True))
        assert (weights.triu(1) == 0).all()


def test_sdpa_bool_and_float_masks_match_torch(gen):
    q, k, v = qkv(gen)
    mask = padding_mask(torch.tensor([7, 3]), 7)[:, None, None, :]
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert (weights[1, ..., 3:] == 0).all()
    bias = torch.randn(5, 7, generator=gen)
    out, _ = scaled_dot_product_attention(q, k, v, mask=bias, scale=0.3)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=0.3)
    torch.testing.assert_close(out, expected)


def test_fully_masked_row_gives_zero_output_and_finite_grad(gen):
    q, k, v = qkv(gen, b=1, h=1, t_q=3, t_k=4)
    q.requires_grad_()
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1] = False
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    assert (weights[..., 1, :] == 0).all() and (out[..., 1, :] == 0).all()
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    out.sum().backward()
    assert torch.isfinite(q.grad).all() and (q.grad[..., 1, :] == 0).all()


def test_masked_softmax_valid_lens_hand_case():
    scores = torch.zeros(2, 2, 4)
    p = masked_softmax(scores, valid_lens=torch.tensor([2, 4]))
    torch.testing.assert_close(p[0], torch.tensor([[0.5, 0.5, 0.0, 0.0]] * 2))
    torch.testing.assert_close(p[1], torch.full((2, 4), 0.25))
    per_query = masked_softmax(torch.zeros(1, 2, 3, 4), valid_lens=torch.tensor([[1, 0, 3]]))
    torch.testing.assert_close(per_query[0, 0, :, :], torch.tensor(
        [[1.0, 0, 0, 0], [0, 0, 0, 0], [1 / 3, 1 / 3, 1 / 3, 0]]))  # fmt: skip


def test_masked_softmax_without_mask_is_softmax(gen):
    s = torch.randn(3, 5, generator=gen)
    torch.testing.assert_close(masked_softmax(s, dim=0), torch.softmax(s, dim=0))


def test_causal_and_padding_masks_hand_case():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True] * 3]
    assert causal_mask(2, 3).tolist() == [[True, False, False], [True, True, False]]
    assert padding_mask(torch.tensor([1, 3, 0]), 3).tolist() == [
        [True, False, False], [True, True, True], [False, False, False]]  # fmt: skip


def test_column_layout_is_transposed_row_layout(gen):
    I = torch.randn(6, 5, generator=gen)  # noqa: E741
    Wq, Wk, Wv = (torch.randn(4, 6, generator=gen) for _ in range(3))
    out_rows, _ = scaled_dot_product_attention(I.T @ Wq.T, I.T @ Wk.T, I.T @ Wv.T)
    torch.testing.assert_close(self_attention_column(I, Wq, Wk, Wv), out_rows.T)


def test_additive_attention_matches_its_formula_and_masks(gen):
    torch.manual_seed(0)
    attn = AdditiveAttention(q_dim=3, k_dim=5, hidden=4)
    qs, ks = torch.randn(2, 2, 3, generator=gen), torch.randn(2, 6, 5, generator=gen)
    vs = torch.randn(2, 6, 2, generator=gen)
    out, weights = attn(qs, ks, vs, valid_lens=torch.tensor([6, 2]))
    b, i, j = 0, 1, 4
    score = attn.w_v.weight @ torch.tanh(attn.W_q.weight @ qs[b, i] + attn.W_k.weight @ ks[b, j])
    scores = torch.stack([(attn.w_v.weight @ torch.tanh(attn.W_q.weight @ qs[b, i]
                                                        + attn.W_k.weight @ ks[b, m]))[0]
                          for m in range(6)])  # fmt: skip
    torch.testing.assert_close(weights[b, i], torch.softmax(scores, 0))
    assert math.isclose(scores[j].item(), score.item(), rel_tol=1e-6)
    assert (weights[1, :, 2:] == 0).all()
    torch.testing.assert_close(out, weights @ vs)


def test_split_merge_round_trip_and_layout(gen):
    x = torch.randn(2, 5, 12, generator=gen)
    heads = split_heads(x, 4)
    assert heads.shape == (2, 4, 5, 3)
    assert torch.equal(heads[:, 2], x[..., 6:9])
    assert torch.equal(merge_heads(heads), x)


@pytest.mark.parametrize("n_heads", [1, 4])
def test_multihead_matches_torch_with_masks(gen, n_heads):
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(8, n_heads, batch_first=True)
    ours = MultiHeadAttention(8, n_heads).load_from_torch(ref)
    x = torch.randn(2, 5, 8, generator=gen)
    lengths = torch.tensor([5, 3])
    expected, expected_w = ref(x, x, x, key_padding_mask=~padding_mask(lengths, 5),
                               attn_mask=~causal_mask(5), average_attn_weights=False)  # fmt: skip
    got, got_w = ours(x, causal=True, valid_lens=lengths)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got_w, expected_w)


def test_multihead_cross_attention_matches_torch(gen):
    torch.manual_seed(1)
    ref = nn.MultiheadAttention(6, 2, batch_first=True, bias=False)
    ours = MultiHeadAttention(6, 2, bias=False).load_from_torch(ref)
    x, mem = torch.randn(2, 3, 6, generator=gen), torch.randn(2, 7, 6, generator=gen)
    torch.testing.assert_close(ours(x, kv=mem)[0], ref(x, mem, mem)[0])


def test_multihead_parameter_count_is_independent_of_heads():
    for h in (1, 8, 16):
        assert sum(p.numel() for p in MultiHeadAttention(512, h).parameters()) == 1_050_624


def test_attention_cost_analytic_values():
    assert attention_cost("cnn", 64, 64, k=3)["max_path_length"] == 32
    assert attention_cost("rnn", 10, 4) == {
        "multiply_adds": 320, "sequential_steps": 10, "max_path_length": 9}  # fmt: skip
    sa = attention_cost("self_attention", 128, 64)
    assert sa["multiply_adds"] == 2 * 128**2 * 64 + 4 * 128 * 64**2
    assert attention_cost("self_attention", 128, 64, n_heads=8) == sa


def test_attention_cost_matches_flop_counter(gen):
    n, d = 16, 8
    x = torch.randn(1, n, d, generator=gen)
    conv, rnn = nn.Conv1d(d, d, 3, padding=1), nn.RNN(d, d, batch_first=True)
    for kind, run in (("cnn", lambda: conv(x.transpose(1, 2))), ("rnn", lambda: rnn(x)),
                      ("self_attention", lambda: MultiHeadAttention(d, 2)(x))):  # fmt: skip
        with FlopCounterMode(display=False) as counter:
            run()
        assert counter.get_total_flops() == 2 * attention_cost(kind, n, d)["multiply_adds"], kind


def test_kernels_work_on_float64_and_batch_of_one(gen):
    q = torch.randn(1, 1, 4, dtype=torch.float64, generator=gen)
    out, weights = scaled_dot_product_attention(q, q, q)
    assert out.dtype == torch.float64 and weights.item() == 1.0


def test_bad_inputs_name_the_argument(gen):
    q = torch.randn(2, 3, 4, generator=gen)
    with pytest.raises(ValueError, match="same D"):
        scaled_dot_product_attention(q, torch.randn(2, 3, 5), torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="T_k"):
        scaled_dot_product_attention(q, q, torch.randn(2, 4, 4))
    with pytest.raises(TypeError, match="q"):
        scaled_dot_product_attention(torch.ones(2, 3, 4, dtype=torch.long), q, q)
    with pytest.raises(TypeError, match="mask"):
        masked_softmax(q, mask=torch.ones(3, 4))
    with pytest.raises(ValueError, match="mask"):
        masked_softmax(q, mask=torch.ones(5, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="valid_lens"):
        masked_softmax(q, valid_lens=torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="n_heads"):
        split_heads(q, 3)
    with pytest.raises(ValueError, match="x"):
        merge_heads(q)
    with pytest.raises(ValueError, match="n_heads"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="x must be"):
        MultiHeadAttention(8, 2)(q)
    with pytest.raises(ValueError, match="m has embed_dim"):
        MultiHeadAttention(8, 2).load_from_torch(nn.MultiheadAttention(8, 4))
    with pytest.raises(ValueError, match="lengths"):
        padding_mask(torch.tensor([4]), 3)
    with pytest.raises(ValueError, match="n"):
        causal_mask(0)
    with pytest.raises(ValueError, match="kind"):
        attention_cost("lstm", 4, 4)
    with pytest.raises(ValueError, match="Wk"):
        self_attention_column(
            torch.ones(3, 2), torch.ones(2, 3), torch.ones(2, 4), torch.ones(2, 3)
        )
    with pytest.raises(ValueError, match="queries"):
        AdditiveAttention(3, 3, 4)(q, q, q)


def test_check_by_hand_catches_common_mistakes():
    weights, output, cw, co = EXERCISES["ex-attention-by-hand"].solution()
    with pytest.raises(WrongAnswerError, match="columns"):
        check("ex-attention-by-hand", (weights.T, output, cw, co))
    with pytest.raises(WrongAnswerError, match="above the diagonal"):
        check("ex-attention-by-hand", (weights, output, weights, output))
    with pytest.raises(NotDoneError):
        check("ex-attention-by-hand", (weights, ..., cw, co))


def test_check_variance_catches_common_mistakes():
    good = EXERCISES["ex-attention-variance"].solution()
    with pytest.raises(WrongAnswerError, match="simulation"):
        check("ex-attention-variance", {**good, "variance": lambda d, s: d * s**2})
    with pytest.raises(WrongAnswerError, match="one head"):
        check("ex-attention-variance", {**good, "d_k": 12288})


def test_check_multihead_catches_common_mistakes():
    split, merge, cls = EXERCISES["ex-attention-multihead"].solution()

    def interleaved_split(x, h):
        b, t, d = x.shape
        return x.view(b, t, d // h, h).permute(0, 3, 1, 2)

    with pytest.raises(WrongAnswerError, match="head i should hold"):
        check("ex-attention-multihead", (interleaved_split, merge, cls))

    class NoOutputProjection(cls):
        def forward(self, x):
            q, k, v = (split(p(x), self.n_heads) for p in (self.q_proj, self.k_proj, self.v_proj))
            return merge(scaled_dot_product_attention(q, k, v)[0])

    with pytest.raises(WrongAnswerError, match="output"):
        check("ex-attention-multihead", (split, merge, NoOutputProjection))


def test_check_param_count_catches_missing_biases():
    with pytest.raises(WrongAnswerError, match="biases"):
        check("ex-attention-param-count", {h: 4 * 512 * 512 for h in (1, 8, 16)})


def test_check_multihead_starter_is_not_done_and_crash_is_wrong():
    def starter(*args, **kwargs):
        raise NotImplementedError

    def crashes(*args, **kwargs):
        raise ZeroDivisionError("boom")

    _, merge, cls = EXERCISES["ex-attention-multihead"].solution()
    with pytest.raises(NotDoneError):
        check("ex-attention-multihead", (starter, starter, starter))
    with pytest.raises(WrongAnswerError, match="ZeroDivisionError"):
        check("ex-attention-multihead", (crashes, merge, cls))
    with pytest.raises(NotDoneError):
        check("ex-attention-variance", {"variance": starter, "d_k": 128, "scale": 0.0884})
