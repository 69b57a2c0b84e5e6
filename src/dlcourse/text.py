"""Text as data: tokens, vocabularies, n-gram statistics and models, minibatches of sequences.

- ``tokenize``: lines -> lists of word or character tokens (our own rules, no library).
- ``Vocab``: token <-> integer id, with reserved tokens (``<unk>`` is always id 0).
- ``ngram_counts``, ``zipf_slope``: counting and the rank-frequency law of Zipf.
- ``NgramLM``: an n-gram language model from counts with recursive Laplace smoothing.
- ``seq_data_iter_random``, ``seq_data_iter_sequential``: (X, Y) minibatches from one long
  corpus, Y being X shifted by one token.
- ``frame_signal``: cut a waveform into overlapping frames (speech as a sequence).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

import numpy as np
import torch

__all__ = [
    "CharTokenizer",
    "NgramLM",
    "Vocab",
    "frame_signal",
    "lm_batches",
    "ngram_counts",
    "seq_data_iter_random",
    "seq_data_iter_sequential",
    "tokenize",
    "zipf_slope",
]

# a word: letters, possibly joined by inner apostrophes ("o'er", "ne'er-do-well" -> 3 words)
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def tokenize(
    lines: str | Sequence[str], token: Literal["word", "char"] = "char", lower: bool = False
) -> list[list[str]]:
    """Split each line into tokens: one list of tokens per line.

    ``token="char"``: every character is a token, spaces and punctuation included.
    ``token="word"``: maximal runs of letters, with inner apostrophes kept (``"o'er"``);
    digits, punctuation and white space separate words and are dropped.
    ``lower=True`` lower-cases first. A single string counts as a list of one line.
    """
    if isinstance(lines, str):
        lines = [lines]
    if not all(isinstance(line, str) for line in lines):
        raise TypeError("lines must be a string or a sequence of strings")
    if token not in ("word", "char"):
        raise ValueError(f"token must be 'word' or 'char', got {token!r}")
    if lower:
        lines = [line.lower() for line in lines]
    if token == "char":
        return [list(line) for line in lines]
    return [_WORD.findall(line) for line in lines]


def _flatten(tokens: Iterable) -> list:
    """A flat list from a list of tokens or a list of lists of tokens."""
    tokens = list(tokens)
    if tokens and isinstance(tokens[0], list | tuple):
        return [t for line in tokens for t in line]
    return tokens


class Vocab:
    """Token <-> id map, ids in order: ``<unk>`` (always 0), the other reserved tokens, then the
    tokens seen at least ``min_freq`` times, most frequent first (ties alphabetical).

    ``tokens``: a flat list of tokens or a list of lines of tokens (words or characters).
    ``vocab[token]`` -> id (unknown tokens -> 0); ``vocab[list_of_tokens]`` -> list of ids;
    ``vocab.to_tokens(ids)`` inverts it; ``vocab.token_freqs``: ``(token, count)`` pairs of the
    corpus, most frequent first (all tokens, before the ``min_freq`` cut).
    """

    def __init__(
        self, tokens: Iterable = (), min_freq: int = 0, reserved_tokens: Sequence[str] = ("<unk>",)
    ):
        if not isinstance(min_freq, int) or min_freq < 0:
            raise ValueError(f"min_freq must be a non-negative int, got {min_freq!r}")
        if len(set(reserved_tokens)) != len(reserved_tokens):
            raise ValueError(f"reserved_tokens must be distinct, got {list(reserved_tokens)}")
        counts = Counter(_flatten(tokens))
        self.token_freqs: list[tuple[str, int]] = sorted(
            counts.items(), key=lambda kv: (-kv[1], kv[0])
        )
        reserved = ["<unk>"] + [t for t in reserved_tokens if t != "<unk>"]
        kept = [t for t, f in self.token_freqs if f >= min_freq and t not in reserved]
        self.idx_to_token: list[str] = reserved + kept
        self.token_to_idx: dict[str, int] = {t: i for i, t in enumerate(self.idx_to_token)}

    def __len__(self) -> int:
        return len(self.idx_to_token)

    def __getitem__(self, tokens):
        if isinstance(tokens, list | tuple):
            return [self.token_to_idx.get(t, self.unk) for t in tokens]
        return self.token_to_idx.get(tokens, self.unk)

    def __contains__(self, token) -> bool:
        return token in self.token_to_idx

    def to_tokens(self, ids):
        """Id -> token, or a list (or 1-D tensor) of ids -> list of tokens."""
        if torch.is_tensor(ids):
            ids = ids.tolist()
        if isinstance(ids, list | tuple):
            return [self.idx_to_token[int(i)] for i in ids]
        return self.idx_to_token[int(ids)]

    @property
    def unk(self) -> int:
        """The id of ``<unk>``: 0."""
        return 0

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self.idx_to_token[:6])
        return f"Vocab(size={len(self)}, first=[{head}, ...])"


def ngram_counts(tokens: Sequence, n: int) -> Counter:
    """Counts of the ``n``-grams of a flat token sequence: ``Counter({(t1, ..., tn): count})``.

    A sequence of ``T`` tokens has ``T - n + 1`` n-grams (none when ``T < n``).
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    tokens = list(tokens)
    return Counter(zip(*(tokens[i:] for i in range(n)), strict=False))


