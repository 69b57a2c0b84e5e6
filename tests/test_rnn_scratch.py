import math

import pytest
import torch

from dlcourse.exercises import check
from dlcourse.exercises.core import WrongAnswerError
from dlcourse.rnn import (
    CharRNNLM,
    copy_params_from_torch,
    input_grad_norms,
    linear_rnn_grad_norms,
    predict_chars,
    rnn_cell,
    train_lm_epoch,
    unroll,
)
from dlcourse.text import Vocab, seq_data_iter_random, seq_data_iter_sequential


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("bias", [True, False])
def test_rnn_cell_unrolled_matches_torch_rnn(nonlinearity, bias):
    torch.manual_seed(0)
    rnn = torch.nn.RNN(3, 5, nonlinearity=nonlinearity, bias=bias)
    xs, h0 = torch.randn(7, 2, 3), torch.randn(2, 5)
    outputs, h_T = unroll(rnn_cell, xs, h0, copy_params_from_torch(rnn))
    expected, expected_h = rnn(xs, h0[None])
    torch.testing.assert_close(outputs, expected)
    torch.testing.assert_close(h_T, expected_h[0])


def test_copy_params_runs_a_two_layer_bidirectional_rnn_layer_by_layer():
    torch.manual_seed(0)
    rnn = torch.nn.RNN(4, 6, num_layers=2, bidirectional=True)
    xs, h0 = torch.randn(5, 3, 4), torch.zeros(3, 6)
    inputs, finals = xs, []
    for layer in range(2):
        fwd, h_fwd = unroll(rnn_cell, inputs, h0, copy_params_from_torch(rnn, layer))
        params = copy_params_from_torch(rnn, layer, reverse=True)
        bwd, h_bwd = unroll(rnn_cell, inputs.flip(0), h0, params)
        inputs = torch.cat([fwd, bwd.flip(0)], dim=-1)
        finals += [h_fwd, h_bwd]
    expected, expected_h = rnn(xs)
    torch.testing.assert_close(inputs, expected)
    torch.testing.assert_close(torch.stack(finals), expected_h)


def test_copy_params_gives_the_module_parameters_and_gate_blocks():
    lstm = torch.nn.LSTM(3, 4, bias=False)
    params = copy_params_from_torch(lstm)
    assert set(params) == {"W_ih", "W_hh"} and params["W_ih"] is lstm.weight_ih_l0
    assert params["W_ih"].shape == (16, 3)
    assert copy_params_from_torch(torch.nn.GRU(3, 4))["b_hh"].shape == (12,)


def test_rnn_cell_and_copy_params_reject_bad_inputs():
    x, h, W_ih, W_hh = torch.zeros(2, 3), torch.zeros(2, 5), torch.zeros(5, 3), torch.zeros(5, 5)
    with pytest.raises(ValueError, match="W_ih"):
        rnn_cell(x, h, W_ih.T, W_hh)
    with pytest.raises(ValueError, match="h"):
        rnn_cell(x, torch.zeros(3, 5), W_ih, W_hh)
    with pytest.raises(ValueError, match="b_hh"):
        rnn_cell(x, h, W_ih, W_hh, b_hh=torch.zeros(3))
    with pytest.raises(ValueError, match="nonlinearity"):
        rnn_cell(x, h, W_ih, W_hh, nonlinearity="sigmoid")
    with pytest.raises(TypeError, match="x"):
        rnn_cell(torch.zeros(2, 3, dtype=torch.long), h, W_ih, W_hh)
    with pytest.raises(ValueError, match="layer"):
        copy_params_from_torch(torch.nn.RNN(3, 5), layer=1)
    with pytest.raises(ValueError, match="reverse"):
        copy_params_from_torch(torch.nn.RNN(3, 5), reverse=True)
    with pytest.raises(TypeError, match="module"):
        copy_params_from_torch(torch.nn.Linear(3, 5))


@pytest.mark.parametrize("batch_first", [False, True])
def test_input_grad_norms_match_the_autograd_jacobian(batch_first):
    torch.manual_seed(0)
    gru = torch.nn.GRU(3, 4, batch_first=batch_first)
    xs = torch.randn(6, 2, 3)  # time-major in both cases

    def last_state(x):
        out = gru(x.transpose(0, 1) if batch_first else x)[0]
        return out[:, 3] if batch_first else out[3]

    J = torch.autograd.functional.jacobian(last_state, xs)  # (B, H, T, B, D)
    expected = J.pow(2).sum(dim=(0, 1, 3, 4)).sqrt()
    norms = input_grad_norms(gru, xs, t_out=3)
    torch.testing.assert_close(norms, expected)
    assert torch.all(norms[4:] == 0)  # the future does not influence h_3
    with pytest.raises(ValueError, match="t_out"):
        input_grad_norms(gru, xs, t_out=6)
    with pytest.raises(ValueError, match="xs"):
        input_grad_norms(gru, xs[0])


