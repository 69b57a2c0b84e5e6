"""Word embeddings (word2vec): data pipeline, skip-gram and CBOW, negative sampling, Huffman trees.

- ``discard_probability``, ``subsample``: drop frequent words with probability
  $\\max(1-\\sqrt{t/f(w)},0)$ (Mikolov et al., 2013).
- ``centers_and_contexts``: every (centre, words within a window) pair of a corpus.
- ``noise_weights``, ``get_negatives``: the noise distribution $P(w)^{0.75}$ and draws from it.
- ``batchify_skipgram``, ``batchify_cbow``: padded tensors, masks and 0/1 labels.
- ``SkipGram``, ``CBOW``: two embedding tables (centre vectors $v$, context vectors $u$).
- ``huffman_codes``, ``huffman_paths``, ``hs_log_prob``: hierarchical softmax.
- ``nearest_tokens``, ``similarity_spearman``: evaluation by cosine similarity.

The loss for the 0/1 labels is ``dlcourse.losses.masked_bce_with_logits``.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CBOW",
    "SkipGram",
    "batchify_cbow",
    "batchify_skipgram",
    "centers_and_contexts",
    "discard_probability",
    "get_negatives",
    "hs_log_prob",
    "huffman_codes",
    "huffman_paths",
    "nearest_tokens",
    "noise_weights",
    "similarity_spearman",
    "subsample",
]


def _check_generator(rng) -> None:
    if rng is not None and not isinstance(rng, torch.Generator):
        raise TypeError(f"rng must be a torch.Generator or None, got {type(rng).__name__}")


def _tokens_of(vocab) -> list:
    """The id -> token list of a ``dlcourse.text.Vocab`` or of a plain sequence of tokens."""
    tokens = getattr(vocab, "idx_to_token", vocab)
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise TypeError(
            f"vocab must be a Vocab or a sequence of tokens, got {type(vocab).__name__}"
        )
    return list(tokens)


# ---------------------------------------------------------------------------------------------
# Subsampling frequent words


def discard_probability(freqs: torch.Tensor, t: float = 1e-4) -> torch.Tensor:
    r"""$P_\text{discard}(w)=\max\big(1-\sqrt{t/f(w)},\,0\big)$ for relative frequencies ``freqs``.

    ``freqs``: any shape, values in $(0, 1]$ (count / total tokens). Words rarer than ``t`` are
    always kept; a word with $f=100t$ is dropped 90% of the time.
    """
    if not torch.is_tensor(freqs) or not freqs.is_floating_point():
        raise TypeError("freqs must be a floating-point tensor of relative frequencies")
    if (freqs <= 0).any() or (freqs > 1).any():
        raise ValueError("freqs must lie in (0, 1]: counts divided by the number of tokens")
    if not t > 0:
        raise ValueError(f"t must be positive, got {t}")
    return (1 - torch.sqrt(t / freqs)).clamp(min=0)


def subsample(
    sentences: list[list], counter: Counter, t: float = 1e-4, rng: torch.Generator | None = None
) -> list[list]:
    """Each token ``w`` of ``sentences`` dropped independently with ``discard_probability``.

    ``counter``: token -> count over the corpus; $f(w)$ = count / sum of all counts. Tokens
    missing from ``counter`` are kept. Returns new lists (sentences may become empty).
    """
    _check_generator(rng)
    if not isinstance(counter, Counter) or not counter:
        raise ValueError("counter must be a non-empty collections.Counter of token counts")
    total = sum(counter.values())
    flat = [tok for sentence in sentences for tok in sentence]
    counts = torch.tensor([counter.get(tok, 0) for tok in flat], dtype=torch.float64)
    known = counts > 0
    p_drop = torch.zeros_like(counts)
    p_drop[known] = discard_probability(counts[known] / total, t)
    keep = (torch.rand(len(flat), generator=rng, dtype=torch.float64) >= p_drop).tolist()
    out, start = [], 0
    for sentence in sentences:
        stop = start + len(sentence)
        out.append([tok for tok, k in zip(sentence, keep[start:stop], strict=True) if k])
        start = stop
    return out


# ---------------------------------------------------------------------------------------------
# Centres, contexts and negatives


def centers_and_contexts(
    corpus: list[list[int]],
    max_window: int,
    rng: torch.Generator | None = None,
    random_window: bool = True,
) -> tuple[list[int], list[list[int]]]:
    """All centre words of ``corpus`` (sentences of token ids) with their context words.

    For position $i$ of a sentence the window half-width is ``max_window``, or, with
    ``random_window``, uniform in ``1..max_window`` (nearby words then count more, as in
    word2vec). Contexts are the words at positions $i-w..i+w$ except $i$, in order, cut at the
    sentence ends. Sentences shorter than 2 words give no pairs.
    """
    if not isinstance(max_window, int) or max_window < 1:
        raise ValueError(f"max_window must be a positive int, got {max_window!r}")
    _check_generator(rng)
    lengths = [len(s) for s in corpus if len(s) >= 2]
    n = sum(lengths)
    if random_window:
        windows = torch.randint(1, max_window + 1, (n,), generator=rng).tolist()
    else:
        windows = [max_window] * n
    centers, contexts, k = [], [], 0
    for sentence in corpus:
        if len(sentence) < 2:
            continue
        for i, center in enumerate(sentence):
            w = windows[k]
            k += 1
            centers.append(center)
            contexts.append(list(sentence[max(0, i - w) : i]) + list(sentence[i + 1 : i + 1 + w]))
    return centers, contexts


def noise_weights(counter: Counter, vocab, power: float = 0.75) -> torch.Tensor:
    r"""Noise distribution over the ids of ``vocab``: $P_n(w)=\mathrm{count}(w)^{p}/\sum_{w'}
    \mathrm{count}(w')^{p}$, shape ``(len(vocab),)`` float64, summing to 1.

    ``power=0.75`` (word2vec) flattens the unigram distribution: rare words are drawn more often
    than their frequency. Tokens absent from ``counter`` (e.g. ``<unk>``) get probability 0.
    """
    tokens = _tokens_of(vocab)
    counts = torch.tensor([counter.get(tok, 0) for tok in tokens], dtype=torch.float64)
    if not (counts > 0).any():
        raise ValueError("counter has no count for any token of vocab")
    weights = torch.where(counts > 0, counts.pow(power), torch.zeros_like(counts))
    return weights / weights.sum()


def get_negatives(
    contexts: list[list[int]], weights: torch.Tensor, K: int, rng: torch.Generator | None = None
) -> list[list[int]]:
    """``K`` noise words per context word, drawn from ``weights: (V,)`` with replacement.

    Row $i$ gets ``K * len(contexts[i])`` ids, none of them a word of ``contexts[i]`` (a draw
    that hits one is redrawn), so negatives follow ``weights`` restricted to the other words.
    """
    if not torch.is_tensor(weights) or weights.ndim != 1 or (weights < 0).any():
        raise ValueError("weights must be a non-negative 1-D tensor (V,)")
    if not isinstance(K, int) or K < 1:
        raise ValueError(f"K must be a positive int, got {K!r}")
    _check_generator(rng)
    sizes = torch.tensor([len(c) for c in contexts], dtype=torch.long)
    width = int(sizes.max()) if len(contexts) else 0
    own, _ = _pad(contexts, max(width, 1), fill=-1)
    owner = torch.repeat_interleave(torch.arange(len(contexts)), sizes * K)
    negatives = torch.multinomial(weights.cpu(), len(owner), replacement=True, generator=rng)
    for _ in range(1000):
        clash = (own[owner] == negatives[:, None]).any(1)
        if not clash.any():
            break
        fresh = torch.multinomial(weights.cpu(), int(clash.sum()), replacement=True, generator=rng)
        negatives[clash] = fresh
    else:
        raise ValueError("weights put (almost) all their mass on the context words")
    return [chunk.tolist() for chunk in torch.split(negatives, (sizes * K).tolist())]


def _pad(rows: list[list[int]], width: int, fill: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ids padded with ``fill`` to ``(N, width)`` and the ``(N, width)`` float mask."""
    sizes = torch.tensor([len(r) for r in rows], dtype=torch.long)
    mask = (torch.arange(width)[None, :] < sizes[:, None]).float()
    flat = torch.tensor([i for r in rows for i in r], dtype=torch.long)
    out = torch.full((len(rows), width), fill, dtype=torch.long)
    out[mask.bool()] = flat
    return out, mask


def batchify_skipgram(
    data: Sequence[tuple[int, list[int], list[int]]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded tensors from ``(centre, contexts, negatives)`` triples, for ``SkipGram``.

    Returns ``centers: (N, 1)``, ``ctx_negs: (N, L)`` (contexts, then negatives, then 0-padding),
    ``masks: (N, L)`` (1 on real entries) and ``labels: (N, L)`` (1 on contexts, 0 elsewhere),
    with ``L`` the longest ``len(contexts) + len(negatives)``.
    """
    if not data:
        raise ValueError("data must hold at least one (centre, contexts, negatives) triple")
    rows = [list(c) + list(n) for _, c, n in data]
    width = max(len(r) for r in rows)
    ctx_negs, masks = _pad(rows, width)
    n_ctx = torch.tensor([len(c) for _, c, _ in data])
    labels = (torch.arange(width)[None, :] < n_ctx[:, None]).float()
    centers = torch.tensor([c for c, _, _ in data], dtype=torch.long)[:, None]
    return centers, ctx_negs, masks, labels


def batchify_cbow(
    data: Sequence[tuple[int, list[int], list[int]]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded tensors from ``(centre, contexts, negatives)`` triples, for ``CBOW``.

    Returns ``contexts: (N, C)`` and ``ctx_mask: (N, C)`` (the inputs, averaged by CBOW),
    ``candidates: (N, 1 + K)`` (the centre, then ``K`` negatives: ``K = len(negatives)`` must be
    the same for all rows) and ``labels: (N, 1 + K)`` = ``[1, 0, ..., 0]``.
    """
    if not data:
        raise ValueError("data must hold at least one (centre, contexts, negatives) triple")
    n_neg = {len(n) for _, _, n in data}
    if len(n_neg) != 1:
        raise ValueError(f"data: every row needs the same number of negatives, got {n_neg}")
    contexts, ctx_mask = _pad([list(c) for _, c, _ in data], max(len(c) for _, c, _ in data))
    candidates = torch.tensor([[c, *n] for c, _, n in data], dtype=torch.long)
    labels = torch.zeros(candidates.shape)
    labels[:, 0] = 1
    return contexts, ctx_mask, candidates, labels


# ---------------------------------------------------------------------------------------------
# Models


class _TwoTables(nn.Module):
    r"""word2vec's two embedding tables: ``v`` for input (centre or context) words, ``u`` for
    predicted words, both $(|V|, d)$ and drawn from $\mathcal N(0, 1/d)$."""

    def __init__(self, vocab_size: int, dim: int):
        super().__init__()
        if vocab_size < 1 or dim < 1:
            raise ValueError(f"vocab_size and dim must be positive, got {vocab_size}, {dim}")
        self.v = nn.Embedding(vocab_size, dim)
        self.u = nn.Embedding(vocab_size, dim)
        for table in (self.v, self.u):
            nn.init.normal_(table.weight, std=dim**-0.5)


class SkipGram(_TwoTables):
    r"""Skip-gram scores $u_o^\top v_c$: a centre table ``v`` and a context table ``u``.

    ``forward(centers: (B,) or (B, 1), ctx_negs: (B, L)) -> scores: (B, L)``. With labels 1 for
    true contexts and 0 for noise words, ``masked_bce_with_logits(scores, labels, masks)`` is the
    negative-sampling loss. ``v.weight`` are the word vectors used afterwards. Both tables start
    at $\mathcal N(0, 1/d)$, so first scores are of order 1.
    """

    def forward(self, centers: torch.Tensor, ctx_negs: torch.Tensor) -> torch.Tensor:
        if centers.ndim == 2 and centers.shape[1] == 1:
            centers = centers[:, 0]
        if centers.ndim != 1 or ctx_negs.ndim != 2 or len(centers) != len(ctx_negs):
            raise ValueError(
                f"centers must be (B,) or (B, 1) and ctx_negs (B, L), got "
                f"{tuple(centers.shape)} and {tuple(ctx_negs.shape)}"
            )
        v = self.v(centers)  # (B, d)
        u = self.u(ctx_negs)  # (B, L, d)
        return torch.einsum("bd,bld->bl", v, u)


class CBOW(_TwoTables):
    r"""CBOW scores $u_c^\top\bar v_o$ with $\bar v_o$ the mean of the context vectors.

    ``forward(contexts: (B, C), ctx_mask: (B, C), candidates: (B, L)) -> scores: (B, L)``; the
    mask (1 = real word) leaves padding out of the mean. Same tables as ``SkipGram``: ``v`` for
    the averaged inputs, ``u`` for the predicted centre words.
    """

    def forward(
        self, contexts: torch.Tensor, ctx_mask: torch.Tensor, candidates: torch.Tensor
    ) -> torch.Tensor:
        if contexts.shape != ctx_mask.shape or contexts.ndim != 2 or candidates.ndim != 2:
            raise ValueError(
                f"contexts and ctx_mask must be (B, C) and candidates (B, L), got "
                f"{tuple(contexts.shape)}, {tuple(ctx_mask.shape)}, {tuple(candidates.shape)}"
            )
        mask = ctx_mask.to(self.v.weight.dtype)
        v_bar = (self.v(contexts) * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return torch.einsum("bd,bld->bl", v_bar, self.u(candidates))


# ---------------------------------------------------------------------------------------------
# Hierarchical softmax


def huffman_codes(counts: Sequence[int]) -> dict[int, str]:
    """Huffman code of each symbol ``0..len(counts)-1``: frequent symbols get short codes.

    Repeatedly merges the two lightest subtrees (ties broken by creation order, so the result
    is deterministic); the lighter one gets bit ``"0"``. The code is prefix-free and minimises
    $\\sum_w \\mathrm{count}(w)\\,\\mathrm{len}(\\mathrm{code}(w))$. A single symbol gets ``"0"``.
    """
    counts = list(counts)
    if not counts or any(not isinstance(c, int | np.integer) or c < 0 for c in counts):
        raise ValueError("counts must be a non-empty sequence of non-negative ints")
    if len(counts) == 1:
        return {0: "0"}
    heap = [(c, i, [i]) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    codes = dict.fromkeys(range(len(counts)), "")
    order = len(counts)
    while len(heap) > 1:
        c0, _, left = heapq.heappop(heap)
        c1, _, right = heapq.heappop(heap)
        for s in left:
            codes[s] = "0" + codes[s]
        for s in right:
            codes[s] = "1" + codes[s]
        heapq.heappush(heap, (c0 + c1, order, left + right))
        order += 1
    return codes


def huffman_paths(codes: dict[int, str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The root-to-leaf path of every word as internal-node ids and signs, for ``hs_log_prob``.

    An internal node is identified by the code prefix that leads to it (the root is ``""``);
    the $V-1$ prefixes are numbered shortest first. Returns ``nodes: (V, L_max)`` long and
    ``signs: (V, L_max)`` float: $+1$ for bit ``"0"``, $-1$ for bit ``"1"``, 0 on padding.
    """
    if not codes or sorted(codes) != list(range(len(codes))):
        raise ValueError("codes must map every symbol 0..V-1 to its code")
    prefixes = sorted(
        {c[:j] for c in codes.values() for j in range(len(c))}, key=lambda p: (len(p), p)
    )
    index = {p: i for i, p in enumerate(prefixes)}
    width = max(len(c) for c in codes.values())
    nodes = torch.zeros(len(codes), width, dtype=torch.long)
    signs = torch.zeros(len(codes), width)
    for w, code in codes.items():
        for j, bit in enumerate(code):
            nodes[w, j] = index[code[:j]]
            signs[w, j] = 1.0 if bit == "0" else -1.0
    return nodes, signs


def hs_log_prob(
    v_c: torch.Tensor, path_nodes: torch.Tensor, path_signs: torch.Tensor, U: torch.Tensor
) -> torch.Tensor:
    r"""Hierarchical-softmax $\log P(w_o\mid w_c)=\sum_j\log\sigma\big(s_j\,u_{n_j}^\top v_c\big)$.

    ``v_c: (B, d)`` centre vectors; ``path_nodes: (B, L)`` internal-node ids of each target's
    path; ``path_signs: (B, L)`` in $\{+1,-1\}$, 0 on padding (ignored); ``U: (V-1, d)`` the
    internal-node vectors. Returns ``(B,)``. Since $\sigma(x)+\sigma(-x)=1$ at every node, the
    probabilities of all $V$ leaves sum to 1 for any ``v_c`` and ``U``.
    """
    if v_c.ndim != 2 or U.ndim != 2 or v_c.shape[1] != U.shape[1]:
        raise ValueError(
            f"v_c must be (B, d) and U (V-1, d), got {tuple(v_c.shape)} and {tuple(U.shape)}"
        )
    if path_nodes.shape != path_signs.shape or path_nodes.shape[:1] != v_c.shape[:1]:
        raise ValueError(
            f"path_nodes and path_signs must both be (B={len(v_c)}, L), got "
            f"{tuple(path_nodes.shape)} and {tuple(path_signs.shape)}"
        )
    scores = torch.einsum("bd,bld->bl", v_c, U[path_nodes])
    signs = path_signs.to(scores.dtype)
    return (F.logsigmoid(signs * scores) * (signs != 0)).sum(-1)


# ---------------------------------------------------------------------------------------------
# Evaluation


def nearest_tokens(query: str, k: int, emb: torch.Tensor, vocab) -> list[tuple[str, float]]:
    r"""The ``k`` tokens whose rows of ``emb: (V, d)`` have the largest cosine similarity
    $\cos(a,b)=a^\top b/(\lVert a\rVert\,\lVert b\rVert)$ with ``query``'s row, query excluded.

    ``vocab``: a ``Vocab`` or a sequence of tokens, id -> token. Returns ``(token, cosine)``.
    """
    tokens = _tokens_of(vocab)
    if emb.ndim != 2 or len(emb) != len(tokens):
        raise ValueError(f"emb must be (V={len(tokens)}, d), got {tuple(emb.shape)}")
    if query not in tokens:
        raise ValueError(f"query {query!r} is not in vocab")
    if not isinstance(k, int) or not 1 <= k < len(tokens):
        raise ValueError(f"k must be an int in [1, {len(tokens) - 1}], got {k!r}")
    q = tokens.index(query)
    cos = F.cosine_similarity(emb.detach(), emb.detach()[q][None, :], dim=1, eps=1e-9)
    cos[q] = -math.inf
    values, ids = torch.topk(cos, k)
    return [(tokens[i], float(c)) for i, c in zip(ids.tolist(), values.tolist(), strict=True)]


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of their ranks."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # rank - 1 of the first of each group
    return (first + (counts + 1) / 2)[inverse]


def similarity_spearman(
    emb: torch.Tensor, vocab, pairs: Sequence[tuple[str, str, float]]
) -> tuple[float, float]:
    """Spearman correlation between cosine similarities and human scores, and coverage.

    ``pairs``: ``(word1, word2, score)``; only pairs with both words in ``vocab`` count.
    Returns ``(rho, coverage)``, rho being the Pearson correlation of the average ranks and
    coverage the fraction of pairs used (rho is NaN with fewer than 2 usable pairs).
    """
    tokens = _tokens_of(vocab)
    if emb.ndim != 2 or len(emb) != len(tokens):
        raise ValueError(f"emb must be (V={len(tokens)}, d), got {tuple(emb.shape)}")
    if not pairs:
        raise ValueError("pairs must hold at least one (word1, word2, score) triple")
    index = {t: i for i, t in enumerate(tokens)}
    used = [(index[a], index[b], float(s)) for a, b, s in pairs if a in index and b in index]
    coverage = len(used) / len(pairs)
    if len(used) < 2:
        return math.nan, coverage
    a, b, human = (np.array(col) for col in zip(*used, strict=True))
    e = emb.detach().cpu().double()
    cos = F.cosine_similarity(e[a], e[b], dim=1, eps=1e-9).numpy()
    ra, rb = _average_ranks(cos), _average_ranks(human)
    rho = np.corrcoef(ra, rb)[0, 1]
    return float(rho), coverage
