"""Tests for the state-space kernels of chapter 5.6 (dlcourse.ssm) and flagged_sum_task."""

import math

import pytest
import torch
import torch.nn.functional as F

from dlcourse.data import flagged_sum_task
from dlcourse.exercises import check
from dlcourse.exercises.core import WrongAnswerError
from dlcourse.ssm import (
    LTISSMLayer,
    SelectiveSSMLayer,
    associative_scan,
    causal_conv1d_fft,
    discretize_zoh,
    segsum,
    selective_scan,
    ssd_chunked,
    ssd_quadratic,
    ssd_recurrent,
    ssm_conv_kernel,
    ssm_recurrent,
)

f64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_scalar_zoh_by_hand():
    a_bar, b_bar = discretize_zoh(
        torch.tensor([-1.0], dtype=f64), torch.tensor([2.0], dtype=f64), 0.1
    )
    assert a_bar.item() == pytest.approx(math.exp(-0.1))
    assert b_bar.item() == pytest.approx((1 - math.exp(-0.1)) * 2.0)
    _, b0 = discretize_zoh(torch.tensor([0.0], dtype=f64), torch.tensor([3.0], dtype=f64), 0.5)
    assert b0.item() == pytest.approx(1.5)  # A = 0: the limit Delta B


def test_dense_zoh_matches_matrix_exp_and_diagonal():
    g = _gen()
    A, B = torch.randn(4, 4, generator=g, dtype=f64), torch.randn(4, generator=g, dtype=f64)
    A_bar, B_bar = discretize_zoh(A, B, 0.3)
    eye = torch.eye(4, dtype=f64)
    torch.testing.assert_close(A_bar, torch.linalg.matrix_exp(0.3 * A))
    torch.testing.assert_close(B_bar, torch.linalg.solve(0.3 * A, (A_bar - eye) @ (0.3 * B)))
    diag, Bd = -torch.rand(3, 5, generator=g, dtype=f64), torch.randn(3, 5, generator=g, dtype=f64)
    a1, b1 = discretize_zoh(diag, Bd, 0.5)
    a2, b2 = discretize_zoh(torch.diag_embed(diag), Bd, 0.5)
    torch.testing.assert_close(torch.diag_embed(a1), a2)
    torch.testing.assert_close(b1, b2)


def test_lti_recurrence_equals_convolution_and_fft():
    g = _gen(1)
    A = -torch.rand(3, 5, generator=g, dtype=f64)
    B, C = torch.randn(3, 5, generator=g, dtype=f64), torch.randn(3, 5, generator=g, dtype=f64)
    A_bar, B_bar = discretize_zoh(A, B, 0.5)
    x = torch.randn(2, 20, 3, generator=g, dtype=f64)
    D = torch.randn(3, generator=g, dtype=f64)
    y_rec = ssm_recurrent(x, A_bar, B_bar, C, D)
    K = ssm_conv_kernel(A_bar, B_bar, C, 20)
    y_conv = F.conv1d(F.pad(x.transpose(1, 2), (19, 0)), K.flip(-1)[:, None], groups=3)
    torch.testing.assert_close(y_rec, y_conv.transpose(1, 2) + D * x)
    torch.testing.assert_close(y_rec, causal_conv1d_fft(x, K) + D * x)
    dense = ssm_recurrent(x, torch.diag_embed(A_bar), B_bar, C, D)
    torch.testing.assert_close(dense, y_rec)
    torch.testing.assert_close(ssm_conv_kernel(torch.diag_embed(A_bar), B_bar, C, 20), K)


def test_associative_scan_equals_sequential_loop():
    g = _gen(2)
    for L in (1, 2, 7, 37, 64):
        a, b = torch.rand(4, L, generator=g, dtype=f64), torch.randn(4, L, generator=g, dtype=f64)
        h, hs = torch.zeros(4, dtype=f64), []
        for t in range(L):
            h = a[:, t] * h + b[:, t]
            hs.append(h)
        torch.testing.assert_close(associative_scan(a, b), torch.stack(hs, 1))
    a, b = torch.rand(2, 9, 3, generator=g), torch.randn(2, 9, 3, generator=g)
    torch.testing.assert_close(associative_scan(a, b, dim=1), associative_scan(a.mT, b.mT).mT)


def test_selective_scan_equals_loop():
    g = _gen(3)
    u = torch.randn(2, 12, 3, generator=g, dtype=f64)
    delta = F.softplus(torch.randn(2, 12, 3, generator=g, dtype=f64))
    A = -torch.rand(3, 4, generator=g, dtype=f64)
    B, C = (torch.randn(2, 12, 4, generator=g, dtype=f64) for _ in range(2))
    D = torch.randn(3, generator=g, dtype=f64)
    h, ys = torch.zeros(2, 3, 4, dtype=f64), []
    for t in range(12):
        dt = delta[:, t, :, None]
        h = torch.exp(dt * A) * h + dt * B[:, t, None, :] * u[:, t, :, None]
        ys.append((h * C[:, t, None, :]).sum(-1))
    torch.testing.assert_close(selective_scan(u, delta, A, B, C, D), torch.stack(ys, 1) + D * u)


