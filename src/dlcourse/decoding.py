r"""Decoding a language model: greedy search, beam search, exhaustive search and sampling.

A language model gives $p(y_t\mid y_{<t})$; generating is a search over *sequences* scored by
$\log p(y)=\sum_t\log p(y_t\mid y_{<t})$. Everything here talks to a model through a **step
function** ``step_fn(prefix: list[int]) -> (V,)`` log-probabilities of the next token given the
whole prefix so far (prompt plus generated ids); ``as_step_fn`` builds one from an
``NgramLM``, a ``CharRNNLM`` or a ``TinyGPT``.

- ``ToyLM``: a hand-made next-token table with known answers.
- ``greedy_decode``, ``beam_search`` (with length normalisation), ``exhaustive_best``.
- ``apply_temperature``, ``top_k_filter``, ``top_p_filter``, ``sampling_distribution``,
  ``sample_next``: the sampling filters, on logits ``(..., V)``.
- ``generate``: prompt -> prompt + new ids with one of the strategies.
- ``repetition_rate``, ``distinct_n``: how repetitive a generated sequence is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch

from .conv import _positive_int

__all__ = [
    "ToyLM",
    "apply_temperature",
    "as_step_fn",
    "beam_search",
    "distinct_n",
    "exhaustive_best",
    "generate",
    "greedy_decode",
    "repetition_rate",
    "sample_next",
    "sampling_distribution",
    "sequence_log_prob",
    "top_k_filter",
    "top_p_filter",
]

StepFn = Callable[[list[int]], torch.Tensor]


def _check_prefix(bos: Any, name: str = "bos") -> list[int]:
    if torch.is_tensor(bos):
        if bos.ndim != 1 or bos.is_floating_point():
            raise ValueError(f"{name} must be a 1-D sequence of integer ids, got {bos!r:.60}")
        return [int(i) for i in bos.tolist()]
    if not isinstance(bos, Sequence) or isinstance(bos, str):
        raise ValueError(f"{name} must be a sequence of integer ids, got {type(bos).__name__}")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in bos):
        raise ValueError(f"{name} must hold integer ids, got {list(bos)!r:.60}")
    return list(bos)


def _check_eos(eos: Any) -> None:
    if eos is not None:
        _positive_int(eos, "eos", 0)


def _log_probs(step_fn: StepFn, prefix: list[int]) -> torch.Tensor:
    """``step_fn(prefix)`` as a 1-D float64 CPU tensor of log-probabilities."""
    out = step_fn(list(prefix))
    if not torch.is_tensor(out) or out.ndim != 1:
        raise ValueError(
            f"step_fn must return a 1-D tensor of V log-probabilities, got {out!r:.60}"
        )
    return out.detach().to("cpu", torch.float64)


# ---------------------------------------------------------------------------------------------
# A toy language model with known answers


class ToyLM:
    r"""A next-token table: ``table[prefix]`` is the distribution $p(\cdot\mid\text{prefix})$.

    ``table`` maps tuples of ids (the prefix, ``()`` for the first token) to probabilities over
    the ``V`` ids (each list sums to 1; zeros allowed). ``default`` (optional) is used for a
    prefix not in the table. After ``max_len`` non-``eos`` tokens, ``eos`` is forced (its
    probability is 1). ``step(prefix) -> (V,)`` float64 log-probabilities, so ``lm.step`` is a
    step function; ``lm(prefix)`` is the same.
    """

    def __init__(
        self,
        table: dict[tuple[int, ...], Sequence[float]],
        eos: int,
        max_len: int,
        default: Sequence[float] | None = None,
    ):
        if not isinstance(table, dict) or not table:
            raise ValueError("table must be a non-empty dict {prefix tuple: probabilities}")
        rows = [*table.values()] + ([default] if default is not None else [])
        sizes = {len(row) for row in rows}
        if len(sizes) != 1:
            raise ValueError(f"table rows must all have the same length V, got lengths {sizes}")
        self.vocab_size = sizes.pop()
        _positive_int(eos, "eos", 0)
        if eos >= self.vocab_size:
            raise ValueError(f"eos must be < V={self.vocab_size}, got {eos}")
        _positive_int(max_len, "max_len", 1)
        self.eos, self.max_len = eos, max_len
        self.table = {}
        for key, row in table.items():
            self.table[tuple(key)] = self._as_probs(row, f"table[{key}]")
        self.default = None if default is None else self._as_probs(default, "default")

    @staticmethod
    def _as_probs(row: Sequence[float], name: str) -> torch.Tensor:
        probs = torch.as_tensor(row, dtype=torch.float64)
        if (probs < 0).any() or not math.isclose(float(probs.sum()), 1.0, abs_tol=1e-6):
            raise ValueError(f"{name} must be non-negative probabilities summing to 1")
        return probs / probs.sum()

    def step(self, prefix: Sequence[int]) -> torch.Tensor:
        """``(V,)`` log-probabilities of the next token after ``prefix``."""
        prefix = tuple(_check_prefix(prefix, "prefix"))
        if len(prefix) >= self.max_len:
            probs = torch.zeros(self.vocab_size, dtype=torch.float64)
            probs[self.eos] = 1.0
        elif prefix in self.table:
            probs = self.table[prefix]
        elif self.default is not None:
            probs = self.default
        else:
            raise ValueError(f"prefix {prefix} is not in the table and there is no default")
        return torch.log(probs)

    __call__ = step


# ---------------------------------------------------------------------------------------------
# Search: greedy, beam, exhaustive


def greedy_decode(
    step_fn: StepFn, bos: Sequence[int], eos: int | None, max_len: int
) -> tuple[list[int], float]:
    r"""Greedy search: $y_t=\arg\max_v\log p(v\mid \text{bos}, y_{<t})$ until ``eos`` or
    ``max_len`` new tokens.

    ``bos``: the prompt (a list of ids, may be empty). Returns the new ids (``eos`` included if
    produced) and their summed log-probability $\sum_t\log p(y_t\mid y_{<t})$.
    """
    prefix = _check_prefix(bos)
    _check_eos(eos)
    _positive_int(max_len, "max_len", 1)
    new, score = [], 0.0
    for _ in range(max_len):
        logp = _log_probs(step_fn, prefix + new)
        token = int(logp.argmax())
        new.append(token)
        score += float(logp[token])
        if token == eos:
            break
    return new, score


def _normalised(score: float, length: int, length_penalty: float) -> float:
    return score / max(length, 1) ** length_penalty


def beam_search(
    step_fn: StepFn,
    bos: Sequence[int],
    eos: int | None,
    beam_width: int,
    max_len: int,
    length_penalty: float = 0.0,
) -> tuple[list[int], float]:
    r"""Beam search of width $B$ = ``beam_width``; returns (new ids, summed log-probability).

    At every step each of the (at most $B$) live hypotheses is extended by every token; the
    $B$ best candidates by summed log-probability $\log p(y)=\sum_t\log p(y_t\mid y_{<t})$ are
    kept. A kept candidate that ends in ``eos`` is set aside as finished; the others stay live.
    Live hypotheses that reach ``max_len`` new tokens count as finished too. The answer is the
    finished hypothesis with the best length-normalised score $\log p(y)/|y|^{\alpha}$,
    $\alpha$ = ``length_penalty`` ($\alpha=0$: the raw sum, which favours short outputs).
    $B=1$ is greedy search; $B\ge V^{\text{max\_len}}$ keeps every candidate (exhaustive).
    """
    prefix = _check_prefix(bos)
    _check_eos(eos)
    _positive_int(beam_width, "beam_width", 1)
    _positive_int(max_len, "max_len", 1)
    if not (isinstance(length_penalty, int | float) and length_penalty >= 0):
        raise ValueError(f"length_penalty must be a number >= 0, got {length_penalty!r}")
    live: list[tuple[list[int], float]] = [([], 0.0)]
    finished: list[tuple[list[int], float]] = []
    for _ in range(max_len):
        logp = torch.stack([_log_probs(step_fn, prefix + seq) for seq, _ in live])  # (n, V)
        totals = torch.tensor([s for _, s in live], dtype=torch.float64)[:, None] + logp
        flat = totals.flatten()
        k = min(beam_width, int(torch.isfinite(flat).sum()))
        if k == 0:
            break
        best = torch.topk(flat, k)
        new_live = []
        for value, index in zip(best.values.tolist(), best.indices.tolist(), strict=True):
            row, token = divmod(index, logp.shape[1])
            hypothesis = (live[row][0] + [token], value)
            (finished if token == eos else new_live).append(hypothesis)
        live = new_live
        if not live:
            break
        if length_penalty == 0 and finished:
            # log-probabilities are <= 0: a live score can only go down, so stop when a finished
            # hypothesis already beats every live one (the answer cannot change).
            if max(s for _, s in finished) >= max(s for _, s in live):
                break
    finished.extend(live)
    seq, score = max(finished, key=lambda h: _normalised(h[1], len(h[0]), length_penalty))
    return seq, score


def exhaustive_best(
    step_fn: StepFn,
    bos: Sequence[int],
    eos: int | None,
    max_len: int,
    length_penalty: float = 0.0,
) -> tuple[list[int], float]:
    r"""The exact best sequence: every sequence that ends in ``eos`` or reaches ``max_len`` new
    tokens is scored, $V^{\text{max\_len}}$ of them at most (tiny vocabularies only).

    Returns (new ids, summed log-probability) of the maximiser of $\log p(y)/|y|^\alpha$.
    Sequences of probability 0 are skipped.
    """
    prefix = _check_prefix(bos)
    _check_eos(eos)
    _positive_int(max_len, "max_len", 1)
    best: tuple[list[int], float] | None = None

    def visit(seq: list[int], score: float) -> None:
        nonlocal best
        logp = _log_probs(step_fn, prefix + seq)
        for token, value in enumerate(logp.tolist()):
            if value == -math.inf:
                continue
            new, total = seq + [token], score + value
            if token == eos or len(new) == max_len:
                if best is None or _normalised(total, len(new), length_penalty) > _normalised(
                    best[1], len(best[0]), length_penalty
                ):
                    best = (new, total)
            else:
                visit(new, total)

    visit([], 0.0)
    if best is None:
        raise ValueError("step_fn gives probability 0 to every sequence")
    return best


def sequence_log_prob(step_fn: StepFn, bos: Sequence[int], ids: Sequence[int]) -> float:
    r"""$\sum_t\log p(y_t\mid\text{bos},y_{<t})$ of the continuation ``ids`` after ``bos``."""
    prefix, ids = _check_prefix(bos), _check_prefix(ids, "ids")
    return sum(float(_log_probs(step_fn, prefix + ids[:t])[y]) for t, y in enumerate(ids))


# ---------------------------------------------------------------------------------------------
# Sampling filters, on logits (..., V)


def _check_logits(logits: Any) -> torch.Tensor:
    if not torch.is_tensor(logits) or logits.ndim < 1 or not logits.is_floating_point():
        raise ValueError(f"logits must be a floating tensor (..., V), got {logits!r:.60}")
    return logits


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    r"""$z/T$: sampling from $\operatorname{softmax}(z/T)$ is $p_T(x)\propto p(x)^{1/T}=
    \exp(\log p(x)/T)$. $T<1$ sharpens, $T>1$ flattens, $T\to0$ tends to the arg-max.
    ``logits: (..., V)``; ``temperature > 0``."""
    logits = _check_logits(logits)
    if not (isinstance(temperature, int | float) and temperature > 0):
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    r"""Keep the ``k`` largest logits of each row, set the others to $-\infty$.

    ``logits: (..., V)``. Ties with the ``k``-th largest value are all kept (so a row may keep
    more than ``k`` tokens): the result does not depend on how a sort orders equal values.
    ``k >= V`` keeps everything.
    """
    logits = _check_logits(logits)
    _positive_int(k, "k", 1)
    if k >= logits.shape[-1]:
        return logits.clone()
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, -math.inf)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    r"""Nucleus filter: keep the *smallest* set of highest-probability tokens whose total
    probability reaches ``p``, set the other logits to $-\infty$ (Holtzman et al., 2020).

    ``logits: (..., V)``, ``0 < p <= 1``. With probabilities sorted in decreasing order
    $p_{(1)}\ge p_{(2)}\ge\dots$, token $(i)$ is kept iff $\sum_{j<i}p_{(j)}<p$ (the top token
    always is). Tokens tied with the last kept probability are kept too; ``p=1`` keeps every
    token. Cumulative sums are compared with a tolerance of ``1e-6`` so that rounding does not
    add a token when the mass reaches ``p`` exactly.
    """
    logits = _check_logits(logits)
    if not (isinstance(p, int | float) and 0 < p <= 1):
        raise ValueError(f"p must be a number in (0, 1], got {p!r}")
    if p == 1:
        return logits.clone()
    probs = torch.softmax(logits.double(), dim=-1)
    sorted_probs, _ = torch.sort(probs, dim=-1, descending=True)
    before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # mass strictly above (i)
    n_keep = (before < p - 1e-6).sum(-1, keepdim=True).clamp(min=1)  # (..., 1)
    threshold = torch.gather(sorted_probs, -1, n_keep - 1)  # smallest kept probability
    return logits.masked_fill(probs < threshold, -math.inf)


def sampling_distribution(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """The distribution ``sample_next`` draws from, ``(..., V)``: temperature, then top-k, then
    top-p, then softmax (renormalised over the kept tokens). ``temperature=0`` puts mass 1 on
    the arg-max (the first one on ties)."""
    logits = _check_logits(logits)
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    z = apply_temperature(logits, temperature)
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    return torch.softmax(z, dim=-1)


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One draw per row from ``sampling_distribution(logits, ...)``: ``(..., V)`` -> ``(...)``
    int64 ids on the device of ``logits`` (the draw itself happens on the generator's device)."""
    probs = sampling_distribution(logits, temperature, top_k, top_p)
    flat = probs.reshape(-1, probs.shape[-1])
    if generator is not None and generator.device != flat.device:
        flat = flat.to(generator.device)
    ids = torch.multinomial(flat.float(), 1, generator=generator)[:, 0]
    return ids.to(logits.device).reshape(probs.shape[:-1])