def zipf_slope(freqs: Sequence[int], rank_range: tuple[int, int] = (10, 1000)) -> float:
    r"""Least-squares slope of $\log n_i$ against $\log i$ over the ranks ``rank_range``.

    Zipf's law $n_i\propto i^{-\alpha}$ is a line $\log n_i=-\alpha\log i+c$; the slope is
    $-\alpha$. ``freqs`` are counts in any order (sorted here, rank 1 = most frequent);
    ``rank_range=(lo, hi)`` keeps ranks ``lo..hi`` inclusive (cut to the available ranks).
    """
    counts = np.sort(np.asarray(freqs, dtype=np.float64))[::-1]
    lo, hi = rank_range
    if not (1 <= lo < hi):
        raise ValueError(f"rank_range must be (lo, hi) with 1 <= lo < hi, got {rank_range}")
    counts = counts[lo - 1 : hi]
    if len(counts) < 2 or (counts <= 0).any():
        raise ValueError(
            f"freqs needs at least {lo + 1} positive counts for rank_range {rank_range}"
        )
    ranks = np.arange(lo, lo + len(counts), dtype=np.float64)
    slope, _ = np.polyfit(np.log(ranks), np.log(counts), 1)
    return float(slope)


def _as_ids(ids, name: str = "ids") -> torch.Tensor:
    ids = torch.as_tensor(ids)
    if ids.numel() == 0:
        ids = ids.reshape(0).long()  # an empty list comes out as float32
    if ids.ndim != 1 or ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"{name} must be a 1-D sequence of integer ids, got {tuple(ids.shape)}")
    return ids.long()