def test_linear_rnn_grad_norms_match_autograd_and_the_power_law():
    torch.manual_seed(0)
    W_hh = torch.randn(4, 4, dtype=torch.float64) / 2
    h0 = torch.randn(1, 4, dtype=torch.float64)

    def h_T(h):
        for _ in range(5):
            h = h @ W_hh.T
        return h

    J = torch.autograd.functional.jacobian(h_T, h0)[0, :, 0, :]
    norms = linear_rnn_grad_norms(W_hh, 5)
    assert len(norms) == 6 and norms[-1] == 1.0
    assert math.isclose(norms[0], torch.linalg.matrix_norm(J, ord=2).item(), rel_tol=1e-9)
    scaled = linear_rnn_grad_norms(1.5 * torch.eye(3), 8)
    assert all(math.isclose(n, 1.5 ** (8 - t)) for t, n in enumerate(scaled))
    with pytest.raises(ValueError, match="W_hh"):
        linear_rnn_grad_norms(torch.zeros(2, 3), 5)
    with pytest.raises(ValueError, match="T"):
        linear_rnn_grad_norms(torch.eye(2), 0)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_char_lm_shapes_and_state_carry_over(cell):
    torch.manual_seed(0)
    model = CharRNNLM(7, hidden=8, cell=cell, num_layers=2, emb=4)
    X = torch.randint(7, (3, 5))
    logits, state = model(X)
    assert logits.shape == (3, 5, 7)
    h = state[0] if cell == "lstm" else state
    assert h.shape == (2, 3, 8)
    # running in two chunks with the carried state equals one run over the whole sequence
    first, state = model(X[:, :2])
    second, _ = model(X[:, 2:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), logits)


def test_char_lm_rejects_bad_arguments():
    with pytest.raises(ValueError, match="cell"):
        CharRNNLM(5, cell="transformer")
    with pytest.raises(ValueError, match="hidden"):
        CharRNNLM(5, hidden=0)
    with pytest.raises(ValueError, match="X"):
        CharRNNLM(5)(torch.zeros(2, 3))


def test_train_lm_epoch_memorises_a_short_text_and_predict_chars_recites_it():
    torch.manual_seed(0)
    text = "the quick brown fox jumps over the lazy dog. " * 4
    vocab = Vocab(list(text))
    ids = torch.tensor(vocab[list(text)])
    model = CharRNNLM(len(vocab), hidden=32)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    gen = torch.Generator().manual_seed(0)
    first = train_lm_epoch(model, seq_data_iter_sequential(ids, 4, 10, generator=gen), opt)
    for _ in range(25):
        last = train_lm_epoch(model, seq_data_iter_random(ids, 4, 10, generator=gen), opt,
                              reading="random")  # fmt: skip
    assert first > 10 and last < 1.5
    out = predict_chars(model, vocab, "the quick", 10)
    assert out == "the quick brown fox"[: len(out)] and len(out) == 19
    assert predict_chars(model, vocab, "the", 0) == "the"
    with pytest.raises(ValueError, match="reading"):
        train_lm_epoch(model, [], opt, reading="shuffled")
    with pytest.raises(ValueError, match="prefix"):
        predict_chars(model, vocab, "", 5)


def test_exercise_checks_reject_wrong_answers():
    def cell_without_bias(x, h, W_ih, W_hh, b_ih=None, b_hh=None):
        return torch.tanh(x @ W_ih.T + h @ W_hh.T)

    def cell_untransposed(x, h, W_ih, W_hh, b_ih=None, b_hh=None):
        return torch.tanh(x @ W_ih + h @ W_hh + b_ih + b_hh)

    for wrong in (cell_without_bias, cell_untransposed):
        with pytest.raises(WrongAnswerError):
            check("ex-rnn-cell", wrong)
    with pytest.raises(WrongAnswerError):
        check("ex-rnn-linear-grad", 0.5**9)
    with pytest.raises(WrongAnswerError):
        check("ex-rnn-detach", {"raises": True, "type": "ValueError"})
    with pytest.raises(WrongAnswerError):
        check("ex-rnn-anatomy", {"weight_ih_l0": (64, 28), "weight_hh_l0": (64, 64)})