# ---------------------------------------------------------------------------------------------
# Models as step functions, and generation


def _model_device(model: torch.nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def as_step_fn(model: Any) -> StepFn:
    """A step function ``prefix (list of ids) -> (V,)`` log-probabilities for:

    - a callable that already is one (returned as it is);
    - ``dlcourse.text.NgramLM``: ``log next_token_probs`` of the last ``n - 1`` ids;
    - ``dlcourse.rnn.CharRNNLM`` (``forward(X, state) -> (logits, state)``): the state after
      each prefix is cached, so extending a prefix by one token costs one recurrent step;
    - any other ``nn.Module`` whose ``forward(ids: (1, T)) -> logits (1, T, V)`` is causal, such
      as ``dlcourse.attention.TinyGPT`` (the last ``model.max_len`` ids are fed when the model
      has that attribute).

    Modules run under ``torch.no_grad`` on their own device; an empty prefix is only allowed
    for ``NgramLM`` and step functions.
    """
    from .rnn import CharRNNLM
    from .text import NgramLM

    if isinstance(model, NgramLM):
        context = model.n - 1

        def ngram_step(prefix: list[int]) -> torch.Tensor:
            ctx = prefix[len(prefix) - context :] if context else []
            return torch.log(model.next_token_probs(ctx))

        return ngram_step
    if isinstance(model, CharRNNLM):
        dev = _model_device(model)
        cache: dict[tuple[int, ...], tuple[Any, torch.Tensor]] = {}

        @torch.no_grad()
        def rnn_step(prefix: list[int]) -> torch.Tensor:
            key = tuple(prefix)
            if not key:
                raise ValueError("prefix must hold at least one id for a recurrent model")
            if key not in cache:
                if key[:-1] in cache:
                    state, _ = cache[key[:-1]]
                    X = torch.tensor([key[-1:]], device=dev)
                else:
                    state, X = None, torch.tensor([key], device=dev)
                logits, state = model(X, state)
                cache[key] = (state, torch.log_softmax(logits[0, -1].double(), -1))
            return cache[key][1]

        return rnn_step
    if isinstance(model, torch.nn.Module):
        dev = _model_device(model)
        window = getattr(model, "max_len", None)

        @torch.no_grad()
        def causal_step(prefix: list[int]) -> torch.Tensor:
            if not prefix:
                raise ValueError("prefix must hold at least one id for a causal model")
            ids = prefix[-window:] if window else prefix
            logits = model(torch.tensor([ids], device=dev))
            return torch.log_softmax(logits[0, -1].double(), -1)

        return causal_step
    if callable(model):
        return model
    raise TypeError(
        "model_or_step_fn must be a step function, an NgramLM, a CharRNNLM or a causal LM module "
        f"such as TinyGPT, got {type(model).__name__}"
    )


def generate(
    model_or_step_fn: Any,
    prompt_ids: Sequence[int] | torch.Tensor,
    max_new: int,
    strategy: Literal["greedy", "beam", "sample"] = "greedy",
    generator: torch.Generator | None = None,
    eos: int | None = None,
    **kw: Any,
) -> torch.Tensor:
    """``prompt_ids`` followed by at most ``max_new`` generated ids, as a 1-D int64 CPU tensor.

    ``strategy``: ``"greedy"`` (``greedy_decode``), ``"beam"`` (``beam_search``; ``kw``:
    ``beam_width=4``, ``length_penalty=0.0``) or ``"sample"`` (``sample_next`` at every step;
    ``kw``: ``temperature=1.0``, ``top_k``, ``top_p``; seeded by ``generator``). Generation
    stops early at ``eos`` when one is given. A module is put in eval mode while generating.
    """
    prompt = _check_prefix(prompt_ids, "prompt_ids")
    _positive_int(max_new, "max_new", 1)
    _check_eos(eos)
    if strategy not in ("greedy", "beam", "sample"):
        raise ValueError(f"strategy must be 'greedy', 'beam' or 'sample', got {strategy!r}")
    allowed = {"greedy": set(), "beam": {"beam_width", "length_penalty"},
               "sample": {"temperature", "top_k", "top_p"}}[strategy]  # fmt: skip
    unknown = set(kw) - allowed
    if unknown:
        raise ValueError(f"unknown keyword arguments {sorted(unknown)} for strategy={strategy!r}")
    step_fn = as_step_fn(model_or_step_fn)
    was_training = getattr(model_or_step_fn, "training", None)
    if was_training is not None:
        model_or_step_fn.eval()
    try:
        if strategy == "greedy":
            new, _ = greedy_decode(step_fn, prompt, eos, max_new)
        elif strategy == "beam":
            new, _ = beam_search(step_fn, prompt, eos, kw.get("beam_width", 4), max_new,
                                 kw.get("length_penalty", 0.0))  # fmt: skip
        else:
            new = []
            for _ in range(max_new):
                logits = step_fn(prompt + new)
                token = int(sample_next(logits.double(), generator=generator, **kw))
                new.append(token)
                if token == eos:
                    break
    finally:
        if was_training:
            model_or_step_fn.train()
    return torch.tensor(prompt + new, dtype=torch.long)


# ---------------------------------------------------------------------------------------------
# Measuring repetition


def distinct_n(ids: Sequence[int] | torch.Tensor, n: int = 2) -> float:
    r"""Share of distinct n-grams: $\#\{\text{distinct n-grams}\}/\#\{\text{n-grams}\}$, in
    $(0, 1]$; 1 means no n-gram occurs twice. Needs at least ``n`` ids."""
    ids = _check_prefix(ids, "ids")
    _positive_int(n, "n", 1)
    if len(ids) < n:
        raise ValueError(f"ids must hold at least n={n} ids, got {len(ids)}")
    grams = list(zip(*(ids[i:] for i in range(n)), strict=False))
    return len(set(grams)) / len(grams)


def repetition_rate(ids: Sequence[int] | torch.Tensor, n: int = 4) -> float:
    r"""Share of the n-grams that repeat an earlier n-gram: $1-\text{distinct-}n$, in
    $[0, 1)$; 0 means no n-gram occurs twice, close to 1 means a loop."""
    return 1.0 - distinct_n(ids, n)
