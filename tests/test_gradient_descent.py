"""Tests for chapter 2.1's kernels: gd, minibatches, load_diabetes_std, iterations_per_epoch,
minibatch_grad_variance, and the chapter's exercise checks."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dlcourse.data import load_diabetes_std, minibatches
from dlcourse.exercises import check
from dlcourse.exercises.core import WrongAnswerError
from dlcourse.optim import gd, make_quadratic, run_optimizer
from dlcourse.train import iterations_per_epoch, minibatch_grad_variance


def test_gd_closed_form_on_1d_quadratic():
    path = gd(lambda x: 2 * x, torch.tensor([10.0], dtype=torch.float64), lr=0.2, steps=10)
    assert path.shape == (11, 1)
    expected = 10 * 0.6 ** torch.arange(11, dtype=torch.float64)
    torch.testing.assert_close(path[:, 0], expected)


def test_gd_matches_torch_sgd_on_ravine():
    f, grad, _ = make_quadratic([1.0, 100.0])
    x0 = torch.tensor([-10.0, 1.0], dtype=torch.float64)
    mine = gd(grad, x0, lr=0.019, steps=50)
    theirs = run_optimizer(lambda p: torch.optim.SGD(p, lr=0.019), f, x0, steps=50)
    torch.testing.assert_close(mine, theirs["trajectory"])


def test_gd_ravine_step_count_and_divergence():
    f, grad, _ = make_quadratic([1.0, 100.0])
    x0 = torch.tensor([-10.0, 1.0], dtype=torch.float64)
    losses = f(gd(grad, x0, lr=0.019, steps=600))
    assert int((losses <= 1e-6).nonzero()[0]) == 463
    assert f(gd(grad, x0, lr=0.021, steps=300)[-1]) > 1e10


def test_gd_rejects_bad_input():
    with pytest.raises(ValueError, match="x0"):
        gd(lambda x: x, torch.tensor(1.0), lr=0.1, steps=3)
    with pytest.raises(ValueError, match="steps"):
        gd(lambda x: x, torch.ones(2), lr=0.1, steps=-1)
    with pytest.raises(ValueError, match="lr"):
        gd(lambda x: x, torch.ones(2), lr=0.0, steps=1)
    with pytest.raises(ValueError, match="grad_fn"):
        gd(lambda x: x.sum(), torch.ones(2), lr=0.1, steps=1)


_LOADER_CASES = [(10, 3, False), (10, 3, True), (12, 4, True), (5, 8, False)]


@pytest.mark.parametrize(("n", "batch_size", "drop_last"), _LOADER_CASES)
def test_minibatches_count_matches_dataloader(n, batch_size, drop_last):
    x, y = torch.randn(n, 2), torch.arange(n)
    batches = list(minibatches(x, y, batch_size=batch_size, drop_last=drop_last))
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, drop_last=drop_last)
    assert len(batches) == len(loader) == iterations_per_epoch(n, batch_size, drop_last)
    seen = torch.cat([yb for _, yb in batches])
    assert len(set(seen.tolist())) == len(seen)  # no example twice
    for xb, yb in batches:
        torch.testing.assert_close(xb, x[yb])  # tensors stay aligned


def test_minibatches_reshuffle_and_no_shuffle():
    gen = torch.Generator().manual_seed(0)
    idx = torch.arange(20)
    first = torch.cat([b for (b,) in minibatches(idx, batch_size=5, generator=gen)])
    second = torch.cat([b for (b,) in minibatches(idx, batch_size=5, generator=gen)])
    assert not torch.equal(first, second)
    assert sorted(first.tolist()) == list(range(20))
    ordered = torch.cat([b for (b,) in minibatches(idx, batch_size=5, shuffle=False)])
    assert torch.equal(ordered, idx)


def test_minibatches_rejects_bad_input():
    with pytest.raises(ValueError, match="tensors"):
        next(minibatches(torch.ones(3), torch.ones(4), batch_size=2))
    with pytest.raises(ValueError, match="batch_size"):
        next(minibatches(torch.ones(3), batch_size=0))


def test_iterations_per_epoch_values_and_errors():
    assert iterations_per_epoch(1000, 100) == 10
    assert iterations_per_epoch(1797, 64) == 29
    assert iterations_per_epoch(1797, 64, drop_last=True) == 28
    with pytest.raises(ValueError, match="batch_size"):
        iterations_per_epoch(10, 0)
    with pytest.raises(ValueError, match="n must"):
        iterations_per_epoch(-1, 2)


def test_load_diabetes_std_is_standardized():
    x, y = load_diabetes_std()
    assert x.shape == (442, 10) and y.shape == (442,) and x.dtype == torch.float32
    torch.testing.assert_close(x.mean(0), torch.zeros(10), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(0), torch.ones(10), atol=1e-5, rtol=0)
    assert abs(y.std().item() - 1) < 1e-5


def test_minibatch_grad_variance_matches_theory():
    grads = torch.randn(400, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigma2 = (grads - grads.mean(0)).pow(2).sum(1).mean().item()
    without = minibatch_grad_variance(grads, [1, 10, 100, 400], n_draws=3000)
    with_repl = minibatch_grad_variance(grads, [1, 10, 100], n_draws=3000, replace=True)
    for m in (1, 10, 100):
        assert math.isclose(with_repl[m], sigma2 / m, rel_tol=0.1)
        assert math.isclose(without[m], sigma2 / m * (400 - m) / 399, rel_tol=0.1)
    assert without[400] < 1e-25


def test_minibatch_grad_variance_rejects_bad_input():
    with pytest.raises(ValueError, match="per_sample_grads"):
        minibatch_grad_variance(torch.ones(5), [1])
    with pytest.raises(ValueError, match="batch_sizes"):
        minibatch_grad_variance(torch.ones(5, 2), [6])
    with pytest.raises(ValueError, match="n_draws"):
        minibatch_grad_variance(torch.ones(5, 2), [1], n_draws=0)


# ---------------------------------------------------------------------------------------------
# Exercise checks: wrong answers are caught with a useful message


def test_ten_steps_check_catches_off_by_one_and_wrong_derivative():
    with pytest.raises(WrongAnswerError, match="one step off"):
        check("ex-gd-ten-steps", 10 * 0.6**11)
    with pytest.raises(WrongAnswerError, match="2x"):
        check("ex-gd-ten-steps", 10 * 0.8**10)


def test_stability_check_catches_smallest_eigenvalue_and_wrong_flags():
    with pytest.raises(WrongAnswerError, match="LARGEST"):
        check("ex-gd-stability", (2.0, True, False))
    with pytest.raises(WrongAnswerError, match="0.021"):
        check("ex-gd-stability", (0.02, True, True))


def test_iterations_check_catches_swap():
    with pytest.raises(WrongAnswerError, match="swapped"):
        check("ex-gd-iterations", (28, 29))
    with pytest.raises(WrongAnswerError):
        check("ex-gd-iterations", (28.0, 28))


def test_epoch_mean_grad_check_catches_sum_and_missing_zero_grad():
    def summed(model, X, y, batch_size):
        total = 0
        for start in range(0, len(X), batch_size):
            model.zero_grad()
            xb, yb = X[start : start + batch_size], y[start : start + batch_size]
            nn.functional.mse_loss(model(xb).squeeze(-1), yb).backward()
            total = total + torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        return total

    def no_zero_grad(model, X, y, batch_size):
        grads = []
        for start in range(0, len(X), batch_size):
            xb, yb = X[start : start + batch_size], y[start : start + batch_size]
            nn.functional.mse_loss(model(xb).squeeze(-1), yb).backward()
            grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
        return torch.stack(grads).mean(0)

    with pytest.raises(WrongAnswerError, match="summed"):
        check("ex-gd-epoch-mean-grad", summed)
    with pytest.raises(WrongAnswerError, match="mean gradient"):
        check("ex-gd-epoch-mean-grad", no_zero_grad)
