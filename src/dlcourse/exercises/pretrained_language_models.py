"""Exercise checks for chapter 5.5, Pretraining: BERT, self-supervision and fine-tuning."""

from __future__ import annotations

from typing import Any

import torch

from .core import (
    WrongAnswerError,
    call_answer,
    check_close,
    check_equal,
    exercise,
    over_cases,
    require_tensor,
)

CHAPTER = "05-attention/05-pretrained-language-models"


def _mlm_reference():
    from dlcourse.pretraining import mlm_mask

    return mlm_mask


@exercise("ex-pretraining-mlm-mask", CHAPTER, solution=_mlm_reference)
def _mlm(answer: Any) -> str:
    """``mlm_mask(ids, vocab_size, mask_id, special_ids, p, p_mask, p_random, generator)``."""
    vocab_size, mask_id, specials = 1000, 4, (0, 2, 3, 4)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab_size, (100, 1000), generator=gen)
    ids[:, 0], ids[:, -1], ids[:, 500] = 2, 3, 0  # [CLS], [SEP] and a [PAD] in every row
    got = call_answer(
        answer, ids, vocab_size, mask_id, specials, generator=torch.Generator().manual_seed(0)
    )
    if not isinstance(got, tuple | list) or len(got) != 2:
        raise WrongAnswerError("mlm_mask should return the pair (inputs, labels)")
    inputs, labels = (require_tensor(t, n) for t, n in zip(got, ("inputs", "labels"), strict=True))
    check_equal(tuple(inputs.shape), tuple(ids.shape), name="inputs.shape")
    check_equal(tuple(labels.shape), tuple(ids.shape), name="labels.shape")
    selected = labels != -100
    special = (ids == 0) | (ids == 2) | (ids == 3)
    if (selected & special).any() or (inputs[special] != ids[special]).any():
        raise WrongAnswerError("special tokens ([CLS], [SEP], [PAD]) must never be selected")
    if (inputs[~selected] != ids[~selected]).any():
        raise WrongAnswerError("positions that are not selected must keep their original id")
    if (labels[selected] != ids[selected]).any():
        raise WrongAnswerError("at a selected position the label is the ORIGINAL id")
    rate = selected.float().sum().item() / (~special).sum().item()
    if abs(rate - 0.15) > 0.01:
        raise WrongAnswerError(
            f"{rate:.3f} of the ordinary tokens are selected; BERT selects 15% (labels -100 "
            "everywhere else)"
        )
    n_sel = selected.sum().item()
    masked = (inputs[selected] == mask_id).float().sum().item() / n_sel
    kept = (inputs[selected] == ids[selected]).float().sum().item() / n_sel
    if abs(masked - 0.8) > 0.015 or abs(kept - 0.1) > 0.015:
        raise WrongAnswerError(
            f"of the selected positions {masked:.3f} became [MASK] and {kept:.3f} kept their "
            "token; the split should be 80% [MASK], 10% random, 10% unchanged"
        )
    return "rates, split, specials and labels"


def _nt_xent_reference():
    from dlcourse.losses import nt_xent_loss

    return nt_xent_loss


