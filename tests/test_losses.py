"""Tests for dlcourse.losses: stable softmax, log-sum-exp and cross-entropy."""

import pytest
import torch
import torch.nn.functional as F

from dlcourse.losses import cross_entropy, log_softmax, logsumexp, stable_softmax


@pytest.fixture
def logits():
    return torch.randn(6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_logsumexp_matches_torch(logits):
    torch.testing.assert_close(logsumexp(logits), torch.logsumexp(logits, dim=-1))
    torch.testing.assert_close(logsumexp(logits, dim=0), torch.logsumexp(logits, dim=0))
    torch.testing.assert_close(
        logsumexp(logits, keepdim=True), torch.logsumexp(logits, dim=-1, keepdim=True)
    )


def test_logsumexp_is_finite_for_huge_logits():
    z = torch.tensor([[1000.0, 0.0], [-1000.0, -1000.0]])
    torch.testing.assert_close(logsumexp(z), torch.logsumexp(z, dim=-1))
    assert torch.isinf(torch.log(torch.exp(z).sum(-1)))[0]  # the naive formula overflows


def test_logsumexp_of_all_minus_inf_row_is_minus_inf():
    z = torch.full((1, 3), float("-inf"))
    assert logsumexp(z).item() == float("-inf")


def test_stable_softmax_matches_torch_and_ignores_shifts(logits):
    torch.testing.assert_close(stable_softmax(logits), torch.softmax(logits, dim=-1))
    torch.testing.assert_close(stable_softmax(logits + 1000.0), stable_softmax(logits))
    torch.testing.assert_close(stable_softmax(logits, dim=0), torch.softmax(logits, dim=0))


def test_softmax_temperature_divides_logits(logits):
    torch.testing.assert_close(
        stable_softmax(logits, temperature=0.5), torch.softmax(2 * logits, -1)
    )
    with pytest.raises(ValueError, match="temperature"):
        stable_softmax(logits, temperature=0.0)


def test_softmax_of_known_values():
    probs = stable_softmax(torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(probs, torch.tensor([0.0900, 0.2447, 0.6652]), atol=1e-4, rtol=0)


def test_log_softmax_matches_torch(logits):
    torch.testing.assert_close(log_softmax(logits), F.log_softmax(logits, dim=-1))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_torch_for_index_targets(logits, reduction):
    target = torch.tensor([0, 4, 2, 2, 1, 3])
    torch.testing.assert_close(
        cross_entropy(logits, target, reduction=reduction),
        F.cross_entropy(logits, target, reduction=reduction),
    )


def test_cross_entropy_ignore_index_matches_torch(logits):
    target = torch.tensor([0, -100, 2, -100, 1, 3])
    torch.testing.assert_close(cross_entropy(logits, target), F.cross_entropy(logits, target))


def test_cross_entropy_matches_torch_for_probability_targets(logits):
    target = torch.softmax(torch.randn(6, 5, dtype=torch.float64), dim=1)
    torch.testing.assert_close(cross_entropy(logits, target), F.cross_entropy(logits, target))


def test_cross_entropy_is_finite_for_logits_of_1e4():
    z = 1e4 * torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    target = torch.arange(8) % 4
    loss = cross_entropy(z, target)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, F.cross_entropy(z, target))


def test_cross_entropy_gradient_is_prediction_minus_label(logits):
    z = logits.clone().requires_grad_()
    target = torch.tensor([0, 4, 2, 2, 1, 3])
    cross_entropy(z, target).backward()
    expected = (torch.softmax(logits, 1) - F.one_hot(target, 5)) / len(target)
    torch.testing.assert_close(z.grad, expected)


def test_cross_entropy_rejects_bad_input(logits):
    with pytest.raises(ValueError, match="logits"):
        cross_entropy(logits[0], torch.tensor(1))
    with pytest.raises(ValueError, match="target"):
        cross_entropy(logits, torch.tensor([0, 5, 1, 1, 1, 1]))
    with pytest.raises(ValueError, match="target"):
        cross_entropy(logits, torch.zeros(5, dtype=torch.int64))
    with pytest.raises(ValueError, match="reduction"):
        cross_entropy(logits, torch.zeros(6, dtype=torch.int64), reduction="max")
    with pytest.raises(TypeError, match="logits"):
        cross_entropy(torch.zeros(2, 3, dtype=torch.int64), torch.zeros(2, dtype=torch.int64))