class NgramLM:
    r"""An ``n``-gram language model from counts, with recursive Laplace (additive) smoothing.

    With $N$ training tokens, $V$ = ``vocab_size`` and $\epsilon$ = ``eps``:

    $$\hat P(x)=\frac{n(x)+\epsilon/V}{N+\epsilon},\qquad
    \hat P(x'\mid c)=\frac{n(c,x')+\epsilon\,\hat P(x'\mid c_{\text{shorter}})}{n(c)+\epsilon},$$

    where $c$ is the context of the last $k-1$ tokens, $c_{\text{shorter}}$ drops its first token
    and $n(c)=\sum_{x'}n(c,x')$. ``eps`` is used only when predicting, so it may be changed
    after ``fit``. ``eps=0`` gives the unsmoothed counts ratio (zero for an unseen
    n-gram); an unseen context falls back to the shorter context for every ``eps``.
    Counts live in sorted tensors of n-gram keys (``key = sum_i x_i V^(k-1-i)``), so the model
    also fits word vocabularies. Methods: ``fit(ids)``, ``next_token_probs(context) -> (V,)``,
    ``token_probs(ids) -> (T,)``, ``log_prob(ids)``, ``generate(prefix, n_new, ...)``.
    """

    def __init__(self, n: int, vocab_size: int, eps: float = 1.0):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        if not isinstance(vocab_size, int) or vocab_size < 1:
            raise ValueError(f"vocab_size must be a positive int, got {vocab_size!r}")
        if vocab_size**n >= 2**62:
            raise ValueError(f"vocab_size ** n must fit in int64 keys, got {vocab_size} ** {n}")
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps!r}")
        self.n, self.vocab_size, self.eps = n, vocab_size, float(eps)
        self.total = 0
        self.unigram = torch.zeros(vocab_size, dtype=torch.float64)
        # per order k >= 2: sorted n-gram keys and counts, sorted context keys and counts
        self._grams: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._contexts: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _keys(self, windows: torch.Tensor) -> torch.Tensor:
        """``windows: (M, k)`` ids -> ``(M,)`` int64 keys, first token most significant."""
        k = windows.shape[1]
        powers = self.vocab_size ** torch.arange(k - 1, -1, -1, dtype=torch.int64)
        return (windows * powers).sum(1)

    def fit(self, ids) -> NgramLM:
        """Count every k-gram, k = 1..n, of the 1-D id sequence ``ids``; returns ``self``."""
        ids = _as_ids(ids)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"ids must lie in [0, vocab_size={self.vocab_size})")
        self.total = len(ids)
        self.unigram = torch.bincount(ids, minlength=self.vocab_size).double()
        for k in range(2, self.n + 1):
            if len(ids) < k:
                empty = torch.zeros(0, dtype=torch.int64)
                self._grams[k] = self._contexts[k] = (empty, empty.double())
                continue
            keys, counts = torch.unique(self._keys(ids.unfold(0, k, 1)), return_counts=True)
            ctx, inverse = torch.unique(keys // self.vocab_size, return_inverse=True)
            ctx_counts = torch.zeros(len(ctx), dtype=torch.float64)
            ctx_counts.index_add_(0, inverse, counts.double())
            self._grams[k] = (keys, counts.double())
            self._contexts[k] = (ctx, ctx_counts)
        return self

    @staticmethod
    def _lookup(sorted_keys: torch.Tensor, values: torch.Tensor, keys: torch.Tensor):
        """``values`` at ``keys`` in ``sorted_keys``; 0 where a key is absent."""
        if len(sorted_keys) == 0:
            return torch.zeros(keys.shape, dtype=torch.float64)
        pos = torch.searchsorted(sorted_keys, keys).clamp(max=len(sorted_keys) - 1)
        return torch.where(sorted_keys[pos] == keys, values[pos], 0.0)

    def _unigram_probs(self) -> torch.Tensor:
        denom = self.total + self.eps
        if denom == 0:
            raise ValueError("the model has no training tokens and eps=0: call fit first")
        return (self.unigram + self.eps / self.vocab_size) / denom

    @staticmethod
    def _smooth(count, lower, ctx_count, eps: float) -> torch.Tensor:
        """(n(c, x) + eps P_lower) / (n(c) + eps), and P_lower for an unseen context."""
        denom = ctx_count + eps
        safe = torch.where(denom > 0, denom, torch.ones_like(denom))
        return torch.where(denom > 0, (count + eps * lower) / safe, lower)

    def next_token_probs(self, context: Sequence[int] | torch.Tensor = ()) -> torch.Tensor:
        """``(V,)`` float64 distribution of the next token given the last ``n-1`` ids of
        ``context`` (fewer when the context is shorter). Sums to 1 when ``eps > 0``."""
        context = _as_ids(list(context) if not torch.is_tensor(context) else context, "context")
        probs = self._unigram_probs()
        V = self.vocab_size
        for k in range(2, min(self.n, len(context) + 1) + 1):
            ctx_key = self._keys(context[len(context) - (k - 1) :][None])  # (1,)
            ctx_count = self._lookup(*self._contexts[k], ctx_key)  # (1,)
            keys, counts = self._grams[k]
            lo, hi = torch.searchsorted(keys, torch.cat([ctx_key * V, ctx_key * V + V])).tolist()
            gram_counts = torch.zeros(V, dtype=torch.float64)
            gram_counts[keys[lo:hi] % V] = counts[lo:hi]
            probs = self._smooth(gram_counts, probs, ctx_count, self.eps)
        return probs

    def token_probs(self, ids) -> torch.Tensor:
        """``(T,)`` probabilities $\\hat P(x_t\\mid x_{t-n+1..t-1})$ of each observed token;
        the first tokens use the shorter contexts they have."""
        ids = _as_ids(ids)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"ids must lie in [0, vocab_size={self.vocab_size})")
        probs = self._unigram_probs()[ids]
        for k in range(2, min(self.n, len(ids)) + 1):
            keys = self._keys(ids.unfold(0, k, 1))  # (T-k+1,) windows ending at t = k-1..T-1
            count = self._lookup(*self._grams[k], keys)
            ctx_count = self._lookup(*self._contexts[k], keys // self.vocab_size)
            probs[k - 1 :] = self._smooth(count, probs[k - 1 :], ctx_count, self.eps)
        return probs

    def log_prob(self, ids) -> float:
        """$\\sum_t\\log\\hat P(x_t\\mid\\text{context})$ in nats; ``-inf`` if a token has
        probability 0 (possible only with ``eps=0``)."""
        return float(torch.log(self.token_probs(ids)).sum())

    def generate(
        self,
        prefix: Sequence[int],
        n_new: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> list[int]:
        """``prefix`` followed by ``n_new`` sampled ids; each draw from $p^{1/\\tau}$ renormalised
        (``temperature`` $\\tau$: below 1 sharper, above 1 flatter, 0 = greedy arg-max)."""
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature!r}")
        out = [int(i) for i in prefix]
        for _ in range(n_new):
            probs = self.next_token_probs(out[-(self.n - 1) :] if self.n > 1 else [])
            if temperature == 0:
                out.append(int(probs.argmax()))
                continue
            logits = torch.log(probs) / temperature
            weights = torch.softmax(logits, dim=0)
            out.append(int(torch.multinomial(weights, 1, generator=generator)))
        return out

    def perplexity(self, ids) -> float:
        """$\\exp(-\\frac1T\\sum_t\\log\\hat P(x_t\\mid\\cdot))$ on the ids; ``inf`` for a zero."""
        ids = _as_ids(ids)
        if len(ids) == 0:
            raise ValueError("ids must hold at least one token")
        return math.exp(-self.log_prob(ids) / len(ids))


def _check_reader_args(corpus, batch_size: int, num_steps: int) -> torch.Tensor:
    corpus = _as_ids(corpus, "corpus")
    for name, value in (("batch_size", batch_size), ("num_steps", num_steps)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if len(corpus) < num_steps + 1:
        raise ValueError(f"corpus must hold at least num_steps + 1 = {num_steps + 1} tokens")
    return corpus


def seq_data_iter_random(
    corpus: Sequence[int] | torch.Tensor,
    batch_size: int,
    num_steps: int,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of random sampling: independent windows of ``num_steps`` tokens.

    Drops a random offset of 0..num_steps-1 tokens, cuts the rest into non-overlapping windows,
    shuffles them and yields ``X, Y: (batch_size, num_steps)`` int64 with
    ``Y[:, t] = X[:, t] + 1 position`` (the next token). Windows of one batch are not neighbours
    in the corpus, so a recurrent state must be reset for every batch.
    """
    corpus = _check_reader_args(corpus, batch_size, num_steps)
    offset = int(torch.randint(num_steps, (1,), generator=generator))
    corpus = corpus[offset:]
    n_windows = (len(corpus) - 1) // num_steps
    starts = torch.randperm(n_windows, generator=generator) * num_steps
    windows = torch.arange(num_steps)
    for i in range(0, n_windows - batch_size + 1, batch_size):
        idx = starts[i : i + batch_size, None] + windows  # (B, T)
        yield corpus[idx], corpus[idx + 1]


def seq_data_iter_sequential(
    corpus: Sequence[int] | torch.Tensor,
    batch_size: int,
    num_steps: int,
    generator: torch.Generator | None = None,
    offset: int | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of sequential partitioning: minibatch ``i+1`` continues minibatch ``i``.

    Drops a random offset of 0..num_steps-1 tokens (or exactly ``offset`` when given), splits the rest into ``batch_size``
    contiguous rows of equal length and walks along them ``num_steps`` at a time, yielding
    ``X, Y: (batch_size, num_steps)`` int64 with ``Y`` = ``X`` shifted by one token. Row ``b`` of
    one batch is followed in the corpus by row ``b`` of the next, so a recurrent state can be
    carried over (detached) from batch to batch.
    """
    corpus = _check_reader_args(corpus, batch_size, num_steps)
    if offset is None:
        offset = int(torch.randint(num_steps, (1,), generator=generator))
    elif not isinstance(offset, int) or not 0 <= offset < len(corpus) - 1:
        raise ValueError(f"offset must be an int in [0, len(corpus) - 1), got {offset!r}")
    n_tokens = ((len(corpus) - offset - 1) // batch_size) * batch_size
    if n_tokens < batch_size * num_steps:
        raise ValueError(
            f"corpus is too short for batch_size={batch_size} rows of num_steps={num_steps}"
        )
    xs = corpus[offset : offset + n_tokens].reshape(batch_size, -1)
    ys = corpus[offset + 1 : offset + 1 + n_tokens].reshape(batch_size, -1)
    for i in range(0, (xs.shape[1] // num_steps) * num_steps, num_steps):
        yield xs[:, i : i + num_steps], ys[:, i : i + num_steps]


def frame_signal(x: np.ndarray, win: int = 400, hop: int = 160) -> np.ndarray:
    r"""Cut a 1-D signal into overlapping frames: ``(n_frames, win)`` with
    $n_\text{frames}=\lfloor(N-\text{win})/\text{hop}\rfloor+1$ (a view, no copy).

    At 16 kHz, ``win=400`` and ``hop=160`` are the usual 25 ms windows every 10 ms: one second
    gives 98 frames.
    """
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"x must be a 1-D signal, got shape {x.shape}")
    for name, value in (("win", win), ("hop", hop)):
        if not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if len(x) < win:
        raise ValueError(f"x must hold at least win={win} samples, got {len(x)}")
    return np.lib.stride_tricks.sliding_window_view(x, win)[::hop]


# ---------------------------------------------------------------------------------------------
# Chapter 5.3: a character tokenizer and random language-model windows for a tiny GPT


class CharTokenizer:
    """Characters <-> ids for a character-level language model.

    Ids: first the ``specials`` (e.g. ``("<pad>", "<bos>")``, ids ``0..len(specials)-1``), then
    every distinct character of ``text`` in sorted order. ``encode(s) -> (len,) int64`` maps
    each character to its id; a special written out in ``s`` (``"<bos>"``) becomes its one id.
    ``decode(ids) -> str`` inverts it, so ``decode(encode(s)) == s``. ``id_of(token)`` gives one
    id, ``vocab_size`` the number of ids. A character not seen in ``text`` raises ``ValueError``
    (a character vocabulary is small, so nothing is mapped to an unknown token silently).
    """

    def __init__(self, text: str, specials: Sequence[str] = ()):
        if not isinstance(text, str) or not text:
            raise ValueError("text must be a non-empty string (the characters to know)")
        specials = list(specials)
        if not all(isinstance(s, str) and s for s in specials) or len(set(specials)) != len(
            specials
        ):
            raise ValueError(f"specials must be distinct non-empty strings, got {specials}")
        chars = sorted(set(text))
        clash = [s for s in specials if s in chars]
        if clash:
            raise ValueError(f"specials {clash} are also characters of text; use e.g. '<pad>'")
        self.specials = tuple(specials)
        self.itos: list[str] = specials + chars
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        longest_first = sorted(specials, key=len, reverse=True)
        self._split = (
            re.compile("(" + "|".join(map(re.escape, longest_first)) + ")") if specials else None
        )

    @property
    def vocab_size(self) -> int:
        """Number of ids: specials plus distinct characters."""
        return len(self.itos)

    def id_of(self, token: str) -> int:
        """The id of one character or special token."""
        if token not in self.stoi:
            raise ValueError(f"token {token!r} is not in the vocabulary")
        return self.stoi[token]

    def encode(self, s: str) -> torch.Tensor:
        """``s`` -> ``(len,)`` int64 ids; specials written in ``s`` count as one token each."""
        if not isinstance(s, str):
            raise TypeError(f"s must be a string, got {type(s).__name__}")
        pieces = self._split.split(s) if self._split else [s]
        ids: list[int] = []
        for i, piece in enumerate(pieces):
            if i % 2 and self._split:  # odd pieces are the specials matched by the split
                ids.append(self.stoi[piece])
                continue
            unknown = sorted(set(piece) - self.stoi.keys())
            if unknown:
                raise ValueError(f"s contains characters not in the vocabulary: {unknown}")
            ids.extend(self.stoi[c] for c in piece)
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids) -> str:
        """``ids`` (a 1-D tensor or a list of ints) -> the string, specials written out."""
        ids = _as_ids(ids)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"ids must lie in [0, vocab_size={self.vocab_size})")
        return "".join(self.itos[i] for i in ids.tolist())

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, specials={self.specials})"


def lm_batches(
    ids: torch.Tensor,
    batch_size: int,
    block: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One minibatch of ``batch_size`` random windows of a 1-D id sequence, and its targets.

    Starts ``s_b`` are uniform in ``[0, len(ids) - block - 1]``; ``x[b] = ids[s_b : s_b + block]``
    and ``y[b] = ids[s_b + 1 : s_b + block + 1]``, both ``(batch_size, block)`` int64 on the
    device of ``ids``: ``y[:, t]`` is the token after ``x[:, t]``, for
    ``causal_lm_loss(model(x), y, shift=False)``.
    """
    ids = _as_ids(ids)  # 1-D int64, on the device it came on
    for name, value in (("batch_size", batch_size), ("block", block)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if len(ids) < block + 1:
        raise ValueError(f"ids must hold at least block + 1 = {block + 1} tokens, got {len(ids)}")
    starts = torch.randint(len(ids) - block, (batch_size,), generator=generator)
    idx = starts[:, None].to(ids.device) + torch.arange(block, device=ids.device)  # (B, block)
    return ids[idx], ids[idx + 1]