def _nt_xent_two_n(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    sim = z @ z.T / tau
    pos = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return torch.nn.functional.cross_entropy(sim, pos)


@exercise("ex-pretraining-nt-xent", CHAPTER, solution=_nt_xent_reference)
def _nt_xent(answer: Any) -> str:
    """``nt_xent(z1, z2, tau) -> scalar``: SimCLR's symmetric loss."""
    from dlcourse.losses import nt_xent_loss

    def one(case: tuple[int, int, float, float]) -> None:
        n, d, tau, scale = case
        gen = torch.Generator().manual_seed(n * 100 + d)
        z1 = scale * torch.randn(n, d, generator=gen, dtype=torch.float64)
        z2 = z1 + scale * 0.5 * torch.randn(n, d, generator=gen, dtype=torch.float64)
        got = require_tensor(call_answer(answer, z1, z2, tau), "the loss")
        expected = nt_xent_loss(z1, z2, tau)
        if got.numel() == 1 and torch.allclose(got.double(), _nt_xent_two_n(z1, z2, tau)):
            raise WrongAnswerError(
                "the denominator must leave out the anchor itself: 2N - 1 terms, not 2N"
            )
        check_close(got, expected, rtol=1e-6, atol=1e-8, name="the loss", reveal=False)

    cases = [("N=8, d=16, tau=0.5", (8, 16, 0.5, 1.0)), ("N=2", (2, 4, 0.5, 1.0)),
             ("tau=0.1", (16, 8, 0.1, 1.0)),
             ("vectors scaled by 1000 (cosines ignore length)", (8, 16, 0.5, 1000.0))]  # fmt: skip
    return over_cases(cases, one)


def _mean_pool_reference():
    from dlcourse.pretraining import mean_pool

    return mean_pool


@exercise("ex-pretraining-mean-pool", CHAPTER, solution=_mean_pool_reference)
def _mean_pool(answer: Any) -> str:
    """``mean_pool(h (B, T, d), attention_mask (B, T)) -> (B, d)``."""

    def one(lengths: list[int]) -> None:
        gen = torch.Generator().manual_seed(len(lengths))
        T = max(lengths) + 2
        h = torch.randn(len(lengths), T, 6, generator=gen, dtype=torch.float64)
        mask = (torch.arange(T)[None] < torch.tensor(lengths)[:, None]).long()
        expected = torch.stack([h[b, :n].mean(0) for b, n in enumerate(lengths)])
        got = require_tensor(call_answer(answer, h, mask), "the pooled vectors")
        if got.shape == expected.shape and torch.allclose(got, h.mean(1)):
            raise WrongAnswerError("you averaged over all T positions, padding included")
        check_close(got, expected, rtol=1e-6, atol=1e-9, name="the pooled vectors", reveal=False)
        noisy = h.clone()
        noisy[mask == 0] = 1e6
        got = require_tensor(call_answer(answer, noisy, mask), "the pooled vectors")
        check_close(
            got, expected, rtol=1e-6, atol=1e-6, name="the result with huge values in the "
            "padding (padding must not matter)", reveal=False,
        )  # fmt: skip

    cases = [("lengths 3, 5, 1", [3, 5, 1]), ("a batch of one", [4]), ("no padding", [2, 2])]
    return over_cases(cases, one)


_GLUE = {
    "CoLA": "classification",
    "SST-2": "classification",
    "MRPC": "classification",
    "QQP": "classification",
    "STS-B": "regression",
    "MNLI": "classification",
    "QNLI": "classification",
    "RTE": "classification",
    "WNLI": "classification",
}


def _bookkeeping_solution() -> dict:
    return {
        "bert_base": (13, (9, 768)),
        "minilm": (7, 384),
        "glue": dict(_GLUE),
    }


@exercise("ex-pretraining-bookkeeping", CHAPTER, solution=_bookkeeping_solution)
def _bookkeeping(answer: Any) -> str:
    """Hidden-state counts and shapes, and the GLUE task list."""
    if not isinstance(answer, dict) or set(answer) != {"bert_base", "minilm", "glue"}:
        raise WrongAnswerError("answer should be a dict with keys 'bert_base', 'minilm', 'glue'")
    bert = answer["bert_base"]
    if not isinstance(bert, tuple | list) or len(bert) != 2:
        raise WrongAnswerError("answer['bert_base'] should be (number_of_tensors, shape)")
    if bert[0] == 12:
        raise WrongAnswerError("12 layers give 13 hidden-state tensors: the embedding output too")
    check_equal(bert[0], 13, name="the number of BERT-base hidden-state tensors", reveal=False)
    check_equal(tuple(bert[1]), (9, 768), name="the shape of each BERT-base tensor", reveal=False)
    check_equal(tuple(answer["minilm"]), (7, 384), name="answer['minilm']", reveal=False)
    glue = answer["glue"]
    if not isinstance(glue, dict) or len(glue) != 9:
        raise WrongAnswerError("GLUE has nine tasks; give a dict of nine task -> kind entries")
    kinds = {str(k).upper().replace("-", ""): v for k, v in glue.items()}
    expected = {k.upper().replace("-", ""): v for k, v in _GLUE.items()}
    if set(kinds) != set(expected):
        raise WrongAnswerError("some task names are not GLUE's (CoLA, SST-2, MRPC, ...)")
    if kinds["STSB"] != "regression":
        raise WrongAnswerError("STS-B predicts a similarity score from 0 to 5: a regression")
    check_equal(kinds, expected, name="the task kinds", reveal=False)
    return "hidden states and GLUE"


def _sft_reference():
    from dlcourse.pretraining import sft_example

    return sft_example


@exercise("ex-pretraining-sft-labels", CHAPTER, solution=_sft_reference)
def _sft_labels(answer: Any) -> str:
    """``sft_example(prompt_ids, response_ids, pad_id, max_len) -> dict`` (padding only)."""
    from dlcourse.pretraining import sft_example

    def one(case: tuple[int, int, int]) -> None:
        n_prompt, n_response, max_len = case
        gen = torch.Generator().manual_seed(10 * n_prompt + n_response)
        prompt = torch.randint(1, 20, (n_prompt,), generator=gen)
        response = torch.randint(1, 20, (n_response,), generator=gen)
        got = call_answer(answer, prompt, response, 0, max_len)
        if not isinstance(got, dict) or not {"input_ids", "labels", "attention_mask"} <= set(got):
            raise WrongAnswerError("return a dict with input_ids, labels and attention_mask")
        expected = sft_example(prompt, response, pad_id=0, max_len=max_len)
        ids, labels, mask = (
            require_tensor(got[k], k) for k in ("input_ids", "labels", "attention_mask")
        )
        check_equal(tuple(labels.shape), (max_len,), name="labels.shape")
        check_equal(ids.tolist(), expected["input_ids"].tolist(), name="input_ids", reveal=False)
        check_equal(
            mask.tolist(), expected["attention_mask"].tolist(), name="attention_mask", reveal=False
        )
        total = n_prompt + n_response
        if torch.equal(labels[n_prompt - 1 : total - 1], response):
            raise WrongAnswerError(
                "the labels are shifted by one: keep labels aligned with input_ids "
                "(causal_lm_loss does the shift)"
            )
        if (labels[:n_prompt] != -100).any():
            raise WrongAnswerError("every prompt position must have the label -100")
        if (labels[total:] != -100).any():
            raise WrongAnswerError("padding positions must have the label -100 too")
        check_equal(labels.tolist(), expected["labels"].tolist(), name="labels", reveal=False)

    cases = [("prompt 4, response 3, padded to 10", (4, 3, 10)),
             ("no padding", (5, 4, 9)), ("a one-token response", (3, 1, 6)),
             ("a one-token prompt", (1, 5, 8))]  # fmt: skip
    return over_cases(cases, one)
