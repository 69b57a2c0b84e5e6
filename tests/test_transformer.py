"""Chapter 5.3: Transformer blocks, the tiny GPT, the causal LM loss and the character tokenizer."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlcourse.attention import (
    DecoderBlock,
    FeedForward,
    TinyGPT,
    TransformerBlock,
    block_param_count,
)
from dlcourse.exercises import WrongAnswerError, check
from dlcourse.losses import causal_lm_loss
from dlcourse.text import CharTokenizer, lm_batches
from dlcourse.train import count_params


@pytest.mark.parametrize("pre_norm", [False, True])
@pytest.mark.parametrize("act", ["relu", "gelu"])
def test_transformer_block_matches_torch_encoder_layer(pre_norm, act):
    torch.manual_seed(0)
    ref = nn.TransformerEncoderLayer(
        16, 4, 48, dropout=0.0, activation=act, batch_first=True, norm_first=pre_norm
    ).eval()
    for p in ref.parameters():  # non-trivial LayerNorm and bias values too
        nn.init.normal_(p, std=0.3)
    block = TransformerBlock(16, 4, 48, pre_norm=pre_norm, act=act).load_from_torch(ref).eval()
    x = torch.randn(3, 7, 16)
    torch.testing.assert_close(block(x), ref(x), rtol=1e-5, atol=1e-5)
    mask = torch.ones(7, 7, dtype=torch.bool).tril()
    torch.testing.assert_close(
        TransformerBlock(16, 4, 48, pre_norm=pre_norm, causal=True, act=act)
        .load_from_torch(ref)
        .eval()(x),
        ref(x, src_mask=~mask, is_causal=True),  # torch's mask: True = blocked
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize("pre_norm", [False, True])
def test_decoder_block_matches_torch_decoder_layer(pre_norm):
    torch.manual_seed(1)
    ref = nn.TransformerDecoderLayer(
        16, 2, 32, dropout=0.0, activation="gelu", batch_first=True, norm_first=pre_norm
    ).eval()
    block = DecoderBlock(16, 2, 32, pre_norm=pre_norm).load_from_torch(ref).eval()
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 9, 16)
    causal = nn.Transformer.generate_square_subsequent_mask(5)
    torch.testing.assert_close(
        block(x, memory), ref(x, memory, tgt_mask=causal, tgt_is_causal=True), atol=1e-5, rtol=1e-5
    )
    lens = torch.tensor([9, 4])
    pad = torch.arange(9)[None] >= lens[:, None]  # torch: True = padding
    torch.testing.assert_close(
        block(x, memory, memory_valid_lens=lens),
        ref(x, memory, tgt_mask=causal, memory_key_padding_mask=pad),
        atol=1e-5,
        rtol=1e-5,
    )


@pytest.mark.parametrize(("d", "d_ff"), [(64, 256), (512, 2048), (8, 5)])
def test_block_param_count_matches_modules(d, d_ff):
    heads = 4 if d % 4 == 0 else 1
    assert block_param_count(d, d_ff) == count_params(TransformerBlock(d, heads, d_ff))
    assert block_param_count(d, d_ff) == count_params(nn.TransformerEncoderLayer(d, heads, d_ff))
    assert block_param_count(d, d_ff, cross=True) == count_params(DecoderBlock(d, heads, d_ff))
    assert block_param_count(d, d_ff, cross=True) == count_params(
        nn.TransformerDecoderLayer(d, heads, d_ff)
    )
    assert count_params(FeedForward(d, d_ff)) == 2 * d * d_ff + d_ff + d
    assert block_param_count(64, 256) == 49_984


@pytest.mark.parametrize("pos", ["learned", "sinusoidal", "rope"])
def test_gpt_is_causal_and_shapes(pos):
    torch.manual_seed(0)
    model = TinyGPT(11, d=16, n_layers=2, n_heads=2, max_len=12, pos=pos).eval()
    ids = torch.randint(0, 11, (3, 12))
    logits = model(ids)
    assert logits.shape == (3, 12, 11)
    t = 6
    changed = ids.clone()
    changed[:, t] = (changed[:, t] + 1) % 11
    after = model(changed)
    torch.testing.assert_close(after[:, :t], logits[:, :t], rtol=0, atol=0)
    assert (after[:, t:] - logits[:, t:]).abs().amax() > 1e-4  # the change is seen from t on
    torch.testing.assert_close(model(ids[:, :t]), logits[:, :t], rtol=1e-5, atol=1e-6)


def test_gpt_rope_and_learned_differ_in_parameters():
    learned = TinyGPT(10, d=16, n_layers=1, n_heads=2, max_len=8, pos="learned")
    rope = TinyGPT(10, d=16, n_layers=1, n_heads=2, max_len=8, pos="rope")
    assert count_params(learned) - count_params(rope) == 8 * 16
    expected = 10 * 16 + block_param_count(16, 64) + 2 * 16 + 16 * 10
    assert count_params(rope) == expected


def test_causal_lm_loss_matches_manual_shifted_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 5, generator=g)
    labels = torch.randint(0, 5, (2, 6), generator=g)
    manual = F.cross_entropy(logits[:, :-1].reshape(-1, 5), labels[:, 1:].reshape(-1))
    torch.testing.assert_close(causal_lm_loss(logits, labels), manual)
    torch.testing.assert_close(
        causal_lm_loss(logits, labels, shift=False),
        F.cross_entropy(logits.reshape(-1, 5), labels.reshape(-1)),
    )
    masked = labels.clone()
    masked[0, 3:] = -100
    manual = F.cross_entropy(logits[:, :-1].reshape(-1, 5), masked[:, 1:].reshape(-1))
    torch.testing.assert_close(causal_lm_loss(logits, masked), manual)


def test_char_tokenizer_round_trip_and_specials():
    tok = CharTokenizer("to be, or not to be", specials=("<pad>", "<bos>"))
    assert tok.vocab_size == 2 + len(set("to be, or not to be"))
    assert tok.id_of("<pad>") == 0 and tok.id_of("<bos>") == 1
    ids = tok.encode("<bos>not to be<pad>")
    assert ids.dtype == torch.long and ids[0] == 1 and ids[-1] == 0 and len(ids) == 11
    assert tok.decode(ids) == "<bos>not to be<pad>"
    assert tok.decode(tok.encode("")) == ""
    plain = CharTokenizer("abc")
    assert plain.encode("cab").tolist() == [2, 0, 1]


def test_lm_batches_targets_are_shifted_windows():
    ids = torch.arange(100)
    x, y = lm_batches(ids, 8, 10, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 10)
    assert torch.equal(y, x + 1)
    assert torch.equal(x[:, 1:], x[:, :-1] + 1)
    assert int(y.max()) <= 99
    x2, _ = lm_batches(ids, 8, 10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="d_ff"):
        FeedForward(8, 0)
    with pytest.raises(ValueError, match="act"):
        FeedForward(8, 16, act="tanh")
    with pytest.raises(ValueError, match="x must be"):
        TransformerBlock(8, 2, 16)(torch.randn(2, 3, 9))
    with pytest.raises(ValueError, match="memory"):
        DecoderBlock(8, 2, 16)(torch.randn(2, 3, 8), torch.randn(3, 4, 8))
    with pytest.raises(ValueError, match="norm_first"):
        TransformerBlock(8, 2, 16, pre_norm=True).load_from_torch(
            nn.TransformerEncoderLayer(8, 2, 16, norm_first=False, activation="gelu")
        )
    with pytest.raises(ValueError, match="pos"):
        TinyGPT(10, pos="alibi")
    with pytest.raises(ValueError, match="max_len"):
        TinyGPT(10, d=8, n_heads=2, max_len=4)(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="ids"):
        TinyGPT(10, d=8, n_heads=2)(torch.zeros(1, 5))
    with pytest.raises(ValueError, match="vocab_size"):
        TinyGPT(10, d=8, n_heads=2)(torch.full((1, 3), 10))
    with pytest.raises(ValueError, match="labels"):
        causal_lm_loss(torch.randn(2, 4, 5), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="logits"):
        causal_lm_loss(torch.randn(8, 5), torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="T >= 2"):
        causal_lm_loss(torch.randn(2, 1, 5), torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(TypeError, match="labels"):
        causal_lm_loss(torch.randn(2, 4, 5), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="not in the vocabulary"):
        CharTokenizer("abc").encode("abd")
    with pytest.raises(ValueError, match="specials"):
        CharTokenizer("a<b", specials=("<",))
    with pytest.raises(ValueError, match="block"):
        lm_batches(torch.arange(5), 2, 5)
    with pytest.raises(ValueError, match="batch_size"):
        lm_batches(torch.arange(50), 0, 5)


def test_exercise_checks_reject_wrong_answers():
    with pytest.raises(WrongAnswerError):
        check("ex-transformer-ffn-share", (2_099_712, 1_050_624, 0.5))
    with pytest.raises(WrongAnswerError):  # forgot the LayerNorms
        check("ex-transformer-block-params", lambda d, d_ff: 4 * d * d + 4 * d + 2 * d * d_ff)

    def leak_all_zero(block, x, i):
        return torch.zeros(x.shape[0], x.shape[1] - i - 1, x.shape[2])

    with pytest.raises(WrongAnswerError):  # zero everywhere is wrong for a bidirectional block
        check("ex-transformer-causal-leak", leak_all_zero)

    def unshifted(logits, labels, ignore_index=-100):
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=ignore_index)

    with pytest.raises(WrongAnswerError):
        check("ex-transformer-lm-loss", unshifted)

    def no_ignore(logits, labels, ignore_index=-100):
        z, y = logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten()
        return F.cross_entropy(z, y.clamp(min=0))

    with pytest.raises(WrongAnswerError):
        check("ex-transformer-lm-loss", no_ignore)


def test_train_causal_lm_lowers_the_loss_on_a_repeated_text():
    from dlcourse.train import train_causal_lm

    torch.manual_seed(0)
    ids = torch.arange(8).repeat(40)  # 0 1 ... 7 0 1 ...: every next token is determined
    model = TinyGPT(8, d=16, n_layers=1, n_heads=2, max_len=16)
    losses = train_causal_lm(model, ids, 60, batch_size=8, block=16, lr=1e-2, warmup_steps=5,
                             generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert len(losses) == 60 and losses[-1] < 0.3 * losses[0]
    with pytest.raises(ValueError, match="steps"):
        train_causal_lm(model, ids, 0)