def test_segsum_by_hand():
    s = segsum(torch.tensor([1.0, 2.0, 3.0]))
    expected = torch.tensor([[0.0, -math.inf, -math.inf], [2.0, 0.0, -math.inf], [5.0, 3.0, 0.0]])
    torch.testing.assert_close(s, expected)


def test_ssd_recurrent_quadratic_and_chunked_agree():
    g = _gen(4)
    b, L, h, p, n = 2, 64, 3, 4, 5
    x = torch.randn(b, L, h, p, generator=g, dtype=f64)
    dt = F.softplus(torch.randn(b, L, h, generator=g, dtype=f64))
    A = -torch.rand(h, generator=g, dtype=f64)
    B, C = (torch.randn(b, L, h, n, generator=g, dtype=f64) for _ in range(2))
    y = ssd_recurrent(x, dt, A, B, C)
    torch.testing.assert_close(ssd_quadratic(x, dt, A, B, C), y, atol=1e-10, rtol=0)
    for chunk in (1, 16, 64):
        torch.testing.assert_close(ssd_chunked(x, dt, A, B, C, chunk), y, atol=1e-10, rtol=0)
    # Mamba-2 is Mamba-1 with A = a I: compare with the selective scan, one channel at a time
    u = x[:, :, 0, 0:1]  # head 0, one channel
    y1 = selective_scan(u, dt[:, :, 0:1], A[0:1, None].expand(1, n), B[:, :, 0], C[:, :, 0])
    torch.testing.assert_close(y1, y[:, :, 0, 0:1])


def test_layers_shapes_and_gradients():
    x = torch.randn(2, 10, 6)
    for layer in (LTISSMLayer(6, 4), SelectiveSSMLayer(6, 4)):
        y = layer(x)
        assert y.shape == x.shape
        y.sum().backward()
        assert all(p.grad is not None for p in layer.parameters())
    lti = LTISSMLayer(4, 3)
    # time invariance: delaying the input delays the output
    z = torch.randn(1, 8, 4)
    shifted = torch.cat([torch.zeros(1, 3, 4), z[:, :5]], 1)
    torch.testing.assert_close(lti(shifted)[:, 3:], lti(z)[:, :5], atol=1e-5, rtol=1e-4)


def test_flagged_sum_task():
    x, y = flagged_sum_task(100, L=16, p_flag=0.3, seed=1)
    assert x.shape == (100, 16, 2) and y.shape == (100,)
    torch.testing.assert_close(y, (x[..., 0] * x[..., 1]).sum(1))
    assert set(x[..., 1].unique().tolist()) <= {0.0, 1.0}


def test_bad_inputs_name_the_argument():
    A_bar, B_bar, C = torch.rand(2, 3), torch.rand(2, 3), torch.rand(2, 3)
    with pytest.raises(ValueError, match="delta"):
        discretize_zoh(torch.tensor([-1.0]), torch.tensor([1.0]), -0.1)
    with pytest.raises(ValueError, match="x must be"):
        ssm_recurrent(torch.rand(4, 2), A_bar, B_bar, C)
    with pytest.raises(ValueError, match="B_bar"):
        ssm_conv_kernel(A_bar, torch.rand(3, 3), C, 5)
    with pytest.raises(ValueError, match="K must be"):
        causal_conv1d_fft(torch.rand(1, 5, 2), torch.rand(3, 5))
    with pytest.raises(ValueError, match="broadcast"):
        associative_scan(torch.rand(3), torch.rand(4))
    with pytest.raises(ValueError, match="chunk_size"):
        x = torch.rand(1, 10, 1, 2)
        ssd_chunked(x, torch.rand(1, 10, 1), -torch.rand(1), torch.rand(1, 10, 1, 3),
                    torch.rand(1, 10, 1, 3), chunk_size=4)  # fmt: skip
    with pytest.raises(ValueError, match="A must be"):
        selective_scan(torch.rand(1, 4, 2), torch.rand(1, 4, 2), torch.rand(3, 2),
                       torch.rand(1, 4, 2), torch.rand(1, 4, 2))  # fmt: skip
    with pytest.raises(ValueError, match="p_flag"):
        flagged_sum_task(10, p_flag=1.5)
    with pytest.raises(ValueError, match="d_state"):
        SelectiveSSMLayer(4, 0)


def test_exercise_check_rejects_wrong_kernel():
    def euler(a, b, c, delta, L):  # Euler B_bar = delta b and A_bar = 1 + delta a: not ZOH
        return c * (1 + delta * a) ** torch.arange(L, dtype=torch.float64) * delta * b

    with pytest.raises(WrongAnswerError):
        check("ex-efficient-ssm-kernel", euler)
