import pytest
import torch

from dlcourse.rnn import detach_state, unroll


def _tanh_cell(x, h, W_ih, W_hh):
    return torch.tanh(x @ W_ih.T + h @ W_hh.T)


def _lstm_like_cell(x, h, c, W_ih, W_hh):
    i, f, g, o = (x @ W_ih.T + h @ W_hh.T).chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def test_unroll_matches_torch_rnn():
    torch.manual_seed(0)
    rnn = torch.nn.RNN(3, 5, bias=False)
    xs, h0 = torch.randn(7, 2, 3), torch.randn(2, 5)
    params = {"W_ih": rnn.weight_ih_l0, "W_hh": rnn.weight_hh_l0}
    outputs, h_T = unroll(_tanh_cell, xs, h0, params)
    expected, expected_h = rnn(xs, h0[None])
    torch.testing.assert_close(outputs, expected)
    torch.testing.assert_close(h_T, expected_h[0])


def test_unroll_passes_tuple_states_and_outputs_the_first():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 4, bias=False)
    xs, h0, c0 = torch.randn(6, 2, 3), torch.randn(2, 4), torch.randn(2, 4)
    params = {"W_ih": lstm.weight_ih_l0, "W_hh": lstm.weight_hh_l0}
    outputs, (h_T, c_T) = unroll(_lstm_like_cell, xs, (h0, c0), params)
    expected, (expected_h, expected_c) = lstm(xs, (h0[None], c0[None]))
    torch.testing.assert_close(outputs, expected)
    torch.testing.assert_close((h_T, c_T), (expected_h[0], expected_c[0]))


def test_unroll_rejects_a_batch_first_matrix_and_an_empty_sequence():
    with pytest.raises(ValueError, match="xs"):
        unroll(_tanh_cell, torch.zeros(2, 3), torch.zeros(2, 5), {})
    with pytest.raises(ValueError, match="xs"):
        unroll(_tanh_cell, torch.zeros(0, 2, 3), torch.zeros(2, 5), {})


def test_detach_state_cuts_the_graph_of_tensors_and_tuples():
    h = torch.ones(2, requires_grad=True) * 2
    assert not detach_state(h).requires_grad
    detached = detach_state((h, h + 1))
    assert isinstance(detached, tuple) and not any(s.requires_grad for s in detached)
    torch.testing.assert_close(detached[1], torch.full((2,), 3.0))
