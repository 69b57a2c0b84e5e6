"""Tests for dlcourse.generative.mmd_rbf."""

import math

import pytest
import torch

from dlcourse.generative import mmd_rbf


def _naive_mmd(x, y, h, unbiased):
    """Loop-by-loop definition of the squared MMD, for tiny inputs."""

    def k(a, b):
        return math.exp(-float(((a - b) ** 2).sum()) / (2 * h * h))

    def mean_k(a, b, skip_diagonal):
        pairs = [
            (i, j) for i in range(len(a)) for j in range(len(b)) if not (skip_diagonal and i == j)
        ]
        return sum(k(a[i], b[j]) for i, j in pairs) / len(pairs)

    return mean_k(x, x, unbiased) + mean_k(y, y, unbiased) - 2 * mean_k(x, y, False)


@pytest.mark.parametrize("unbiased", [True, False])
def test_mmd_matches_naive_definition(unbiased):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 2, generator=gen), torch.randn(5, 2, generator=gen) + 0.5
    got = mmd_rbf(x, y, bandwidth=0.8, unbiased=unbiased)
    assert math.isclose(got, _naive_mmd(x, y, 0.8, unbiased), rel_tol=1e-6, abs_tol=1e-9)


def test_mmd_hand_computed_single_points():
    # biased, one point each: k(x,x) + k(y,y) - 2 k(x,y) = 2 - 2 exp(-d^2 / 2h^2)
    x, y = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]])
    assert math.isclose(mmd_rbf(x.repeat(2, 1), y.repeat(2, 1), 1.0, unbiased=False),
                        2 - 2 * math.exp(-0.5))  # fmt: skip


def test_unbiased_mmd_averages_to_zero_for_one_distribution():
    gen = torch.Generator().manual_seed(1)
    values = [mmd_rbf(torch.randn(50, 2, generator=gen), torch.randn(50, 2, generator=gen))
              for _ in range(200)]  # fmt: skip
    mean = sum(values) / len(values)
    spread = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    assert abs(mean) < 3 * spread / len(values) ** 0.5
    assert min(values) < 0  # single unbiased estimates can be negative


def test_mmd_grows_with_shift():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(300, 2, generator=gen)
    near = mmd_rbf(x, torch.randn(300, 2, generator=gen) + 0.2)
    far = mmd_rbf(x, torch.randn(300, 2, generator=gen) + 1.0)
    assert 0 < near < far


def test_mmd_rejects_bad_input():
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="y must"):
        mmd_rbf(x, torch.randn(4))
    with pytest.raises(ValueError, match="same D"):
        mmd_rbf(x, torch.randn(4, 3))
    with pytest.raises(ValueError, match="bandwidth"):
        mmd_rbf(x, x, bandwidth=0.0)
    with pytest.raises(TypeError, match="x must"):
        mmd_rbf(torch.ones(4, 2, dtype=torch.long), x)
