"""Attention from scratch: masks, scaled dot-product attention, additive and multi-head attention.

Conventions used throughout (the same as ``torch.nn.functional.scaled_dot_product_attention``):

* row layout: one token per row, ``q: (..., T_q, D)``, ``k: (..., T_k, D)``, ``v: (..., T_k, D_v)``;
* a boolean mask is ``True`` where a query **may** attend to a key (``nn.MultiheadAttention``
  uses the opposite convention for its ``attn_mask`` and ``key_padding_mask``);
* a query whose keys are all masked gets all-zero weights and a zero output (PyTorch's
  ``scaled_dot_product_attention`` does the same; ``nn.MultiheadAttention`` returns NaN).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from .conv import _positive_int

__all__ = [
    "AdditiveAttention",
    "DecoderBlock",
    "FeedForward",
    "GPT_POSITIONS",
    "LearnedPositionalEmbedding",
    "MultiHeadAttention",
    "POSITION_KINDS",
    "PositionalSelfAttention",
    "RelativeBias",
    "TinyGPT",
    "TransformerBlock",
    "alibi_bias",
    "alibi_slopes",
    "attention_cost",
    "block_param_count",
    "causal_mask",
    "cluster_mask",
    "cluster_sparse_attention",
    "elu_feature_map",
    "kmeans_assign",
    "linear_attention",
    "linear_attention_recurrent",
    "local_window_mask",
    "lsh_buckets",
    "masked_softmax",
    "merge_heads",
    "padding_mask",
    "random_feature_map",
    "relative_position_bucket",
    "rope",
    "scaled_dot_product_attention",
    "self_attention_column",
    "sinusoidal_offset_rotation",
    "sinusoidal_pe",
    "split_heads",
    "topk_attention",
    "window_pair_count",
]


def causal_mask(
    n: int, n_keys: int | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """Lower-triangular boolean mask ``(n, n_keys)``: query ``i`` may attend to key ``j <= i``.

    ``M[i, j] = True`` iff ``j <= i`` (the top-left aligned causal mask of PyTorch's
    ``is_causal=True``). ``n_keys`` defaults to ``n``.
    """
    n_keys = n if n_keys is None else n_keys
    for name, value in (("n", n), ("n_keys", n_keys)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    return torch.ones(n, n_keys, dtype=torch.bool, device=device).tril()


def padding_mask(lengths: torch.Tensor, n: int) -> torch.Tensor:
    """Boolean mask ``(B, n)`` that is ``True`` at the valid positions ``j < lengths[b]``.

    ``lengths: (B,)`` integer valid lengths. To mask keys in attention scores ``(B, T_q, T_k)``
    use ``padding_mask(lengths, T_k)[:, None, :]`` (add one more ``None`` for heads).
    """
    if not torch.is_tensor(lengths) or lengths.ndim != 1:
        raise ValueError(f"lengths must be a 1-D integer tensor (B,), got {lengths!r}")
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must have an integer dtype, got {lengths.dtype}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if (lengths < 0).any() or (lengths > n).any():
        raise ValueError(f"lengths must lie in [0, n={n}], got {lengths.tolist()}")
    return torch.arange(n, device=lengths.device) < lengths[:, None]


def _valid_lens_mask(scores: torch.Tensor, valid_lens: torch.Tensor) -> torch.Tensor:
    """Key mask broadcastable to ``scores: (B, ..., T_q, T_k)`` from ``valid_lens`` (B,)/(B, T_q)."""
    if not torch.is_tensor(valid_lens) or valid_lens.ndim not in (1, 2):
        raise ValueError(f"valid_lens must be a (B,) or (B, T_q) tensor, got {valid_lens!r}")
    if scores.ndim < 3 or valid_lens.shape[0] != scores.shape[0]:
        raise ValueError(
            f"valid_lens (B={valid_lens.shape[0]}) needs scores of shape (B, ..., T_q, T_k), "
            f"got scores {tuple(scores.shape)}"
        )
    t_q, t_k = scores.shape[-2:]
    if valid_lens.ndim == 2 and valid_lens.shape[1] != t_q:
        raise ValueError(f"valid_lens must be (B, T_q={t_q}), got {tuple(valid_lens.shape)}")
    lens = valid_lens.to(scores.device)
    if lens.ndim == 1:
        lens = lens.view(-1, *([1] * (scores.ndim - 1)))
    else:
        lens = lens.view(lens.shape[0], *([1] * (scores.ndim - 3)), t_q, 1)
    return torch.arange(t_k, device=scores.device) < lens


def masked_softmax(
    scores: torch.Tensor,
    valid_lens: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    dim: int = -1,
) -> torch.Tensor:
    """Softmax of ``scores`` over ``dim`` after removing masked entries.

    ``p_j = exp(s_j) / sum_{l kept} exp(s_l)`` for kept ``j`` and ``p_j = 0`` for masked ``j``.
    ``mask`` is boolean (``True`` = keep) and broadcastable to ``scores``; ``valid_lens``
    (``(B,)`` or ``(B, T_q)``, only with ``dim=-1``) keeps the first ``valid_lens`` keys.
    A slice with every entry masked gets all-zero weights (not NaN, not uniform).
    """
    if not torch.is_tensor(scores) or not scores.is_floating_point():
        raise TypeError(f"scores must be a floating-point tensor, got {type(scores).__name__}")
    keep = None
    if mask is not None:
        if not torch.is_tensor(mask) or mask.dtype != torch.bool:
            raise TypeError("mask must be a boolean tensor (True = keep)")
        try:
            torch.broadcast_shapes(mask.shape, scores.shape)
        except RuntimeError:
            raise ValueError(
                f"mask {tuple(mask.shape)} must broadcast to scores {tuple(scores.shape)}"
            ) from None
        keep = mask.to(scores.device)
    if valid_lens is not None:
        if dim not in (-1, scores.ndim - 1):
            raise ValueError(f"valid_lens works along the last dim only, got dim={dim}")
        by_len = _valid_lens_mask(scores, valid_lens)
        keep = by_len if keep is None else keep & by_len
    if keep is None:
        return torch.softmax(scores, dim=dim)
    keep = keep.expand_as(scores)
    empty = ~keep.any(dim=dim, keepdim=True)  # rows with nothing left to attend to
    # -inf makes exp() exactly 0; empty rows get 0 logits first so no NaN reaches the gradient.
    filled = scores.masked_fill(~keep, float("-inf")).masked_fill(empty, 0.0)
    return torch.softmax(filled, dim=dim).masked_fill(empty, 0.0)


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    """``q: (..., T_q, D)``, ``k: (..., T_k, D)``, ``v: (..., T_k, D_v)``, all floating point."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not torch.is_tensor(t) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor")
        if t.ndim < 2:
            raise ValueError(f"{name} must be (..., T, D), got shape {tuple(t.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q (..., T_q, D) and k (..., T_k, D) need the same D, got {q.shape[-1]} and "
            f"{k.shape[-1]}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k (..., T_k, D) and v (..., T_k, D_v) need the same T_k, got {k.shape[-2]} and "
            f"{v.shape[-2]}"
        )


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``Attn(Q, K, V) = softmax(Q K^T * scale + M) V`` with ``scale = 1/sqrt(D)`` by default.

    Shapes: ``q: (..., T_q, D)``, ``k: (..., T_k, D)``, ``v: (..., T_k, D_v)``; returns
    ``(output (..., T_q, D_v), weights (..., T_q, T_k))``. Each row of ``weights`` sums to 1 (or
    is all zero when every key of that query is masked), so each output row is a convex
    combination of value rows. ``mask``: boolean (``True`` = may attend) or a float tensor added
    to the scores; broadcastable to ``(..., T_q, T_k)``. ``causal=True`` also applies
    ``causal_mask(T_q, T_k)``.
    """
    _check_qkv(q, k, v)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., T_q, T_k)
    keep = None
    if mask is not None:
        if not torch.is_tensor(mask):
            raise TypeError("mask must be a tensor (boolean: True = may attend; or float)")
        if mask.dtype == torch.bool:
            keep = mask
        else:
            scores = scores + mask
    if causal:
        tri = causal_mask(q.shape[-2], k.shape[-2], device=q.device)
        keep = tri if keep is None else keep.to(q.device) & tri
    weights = masked_softmax(scores, mask=keep)
    return weights @ v, weights


def self_attention_column(
    I: torch.Tensor,  # noqa: E741  (the lecture's name for the input matrix)
    Wq: torch.Tensor,
    Wk: torch.Tensor,
    Wv: torch.Tensor,
) -> torch.Tensor:
    """Self-attention in the lecture's column layout (one token per **column**).

    ``Q = Wq I``, ``K = Wk I``, ``V = Wv I``; ``A' = softmax_col(K^T Q / sqrt(d_k))`` (softmax
    over keys, i.e. down each column); ``O = V A'``. Shapes: ``I: (d_model, n)``,
    ``Wq, Wk: (d_k, d_model)``, ``Wv: (d_v, d_model)``; returns ``O: (d_v, n)``. It equals the
    transpose of the row-layout result with ``X = I^T`` and ``W_Q = Wq^T``.
    """
    if not torch.is_tensor(I) or I.ndim != 2:
        raise ValueError(f"I must be a (d_model, n) matrix, got {getattr(I, 'shape', I)}")
    d_model = I.shape[0]
    for name, w in (("Wq", Wq), ("Wk", Wk), ("Wv", Wv)):
        if not torch.is_tensor(w) or w.ndim != 2 or w.shape[1] != d_model:
            raise ValueError(f"{name} must be (d_out, d_model={d_model}), got {tuple(w.shape)}")
    if Wq.shape[0] != Wk.shape[0]:
        raise ValueError(f"Wq and Wk need the same d_k, got {Wq.shape[0]} and {Wk.shape[0]}")
    Q, K, V = Wq @ I, Wk @ I, Wv @ I  # (d_k, n), (d_k, n), (d_v, n)
    A = K.T @ Q / math.sqrt(Q.shape[0])  # A[j, i] = k_j . q_i: rows are keys, columns queries
    return V @ torch.softmax(A, dim=0)


class AdditiveAttention(nn.Module):
    """Bahdanau scoring ``a(q, k) = w_v^T tanh(W_q q + W_k k)`` followed by a masked softmax.

    ``forward(queries (B, T_q, q_dim), keys (B, T_k, k_dim), values (B, T_k, D_v),
    valid_lens=None, mask=None) -> (output (B, T_q, D_v), weights (B, T_q, T_k))``.
    """

    def __init__(self, q_dim: int, k_dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        for name, value in (("q_dim", q_dim), ("k_dim", k_dim), ("hidden", hidden)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.W_q = nn.Linear(q_dim, hidden, bias=False)
        self.W_k = nn.Linear(k_dim, hidden, bias=False)
        self.w_v = nn.Linear(hidden, 1, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        valid_lens: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if queries.ndim != 3 or queries.shape[-1] != self.W_q.in_features:
            raise ValueError(
                f"queries must be (B, T_q, {self.W_q.in_features}), got {tuple(queries.shape)}"
            )
        if keys.ndim != 3 or keys.shape[-1] != self.W_k.in_features:
            raise ValueError(
                f"keys must be (B, T_k, {self.W_k.in_features}), got {tuple(keys.shape)}"
            )
        if values.ndim != 3 or values.shape[:2] != keys.shape[:2]:
            raise ValueError(
                f"values must be (B, T_k, D_v) with keys' B and T_k, got {tuple(values.shape)}"
            )
        # (B, T_q, 1, h) + (B, 1, T_k, h): every query meets every key; tanh, then w_v -> score
        features = torch.tanh(self.W_q(queries)[:, :, None, :] + self.W_k(keys)[:, None, :, :])
        scores = self.w_v(features).squeeze(-1)  # (B, T_q, T_k)
        weights = masked_softmax(scores, valid_lens=valid_lens, mask=mask)
        return self.dropout(weights) @ values, weights


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``(B, T, d) -> (B, h, T, d/h)``: head ``i`` gets features ``i*d/h : (i+1)*d/h``."""
    if not torch.is_tensor(x) or x.ndim != 3:
        raise ValueError(f"x must be (B, T, d), got {getattr(x, 'shape', x)}")
    if not isinstance(n_heads, int) or n_heads < 1 or x.shape[-1] % n_heads:
        raise ValueError(f"n_heads must be a positive divisor of d={x.shape[-1]}, got {n_heads!r}")
    b, t, d = x.shape
    return x.view(b, t, n_heads, d // n_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, h, T, d_h) -> (B, T, h * d_h)``, the inverse of ``split_heads`` (concatenation)."""
    if not torch.is_tensor(x) or x.ndim != 4:
        raise ValueError(f"x must be (B, h, T, d_h), got {getattr(x, 'shape', x)}")
    b, h, t, d_h = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d_h)


