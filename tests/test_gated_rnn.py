import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlcourse.data import digit_reversal_task, recall_first_task
from dlcourse.rnn import (
    GRUDecoder,
    GRUEncoder,
    Seq2Seq,
    greedy_decode_seq2seq,
    gru_cell,
    last_valid_output,
    lstm_cell,
    rnn_param_count,
    unroll,
)
from dlcourse.train import count_params


def _params(module: nn.Module, suffix: str = "") -> dict[str, torch.Tensor]:
    names = ("W_ih", "W_hh", "b_ih", "b_hh")
    torch_names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    return {n: getattr(module, t + suffix) for n, t in zip(names, torch_names, strict=True)}


def test_lstm_cell_matches_torch_lstmcell():
    torch.manual_seed(0)
    cell = nn.LSTMCell(5, 7)
    x, h, c = torch.randn(3, 5), torch.randn(3, 7), torch.randn(3, 7)
    expected = cell(x, (h, c))
    torch.testing.assert_close(lstm_cell(x, h, c, **_params(cell)), expected)


def test_lstm_cell_unrolled_matches_torch_lstm():
    torch.manual_seed(1)
    lstm = nn.LSTM(4, 6)
    xs, h0, c0 = torch.randn(9, 2, 4), torch.randn(2, 6), torch.randn(2, 6)
    outputs, (h_T, c_T) = unroll(lstm_cell, xs, (h0, c0), _params(lstm, "_l0"))
    expected, (expected_h, expected_c) = lstm(xs, (h0[None], c0[None]))
    torch.testing.assert_close(outputs, expected)
    torch.testing.assert_close((h_T, c_T), (expected_h[0], expected_c[0]))


def test_lstm_cell_without_bias_matches_bias_free_lstm():
    torch.manual_seed(2)
    lstm = nn.LSTM(3, 4, bias=False)
    xs, h0, c0 = torch.randn(5, 2, 3), torch.zeros(2, 4), torch.zeros(2, 4)
    params = {"W_ih": lstm.weight_ih_l0, "W_hh": lstm.weight_hh_l0}
    outputs, _ = unroll(lstm_cell, xs, (h0, c0), params)
    torch.testing.assert_close(outputs, lstm(xs)[0])


def test_gru_cell_pytorch_convention_matches_grucell_and_gru():
    torch.manual_seed(3)
    cell = nn.GRUCell(5, 7)
    x, h = torch.randn(4, 5), torch.randn(4, 7)
    torch.testing.assert_close(gru_cell(x, h, **_params(cell)), cell(x, h))
    gru = nn.GRU(5, 7)
    xs = torch.randn(8, 4, 5)
    outputs, h_T = unroll(gru_cell, xs, h, _params(gru, "_l0"))
    expected, expected_h = gru(xs, h[None])
    torch.testing.assert_close(outputs, expected)
    torch.testing.assert_close(h_T, expected_h[0])


def test_gru_textbook_convention_differs_from_torch():
    torch.manual_seed(4)
    cell = nn.GRUCell(5, 7)
    x, h = torch.randn(4, 5), torch.randn(4, 7)
    textbook = gru_cell(x, h, **_params(cell), convention="reset_before")
    assert not torch.allclose(textbook, cell(x, h), atol=1e-3)


def test_gru_textbook_convention_by_hand():
    # H = D = 1, no biases: r = z = sigmoid(x + h), n = tanh(x + (r h)), h' = (1 - z) h + z n
    x, h = torch.tensor([[0.5]]), torch.tensor([[-1.0]])
    W = torch.ones(3, 1)
    r = z = torch.sigmoid(x + h)
    n = torch.tanh(x + r * h)
    expected = (1 - z) * h + z * n
    torch.testing.assert_close(gru_cell(x, h, W, W, convention="reset_before"), expected)


def test_gated_cells_reject_bad_shapes_and_convention():
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    with pytest.raises(ValueError, match="W_ih"):
        lstm_cell(x, h, h, torch.randn(12, 3), torch.randn(16, 4))
    with pytest.raises(ValueError, match="c must"):
        lstm_cell(x, h, torch.randn(3, 4), torch.randn(16, 3), torch.randn(16, 4))
    with pytest.raises(ValueError, match="b_hh"):
        gru_cell(x, h, torch.randn(12, 3), torch.randn(12, 4), None, torch.randn(4))
    with pytest.raises(ValueError, match="x must"):
        gru_cell(torch.randn(3), h, torch.randn(12, 3), torch.randn(12, 4))
    with pytest.raises(ValueError, match="convention"):
        gru_cell(x, h, torch.randn(12, 3), torch.randn(12, 4), convention="textbook")


def test_rnn_param_count_hand_values():
    assert [rnn_param_count(k, 10, 20) for k in ("rnn", "gru", "lstm")] == [640, 1920, 2560]


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (2, False), (3, True)])
def test_rnn_param_count_matches_torch(kind, layers, bidirectional):
    module = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[kind](
        7, 5, num_layers=layers, bidirectional=bidirectional
    )
    assert rnn_param_count(kind, 7, 5, layers, bidirectional) == count_params(module)


def test_rnn_param_count_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        rnn_param_count("transformer", 3, 4)
    with pytest.raises(ValueError, match="hidden_size"):
        rnn_param_count("gru", 3, 0)


