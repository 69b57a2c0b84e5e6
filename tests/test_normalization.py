"""Tests for the normalization kernels of chapter 2.7 (dlcourse.nn, dlcourse.data)."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from dlcourse.data import make_scaled_features, standardize
from dlcourse.exercises import WrongAnswerError, check
from dlcourse.nn import BatchNormScratch, batch_norm, layer_norm, rms_norm


def _pair(num_dims: int, c: int, momentum: float = 0.1):
    torch.manual_seed(0)
    ref = (nn.BatchNorm1d if num_dims == 2 else nn.BatchNorm2d)(c, momentum=momentum).double()
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-0.5, 0.5)
    mine = BatchNormScratch(c, num_dims, momentum=momentum).double()
    mine.load_state_dict(ref.state_dict())
    return ref, mine


@pytest.mark.parametrize("shape", [(8, 3), (5, 4, 3, 2), (1, 2, 3, 3)])
@pytest.mark.parametrize("momentum", [0.1, 0.3])
def test_batchnorm_matches_torch_train_and_eval(shape, momentum):
    ref, mine = _pair(len(shape), shape[1], momentum)
    g = torch.Generator().manual_seed(1)
    for step in range(3):  # several training steps: running statistics accumulate
        x = 3 * torch.randn(shape, generator=g, dtype=torch.float64) + step
        x_ref, x_mine = x.clone().requires_grad_(), x.clone().requires_grad_()
        out_ref, out_mine = ref(x_ref), mine(x_mine)
        assert_close(out_mine, out_ref)
        w = torch.randn(shape, generator=g, dtype=torch.float64)
        (out_ref * w).sum().backward()
        (out_mine * w).sum().backward()
        assert_close(x_mine.grad, x_ref.grad)
        assert_close(mine.weight.grad, ref.weight.grad)
        assert_close(mine.bias.grad, ref.bias.grad)
    assert_close(mine.running_mean, ref.running_mean)
    assert_close(mine.running_var, ref.running_var)
    assert mine.num_batches_tracked.item() == ref.num_batches_tracked.item() == 3
    ref.eval()
    mine.eval()
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    assert_close(mine(x), ref(x))
    assert_close(mine.running_mean, ref.running_mean)  # eval leaves the buffers alone


def test_batch_norm_running_stats_formula():
    x = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0], [7.0, 14.0]])
    c = x.shape[1]
    y, rm, rv = batch_norm(x, torch.ones(c), torch.zeros(c), torch.zeros(c), torch.ones(c))
    assert_close(rm, 0.1 * x.mean(0))
    assert_close(rv, 0.9 + 0.1 * x.var(0))  # unbiased
    assert_close(y.mean(0), torch.zeros(c), atol=1e-6, rtol=0)
    assert_close(y.var(0, correction=0), torch.ones(c), atol=1e-4, rtol=0)


def test_batch_norm_is_scale_invariant_in_training_only():
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    args = (torch.ones(4), torch.zeros(4), torch.zeros(4), torch.ones(4))
    assert_close(batch_norm(2 * x, *args)[0], batch_norm(x, *args)[0], atol=1e-5, rtol=1e-5)
    y1 = batch_norm(x, *args, training=False)[0]
    y2 = batch_norm(2 * x, *args, training=False)[0]
    assert_close(y2, 2 * y1, atol=1e-4, rtol=1e-4)


def test_batch_norm_rejects_one_value_per_channel_like_torch():
    with pytest.raises(ValueError):
        nn.BatchNorm1d(3)(torch.randn(1, 3))
    with pytest.raises(ValueError, match="x has one value per channel"):
        BatchNormScratch(3)(torch.randn(1, 3))
    BatchNormScratch(3).eval()(torch.randn(1, 3))  # eval mode is fine


def test_batch_norm_bad_input():
    ones = torch.ones(3)
    with pytest.raises(ValueError, match="x must be"):
        batch_norm(torch.randn(2, 3, 4), ones, ones, ones, ones)
    with pytest.raises(ValueError, match="gamma"):
        batch_norm(torch.randn(2, 3), torch.ones(2), ones, ones, ones)
    with pytest.raises(ValueError, match="running_var"):
        batch_norm(torch.randn(2, 3), ones, ones, ones, torch.ones(4))
    with pytest.raises(TypeError, match="x"):
        batch_norm(torch.ones(2, 3, dtype=torch.long), ones, ones, ones, ones)
    with pytest.raises(ValueError, match="num_dims"):
        BatchNormScratch(3, num_dims=3)


def test_batchnorm2d_parameters_and_buffers():
    bn = BatchNormScratch(64, 4)
    ref = nn.BatchNorm2d(64)
    assert sum(p.numel() for p in bn.parameters()) == sum(p.numel() for p in ref.parameters())
    assert sorted(dict(bn.named_buffers())) == sorted(dict(ref.named_buffers()))


@pytest.mark.parametrize("shape", [(5, 8), (2, 3, 6), (1, 4)])
def test_layer_norm_matches_torch(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True)
    ref = nn.LayerNorm(shape[-1]).double()
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5, generator=g)
        ref.bias.uniform_(-0.5, 0.5, generator=g)
    gamma = ref.weight.detach().clone().requires_grad_()
    beta = ref.bias.detach().clone().requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    w = torch.randn(shape, generator=g, dtype=torch.float64)
    out_ref, out_mine = ref(x), layer_norm(x2, gamma, beta)
    assert_close(out_mine, out_ref)
    (out_ref * w).sum().backward()
    (out_mine * w).sum().backward()
    assert_close(x2.grad, x.grad)
    assert_close(gamma.grad, ref.weight.grad)
    assert_close(beta.grad, ref.bias.grad)
    ref.eval()  # no running statistics: evaluation mode gives the same output
    assert_close(ref(x), out_ref)


def test_layer_norm_hand_computed():
    y = layer_norm(torch.tensor([1.0, 2.0, 3.0, 4.0]), eps=0.0)
    assert_close(y, torch.tensor([-1.3416, -0.4472, 0.4472, 1.3416]), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="gamma"):
        layer_norm(torch.randn(2, 4), gamma=torch.ones(3))


def test_rms_norm_matches_torch():
    x = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(0))
    gamma = torch.rand(8, generator=torch.Generator().manual_seed(1)) + 0.5
    ref = nn.RMSNorm(8, eps=1e-6)
    with torch.no_grad():
        ref.weight.copy_(gamma)
    assert_close(rms_norm(x, gamma), ref(x))
    with pytest.raises(ValueError, match="gamma"):
        rms_norm(x, torch.ones(7))


def test_standardize_matches_population_std_and_reuses_train_stats():
    X, _ = make_scaled_features(200, seed=0)
    X_test, _ = make_scaled_features(50, seed=1)
    Xs, Xt, (mean, std) = standardize(X, X_test)
    assert_close(Xs.mean(0), torch.zeros(2, dtype=X.dtype), atol=1e-9, rtol=0)
    assert_close(Xs.std(0, correction=0), torch.ones(2, dtype=X.dtype), atol=1e-6, rtol=0)
    assert_close(std, torch.from_numpy(X.numpy().std(axis=0)))  # numpy's ddof=0
    assert_close(Xt, (X_test - mean) / (std + 1e-8))
    const = torch.ones(5, 2, dtype=torch.float64)
    assert torch.isfinite(standardize(const)[0]).all()  # eps keeps a constant feature finite
    with pytest.raises(ValueError, match="X_train"):
        standardize(torch.randn(5))
    with pytest.raises(ValueError, match="others"):
        standardize(torch.randn(5, 2), torch.randn(5, 3))


def test_make_scaled_features_ranges_and_correlation():
    X, y = make_scaled_features(2000, corr=0.9, seed=0)
    assert X.shape == (2000, 2) and y.shape == (2000,)
    assert 1 <= X[:, 0].min() and X[:, 0].max() <= 2
    assert 100 <= X[:, 1].min() and X[:, 1].max() <= 200
    assert torch.corrcoef(X.T)[0, 1] > 0.8
    assert torch.equal(make_scaled_features(10, seed=3)[0], make_scaled_features(10, seed=3)[0])
    with pytest.raises(ValueError, match="corr"):
        make_scaled_features(10, corr=1.0)
    with pytest.raises(ValueError, match="scales"):
        make_scaled_features(10, scales=((2, 1),))


def test_exercise_checks_reject_wrong_answers():
    with pytest.raises(WrongAnswerError):
        check("ex-norm-layernorm", torch.tensor([-1.0, -0.5, 0.5, 1.0]))
    with pytest.raises(WrongAnswerError):
        check("ex-norm-buffers", (128, 129, 1))
    with pytest.raises(WrongAnswerError):
        check("ex-norm-undo", lambda x: (torch.ones(x.shape[1]), torch.zeros(x.shape[1])))

    def momentum_09(x):  # D2L's 0.9 put on the new statistic
        mean, var = x.mean(0), x.var(0, correction=0)
        return (x - mean) / torch.sqrt(var + 1e-5), 0.9 * mean

    with pytest.raises(WrongAnswerError):
        check("ex-norm-bn-by-hand", momentum_09)