class MultiHeadAttention(nn.Module):
    """``MHA(X) = [head_1; ...; head_h] W_O``, ``head_i = Attn(X W_Q^(i), X W_K^(i), X W_V^(i))``.

    ``d_k = d_model / n_heads`` per head; ``4 d^2 + 4 d`` parameters (with bias) whatever
    ``n_heads``. ``forward(x (B, T_q, d), kv=None (B, T_k, d), mask=None, causal=False,
    valid_lens=None) -> (output (B, T_q, d), weights (B, h, T_q, T_k))``. Self-attention when
    ``kv`` is None, cross-attention otherwise. ``mask`` is boolean (``True`` = may attend),
    broadcastable to ``(B, h, T_q, T_k)``; ``valid_lens (B,)`` masks padded keys.
    """

    def __init__(self, d_model: int, n_heads: int, bias: bool = True):
        super().__init__()
        if not isinstance(d_model, int) or d_model < 1:
            raise ValueError(f"d_model must be a positive int, got {d_model!r}")
        if not isinstance(n_heads, int) or n_heads < 1 or d_model % n_heads:
            raise ValueError(f"n_heads must divide d_model={d_model}, got {n_heads!r}")
        self.d_model, self.n_heads = d_model, n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        kv: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        causal: bool = False,
        valid_lens: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        kv = x if kv is None else kv
        for name, t in (("x", x), ("kv", kv)):
            if not torch.is_tensor(t) or t.ndim != 3 or t.shape[-1] != self.d_model:
                raise ValueError(
                    f"{name} must be (B, T, d_model={self.d_model}), got "
                    f"{tuple(getattr(t, 'shape', ()))}"
                )
        if kv.shape[0] != x.shape[0]:
            raise ValueError(f"x and kv need the same batch size, got {x.shape[0]}, {kv.shape[0]}")
        q = split_heads(self.q_proj(x), self.n_heads)  # (B, h, T_q, d_k)
        k = split_heads(self.k_proj(kv), self.n_heads)  # (B, h, T_k, d_k)
        v = split_heads(self.v_proj(kv), self.n_heads)
        if valid_lens is not None:
            keys = padding_mask(valid_lens, kv.shape[1])[:, None, None, :].to(x.device)
            mask = keys if mask is None else mask.to(x.device) & keys
        heads, weights = scaled_dot_product_attention(q, k, v, mask=mask, causal=causal)
        return self.out_proj(merge_heads(heads)), weights

    @torch.no_grad()
    def load_from_torch(self, m: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy the weights of ``m`` (``in_proj_weight`` = ``[W_q; W_k; W_v]`` stacked, rows =
        outputs, and ``out_proj``) so that both modules compute the same function. Returns self.
        """
        if not isinstance(m, nn.MultiheadAttention):
            raise TypeError(f"m must be an nn.MultiheadAttention, got {type(m).__name__}")
        if m.embed_dim != self.d_model or m.num_heads != self.n_heads:
            raise ValueError(
                f"m has embed_dim={m.embed_dim}, num_heads={m.num_heads}; expected "
                f"{self.d_model}, {self.n_heads}"
            )
        if not m._qkv_same_embed_dim or m.bias_k is not None or m.add_zero_attn:
            raise ValueError("m must use one in_proj_weight, no bias_k/bias_v, no add_zero_attn")
        has_bias = m.in_proj_bias is not None
        if has_bias != (self.q_proj.bias is not None):
            raise ValueError(f"m has bias={has_bias} but this module has the opposite")
        for i, proj in enumerate((self.q_proj, self.k_proj, self.v_proj)):
            rows = slice(i * self.d_model, (i + 1) * self.d_model)
            proj.weight.copy_(m.in_proj_weight[rows])
            if has_bias:
                proj.bias.copy_(m.in_proj_bias[rows])
        self.out_proj.weight.copy_(m.out_proj.weight)
        if has_bias:
            self.out_proj.bias.copy_(m.out_proj.bias)
        return self


def attention_cost(
    kind: Literal["cnn", "rnn", "self_attention"],
    n: int,
    d: int,
    k: int = 3,
    n_heads: int = 1,
) -> dict[str, int]:
    """Cost of one layer mapping ``n`` tokens of width ``d`` to ``n`` tokens of width ``d``.

    Returns ``multiply_adds`` (no biases or nonlinearities), ``sequential_steps`` (operations
    that must wait for each other) and ``max_path_length`` (layers or steps a signal needs to
    travel from the first token to the last):

    * ``"cnn"``: ``Conv1d(d, d, k)``, same padding: ``k n d^2``; 1 step; ``ceil((n-1)/(k-1))``;
    * ``"rnn"``: ``h_t = tanh(W_x x_t + W_h h_{t-1})``: ``2 n d^2``; ``n`` steps; ``n - 1``;
    * ``"self_attention"``: scores and weighted sum ``2 n^2 d`` plus the Q, K, V and output
      projections ``4 n d^2``; 1 step; path 1. Splitting into ``n_heads`` heads of width
      ``d / n_heads`` leaves every term unchanged.
    """
    if kind not in ("cnn", "rnn", "self_attention"):
        raise ValueError(f"kind must be 'cnn', 'rnn' or 'self_attention', got {kind!r}")
    for name, value in (("n", n), ("d", d), ("n_heads", n_heads)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(k, int) or k < 2:
        raise ValueError(f"k must be an int >= 2 (a kernel of 1 never connects tokens), got {k!r}")
    if d % n_heads:
        raise ValueError(f"n_heads must divide d={d}, got {n_heads}")
    if kind == "cnn":
        return {
            "multiply_adds": k * n * d * d,
            "sequential_steps": 1,
            "max_path_length": -(-(n - 1) // (k - 1)),
        }
    if kind == "rnn":
        return {"multiply_adds": 2 * n * d * d, "sequential_steps": n, "max_path_length": n - 1}
    d_head = d // n_heads
    mixing = n_heads * 2 * n * n * d_head  # Q K^T and A V, per head
    return {"multiply_adds": mixing + 4 * n * d * d, "sequential_steps": 1, "max_path_length": 1}


# =============================================================================================
# Chapter 5.2: positional encoding (sinusoidal, learned, relative bias, RoPE, ALiBi)
# =============================================================================================


def _check_even_dim(d: object, name: str) -> int:
    _positive_int(d, name)
    if d % 2:
        raise ValueError(f"{name} must be even (features come in (sin, cos) pairs), got {d}")
    return d


def _sinusoid_angles(positions: torch.Tensor, d: int, base: float) -> torch.Tensor:
    """Angles ``p * theta_i``, ``theta_i = base^(-2i/d)``, ``i = 0..d/2-1``: ``(..., d/2)`` float64.

    The one frequency ladder shared by ``sinusoidal_pe``, ``sinusoidal_offset_rotation`` and
    ``rope``; computed in float64 so that float64 callers get exact identities.
    """
    if not isinstance(base, int | float) or isinstance(base, bool) or base <= 1:
        raise ValueError(f"base must be a number > 1, got {base!r}")
    i = torch.arange(d // 2, dtype=torch.float64, device=positions.device)
    theta = float(base) ** (-2.0 * i / d)  # (d/2,) from 1 down to about 1/base
    return positions.to(torch.float64)[..., None] * theta


def sinusoidal_pe(
    n: int,
    d: int,
    base: float = 10000.0,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Fixed sinusoidal position table ``PE: (n, d)`` of Vaswani et al. (2017), no parameters.

    ``PE[p, 2i] = sin(p theta_i)``, ``PE[p, 2i+1] = cos(p theta_i)``, ``theta_i = base^(-2i/d)``
    for positions ``p = 0..n-1`` (``d`` even). Every row has norm ``sqrt(d/2)``, and a shift by
    ``k`` is a fixed rotation: ``PE[p+k] = PE[p] @ sinusoidal_offset_rotation(k, d)``.

    ``dlcourse.diffusion.timestep_embedding`` uses the same frequencies in the other common
    layout, ``[cos(t theta_0..), sin(t theta_0..)]`` (cosines first, the two halves
    concatenated instead of interleaved): its columns are a permutation of these, so both are
    kept and ``tests/test_positional.py`` checks that relation.
    """
    _positive_int(n, "n")
    _check_even_dim(d, "d")
    angles = _sinusoid_angles(torch.arange(n, device=device), d, base)  # (n, d/2)
    pe = torch.stack([angles.sin(), angles.cos()], dim=-1)  # (n, d/2, 2): (sin, cos) pairs
    return pe.reshape(n, d).to(dtype)


def sinusoidal_offset_rotation(
    k: int, d: int, base: float = 10000.0, *, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Block-diagonal rotation ``R_k: (d, d)`` with ``sinusoidal_pe[p + k] = sinusoidal_pe[p] @ R_k``.

    Block ``i`` acts on the row pair ``(sin a, cos a)``, ``a = p theta_i``, as
    ``[[cos b, -sin b], [sin b, cos b]]`` with ``b = k theta_i``: the angle-addition formulas
    ``sin(a+b) = sin a cos b + cos a sin b`` and ``cos(a+b) = cos a cos b - sin a sin b``.
    It depends on ``k`` only, not on ``p``, so ``PE[p] . PE[p+k] = sum_i cos(k theta_i)``.
    """
    if not isinstance(k, int) or isinstance(k, bool):
        raise ValueError(f"k must be an int offset, got {k!r}")
    _check_even_dim(d, "d")
    b = _sinusoid_angles(torch.tensor(k), d, base)  # (d/2,)
    c, s = b.cos(), b.sin()
    blocks = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # (d/2, 2, 2)
    return torch.block_diag(*blocks).to(dtype)


class LearnedPositionalEmbedding(nn.Module):
    """Learned absolute positions (BERT, GPT-2): a table ``(max_len, d)``, ``max_len * d`` params.

    ``forward(positions)``: integer ``positions`` of any shape ``(...)`` -> ``(..., d)``. A table
    has no row for a position it was never given, so ``positions >= max_len`` raise a
    ``ValueError`` (a sinusoidal table, in contrast, can be computed at any length).
    """

    def __init__(self, max_len: int, d: int):
        super().__init__()
        _positive_int(max_len, "max_len")
        _positive_int(d, "d")
        self.max_len, self.d = max_len, d
        self.table = nn.Embedding(max_len, d)
        nn.init.normal_(self.table.weight, std=0.02)  # the GPT-2 / BERT initialisation

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        if (
            not torch.is_tensor(positions)
            or positions.is_floating_point()
            or positions.is_complex()
        ):
            raise TypeError(f"positions must be an integer tensor, got {positions!r:.60}")
        if positions.numel() and (positions.min() < 0 or positions.max() >= self.max_len):
            raise ValueError(
                f"positions must lie in [0, max_len={self.max_len}), got "
                f"[{positions.min().item()}, {positions.max().item()}]: a learned table has no "
                "row for a position it never saw in training"
            )
        return self.table(positions)


def rope(
    x: torch.Tensor, positions: torch.Tensor | None = None, base: float = 10000.0
) -> torch.Tensor:
    """Rotary position embedding (Su et al., 2021) of queries or keys ``x: (..., T, D)``.

    Each pair ``(x_2i, x_2i+1)`` is rotated by the angle ``p theta_i``, ``theta_i = base^(-2i/D)``:
    ``x'_2i = x_2i cos - x_2i+1 sin``, ``x'_2i+1 = x_2i sin + x_2i+1 cos``; as complex numbers,
    ``z'_i = z_i exp(i p theta_i)``. ``positions``: integer or real, ``(T,)`` or broadcastable to
    ``x.shape[:-1]``; default ``0..T-1``. Rotations keep norms, and
    ``<rope(q, m), rope(k, n)> = <q, rope(k, n - m)>`` depends on ``n - m`` only. This is the
    interleaved-pair layout of the paper; some libraries (e.g. LLaMA's) pair ``x_i`` with
    ``x_{i+D/2}`` instead, a fixed permutation of the features.
    """
    if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim < 2:
        raise ValueError(f"x must be a floating-point tensor (..., T, D), got {x!r:.60}")
    d = _check_even_dim(x.shape[-1], "x's last dimension D")
    if positions is None:
        positions = torch.arange(x.shape[-2], device=x.device)
    if not torch.is_tensor(positions):
        raise TypeError(f"positions must be a tensor (T,) or (..., T), got {positions!r:.60}")
    try:
        torch.broadcast_shapes(positions.shape, x.shape[:-1])
    except RuntimeError:
        raise ValueError(
            f"positions {tuple(positions.shape)} must broadcast to x.shape[:-1] = "
            f"{tuple(x.shape[:-1])}"
        ) from None
    angles = _sinusoid_angles(positions.to(x.device), d, base)  # (..., T, D/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]
    rotated = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)
    return rotated.flatten(-2)


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """ALiBi head slopes (Press et al., 2022): ``(n_heads,)`` float32.

    For ``H`` a power of two, ``m_h = 2^(-8h/H)``, ``h = 1..H`` (``1/2, ..., 1/256`` for
    ``H = 8``): a geometric sequence starting at and with ratio ``2^(-8/H)``. Otherwise, with
    ``P`` the largest power of two below ``H``: the ``P`` slopes of ``P`` heads, followed by
    the first ``H - P`` of every other slope for ``2P`` heads (``m_1, m_3, m_5, ...``).
    """
    _positive_int(n_heads, "n_heads")

    def power_of_two(h: int) -> torch.Tensor:
        return 2.0 ** (-8.0 * torch.arange(1, h + 1, dtype=torch.float64) / h)

    p = 2 ** int(math.floor(math.log2(n_heads)))
    slopes = power_of_two(p)
    if p < n_heads:
        slopes = torch.cat([slopes, power_of_two(2 * p)[0::2][: n_heads - p]])
    return slopes.float()


def alibi_bias(
    n_heads: int, n: int, causal: bool = True, device: torch.device | str | None = None
) -> torch.Tensor:
    """ALiBi logit bias ``(H, n, n)``: ``B[h, i, j] = -m_h (i - j)`` for keys ``j <= i``.

    Added to the scaled scores ``q_i . k_j / sqrt(d)`` (e.g. as the float ``mask`` of
    ``scaled_dot_product_attention``); there is no position embedding at all. ``causal=True``
    sets the entries ``j > i`` to ``-inf`` (the causal mask folded in); ``causal=False`` gives
    the symmetric ``-m_h |i - j|`` used by bidirectional variants.
    """
    _positive_int(n, "n")
    slopes = alibi_slopes(n_heads).to(device)
    idx = torch.arange(n, device=device)
    minus_distance = -(idx[:, None] - idx[None, :]).abs().float()  # -|i - j| (0.0, not -0.0)
    bias = slopes[:, None, None] * minus_distance
    if causal:
        bias = bias.masked_fill(~causal_mask(n, device=device), float("-inf"))
    return bias


def relative_position_bucket(
    rel: torch.Tensor,
    num_buckets: int = 32,
    max_distance: int = 128,
    bidirectional: bool = True,
) -> torch.Tensor:
    """T5's bucket of each relative position ``rel = j - i`` (key minus query), same shape, long.

    Bidirectional: half of the buckets for keys after the query (``rel > 0``, offset by
    ``num_buckets / 2``), half for keys at or before it. Causal (``bidirectional=False``): all
    buckets for ``rel <= 0``, every future key shares bucket 0. Within a half of ``nb`` buckets,
    distances ``|rel| < nb/2`` get their own bucket; larger ones share logarithmically wider
    buckets up to ``max_distance``, and everything farther lands in the last bucket ``nb - 1``.
    """
    if not torch.is_tensor(rel) or rel.is_floating_point() or rel.is_complex():
        raise TypeError(f"rel must be an integer tensor, got {rel!r:.60}")
    _positive_int(num_buckets, "num_buckets")
    _positive_int(max_distance, "max_distance")
    rel = rel.long()
    offset = torch.zeros_like(rel)
    if bidirectional:
        if num_buckets < 4:
            raise ValueError(f"num_buckets must be >= 4 when bidirectional, got {num_buckets}")
        num_buckets //= 2
        offset = (rel > 0).long() * num_buckets
        distance = rel.abs()
    else:
        if num_buckets < 2:
            raise ValueError(f"num_buckets must be >= 2, got {num_buckets}")
        distance = (-rel).clamp(min=0)
    max_exact = num_buckets // 2
    if max_distance <= max_exact:
        raise ValueError(f"max_distance must exceed {max_exact} exact buckets, got {max_distance}")
    # log-spaced buckets from max_exact (exact limit) to max_distance (last bucket)
    far = distance.clamp(min=max_exact).float() / max_exact
    log_bucket = (
        max_exact
        + (torch.log(far) / math.log(max_distance / max_exact) * (num_buckets - max_exact)).long()
    )
    log_bucket = log_bucket.clamp(max=num_buckets - 1)
    return offset + torch.where(distance < max_exact, distance, log_bucket)


class RelativeBias(nn.Module):
    """T5-style learned relative position bias: one scalar per (head, distance bucket).

    ``forward(n_q, n_k=None) -> (n_heads, n_q, n_k)`` with
    ``B[h, i, j] = b[h, relative_position_bucket(j - i)]``, added to the attention logits
    (the scaled scores), not to the token embeddings or the model's output. Initialised at 0,
    so an untrained bias changes nothing.
    """

    def __init__(
        self,
        n_heads: int,
        num_buckets: int = 32,
        max_distance: int = 128,
        bidirectional: bool = True,
    ):
        super().__init__()
        _positive_int(n_heads, "n_heads")
        zero = torch.zeros(1, dtype=torch.long)
        relative_position_bucket(zero, num_buckets, max_distance, bidirectional)  # validates
        self.n_heads, self.num_buckets = n_heads, num_buckets
        self.max_distance, self.bidirectional = max_distance, bidirectional
        self.bias = nn.Embedding(num_buckets, n_heads)
        nn.init.zeros_(self.bias.weight)

    def forward(self, n_q: int, n_k: int | None = None) -> torch.Tensor:
        _positive_int(n_q, "n_q")
        n_k = n_q if n_k is None else _positive_int(n_k, "n_k")
        dev = self.bias.weight.device
        rel = torch.arange(n_k, device=dev)[None, :] - torch.arange(n_q, device=dev)[:, None]
        buckets = relative_position_bucket(
            rel, self.num_buckets, self.max_distance, self.bidirectional
        )
        return self.bias(buckets).permute(2, 0, 1)  # (n_q, n_k, H) -> (H, n_q, n_k)


POSITION_KINDS = ("none", "sinusoidal", "learned", "rope", "alibi", "relative")


class PositionalSelfAttention(nn.Module):
    """Multi-head self-attention with one of six ways for positions to enter.

    ``position``:

    * ``"none"``: plain ``MultiHeadAttention`` (permutation-equivariant without a mask);
    * ``"sinusoidal"`` / ``"learned"``: absolute, ``x + PE[:T]`` before the projections;
    * ``"rope"``: rotate queries and keys of every head by ``rope``;
    * ``"alibi"``: add ``alibi_bias`` to the logits (causal or symmetric);
    * ``"relative"``: add a learned T5 ``RelativeBias`` to the logits.

    ``forward(x (B, T, d_model), causal=False) -> (output (B, T, d_model), weights (B, H, T, T))``.
    The projections are those of a ``MultiHeadAttention`` (``self.mha``).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        position: str = "none",
        max_len: int = 512,
        num_buckets: int = 32,
    ):
        super().__init__()
        if position not in POSITION_KINDS:
            raise ValueError(f"position must be one of {POSITION_KINDS}, got {position!r}")
        self.mha = MultiHeadAttention(d_model, n_heads)
        self.position, self.n_heads, self.d_model = position, n_heads, d_model
        if position == "sinusoidal":
            _check_even_dim(d_model, "d_model")
        if position == "rope":
            _check_even_dim(d_model // n_heads, "d_model / n_heads")
        self.learned = (
            LearnedPositionalEmbedding(max_len, d_model) if position == "learned" else None
        )
        self.relative = (
            RelativeBias(
                n_heads, num_buckets, max_distance=max(max_len, num_buckets), bidirectional=True
            )
            if position == "relative"
            else None
        )

    def forward(self, x: torch.Tensor, causal: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        if not torch.is_tensor(x) or x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must be (B, T, d_model={self.d_model}), got {x!r:.60}")
        t = x.shape[1]
        if self.position == "sinusoidal":
            x = x + sinusoidal_pe(t, self.d_model, dtype=x.dtype, device=x.device)
        elif self.position == "learned":
            x = x + self.learned(torch.arange(t, device=x.device))
        m = self.mha
        q, k, v = (split_heads(p(x), self.n_heads) for p in (m.q_proj, m.k_proj, m.v_proj))
        bias = None
        if self.position == "rope":
            q, k = rope(q), rope(k)
        elif self.position == "alibi":
            bias = alibi_bias(self.n_heads, t, causal=causal, device=x.device).to(x.dtype)
        elif self.position == "relative":
            bias = self.relative(t).to(x.dtype)
        heads, weights = scaled_dot_product_attention(q, k, v, mask=bias, causal=causal)
        return m.out_proj(merge_heads(heads)), weights


# =============================================================================================
# Chapter 5.3: the Transformer block, the encoder-decoder block and a tiny GPT
# =============================================================================================

_ACTIVATIONS = {"relu": nn.functional.relu, "gelu": nn.functional.gelu}


class FeedForward(nn.Module):
    """Position-wise feed-forward network ``FFN(x) = act(x W_1 + b_1) W_2 + b_2``.

    ``x: (..., d) -> (..., d)``, applied to every token on its own (an MLP inside the block);
    ``W_1: d x d_ff``, ``W_2: d_ff x d``, so ``2 d d_ff + d_ff + d`` parameters. ``act`` is
    ``"relu"`` (the 2017 Transformer) or ``"gelu"`` (BERT, GPT, ViT).
    """

    def __init__(
        self,
        d: int,
        d_ff: int,
        act: Literal["relu", "gelu"] = "gelu",
        dropout: float = 0.0,
    ):
        super().__init__()
        _positive_int(d, "d")
        _positive_int(d_ff, "d_ff")
        if act not in _ACTIVATIONS:
            raise ValueError(f"act must be 'relu' or 'gelu', got {act!r}")
        self.act = act
        self.fc1 = nn.Linear(d, d_ff)
        self.fc2 = nn.Linear(d_ff, d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(_ACTIVATIONS[self.act](self.fc1(x))))


def _attend(
    mha: MultiHeadAttention,
    x: torch.Tensor,
    kv: torch.Tensor | None,
    causal: bool,
    use_rope: bool,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """Output of ``mha`` (``(B, T, d)``), with RoPE applied to the queries and keys if asked."""
    if not use_rope:
        return mha(x, kv=kv, mask=mask, causal=causal)[0]
    kv = x if kv is None else kv
    q = rope(split_heads(mha.q_proj(x), mha.n_heads))  # (B, h, T_q, d_k), rotated by position
    k = rope(split_heads(mha.k_proj(kv), mha.n_heads))
    v = split_heads(mha.v_proj(kv), mha.n_heads)
    heads, _ = scaled_dot_product_attention(q, k, v, mask=mask, causal=causal)
    return mha.out_proj(merge_heads(heads))


def _check_tokens(x: object, d: int, name: str = "x") -> None:
    if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim != 3 or x.shape[-1] != d:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{name} must be a float tensor (B, T, d={d}), got {shape}")


def _torch_activation(layer: nn.Module) -> str | None:
    """``"relu"``/``"gelu"`` for the activation of a torch Transformer layer, else None."""
    fn = layer.activation
    if fn is nn.functional.relu or isinstance(fn, nn.ReLU):
        return "relu"
    if (fn is nn.functional.gelu or isinstance(fn, nn.GELU)) and getattr(
        fn, "approximate", "none"
    ) == "none":
        return "gelu"
    return None


def _check_torch_layer(block: nn.Module, layer: nn.Module, kind: type) -> None:
    """Raise unless ``layer`` is a ``kind`` with ``block``'s norm placement, activation and FFN size."""
    if not isinstance(layer, kind):
        raise TypeError(f"layer must be nn.{kind.__name__}, got {type(layer).__name__}")
    if layer.norm_first != block.pre_norm:
        raise ValueError(
            f"layer has norm_first={layer.norm_first} but this block has pre_norm={block.pre_norm}"
        )
    act = _torch_activation(layer)
    if act != block.ffn.act:
        raise ValueError(f"layer's activation is {act!r}, this block's is {block.ffn.act!r}")
    if layer.linear1.weight.shape != block.ffn.fc1.weight.shape:
        raise ValueError(
            f"layer has d_ff x d = {tuple(layer.linear1.weight.shape)}, this block "
            f"{tuple(block.ffn.fc1.weight.shape)}"
        )


class TransformerBlock(nn.Module):
    """Encoder-style Transformer block: self-attention and a feed-forward network, each with a
    residual connection and a LayerNorm.

    * Post-LN (``pre_norm=False``, 2017): ``x <- LN(x + MHA(x))``, ``x <- LN(x + FFN(x))``;
    * Pre-LN (``pre_norm=True``, GPT-2 and later): ``x <- x + MHA(LN(x))``,
      ``x <- x + FFN(LN(x))``.

    ``forward(x (B, T, d), mask=None) -> (B, T, d)``; ``mask`` is boolean (``True`` = may
    attend), broadcastable to ``(B, h, T, T)``; ``causal=True`` adds the causal mask (a GPT
    block); ``rope=True`` rotates queries and keys with ``rope``. Parameters:
    ``block_param_count(d, d_ff)``. ``load_from_torch`` copies an ``nn.TransformerEncoderLayer``.
    """

    def __init__(
        self,
        d: int,
        n_heads: int,
        d_ff: int,
        pre_norm: bool = True,
        causal: bool = False,
        dropout: float = 0.0,
        act: Literal["relu", "gelu"] = "gelu",
        rope: bool = False,
    ):
        super().__init__()
        self.d, self.pre_norm, self.causal, self.rope = d, bool(pre_norm), bool(causal), rope
        self.attn = MultiHeadAttention(d, n_heads)
        if rope:
            _check_even_dim(d // n_heads, "d / n_heads (RoPE rotates pairs)")
        self.ffn = FeedForward(d, d_ff, act=act, dropout=dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        _check_tokens(x, self.d)

        def attn(h: torch.Tensor) -> torch.Tensor:
            return self.drop1(_attend(self.attn, h, None, self.causal, self.rope, mask))

        def ffn(h: torch.Tensor) -> torch.Tensor:
            return self.drop2(self.ffn(h))

        if self.pre_norm:
            x = x + attn(self.norm1(x))
            return x + ffn(self.norm2(x))
        x = self.norm1(x + attn(x))
        return self.norm2(x + ffn(x))

    @torch.no_grad()
    def load_from_torch(self, layer: nn.TransformerEncoderLayer) -> TransformerBlock:
        """Copy the weights of ``layer`` (``batch_first`` or not; same ``d``, heads, ``d_ff``,
        norm placement and activation) so that both compute the same function in eval mode."""
        _check_torch_layer(self, layer, nn.TransformerEncoderLayer)
        self.attn.load_from_torch(layer.self_attn)
        for mine, theirs in ((self.ffn.fc1, layer.linear1), (self.ffn.fc2, layer.linear2),
                             (self.norm1, layer.norm1), (self.norm2, layer.norm2)):  # fmt: skip
            mine.load_state_dict(theirs.state_dict())
        return self


class DecoderBlock(nn.Module):
    """Decoder block of the encoder-decoder Transformer: masked (causal) self-attention,
    cross-attention to the encoder output, feed-forward network; each with residual + LayerNorm.

    In cross-attention the **queries** come from the decoder stream ``x`` and the **keys and
    values** from ``memory``, the final encoder output (the same for every decoder block).
    Pre-LN: ``x <- x + SelfAttn(LN(x))``, ``x <- x + Cross(LN(x), memory)``, ``x <- x + FFN(LN(x))``
    (Post-LN: ``x <- LN(x + Sub(x))`` each). ``forward(x (B, T, d), memory (B, S, d),
    memory_valid_lens=None (B,)) -> (B, T, d)``; ``block_param_count(d, d_ff, cross=True)``
    parameters; ``load_from_torch`` copies an ``nn.TransformerDecoderLayer``.
    """

    def __init__(
        self,
        d: int,
        n_heads: int,
        d_ff: int,
        pre_norm: bool = True,
        dropout: float = 0.0,
        act: Literal["relu", "gelu"] = "gelu",
    ):
        super().__init__()
        self.d, self.pre_norm = d, bool(pre_norm)
        self.self_attn = MultiHeadAttention(d, n_heads)
        self.cross_attn = MultiHeadAttention(d, n_heads)
        self.ffn = FeedForward(d, d_ff, act=act, dropout=dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        memory_valid_lens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _check_tokens(x, self.d)
        _check_tokens(memory, self.d, "memory")
        if memory.shape[0] != x.shape[0]:
            raise ValueError(
                f"memory (B, S, d) needs x's batch size {x.shape[0]}, got {memory.shape[0]}"
            )
        subs = (
            lambda h: self.self_attn(h, causal=True)[0],
            lambda h: self.cross_attn(h, kv=memory, valid_lens=memory_valid_lens)[0],
            self.ffn,
        )
        for sub, norm in zip(subs, (self.norm1, self.norm2, self.norm3), strict=True):
            if self.pre_norm:
                x = x + self.dropout(sub(norm(x)))
            else:
                x = norm(x + self.dropout(sub(x)))
        return x

    @torch.no_grad()
    def load_from_torch(self, layer: nn.TransformerDecoderLayer) -> DecoderBlock:
        """Copy an ``nn.TransformerDecoderLayer`` (same sizes, norm placement, activation)."""
        _check_torch_layer(self, layer, nn.TransformerDecoderLayer)
        self.self_attn.load_from_torch(layer.self_attn)
        self.cross_attn.load_from_torch(layer.multihead_attn)
        pairs = ((self.ffn.fc1, layer.linear1), (self.ffn.fc2, layer.linear2),
                 (self.norm1, layer.norm1), (self.norm2, layer.norm2), (self.norm3, layer.norm3))  # fmt: skip
        for mine, theirs in pairs:
            mine.load_state_dict(theirs.state_dict())
        return self


def block_param_count(d: int, d_ff: int, cross: bool = False) -> int:
    """Parameters of one Transformer block (with biases and LayerNorm affine parameters).

    Encoder block: attention ``4 d^2 + 4 d`` + FFN ``2 d d_ff + d_ff + d`` + two LayerNorms
    ``4 d``. Decoder block (``cross=True``): a second attention (cross-attention) and a third
    LayerNorm, ``2 (4 d^2 + 4 d) + 2 d d_ff + d_ff + d + 6 d``. ``d=64, d_ff=256``: 49,984.
    """
    _positive_int(d, "d")
    _positive_int(d_ff, "d_ff")
    n_attn, n_norms = (2, 3) if cross else (1, 2)
    return n_attn * (4 * d * d + 4 * d) + (2 * d * d_ff + d_ff + d) + n_norms * 2 * d


GPT_POSITIONS = ("learned", "sinusoidal", "rope")


class TinyGPT(nn.Module):
    """A decoder-only (GPT) language model: token embedding (+ positions), ``n_layers`` causal
    ``TransformerBlock`` s, a final LayerNorm (Pre-LN only) and a linear read-out to the vocabulary.

    ``forward(ids (B, T) int64) -> logits (B, T, V)``: ``logits[:, t]`` scores the token at
    ``t + 1`` and depends on ``ids[:, :t+1]`` only (the causal mask), so one forward pass gives
    every next-token prediction of a sequence (teacher forcing). No sampling here: generation
    calls ``forward`` once per new token. ``pos``: ``"learned"`` (a ``max_len x d`` table; at most
    ``max_len`` tokens), ``"sinusoidal"`` (fixed ``sinusoidal_pe`` added to the embeddings) or
    ``"rope"`` (queries and keys rotated in every block, nothing added). ``d_ff`` defaults to
    ``4 d``. Weights start as in GPT-2: normal with std 0.02, zero biases.
    """

    def __init__(
        self,
        vocab_size: int,
        d: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        max_len: int = 64,
        pos: Literal["learned", "sinusoidal", "rope"] = "learned",
        d_ff: int | None = None,
        pre_norm: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        _positive_int(vocab_size, "vocab_size")
        _positive_int(n_layers, "n_layers")
        _positive_int(max_len, "max_len")
        if pos not in GPT_POSITIONS:
            raise ValueError(f"pos must be one of {GPT_POSITIONS}, got {pos!r}")
        if pos == "sinusoidal":
            _check_even_dim(d, "d")
        self.vocab_size, self.d, self.max_len, self.pos = vocab_size, d, max_len, pos
        self.tok_emb = nn.Embedding(vocab_size, d)
        self.pos_emb = LearnedPositionalEmbedding(max_len, d) if pos == "learned" else None
        self.blocks = nn.ModuleList(
            TransformerBlock(
                d,
                n_heads,
                d_ff or 4 * d,
                pre_norm=pre_norm,
                causal=True,
                dropout=dropout,
                rope=pos == "rope",
            )  # fmt: skip
            for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d) if pre_norm else nn.Identity()
        self.head = nn.Linear(d, vocab_size, bias=False)
        self.dropout = nn.Dropout(dropout)
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(ids) or ids.ndim != 2 or ids.is_floating_point():
            raise ValueError(f"ids must be an integer tensor (B, T), got {ids!r:.60}")
        t = ids.shape[1]
        if self.pos == "learned" and t > self.max_len:
            raise ValueError(f"ids has T={t} tokens, more than max_len={self.max_len}")
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"ids must lie in [0, vocab_size={self.vocab_size})")
        x = self.tok_emb(ids)  # (B, T, d)
        if self.pos == "learned":
            x = x + self.pos_emb(torch.arange(t, device=ids.device))
        elif self.pos == "sinusoidal":
            x = x + sinusoidal_pe(t, self.d, dtype=x.dtype, device=x.device)
        x = self.dropout(x)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))  # (B, T, V)


# =============================================================================================
# Chapter 5.6: efficient attention (window and top-k masks, clustered and LSH routing, linear
# attention, random features). Dense reference kernels: they build the full n x n mask to show
# *which* pairs are kept; real implementations reach their savings with banded, sorted or
# chunked kernels that never form the n x n matrix.


def local_window_mask(n: int, w: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean band ``(n, n)``: query ``i`` may attend to key ``j`` iff ``|i - j| <= w``.

    Combine with ``causal_mask(n)`` (``&``) for a causal sliding window. ``w >= n - 1`` keeps
    every pair, so windowed attention then equals full attention.
    """
    _positive_int(n, "n")
    if not isinstance(w, int) or isinstance(w, bool) or w < 0:
        raise ValueError(f"w must be a non-negative int (the window half-width), got {w!r}")
    idx = torch.arange(n, device=device)
    return (idx[:, None] - idx[None, :]).abs() <= w


def window_pair_count(n: int, w: int) -> int:
    """Number of ``(query, key)`` pairs in ``local_window_mask(n, w)``: ``n(2w+1) - w(w+1)``.

    Each of the ``n`` rows has ``2w + 1`` keys before clipping at the two ends, where
    ``2 (1 + 2 + ... + w) = w(w+1)`` pairs fall off. A half-width ``w >= n`` is clipped to
    ``n - 1`` (all ``n^2`` pairs).
    """
    _positive_int(n, "n")
    if not isinstance(w, int) or isinstance(w, bool) or w < 0:
        raise ValueError(f"w must be a non-negative int, got {w!r}")
    w = min(w, n - 1)
    return n * (2 * w + 1) - w * (w + 1)


def topk_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_keep: int, scale: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention that keeps the ``k_keep`` largest scores of each query and renormalises.

    ``s = q k^T * scale`` (``1/sqrt(D)`` by default); scores outside each row's top ``k_keep``
    get ``-inf`` *before* the softmax, so each row of weights still sums to 1. Shapes as in
    ``scaled_dot_product_attention``; returns ``(output (..., T_q, D_v), weights)``. The full
    ``QK^T`` is computed first: this saves no multiply-adds on the scores (only, with a sparse
    kernel, on ``AV``). ``k_keep >= T_k`` gives full attention.
    """
    _check_qkv(q, k, v)
    _positive_int(k_keep, "k_keep")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale
    top = scores.topk(min(k_keep, scores.shape[-1]), dim=-1).indices
    keep = torch.zeros_like(scores, dtype=torch.bool).scatter(-1, top, True)
    weights = masked_softmax(scores, mask=keep)
    return weights @ v, weights


def lsh_buckets(
    x: torch.Tensor, n_buckets: int, n_rounds: int = 1, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Angular LSH of Reformer: ``bucket(x) = argmax([x R; -x R])`` for a random ``R``.

    ``x: (..., T, D)``; each round draws ``R: (D, n_buckets / 2)`` with standard normal entries
    (``n_buckets`` even). Vectors at a small angle land in the same bucket with high
    probability. Returns ``(n_rounds, ..., T)`` long ids in ``0..n_buckets-1``. Hash queries and
    keys with the same ``R`` (Reformer shares ``Q = K``; here: hash them in one call).
    """
    if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim < 2:
        raise ValueError(f"x must be a floating-point tensor (..., T, D), got {x!r:.60}")
    _positive_int(n_buckets, "n_buckets")
    _positive_int(n_rounds, "n_rounds")
    if n_buckets % 2:
        raise ValueError(
            f"n_buckets must be even ([xR; -xR] has 2 columns per draw), got {n_buckets}"
        )
    R = torch.randn(n_rounds, x.shape[-1], n_buckets // 2, generator=generator, dtype=x.dtype)
    proj = torch.einsum("...td,rdb->r...tb", x, R.to(x.device))
    return torch.cat([proj, -proj], dim=-1).argmax(dim=-1)


def kmeans_assign(
    x: torch.Tensor, n_clusters: int, n_iter: int = 10, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on the rows of ``x: (T, D)``: ``(ids (T,) long, centroids (C, D))``.

    Start from ``n_clusters`` distinct random rows; repeat ``n_iter`` times: assign each row to
    its nearest centroid (squared Euclidean), move each centroid to the mean of its rows (an
    empty cluster keeps its centroid). The returned ids are those of the final centroids.
    """
    if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim != 2:
        raise ValueError(f"x must be a floating-point matrix (T, D), got {x!r:.60}")
    _positive_int(n_clusters, "n_clusters")
    _positive_int(n_iter, "n_iter")
    if n_clusters > x.shape[0]:
        raise ValueError(f"n_clusters must be at most T={x.shape[0]}, got {n_clusters}")
    start = torch.randperm(x.shape[0], generator=generator)[:n_clusters].to(x.device)
    centroids = x[start].clone()
    for _ in range(n_iter):
        ids = torch.cdist(x, centroids).argmin(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, ids, x)
        counts = torch.bincount(ids, minlength=n_clusters).to(x.dtype)[:, None]
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
    return torch.cdist(x, centroids).argmin(dim=1), centroids


def cluster_mask(q_ids: torch.Tensor, k_ids: torch.Tensor) -> torch.Tensor:
    """``M[..., i, j] = (q_ids[..., i] == k_ids[..., j])``: attend within a cluster or bucket.

    ``q_ids: (..., T_q)``, ``k_ids: (..., T_k)`` integer ids -> boolean ``(..., T_q, T_k)``.
    With several hashing rounds ``(R, ..., T)``, take ``.any(0)`` of the result (Reformer's union).
    """
    for name, t in (("q_ids", q_ids), ("k_ids", k_ids)):
        if not torch.is_tensor(t) or t.is_floating_point() or t.ndim < 1:
            raise TypeError(f"{name} must be an integer tensor (..., T)")
    return q_ids[..., :, None] == k_ids[..., None, :]


def cluster_sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    n_clusters: int,
    method: Literal["kmeans", "lsh"] = "kmeans",
    n_rounds: int = 1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Content-based sparse attention: a query attends only to the keys routed with it.

    ``q, k: (T, D)``, ``v: (T, D_v)``. Queries and keys are routed *together* (one k-means on
    the stacked rows, as in the Routing Transformer, or one set of LSH rotations with
    ``n_rounds`` rounds, as in Reformer), so that a query and a key are compared with the same
    centroids or hyperplanes. Excluded scores get ``-inf`` before the softmax. Returns
    ``(output (T, D_v), mask (T, T))``; a query whose cluster holds no key gets a zero output
    (with shared ``Q = K`` every query has at least itself).
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not torch.is_tensor(t) or not t.is_floating_point() or t.ndim != 2:
            raise ValueError(f"{name} must be a floating-point matrix (T, D)")
    if q.shape[-1] != k.shape[-1] or k.shape[0] != v.shape[0]:
        raise ValueError("need q (T_q, D), k (T_k, D) and v (T_k, D_v)")
    both = torch.cat([q, k])
    if method == "kmeans":
        ids, _ = kmeans_assign(both, n_clusters, generator=generator)
        mask = cluster_mask(ids[: len(q)], ids[len(q) :])
    elif method == "lsh":
        ids = lsh_buckets(both, n_clusters, n_rounds=n_rounds, generator=generator)
        mask = cluster_mask(ids[:, : len(q)], ids[:, len(q) :]).any(0)
    else:
        raise ValueError(f"method must be 'kmeans' or 'lsh', got {method!r}")
    out, _ = scaled_dot_product_attention(q, k, v, mask=mask)
    return out, mask


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """``phi(x) = elu(x) + 1``, positive everywhere (Katharopoulos et al., 2020)."""
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x!r:.60}")
    return torch.nn.functional.elu(x) + 1.0


def linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    feature_map: Callable[[torch.Tensor], torch.Tensor] = elu_feature_map,
    causal: bool = False,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Linear attention: the kernel ``exp(q.k/sqrt D)`` *replaced* by ``phi(q)^T phi(k)``.

    ``o_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / (phi(q_i)^T sum_j phi(k_j) + eps)``.
    Non-causal: the sums are formed once (associativity), ``O(n D D_v)`` time, no ``n x n``
    matrix. ``causal=True``: the parallel (training) form, the masked quadratic
    ``(M * phi(Q) phi(K)^T) V`` row-normalised, equal to ``linear_attention_recurrent``.
    ``q: (..., T_q, D)``, ``k: (..., T_k, D)``, ``v: (..., T_k, D_v)`` -> ``(..., T_q, D_v)``.
    """
    _check_qkv(q, k, v)
    fq, fk = feature_map(q), feature_map(k)
    if causal:
        if q.shape[-2] != k.shape[-2]:
            raise ValueError("causal linear attention needs T_q == T_k")
        A = (fq @ fk.transpose(-2, -1)) * causal_mask(q.shape[-2], device=q.device)
        return (A @ v) / (A.sum(-1, keepdim=True) + eps)
    kv = fk.transpose(-2, -1) @ v  # (..., D', D_v): sum_j phi(k_j) v_j^T
    z = fk.sum(dim=-2)  # (..., D')
    return (fq @ kv) / ((fq * z[..., None, :]).sum(-1, keepdim=True) + eps)


def linear_attention_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    feature_map: Callable[[torch.Tensor], torch.Tensor] = elu_feature_map,
    gate: torch.Tensor | None = None,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Causal linear attention as an RNN with a fixed-size state (reference loop over time).

    ``S_t = G_t * S_{t-1} + phi(k_t) v_t^T`` (``(D', D_v)``), ``z_t = G_t * z_{t-1} + phi(k_t)``,
    ``o_t = phi(q_t)^T S_t / (phi(q_t)^T z_t + eps)``. ``gate: (..., T, D')`` (one decay per
    feature row of ``S``, gated linear attention) or ``(..., T, 1)``; ``None`` means ``G = 1``.
    The state has ``D' D_v`` numbers whatever the length. Shapes: ``q, k: (..., T, D)``,
    ``v: (..., T, D_v)`` -> ``(..., T, D_v)``.
    """
    _check_qkv(q, k, v)
    if q.shape[-2] != k.shape[-2]:
        raise ValueError("the recurrent form needs T_q == T_k")
    fq, fk = feature_map(q), feature_map(k)
    if gate is not None and (not torch.is_tensor(gate) or gate.shape[-2] != q.shape[-2]):
        raise ValueError(f"gate must be (..., T={q.shape[-2]}, D') or (..., T, 1)")
    S = torch.zeros(*fk.shape[:-2], fk.shape[-1], v.shape[-1], dtype=v.dtype, device=v.device)
    z = torch.zeros(*fk.shape[:-2], fk.shape[-1], dtype=v.dtype, device=v.device)
    outs = []
    for t in range(q.shape[-2]):
        if gate is not None:
            g = gate[..., t, :]
            S, z = g[..., :, None] * S, g * z
        S = S + fk[..., t, :, None] * v[..., t, None, :]
        z = z + fk[..., t, :]
        num = (fq[..., t, :, None] * S).sum(-2)
        outs.append(num / ((fq[..., t, :] * z).sum(-1, keepdim=True) + eps))
    return torch.stack(outs, dim=-2)


def random_feature_map(
    x: torch.Tensor,
    n_features: int,
    generator: torch.Generator | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Performer's positive random features: ``E[phi(q)^T phi(k)] = exp(q . k)``.

    ``phi(x) = exp(W x - |x|^2 / 2) / sqrt(m)`` with the rows of ``W: (m, D)`` drawn from
    ``N(0, I)`` (``m = n_features``); pass the same ``weights`` (or an identically seeded
    ``generator``) for queries and keys. For the softmax kernel ``exp(q.k / sqrt D)`` feed
    ``x / D**0.25``. ``x: (..., D)`` -> ``(..., m)``. Unbiased, with a variance that falls like
    ``1/m`` and grows quickly with ``|q + k|``.
    """
    if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim < 1:
        raise ValueError(f"x must be a floating-point tensor (..., D), got {x!r:.60}")
    _positive_int(n_features, "n_features")
    if weights is None:
        weights = torch.randn(n_features, x.shape[-1], generator=generator, dtype=x.dtype)
    if weights.shape != (n_features, x.shape[-1]):
        raise ValueError(f"weights must be (n_features, D) = ({n_features}, {x.shape[-1]})")
    proj = x @ weights.to(x.device, x.dtype).T
    return torch.exp(proj - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(n_features)