def test_last_valid_output_matches_packed_and_separate_runs():
    torch.manual_seed(5)
    lstm = nn.LSTM(3, 4, batch_first=True)
    lengths = torch.tensor([5, 2, 4])
    x = torch.randn(3, 5, 3)
    for b, n in enumerate(lengths):
        x[b, n:] = 0.0
    out, (h_n, _) = lstm(x)
    got = last_valid_output(out, lengths)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    _, (h_packed, _) = lstm(packed)
    torch.testing.assert_close(got, h_packed[0])
    alone = torch.cat([lstm(x[b : b + 1, :n])[1][0][0] for b, n in enumerate(lengths)])
    torch.testing.assert_close(got, alone)
    assert not torch.allclose(out[:, -1], h_packed[0])
    torch.testing.assert_close(last_valid_output(out.transpose(0, 1), lengths, False), got)


def test_last_valid_output_rejects_bad_lengths():
    out = torch.randn(2, 4, 3)
    with pytest.raises(ValueError, match="lengths"):
        last_valid_output(out, torch.tensor([1, 5]))
    with pytest.raises(ValueError, match="lengths"):
        last_valid_output(out, torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="lengths"):
        last_valid_output(out, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="outputs"):
        last_valid_output(torch.randn(4, 3), torch.tensor([1, 2]))


def test_recall_first_task_labels_are_the_first_token():
    x, y = recall_first_task(50, T=12, vocab=5, seed=3)
    assert x.shape == (50, 12) and y.shape == (50,) and x.dtype == y.dtype == torch.long
    torch.testing.assert_close(y, x[:, 0])
    assert 0 <= x.min() and x.max() < 5
    torch.testing.assert_close(recall_first_task(50, T=12, vocab=5, seed=3)[0], x)
    with pytest.raises(ValueError, match="T"):
        recall_first_task(10, T=0)


def test_digit_reversal_task_shapes_padding_and_reversal():
    d = digit_reversal_task(200, min_len=2, max_len=6, vocab=4, seed=1)
    src, src_len, tgt_in, tgt_out = d["src"], d["src_len"], d["tgt_in"], d["tgt_out"]
    assert src.shape == (200, 6) and tgt_in.shape == tgt_out.shape == (200, 7)
    assert src_len.min() >= 2 and src_len.max() <= 6
    assert (tgt_in[:, 0] == 1).all()
    for b in range(200):
        n = int(src_len[b])
        digits = src[b, :n]
        assert (digits >= 3).all() and (digits < 7).all() and (src[b, n:] == 0).all()
        torch.testing.assert_close(tgt_out[b, :n], digits.flip(0))
        assert tgt_out[b, n] == 2 and (tgt_out[b, n + 1 :] == 0).all()
        torch.testing.assert_close(tgt_in[b, 1 : n + 1], digits.flip(0))
        assert (tgt_in[b, n + 1 :] == 0).all()
    with pytest.raises(ValueError, match="min_len"):
        digit_reversal_task(10, min_len=5, max_len=4)


def test_seq2seq_shapes_padding_invariance_and_greedy_decoding():
    torch.manual_seed(6)
    d = digit_reversal_task(4, max_len=6, seed=2)
    model = Seq2Seq(GRUEncoder(13, 8, 16), GRUDecoder(13, 8, 16))
    logits = model(d["src"], d["src_len"], d["tgt_in"])
    assert logits.shape == (4, 7, 13)
    # extra padding on the source changes nothing: the encoder state is taken at the true end
    wider = F.pad(d["src"], (0, 3))
    torch.testing.assert_close(model(wider, d["src_len"], d["tgt_in"]), logits)
    tokens = greedy_decode_seq2seq(model, d["src"], d["src_len"], bos=1, eos=2, max_len=5)
    assert tokens.shape[0] == 4 and tokens.shape[1] <= 5 and tokens.dtype == torch.long
    # greedy step 1 equals the argmax of the teacher-forced first step (same input <bos>)
    torch.testing.assert_close(tokens[:, 0], logits[:, 0].argmax(-1))
    with pytest.raises(ValueError, match="max_len"):
        greedy_decode_seq2seq(model, d["src"], d["src_len"], 1, 2, 0)
    with pytest.raises(ValueError, match="src"):
        model(d["src"].float(), d["src_len"], d["tgt_in"])


def test_greedy_decoding_pads_after_eos():
    torch.manual_seed(7)
    d = digit_reversal_task(3, max_len=5, seed=3)
    model = Seq2Seq(GRUEncoder(13, 8, 16), GRUDecoder(13, 8, 16))
    with torch.no_grad():
        model.decoder.out.bias.fill_(-50.0)
        model.decoder.out.bias[2] = 50.0  # always <eos>
    tokens = greedy_decode_seq2seq(model, d["src"], d["src_len"], bos=1, eos=2, max_len=5)
    assert tokens.tolist() == [[2], [2], [2]]


def test_exercise_checks_catch_typical_mistakes():
    from dlcourse.exercises import WrongAnswerError, check
    from dlcourse.rnn import rnn_param_count

    def textbook(x, h, W_ih, W_hh, b_ih, b_hh):
        return gru_cell(x, h, W_ih, W_hh, b_ih, b_hh, convention="reset_before")

    with pytest.raises(WrongAnswerError, match="textbook"):
        check("ex-gated-gru", textbook)
    with pytest.raises(WrongAnswerError, match="bidirectional"):
        check("ex-gated-params", lambda k, d, h, n=1, bi=False: rnn_param_count(k, d, h, n))
    with pytest.raises(WrongAnswerError, match="one step"):
        check("ex-gated-forget-path", lambda f, steps: f)
    with pytest.raises(WrongAnswerError, match="padding"):
        check("ex-gated-last-valid", lambda out, lengths: out[:, -1])
    with pytest.raises(WrongAnswerError, match="off by one"):
        check("ex-gated-last-valid", lambda out, n: out[torch.arange(len(out)), n.clamp(max=4)])
